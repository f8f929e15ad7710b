/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* NDES emulator: certificates and SCEP messages (OpenSSL 3), no file or HTTP I/O.
 * Written independently of service/scep-* on purpose: the emulator is the
 * counterpart our client is tested against, so it must not share its code. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

/* RFC 8894 messageType values */
enum {
        SCEP_MSG_CERTREP    = 3,
        SCEP_MSG_RENEWALREQ = 17,
        SCEP_MSG_PKCSREQ    = 19,
        SCEP_MSG_CERTPOLL   = 20,
        SCEP_MSG_GETCERT    = 21,
        SCEP_MSG_GETCRL     = 22,
};

enum {
        SCEP_STATUS_SUCCESS = 0,
        SCEP_STATUS_FAILURE = 2,
        SCEP_STATUS_PENDING = 3,
};

enum {
        SCEP_FAIL_BADALG          = 0,
        SCEP_FAIL_BADMESSAGECHECK = 1,
        SCEP_FAIL_BADREQUEST      = 2,
        SCEP_FAIL_BADTIME         = 3,
        SCEP_FAIL_BADCERTID       = 4,
};

#define SCEP_TXID_MAX 128
#define SCEP_NONCE_SIZE 16

/* What a parsed (outer) pkiMessage told us. */
typedef struct ScepRequest {
        int message_type;                 /* 0 when missing or not a number */
        char transaction_id[SCEP_TXID_MAX + 1];
        unsigned char sender_nonce[SCEP_NONCE_SIZE];
        bool have_nonce;
        X509 *signer;                     /* the request's signer certificate (reply is encrypted to it) */
        const EVP_MD *digest;             /* the request signer's digest */
        bool signature_ok;
        bool decrypted;
        unsigned char *inner;             /* decrypted envelope content (PKCS#10 or IssuerAndSubject) */
        size_t inner_size;
} ScepRequest;

void scep_request_done(ScepRequest *r);

/* Parses and verifies the outer SignedData, then decrypts the envelope with the RA
 * encryption key. Returns 0 when the request is usable enough to answer with a CertRep
 * (check signature_ok / decrypted / message_type), -EBADMSG when it is not even that. */
int scep_request_parse(const unsigned char *der, size_t size, X509 *ra_enc_cert, EVP_PKEY *ra_enc_key,
                       ScepRequest *ret);

typedef struct ScepReplyOptions {
        X509 *ra_sign_cert;
        EVP_PKEY *ra_sign_key;
        const EVP_MD *digest;             /* signing digest */
        const EVP_CIPHER *cipher;         /* envelope cipher */
        bool oaep;                        /* RSA-OAEP key transport instead of PKCS#1 v1.5 */
        bool include_certs;               /* put the RA signing cert in `certificates` */
} ScepReplyOptions;

/* Builds a CertRep. For SUCCESS, certs (issued first) go in a degenerate SignedData
 * encrypted to req->signer. hresult: Microsoft's 1.3.6.1.4.1.311.21.33 attribute,
 * added when non-zero. */
int scep_certrep_build(const ScepRequest *req, const ScepReplyOptions *opts, int status, int fail_info,
                       int32_t hresult, STACK_OF(X509) *certs, unsigned char **ret, size_t *ret_size);

/* Certificates */
EVP_PKEY *pki_rsa_generate(int bits);

typedef enum CertProfile {
        CERT_PROFILE_CA,
        CERT_PROFILE_RA_SIGN,
        CERT_PROFILE_RA_ENCRYPT,
} CertProfile;

X509 *pki_make_authority_cert(CertProfile profile, const char *subject, EVP_PKEY *key, X509 *issuer,
                              EVP_PKEY *issuer_key, time_t now);

/* Issues a certificate for a PKCS#10 request: its subject, DNS subjectAltNames and keyUsage. */
/* validity_sec 0: one year (backdated 10 minutes); else that many seconds from now. */
int pki_issue(X509_REQ *req, X509 *ca, EVP_PKEY *ca_key, time_t now, long validity_sec, X509 **ret);

/* The challengePassword attribute, NUL-terminated copy into buf. Returns 0, or -ENOENT. */
int pki_req_challenge(X509_REQ *req, char *buf, size_t size);

/* DER buffer helpers */
X509_REQ *pki_req_from_der(const unsigned char *der, size_t size);

/* Degenerate PKCS#7 SignedData with the certificates in the given order. */
int pki_certs_only(STACK_OF(X509) *certs, unsigned char **ret, size_t *ret_size);
