/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Results of the SCEP message code (service/scep-*.c).
 *
 * Every function returns:
 *   0                 success;
 *   negative errno    a local failure (-ENOMEM, -EINVAL for a caller bug, -EIO for an
 *                     OpenSSL failure that is not the server's fault);
 *   positive ScepResult  an expected outcome caused by what the server sent (or what the
 *                     configuration demands). The ScepError passed in (when non-NULL)
 *                     then holds the same code and a human message naming what was wrong
 *                     (which attribute, which certificate, which server answer) and the fix.
 *
 * The engine maps every positive result to the D-Bus outcome ProtocolError, except
 * SCEP_RESULT_FINGERPRINT_MISMATCH / SCEP_RESULT_UNTRUSTED (TLSVerifyFailed or ProtocolError,
 * engine's choice). A CertRep with pkiStatus FAILURE is not an error: scep_certrep_parse()
 * returns 0 and the engine reports CARejected with the FailInfo name. */

#include <stdarg.h>
#include <stddef.h>

typedef enum ScepResult {
        SCEP_RESULT_OK = 0,
        SCEP_RESULT_MALFORMED,              /* the bytes do not parse as what they should be */
        SCEP_RESULT_TOO_LARGE,              /* an input exceeds our limits */
        SCEP_RESULT_ALGORITHM_FLOOR,        /* the CA offers nothing at or above our floor */
        SCEP_RESULT_NO_CA_CERT,             /* GetCACert holds no usable CA certificate */
        SCEP_RESULT_NO_RECIPIENT,           /* no certificate we can encrypt the request to */
        SCEP_RESULT_FINGERPRINT_MISMATCH,   /* CA certificate differs from CAFingerprint */
        SCEP_RESULT_BAD_SIGNATURE,          /* CertRep signature does not verify */
        SCEP_RESULT_UNTRUSTED,              /* signer certificate does not chain to the CA */
        SCEP_RESULT_BAD_MESSAGE_TYPE,       /* messageType is not CertRep (3) */
        SCEP_RESULT_TRANSACTION_MISMATCH,   /* transactionID differs from ours */
        SCEP_RESULT_NONCE_MISMATCH,         /* recipientNonce differs from our senderNonce */
        SCEP_RESULT_BAD_ATTRIBUTE,          /* a SCEP attribute is missing or invalid */
        SCEP_RESULT_LEGACY_ALGORITHM,       /* single DES / SHA-1 reply, AllowLegacyCiphers=no */
        SCEP_RESULT_DECRYPT_FAILED,         /* the reply envelope does not decrypt with our key */
        SCEP_RESULT_NO_ISSUED_CERT,         /* SUCCESS, but no certificate for our key */
        SCEP_RESULT_HTTP_STATUS,            /* PKIOperation answered with an unusable HTTP status */
        SCEP_RESULT_URI_TOO_LONG,           /* HTTP 414 on a GET PKIOperation */
        _SCEP_RESULT_MAX,
} ScepResult;

#define SCEP_ERROR_MESSAGE_MAX 1024

typedef struct ScepError {
        ScepResult result;
        char message[SCEP_ERROR_MESSAGE_MAX];
} ScepError;

/* "malformed", "nonce-mismatch", ...: stable short names for logs and tests. */
const char *scep_result_to_string(ScepResult r);
