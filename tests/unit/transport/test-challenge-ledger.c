/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The ledger of challenges NDES may hold: written whole on every change, read back at start,
 * expired entries dropped, a damaged line skipped, never a challenge in it. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "challenge-ledger.h"

static char dir[] = "/tmp/test-challenge-ledger.XXXXXX";
static char path[256];

static int setup(void **state) {
        if (!mkdtemp(dir))
                return -1;
        snprintf(path, sizeof path, "%s/ndes-challenges", dir);
        return 0;
}

static int teardown(void **state) {
        char tmp[300];
        snprintf(tmp, sizeof tmp, "%s.tmp", path);
        (void) unlink(tmp);
        (void) unlink(path);
        return rmdir(dir);
}

static void write_file(const char *text) {
        FILE *f = fopen(path, "we");
        assert_non_null(f);
        fputs(text, f);
        fclose(f);
}

static void test_round_trip(void **state) {
        ChallengeLedger *l = NULL;
        uint64_t ends[8], a, b, c;
        struct stat st;

        (void) unlink(path);
        assert_int_equal(challenge_ledger_open(path, 1000, &l), 0);     /* missing: empty */
        assert_int_equal(challenge_ledger_pending(l, "corp", 1000, NULL, 0), 0);

        a = challenge_ledger_add(l, "corp", 1000, 5000);
        b = challenge_ledger_add(l, "corp", 1000, 7000);
        c = challenge_ledger_add(l, "other", 1000, 6000);
        assert_true(a != 0 && b != 0 && c != 0 && a != b && b != c);
        assert_int_equal(challenge_ledger_last_error(l), 0);
        assert_int_equal(stat(path, &st), 0);
        assert_int_equal(st.st_mode & 0777, 0600);
        assert_int_equal(challenge_ledger_add(l, "bad name", 1000, 5000), 0);   /* not a CA name */
        assert_int_equal(challenge_ledger_add(l, "", 1000, 5000), 0);

        challenge_ledger_remove(l, b, 1000);    /* consumed */
        challenge_ledger_remove(l, 0, 1000);    /* none: ignored */
        challenge_ledger_remove(l, 12345, 1000);
        l = challenge_ledger_free(l);

        /* A restart: what is left, by CA; expired entries gone. */
        assert_int_equal(challenge_ledger_open(path, 2000, &l), 0);
        assert_int_equal(challenge_ledger_pending(l, "corp", 2000, ends, 8), 1);
        assert_int_equal(ends[0], 5000);
        assert_int_equal(challenge_ledger_pending(l, "other", 2000, ends, 8), 1);
        assert_int_equal(challenge_ledger_pending(l, "corp", 5000, NULL, 0), 0);       /* expired by then */
        l = challenge_ledger_free(l);
        assert_int_equal(challenge_ledger_open(path, 5500, &l), 0);
        assert_int_equal(challenge_ledger_pending(l, "corp", 5500, NULL, 0), 0);
        assert_int_equal(challenge_ledger_pending(l, "other", 5500, NULL, 0), 1);
        l = challenge_ledger_free(l);
}

static void test_damaged(void **state) {
        ChallengeLedger *l = NULL;
        uint64_t ends[8];

        write_file("corp 9000 17\n"
                   "garbage\n"
                   "corp -5 3\n"
                   "corp 9000 0\n"
                   "bad/name 9000 4\n"
                   "corp 9000 5 extra\n"
                   "other 9500 6");         /* no final newline */
        assert_int_equal(challenge_ledger_open(path, 100, &l), -EBADMSG);
        assert_non_null(l);
        assert_int_equal(challenge_ledger_pending(l, "corp", 100, ends, 8), 1);
        assert_int_equal(ends[0], 9000);
        assert_int_equal(challenge_ledger_pending(l, "other", 100, NULL, 0), 1);
        /* The next write leaves only good lines. */
        assert_true(challenge_ledger_add(l, "corp", 100, 9100) != 0);
        l = challenge_ledger_free(l);
        assert_int_equal(challenge_ledger_open(path, 100, &l), 0);
        assert_int_equal(challenge_ledger_pending(l, "corp", 100, NULL, 0), 2);
        l = challenge_ledger_free(l);

        /* A symbolic link in its place is not followed. */
        (void) unlink(path);
        assert_int_equal(symlink("/etc/passwd", path), 0);
        assert_int_equal(challenge_ledger_open(path, 100, &l), -ELOOP);
        assert_non_null(l);                     /* started afresh */
        assert_int_equal(challenge_ledger_pending(l, "root", 100, NULL, 0), 0);
        l = challenge_ledger_free(l);
        (void) unlink(path);
}

static void test_bounded(void **state) {
        ChallengeLedger *l = NULL;

        (void) unlink(path);
        assert_int_equal(challenge_ledger_open(path, 0, &l), 0);
        for (unsigned i = 0; i < 5000; i++)
                assert_true(challenge_ledger_add(l, "corp", 0, 10000 + i) != 0);
        /* Bounded: the earliest to expire made room. */
        assert_int_equal(challenge_ledger_pending(l, "corp", 0, NULL, 0), 4096);
        /* The 4096 latest (10904..14999) were kept. */
        assert_int_equal(challenge_ledger_pending(l, "corp", 10000 + 5000 - 4096 - 1, NULL, 0), 4096);
        assert_int_equal(challenge_ledger_pending(l, "corp", 10000 + 5000 - 4096, NULL, 0), 4095);
        l = challenge_ledger_free(l);
        assert_null(challenge_ledger_free(NULL));
        assert_int_equal(challenge_ledger_open(NULL, 0, &l), -EINVAL);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_round_trip),
                cmocka_unit_test(test_damaged),
                cmocka_unit_test(test_bounded),
        };
        return cmocka_run_group_tests(tests, setup, teardown);
}
