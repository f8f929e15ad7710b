/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <systemd/sd-bus.h>

#include "manager.h"

/* The request engine: drives each request through its states (API.md) with the
 * transport (Kerberos, HTTP, challenges) and the SCEP message code. Nothing here
 * blocks the loop. */

int engine_new(Manager *m);
void engine_free(Manager *m);
/* Configuration changed (or was loaded first): (re)build per-CA state. */
int engine_config_changed(Manager *m);

/* A request loaded from the journal: a PENDING one's CSR as older versions stored it, with
 * the challenge password, is rewritten without it. 1 if rewritten, 0 if nothing to do, -errno. */
int engine_request_scrub_csr(Request *r);
/* A new or resumed request: schedule its next step according to its state. */
int engine_request_start(Request *r);
/* Ends a request now (state terminal, error_short an API.md error name without prefix): what
 * is in flight stops, the key is erased, the outcome is committed and audited. */
void engine_request_end(Request *r, RequestState state, const char *error_short, const char *message);
/* Stop everything in flight for r (Cancel, Remove, shutdown). */
void engine_request_stop(Request *r);

/* CA.Refresh(): re-fetch capabilities and certificates. */
int engine_ca_refresh(Manager *m, CaState *ca);
/* CA.Check(): run the diagnostic steps; replies to call asynchronously. */
/* CA.Check() limits. Each Check makes Kerberos and HTTP exchanges, and one with the
 * challenge option spends one of the few one-time passwords NDES keeps (it then serves the
 * next enrollment). Root is limited only by the total. */
#define CHECK_MAX_RUNNING 8U                    /* Checks in flight, all callers */
#define CHECK_MAX_RUNNING_PER_UID 1U            /* per non-root uid */
#define CHECK_CHALLENGE_INTERVAL_USEC (600ULL * 1000000ULL)     /* per non-root uid and CA */
typedef enum CheckAdmission {
        CHECK_ADMITTED,
        CHECK_TOO_MANY,                 /* CHECK_MAX_RUNNING in flight */
        CHECK_UID_BUSY,                 /* this uid's Check is still running */
        CHECK_CHALLENGE_RATE,           /* this uid had its challenge Check on this CA recently */
} CheckAdmission;
/* Decides whether uid may start a Check now; CHECK_ADMITTED takes the challenge allowance.
 * *ret_retry_usec: for CHECK_CHALLENGE_RATE, how long until the next is allowed. */
CheckAdmission engine_ca_check_admit(Manager *m, CaState *ca, uid_t uid, bool want_challenge,
                                     uint64_t *ret_retry_usec);
int engine_ca_check(Manager *m, CaState *ca, sd_bus_message *call, int want_challenge, uid_t uid);

/* Manager.CredentialState / CredentialExpiry. */
const char *engine_credential_state(Manager *m);
uint64_t engine_credential_expiry(Manager *m);
