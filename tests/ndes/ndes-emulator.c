/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* ndes-emulator: a Microsoft NDES look-alike for tests, run by Apache as a CGI for
 * /certsrv/mscep/mscep.dll and /certsrv/mscep_admin/, plus a small CLI that creates
 * and changes its state. See `ndes-emulator help`. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>
#include <dirent.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/provider.h>
#include <openssl/sha.h>
#include <openssl/x509v3.h>

#include "ndes-faults.h"
#include "ndes-pki.h"
#include "ndes-state.h"

#define MAX_POST_BODY (256 * 1024)
#define MAX_QUERY (512 * 1024)
#define MAX_DRAIN (8UL * 1024 * 1024)
#define KEY_MAX (64 * 1024)

/* HRESULTs carried in 1.3.6.1.4.1.311.21.33. The challenge ones are what NDES answers
 * (Sleepw4lker's PSCertificateEnrollment Get-NDESCertificate.ps1); the others are our choice
 * of plausible Windows codes. */
#define HR_CHALLENGE_USED    ((int32_t) 0x800B0110)  /* the challenge was already used */
#define HR_CHALLENGE_MISSING ((int32_t) 0x80096004)  /* a challenge is required, none was sent */
#define HR_NO_DECRYPT_CERT   ((int32_t) 0x8009200C)  /* CRYPT_E_NO_DECRYPT_CERT */
#define HR_BAD_SIGNATURE     ((int32_t) 0x80090006)  /* NTE_BAD_SIGNATURE */
#define HR_INVALID_ARG       ((int32_t) 0x80070057)  /* E_INVALIDARG */
#define HR_NOT_FOUND         ((int32_t) 0x80070490)  /* ERROR_NOT_FOUND; NDES: challenge unknown or expired */
#define HR_CERT_EXPIRED      ((int32_t) 0x800B0101)  /* CERT_E_EXPIRED */
#define HR_UNTRUSTED_ROOT    ((int32_t) 0x800B0109)  /* CERT_E_UNTRUSTEDROOT */
#define HR_BAD_SUBJECT       ((int32_t) 0x80094001)  /* CERTSRV_E_BAD_REQUESTSUBJECT */
#define HR_CERT_TYPE         ((int32_t) 0x80094800)  /* CERTSRV_E_UNSUPPORTED_CERT_TYPE */

/* The DER value of x's template-name extension (1.3.6.1.4.1.311.20.2), or NULL. */
static const ASN1_OCTET_STRING *template_ext(X509 *x) {
        ASN1_OBJECT *o = OBJ_txt2obj("1.3.6.1.4.1.311.20.2", 1);
        int i = o ? X509_get_ext_by_OBJ(x, o, -1) : -1;
        ASN1_OBJECT_free(o);
        return i >= 0 ? X509_EXTENSION_get_data(X509_get_ext(x, i)) : NULL;
}

static const char *arg_state;
/* The faults this request's path names ("/f/SPEC/..."), NULL when none (ndes-faults.h). */
static const char *arg_fault_spec;

/* ---------- small helpers ---------- */

static void hex(const unsigned char *d, size_t n, char *out) {
        for (size_t i = 0; i < n; i++)
                sprintf(out + 2 * i, "%02x", d[i]);
}

static void txid_file(const char *txid, const char *suffix, char *out, size_t size) {
        unsigned char md[SHA256_DIGEST_LENGTH];
        char h[2 * SHA256_DIGEST_LENGTH + 1];
        SHA256((const unsigned char *) txid, strlen(txid), md);
        hex(md, 16, h);
        snprintf(out, size, "transactions/%s.%s", h, suffix);
}

static void iso_time(time_t t, char *buf, size_t size) {
        struct tm tm;
        gmtime_r(&t, &tm);
        strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* Log values are test data; keep them on one line and printable. */
static void sanitize(const char *in, char *out, size_t size) {
        size_t j = 0;
        for (size_t i = 0; in && in[i] && j + 1 < size; i++)
                out[j++] = (in[i] > 0x20 && in[i] < 0x7f) ? in[i] : '?';
        out[j] = 0;
}

static void log_event(const Config *c, const char *file, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void log_event(const Config *c, const char *file, const char *fmt, ...) {
        char line[1024], ts[32];
        va_list ap;
        iso_time(state_now(c), ts, sizeof ts);
        int n = snprintf(line, sizeof line, "%s ", ts);
        va_start(ap, fmt);
        vsnprintf(line + n, sizeof line - n - 1, fmt, ap);
        va_end(ap);
        strcat(line, "\n");
        if (state_append(arg_state, file, line) < 0)
                fprintf(stderr, "ndes-emulator: cannot append to %s/%s: %m\n", arg_state, file);
}

static X509 *load_cert(const char *name) {
        char path[PATH_MAX];
        snprintf(path, sizeof path, "%s/%s", arg_state, name);
        FILE *f = fopen(path, "re");
        if (!f) {
                fprintf(stderr, "ndes-emulator: cannot open %s: %m (run ndes-emulator init --state %s)\n", path, arg_state);
                return NULL;
        }
        X509 *x = PEM_read_X509(f, NULL, NULL, NULL);
        fclose(f);
        if (!x)
                fprintf(stderr, "ndes-emulator: %s is not a PEM certificate\n", path);
        return x;
}

static EVP_PKEY *load_key(const char *name) {
        char path[PATH_MAX];
        snprintf(path, sizeof path, "%s/%s", arg_state, name);
        FILE *f = fopen(path, "re");
        if (!f) {
                fprintf(stderr, "ndes-emulator: cannot open %s: %m (the CGI runs as www-data: chown -R www-data %s)\n",
                        path, arg_state);
                return NULL;
        }
        EVP_PKEY *k = PEM_read_PrivateKey(f, NULL, NULL, NULL);
        fclose(f);
        if (!k)
                fprintf(stderr, "ndes-emulator: %s is not a PEM private key\n", path);
        return k;
}

static int write_pem_cert(const char *name, X509 *x) {
        BIO *b = BIO_new(BIO_s_mem());
        char *p;
        int r = -EIO;
        if (b && PEM_write_bio_X509(b, x)) {
                long n = BIO_get_mem_data(b, &p);
                r = state_write(arg_state, name, p, n, 0644);
        }
        BIO_free(b);
        return r;
}

static int write_pem_key(const char *name, EVP_PKEY *k) {
        BIO *b = BIO_new(BIO_s_secmem());
        char *p;
        int r = -EIO;
        if (b && PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL)) {
                long n = BIO_get_mem_data(b, &p);
                r = state_write(arg_state, name, p, n, 0600);
        }
        BIO_free(b);
        return r;
}

typedef struct Authority {
        X509 *ca, *ra_sign, *ra_enc;
        EVP_PKEY *ca_key, *ra_sign_key, *ra_enc_key;
} Authority;

static void authority_done(Authority *a) {
        X509_free(a->ca);
        X509_free(a->ra_sign);
        X509_free(a->ra_enc);
        EVP_PKEY_free(a->ca_key);
        EVP_PKEY_free(a->ra_sign_key);
        EVP_PKEY_free(a->ra_enc_key);
        *a = (Authority) {};
}

static int authority_load(Authority *a, bool keys) {
        a->ca = load_cert("ca.crt");
        a->ra_sign = load_cert("ra-sign.crt");
        a->ra_enc = load_cert("ra-enc.crt");
        if (!a->ca || !a->ra_sign || !a->ra_enc)
                return -ENOENT;
        if (!keys)
                return 0;
        a->ca_key = load_key("ca.key");
        a->ra_sign_key = load_key("ra-sign.key");
        a->ra_enc_key = load_key("ra-enc.key");
        if (!a->ca_key || !a->ra_sign_key || !a->ra_enc_key)
                return -ENOENT;
        return 0;
}

/* ---------- CGI output ---------- */

static void cgi_reply(int status, const char *reason, const char *ctype, const void *body, size_t size) {
        printf("Status: %d %s\r\n", status, reason);
        if (ctype)
                printf("Content-Type: %s\r\n", ctype);
        printf("Content-Length: %zu\r\n\r\n", size);
        if (size > 0)
                fwrite(body, 1, size, stdout);
        fflush(stdout);
}

static void cgi_text(int status, const char *reason, const char *text) {
        cgi_reply(status, reason, "text/plain", text, strlen(text));
}

/* ---------- admin page ---------- */

/* The pages in each language (lang=). English: byte for byte what a Windows Server 2022 NDES
 * serves. German and Japanese: translations in the same markup; like Microsoft's localized Web
 * Enrollment pages, their banner carries <B><I>Microsoft</I></B>, before the thumbprint. */
#define PAGE_HEAD \
        "<HTML><Head><Meta HTTP-Equiv=\"Content-Type\" Content=\"text/html; charset=UTF-8\">" \
        "<Title>Network Device Enrollment Service</Title></Head><Body BgColor=#FFFFFF>" \
        "<Font ID=locPageFont Face=\"Arial\"><Table Border=0 CellSpacing=0 CellPadding=4 Width=100% BgColor=#008080>" \
        "<TR><TD><Font ID=locPageTitleFont Face=\"Arial\" Size=-1 Color=#FFFFFF>" \
        "<LocID ID=locMSCertSrv>Network Device Enrollment Service</LocID></Font></TD></TR></Table>" \
        "<P ID=locPageTitle> Network Device Enrollment Service allows you to obtain certificates for routers " \
        "or other network devices using the Simple Certificate Enrollment Protocol (SCEP). </P>"
#define PAGE_TAIL \
        " <P ID=locPageDesc> For more information see  <A HREF=http://go.microsoft.com/fwlink/?LinkId=67852>" \
        "Using Network Device Enrollment Service </A>. </P></Font></Body></HTML>"
#define PAGE_HEAD_DE \
        "<HTML><Head><Meta HTTP-Equiv=\"Content-Type\" Content=\"text/html; charset=UTF-8\">" \
        "<Title>Registrierungsdienst für Netzwerkgeräte</Title></Head><Body BgColor=#FFFFFF>" \
        "<Font ID=locPageFont Face=\"Arial\"><Table Border=0 CellSpacing=0 CellPadding=4 Width=100% BgColor=#008080>" \
        "<TR><TD><Font ID=locPageTitleFont Face=\"Arial\" Size=-1 Color=#FFFFFF>" \
        "<LocID ID=locMSCertSrv><B><I>Microsoft</I></B> Registrierungsdienst für Netzwerkgeräte</LocID></Font>" \
        "</TD></TR></Table>" \
        "<P ID=locPageTitle> Mit dem Registrierungsdienst für Netzwerkgeräte können Sie Zertifikate für Router " \
        "oder andere Netzwerkgeräte mithilfe des Simple Certificate Enrollment Protocol (SCEP) abrufen. </P>"
#define PAGE_TAIL_DE \
        " <P ID=locPageDesc> Weitere Informationen finden Sie unter  <A HREF=http://go.microsoft.com/fwlink/?LinkId=67852>" \
        "Verwenden des Registrierungsdiensts für Netzwerkgeräte </A>. </P></Font></Body></HTML>"
#define PAGE_HEAD_JA \
        "<HTML><Head><Meta HTTP-Equiv=\"Content-Type\" Content=\"text/html; charset=UTF-8\">" \
        "<Title>ネットワーク デバイス登録サービス</Title></Head><Body BgColor=#FFFFFF>" \
        "<Font ID=locPageFont Face=\"MS UI Gothic\"><Table Border=0 CellSpacing=0 CellPadding=4 Width=100% BgColor=#008080>" \
        "<TR><TD><Font ID=locPageTitleFont Face=\"MS UI Gothic\" Size=-1 Color=#FFFFFF>" \
        "<LocID ID=locMSCertSrv><B><I>Microsoft</I></B> ネットワーク デバイス登録サービス</LocID></Font></TD></TR></Table>" \
        "<P ID=locPageTitle> ネットワーク デバイス登録サービスを使うと、Simple Certificate Enrollment Protocol (SCEP) " \
        "を使用して、ルーターまたはその他のネットワーク デバイスの証明書を取得できます。 </P>"
#define PAGE_TAIL_JA \
        " <P ID=locPageDesc> 詳細については、 <A HREF=http://go.microsoft.com/fwlink/?LinkId=67852>" \
        "ネットワーク デバイス登録サービスの使用 </A> を参照してください。 </P></Font></Body></HTML>"

typedef struct AdminPages {
        const char *head, *tail;
        /* the challenge page: before_thumb THUMBPRINT before_challenge CHALLENGE after_once (or
         * after_multi with single_password) */
        const char *before_thumb, *before_challenge, *after_once, *after_multi;
        const char *cache_full, *permission;
} AdminPages;

static const AdminPages admin_pages[_LANG_MAX] = {
        [LANG_EN] = {
                .head = PAGE_HEAD,
                .tail = PAGE_TAIL,
                .before_thumb = "<P> To complete certificate enrollment for your network device you will need the "
                        "following information: <P> The thumbprint (hash value) for the CA certificate is: <B> ",
                .before_challenge = " </B> <P> The enrollment challenge password is: <B> ",
                .after_once = " </B> <P> This password can be used only once and will expire within 60 minutes. "
                        "<P> Each enrollment requires a new challenge password. You can refresh this web page to "
                        "obtain a new challenge password. </P>",
                /* Windows 2008 R2 with UseSinglePassword (certnanny/sscep#46) */
                .after_multi = " </B> <P> This password can be used multiple times and will not expire. </P>",
                .cache_full = "<P> The password cache is full. <P> Network Device Enrollment Service stores unused "
                        "password for later use. By default, passwords are stored for 60 minutes.<P>Use one of the "
                        "existing passwords. If you cannot use an existing password: <UL> <LI> Wait until one or "
                        "more existing passwords expire (by default passwords expire 60 minutes after they are "
                        "created). </LI> <LI> Restart Internet Information Services (IIS). </LI> <LI> Configure the "
                        "service to cache more than 5 passwords. </LI> </UL> </P>",
                .permission = "<P> You do not have sufficient permission to enroll with SCEP.  "
                        "Please contact your system administrator. </P>",
        },
        [LANG_DE] = {
                .head = PAGE_HEAD_DE,
                .tail = PAGE_TAIL_DE,
                .before_thumb = "<P> Zum Abschließen der Zertifikatregistrierung für Ihr Netzwerkgerät benötigen Sie "
                        "die folgenden Informationen: <P> Der Fingerabdruck (Hashwert) des "
                        "Zertifizierungsstellenzertifikats lautet: <B> ",
                .before_challenge = " </B> <P> Das Kennwort für die Registrierungsabfrage lautet: <B> ",
                .after_once = " </B> <P> Dieses Kennwort kann nur einmal verwendet werden und läuft innerhalb von "
                        "60 Minuten ab. <P> Für jede Registrierung ist ein neues Abfragekennwort erforderlich. Sie "
                        "können diese Webseite aktualisieren, um ein neues Abfragekennwort zu erhalten. </P>",
                .after_multi = " </B> <P> Dieses Kennwort kann mehrmals verwendet werden und läuft nicht ab. </P>",
                .cache_full = "<P> Der Kennwortcache ist voll. <P> Der Registrierungsdienst für Netzwerkgeräte "
                        "speichert nicht verwendete Kennwörter zur späteren Verwendung. Standardmäßig werden "
                        "Kennwörter 60 Minuten lang gespeichert.<P>Verwenden Sie eines der vorhandenen Kennwörter. "
                        "Wenn Sie kein vorhandenes Kennwort verwenden können: <UL> <LI> Warten Sie, bis ein oder "
                        "mehrere vorhandene Kennwörter ablaufen (standardmäßig laufen Kennwörter 60 Minuten nach "
                        "ihrer Erstellung ab). </LI> <LI> Starten Sie die Internetinformationsdienste (IIS) neu. "
                        "</LI> <LI> Konfigurieren Sie den Dienst so, dass mehr als 5 Kennwörter zwischengespeichert "
                        "werden. </LI> </UL> </P>",
                .permission = "<P> Sie verfügen nicht über ausreichende Berechtigungen für die Registrierung mit "
                        "SCEP.  Wenden Sie sich an den Systemadministrator. </P>",
        },
        [LANG_JA] = {
                .head = PAGE_HEAD_JA,
                .tail = PAGE_TAIL_JA,
                .before_thumb = "<P> ネットワーク デバイスの証明書の登録を完了するには、次の情報が必要です: "
                        "<P> CA 証明書の拇印 (ハッシュ値): <B> ",
                .before_challenge = " </B> <P> 登録チャレンジ パスワード: <B> ",
                .after_once = " </B> <P> このパスワードは 1 回だけ使用でき、60 分以内に有効期限が切れます。 "
                        "<P> 登録ごとに新しいチャレンジ パスワードが必要です。この Web ページを更新すると、"
                        "新しいチャレンジ パスワードを取得できます。 </P>",
                .after_multi = " </B> <P> このパスワードは複数回使用でき、有効期限はありません。 </P>",
                .cache_full = "<P> パスワード キャッシュがいっぱいです。 <P> ネットワーク デバイス登録サービスは、"
                        "未使用のパスワードを後で使用するために保存します。既定では、パスワードは 60 分間保存"
                        "されます。<P>既存のパスワードのいずれかを使用してください。既存のパスワードを使用できない"
                        "場合: <UL> <LI> 1 つ以上の既存のパスワードの有効期限が切れるまで待ちます (既定では、"
                        "パスワードは作成から 60 分後に有効期限が切れます)。 </LI> <LI> インターネット インフォメー"
                        "ション サービス (IIS) を再起動します。 </LI> <LI> 5 個を超えるパスワードをキャッシュする"
                        "ようにサービスを構成します。 </LI> </UL> </P>",
                .permission = "<P> SCEP で登録するための十分なアクセス許可がありません。 システム管理者に問い合わせて"
                        "ください。 </P>",
        },
};

/* admin_page=garbage: a 200 page that is no NDES page (a maintenance page in front of it), with
 * a control character and non-ASCII text, as the broker must quote such a page. */
#define PAGE_GARBAGE \
        "<HTML><Head><Title>Maintenance</Title></Head><Body><H1>Scheduled maintenance</H1>" \
        "<P>The enrollment portal is offline until 06:00 UTC.\a Wartungsfenster: Zertifikatdienste für " \
        "Netzwerkgeräte. Ticket CHG-4711.</P></Body></HTML>"

/* Sends the UTF-8 page html, converted to the configured encoding. */
static void admin_send(const Config *c, const char *html) {
        const unsigned char *s = (const unsigned char *) html;
        size_t len = strlen(html);
        if (c->admin_encoding == ENC_UTF8) {
                cgi_reply(200, "OK", "text/html; charset=utf-8", html, len);
                return;
        }
        /* UTF-16LE: each code point one 16-bit unit, or a surrogate pair above U+FFFF; at most
         * two bytes per input byte */
        bool bom = c->admin_encoding == ENC_UTF16LE_BOM;
        unsigned char *out = malloc(len * 2 + 2);
        if (!out) {
                cgi_text(500, "Internal Server Error", "out of memory\n");
                return;
        }
        size_t j = 0;
        if (bom) {
                out[j++] = 0xFF;
                out[j++] = 0xFE;
        }
        for (size_t i = 0; i < len;) {
                uint32_t cp = s[i];
                size_t k = cp < 0x80 ? 1 : cp >= 0xF0 ? 4 : cp >= 0xE0 ? 3 : 2;
                if (cp >= 0x80) {
                        cp &= k == 2 ? 0x1F : k == 3 ? 0x0F : 0x07;
                        for (size_t m = 1; m < k && i + m < len; m++)
                                cp = (cp << 6) | (s[i + m] & 0x3F);
                }
                i += k;
                if (cp >= 0x10000) {
                        cp -= 0x10000;
                        uint32_t hi = 0xD800 | (cp >> 10), lo = 0xDC00 | (cp & 0x3FF);
                        out[j++] = (unsigned char) (hi & 0xFF);
                        out[j++] = (unsigned char) (hi >> 8);
                        out[j++] = (unsigned char) (lo & 0xFF);
                        out[j++] = (unsigned char) (lo >> 8);
                } else {
                        out[j++] = (unsigned char) (cp & 0xFF);
                        out[j++] = (unsigned char) (cp >> 8);
                }
        }
        cgi_reply(200, "OK", "text/html", out, j);
        OPENSSL_cleanse(out, len * 2 + 2);
        free(out);
}

static int serve_admin(const Config *c) {
        char user[256], page[16384];
        const char *method = getenv("REQUEST_METHOD");
        const char *remote_user = getenv("REMOTE_USER");
        const AdminPages *lp = &admin_pages[c->lang];

        sanitize(remote_user, user, sizeof user);
        if (!method || (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)) {
                cgi_text(405, "Method Not Allowed", "mscep_admin: only GET\n");
                return 0;
        }
        if (!remote_user || !remote_user[0]) {
                /* Apache's AuthType GSSAPI should have refused already */
                log_event(c, "challenge.log", "user=- result=unauthenticated");
                cgi_text(401, "Unauthorized", "mscep_admin: no REMOTE_USER (authentication is not configured)\n");
                return 0;
        }
        if (c->admin_garbage) {
                log_event(c, "challenge.log", "user=%s result=garbage", user);
                admin_send(c, PAGE_GARBAGE);
                return 0;
        }
        if (c->permission_denied) {
                log_event(c, "challenge.log", "user=%s result=denied", user);
                snprintf(page, sizeof page, "%s%s%s", lp->head, lp->permission, lp->tail);
                admin_send(c, page);
                return 0;
        }

        Authority a = {};
        if (authority_load(&a, false) < 0) {
                cgi_text(500, "Internal Server Error", "NDES emulator state is missing (see the error log)\n");
                authority_done(&a);
                return 0;
        }
        unsigned char md[EVP_MAX_MD_SIZE];
        unsigned mdlen = 0;
        /* thumbprint=other: the page shows another certificate's thumbprint (a SCEP URL answered
         * by something else than this NDES's CA, as a client trusting on first use would see). */
        X509_digest(c->thumbprint_other ? a.ra_sign : a.ca, EVP_md5(), md, &mdlen);
        authority_done(&a);
        char thumb[64] = "";
        for (unsigned i = 0; i < mdlen && i < 16; i++)
                sprintf(thumb + strlen(thumb), "%s%02X", i > 0 && i % 4 == 0 ? " " : "", md[i]);

        /* Who asks: the tag.WORD of the path's fault SPEC (a fleet's brokers each their own). */
        char who[CHALLENGE_WHO_MAX + 1] = "", holders[1024] = "", who_field[CHALLENGE_WHO_MAX + 8] = "";
        if (arg_fault_spec && fault_spec_tag(arg_fault_spec, who, sizeof who))
                snprintf(who_field, sizeof who_field, " who=%s", who);
        char challenge[CHALLENGE_LEN + 1];
        ChallengeResult res;
        size_t outstanding = 0;
        int r = challenge_new_by(arg_state, c, who[0] ? who : NULL, challenge, &res, &outstanding, holders,
                                 sizeof holders);
        if (r < 0) {
                fprintf(stderr, "ndes-emulator: challenge cache in %s: %s\n", arg_state, strerror(-r));
                cgi_text(500, "Internal Server Error", "challenge cache unavailable (see the error log)\n");
                return 0;
        }
        if (res == CHALLENGE_CACHE_FULL) {
                log_event(c, "challenge.log", "user=%s%s result=cache-full%s%s outstanding=%zu", user, who_field,
                          who[0] ? " holders=" : "", who[0] ? holders : "", outstanding);
                snprintf(page, sizeof page, "%s%s%s", lp->head, lp->cache_full, lp->tail);
                admin_send(c, page);
                return 0;
        }
        log_event(c, "challenge.log", "user=%s%s result=issued%s outstanding=%zu", user, who_field,
                  c->single_password ? "-single" : "", outstanding);
        snprintf(page, sizeof page, "%s%s%s%s%s%s%s", lp->head, lp->before_thumb, thumb, lp->before_challenge,
                 challenge, c->single_password ? lp->after_multi : lp->after_once, lp->tail);
        OPENSSL_cleanse(challenge, sizeof challenge);
        /* NDES prints its PasswordValidity: with challenge_ttl other than an hour, so does the
         * English page (whole minutes, at least 1). */
        static const char sixty[] = "will expire within 60 minutes";
        char *at = c->challenge_ttl != 3600 ? strstr(page, sixty) : NULL;
        if (at) {
                char rest[sizeof page], minutes[64];
                snprintf(rest, sizeof rest, "%s", at + strlen(sixty));
                snprintf(minutes, sizeof minutes, "will expire within %ld minutes",
                         c->challenge_ttl >= 60 ? c->challenge_ttl / 60 : 1);
                snprintf(at, sizeof page - (size_t) (at - page), "%s%s", minutes, rest);
                OPENSSL_cleanse(rest, sizeof rest);
        }
        admin_send(c, page);
        OPENSSL_cleanse(page, sizeof page);
        return 0;
}

/* ---------- mscep.dll ---------- */

static int unhex(int ch) {
        if (ch >= '0' && ch <= '9')
                return ch - '0';
        if (ch >= 'a' && ch <= 'f')
                return ch - 'a' + 10;
        if (ch >= 'A' && ch <= 'F')
                return ch - 'A' + 10;
        return -1;
}

/* Finds NAME=VALUE in a query string and percent-decodes it into a new buffer. */
static char *query_param(const char *q, const char *name) {
        size_t nlen = strlen(name);
        for (const char *p = q; p && *p;) {
                const char *amp = strchr(p, '&');
                size_t len = amp ? (size_t) (amp - p) : strlen(p);
                if (len > nlen && p[nlen] == '=' && strncasecmp(p, name, nlen) == 0) {
                        char *out = malloc(len + 1);
                        size_t j = 0;
                        if (!out)
                                return NULL;
                        for (size_t i = nlen + 1; i < len; i++) {
                                if (p[i] == '%' && i + 2 < len && unhex(p[i + 1]) >= 0 && unhex(p[i + 2]) >= 0) {
                                        out[j++] = (char) (unhex(p[i + 1]) * 16 + unhex(p[i + 2]));
                                        i += 2;
                                } else
                                        out[j++] = p[i];
                        }
                        out[j] = 0;
                        return out;
                }
                p = amp ? amp + 1 : NULL;
        }
        return NULL;
}

/* Standard base64; whitespace ignored; a space stands for an unescaped '+' (form decoding). */
static int base64_decode(const char *in, unsigned char **ret, size_t *ret_size) {
        size_t len = strlen(in);
        unsigned char *out = malloc(len / 4 * 3 + 4);
        uint32_t acc = 0;
        int bits = 0, pad = 0;
        size_t j = 0;
        if (!out)
                return -ENOMEM;
        for (size_t i = 0; i < len; i++) {
                int ch = (unsigned char) in[i], v;
                if (ch == '\r' || ch == '\n' || ch == '\t')
                        continue;
                if (ch == ' ')
                        ch = '+';
                if (ch == '=') {
                        pad++;
                        continue;
                }
                if (pad > 0)
                        goto fail;
                if (ch >= 'A' && ch <= 'Z')
                        v = ch - 'A';
                else if (ch >= 'a' && ch <= 'z')
                        v = ch - 'a' + 26;
                else if (ch >= '0' && ch <= '9')
                        v = ch - '0' + 52;
                else if (ch == '+')
                        v = 62;
                else if (ch == '/')
                        v = 63;
                else
                        goto fail;
                acc = (acc << 6) | (uint32_t) v;
                bits += 6;
                if (bits >= 8) {
                        bits -= 8;
                        out[j++] = (unsigned char) (acc >> bits);
                        acc &= (1u << bits) - 1;
                }
        }
        if (pad > 2 || j == 0)
                goto fail;
        *ret = out;
        *ret_size = j;
        return 0;
fail:
        free(out);
        return -EBADMSG;
}

static const char *caps_text(const Config *c) {
        switch (c->caps) {
        case CAPS_AES:
                return "POSTPKIOperation\nRenewal\nSHA-512\nSHA-256\nSHA-1\nAES\nDES3";
        case CAPS_SCEPSTANDARD:
                return "POSTPKIOperation\nRenewal\nSHA-512\nSHA-256\nSHA-1\nAES\nDES3\nSCEPStandard";
        default:
                return "POSTPKIOperation\nRenewal\nSHA-512\nSHA-256\nSHA-1\nDES3";
        }
}

/* caps_text() without its "Renewal" line when caps_renewal=off. */
static bool caps_word_skipped(const Config *c, const char *p) {
        return c->caps_no_renewal && strncmp(p, "Renewal\n", 8) == 0;
}

static void serve_caps(const Config *c) {
        char buf[256];
        size_t j = 0;
        const char *text = caps_text(c);
        for (const char *p = text; *p && j + 2 < sizeof buf; p++) {
                if ((p == text || p[-1] == '\n') && caps_word_skipped(c, p)) {
                        p += strlen("Renewal");         /* and its newline, by p++ */
                        continue;
                }
                if (*p == '\n' && !c->caps_lf)
                        buf[j++] = '\r';
                buf[j++] = *p;
        }
        cgi_reply(200, "OK", "text/plain", buf, j);
}

static void serve_cacert(const Config *c) {
        Authority a = {};
        STACK_OF(X509) *certs = sk_X509_new_null();
        unsigned char *der = NULL;
        size_t size = 0;

        if (!certs || authority_load(&a, false) < 0) {
                cgi_text(500, "Internal Server Error", "NDES emulator state is missing (see the error log)\n");
                goto finish;
        }
        for (int i = 0; i < RA_ORDER_LEN; i++) {
                X509 *x = c->ra_order[i] == RA_SLOT_SIGN ? a.ra_sign : c->ra_order[i] == RA_SLOT_ENC ? a.ra_enc : a.ca;
                sk_X509_push(certs, x);
        }
        if (pki_certs_only(certs, &der, &size) < 0) {
                cgi_text(500, "Internal Server Error", "cannot build the GetCACert reply\n");
                goto finish;
        }
        cgi_reply(200, "OK", "application/x-x509-ca-ra-cert", der, size);
finish:
        OPENSSL_free(der);
        sk_X509_free(certs);
        authority_done(&a);
}

static const EVP_MD *reply_digest(const Config *c, const ScepRequest *req) {
        const char *d = c->reply_digest;
        /* NDES signs every CertRep with SHA-1, whatever the request used (a Windows 2012 reply,
         * certnanny/sscep#59; inferred for 2022-era servers from certnanny/sscep#157). */
        if (strcmp(d, "auto") == 0)
                d = "sha1";
        if (strcmp(d, "request") == 0)
                return req->digest ? req->digest : EVP_sha256();
        if (strcmp(d, "sha1") == 0)
                return EVP_sha1();
        if (strcmp(d, "sha512") == 0)
                return EVP_sha512();
        return EVP_sha256();
}

/* Fetched (free with EVP_CIPHER_free): single DES comes from the legacy provider. */
static EVP_CIPHER *reply_cipher(const Config *c) {
        const char *s = c->reply_cipher;
        if (strcmp(s, "auto") == 0)
                s = (c->caps == CAPS_AES || c->caps == CAPS_SCEPSTANDARD) ? "aes128" : "des3";
        const char *name = strcmp(s, "aes128") == 0 ? "AES-128-CBC" :
                           strcmp(s, "aes256") == 0 ? "AES-256-CBC" :
                           strcmp(s, "des") == 0 ? "DES-CBC" : "DES-EDE3-CBC";
        return EVP_CIPHER_fetch(NULL, name, NULL);
}

static int write_issued(X509 *x) {
        char name[128], h[64];
        const ASN1_INTEGER *sn = X509_get0_serialNumber(x);
        size_t n = (size_t) ASN1_STRING_length(sn);
        if (n > 30)
                n = 30;
        hex(ASN1_STRING_get0_data(sn), n, h);
        snprintf(name, sizeof name, "issued/%s.pem", h);
        return write_pem_cert(name, x);
}

typedef struct Outcome {
        int status, fail_info;
        int32_t hresult;
        X509 *issued;
        const char *why;
} Outcome;

static void handle_certpoll(const Config *c, const ScepRequest *req, Outcome *o) {
        char name[128];
        unsigned char *der = NULL;
        size_t size = 0;

        txid_file(req->transaction_id, "crt", name, sizeof name);
        if (state_read(arg_state, name, 64 * 1024, &der, &size) == 0) {
                const unsigned char *p = der;
                o->issued = d2i_X509(NULL, &p, (long) size);
                free(der);
                if (o->issued) {
                        o->status = SCEP_STATUS_SUCCESS;
                        o->why = "approved";
                        return;
                }
        }
        txid_file(req->transaction_id, "csr", name, sizeof name);
        if (faccessat(AT_FDCWD, arg_state, F_OK, 0) == 0) {
                char path[PATH_MAX];
                snprintf(path, sizeof path, "%s/%s", arg_state, name);
                if (access(path, F_OK) == 0) {
                        o->status = SCEP_STATUS_PENDING;
                        o->why = "still-pending";
                        return;
                }
        }
        *o = (Outcome) { SCEP_STATUS_FAILURE, SCEP_FAIL_BADCERTID, HR_NOT_FOUND, NULL, "unknown-transaction" };
}

/* Issues now, or stores the CSR for approval. Consumes nothing on failure. */
static void handle_pkcsreq(const Config *c, Authority *a, const ScepRequest *req, Outcome *o) {
        char pending_name[128];
        unsigned char *old = NULL;
        size_t old_size = 0;

        /* A resent PKCSReq for a known transaction is a poll (RFC 8894 section 3.3.3). */
        txid_file(req->transaction_id, "crt", pending_name, sizeof pending_name);
        if (state_read(arg_state, pending_name, 0, &old, &old_size) == -EFBIG) {
                handle_certpoll(c, req, o);
                return;
        }
        free(old);
        txid_file(req->transaction_id, "csr", pending_name, sizeof pending_name);
        if (state_read(arg_state, pending_name, 0, &old, &old_size) == -EFBIG) {
                o->status = SCEP_STATUS_PENDING;
                o->why = "resent-while-pending";
                return;
        }
        free(old);

        X509_REQ *csr = pki_req_from_der(req->inner, req->inner_size);
        if (!csr) {
                *o = (Outcome) { SCEP_STATUS_FAILURE, SCEP_FAIL_BADREQUEST, HR_INVALID_ARG, NULL, "csr-unparseable" };
                return;
        }
        EVP_PKEY *pub = X509_REQ_get0_pubkey(csr);
        if (!pub || X509_REQ_verify(csr, pub) != 1) {
                ERR_clear_error();
                *o = (Outcome) { SCEP_STATUS_FAILURE, SCEP_FAIL_BADMESSAGECHECK, HR_BAD_SIGNATURE, NULL, "csr-signature" };
                goto finish;
        }
        char pw[CHALLENGE_LEN + 1];
        /* What NDES answers for a missing, used, or unknown or expired challenge: badMessageCheck
         * (certnanny/sscep#80, #156) with these HRESULTs. */
        if (pki_req_challenge(csr, pw, sizeof pw) < 0) {
                *o = (Outcome) { SCEP_STATUS_FAILURE, SCEP_FAIL_BADMESSAGECHECK, HR_CHALLENGE_MISSING, NULL, "no-challenge" };
                goto finish;
        }
        int r = challenge_consume(arg_state, c, pw);
        OPENSSL_cleanse(pw, sizeof pw);
        if (r == -EALREADY) {
                *o = (Outcome) { SCEP_STATUS_FAILURE, SCEP_FAIL_BADMESSAGECHECK, HR_CHALLENGE_USED, NULL, "challenge-used" };
                goto finish;
        }
        if (r < 0) {
                *o = (Outcome) { SCEP_STATUS_FAILURE, SCEP_FAIL_BADMESSAGECHECK, HR_NOT_FOUND, NULL,
                                 r == -ENOENT ? "challenge-unknown-or-expired" : "challenge-cache-error" };
                goto finish;
        }
        if (c->pending) {
                char txid_name[128];
                txid_file(req->transaction_id, "txid", txid_name, sizeof txid_name);
                if (state_write(arg_state, txid_name, req->transaction_id, strlen(req->transaction_id), 0644) < 0 ||
                    state_write(arg_state, pending_name, req->inner, req->inner_size, 0644) < 0) {
                        *o = (Outcome) { SCEP_STATUS_FAILURE, SCEP_FAIL_BADREQUEST, HR_INVALID_ARG, NULL, "store-failed" };
                        goto finish;
                }
                o->status = SCEP_STATUS_PENDING;
                o->why = "pending-approval";
                goto finish;
        }
        if (pki_issue(csr, a->ca, a->ca_key, state_now(c), c->validity, &o->issued) < 0) {
                *o = (Outcome) { SCEP_STATUS_FAILURE, SCEP_FAIL_BADREQUEST, HR_INVALID_ARG, NULL, "issue-failed" };
                goto finish;
        }
        (void) write_issued(o->issued);
        if (c->certpoll_issued) {
                /* Also answer CertPoll (and a resent PKCSReq) for it with the certificate. */
                unsigned char *out = NULL;
                int n = i2d_X509(o->issued, &out);
                char crt_name[128];
                txid_file(req->transaction_id, "crt", crt_name, sizeof crt_name);
                if (n > 0)
                        (void) state_write(arg_state, crt_name, out, (size_t) n, 0644);
                OPENSSL_free(out);
        }
        o->status = SCEP_STATUS_SUCCESS;
        o->why = "issued";
finish:
        X509_REQ_free(csr);
}

/* RenewalReq (RFC 8894 3.3.1.2): a PKCS#10 for a new key, signed (the pkiMessage) by a
 * certificate this CA issued and still valid, for the same subject; no challenge is needed or
 * consumed. renewal=refuse: answered as a message type the server does not take. The checks
 * and their failInfo/HRESULT are the emulator's (tests/ndes/README.md: what is known of NDES). */
static void handle_renewalreq(const Config *c, Authority *a, const ScepRequest *req, Outcome *o) {
        X509_REQ *csr = NULL;
        EVP_PKEY *ca_pub;
        char name[128], h[64];
        unsigned char *old = NULL;
        size_t old_size = 0;
        time_t now = state_now(c);

        if (c->renewal_refused) {
                *o = (Outcome) { SCEP_STATUS_FAILURE, SCEP_FAIL_BADREQUEST, HR_INVALID_ARG, NULL, "renewal-refused" };
                return;
        }
        /* The signer: a certificate of this CA's, one it issued to a client (issued/), valid now. */
        ca_pub = X509_get0_pubkey(a->ca);
        const ASN1_INTEGER *sn = X509_get0_serialNumber(req->signer);
        size_t n = (size_t) ASN1_STRING_length(sn);
        if (n > 30)
                n = 30;
        hex(ASN1_STRING_get0_data(sn), n, h);
        snprintf(name, sizeof name, "issued/%s.pem", h);
        if (!ca_pub || X509_check_issued(a->ca, req->signer) != X509_V_OK || X509_verify(req->signer, ca_pub) != 1 ||
            state_read(arg_state, name, 0, &old, &old_size) != -EFBIG) {
                ERR_clear_error();
                free(old);
                *o = (Outcome) { SCEP_STATUS_FAILURE, SCEP_FAIL_BADMESSAGECHECK, HR_UNTRUSTED_ROOT, NULL,
                                 "renewal-signer-not-issued-here" };
                return;
        }
        free(old);
        if (X509_cmp_time(X509_get0_notAfter(req->signer), &now) <= 0 ||
            X509_cmp_time(X509_get0_notBefore(req->signer), &now) > 0) {
                *o = (Outcome) { SCEP_STATUS_FAILURE, SCEP_FAIL_BADMESSAGECHECK, HR_CERT_EXPIRED, NULL,
                                 "renewal-signer-not-valid-now" };
                return;
        }
        csr = pki_req_from_der(req->inner, req->inner_size);
        if (!csr) {
                *o = (Outcome) { SCEP_STATUS_FAILURE, SCEP_FAIL_BADREQUEST, HR_INVALID_ARG, NULL, "csr-unparseable" };
                return;
        }
        EVP_PKEY *pub = X509_REQ_get0_pubkey(csr);
        if (!pub || X509_REQ_verify(csr, pub) != 1) {
                ERR_clear_error();
                *o = (Outcome) { SCEP_STATUS_FAILURE, SCEP_FAIL_BADMESSAGECHECK, HR_BAD_SIGNATURE, NULL, "csr-signature" };
                goto finish;
        }
        if (X509_NAME_cmp(X509_REQ_get_subject_name(csr), X509_get_subject_name(req->signer)) != 0) {
                *o = (Outcome) { SCEP_STATUS_FAILURE, SCEP_FAIL_BADREQUEST, HR_BAD_SUBJECT, NULL,
                                 "renewal-subject-differs" };
                goto finish;
        }
        if (pki_issue(csr, a->ca, a->ca_key, now, c->validity, &o->issued) < 0) {
                *o = (Outcome) { SCEP_STATUS_FAILURE, SCEP_FAIL_BADREQUEST, HR_INVALID_ARG, NULL, "issue-failed" };
                goto finish;
        }
        /* A renewal is for the template of the certificate renewed (MS-WCCE 3.2.2.6.2.1.2.3);
         * the template follows from the CSR's keyUsage here. */
        const ASN1_OCTET_STRING *t_old = template_ext(req->signer), *t_new = template_ext(o->issued);
        if (!t_old || !t_new || ASN1_OCTET_STRING_cmp(t_old, t_new) != 0) {
                X509_free(o->issued);
                *o = (Outcome) { SCEP_STATUS_FAILURE, SCEP_FAIL_BADREQUEST, HR_CERT_TYPE, NULL,
                                 "renewal-template-differs" };
                goto finish;
        }
        if (c->pending) {
                /* Held for approval like a PKCSReq (pending=on): CertPoll finds it, approve
                 * issues it from the CSR. */
                char txid_name[128], csr_name[128];
                X509_free(o->issued);
                o->issued = NULL;
                txid_file(req->transaction_id, "txid", txid_name, sizeof txid_name);
                txid_file(req->transaction_id, "csr", csr_name, sizeof csr_name);
                if (state_write(arg_state, txid_name, req->transaction_id, strlen(req->transaction_id), 0644) < 0 ||
                    state_write(arg_state, csr_name, req->inner, req->inner_size, 0644) < 0) {
                        *o = (Outcome) { SCEP_STATUS_FAILURE, SCEP_FAIL_BADREQUEST, HR_INVALID_ARG, NULL, "store-failed" };
                        goto finish;
                }
                o->status = SCEP_STATUS_PENDING;
                o->why = "renewal-pending-approval";
                goto finish;
        }
        (void) write_issued(o->issued);
        o->status = SCEP_STATUS_SUCCESS;
        o->why = "renewed";
finish:
        X509_REQ_free(csr);
}

static const char *status_name(int s) {
        return s == SCEP_STATUS_SUCCESS ? "SUCCESS" : s == SCEP_STATUS_PENDING ? "PENDING" : "FAILURE";
}

static void serve_pkioperation(const Config *c, const unsigned char *der, size_t size, const char *method) {
        Authority a = {};
        ScepRequest req = {};
        Outcome o = { .status = SCEP_STATUS_FAILURE, .fail_info = SCEP_FAIL_BADREQUEST, .hresult = HR_INVALID_ARG };
        STACK_OF(X509) *certs = NULL;
        EVP_CIPHER *cipher = NULL;
        unsigned char *reply = NULL;
        size_t reply_size = 0;

        if (authority_load(&a, true) < 0) {
                cgi_text(500, "Internal Server Error", "NDES emulator state is missing (see the error log)\n");
                goto finish;
        }
        if (c->keep_requests)
                (void) state_write(arg_state, "last-request.der", der, size, 0644);
        if (scep_request_parse(der, size, a.ra_enc, a.ra_enc_key, &req) < 0) {
                log_event(c, "scep.log", "method=%s type=? txid=? status=HTTP-400 why=not-a-pkimessage", method);
                cgi_text(400, "Bad Request", "PKIOperation: the message is not a signed SCEP pkiMessage "
                         "with one signer, its certificate and a transactionID\n");
                goto finish;
        }

        /* Faults named by the request's path (ndes-faults.h), by message type. */
        int fault_arg = 0;
        FaultClass fault = FAULT_NONE;
        if (arg_fault_spec && (req.message_type == SCEP_MSG_PKCSREQ || req.message_type == SCEP_MSG_CERTPOLL))
                fault = fault_fire(arg_state, arg_fault_spec,
                                   req.message_type == SCEP_MSG_PKCSREQ ? FAULT_STEP_PKCSREQ : FAULT_STEP_CERTPOLL,
                                   &fault_arg);
        if (fault != FAULT_NONE) {
                char t[SCEP_TXID_MAX + 1];
                sanitize(req.transaction_id, t, sizeof t);
                log_event(c, "scep.log", "method=%s type=%d txid=%s status=fault-%d arg=%d", method,
                          req.message_type, t, (int) fault, fault_arg);
        }
        if (fault_answer_http(fault))
                goto finish;
        if (fault == FAULT_UNDECRYPTABLE || (fault == FAULT_NONE && req.signature_ok && !req.decrypted &&
                                             c->undecryptable_no_certrep)) {
                /* What NDES does when it cannot decrypt the envelope ("cannot decrypt the client's
                 * PKCS7 message (0x80090005)" in its event log): no CertRep at all
                 * (certnanny/sscep#60). The challenge inside was never read: it stays unused. */
                static const char page[] = "<html><body>500 - Internal server error.</body></html>";
                cgi_reply(500, "Internal Server Error", "text/html", page, sizeof page - 1);
                goto finish;
        }

        if (fault == FAULT_FAILINFO)
                o = (Outcome) { SCEP_STATUS_FAILURE, fault_arg, HR_INVALID_ARG, NULL, "fault-failinfo" };
        else if (fault == FAULT_UNKNOWN_CHALLENGE)
                o = (Outcome) { SCEP_STATUS_FAILURE, SCEP_FAIL_BADMESSAGECHECK, (int32_t) 0x80070490, NULL,
                                "fault-unknown-challenge" };
        else if (fault == FAULT_PENDING && req.message_type == SCEP_MSG_PKCSREQ && req.signature_ok && req.decrypted) {
                /* Held for approval, as with pending=on: CertPoll finds it, approve issues it. */
                Config held = *c;
                held.pending = true;
                handle_pkcsreq(&held, &a, &req, &o);
        } else if (fault == FAULT_PENDING)
                o = (Outcome) { SCEP_STATUS_PENDING, 0, 0, NULL, "fault-pending" };
        else if (!req.signature_ok)
                o = (Outcome) { SCEP_STATUS_FAILURE, SCEP_FAIL_BADMESSAGECHECK, HR_BAD_SIGNATURE, NULL, "bad-signature" };
        else if (!req.decrypted)
                /* NDES: "cannot decrypt the client's PKCS7 message" (e.g. encrypted to the wrong certificate) */
                o = (Outcome) { SCEP_STATUS_FAILURE, SCEP_FAIL_BADMESSAGECHECK, HR_NO_DECRYPT_CERT, NULL, "cannot-decrypt" };
        else if (req.message_type == SCEP_MSG_PKCSREQ)
                handle_pkcsreq(c, &a, &req, &o);
        else if (req.message_type == SCEP_MSG_RENEWALREQ)
                handle_renewalreq(c, &a, &req, &o);
        else if (req.message_type == SCEP_MSG_CERTPOLL && c->certpoll_unsupported) {
                /* Like micromdm's scepserver: no GetCertInitial at all. */
                log_event(c, "scep.log", "method=%s type=%d txid=? status=HTTP-500 why=certpoll-unsupported", method,
                          req.message_type);
                cgi_text(500, "Internal Server Error", "unsupported message type\n");
                goto finish;
        } else if (req.message_type == SCEP_MSG_CERTPOLL)
                handle_certpoll(c, &req, &o);
        else
                o = (Outcome) { SCEP_STATUS_FAILURE, SCEP_FAIL_BADREQUEST, HR_INVALID_ARG, NULL, "unsupported-message-type" };

        if (o.status == SCEP_STATUS_SUCCESS) {
                certs = sk_X509_new_null();
                if (!certs || !sk_X509_push(certs, o.issued) || !sk_X509_push(certs, a.ca)) {
                        cgi_text(500, "Internal Server Error", "out of memory\n");
                        goto finish;
                }
        }
        if (o.status != SCEP_STATUS_FAILURE)
                o.hresult = 0;

        cipher = reply_cipher(c);
        ScepReplyOptions opts = {
                .ra_sign_cert = a.ra_sign,
                .ra_sign_key = a.ra_sign_key,
                .digest = reply_digest(c, &req),
                .cipher = cipher,
                .oaep = c->reply_oaep == TRI_ON || (c->reply_oaep == TRI_AUTO && c->caps == CAPS_WIN2012),
                .include_certs = c->reply_certs == TRI_ON || (c->reply_certs == TRI_AUTO && c->caps != CAPS_WIN2012),
        };
        char txid[SCEP_TXID_MAX + 1];
        sanitize(req.transaction_id, txid, sizeof txid);
        if (!opts.cipher || scep_certrep_build(&req, &opts, o.status, o.fail_info, o.hresult, certs,
                                               &reply, &reply_size) < 0) {
                log_event(c, "scep.log", "method=%s type=%d txid=%s status=HTTP-500 why=certrep-build-failed",
                          method, req.message_type, txid);
                fprintf(stderr, "ndes-emulator: building the CertRep for transaction %s failed:\n", txid);
                ERR_print_errors_fp(stderr);
                cgi_text(500, "Internal Server Error", "cannot build the CertRep\n");
                goto finish;
        }
        log_event(c, "scep.log", "method=%s type=%d txid=%s status=%s failinfo=%d why=%s", method,
                  req.message_type, txid, status_name(o.status),
                  o.status == SCEP_STATUS_FAILURE ? o.fail_info : -1, o.why ? o.why : "-");
        /* The work is done and logged; the answer comes late (tests kill the client meanwhile). */
        if (c->reply_delay > 0)
                sleep((unsigned) c->reply_delay);
        if (fault == FAULT_DELAY)
                sleep((unsigned) fault_arg);
        if (fault == FAULT_HOLD)
                fault_hold(arg_state);
        cgi_reply(200, "OK", "application/x-pki-message", reply, reply_size);
finish:
        EVP_CIPHER_free(cipher);
        OPENSSL_free(reply);
        sk_X509_free(certs);
        X509_free(o.issued);
        scep_request_done(&req);
        authority_done(&a);
}

static int read_body(unsigned char **ret, size_t *ret_size) {
        const char *cl = getenv("CONTENT_LENGTH");
        char *end;
        if (!cl || !*cl)
                return -EBADMSG;
        errno = 0;
        unsigned long n = strtoul(cl, &end, 10);
        if (errno || *end || cl[0] == '-')
                return -EBADMSG;
        if (n > MAX_POST_BODY) {
                /* read (and drop) a bounded amount so the client sees our 413, not a reset */
                char sink[16384];
                for (unsigned long left = n < MAX_DRAIN ? n : MAX_DRAIN; left > 0;) {
                        size_t k = fread(sink, 1, left < sizeof sink ? left : sizeof sink, stdin);
                        if (k == 0)
                                break;
                        left -= k;
                }
                return -E2BIG;
        }
        unsigned char *buf = malloc(n + 1);
        if (!buf)
                return -ENOMEM;
        size_t got = 0;
        while (got < n) {
                size_t k = fread(buf + got, 1, n - got, stdin);
                if (k == 0)
                        break;
                got += k;
        }
        if (got != n) {
                free(buf);
                return -EBADMSG;
        }
        *ret = buf;
        *ret_size = n;
        return 0;
}

static int serve_scep(const Config *c) {
        const char *method = getenv("REQUEST_METHOD");
        const char *query = getenv("QUERY_STRING");
        const char *uri = getenv("REQUEST_URI");
        char *operation = NULL, *message = NULL;
        unsigned char *der = NULL;
        size_t size = 0;
        bool post;

        if (!method || (strcmp(method, "GET") != 0 && strcmp(method, "POST") != 0)) {
                cgi_text(405, "Method Not Allowed", "mscep.dll: GET or POST\n");
                return 0;
        }
        post = strcmp(method, "POST") == 0;
        if (!query)
                query = "";
        if (strlen(query) > MAX_QUERY) {
                cgi_text(414, "Request-URI Too Long", "query string too long\n");
                return 0;
        }
        /* IIS request filtering: maxQueryString / maxUrl */
        if (!post && c->max_get_url > 0 && (long) strlen(uri ? uri : query) > c->max_get_url) {
                /* IIS answers 404 (logged as 404.15, or 404.14 for maxUrl), not 414. */
                log_event(c, "scep.log", "method=GET status=HTTP-404.15 length=%zu", strlen(uri ? uri : query));
                fault_answer_http(FAULT_404);
                return 0;
        }

        operation = query_param(query, "operation");
        if (!operation) {
                cgi_text(400, "Bad Request", "mscep.dll: missing operation=\n");
                goto finish;
        }
        if (strcasecmp(operation, "GetCACaps") == 0 || strcasecmp(operation, "GetCACert") == 0) {
                bool caps = strcasecmp(operation, "GetCACaps") == 0;
                int arg;
                FaultClass f = arg_fault_spec ? fault_fire(arg_state, arg_fault_spec,
                                                           caps ? FAULT_STEP_CAPS : FAULT_STEP_CACERT, &arg) : FAULT_NONE;
                if (f != FAULT_NONE) {
                        log_event(c, "scep.log", "method=%s operation=%s status=fault-%d", method, operation, (int) f);
                        if (fault_answer_http(f))
                                goto finish;
                }
                if (caps)
                        serve_caps(c);
                else
                        serve_cacert(c);
        }
        else if (strcasecmp(operation, "PKIOperation") == 0) {
                if (post) {
                        int r = read_body(&der, &size);
                        if (c->caps == CAPS_WIN2012) {
                                /* Windows 2012: a POSTed PKIOperation gets an empty 200 */
                                log_event(c, "scep.log", "method=POST status=HTTP-200-empty why=win2012");
                                cgi_reply(200, "OK", NULL, NULL, 0);
                                goto finish;
                        }
                        if (r == -E2BIG) {
                                cgi_text(413, "Payload Too Large", "PKIOperation body larger than 256 KiB\n");
                                goto finish;
                        }
                        if (r < 0) {
                                cgi_text(400, "Bad Request", "PKIOperation: missing or short body\n");
                                goto finish;
                        }
                } else {
                        message = query_param(query, "message");
                        if (!message || base64_decode(message, &der, &size) < 0) {
                                cgi_text(400, "Bad Request", "PKIOperation: message= is missing or not base64\n");
                                goto finish;
                        }
                }
                serve_pkioperation(c, der, size, method);
        } else
                cgi_text(400, "Bad Request", "mscep.dll: unknown operation\n");
finish:
        free(operation);
        free(message);
        free(der);
        return 0;
}

static int cgi_main(void) {
        Config c;
        arg_state = getenv("NDES_STATE_DIR");
        if (!arg_state || !*arg_state) {
                fprintf(stderr, "ndes-emulator: NDES_STATE_DIR is not set (SetEnv NDES_STATE_DIR in Apache)\n");
                cgi_text(500, "Internal Server Error", "NDES_STATE_DIR not set\n");
                return 0;
        }
        if (config_load(arg_state, &c) < 0) {
                cgi_text(500, "Internal Server Error", "bad emulator config (see the error log)\n");
                return 0;
        }

        char path[1024];
        const char *uri = getenv("REQUEST_URI");
        if (uri && *uri)
                snprintf(path, sizeof path, "%s", uri);
        else
                snprintf(path, sizeof path, "%s%s", getenv("SCRIPT_NAME") ?: "", getenv("PATH_INFO") ?: "");
        for (char *p = path; *p; p++)
                *p = (char) tolower((unsigned char) *p);

        if (c.unavailable) {
                /* IIS with the application pool stopped (or overloaded). */
                cgi_text(503, "Service Unavailable", "The service is unavailable.\n");
                return 0;
        }
        static char spec[FAULT_SPEC_MAX];
        if (fault_spec_from_path(path, spec)) {
                const char *why = fault_spec_check(spec);
                if (why) {
                        cgi_text(400, "Bad Request", why);
                        return 0;
                }
                arg_fault_spec = spec;
        }
        if (strstr(path, "/certsrv/mscep_admin")) {
                int arg;
                FaultClass f = arg_fault_spec ? fault_fire(arg_state, arg_fault_spec, FAULT_STEP_ADMIN, &arg) : FAULT_NONE;
                if (f != FAULT_NONE) {
                        log_event(&c, "challenge.log", "user=- result=fault-%d", (int) f);
                        if (fault_answer_http(f))
                                return 0;
                }
                return serve_admin(&c);
        }
        if (strstr(path, "/certsrv/mscep/mscep.dll"))
                return serve_scep(&c);
        cgi_text(404, "Not Found", "not an NDES path\n");
        return 0;
}

/* ---------- CLI ---------- */

static void help(void) {
        printf("ndes-emulator: a Microsoft NDES look-alike for tests (Apache CGI + CLI)\n\n"
               "  ndes-emulator init --state DIR [--mode PROFILE] [--key-bits N] [--owner USER]\n"
               "        create a CA, RA signing and RA encryption certificates and keys in DIR\n"
               "  ndes-emulator ctl --state DIR [KEY=VALUE...]    change modes; no argument prints them\n"
               "  ndes-emulator approve --state DIR TXID|all      approve pending requests\n"
               "  ndes-emulator pending --state DIR               list pending transaction IDs\n"
               "  ndes-emulator log --state DIR [--scep]          challenge fetches (or PKIOperations)\n"
               "  ndes-emulator restart --state DIR               an IIS restart: the password cache emptied\n"
               "  ndes-emulator release --state DIR               answer the PKIOperations held by the hold fault\n\n"
               "As CGI (GATEWAY_INTERFACE set), NDES_STATE_DIR names the state directory.\n\n"
               "Keys for ctl:\n"
               "  caps=win2016|win2012|aes|scepstandard   GetCACaps profile (win2012: POST gets an empty 200,\n"
               "                                          replies use RSA-OAEP and SHA-1 and carry no certificates)\n"
               "  admin_encoding=utf16le-bom|utf16le|utf8\n"
               "  permission=granted|denied               denied: \"You do not have sufficient permission...\"\n"
               "  pending=on|off                          on: PKCSReq answered PENDING until approved\n"
               "  validity=SECONDS                        issued certificates valid this long (0: one year)\n"
               "  unavailable=on|off                      on: every request answered 503 (pool stopped)\n"
               "  reply_delay=SECONDS                     PKIOperation answers this late, after the work (0..60)\n"
               "  certpoll_issued=on|off                  on: CertPoll also finds transactions issued at once\n"
               "  renewal=accept|refuse                   refuse: RenewalReq gets FAILURE badRequest (unsupported)\n"
               "  caps_renewal=on|off                     off: GetCACaps without Renewal\n"
               "                                          (off, the default: only pending ones, as far as NDES\n"
               "                                          is documented; others are badCertId)\n"
               "  clock_offset=SECONDS                    added to the clock (challenge expiry, validity)\n"
               "  reply_digest=auto|request|sha1|sha256|sha512   auto: SHA-1 like NDES; request: as the request\n"
               "  reply_cipher=auto|des3|aes128|aes256|des\n"
               "  reply_oaep=auto|on|off   reply_certs=auto|on|off\n"
               "  ra_order=sign,enc,ca (any order)        GetCACert certificate order\n"
               "  max_get_url=N                           GET URLs longer than N bytes get IIS's 404.15 (0: no limit)\n"
               "  cache_size=N (5)   challenge_ttl=SECONDS (3600)   caps_eol=crlf|lf\n"
               "  keep_requests=on|off                    save each PKIOperation body as last-request.der\n"
               "  lang=en|de|ja                           language of the mscep_admin pages (challenge, cache\n"
               "                                          full, permission); de and ja carry <B><I>Microsoft</I></B>\n"
               "                                          in their banner, before the thumbprint\n"
               "  password_length=BYTES (8)               PasswordLength, 1..64: challenges are 2*BYTES uppercase\n"
               "                                          hex digits\n"
               "  single_password=on|off                  UseSinglePassword: the page says the password can be used\n"
               "                                          multiple times and will not expire; the same password\n"
               "                                          every time, accepted by any number of PKCSReqs, never\n"
               "                                          counted as outstanding in the password cache\n"
               "  admin_page=ndes|garbage                 garbage: mscep_admin answers 200 with a page that is no\n"
               "                                          NDES page (maintenance text, a control character,\n"
               "                                          non-ASCII)\n"
               "  certpoll=supported|unsupported          unsupported: every CertPoll gets HTTP 500 (as scepserver)\n"
               "  undecryptable=none|certrep              an envelope it cannot decrypt: no CertRep (HTTP 500, as\n"
               "                                          NDES), or a FAILURE badMessageCheck CertRep\n"
               "  thumbprint=ca|other                     other: the page shows the RA signing certificate's MD5\n"
               "  restart (a command, not a key)          an IIS restart: the password cache is emptied\n\n"
               "Faults by path: /f/SPEC/certsrv/... is NDES meeting SPEC's faults, a comma-separated list of\n"
               "STEP.CLASS[.COUNT] (STEP caps|cacert|admin|pkcsreq|certpoll; CLASS html|302|400|403|404|500|\n"
               "503|timeout|fail0..fail4|pending|undecryptable|unknownpw|hold|delayN; tag.WORD only makes SPEC\n"
               "distinct): see tests/ndes/README.md.\n");
}

#define FOREACH_SUBDIR(n) for (const char *const *_p = (const char *const[]) { "transactions", "issued", NULL }, *n; (n = *_p); _p++)

static int cmd_init(const char *mode, int bits, const char *owner) {
        Config c;
        Authority a = {};
        int r = -EIO;
        time_t now = time(NULL);

        config_defaults(&c);
        if (mode) {
                char buf[64];
                const char *err;
                snprintf(buf, sizeof buf, "caps=%s", mode);
                if (config_apply(&c, buf, &err) < 0) {
                        fprintf(stderr, "ndes-emulator init: --mode %s: %s\n", mode, err);
                        return -EINVAL;
                }
        }
        if (mkdir(arg_state, 0755) < 0 && errno != EEXIST) {
                fprintf(stderr, "ndes-emulator init: cannot create %s: %m\n", arg_state);
                return -errno;
        }
        if (owner) {
                struct passwd *pw = getpwnam(owner);
                if (!pw) {
                        fprintf(stderr, "ndes-emulator init: --owner %s: no such user\n", owner);
                        return -ENOENT;
                }
                if (chown(arg_state, pw->pw_uid, pw->pw_gid) < 0) {
                        fprintf(stderr, "ndes-emulator init: chown %s to %s: %m\n", arg_state, owner);
                        return -errno;
                }
        }
        /* subdirectories belong to the state directory's owner (www-data runs the CGI) */
        struct stat st;
        if (stat(arg_state, &st) < 0)
                return -errno;
        FOREACH_SUBDIR(name) {
                char sub[PATH_MAX];
                snprintf(sub, sizeof sub, "%s/%s", arg_state, name);
                if (mkdir(sub, 0755) < 0 && errno != EEXIST) {
                        fprintf(stderr, "ndes-emulator init: cannot create %s: %m\n", sub);
                        return -errno;
                }
                if (geteuid() == 0 && chown(sub, st.st_uid, st.st_gid) < 0) {
                        fprintf(stderr, "ndes-emulator init: chown %s: %m\n", sub);
                        return -errno;
                }
        }

        a.ca_key = pki_rsa_generate(bits);
        a.ra_sign_key = pki_rsa_generate(bits);
        a.ra_enc_key = pki_rsa_generate(bits);
        if (!a.ca_key || !a.ra_sign_key || !a.ra_enc_key)
                goto finish;
        a.ca = pki_make_authority_cert(CERT_PROFILE_CA, "DC=test,DC=example,CN=EXAMPLE-NDES-CA", a.ca_key, NULL, NULL, now);
        if (!a.ca)
                goto finish;
        /* NDES gives both RA certificates the same subject (the "RA information" of its setup) */
        a.ra_sign = pki_make_authority_cert(CERT_PROFILE_RA_SIGN, "C=US,O=Example Lab,OU=NDES,CN=NDES-MSCEP-RA",
                                            a.ra_sign_key, a.ca, a.ca_key, now);
        a.ra_enc = pki_make_authority_cert(CERT_PROFILE_RA_ENCRYPT, "C=US,O=Example Lab,OU=NDES,CN=NDES-MSCEP-RA",
                                           a.ra_enc_key, a.ca, a.ca_key, now);
        if (!a.ra_sign || !a.ra_enc)
                goto finish;
        if ((r = write_pem_key("ca.key", a.ca_key)) < 0 || (r = write_pem_key("ra-sign.key", a.ra_sign_key)) < 0 ||
            (r = write_pem_key("ra-enc.key", a.ra_enc_key)) < 0 || (r = write_pem_cert("ca.crt", a.ca)) < 0 ||
            (r = write_pem_cert("ra-sign.crt", a.ra_sign)) < 0 || (r = write_pem_cert("ra-enc.crt", a.ra_enc)) < 0 ||
            (r = config_save(arg_state, &c)) < 0)
                goto finish;
        r = 0;
finish:
        if (r < 0)
                fprintf(stderr, "ndes-emulator init: creating the CA and RA in %s failed: %s\n", arg_state,
                        r == -EIO ? "OpenSSL error" : strerror(-r));
        authority_done(&a);
        return r;
}

static int cmd_ctl(int argc, char **argv) {
        Config c;
        int r = config_load(arg_state, &c);
        if (r < 0)
                return r;
        for (int i = 0; i < argc; i++) {
                const char *err;
                if (config_apply(&c, argv[i], &err) < 0) {
                        fprintf(stderr, "ndes-emulator ctl: \"%s\": %s\n", argv[i], err);
                        return -EINVAL;
                }
        }
        if (argc == 0) {
                fputs(config_format(&c), stdout);
                return 0;
        }
        r = config_save(arg_state, &c);
        if (r < 0)
                fprintf(stderr, "ndes-emulator ctl: cannot write %s/config: %s\n", arg_state, strerror(-r));
        return r;
}

static int approve_one(const Config *c, Authority *a, const char *txid) {
        char name[128];
        unsigned char *der = NULL;
        size_t size = 0;
        X509 *x = NULL;

        txid_file(txid, "csr", name, sizeof name);
        int r = state_read(arg_state, name, 64 * 1024, &der, &size);
        if (r < 0) {
                fprintf(stderr, "ndes-emulator approve: no pending request with transactionID \"%s\" (%s/%s: %s)\n",
                        txid, arg_state, name, strerror(-r));
                return r;
        }
        X509_REQ *csr = pki_req_from_der(der, size);
        free(der);
        if (!csr || pki_issue(csr, a->ca, a->ca_key, state_now(c), c->validity, &x) < 0) {
                fprintf(stderr, "ndes-emulator approve: cannot issue for \"%s\"\n", txid);
                X509_REQ_free(csr);
                return -EIO;
        }
        X509_REQ_free(csr);
        unsigned char *out = NULL;
        int n = i2d_X509(x, &out);
        txid_file(txid, "crt", name, sizeof name);
        r = n > 0 ? state_write(arg_state, name, out, n, 0644) : -EIO;
        if (r >= 0)
                r = write_issued(x);
        if (r >= 0) {
                txid_file(txid, "csr", name, sizeof name);
                char path[PATH_MAX];
                snprintf(path, sizeof path, "%s/%s", arg_state, name);
                (void) unlink(path);
                printf("approved %s\n", txid);
        }
        OPENSSL_free(out);
        X509_free(x);
        return r;
}

/* Calls fn for the transactionID of every pending request. */
static int for_each_pending(int (*fn)(const Config *, Authority *, const char *), const Config *c, Authority *a) {
        char path[PATH_MAX];
        snprintf(path, sizeof path, "%s/transactions", arg_state);
        DIR *d = opendir(path);
        int r = 0;
        if (!d)
                return -errno;
        for (struct dirent *de; (de = readdir(d));) {
                size_t len = strlen(de->d_name);
                if (len < 5 || strcmp(de->d_name + len - 4, ".csr") != 0)
                        continue;
                char name[300];
                unsigned char *txid = NULL;
                size_t size = 0;
                snprintf(name, sizeof name, "transactions/%.*s.txid", (int) (len - 4), de->d_name);
                if (state_read(arg_state, name, SCEP_TXID_MAX, &txid, &size) < 0)
                        continue;
                int k = fn(c, a, (const char *) txid);
                free(txid);
                if (k < 0)
                        r = k;
        }
        closedir(d);
        return r;
}

static int print_txid(const Config *c, Authority *a, const char *txid) {
        printf("%s\n", txid);
        return 0;
}

static int cmd_approve(const char *what, bool list_only) {
        Config c;
        Authority a = {};
        int r = config_load(arg_state, &c);
        if (r < 0)
                return r;
        if (list_only)
                return for_each_pending(print_txid, &c, &a);
        r = authority_load(&a, true);
        if (r >= 0)
                r = strcmp(what, "all") == 0 ? for_each_pending(approve_one, &c, &a) : approve_one(&c, &a, what);
        authority_done(&a);
        return r;
}

static int cmd_log(bool scep) {
        unsigned char *data = NULL;
        size_t size = 0;
        int r = state_read(arg_state, scep ? "scep.log" : "challenge.log", 16 * 1024 * 1024, &data, &size);
        if (r == -ENOENT)
                return 0;
        if (r < 0) {
                fprintf(stderr, "ndes-emulator log: %s: %s\n", arg_state, strerror(-r));
                return r;
        }
        fwrite(data, 1, size, stdout);
        free(data);
        return 0;
}

/* An IIS restart: NDES's password cache is gone (the cache-full page says so). */
static int cmd_restart(void) {
        char path[PATH_MAX];
        int lock = state_lock(arg_state);
        if (lock < 0) {
                fprintf(stderr, "ndes-emulator restart: %s: %s\n", arg_state, strerror(-lock));
                return lock;
        }
        int r = 0;
        for (const char *const *name = (const char *const[]) { "challenges", "challenges-used", NULL }; *name && r == 0;
             name++) {
                snprintf(path, sizeof path, "%s/%s", arg_state, *name);
                r = unlink(path) < 0 && errno != ENOENT ? -errno : 0;
        }
        close(lock);
        if (r < 0)
                fprintf(stderr, "ndes-emulator restart: cannot remove %s: %s\n", path, strerror(-r));
        return r;
}

static int run(int argc, char **argv) {
        if (argc < 2 && getenv("GATEWAY_INTERFACE"))
                return cgi_main();
        if (argc < 2 || strcmp(argv[1], "help") == 0 || strcmp(argv[1], "--help") == 0) {
                help();
                return argc < 2 ? 2 : 0;
        }

        const char *cmd = argv[1], *mode = NULL, *owner = NULL;
        int bits = 2048;
        bool scep = false;
        static const struct option options[] = {
                { "state", required_argument, NULL, 's' },
                { "mode", required_argument, NULL, 'm' },
                { "key-bits", required_argument, NULL, 'b' },
                { "owner", required_argument, NULL, 'o' },
                { "scep", no_argument, NULL, 'S' },
                {}
        };
        optind = 2;
        for (int ch; (ch = getopt_long(argc, argv, "+", options, NULL)) >= 0;)
                switch (ch) {
                case 's':
                        arg_state = optarg;
                        break;
                case 'm':
                        mode = optarg;
                        break;
                case 'b':
                        bits = atoi(optarg);
                        if (bits < 1024 || bits > 8192) {
                                fprintf(stderr, "ndes-emulator: --key-bits must be 1024..8192\n");
                                return 2;
                        }
                        break;
                case 'o':
                        owner = optarg;
                        break;
                case 'S':
                        scep = true;
                        break;
                default:
                        return 2;
                }
        if (!arg_state) {
                fprintf(stderr, "ndes-emulator %s: --state DIR is required\n", cmd);
                return 2;
        }
        int r;
        if (strcmp(cmd, "init") == 0)
                r = cmd_init(mode, bits, owner);
        else if (strcmp(cmd, "ctl") == 0)
                r = cmd_ctl(argc - optind, argv + optind);
        else if (strcmp(cmd, "approve") == 0) {
                if (optind != argc - 1) {
                        fprintf(stderr, "ndes-emulator approve: give one transactionID, or all\n");
                        return 2;
                }
                r = cmd_approve(argv[optind], false);
        } else if (strcmp(cmd, "pending") == 0)
                r = cmd_approve(NULL, true);
        else if (strcmp(cmd, "restart") == 0)
                r = cmd_restart();
        else if (strcmp(cmd, "release") == 0)
                r = state_write(arg_state, "release", "", 0, 0644);
        else if (strcmp(cmd, "log") == 0)
                r = cmd_log(scep);
        else {
                fprintf(stderr, "ndes-emulator: unknown command \"%s\" (see ndes-emulator help)\n", cmd);
                return 2;
        }
        return r < 0 ? 1 : 0;
}

int main(int argc, char **argv) {
        /* DES and friends for old clients; the emulator is a test tool, not the broker */
        OSSL_PROVIDER *legacy = OSSL_PROVIDER_load(NULL, "legacy");
        OSSL_PROVIDER *deflt = OSSL_PROVIDER_load(NULL, "default");
        ERR_clear_error();
        int r = deflt ? run(argc, argv) : 1;
        if (legacy)
                OSSL_PROVIDER_unload(legacy);
        if (deflt)
                OSSL_PROVIDER_unload(deflt);
        return r;
}
