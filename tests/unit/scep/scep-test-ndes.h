/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* A fake NDES inside the unit tests, written with plain OpenSSL (independently of the code under
 * test): it parses our pkiMessage as a server would (verify the signature with the signer
 * certificate from the message, decrypt the envelope with the RA encryption key, read the SCEP
 * attributes) and builds CertReps in every shape the tests need. */

#include <openssl/evp.h>
#include <openssl/x509.h>
#include <stdbool.h>
#include <stdint.h>

#include "scep-test-pki.h"

typedef struct TestNdesRequest {
        int message_type;
        char transaction_id[128];
        uint8_t sender_nonce[64];
        size_t sender_nonce_size;
        int digest_nid;                 /* of the SignerInfo */
        int n_recipients;
        bool recipient_matches;         /* the only recipient is the expected certificate */
        bool aes128;                    /* envelope OIDs seen */
        bool des3;
        X509 *signer;                   /* owned */
        X509_REQ *csr;                  /* PKCSReq, owned */
        X509_NAME *poll_issuer;         /* CertPoll, owned */
        X509_NAME *poll_subject;
        char challenge[256];
} TestNdesRequest;

/* Parse our request as NDES would; recipient_cert/key: the certificate we expect the envelope
 * to be for (RA encryption, or the CA for CA-only servers). Asserts on any defect. */
void test_ndes_parse_request(const uint8_t *der, size_t size, X509 *recipient_cert,
                             EVP_PKEY *recipient_key, TestNdesRequest *ret);
void test_ndes_request_done(TestNdesRequest *r);

typedef struct TestCertRepOptions {
        int status;                     /* 0, 2, 3 */
        int fail_info;                  /* FAILURE: 0..4 */
        bool omit_fail_info;
        const char *fail_info_text;     /* overrides fail_info when set */
        const char *ms_hresult;         /* Microsoft 1.3.6.1.4.1.311.21.33, NULL: none */
        const EVP_MD *md;               /* NULL: SHA-256 */
        const char *cipher;             /* NULL: AES-128-CBC; "DES-EDE3-CBC"; "DES-CBC" (legacy) */
        bool oaep;                      /* RSA-OAEP key transport */
        bool no_certs;                  /* no `certificates` field (Windows 2012) */
        bool use_keyid;                 /* signer identified by subjectKeyIdentifier */
        X509 *signer;                   /* NULL: pki->ra_sign */
        EVP_PKEY *signer_key;
        const char *transaction_id;     /* NULL: echo the request's */
        const char *message_type;       /* NULL: "3" */
        const char *pki_status_text;    /* overrides status in the attribute when set */
        bool omit_transaction_id, omit_recipient_nonce, omit_message_type;
        bool wrong_nonce;
        int content;                    /* FAILURE/PENDING: 0 a single 0x00 (NDES), 1 empty, 2 absent */
        X509 *encrypt_to;               /* NULL: the request's signer certificate */
        EVP_PKEY *issue_key;            /* NULL: the CSR's key */
        X509 *issuer;                   /* NULL: pki->ca */
        EVP_PKEY *issuer_key;
        bool flip_signature;            /* corrupt the SignerInfo signature */
} TestCertRepOptions;


/* CSR subject for the issued certificate: from req->csr, or (CertPoll) req->poll_subject,
 * with public key csr_key when req has no CSR. */
uint8_t *test_ndes_certrep(const TestPki *pki, const TestNdesRequest *req, EVP_PKEY *csr_key,
                           const TestCertRepOptions *o, size_t *ret_size);
