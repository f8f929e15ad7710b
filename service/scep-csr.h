/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The PKCS#10 request and the self-signed signer certificate of a SCEP enrollment.
 *
 * Keys come from the caller (key generation lives elsewhere).
 *
 * EC keys (Enroll allows ec:p256 / ec:p384): SCEP encrypts the CertRep to the public key of
 * the certificate that signed the request (RFC 8894 section 3.3.2; NDES and micromdm use RSA
 * key transport, PKCS#1 v1.5 or OAEP, and neither does key agreement). An EC key cannot be a
 * key-transport recipient, so for an EC CSR key the caller passes a separate, transient
 * RSA-2048 "transport key" as signer_key: the signer certificate (same subject as the CSR,
 * digitalSignature + keyEncipherment) then carries the RSA key and signs the pkiMessage,
 * while the PKCS#10 itself is signed with, and certifies, the EC key. The transactionID is
 * always derived from the CSR's key. For RSA CSR keys signer_key is the CSR key itself,
 * as every known client does. Whether NDES accepts a signer key different from the CSR key
 * is unverified: the integration tests must try it. */

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "scep-caps.h"
#include "scep-result.h"

typedef enum ScepUsage {
        SCEP_USAGE_SIGNATURE  = 1,      /* keyUsage digitalSignature: NDES SignatureTemplate */
        SCEP_USAGE_ENCRYPTION = 2,      /* keyUsage keyEncipherment: NDES EncryptionTemplate */
        SCEP_USAGE_BOTH       = 3,      /* both: NDES GeneralPurposeTemplate */
} ScepUsage;

typedef struct ScepRdn {
        const char *type;               /* "CN", "O", "OU", "C", ... or a dotted OID */
        const char *value;              /* UTF-8 */
} ScepRdn;

#define SCEP_CSR_MAX_RDNS      16u
#define SCEP_SAN_UPN_PREFIX    "upn:"
#define SCEP_SAN_EMAIL_PREFIX  "email:"
#define SCEP_OID_MS_UPN        "1.3.6.1.4.1.311.20.2.3"
#define SCEP_CSR_MAX_DNS_NAMES 100u

typedef struct ScepCsrParams {
        /* Subject RDNs in the order of the RFC 4514 string ("CN=web,O=Tenant A" is
         * { {"CN","web"}, {"O","Tenant A"} }); they are encoded reversed, as RFC 4514
         * prescribes, so the certificate prints back as the same string. One attribute per
         * RDN (no multi-valued RDNs). May be empty when dns_names is not. */
        const ScepRdn *subject;
        size_t n_subject;
        const char *const *dns_names;   /* subjectAltName entries, in order: dNSName, or with a
                                         * prefix (a DNS name has no ':') "upn:user@domain" the
                                         * Microsoft UPN otherName (SCEP_OID_MS_UPN, UTF8String),
                                         * "email:user@domain" an rfc822Name */
        size_t n_dns_names;
        ScepUsage usage;
        const char *challenge;          /* challengePassword attribute; NULL = none. Secret. */
        ScepDigest digest;              /* signature hash of the PKCS#10 */
} ScepCsrParams;

/* Build and sign the PKCS#10. Returns 0, or -EINVAL (bad params, e.g. an RDN type OpenSSL
 * does not know or a value over its upper bound), -ENOMEM, -EIO. */
int scep_csr_build(const ScepCsrParams *p, EVP_PKEY *key, X509_REQ **ret, ScepError *ret_error);

/* Overwrites the value of every challengePassword attribute of req with zeros, in place (the
 * attribute stays, its value no longer means anything). For a request about to be freed. */
void scep_csr_wipe_challenge(X509_REQ *req);

/* Removes the challengePassword attribute(s), wiped first. With key (the request's own), signs
 * the request again with the digest of its signature so it still verifies; without, its
 * signature no longer matches (its subject and public key are all CertPoll needs). Returns 1
 * if a challenge was removed, 0 if there was none, -errno. */
int scep_csr_strip_challenge(X509_REQ *req, EVP_PKEY *key);

/* Signs req again with key and the hash of its current signature: after
 * scep_csr_strip_challenge(req, NULL), which leaves the signature stale, for a request that
 * is kept (a PENDING request's CSR in the journal). So the hot path of an issued enrollment
 * need not pay that RSA private-key operation (0.3-0.4 ms measured) for a CSR that is freed
 * after the CertRep. 0 or -errno. */
int scep_csr_resign(X509_REQ *req, EVP_PKEY *key);

/* PEM text of a request (malloc()ed), as the journal keeps it; and back. -ENOMEM; -EINVAL
 * when the text is no PEM certificate request. */
int scep_csr_to_pem(X509_REQ *req, char **ret);
int scep_csr_from_pem(const char *pem, X509_REQ **ret);

/* X509_REQ_free() that wipes a challengePassword first. Accepts NULL, returns NULL. */

X509_REQ *scep_csr_free(X509_REQ *req);
void scep_csr_freep(X509_REQ **req);

/* The self-signed signer certificate: subject and issuer = the CSR's subject, public key =
 * signer_key (RSA; the CSR key itself for RSA CSR keys, see above), keyUsage digitalSignature
 * + keyEncipherment, random 128-bit serial, valid from an hour ago for 30 days (covers a
 * CertPoll sequence; build a fresh one per message when polling longer). */
int scep_signer_cert_build(X509_REQ *csr, EVP_PKEY *signer_key, ScepDigest digest, X509 **ret,
                           ScepError *ret_error);

/* The same certificate from the subject alone (RDNs as ScepCsrParams.subject; the name is
 * encoded exactly as scep_csr_build() encodes it, so it equals the CSR's subject, which
 * RFC 8894 asks of a self-signed signer certificate). Needs no CSR and no challenge: the
 * engine can build it while the challenge request is in flight, off the enrollment's
 * critical path (one RSA private-key operation, about 1 ms of the loop's time per
 * enrollment measured). Same errors as scep_csr_build() for a bad subject. */
int scep_signer_cert_build_for_subject(const ScepRdn *subject, size_t n_subject, EVP_PKEY *signer_key,
                                       ScepDigest digest, X509 **ret, ScepError *ret_error);

/* EVP_MD of a ScepDigest (never NULL for valid values). */
const EVP_MD *scep_digest_md(ScepDigest d);
