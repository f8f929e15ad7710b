/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "scep-cacert.h"
#include "scep-certrep.h"
#include "scep-csr.h"
#include "scep-message.h"
#include "scep-test-ndes.h"

static const ScepRdn subject_web[] = { { "CN", "web.a.example.com" }, { "O", "Tenant A" } };
static const char *const names_web[] = { "web.a.example.com", "www.a.example.com" };

static X509_REQ *make_csr(EVP_PKEY *key, ScepUsage usage, const char *challenge) {
        ScepCsrParams p = {
                .subject = subject_web, .n_subject = 2,
                .dns_names = names_web, .n_dns_names = 2,
                .usage = usage, .challenge = challenge, .digest = SCEP_DIGEST_SHA256,
        };
        X509_REQ *req = NULL;

        assert_int_equal(scep_csr_build(&p, key, &req, NULL), 0);
        assert_non_null(req);
        return req;
}

static void name_string(const X509_NAME *n, char *buf, size_t size) {
        BIO *b = BIO_new(BIO_s_mem());
        int len;

        X509_NAME_print_ex(b, n, 0, XN_FLAG_RFC2253);
        len = BIO_read(b, buf, (int) size - 1);
        buf[len > 0 ? len : 0] = '\0';
        BIO_free(b);
}

static uint32_t csr_key_usage(X509_REQ *req, bool *critical) {
        STACK_OF(X509_EXTENSION) *exts = X509_REQ_get_extensions(req);
        uint32_t ku = 0;

        for (int i = 0; i < sk_X509_EXTENSION_num(exts); i++) {
                X509_EXTENSION *e = sk_X509_EXTENSION_value(exts, i);
                if (OBJ_obj2nid(X509_EXTENSION_get_object(e)) == NID_key_usage) {
                        ASN1_BIT_STRING *bs = X509V3_EXT_d2i(e);
                        *critical = X509_EXTENSION_get_critical(e);
                        for (int bit = 0; bit < 9; bit++)
                                if (ASN1_BIT_STRING_get_bit(bs, bit))
                                        ku |= 1u << bit;
                        ASN1_BIT_STRING_free(bs);
                }
        }
        sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
        return ku;
}

static void test_csr_contents(void **state) {
        X509_REQ *req = make_csr(test_rsa_key(3), SCEP_USAGE_BOTH, "1ED0DD50F7459D6E");
        STACK_OF(X509_EXTENSION) *exts;
        GENERAL_NAMES *sans = NULL;
        char buf[256];
        bool crit = false;
        int idx;
        ASN1_TYPE *t;

        assert_int_equal(X509_REQ_verify(req, test_rsa_key(3)), 1);
        /* Subject prints back as the RFC 4514 string it came from. */
        name_string(X509_REQ_get_subject_name(req), buf, sizeof buf);
        assert_string_equal(buf, "CN=web.a.example.com,O=Tenant A");
        /* SANs in order. */
        exts = X509_REQ_get_extensions(req);
        for (int i = 0; i < sk_X509_EXTENSION_num(exts); i++)
                if (OBJ_obj2nid(X509_EXTENSION_get_object(sk_X509_EXTENSION_value(exts, i))) == NID_subject_alt_name)
                        sans = X509V3_EXT_d2i(sk_X509_EXTENSION_value(exts, i));
        assert_non_null(sans);
        assert_int_equal(sk_GENERAL_NAME_num(sans), 2);
        for (int i = 0; i < 2; i++) {
                GENERAL_NAME *gn = sk_GENERAL_NAME_value(sans, i);
                assert_int_equal(gn->type, GEN_DNS);
                assert_string_equal((const char *) ASN1_STRING_get0_data(gn->d.dNSName), names_web[i]);
        }
        GENERAL_NAMES_free(sans);
        sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
        /* keyUsage both, critical. */
        assert_int_equal(csr_key_usage(req, &crit), (1u << 0) | (1u << 2));
        assert_true(crit);
        /* challengePassword as a PrintableString. */
        idx = X509_REQ_get_attr_by_NID(req, NID_pkcs9_challengePassword, -1);
        assert_true(idx >= 0);
        t = X509_ATTRIBUTE_get0_type(X509_REQ_get_attr(req, idx), 0);
        assert_int_equal(t->type, V_ASN1_PRINTABLESTRING);
        assert_memory_equal(ASN1_STRING_get0_data(t->value.asn1_string), "1ED0DD50F7459D6E", 16);
        X509_REQ_free(req);
}

/* Identity names: "upn:" is the UPN otherName (a UTF8String), "email:" an rfc822Name. */
static void test_csr_identity_names(void **state) {
        static const ScepRdn subject[] = { { "CN", "carol" } };
        static const char *const names[] = { "upn:carol@example.com", "email:carol@example.com" };
        ScepCsrParams p = {
                .subject = subject, .n_subject = 1, .dns_names = names, .n_dns_names = 2,
                .usage = SCEP_USAGE_SIGNATURE, .digest = SCEP_DIGEST_SHA256,
        };
        STACK_OF(X509_EXTENSION) *exts;
        GENERAL_NAMES *sans = NULL;
        X509_REQ *req = NULL;
        char oid[64];

        assert_int_equal(scep_csr_build(&p, test_rsa_key(3), &req, NULL), 0);
        exts = X509_REQ_get_extensions(req);
        for (int i = 0; i < sk_X509_EXTENSION_num(exts); i++)
                if (OBJ_obj2nid(X509_EXTENSION_get_object(sk_X509_EXTENSION_value(exts, i))) == NID_subject_alt_name)
                        sans = X509V3_EXT_d2i(sk_X509_EXTENSION_value(exts, i));
        assert_non_null(sans);
        assert_int_equal(sk_GENERAL_NAME_num(sans), 2);
        GENERAL_NAME *upn = sk_GENERAL_NAME_value(sans, 0), *email = sk_GENERAL_NAME_value(sans, 1);
        assert_int_equal(upn->type, GEN_OTHERNAME);
        assert_true(OBJ_obj2txt(oid, sizeof oid, upn->d.otherName->type_id, 1) > 0);
        assert_string_equal(oid, "1.3.6.1.4.1.311.20.2.3");
        assert_int_equal(upn->d.otherName->value->type, V_ASN1_UTF8STRING);
        assert_string_equal((const char *) ASN1_STRING_get0_data(upn->d.otherName->value->value.utf8string),
                            "carol@example.com");
        assert_int_equal(email->type, GEN_EMAIL);
        assert_string_equal((const char *) ASN1_STRING_get0_data(email->d.rfc822Name), "carol@example.com");
        GENERAL_NAMES_free(sans);
        sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
        X509_REQ_free(req);

        /* An empty identity is refused. */
        static const char *const empty[] = { "upn:" };
        p.dns_names = empty;
        p.n_dns_names = 1;
        req = NULL;
        assert_int_equal(scep_csr_build(&p, test_rsa_key(3), &req, NULL), -EINVAL);
        assert_null(req);
}

static void test_csr_usage(void **state) {
        static const struct {
                ScepUsage usage;
                uint32_t bits;
        } cases[] = {
                { SCEP_USAGE_SIGNATURE, 1u << 0 },
                { SCEP_USAGE_ENCRYPTION, 1u << 2 },
                { SCEP_USAGE_BOTH, (1u << 0) | (1u << 2) },
        };

        for (size_t i = 0; i < 3; i++) {
                X509_REQ *req = make_csr(test_rsa_key(3), cases[i].usage, NULL);
                bool crit = false;

                assert_int_equal(csr_key_usage(req, &crit), cases[i].bits);
                assert_true(X509_REQ_get_attr_by_NID(req, NID_pkcs9_challengePassword, -1) < 0);
                X509_REQ_free(req);
        }
}

static void test_csr_invalid(void **state) {
        static const ScepRdn bad[] = { { "NotAnAttribute", "x" } };
        static const ScepRdn ctl[] = { { "CN", "a\nb" } };
        ScepCsrParams p = { .subject = bad, .n_subject = 1, .usage = SCEP_USAGE_BOTH };
        X509_REQ *req = NULL;
        ScepError e = {};

        assert_int_equal(scep_csr_build(&p, test_rsa_key(3), &req, &e), -EINVAL);
        assert_non_null(strstr(e.message, "NotAnAttribute"));
        p.subject = ctl;
        assert_int_equal(scep_csr_build(&p, test_rsa_key(3), &req, NULL), -EINVAL);
        p.n_subject = 0;
        assert_int_equal(scep_csr_build(&p, test_rsa_key(3), &req, NULL), -EINVAL);
        p.subject = subject_web;
        p.n_subject = 1;
        p.usage = 0;
        assert_int_equal(scep_csr_build(&p, test_rsa_key(3), &req, NULL), -EINVAL);
        p.usage = SCEP_USAGE_SIGNATURE;
        p.challenge = "";
        assert_int_equal(scep_csr_build(&p, test_rsa_key(3), &req, NULL), -EINVAL);
        assert_null(req);
        /* Names only, no subject. */
        p.challenge = NULL;
        p.n_subject = 0;
        p.dns_names = names_web;
        p.n_dns_names = 1;
        assert_int_equal(scep_csr_build(&p, test_rsa_key(3), &req, NULL), 0);
        X509_REQ_free(req);
}

static void test_csr_ec_and_signer(void **state) {
        EVP_PKEY *ec = test_ec_key();
        X509_REQ *req = make_csr(ec, SCEP_USAGE_SIGNATURE, "ABC");
        X509 *signer = NULL;
        ScepError e = {};
        char a[256], b[256];

        assert_int_equal(X509_REQ_verify(req, ec), 1);
        /* The signer of an EC request must be a separate RSA transport key. */
        assert_int_equal(scep_signer_cert_build(req, ec, SCEP_DIGEST_SHA256, &signer, &e), -EINVAL);
        assert_non_null(strstr(e.message, "RSA"));
        assert_null(signer);
        assert_int_equal(scep_signer_cert_build(req, test_rsa_key(4), SCEP_DIGEST_SHA256, &signer, NULL), 0);
        assert_int_equal(EVP_PKEY_eq(X509_get0_pubkey(signer), test_rsa_key(4)), 1);
        name_string(X509_get_subject_name(signer), a, sizeof a);
        name_string(X509_REQ_get_subject_name(req), b, sizeof b);
        assert_string_equal(a, b);
        X509_free(signer);
        X509_REQ_free(req);
}

static bool der_contains(X509_REQ *req, const char *needle) {
        unsigned char *der = NULL;
        int n = i2d_X509_REQ(req, &der);
        bool found = false;

        assert_true(n > 0);
        found = memmem(der, (size_t) n, needle, strlen(needle)) != NULL;
        OPENSSL_free(der);
        return found;
}

/* What the broker keeps of a submitted request (CertRep, CertPoll, the journal when PENDING):
 * the same subject, key, extensions and transaction ID, no challenge, still verifying. */
static void test_csr_strip_challenge(void **state) {
        EVP_PKEY *keys[] = { test_rsa_key(3), test_ec_key() };

        for (size_t k = 0; k < 2; k++) {
                X509_REQ *req = make_csr(keys[k], SCEP_USAGE_BOTH, "0123456789ABCDEF");
                char txid[SCEP_TRANSACTION_ID_SIZE], txid2[SCEP_TRANSACTION_ID_SIZE], a[256], b[256];
                int nid = X509_REQ_get_signature_nid(req);

                assert_true(der_contains(req, "0123456789ABCDEF"));
                assert_int_equal(scep_transaction_id(req, txid), 0);
                name_string(X509_REQ_get_subject_name(req), a, sizeof a);

                assert_int_equal(scep_csr_strip_challenge(req, keys[k]), 1);
                assert_int_equal(X509_REQ_get_attr_by_NID(req, NID_pkcs9_challengePassword, -1), -1);
                assert_false(der_contains(req, "0123456789ABCDEF"));
                assert_int_equal(X509_REQ_verify(req, keys[k]), 1);
                assert_int_equal(X509_REQ_get_signature_nid(req), nid);
                assert_int_equal(scep_transaction_id(req, txid2), 0);
                assert_string_equal(txid, txid2);
                name_string(X509_REQ_get_subject_name(req), b, sizeof b);
                assert_string_equal(a, b);
                assert_true(der_contains(req, "www.a.example.com"));    /* the SANs stay */
                /* Nothing left to strip. */
                assert_int_equal(scep_csr_strip_challenge(req, keys[k]), 0);
                X509_REQ_free(req);
        }

        /* Without the key: stripped all the same, the old signature no longer matches. */
        X509_REQ *req = make_csr(test_rsa_key(3), SCEP_USAGE_BOTH, "FEDCBA9876543210");
        assert_int_equal(scep_csr_strip_challenge(req, NULL), 1);
        assert_false(der_contains(req, "FEDCBA9876543210"));
        assert_int_not_equal(X509_REQ_verify(req, test_rsa_key(3)), 1);
        ERR_clear_error();
        /* ... until it is signed again (when it is kept), with the same hash. */
        int nid = X509_REQ_get_signature_nid(req);
        assert_int_equal(scep_csr_resign(req, test_rsa_key(3)), 0);
        assert_int_equal(X509_REQ_verify(req, test_rsa_key(3)), 1);
        assert_int_equal(X509_REQ_get_signature_nid(req), nid);
        assert_false(der_contains(req, "FEDCBA9876543210"));
        assert_int_equal(scep_csr_resign(req, NULL), -EINVAL);
        assert_int_equal(scep_csr_resign(NULL, test_rsa_key(3)), -EINVAL);
        X509_REQ_free(req);
        assert_int_equal(scep_csr_strip_challenge(NULL, NULL), -EINVAL);
}

/* Freeing a request wipes its challenge first: scep_csr_wipe_challenge() zeroes the value where
 * it lies (observed before the free; scep_csr_free() is wipe, then X509_REQ_free()). */
static void test_csr_wipe_challenge(void **state) {
        X509_REQ *req = make_csr(test_rsa_key(3), SCEP_USAGE_BOTH, "0123456789ABCDEF");
        int i = X509_REQ_get_attr_by_NID(req, NID_pkcs9_challengePassword, -1);
        assert_true(i >= 0);
        ASN1_TYPE *t = X509_ATTRIBUTE_get0_type(X509_REQ_get_attr(req, i), 0);
        assert_non_null(t);
        const unsigned char *v = ASN1_STRING_get0_data(t->value.asn1_string);
        int n = ASN1_STRING_length(t->value.asn1_string);
        static const unsigned char zeros[16] = {};

        assert_int_equal(n, 16);
        assert_memory_equal(v, "0123456789ABCDEF", 16);
        scep_csr_wipe_challenge(req);
        assert_memory_equal(v, zeros, 16);
        assert_false(der_contains(req, "0123456789ABCDEF"));
        assert_null(scep_csr_free(req));
        assert_null(scep_csr_free(NULL));
}

static void test_signer_cert(void **state) {
        X509_REQ *req = make_csr(test_rsa_key(3), SCEP_USAGE_SIGNATURE, NULL);
        X509 *signer = NULL;
        char a[256], b[256];

        assert_int_equal(scep_signer_cert_build(req, test_rsa_key(3), SCEP_DIGEST_SHA256, &signer, NULL), 0);
        name_string(X509_get_subject_name(signer), a, sizeof a);
        name_string(X509_get_issuer_name(signer), b, sizeof b);
        assert_string_equal(a, "CN=web.a.example.com,O=Tenant A");
        assert_string_equal(a, b);
        assert_int_equal(X509_verify(signer, test_rsa_key(3)), 1);
        assert_int_equal(EVP_PKEY_eq(X509_get0_pubkey(signer), test_rsa_key(3)), 1);
        assert_true(X509_get_extension_flags(signer) & EXFLAG_KUSAGE);
        assert_int_equal(X509_get_key_usage(signer), KU_DIGITAL_SIGNATURE | KU_KEY_ENCIPHERMENT);
        assert_true(X509_cmp_current_time(X509_get0_notBefore(signer)) < 0);
        assert_true(X509_cmp_current_time(X509_get0_notAfter(signer)) > 0);
        X509_free(signer);
        X509_REQ_free(req);
}

static int name_der(const X509_NAME *n, unsigned char **ret) {
        return i2d_X509_NAME(n, ret);
}

/* Built from the subject alone (before the CSR exists, e.g. while the challenge is fetched):
 * the same certificate as from the CSR, the subject byte for byte the CSR's (RFC 8894). */
static void test_signer_cert_for_subject(void **state) {
        X509_REQ *req = make_csr(test_rsa_key(3), SCEP_USAGE_BOTH, "1ED0DD50F7459D6E");
        static const ScepRdn bad[] = { { "NOSUCHTYPE", "x" } };
        unsigned char *da = NULL, *db = NULL;
        X509 *signer = NULL;
        ScepError e = {};
        int na, nb;

        assert_int_equal(scep_signer_cert_build_for_subject(subject_web, 2, test_rsa_key(3), SCEP_DIGEST_SHA256,
                                                            &signer, NULL), 0);
        na = name_der(X509_get_subject_name(signer), &da);
        nb = name_der(X509_REQ_get_subject_name(req), &db);
        assert_true(na > 0 && na == nb);
        assert_memory_equal(da, db, (size_t) na);
        OPENSSL_free(da);
        da = NULL;
        na = name_der(X509_get_issuer_name(signer), &da);
        assert_true(na == nb);
        assert_memory_equal(da, db, (size_t) na);
        OPENSSL_free(da);
        OPENSSL_free(db);
        assert_int_equal(X509_verify(signer, test_rsa_key(3)), 1);
        assert_int_equal(EVP_PKEY_eq(X509_get0_pubkey(signer), test_rsa_key(3)), 1);
        assert_int_equal(X509_get_key_usage(signer), KU_DIGITAL_SIGNATURE | KU_KEY_ENCIPHERMENT);
        assert_true(X509_cmp_current_time(X509_get0_notBefore(signer)) < 0);
        assert_true(X509_cmp_current_time(X509_get0_notAfter(signer)) > 0);
        X509_free(signer);
        signer = NULL;

        /* The same refusals as the CSR's: no RSA key, a bad attribute, too many RDNs. */
        assert_int_equal(scep_signer_cert_build_for_subject(subject_web, 2, test_ec_key(), SCEP_DIGEST_SHA256,
                                                            &signer, &e), -EINVAL);
        assert_int_equal(scep_signer_cert_build_for_subject(bad, 1, test_rsa_key(3), SCEP_DIGEST_SHA256,
                                                            &signer, &e), -EINVAL);
        assert_non_null(strstr(e.message, "NOSUCHTYPE"));
        assert_int_equal(scep_signer_cert_build_for_subject(subject_web, SCEP_CSR_MAX_RDNS + 1, test_rsa_key(3),
                                                            SCEP_DIGEST_SHA256, &signer, NULL), -EINVAL);
        assert_int_equal(scep_signer_cert_build_for_subject(NULL, 1, test_rsa_key(3), SCEP_DIGEST_SHA256,
                                                            &signer, NULL), -EINVAL);
        assert_null(signer);
        X509_REQ_free(req);
}

static void test_transaction_id(void **state) {
        X509_REQ *a = make_csr(test_rsa_key(3), SCEP_USAGE_BOTH, "x");
        X509_REQ *b = make_csr(test_rsa_key(3), SCEP_USAGE_SIGNATURE, NULL);
        X509_REQ *c = make_csr(test_rsa_key(4), SCEP_USAGE_BOTH, "x");
        char ta[SCEP_TRANSACTION_ID_SIZE], tb[SCEP_TRANSACTION_ID_SIZE], tc[SCEP_TRANSACTION_ID_SIZE];
        unsigned char *spki = NULL, md[32];
        char want[65];
        int n;

        assert_int_equal(scep_transaction_id(a, ta), 0);
        assert_int_equal(scep_transaction_id(b, tb), 0);
        assert_int_equal(scep_transaction_id(c, tc), 0);
        assert_int_equal(strlen(ta), 64);
        assert_string_equal(ta, tb);            /* same key: same transaction */
        assert_string_not_equal(ta, tc);
        n = i2d_PUBKEY(test_rsa_key(3), &spki);
        assert_true(n > 0);
        assert_true(EVP_Digest(spki, (size_t) n, md, NULL, EVP_sha256(), NULL));
        for (int i = 0; i < 32; i++)
                snprintf(want + 2 * i, 3, "%02x", md[i]);
        assert_string_equal(ta, want);
        OPENSSL_free(spki);
        X509_REQ_free(a);
        X509_REQ_free(b);
        X509_REQ_free(c);
}

typedef struct Client {
        X509_REQ *csr;
        X509 *signer;
        EVP_PKEY *key;
} Client;

static void client_init(Client *c, EVP_PKEY *key) {
        c->key = key;
        c->csr = make_csr(key, SCEP_USAGE_BOTH, "1ED0DD50F7459D6E");
        assert_int_equal(scep_signer_cert_build(c->csr, key, SCEP_DIGEST_SHA256, &c->signer, NULL), 0);
}

static void client_done(Client *c) {
        X509_REQ_free(c->csr);
        X509_free(c->signer);
}

static void test_pkcsreq_ndes(void **state) {
        static const struct {
                ScepCipher cipher;
                ScepDigest digest;
                int nid;
        } cases[] = {
                { SCEP_CIPHER_AES128_CBC, SCEP_DIGEST_SHA256, NID_sha256 },
                { SCEP_CIPHER_DES3, SCEP_DIGEST_SHA256, NID_sha256 },
                { SCEP_CIPHER_DES3, SCEP_DIGEST_SHA1, NID_sha1 },
                { SCEP_CIPHER_AES128_CBC, SCEP_DIGEST_SHA512, NID_sha512 },
        };
        Client c;

        client_init(&c, test_rsa_key(3));
        for (size_t i = 0; i < 4; i++) {
                ScepRequestParams p = {
                        .csr = c.csr, .signer_cert = c.signer, .signer_key = c.key,
                        .recipient = test_pki.ra_enc, .ca = test_pki.ca,
                        .cipher = cases[i].cipher, .digest = cases[i].digest,
                };
                ScepMessage *m = NULL;
                TestNdesRequest r;
                unsigned char *der = NULL;
                int n;

                assert_int_equal(scep_message_build(SCEP_MESSAGE_PKCS_REQ, &p, &m, NULL), 0);
                assert_int_equal(m->type, SCEP_MESSAGE_PKCS_REQ);
                test_ndes_parse_request(m->der, m->size, test_pki.ra_enc, test_pki.ra_enc_key, &r);
                assert_int_equal(r.message_type, 19);
                assert_int_equal(r.n_recipients, 1);
                assert_true(r.recipient_matches);
                assert_int_equal(r.aes128, cases[i].cipher == SCEP_CIPHER_AES128_CBC);
                assert_int_equal(r.des3, cases[i].cipher == SCEP_CIPHER_DES3);
                assert_int_equal(r.digest_nid, cases[i].nid);
                assert_string_equal(r.transaction_id, m->transaction_id);
                assert_int_equal(r.sender_nonce_size, 16);
                assert_memory_equal(r.sender_nonce, m->sender_nonce, 16);
                assert_int_equal(X509_cmp(r.signer, c.signer), 0);
                assert_string_equal(r.challenge, "1ED0DD50F7459D6E");
                /* The enveloped CSR is ours, byte for byte. */
                n = i2d_X509_REQ(c.csr, &der);
                {
                        unsigned char *der2 = NULL;
                        int n2 = i2d_X509_REQ(r.csr, &der2);
                        assert_int_equal(n, n2);
                        assert_memory_equal(der, der2, (size_t) n);
                        OPENSSL_free(der2);
                }
                OPENSSL_free(der);
                test_ndes_request_done(&r);
                scep_message_free(m);
        }
        client_done(&c);
}

static void test_pkcsreq_ca_only(void **state) {
        /* micromdm: no RA, the CA is the recipient. */
        Client c;
        ScepRequestParams p = { .cipher = SCEP_CIPHER_AES128_CBC, .digest = SCEP_DIGEST_SHA256 };
        ScepMessage *m = NULL;
        TestNdesRequest r;

        client_init(&c, test_rsa_key(3));
        p.csr = c.csr;
        p.signer_cert = c.signer;
        p.signer_key = c.key;
        p.recipient = test_pki.ca;
        assert_int_equal(scep_message_build(SCEP_MESSAGE_PKCS_REQ, &p, &m, NULL), 0);
        test_ndes_parse_request(m->der, m->size, test_pki.ca, test_pki.ca_key, &r);
        assert_true(r.recipient_matches);
        assert_int_equal(r.n_recipients, 1);
        test_ndes_request_done(&r);
        scep_message_free(m);

        /* Wrong or mismatched inputs. */
        p.signer_key = test_rsa_key(4);          /* not the signer certificate's key */
        assert_int_equal(scep_message_build(SCEP_MESSAGE_PKCS_REQ, &p, &m, NULL), -EINVAL);
        p.signer_key = c.key;
        assert_int_equal(scep_message_build(SCEP_MESSAGE_GET_CRL, &p, &m, NULL), -EOPNOTSUPP);
        p.ca = NULL;
        assert_int_equal(scep_message_build(SCEP_MESSAGE_CERT_POLL, &p, &m, NULL), -EINVAL);
        {
                X509 *ec_ca = test_make_cert("EC CA", test_ec_key(), NULL, NULL, true, KU_KEY_CERT_SIGN, NULL);
                ScepError e = {};
                p.recipient = ec_ca;
                assert_int_equal(scep_message_build(SCEP_MESSAGE_PKCS_REQ, &p, &m, &e), SCEP_RESULT_NO_RECIPIENT);
                assert_non_null(strstr(e.message, "EC CA"));
                X509_free(ec_ca);
        }
        client_done(&c);
}

static void test_certpoll(void **state) {
        Client c;
        ScepRequestParams p = { .recipient = test_pki.ra_enc, .ca = test_pki.ca,
                                .cipher = SCEP_CIPHER_DES3, .digest = SCEP_DIGEST_SHA256 };
        ScepMessage *req = NULL, *poll = NULL;
        TestNdesRequest r;

        client_init(&c, test_rsa_key(3));
        p.csr = c.csr;
        p.signer_cert = c.signer;
        p.signer_key = c.key;
        assert_int_equal(scep_message_build(SCEP_MESSAGE_PKCS_REQ, &p, &req, NULL), 0);
        assert_int_equal(scep_message_build(SCEP_MESSAGE_CERT_POLL, &p, &poll, NULL), 0);
        assert_int_equal(poll->type, SCEP_MESSAGE_CERT_POLL);
        assert_string_equal(req->transaction_id, poll->transaction_id);
        assert_memory_not_equal(req->sender_nonce, poll->sender_nonce, 16);

        test_ndes_parse_request(poll->der, poll->size, test_pki.ra_enc, test_pki.ra_enc_key, &r);
        assert_int_equal(r.message_type, 20);
        assert_string_equal(r.transaction_id, req->transaction_id);
        assert_int_equal(X509_NAME_cmp(r.poll_issuer, X509_get_subject_name(test_pki.ca)), 0);
        assert_int_equal(X509_NAME_cmp(r.poll_subject, X509_REQ_get_subject_name(c.csr)), 0);
        test_ndes_request_done(&r);
        scep_message_free(req);
        scep_message_free(poll);
        client_done(&c);
}

/* RenewalReq: the new key's CSR (no challenge), signed by the certificate being renewed and its
 * key; the CA encrypts the CertRep to that certificate, so only the old key opens it. */
static void test_renewalreq(void **state) {
        EVP_PKEY *old_key = test_rsa_key(5), *new_key = test_rsa_key(6);
        X509 *old_cert = test_make_cert("web.a.example.com", old_key, test_pki.ca, test_pki.ca_key, false,
                                        KU_DIGITAL_SIGNATURE | KU_KEY_ENCIPHERMENT, NULL);
        X509_REQ *csr = make_csr(new_key, SCEP_USAGE_BOTH, NULL);
        X509 *self_signer = NULL, *order[3] = { test_pki.ca, test_pki.ra_enc, test_pki.ra_sign };
        ScepCACerts *certs = NULL;
        ScepMessage *m = NULL;
        ScepCertRep *rep = NULL;
        TestNdesRequest r;
        char txid[SCEP_TRANSACTION_ID_SIZE];
        uint8_t *der, *reply;
        size_t size, reply_size;

        der = test_degenerate_pkcs7(order, 3, &size);
        assert_int_equal(scep_cacert_parse("application/x-x509-ca-ra-cert", der, size, NULL, &certs, NULL), 0);
        free(der);

        ScepRequestParams p = {
                .csr = csr, .signer_cert = old_cert, .signer_key = old_key,
                .recipient = test_pki.ra_enc, .ca = test_pki.ca,
                .cipher = SCEP_CIPHER_DES3, .digest = SCEP_DIGEST_SHA256,
        };
        /* The signer's key must be the certificate's. */
        p.signer_key = new_key;
        assert_int_equal(scep_message_build(SCEP_MESSAGE_RENEWAL_REQ, &p, &m, NULL), -EINVAL);
        assert_null(m);
        p.signer_key = old_key;

        assert_int_equal(scep_message_build(SCEP_MESSAGE_RENEWAL_REQ, &p, &m, NULL), 0);
        assert_int_equal(m->type, SCEP_MESSAGE_RENEWAL_REQ);
        test_ndes_parse_request(m->der, m->size, test_pki.ra_enc, test_pki.ra_enc_key, &r);
        assert_int_equal(r.message_type, 17);
        /* Signed by the certificate being renewed, which the CA issued. */
        assert_int_equal(X509_cmp(r.signer, old_cert), 0);
        assert_int_equal(X509_verify(r.signer, X509_get0_pubkey(test_pki.ca)), 1);
        /* The CSR is for the new key, carries no challenge, and names the transaction. */
        assert_int_equal(EVP_PKEY_eq(X509_REQ_get0_pubkey(r.csr), new_key), 1);
        assert_int_equal(EVP_PKEY_eq(X509_REQ_get0_pubkey(r.csr), old_key), 0);
        assert_string_equal(r.challenge, "");
        assert_int_equal(scep_transaction_id(csr, txid), 0);
        assert_string_equal(r.transaction_id, txid);
        assert_string_equal(m->transaction_id, txid);

        /* The CertRep, encrypted to the old certificate: opened with the old key. */
        TestCertRepOptions o = { .status = 0, .cipher = "DES-EDE3-CBC" };
        reply = test_ndes_certrep(&test_pki, &r, NULL, &o, &reply_size);
        ScepCertRepParams cp = {
                .request = m, .ca_certs = certs, .signer_cert = old_cert, .signer_key = old_key, .csr = csr,
        };
        assert_int_equal(scep_certrep_parse(&cp, reply, reply_size, &rep, NULL), 0);
        assert_int_equal(rep->status, SCEP_STATUS_SUCCESS);
        assert_int_equal(EVP_PKEY_eq(X509_get0_pubkey(rep->certificate), new_key), 1);
        rep = scep_certrep_free(rep);

        /* A client that signed with a self-signed certificate of the new key cannot open it. */
        assert_int_equal(scep_signer_cert_build(csr, new_key, SCEP_DIGEST_SHA256, &self_signer, NULL), 0);
        cp.signer_cert = self_signer;
        cp.signer_key = new_key;
        assert_int_not_equal(scep_certrep_parse(&cp, reply, reply_size, &rep, NULL), 0);
        assert_null(rep);

        free(reply);
        test_ndes_request_done(&r);
        scep_message_free(m);
        X509_free(self_signer);
        X509_REQ_free(csr);
        X509_free(old_cert);
        scep_cacerts_free(certs);
}

static void test_encode_get(void **state) {
        static const uint8_t two[] = { 0xfb, 0xff };
        static const uint8_t three[] = { 0x00, 0x10, 0x83 };
        uint8_t buf[1000], decoded[1400];
        char *s = NULL, *plain;
        size_t k = 0;
        int n;

        assert_int_equal(scep_message_encode_get(NULL, 0, &s), 0);
        assert_string_equal(s, "");
        free(s);
        assert_int_equal(scep_message_encode_get(two, 2, &s), 0);
        assert_string_equal(s, "%2B%2F8%3D");                 /* "+/8=" */
        free(s);
        assert_int_equal(scep_message_encode_get(three, 3, &s), 0);
        assert_string_equal(s, "ABCD");
        free(s);
        assert_int_equal(scep_message_encode_get((const uint8_t *) "f", 1, &s), 0);
        assert_string_equal(s, "Zg%3D%3D");
        free(s);

        /* Round trip through percent-decoding and standard base64. */
        for (size_t i = 0; i < sizeof buf; i++)
                buf[i] = (uint8_t) (i * 37 + 11);
        assert_int_equal(scep_message_encode_get(buf, sizeof buf, &s), 0);
        assert_null(strchr(s, '+'));
        assert_null(strchr(s, '/'));
        assert_null(strchr(s, '='));
        assert_null(strchr(s, '-'));
        assert_null(strchr(s, '_'));
        plain = malloc(strlen(s) + 1);
        for (const char *p = s; *p; p++) {
                if (*p == '%') {
                        plain[k++] = p[2] == 'B' ? '+' : p[2] == 'F' ? '/' : '=';
                        p += 2;
                } else
                        plain[k++] = *p;
        }
        plain[k] = '\0';
        n = EVP_DecodeBlock(decoded, (const unsigned char *) plain, (int) k);
        assert_int_equal(n, 1000 + 2);   /* EVP_DecodeBlock counts the padding as zero bytes */
        assert_memory_equal(decoded, buf, sizeof buf);
        free(plain);
        free(s);
        assert_int_equal(scep_message_encode_get(NULL, 1, &s), -EINVAL);
}

static void test_http_next(void **state) {
        ScepHttpNext next = 99;
        ScepError e = {};

        /* POST answered by an empty 200 (Windows 2012): fall back to GET. */
        assert_int_equal(scep_pkioperation_http_next(SCEP_TRANSPORT_POST, 200, 0, 0, &next, &e), 0);
        assert_int_equal(next, SCEP_HTTP_RETRY_GET);
        assert_int_equal(scep_pkioperation_http_next(SCEP_TRANSPORT_POST, 200, 1500, 0, &next, &e), 0);
        assert_int_equal(next, SCEP_HTTP_PARSE);
        assert_int_equal(scep_pkioperation_http_next(SCEP_TRANSPORT_GET, 200, 1500, 5000, &next, &e), 0);
        assert_int_equal(next, SCEP_HTTP_PARSE);

        /* HTTP 414 on GET: a clear ProtocolError naming the IIS limits. */
        next = 99;
        assert_int_equal(scep_pkioperation_http_next(SCEP_TRANSPORT_GET, 414, 0, 5123, &next, &e),
                         SCEP_RESULT_URI_TOO_LONG);
        assert_int_equal(next, 99);
        assert_int_equal(e.result, SCEP_RESULT_URI_TOO_LONG);
        assert_non_null(strstr(e.message, "414"));
        assert_non_null(strstr(e.message, "5123-byte"));
        assert_non_null(strstr(e.message, "maxQueryString"));
        assert_non_null(strstr(e.message, "MaxFieldLength"));
        assert_non_null(strstr(e.message, "HKLM\\SYSTEM\\CurrentControlSet\\Services\\HTTP\\Parameters"));

        /* IIS answers an over-long query string with 404 (404.15), not 414: the same hint. */
        assert_int_equal(scep_pkioperation_http_next(SCEP_TRANSPORT_GET, 404, 1200, 5123, &next, &e),
                         SCEP_RESULT_URI_TOO_LONG);
        assert_non_null(strstr(e.message, "HTTP 404"));
        assert_non_null(strstr(e.message, "404.15"));
        assert_non_null(strstr(e.message, "5123-byte"));
        assert_non_null(strstr(e.message, "maxQueryString"));
        /* A POST answered 404 is just that. */
        assert_int_equal(scep_pkioperation_http_next(SCEP_TRANSPORT_POST, 404, 10, 0, &next, &e),
                         SCEP_RESULT_HTTP_STATUS);
        assert_null(strstr(e.message, "404.15"));

        assert_int_equal(scep_pkioperation_http_next(SCEP_TRANSPORT_GET, 200, 0, 100, &next, &e),
                         SCEP_RESULT_HTTP_STATUS);
        assert_non_null(strstr(e.message, "empty"));
        assert_int_equal(scep_pkioperation_http_next(SCEP_TRANSPORT_POST, 500, 10, 0, &next, &e),
                         SCEP_RESULT_HTTP_STATUS);
        assert_non_null(strstr(e.message, "HTTP 500"));
        assert_non_null(strstr(e.message, "POST"));
        assert_int_equal(scep_pkioperation_http_next(SCEP_TRANSPORT_POST, 414, 0, 0, &next, &e),
                         SCEP_RESULT_HTTP_STATUS);
        assert_int_equal(scep_pkioperation_http_next(7, 200, 1, 0, &next, &e), -EINVAL);
        assert_int_equal(scep_pkioperation_http_next(SCEP_TRANSPORT_GET, 200, 1, 0, NULL, &e), -EINVAL);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_csr_contents),
                cmocka_unit_test(test_csr_identity_names),
                cmocka_unit_test(test_csr_usage),
                cmocka_unit_test(test_csr_invalid),
                cmocka_unit_test(test_csr_ec_and_signer),
                cmocka_unit_test(test_csr_strip_challenge),
                cmocka_unit_test(test_csr_wipe_challenge),
                cmocka_unit_test(test_signer_cert),
                cmocka_unit_test(test_signer_cert_for_subject),
                cmocka_unit_test(test_transaction_id),
                cmocka_unit_test(test_pkcsreq_ndes),
                cmocka_unit_test(test_pkcsreq_ca_only),
                cmocka_unit_test(test_certpoll),
                cmocka_unit_test(test_renewalreq),
                cmocka_unit_test(test_encode_get),
                cmocka_unit_test(test_http_next),
        };
        return cmocka_run_group_tests(tests, test_pki_group_setup, test_pki_group_teardown);
}
