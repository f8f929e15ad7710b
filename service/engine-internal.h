/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Shared by the engine's modules (engine.c: requests and CA metadata; engine-check.c: the
 * CA.Check() diagnostics). Not for the bus layer: that uses engine.h. */

#include "ca-servers.h"
#include "challenge-fetch.h"
#include "http-client.h"
#include "krb5-creds.h"
#include "manager.h"
#include "scep-cacert.h"
#include "scep-caps.h"

typedef struct Engine {
        Krb5Creds *creds;
        HttpClient *http;
        char *runtime_dir;
        char *krb5_error;               /* why there are no credentials, for messages */
        char *krb5_settings;            /* the [Kerberos] settings the credentials were made from */
        struct Check *checks;           /* CA.Check() calls in progress (engine-check.c) */
} Engine;

typedef struct MetaWaiter {
        struct MetaWaiter *next;
        Request *request;
} MetaWaiter;

/* The CA metadata a server is asked for, in order. */
typedef enum CaMetaStep {
        CA_META_CAPS,                   /* GetCACaps */
        CA_META_CACERT,                 /* GetCACert */
} CaMetaStep;

/* What one NDES server of a CA answered to GetCACaps and GetCACert (each server of a CA has
 * its own RA certificates), and the enrollments waiting for it. */
typedef struct CaMeta {
        CaState *ca;
        size_t server;                  /* index in the CA's URL= */
        unsigned caps;
        bool have_caps;
        ScepCACerts *certs;
        ScepAlgorithms alg;
        bool force_get;                 /* POST was answered by an empty 200 */
        HttpRequest *meta_http;         /* GetCACaps or GetCACert in flight */
        CaMetaStep meta_step;           /* the one in flight, or the next */
        MetaWaiter *meta_waiters;
} CaMeta;

typedef struct CaEngine {
        /* Per NDES server of the CA (URL=, in order): its metadata, and its challenge fetcher
         * (mscep-admin: at most MaxOutstandingChallenges each, as each server has its own
         * password cache). */
        CaMeta meta[CB_CA_SERVERS_MAX];
        ChallengeFetcher *fetchers[CB_CA_SERVERS_MAX];
        char *fetcher_urls[CB_CA_SERVERS_MAX];  /* the admin page of each fetcher: a Reload hands a
                                                 * fetcher's count to the new one of the same page */
        CaServers servers;              /* which are passed over after a failure */
        bool warned_anonymous;          /* mscep_admin let us in without Negotiate: logged once
                                         * per fetcher (configuration load) */
        struct UidLimit *check_challenge_limit; /* CA.Check(challenge) per non-root uid */
} CaEngine;

DEFINE_POINTER_CLEANUP(ScepCACerts, scep_cacerts_free)

static inline Engine *manager_engine(Manager *m) { return m->engine; }
static inline CaEngine *ca_engine(CaState *ca) { return ca->engine; }
/* Server i of the CA (the first when i is out of range: a Reload removed servers). */
static inline CaMeta *ca_meta(CaState *ca, size_t i) {
        return &ca_engine(ca)->meta[i < CB_CA_SERVERS_MAX ? i : 0];
}
static inline const char *ca_server_url(const CbCa *c, size_t i) {
        return i < c->n_servers ? c->server_urls[i] : c->url;
}
static inline const char *ca_server_host(const CbCa *c, size_t i) {
        return i < c->n_servers ? c->server_url_hosts[i] : c->url_host;
}
static inline const char *ca_server_admin_url(const CbCa *c, size_t i) {
        return i < c->n_servers && c->server_admin_urls ? c->server_admin_urls[i] : c->admin_url;
}
static inline const char *ca_server_admin_host(const CbCa *c, size_t i) {
        return i < c->n_servers && c->server_admin_url_hosts ? c->server_admin_url_hosts[i] : c->admin_url_host;
}

/* engine-check.c: end the Checks in progress (of one CA, or all with ca NULL), answering each
 * with a note to run it again; free them without answering (shutdown). */
void engine_checks_abort(Manager *m, CaState *ca);
void engine_checks_free(Manager *m);
