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
/* Stop everything in flight for r (Cancel, Remove, shutdown). */
void engine_request_stop(Request *r);

/* CA.Refresh(): re-fetch capabilities and certificates. */
int engine_ca_refresh(Manager *m, CaState *ca);
/* CA.Check(): run the diagnostic steps; replies to call asynchronously. */
int engine_ca_check(Manager *m, CaState *ca, sd_bus_message *call, int want_challenge);

/* Manager.CredentialState / CredentialExpiry. */
const char *engine_credential_state(Manager *m);
uint64_t engine_credential_expiry(Manager *m);
