/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <openssl/pem.h>
#include <openssl/pkcs7.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz-scep-fixture.h"
#include "scep-fuzz-fixture.h"

static ScepFuzzFixture fixture;
static int loaded;

static void die(const char *what) {
        fprintf(stderr, "SCEP fuzz fixture: cannot load %s\n", what);
        abort();
}

static EVP_PKEY *load_key(const char *pem) {
        BIO *b = BIO_new_mem_buf(pem, -1);
        EVP_PKEY *k = b ? PEM_read_bio_PrivateKey(b, NULL, NULL, NULL) : NULL;

        BIO_free(b);
        if (!k)
                die("a key");
        return k;
}

static X509 *load_cert(const char *pem) {
        BIO *b = BIO_new_mem_buf(pem, -1);
        X509 *x = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;

        BIO_free(b);
        if (!x)
                die("a certificate");
        return x;
}

static void fixture_free(void) {
        EVP_PKEY_free(fixture.ca_key);
        EVP_PKEY_free(fixture.rasign_key);
        EVP_PKEY_free(fixture.raenc_key);
        EVP_PKEY_free(fixture.client_key);
        X509_free(fixture.ca);
        X509_free(fixture.rasign);
        X509_free(fixture.raenc);
        X509_free(fixture.signer);
        X509_REQ_free(fixture.csr);
        scep_cacerts_free(fixture.ndes);
        scep_cacerts_free(fixture.ca_only);
}

const ScepFuzzFixture *scep_fuzz_fixture(void) {
        PKCS7 *p7;
        unsigned char *der = NULL;
        BIO *b;
        int n;

        if (loaded)
                return &fixture;

        fixture.ca_key = load_key(fixture_ca_key);
        fixture.rasign_key = load_key(fixture_rasign_key);
        fixture.raenc_key = load_key(fixture_raenc_key);
        fixture.client_key = load_key(fixture_client_key);
        fixture.ca = load_cert(fixture_ca_crt);
        fixture.rasign = load_cert(fixture_rasign_crt);
        fixture.raenc = load_cert(fixture_raenc_crt);
        fixture.signer = load_cert(fixture_signer_crt);
        b = BIO_new_mem_buf(fixture_client_csr, -1);
        fixture.csr = b ? PEM_read_bio_X509_REQ(b, NULL, NULL, NULL) : NULL;
        BIO_free(b);
        if (!fixture.csr)
                die("the CSR");

        p7 = PKCS7_new();
        if (!p7 || !PKCS7_set_type(p7, NID_pkcs7_signed) || !PKCS7_content_new(p7, NID_pkcs7_data) ||
            !PKCS7_add_certificate(p7, fixture.rasign) || !PKCS7_add_certificate(p7, fixture.raenc) ||
            !PKCS7_add_certificate(p7, fixture.ca))
                die("the GetCACert chain");
        n = i2d_PKCS7(p7, &der);
        PKCS7_free(p7);
        if (n <= 0 || scep_cacert_parse("application/x-x509-ca-ra-cert", der, (size_t) n, NULL,
                                        &fixture.ndes, NULL) != 0)
                die("the NDES GetCACert");
        OPENSSL_free(der);
        der = NULL;
        n = i2d_X509(fixture.ca, &der);
        if (n <= 0 || scep_cacert_parse("application/x-x509-ca-cert", der, (size_t) n, NULL,
                                        &fixture.ca_only, NULL) != 0)
                die("the CA-only GetCACert");
        OPENSSL_free(der);

        fixture.request.type = SCEP_MESSAGE_PKCS_REQ;
        snprintf(fixture.request.transaction_id, sizeof fixture.request.transaction_id, "%s",
                 FIXTURE_TRANSACTION_ID);
        memcpy(fixture.request.sender_nonce, fixture_sender_nonce, SCEP_NONCE_SIZE);

        atexit(fixture_free);
        loaded = 1;
        return &fixture;
}
