/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include "basic.h"
#include "ca.h"
#include "cb-config.h"
#include "store-journal-sync.h"
#include "keys-pool.h"
#include "request.h"
#include "store-db.h"

/* The service's bus name (the bus layer owns it; the start-up line names it). */
#define CB_BUS_NAME        "org.certbroker.Broker1"

typedef struct Manager Manager;
typedef struct CaState CaState;

/* How the daemon core tells the layer above it (the bus, bus-*.c; a unit test) that
 * something changed. Any hook may be NULL; the core never calls the bus itself. */
typedef struct ManagerHooks {
        /* A request's properties changed (committed, or to be written with the next commit). */
        void (*request_changed)(Request *req);
        /* A request is about to be freed (removed, forgotten, shutdown). */
        void (*request_gone)(Request *req);
        /* A CA's properties changed (what GetCACaps/GetCACert said, LastError). */
        void (*ca_changed)(CaState *ca);
        /* CredentialState/CredentialExpiry changed. */
        void (*credentials_changed)(Manager *m);
        /* manager_free(): after the last journal fsync, before the requests go. */
        void (*closing)(Manager *m);
} ManagerHooks;

struct Manager {
        sd_event *event;
        struct sd_bus *bus;             /* the bus layer's (bus-manager.c); NULL in unit tests */
        const ManagerHooks *hooks;      /* installed by the bus layer */
        char *config_dir;
        char *state_dir_override;       /* --state-dir */
        CbConfig *config;
        Store *store;
        JournalSync *journal_sync;      /* group commit: Enroll replies once its insert is on disk */
        bool stopping;                  /* SIGTERM or shutdown: start no new work */
        KeyPool *pool;
        struct CryptoWork *crypto;      /* the enrollment's SCEP crypto off the loop (crypto-work.h) */
        struct CallerRegistry *callers; /* bus credentials per connection (caller.h) */
        struct NssCache *nss;           /* NSS look-ups off the loop (nss-cache.h) */
        struct BusDeferred *deferred;   /* bus calls waiting for NSS or polkit (bus-util.h) */
        unsigned n_deferred[2];         /* per BusDeferReason */
        /* Requests whose decision against the rules in force waits for NSS (Request's
         * decision_due): decided again when NSS answers, or after decide_backoff. */
        const char *decide_when;        /* "reload", "start-up" */
        struct NssWaiter *decide_waiter;
        sd_event_source *decide_timer;
        uint64_t decide_backoff;
        struct PolkitRegistry *polkit;  /* authorizations asked of polkit (bus-polkit.h) */
        struct UidLimit *audit_limit;   /* denial and CheckAccess records per uid (caller-uid-limit.h) */
        struct Engine *engine;          /* engine.c: credentials, HTTP (engine-internal.h) */
        struct Metrics *metrics;        /* metrics.c: counters, the textfile writer */
        struct MemoryTrim *trim;        /* freed memory given back when quiet (memory-trim.h) */

        /* bus-request.c: the broker is emitting a request's PropertiesChanged itself, so the
         * object lookup admits it whoever's call is being answered meanwhile. */
        bool emitting_request_change;
        sd_event_source *recommit;      /* writes unsaved requests again (disk full) */
        Request **requests; size_t n_requests;
        struct RequestIndex *index;     /* requests by id, by owner and token, per owner (manager.c) */
        CaState **cas; size_t n_cas;
        struct PendingReply *trust_waiters;     /* bus-ca.c: GetTrustAnchors() calls waiting for GetCACert */
};

/* On an invalid configuration, logs file:line, sets the unit's status text (STATUS=) to what
 * to fix and returns MANAGER_ERR_CONFIG; other failures return a negative errno. */
#define MANAGER_ERR_CONFIG (-ENOTRECOVERABLE)
/* certbrokerd's exit status for MANAGER_ERR_CONFIG (EX_CONFIG): certbrokerd.service's
 * RestartPreventExitStatus= keeps systemd from restarting it until the configuration changes. */
#define MANAGER_EXIT_CONFIG 78
/* Loads configuration and journal, sets up engine and key pool; no bus, nothing started. */
int manager_new(const char *config_dir, const char *state_dir, Manager **ret);
/* Resumes what was in flight before the last stop and what fell due meanwhile (renewals). */
void manager_start(Manager *m);
/* Runs the loop: 0 once stopped by SIGTERM, the exit status the loop was ended with otherwise
 * (EXIT_FAILURE: the bus connection was lost), or a negative errno. */
int manager_run(Manager *m);
Manager *manager_free(Manager *m);
DEFINE_POINTER_CLEANUP(Manager, manager_free)

/* Reads and parses the configuration directory. On a configuration error returns -EINVAL and
 * a malloc()ed "FILE:LINE: message" in *ret_message. */
int manager_load_config(const char *config_dir, CbConfig **ret, char **ret_message);
/* Atomic reload: the new configuration replaces the old only when all of it is valid. */
int manager_reload(Manager *m, char **ret_message);

/* By id: a hash table, not a scan (hash keyed at random per run). */
Request *manager_find_request(Manager *m, const char *id);
/* The requests of owner carrying token (Enroll's option), or NULL (always for "": requests
 * without a token are not indexed by it): iterate with by_token_next, skipping those of other
 * owners or tokens that share the bucket. */
Request *manager_token_bucket(Manager *m, uid_t owner, const char *token);
/* The requests of owner, the one made first first (follow owner_next); NULL when none. */
Request *manager_owned_requests(Manager *m, uid_t owner);
CaState *manager_find_ca_state(Manager *m, const char *name);
int manager_add_request(Manager *m, Request *req);
void manager_drop_request(Manager *m, Request *req);

void manager_notify_ca_changed(CaState *ca);
void manager_notify_credentials_changed(Manager *m);

/* Audit records a caller can trigger at will (denials, CheckAccess): false when this uid has
 * had its share (MANAGER_AUDIT_BURST at once, then one per MANAGER_AUDIT_REFILL_USEC); what
 * is held back is summed up in one record per uid, when the uid next gets through or within
 * a minute. Root is not limited. */
#define MANAGER_AUDIT_BURST 20U
#define MANAGER_AUDIT_REFILL_USEC (3ULL * 1000000ULL)
bool manager_audit_admit(Manager *m, uid_t uid);

/* A key of type key_type ("rsa:2048") from the pool with its PKCS#8 PEM, to be stored in the
 * new request's insert; both NULL when the pool has none (the engine makes one). */
/* Tests prove what survives a kill -9 at a given point: CERTBROKER_TEST_KILL_AT=point makes the
 * daemon SIGKILL itself there (the environment of a test, never of a deployed unit). The
 * points: renewal-before, renewal-inserted, renewal-started (renewal.c), challenge-unsent
 * (engine.c). */
void manager_test_kill_point(const char *point);

void manager_take_pool_key(Manager *m, const char *key_type, EVP_PKEY **ret_key, CbSecret **ret_pem);

/* Requests of uid the broker keeps (any state), for MaxStoredRequests=: a counter kept per uid
 * as requests come and go. */
unsigned manager_count_stored(Manager *m, uid_t uid);
