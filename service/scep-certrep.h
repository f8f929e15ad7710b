/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* CertRep parsing. Pure: bytes in, a verified result out.
 *
 * Checks, in order (the first failure is returned with a message naming it):
 *   1. DER CMS SignedData over id-data, exactly one SignerInfo;
 *   2. the reply's digest: SHA-256/384/512, or SHA-1 whatever allow_legacy says; MD5 and
 *      anything else never. NDES signs its CertReps with SHA-1 (a real Windows 2012 reply,
 *      certnanny/sscep#59; inferred for 2022-era servers from certnanny/sscep#157), and so
 *      does micromdm: refusing SHA-1 would refuse every NDES answer. SHA-1 is accepted only
 *      as the digest of the signature checked in 3-5, i.e. by the RA or CA certificate pinned
 *      from GetCACert. What we send is unchanged: scep_caps_choose() picks SHA-1 only for a CA
 *      with AllowLegacyCiphers=yes that offers nothing better;
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
 * absent) is ignored.
 *
 * When 2-5 fail, the error message ends with what the reply claims about itself (pkiStatus,
 * failInfo, Microsoft's HRESULT), labelled unverified: see scep_certrep_read_unverified(). */

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
        EVP_PKEY *request_key;          /* or that public key itself (then csr may be NULL) */
        bool allow_legacy;              /* AllowLegacyCiphers=yes: single DES / RC2 envelopes */
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

/* "badAlg", "badMessageCheck", "badRequest", "badTime", "badCertId" (the Request property FailInfo
 * names); "" for SCEP_FAIL_NONE; NULL for anything else. */
const char *scep_fail_info_to_string(ScepFailInfo f);

/* A human sentence for a FAILURE, for Request.ErrorMessage: failInfo, and Microsoft's HRESULT
 * in hex and decimal when present; then the likely cause and fix: the HRESULT's meaning when it
 * is one NDES is known to send (Sleepw4lker's PSCertificateEnrollment Get-NDESCertificate.ps1:
 * 0x800B0110 challenge already used, 0x80096004 no challenge sent, 0x80070490 challenge
 * unknown to NDES, 0x80094001 subject refused by the CA, 0x800706BA CA unreachable,
 * 0x80070057 unsupported or malformed message), else the failInfo's (a reused or wrong
 * challenge, clock skew, ...). 0x80070490 with failInfo badCertId is NDES's answer to a CertPoll
 * for a transaction it does not hold, and is described so. Always NUL-terminates a non-empty buf. */
void scep_certrep_describe_failure(const ScepCertRep *r, char *buf, size_t size);

/* True for a verified FAILURE whose HRESULT says NDES did not take the challenge password
 * because it does not know it (0x80070490: expired, cache cleared by a restart, another NDES
 * node) or because it was already used (0x800B0110): a fresh challenge may succeed where this
 * one cannot. False for anything else (0x80070490 with failInfo badCertId: an unknown
 * transaction), NULL included. */
bool scep_certrep_challenge_unknown(const ScepCertRep *r);

/* ---- unverified: for diagnostics only ---------------------------------------------------
 *
 * What a CertRep says about itself, read WITHOUT checking its signature, its signer, its
 * transactionID or its nonces: anybody could have sent it. Its only use is to explain a reply
 * that failed verification (scep_certrep_parse() appends it to its error message) or one whose
 * signer certificate we do not have (a capture). It is a type of its own, holding no
 * certificate and no ScepPkiStatus, and no function taking a ScepCertRep accepts it: nothing
 * read here can be acted on as a SUCCESS or PENDING. */
typedef struct ScepCertRepClaim {
        int message_type;               /* as sent; -1: absent or unreadable */
        int status;                     /* pkiStatus as sent (any number); -1: absent or unreadable */
        int fail_info;                  /* failInfo as sent; -1: absent or unreadable */
        char ms_hresult[SCEP_HRESULT_MAX]; /* "" or Microsoft's HRESULT, decimal text */
        int digest_nid;                 /* the SignerInfo's digest algorithm (NID_undef: unknown) */
} ScepCertRepClaim;

/* 0 and *ret filled when data is a DER CMS SignedData over id-data with exactly one SignerInfo
 * (attributes that are missing or malformed read as -1 or ""); SCEP_RESULT_MALFORMED or
 * SCEP_RESULT_TOO_LARGE otherwise, with *ret untouched; -EINVAL for NULL arguments. */
int scep_certrep_read_unverified(const void *data, size_t size, ScepCertRepClaim *ret,
                                 ScepError *ret_error);

/* "unverified: the reply claims pkiStatus FAILURE, failInfo badRequest (2), Microsoft HRESULT
 * 0x80070057 (-2147024809): <meaning>" — always starts with "unverified". */
void scep_certrep_claim_describe(const ScepCertRepClaim *c, char *buf, size_t size);
