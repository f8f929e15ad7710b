/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The broker's Kerberos initiator credentials.
 *
 * Keytab mode: a ticket-granting ticket is acquired in-process from the keytab with
 * krb5_get_init_creds_keytab() (which reports the KDC's real error codes) into a MEMORY:
 * ccache of its own ("MEMORY:certbroker-<generation>"); no kinit, no file. The loop thread is
 * pointed at it with gss_krb5_ccache_name() (per thread in MIT krb5), which is where libcurl's
 * Negotiate looks. Before expiry (at 3/4 of the lifetime) a new generation is acquired and
 * switched to atomically; failures are retried with exponential backoff.
 *
 * gss-proxy mode: GSS_USE_PROXY=yes, the keytab is never opened; gssproxy acquires tickets and
 * the interposer keeps its (encrypted) credentials in the writable MEMORY:certbroker ccache.
 *
 * Service tickets: before a Negotiate request to <host>, krb5_creds_ensure_service() runs
 * gss_init_sec_context() for HTTP@<host> itself (krb5 mechanism), once per host and ticket
 * generation: libcurl hides GSS errors, this way KDC_ERR_S_PRINCIPAL_UNKNOWN and friends reach
 * the admin; and the service ticket is cached in the ccache, so libcurl's own exchange needs no
 * further TGS request (1 AS + 1 TGS per ticket lifetime and host).
 *
 * All KDC traffic runs on one worker thread: the sd-event loop never blocks on the KDC.
 * Everything else (handlers, state) lives on the loop thread that called krb5_creds_new().
 *
 * krb5_creds_new() sets KRB5_CONFIG (the private profile, see krb5-profile.h), KRB5CCNAME
 * and GSS_USE_PROXY: call it before any other krb5/GSS use and before other threads exist.
 * Library code: never logs; messages are returned.
 */

#include <stdbool.h>
#include <stdint.h>

#include <systemd/sd-event.h>

#include "http-outcome.h"
#include "krb5-errors.h"
#include "krb5-profile.h"

typedef enum CredentialState {
        CREDENTIAL_UNAVAILABLE,         /* no ticket ever obtained (or gone) */
        CREDENTIAL_VALID,               /* a ticket-granting ticket valid now */
        CREDENTIAL_EXPIRED,             /* the last ticket expired and renewal has not succeeded yet */
        _CREDENTIAL_STATE_MAX,
} CredentialState;

/* "valid", "expired", "unavailable" (the Manager property CredentialState). */
const char *credential_state_to_string(CredentialState s);

typedef struct Krb5Creds Krb5Creds;
typedef struct Krb5ServiceWait Krb5ServiceWait;

/* Called on the loop thread when a service ticket for the host is ready (TRANSPORT_OK,
 * message NULL) or cannot be had (outcome and message saying what to fix). The wait object is
 * freed after the handler returns. */
typedef void (*krb5_service_handler_t)(Krb5Creds *c, TransportOutcome outcome, const char *message, void *userdata);

/* Called on the loop thread whenever CredentialState or CredentialExpiry changed. */
typedef void (*krb5_state_handler_t)(Krb5Creds *c, void *userdata);

/* Writes the profile, sets the environment, starts the worker and the first acquisition.
 * The settings are copied. Negative errno with *ret_message (malloc'd) on failure. */
int krb5_creds_new(sd_event *event, const Krb5Settings *settings, Krb5Creds **ret, char **ret_message);

/* Stops the worker (waits for a KDC exchange in progress), destroys the ccaches (tickets
 * wiped), cancels waits without calling their handlers. Accepts NULL, returns NULL. */
Krb5Creds *krb5_creds_free(Krb5Creds *c);

void krb5_creds_set_state_handler(Krb5Creds *c, krb5_state_handler_t handler, void *userdata);

CredentialState krb5_creds_get_state(const Krb5Creds *c);

/* End time of the current ticket-granting ticket, µs since the epoch, 0 when none. */
uint64_t krb5_creds_get_expiry(const Krb5Creds *c);

/* The outcome and message of the last failed acquisition (TRANSPORT_OK and NULL when the last
 * one succeeded). The message stays valid until the next state change. */
TransportOutcome krb5_creds_get_error(const Krb5Creds *c, const char **ret_message);

/* The step at which the last acquisition failed: KRB5_STEP_KEYTAB (opening or reading the
 * keytab) or KRB5_STEP_TGT (the AS exchange). Meaningful when krb5_creds_get_error() is not
 * TRANSPORT_OK; for the Check method's "keytab" and "ticket-granting ticket" steps. */
Krb5Step krb5_creds_get_error_step(const Krb5Creds *c);

/* True while an acquisition is running or queued. */
bool krb5_creds_is_acquiring(const Krb5Creds *c);

/* Ask for a new ticket-granting ticket now (e.g. after the server rejected ours). No-op while
 * one is being acquired. 0 or negative errno. */
int krb5_creds_refresh(Krb5Creds *c);

/* Backoff after failed acquisitions: first retry after min_usec, doubling up to max_usec.
 * Defaults 2 s and 5 min. */
void krb5_creds_set_backoff(Krb5Creds *c, uint64_t min_usec, uint64_t max_usec);

/* Makes sure a ticket for HTTP/<host> is in the ccache. Returns 1 when it already is (the
 * handler is not called), 0 when the handler will be called later (*ret_wait, if not NULL,
 * can cancel it), negative errno on failure. `host` must already have passed the guard. */
int krb5_creds_ensure_service(Krb5Creds *c, const char *host, krb5_service_handler_t handler, void *userdata,
                              Krb5ServiceWait **ret_wait);

/* Cancels a pending wait (its handler is not called). Accepts NULL, returns NULL. */
Krb5ServiceWait *krb5_service_wait_cancel(Krb5ServiceWait *w);

/* Forget cached service-ticket results for `host` (NULL: all), e.g. after a 401. */
void krb5_creds_forget_service(Krb5Creds *c, const char *host);

/* Points the calling thread's GSS default ccache at the current credentials. Done for the
 * loop thread by krb5_creds_new() and on every renewal; call it only from another thread that
 * also runs libcurl (none in certbrokerd). */
int krb5_creds_activate_thread(Krb5Creds *c);

/* The settings in effect (for messages): realm, principal, keytab, mode. */
const Krb5Settings *krb5_creds_get_settings(const Krb5Creds *c);

/* Exchanges this object asked the KDC for: AS (ticket-granting) and TGS (service probes). */
void krb5_creds_get_counters(const Krb5Creds *c, uint64_t *ret_as, uint64_t *ret_tgs);
