/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <string.h>

#include "http-outcome.h"

static const char *const outcome_table[_TRANSPORT_OUTCOME_MAX] = {
        [TRANSPORT_OK]                        = "",
        [TRANSPORT_KERBEROS_FAILED]           = "KerberosFailed",
        [TRANSPORT_SERVICE_PRINCIPAL_UNKNOWN] = "ServicePrincipalUnknown",
        [TRANSPORT_AUTHENTICATION_REJECTED]   = "AuthenticationRejected",
        [TRANSPORT_CHALLENGE_UNAVAILABLE]     = "ChallengeUnavailable",
        [TRANSPORT_CA_UNREACHABLE]            = "CAUnreachable",
        [TRANSPORT_TLS_VERIFY_FAILED]         = "TLSVerifyFailed",
        [TRANSPORT_CA_REJECTED]               = "CARejected",
        [TRANSPORT_PROTOCOL_ERROR]            = "ProtocolError",
        [TRANSPORT_CANCELLED]                 = "Cancelled",
        [TRANSPORT_TIMEOUT]                   = "Timeout",
        [TRANSPORT_NAME_NOT_PERMITTED]        = "NameNotPermitted",
        [TRANSPORT_CHALLENGE_DENIED]          = "ChallengeUnavailable",
};

const char *transport_outcome_to_string(TransportOutcome o) {
        if ((unsigned) o >= _TRANSPORT_OUTCOME_MAX)
                return NULL;
        return outcome_table[o];
}

int transport_outcome_from_string(const char *s) {
        if (!s)
                return -EINVAL;
        for (int i = 0; i < _TRANSPORT_OUTCOME_MAX; i++)
                if (strcmp(outcome_table[i], s) == 0)
                        return i;
        return -EINVAL;
}

bool transport_outcome_is_transient(TransportOutcome o) {
        return o == TRANSPORT_CA_UNREACHABLE ||
               o == TRANSPORT_TIMEOUT ||
               o == TRANSPORT_CHALLENGE_UNAVAILABLE ||
               o == TRANSPORT_KERBEROS_FAILED;
}
