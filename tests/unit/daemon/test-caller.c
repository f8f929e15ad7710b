/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* caller: the registry's bounds follow the file descriptor limit (a reserve kept, a share per
 * uid), and who is admitted when it fills: a uid past its share is refused, everyone but root
 * once it is full, root then identified per call. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <cmocka.h>

#include "caller.h"

static void test_limits_follow_nofile(void **state) {
        size_t total, per_uid;

        /* systemd's default soft limit: 256 kept for the rest, 768 callers, 48 each. */
        caller_registry_limits(1024, &total, &per_uid);
        assert_int_equal(total, 768);
        assert_int_equal(per_uid, 48);
        /* certbrokerd.service's LimitNOFILE=8192: a quarter kept. */
        caller_registry_limits(8192, &total, &per_uid);
        assert_int_equal(total, 6144);
        assert_int_equal(per_uid, 384);
        caller_registry_limits(4096, &total, &per_uid);
        assert_int_equal(total, 3072);
        assert_int_equal(per_uid, 192);
        /* Huge limits: at most CALLER_REGISTRY_MAX. */
        caller_registry_limits(1u << 20, &total, &per_uid);
        assert_int_equal(total, CALLER_REGISTRY_MAX);
        assert_int_equal(per_uid, CALLER_REGISTRY_MAX / 16);
        /* Tiny limits: a share of at least CALLER_PER_UID_MIN. */
        caller_registry_limits(300, &total, &per_uid);
        assert_int_equal(total, 44);
        assert_int_equal(per_uid, CALLER_PER_UID_MIN);
        caller_registry_limits(64, &total, &per_uid);
        assert_int_equal(total, CALLER_PER_UID_MIN);
        /* Whatever the limit, the registry's fds stay below it. */
        for (uint64_t n = 64; n < 100000; n = n * 3 / 2) {
                caller_registry_limits(n, &total, &per_uid);
                if (n > 2 * CALLER_FD_RESERVE)
                        assert_true(total + CALLER_FD_RESERVE <= n);
                assert_true(per_uid <= total);
        }
}

static void test_registry_new_reads_rlimit(void **state) {
        CallerRegistry *reg = NULL;
        struct rlimit rl;
        size_t total, per_uid, want_total, want_per_uid;

        assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
        assert_int_equal(caller_registry_new(&reg), 0);
        caller_registry_get_limits(reg, &total, &per_uid);
        caller_registry_limits(rl.rlim_cur == RLIM_INFINITY ? 1024 : rl.rlim_cur, &want_total, &want_per_uid);
        assert_int_equal(total, want_total);
        assert_int_equal(per_uid, want_per_uid);
        assert_int_equal(caller_registry_size(reg), 0);
        assert_int_equal(caller_registry_count_uid(reg, 1000), 0);
        caller_registry_free(reg);
}

static void test_admission(void **state) {
        /* Room, and the uid below its share. */
        assert_int_equal(caller_registry_admit(0, 768, 0, 48, 1000), CALLER_ADMIT_KEEP);
        assert_int_equal(caller_registry_admit(700, 768, 47, 48, 1000), CALLER_ADMIT_KEEP);
        /* The uid at its share: refused, though there is room. */
        assert_int_equal(caller_registry_admit(48, 768, 48, 48, 1000), CALLER_ADMIT_UID_FULL);
        /* Full: a uid with none yet is refused too. */
        assert_int_equal(caller_registry_admit(768, 768, 0, 48, 1001), CALLER_ADMIT_FULL);
        /* Root has no share to exhaust, and past the total is identified per call. */
        assert_int_equal(caller_registry_admit(100, 768, 5000, 48, 0), CALLER_ADMIT_KEEP);
        assert_int_equal(caller_registry_admit(768, 768, 48, 48, 0), CALLER_ADMIT_TEMPORARY);
        /* Sixteen uids at their share fill a registry of 16 shares: it takes that many. */
        size_t n = 0;
        for (uid_t u = 1000; u < 1016; u++)
                for (size_t k = 0; k < 48; k++) {
                        assert_int_equal(caller_registry_admit(n, 768, k, 48, u), CALLER_ADMIT_KEEP);
                        n++;
                }
        assert_int_equal(n, 768);
        assert_int_equal(caller_registry_admit(n, 768, 0, 48, 2000), CALLER_ADMIT_FULL);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_limits_follow_nofile),
                cmocka_unit_test(test_registry_new_reads_rlimit),
                cmocka_unit_test(test_admission),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
