/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Choosing among a CA's NDES servers: in order or round-robin, a failed one passed over for
 * FailbackAfter= and used again after it, the soonest-back one when all failed. */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "ca-servers.h"

#define S UINT64_C(1000000)

static void test_in_order(void **state) {
        CaServers s = { .n = 2 };

        /* Everything goes to the first while it answers. */
        for (int i = 0; i < 5; i++)
                assert_int_equal(ca_servers_pick(&s, 100 * S, false), 0);
        /* The first fails: the second, until FailbackAfter= has passed, then the first again. */
        ca_servers_failed(&s, 0, 100 * S, 600 * S);
        assert_true(ca_servers_passed_over(&s, 0, 101 * S));
        assert_true(ca_servers_other_usable(&s, 0, 101 * S));
        assert_int_equal(ca_servers_pick(&s, 101 * S, false), 1);
        assert_int_equal(ca_servers_pick(&s, 699 * S, false), 1);
        assert_int_equal(ca_servers_pick(&s, 700 * S, false), 0);
        /* An answer makes it usable at once. */
        ca_servers_failed(&s, 0, 800 * S, 600 * S);
        assert_int_equal(ca_servers_pick(&s, 801 * S, false), 1);
        ca_servers_answered(&s, 0);
        assert_int_equal(ca_servers_pick(&s, 802 * S, false), 0);
}

static void test_all_failed(void **state) {
        CaServers s = { .n = 3 };

        ca_servers_failed(&s, 0, 10 * S, 600 * S);
        ca_servers_failed(&s, 1, 20 * S, 600 * S);
        ca_servers_failed(&s, 2, 5 * S, 600 * S);
        assert_false(ca_servers_other_usable(&s, 0, 30 * S));
        /* the one back soonest */
        assert_int_equal(ca_servers_pick(&s, 30 * S, false), 2);
        assert_int_equal(ca_servers_pick(&s, 30 * S, true), 2);
        /* and the others as their time comes */
        assert_int_equal(ca_servers_pick(&s, 606 * S, false), 2);
        assert_int_equal(ca_servers_pick(&s, 610 * S, false), 0);
}

static void test_round_robin(void **state) {
        CaServers s = { .n = 3 };

        assert_int_equal(ca_servers_pick(&s, 1 * S, true), 0);
        assert_int_equal(ca_servers_pick(&s, 1 * S, true), 1);
        assert_int_equal(ca_servers_pick(&s, 1 * S, true), 2);
        assert_int_equal(ca_servers_pick(&s, 1 * S, true), 0);
        ca_servers_failed(&s, 1, 1 * S, 60 * S);
        assert_int_equal(ca_servers_pick(&s, 2 * S, true), 2);
        assert_int_equal(ca_servers_pick(&s, 2 * S, true), 0);
        assert_int_equal(ca_servers_pick(&s, 2 * S, true), 2);
        /* back in the rotation after FailbackAfter= */
        assert_int_equal(ca_servers_pick(&s, 61 * S, true), 0);
        assert_int_equal(ca_servers_pick(&s, 61 * S, true), 1);
}

static void test_one_server(void **state) {
        CaServers s = { .n = 1 };

        assert_int_equal(ca_servers_pick(&s, 1 * S, true), 0);
        ca_servers_failed(&s, 0, 1 * S, 60 * S);
        assert_false(ca_servers_other_usable(&s, 0, 2 * S));
        assert_int_equal(ca_servers_pick(&s, 2 * S, false), 0);
        /* out of range: ignored */
        ca_servers_failed(&s, 5, 1 * S, 60 * S);
        assert_false(ca_servers_passed_over(&s, 5, 2 * S));
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_in_order),
                cmocka_unit_test(test_all_failed),
                cmocka_unit_test(test_round_robin),
                cmocka_unit_test(test_one_server),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
