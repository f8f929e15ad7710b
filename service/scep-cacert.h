/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* GetCACert parsing and classification. Pure: bytes in, certificates out.
 *
 * Accepts a single DER certificate (application/x-x509-ca-cert) or a degenerate PKCS#7
 * SignedData holding certificates in any order (application/x-x509-ca-ra-cert); a wrong or
 * missing content type is tolerated (the other form is tried). Classification:
 *   - CA: basicConstraints cA=TRUE. With several, the one that issued the RA certificates;
 *     without RA, the one that issued no other CA certificate in the set (the issuing CA).
 *   - RA signing: not a CA, issued (and signed) by the CA, keyUsage digitalSignature.
 *   - RA encryption: not a CA, issued by the CA, keyUsage keyEncipherment.
 *   (no keyUsage extension = any usage; one RA certificate may hold both roles.)
 * Non-CA certificates that the CA did not sign are ignored (never a recipient).
 * recipient = the RA encryption certificate, else the CA (micromdm, CA-only servers).
 * verifier  = the RA signing certificate, else the CA.
 * Exactly one recipient is chosen; the request is enveloped to it alone. */

#include <openssl/x509.h>
#include <stdbool.h>
#include <stdint.h>

#include "scep-result.h"

#define SCEP_CACERT_MAX_SIZE  (256u * 1024u)
#define SCEP_CACERT_MAX_CERTS 16u
#define SCEP_FINGERPRINT_SIZE 32u

typedef struct ScepCACerts {
        STACK_OF(X509) *all;        /* every certificate as received (owned) */
        X509 *ca;                   /* the rest are borrowed from all */
        X509 *ra_sign;              /* NULL when the server has no RA */
        X509 *ra_encrypt;           /* NULL when the server has no RA */
        X509 *recipient;            /* ra_encrypt, else ca */
        X509 *verifier;             /* ra_sign, else ca */
        uint8_t ca_fingerprint[SCEP_FINGERPRINT_SIZE];   /* SHA-256 of ca's DER */
        unsigned n_ref;             /* scep_cacerts_ref(); scep_cacerts_free() drops one */
} ScepCACerts;

/* content_type may be NULL (sniffed) and may carry parameters (";charset=..."). fingerprint,
 * when non-NULL, is the SHA-256 the CA certificate must have (CAFingerprint=); a mismatch is
 * SCEP_RESULT_FINGERPRINT_MISMATCH and names both fingerprints. */
int scep_cacert_parse(const char *content_type, const void *data, size_t size,
                      const uint8_t *fingerprint, ScepCACerts **ret, ScepError *ret_error);

/* Reference counted: an exchange in flight keeps the certificates it was built with while the
 * CA's are fetched again (a Reload, CA.Refresh). free drops one reference; both accept NULL. */
ScepCACerts *scep_cacerts_ref(ScepCACerts *c);
ScepCACerts *scep_cacerts_free(ScepCACerts *c);

/* Parse a CAFingerprint= value: "sha256:" followed by 64 hex digits, optionally separated by
 * colons (as openssl x509 -fingerprint prints them), any case. 0 or -EINVAL. */
int scep_fingerprint_parse(const char *s, uint8_t ret[SCEP_FINGERPRINT_SIZE]);

/* "sha256:" + 64 lower-case hex digits (buf: at least 72 bytes). */
void scep_fingerprint_format(const uint8_t fp[SCEP_FINGERPRINT_SIZE], char *buf, size_t size);
