/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The mscep_admin page parser: every encoding, the labelled sentence, the page's structure in
 * English, German and Japanese, cache-full, permission, garbage and its visible text; and the
 * page classification. */
#include <errno.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdarg.h>
#include <stdbool.h>
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
        /* A localized page: no English label, no thumbprint (two groups only): the only <B> of
         * hex digits holds the password. */
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
                                                 "http://ndes.example.test/certsrv/mscep_admin/", "svc@EX", &s, &enc, &m, NULL),
                         TRANSPORT_OK);
        assert_null(m);
        assert_string_equal(challenge_secret_get(s, NULL), "1ED0DD50F7459D6E");
        s = challenge_secret_free(s);

        assert_int_equal(challenge_classify_page((const uint8_t *) full, strlen(full), 200, "ndes.example.test",
                                                 "u", "svc@EX", &s, NULL, &m, NULL), TRANSPORT_CHALLENGE_UNAVAILABLE);
        assert_non_null(strstr(m, "The password cache is full."));
        assert_non_null(strstr(m, "restart IIS"));
        free(m);

        assert_int_equal(challenge_classify_page((const uint8_t *) perm, strlen(perm), 200, "ndes.example.test",
                                                 "u", "svc-scep@EXAMPLE.TEST", &s, NULL, &m, NULL),
                         TRANSPORT_CHALLENGE_DENIED);
        /* Same API name, but a configuration error that retrying does not fix. */
        assert_string_equal(transport_outcome_to_string(TRANSPORT_CHALLENGE_DENIED), "ChallengeUnavailable");
        assert_false(transport_outcome_is_transient(TRANSPORT_CHALLENGE_DENIED));
        assert_true(transport_outcome_is_transient(TRANSPORT_CHALLENGE_UNAVAILABLE));
        assert_non_null(strstr(m, "Enroll permission on the certificate template"));
        assert_non_null(strstr(m, "svc-scep@EXAMPLE.TEST"));
        assert_non_null(strstr(m, "IIS_IUSRS"));
        free(m);

        /* A page that is none of NDES's: retried (a maintenance page in front of NDES goes away). */
        assert_int_equal(challenge_classify_page((const uint8_t *) "x", 1, 200, "h", "u", NULL, &s, NULL, &m, NULL),
                         TRANSPORT_CHALLENGE_UNAVAILABLE);
        assert_non_null(strstr(m, "no enrollment challenge password"));
        free(m);
        assert_int_equal(challenge_classify_page(NULL, 0, 401, "h", "u", NULL, &s, NULL, &m, NULL),
                         TRANSPORT_AUTHENTICATION_REJECTED);
        free(m);
        assert_int_equal(challenge_classify_page(NULL, 0, 403, "h", "u", NULL, &s, NULL, &m, NULL),
                         TRANSPORT_AUTHENTICATION_REJECTED);
        assert_non_null(strstr(m, "IIS_IUSRS"));
        /* IIS_IUSRS is required of the NDES service account, not of the broker's account
         * (Microsoft's NDES troubleshooting page). */
        assert_non_null(strstr(m, "the NDES service account (the SCEP application pool's identity) must be a member "
                                  "of IIS_IUSRS on the NDES server"));
        assert_non_null(strstr(m, "Seed: Pre-configuration steps, step 2"));
        free(m);
        assert_int_equal(challenge_classify_page(NULL, 0, 404, "h", "u", NULL, &s, NULL, &m, NULL), TRANSPORT_PROTOCOL_ERROR);
        free(m);
        assert_int_equal(challenge_classify_page(NULL, 0, 503, "h", "u", NULL, &s, NULL, &m, NULL), TRANSPORT_CA_UNREACHABLE);
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
                                                 NULL, &m, NULL), TRANSPORT_CHALLENGE_DENIED);
        assert_non_null(strstr(m, "Seed: Pre-configuration steps, step 3 (the service account has enroll permission"));
        free(m);
        assert_int_equal(challenge_classify_page((const uint8_t *) full, strlen(full), 200, "h", "u", NULL, &s,
                                                 NULL, &m, NULL), TRANSPORT_CHALLENGE_UNAVAILABLE);
        assert_non_null(strstr(m, "Not a seed step: NDES's password cache"));
        free(m);
        assert_int_equal(challenge_classify_page(NULL, 0, 401, "h", "u", NULL, &s, NULL, &m, NULL),
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

/* ---- the page's structure, in any language ---- */

/* The markup of NDES's pages (Windows Server 2022, English), and German and Japanese pages in
 * the same markup; like Microsoft's localized Web Enrollment pages, these carry
 * <B><I>Microsoft</I></B> in their banner. */
#define EN_HEAD "<HTML><Head><Meta HTTP-Equiv=\"Content-Type\" Content=\"text/html; charset=UTF-8\">" \
        "<Title>Network Device Enrollment Service</Title></Head><Body BgColor=#FFFFFF><Font ID=locPageFont " \
        "Face=\"Arial\"><Table Border=0 CellSpacing=0 CellPadding=4 Width=100% BgColor=#008080><TR><TD><Font " \
        "ID=locPageTitleFont Face=\"Arial\" Size=-1 Color=#FFFFFF><LocID ID=locMSCertSrv>Network Device " \
        "Enrollment Service</LocID></Font></TD></TR></Table><P ID=locPageTitle> Network Device Enrollment " \
        "Service allows you to obtain certificates for routers or other network devices using the Simple " \
        "Certificate Enrollment Protocol (SCEP). </P>"
#define EN_TAIL " <P ID=locPageDesc> For more information see  <A HREF=http://go.microsoft.com/fwlink/?LinkId=67852>" \
        "Using Network Device Enrollment Service </A>. </P></Font></Body></HTML>"
#define DE_HEAD "<HTML><Head><Meta HTTP-Equiv=\"Content-Type\" Content=\"text/html; charset=UTF-8\">" \
        "<Title>Registrierungsdienst für Netzwerkgeräte</Title></Head><Body BgColor=#FFFFFF><Font " \
        "ID=locPageFont Face=\"Arial\"><Table Border=0 CellSpacing=0 CellPadding=4 Width=100% BgColor=#008080>" \
        "<TR><TD><Font ID=locPageTitleFont Face=\"Arial\" Size=-1 Color=#FFFFFF><LocID ID=locMSCertSrv>" \
        "<B><I>Microsoft</I></B> Registrierungsdienst für Netzwerkgeräte</LocID></Font></TD></TR></Table>" \
        "<P ID=locPageTitle> Mit dem Registrierungsdienst für Netzwerkgeräte können Sie Zertifikate für " \
        "Router oder andere Netzwerkgeräte mithilfe des Simple Certificate Enrollment Protocol (SCEP) abrufen. </P>"
#define DE_TAIL " <P ID=locPageDesc> Weitere Informationen finden Sie unter  <A " \
        "HREF=http://go.microsoft.com/fwlink/?LinkId=67852>Verwenden des Registrierungsdiensts für " \
        "Netzwerkgeräte </A>. </P></Font></Body></HTML>"
#define JA_HEAD "<HTML><Head><Meta HTTP-Equiv=\"Content-Type\" Content=\"text/html; charset=UTF-8\">" \
        "<Title>ネットワーク デバイス登録サービス</Title></Head><Body BgColor=#FFFFFF><Font ID=locPageFont " \
        "Face=\"MS UI Gothic\"><Table Border=0 CellSpacing=0 CellPadding=4 Width=100% BgColor=#008080><TR><TD>" \
        "<Font ID=locPageTitleFont Face=\"MS UI Gothic\" Size=-1 Color=#FFFFFF><LocID ID=locMSCertSrv>" \
        "<B><I>Microsoft</I></B> ネットワーク デバイス登録サービス</LocID></Font></TD></TR></Table>" \
        "<P ID=locPageTitle> ネットワーク デバイス登録サービスを使うと、Simple Certificate Enrollment Protocol " \
        "(SCEP) を使用して、ルーターまたはその他のネットワーク デバイスの証明書を取得できます。 </P>"
#define JA_TAIL " <P ID=locPageDesc> 詳細については、 <A HREF=http://go.microsoft.com/fwlink/?LinkId=67852>" \
        "ネットワーク デバイス登録サービスの使用 </A> を参照してください。 </P></Font></Body></HTML>"

#define THUMB "4D5A1C2E 11223344 55667788 99AABBCC"
#define THUMB_HEX "4d5a1c2e112233445566778899aabbcc"

typedef enum Lang { EN, DE, JA, _LANG_MAX } Lang;

typedef struct LangText {
        const char *head, *tail;
        const char *before_thumb, *before_challenge, *after_once, *after_multi, *cache_full, *permission;
} LangText;

static const LangText lang_text[_LANG_MAX] = {
        [EN] = { EN_HEAD, EN_TAIL,
                "<P> To complete certificate enrollment for your network device you will need the following "
                "information: <P> The thumbprint (hash value) for the CA certificate is: ",
                " <P> The enrollment challenge password is: ",
                " <P> This password can be used only once and will expire within 60 minutes. <P> Each enrollment "
                "requires a new challenge password. You can refresh this web page to obtain a new challenge "
                "password. </P>",
                " <P> This password can be used multiple times and will not expire. </P>",
                "<P> The password cache is full. <P> Network Device Enrollment Service stores unused password for "
                "later use. By default, passwords are stored for 60 minutes.<P>Use one of the existing passwords. If "
                "you cannot use an existing password: <UL> <LI> Wait until one or more existing passwords expire (by "
                "default passwords expire 60 minutes after they are created). </LI> <LI> Restart Internet "
                "Information Services (IIS). </LI> <LI> Configure the service to cache more than 5 passwords. </LI> "
                "</UL> </P>",
                "<P> You do not have sufficient permission to enroll with SCEP.  Please contact your system "
                "administrator. </P>" },
        [DE] = { DE_HEAD, DE_TAIL,
                "<P> Zum Abschließen der Zertifikatregistrierung für Ihr Netzwerkgerät benötigen Sie die folgenden "
                "Informationen: <P> Der Fingerabdruck (Hashwert) des Zertifizierungsstellenzertifikats lautet: ",
                " <P> Das Kennwort für die Registrierungsabfrage lautet: ",
                " <P> Dieses Kennwort kann nur einmal verwendet werden und läuft innerhalb von 60 Minuten ab. </P>",
                " <P> Dieses Kennwort kann mehrmals verwendet werden und läuft nicht ab. </P>",
                "<P> Der Kennwortcache ist voll. <P> Der Registrierungsdienst für Netzwerkgeräte speichert nicht "
                "verwendete Kennwörter zur späteren Verwendung.<P>Wenn Sie kein vorhandenes Kennwort verwenden "
                "können: <UL> <LI> Warten Sie, bis vorhandene Kennwörter ablaufen. </LI> <LI> Starten Sie die "
                "Internetinformationsdienste (IIS) neu. </LI> <LI> Konfigurieren Sie den Dienst so, dass mehr als 5 "
                "Kennwörter zwischengespeichert werden. </LI> </UL> </P>",
                "<P> Sie verfügen nicht über ausreichende Berechtigungen für die Registrierung mit SCEP.  Wenden Sie "
                "sich an den Systemadministrator. </P>" },
        [JA] = { JA_HEAD, JA_TAIL,
                "<P> ネットワーク デバイスの証明書の登録を完了するには、次の情報が必要です: <P> CA 証明書の拇印 "
                "(ハッシュ値): ",
                " <P> 登録チャレンジ パスワード: ",
                " <P> このパスワードは 1 回だけ使用でき、60 分以内に有効期限が切れます。 </P>",
                " <P> このパスワードは複数回使用でき、有効期限はありません。 </P>",
                "<P> パスワード キャッシュがいっぱいです。 <P> 既存のパスワードを使用できない場合: <UL> <LI> 既存の"
                "パスワードの有効期限が切れるまで待ちます。 </LI> <LI> インターネット インフォメーション サービス "
                "(IIS) を再起動します。 </LI> <LI> 5 個を超えるパスワードをキャッシュするようにサービスを構成します。 "
                "</LI> </UL> </P>",
                "<P> SCEP で登録するための十分なアクセス許可がありません。 システム管理者に問い合わせてください。 </P>" },
};

/* The concatenation of the arguments up to NULL, malloc'd. */
static char *cat(const char *first, ...) {
        va_list ap;
        size_t n = 0;
        char *r;

        va_start(ap, first);
        for (const char *p = first; p; p = va_arg(ap, const char *))
                n += strlen(p);
        va_end(ap);
        r = malloc(n + 1);
        assert_non_null(r);
        r[0] = 0;
        va_start(ap, first);
        for (const char *p = first; p; p = va_arg(ap, const char *))
                strcat(r, p);
        va_end(ap);
        return r;
}

typedef enum PageEncoding { PE_UTF8, PE_UTF8_BOM, PE_UTF16LE_BOM, PE_UTF16LE, _PE_MAX } PageEncoding;
static const char *const pe_names[_PE_MAX] = { "utf-8", "utf-8-bom", "utf-16le-bom", "utf-16le" };

/* The UTF-8 text s (valid) in encoding e, malloc'd. */
static uint8_t *encode(const char *s, PageEncoding e, size_t *ret_size) {
        const uint8_t *u = (const uint8_t *) s;
        size_t n = strlen(s), j = 0;
        uint8_t *b = malloc(n * 2 + 4);

        assert_non_null(b);
        if (e == PE_UTF8 || e == PE_UTF8_BOM) {
                if (e == PE_UTF8_BOM) {
                        memcpy(b, "\xef\xbb\xbf", 3);
                        j = 3;
                }
                memcpy(b + j, s, n);
                *ret_size = j + n;
                return b;
        }
        if (e == PE_UTF16LE_BOM) {
                b[j++] = 0xff;
                b[j++] = 0xfe;
        }
        for (size_t i = 0; i < n;) {
                uint32_t cp = u[i];
                size_t k = cp < 0x80 ? 1 : cp >= 0xf0 ? 4 : cp >= 0xe0 ? 3 : 2;

                if (k > 1) {
                        cp &= k == 2 ? 0x1f : k == 3 ? 0x0f : 0x07;
                        for (size_t m = 1; m < k; m++)
                                cp = (cp << 6) | (u[i + m] & 0x3f);
                }
                i += k;
                if (cp >= 0x10000) {
                        uint32_t hi = 0xd800 | ((cp - 0x10000) >> 10), lo = 0xdc00 | ((cp - 0x10000) & 0x3ff);
                        b[j++] = (uint8_t) hi;
                        b[j++] = (uint8_t) (hi >> 8);
                        b[j++] = (uint8_t) lo;
                        b[j++] = (uint8_t) (lo >> 8);
                } else {
                        b[j++] = (uint8_t) cp;
                        b[j++] = (uint8_t) (cp >> 8);
                }
        }
        *ret_size = j;
        return b;
}

/* n hex digits, upper case (n <= 200). */
static const char *hex_digits(size_t n) {
        static char buf[201];

        assert_true(n < sizeof buf);
        for (size_t i = 0; i < n; i++)
                buf[i] = "0123456789ABCDEF"[(i * 7 + 3) % 16];
        buf[n] = 0;
        return buf;
}

/* The challenge page of lang with the challenge element <B> chal </B>, and more <B> elements
 * (or other markup) before the thumbprint, between thumbprint and challenge, and after. */
static char *challenge_page(Lang lang, const char *before, const char *between, const char *chal, const char *after,
                            bool multi) {
        const LangText *l = &lang_text[lang];

        return cat(l->head, before, l->before_thumb, "<B> " THUMB " </B>", between, l->before_challenge, "<B> ",
                   chal, " </B>", after, multi ? l->after_multi : l->after_once, l->tail, NULL);
}

typedef struct PageCase {
        const char *name;
        Lang lang;
        const char *before, *between, *after;
        size_t digits;          /* the challenge: this many hex digits */
        const char *chal;       /* or this text */
        bool multi;             /* the single-password sentence */
        int want;
        bool by_structure;
        unsigned validity;
} PageCase;

static void check_page(const char *name, const char *html, int want, const char *want_secret, bool by_structure,
                       const char *want_thumb, bool multi, unsigned validity) {
        for (PageEncoding e = 0; e < _PE_MAX; e++) {
                ChallengePageInfo info;
                ChallengeSecret *s = NULL;
                size_t n;
                uint8_t *b = encode(html, e, &n);
                int r = challenge_page_parse_info(b, n, &s, &info);

                if (r != want)
                        fail_msg("%s (%s): result %d, want %d", name, pe_names[e], r, want);
                assert_string_equal(info.encoding, pe_names[e]);
                if (want == CHALLENGE_PAGE_FOUND) {
                        assert_non_null(s);
                        assert_string_equal(challenge_secret_get(s, NULL), want_secret);
                } else
                        assert_null(s);
                if (info.by_structure != by_structure)
                        fail_msg("%s (%s): by_structure %d", name, pe_names[e], info.by_structure);
                assert_string_equal(info.thumbprint, want_thumb);
                assert_int_equal(info.multi_use, multi);
                assert_int_equal(info.validity_minutes, validity);
                if (want != CHALLENGE_PAGE_UNRECOGNIZED)
                        assert_string_equal(info.text, "");
                /* challenge_page_parse() agrees */
                assert_int_equal(challenge_page_parse(b, n, NULL, NULL), want);
                challenge_secret_free(s);
                free(b);
        }
}

static void test_structure_table(void **state) {
        static const PageCase cases[] = {
                { "en", EN, "", "", "", 16, NULL, false, CHALLENGE_PAGE_FOUND, false, 60 },
                { "en, 2 digits", EN, "", "", "", 2, NULL, false, CHALLENGE_PAGE_FOUND, false, 60 },
                { "en, 128 digits", EN, "", "", "", 128, NULL, false, CHALLENGE_PAGE_FOUND, false, 60 },
                /* Windows 2008 R2, UseSinglePassword (certnanny/sscep#46) */
                { "en, single password", EN, "", "", "", 32, NULL, true, CHALLENGE_PAGE_FOUND, false, 0 },
                { "en, extra <B>", EN, "<B>Note</B>", " <B>Important:</B>", " <B>ABCDEF0123456789</B>", 16, NULL,
                  false, CHALLENGE_PAGE_FOUND, false, 60 },
                { "de", DE, "", "", "", 16, NULL, false, CHALLENGE_PAGE_FOUND, true, 0 },
                { "ja", JA, "", "", "", 16, NULL, false, CHALLENGE_PAGE_FOUND, true, 0 },
                { "de, 2 digits", DE, "", "", "", 2, NULL, false, CHALLENGE_PAGE_FOUND, true, 0 },
                { "ja, 2 digits", JA, "", "", "", 2, NULL, false, CHALLENGE_PAGE_FOUND, true, 0 },
                { "de, 32 digits", DE, "", "", "", 32, NULL, false, CHALLENGE_PAGE_FOUND, true, 0 },
                { "ja, 32 digits", JA, "", "", "", 32, NULL, false, CHALLENGE_PAGE_FOUND, true, 0 },
                { "de, 128 digits", DE, "", "", "", 128, NULL, false, CHALLENGE_PAGE_FOUND, true, 0 },
                { "ja, 128 digits", JA, "", "", "", 128, NULL, false, CHALLENGE_PAGE_FOUND, true, 0 },
                { "de, single password", DE, "", "", "", 16, NULL, true, CHALLENGE_PAGE_FOUND, true, 0 },
                /* other <B> elements before, between and after (hex ones too, after the challenge) */
                { "de, extra <B>", DE, "<P><B>Hinweis:</B> Seite nicht weitergeben.",
                  " <B>Wichtig:</B> <B>nur einmal</B>", " <B>Danke</B> <B> 0A0B0C0D0E0F1011 </B> <B>99</B>", 16,
                  NULL, false, CHALLENGE_PAGE_FOUND, true, 0 },
                { "ja, nested <B>", JA, "<B><FONT COLOR=red>注意</FONT></B>", " <B><I>重要</I></B> <B><I></I></B>",
                  " <B> 99 </B> <B>7F7F7F7F7F7F7F7F</B>", 16, NULL, false, CHALLENGE_PAGE_FOUND, true, 0 },
                { "de, 8 digits with a short hex <B> before the thumbprint", DE, "<B> AB </B>", "", "", 8, NULL,
                  false, CHALLENGE_PAGE_FOUND, true, 0 },
                /* out of range: 1..64 bytes are 2..128 hex digits, an even count */
                { "de, 130 digits", DE, "", "", "", 130, NULL, false, CHALLENGE_PAGE_UNRECOGNIZED, false, 0 },
                { "ja, 130 digits", JA, "", "", "", 130, NULL, false, CHALLENGE_PAGE_UNRECOGNIZED, false, 0 },
                { "de, 15 digits", DE, "", "", "", 15, NULL, false, CHALLENGE_PAGE_UNRECOGNIZED, false, 0 },
                { "ja, 1 digit", JA, "", "", "", 1, NULL, false, CHALLENGE_PAGE_UNRECOGNIZED, false, 0 },
                { "de, empty", DE, "", "", "", 0, "", false, CHALLENGE_PAGE_UNRECOGNIZED, false, 0 },
                { "de, not hex", DE, "", "", "", 0, "1ED0DD50F7459D6G", false, CHALLENGE_PAGE_UNRECOGNIZED, false, 0 },
                { "ja, two words", JA, "", "", "", 0, "1ED0DD50 F7459D6E", false, CHALLENGE_PAGE_UNRECOGNIZED, false, 0 },
        };

        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
                const PageCase *c = &cases[i];
                char *chal = strdup(c->chal ? c->chal : hex_digits(c->digits));
                char *html = challenge_page(c->lang, c->before, c->between, chal, c->after, c->multi);

                assert_non_null(chal);
                check_page(c->name, html, c->want, chal, c->by_structure, THUMB_HEX, c->multi && c->lang == EN,
                           c->validity);
                free(html);
                free(chal);
        }
}

static void test_structure_error_pages(void **state) {
        for (Lang l = 0; l < _LANG_MAX; l++) {
                char *full = cat(lang_text[l].head, lang_text[l].cache_full, lang_text[l].tail, NULL);
                char *perm = cat(lang_text[l].head, lang_text[l].permission, lang_text[l].tail, NULL);

                check_page("cache full", full, CHALLENGE_PAGE_CACHE_FULL, NULL, l != EN, "", false, 0);
                check_page("permission", perm, CHALLENGE_PAGE_NO_PERMISSION, NULL, l != EN, "", false, 0);
                free(full);
                free(perm);
        }
}

/* Only pages with NDES's markup are taken for its error pages: anything else is retried. */
static void test_structure_needs_ndes_markup(void **state) {
        static const struct {
                const char *name, *html;
        } pages[] = {
                { "no markup, a list of three", "<HTML><Body><P>Der Kennwortcache ist voll.<UL><LI>a</LI><LI>b</LI>"
                  "<LI>c</LI></UL></Body></HTML>" },
                { "no markup, no list", "<HTML><Body><P>Zugriff verweigert.</P></Body></HTML>" },
                { "no LocID", "<HTML><Body><P ID=locPageTitle> Titel </P><P> Keine Berechtigung. </P>"
                  "<P ID=locPageDesc> Mehr </P></Body></HTML>" },
                { "no locPageDesc", "<HTML><Body><LocID ID=locMSCertSrv>Dienst</LocID><P ID=locPageTitle> Titel </P>"
                  "<P> Keine Berechtigung. </P></Body></HTML>" },
                { "IDs in the text only", "<HTML><Body><P>LocID ID=locMSCertSrv ID=locPageTitle ID=locPageDesc "
                  "&lt;LocID&gt;</P></Body></HTML>" },
                /* NDES's markup, but more than a banner in bold: not an error page */
                { "bold text", DE_HEAD "<P> <B>Achtung:</B> Der Dienst ist nicht verfügbar. </P>" DE_TAIL },
                { "a list of two", DE_HEAD "<P> Fehler <UL> <LI> eins </LI> <LI> zwei </LI> </UL> </P>" DE_TAIL },
                { "a list of four", JA_HEAD "<P> エラー <UL><LI>1</LI><LI>2</LI><LI>3</LI><LI>4</LI></UL></P>" JA_TAIL },
                { "an unterminated <B>", DE_HEAD "<P> <B> Fehler </P>" DE_TAIL },
                { "a thumbprint and no challenge", DE_HEAD "<P> Fingerabdruck: <B> " THUMB " </B> </P>" DE_TAIL },
                /* two candidates and no thumbprint: ambiguous */
                { "ambiguous", "<B> 0011223344556677 </B> <B> 8899AABBCCDDEEFF </B>" },
        };

        for (size_t i = 0; i < sizeof pages / sizeof pages[0]; i++) {
                const char *thumb = strstr(pages[i].html, THUMB) ? THUMB_HEX : "";
                check_page(pages[i].name, pages[i].html, CHALLENGE_PAGE_UNRECOGNIZED, NULL, false, thumb, false, 0);
        }
}

/* Without the thumbprint (or nothing after it), one <B> of 8 or more hex digits is taken. */
static void test_structure_without_anchor(void **state) {
        check_page("thumbprint after the challenge",
                   DE_HEAD "<P> <B> 00112233445566778899AABBCCDDEEFF </B> <P> <B> " THUMB " </B>" DE_TAIL,
                   CHALLENGE_PAGE_FOUND, "00112233445566778899AABBCCDDEEFF", true, THUMB_HEX, false, 0);
        check_page("no thumbprint, short ones ignored",
                   "<P> <B> 12 </B> <B> 0011223344556677 </B> <B>CAFE</B>", CHALLENGE_PAGE_FOUND,
                   "0011223344556677", true, "", false, 0);
        check_page("no thumbprint, only short ones", "<P> <B> 12 </B> <B>CAFE</B>", CHALLENGE_PAGE_UNRECOGNIZED,
                   NULL, false, "", false, 0);
}

/* Valid UTF-8, within CHALLENGE_PAGE_TEXT_MAX bytes? */
static bool utf8_valid(const char *s) {
        const uint8_t *u = (const uint8_t *) s;

        for (size_t i = 0; u[i];) {
                size_t k = u[i] < 0x80 ? 1 : (u[i] & 0xe0) == 0xc0 ? 2 : (u[i] & 0xf0) == 0xe0 ? 3 :
                           (u[i] & 0xf8) == 0xf0 ? 4 : 0;
                if (k == 0 || (k == 2 && u[i] < 0xc2))
                        return false;
                for (size_t m = 1; m < k; m++)
                        if ((u[i + m] & 0xc0) != 0x80)
                                return false;
                i += k;
        }
        return true;
}

static void visible(const uint8_t *b, size_t n, ChallengePageInfo *info) {
        assert_int_equal(challenge_page_parse_info(b, n, NULL, info), CHALLENGE_PAGE_UNRECOGNIZED);
        assert_true(utf8_valid(info->text));
        assert_true(strlen(info->text) <= CHALLENGE_PAGE_TEXT_MAX);
}

static void test_visible_text(void **state) {
        ChallengePageInfo info;
        char long_page[4096];
        size_t n;
        uint8_t *b;

        /* tags and the head dropped, whitespace collapsed, controls, backslashes and invalid UTF-8
         * escaped */
        const char *p = "<HTML><Head><Title>Hidden title</Title><Style>p { }</Style></Head><Body>\r\n<H1>Fehler\x01"
                        "\x7f</H1>\t<P>Ung\xfcltig \xc3\x28 caf\xc3\xa9 C:\\temp \xed\xa0\x80 \xe2\x80\xae" "abc</P>"
                        "<Script>var x = 1;</Script>Ende</Body></HTML>";
        visible((const uint8_t *) p, strlen(p), &info);
        assert_string_equal(info.text, "Fehler\\x01\\x7f Ung\\xfcltig \\xc3( café C:\\x5ctemp \\xed\\xa0\\x80 "
                                       "\\xe2\\x80\\xae" "abc Ende");
        assert_string_equal(info.thumbprint, "");

        /* UTF-16: characters beyond the BMP kept, a lone surrogate is U+FFFD */
        b = encode("<P>Grüße 😀 日本語</P>", PE_UTF16LE_BOM, &n);
        b = realloc(b, n + 4);
        assert_non_null(b);
        memcpy(b + n, "\x00\xd8" "!\x00", 4);
        visible(b, n + 4, &info);
        assert_string_equal(info.text, "Grüße 😀 日本語 \xef\xbf\xbd!");
        free(b);

        /* long: cut on a character boundary, "..." at the end; whatever the offset of the
         * multi-byte characters */
        for (size_t offset = 0; offset < 4; offset++) {
                size_t j = 0;
                j += (size_t) snprintf(long_page + j, sizeof long_page - j, "<P>%.*s", (int) offset, "xyz");
                for (size_t i = 0; i < 150; i++)
                        j += (size_t) snprintf(long_page + j, sizeof long_page - j, "日\x01");
                visible((const uint8_t *) long_page, j, &info);
                n = strlen(info.text);
                assert_true(n > CHALLENGE_PAGE_TEXT_MAX - 8);
                assert_string_equal(info.text + n - 3, "...");
                /* never inside a character or an escape */
                assert_true(strncmp(info.text + n - 7, "\\x01", 4) == 0 || strncmp(info.text + n - 6, "日", 3) == 0);
        }

        /* short: not cut */
        visible((const uint8_t *) "<P>It works!</P>", 16, &info);
        assert_string_equal(info.text, "It works!");

        /* nothing that could be a challenge is quoted */
        p = "<P>Code 0123456789ABCDEF, <B>1F</B> <b class=x> 2AB </b> cafe 12 deadbeef DEADBEEFCAFE1234</P>";
        visible((const uint8_t *) p, strlen(p), &info);
        assert_string_equal(info.text, "Code [hex], [hex] [hex] cafe 12 [hex] [hex]");

        /* a recognised page has no text; a page too large has neither text nor encoding */
        assert_int_equal(challenge_page_parse_info((const uint8_t *) GOOD, strlen(GOOD), NULL, &info),
                         CHALLENGE_PAGE_FOUND);
        assert_string_equal(info.text, "");
        b = calloc(1, CHALLENGE_PAGE_SIZE_MAX + 1);
        assert_non_null(b);
        assert_int_equal(challenge_page_parse_info(b, CHALLENGE_PAGE_SIZE_MAX + 1, NULL, &info),
                         CHALLENGE_PAGE_UNRECOGNIZED);
        assert_null(info.encoding);
        assert_string_equal(info.text, "");
        free(b);
}

static void test_classify_localized(void **state) {
        ChallengePageInfo info;
        ChallengeSecret *s = NULL;
        const char *enc = NULL;
        char *m = NULL, *html;
        size_t n;
        uint8_t *b;

        /* a German challenge page: the challenge and what the page says */
        html = challenge_page(DE, "", "", "1ED0DD50F7459D6E", "", false);
        b = encode(html, PE_UTF16LE_BOM, &n);
        assert_int_equal(challenge_classify_page(b, n, 200, "ndes.example.test", "u", "svc@EX", &s, &enc, &m, &info),
                         TRANSPORT_OK);
        assert_null(m);
        assert_string_equal(enc, "utf-16le-bom");
        assert_string_equal(challenge_secret_get(s, NULL), "1ED0DD50F7459D6E");
        assert_string_equal(info.thumbprint, THUMB_HEX);
        assert_true(info.by_structure);
        s = challenge_secret_free(s);
        free(b);
        free(html);

        /* the English single-password page */
        html = challenge_page(EN, "", "", "00F7FC7937B5366F2231AC891472998C", "", true);
        assert_int_equal(challenge_classify_page((const uint8_t *) html, strlen(html), 200, "h", "u", NULL, &s, NULL,
                                                 &m, &info), TRANSPORT_OK);
        assert_true(info.multi_use);
        assert_int_equal(info.validity_minutes, 0);
        s = challenge_secret_free(s);
        free(html);

        /* a Japanese cache-full page: as the English one, retried */
        html = cat(JA_HEAD, lang_text[JA].cache_full, JA_TAIL, NULL);
        b = encode(html, PE_UTF16LE, &n);
        assert_int_equal(challenge_classify_page(b, n, 200, "ndes.example.test", "u", "svc@EX", &s, NULL, &m, &info),
                         TRANSPORT_CHALLENGE_UNAVAILABLE);
        assert_non_null(strstr(m, "recognised by the page's structure"));
        assert_non_null(strstr(m, "The password cache is full."));
        assert_non_null(strstr(m, "restart IIS"));
        assert_non_null(strstr(m, "ndes.example.test"));
        free(m);
        free(b);
        free(html);

        /* a German permission page: as the English one, failed with the fix */
        html = cat(DE_HEAD, lang_text[DE].permission, DE_TAIL, NULL);
        assert_int_equal(challenge_classify_page((const uint8_t *) html, strlen(html), 200, "ndes.example.test", "u",
                                                 "svc-scep@EXAMPLE.TEST", &s, NULL, &m, NULL),
                         TRANSPORT_CHALLENGE_DENIED);
        assert_non_null(strstr(m, "recognised by the page's structure"));
        assert_non_null(strstr(m, "Enroll permission on the certificate template"));
        assert_non_null(strstr(m, "svc-scep@EXAMPLE.TEST"));
        assert_non_null(strstr(m, "must also be a member of IIS_IUSRS on the NDES server"));
        free(m);
        free(html);

        /* the English pages say nothing about structure */
        html = cat(EN_HEAD, lang_text[EN].permission, EN_TAIL, NULL);
        assert_int_equal(challenge_classify_page((const uint8_t *) html, strlen(html), 200, "h", "u", "svc@EX", &s,
                                                 NULL, &m, NULL), TRANSPORT_CHALLENGE_DENIED);
        assert_null(strstr(m, "structure"));
        free(m);
        free(html);

        /* a page that is none of NDES's: retried; the message names the host and quotes the text,
         * escaped, valid UTF-8 */
        html = "<HTML><Head><Title>Maintenance</Title></Head><Body><H1>Scheduled maintenance</H1><P>Offline until "
               "06:00.\a Zertifikatdienste f\xfcr Netzwerkger\xc3\xa4te.</P></Body></HTML>";
        assert_int_equal(challenge_classify_page((const uint8_t *) html, strlen(html), 200, "ndes.example.test",
                                                 "https://ndes.example.test/certsrv/mscep_admin/", "svc@EX", &s, NULL,
                                                 &m, &info), TRANSPORT_CHALLENGE_UNAVAILABLE);
        assert_true(transport_outcome_is_transient(TRANSPORT_CHALLENGE_UNAVAILABLE));
        assert_non_null(strstr(m, "ndes.example.test"));
        assert_non_null(strstr(m, "it reads: \"Scheduled maintenance Offline until 06:00.\\x07 Zertifikatdienste "
                                  "f\\xfcr Netzwerkgeräte.\""));
        assert_true(utf8_valid(m));
        assert_string_equal(info.text, "Scheduled maintenance Offline until 06:00.\\x07 Zertifikatdienste f\\xfcr "
                                       "Netzwerkgeräte.");
        free(m);

        /* HTTP errors: no page parsed, info zeroed */
        memset(&info, 0x55, sizeof info);
        assert_int_equal(challenge_classify_page(NULL, 0, 403, "h", "u", "svc-scep@EXAMPLE.TEST", &s, NULL, &m, &info),
                         TRANSPORT_AUTHENTICATION_REJECTED);
        assert_null(info.encoding);
        assert_string_equal(info.thumbprint, "");
        assert_non_null(strstr(m, "the NDES service account (the SCEP application pool's identity) must be a member "
                                  "of IIS_IUSRS on the NDES server"));
        assert_non_null(strstr(m, "the broker's own account svc-scep@EXAMPLE.TEST needs Enroll permission on the "
                                  "NDES templates"));
        assert_non_null(strstr(m, "not publicly documented"));
        free(m);
        assert_int_equal(challenge_classify_page(NULL, 0, 500, "h", "u", NULL, &s, NULL, &m, NULL),
                         TRANSPORT_CA_UNREACHABLE);
        assert_non_null(strstr(m, "HTTP 500"));
        assert_non_null(strstr(m, "the NDES service account (the SCEP application pool's identity) must be a member "
                                  "of IIS_IUSRS on the NDES server"));
        free(m);
        assert_int_equal(challenge_classify_page(NULL, 0, 503, "h", "u", NULL, &s, NULL, &m, NULL),
                         TRANSPORT_CA_UNREACHABLE);
        assert_null(strstr(m, "IIS_IUSRS"));
        free(m);
        assert_null(s);
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
                cmocka_unit_test(test_structure_table),
                cmocka_unit_test(test_structure_error_pages),
                cmocka_unit_test(test_structure_needs_ndes_markup),
                cmocka_unit_test(test_structure_without_anchor),
                cmocka_unit_test(test_visible_text),
                cmocka_unit_test(test_classify_localized),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
