/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Fuzz target: what the NDES emulator does with a PKIOperation body (parse and verify
 * the SignedData, decrypt the envelope, parse the CSR and its challenge, issue, build
 * the CertRep). The seeds are real scepclient and certmonger requests encrypted to the
 * fixed RA encryption certificate in fuzz-keys.h, and the CSRs inside them. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/provider.h>

#include "fuzz-keys.h"
#include "ndes-pki.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static X509 *pem_cert(const char *pem) {
        BIO *b = BIO_new_mem_buf(pem, -1);
        X509 *x = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
        BIO_free(b);
        return x;
}

static EVP_PKEY *pem_key(const char *pem) {
        BIO *b = BIO_new_mem_buf(pem, -1);
        EVP_PKEY *k = b ? PEM_read_bio_PrivateKey(b, NULL, NULL, NULL) : NULL;
        BIO_free(b);
        return k;
}

static struct {
        bool ready;
        OSSL_PROVIDER *legacy, *deflt;   /* kept for the life of the process */
        X509 *enc, *sign, *ca;
        EVP_PKEY *enc_key, *sign_key, *ca_key;
} s;

static void reply(const ScepRequest *r, int status, STACK_OF(X509) *certs) {
        ScepReplyOptions o = {
                .ra_sign_cert = s.sign,
                .ra_sign_key = s.sign_key,
                .digest = EVP_sha256(),
                .cipher = EVP_aes_128_cbc(),
                .oaep = status == 0,
                .include_certs = true,
        };
        unsigned char *out = NULL;
        size_t n = 0;
        if (scep_certrep_build(r, &o, status, status == 2 ? 1 : 0, status == 2 ? -2147024810 : 0, certs,
                               &out, &n) == 0)
                OPENSSL_free(out);
        ERR_clear_error();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        if (!s.ready) {
                s.legacy = OSSL_PROVIDER_load(NULL, "legacy");
                s.deflt = OSSL_PROVIDER_load(NULL, "default");
                s.enc = pem_cert(FUZZ_RA_ENC_CRT);
                s.sign = pem_cert(FUZZ_RA_SIGN_CRT);
                s.ca = pem_cert(FUZZ_CA_CRT);
                s.enc_key = pem_key(FUZZ_RA_ENC_KEY);
                s.sign_key = pem_key(FUZZ_RA_SIGN_KEY);
                s.ca_key = pem_key(FUZZ_CA_KEY);
                if (!s.enc || !s.sign || !s.ca || !s.enc_key || !s.sign_key || !s.ca_key)
                        abort();
                s.ready = true;
        }
        if (size > 256 * 1024) /* the CGI refuses larger bodies */
                return 0;

        /* The input as a bare PKCS#10 too: mutations of a whole pkiMessage rarely get past its
         * signature, so this reaches the CSR code (challenge, SANs, keyUsage, issuing) directly. */
        X509_REQ *bare = pki_req_from_der(data, size);
        if (bare) {
                char pw[128];
                X509 *issued = NULL;
                (void) pki_req_challenge(bare, pw, sizeof pw);
                (void) pki_issue(bare, s.ca, s.ca_key, 1764000000, 0, &issued);
                X509_free(issued);
                X509_REQ_free(bare);
                ERR_clear_error();
        }

        ScepRequest r = {};
        if (scep_request_parse(data, size, s.enc, s.enc_key, &r) < 0)
                return 0;
        if (r.decrypted) {
                X509_REQ *req = pki_req_from_der(r.inner, r.inner_size);
                X509 *issued = NULL;
                char pw[128];
                if (req) {
                        (void) pki_req_challenge(req, pw, sizeof pw);
                        if (pki_issue(req, s.ca, s.ca_key, 1764000000, 0, &issued) == 0) {
                                STACK_OF(X509) *certs = sk_X509_new_null();
                                if (certs && sk_X509_push(certs, issued) && sk_X509_push(certs, s.ca))
                                        reply(&r, 0, certs);
                                sk_X509_free(certs);
                        }
                }
                X509_free(issued);
                X509_REQ_free(req);
        }
        reply(&r, 2, NULL);
        reply(&r, 3, NULL);
        scep_request_done(&r);
        ERR_clear_error();
        return 0;
}
