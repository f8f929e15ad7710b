/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "basic.h"
#include "broker-error.h"
#include "caller.h"
#include "cb-policy.h"
#include "engine.h"
#include "log.h"
#include "renewal.h"

#define USEC_PER_DAY (86400ULL * 1000000ULL)
#define RENEW_RETRY_USEC (60ULL * 1000000ULL)     /* a successor that could not be recorded: at most */
#define RENEW_RETRY_MIN_USEC (5ULL * 1000000ULL)  /* ... and at first */

enum {
        WARNED_7D = 1,
        WARNED_1D = 2,
        WARNED_EXPIRED = 4,
};

static bool empty(const char *s) {
        return !s || !*s;
}

static uint64_t random_below(uint64_t n) {
        uint64_t x;

        if (n == 0)
                return 0;
        randombytes_buf(&x, sizeof x);
        return x % n;
}

void renewal_on_issued(Request *req, const CbCa *ca) {
        StoreRequest *rec = req->rec;
        uint64_t lifetime, lead, jitter;
        CbLead fallback = { .percent = true, .value = 33 };

        if (!rec->renew || !ca || rec->not_after == 0)
                return;
        lifetime = rec->not_after > rec->not_before ? rec->not_after - rec->not_before : 0;
        lead = cb_lead_usec(&ca->renew_before, lifetime);
        if (lead >= lifetime) {
                log_warning("Request %s: RenewBefore= of CA %s is at least the certificate's lifetime (%llu s); "
                            "renewing at 33%% of it instead.", rec->id, ca->name,
                            (unsigned long long) (lifetime / 1000000ULL));
                lead = cb_lead_usec(&fallback, lifetime);
        }
        jitter = cb_lead_usec(&ca->renew_jitter, lifetime);
        if (lead + jitter > lifetime)
                jitter = lifetime - lead;
        /* Fixed now and stored: a fleet issued in the same second spreads over the jitter. */
        rec->renew_at = rec->not_after - lead - random_below(jitter + 1);
        if (rec->renew_at == 0)
                rec->renew_at = 1;
}

/* The predecessor or successor named by id (empty: none), if it is still kept. */
static Request *find_linked(Manager *m, const char *id) {
        return !empty(id) ? manager_find_request(m, id) : NULL;
}

void renewal_key_on_issued(Request *req, const CbCa *ca) {
        StoreRequest *rec = req->rec;
        Request *pred = find_linked(req->manager, rec->predecessor);
        int r;

        /* The successor is issued: the predecessor's key has served its only purpose. */
        if (pred)
                renewal_key_erase(pred, "its successor is issued");
        if (!rec->renew || !ca || ca->renewal == CB_RENEWAL_REENROLL)
                return;
        r = store_renewal_key_keep(req->manager->store, rec->id);
        if (r < 0) {
                log_warning_errno(r, "Request %s: cannot keep its key for the RenewalReq of its successor "
                                  "(Renewal=%s); the successor enrolls with a challenge: %m", rec->id,
                                  cb_renewal_mode_to_string(ca->renewal));
                return;
        }
        log_audit(LOG_INFO, &(AuditRecord) { .request = rec->id, .uid = rec->owner,
                                             .decision = "key-kept-for-renewal", .ca = rec->ca },
                  "Request %s: its key is kept (encrypted) until its successor is issued, to sign that "
                  "successor's RenewalReq (Renewal=%s); TakeKey still hands it out once.", rec->id,
                  cb_renewal_mode_to_string(ca->renewal));
}

void renewal_key_erase(Request *req, const char *why) {
        int r = store_renewal_key_erase(req->manager->store, req->rec->id);

        if (r < 0)
                log_warning_errno(r, "Request %s: cannot erase the key kept for its renewal: %m", req->rec->id);
        else if (r > 0)
                log_audit(LOG_INFO, &(AuditRecord) { .request = req->rec->id, .uid = req->rec->owner,
                                                     .decision = "renewal-key-erased", .ca = req->rec->ca },
                          "Request %s: the key kept for its renewal is erased: %s.", req->rec->id, why);
}

static bool successor_issued(Request *req) {
        Request *s = find_linked(req->manager, req->rec->successor);
        return s && s->rec->state == REQUEST_ISSUED;
}

/* A tracked certificate whose successor is not issued: warn once at each threshold. */
static void check_warnings(Request *req, uint64_t now) {
        StoreRequest *rec = req->rec;
        static const struct { uint32_t bit; uint64_t before; const char *what; } t[] = {
                { WARNED_EXPIRED, 0, "has expired" },
                { WARNED_1D, USEC_PER_DAY, "expires within a day" },
                { WARNED_7D, 7 * USEC_PER_DAY, "expires within 7 days" },
        };
        uint32_t before = rec->renew_warned;

        /* Only once the renewal is due: a short-lived certificate is not late before RenewAt. */
        if (!rec->renew || rec->state != REQUEST_ISSUED || rec->not_after == 0 || now < rec->renew_at ||
            successor_issued(req))
                return;
        for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
                if (now + t[i].before < rec->not_after || (rec->renew_warned & t[i].bit))
                        continue;
                /* The most urgent threshold passed counts for the ones before it too. */
                for (size_t j = i; j < sizeof t / sizeof t[0]; j++)
                        rec->renew_warned |= t[j].bit;
                Request *s = find_linked(req->manager, rec->successor);
                log_audit(LOG_WARNING, &(AuditRecord) { .request = rec->id, .uid = rec->owner,
                                                        .decision = "expiry-warning", .ca = rec->ca,
                                                        .error = s ? s->rec->error : NULL },
                          "Request %s: the certificate for %s %s and is not renewed yet: %s%s%s", rec->id,
                          rec->names && rec->names[0] ? rec->names[0] : rec->subject, t[i].what,
                          s ? "its successor " : "no successor yet",
                          s ? s->rec->id : "", s && s->rec->error_message && *s->rec->error_message ?
                          (s->rec->state == REQUEST_FAILED ? " failed" : " is still trying") : "");
                break;
        }
        if (rec->renew_warned != before)
                (void) request_commit(req);
}

static int make_successor(Request *pred);

static int on_renew_timer(sd_event_source *s, uint64_t usec, void *userdata);

/* The owner's groups or names were asked of NSS: made once it has answered. */
static void on_renew_nss(void *userdata) {
        Request *req = userdata;

        req->renew_nss_waiter = NULL;     /* freed by the cache before this runs */
        (void) on_renew_timer(NULL, 0, req);
}

static int on_renew_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        Request *req = userdata;
        uint64_t now = now_usec();

        req->renew_timer = sd_event_source_disable_unref(req->renew_timer);
        if (req->rec->renew && req->rec->renew_at != 0 && req->rec->renew_at <= now && empty(req->rec->successor) &&
            req->rec->state == REQUEST_ISSUED && !req->manager->stopping) {
                int r;

                manager_test_kill_point("renewal-before");
                r = make_successor(req);
                if (r == -EINPROGRESS && req->manager->nss && !req->renew_nss_waiter &&
                    nss_cache_wait(req->manager->nss, on_renew_nss, req, &req->renew_nss_waiter) >= 0)
                        return 0;       /* on_renew_nss() makes it */
                if (r < 0) {
                        /* Not recorded (disk full, NSS failing, ...): again after a backoff from
                         * RENEW_RETRY_MIN_USEC doubling to RENEW_RETRY_USEC, jittered. */
                        req->renew_retry_usec = req->renew_retry_usec == 0 ? RENEW_RETRY_MIN_USEC :
                                              req->renew_retry_usec * 2 < RENEW_RETRY_USEC ? req->renew_retry_usec * 2 :
                                              RENEW_RETRY_USEC;
                        uint64_t at = now + req->renew_retry_usec + random_below(req->renew_retry_usec / 2);
                        (void) sd_event_add_time(req->manager->event, &req->renew_timer, CLOCK_REALTIME, at,
                                                 1000000ULL, on_renew_timer, req);
                        return 0;
                }
                req->renew_retry_usec = 0;
        }
        check_warnings(req, now);
        renewal_schedule(req);
        return 0;
}

void renewal_schedule(Request *req) {
        StoreRequest *rec = req->rec;
        uint64_t next = UINT64_MAX, now = now_usec();
        int r;

        req->renew_timer = sd_event_source_disable_unref(req->renew_timer);
        if (!rec->renew || rec->state != REQUEST_ISSUED || req->manager->stopping || !req->manager->event)
                return;
        if (rec->renew_at != 0 && empty(rec->successor))
                next = rec->renew_at;
        if (rec->not_after != 0 && !successor_issued(req)) {
                const uint64_t th[] = { 7 * USEC_PER_DAY, USEC_PER_DAY, 0 };
                const uint32_t bit[] = { WARNED_7D, WARNED_1D, WARNED_EXPIRED };
                for (size_t i = 0; i < 3; i++) {
                        uint64_t at = rec->not_after > th[i] ? rec->not_after - th[i] : 0;
                        if (at < rec->renew_at)
                                at = rec->renew_at;     /* not late before it is due */
                        if (!(rec->renew_warned & bit[i]) && at < next)
                                next = at;
                }
        }
        if (next == UINT64_MAX)
                return;
        if (next < now)
                next = now;
        r = sd_event_add_time(req->manager->event, &req->renew_timer, CLOCK_REALTIME, next, 1000000ULL,
                              on_renew_timer, req);
        if (r < 0)
                log_error_errno(r, "Request %s: cannot schedule its renewal: %m", rec->id);
}

void renewal_successor_changed(Request *successor) {
        Request *pred = find_linked(successor->manager, successor->rec->predecessor);

        if (pred)
                renewal_schedule(pred);
}

static char **strv_copy(char **v) {
        size_t n = 0;
        char **c;

        while (v && v[n])
                n++;
        c = calloc(n + 1, sizeof(char *));
        for (size_t i = 0; c && i < n; i++)
                if (!(c[i] = strdup(v[i]))) {
                        for (size_t j = 0; j < i; j++)
                                free(c[j]);
                        free(c);
                        return NULL;
                }
        return c;
}

static int make_successor(Request *pred) {
        _cleanup_(store_request_freep) StoreRequest *rec = NULL;
        _cleanup_(cb_decision_done) CbDecision d = {};
        StoreRequest *p = pred->rec;
        Request *req = NULL;
        BrokerError err = BROKER_ERROR_NONE;
        char msg[2048];
        int r;

        /* The policy for the owner now: uid, groups from NSS, unit and label of the chain. Limits
         * (MaxRequests=, MaxActive=) bound new demand; a renewal replaces a certificate. */
        r = request_decide_again(pred, true, &d);
        if (r == -EINPROGRESS)
                return r;       /* asked: made once NSS has answered */
        if (r < 0)
                return log_error_errno(r, "Request %s: cannot resolve its owner %u for the renewal: %m", p->id,
                                       (unsigned) p->owner);

        rec = calloc(1, sizeof(*rec));
        if (!rec)
                return log_error_errno(ENOMEM, "Request %s: cannot make the record of its successor: %m", p->id);
        rec->owner = p->owner;
        rec->renew = true;
        rec->ca = strdup(p->ca ?: "");
        rec->label = strdup(p->label ?: "");
        rec->subject = strdup(p->subject ?: "");
        rec->names = strv_copy(p->names);
        rec->key = strdup(p->key ?: "");
        rec->usage = strdup(p->usage ?: "");
        rec->caller = strdup(p->caller ?: "");
        rec->predecessor = strdup(p->id);
        rec->token = strdup(p->token ?: "");    /* Enroll with it finds the chain */
        if (!rec->ca || !rec->label || !rec->subject || !rec->names || !rec->key || !rec->usage || !rec->caller ||
            !rec->predecessor || !rec->token)
                return log_error_errno(ENOMEM, "Request %s: cannot copy its parameters to its successor: %m",
                                       p->id);
        rec->created = rec->updated = now_usec();
        if (d.allowed)
                rec->state = REQUEST_QUEUED;    /* a key from the pool goes in with it */
        else {
                /* The chain explains itself: a successor that failed, naming the rule. */
                rec->state = REQUEST_FAILED;
                err = broker_error_from_decision(d.result);
                rec->error = strdup(broker_error_name(err));
                snprintf(msg, sizeof msg, "Renewal of request %s: the policy no longer allows it: %s", p->id,
                         d.reason ?: "denied");
                rec->error_message = strdup(msg);
        }
        r = request_add_successor(pred, TAKE_PTR(rec), &req);
        if (r < 0)
                return r;       /* request_add_successor() said why */
        manager_test_kill_point("renewal-inserted");
        log_audit(d.allowed ? LOG_INFO : LOG_WARNING,
                  &(AuditRecord) { .request = req->rec->id, .uid = p->owner, .rule = d.rule,
                                   .decision = d.allowed ? "renew" : "deny", .ca = p->ca,
                                   .error = d.allowed ? NULL : broker_error_name(err) },
                  "Request %s renews request %s%s%s", req->rec->id, p->id, d.allowed ? ": " : " and failed: ",
                  d.reason ?: "");
        if (d.allowed)
                (void) engine_request_start(req);
        else
                request_notify(req);    /* recorded failed with the insert: only announced */
        manager_test_kill_point("renewal-started");
        return 0;
}

int renewal_stop(Request *req) {
        if (!req->rec->renew && req->rec->renew_at == 0)
                return 0;
        req->rec->renew = false;
        req->rec->renew_at = 0;
        req->renew_timer = sd_event_source_disable_unref(req->renew_timer);
        renewal_key_erase(req, "its renewal was stopped");
        log_audit(LOG_INFO, &(AuditRecord) { .request = req->rec->id, .uid = req->rec->owner,
                                             .decision = "renewal-stopped", .ca = req->rec->ca },
                  "Request %s: renewal stopped by StopRenewal().", req->rec->id);
        return request_commit(req);
}

bool renewal_keeps(Manager *m, Request *req) {
        Request *s;

        if (!req->rec->renew || req->rec->state != REQUEST_ISSUED)
                return false;
        s = find_linked(m, req->rec->successor);
        /* The end of the chain, or one whose successor has not made it. */
        return !s || s->rec->state != REQUEST_ISSUED;
}
