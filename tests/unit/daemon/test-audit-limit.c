/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* uid-limit: per-uid bursts and refills, suppressed counts reported once, idle uids
 * forgotten, the table's bound. audit-text: names escaped, cut and counted. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "log-audit-text.h"
#include "caller-uid-limit.h"

#define SEC 1000000ULL

static void test_burst_then_refill(void **state) {
        UidLimit *l = NULL;
        uint64_t sup = 99, retry = 0;

        assert_int_equal(uid_limit_new(3, 10 * SEC, 100, true, &l), 0);
        for (int i = 0; i < 3; i++) {
                assert_true(uid_limit_take(l, 1000, 100 * SEC, &sup, NULL));
                assert_int_equal(sup, 0);
        }
        assert_false(uid_limit_take(l, 1000, 100 * SEC, NULL, &retry));
        assert_int_equal(retry, 110 * SEC);
        assert_false(uid_limit_take(l, 1000, 105 * SEC, NULL, NULL));
        /* Another uid has its own bucket. */
        assert_true(uid_limit_take(l, 1001, 105 * SEC, &sup, NULL));
        /* One token back after one refill; the two refusals are reported with it. */
        assert_true(uid_limit_take(l, 1000, 110 * SEC, &sup, NULL));
        assert_int_equal(sup, 2);
        assert_false(uid_limit_take(l, 1000, 110 * SEC, NULL, NULL));
        assert_true(uid_limit_take(l, 1000, 120 * SEC, &sup, NULL));
        assert_int_equal(sup, 1);
        /* A long pause refills the whole burst, not more. */
        for (int i = 0; i < 3; i++)
                assert_true(uid_limit_take(l, 1000, 1000 * SEC, NULL, NULL));
        assert_false(uid_limit_take(l, 1000, 1000 * SEC, NULL, NULL));
        uid_limit_free(l);
}

typedef struct Report {
        uid_t uid[8];
        uint64_t n[8];
        size_t count;
} Report;

static void on_report(uid_t uid, uint64_t suppressed, void *userdata) {
        Report *r = userdata;

        assert_true(r->count < 8);
        r->uid[r->count] = uid;
        r->n[r->count++] = suppressed;
}

static void test_sweep_reports_and_forgets(void **state) {
        UidLimit *l = NULL;
        Report rep = {};

        assert_int_equal(uid_limit_new(1, 10 * SEC, 100, true, &l), 0);
        assert_true(uid_limit_take(l, 7, 0, NULL, NULL));
        for (int i = 0; i < 5; i++)
                assert_false(uid_limit_take(l, 7, 1 * SEC, NULL, NULL));
        assert_true(uid_limit_take(l, 8, 1 * SEC, NULL, NULL));
        assert_int_equal(uid_limit_get_entries(l), 2);

        uid_limit_sweep(l, 2 * SEC, on_report, &rep);
        assert_int_equal(rep.count, 1);
        assert_int_equal(rep.uid[0], 7);
        assert_int_equal(rep.n[0], 5);
        assert_int_equal(uid_limit_get_entries(l), 2);  /* both still within their refill */

        /* Reported once: nothing more to say, and once full again both are forgotten. */
        uid_limit_sweep(l, 20 * SEC, on_report, &rep);
        assert_int_equal(rep.count, 1);
        assert_int_equal(uid_limit_get_entries(l), 0);
        uid_limit_free(l);
}

static void test_table_bound(void **state) {
        UidLimit *open = NULL, *closed = NULL;

        assert_int_equal(uid_limit_new(1, 10 * SEC, 2, true, &open), 0);
        assert_int_equal(uid_limit_new(1, 10 * SEC, 2, false, &closed), 0);
        assert_true(uid_limit_take(open, 1, 0, NULL, NULL));
        assert_true(uid_limit_take(open, 2, 0, NULL, NULL));
        /* Full: a third uid is let through (audit: log rather than lose), and not counted. */
        assert_true(uid_limit_take(open, 3, 0, NULL, NULL));
        assert_true(uid_limit_take(open, 3, 0, NULL, NULL));
        assert_int_equal(uid_limit_get_entries(open), 2);
        /* The known uids are still limited. */
        assert_false(uid_limit_take(open, 1, 0, NULL, NULL));

        assert_true(uid_limit_take(closed, 1, 0, NULL, NULL));
        assert_true(uid_limit_take(closed, 2, 0, NULL, NULL));
        assert_false(uid_limit_take(closed, 3, 0, NULL, NULL));
        uid_limit_free(open);
        uid_limit_free(closed);
        assert_int_equal(uid_limit_new(0, 1, 1, true, &open), -EINVAL);
}

static void test_names_escaped(void **state) {
        char buf[AUDIT_NAMES_TEXT_MAX];
        const char *names[] = { "web.a.example.com", "evil\nCERTBROKER_DECISION=allow", "x y\x01\xff", NULL };

        audit_names_format(names, 4, buf, sizeof buf);
        assert_string_equal(buf, "web.a.example.com evil\\x0aCERTBROKER_DECISION\\x3dallow x\\x20y\\x01\\xff ");
        assert_null(strchr(buf, '\n'));
}

static void test_names_cut(void **state) {
        char buf[AUDIT_NAMES_TEXT_MAX], *huge = malloc(4 << 20);
        const char *names[64];

        memset(huge, 'a', (4 << 20) - 1);
        huge[(4 << 20) - 1] = 0;
        names[0] = huge;
        audit_names_format(names, 1, buf, sizeof buf);
        assert_int_equal(strlen(buf), AUDIT_NAME_MAX + 3);
        assert_string_equal(buf + AUDIT_NAME_MAX, "...");

        /* Many names: as many as fit, then how many were left out. */
        for (size_t i = 0; i < 64; i++)
                names[i] = "a-fairly-long-host-name-number.a.example.com";
        audit_names_format(names, 64, buf, sizeof buf);
        assert_true(strlen(buf) < sizeof buf);
        const char *more = strstr(buf, " (+");
        assert_non_null(more);
        unsigned shown = 0, left = 0;
        for (const char *p = buf; p < more; p = strchr(p, ' ') ? strchr(p, ' ') + 1 : more)
                shown++;
        assert_int_equal(sscanf(more, " (+%u more)", &left), 1);
        assert_int_equal(shown + left, 64);
        free(huge);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_burst_then_refill),
                cmocka_unit_test(test_sweep_reports_and_forgets),
                cmocka_unit_test(test_table_bound),
                cmocka_unit_test(test_names_escaped),
                cmocka_unit_test(test_names_cut),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
