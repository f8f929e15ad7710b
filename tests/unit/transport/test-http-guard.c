/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The URL host guard wrapper: suffix at a label boundary, case, trailing dot, punycode,
 * IP literals, user info, schemes; the host handed to curl is the checked one. */
#include <errno.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "http-guard.h"

static void ok_url(const char *url, const char *suffix, const char *want_host) {
        CURLU *u = NULL;
        char *host = NULL, *m = NULL, *h2 = NULL;

        assert_int_equal(http_guard_url(url, suffix, &u, &host, &m), 0);
        assert_null(m);
        assert_string_equal(host, want_host);
        /* The CURLU given to curl carries exactly the checked host. */
        assert_int_equal(curl_url_get(u, CURLUPART_HOST, &h2, 0), CURLUE_OK);
        assert_string_equal(h2, want_host);
        curl_free(h2);
        curl_url_cleanup(u);
        free(host);
}

static void bad_url(const char *url, const char *suffix, int want) {
        CURLU *u = NULL;
        char *host = NULL, *m = NULL;

        assert_int_equal(http_guard_url(url, suffix, &u, &host, &m), want);
        assert_null(u);
        assert_null(host);
        assert_non_null(m);
        free(m);
}

static void test_host(void **state) {
        const char *reason = NULL;

        assert_int_equal(http_guard_host("ndes.example.com", "example.com", NULL), 0);
        assert_int_equal(http_guard_host("example.com", "example.com", NULL), 0);
        assert_int_equal(http_guard_host("NDES.Example.COM", "example.com", NULL), 0);
        assert_int_equal(http_guard_host("ndes.example.com.", "example.com", NULL), 0);
        assert_int_equal(http_guard_host("ndes.example.com", "EXAMPLE.COM.", NULL), 0);
        assert_int_equal(http_guard_host("a.b.c.example.com", "example.com", NULL), 0);
        assert_int_equal(http_guard_host("xn--bcher-kva.example.com", "example.com", NULL), 0);

        assert_int_equal(http_guard_host("evilexample.com", "example.com", &reason), -EPERM);
        assert_non_null(reason);
        assert_int_equal(http_guard_host("example.com.evil.net", "example.com", NULL), -EPERM);
        assert_int_equal(http_guard_host("evil.attacker.test", "example.test", NULL), -EPERM);
        assert_int_equal(http_guard_host("com", "example.com", NULL), -EPERM);

        assert_int_equal(http_guard_host("ndes.example.com..", "example.com", NULL), -EINVAL);
        assert_int_equal(http_guard_host("ndes..example.com", "example.com", NULL), -EINVAL);
        assert_int_equal(http_guard_host("-ndes.example.com", "example.com", NULL), -EINVAL);
        assert_int_equal(http_guard_host("ndes-.example.com", "example.com", NULL), -EINVAL);
        assert_int_equal(http_guard_host("nd_es.example.com", "example.com", NULL), -EINVAL);
        assert_int_equal(http_guard_host("b\xc3\xbc" "cher.example.com", "example.com", NULL), -EINVAL);
        assert_int_equal(http_guard_host("127.0.0.1", "example.com", NULL), -EINVAL);
        assert_int_equal(http_guard_host("[::1]", "example.com", NULL), -EINVAL);
        assert_int_equal(http_guard_host("", "example.com", NULL), -EINVAL);
        assert_int_equal(http_guard_host(NULL, "example.com", NULL), -EINVAL);
        assert_int_equal(http_guard_host("*.example.com", "example.com", NULL), -EINVAL);
}

static void test_long_names(void **state) {
        char label[80], name[400];

        memset(label, 'a', 64);
        label[64] = 0;
        snprintf(name, sizeof name, "%s.example.com", label);
        assert_int_equal(http_guard_host(name, "example.com", NULL), -EINVAL);   /* 64-byte label */
        label[63] = 0;
        snprintf(name, sizeof name, "%s.example.com", label);
        assert_int_equal(http_guard_host(name, "example.com", NULL), 0);
        snprintf(name, sizeof name, "%s.%s.%s.%s.example.com", label, label, label, label);
        assert_int_equal(http_guard_host(name, "example.com", NULL), -EINVAL);   /* > 253 bytes */
}

static void test_url(void **state) {
        ok_url("https://ndes.example.com/certsrv/mscep_admin/", "example.com", "ndes.example.com");
        ok_url("http://NDES.Example.Com./certsrv/mscep/mscep.dll?operation=GetCACaps", "example.com",
               "ndes.example.com");
        ok_url("https://ndes.example.com:8443/x", "example.com", "ndes.example.com");
        ok_url("https://xn--bcher-kva.example.com/", "example.com", "xn--bcher-kva.example.com");

        bad_url("https://evilexample.com/", "example.com", -EPERM);
        bad_url("https://evil.attacker.test/", "example.test", -EPERM);
        bad_url("https://127.0.0.1/certsrv/mscep_admin/", "example.com", -EINVAL);
        bad_url("https://2130706433/", "example.com", -EINVAL);
        bad_url("https://0x7f.1/", "example.com", -EINVAL);
        bad_url("https://[::1]/", "example.com", -EINVAL);
        bad_url("ftp://ndes.example.com/", "example.com", -EINVAL);
        bad_url("file:///etc/passwd", "example.com", -EINVAL);
        bad_url("ndes.example.com/certsrv", "example.com", -EINVAL);
        bad_url("https://user:pw@ndes.example.com/", "example.com", -EINVAL);
        bad_url("https://ndes.example.com@evil.attacker.test/", "example.com", -EINVAL);
        bad_url("https:// ndes.example.com/", "example.com", -EINVAL);
        bad_url("", "example.com", -EINVAL);
}

static void test_url_message_hides_password(void **state) {
        char *m = NULL;

        assert_int_equal(http_guard_url("https://u:s3cret@ndes.example.com/", "example.com", NULL, NULL, &m), -EINVAL);
        assert_non_null(m);
        assert_null(strstr(m, "s3cret"));
        free(m);
}

static void test_idn_u_label(void **state) {
        /* A raw UTF-8 host: curl converts it to its A-label when libidn2 is there (then the
         * A-label is what is checked and connected to); otherwise it is refused. Never passed
         * through unchecked. */
        CURLU *u = NULL;
        char *host = NULL, *m = NULL;
        int r = http_guard_url("https://b\xc3\xbc" "cher.example.com/", "example.com", &u, &host, &m);

        if (r == 0) {
                assert_string_equal(host, "xn--bcher-kva.example.com");
                curl_url_cleanup(u);
                free(host);
        } else {
                assert_int_equal(r, -EINVAL);
                free(m);
        }
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_host),
                cmocka_unit_test(test_long_names),
                cmocka_unit_test(test_url),
                cmocka_unit_test(test_url_message_hides_password),
                cmocka_unit_test(test_idn_u_label),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
