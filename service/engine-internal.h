/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Shared by the engine's modules (engine.c: requests and CA metadata; engine-check.c: the
 * CA.Check() diagnostics). Not for the bus layer: that uses engine.h. */

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

typedef struct CaEngine {
        unsigned caps;
        bool have_caps;
        ScepCACerts *certs;
        ScepAlgorithms alg;
        bool force_get;                 /* POST was answered by an empty 200 */
        HttpRequest *meta_http;         /* GetCACaps or GetCACert in flight */
        int meta_step;                  /* 0 caps, 1 cacert */
        MetaWaiter *meta_waiters;
        ChallengeFetcher *fetcher;      /* mscep-admin: at most MaxOutstandingChallenges */
        bool warned_anonymous;          /* mscep_admin let us in without Negotiate: logged once
                                         * per fetcher (configuration load) */
        struct UidLimit *check_challenge_limit; /* CA.Check(challenge) per non-root uid */
} CaEngine;

static inline Engine *E(Manager *m) { return m->engine; }
static inline CaEngine *CE(CaState *ca) { return ca->engine; }

/* engine-check.c: end the Checks in progress (of one CA, or all with ca NULL), answering each
 * with a note to run it again; free them without answering (shutdown). */
void engine_checks_abort(Manager *m, CaState *ca);
void engine_checks_free(Manager *m);
