/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The in-process NDES (fake-ndes.h), on the NDES emulator's PKI code. */
#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/x509.h>

#include "fake-ndes.h"
#include "ndes-pki.h"

#define FAKE_NDES_TRANSACTIONS_MAX 64
#define FAKE_NDES_CHALLENGES_MAX 16

typedef struct Challenge {
        char value[17];
        char host[64];                  /* whose mscep_admin handed it out */
} Challenge;

typedef struct Transaction {
        char id[SCEP_TXID_MAX + 1];
        X509_REQ *csr;
} Transaction;

struct FakeNdes {
        EVP_PKEY *ca_key, *ra_key, *other_key;
        X509 *ca, *ra_sign, *ra_enc, *other;
        FakeNdesStep *script;
        size_t n_script, next;
        FakeNdesCounters counters;
        Challenge challenges[FAKE_NDES_CHALLENGES_MAX]; /* handed out by mscep_admin, not yet used */
        size_t n_challenges;
        FakeNdesAdmin admin;
        bool no_post;
        char *refused_host;
        char thumbprint[64], other_thumbprint[64];
        Transaction transactions[FAKE_NDES_TRANSACTIONS_MAX];
        size_t n_transactions;
};

/* AES, POST and SHA-256: a Windows 2016 NDES with AES enabled; or the same without POST. */
static const char caps_text[] = "POSTPKIOperation\r\nRenewal\r\nSHA-512\r\nSHA-256\r\nSHA-1\r\nDES3\r\nAES\r\n";
static const char caps_text_get[] = "Renewal\r\nSHA-512\r\nSHA-256\r\nSHA-1\r\nDES3\r\nAES\r\n";

/* The MD5 thumbprint as mscep_admin shows it: upper-case hex in groups of four bytes. */
static void thumbprint_of(X509 *x, char buf[static 64]) {
        unsigned char md[EVP_MAX_MD_SIZE];
        unsigned mdlen = 0;

        buf[0] = 0;
        assert(X509_digest(x, EVP_md5(), md, &mdlen) == 1);
        for (unsigned i = 0; i < mdlen; i++)
                sprintf(buf + strlen(buf), "%s%02X", i > 0 && i % 4 == 0 ? " " : "", md[i]);
}

FakeNdes *fake_ndes_new(void) {
        FakeNdes *n = calloc(1, sizeof(*n));
        time_t now = time(NULL);

        assert(n);
        n->ca_key = pki_rsa_generate(2048);
        n->ra_key = pki_rsa_generate(2048);
        n->other_key = pki_rsa_generate(2048);
        assert(n->ca_key && n->ra_key && n->other_key);
        n->ca = pki_make_authority_cert(CERT_PROFILE_CA, "DC=test,DC=example,CN=FAKE-NDES-CA", n->ca_key, NULL, NULL, now);
        n->ra_sign = pki_make_authority_cert(CERT_PROFILE_RA_SIGN, "O=Example,OU=NDES,CN=FAKE-MSCEP-RA", n->ra_key,
                                             n->ca, n->ca_key, now);
        n->ra_enc = pki_make_authority_cert(CERT_PROFILE_RA_ENCRYPT, "O=Example,OU=NDES,CN=FAKE-MSCEP-RA", n->ra_key,
                                            n->ca, n->ca_key, now);
        n->other = pki_make_authority_cert(CERT_PROFILE_RA_SIGN, "O=Elsewhere,CN=NOT-THE-RA", n->other_key, NULL, NULL,
                                           now);
        assert(n->ca && n->ra_sign && n->ra_enc && n->other);
        thumbprint_of(n->ca, n->thumbprint);
        thumbprint_of(n->other, n->other_thumbprint);
        return n;
}

FakeNdes *fake_ndes_free(FakeNdes *n) {
        if (!n)
                return NULL;
        for (size_t i = 0; i < n->n_transactions; i++)
                X509_REQ_free(n->transactions[i].csr);
        X509_free(n->ca);
        X509_free(n->ra_sign);
        X509_free(n->ra_enc);
        X509_free(n->other);
        EVP_PKEY_free(n->ca_key);
        EVP_PKEY_free(n->ra_key);
        EVP_PKEY_free(n->other_key);
        free(n->script);
        free(n->refused_host);
        free(n);
        return NULL;
}

void fake_ndes_script(FakeNdes *n, const FakeNdesStep *steps, size_t n_steps) {
        assert(n_steps > 0);
        free(n->script);
        n->script = calloc(n_steps, sizeof(*steps));
        assert(n->script);
        memcpy(n->script, steps, n_steps * sizeof(*steps));
        n->n_script = n_steps;
        n->next = 0;
        n->counters = (FakeNdesCounters) {};
}

void fake_ndes_admin(FakeNdes *n, FakeNdesAdmin a) {
        n->admin = a;
}

void fake_ndes_offer_post(FakeNdes *n, bool post) {
        n->no_post = !post;
}

void fake_ndes_refuse_host(FakeNdes *n, const char *host) {
        free(n->refused_host);
        n->refused_host = host ? strdup(host) : NULL;
        assert(!host || n->refused_host);
}

const char *fake_ndes_thumbprint(const FakeNdes *n, bool other) {
        return other ? n->other_thumbprint : n->thumbprint;
}

const FakeNdesCounters *fake_ndes_counters(const FakeNdes *n) {
        return &n->counters;
}

static void answer_bytes(FakeHttpAnswer *ret, long code, const char *type, const void *p, size_t size) {
        ret->outcome = TRANSPORT_OK;
        ret->http_code = code;
        ret->content_type = type;
        ret->body = malloc(size ?: 1);
        assert(ret->body);
        if (size > 0)
                memcpy(ret->body, p, size);
        ret->body_size = size;
}

static void answer_text(FakeHttpAnswer *ret, long code, const char *type, const char *text) {
        answer_bytes(ret, code, type, text, strlen(text));
}

static void answer_failure(FakeHttpAnswer *ret, TransportOutcome outcome, const char *host, const char *what) {
        ret->outcome = outcome;
        assert(asprintf(&ret->message, "%s: %s", host, what) > 0);
}

static void serve_cacert(FakeNdes *n, FakeHttpAnswer *ret) {
        STACK_OF(X509) *certs = sk_X509_new_null();
        unsigned char *der = NULL;
        size_t size = 0;

        assert(certs);
        assert(sk_X509_push(certs, n->ra_sign) && sk_X509_push(certs, n->ra_enc) && sk_X509_push(certs, n->ca));
        assert(pki_certs_only(certs, &der, &size) == 0);
        answer_bytes(ret, 200, "application/x-x509-ca-ra-cert", der, size);
        OPENSSL_free(der);
        sk_X509_free(certs);
}

/* mscep_admin's page in English, UTF-8, as NDES shows it: the CA thumbprint (MD5, in groups of
 * four bytes) and a one-time challenge of 8 random bytes in hex. */
static void serve_admin(FakeNdes *n, const char *host, FakeHttpAnswer *ret) {
        unsigned char rnd[8];
        char *page = NULL;

        n->counters.admin++;
        snprintf(n->counters.admin_host, sizeof n->counters.admin_host, "%s", host);
        switch (n->admin) {
        case FAKE_NDES_ADMIN_CACHE_FULL:
                answer_text(ret, 200, "text/html; charset=utf-8",
                            "<HTML><Head><Title>Network Device Enrollment Service</Title></Head><Body>"
                            "<P ID=locPageTitle> Network Device Enrollment Service allows you to obtain certificates "
                            "for routers or other network devices using the Simple Certificate Enrollment Protocol "
                            "(SCEP). </P><P> The password cache is full. <P> Network Device Enrollment Service "
                            "stores unused password for later use. By default, passwords are stored for 60 "
                            "minutes.</P></Body></HTML>");
                return;
        case FAKE_NDES_ADMIN_PERMISSION:
                answer_text(ret, 200, "text/html; charset=utf-8",
                            "<HTML><Head><Title>Network Device Enrollment Service</Title></Head><Body>"
                            "<P ID=locPageTitle> Network Device Enrollment Service allows you to obtain certificates "
                            "for routers or other network devices using the Simple Certificate Enrollment Protocol "
                            "(SCEP). </P><P> You do not have sufficient permission to enroll with SCEP.  Please "
                            "contact your system administrator. </P></Body></HTML>");
                return;
        case FAKE_NDES_ADMIN_HTTP_500:
                answer_text(ret, 500, "text/html", "<html><body>500 - Internal server error.</body></html>\n");
                return;
        default:
                break;
        }
        assert(RAND_bytes(rnd, sizeof rnd) == 1);
        if (n->n_challenges == FAKE_NDES_CHALLENGES_MAX) {
                memmove(&n->challenges[0], &n->challenges[1], sizeof n->challenges[0] * (FAKE_NDES_CHALLENGES_MAX - 1));
                n->n_challenges--;
        }
        Challenge *ch = &n->challenges[n->n_challenges++];
        char *c = ch->value;
        snprintf(ch->host, sizeof ch->host, "%s", host);
        for (size_t i = 0; i < sizeof rnd; i++)
                sprintf(c + 2 * i, "%02X", rnd[i]);
        assert(asprintf(&page,
                        "<HTML><Head><Meta HTTP-Equiv=\"Content-Type\" Content=\"text/html; charset=UTF-8\">"
                        "<Title>Network Device Enrollment Service</Title></Head><Body BgColor=#FFFFFF>"
                        "<P ID=locPageTitle> Network Device Enrollment Service allows you to obtain certificates "
                        "for routers or other network devices using the Simple Certificate Enrollment Protocol "
                        "(SCEP). </P><P> To complete certificate enrollment for your network device you will "
                        "need the following information: <P> The thumbprint (hash value) for the CA certificate "
                        "is: <B> %s </B> <P> The enrollment challenge password is: <B> %s </B> <P> This password "
                        "can be used only once and will expire within 60 minutes. <P> Each enrollment requires a "
                        "new challenge password. You can refresh this web page to obtain a new challenge "
                        "password. </P></Body></HTML>",
                        n->admin == FAKE_NDES_ADMIN_OTHER_THUMBPRINT ? n->other_thumbprint : n->thumbprint, c) > 0);
        answer_text(ret, 200, "text/html; charset=utf-8", page);
        free(page);
}

/* A PKCSReq's challengePassword: one this host's mscep_admin handed out and not used yet (then
 * used up). */
static void challenge_check(FakeNdes *n, const char *host, X509_REQ *csr) {
        char buf[256];

        if (pki_req_challenge(csr, buf, sizeof buf) < 0)
                return;
        for (size_t i = 0; i < n->n_challenges; i++)
                if (strcmp(n->challenges[i].value, buf) == 0 && strcmp(n->challenges[i].host, host) == 0) {
                        memmove(&n->challenges[i], &n->challenges[i + 1],
                                sizeof n->challenges[0] * (n->n_challenges - i - 1));
                        n->n_challenges--;
                        n->counters.challenge_ok++;
                        return;
                }
        n->counters.challenge_bad++;
}

/* A RenewalReq's signer: which certificate, and whether this CA issued it. */
static void renewal_signer_note(FakeNdes *n, X509 *signer) {
        BIGNUM *bn = signer ? ASN1_INTEGER_to_BN(X509_get0_serialNumber(signer), NULL) : NULL;
        char *hex = bn ? BN_bn2hex(bn) : NULL;

        snprintf(n->counters.renewal_signer_serial, sizeof n->counters.renewal_signer_serial, "%s", hex ?: "");
        for (char *p = n->counters.renewal_signer_serial; *p; p++)
                *p = (char) (*p >= 'A' && *p <= 'F' ? *p - 'A' + 'a' : *p);
        n->counters.renewal_signer_ours = signer && X509_verify(signer, X509_get0_pubkey(n->ca)) == 1;
        OPENSSL_free(hex);
        BN_free(bn);
}

static Transaction *transaction_find(FakeNdes *n, const char *id) {
        for (size_t i = 0; i < n->n_transactions; i++)
                if (strcmp(n->transactions[i].id, id) == 0)
                        return &n->transactions[i];
        return NULL;
}

/* A PKCSReq's CSR, kept under its transaction for the CertPolls to come. */
static X509_REQ *transaction_keep(FakeNdes *n, const ScepRequest *req) {
        Transaction *t = transaction_find(n, req->transaction_id);
        X509_REQ *csr = pki_req_from_der(req->inner, req->inner_size);

        if (!csr)
                return NULL;
        if (!t) {
                assert(n->n_transactions < FAKE_NDES_TRANSACTIONS_MAX);
                t = &n->transactions[n->n_transactions++];
                snprintf(t->id, sizeof t->id, "%s", req->transaction_id);
        }
        X509_REQ_free(t->csr);
        t->csr = csr;
        return csr;
}

static int unhex(char c) {
        return c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* GET's message= parameter: percent-escaped base64 of the pkiMessage (malloc'd), or NULL. */
static uint8_t *get_message(const char *url, size_t *ret_size) {
        const char *p = strstr(url, "&message=");
        char *b64;
        uint8_t *der;
        size_t k = 0;
        int n;

        if (!p)
                return NULL;
        p += strlen("&message=");
        b64 = malloc(strlen(p) + 1);
        assert(b64);
        for (; *p && *p != '&'; p++) {
                if (*p == '%' && unhex(p[1]) >= 0 && unhex(p[2]) >= 0) {
                        b64[k++] = (char) (unhex(p[1]) * 16 + unhex(p[2]));
                        p += 2;
                } else
                        b64[k++] = *p;
        }
        b64[k] = 0;
        der = malloc(k / 4 * 3 + 3);
        assert(der);
        n = EVP_DecodeBlock(der, (const unsigned char *) b64, (int) k);
        if (n < 0) {
                free(b64);
                free(der);
                return NULL;
        }
        /* EVP_DecodeBlock counts the padding's bytes too. */
        while (k > 0 && b64[k - 1] == '=') {
                k--;
                n--;
        }
        free(b64);
        *ret_size = (size_t) n;
        return der;
}

static void serve_pkioperation(FakeNdes *n, const FakeHttpExchange *x, FakeHttpAnswer *ret) {
        FakeNdesStep step = n->script ? n->script[n->next < n->n_script ? n->next : n->n_script - 1]
                                      : (FakeNdesStep) { FAKE_NDES_SUCCESS };
        ScepRequest req = {};
        X509_REQ *csr = NULL;
        X509 *issued = NULL;
        STACK_OF(X509) *certs = NULL;
        unsigned char *der = NULL;
        size_t size = 0, body_size = 0;
        const uint8_t *body;
        uint8_t *get_body = NULL;
        int status, fail_info = 0;

        if (n->next < n->n_script)
                n->next++;
        if (x->post_data) {
                body = x->post_data;
                body_size = x->post_size;
        } else {
                n->counters.get++;
                get_body = get_message(x->url, &body_size);
                body = get_body;
        }
        if (!body || scep_request_parse(body, body_size, n->ra_enc, n->ra_key, &req) < 0 || !req.signature_ok ||
            !req.decrypted) {
                free(get_body);
                n->counters.unverified++;
                scep_request_done(&req);
                answer_text(ret, 500, "text/plain", "unreadable pkiMessage\n");
                return;
        }
        snprintf(n->counters.pkioperation_host, sizeof n->counters.pkioperation_host, "%s", x->host);
        if (req.message_type == SCEP_MSG_PKCSREQ || req.message_type == SCEP_MSG_RENEWALREQ) {
                if (req.message_type == SCEP_MSG_PKCSREQ)
                        n->counters.pkcsreq++;
                else {
                        n->counters.renewalreq++;
                        renewal_signer_note(n, req.signer);
                }
                csr = transaction_keep(n, &req);
                if (csr)
                        challenge_check(n, x->host, csr);
        } else if (req.message_type == SCEP_MSG_CERTPOLL) {
                n->counters.certpoll++;
                Transaction *t = transaction_find(n, req.transaction_id);
                csr = t ? t->csr : NULL;
        } else
                n->counters.other++;

        switch (step.answer) {
        case FAKE_NDES_TIMEOUT:
                answer_failure(ret, TRANSPORT_TIMEOUT, x->host, "no answer within the time-out");
                goto finish;
        case FAKE_NDES_UNREACHABLE:
                answer_failure(ret, TRANSPORT_CA_UNREACHABLE, x->host, "connection refused");
                goto finish;
        case FAKE_NDES_HTTP_500:
                answer_text(ret, 500, "text/html", "<html><body>500 - Internal server error.</body></html>\n");
                goto finish;
        case FAKE_NDES_HTTP_403:
                answer_text(ret, 403, "text/html", "<html><body>403 - Forbidden: Access is denied.</body></html>\n");
                goto finish;
        case FAKE_NDES_HTTP_404:
                answer_text(ret, 404, "text/html", "<html><body>404 - File or directory not found.</body></html>\n");
                goto finish;
        case FAKE_NDES_HTTP_414:
                answer_text(ret, 414, "text/html", "<html><body>414 - Request-URI Too Long</body></html>\n");
                goto finish;
        case FAKE_NDES_HTML:
                answer_text(ret, 200, "text/html", "<html><body>The page cannot be displayed</body></html>\n");
                goto finish;
        case FAKE_NDES_EMPTY:
                answer_bytes(ret, 200, "application/x-pki-message", "", 0);
                goto finish;
        case FAKE_NDES_GARBLED:
                answer_text(ret, 200, "application/x-pki-message", "\x30\x82\x01\x2a this is no CertRep");
                goto finish;
        case FAKE_NDES_PENDING:
                status = SCEP_STATUS_PENDING;
                break;
        case FAKE_NDES_FAILURE:
                status = SCEP_STATUS_FAILURE;
                fail_info = step.fail_info;
                break;
        default:
                status = SCEP_STATUS_SUCCESS;
                break;
        }
        if (status == SCEP_STATUS_SUCCESS && !csr) {
                /* A CertPoll for a transaction this server never saw. */
                status = SCEP_STATUS_FAILURE;
                fail_info = SCEP_FAIL_BADCERTID;
        }
        if (status == SCEP_STATUS_SUCCESS) {
                assert(pki_issue(csr, n->ca, n->ca_key, time(NULL), 0, &issued) == 0);
                n->counters.issued++;
                certs = sk_X509_new_null();
                assert(certs && sk_X509_push(certs, issued) && sk_X509_push(certs, n->ca));
        }
        bool wrong = step.answer == FAKE_NDES_WRONG_SIGNER;
        ScepReplyOptions opts = {
                .ra_sign_cert = wrong ? n->other : n->ra_sign,
                .ra_sign_key = wrong ? n->other_key : n->ra_key,
                .digest = EVP_sha256(),
                .cipher = EVP_aes_128_cbc(),
                .include_certs = true,
        };
        assert(scep_certrep_build(&req, &opts, status, fail_info, 0, certs, &der, &size) == 0);
        answer_bytes(ret, 200, "application/x-pki-message", der,
                     step.answer == FAKE_NDES_TRUNCATED ? size / 2 : size);
        OPENSSL_free(der);
finish:
        free(get_body);
        sk_X509_free(certs);
        X509_free(issued);
        scep_request_done(&req);
}

void fake_ndes_respond(const FakeHttpExchange *x, FakeHttpAnswer *ret, void *userdata) {
        FakeNdes *n = userdata;
        const char *op = strstr(x->url, "operation=");

        if (n->refused_host && strcmp(x->host, n->refused_host) == 0) {
                n->counters.refused++;
                answer_failure(ret, TRANSPORT_CA_UNREACHABLE, x->host, "connection refused");
                return;
        }
        if (strstr(x->url, "/mscep_admin")) {
                serve_admin(n, x->host, ret);
                return;
        }

        op = op ? op + strlen("operation=") : "";
        if (strncmp(op, "GetCACaps", 9) == 0) {
                n->counters.caps++;
                answer_text(ret, 200, "text/plain", n->no_post ? caps_text_get : caps_text);
        } else if (strncmp(op, "GetCACert", 9) == 0) {
                n->counters.cacert++;
                serve_cacert(n, ret);
        } else if (strncmp(op, "PKIOperation", 12) == 0)
                serve_pkioperation(n, x, ret);
        else {
                n->counters.other++;
                answer_text(ret, 404, "text/html", "<html><body>404 - File or directory not found.</body></html>\n");
        }
}
