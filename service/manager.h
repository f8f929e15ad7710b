/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#include "cb-config.h"
#include "journal-sync.h"
#include "keys-pool.h"
#include "store-db.h"

#define CB_BUS_NAME        "org.certbroker.Broker1"
#define CB_MANAGER_PATH    "/org/certbroker/Broker1"
#define CB_REQUEST_PREFIX  "/org/certbroker/Broker1/request"
#define CB_CA_PREFIX       "/org/certbroker/Broker1/ca"
#define CB_MANAGER_IFACE   "org.certbroker.Broker1.Manager"
#define CB_REQUEST_IFACE   "org.certbroker.Broker1.Request"
#define CB_CA_IFACE        "org.certbroker.Broker1.CA"

typedef struct Manager Manager;
typedef struct Request Request;
typedef struct CaState CaState;

/* A pending Request.Wait() call. */
typedef struct Waiter {
        struct Waiter *next;
        Request *request;
        sd_bus_message *call;
        sd_event_source *timeout;
} Waiter;

struct Request {
        Manager *manager;
        StoreRequest *rec;              /* the durable record: authoritative */
        EVP_PKEY *key;                  /* in memory while the request is in flight */
        uint64_t key_job;               /* key pool job, 0 when none */
        sd_event_source *timer;         /* next attempt or poll */
        sd_event_source *renew_timer;   /* renewal.c: RenewAt and expiry warnings */
        Waiter *waiters;
        void *engine;                   /* engine state of the attempt in progress */
        bool removed;
        bool unsaved;                   /* the last commit failed (disk full): written again later */
};

/* Runtime state of one configured CA (what GetCACaps/GetCACert said). */
struct CaState {
        Manager *manager;
        char *name;
        char **capabilities; size_t n_capabilities;
        char *ca_certificates;          /* PEM */
        char *ra_certificates;          /* PEM */
        uint64_t last_contact;
        char *last_error;
        void *engine;                   /* engine cache (parsed certs, caps) */
};

struct Manager {
        sd_event *event;
        sd_bus *bus;
        char *config_dir;
        char *state_dir_override;       /* --state-dir */
        CbConfig *config;
        Store *store;
        JournalSync *journal_sync;      /* group commit: Enroll replies once its insert is on disk */
        bool stopping;                  /* SIGTERM or shutdown: start no new work */
        KeyPool *pool;
        struct CallerRegistry *callers; /* bus credentials per connection (caller.h) */
        struct UidLimit *audit_limit;   /* denial and CheckAccess records per uid (uid-limit.h) */
        void *engine;                   /* engine-wide state (credentials, HTTP) */

        sd_event_source *recommit;      /* writes unsaved requests again (disk full) */
        Request **requests; size_t n_requests;
        CaState **cas; size_t n_cas;
};

/* On an invalid configuration, logs file:line, sets the unit's status text (STATUS=) to what
 * to fix and returns MANAGER_ERR_CONFIG; other failures return a negative errno. */
#define MANAGER_ERR_CONFIG (-ENOTRECOVERABLE)
/* certbrokerd's exit status for MANAGER_ERR_CONFIG (EX_CONFIG): certbrokerd.service's
 * RestartPreventExitStatus= keeps systemd from restarting it until the configuration changes. */
#define MANAGER_EXIT_CONFIG 78
int manager_new(const char *config_dir, const char *state_dir, Manager **ret);
int manager_run(Manager *m);
Manager *manager_free(Manager *m);

/* Reads and parses the configuration directory. On a configuration error returns -EINVAL and
 * a malloc()ed "FILE:LINE: message" in *ret_message. */
int manager_load_config(const char *config_dir, CbConfig **ret, char **ret_message);
/* Atomic reload: the new configuration replaces the old only when all of it is valid. */
int manager_reload(Manager *m, char **ret_message);

Request *manager_find_request(Manager *m, const char *id);
CaState *manager_find_ca_state(Manager *m, const char *name);
int manager_add_request(Manager *m, Request *r);
void manager_drop_request(Manager *m, Request *r);

/* Persist the record and tell the bus (PropertiesChanged, invalidations only). If the state
 * became terminal, wakes the Wait() callers. */
int request_commit(Request *r);
void request_wake_waiters(Request *r);
Request *request_free(Request *r);

uint64_t now_usec(void);

/* Audit records a caller can trigger at will (denials, CheckAccess): false when this uid has
 * had its share (MANAGER_AUDIT_BURST at once, then one per MANAGER_AUDIT_REFILL_USEC); what
 * is held back is summed up in one record per uid, when the uid next gets through or within
 * a minute. Root is not limited. */
#define MANAGER_AUDIT_BURST 20U
#define MANAGER_AUDIT_REFILL_USEC (3ULL * 1000000ULL)
bool manager_audit_admit(Manager *m, uid_t uid);

/* A key of type key_type ("rsa:2048") from the pool with its PKCS#8 PEM, to be stored in the
 * new request's insert; both NULL when the pool has none (the engine makes one). */
void manager_take_pool_key(Manager *m, const char *key_type, EVP_PKEY **ret_key, CbSecret **ret_pem);

/* Requests of uid the broker keeps (any state), for MaxStoredRequests=. */
unsigned manager_count_stored(Manager *m, uid_t uid);

/* Bus objects (bus-*.c). */
int bus_manager_register(Manager *m);
/* PropertiesChanged with invalidations only: no values reach other tenants. No
 * ObjectManager either, for the same reason (InterfacesAdded would carry values). */
int bus_request_emit_changed(Request *r);
/* The connection unique_name left the bus: its Wait() calls are dropped (nobody to reply to). */
void bus_request_caller_gone(const char *unique_name, void *userdata);
