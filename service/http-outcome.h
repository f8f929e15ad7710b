/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Outcomes of the transport (Kerberos credentials, HTTP, challenge retrieval), named as the
 * request outcomes of org.certbroker.Broker1(5) ("org.certbroker.Broker1.Error.<name>"). Pure code.
 */

#include <stdbool.h>

typedef enum TransportOutcome {
        TRANSPORT_OK = 0,
        TRANSPORT_KERBEROS_FAILED,            /* KerberosFailed */
        TRANSPORT_SERVICE_PRINCIPAL_UNKNOWN,  /* ServicePrincipalUnknown */
        TRANSPORT_AUTHENTICATION_REJECTED,    /* AuthenticationRejected */
        TRANSPORT_CHALLENGE_UNAVAILABLE,      /* ChallengeUnavailable */
        TRANSPORT_CA_UNREACHABLE,             /* CAUnreachable */
        TRANSPORT_TLS_VERIFY_FAILED,          /* TLSVerifyFailed */
        TRANSPORT_CA_REJECTED,                /* CARejected */
        TRANSPORT_PROTOCOL_ERROR,             /* ProtocolError */
        TRANSPORT_CANCELLED,                  /* Cancelled */
        TRANSPORT_TIMEOUT,                    /* Timeout */
        TRANSPORT_NAME_NOT_PERMITTED,         /* NameNotPermitted: URL host outside the suffix */
        TRANSPORT_CHALLENGE_DENIED,           /* ChallengeUnavailable, but a configuration error
                                               * ("no permission to enroll"): not retried */
        _TRANSPORT_OUTCOME_MAX,
} TransportOutcome;

/* The D-Bus error name without the "org.certbroker.Broker1.Error." prefix ("KerberosFailed"),
 * "" for TRANSPORT_OK, NULL for values out of range. */
const char *transport_outcome_to_string(TransportOutcome o);

/* Inverse of transport_outcome_to_string(); -EINVAL when unknown. */
int transport_outcome_from_string(const char *s);

/* Outcomes after which a later retry may succeed without anyone changing configuration
 * (network trouble, timeouts, a full challenge cache). */
bool transport_outcome_is_transient(TransportOutcome o);
