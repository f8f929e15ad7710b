/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <openssl/cms.h>
#include <openssl/err.h>
#include <openssl/provider.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scep-test-ndes.h"

#define OID_MESSAGE_TYPE    "2.16.840.1.113733.1.9.2"
#define OID_PKI_STATUS      "2.16.840.1.113733.1.9.3"
#define OID_FAIL_INFO       "2.16.840.1.113733.1.9.4"
#define OID_SENDER_NONCE    "2.16.840.1.113733.1.9.5"
#define OID_RECIPIENT_NONCE "2.16.840.1.113733.1.9.6"
#define OID_TRANSACTION_ID  "2.16.840.1.113733.1.9.7"
#define OID_MS_HRESULT      "1.3.6.1.4.1.311.21.33"

static void fail(const char *what) {
        fprintf(stderr, "fake NDES: %s\n", what);
        ERR_print_errors_fp(stderr);
        abort();
}

#define CHECK(x) do { if (!(x)) fail(#x); } while (0)

static ASN1_TYPE *signed_attr(CMS_SignerInfo *si, const char *oid) {
        ASN1_OBJECT *obj = OBJ_txt2obj(oid, 1);
        int idx = CMS_signed_get_attr_by_OBJ(si, obj, -1);
        ASN1_TYPE *t = NULL;

        if (idx >= 0)
                t = X509_ATTRIBUTE_get0_type(CMS_signed_get_attr(si, idx), 0);
        ASN1_OBJECT_free(obj);
        return t;
}

static const uint8_t oid_aes128[] = { 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x01, 0x02 };
static const uint8_t oid_des3[] = { 0x06, 0x08, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x03, 0x07 };

void test_ndes_parse_request(const uint8_t *der, size_t size, X509 *recipient_cert,
                             EVP_PKEY *recipient_key, TestNdesRequest *ret) {
        const unsigned char *p = der;
        CMS_ContentInfo *cms, *env;
        STACK_OF(X509) *signers;
        CMS_SignerInfo *si;
        STACK_OF(CMS_RecipientInfo) *ris;
        BIO *out, *plain;
        char *data;
        long n;
        ASN1_TYPE *t;
        X509_ALGOR *dig;
        const ASN1_OBJECT *dobj;

        memset(ret, 0, sizeof *ret);
        cms = d2i_CMS_ContentInfo(NULL, &p, (long) size);
        CHECK(cms && p == der + size);
        CHECK(OBJ_obj2nid(CMS_get0_type(cms)) == NID_pkcs7_signed);
        CHECK(OBJ_obj2nid(CMS_get0_eContentType(cms)) == NID_pkcs7_data);
        CHECK(sk_CMS_SignerInfo_num(CMS_get0_SignerInfos(cms)) == 1);
        si = sk_CMS_SignerInfo_value(CMS_get0_SignerInfos(cms), 0);

        /* The signer certificate travels in `certificates`; NDES uses it to verify. */
        out = BIO_new(BIO_s_mem());
        CHECK(CMS_verify(cms, NULL, NULL, NULL, out, CMS_NO_SIGNER_CERT_VERIFY | CMS_BINARY) == 1);
        signers = CMS_get0_signers(cms);
        CHECK(signers && sk_X509_num(signers) == 1);
        ret->signer = X509_dup(sk_X509_value(signers, 0));
        sk_X509_free(signers);
        CMS_SignerInfo_get0_algs(si, NULL, NULL, &dig, NULL);
        X509_ALGOR_get0(&dobj, NULL, NULL, dig);
        ret->digest_nid = OBJ_obj2nid(dobj);

        t = signed_attr(si, OID_MESSAGE_TYPE);
        CHECK(t && t->type == V_ASN1_PRINTABLESTRING);
        ret->message_type = atoi((const char *) ASN1_STRING_get0_data(t->value.asn1_string));
        t = signed_attr(si, OID_TRANSACTION_ID);
        CHECK(t && t->type == V_ASN1_PRINTABLESTRING);
        CHECK(ASN1_STRING_length(t->value.asn1_string) < (int) sizeof ret->transaction_id);
        memcpy(ret->transaction_id, ASN1_STRING_get0_data(t->value.asn1_string),
               (size_t) ASN1_STRING_length(t->value.asn1_string));
        t = signed_attr(si, OID_SENDER_NONCE);
        CHECK(t && t->type == V_ASN1_OCTET_STRING);
        ret->sender_nonce_size = (size_t) ASN1_STRING_length(t->value.octet_string);
        CHECK(ret->sender_nonce_size <= sizeof ret->sender_nonce);
        memcpy(ret->sender_nonce, ASN1_STRING_get0_data(t->value.octet_string), ret->sender_nonce_size);

        /* The envelope: exactly one recipient, ours to decrypt. */
        data = NULL;
        n = BIO_get_mem_data(out, &data);
        if (n <= 0 || !data)
                fail("no signed content");
        ret->aes128 = memmem(data, (size_t) n, oid_aes128, sizeof oid_aes128) != NULL;
        ret->des3 = memmem(data, (size_t) n, oid_des3, sizeof oid_des3) != NULL;
        p = (const unsigned char *) data;
        env = d2i_CMS_ContentInfo(NULL, &p, n);
        CHECK(env && OBJ_obj2nid(CMS_get0_type(env)) == NID_pkcs7_enveloped);
        ris = CMS_get0_RecipientInfos(env);
        ret->n_recipients = sk_CMS_RecipientInfo_num(ris);
        ret->recipient_matches = ret->n_recipients == 1 &&
                CMS_RecipientInfo_ktri_cert_cmp(sk_CMS_RecipientInfo_value(ris, 0), recipient_cert) == 0;
        plain = BIO_new(BIO_s_mem());
        CHECK(CMS_decrypt(env, recipient_key, recipient_cert, NULL, plain, CMS_BINARY) == 1);
        n = BIO_get_mem_data(plain, &data);
        p = (const unsigned char *) data;
        if (ret->message_type == 19 || ret->message_type == 17) {
                X509_ATTRIBUTE *a;
                int idx;

                ret->csr = d2i_X509_REQ(NULL, &p, n);
                CHECK(ret->csr);
                CHECK(X509_REQ_verify(ret->csr, X509_REQ_get0_pubkey(ret->csr)) == 1);
                idx = X509_REQ_get_attr_by_NID(ret->csr, NID_pkcs9_challengePassword, -1);
                if (idx >= 0) {
                        ASN1_TYPE *ct;
                        a = X509_REQ_get_attr(ret->csr, idx);
                        ct = X509_ATTRIBUTE_get0_type(a, 0);
                        CHECK(ct->type == V_ASN1_PRINTABLESTRING || ct->type == V_ASN1_UTF8STRING);
                        snprintf(ret->challenge, sizeof ret->challenge, "%.*s",
                                 ASN1_STRING_length(ct->value.asn1_string),
                                 ASN1_STRING_get0_data(ct->value.asn1_string));
                }
        } else if (ret->message_type == 20) {
                long len;
                int tag, cls;
                const unsigned char *end;

                CHECK(ASN1_get_object(&p, &len, &tag, &cls, n) == V_ASN1_CONSTRUCTED && tag == V_ASN1_SEQUENCE);
                end = p + len;
                ret->poll_issuer = d2i_X509_NAME(NULL, &p, end - p);
                ret->poll_subject = d2i_X509_NAME(NULL, &p, end - p);
                CHECK(ret->poll_issuer && ret->poll_subject && p == end);
        } else
                fail("unexpected messageType");

        BIO_free(plain);
        BIO_free(out);
        CMS_ContentInfo_free(env);
        CMS_ContentInfo_free(cms);
}

void test_ndes_request_done(TestNdesRequest *r) {
        X509_free(r->signer);
        X509_REQ_free(r->csr);
        X509_NAME_free(r->poll_issuer);
        X509_NAME_free(r->poll_subject);
        memset(r, 0, sizeof *r);
}

static void add_attr(CMS_SignerInfo *si, const char *oid, int type, const void *data, int len) {
        ASN1_OBJECT *obj = OBJ_txt2obj(oid, 1);

        CHECK(CMS_signed_add1_attr_by_OBJ(si, obj, type, data, len));
        ASN1_OBJECT_free(obj);
}

static uint8_t *to_der(CMS_ContentInfo *cms, size_t *ret_size) {
        unsigned char *der = NULL;
        int n = i2d_CMS_ContentInfo(cms, &der);
        uint8_t *copy;

        CHECK(n > 0);
        copy = malloc((size_t) n);
        CHECK(copy);
        memcpy(copy, der, (size_t) n);
        OPENSSL_free(der);
        *ret_size = (size_t) n;
        return copy;
}

/* The issued certificate + CA as a degenerate SignedData, enveloped to the requester. */
static uint8_t *success_envelope(const TestPki *pki, const TestNdesRequest *req, EVP_PKEY *csr_key,
                                 const TestCertRepOptions *o, size_t *ret_size) {
        X509 *issuer = o->issuer ?: pki->ca;
        EVP_PKEY *issuer_key = o->issuer_key ?: pki->ca_key;
        EVP_PKEY *key = o->issue_key ?: (req->csr ? X509_REQ_get0_pubkey(req->csr) : csr_key);
        const X509_NAME *subject = req->csr ? X509_REQ_get_subject_name(req->csr) : req->poll_subject;
        X509 *issued = X509_new();
        PKCS7 *p7 = PKCS7_new();
        unsigned char *der = NULL;
        int n;
        BIO *in;
        STACK_OF(X509) *recips = sk_X509_new_null();
        OSSL_LIB_CTX *libctx = NULL;
        OSSL_PROVIDER *legacy = NULL, *deflt = NULL;
        EVP_CIPHER *cipher;
        CMS_ContentInfo *env;
        uint8_t *ret;

        CHECK(key && subject);
        X509_set_version(issued, 2);
        ASN1_INTEGER_set(X509_get_serialNumber(issued), 0x5ce9);
        X509_set_subject_name(issued, subject);
        X509_set_issuer_name(issued, X509_get_subject_name(issuer));
        X509_gmtime_adj(X509_getm_notBefore(issued), 0);
        X509_gmtime_adj(X509_getm_notAfter(issued), 86400);
        X509_set_pubkey(issued, key);
        CHECK(X509_sign(issued, issuer_key, EVP_sha256()));

        PKCS7_set_type(p7, NID_pkcs7_signed);
        PKCS7_content_new(p7, NID_pkcs7_data);
        PKCS7_add_certificate(p7, issued);
        PKCS7_add_certificate(p7, pki->ca);
        n = i2d_PKCS7(p7, &der);
        CHECK(n > 0);
        PKCS7_free(p7);
        X509_free(issued);

        if (o->cipher && strcmp(o->cipher, "DES-CBC") == 0) {
                libctx = OSSL_LIB_CTX_new();
                legacy = OSSL_PROVIDER_load(libctx, "legacy");
                deflt = OSSL_PROVIDER_load(libctx, "default");
                CHECK(legacy && deflt);
        }
        cipher = EVP_CIPHER_fetch(libctx, o->cipher ?: "AES-128-CBC", NULL);
        CHECK(cipher);
        sk_X509_push(recips, o->encrypt_to ?: req->signer);
        in = BIO_new_mem_buf(der, n);
        if (o->oaep) {
                CMS_RecipientInfo *ri;
                EVP_PKEY_CTX *pctx;

                env = CMS_encrypt_ex(NULL, in, cipher, CMS_BINARY | CMS_PARTIAL, libctx, NULL);
                CHECK(env);
                ri = CMS_add1_recipient_cert(env, o->encrypt_to ?: req->signer, CMS_KEY_PARAM);
                CHECK(ri);
                pctx = CMS_RecipientInfo_get0_pkey_ctx(ri);
                CHECK(EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_OAEP_PADDING) > 0);
                CHECK(CMS_final(env, in, NULL, CMS_BINARY));
        } else {
                env = CMS_encrypt_ex(recips, in, cipher, CMS_BINARY, libctx, NULL);
                CHECK(env);
        }
        ret = to_der(env, ret_size);
        CMS_ContentInfo_free(env);
        BIO_free(in);
        OPENSSL_free(der);
        sk_X509_free(recips);
        EVP_CIPHER_free(cipher);
        OSSL_PROVIDER_unload(legacy);
        OSSL_PROVIDER_unload(deflt);
        OSSL_LIB_CTX_free(libctx);
        return ret;
}

uint8_t *test_ndes_certrep(const TestPki *pki, const TestNdesRequest *req, EVP_PKEY *csr_key,
                           const TestCertRepOptions *o, size_t *ret_size) {
        uint8_t *content = NULL, server_nonce[16], nonce[64];
        size_t content_size = 0;
        CMS_ContentInfo *cms;
        CMS_SignerInfo *si;
        BIO *in;
        char text[16];
        unsigned flags = CMS_BINARY | CMS_NOSMIMECAP;
        uint8_t *ret;

        if (o->status == 0)
                content = success_envelope(pki, req, csr_key, o, &content_size);
        else if (o->content == 0) {
                content = calloc(1, 1);
                content_size = 1;
        }

        cms = CMS_sign(NULL, NULL, NULL, NULL, CMS_PARTIAL | CMS_BINARY |
                       (o->status != 0 && o->content == 2 ? CMS_DETACHED : 0));
        CHECK(cms);
        if (o->no_certs)
                flags |= CMS_NOCERTS;
        if (o->use_keyid)
                flags |= CMS_USE_KEYID;
        si = CMS_add1_signer(cms, o->signer ?: pki->ra_sign, o->signer_key ?: pki->ra_sign_key,
                             o->md ?: EVP_sha256(), flags);
        CHECK(si);

        if (!o->omit_transaction_id) {
                const char *tid = o->transaction_id ?: req->transaction_id;
                add_attr(si, OID_TRANSACTION_ID, V_ASN1_PRINTABLESTRING, tid, (int) strlen(tid));
        }
        if (!o->omit_message_type) {
                const char *mt = o->message_type ?: "3";
                add_attr(si, OID_MESSAGE_TYPE, V_ASN1_PRINTABLESTRING, mt, (int) strlen(mt));
        }
        if (o->pki_status_text)
                add_attr(si, OID_PKI_STATUS, V_ASN1_PRINTABLESTRING, o->pki_status_text,
                         (int) strlen(o->pki_status_text));
        else {
                snprintf(text, sizeof text, "%d", o->status);
                add_attr(si, OID_PKI_STATUS, V_ASN1_PRINTABLESTRING, text, (int) strlen(text));
        }
        if (o->fail_info_text)
                add_attr(si, OID_FAIL_INFO, V_ASN1_PRINTABLESTRING, o->fail_info_text,
                         (int) strlen(o->fail_info_text));
        else if (o->status == 2 && !o->omit_fail_info) {
                snprintf(text, sizeof text, "%d", o->fail_info);
                add_attr(si, OID_FAIL_INFO, V_ASN1_PRINTABLESTRING, text, (int) strlen(text));
        }
        CHECK(RAND_bytes(server_nonce, sizeof server_nonce) == 1);
        add_attr(si, OID_SENDER_NONCE, V_ASN1_OCTET_STRING, server_nonce, sizeof server_nonce);
        if (!o->omit_recipient_nonce) {
                memcpy(nonce, req->sender_nonce, req->sender_nonce_size);
                if (o->wrong_nonce)
                        nonce[0] ^= 0x80;
                add_attr(si, OID_RECIPIENT_NONCE, V_ASN1_OCTET_STRING, nonce, (int) req->sender_nonce_size);
        }
        if (o->ms_hresult)
                add_attr(si, OID_MS_HRESULT, V_ASN1_PRINTABLESTRING, o->ms_hresult,
                         (int) strlen(o->ms_hresult));

        in = BIO_new_mem_buf(content ? (const void *) content : "", (int) content_size);
        CHECK(CMS_final(cms, in, NULL, CMS_BINARY |
                        (o->status != 0 && o->content == 2 ? CMS_DETACHED : 0)));
        if (o->flip_signature) {
                ASN1_OCTET_STRING *sig = CMS_SignerInfo_get0_signature(si);
                unsigned char *d = (unsigned char *) ASN1_STRING_get0_data(sig);
                d[ASN1_STRING_length(sig) / 2] ^= 0x01;
        }
        ret = to_der(cms, ret_size);
        BIO_free(in);
        CMS_ContentInfo_free(cms);
        free(content);
        return ret;
}
