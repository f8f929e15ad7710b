/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The suffix guard: the adversarial names corpus with expected verdicts, patterns, URLs. */

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "cb-names.h"

#define S "example.com"
#define W CB_NAME_ALLOW_WILDCARD
#define NAME(s) s, sizeof(s) - 1

typedef struct NameCase {
        const char *name;
        size_t len;             /* explicit, so NUL bytes can be in the middle */
        const char *suffix;
        CbNameFlags flags;
        const char *expect;     /* normalized form, or NULL when refused */
        const char *reason;     /* substring of the reason when refused */
} NameCase;

static char long_label[70], long_name[300], max_name[260];

static const NameCase name_cases[] = {
        /* plain and normalization */
        { NAME("example.com"), S, 0, "example.com", NULL },
        { NAME("www.example.com"), S, 0, "www.example.com", NULL },
        { NAME("WWW.Example.COM"), S, 0, "www.example.com", NULL },              /* upper case */
        { NAME("www.example.com."), S, 0, "www.example.com", NULL },             /* one trailing dot */
        { NAME("WEB.A.EXAMPLE.COM."), S, 0, "web.a.example.com", NULL },         /* matches only after normalization */
        { NAME("www.example.com.."), S, 0, NULL, "empty label" },                /* two trailing dots */
        { NAME("."), S, 0, NULL, "is empty" },
        { NAME(""), S, 0, NULL, "is empty" },
        { NAME(".www.example.com"), S, 0, NULL, "empty label" },
        { NAME("www..example.com"), S, 0, NULL, "empty label" },
        { NAME("a-b.example.com"), S, 0, "a-b.example.com", NULL },
        { NAME("-a.example.com"), S, 0, NULL, "hyphen" },
        { NAME("a-.example.com"), S, 0, NULL, "hyphen" },
        { NAME("a_b.example.com"), S, 0, NULL, "other than ASCII letters" },
        { NAME("a/b.example.com"), S, 0, NULL, "other than ASCII letters" },
        { NAME("a@example.com"), S, 0, NULL, "other than ASCII letters" },
        { NAME("a b.example.com"), S, 0, NULL, "space" },
        /* label boundary */
        { NAME("evilexample.com"), S, 0, NULL, "not under the permitted suffix" },
        { NAME("www.evilexample.com"), S, 0, NULL, "not under the permitted suffix" },
        { NAME("example.com.evil.net"), S, 0, NULL, "not under the permitted suffix" },
        { NAME("example.co"), S, 0, NULL, "not under the permitted suffix" },
        { NAME("xexample.com"), S, 0, NULL, "not under the permitted suffix" },
        { NAME("com"), S, 0, NULL, "not under the permitted suffix" },
        { NAME("www.example.com.evil"), S, 0, NULL, "not under the permitted suffix" },
        { NAME("evilexample.com"), NULL, 0, "evilexample.com", NULL },          /* no suffix: syntax only */
        /* IDN */
        { NAME("b\xc3\xbc" "cher.example.com"), S, 0, NULL, "xn-- A-labels" },  /* U-label, UTF-8 */
        { NAME("\xe2\x80\x8b" "www.example.com"), S, 0, NULL, "xn-- A-labels" }, /* zero-width space */
        { NAME("www.ex\xc3\xa4mple.com"), S, 0, NULL, "xn-- A-labels" },
        { NAME("xn--bcher-kva.example.com"), S, 0, "xn--bcher-kva.example.com", NULL },
        { NAME("XN--BCHER-KVA.example.com"), S, 0, "xn--bcher-kva.example.com", NULL },
        { NAME("www.example\xef\xbc\x8e" "com"), S, 0, NULL, "xn-- A-labels" }, /* fullwidth dot */
        { NAME("xn--mnchen-3ya.example.com"), S, 0, "xn--mnchen-3ya.example.com", NULL },      /* münchen */
        { NAME("xn--fiqs8s.example.com"), S, 0, "xn--fiqs8s.example.com", NULL },              /* 中国 */
        { NAME("xn--80akhbyknj4f.example.com"), S, 0, "xn--80akhbyknj4f.example.com", NULL },  /* испытание */
        { NAME("xn--wgbh1c.example.com"), S, 0, "xn--wgbh1c.example.com", NULL },              /* مصر */
        { NAME("www.xn--exmple-cua.com"), "xn--exmple-cua.com", 0, "www.xn--exmple-cua.com", NULL },
        { NAME("www.xn--exmple-cua.com"), S, 0, NULL, "not under the permitted suffix" },     /* exämple.com */
        { NAME("xn--99999999999.example.com"), S, 0, NULL, "not valid punycode" },            /* overflow */
        { NAME("xn--a.example.com"), S, 0, NULL, "not valid punycode" },
        { NAME("xn--abc-.example.com"), S, 0, NULL, "hyphen" },
        { NAME("xn--.example.com"), S, 0, NULL, "hyphen" },
        { NAME("xn--zzzzzzzzzzzz.example.com"), S, 0, NULL, "not valid punycode" },
        /* lengths */
        { long_label, 0, S, 0, NULL, "label longer than 63" },
        { long_name, 0, S, 0, NULL, "longer than 253" },
        { max_name, 0, S, 0, "max", NULL },
        /* NUL and control bytes */
        { NAME("www.example.com\0.evil.net"), S, 0, NULL, "NUL" },
        { NAME("www\0.example.com"), S, 0, NULL, "NUL" },
        { NAME("www.example.com\n"), S, 0, NULL, "control" },
        { NAME("www\r.example.com"), S, 0, NULL, "control" },
        { NAME("www\t.example.com"), S, 0, NULL, "control" },
        { NAME("www\x7f.example.com"), S, 0, NULL, "control" },
        { NAME("www\x1b[31m.example.com"), S, 0, NULL, "control" },
        /* percent */
        { NAME("www%2eexample.com"), S, 0, NULL, "'%'" },
        { NAME("evil.net%00.example.com"), S, 0, NULL, "'%'" },
        { NAME("%77ww.example.com"), S, 0, NULL, "'%'" },
        /* IPv4 literals in every form */
        { NAME("127.0.0.1"), S, 0, NULL, "IPv4" },
        { NAME("127.0.0.1"), NULL, 0, NULL, "IPv4" },
        { NAME("127.1"), NULL, 0, NULL, "IPv4" },
        { NAME("2130706433"), NULL, 0, NULL, "IPv4" },
        { NAME("0x7f.1"), NULL, 0, NULL, "IPv4" },
        { NAME("0x7f000001"), NULL, 0, NULL, "IPv4" },
        { NAME("0177.0.0.1"), NULL, 0, NULL, "IPv4" },
        { NAME("1.2.3.4."), NULL, 0, NULL, "IPv4" },
        { NAME("10.0.0.0x1"), NULL, 0, NULL, "IPv4" },
        { NAME("10.0.0.0X"), NULL, 0, NULL, "IPv4" },
        { NAME("1.2.3.example.com"), S, 0, "1.2.3.example.com", NULL },        /* a DNS name */
        { NAME("123.example.com"), S, 0, "123.example.com", NULL },
        /* IPv6 literals */
        { NAME("::1"), NULL, 0, NULL, "IPv6" },
        { NAME("[::1]"), NULL, 0, NULL, "IPv6" },
        { NAME("fe80::1%eth0"), NULL, 0, NULL, "'%'" },
        { NAME("::ffff:127.0.0.1"), NULL, 0, NULL, "IPv6" },
        { NAME("2001:db8::1"), S, 0, NULL, "IPv6" },
        { NAME("www.example.com:443"), S, 0, NULL, "port" },
        /* wildcards */
        { NAME("*.example.com"), S, W, "*.example.com", NULL },
        { NAME("*.A.Example.com."), S, W, "*.a.example.com", NULL },
        { NAME("*.example.com"), S, 0, NULL, "wildcard name, which is not allowed" },
        { NAME("*"), S, W, NULL, "only a wildcard" },
        { NAME("*."), S, W, NULL, "only a wildcard" },
        { NAME("a.*.example.com"), S, W, NULL, "whole leftmost label" },
        { NAME("*.*.example.com"), S, W, NULL, "whole leftmost label" },
        { NAME("w*.example.com"), S, W, NULL, "whole leftmost label" },
        { NAME("*w.example.com"), S, W, NULL, "whole leftmost label" },
        { NAME("**.example.com"), S, W, NULL, "whole leftmost label" },
        { NAME("www.example.*"), S, W, NULL, "whole leftmost label" },
        { NAME("*.com"), S, W, NULL, "not under the permitted suffix" },
        { NAME("*example.com"), S, W, NULL, "whole leftmost label" },
};

static void setup_long(void) {
        memset(long_label, 'a', 64);
        memcpy(long_label + 64, ".com", 5);
        /* 4 x 63 + dots: 255 bytes + ".example.com" */
        long_name[0] = 0;
        for (int i = 0; i < 4; i++) {
                strcat(long_name, "abcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabc");
                strcat(long_name, ".");
        }
        strcat(long_name, "example.com");
        /* exactly 253 bytes: 3 x 63 + 3 dots = 192, + 49 + "." + "example.com" (11) = 253 */
        max_name[0] = 0;
        for (int i = 0; i < 3; i++) {
                strcat(max_name, "abcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabc");
                strcat(max_name, ".");
        }
        strcat(max_name, "abcdefghijabcdefghijabcdefghijabcdefghijabcdefghi.example.com");
}

static void test_name_corpus(void **state) {
        setup_long();
        assert_int_equal(strlen(max_name), 253);

        for (size_t i = 0; i < sizeof(name_cases) / sizeof(name_cases[0]); i++) {
                const NameCase *c = &name_cases[i];
                size_t len = c->len ? c->len : strlen(c->name);
                char *out = NULL;
                const char *why = NULL;
                int r = cb_name_normalize(c->name, len, c->suffix, c->flags, &out, &why);

                if (c->expect) {
                        if (r != 0)
                                fail_msg("case %zu (%s): refused: %s", i, c->name, why);
                        if (strcmp(c->expect, "max") == 0)
                                assert_string_equal(out, max_name);
                        else
                                assert_string_equal(out, c->expect);
                        free(out);
                } else {
                        if (r != -EINVAL)
                                fail_msg("case %zu (%s): expected refusal (%s), got %d (%s)", i, c->name, c->reason, r,
                                         out ? out : "");
                        assert_null(out);
                        assert_non_null(why);
                        if (!strstr(why, c->reason))
                                fail_msg("case %zu (%s): reason '%s' lacks '%s'", i, c->name, why, c->reason);
                }
        }
}

static void test_name_no_output(void **state) {
        assert_int_equal(cb_name_normalize(NAME("www.example.com"), S, 0, NULL, NULL), 0);
        assert_int_equal(cb_name_normalize(NULL, 0, S, 0, NULL, NULL), -EINVAL);
        /* the 254-byte form with the trailing dot is fine */
        setup_long();
        char buf[300];
        snprintf(buf, sizeof buf, "%s.", max_name);
        assert_int_equal(cb_name_normalize(buf, strlen(buf), S, 0, NULL, NULL), 0);
}

static void test_under_suffix(void **state) {
        assert_true(cb_name_is_under_suffix("example.com", "example.com"));
        assert_true(cb_name_is_under_suffix("a.example.com", "example.com"));
        assert_false(cb_name_is_under_suffix("evilexample.com", "example.com"));
        assert_false(cb_name_is_under_suffix(".example.com", "example.com") && false);
        assert_false(cb_name_is_under_suffix("example.com", "a.example.com"));
        assert_false(cb_name_is_under_suffix("xample.com", "example.com"));
        assert_false(cb_name_is_under_suffix(NULL, "example.com"));
        assert_false(cb_name_is_under_suffix("example.com", ""));
        assert_true(cb_name_is_wildcard("*.a.example.com"));
        assert_false(cb_name_is_wildcard("a.example.com"));
}

typedef struct PatternCase {
        const char *pattern;
        const char *expect;
        const char *reason;
} PatternCase;

static void test_pattern_normalize(void **state) {
        static const PatternCase cases[] = {
                { "a.example.com", "a.example.com", NULL },
                { "A.Example.COM.", "a.example.com", NULL },
                { "*.a.example.com", "*.a.example.com", NULL },
                { "**.a.example.com", "**.a.example.com", NULL },
                { "*.example.com", "*.example.com", NULL },
                { "**.example.com", "**.example.com", NULL },
                { "example.com", "example.com", NULL },
                { "*.evilexample.com", NULL, "not under the permitted suffix" },
                { "other.org", NULL, "not under the permitted suffix" },
                { "**.com", NULL, "not under the permitted suffix" },
                { "*", NULL, "'*'" },
                { "**", NULL, "'*'" },
                { "*.", NULL, "is empty" },
                { "a.*.example.com", NULL, "'*'" },
                { "***.example.com", NULL, "'*'" },
                { "*.*.example.com", NULL, "'*'" },
                { "x*.example.com", NULL, "'*'" },
                { "127.0.0.1", NULL, "IPv4" },
                { "b\xc3\xbc" "cher.example.com", NULL, "A-labels" },
        };
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                char *out = NULL;
                const char *why = NULL;
                int r = cb_name_pattern_normalize(cases[i].pattern, S, &out, &why);
                if (cases[i].expect) {
                        if (r != 0)
                                fail_msg("pattern %s: %s", cases[i].pattern, why);
                        assert_string_equal(out, cases[i].expect);
                        free(out);
                } else {
                        if (r != -EINVAL)
                                fail_msg("pattern %s accepted", cases[i].pattern);
                        if (!strstr(why, cases[i].reason))
                                fail_msg("pattern %s: reason '%s' lacks '%s'", cases[i].pattern, why, cases[i].reason);
                }
        }
}

typedef struct MatchCase {
        const char *pattern, *name;
        bool match;
} MatchCase;

static void test_pattern_match(void **state) {
        static const MatchCase cases[] = {
                { "a.example.com", "a.example.com", true },
                { "a.example.com", "b.a.example.com", false },
                { "a.example.com", "evila.example.com", false },
                { "*.a.example.com", "web.a.example.com", true },
                { "*.a.example.com", "a.example.com", false },
                { "*.a.example.com", "x.web.a.example.com", false },
                { "*.a.example.com", "weba.example.com", false },
                { "*.a.example.com", "web.evila.example.com", false },
                { "**.a.example.com", "web.a.example.com", true },
                { "**.a.example.com", "x.y.z.a.example.com", true },
                { "**.a.example.com", "a.example.com", false },
                { "**.a.example.com", "xa.example.com", false },
                /* requested wildcards: '*' is one literal label */
                { "*.a.example.com", "*.a.example.com", true },
                { "**.example.com", "*.a.example.com", true },
                { "**.a.example.com", "*.a.example.com", true },
                { "*.example.com", "*.a.example.com", false },
                { "a.example.com", "*.example.com", false },
                { "*.a.example.com", "*.b.example.com", false },
                { NULL, "a.example.com", false },
                { "a.example.com", NULL, false },
        };
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
                if (cb_name_pattern_match(cases[i].pattern, cases[i].name) != cases[i].match)
                        fail_msg("match(%s, %s) != %d", cases[i].pattern, cases[i].name, cases[i].match);
}

typedef struct UrlCase {
        const char *url;
        const char *host;       /* expected normalized host, NULL when refused */
        const char *reason;
} UrlCase;

static void test_url_check(void **state) {
        static const UrlCase cases[] = {
                { "https://ndes.example.com/certsrv/mscep/mscep.dll", "ndes.example.com", NULL },
                { "http://ndes.example.com/certsrv/mscep/mscep.dll", "ndes.example.com", NULL },
                { "HTTPS://NDES.Example.COM./certsrv/mscep/mscep.dll", "ndes.example.com", NULL },
                { "https://ndes.example.com:8443/certsrv/mscep/mscep.dll", "ndes.example.com", NULL },
                { "https://example.com/", "example.com", NULL },
                { "https://ndes.example.com", "ndes.example.com", NULL },
                { "https://ndes.evilexample.com/x", NULL, "not under the permitted suffix" },
                { "https://evil.net/ndes.example.com", NULL, "not under the permitted suffix" },
                { "https://ndes.example.com.evil.net/", NULL, "not under the permitted suffix" },
                { "https://ndes.example.com@evil.net/", NULL, "userinfo" },
                { "https://user:pw@ndes.example.com/", NULL, "userinfo" },
                { "https://user@ndes.example.com/", NULL, "userinfo" },
                { "https://:pw@ndes.example.com/", NULL, "userinfo" },
                { "https://evil.net#@ndes.example.com/", NULL, NULL },
                { "https://evil.net?@ndes.example.com/", NULL, NULL },
                { "https://evil.net\\@ndes.example.com/", NULL, "percent-encoded" },
                { "https://ndes.example.com/x?operation=GetCACaps", NULL, "query" },
                { "https://ndes.example.com/x#frag", NULL, "fragment" },
                { "ftp://ndes.example.com/", NULL, "https://" },
                { "file:///etc/passwd", NULL, "https://" },
                { "gopher://ndes.example.com/", NULL, "https://" },
                { "ndes.example.com/certsrv", NULL, "https://" },
                { "//ndes.example.com/certsrv", NULL, "https://" },
                { "https:/ndes.example.com/", NULL, "https://" },
                { "https://127.0.0.1/", NULL, "IPv4" },
                { "https://127.1/", NULL, "IPv4" },
                { "https://0x7f.1/", NULL, "IPv4" },
                { "https://2130706433/", NULL, "IPv4" },
                { "https://[::1]/", NULL, "IPv6" },
                { "https://[::ffff:127.0.0.1]:443/", NULL, "IPv6" },
                { "https://ndes.example.com%2eevil.net/", NULL, NULL },
                { "https://nd%65s.example.com/", NULL, "percent-encoded host" },
                { "https://ndes.example.com /", NULL, "spaces" },
                { "https://ndes.ex\xc3\xa4mple.com/", NULL, "non-ASCII" },
                { "https://ndes.example.com/\n", NULL, "control" },
                { "https://*.example.com/", NULL, NULL },
                { "https:///", NULL, NULL },
                { "", NULL, "empty" },
        };
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                char *host = NULL;
                const char *why = NULL;
                int r = cb_url_check(cases[i].url, S, &host, &why);
                if (cases[i].host) {
                        if (r != 0)
                                fail_msg("url %s refused: %s", cases[i].url, why);
                        assert_string_equal(host, cases[i].host);
                        free(host);
                } else {
                        if (r != -EINVAL)
                                fail_msg("url %s accepted (host %s)", cases[i].url, host ? host : "");
                        assert_null(host);
                        assert_non_null(why);
                        if (cases[i].reason && !strstr(why, cases[i].reason))
                                fail_msg("url %s: reason '%s' lacks '%s'", cases[i].url, why, cases[i].reason);
                }
        }
        /* over-long */
        char *big = malloc(CB_URL_MAX + 100);
        assert_non_null(big);
        strcpy(big, "https://ndes.example.com/");
        memset(big + strlen(big), 'a', CB_URL_MAX);
        big[CB_URL_MAX + 50] = 0;
        const char *why = NULL;
        assert_int_equal(cb_url_check(big, S, NULL, &why), -EINVAL);
        assert_non_null(strstr(why, "2048"));
        free(big);
        assert_int_equal(cb_url_check(NULL, S, NULL, &why), -EINVAL);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_name_corpus),
                cmocka_unit_test(test_name_no_output),
                cmocka_unit_test(test_under_suffix),
                cmocka_unit_test(test_pattern_normalize),
                cmocka_unit_test(test_pattern_match),
                cmocka_unit_test(test_url_check),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
