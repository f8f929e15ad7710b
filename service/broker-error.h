/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The D-Bus errors (org.certbroker.Broker1(5) ERRORS) as one enum, and the one table of their D-Bus names. The engine and
 * request.c pass BrokerError values; the record stores the name (Request.Error); the bus layer
 * sets method errors from the same table (bus_error_set()). */

#include <stdbool.h>

#include "cb-policy.h"
#include "http-outcome.h"

#define BROKER_ERROR_PREFIX "org.certbroker.Broker1.Error."

typedef enum BrokerError {
        BROKER_ERROR_NONE = 0,
        /* Method errors. */
        BROKER_ERROR_ACCESS_DENIED,
        BROKER_ERROR_NAME_NOT_PERMITTED,
        BROKER_ERROR_UNKNOWN_CA,
        BROKER_ERROR_INVALID_ARGUMENT,
        BROKER_ERROR_KEY_NOT_PERMITTED,
        BROKER_ERROR_QUOTA_EXCEEDED,
        BROKER_ERROR_NO_SUCH_REQUEST,
        BROKER_ERROR_NOT_READY,
        BROKER_ERROR_KEY_ALREADY_TAKEN,
        BROKER_ERROR_INVALID_CONFIGURATION,
        /* Request outcomes (Request.Error). */
        BROKER_ERROR_KERBEROS_FAILED,
        BROKER_ERROR_SERVICE_PRINCIPAL_UNKNOWN,
        BROKER_ERROR_AUTHENTICATION_REJECTED,
        BROKER_ERROR_CHALLENGE_UNAVAILABLE,     /* the cache was full, or similar: retried */
        BROKER_ERROR_CHALLENGE_DENIED,          /* named ChallengeUnavailable, but a configuration
                                                 * error (no permission to enroll): not retried */
        BROKER_ERROR_CA_UNREACHABLE,
        BROKER_ERROR_TLS_VERIFY_FAILED,
        BROKER_ERROR_CA_REJECTED,
        BROKER_ERROR_PROTOCOL_ERROR,
        BROKER_ERROR_CANCELLED,
        BROKER_ERROR_TIMEOUT,
        _BROKER_ERROR_MAX,
} BrokerError;

/* "org.certbroker.Broker1.Error.AccessDenied", ...; "" for BROKER_ERROR_NONE and values out of
 * range. */
const char *broker_error_name(BrokerError e);

/* A later attempt may succeed without anyone changing configuration (network trouble,
 * timeouts, a full challenge cache, the KDC). */
bool broker_error_is_transient(BrokerError e);

/* A local resource that ran out and comes back by itself (error: an errno, either sign): room
 * in the state directory (ENOSPC, EDQUOT), memory (ENOMEM, ENOBUFS), the key queue (EBUSY:
 * KEY_POOL_JOBS_MAX jobs queued), anything "try again" (EAGAIN). A request that meets one is
 * retried with backoff, never ended (request_attempt_failed_errno()); its Error is
 * QuotaExceeded while it waits. */
bool broker_errno_is_local_transient(int error);

BrokerError broker_error_from_transport(TransportOutcome o);
BrokerError broker_error_from_decision(CbDecisionResult r);
