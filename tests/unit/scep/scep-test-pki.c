/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <openssl/ec.h>
#include <openssl/pkcs7.h>
#include <openssl/rsa.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scep-test-pki.h"

static EVP_PKEY *keys[TEST_KEYS];
static EVP_PKEY *ec_key;

static void die(const char *what) {
        fprintf(stderr, "test PKI: %s failed\n", what);
        abort();
}

static void keys_free(void) {
        for (unsigned i = 0; i < TEST_KEYS; i++)
                EVP_PKEY_free(keys[i]);
        EVP_PKEY_free(ec_key);
}

EVP_PKEY *test_rsa_key(unsigned idx) {
        static bool registered;

        if (idx >= TEST_KEYS)
                die("key index");
        if (!registered) {
                atexit(keys_free);
                registered = true;
        }
        if (!keys[idx]) {
                keys[idx] = EVP_RSA_gen(2048);
                if (!keys[idx])
                        die("EVP_RSA_gen");
        }
        return keys[idx];
}

EVP_PKEY *test_ec_key(void) {
        if (!ec_key) {
                ec_key = EVP_EC_gen("P-256");
                if (!ec_key)
                        die("EVP_EC_gen");
                (void) test_rsa_key(0); /* registers the atexit handler */
        }
        return ec_key;
}

static void add_ext(X509 *x, X509 *issuer, int nid, const char *value) {
        X509V3_CTX ctx;
        X509_EXTENSION *ext;

        X509V3_set_ctx_nodb(&ctx);
        X509V3_set_ctx(&ctx, issuer, x, NULL, NULL, 0);
        ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
        if (!ext || !X509_add_ext(x, ext, -1))
                die("add extension");
        X509_EXTENSION_free(ext);
}

X509 *test_make_cert(const char *cn, EVP_PKEY *key, X509 *issuer, EVP_PKEY *issuer_key,
                     bool ca, uint32_t ku, const EVP_MD *md) {
        static long serial = 1000;
        X509 *x = X509_new();
        X509_NAME *name = X509_NAME_new();
        char kus[128] = "critical";

        if (!x || !name)
                die("X509_new");
        X509_set_version(x, 2);
        ASN1_INTEGER_set(X509_get_serialNumber(x), serial++);
        X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *) cn, -1, -1, 0);
        X509_set_subject_name(x, name);
        X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : name);
        X509_NAME_free(name);
        X509_gmtime_adj(X509_getm_notBefore(x), -3600);
        X509_gmtime_adj(X509_getm_notAfter(x), 86400L * 365);
        X509_set_pubkey(x, key);
        add_ext(x, issuer ?: x, NID_basic_constraints, ca ? "critical,CA:TRUE" : "critical,CA:FALSE");
        add_ext(x, issuer ?: x, NID_subject_key_identifier, "hash");
        if (issuer)
                add_ext(x, issuer, NID_authority_key_identifier, "keyid");
        if (ku) {
                if (ku & KU_DIGITAL_SIGNATURE)
                        strcat(kus, ",digitalSignature");
                if (ku & KU_KEY_ENCIPHERMENT)
                        strcat(kus, ",keyEncipherment");
                if (ku & KU_KEY_CERT_SIGN)
                        strcat(kus, ",keyCertSign");
                if (ku & KU_CRL_SIGN)
                        strcat(kus, ",cRLSign");
                add_ext(x, issuer ?: x, NID_key_usage, kus);
        }
        if (!X509_sign(x, issuer_key ?: key, md ?: EVP_sha256()))
                die("X509_sign");
        return x;
}

void test_pki_init(TestPki *pki) {
        memset(pki, 0, sizeof *pki);
        pki->ca_key = test_rsa_key(0);
        pki->ra_sign_key = test_rsa_key(1);
        pki->ra_enc_key = test_rsa_key(2);
        pki->ca = test_make_cert("Test Issuing CA", pki->ca_key, NULL, NULL, true,
                                 KU_KEY_CERT_SIGN | KU_CRL_SIGN | KU_DIGITAL_SIGNATURE, NULL);
        pki->ra_sign = test_make_cert("Exchange Enrollment Agent (Offline request)", pki->ra_sign_key,
                                      pki->ca, pki->ca_key, false, KU_DIGITAL_SIGNATURE, NULL);
        pki->ra_enc = test_make_cert("CEP Encryption", pki->ra_enc_key, pki->ca, pki->ca_key, false,
                                     KU_KEY_ENCIPHERMENT, NULL);
}

void test_pki_done(TestPki *pki) {
        X509_free(pki->ca);
        X509_free(pki->ra_sign);
        X509_free(pki->ra_enc);
        memset(pki, 0, sizeof *pki);
}

TestPki test_pki;

int test_pki_group_setup(void **state) {
        (void) state;
        test_pki_init(&test_pki);
        return 0;
}

int test_pki_group_teardown(void **state) {
        (void) state;
        test_pki_done(&test_pki);
        return 0;
}

uint8_t *test_degenerate_pkcs7(X509 *const *certs, size_t n, size_t *ret_size) {
        PKCS7 *p7 = PKCS7_new();
        unsigned char *der = NULL, *copy;
        int len;

        if (!p7 || !PKCS7_set_type(p7, NID_pkcs7_signed) || !PKCS7_content_new(p7, NID_pkcs7_data))
                die("PKCS7 setup");
        for (size_t i = 0; i < n; i++)
                if (!PKCS7_add_certificate(p7, certs[i]))
                        die("PKCS7_add_certificate");
        len = i2d_PKCS7(p7, &der);
        PKCS7_free(p7);
        if (len <= 0)
                die("i2d_PKCS7");
        copy = malloc((size_t) len);
        if (!copy)
                die("malloc");
        memcpy(copy, der, (size_t) len);
        OPENSSL_free(der);
        *ret_size = (size_t) len;
        return copy;
}

uint8_t *test_cert_der(X509 *x, size_t *ret_size) {
        unsigned char *der = NULL, *copy;
        int len = i2d_X509(x, &der);

        if (len <= 0)
                die("i2d_X509");
        copy = malloc((size_t) len);
        if (!copy)
                die("malloc");
        memcpy(copy, der, (size_t) len);
        OPENSSL_free(der);
        *ret_size = (size_t) len;
        return copy;
}
