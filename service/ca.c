/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A configured CA's state (ca.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ca.h"
#include "engine.h"
#include "scep-certrep.h"

int ca_state_new(Manager *m, const char *name, struct CaEngine *engine, CaState **ret) {
        _cleanup_(ca_state_freep) CaState *ca = calloc(1, sizeof(*ca));

        if (!ca) {
                engine_ca_free(engine);
                return -ENOMEM;
        }
        ca->engine = engine;
        ca->manager = m;
        ca->name = strdup(name);
        if (!ca->name)
                return -ENOMEM;
        *ret = TAKE_PTR(ca);
        return 0;
}

static void capabilities_free(CaState *ca) {
        for (size_t i = 0; i < ca->n_capabilities; i++)
                free(ca->capabilities[i]);
        ca->capabilities = (free(ca->capabilities), NULL);
        ca->n_capabilities = 0;
}

CaState *ca_state_free(CaState *ca) {
        if (!ca)
                return NULL;
        engine_ca_free(TAKE_PTR(ca->engine));
        capabilities_free(ca);
        free(ca->ca_certificates);
        free(ca->ra_certificates);
        free(ca->last_error);
        free(ca->name);
        free(ca);
        return NULL;
}

void ca_set_capabilities(CaState *ca, const char *const *names, size_t n) {
        capabilities_free(ca);
        ca->capabilities = calloc(n + 1, sizeof(char *));
        for (size_t i = 0; ca->capabilities && i < n; i++)
                if ((ca->capabilities[ca->n_capabilities] = strdup(names[i])))
                        ca->n_capabilities++;
}

void ca_set_certificates(CaState *ca, const ScepCACerts *certs) {
        STACK_OF(X509) *ra;

        free(ca->ca_certificates);
        free(ca->ra_certificates);
        ca->ca_certificates = ca->ra_certificates = NULL;
        (void) scep_certs_to_pem(certs->ca, NULL, &ca->ca_certificates);
        ra = sk_X509_new_null();
        if (!ra)
                return;
        if (certs->ra_sign)
                sk_X509_push(ra, certs->ra_sign);
        if (certs->ra_encrypt && certs->ra_encrypt != certs->ra_sign)
                sk_X509_push(ra, certs->ra_encrypt);
        (void) scep_certs_to_pem(NULL, ra, &ca->ra_certificates);
        sk_X509_free(ra);
}

void ca_set_error(CaState *ca, const char *message) {
        free(ca->last_error);
        ca->last_error = strdup(message ?: "");
}

void ca_set_contact(CaState *ca, uint64_t now) {
        ca->last_contact = now;
}

bool ca_set_trust_authenticated(CaState *ca, const uint8_t sha256[static 32]) {
        if (ca_trust_authenticates(ca, sha256))
                return false;
        memcpy(ca->trust_sha256, sha256, sizeof ca->trust_sha256);
        ca->trust_authenticated = true;
        return true;
}

bool ca_trust_authenticates(const CaState *ca, const uint8_t sha256[static 32]) {
        return ca->trust_authenticated && memcmp(ca->trust_sha256, sha256, sizeof ca->trust_sha256) == 0;
}
