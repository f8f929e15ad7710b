/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* libcertbroker without a daemon: connection failures carry a message naming the bus
 * address, errors are filled once and cleared, destructors accept NULL, secrets are wiped.
 * (Calls against certbrokerd are covered by tests/integration/client-*.sh.) */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "certbroker.h"

static void test_open_without_bus(void **state) {
        CertbrokerError e = CERTBROKER_ERROR_NULL;
        CertbrokerClient *c = (CertbrokerClient *) 0x1;
        int r;

        assert_int_equal(setenv("DBUS_SYSTEM_BUS_ADDRESS", "unix:path=/nonexistent/certbroker-test-bus", 1), 0);
        r = certbroker_open(&c, &e);
        assert_true(r < 0);
        assert_ptr_equal(c, (CertbrokerClient *) 0x1);          /* untouched on failure */
        assert_int_equal(e.error, r);
        assert_null(e.name);
        assert_non_null(e.message);
        assert_non_null(strstr(e.message, "Cannot connect to the system bus"));
        assert_non_null(strstr(e.message, "/nonexistent/certbroker-test-bus"));
        certbroker_error_clear(&e);
        assert_null(e.message);
        assert_int_equal(e.error, 0);
        certbroker_error_clear(&e);                             /* twice is fine */
        certbroker_error_clear(NULL);

        /* NULL error is allowed */
        r = certbroker_open(&c, NULL);
        assert_true(r < 0);
        assert_int_equal(certbroker_open(NULL, &e), -EINVAL);
        assert_non_null(e.message);
        certbroker_error_clear(&e);
}

static void test_null_arguments(void **state) {
        CertbrokerError e = CERTBROKER_ERROR_NULL;
        CertbrokerRequestSpec spec = {};
        char *s = NULL;

        assert_int_equal(certbroker_enroll(NULL, &spec, &s, &e), -EINVAL);
        assert_non_null(strstr(e.message, "certbroker_enroll"));
        /* the first error stays: a second failure does not overwrite it */
        assert_int_equal(certbroker_take_key(NULL, "0123456789abcdef", &s, &e), -EINVAL);
        assert_non_null(strstr(e.message, "certbroker_enroll"));
        certbroker_error_clear(&e);
        assert_int_equal(certbroker_wait(NULL, "x", 0, NULL, NULL, &s, &e), -EINVAL);
        certbroker_error_clear(&e);
        assert_int_equal(certbroker_cancel(NULL, "x", &e), -EINVAL);
        certbroker_error_clear(&e);
        assert_int_equal(certbroker_check_access(NULL, &spec, NULL, NULL, NULL), -EINVAL);
        assert_int_equal(certbroker_check_access_flags(NULL, &spec, CERTBROKER_ENROLL_IDENTITY_SELF, NULL, NULL, NULL),
                         -EINVAL);
        /* renew decides nothing in a dry run: refused before any call (the client is never used) */
        assert_int_equal(certbroker_check_access_flags((CertbrokerClient *) &spec, &spec, CERTBROKER_ENROLL_RENEW,
                                                       NULL, NULL, &e), -EINVAL);
        assert_non_null(strstr(e.message, "unknown flags 0x1"));
        certbroker_error_clear(&e);
        assert_null(s);
}

static void test_error_has_name(void **state) {
        CertbrokerError e = { .name = strdup(CERTBROKER_ERROR_NAME_NOT_PERMITTED), .message = strdup("x"), .error = -EPERM };

        assert_true(certbroker_error_has_name(&e, "org.certbroker.Broker1.Error.NameNotPermitted"));
        assert_false(certbroker_error_has_name(&e, CERTBROKER_ERROR_ACCESS_DENIED));
        assert_false(certbroker_error_has_name(&e, NULL));
        assert_false(certbroker_error_has_name(NULL, CERTBROKER_ERROR_ACCESS_DENIED));
        certbroker_error_clear(&e);
        assert_false(certbroker_error_has_name(&e, CERTBROKER_ERROR_NAME_NOT_PERMITTED));
}

static void test_free_null(void **state) {
        assert_null(certbroker_close(NULL));
        assert_null(certbroker_request_info_free(NULL));
        assert_null(certbroker_request_entries_free(NULL, 3));
        assert_null(certbroker_strv_free(NULL));
        assert_null(certbroker_ca_info_free(NULL));
        assert_null(certbroker_check_steps_free(NULL, 2));
        assert_null(certbroker_secret_free(NULL));
}

static void test_secret_free(void **state) {
        char *s = strdup("-----BEGIN PRIVATE KEY-----\nsecret\n-----END PRIVATE KEY-----\n");
        assert_non_null(s);
        /* Frees (ASan would see a leak otherwise); the wipe itself cannot be observed
         * after free() without undefined behaviour. */
        assert_null(certbroker_secret_free(s));
}

static void test_strv_free(void **state) {
        char **l = calloc(3, sizeof(char *));
        assert_non_null(l);
        l[0] = strdup("a");
        l[1] = strdup("b");
        assert_null(certbroker_strv_free(l));
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_open_without_bus),
                cmocka_unit_test(test_null_arguments),
                cmocka_unit_test(test_error_has_name),
                cmocka_unit_test(test_free_null),
                cmocka_unit_test(test_secret_free),
                cmocka_unit_test(test_strv_free),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
