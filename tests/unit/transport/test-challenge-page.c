/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The mscep_admin page parser: every encoding, the labelled sentence, the second-<B>
 * fallback, cache-full, permission, garbage; and the page classification. */
#include <errno.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "challenge-fetch.h"
#include "challenge-page.h"

#define HEAD "<HTML><Head><Title>Network Device Enrollment Service</Title></Head><Body><P> To complete " \
             "certificate enrollment for your network device you will need the following information: "
#define GOOD HEAD "<P> The thumbprint (hash value) for the CA certificate is: <B> 4D5A1C2E 11223344 55667788 99AABBCC </B> " \
             "<P> The enrollment challenge password is: <B> 1ED0DD50F7459D6E </B> <P> This password can be used only " \
             "once and will expire within 60 minutes. </P></Body></HTML>"

static uint8_t *utf16le(const char *s, bool bom, size_t *ret_size) {
        size_t n = strlen(s), j = 0;
        uint8_t *b = malloc(n * 2 + 2);

        assert_non_null(b);
        if (bom) {
                b[j++] = 0xff;
                b[j++] = 0xfe;
        }
        for (size_t i = 0; i < n; i++) {
                b[j++] = (uint8_t) s[i];
                b[j++] = 0;
        }
        *ret_size = j;
        return b;
}

static uint8_t *utf16be(const char *s, size_t *ret_size) {
        size_t n = strlen(s), j = 0;
        uint8_t *b = malloc(n * 2 + 2);

        assert_non_null(b);
        b[j++] = 0xfe;
        b[j++] = 0xff;
        for (size_t i = 0; i < n; i++) {
                b[j++] = 0;
                b[j++] = (uint8_t) s[i];
        }
        *ret_size = j;
        return b;
}

static void expect_challenge(const uint8_t *b, size_t n, const char *want, const char *want_enc) {
        ChallengeSecret *s = NULL;
        const char *enc = NULL;
        size_t len = 0;

        assert_int_equal(challenge_page_parse(b, n, &s, &enc), CHALLENGE_PAGE_FOUND);
        assert_non_null(s);
        assert_string_equal(challenge_secret_get(s, &len), want);
        assert_int_equal(len, strlen(want));
        if (want_enc)
                assert_string_equal(enc, want_enc);
        challenge_secret_free(s);
}

static void expect_result(const char *text, int want) {
        ChallengeSecret *s = NULL;

        assert_int_equal(challenge_page_parse((const uint8_t *) text, strlen(text), &s, NULL), want);
        assert_null(s);
}

static void test_utf8(void **state) {
        expect_challenge((const uint8_t *) GOOD, strlen(GOOD), "1ED0DD50F7459D6E", "utf-8");
}

static void test_utf8_bom(void **state) {
        char *p = NULL;
        assert_true(asprintf(&p, "\xef\xbb\xbf%s", GOOD) > 0);
        expect_challenge((const uint8_t *) p, strlen(p), "1ED0DD50F7459D6E", "utf-8-bom");
        free(p);
}

static void test_utf16le_bom(void **state) {
        size_t n;
        uint8_t *b = utf16le(GOOD, true, &n);
        expect_challenge(b, n, "1ED0DD50F7459D6E", "utf-16le-bom");
        free(b);
}

static void test_utf16le_nobom(void **state) {
        size_t n;
        uint8_t *b = utf16le(GOOD, false, &n);
        expect_challenge(b, n, "1ED0DD50F7459D6E", "utf-16le");
        free(b);
}

static void test_utf16le_odd_length(void **state) {
        size_t n;
        uint8_t *b = utf16le(GOOD, false, &n);
        b[n] = 'x';     /* a stray trailing byte is ignored */
        expect_challenge(b, n + 1, "1ED0DD50F7459D6E", "utf-16le");
        free(b);
}

static void test_utf16be_bom(void **state) {
        size_t n;
        uint8_t *b = utf16be(GOOD, &n);
        expect_challenge(b, n, "1ED0DD50F7459D6E", "utf-16be-bom");
        free(b);
}

static void test_whitespace_and_case(void **state) {
        const char *p = "<html><p>the ENROLLMENT challenge\r\n   password is:\t<b>\n  abcDEF0123456789\r\n</b></p>";
        expect_challenge((const uint8_t *) p, strlen(p), "abcDEF0123456789", NULL);
}

static void test_nbsp(void **state) {
        const char *p = "The enrollment challenge password is:\xc2\xa0<B>\xc2\xa0" "0011223344556677\xc2\xa0</B>";
        expect_challenge((const uint8_t *) p, strlen(p), "0011223344556677", NULL);
}

static void test_b_with_attribute(void **state) {
        const char *p = "The enrollment challenge password is: <B class=x> 0011223344556677 </B>";
        expect_challenge((const uint8_t *) p, strlen(p), "0011223344556677", NULL);
}

static void test_fallback_second_b(void **state) {
        /* A localized page: no English label; the second <B> holds the password. */
        const char *p = HEAD "<P> Der Fingerabdruck: <B> 4D5A1C2E 11223344 </B> <P> Das Kennwort lautet: "
                        "<B> 9F8E7D6C5B4A3928 </B> <BR> <B>noch etwas</B>";
        size_t n;
        uint8_t *b = utf16le(p, true, &n);
        expect_challenge(b, n, "9F8E7D6C5B4A3928", "utf-16le-bom");
        free(b);
}

static void test_fallback_ignores_br(void **state) {
        /* <BR> is not a <B> element. */
        const char *p = "<B>first</B><BR><BR> <B> 0123456789abcdef </B>";
        expect_challenge((const uint8_t *) p, strlen(p), "0123456789abcdef", NULL);
}

static void test_fallback_refuses_prose(void **state) {
        expect_result("<B> Achtung </B> <B> Der Kennwortcache ist voll </B>", CHALLENGE_PAGE_UNRECOGNIZED);
        expect_result("<B> a </B> <B> 1234567 </B>", CHALLENGE_PAGE_UNRECOGNIZED);     /* too short */
}

static void test_cache_full(void **state) {
        const char *p = HEAD "<P> The password cache is full. <P> Network Device Enrollment Service stores "
                        "unused password for later use. <B>Restart IIS</B> <B>0123456789ABCDEF</B>";
        size_t n;
        uint8_t *b = utf16le(p, true, &n);
        ChallengeSecret *s = NULL;

        expect_result(p, CHALLENGE_PAGE_CACHE_FULL);
        assert_int_equal(challenge_page_parse(b, n, &s, NULL), CHALLENGE_PAGE_CACHE_FULL);
        assert_null(s);
        free(b);
}

static void test_permission(void **state) {
        const char *p = HEAD "<P> You do not have sufficient permission to enroll with SCEP.  Please contact "
                        "your system administrator. </P>";
        size_t n;
        uint8_t *b = utf16le(p, false, &n);
        ChallengeSecret *s = NULL;

        expect_result(p, CHALLENGE_PAGE_NO_PERMISSION);
        assert_int_equal(challenge_page_parse(b, n, &s, NULL), CHALLENGE_PAGE_NO_PERMISSION);
        free(b);
}

static void test_garbage(void **state) {
        static const uint8_t zeros[64] = {};
        ChallengeSecret *s = NULL;

        expect_result("", CHALLENGE_PAGE_UNRECOGNIZED);
        expect_result("<html>It works!</html>", CHALLENGE_PAGE_UNRECOGNIZED);
        expect_result("The enrollment challenge password is: <B>", CHALLENGE_PAGE_UNRECOGNIZED);
        expect_result("The enrollment challenge password is: <B>   </B>", CHALLENGE_PAGE_UNRECOGNIZED);
        expect_result("The enrollment challenge password is: <B> two words </B>", CHALLENGE_PAGE_UNRECOGNIZED);
        expect_result("The enrollment challenge password is: 0123456789ABCDEF", CHALLENGE_PAGE_UNRECOGNIZED);
        assert_int_equal(challenge_page_parse(zeros, sizeof zeros, &s, NULL), CHALLENGE_PAGE_UNRECOGNIZED);
        assert_int_equal(challenge_page_parse(NULL, 0, &s, NULL), CHALLENGE_PAGE_UNRECOGNIZED);
        assert_int_equal(challenge_page_parse((const uint8_t *) "\xff\xfe", 2, &s, NULL), CHALLENGE_PAGE_UNRECOGNIZED);
        assert_int_equal(challenge_page_parse((const uint8_t *) "\xff\xfe\x00\xd8", 4, &s, NULL),
                         CHALLENGE_PAGE_UNRECOGNIZED);   /* lone surrogate */
        assert_null(s);
}

static void test_too_long(void **state) {
        char p[400];
        size_t n = (size_t) snprintf(p, sizeof p, "The enrollment challenge password is: <B> ");
        memset(p + n, 'A', 200);
        strcpy(p + n + 200, " </B>");
        expect_result(p, CHALLENGE_PAGE_UNRECOGNIZED);
}

static void test_size_cap(void **state) {
        size_t n = CHALLENGE_PAGE_SIZE_MAX + 1;
        uint8_t *b = malloc(n);
        ChallengeSecret *s = NULL;

        assert_non_null(b);
        memset(b, ' ', n);
        memcpy(b, GOOD, strlen(GOOD));
        assert_int_equal(challenge_page_parse(b, n, &s, NULL), CHALLENGE_PAGE_UNRECOGNIZED);
        free(b);
}

static void test_label_wins_over_error_text(void **state) {
        /* The labelled sentence is taken even if the page also quotes an error text. */
        const char *p = "The password cache is full. The enrollment challenge password is: <B> 0011223344556677 </B>";
        expect_challenge((const uint8_t *) p, strlen(p), "0011223344556677", NULL);
}

static void test_second_label_after_bad_first(void **state) {
        const char *p = "The enrollment challenge password is: <I>x</I> ... The enrollment challenge password is: "
                        "<B> 0011223344556677 </B>";
        expect_challenge((const uint8_t *) p, strlen(p), "0011223344556677", NULL);
}

static int release_count;
static void on_release(void *userdata) {
        release_count++;
        assert_ptr_equal(userdata, &release_count);
}

static void test_secret(void **state) {
        ChallengeSecret *s = NULL;

        assert_int_equal(challenge_secret_new("abc", 0, &s), -EINVAL);
        assert_int_equal(challenge_secret_new("abc", CHALLENGE_SIZE_MAX + 1, &s), -EINVAL);
        assert_int_equal(challenge_secret_new("abcdef", 3, &s), 0);
        assert_string_equal(challenge_secret_get(s, NULL), "abc");
        challenge_secret_set_release(s, on_release, &release_count);
        release_count = 0;
        assert_null(challenge_secret_free(s));
        assert_int_equal(release_count, 1);
        assert_null(challenge_secret_free(NULL));
}

static void test_classify(void **state) {
        ChallengeSecret *s = NULL;
        char *m = NULL;
        const char *enc = NULL;
        const char *full = "<P> The password cache is full. </P>";
        const char *perm = "<P> You do not have sufficient permission to enroll with SCEP. </P>";

        assert_int_equal(challenge_classify_page((const uint8_t *) GOOD, strlen(GOOD), 200, "ndes.example.test",
                                                 "http://ndes.example.test/certsrv/mscep_admin/", "svc@EX", &s, &enc, &m),
                         TRANSPORT_OK);
        assert_null(m);
        assert_string_equal(challenge_secret_get(s, NULL), "1ED0DD50F7459D6E");
        s = challenge_secret_free(s);

        assert_int_equal(challenge_classify_page((const uint8_t *) full, strlen(full), 200, "ndes.example.test",
                                                 "u", "svc@EX", &s, NULL, &m), TRANSPORT_CHALLENGE_UNAVAILABLE);
        assert_non_null(strstr(m, "The password cache is full."));
        assert_non_null(strstr(m, "restart IIS"));
        free(m);

        assert_int_equal(challenge_classify_page((const uint8_t *) perm, strlen(perm), 200, "ndes.example.test",
                                                 "u", "svc-scep@EXAMPLE.TEST", &s, NULL, &m),
                         TRANSPORT_CHALLENGE_DENIED);
        /* Same API name, but a configuration error that retrying does not fix. */
        assert_string_equal(transport_outcome_to_string(TRANSPORT_CHALLENGE_DENIED), "ChallengeUnavailable");
        assert_false(transport_outcome_is_transient(TRANSPORT_CHALLENGE_DENIED));
        assert_true(transport_outcome_is_transient(TRANSPORT_CHALLENGE_UNAVAILABLE));
        assert_non_null(strstr(m, "Enroll permission on the certificate template"));
        assert_non_null(strstr(m, "svc-scep@EXAMPLE.TEST"));
        assert_non_null(strstr(m, "IIS_IUSRS"));
        free(m);

        assert_int_equal(challenge_classify_page((const uint8_t *) "x", 1, 200, "h", "u", NULL, &s, NULL, &m),
                         TRANSPORT_PROTOCOL_ERROR);
        assert_non_null(strstr(m, "no enrollment challenge password"));
        free(m);
        assert_int_equal(challenge_classify_page(NULL, 0, 401, "h", "u", NULL, &s, NULL, &m),
                         TRANSPORT_AUTHENTICATION_REJECTED);
        free(m);
        assert_int_equal(challenge_classify_page(NULL, 0, 403, "h", "u", NULL, &s, NULL, &m),
                         TRANSPORT_AUTHENTICATION_REJECTED);
        assert_non_null(strstr(m, "IIS_IUSRS"));
        assert_non_null(strstr(m, "Seed: Pre-configuration steps, step 2"));
        free(m);
        assert_int_equal(challenge_classify_page(NULL, 0, 404, "h", "u", NULL, &s, NULL, &m), TRANSPORT_PROTOCOL_ERROR);
        free(m);
        assert_int_equal(challenge_classify_page(NULL, 0, 503, "h", "u", NULL, &s, NULL, &m), TRANSPORT_CA_UNREACHABLE);
        free(m);
        assert_null(s);
}

/* Each page failure names its seed step; the anonymous-page hint is the seed's step 4. */
static void test_seed_steps(void **state) {
        const char *full = "<P> The password cache is full. </P>";
        const char *perm = "<P> You do not have sufficient permission to enroll with SCEP. </P>";
        ChallengeSecret *s = NULL;
        char *m = NULL;

        assert_int_equal(challenge_classify_page((const uint8_t *) perm, strlen(perm), 200, "h", "u", "svc@EX", &s,
                                                 NULL, &m), TRANSPORT_CHALLENGE_DENIED);
        assert_non_null(strstr(m, "Seed: Pre-configuration steps, step 3 (the service account has enroll permission"));
        free(m);
        assert_int_equal(challenge_classify_page((const uint8_t *) full, strlen(full), 200, "h", "u", NULL, &s,
                                                 NULL, &m), TRANSPORT_CHALLENGE_UNAVAILABLE);
        assert_non_null(strstr(m, "Not a seed step: NDES's password cache"));
        free(m);
        assert_int_equal(challenge_classify_page(NULL, 0, 401, "h", "u", NULL, &s, NULL, &m),
                         TRANSPORT_AUTHENTICATION_REJECTED);
        assert_non_null(strstr(m, "Prefer Kerberos authentication"));
        free(m);
        assert_null(s);

        m = challenge_anonymous_hint("ndes.example.test", "https://ndes.example.test/certsrv/mscep_admin/");
        assert_non_null(m);
        const char *want = "Disable Anonymous Authentication on the Microsoft SCEP Admin webpage (mscep_admin): "
                           "Authentication > Anonymous Authentication > Disable.";
        assert_true(strncmp(m, want, strlen(want)) == 0);
        assert_non_null(strstr(m, "anyone who can reach that page can mint enrollment challenges"));
        assert_non_null(strstr(m, "Seed: Configuring Windows servers, step 4"));
        free(m);
}

static void count_release(void *userdata) {
        (*(int *) userdata)++;
}

/* The engine wipes a challenge once it is in the CSR but keeps its slot until NDES has answered
 * the PKIOperation: wiping must not run the release hook, freeing must run it once. */
static void test_secret_wipe_keeps_slot(void **state) {
        ChallengeSecret *s = NULL;
        size_t len = 0;
        int released = 0;

        assert_int_equal(challenge_secret_new("0123456789ABCDEF", 16, &s), 0);
        challenge_secret_set_release(s, count_release, &released);
        challenge_secret_wipe(s);
        assert_string_equal(challenge_secret_get(s, &len), "");
        assert_int_equal(len, 16);
        assert_int_equal(released, 0);
        challenge_secret_wipe(NULL);
        assert_null(challenge_secret_free(s));
        assert_int_equal(released, 1);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_utf8),
                cmocka_unit_test(test_utf8_bom),
                cmocka_unit_test(test_utf16le_bom),
                cmocka_unit_test(test_utf16le_nobom),
                cmocka_unit_test(test_utf16le_odd_length),
                cmocka_unit_test(test_utf16be_bom),
                cmocka_unit_test(test_whitespace_and_case),
                cmocka_unit_test(test_nbsp),
                cmocka_unit_test(test_b_with_attribute),
                cmocka_unit_test(test_fallback_second_b),
                cmocka_unit_test(test_fallback_ignores_br),
                cmocka_unit_test(test_fallback_refuses_prose),
                cmocka_unit_test(test_cache_full),
                cmocka_unit_test(test_permission),
                cmocka_unit_test(test_garbage),
                cmocka_unit_test(test_too_long),
                cmocka_unit_test(test_size_cap),
                cmocka_unit_test(test_label_wins_over_error_text),
                cmocka_unit_test(test_second_label_after_bad_first),
                cmocka_unit_test(test_secret),
                cmocka_unit_test(test_classify),
                cmocka_unit_test(test_seed_steps),
                cmocka_unit_test(test_secret_wipe_keeps_slot),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
