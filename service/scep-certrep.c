/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <errno.h>
#include <inttypes.h>
#include <openssl/cms.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/provider.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <string.h>

#include "scep-certrep.h"
#include "scep-oids.h"
#include "scep-util.h"

ScepCertRep *scep_certrep_free(ScepCertRep *r) {
        if (!r)
                return NULL;
        X509_free(r->certificate);
        sk_X509_pop_free(r->chain, X509_free);
        free(r);
        return NULL;
}

static void scep_certrep_freep(ScepCertRep **r) {
        scep_certrep_free(*r);
}

const char *scep_fail_info_to_string(ScepFailInfo f) {
        switch (f) {
        case SCEP_FAIL_NONE:
                return "";
        case SCEP_FAIL_BAD_ALG:
                return "badAlg";
        case SCEP_FAIL_BAD_MESSAGE_CHECK:
                return "badMessageCheck";
        case SCEP_FAIL_BAD_REQUEST:
                return "badRequest";
        case SCEP_FAIL_BAD_TIME:
                return "badTime";
        case SCEP_FAIL_BAD_CERT_ID:
                return "badCertId";
        }
        return NULL;
}

/* HRESULTs NDES puts into 1.3.6.1.4.1.311.21.33, with what they mean for the broker
 * (Sleepw4lker's PSCertificateEnrollment Get-NDESCertificate.ps1; a wrong or used challenge
 * comes with failInfo badMessageCheck: certnanny/sscep#80, certnanny/sscep#156). */
#define HRESULT_CHALLENGE_USED     UINT32_C(0x800B0110)
#define HRESULT_CHALLENGE_MISSING  UINT32_C(0x80096004)
#define HRESULT_CHALLENGE_UNKNOWN  UINT32_C(0x80070490)
#define HRESULT_SUBJECT_REFUSED    UINT32_C(0x80094001)
#define HRESULT_CA_UNREACHABLE     UINT32_C(0x800706BA)
#define HRESULT_INVALID_MESSAGE    UINT32_C(0x80070057)

static const struct {
        uint32_t hresult;
        const char *hint;
} hresult_hints[] = {
        { HRESULT_CHALLENGE_USED, "the challenge password was already used (NDES takes each one "
          "once): the request needs a fresh one" },
        { HRESULT_CHALLENGE_MISSING, "NDES requires a challenge password and the request carried "
          "none: set Challenge=mscep-admin (or static) for this CA" },
        { HRESULT_CHALLENGE_UNKNOWN, "the challenge password is unknown to NDES: it expired, NDES's "
          "password cache was cleared by an IIS restart, or it was fetched from another NDES "
          "server behind the same name (point URL= and AdminURL= at one server)" },
        { HRESULT_SUBJECT_REFUSED, "the CA refused the request's subject: check the names against "
          "what the certificate template allows" },
        { HRESULT_CA_UNREACHABLE, "NDES cannot reach the CA (RPC server unavailable): check that "
          "Certificate Services runs and that NDES can reach the CA" },
        { HRESULT_INVALID_MESSAGE, "NDES found the message unsupported or malformed" },
};

/* The HRESULT of ms_hresult (decimal text, signed as NDES sends it or unsigned), or false. */
static bool hresult_value(const char *ms_hresult, uint32_t *ret) {
        char *end = NULL;
        long long v;

        if (!ms_hresult || !ms_hresult[0])
                return false;
        errno = 0;
        v = strtoll(ms_hresult, &end, 10);
        if (errno != 0 || !end || *end != '\0' || v < INT32_MIN || v > (long long) UINT32_MAX)
                return false;
        *ret = (uint32_t) v;
        return true;
}

static const char *hresult_hint(uint32_t hr) {
        for (size_t i = 0; i < sizeof hresult_hints / sizeof hresult_hints[0]; i++)
                if (hresult_hints[i].hresult == hr)
                        return hresult_hints[i].hint;
        return NULL;
}

/* 0x80070490 is Windows' ERROR_NOT_FOUND: with failInfo badCertId it answers a CertPoll
 * (GetCertInitial) whose transaction NDES does not hold, not a challenge. */
#define HINT_TRANSACTION_UNKNOWN "NDES does not know the transaction the CertPoll names: it holds no " \
        "pending request with that transactionID (never received, denied, or issued at once)"

/* "Microsoft HRESULT 0x80070057 (-2147024809)[: hint]" into buf; true when it has a hint. */
static bool hresult_describe(const char *ms_hresult, int fail_info, char *buf, size_t size) {
        const char *hint = NULL;
        uint32_t hr;

        if (!hresult_value(ms_hresult, &hr)) {
                snprintf(buf, size, "Microsoft HRESULT %s", ms_hresult);
                return false;
        }
        hint = fail_info == SCEP_FAIL_BAD_CERT_ID && hr == HRESULT_CHALLENGE_UNKNOWN ? HINT_TRANSACTION_UNKNOWN :
               hresult_hint(hr);
        snprintf(buf, size, "Microsoft HRESULT 0x%08" PRIX32 " (%s)%s%s", hr, ms_hresult,
                 hint ? ": " : "", hint ?: "");
        return hint != NULL;
}

static const char *const fail_info_hints[] = {
        [SCEP_FAIL_BAD_ALG] = "the CA does not accept the algorithms of the request",
        [SCEP_FAIL_BAD_MESSAGE_CHECK] = "the CA could not verify the request: on NDES this "
                "usually means a wrong, expired or already used challenge password",
        [SCEP_FAIL_BAD_REQUEST] = "the CA refused the request (on NDES: a wrong or reused "
                "challenge, or a template or name it does not allow)",
        [SCEP_FAIL_BAD_TIME] = "the CA found the request's signingTime too far from its "
                "clock: check the time on this host and on the CA",
        [SCEP_FAIL_BAD_CERT_ID] = "the CA could not find the certificate the request names",
};

void scep_certrep_describe_failure(const ScepCertRep *r, char *buf, size_t size) {
        char hr[400] = "";
        bool specific = false;

        if (!buf || size == 0)
                return;
        if (!r) {
                buf[0] = '\0';
                return;
        }
        if (r->ms_hresult[0]) {
                hr[0] = ';';
                hr[1] = ' ';
                specific = hresult_describe(r->ms_hresult, r->fail_info, hr + 2, sizeof hr - 2);
        }
        /* A known HRESULT says more than the failInfo: its hint replaces the failInfo's. */
        if (r->fail_info >= SCEP_FAIL_BAD_ALG && r->fail_info <= SCEP_FAIL_BAD_CERT_ID)
                snprintf(buf, size, "the CA rejected the request with failInfo %s (%d)%s%s%s",
                         scep_fail_info_to_string(r->fail_info), (int) r->fail_info,
                         specific ? "" : ": ", specific ? "" : fail_info_hints[r->fail_info], hr);
        else
                snprintf(buf, size, "the CA rejected the request without a failInfo%s", hr);
}

bool scep_certrep_challenge_unknown(const ScepCertRep *r) {
        uint32_t hr;

        /* badCertId: an unknown transaction (a CertPoll's answer), not an unknown challenge. */
        if (!r || r->status != SCEP_STATUS_FAILURE || r->fail_info == SCEP_FAIL_BAD_CERT_ID ||
            !hresult_value(r->ms_hresult, &hr))
                return false;
        return hr == HRESULT_CHALLENGE_UNKNOWN || hr == HRESULT_CHALLENGE_USED;
}

/* ---- attributes ------------------------------------------------------------------------ */

static int attr_get(CMS_SignerInfo *si, const char *oid, const char *label, ASN1_TYPE **ret,
                    ScepError *e) {
        _cleanup_(ASN1_OBJECT_freep) ASN1_OBJECT *obj = OBJ_txt2obj(oid, 1);
        X509_ATTRIBUTE *a;
        int idx;

        if (!obj)
                return -ENOMEM;
        idx = CMS_signed_get_attr_by_OBJ(si, obj, -1);
        if (idx < 0) {
                *ret = NULL;
                return 0;
        }
        if (CMS_signed_get_attr_by_OBJ(si, obj, idx) >= 0)
                return scep_error_set(e, SCEP_RESULT_BAD_ATTRIBUTE,
                                      "the CertRep carries the %s attribute (%s) twice", label, oid);
        a = CMS_signed_get_attr(si, idx);
        if (!a || X509_ATTRIBUTE_count(a) != 1)
                return scep_error_set(e, SCEP_RESULT_BAD_ATTRIBUTE,
                                      "the CertRep's %s attribute (%s) does not hold exactly one value",
                                      label, oid);
        *ret = X509_ATTRIBUTE_get0_type(a, 0);
        return 0;
}

/* A PrintableString-like value as a C string; types other than Printable/UTF8/IA5 and
 * values with control bytes are refused. */
static int attr_string(ASN1_TYPE *t, const char *oid, const char *label, char *buf, size_t size,
                       ScepError *e) {
        const unsigned char *d;
        int len;

        if (!t || (t->type != V_ASN1_PRINTABLESTRING && t->type != V_ASN1_UTF8STRING &&
                   t->type != V_ASN1_IA5STRING))
                return scep_error_set(e, SCEP_RESULT_BAD_ATTRIBUTE,
                                      "the CertRep's %s attribute (%s) is not a PrintableString",
                                      label, oid);
        d = ASN1_STRING_get0_data(t->value.asn1_string);
        len = ASN1_STRING_length(t->value.asn1_string);
        if (len < 0 || (size_t) len >= size)
                return scep_error_set(e, SCEP_RESULT_BAD_ATTRIBUTE,
                                      "the CertRep's %s attribute (%s) is %d bytes long, more than "
                                      "the %zu we accept", label, oid, len, size - 1);
        for (int i = 0; i < len; i++)
                if (d[i] < 0x20 || d[i] >= 0x7f)
                        return scep_error_set(e, SCEP_RESULT_BAD_ATTRIBUTE,
                                              "the CertRep's %s attribute (%s) holds a non-printable byte",
                                              label, oid);
        memcpy(buf, d, (size_t) len);
        buf[len] = '\0';
        return 0;
}

/* A small decimal number ("3"), or -1. */
static int parse_small(const char *s) {
        int v = 0;

        if (!s[0] || strlen(s) > 3)
                return -1;
        for (const char *p = s; *p; p++) {
                if (*p < '0' || *p > '9')
                        return -1;
                v = v * 10 + (*p - '0');
        }
        return v;
}

static int attr_number(CMS_SignerInfo *si, const char *oid, const char *label, int *ret,
                       ScepError *e) {
        ASN1_TYPE *t = NULL;
        char buf[16];
        int r, v;

        r = attr_get(si, oid, label, &t, e);
        if (r != 0)
                return r;
        if (!t) {
                *ret = -1;
                return 0;
        }
        r = attr_string(t, oid, label, buf, sizeof buf, e);
        if (r != 0)
                return r;
        v = parse_small(buf);
        if (v < 0)
                return scep_error_set(e, SCEP_RESULT_BAD_ATTRIBUTE,
                                      "the CertRep's %s attribute (%s) is \"%s\", not a number",
                                      label, oid, buf);
        *ret = v;
        return 0;
}

static void ms_hresult_get(CMS_SignerInfo *si, char buf[SCEP_HRESULT_MAX]) {
        ASN1_TYPE *t = NULL;
        unsigned char *utf8 = NULL;
        size_t k = 0;
        int len;

        buf[0] = '\0';
        if (attr_get(si, SCEP_OID_MS_HRESULT, "Microsoft HRESULT", &t, NULL) != 0 || !t) {
                ERR_clear_error();
                return;
        }
        /* Informational only: any string type; keep sign and digits. */
        if (t->type == V_ASN1_SEQUENCE || t->type == V_ASN1_SET || t->type == V_ASN1_OBJECT ||
            t->type == V_ASN1_NULL || t->type == V_ASN1_BOOLEAN)
                return;
        if (t->type == V_ASN1_INTEGER) {
                long v = ASN1_INTEGER_get(t->value.integer);
                snprintf(buf, SCEP_HRESULT_MAX, "%ld", v);
                ERR_clear_error();
                return;
        }
        len = ASN1_STRING_to_UTF8(&utf8, t->value.asn1_string);
        if (len < 0) {
                ERR_clear_error();
                return;
        }
        for (int i = 0; i < len && k + 1 < SCEP_HRESULT_MAX; i++)
                if ((utf8[i] >= '0' && utf8[i] <= '9') || (utf8[i] == '-' && k == 0))
                        buf[k++] = (char) utf8[i];
        buf[k] = '\0';
        OPENSSL_free(utf8);
}

/* ---- what a reply claims, unverified --------------------------------------------------- */

static void claim_read(CMS_SignerInfo *si, ScepCertRepClaim *c) {
        X509_ALGOR *digalg = NULL;
        const ASN1_OBJECT *dobj = NULL;
        int v;

        *c = (ScepCertRepClaim) {
                .message_type = -1,
                .status = -1,
                .fail_info = -1,
                .digest_nid = NID_undef,
        };
        CMS_SignerInfo_get0_algs(si, NULL, NULL, &digalg, NULL);
        if (digalg)
                X509_ALGOR_get0(&dobj, NULL, NULL, digalg);
        if (dobj)
                c->digest_nid = OBJ_obj2nid(dobj);
        /* Each attribute on its own: one that is missing or malformed reads as -1. */
        if (attr_number(si, SCEP_OID_MESSAGE_TYPE, "messageType", &v, NULL) == 0)
                c->message_type = v;
        if (attr_number(si, SCEP_OID_PKI_STATUS, "pkiStatus", &v, NULL) == 0)
                c->status = v;
        if (attr_number(si, SCEP_OID_FAIL_INFO, "failInfo", &v, NULL) == 0)
                c->fail_info = v;
        ms_hresult_get(si, c->ms_hresult);
        ERR_clear_error();
}

void scep_certrep_claim_describe(const ScepCertRepClaim *c, char *buf, size_t size) {
        char status[32], type[48] = "", fail[48] = "", hr[400] = "";

        if (!buf || size == 0)
                return;
        if (!c) {
                snprintf(buf, size, "unverified: nothing read");
                return;
        }
        switch (c->status) {
        case SCEP_STATUS_SUCCESS:
                snprintf(status, sizeof status, "pkiStatus SUCCESS");
                break;
        case SCEP_STATUS_FAILURE:
                snprintf(status, sizeof status, "pkiStatus FAILURE");
                break;
        case SCEP_STATUS_PENDING:
                snprintf(status, sizeof status, "pkiStatus PENDING");
                break;
        case -1:
                snprintf(status, sizeof status, "no readable pkiStatus");
                break;
        default:
                snprintf(status, sizeof status, "pkiStatus %d", c->status);
        }
        if (c->message_type != SCEP_MESSAGE_CERT_REP)
                snprintf(type, sizeof type, c->message_type < 0 ? ", no readable messageType" :
                         ", messageType %d (not a CertRep)", c->message_type);
        if (c->fail_info >= SCEP_FAIL_BAD_ALG && c->fail_info <= SCEP_FAIL_BAD_CERT_ID)
                snprintf(fail, sizeof fail, ", failInfo %s (%d)",
                         scep_fail_info_to_string((ScepFailInfo) c->fail_info), c->fail_info);
        else if (c->fail_info >= 0)
                snprintf(fail, sizeof fail, ", failInfo %d", c->fail_info);
        if (c->ms_hresult[0]) {
                hr[0] = ',';
                hr[1] = ' ';
                (void) hresult_describe(c->ms_hresult, c->fail_info, hr + 2, sizeof hr - 2);
        }
        snprintf(buf, size, "unverified: the reply claims %s%s%s%s", status, type, fail, hr);
}

/* After a failed verification: " (unverified: the reply claims ...)" at the end of e's
 * message, as far as it fits. */
static void error_append_claim(ScepError *e, CMS_SignerInfo *si) {
        ScepCertRepClaim c;
        char text[600];
        size_t n;

        if (!e)
                return;
        claim_read(si, &c);
        scep_certrep_claim_describe(&c, text, sizeof text);
        n = strnlen(e->message, sizeof e->message);
        if (n + 4 < sizeof e->message)
                snprintf(e->message + n, sizeof e->message - n, " (%s)", text);
}

/* ---- the envelope's content-encryption algorithm --------------------------------------- */

/* Enter the next element if it has the given class/tag and a definite length: *p moves to its
 * contents, *end to their end. -1 if not. */
static int der_enter(const unsigned char **p, const unsigned char **end, int cls, int tag) {
        const unsigned char *q = *p;
        long len;
        int t, c, ret;

        ret = ASN1_get_object(&q, &len, &t, &c, *end - *p);
        if (ret & 0x80 || ret == 0x21 || t != tag || c != cls)
                return -1;
        *p = q;
        *end = q + len;
        return 0;
}

static int der_skip(const unsigned char **p, const unsigned char *end, int *ret_cls, int *ret_tag) {
        const unsigned char *q = *p;
        long len;
        int t, c, ret;

        ret = ASN1_get_object(&q, &len, &t, &c, end - *p);
        if (ret & 0x80 || ret == 0x21)
                return -1;
        if (ret_cls)
                *ret_cls = c;
        if (ret_tag)
                *ret_tag = t;
        *p = q + len;
        return 0;
}

/* NID of EnvelopedData's contentEncryptionAlgorithm, NID_undef when it cannot tell. */
static int envelope_cipher_nid(const uint8_t *der, size_t size) {
        const unsigned char *p = der, *end = der + size, *q, *qe;
        ASN1_OBJECT *obj;
        int cls, tag, nid;

        if (size > LONG_MAX)
                return NID_undef;
        if (der_enter(&p, &end, V_ASN1_UNIVERSAL, V_ASN1_SEQUENCE) < 0 ||
            der_skip(&p, end, NULL, NULL) < 0 ||                                  /* contentType */
            der_enter(&p, &end, V_ASN1_CONTEXT_SPECIFIC, 0) < 0 ||                 /* [0] */
            der_enter(&p, &end, V_ASN1_UNIVERSAL, V_ASN1_SEQUENCE) < 0 ||         /* EnvelopedData */
            der_skip(&p, end, NULL, NULL) < 0)                                    /* version */
                return NID_undef;
        q = p;
        if (der_skip(&q, end, &cls, &tag) < 0)
                return NID_undef;
        if (cls == V_ASN1_CONTEXT_SPECIFIC && tag == 0)                            /* originatorInfo */
                p = q;
        if (der_skip(&p, end, NULL, NULL) < 0 ||                                  /* recipientInfos */
            der_enter(&p, &end, V_ASN1_UNIVERSAL, V_ASN1_SEQUENCE) < 0 ||         /* encryptedContentInfo */
            der_skip(&p, end, NULL, NULL) < 0)                                    /* contentType */
                return NID_undef;
        qe = end;
        if (der_enter(&p, &qe, V_ASN1_UNIVERSAL, V_ASN1_SEQUENCE) < 0)            /* AlgorithmIdentifier */
                return NID_undef;
        obj = d2i_ASN1_OBJECT(NULL, &p, qe - p);
        if (!obj) {
                ERR_clear_error();
                return NID_undef;
        }
        nid = OBJ_obj2nid(obj);
        ASN1_OBJECT_free(obj);
        return nid;
}

static bool cipher_is_legacy(int nid) {
        return nid == NID_des_cbc || nid == NID_des_ecb || nid == NID_des_cfb64 ||
                nid == NID_des_ofb64 || nid == NID_rc2_cbc || nid == NID_rc2_40_cbc ||
                nid == NID_rc2_64_cbc;
}

/* ---- signer and chain ------------------------------------------------------------------ */

static void signer_id_describe(CMS_SignerInfo *si, char *buf, size_t size) {
        ASN1_OCTET_STRING *keyid = NULL;
        X509_NAME *issuer = NULL;
        ASN1_INTEGER *serial = NULL;

        if (CMS_SignerInfo_get0_signer_id(si, &keyid, &issuer, &serial) <= 0) {
                ERR_clear_error();
                snprintf(buf, size, "an unidentifiable signer");
                return;
        }
        if (keyid) {
                char hex[2 * 32 + 1];
                int n = ASN1_STRING_length(keyid);
                if (n > 32)
                        n = 32;
                scep_hex(ASN1_STRING_get0_data(keyid), (size_t) n, hex);
                snprintf(buf, size, "the key identifier %s", hex);
                return;
        }
        {
                char name[200];
                BIGNUM *bn = serial ? ASN1_INTEGER_to_BN(serial, NULL) : NULL;
                char *hex = bn ? BN_bn2hex(bn) : NULL;

                scep_name_format(issuer, name, sizeof name);
                snprintf(buf, size, "issuer \"%s\" serial %.64s", name, hex ?: "?");
                OPENSSL_free(hex);
                BN_free(bn);
                ERR_clear_error();
        }
}

static int verifier_check(const ScepCACerts *c, ScepError *e) {
        _cleanup_(X509_STORE_freep) X509_STORE *store = NULL;
        _cleanup_(X509_STORE_CTX_freep) X509_STORE_CTX *ctx = NULL;
        char d[300];
        int ok, err;

        store = X509_STORE_new();
        ctx = X509_STORE_CTX_new();
        if (!store || !ctx)
                return -ENOMEM;
        if (!X509_STORE_add_cert(store, c->ca))
                return scep_openssl_errno();
        /* The CA from GetCACert may be an intermediate: it is the anchor we were told to
         * trust (CAFingerprint / TLS), not a root. */
        X509_STORE_set_flags(store, X509_V_FLAG_PARTIAL_CHAIN);
        if (!X509_STORE_CTX_init(ctx, store, c->verifier, c->all))
                return scep_openssl_errno();
        X509_STORE_CTX_set_purpose(ctx, X509_PURPOSE_ANY);
        ok = X509_verify_cert(ctx);
        if (ok == 1)
                return 0;
        err = X509_STORE_CTX_get_error(ctx);
        ERR_clear_error();
        scep_cert_describe(c->verifier, d, sizeof d);
        return scep_error_set(e, SCEP_RESULT_UNTRUSTED,
                              "the CertRep signer %s does not verify against the CA: %s",
                              d, X509_verify_cert_error_string(err));
}

/* ---- SUCCESS --------------------------------------------------------------------------- */

/* OSSL_PROVIDER_unload() returns a status the cleanup has no use for. */
DEFINE_POINTER_CLEANUP(OSSL_PROVIDER, OSSL_PROVIDER_unload)
DEFINE_POINTER_CLEANUP(OSSL_LIB_CTX, OSSL_LIB_CTX_free)

static int decrypt_envelope(const ScepCertRepParams *p, const uint8_t *der, size_t size,
                            ScepCertRep *rep, BIO **ret_out, ScepError *e) {
        /* Declared in this order so that they are released in the reverse one: the CMS object
         * may hold references into libctx and goes first, then the providers, then libctx. */
        _cleanup_(OSSL_LIB_CTX_freep) OSSL_LIB_CTX *libctx = NULL;
        _cleanup_(OSSL_PROVIDER_unloadp) OSSL_PROVIDER *legacy = NULL;
        _cleanup_(OSSL_PROVIDER_unloadp) OSSL_PROVIDER *deflt = NULL;
        _cleanup_(CMS_ContentInfo_freep) CMS_ContentInfo *env = NULL;
        _cleanup_(BIO_free_allp) BIO *out = NULL;
        const unsigned char *q = der;
        char d[300];
        int nid;

        nid = envelope_cipher_nid(der, size);
        if (cipher_is_legacy(nid)) {
                if (!p->allow_legacy)
                        return scep_error_set(e, SCEP_RESULT_LEGACY_ALGORITHM,
                                              "the server encrypted its CertRep with %s, a legacy "
                                              "cipher we do not accept by default; set "
                                              "AllowLegacyCiphers=yes for this CA to accept it (or "
                                              "configure the server for AES or DES3)",
                                              nid == NID_des_cbc ? "single DES (DES-CBC)" : OBJ_nid2sn(nid));
                /* A private library context: the legacy provider never reaches the process's
                 * default context. */
                libctx = OSSL_LIB_CTX_new();
                if (!libctx)
                        return -ENOMEM;
                legacy = OSSL_PROVIDER_load(libctx, "legacy");
                deflt = OSSL_PROVIDER_load(libctx, "default");
                if (!legacy || !deflt)
                        return scep_error_set_openssl(e, SCEP_RESULT_DECRYPT_FAILED,
                                                      "the server encrypted its CertRep with %s, and the "
                                                      "OpenSSL legacy provider needed to read it could not "
                                                      "be loaded", OBJ_nid2sn(nid));
                rep->legacy_cipher = true;
        }

        env = CMS_ContentInfo_new_ex(libctx, NULL);
        if (!env)
                return -ENOMEM;
        if (!d2i_CMS_ContentInfo(&env, &q, (long) size) || q != der + size ||
            OBJ_obj2nid(CMS_get0_type(env)) != NID_pkcs7_enveloped)
                return scep_error_set_openssl(e, SCEP_RESULT_MALFORMED,
                                              "the SUCCESS CertRep's content is not a CMS EnvelopedData");
        out = BIO_new(BIO_s_mem());
        if (!out)
                return -ENOMEM;
        if (!CMS_decrypt(env, p->signer_key, p->signer_cert, NULL, out, CMS_BINARY)) {
                scep_cert_describe(p->signer_cert, d, sizeof d);
                return scep_error_set_openssl(e, SCEP_RESULT_DECRYPT_FAILED,
                                              "cannot decrypt the SUCCESS CertRep (%s) with the key of our "
                                              "signer certificate %s",
                                              nid != NID_undef ? OBJ_nid2sn(nid) : "unknown cipher", d);
        }
        *ret_out = TAKE_PTR(out);
        return 0;
}

static bool cert_issued_by(X509 *x, X509 *ca) {
        EVP_PKEY *k = X509_get0_pubkey(ca);
        bool ok = X509_check_issued(ca, x) == X509_V_OK && k && X509_verify(x, k) == 1;

        ERR_clear_error();
        return ok;
}

static int success_certs(const ScepCertRepParams *p, BIO *plain, ScepCertRep *rep, ScepError *e) {
        _cleanup_(CMS_ContentInfo_freep) CMS_ContentInfo *inner = NULL;
        _cleanup_(sk_X509_pop_freep) STACK_OF(X509) *certs = NULL;
        EVP_PKEY *ours = p->request_key ?: X509_REQ_get0_pubkey(p->csr);
        const unsigned char *q;
        char *data = NULL;
        long n;
        X509 *issued = NULL;
        char d[300];

        if (!ours)
                return -EINVAL;
        n = BIO_get_mem_data(plain, &data);
        if (n <= 0)
                return scep_error_set(e, SCEP_RESULT_MALFORMED,
                                      "the SUCCESS CertRep's envelope decrypts to nothing");
        q = (const unsigned char *) data;
        inner = d2i_CMS_ContentInfo(NULL, &q, n);
        if (!inner || q != (const unsigned char *) data + n ||
            OBJ_obj2nid(CMS_get0_type(inner)) != NID_pkcs7_signed)
                return scep_error_set_openssl(e, SCEP_RESULT_MALFORMED,
                                              "the SUCCESS CertRep's envelope does not hold a degenerate "
                                              "SignedData certificate list");
        certs = CMS_get1_certs(inner);
        ERR_clear_error();
        if (!certs || sk_X509_num(certs) == 0)
                return scep_error_set(e, SCEP_RESULT_NO_ISSUED_CERT,
                                      "the SUCCESS CertRep holds no certificate");
        if ((unsigned) sk_X509_num(certs) > SCEP_CACERT_MAX_CERTS)
                return scep_error_set(e, SCEP_RESULT_TOO_LARGE,
                                      "the SUCCESS CertRep holds %d certificates, more than the %u we accept",
                                      sk_X509_num(certs), SCEP_CACERT_MAX_CERTS);

        for (int i = 0; i < sk_X509_num(certs); i++) {
                X509 *x = sk_X509_value(certs, i);
                EVP_PKEY *k = X509_get0_pubkey(x);

                if (k && EVP_PKEY_eq(k, ours) == 1) {
                        issued = sk_X509_delete(certs, i);
                        break;
                }
        }
        ERR_clear_error();
        if (!issued)
                return scep_error_set(e, SCEP_RESULT_NO_ISSUED_CERT,
                                      "the SUCCESS CertRep holds %d certificate(s), none for the "
                                      "request's public key", sk_X509_num(certs));
        if (!cert_issued_by(issued, p->ca_certs->ca)) {
                char ca[300];
                scep_cert_describe(issued, d, sizeof d);
                scep_cert_describe(p->ca_certs->ca, ca, sizeof ca);
                X509_free(issued);
                return scep_error_set(e, SCEP_RESULT_UNTRUSTED,
                                      "the issued certificate %s is not signed by the CA %s", d, ca);
        }
        rep->certificate = issued;
        rep->chain = TAKE_PTR(certs);
        return 0;
}

/* ---- the CertRep ----------------------------------------------------------------------- */

/* Step 1: the DER CMS SignedData over id-data with exactly one SignerInfo. */
static int certrep_decode(const void *data, size_t size, CMS_ContentInfo **ret_cms,
                          CMS_SignerInfo **ret_si, ScepError *e) {
        _cleanup_(CMS_ContentInfo_freep) CMS_ContentInfo *cms = NULL;
        STACK_OF(CMS_SignerInfo) *sis;
        const unsigned char *q = data;

        if (size > SCEP_CERTREP_MAX_SIZE)
                return scep_error_set(e, SCEP_RESULT_TOO_LARGE,
                                      "the CertRep is %zu bytes, more than the %u we accept",
                                      size, SCEP_CERTREP_MAX_SIZE);
        if (size == 0)
                return scep_error_set(e, SCEP_RESULT_MALFORMED, "the CertRep is empty");

        cms = d2i_CMS_ContentInfo(NULL, &q, (long) size);
        if (!cms || q != (const unsigned char *) data + size)
                return scep_error_set_openssl(e, SCEP_RESULT_MALFORMED,
                                              "the CertRep (%zu bytes) is not a DER CMS message", size);
        if (OBJ_obj2nid(CMS_get0_type(cms)) != NID_pkcs7_signed)
                return scep_error_set(e, SCEP_RESULT_MALFORMED,
                                      "the CertRep is a CMS %s, not a SignedData",
                                      OBJ_nid2sn(OBJ_obj2nid(CMS_get0_type(cms))) ?: "(unknown type)");
        if (OBJ_obj2nid(CMS_get0_eContentType(cms)) != NID_pkcs7_data)
                return scep_error_set(e, SCEP_RESULT_MALFORMED,
                                      "the CertRep's SignedData does not carry id-data");
        sis = CMS_get0_SignerInfos(cms);
        if (!sis || sk_CMS_SignerInfo_num(sis) != 1)
                return scep_error_set(e, SCEP_RESULT_MALFORMED,
                                      "the CertRep has %d signers, not exactly one",
                                      sis ? sk_CMS_SignerInfo_num(sis) : 0);
        *ret_si = sk_CMS_SignerInfo_value(sis, 0);
        *ret_cms = TAKE_PTR(cms);
        return 0;
}

/* Steps 2 to 5: digest, signer, its chain, the signature. *ret_content: the signed content. */
static int certrep_verify(const ScepCertRepParams *p, CMS_ContentInfo *cms, CMS_SignerInfo *si,
                          ScepCertRep *rep, BIO **ret_content, ScepError *e) {
        _cleanup_(sk_X509_freep) STACK_OF(X509) *signers = NULL;
        _cleanup_(BIO_free_allp) BIO *dcont = NULL, *content = NULL;
        ASN1_OCTET_STRING **pos;
        X509_ALGOR *digalg = NULL;
        const ASN1_OBJECT *dobj = NULL;
        char d[300], sid[300];
        int r, dnid;

        /* 2. Digest. SHA-1 whatever AllowLegacyCiphers says: NDES signs every CertRep with it
         * (certnanny/sscep#59, #157). It is accepted for this signature only, which 3 and 4
         * tie to the certificate pinned from GetCACert; MD5 and unknown digests never. */
        CMS_SignerInfo_get0_algs(si, NULL, NULL, &digalg, NULL);
        if (digalg)
                X509_ALGOR_get0(&dobj, NULL, NULL, digalg);
        dnid = dobj ? OBJ_obj2nid(dobj) : NID_undef;
        switch (dnid) {
        case NID_sha256:
                rep->digest = SCEP_DIGEST_SHA256;
                break;
        case NID_sha384:
                rep->digest = SCEP_DIGEST_SHA384;
                break;
        case NID_sha512:
                rep->digest = SCEP_DIGEST_SHA512;
                break;
        case NID_sha1:
                rep->digest = SCEP_DIGEST_SHA1;
                break;
        default:
                return scep_error_set(e, SCEP_RESULT_LEGACY_ALGORITHM,
                                      "the server signed its CertRep with digest %s, which we never accept",
                                      dnid != NID_undef ? OBJ_nid2sn(dnid) : "(unknown)");
        }

        /* 3. Signer = our verifier. */
        signer_id_describe(si, sid, sizeof sid);
        if (CMS_SignerInfo_cert_cmp(si, p->ca_certs->verifier) != 0) {
                ERR_clear_error();
                scep_cert_describe(p->ca_certs->verifier, d, sizeof d);
                return scep_error_set(e, SCEP_RESULT_BAD_SIGNATURE,
                                      "the CertRep is signed by %s, not by the %s certificate %s from "
                                      "GetCACert", sid, p->ca_certs->ra_sign ? "RA signing" : "CA", d);
        }

        /* 4. Its chain. */
        r = verifier_check(p->ca_certs, e);
        if (r != 0)
                return r;

        /* 5. Signature, in the process's default library context: OpenSSL 3.0 applies no
         * security level to CMS signatures, so SHA-1 verifies there (tested). */
        signers = sk_X509_new_null();
        if (!signers || !sk_X509_push(signers, p->ca_certs->verifier))
                return -ENOMEM;
        pos = CMS_get0_content(cms);
        if (!pos || !*pos) {
                /* Detached or absent content (FAILURE/PENDING may omit it): verify over nothing. */
                dcont = BIO_new_mem_buf("", 0);
                if (!dcont)
                        return -ENOMEM;
        }
        content = BIO_new(BIO_s_mem());
        if (!content)
                return -ENOMEM;
        if (CMS_verify(cms, signers, NULL, dcont, content,
                       CMS_NOINTERN | CMS_NO_SIGNER_CERT_VERIFY | CMS_BINARY) != 1) {
                scep_cert_describe(p->ca_certs->verifier, d, sizeof d);
                return scep_error_set_openssl(e, SCEP_RESULT_BAD_SIGNATURE,
                                              "the CertRep's signature by %s does not verify", d);
        }
        *ret_content = TAKE_PTR(content);
        return 0;
}

int scep_certrep_read_unverified(const void *data, size_t size, ScepCertRepClaim *ret,
                                 ScepError *ret_error) {
        _cleanup_(CMS_ContentInfo_freep) CMS_ContentInfo *cms = NULL;
        CMS_SignerInfo *si = NULL;
        int r;

        if (!ret || (!data && size > 0))
                return -EINVAL;
        r = certrep_decode(data, size, &cms, &si, ret_error);
        if (r != 0)
                return r;
        claim_read(si, ret);
        return 0;
}

int scep_certrep_parse(const ScepCertRepParams *p, const void *data, size_t size,
                       ScepCertRep **ret, ScepError *ret_error) {
        _cleanup_(scep_certrep_freep) ScepCertRep *rep = NULL;
        _cleanup_(CMS_ContentInfo_freep) CMS_ContentInfo *cms = NULL;
        _cleanup_(BIO_free_allp) BIO *content = NULL, *plain = NULL;
        CMS_SignerInfo *si = NULL;
        ASN1_TYPE *t;
        char buf[SCEP_TRANSACTION_ID_SIZE + 8];
        int r, v;

        if (!p || !ret || !p->request || !p->ca_certs || !p->ca_certs->verifier || !p->ca_certs->ca ||
            !p->signer_cert || !p->signer_key || (!p->csr && !p->request_key) || (!data && size > 0))
                return -EINVAL;

        rep = calloc(1, sizeof *rep);
        if (!rep)
                return -ENOMEM;
        rep->fail_info = SCEP_FAIL_NONE;

        /* 1. Structure. */
        r = certrep_decode(data, size, &cms, &si, ret_error);
        if (r != 0)
                return r;

        /* 2-5. Verification; a reply that fails it is described, labelled unverified. */
        r = certrep_verify(p, cms, si, rep, &content, ret_error);
        if (r > 0)
                error_append_claim(ret_error, si);
        if (r != 0)
                return r;

        /* 6. Attributes. */
        r = attr_number(si, SCEP_OID_MESSAGE_TYPE, "messageType", &v, ret_error);
        if (r != 0)
                return r;
        if (v < 0)
                return scep_error_set(ret_error, SCEP_RESULT_BAD_MESSAGE_TYPE,
                                      "the reply has no messageType attribute (%s)",
                                      SCEP_OID_MESSAGE_TYPE);
        if (v != SCEP_MESSAGE_CERT_REP)
                return scep_error_set(ret_error, SCEP_RESULT_BAD_MESSAGE_TYPE,
                                      "the reply's messageType is %d, not CertRep (3)", v);

        r = attr_get(si, SCEP_OID_TRANSACTION_ID, "transactionID", &t, ret_error);
        if (r != 0)
                return r;
        if (!t)
                return scep_error_set(ret_error, SCEP_RESULT_TRANSACTION_MISMATCH,
                                      "the CertRep has no transactionID attribute; ours is %s",
                                      p->request->transaction_id);
        r = attr_string(t, SCEP_OID_TRANSACTION_ID, "transactionID", buf, sizeof buf, ret_error);
        if (r != 0)
                return r;
        if (strcmp(buf, p->request->transaction_id) != 0)
                return scep_error_set(ret_error, SCEP_RESULT_TRANSACTION_MISMATCH,
                                      "the CertRep's transactionID \"%.70s\" is not ours (%s): the "
                                      "answer belongs to another request", buf,
                                      p->request->transaction_id);

        r = attr_get(si, SCEP_OID_RECIPIENT_NONCE, "recipientNonce", &t, ret_error);
        if (r != 0)
                return r;
        if (!t)
                return scep_error_set(ret_error, SCEP_RESULT_NONCE_MISMATCH,
                                      "the CertRep has no recipientNonce attribute (%s)",
                                      SCEP_OID_RECIPIENT_NONCE);
        if (t->type != V_ASN1_OCTET_STRING)
                return scep_error_set(ret_error, SCEP_RESULT_BAD_ATTRIBUTE,
                                      "the CertRep's recipientNonce is not an OCTET STRING");
        if (ASN1_STRING_length(t->value.octet_string) != (int) SCEP_NONCE_SIZE ||
            CRYPTO_memcmp(ASN1_STRING_get0_data(t->value.octet_string), p->request->sender_nonce,
                          SCEP_NONCE_SIZE) != 0)
                return scep_error_set(ret_error, SCEP_RESULT_NONCE_MISMATCH,
                                      "the CertRep's recipientNonce (%d bytes) differs from the "
                                      "senderNonce of our request: a replayed or misdirected answer",
                                      ASN1_STRING_length(t->value.octet_string));

        r = attr_number(si, SCEP_OID_PKI_STATUS, "pkiStatus", &v, ret_error);
        if (r != 0)
                return r;
        if (v < 0)
                return scep_error_set(ret_error, SCEP_RESULT_BAD_ATTRIBUTE,
                                      "the CertRep has no pkiStatus attribute (%s)", SCEP_OID_PKI_STATUS);
        if (v != SCEP_STATUS_SUCCESS && v != SCEP_STATUS_FAILURE && v != SCEP_STATUS_PENDING)
                return scep_error_set(ret_error, SCEP_RESULT_BAD_ATTRIBUTE,
                                      "the CertRep's pkiStatus %d is not 0, 2 or 3", v);
        rep->status = (ScepPkiStatus) v;

        ms_hresult_get(si, rep->ms_hresult);

        if (rep->status == SCEP_STATUS_FAILURE) {
                r = attr_number(si, SCEP_OID_FAIL_INFO, "failInfo", &v, ret_error);
                if (r != 0)
                        return r;
                if (v > SCEP_FAIL_BAD_CERT_ID)
                        return scep_error_set(ret_error, SCEP_RESULT_BAD_ATTRIBUTE,
                                              "the CertRep's failInfo %d is not one of 0..4", v);
                rep->fail_info = v < 0 ? SCEP_FAIL_NONE : (ScepFailInfo) v;
        }

        /* 7. SUCCESS: the certificate. */
        if (rep->status == SCEP_STATUS_SUCCESS) {
                char *env = NULL;
                long n = BIO_get_mem_data(content, &env);

                if (n <= 0)
                        return scep_error_set(ret_error, SCEP_RESULT_MALFORMED,
                                              "the SUCCESS CertRep carries no EnvelopedData");
                r = decrypt_envelope(p, (const uint8_t *) env, (size_t) n, rep, &plain, ret_error);
                if (r != 0)
                        return r;
                r = success_certs(p, plain, rep, ret_error);
                if (r != 0)
                        return r;
        }

        ERR_clear_error();
        *ret = TAKE_PTR(rep);
        return 0;
}

int scep_certs_to_pem(X509 *x, STACK_OF(X509) *more, char **ret) {
        _cleanup_(BIO_free_allp) BIO *b = BIO_new(BIO_s_mem());
        int ok = b != NULL;

        if (ok && x)
                ok = PEM_write_bio_X509(b, x);
        for (int i = 0; ok && more && i < sk_X509_num(more); i++)
                ok = PEM_write_bio_X509(b, sk_X509_value(more, i));
        if (!ok)
                return -ENOMEM;
        *ret = scep_bio_to_string(b);
        return *ret ? 0 : -ENOMEM;
}
