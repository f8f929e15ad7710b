/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Subject DNs (RFC 4514 text): CN, O, OU, L, ST, C; escapes; limits; the CN under the guard. */

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "cb-subject.h"

typedef struct SubjectCase {
        const char *text;
        const char *expect;     /* "TYPE=value|TYPE=value" (unescaped), NULL when refused */
        const char *reason;
} SubjectCase;

static char *dump(const CbSubject *s) {
        static char buf[2048];
        size_t o = 0;
        buf[0] = 0;
        for (size_t i = 0; i < s->n_rdns; i++)
                o += snprintf(buf + o, sizeof buf - o, "%s%s=%s", i ? "|" : "", s->rdns[i].type, s->rdns[i].value);
        return buf;
}

static void test_subject_parse(void **state) {
        static const SubjectCase cases[] = {
                { "CN=web.a.example.com", "CN=web.a.example.com", NULL },
                { "CN=web.a.example.com,O=Tenant A", "CN=web.a.example.com|O=Tenant A", NULL },
                { "cn=Web.A.example.com, o = Tenant A ,ou=Ops,l=Berlin,st=Berlin,c=de",
                  "CN=Web.A.example.com|O=Tenant A|OU=Ops|L=Berlin|ST=Berlin|C=DE", NULL },
                { "O=Example\\, Inc.,CN=x.example.com", "O=Example, Inc.|CN=x.example.com", NULL },
                { "O=a\\+b\\;c\\\"d\\<e\\>f\\\\g\\=h", "O=a+b;c\"d<e>f\\g=h", NULL },
                { "O=\\ leading and trailing\\ ", "O= leading and trailing ", NULL },
                { "O=\\#hash", "O=#hash", NULL },
                { "O=caf\\C3\\A9", "O=caf\xc3\xa9", NULL },
                { "O=caf\xc3\xa9", "O=caf\xc3\xa9", NULL },
                { "O=a=b", "O=a=b", NULL },
                { "O=Example", "O=Example", NULL },                     /* no CN is fine */
                { "", NULL, "empty" },
                { "CN", NULL, "'='" },
                { "CN=", NULL, "empty attribute value" },
                { "CN=   ", NULL, "empty attribute value" },
                { "CN=a.example.com,", NULL, "empty RDN" },
                { ",CN=a.example.com", NULL, "empty RDN" },
                { "CN=a.example.com,,O=x", NULL, "empty RDN" },
                { "CN=a.example.com+O=x", NULL, "multi-valued" },
                { "CN=a.example.com;O=x", NULL, "unescaped special" },
                { "O=a\"b", NULL, "unescaped special" },
                { "O=a<b", NULL, "unescaped special" },
                { "E=root@example.com", NULL, "other than CN, O, OU, L, ST and C" },
                { "emailAddress=root@example.com", NULL, "other than CN" },
                { "2.5.4.3=a.example.com", NULL, "other than CN" },
                { "DC=example,DC=com", NULL, "other than CN" },
                { "SERIALNUMBER=1", NULL, "other than CN" },
                { "CN=#0403616263", NULL, "#hex" },
                { "CN=a\\", NULL, "invalid escape" },
                { "CN=a\\x", NULL, "invalid escape" },
                { "CN=a\\4", NULL, "invalid escape" },
                { "CN=a\\00b", NULL, "NUL" },
                { "CN=a\\0ab", NULL, "control" },
                { "O=a\nb", NULL, "control" },
                { "O=a\\C3", NULL, "UTF-8" },
                { "O=\xff", NULL, "UTF-8" },
                { "O=\xc0\xaf", NULL, "UTF-8" },
                { "CN=a.example.com,CN=b.example.com", NULL, "more than one CN" },
                { "C=DEU", NULL, "two letters" },
                { "C=D", NULL, "two letters" },
                { "C=1A", NULL, "two letters" },
                { "O=0123456789012345678901234567890123456789012345678901234567890123X", NULL, "64 bytes" },
                { "=x", NULL, "attribute type" },
                { " CN = a.example.com ", "CN=a.example.com", NULL },
        };
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                CbSubject *s = NULL;
                const char *why = NULL;
                int r = cb_subject_parse(cases[i].text, &s, &why);
                if (cases[i].expect) {
                        if (r != 0)
                                fail_msg("subject '%s' refused: %s", cases[i].text, why);
                        assert_string_equal(dump(s), cases[i].expect);
                        cb_subject_free(s);
                } else {
                        if (r != -EINVAL)
                                fail_msg("subject '%s' accepted: %s", cases[i].text, s ? dump(s) : "");
                        assert_null(s);
                        if (!strstr(why, cases[i].reason))
                                fail_msg("subject '%s': reason '%s' lacks '%s'", cases[i].text, why, cases[i].reason);
                }
        }
        assert_int_equal(cb_subject_parse(NULL, NULL, NULL), -EINVAL);
}

static void test_subject_limits(void **state) {
        char buf[2000];
        const char *why = NULL;
        CbSubject *s = NULL;

        /* 16 RDNs fine, 17 refused */
        buf[0] = 0;
        for (int i = 0; i < 16; i++)
                strcat(buf, i ? ",OU=x" : "OU=x");
        assert_int_equal(cb_subject_parse(buf, &s, &why), 0);
        assert_int_equal(s->n_rdns, 16);
        s = cb_subject_free(s);
        strcat(buf, ",OU=x");
        assert_int_equal(cb_subject_parse(buf, &s, &why), -EINVAL);
        assert_non_null(strstr(why, "16 RDNs"));

        /* more than 1024 bytes */
        memset(buf, 'a', sizeof buf);
        memcpy(buf, "O=", 2);
        buf[1100] = 0;
        assert_int_equal(cb_subject_parse(buf, &s, &why), -EINVAL);
        assert_non_null(strstr(why, "1024"));

        /* L up to 128 */
        memset(buf, 'l', 130);
        memcpy(buf, "L=", 2);
        buf[130] = 0;
        assert_int_equal(cb_subject_parse(buf, &s, &why), 0);
        s = cb_subject_free(s);
        buf[129] = 'l';
        buf[131] = 0;
        buf[130] = 'l';
        assert_int_equal(cb_subject_parse(buf, &s, &why), -EINVAL);
        assert_non_null(strstr(why, "128"));
}

static void test_subject_cn_guard(void **state) {
        static const struct {
                const char *text, *cn, *reason;
        } cases[] = {
                { "CN=WEB.A.Example.com.,O=X", "web.a.example.com", NULL },
                { "CN=*.a.example.com", "*.a.example.com", NULL },
                { "CN=evilexample.com", NULL, "not under the permitted suffix" },
                { "CN=web.a.example.com.evil.net", NULL, "not under the permitted suffix" },
                { "CN=127.0.0.1", NULL, "IPv4" },
                { "CN=Tenant A", NULL, "space" },
                { "CN=b\xc3\xbc" "cher.example.com", NULL, "A-labels" },
                { "CN=web\\2ea.example.com", "web.a.example.com", NULL },       /* escaped dot is just a dot */
                { "CN=web%2ea.example.com", NULL, "'%'" },
                { "O=no cn", NULL, NULL },
        };
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                CbSubject *s = NULL;
                const char *why = NULL;
                assert_int_equal(cb_subject_parse(cases[i].text, &s, &why), 0);
                int r = cb_subject_check_cn(s, "example.com", &why);
                if (cases[i].reason) {
                        if (r != -EINVAL)
                                fail_msg("CN of '%s' accepted", cases[i].text);
                        if (!strstr(why, cases[i].reason))
                                fail_msg("CN of '%s': reason '%s' lacks '%s'", cases[i].text, why, cases[i].reason);
                } else {
                        if (r != 0)
                                fail_msg("CN of '%s' refused: %s", cases[i].text, why);
                        if (cases[i].cn)
                                assert_string_equal(s->cn, cases[i].cn);
                        else
                                assert_null(s->cn);
                }
                cb_subject_free(s);
        }
}

static void test_subject_format(void **state) {
        static const struct {
                const char *in, *out;
        } cases[] = {
                { "CN=web.a.example.com,O=Tenant A", "CN=web.a.example.com,O=Tenant A" },
                { "O=Example\\, Inc.", "O=Example\\, Inc." },
                { "O=\\ a\\ ", "O=\\ a\\ " },
                { "O=\\#x", "O=\\#x" },
                { "O=a\\+b\\\\c", "O=a\\+b\\\\c" },
                { "c=de", "C=DE" },
        };
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                CbSubject *s = NULL, *s2 = NULL;
                char *out = NULL, *out2 = NULL;
                assert_int_equal(cb_subject_parse(cases[i].in, &s, NULL), 0);
                assert_int_equal(cb_subject_format(s, &out), 0);
                assert_string_equal(out, cases[i].out);
                /* round trip */
                assert_int_equal(cb_subject_parse(out, &s2, NULL), 0);
                assert_int_equal(cb_subject_format(s2, &out2), 0);
                assert_string_equal(out, out2);
                free(out);
                free(out2);
                cb_subject_free(s);
                cb_subject_free(s2);
        }

        CbSubject *s = NULL;
        assert_int_equal(cb_subject_new_cn("web.a.example.com", &s), 0);
        assert_int_equal(s->n_rdns, 1);
        assert_string_equal(s->cn, "web.a.example.com");
        assert_string_equal(s->rdns[0].type, "CN");
        cb_subject_free(s);
        assert_null(cb_subject_free(NULL));
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_subject_parse),
                cmocka_unit_test(test_subject_limits),
                cmocka_unit_test(test_subject_cn_guard),
                cmocka_unit_test(test_subject_format),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
