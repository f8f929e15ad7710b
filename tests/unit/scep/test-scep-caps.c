/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "scep-caps.h"

static unsigned parse(const char *s) {
        unsigned caps = 0xdeadbeef;
        ScepError e = {};

        assert_int_equal(scep_caps_parse(s, strlen(s), &caps, &e), 0);
        return caps;
}

static void test_windows_2016(void **state) {
        unsigned caps = parse("POSTPKIOperation\r\nRenewal\r\nSHA-512\r\nSHA-256\r\nSHA-1\r\nDES3\r\n");
        ScepAlgorithms a;

        assert_int_equal(caps, SCEP_CAP_POST_PKI_OPERATION | SCEP_CAP_RENEWAL | SCEP_CAP_SHA512 |
                         SCEP_CAP_SHA256 | SCEP_CAP_SHA1 | SCEP_CAP_DES3);
        assert_int_equal(scep_caps_choose(caps, SCEP_FLOOR_DEFAULT, &a, NULL), 0);
        assert_int_equal(a.cipher, SCEP_CIPHER_DES3);
        assert_int_equal(a.digest, SCEP_DIGEST_SHA256);
        assert_int_equal(a.transport, SCEP_TRANSPORT_POST);
        /* The strict floor wants AES, which NDES does not advertise. */
        ScepError e = {};
        assert_int_equal(scep_caps_choose(caps, SCEP_FLOOR_STRICT, &a, &e), SCEP_RESULT_ALGORITHM_FLOOR);
        assert_int_equal(e.result, SCEP_RESULT_ALGORITHM_FLOOR);
        assert_non_null(strstr(e.message, "AES"));
        assert_non_null(strstr(e.message, "POSTPKIOperation Renewal"));
}

static void test_micromdm_lf_only(void **state) {
        unsigned caps = parse("Renewal\nSHA-1\nSHA-256\nAES\nDES3\nSCEPStandard\nPOSTPKIOperation");
        ScepAlgorithms a;

        assert_int_equal(caps, SCEP_CAP_RENEWAL | SCEP_CAP_SHA1 | SCEP_CAP_SHA256 | SCEP_CAP_AES |
                         SCEP_CAP_DES3 | SCEP_CAP_SCEP_STANDARD | SCEP_CAP_POST_PKI_OPERATION);
        assert_int_equal(scep_caps_choose(caps, SCEP_FLOOR_STRICT, &a, NULL), 0);
        assert_int_equal(a.cipher, SCEP_CIPHER_AES128_CBC);
        assert_int_equal(a.digest, SCEP_DIGEST_SHA256);
        assert_int_equal(a.transport, SCEP_TRANSPORT_POST);
}

static void test_unknown_keywords_and_case(void **state) {
        /* Unknown keywords, odd case, blanks, blank lines, CR-only endings, MD5/DES ignored. */
        unsigned caps = parse("  sha-256 \r\n\r\n\nFrobnicate\rmd5\nDES\nSHA-256x\n\tpostpkioperation\t\n"
                              "GETNEXTCACERT\nupdate\n");
        assert_int_equal(caps, SCEP_CAP_SHA256 | SCEP_CAP_POST_PKI_OPERATION |
                         SCEP_CAP_GET_NEXT_CA_CERT | SCEP_CAP_UPDATE);
}

static void test_nul_bytes(void **state) {
        static const char body[] = "AES\0\nSHA-256\nDE\0S3\n";
        unsigned caps;

        assert_int_equal(scep_caps_parse(body, sizeof body - 1, &caps, NULL), 0);
        assert_int_equal(caps, SCEP_CAP_SHA256);
}

static void test_scep_standard_implies(void **state) {
        ScepAlgorithms a;

        assert_int_equal(scep_caps_choose(parse("SCEPStandard\n"), SCEP_FLOOR_STRICT, &a, NULL), 0);
        assert_int_equal(a.cipher, SCEP_CIPHER_AES128_CBC);
        assert_int_equal(a.digest, SCEP_DIGEST_SHA256);
        assert_int_equal(a.transport, SCEP_TRANSPORT_POST);
}

static void test_empty_caps(void **state) {
        unsigned caps = 1;
        ScepAlgorithms a = {};
        ScepError e = {};

        assert_int_equal(scep_caps_parse("", 0, &caps, NULL), 0);
        assert_int_equal(caps, 0);
        assert_int_equal(scep_caps_parse(NULL, 0, &caps, NULL), 0);
        assert_int_equal(caps, 0);
        assert_int_equal(scep_caps_parse("\r\n\r\n", 4, &caps, NULL), 0);
        assert_int_equal(caps, 0);

        /* Nothing advertised: below the default floor, with the fix named. */
        assert_int_equal(scep_caps_choose(0, SCEP_FLOOR_DEFAULT, &a, &e), SCEP_RESULT_ALGORITHM_FLOOR);
        assert_non_null(strstr(e.message, "AllowLegacyCiphers=yes"));
        assert_non_null(strstr(e.message, "(none)"));
        /* With AllowLegacyCiphers: DES3 + SHA-1 over GET, never DES or MD5. */
        assert_int_equal(scep_caps_choose(0, SCEP_FLOOR_LEGACY, &a, NULL), 0);
        assert_int_equal(a.cipher, SCEP_CIPHER_DES3);
        assert_int_equal(a.digest, SCEP_DIGEST_SHA1);
        assert_int_equal(a.transport, SCEP_TRANSPORT_GET);
}

static void test_digest_preference(void **state) {
        ScepAlgorithms a;

        assert_int_equal(scep_caps_choose(parse("SHA-1\nSHA-512\n"), SCEP_FLOOR_DEFAULT, &a, NULL), 0);
        assert_int_equal(a.digest, SCEP_DIGEST_SHA512);
        assert_int_equal(scep_caps_choose(parse("SHA-1\nSHA-512\nSHA-256\n"), SCEP_FLOOR_LEGACY, &a, NULL), 0);
        assert_int_equal(a.digest, SCEP_DIGEST_SHA256);
        /* SHA-1 only: refused by default, used with the legacy floor. */
        assert_int_equal(scep_caps_choose(parse("SHA-1\nDES3\n"), SCEP_FLOOR_DEFAULT, &a, NULL),
                         SCEP_RESULT_ALGORITHM_FLOOR);
        assert_int_equal(scep_caps_choose(parse("SHA-1\nDES3\n"), SCEP_FLOOR_LEGACY, &a, NULL), 0);
        assert_int_equal(a.digest, SCEP_DIGEST_SHA1);
        assert_int_equal(a.cipher, SCEP_CIPHER_DES3);
        /* GET unless POST is offered. */
        assert_int_equal(a.transport, SCEP_TRANSPORT_GET);
}

static void test_output_untouched_on_failure(void **state) {
        ScepAlgorithms a = { .cipher = 77, .digest = 78, .transport = 79 };
        unsigned caps = 42;

        assert_int_equal(scep_caps_choose(0, SCEP_FLOOR_DEFAULT, &a, NULL), SCEP_RESULT_ALGORITHM_FLOOR);
        assert_int_equal(a.cipher, 77);
        assert_int_equal(scep_caps_choose(0, 99, &a, NULL), -EINVAL);
        assert_int_equal(scep_caps_parse("x", 1, NULL, NULL), -EINVAL);
        assert_int_equal(scep_caps_parse(NULL, 3, &caps, NULL), -EINVAL);
        assert_int_equal(caps, 42);
}

static void test_too_large(void **state) {
        size_t n = SCEP_CAPS_MAX_SIZE + 1;
        char *big = malloc(n);
        unsigned caps = 5;
        ScepError e = {};

        assert_non_null(big);
        memset(big, '\n', n);
        assert_int_equal(scep_caps_parse(big, n, &caps, &e), SCEP_RESULT_TOO_LARGE);
        assert_int_equal(caps, 5);
        assert_non_null(strstr(e.message, "GetCACaps"));
        assert_int_equal(scep_caps_parse(big, n - 1, &caps, &e), 0);
        assert_int_equal(caps, 0);
        free(big);
}

static void test_strv_and_names(void **state) {
        const char *v[11];

        assert_int_equal(scep_caps_to_strv(0, v), 0);
        assert_null(v[0]);
        assert_int_equal(scep_caps_to_strv(SCEP_CAP_SHA256 | SCEP_CAP_AES, v), 2);
        assert_string_equal(v[0], "AES");
        assert_string_equal(v[1], "SHA-256");
        assert_null(v[2]);
        assert_int_equal(scep_caps_to_strv(0x3ff, v), 10);
        assert_string_equal(scep_cipher_to_string(SCEP_CIPHER_AES128_CBC), "AES-128-CBC");
        assert_string_equal(scep_digest_to_string(SCEP_DIGEST_SHA512), "SHA-512");
        assert_string_equal(scep_transport_to_string(SCEP_TRANSPORT_GET), "GET");
        assert_string_equal(scep_result_to_string(SCEP_RESULT_NONCE_MISMATCH), "nonce-mismatch");
        assert_null(scep_result_to_string(_SCEP_RESULT_MAX));
        for (int r = 0; r < _SCEP_RESULT_MAX; r++)
                assert_non_null(scep_result_to_string(r));
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_windows_2016),
                cmocka_unit_test(test_micromdm_lf_only),
                cmocka_unit_test(test_unknown_keywords_and_case),
                cmocka_unit_test(test_nul_bytes),
                cmocka_unit_test(test_scep_standard_implies),
                cmocka_unit_test(test_empty_caps),
                cmocka_unit_test(test_digest_preference),
                cmocka_unit_test(test_output_untouched_on_failure),
                cmocka_unit_test(test_too_large),
                cmocka_unit_test(test_strv_and_names),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
