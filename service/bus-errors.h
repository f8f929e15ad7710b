/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* D-Bus error names of API.md. Only the bus layer (bus-*.c) turns internal
 * results into these; everything below it returns errno or its own codes. */

#define CB_ERROR_PREFIX "org.certbroker.Broker1.Error."

/* Method errors. */
#define CB_ERROR_ACCESS_DENIED          CB_ERROR_PREFIX "AccessDenied"
#define CB_ERROR_NAME_NOT_PERMITTED     CB_ERROR_PREFIX "NameNotPermitted"
#define CB_ERROR_UNKNOWN_CA             CB_ERROR_PREFIX "UnknownCA"
#define CB_ERROR_INVALID_ARGUMENT       CB_ERROR_PREFIX "InvalidArgument"
#define CB_ERROR_KEY_NOT_PERMITTED      CB_ERROR_PREFIX "KeyNotPermitted"
#define CB_ERROR_QUOTA_EXCEEDED         CB_ERROR_PREFIX "QuotaExceeded"
#define CB_ERROR_NO_SUCH_REQUEST        CB_ERROR_PREFIX "NoSuchRequest"
#define CB_ERROR_NOT_READY              CB_ERROR_PREFIX "NotReady"
#define CB_ERROR_KEY_ALREADY_TAKEN      CB_ERROR_PREFIX "KeyAlreadyTaken"
#define CB_ERROR_INVALID_CONFIGURATION  CB_ERROR_PREFIX "InvalidConfiguration"

/* Request outcomes (Request.Error). */
#define CB_ERROR_KERBEROS_FAILED        CB_ERROR_PREFIX "KerberosFailed"
#define CB_ERROR_SERVICE_PRINCIPAL_UNKNOWN CB_ERROR_PREFIX "ServicePrincipalUnknown"
#define CB_ERROR_AUTHENTICATION_REJECTED CB_ERROR_PREFIX "AuthenticationRejected"
#define CB_ERROR_CHALLENGE_UNAVAILABLE  CB_ERROR_PREFIX "ChallengeUnavailable"
#define CB_ERROR_CA_UNREACHABLE         CB_ERROR_PREFIX "CAUnreachable"
#define CB_ERROR_TLS_VERIFY_FAILED      CB_ERROR_PREFIX "TLSVerifyFailed"
#define CB_ERROR_CA_REJECTED            CB_ERROR_PREFIX "CARejected"
#define CB_ERROR_PROTOCOL_ERROR         CB_ERROR_PREFIX "ProtocolError"
#define CB_ERROR_CANCELLED              CB_ERROR_PREFIX "Cancelled"
#define CB_ERROR_TIMEOUT                CB_ERROR_PREFIX "Timeout"
