/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Renewal (the Enroll option "renew", org.certbroker.Broker1(5)): a request enrolled with `renew` is kept valid by
 * successors. At issuance RenewAt = NotAfter - RenewBefore - random(0, RenewJitter) is fixed
 * and stored; at RenewAt the successor is made: a new request with the same owner and
 * parameters, a fresh key (pool first) and a fresh challenge, decided again by the policy for
 * the owner (uid, groups from NSS, unit and SELinux label recorded with the chain's first
 * request), linked to its predecessor in the same transaction (store_request_insert_successor:
 * never two). A successor whose policy decision fails ends failed at once, naming the rule.
 * A successor's transient failures retry with backoff and jitter without a deadline (an
 * expired certificate is still renewed when the CA comes back: engine.c). The journal warns
 * once per threshold (7 days, 1 day, expiry) about a tracked certificate whose successor is
 * not issued. */

#include "cb-config.h"
#include "manager.h"

/* At issuance of req (engine.c, before its commit): fixes RenewAt if req renews. */
void renewal_on_issued(Request *req, const CbCa *ca);

/* At issuance of req: the predecessor's kept key is erased, and with Renewal=scep-renewal|auto
 * req's key is kept (store_renewal_key_keep()) for its successor's RenewalReq. */
void renewal_key_on_issued(Request *req, const CbCa *ca);
/* Erases the key kept for req's renewal, if any (logged with why). */
void renewal_key_erase(Request *req, const char *why);

/* (Re)arms req's renewal timer (start-up, issuance, a successor's outcome). */
void renewal_schedule(Request *req);

/* A request ended (any state): its predecessor, if any, re-evaluates its warnings. */
void renewal_successor_changed(Request *successor);

/* StopRenewal(): no successor will be made; Renew false, RenewAt 0. */
int renewal_stop(Request *req);

/* Whether RetainFinished= must keep req: the live end of a renewal chain. */
bool renewal_keeps(Manager *m, Request *req);
