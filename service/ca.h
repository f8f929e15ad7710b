/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* One configured CA in the running broker: what its servers said (the CA object's properties,
 * ipc/org.certbroker.Broker1.CA.xml), the CA certificate the admin page authenticated, and the
 * engine's part (struct CaEngine, engine-internal.h: each server's metadata and challenge
 * fetcher). Made and freed here; the properties change through these functions. The manager
 * keeps one per CA of the configuration (manager_find_ca_state()), the engine rebuilds the list
 * on Reload (engine_config_changed()). */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "basic.h"
#include "scep-cacert.h"

typedef struct Manager Manager;
typedef struct CaState CaState;

struct CaState {
        Manager *manager;
        char *name;
        char **capabilities; size_t n_capabilities;
        char *ca_certificates;          /* PEM */
        char *ra_certificates;          /* PEM */
        uint64_t last_contact;
        char *last_error;
        struct CaEngine *engine;        /* engine.c: its servers' metadata, fetchers (engine-internal.h) */
        /* The CA certificate authenticated by the admin page's thumbprint (a CA without
         * CAFingerprint=; engine.c), by its SHA-256: GetTrustAnchors offers it for the trust store
         * (ca_trust_authenticates()). */
        bool trust_authenticated;
        uint8_t trust_sha256[32];
};

/* A CA named name with its engine part (taken, freed with the CA by engine_ca_free(); NULL for
 * none). */
int ca_state_new(Manager *m, const char *name, struct CaEngine *engine, CaState **ret);
/* Frees ca and its engine part (engine_ca_free()). Accepts NULL, returns NULL. */
CaState *ca_state_free(CaState *ca);
DEFINE_POINTER_CLEANUP(CaState, ca_state_free)

/* GetCACaps answered: the capability names (Capabilities), replacing the old ones. */
void ca_set_capabilities(CaState *ca, const char *const *names, size_t n);
/* GetCACert answered: the CA and RA certificates (CACertificates, RACertificates) as PEM. */
void ca_set_certificates(CaState *ca, const ScepCACerts *certs);
/* LastError: message, "" or NULL when the last exchange went through. */
void ca_set_error(CaState *ca, const char *message);
/* LastContact: one of the CA's servers answered at now (CLOCK_REALTIME, usec). */
void ca_set_contact(CaState *ca, uint64_t now);
/* The admin page's thumbprint authenticated the CA certificate with this SHA-256 (replacing
 * the one it authenticated before): true when that changed what GetTrustAnchors offers. */
bool ca_set_trust_authenticated(CaState *ca, const uint8_t sha256[static 32]);
/* Whether the admin page's thumbprint authenticated the CA certificate with this SHA-256. */
bool ca_trust_authenticates(const CaState *ca, const uint8_t sha256[static 32]);
