/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>

#include "broker-error.h"

#define N(s) BROKER_ERROR_PREFIX s

static const char *const name_table[_BROKER_ERROR_MAX] = {
        [BROKER_ERROR_NONE]                      = "",
        [BROKER_ERROR_ACCESS_DENIED]             = N("AccessDenied"),
        [BROKER_ERROR_NAME_NOT_PERMITTED]        = N("NameNotPermitted"),
        [BROKER_ERROR_UNKNOWN_CA]                = N("UnknownCA"),
        [BROKER_ERROR_INVALID_ARGUMENT]          = N("InvalidArgument"),
        [BROKER_ERROR_KEY_NOT_PERMITTED]         = N("KeyNotPermitted"),
        [BROKER_ERROR_QUOTA_EXCEEDED]            = N("QuotaExceeded"),
        [BROKER_ERROR_NO_SUCH_REQUEST]           = N("NoSuchRequest"),
        [BROKER_ERROR_NOT_READY]                 = N("NotReady"),
        [BROKER_ERROR_KEY_ALREADY_TAKEN]         = N("KeyAlreadyTaken"),
        [BROKER_ERROR_INVALID_CONFIGURATION]     = N("InvalidConfiguration"),
        [BROKER_ERROR_KERBEROS_FAILED]           = N("KerberosFailed"),
        [BROKER_ERROR_SERVICE_PRINCIPAL_UNKNOWN] = N("ServicePrincipalUnknown"),
        [BROKER_ERROR_AUTHENTICATION_REJECTED]   = N("AuthenticationRejected"),
        [BROKER_ERROR_CHALLENGE_UNAVAILABLE]     = N("ChallengeUnavailable"),
        [BROKER_ERROR_CHALLENGE_DENIED]          = N("ChallengeUnavailable"),
        [BROKER_ERROR_CA_UNREACHABLE]            = N("CAUnreachable"),
        [BROKER_ERROR_TLS_VERIFY_FAILED]         = N("TLSVerifyFailed"),
        [BROKER_ERROR_CA_REJECTED]               = N("CARejected"),
        [BROKER_ERROR_PROTOCOL_ERROR]            = N("ProtocolError"),
        [BROKER_ERROR_CANCELLED]                 = N("Cancelled"),
        [BROKER_ERROR_TIMEOUT]                   = N("Timeout"),
};

const char *broker_error_name(BrokerError e) {
        if ((unsigned) e >= _BROKER_ERROR_MAX)
                return "";
        return name_table[e];
}

bool broker_error_is_transient(BrokerError e) {
        return e == BROKER_ERROR_CA_UNREACHABLE ||
               e == BROKER_ERROR_TIMEOUT ||
               e == BROKER_ERROR_CHALLENGE_UNAVAILABLE ||
               e == BROKER_ERROR_KERBEROS_FAILED;
}

bool broker_errno_is_local_transient(int error) {
        switch (error < 0 ? -error : error) {
        case ENOSPC:
        case EDQUOT:
        case ENOMEM:
        case ENOBUFS:
        case EBUSY:
        case EAGAIN:
                return true;
        default:
                return false;
        }
}

BrokerError broker_error_from_transport(TransportOutcome o) {
        switch (o) {
        case TRANSPORT_OK:                        return BROKER_ERROR_NONE;
        case TRANSPORT_KERBEROS_FAILED:           return BROKER_ERROR_KERBEROS_FAILED;
        case TRANSPORT_SERVICE_PRINCIPAL_UNKNOWN: return BROKER_ERROR_SERVICE_PRINCIPAL_UNKNOWN;
        case TRANSPORT_AUTHENTICATION_REJECTED:   return BROKER_ERROR_AUTHENTICATION_REJECTED;
        case TRANSPORT_CHALLENGE_UNAVAILABLE:     return BROKER_ERROR_CHALLENGE_UNAVAILABLE;
        case TRANSPORT_CA_UNREACHABLE:            return BROKER_ERROR_CA_UNREACHABLE;
        case TRANSPORT_TLS_VERIFY_FAILED:         return BROKER_ERROR_TLS_VERIFY_FAILED;
        case TRANSPORT_CA_REJECTED:               return BROKER_ERROR_CA_REJECTED;
        case TRANSPORT_PROTOCOL_ERROR:            return BROKER_ERROR_PROTOCOL_ERROR;
        case TRANSPORT_CANCELLED:                 return BROKER_ERROR_CANCELLED;
        case TRANSPORT_TIMEOUT:                   return BROKER_ERROR_TIMEOUT;
        case TRANSPORT_NAME_NOT_PERMITTED:        return BROKER_ERROR_NAME_NOT_PERMITTED;
        case TRANSPORT_CHALLENGE_DENIED:          return BROKER_ERROR_CHALLENGE_DENIED;
        default:                                  return BROKER_ERROR_PROTOCOL_ERROR;
        }
}

BrokerError broker_error_from_decision(CbDecisionResult r) {
        switch (r) {
        case CB_DECISION_ALLOWED:            return BROKER_ERROR_NONE;
        case CB_DECISION_ACCESS_DENIED:      return BROKER_ERROR_ACCESS_DENIED;
        case CB_DECISION_NAME_NOT_PERMITTED: return BROKER_ERROR_NAME_NOT_PERMITTED;
        case CB_DECISION_UNKNOWN_CA:         return BROKER_ERROR_UNKNOWN_CA;
        case CB_DECISION_INVALID_ARGUMENT:   return BROKER_ERROR_INVALID_ARGUMENT;
        case CB_DECISION_KEY_NOT_PERMITTED:  return BROKER_ERROR_KEY_NOT_PERMITTED;
        case CB_DECISION_QUOTA_EXCEEDED:     return BROKER_ERROR_QUOTA_EXCEEDED;
        default:                             return BROKER_ERROR_ACCESS_DENIED;
        }
}
