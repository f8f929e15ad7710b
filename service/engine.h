/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include "manager.h"

/* The request engine: drives each request through its states (the Request property State) with the
 * transport (Kerberos, HTTP, challenges) and the SCEP message code. Nothing here
 * blocks the loop. */

int engine_new(Manager *m);
void engine_free(Manager *m);
/* Configuration changed (or was loaded first): (re)build per-CA state. */
int engine_config_changed(Manager *m);

/* A new or resumed request: schedule its next step according to its state. */
int engine_request_start(Request *r);
/* Stop everything in flight for r (any transition of request.c that ends an attempt). */
void engine_request_stop(Request *r);

/* Frees a CA's engine part (ca_state_free() calls it). Accepts NULL. */
void engine_ca_free(struct CaEngine *ce);

/* CA.Refresh(): re-fetch capabilities and certificates. */
int engine_ca_refresh(Manager *m, CaState *ca);
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
/* CA.Check(): runs the diagnostic steps in order; complete() gets them once, when the last has
 * answered (possibly before engine_ca_check() returns), or with rows NULL when the Check is
 * dropped unanswered (shutdown). Each row is (step, result, detail). */
typedef struct CheckRow {
        const char *step, *result, *detail;
} CheckRow;
typedef void (*CheckComplete)(const CheckRow *rows, size_t n_rows, void *userdata);
int engine_ca_check(Manager *m, CaState *ca, bool want_challenge, uid_t uid, CheckComplete complete,
                    void *userdata);

/* Manager.CredentialState / CredentialExpiry. */
const char *engine_credential_state(Manager *m);
uint64_t engine_credential_expiry(Manager *m);
