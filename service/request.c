/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A request's life: the only writer of its state, error, key and key availability (request.h).
 * The engine (engine.c) runs the attempt and calls the transitions here; the bus layer calls
 * the owner's operations and learns of every change through the manager's hooks. */
#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "basic.h"
#include "caller.h"
#include "engine.h"
#include "keys-generate.h"
#include "log.h"
#include "manager.h"
#include "memory-trim.h"
#include "metrics.h"
#include "nss-cache.h"
#include "renewal.h"
#include "request.h"
#include "scep-csr.h"

#define RECOMMIT_INTERVAL_USEC (5ULL * 1000000ULL)

static void set_string(char **field, const char *value) {
        char *s = strdup(value ?: "");
        if (!s)
                return;         /* keep the old value rather than lose the field */
        free(*field);
        *field = s;
}

/* ---- pure parts ---- */

uint64_t request_retry_delay(unsigned attempts, uint32_t rnd) {
        unsigned shift = attempts > 0 ? attempts - 1 : 0;
        uint64_t delay = shift >= 10 ? REQUEST_RETRY_MAX_USEC : REQUEST_RETRY_MIN_USEC << shift;

        if (delay > REQUEST_RETRY_MAX_USEC)
                delay = REQUEST_RETRY_MAX_USEC;
        /* Up to a quarter more at random, so requests that failed together (a fleet renewing
         * against a CA that was down) do not come back together. */
        return delay + (delay / 4) * rnd / UINT32_MAX;
}

/* The fleet simulation's control run (tests/bench/fleet.sh) measures the same fleet without
 * backoff: CERTBROKER_TEST_RETRY_FIXED=SECONDS (1..3600) makes every retry come after exactly
 * that long, no growth, no jitter. The environment of a test, never of a deployed unit. */
static uint64_t retry_delay(unsigned attempts) {
        static int fixed = -1;

        if (fixed < 0) {
                const char *e = getenv("CERTBROKER_TEST_RETRY_FIXED");
                char *end = NULL;
                long v = e ? strtol(e, &end, 10) : 0;

                fixed = e && end && end != e && !*end && v >= 1 && v <= 3600 ? (int) v : 0;
                if (fixed > 0)
                        log_notice("CERTBROKER_TEST_RETRY_FIXED=%d: every retry after %d s (no backoff, no jitter).",
                                   fixed, fixed);
        }
        if (fixed > 0)
                return (uint64_t) fixed * 1000000ULL;
        return request_retry_delay(attempts, randombytes_random());
}

uint64_t request_poll_delay(uint64_t poll_interval_usec, unsigned attempts, bool first) {
        uint64_t f;

        if (first || attempts == 0)
                return poll_interval_usec;
        f = attempts < 6 ? 1ULL << (attempts - 1) : REQUEST_POLL_MAX_FACTOR;
        return poll_interval_usec * (f > REQUEST_POLL_MAX_FACTOR ? REQUEST_POLL_MAX_FACTOR : f);
}

const CbCa *request_ca_config(const Request *req) {
        return cb_config_find_ca(req->manager->config, req->rec->ca);
}

CaState *request_ca_state(const Request *req) {
        return manager_find_ca_state(req->manager, req->rec->ca);
}

uint64_t request_deadline(const Request *req) {
        const CbCa *c = request_ca_config(req);
        return req->rec->created + (c ? c->pending_deadline_usec : UINT64_C(604800) * 1000000);
}

bool request_is_renewal(const Request *req) {
        return req->rec->predecessor && *req->rec->predecessor;
}

/* ---- announcing and committing ---- */

void request_notify(Request *req) {
        Manager *m = req->manager;

        if (m && m->hooks && m->hooks->request_changed)
                m->hooks->request_changed(req);
}

size_t request_recommit_all(Manager *m) {
        size_t left = 0, saved = 0;

        for (size_t i = 0; i < m->n_requests; i++) {
                Request *req = m->requests[i];
                if (!req->unsaved)
                        continue;
                if (store_request_update(m->store, req->rec) < 0)
                        left++;
                else {
                        req->unsaved = false;
                        saved++;
                }
        }
        if (saved > 0)
                log_info("Wrote %zu request(s) the journal %s could not take before.", saved, store_path(m->store));
        return left;
}

/* A state the journal could not take (disk full, I/O error) is kept in memory and written
 * again every few seconds until it goes in: nothing the broker did is lost once there is
 * room again, and a restart in between only repeats a poll. */
static int on_recommit(sd_event_source *s, uint64_t usec, void *userdata) {
        if (request_recommit_all(userdata) == 0)
                return sd_event_source_set_enabled(s, SD_EVENT_OFF);
        (void) sd_event_source_set_time_relative(s, RECOMMIT_INTERVAL_USEC);
        return sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
}

static void schedule_recommit(Manager *m) {
        int r;

        if (!m->event)
                return;
        if (!m->recommit) {
                r = sd_event_add_time_relative(m->event, &m->recommit, CLOCK_MONOTONIC, RECOMMIT_INTERVAL_USEC,
                                               1000000ULL, on_recommit, m);
                if (r < 0)
                        log_error_errno(r, "Cannot schedule writing the request journal again: %m");
                return;
        }
        if (sd_event_source_get_enabled(m->recommit, NULL) > 0)
                return;
        (void) sd_event_source_set_time_relative(m->recommit, RECOMMIT_INTERVAL_USEC);
        (void) sd_event_source_set_enabled(m->recommit, SD_EVENT_ONESHOT);
}

int request_commit(Request *req) {
        int r;

        req->rec->updated = now_usec();
        r = store_request_update(req->manager->store, req->rec);
        if (r < 0) {
                log_error_errno(r, "Request %s: cannot write the request journal %s (kept in memory, written again "
                                "in %llu s): %m", req->rec->id, store_path(req->manager->store),
                                RECOMMIT_INTERVAL_USEC / 1000000ULL);
                req->unsaved = true;
                schedule_recommit(req->manager);
        } else
                req->unsaved = false;
        request_notify(req);
        return r;
}

static void audit_outcome(Request *req, int level, const char *decision) {
        char names[1024] = "";

        for (size_t i = 0; req->rec->names && req->rec->names[i]; i++) {
                if (i > 0)
                        strncat(names, " ", sizeof names - strlen(names) - 1);
                strncat(names, req->rec->names[i], sizeof names - strlen(names) - 1);
        }
        log_audit(level, &(AuditRecord) {
                        .request = req->rec->id, .uid = req->rec->owner, .decision = decision,
                        .names = names, .ca = req->rec->ca, .error = req->rec->error,
                  },
                  "Request %s %s%s%s", req->rec->id, decision,
                  req->rec->error_message && *req->rec->error_message ? ": " : "",
                  req->rec->error_message ?: "");
}

/* ---- life ---- */

int request_add(Manager *m, StoreRequest *rec, Request **ret) {
        _cleanup_free_ Request *req = calloc(1, sizeof(*req));
        int r;

        if (!req)
                return -ENOMEM;
        req->rec = rec;         /* its id, owner and token index it */
        r = manager_add_request(m, req);
        if (r < 0)
                return r;
        Request *added = TAKE_PTR(req);         /* the manager's now */
        if (ret)
                *ret = added;
        return 0;
}

Request *request_free(Request *req) {
        Manager *m;

        if (!req)
                return NULL;
        m = req->manager;
        if (m) {
                engine_request_stop(req);
                /* Removal or shutdown: whoever waits on it hears of it now. */
                if (m->hooks && m->hooks->request_gone)
                        m->hooks->request_gone(req);
                manager_drop_request(m, req);
        }
        sd_event_source_disable_unref(req->timer);
        sd_event_source_disable_unref(req->renew_timer);
        nss_waiter_free(req->renew_nss_waiter);
        EVP_PKEY_free(req->key);
        store_request_free(req->rec);
        free(req);
        return NULL;
}

int request_scrub_csr(Request *req) {
        _cleanup_(scep_csr_freep) X509_REQ *csr = NULL;         /* wipes the challenge */
        _cleanup_free_ char *pem = NULL;
        char *old;
        int r;

        /* Journals written by older versions kept a PENDING request's CSR whole, one-time
         * challengePassword included. Take it out at load rather than at the next poll, which
         * may be hours away. */
        if (req->rec->state != REQUEST_PENDING || !req->rec->csr || !*req->rec->csr)
                return 0;
        if (scep_csr_from_pem(req->rec->csr, &csr) < 0)
                return 0;       /* the next poll says it does not parse */
        if (X509_REQ_get_attr_by_NID(csr, NID_pkcs9_challengePassword, -1) < 0)
                return 0;
        /* To sign it again; without the key the signature just stops matching, which CertPoll
         * does not look at. Kept in req->key, which the next poll needs anyway. */
        if (req->rec->key_available && !req->key)
                (void) request_load_key(req);
        r = scep_csr_strip_challenge(csr, req->key);
        if (r < 0)
                return log_warning_errno(r, "Request %s: cannot take the challenge password out of its stored "
                                         "CSR: %m", req->rec->id);
        r = scep_csr_to_pem(csr, &pem);
        if (r < 0)
                return log_warning_errno(r, "Request %s: cannot encode its CSR without the challenge password: %m",
                                         req->rec->id);
        old = req->rec->csr;
        req->rec->csr = pem;
        r = store_request_update(req->manager->store, req->rec);
        if (r < 0) {
                req->rec->csr = old;
                return log_warning_errno(r, "Request %s: cannot write its CSR without the challenge password to "
                                         "%s: %m", req->rec->id, store_path(req->manager->store));
        }
        TAKE_PTR(pem);          /* req->rec->csr */
        secret_erase_and_free_string(old);
        log_info("Request %s: removed the challenge password an older version had stored with its CSR.",
                 req->rec->id);
        return 1;
}

/* ---- enroll ---- */

/* An enrollment waiting for its insert to reach the disk (group commit). */
typedef struct EnrollOp {
        Manager *manager;
        RequestEnrolled done;
        void *userdata;
        bool no_start;          /* an existing request (Enroll repeated with its token): only the reply */
        char id[STORE_ID_LEN + 1];
} EnrollOp;

static void on_enroll_durable(int error, void *userdata) {
        _cleanup_free_ EnrollOp *op = userdata;
        Manager *m = op->manager;
        Request *req = manager_find_request(m, op->id);

        assert(op->done);

        if (error < 0 && op->no_start) {
                op->done(NULL, error, op->userdata);
                return;
        }
        if (error < 0) {
                log_error_errno(error, "Cannot make request %s durable in %s: %m", op->id, store_path(m->store));
                if (req) {
                        (void) store_request_delete(m->store, req->rec->id);
                        request_free(req);
                }
                op->done(NULL, error, op->userdata);
                return;
        }
        if (!req) {
                op->done(NULL, -ENOENT, op->userdata);
                return;
        }
        op->done(req, 0, op->userdata);
        if (!m->stopping && !op->no_start)
                (void) engine_request_start(req);
}

/* done(req) once everything written so far is on disk (the journal's fsync, off the loop);
 * no_start: the request is not started then. */
static int enroll_when_durable(Manager *m, const char *id, bool no_start, RequestEnrolled done, void *userdata) {
        _cleanup_free_ EnrollOp *op = calloc(1, sizeof(*op));
        int r;

        if (!op)
                return -ENOMEM;
        *op = (EnrollOp) { .manager = m, .done = done, .userdata = userdata, .no_start = no_start };
        memcpy(op->id, id, sizeof op->id);
        r = journal_sync_request(m->journal_sync, on_enroll_durable, op, NULL);
        if (r < 0)
                return r;
        TAKE_PTR(op);           /* on_enroll_durable() frees it */
        return 0;
}

static int record_from_decision(uid_t owner, const char *snapshot, const CbDecision *d, bool renew,
                                const char *token, StoreRequest **ret) {
        _cleanup_(store_request_freep) StoreRequest *rec = calloc(1, sizeof(*rec));
        int r;

        if (!rec)
                return -ENOMEM;
        rec->owner = owner;
        rec->renew = renew;
        rec->caller = strdup(snapshot ?: "");
        rec->ca = strdup(d->ca->name);
        rec->label = strdup(d->label ?: "");
        rec->token = strdup(token ?: "");
        r = cb_subject_format(d->subject, &rec->subject);
        if (r < 0)
                return r;
        rec->names = calloc(d->n_names + 1, sizeof(char *));
        for (size_t i = 0; rec->names && i < d->n_names; i++)
                if (!(rec->names[i] = strdup(d->names[i])))
                        return -ENOMEM;
        rec->key = strdup(cb_key_type_to_string(d->key));
        rec->usage = strdup(cb_usage_to_string(d->usage));
        if (!rec->caller || !rec->ca || !rec->label || !rec->names || !rec->key || !rec->usage || !rec->token)
                return -ENOMEM;
        rec->state = REQUEST_QUEUED;
        rec->created = rec->updated = now_usec();
        *ret = TAKE_PTR(rec);
        return 0;
}

int request_enroll(Manager *m, uid_t owner, const char *caller_snapshot, const CbDecision *d, bool renew,
                   const char *token, RequestEnrolled done, void *userdata, Request **ret) {
        _cleanup_(store_request_freep) StoreRequest *rec = NULL;
        _cleanup_(key_freep) EVP_PKEY *key = NULL;
        _cleanup_(secret_freep) CbSecret *key_pem = NULL;
        Request *req = NULL;
        int r;

        r = record_from_decision(owner, caller_snapshot, d, renew, token, &rec);
        if (r < 0)
                return log_error_errno(r, "Cannot make the record of a new request: %m");

        /* Durable before the reply; a key from the pool goes into the same transaction. */
        manager_take_pool_key(m, rec->key, &key, &key_pem);
        r = store_request_insert(m->store, rec, key_pem);
        key_pem = secret_free(key_pem);
        if (r < 0)
                return log_error_errno(r, "Cannot record a new request in %s: %m", store_path(m->store));
        rec->key_available = key != NULL;
        r = request_add(m, rec, &req);
        if (r < 0) {
                (void) store_request_delete(m->store, rec->id);
                return log_error_errno(r, "Cannot add the new request %s to the broker's index: %m", rec->id);
        }
        TAKE_PTR(rec);          /* req's now */
        req->key = TAKE_PTR(key);

        /* The reply (and the engine) wait for the journal's fsync, which the loop does not
         * wait for. */
        r = enroll_when_durable(m, req->rec->id, false, done, userdata);
        if (r < 0) {
                log_error_errno(r, "Cannot wait for the new request %s to reach the disk: %m", req->rec->id);
                (void) store_request_delete(m->store, req->rec->id);
                request_free(req);
                return r;
        }
        *ret = req;
        return 0;
}

Request *request_find_token(Manager *m, uid_t owner, const char *token) {
        Request *found = NULL;

        if (!token || !*token)
                return NULL;
        /* The bucket holds the chain carrying the token, and whatever shares the bucket. */
        for (Request *req = manager_token_bucket(m, owner, token); req; req = req->by_token_next) {
                if (req->rec->owner != owner || strcmp(req->rec->token, token) != 0)
                        continue;
                if (!found || req->rec->created < found->rec->created ||
                    (req->rec->created == found->rec->created && strcmp(req->rec->id, found->rec->id) < 0))
                        found = req;
        }
        return found;
}

static bool names_equal(char *const *a, char *const *b) {
        for (; *a && *b; a++, b++)
                if (strcmp(*a, *b) != 0)
                        return false;
        return !*a && !*b;
}

int request_differs(const Request *req, const CbDecision *d, bool ca_given, bool key_given, bool renew,
                    const char **ret_field) {
        _cleanup_(store_request_freep) StoreRequest *rec = NULL;
        const char *field = NULL;
        int r;

        r = record_from_decision(req->rec->owner, "", d, renew, "", &rec);
        if (r < 0)
                return r;
        if (ca_given && strcmp(rec->ca, req->rec->ca) != 0)
                field = "ca";           /* not given: the default CA, which a Reload may change */
        else if (!names_equal(rec->names, req->rec->names))
                field = "names";        /* before the subject, which defaults to CN=<names[0]> */
        else if (strcmp(rec->subject, req->rec->subject) != 0)
                field = "subject";
        else if (key_given && strcmp(rec->key, req->rec->key) != 0)
                field = "key";          /* not given: the CA's default, which a Reload may change */
        else if (strcmp(rec->usage, req->rec->usage) != 0)
                field = "usage";
        else if (strcmp(rec->label, req->rec->label) != 0)
                field = "label";
        else if (rec->renew != req->rec->renew)
                field = "renew";        /* also after StopRenewal: that chain is no longer kept valid */
        *ret_field = field;
        return field != NULL;
}

int request_when_durable(Request *req, RequestEnrolled done, void *userdata) {
        return enroll_when_durable(req->manager, req->rec->id, true, done, userdata);
}

int request_decide_again(Request *req, bool nss_groups, CbDecision *ret) {
        const StoreRequest *rec = req->rec;
        _cleanup_(caller_done) Caller c = {};
        CbCaller cb;
        size_t n = 0;
        int r;

        r = caller_from_snapshot(rec->owner, rec->caller, caller_names_needed(req->manager->config), nss_groups, &c);
        if (r < 0)
                return r;
        caller_to_policy(&c, &cb);
        while (rec->names && rec->names[n])
                n++;
        CbRequestSpec spec = {
                .ca = rec->ca, .subject = rec->subject, .names = (const char *const *) rec->names, .n_names = n,
                .key = rec->key, .usage = rec->usage, .label = rec->label,
        };
        return cb_policy_decide(req->manager->config, &cb, &spec, NULL, ret);
}

static int delete_and_free(Request *req, const char *decision, const char *why);

/* Finished, not the live end of a chain: may be forgotten. 1 first choice (nothing lost: it
 * ended without a certificate, its certificate was renewed, or its key is gone), 2 an issued
 * request still holding its key, 0 not at all. */
static int forget_rank(Manager *m, Request *req) {
        const StoreRequest *s = req->rec;

        if (!request_state_is_terminal(s->state) || renewal_keeps(m, req))
                return 0;
        if (s->state != REQUEST_ISSUED || (s->successor && *s->successor) || (!s->key_available && !s->key_sealed))
                return 1;
        return 2;
}

unsigned request_make_room(Manager *m, uid_t owner, const char *for_id) {
        unsigned bound = m->config->max_stored_requests, forgotten = 0, kept;
        char why[256];

        while ((kept = manager_count_stored(m, owner)) >= bound) {
                Request *victim = NULL;
                /* The owner's requests, made first first: a bounded walk (about the bound). */
                for (Request *req = manager_owned_requests(m, owner); req; req = req->owner_next) {
                        int rank = forget_rank(m, req);
                        if (rank == 1) {
                                victim = req;
                                break;
                        }
                        if (rank == 2 && !victim)
                                victim = req;
                }
                if (!victim) {
                        log_audit(LOG_NOTICE, &(AuditRecord) { .request = for_id, .uid = owner,
                                                               .decision = "over-limit" },
                                  "Request %s is renewed although uid %u keeps %u requests (MaxStoredRequests=%u): "
                                  "none of them is finished, and a renewal chain is not ended for the limit.",
                                  for_id, (unsigned) owner, kept, bound);
                        break;
                }
                snprintf(why, sizeof why, "(%s) forgotten to make room for the renewal of request %s: uid %u "
                         "keeps MaxStoredRequests=%u requests; its key, if any, erased.",
                         request_state_to_string(victim->rec->state), for_id, (unsigned) owner, bound);
                if (delete_and_free(victim, "forgotten", why) < 0) {
                        log_warning("Request %s: cannot forget it to make room for the renewal of request %s; "
                                    "uid %u keeps %u requests (MaxStoredRequests=%u).", victim->rec->id, for_id,
                                    (unsigned) owner, kept, bound);
                        break;
                }
                forgotten++;
        }
        return forgotten;
}

int request_add_successor(Request *pred, StoreRequest *rec, Request **ret) {
        _cleanup_(store_request_freep) StoreRequest *owned = rec;
        _cleanup_(key_freep) EVP_PKEY *key = NULL;
        _cleanup_(secret_freep) CbSecret *key_pem = NULL;
        Manager *m = pred->manager;
        StoreRequest *p = pred->rec;
        Request *req = NULL;
        int r;

        /* A successor counts against MaxStoredRequests= like any request of its owner: short
         * lived certificates renewed for months would otherwise pile up without bound. */
        (void) request_make_room(m, rec->owner, p->id);
        if (rec->state == REQUEST_QUEUED)
                manager_take_pool_key(m, rec->key, &key, &key_pem);
        r = store_request_insert_successor(m->store, p->id, rec, key_pem);
        key_pem = secret_free(key_pem);
        if (r < 0)
                return log_error_errno(r, "Request %s: cannot record its successor in %s: %m", p->id,
                                       store_path(m->store));
        set_string(&p->successor, rec->id);
        rec->key_available = key != NULL;
        r = request_add(m, rec, &req);
        if (r < 0)      /* recorded: it comes back at the next start */
                return log_error_errno(r, "Request %s: its successor %s is recorded but cannot be run now: %m",
                                       p->id, rec->id);
        TAKE_PTR(owned);        /* req's now */
        req->key = TAKE_PTR(key);
        request_notify(pred);
        *ret = req;
        return 0;
}

/* ---- the state ---- */

/* The key goes: from memory always, from the journal (key and sealed copy) unless that fails
 * (then the flags stay as the journal has it). */
static int erase_key(Request *req) {
        int r = store_key_erase(req->manager->store, req->rec->id);

        if (r >= 0)
                req->rec->key_available = req->rec->key_sealed = false;
        EVP_PKEY_free(req->key);
        req->key = NULL;
        return r;
}

/* What entering state does, before the commit: the fields that go with it. */
static void state_enter(Request *req, RequestState state, uint64_t next) {
        switch (state) {
        case REQUEST_SUBMITTING:
                req->rec->next_attempt = 0;
                break;
        case REQUEST_PENDING:
        case REQUEST_RETRYING:
                request_schedule(req, next);
                break;
        case REQUEST_ISSUED: {
                const CbCa *c = request_ca_config(req);
                uint64_t now = now_usec();

                req->rec->next_attempt = 0;
                metrics_observe_enrollment(req->manager, req->rec->ca, now > req->rec->created ? now - req->rec->created : 0);
                EVP_PKEY_free(req->key);  /* the journal keeps it (encrypted) for TakeKey */
                req->key = NULL;
                renewal_on_issued(req, c);
                renewal_key_on_issued(req, c);
                break;
        }
        case REQUEST_REJECTED:
        case REQUEST_FAILED:
        case REQUEST_CANCELLED:
                /* Ended without a certificate: nothing resumes it, so nothing is asked about and no
                 * key is kept for it (request_cancel() erased it already, or refused). */
                req->rec->next_attempt = 0;
                req->rec->submitted = 0;
                if (req->key || req->rec->key_available || req->rec->key_sealed)
                        (void) erase_key(req);
                break;
        default:
                break;
        }
}

/* What entering state does once committed (committed: the commit's result): the audit record
 * of an outcome, and what follows from it. */
static void state_entered(Request *req, RequestState old, RequestState state, int committed) {
        switch (state) {
        case REQUEST_PENDING:
                if (old != REQUEST_PENDING)
                        audit_outcome(req, LOG_INFO, "pending");
                break;
        case REQUEST_ISSUED:
                audit_outcome(req, LOG_INFO, "issued");
                renewal_schedule(req);
                renewal_successor_changed(req);
                break;
        case REQUEST_REJECTED:
        case REQUEST_FAILED:
                audit_outcome(req, LOG_WARNING, request_state_to_string(state));
                break;
        case REQUEST_CANCELLED:
                /* The owner is told when it did not go into the journal (request_cancel()). */
                if (committed >= 0)
                        log_audit(LOG_INFO, &(AuditRecord) { .request = req->rec->id, .uid = req->rec->owner,
                                                             .decision = "cancelled", .ca = req->rec->ca,
                                                             .error = broker_error_name(BROKER_ERROR_CANCELLED) },
                                  "Request %s cancelled.", req->rec->id);
                break;
        default:
                break;
        }
}

int request_set_state(Request *req, RequestState state, uint64_t next) {
        RequestState old = req->rec->state;
        int r;

        assert(state >= 0 && state < _REQUEST_STATE_MAX);
        assert((state == REQUEST_PENDING || state == REQUEST_RETRYING) == (next != 0));

        /* The attempt in flight stops, unless this is one beginning. */
        if (state != REQUEST_SUBMITTING)
                engine_request_stop(req);
        req->rec->state = state;
        memory_trim_note_activity(req->manager->trim);
        if (old != state)
                log_debug("Request %s: %s -> %s", req->rec->id, request_state_to_string(old),
                          request_state_to_string(state));
        state_enter(req, state, next);
        r = request_commit(req);
        state_entered(req, old, state, r);
        return r;
}

/* ---- transitions ---- */

static int on_request_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        Request *req = userdata;

        assert(s == req->timer);  /* request_schedule() and engine_request_stop() replace or drop it */
        req->timer = sd_event_source_disable_unref(req->timer);
        (void) engine_request_start(req);
        return 0;
}

void request_schedule(Request *req, uint64_t when) {
        int r;

        req->timer = sd_event_source_disable_unref(req->timer);
        req->rec->next_attempt = when;
        if (!req->manager->event)
                return;
        r = sd_event_add_time(req->manager->event, &req->timer, CLOCK_REALTIME, when, 1000000,
                              on_request_timer, req);
        if (r < 0)
                log_error_errno(r, "Request %s: cannot schedule the next attempt: %m", req->rec->id);
}

void request_begin_attempt(Request *req, bool polling) {
        req->rec->attempts++;
        if (req->rec->state != REQUEST_PENDING && !polling)
                (void) request_set_state(req, REQUEST_SUBMITTING, 0);
        else
                (void) request_commit(req);
}

void request_end(Request *req, RequestState state, BrokerError error, const char *fail_info, const char *message) {
        assert(state == REQUEST_FAILED || state == REQUEST_REJECTED);
        set_string(&req->rec->error, broker_error_name(error));
        set_string(&req->rec->error_message, message);
        set_string(&req->rec->fail_info, fail_info ?: "");
        (void) request_set_state(req, state, 0);
}

/* The attempt stops; the next one is in delay. A pending request stays pending (the CA has it;
 * only the poll failed), anything else is retrying. */
static void retry_after(Request *req, BrokerError error, const char *message, uint64_t delay) {
        set_string(&req->rec->error, broker_error_name(error));
        set_string(&req->rec->error_message, message);
        (void) request_set_state(req, req->rec->state == REQUEST_PENDING ? REQUEST_PENDING : REQUEST_RETRYING,
                                 now_usec() + delay);
        log_audit(LOG_NOTICE, &(AuditRecord) { .request = req->rec->id, .uid = req->rec->owner,
                                               .decision = "retrying", .ca = req->rec->ca,
                                               .error = broker_error_name(error) },
                  "Request %s: %s; next attempt in %llu s.", req->rec->id, message,
                  (unsigned long long) (delay / 1000000));
}

void request_attempt_failed(Request *req, BrokerError error, const char *message) {
        uint64_t now = now_usec();

        if (error == BROKER_ERROR_NONE)
                error = BROKER_ERROR_PROTOCOL_ERROR;
        /* A renewal keeps trying past PendingDeadline: its certificate must be renewed even
         * after it expired, once the CA is back. */
        if (!broker_error_is_transient(error) || (!request_is_renewal(req) && now >= request_deadline(req))) {
                request_end(req, REQUEST_FAILED, broker_error_is_transient(error) ? BROKER_ERROR_TIMEOUT : error,
                            NULL, message);
                return;
        }
        retry_after(req, error, message, retry_delay(req->rec->attempts));
}

/* What to do about a local shortage, after "what: strerror". */
static const char *local_shortage_hint(int error) {
        switch (error) {
        case ENOSPC:
        case EDQUOT:
                return "the broker's state directory is full: free space there";
        case ENOMEM:
        case ENOBUFS:
                return "the broker is short of memory";
        case EBUSY:
                return "the broker is busy (its key generation queue is full, or holds this owner's share)";
        default:
                return "a resource of the broker is busy";
        }
}

void request_attempt_failed_errno(Request *req, int error, const char *what) {
        int e = error < 0 ? -error : error;
        char msg[512];

        if (broker_errno_is_local_transient(e)) {
                /* Nothing is wrong with the request: it keeps its state and its stored key and
                 * tries again with a backoff of its own (counted until a submission is recorded:
                 * a shortage after the challenge was fetched must not spend one every 5 s).
                 * The shortage never ends it (PendingDeadline= still applies when the next
                 * attempt starts). A key it made but could not store yet is dropped (it reached
                 * nobody); the next attempt makes and stores one. */
                snprintf(msg, sizeof msg, "%s: %s; %s. The request is retried.", what, strerror(e),
                         local_shortage_hint(e));
                log_warning("Request %s: %s", req->rec->id, msg);
                if (req->key && !req->rec->key_available) {
                        EVP_PKEY_free(req->key);
                        req->key = NULL;
                }
                if (req->local_failures < UINT_MAX)
                        req->local_failures++;
                retry_after(req, BROKER_ERROR_QUOTA_EXCEEDED, msg, retry_delay(req->local_failures));
                return;
        }
        snprintf(msg, sizeof msg, "%s: %s", what, strerror(e));
        log_error("Request %s: %s", req->rec->id, msg);
        request_attempt_failed(req, BROKER_ERROR_PROTOCOL_ERROR, msg);
}

int request_keep_key(Request *req, EVP_PKEY *key) {
        _cleanup_(secret_freep) CbSecret *pem = NULL;
        int r;

        EVP_PKEY_free(req->key);
        req->key = key;
        r = key_export_pkcs8_pem(req->key, &pem);
        if (r < 0)
                return r;
        r = store_key_set(req->manager->store, req->rec->id, pem);
        if (r < 0)
                return r;
        req->rec->key_available = true;
        return 0;
}

int request_load_key(Request *req) {
        _cleanup_(secret_freep) CbSecret *pem = NULL;
        _cleanup_(key_freep) EVP_PKEY *key = NULL;
        int r;

        r = store_key_get(req->manager->store, req->rec->id, &pem);
        if (r < 0)
                return r;
        r = key_import_pkcs8_pem(pem, &key);
        if (r < 0)
                return r;
        EVP_PKEY_free(req->key);
        req->key = TAKE_PTR(key);
        return 0;
}

void request_set_transaction(Request *req, const char *transaction_id) {
        set_string(&req->rec->transaction_id, transaction_id);
}

int request_mark_submitted(Request *req, const char *transaction_id) {
        int r;

        set_string(&req->rec->transaction_id, transaction_id);
        req->rec->submitted = now_usec();
        r = request_commit(req);
        if (r < 0)
                req->rec->submitted = 0;
        else
                req->local_failures = 0;  /* every local step up to the submission went through */
        return r;
}

void request_clear_submitted(Request *req) {
        req->rec->submitted = 0;
}

void request_warn_duplicate_risk(Request *req, const char *message) {
        req->rec->submitted = 0;
        set_string(&req->rec->warning, message);
        log_audit(LOG_WARNING, &(AuditRecord) { .request = req->rec->id, .uid = req->rec->owner,
                                                .decision = "duplicate-risk", .ca = req->rec->ca },
                  "Request %s: %s", req->rec->id, message);
        engine_request_stop(req);
        (void) request_commit(req);
}

void request_warn(Request *req, const char *decision, const char *message) {
        set_string(&req->rec->warning, message);
        log_audit(LOG_WARNING, &(AuditRecord) { .request = req->rec->id, .uid = req->rec->owner,
                                                .decision = decision, .ca = req->rec->ca },
                  "Request %s: %s", req->rec->id, message);
        (void) request_commit(req);
}

void request_set_pending(Request *req, char *csr_pem, uint64_t poll_interval_usec) {
        bool first = req->rec->state != REQUEST_PENDING;

        secret_erase_and_free_string(req->rec->csr);
        req->rec->csr = csr_pem;
        set_string(&req->rec->error, "");
        set_string(&req->rec->error_message, "");
        (void) request_set_state(req, REQUEST_PENDING,
                                 now_usec() + request_poll_delay(poll_interval_usec, req->rec->attempts, first));
}

void request_set_issued(Request *req, char *certificate, char *chain, char *serial, uint64_t not_before,
                        uint64_t not_after) {
        free(req->rec->certificate);
        req->rec->certificate = certificate;
        free(req->rec->chain);
        req->rec->chain = chain;
        free(req->rec->serial);
        req->rec->serial = serial;
        req->rec->not_before = not_before;
        req->rec->not_after = not_after;
        set_string(&req->rec->error, "");
        set_string(&req->rec->error_message, "");
        set_string(&req->rec->fail_info, "");
        (void) request_set_state(req, REQUEST_ISSUED, 0);
}

/* ---- the owner's operations ---- */

int request_cancel(Request *req) {
        int r;

        if (req->rec->state == REQUEST_CANCELLED)
                return 1;
        if (request_state_is_terminal(req->rec->state))
                return -EBUSY;
        /* Not cancelled while its key cannot be erased. */
        engine_request_stop(req);
        r = erase_key(req);
        if (r < 0)
                return r;
        set_string(&req->rec->error, broker_error_name(BROKER_ERROR_CANCELLED));
        set_string(&req->rec->error_message, "Cancelled by its owner.");
        r = request_set_state(req, REQUEST_CANCELLED, 0);
        return r < 0 ? r : 0;
}

/* What a store call on req's key answered (r): -ENOKEY as it is (the key is gone: *flag, the
 * availability it relied on, is cleared), any other failure logged ("cannot <what>") and -EIO
 * (the store's own errno values mean nothing to the caller), success as it is. */
static int key_store_result(Request *req, int r, bool *flag, const char *what) {
        if (r == -ENOKEY) {
                *flag = false;
                return r;
        }
        if (r < 0) {
                log_error_errno(r, "Request %s: cannot %s in %s: %m", req->rec->id, what,
                                store_path(req->manager->store));
                return -EIO;
        }
        return r;
}

int request_take_key(Request *req, CbSecret **ret_pem) {
        int r;

        if (req->rec->state != REQUEST_ISSUED)
                return -EBUSY;
        if (!req->rec->key_available)
                return -ENOKEY;
        r = key_store_result(req, store_key_take(req->manager->store, req->rec->id, ret_pem),
                             &req->rec->key_available, "read its key");
        if (r < 0)
                return r;
        req->rec->key_available = false;
        EVP_PKEY_free(req->key);
        req->key = NULL;
        log_audit(LOG_INFO, &(AuditRecord) { .request = req->rec->id, .uid = req->rec->owner,
                                             .decision = "key-taken", .ca = req->rec->ca },
                  "Request %s: the private key was taken by its owner and erased.", req->rec->id);
        (void) request_commit(req);
        return 0;
}

int request_take_key_sealed(Request *req, const uint8_t *recipient, size_t recipient_size, uint8_t **ret_box,
                            size_t *ret_size) {
        uint8_t stored[STORE_SEAL_RECIPIENT_LEN];
        int r;

        if (req->rec->state != REQUEST_ISSUED)
                return -EBUSY;
        if (!recipient || recipient_size != STORE_SEAL_RECIPIENT_LEN)
                return -EINVAL;
        if (req->rec->key_sealed) {
                /* Sealed before: the same copy again, to the same receiver only. */
                r = key_store_result(req, store_key_sealed_get(req->manager->store, req->rec->id, stored, ret_box,
                                                               ret_size),
                                     &req->rec->key_sealed, "read its sealed key");
                if (r < 0)
                        return r;
                if (sodium_memcmp(stored, recipient, STORE_SEAL_RECIPIENT_LEN) != 0) {
                        free(*ret_box);
                        *ret_box = NULL;
                        return -EPERM;
                }
                log_debug("Request %s: its sealed key was asked for again by the same receiver.", req->rec->id);
                return 1;
        }
        if (!req->rec->key_available)
                return -ENOKEY;
        r = store_key_seal(req->manager->store, req->rec->id, recipient, ret_box, ret_size);
        if (r == -EDOM)
                return r;       /* libsodium refused the public key */
        r = key_store_result(req, r, &req->rec->key_available, "seal its key");
        if (r < 0)
                return r;
        req->rec->key_available = false;
        req->rec->key_sealed = true;
        EVP_PKEY_free(req->key);
        req->key = NULL;
        log_audit(LOG_INFO, &(AuditRecord) { .request = req->rec->id, .uid = req->rec->owner,
                                             .decision = "key-sealed", .ca = req->rec->ca },
                  "Request %s: the private key was sealed to its owner's receiver and erased; the sealed copy "
                  "is kept until the receiver confirms it (ConfirmKey) or the certificate expires.", req->rec->id);
        (void) request_commit(req);
        return 0;
}

int request_confirm_key(Request *req) {
        int r;

        if (req->rec->state != REQUEST_ISSUED || (!req->rec->key_sealed && req->rec->key_available))
                return -EBUSY;
        if (!req->rec->key_sealed)
                return 1;
        r = erase_key(req);
        if (r < 0) {
                log_error_errno(r, "Request %s: cannot erase its sealed key from %s: %m", req->rec->id,
                                store_path(req->manager->store));
                return -EIO;
        }
        log_audit(LOG_INFO, &(AuditRecord) { .request = req->rec->id, .uid = req->rec->owner,
                                             .decision = "key-confirmed", .ca = req->rec->ca },
                  "Request %s: its receiver confirmed the key; the sealed copy is erased.", req->rec->id);
        (void) request_commit(req);
        return 0;
}

/* The request leaves the journal (its key with it) and memory; -ENOENT (gone already) is
 * fine. The audit record says why. */
static int delete_and_free(Request *req, const char *decision, const char *why) {
        int r = store_request_delete(req->manager->store, req->rec->id);

        if (r < 0 && r != -ENOENT)
                return r;
        log_audit(LOG_INFO, &(AuditRecord) { .request = req->rec->id, .uid = req->rec->owner,
                                             .decision = decision, .ca = req->rec->ca },
                  "Request %s %s", req->rec->id, why);
        request_free(req);
        return 0;
}

int request_remove(Request *req) {
        if (!request_state_is_terminal(req->rec->state))
                return -EBUSY;
        return delete_and_free(req, "removed", "removed; its key (if any) erased.");
}

/* ---- housekeeping ---- */

int request_expire_key(Request *req, uint64_t now) {
        int r;

        /* Only a tracked certificate's key is kept (StopRenewal() erases it). */
        if (req->rec->renew && req->rec->state == REQUEST_ISSUED && req->rec->not_after != 0 && req->rec->not_after <= now)
                renewal_key_erase(req, "its certificate expired");

        if (req->rec->state != REQUEST_ISSUED || !(req->rec->key_available || req->rec->key_sealed) ||
            req->rec->not_after == 0 || req->rec->not_after > now)
                return 0;
        bool sealed = req->rec->key_sealed;
        r = erase_key(req);
        if (r < 0)
                return log_warning_errno(r, "Request %s: cannot erase its expired key: %m", req->rec->id);
        (void) request_commit(req);
        log_audit(LOG_INFO, &(AuditRecord) { .request = req->rec->id, .uid = req->rec->owner,
                                             .decision = "key-expired", .ca = req->rec->ca },
                  sealed ? "Request %s: its certificate expired before the receiver confirmed the sealed key; the "
                           "sealed copy is erased." :
                           "Request %s: its certificate expired before the key was taken; the key is erased.",
                  req->rec->id);
        return 1;
}

int request_forget(Request *req, uint64_t keep_usec) {
        char why[160];
        int r;

        snprintf(why, sizeof why, "(%s) forgotten %llu s after it ended (RetainFinished=); its key, if any, erased.",
                 request_state_to_string(req->rec->state), (unsigned long long) (keep_usec / 1000000ULL));
        r = delete_and_free(req, "expired", why);
        if (r < 0)
                return log_warning_errno(r, "Request %s: cannot forget it after RetainFinished=: %m", req->rec->id);
        return 0;
}
