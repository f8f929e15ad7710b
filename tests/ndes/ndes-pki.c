/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/cms.h>
#include <openssl/err.h>
#include <openssl/pkcs7.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/x509v3.h>

#include "ndes-pki.h"

#define OID_MESSAGE_TYPE    "2.16.840.1.113733.1.9.2"
#define OID_PKI_STATUS      "2.16.840.1.113733.1.9.3"
#define OID_FAIL_INFO       "2.16.840.1.113733.1.9.4"
#define OID_SENDER_NONCE    "2.16.840.1.113733.1.9.5"
#define OID_RECIPIENT_NONCE "2.16.840.1.113733.1.9.6"
#define OID_TRANSACTION_ID  "2.16.840.1.113733.1.9.7"
#define OID_MS_HRESULT      "1.3.6.1.4.1.311.21.33"
#define OID_MS_TEMPLATE     "1.3.6.1.4.1.311.20.2"
#define OID_MS_ENROLL_AGENT "1.3.6.1.4.1.311.20.2.1"

/* Bounds on what an attacker's CSR can make us copy. */
#define MAX_SAN_DNS 100
#define MAX_INNER_SIZE (64 * 1024)

void scep_request_done(ScepRequest *r) {
        if (!r)
                return;
        X509_free(r->signer);
        OPENSSL_clear_free(r->inner, r->inner_size);
        *r = (ScepRequest) {};
}

static const ASN1_STRING *signed_attr(CMS_SignerInfo *si, const char *oid, int type) {
        ASN1_OBJECT *obj = OBJ_txt2obj(oid, 1);
        if (!obj)
                return NULL;
        /* -3: the attribute must occur once, with one value */
        const ASN1_STRING *s = CMS_signed_get0_data_by_OBJ(si, obj, -3, type);
        ASN1_OBJECT_free(obj);
        return s;
}

static int mem_bio_take(BIO *b, unsigned char **ret, size_t *ret_size) {
        char *p;
        long n = BIO_get_mem_data(b, &p);
        if (n < 0)
                return -EIO;
        unsigned char *c = OPENSSL_malloc(n > 0 ? (size_t) n : 1);
        if (!c)
                return -ENOMEM;
        if (n > 0)
                memcpy(c, p, n);
        *ret = c;
        *ret_size = n;
        return 0;
}


/* Reads one DER element at *p (within end); definite lengths only. */
static int der_read(const unsigned char **p, const unsigned char *end, int *ret_tag, int *ret_class,
                    bool *ret_cons, const unsigned char **ret_start, const unsigned char **ret_content,
                    long *ret_len) {
        const unsigned char *q = *p;
        long len;
        int tag, cls;
        if (q >= end)
                return -EBADMSG;
        int k = ASN1_get_object(&q, &len, &tag, &cls, end - q);
        if (k & 0x80 || k & 0x01 || len < 0 || len > end - q)
                return -EBADMSG;
        *ret_start = *p;
        *ret_tag = tag;
        *ret_class = cls;
        *ret_cons = k & V_ASN1_CONSTRUCTED;
        *ret_content = q;
        *ret_len = len;
        *p = q + len;
        return 0;
}

/* Windows verifies the signature over signedAttrs exactly as the client encoded them; some
 * clients (micromdm's Go pkcs7) do not sort that SET OF, and OpenSSL's CMS_verify re-encodes it
 * sorted. So: find the raw signedAttrs of the only SignerInfo and verify over those bytes. */
static bool verify_raw_signed_attrs(const unsigned char *der, size_t size, CMS_ContentInfo *cms,
                                    CMS_SignerInfo *si, X509 *signer, const EVP_MD *md) {
        const unsigned char *p = der, *end = der + size, *start, *c, *attrs = NULL, *sig = NULL;
        long len, attrs_len = 0, sig_len = 0;
        int tag, cls;
        bool cons, ok = false;
        unsigned char *buf = NULL;
        EVP_MD_CTX *mctx = NULL;

        if (!md)
                return false;
        /* ContentInfo */
        if (der_read(&p, end, &tag, &cls, &cons, &start, &c, &len) < 0 || tag != V_ASN1_SEQUENCE)
                return false;
        p = c, end = c + len;
        if (der_read(&p, end, &tag, &cls, &cons, &start, &c, &len) < 0 || tag != V_ASN1_OBJECT)
                return false;
        if (der_read(&p, end, &tag, &cls, &cons, &start, &c, &len) < 0 || cls != V_ASN1_CONTEXT_SPECIFIC || tag != 0)
                return false;
        p = c, end = c + len;
        /* SignedData */
        if (der_read(&p, end, &tag, &cls, &cons, &start, &c, &len) < 0 || tag != V_ASN1_SEQUENCE)
                return false;
        p = c, end = c + len;
        for (int i = 0; i < 3; i++) /* version, digestAlgorithms, encapContentInfo */
                if (der_read(&p, end, &tag, &cls, &cons, &start, &c, &len) < 0)
                        return false;
        for (;;) {
                if (der_read(&p, end, &tag, &cls, &cons, &start, &c, &len) < 0)
                        return false;
                if (cls == V_ASN1_UNIVERSAL && tag == V_ASN1_SET)
                        break; /* signerInfos */
        }
        p = c, end = c + len;
        if (der_read(&p, end, &tag, &cls, &cons, &start, &c, &len) < 0 || tag != V_ASN1_SEQUENCE || p != end)
                return false;
        p = c, end = c + len;
        for (int i = 0; i < 3; i++) /* version, sid, digestAlgorithm */
                if (der_read(&p, end, &tag, &cls, &cons, &start, &c, &len) < 0)
                        return false;
        if (der_read(&p, end, &tag, &cls, &cons, &start, &c, &len) < 0 || cls != V_ASN1_CONTEXT_SPECIFIC || tag != 0)
                return false;
        attrs = start;
        attrs_len = (c - start) + len;
        if (der_read(&p, end, &tag, &cls, &cons, &start, &c, &len) < 0 || tag != V_ASN1_SEQUENCE)
                return false;
        if (der_read(&p, end, &tag, &cls, &cons, &start, &c, &len) < 0 || tag != V_ASN1_OCTET_STRING)
                return false;
        sig = c;
        sig_len = len;

        /* messageDigest must match the content */
        ASN1_OCTET_STRING **content = CMS_get0_content(cms);
        const ASN1_STRING *want = signed_attr(si, "1.2.840.113549.1.9.4", V_ASN1_OCTET_STRING);
        unsigned char got[EVP_MAX_MD_SIZE];
        unsigned got_len = 0;
        if (!content || !*content || !want ||
            EVP_Digest(ASN1_STRING_get0_data(*content), ASN1_STRING_length(*content), got, &got_len, md, NULL) != 1 ||
            (int) got_len != ASN1_STRING_length(want) || memcmp(got, ASN1_STRING_get0_data(want), got_len) != 0)
                goto finish;

        buf = OPENSSL_memdup(attrs, attrs_len);
        mctx = EVP_MD_CTX_new();
        if (!buf || !mctx)
                goto finish;
        buf[0] = 0x31; /* [0] IMPLICIT -> SET OF, as signed */
        ok = EVP_DigestVerifyInit(mctx, NULL, md, NULL, X509_get0_pubkey(signer)) == 1 &&
             EVP_DigestVerify(mctx, sig, sig_len, buf, attrs_len) == 1;
finish:
        ERR_clear_error();
        EVP_MD_CTX_free(mctx);
        OPENSSL_free(buf);
        return ok;
}

int scep_request_parse(const unsigned char *der, size_t size, X509 *ra_enc_cert, EVP_PKEY *ra_enc_key,
                       ScepRequest *ret) {
        ScepRequest r = {};
        CMS_ContentInfo *cms = NULL, *env = NULL;
        STACK_OF(X509) *certs = NULL;
        BIO *out = NULL, *in = NULL;
        int res = -EBADMSG;

        if (size == 0 || size > (size_t) LONG_MAX)
                return -EBADMSG;

        const unsigned char *p = der;
        cms = d2i_CMS_ContentInfo(NULL, &p, (long) size);
        if (!cms || OBJ_obj2nid(CMS_get0_type(cms)) != NID_pkcs7_signed)
                goto finish;

        STACK_OF(CMS_SignerInfo) *sis = CMS_get0_SignerInfos(cms);
        if (!sis || sk_CMS_SignerInfo_num(sis) != 1)
                goto finish;
        CMS_SignerInfo *si = sk_CMS_SignerInfo_value(sis, 0);

        certs = CMS_get1_certs(cms);
        for (int i = 0; certs && i < sk_X509_num(certs); i++)
                if (CMS_SignerInfo_cert_cmp(si, sk_X509_value(certs, i)) == 0) {
                        r.signer = X509_dup(sk_X509_value(certs, i));
                        break;
                }
        if (!r.signer)
                goto finish;

        X509_ALGOR *dig = NULL;
        CMS_SignerInfo_get0_algs(si, NULL, NULL, &dig, NULL);
        if (dig) {
                const ASN1_OBJECT *o;
                X509_ALGOR_get0(&o, NULL, NULL, dig);
                r.digest = EVP_get_digestbynid(OBJ_obj2nid(o));
        }

        const ASN1_STRING *s = signed_attr(si, OID_TRANSACTION_ID, V_ASN1_PRINTABLESTRING);
        if (!s || ASN1_STRING_length(s) < 1 || ASN1_STRING_length(s) > SCEP_TXID_MAX)
                goto finish;
        memcpy(r.transaction_id, ASN1_STRING_get0_data(s), ASN1_STRING_length(s));
        r.transaction_id[ASN1_STRING_length(s)] = 0;
        if (strlen(r.transaction_id) != (size_t) ASN1_STRING_length(s))
                goto finish;

        s = signed_attr(si, OID_MESSAGE_TYPE, V_ASN1_PRINTABLESTRING);
        if (s && ASN1_STRING_length(s) >= 1 && ASN1_STRING_length(s) <= 3) {
                int v = 0;
                const unsigned char *d = ASN1_STRING_get0_data(s);
                for (int i = 0; i < ASN1_STRING_length(s); i++) {
                        if (d[i] < '0' || d[i] > '9') {
                                v = 0;
                                break;
                        }
                        v = v * 10 + (d[i] - '0');
                }
                r.message_type = v;
        }

        s = signed_attr(si, OID_SENDER_NONCE, V_ASN1_OCTET_STRING);
        if (s && ASN1_STRING_length(s) == SCEP_NONCE_SIZE) {
                memcpy(r.sender_nonce, ASN1_STRING_get0_data(s), SCEP_NONCE_SIZE);
                r.have_nonce = true;
        }

        /* Signature over the content, without building a chain: the signer is self-signed. */
        out = BIO_new(BIO_s_mem());
        if (!out) {
                res = -ENOMEM;
                goto finish;
        }
        r.signature_ok = CMS_verify(cms, certs, NULL, NULL, out,
                                    CMS_NO_SIGNER_CERT_VERIFY | CMS_BINARY) == 1;
        ERR_clear_error();
        if (!r.signature_ok)
                r.signature_ok = verify_raw_signed_attrs(der, size, cms, si, r.signer, r.digest);

        ASN1_OCTET_STRING **content = CMS_get0_content(cms);
        if (r.signature_ok && content && *content && ASN1_STRING_length(*content) > 0) {
                const unsigned char *q = ASN1_STRING_get0_data(*content);
                env = d2i_CMS_ContentInfo(NULL, &q, ASN1_STRING_length(*content));
                if (env && OBJ_obj2nid(CMS_get0_type(env)) == NID_pkcs7_enveloped) {
                        BIO_free(out);
                        out = BIO_new(BIO_s_mem());
                        if (!out) {
                                res = -ENOMEM;
                                goto finish;
                        }
                        if (CMS_decrypt(env, ra_enc_key, ra_enc_cert, NULL, out, CMS_BINARY) == 1 &&
                            BIO_ctrl_pending(out) <= MAX_INNER_SIZE &&
                            mem_bio_take(out, &r.inner, &r.inner_size) == 0)
                                r.decrypted = true;
                        ERR_clear_error();
                }
        }

        res = 0;
        *ret = r;
        r = (ScepRequest) {};
finish:
        ERR_clear_error();
        scep_request_done(&r);
        BIO_free(in);
        BIO_free(out);
        sk_X509_pop_free(certs, X509_free);
        CMS_ContentInfo_free(env);
        CMS_ContentInfo_free(cms);
        return res;
}

static int add_attr_printable(CMS_SignerInfo *si, const char *oid, const char *value) {
        ASN1_OBJECT *obj = OBJ_txt2obj(oid, 1);
        if (!obj)
                return -EINVAL;
        int ok = CMS_signed_add1_attr_by_OBJ(si, obj, V_ASN1_PRINTABLESTRING, value, (int) strlen(value));
        ASN1_OBJECT_free(obj);
        return ok ? 0 : -EIO;
}

static int add_attr_octets(CMS_SignerInfo *si, const char *oid, const unsigned char *value, int len) {
        ASN1_OBJECT *obj = OBJ_txt2obj(oid, 1);
        if (!obj)
                return -EINVAL;
        int ok = CMS_signed_add1_attr_by_OBJ(si, obj, V_ASN1_OCTET_STRING, value, len);
        ASN1_OBJECT_free(obj);
        return ok ? 0 : -EIO;
}

static int cms_to_der(CMS_ContentInfo *cms, unsigned char **ret, size_t *ret_size) {
        unsigned char *der = NULL;
        int n = i2d_CMS_ContentInfo(cms, &der);
        if (n <= 0)
                return -EIO;
        *ret = der;
        *ret_size = n;
        return 0;
}

static int build_envelope(const ScepRequest *req, const ScepReplyOptions *opts, STACK_OF(X509) *certs,
                          unsigned char **ret, size_t *ret_size) {
        CMS_ContentInfo *env = NULL;
        unsigned char *degder = NULL;
        size_t degsize = 0;
        BIO *in = NULL;
        int r;

        /* the issued certificate and its chain as a degenerate SignedData */
        r = pki_certs_only(certs, &degder, &degsize);
        if (r < 0)
                return r;
        r = -EIO;

        env = CMS_encrypt(NULL, NULL, opts->cipher, CMS_BINARY | CMS_PARTIAL);
        if (!env)
                goto finish;
        CMS_RecipientInfo *ri = CMS_add1_recipient_cert(env, req->signer, opts->oaep ? CMS_KEY_PARAM : 0);
        if (!ri)
                goto finish;
        if (opts->oaep) {
                EVP_PKEY_CTX *pctx = CMS_RecipientInfo_get0_pkey_ctx(ri);
                if (!pctx || EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_OAEP_PADDING) <= 0)
                        goto finish;
        }
        in = BIO_new_mem_buf(degder, (int) degsize);
        if (!in || CMS_final(env, in, NULL, CMS_BINARY) != 1)
                goto finish;
        r = cms_to_der(env, ret, ret_size);
finish:
        BIO_free(in);
        OPENSSL_free(degder);
        CMS_ContentInfo_free(env);
        return r;
}

int scep_certrep_build(const ScepRequest *req, const ScepReplyOptions *opts, int status, int fail_info,
                       int32_t hresult, STACK_OF(X509) *certs, unsigned char **ret, size_t *ret_size) {
        static const unsigned char zero = 0;
        unsigned char *content = NULL;
        size_t content_size = 0;
        CMS_ContentInfo *cms = NULL;
        BIO *in = NULL;
        char buf[32];
        int r;

        if (status == SCEP_STATUS_SUCCESS) {
                r = build_envelope(req, opts, certs, &content, &content_size);
                if (r < 0)
                        return r;
        }

        r = -EIO;
        cms = CMS_sign(NULL, NULL, NULL, NULL, CMS_PARTIAL | CMS_BINARY);
        if (!cms)
                goto finish;
        CMS_SignerInfo *si = CMS_add1_signer(cms, opts->ra_sign_cert, opts->ra_sign_key, opts->digest,
                                             CMS_BINARY | CMS_NOSMIMECAP |
                                             (opts->include_certs ? 0 : CMS_NOCERTS));
        if (!si)
                goto finish;

        unsigned char nonce[SCEP_NONCE_SIZE];
        if (RAND_bytes(nonce, sizeof nonce) != 1)
                goto finish;

        snprintf(buf, sizeof buf, "%d", status);
        if (add_attr_printable(si, OID_MESSAGE_TYPE, "3") < 0 ||
            add_attr_printable(si, OID_PKI_STATUS, buf) < 0 ||
            add_attr_printable(si, OID_TRANSACTION_ID, req->transaction_id) < 0 ||
            add_attr_octets(si, OID_SENDER_NONCE, nonce, sizeof nonce) < 0)
                goto finish;
        if (req->have_nonce && add_attr_octets(si, OID_RECIPIENT_NONCE, req->sender_nonce, SCEP_NONCE_SIZE) < 0)
                goto finish;
        if (status == SCEP_STATUS_FAILURE) {
                snprintf(buf, sizeof buf, "%d", fail_info);
                if (add_attr_printable(si, OID_FAIL_INFO, buf) < 0)
                        goto finish;
        }
        if (hresult != 0) {
                snprintf(buf, sizeof buf, "%" PRId32, hresult);
                if (add_attr_printable(si, OID_MS_HRESULT, buf) < 0)
                        goto finish;
        }

        /* NDES sends a single 0x00 byte as content when there is no envelope. */
        in = content ? BIO_new_mem_buf(content, (int) content_size) : BIO_new_mem_buf(&zero, 1);
        if (!in || CMS_final(cms, in, NULL, CMS_BINARY) != 1)
                goto finish;
        r = cms_to_der(cms, ret, ret_size);
finish:
        /* errors stay queued for the caller to report */
        BIO_free(in);
        OPENSSL_free(content);
        CMS_ContentInfo_free(cms);
        return r;
}

EVP_PKEY *pki_rsa_generate(int bits) {
        return EVP_RSA_gen((unsigned) bits);
}

static int add_ext(X509 *x, X509 *issuer, const char *name, const char *value) {
        X509V3_CTX ctx;
        X509V3_set_ctx(&ctx, issuer ? issuer : x, x, NULL, NULL, 0);
        X509_EXTENSION *e = X509V3_EXT_nconf(NULL, &ctx, name, value);
        if (!e)
                return -EINVAL;
        int ok = X509_add_ext(x, e, -1);
        X509_EXTENSION_free(e);
        return ok ? 0 : -EIO;
}

static int set_random_serial(X509 *x) {
        BIGNUM *bn = BN_new();
        int r = -EIO;
        if (bn && BN_rand(bn, 127, BN_RAND_TOP_ONE, BN_RAND_BOTTOM_ANY) == 1 &&
            BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)))
                r = 0;
        BN_free(bn);
        return r;
}

X509 *pki_make_authority_cert(CertProfile profile, const char *subject, EVP_PKEY *key, X509 *issuer,
                              EVP_PKEY *issuer_key, time_t now) {
        X509 *x = X509_new();
        X509_NAME *name = NULL;
        if (!x)
                return NULL;

        name = X509_NAME_new();
        if (!name)
                goto fail;
        /* subject as comma separated "K=V" pairs, most significant first */
        char buf[256];
        if (strlen(subject) >= sizeof buf)
                goto fail;
        strcpy(buf, subject);
        for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
                char *eq = strchr(tok, '=');
                if (!eq)
                        goto fail;
                *eq = 0;
                if (!X509_NAME_add_entry_by_txt(name, tok, MBSTRING_UTF8, (unsigned char *) eq + 1, -1, -1, 0))
                        goto fail;
        }

        if (!X509_set_version(x, 2) || set_random_serial(x) < 0 ||
            !X509_set_subject_name(x, name) ||
            !X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : name) ||
            !X509_set_pubkey(x, key) ||
            !X509_time_adj_ex(X509_getm_notBefore(x), -2 * 365, 0, &now) ||
            !X509_time_adj_ex(X509_getm_notAfter(x), 20 * 365, 0, &now))
                goto fail;

        if (add_ext(x, issuer, "subjectKeyIdentifier", "hash") < 0)
                goto fail;
        if (issuer && add_ext(x, issuer, "authorityKeyIdentifier", "keyid:always") < 0)
                goto fail;

        switch (profile) {
        case CERT_PROFILE_CA:
                if (add_ext(x, issuer, "basicConstraints", "critical,CA:TRUE") < 0 ||
                    add_ext(x, issuer, "keyUsage", "critical,digitalSignature,keyCertSign,cRLSign") < 0)
                        goto fail;
                break;
        case CERT_PROFILE_RA_SIGN:
                /* template "Exchange Enrollment Agent (Offline request)" */
                if (add_ext(x, issuer, "keyUsage", "critical,digitalSignature") < 0 ||
                    add_ext(x, issuer, "extendedKeyUsage", OID_MS_ENROLL_AGENT) < 0 ||
                    add_ext(x, issuer, OID_MS_TEMPLATE, "ASN1:BMPSTRING:EnrollmentAgentOffline") < 0)
                        goto fail;
                break;
        case CERT_PROFILE_RA_ENCRYPT:
                /* template "CEP Encryption" */
                if (add_ext(x, issuer, "keyUsage", "critical,keyEncipherment") < 0 ||
                    add_ext(x, issuer, "extendedKeyUsage", OID_MS_ENROLL_AGENT) < 0 ||
                    add_ext(x, issuer, OID_MS_TEMPLATE, "ASN1:BMPSTRING:CEPEncryption") < 0)
                        goto fail;
                break;
        }

        if (X509_sign(x, issuer_key ? issuer_key : key, EVP_sha256()) <= 0)
                goto fail;
        X509_NAME_free(name);
        return x;
fail:
        ERR_clear_error();
        X509_NAME_free(name);
        X509_free(x);
        return NULL;
}

/* otherName 1.3.6.1.4.1.311.20.2.3 (userPrincipalName) holding a UTF8String. */
static bool is_upn(const GENERAL_NAME *g) {
        char oid[64];
        if (g->type != GEN_OTHERNAME || !g->d.otherName || !g->d.otherName->value ||
            g->d.otherName->value->type != V_ASN1_UTF8STRING)
                return false;
        if (OBJ_obj2txt(oid, sizeof oid, g->d.otherName->type_id, 1) <= 0)
                return false;
        return strcmp(oid, "1.3.6.1.4.1.311.20.2.3") == 0;
}

static int copy_dns_sans(X509_REQ *req, X509 *x) {
        STACK_OF(X509_EXTENSION) *exts = X509_REQ_get_extensions(req);
        GENERAL_NAMES *in = NULL, *out = NULL;
        int r = 0;

        if (!exts)
                return 0;
        int i = X509v3_get_ext_by_NID(exts, NID_subject_alt_name, -1);
        if (i < 0)
                goto finish;
        in = X509V3_EXT_d2i(X509v3_get_ext(exts, i));
        if (!in) {
                r = -EBADMSG;
                goto finish;
        }
        out = GENERAL_NAMES_new();
        if (!out) {
                r = -ENOMEM;
                goto finish;
        }
        for (int j = 0; j < sk_GENERAL_NAME_num(in); j++) {
                GENERAL_NAME *g = sk_GENERAL_NAME_value(in, j);
                /* dNSName, rfc822Name and the UPN otherName, as the request has them (a user
                 * template issues the UPN and e-mail; other kinds are dropped as before). */
                if (g->type != GEN_DNS && g->type != GEN_EMAIL && !is_upn(g))
                        continue;
                if (sk_GENERAL_NAME_num(out) >= MAX_SAN_DNS) {
                        r = -E2BIG;
                        goto finish;
                }
                GENERAL_NAME *c = GENERAL_NAME_dup(g);
                if (!c || !sk_GENERAL_NAME_push(out, c)) {
                        GENERAL_NAME_free(c);
                        r = -ENOMEM;
                        goto finish;
                }
        }
        if (sk_GENERAL_NAME_num(out) > 0 &&
            X509_add1_ext_i2d(x, NID_subject_alt_name, out, 0, X509V3_ADD_DEFAULT) != 1)
                r = -EIO;
finish:
        GENERAL_NAMES_free(in);
        GENERAL_NAMES_free(out);
        sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
        return r;
}

static int copy_key_usage(X509_REQ *req, X509 *x, bool *ret_sig, bool *ret_enc) {
        STACK_OF(X509_EXTENSION) *exts = X509_REQ_get_extensions(req);
        ASN1_BIT_STRING *ku = NULL;
        int r = 0;

        if (exts) {
                int i = X509v3_get_ext_by_NID(exts, NID_key_usage, -1);
                if (i >= 0) {
                        ku = X509V3_EXT_d2i(X509v3_get_ext(exts, i));
                        if (!ku)
                                r = -EBADMSG;
                }
        }
        if (r == 0 && ku) {
                if (X509_add1_ext_i2d(x, NID_key_usage, ku, 1, X509V3_ADD_DEFAULT) != 1)
                        r = -EIO;
                *ret_sig = ASN1_BIT_STRING_get_bit(ku, 0); /* digitalSignature */
                *ret_enc = ASN1_BIT_STRING_get_bit(ku, 2); /* keyEncipherment */
        } else if (r == 0) {
                if (add_ext(x, NULL, "keyUsage", "critical,digitalSignature,keyEncipherment") < 0)
                        r = -EIO;
                *ret_sig = *ret_enc = true;
        }
        ASN1_BIT_STRING_free(ku);
        sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
        return r;
}

/* NDES picks the template from the CSR's keyUsage. */
static const char *template_for(bool sig, bool enc) {
        if (sig && !enc)
                return "ASN1:BMPSTRING:SignatureTemplate";
        if (enc && !sig)
                return "ASN1:BMPSTRING:EncryptionTemplate";
        return "ASN1:BMPSTRING:GeneralPurposeTemplate";
}

int pki_issue(X509_REQ *req, X509 *ca, EVP_PKEY *ca_key, time_t now, long validity_sec, X509 **ret) {
        X509 *x = X509_new();
        int r = -EIO;
        if (!x)
                return -ENOMEM;
        EVP_PKEY *pub = X509_REQ_get0_pubkey(req);
        if (!pub) {
                r = -EBADMSG;
                goto finish;
        }
        if (!X509_set_version(x, 2) || set_random_serial(x) < 0 ||
            !X509_set_subject_name(x, X509_REQ_get_subject_name(req)) ||
            !X509_set_issuer_name(x, X509_get_subject_name(ca)) ||
            !X509_set_pubkey(x, pub) ||
            !X509_time_adj_ex(X509_getm_notBefore(x), 0, validity_sec > 0 ? -1 : -600, &now) ||
            !(validity_sec > 0 ? X509_time_adj_ex(X509_getm_notAfter(x), 0, validity_sec, &now)
                               : X509_time_adj_ex(X509_getm_notAfter(x), 365, 0, &now)))
                goto finish;
        r = copy_dns_sans(req, x);
        if (r < 0)
                goto finish;
        bool sig = false, enc = false;
        r = copy_key_usage(req, x, &sig, &enc);
        if (r < 0)
                goto finish;
        r = -EIO;
        if (add_ext(x, ca, "basicConstraints", "critical,CA:FALSE") < 0 ||
            add_ext(x, ca, "subjectKeyIdentifier", "hash") < 0 ||
            add_ext(x, ca, "authorityKeyIdentifier", "keyid:always") < 0 ||
            add_ext(x, ca, "extendedKeyUsage", "serverAuth,clientAuth") < 0 ||
            add_ext(x, ca, OID_MS_TEMPLATE, template_for(sig, enc)) < 0)
                goto finish;
        if (X509_sign(x, ca_key, EVP_sha256()) <= 0)
                goto finish;
        /* a copy decoded from the signed DER, so that cached data (the fingerprint that
         * CMS_add0_cert compares) describes the signed certificate */
        X509 *fresh = X509_dup(x);
        if (!fresh)
                goto finish;
        *ret = fresh;
        r = 0;
finish:
        ERR_clear_error();
        X509_free(x);
        return r;
}

int pki_req_challenge(X509_REQ *req, char *buf, size_t size) {
        int i = X509_REQ_get_attr_by_NID(req, NID_pkcs9_challengePassword, -1);
        if (i < 0)
                return -ENOENT;
        X509_ATTRIBUTE *a = X509_REQ_get_attr(req, i);
        if (!a || X509_ATTRIBUTE_count(a) != 1)
                return -ENOENT;
        ASN1_TYPE *t = X509_ATTRIBUTE_get0_type(a, 0);
        if (!t)
                return -ENOENT;
        switch (t->type) {
        case V_ASN1_PRINTABLESTRING:
        case V_ASN1_UTF8STRING:
        case V_ASN1_IA5STRING:
        case V_ASN1_T61STRING:
                break;
        default:
                return -ENOENT;
        }
        const ASN1_STRING *s = t->value.asn1_string;
        int n = ASN1_STRING_length(s);
        if (n < 0 || (size_t) n >= size)
                return -ENOENT;
        memcpy(buf, ASN1_STRING_get0_data(s), n);
        buf[n] = 0;
        if (strlen(buf) != (size_t) n)
                return -ENOENT;
        return 0;
}

X509_REQ *pki_req_from_der(const unsigned char *der, size_t size) {
        const unsigned char *p = der;
        if (size > LONG_MAX)
                return NULL;
        X509_REQ *req = d2i_X509_REQ(NULL, &p, (long) size);
        ERR_clear_error();
        return req;
}

int pki_certs_only(STACK_OF(X509) *certs, unsigned char **ret, size_t *ret_size) {
        PKCS7 *p7 = PKCS7_new();
        int r = -EIO;
        if (!p7)
                return -ENOMEM;
        if (!PKCS7_set_type(p7, NID_pkcs7_signed) || !PKCS7_content_new(p7, NID_pkcs7_data))
                goto finish;
        for (int i = 0; i < sk_X509_num(certs); i++)
                if (!PKCS7_add_certificate(p7, sk_X509_value(certs, i)))
                        goto finish;
        unsigned char *der = NULL;
        int n = i2d_PKCS7(p7, &der);
        if (n <= 0)
                goto finish;
        *ret = der;
        *ret_size = n;
        r = 0;
finish:
        ERR_clear_error();
        PKCS7_free(p7);
        return r;
}
