/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The SCEP message code (library cbscep, meson dependency scep_dep): pure functions, bytes in
 * and structures out, no I/O, no logging, no global state (safe for concurrent enrollments on
 * several threads). The engine drives one enrollment like this:
 *
 *   per CA, cached:
 *     scep_caps_parse(body of GET ?operation=GetCACaps)      an HTTP error: pass an empty body
 *     scep_caps_choose(caps, AllowLegacyCiphers ? SCEP_FLOOR_LEGACY : SCEP_FLOOR_DEFAULT)
 *     scep_fingerprint_parse(CAFingerprint=)                 at configuration time
 *     scep_cacert_parse(content type, body of GetCACert, fingerprint)
 *
 *   per request:
 *     scep_csr_build(subject, names, usage, challenge, key)
 *     scep_signer_cert_build(csr, RSA key: the CSR key, or a transient one for EC keys)
 *     scep_message_build(SCEP_MESSAGE_PKCS_REQ, ...)         keep the ScepMessage until the reply
 *     POST msg->der, or GET ?operation=PKIOperation&message=scep_message_encode_get(...)
 *     scep_pkioperation_http_next(transport, status, body size, url size)
 *         SCEP_HTTP_RETRY_GET: resend the same message with GET (and remember GET for the CA)
 *     scep_certrep_parse(our message, CA certs, signer cert + key, csr, AllowLegacyCiphers)
 *         SUCCESS → certificate + chain;  FAILURE → CARejected, FailInfo =
 *         scep_fail_info_to_string(), ErrorMessage = scep_certrep_describe_failure();
 *         PENDING → later scep_message_build(SCEP_MESSAGE_CERT_POLL, ...) with the same CSR
 *         (same transactionID, fresh nonce; a fresh signer certificate is fine, even after a
 *         restart, as long as its key is kept: the reply is encrypted to it).
 *     Any positive ScepResult → ProtocolError with ScepError.message (see scep-result.h).
 */

#include "scep-result.h"
#include "scep-caps.h"
#include "scep-cacert.h"
#include "scep-csr.h"
#include "scep-message.h"
#include "scep-certrep.h"
