/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* CertRep parsing. Pure: bytes in, a verified result out.
 *
 * Checks, in order (the first failure is returned with a message naming it):
 *   1. DER CMS SignedData over id-data, exactly one SignerInfo;
 *   2. the reply's digest: SHA-256/384/512, or SHA-1 only with allow_legacy (CONFIG.md:
 *      AllowLegacyCiphers "accepts single-DES / SHA-1 replies"; Windows 2012 NDES and
 *      micromdm sign with SHA-1); MD5 never;
 *   3. the signer is ScepCACerts.verifier (RA signing certificate, else the CA) — found by
 *      issuerAndSerialNumber or subjectKeyIdentifier even when the reply has no
 *      `certificates` field; certificates inside the reply are never trusted as signers;
 *   4. the verifier chains to ScepCACerts.ca (trust anchor, as pinned by CAFingerprint/TLS)
 *      with an explicit purpose (X509_PURPOSE_ANY: NDES RA certificates carry the Certificate
 *      Request Agent EKU, not S/MIME) and is within its validity period;
 *   5. the signature (CMS_verify with the signer supplied, no S/MIME purpose check);
 *   6. messageType 3, transactionID equal to ours, recipientNonce equal to our senderNonce,
 *      pkiStatus 0/2/3, failInfo 0..4 (FAILURE), Microsoft's 1.3.6.1.4.1.311.21.33;
 *   7. SUCCESS: decrypt the EnvelopedData with the signer key (CMS_decrypt: PKCS#1 v1.5 and
 *      RSA-OAEP; AES, DES3; single DES and RC2 only with allow_legacy, through a private
 *      OSSL_LIB_CTX holding the legacy and default providers — the process's default library
 *      context never gets the legacy provider), read the degenerate SignedData inside, pick
 *      the certificate whose public key equals the CSR's (it must be signed by the CA), and
 *      keep the others as the chain.
 * FAILURE and PENDING carry no envelope: their content (0 bytes, NDES's single 0x00, or
 * absent) is ignored. */

#include <openssl/evp.h>
#include <openssl/x509.h>
#include <stdbool.h>

#include "scep-cacert.h"
#include "scep-caps.h"
#include "scep-message.h"
#include "scep-result.h"

#define SCEP_CERTREP_MAX_SIZE (256u * 1024u)

typedef enum ScepPkiStatus {
        SCEP_STATUS_SUCCESS = 0,
        SCEP_STATUS_FAILURE = 2,
        SCEP_STATUS_PENDING = 3,
} ScepPkiStatus;

typedef enum ScepFailInfo {
        SCEP_FAIL_NONE            = -1,  /* FAILURE without failInfo, or not a FAILURE */
        SCEP_FAIL_BAD_ALG         = 0,
        SCEP_FAIL_BAD_MESSAGE_CHECK = 1,
        SCEP_FAIL_BAD_REQUEST     = 2,
        SCEP_FAIL_BAD_TIME        = 3,
        SCEP_FAIL_BAD_CERT_ID     = 4,
} ScepFailInfo;

#define SCEP_HRESULT_MAX 24u

typedef struct ScepCertRepParams {
        const ScepMessage *request;     /* our message: transaction_id and sender_nonce */
        const ScepCACerts *ca_certs;    /* verifier and trust anchor */
        X509 *signer_cert;              /* our signer certificate and key: SUCCESS decryption */
        EVP_PKEY *signer_key;
        X509_REQ *csr;                  /* the issued certificate carries its public key */
        bool allow_legacy;              /* AllowLegacyCiphers=yes */
} ScepCertRepParams;

typedef struct ScepCertRep {
        ScepPkiStatus status;
        ScepFailInfo fail_info;         /* FAILURE only */
        char ms_hresult[SCEP_HRESULT_MAX]; /* "" or Microsoft's HRESULT, decimal text as sent */
        ScepDigest digest;              /* of the reply's signature */
        bool legacy_cipher;             /* SUCCESS reply used single DES or RC2 */
        X509 *certificate;              /* SUCCESS: the issued certificate (owned) */
        STACK_OF(X509) *chain;          /* SUCCESS: the other certificates (owned, maybe empty) */
} ScepCertRep;

int scep_certrep_parse(const ScepCertRepParams *p, const void *data, size_t size,
                       ScepCertRep **ret, ScepError *ret_error);

ScepCertRep *scep_certrep_free(ScepCertRep *r);

/* PEM text of x (may be NULL) followed by every certificate of more (may be NULL), malloc()ed
 * in *ret; -ENOMEM. */
int scep_certs_to_pem(X509 *x, STACK_OF(X509) *more, char **ret);

/* "badAlg", "badMessageCheck", "badRequest", "badTime", "badCertId" (API.md's FailInfo
 * names); "" for SCEP_FAIL_NONE; NULL for anything else. */
const char *scep_fail_info_to_string(ScepFailInfo f);

/* A human sentence for a FAILURE, for Request.ErrorMessage: failInfo, its meaning and the
 * likely fix (a reused or wrong challenge, clock skew, ...), and Microsoft's HRESULT in hex
 * and decimal when present. */
void scep_certrep_describe_failure(const ScepCertRep *r, char *buf, size_t size);
