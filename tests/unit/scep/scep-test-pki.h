/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* In-process PKI for the SCEP unit tests: cached RSA keys, CA and RA certificates, degenerate
 * PKCS#7 chains, and (scep-test-ndes.c) a fake NDES that parses our requests and answers. */

#include <openssl/evp.h>
#include <openssl/x509.h>
#include <stdbool.h>
#include <stdint.h>

/* RSA-2048 keys generated once per test program; idx < TEST_KEYS. Borrowed. */
#define TEST_KEYS 12
EVP_PKEY *test_rsa_key(unsigned idx);
EVP_PKEY *test_ec_key(void);

/* A certificate for key, signed by issuer/issuer_key (NULL: self-signed). ku 0 = no keyUsage
 * extension. md NULL = SHA-256. Owned by the caller. */
X509 *test_make_cert(const char *cn, EVP_PKEY *key, X509 *issuer, EVP_PKEY *issuer_key,
                     bool ca, uint32_t ku, const EVP_MD *md);

typedef struct TestPki {
        EVP_PKEY *ca_key, *ra_sign_key, *ra_enc_key;
        X509 *ca, *ra_sign, *ra_enc;
} TestPki;

/* CA "Test Issuing CA", RA signing "Exchange Enrollment Agent (Offline request)" (digital
 * signature), RA encryption "CEP Encryption" (key encipherment), keys 0, 1, 2. */
void test_pki_init(TestPki *pki);
void test_pki_done(TestPki *pki);

/* For a test file whose tests share one TestPki: cmocka group setup and teardown that make
 * test_pki (test_pki_init) and free it (test_pki_done). */
extern TestPki test_pki;
int test_pki_group_setup(void **state);
int test_pki_group_teardown(void **state);

/* DER of a degenerate PKCS#7 SignedData holding certs in the given order. free() it. */
uint8_t *test_degenerate_pkcs7(X509 *const *certs, size_t n, size_t *ret_size);

/* DER of a certificate. free() it. */
uint8_t *test_cert_der(X509 *x, size_t *ret_size);
