/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <errno.h>
#include <openssl/cms.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <string.h>

#include "scep-csr.h"
#include "scep-message.h"
#include "scep-oids.h"
#include "scep-util.h"

ScepMessage *scep_message_free(ScepMessage *m) {
        if (!m)
                return NULL;
        free(m->der);
        free(m);
        return NULL;
}

static void scep_message_freep(ScepMessage **m) {
        scep_message_free(*m);
}

int scep_transaction_id(X509_REQ *csr, char ret[SCEP_TRANSACTION_ID_SIZE]) {
        EVP_PKEY *k;

        if (!csr || !ret)
                return -EINVAL;
        k = X509_REQ_get0_pubkey(csr);
        if (!k) {
                ERR_clear_error();
                return -EINVAL;
        }
        return scep_transaction_id_for_key(k, ret);
}

int scep_transaction_id_for_key(EVP_PKEY *k, char ret[SCEP_TRANSACTION_ID_SIZE]) {
        unsigned char *spki = NULL;
        uint8_t md[32];
        unsigned mdlen = 0;
        int n, ok;

        if (!k || !ret)
                return -EINVAL;
        n = i2d_PUBKEY(k, &spki);
        if (n <= 0)
                return scep_openssl_errno();
        ok = EVP_Digest(spki, (size_t) n, md, &mdlen, EVP_sha256(), NULL);
        OPENSSL_free(spki);
        if (!ok || mdlen != sizeof md)
                return scep_openssl_errno();
        scep_hex(md, sizeof md, ret);
        return 0;
}

static const EVP_CIPHER *cipher_of(ScepCipher c) {
        switch (c) {
        case SCEP_CIPHER_DES3:
                return EVP_des_ede3_cbc();
        case SCEP_CIPHER_AES128_CBC:
                return EVP_aes_128_cbc();
        }
        return NULL;
}

/* DER of IssuerAndSubject ::= SEQUENCE { issuer Name, subject Name }. */
static int issuer_and_subject(X509 *ca, X509_REQ *csr, uint8_t **ret, size_t *ret_size) {
        unsigned char *a = NULL, *b = NULL, *out, *p;
        int na, nb, total, len;

        na = i2d_X509_NAME(X509_get_subject_name(ca), &a);
        nb = i2d_X509_NAME(X509_REQ_get_subject_name(csr), &b);
        if (na <= 0 || nb <= 0) {
                OPENSSL_free(a);
                OPENSSL_free(b);
                return scep_openssl_errno();
        }
        len = na + nb;
        total = ASN1_object_size(1, len, V_ASN1_SEQUENCE);
        out = total > 0 ? malloc((size_t) total) : NULL;
        if (!out) {
                OPENSSL_free(a);
                OPENSSL_free(b);
                return -ENOMEM;
        }
        p = out;
        ASN1_put_object(&p, 1, len, V_ASN1_SEQUENCE, V_ASN1_UNIVERSAL);
        memcpy(p, a, (size_t) na);
        memcpy(p + na, b, (size_t) nb);
        OPENSSL_free(a);
        OPENSSL_free(b);
        *ret = out;
        *ret_size = (size_t) total;
        return 0;
}

static int add_attr(CMS_SignerInfo *si, const char *oid, int type, const void *data, int len) {
        _cleanup_(ASN1_OBJECT_freep) ASN1_OBJECT *obj = OBJ_txt2obj(oid, 1);

        if (!obj)
                return -ENOMEM;
        if (!CMS_signed_add1_attr_by_OBJ(si, obj, type, data, len))
                return scep_openssl_errno();
        return 0;
}

static int bio_to_buffer(BIO *b, uint8_t **ret, size_t *ret_size) {
        char *data = NULL;
        long n = BIO_get_mem_data(b, &data);
        uint8_t *copy;

        if (n <= 0)
                return -EIO;
        copy = malloc((size_t) n);
        if (!copy)
                return -ENOMEM;
        memcpy(copy, data, (size_t) n);
        *ret = copy;
        *ret_size = (size_t) n;
        return 0;
}

/* A malloc()ed buffer wiped before it is freed. */
typedef struct WipedBuffer {
        uint8_t *data;
        size_t size;
} WipedBuffer;

static void wiped_buffer_done(WipedBuffer *b) {
        if (b->data) {
                OPENSSL_cleanse(b->data, b->size);
                free(b->data);
        }
        *b = (WipedBuffer) {};
}

/* For DER that OpenSSL allocated (i2d_*()). */
static void openssl_freep(unsigned char **p) {
        OPENSSL_free(*p);
}

int scep_message_build(ScepMessageType type, const ScepRequestParams *p, ScepMessage **ret,
                       ScepError *ret_error) {
        _cleanup_(scep_message_freep) ScepMessage *m = NULL;
        _cleanup_(CMS_ContentInfo_freep) CMS_ContentInfo *env = NULL, *signed_data = NULL;
        _cleanup_(sk_X509_freep) STACK_OF(X509) *recips = NULL;
        /* Before env_bio, which reads it: released after it. */
        _cleanup_(openssl_freep) unsigned char *env_der = NULL;
        _cleanup_(BIO_free_allp) BIO *in = NULL, *env_bio = NULL, *out = NULL;
        _cleanup_(wiped_buffer_done) WipedBuffer content = {};
        const EVP_CIPHER *cipher;
        const EVP_MD *md;
        CMS_SignerInfo *si;
        char type_str[8];
        int r, n;

        if (!p || !ret || !p->csr || !p->signer_cert || !p->signer_key || !p->recipient)
                return -EINVAL;
        if (type != SCEP_MESSAGE_PKCS_REQ && type != SCEP_MESSAGE_RENEWAL_REQ && type != SCEP_MESSAGE_CERT_POLL)
                return -EOPNOTSUPP;
        if (type == SCEP_MESSAGE_CERT_POLL && !p->ca)
                return -EINVAL;
        cipher = cipher_of(p->cipher);
        md = scep_digest_md(p->digest);
        if (!cipher || !md)
                return -EINVAL;
        if (!scep_cert_has_rsa_key(p->recipient)) {
                char d[300];
                ERR_clear_error();
                scep_cert_describe(p->recipient, d, sizeof d);
                return scep_error_set(ret_error, SCEP_RESULT_NO_RECIPIENT,
                                      "cannot encrypt the request to %s: not an RSA key", d);
        }
        if (X509_check_private_key(p->signer_cert, p->signer_key) != 1) {
                ERR_clear_error();
                return -EINVAL;
        }

        m = calloc(1, sizeof *m);
        if (!m)
                return -ENOMEM;
        m->type = type;
        r = scep_transaction_id(p->csr, m->transaction_id);
        if (r < 0)
                return r;
        if (RAND_bytes(m->sender_nonce, sizeof m->sender_nonce) != 1)
                return scep_openssl_errno();

        /* The inner content: a PKCSReq's or a RenewalReq's is the PKCS#10 (RFC 8894 3.3.1). */
        if (type != SCEP_MESSAGE_CERT_POLL) {
                unsigned char *der = NULL;
                n = i2d_X509_REQ(p->csr, &der);
                if (n <= 0)
                        return scep_openssl_errno();
                /* The PKCS#10 carries the challenge password: wipe both copies when done. */
                content.data = malloc((size_t) n);
                if (!content.data) {
                        OPENSSL_clear_free(der, (size_t) n);
                        return -ENOMEM;
                }
                memcpy(content.data, der, (size_t) n);
                content.size = (size_t) n;
                OPENSSL_clear_free(der, (size_t) n);
        } else {
                r = issuer_and_subject(p->ca, p->csr, &content.data, &content.size);
                if (r < 0)
                        return r;
        }

        /* EnvelopedData to exactly one recipient. */
        recips = sk_X509_new_null();
        if (!recips || !sk_X509_push(recips, p->recipient))
                return -ENOMEM;
        in = BIO_new_mem_buf(content.data, (int) content.size);
        if (!in)
                return -ENOMEM;
        env = CMS_encrypt(recips, in, cipher, CMS_BINARY);
        if (!env)
                return scep_error_set_openssl(ret_error, SCEP_RESULT_NO_RECIPIENT,
                                              "cannot build the EnvelopedData of the request");
        n = i2d_CMS_ContentInfo(env, &env_der);
        if (n <= 0)
                return scep_openssl_errno();
        env_bio = BIO_new_mem_buf(env_der, n);
        if (!env_bio)
                return -ENOMEM;

        /* SignedData(id-data) with the SCEP attributes. */
        signed_data = CMS_sign(NULL, NULL, NULL, NULL, CMS_PARTIAL | CMS_BINARY);
        if (!signed_data)
                return scep_openssl_errno();
        si = CMS_add1_signer(signed_data, p->signer_cert, p->signer_key, md,
                             CMS_BINARY | CMS_NOSMIMECAP);
        if (!si)
                return scep_openssl_errno();
        r = add_attr(si, SCEP_OID_TRANSACTION_ID, V_ASN1_PRINTABLESTRING, m->transaction_id,
                     (int) strlen(m->transaction_id));
        if (r < 0)
                return r;
        snprintf(type_str, sizeof type_str, "%d", (int) type);
        r = add_attr(si, SCEP_OID_MESSAGE_TYPE, V_ASN1_PRINTABLESTRING, type_str,
                     (int) strlen(type_str));
        if (r < 0)
                return r;
        r = add_attr(si, SCEP_OID_SENDER_NONCE, V_ASN1_OCTET_STRING, m->sender_nonce,
                     (int) sizeof m->sender_nonce);
        if (r < 0)
                return r;
        if (!CMS_final(signed_data, env_bio, NULL, CMS_BINARY))
                return scep_openssl_errno();

        out = BIO_new(BIO_s_mem());
        if (!out)
                return -ENOMEM;
        if (!i2d_CMS_bio(out, signed_data))
                return scep_openssl_errno();
        r = bio_to_buffer(out, &m->der, &m->size);
        if (r < 0)
                return r;

        *ret = TAKE_PTR(m);
        return 0;
}

int scep_message_encode_get(const uint8_t *der, size_t size, char **ret) {
        static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        size_t groups, max;
        char *out, *o;

        if (!ret || (!der && size > 0))
                return -EINVAL;
        groups = (size + 2) / 3;
        if (groups > (SIZE_MAX - 1) / 12)
                return -ENOMEM;
        max = groups * 12 + 1;          /* every character could become %XX */
        out = malloc(max);
        if (!out)
                return -ENOMEM;
        o = out;

#define EMIT(c)                                         \
        do {                                            \
                char _c = (c);                          \
                if (_c == '+') {                        \
                        memcpy(o, "%2B", 3);            \
                        o += 3;                         \
                } else if (_c == '/') {                 \
                        memcpy(o, "%2F", 3);            \
                        o += 3;                         \
                } else if (_c == '=') {                 \
                        memcpy(o, "%3D", 3);            \
                        o += 3;                         \
                } else                                  \
                        *o++ = _c;                      \
        } while (0)

        for (size_t i = 0; i < size; i += 3) {
                uint32_t v = (uint32_t) der[i] << 16;
                size_t left = size - i;

                if (left > 1)
                        v |= (uint32_t) der[i + 1] << 8;
                if (left > 2)
                        v |= der[i + 2];
                EMIT(b64[(v >> 18) & 63]);
                EMIT(b64[(v >> 12) & 63]);
                EMIT(left > 1 ? b64[(v >> 6) & 63] : '=');
                EMIT(left > 2 ? b64[v & 63] : '=');
        }
#undef EMIT
        *o = '\0';
        *ret = out;
        return 0;
}

int scep_pkioperation_http_next(ScepTransport used, long http_status, size_t body_size,
                                size_t url_size, ScepHttpNext *ret_next, ScepError *ret_error) {
        if (!ret_next || (used != SCEP_TRANSPORT_GET && used != SCEP_TRANSPORT_POST))
                return -EINVAL;

        if (http_status == 200 && body_size > 0) {
                *ret_next = SCEP_HTTP_PARSE;
                return 0;
        }
        if (http_status == 200 && used == SCEP_TRANSPORT_POST) {
                /* Windows 2012 NDES advertises POSTPKIOperation and answers POST with an
                 * empty 200. */
                *ret_next = SCEP_HTTP_RETRY_GET;
                return 0;
        }
        if (http_status == 200)
                return scep_error_set(ret_error, SCEP_RESULT_HTTP_STATUS,
                                      "the server answered the GET PKIOperation with an empty "
                                      "HTTP 200: no CertRep to read");
        /* IIS's request filtering answers an over-long query string or URL with 404 (logged as
         * 404.15 / 404.14), not 414; GetCACaps and GetCACert at the same URL had worked. */
        if ((http_status == 414 || http_status == 404) && used == SCEP_TRANSPORT_GET) {
                char what[64] = "";
                if (url_size > 0)
                        snprintf(what, sizeof what, "%zu-byte ", url_size);
                return scep_error_set(ret_error, SCEP_RESULT_URI_TOO_LONG,
                                      "the server refused the %sGET PKIOperation URL with %s: "
                                      "the CA does not offer POSTPKIOperation, so "
                                      "the request must travel in the URL; on the NDES server raise "
                                      "IIS request filtering's maxUrl and maxQueryString (e.g. 65534) "
                                      "and http.sys's MaxFieldLength and MaxRequestBytes (registry, "
                                      "HKLM\\SYSTEM\\CurrentControlSet\\Services\\HTTP\\Parameters) as "
                                      "Microsoft's NDES guidance describes, or use a smaller key",
                                      what, http_status == 414 ? "HTTP 414 URI Too Long" :
                                      "HTTP 404, which is how IIS request filtering refuses a query string "
                                      "or URL that is too long (404.15 or 404.14 in the IIS log)");
        }
        return scep_error_set(ret_error, SCEP_RESULT_HTTP_STATUS,
                              "the server answered the %s PKIOperation with HTTP %ld",
                              used == SCEP_TRANSPORT_GET ? "GET" : "POST", http_status);
}
