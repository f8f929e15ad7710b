/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sodium.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <systemd/sd-daemon.h>
#include <time.h>
#include <unistd.h>

#include "caller.h"
#include "broker-error.h"
#include "config.h"
#include "crypto-work.h"
#include "engine.h"
#include "log.h"
#include "manager.h"
#include "memory-trim.h"
#include "metrics.h"
#include "trust-anchors.h"
#include "renewal.h"
#include "caller-uid-limit.h"
#include "secret-memory.h"
#include "basic.h"

/* ---- configuration files ---- */

typedef struct SourceList {
        CbConfigSource *items;
        size_t n;
} SourceList;

static void source_list_done(SourceList *l) {
        for (size_t i = 0; i < l->n; i++) {
                free((char *) l->items[i].path);
                free((char *) l->items[i].contents);
        }
        free(l->items);
        *l = (SourceList) {};
}

/* Sets *ret_message to "path: what" (NULL when out of memory) and returns error. */
static int config_file_error(int error, char **ret_message, const char *format, ...)
        __attribute__((format(printf, 3, 4)));
static int config_file_error(int error, char **ret_message, const char *format, ...) {
        va_list ap;

        va_start(ap, format);
        if (vasprintf(ret_message, format, ap) < 0)
                *ret_message = NULL;
        va_end(ap);
        return error;
}

static int read_config_file(const char *path, SourceList *l, char **ret_message) {
        _cleanup_close_ int fd = -EBADF;
        _cleanup_free_ char *buf = NULL, *p = NULL;
        struct stat st;
        size_t len = 0;

        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0) {
                int r = -errno;
                return config_file_error(r == -ENOENT ? -EINVAL : r, ret_message, "%s: cannot open: %s", path,
                                         strerror(-r));
        }
        if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
                return config_file_error(-EINVAL, ret_message, "%s: not a regular file", path);
        if ((uint64_t) st.st_size > CB_CONFIG_FILE_MAX)
                return config_file_error(-EINVAL, ret_message, "%s: larger than %u bytes", path,
                                         CB_CONFIG_FILE_MAX);
        buf = malloc((size_t) st.st_size + 1);
        if (!buf)
                return -ENOMEM;
        for (;;) {
                ssize_t n = read(fd, buf + len, (size_t) st.st_size + 1 - len);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        int r = -errno;
                        return config_file_error(r, ret_message, "%s: cannot read: %s", path, strerror(-r));
                }
                if (n == 0)
                        break;
                len += (size_t) n;
                if (len > (size_t) st.st_size)        /* grew while we read it */
                        return config_file_error(-EINVAL, ret_message, "%s: changed while being read", path);
        }

        p = strdup(path);
        if (!p)
                return -ENOMEM;
        CbConfigSource *items = realloc(l->items, (l->n + 1) * sizeof(*items));
        if (!items)
                return -ENOMEM;
        l->items = items;
        l->items[l->n++] = (CbConfigSource) { .path = TAKE_PTR(p), .contents = TAKE_PTR(buf), .length = len };
        return 0;
}

static int name_has_suffix(const char *name, const char *suffix) {
        size_t a = strlen(name), b = strlen(suffix);
        return a > b && strcmp(name + a - b, suffix) == 0;
}

/* What scandir() gave. */
typedef struct DirEntries {
        struct dirent **ents;
        int n;
} DirEntries;

static void dir_entries_done(DirEntries *d) {
        for (int i = 0; i < d->n; i++)
                free(d->ents[i]);
        free(d->ents);
}

/* Every DIR/SUB/\*SUFFIX, sorted by name; a missing directory is empty. */
static int read_config_dir(const char *dir, const char *sub, const char *suffix, SourceList *l,
                           char **ret_message) {
        _cleanup_(dir_entries_done) DirEntries d = {};
        char path[4096];
        int n, r;

        snprintf(path, sizeof path, "%s/%s", dir, sub);
        n = scandir(path, &d.ents, NULL, alphasort);
        if (n < 0) {
                if (errno == ENOENT)
                        return 0;
                r = -errno;
                return config_file_error(r, ret_message, "%s: cannot list: %s", path, strerror(-r));
        }
        d.n = n;
        for (int i = 0; i < d.n; i++) {
                char file[4096];

                if (d.ents[i]->d_name[0] == '.' || !name_has_suffix(d.ents[i]->d_name, suffix))
                        continue;
                snprintf(file, sizeof file, "%s/%s/%s", dir, sub, d.ents[i]->d_name);
                r = read_config_file(file, l, ret_message);
                if (r < 0)
                        return r;
        }
        return 0;
}

int manager_load_config(const char *config_dir, CbConfig **ret, char **ret_message) {
        _cleanup_(source_list_done) SourceList l = {};
        CbConfigError e = {};
        char path[4096];
        int r;

        *ret_message = NULL;
        snprintf(path, sizeof path, "%s/certbroker.conf", config_dir);
        r = read_config_file(path, &l, ret_message);
        if (r < 0)
                return r;
        r = read_config_dir(config_dir, "ca.d", ".conf", &l, ret_message);
        if (r < 0)
                return r;
        r = read_config_dir(config_dir, "policy.d", ".policy", &l, ret_message);
        if (r < 0)
                return r;

        r = cb_config_parse(l.items, l.n, ret, &e);
        if (r == -EINVAL || r == -E2BIG) {
                char buf[1200];
                *ret_message = strdup(cb_config_error_format(&e, buf, sizeof buf));
                return -EINVAL;
        }
        return r;
}

/* ---- requests and their indexes ---- */

/* Everything that looks a request up on a caller's behalf (its object path, Enroll's count and
 * token) goes through these, so the cost does not grow with the number of requests kept: a
 * hash table by id, one by owner and token (chained through the requests themselves), and per
 * owner a counter and a list. SipHash with a key drawn at start: a token a tenant chooses
 * cannot be made to collide. */

#define INDEX_BUCKETS_MIN 64U

typedef struct OwnerRequests {
        uid_t uid;
        unsigned count;
        Request *first, *last;
        struct OwnerRequests *next;     /* same bucket */
} OwnerRequests;

typedef struct RequestIndex {
        unsigned char key[crypto_shorthash_KEYBYTES];
        size_t n_buckets;               /* of each table: a power of two, at least n_requests */
        Request **by_id;
        Request **by_token;
        OwnerRequests **owners;
} RequestIndex;

static uint64_t index_hash(const RequestIndex *x, const char *s, uint64_t salt) {
        unsigned char h[crypto_shorthash_BYTES];
        uint64_t v;

        crypto_shorthash(h, (const unsigned char *) s, strlen(s), x->key);
        memcpy(&v, h, sizeof v);
        /* The owner spreads one token string over buckets per uid. */
        return v + salt * UINT64_C(0x9e3779b97f4a7c15);
}

static size_t id_bucket(const RequestIndex *x, const char *id) {
        return index_hash(x, id, 0) & (x->n_buckets - 1);
}

static size_t token_bucket(const RequestIndex *x, uid_t owner, const char *token) {
        return index_hash(x, token, (uint64_t) owner + 1) & (x->n_buckets - 1);
}

static size_t owner_bucket(const RequestIndex *x, uid_t owner) {
        uint64_t v = ((uint64_t) owner + 1) * UINT64_C(0x9e3779b97f4a7c15);
        return (v >> 32) & (x->n_buckets - 1);
}

static bool has_token(const Request *req) {
        return req->rec->token && *req->rec->token;
}

static OwnerRequests *owner_find(const RequestIndex *x, uid_t owner) {
        if (!x)
                return NULL;
        for (OwnerRequests *o = x->owners[owner_bucket(x, owner)]; o; o = o->next)
                if (o->uid == owner)
                        return o;
        return NULL;
}

static RequestIndex *request_index_free(RequestIndex *x) {
        if (!x)
                return NULL;
        for (size_t i = 0; i < x->n_buckets; i++)
                for (OwnerRequests *o = x->owners[i], *next; o; o = next) {
                        next = o->next;
                        free(o);
                }
        free(x->by_id);
        free(x->by_token);
        free(x->owners);
        free(x);
        return NULL;
}

DEFINE_POINTER_CLEANUP(RequestIndex, request_index_free)

static int request_index_new(RequestIndex **ret) {
        _cleanup_(request_index_freep) RequestIndex *x = calloc(1, sizeof(*x));

        if (!x)
                return -ENOMEM;
        crypto_shorthash_keygen(x->key);
        x->n_buckets = INDEX_BUCKETS_MIN;
        x->by_id = calloc(x->n_buckets, sizeof(Request *));
        x->by_token = calloc(x->n_buckets, sizeof(Request *));
        x->owners = calloc(x->n_buckets, sizeof(OwnerRequests *));
        if (!x->by_id || !x->by_token || !x->owners)
                return -ENOMEM;
        *ret = TAKE_PTR(x);
        return 0;
}

/* Twice as many buckets, everything moved (the owners' lists stay as they are). */
static int request_index_grow(RequestIndex *x) {
        size_t old_n = x->n_buckets, n = old_n * 2;
        _cleanup_free_ Request **by_id = calloc(n, sizeof(Request *)), **by_token = calloc(n, sizeof(Request *));
        _cleanup_free_ OwnerRequests **owners = calloc(n, sizeof(OwnerRequests *));

        if (!by_id || !by_token || !owners)
                return -ENOMEM;
        x->n_buckets = n;               /* the buckets below are of the new tables */
        for (size_t i = 0; i < old_n; i++) {
                for (Request *req = x->by_id[i], *next; req; req = next) {
                        size_t b = id_bucket(x, req->rec->id);
                        next = req->by_id_next;
                        req->by_id_next = by_id[b];
                        by_id[b] = req;
                }
                for (Request *req = x->by_token[i], *next; req; req = next) {
                        size_t b = token_bucket(x, req->rec->owner, req->rec->token);
                        next = req->by_token_next;
                        req->by_token_next = by_token[b];
                        by_token[b] = req;
                }
                for (OwnerRequests *o = x->owners[i], *next; o; o = next) {
                        size_t b = owner_bucket(x, o->uid);
                        next = o->next;
                        o->next = owners[b];
                        owners[b] = o;
                }
        }
        free(x->by_id);
        x->by_id = TAKE_PTR(by_id);
        free(x->by_token);
        x->by_token = TAKE_PTR(by_token);
        free(x->owners);
        x->owners = TAKE_PTR(owners);
        return 0;
}

static int request_index_add(RequestIndex *x, Request *req, size_t n_requests) {
        OwnerRequests *o;
        size_t b;

        if (n_requests > x->n_buckets)
                (void) request_index_grow(x);   /* else longer chains: slower, still right */
        o = owner_find(x, req->rec->owner);
        if (!o) {
                o = calloc(1, sizeof(*o));
                if (!o)
                        return -ENOMEM;
                o->uid = req->rec->owner;
                b = owner_bucket(x, o->uid);
                o->next = x->owners[b];
                x->owners[b] = o;
        }
        b = id_bucket(x, req->rec->id);
        req->by_id_next = x->by_id[b];
        x->by_id[b] = req;
        if (has_token(req)) {     /* no token: nothing looks it up by one (and one bucket would hold them all) */
                b = token_bucket(x, req->rec->owner, req->rec->token);
                req->by_token_next = x->by_token[b];
                x->by_token[b] = req;
        }
        req->owner_prev = o->last;
        req->owner_next = NULL;
        if (o->last)
                o->last->owner_next = req;
        else
                o->first = req;
        o->last = req;
        o->count++;
        return 0;
}

static void unlink_chain(Request **head, Request *req, size_t next_offset) {
        for (Request **p = head; *p; p = (Request **) ((char *) *p + next_offset))
                if (*p == req) {
                        *p = *(Request **) ((char *) req + next_offset);
                        return;
                }
}

static void request_index_remove(RequestIndex *x, Request *req) {
        OwnerRequests *o = owner_find(x, req->rec->owner);

        unlink_chain(&x->by_id[id_bucket(x, req->rec->id)], req, offsetof(Request, by_id_next));
        if (has_token(req))
                unlink_chain(&x->by_token[token_bucket(x, req->rec->owner, req->rec->token)], req,
                             offsetof(Request, by_token_next));
        req->by_id_next = req->by_token_next = NULL;
        if (!o)
                return;
        if (req->owner_prev)
                req->owner_prev->owner_next = req->owner_next;
        else if (o->first == req)
                o->first = req->owner_next;
        if (req->owner_next)
                req->owner_next->owner_prev = req->owner_prev;
        else if (o->last == req)
                o->last = req->owner_prev;
        req->owner_prev = req->owner_next = NULL;
        if (--o->count == 0) {
                for (OwnerRequests **p = &x->owners[owner_bucket(x, o->uid)]; *p; p = &(*p)->next)
                        if (*p == o) {
                                *p = o->next;
                                break;
                        }
                free(o);
        }
}

Request *manager_find_request(Manager *m, const char *id) {
        if (!m->index || !id)
                return NULL;
        for (Request *req = m->index->by_id[id_bucket(m->index, id)]; req; req = req->by_id_next)
                if (strcmp(req->rec->id, id) == 0)
                        return req;
        return NULL;
}

Request *manager_token_bucket(Manager *m, uid_t owner, const char *token) {
        if (!m->index || !token || !*token)
                return NULL;
        return m->index->by_token[token_bucket(m->index, owner, token)];
}

Request *manager_owned_requests(Manager *m, uid_t owner) {
        OwnerRequests *o = owner_find(m->index, owner);
        return o ? o->first : NULL;
}

unsigned manager_count_stored(Manager *m, uid_t uid) {
        OwnerRequests *o = owner_find(m->index, uid);
        return o ? o->count : 0;
}

/* req->rec is set: its id, owner and token are the keys. */
int manager_add_request(Manager *m, Request *req) {
        Request **a;
        int r;

        if (!m->index) {
                r = request_index_new(&m->index);
                if (r < 0)
                        return r;
        }
        a = realloc(m->requests, (m->n_requests + 1) * sizeof(*a));
        if (!a)
                return -ENOMEM;
        m->requests = a;
        r = request_index_add(m->index, req, m->n_requests + 1);
        if (r < 0)
                return r;
        m->requests[m->n_requests++] = req;
        req->manager = m;
        return 0;
}

void manager_drop_request(Manager *m, Request *req) {
        for (size_t i = m->n_requests; i > 0; i--)      /* from the end: shutdown frees the last first */
                if (m->requests[i - 1] == req) {
                        memmove(m->requests + i - 1, m->requests + i, (m->n_requests - i) * sizeof(*m->requests));
                        m->n_requests--;
                        request_index_remove(m->index, req);
                        return;
                }
}

/* ---- CAs ---- */

void manager_notify_ca_changed(CaState *ca) {
        trust_anchors_stamp(ca->manager, false);
        if (ca->manager->hooks && ca->manager->hooks->ca_changed)
                ca->manager->hooks->ca_changed(ca);
}

void manager_notify_credentials_changed(Manager *m) {
        if (m->hooks && m->hooks->credentials_changed)
                m->hooks->credentials_changed(m);
}

CaState *manager_find_ca_state(Manager *m, const char *name) {
        for (size_t i = 0; i < m->n_cas; i++)
                if (m->cas[i] && strcmp(m->cas[i]->name, name) == 0)   /* NULL: removed by a Reload */
                        return m->cas[i];
        return NULL;
}

/* ---- MaxRequests history ---- */

#define HISTORY_PRUNE_INTERVAL_USEC (3600ULL * 1000000ULL)

/* Hourly; more often when RetainFinished= is short, so it is kept to within a quarter. */
static uint64_t prune_interval(Manager *m) {
        uint64_t interval = m->config->retain_finished_usec / 4;

        if (interval < 15ULL * 1000000ULL)
                interval = 15ULL * 1000000ULL;
        return interval < HISTORY_PRUNE_INTERVAL_USEC ? interval : HISTORY_PRUNE_INTERVAL_USEC;
}

/* The enrollment history only needs to reach back over the longest MaxRequests window. */
static void manager_prune_history(Manager *m) {
        uint64_t window = 0, now = now_usec();
        int r;

        for (size_t i = 0; i < m->config->n_rules; i++)
                if (m->config->rules[i].max_requests_window_usec > window)
                        window = m->config->rules[i].max_requests_window_usec;
        r = store_history_prune(m->store, now > window ? now - window : 0);
        if (r < 0)
                log_warning_errno(r, "Cannot prune the enrollment history in %s: %m", store_path(m->store));
}

/* A private key nobody took is erased once its certificate has expired: nothing can use it
 * any more, and keeping it only keeps a secret around. */
static void manager_expire_keys(Manager *m) {
        uint64_t now = now_usec();

        for (size_t i = 0; i < m->n_requests; i++)
                (void) request_expire_key(m->requests[i], now);
}

/* ---- audit flood control ---- */

#define AUDIT_SWEEP_INTERVAL_USEC (60ULL * 1000000ULL)

static void audit_report_suppressed(uid_t uid, uint64_t suppressed, void *userdata) {
        log_audit(LOG_NOTICE, &(AuditRecord) { .uid = uid, .decision = "suppressed" },
                  "uid %u: %llu further denial and CheckAccess records were not logged (more than %u at once, "
                  "then one per %llu s)", (unsigned) uid, (unsigned long long) suppressed, MANAGER_AUDIT_BURST,
                  MANAGER_AUDIT_REFILL_USEC / 1000000ULL);
}

bool manager_audit_admit(Manager *m, uid_t uid) {
        uint64_t suppressed = 0;

        if (uid == 0 || !m->audit_limit)
                return true;
        if (!uid_limit_take(m->audit_limit, uid, monotonic_usec(), &suppressed, NULL))
                return false;
        if (suppressed > 0)
                audit_report_suppressed(uid, suppressed, m);
        return true;
}

static int on_audit_sweep(sd_event_source *s, uint64_t usec, void *userdata) {
        Manager *m = userdata;

        uid_limit_sweep(m->audit_limit, monotonic_usec(), audit_report_suppressed, m);
        (void) sd_event_source_set_time_relative(s, AUDIT_SWEEP_INTERVAL_USEC);
        return sd_event_source_set_enabled(s, SD_EVENT_ON);
}

/* RetainFinished=: a finished request is forgotten, and its key (if nobody took it) erased,
 * that long after it ended (its last change), so the journal and the bus hold only what is
 * still of use. */
static void manager_expire_finished(Manager *m) {
        uint64_t now = now_usec(), keep = m->config->retain_finished_usec;

        for (size_t i = 0; i < m->n_requests;) {
                Request *req = m->requests[i];
                if (!request_state_is_terminal(req->rec->state) || req->rec->updated > now ||
                    now - req->rec->updated < keep || renewal_keeps(m, req)) {
                        i++;
                        continue;
                }
                if (request_forget(req, keep) < 0)
                        i++;    /* else the next one moved to i */
        }
}

void manager_take_pool_key(Manager *m, const char *key_type, EVP_PKEY **ret_key, CbSecret **ret_pem) {
        KeyType kt = key_type_from_string(key_type);
        CbSecret *pem = NULL;
        EVP_PKEY *key = kt >= 0 ? key_pool_take_with_pem(m->pool, kt, &pem) : NULL;

        if (key && !pem && key_export_pkcs8_pem(key, &pem) < 0) {
                EVP_PKEY_free(key);
                key = NULL;
        }
        *ret_key = key;
        *ret_pem = pem;
}

static int on_prune_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        Manager *m = userdata;

        manager_prune_history(m);
        manager_expire_keys(m);
        manager_expire_finished(m);
        (void) sd_event_source_set_time_relative(s, prune_interval(m));
        return sd_event_source_set_enabled(s, SD_EVENT_ON);
}

/* ---- key pool ---- */

static int manager_apply_key_pool(Manager *m) {
        unsigned targets[_KEY_TYPE_MAX] = {};

        /* The configuration and the pool name key types alike ("rsa:2048"...). */
        for (size_t i = 0; i < m->config->n_key_pool; i++) {
                KeyType t = key_type_from_string(cb_key_type_to_string(m->config->key_pool[i].type));
                if (t < 0)
                        return -EINVAL;
                targets[t] = m->config->key_pool[i].count;
        }
        return key_pool_set_targets(m->pool, targets);
}

/* ---- signals and the loop ---- */

/* Reload and start-up: every request in progress is decided again, for the identity it was
 * decided for at Enroll (its stored snapshot), against the rules now in force. Limits
 * (MaxActive=, MaxRequests=) are not counted again: they bound new requests. One that the
 * rules no longer allow ends failed, with the decision's error and the rule named.
 *
 * Where the rules select callers by name, deciding needs NSS, which is asked off the loop: a
 * request whose owner's names are not known yet keeps its decision due (decision_due) and is
 * decided once NSS answers; when NSS fails, it stays as it is and is tried again with a
 * backoff (DECIDE_RETRY_MIN_USEC doubling to DECIDE_RETRY_MAX_USEC). Nothing is ended or
 * erased for want of an answer. */
#define DECIDE_RETRY_MIN_USEC (2ULL * 1000000ULL)
#define DECIDE_RETRY_MAX_USEC (120ULL * 1000000ULL)

static void manager_decide_due(Manager *m);

static void on_decide_nss(void *userdata) {
        Manager *m = userdata;

        m->decide_waiter = NULL;        /* freed by the cache before this runs */
        manager_decide_due(m);
}

static int on_decide_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        Manager *m = userdata;

        manager_decide_due(m);
        return 0;
}

/* 1 decided (allowed, or ended), 0 waits for NSS, negative errno NSS failed. */
static int manager_decide_again(Request *req, const char *when) {
        StoreRequest *rec = req->rec;
        CbDecision d = {};
        int r;

        r = request_decide_again(req, false, &d);
        if (r == -EINPROGRESS)
                return 0;
        if (r < 0)
                return r;       /* kept as it is, decided again later */
        if (!d.allowed) {
                BrokerError err = broker_error_from_decision(d.result);
                _cleanup_free_ char *msg = NULL;
                if (asprintf(&msg, "The policy in force since the %s no longer allows this request: %s",
                             when, d.reason ?: "denied") < 0)
                        msg = NULL;
                log_audit(LOG_NOTICE, &(AuditRecord) { .request = rec->id, .uid = rec->owner,
                                                       .rule = d.rule, .decision = "deny", .ca = rec->ca,
                                                       .error = broker_error_name(err) },
                          "Request %s of uid %u denied on %s: %s", rec->id, (unsigned) rec->owner, when,
                          d.reason ?: "");
                req->decision_due = req->start_when_decided = false;
                request_end(req, REQUEST_FAILED, err, NULL,
                            msg ?: "The policy no longer allows this request.");
        }
        cb_decision_done(&d);
        return 1;
}

static void manager_decide_due(Manager *m) {
        const char *when = m->decide_when ?: "reload";
        size_t waiting = 0, failed = 0;
        int first_error = 0;

        m->decide_timer = sd_event_source_disable_unref(m->decide_timer);
        /* request_end() may drop nothing from m->requests, but be safe against it shrinking. */
        for (size_t i = 0; i < m->n_requests; i++) {
                Request *req = m->requests[i];
                int r;

                if (!req->decision_due)
                        continue;
                if (request_state_is_terminal(req->rec->state)) {
                        req->decision_due = req->start_when_decided = false;
                        continue;
                }
                r = manager_decide_again(req, when);
                if (r == 0) {
                        waiting++;
                        continue;
                }
                if (r < 0) {
                        if (failed++ == 0)
                                first_error = r;
                        continue;
                }
                req->decision_due = false;
                if (req->start_when_decided && !request_state_is_terminal(req->rec->state)) {
                        req->start_when_decided = false;
                        (void) engine_request_start(req);
                }
        }
        if (waiting > 0 && m->nss && !m->decide_waiter &&
            nss_cache_wait(m->nss, on_decide_nss, m, &m->decide_waiter) >= 0)
                return;
        if (failed == 0 && waiting == 0) {
                m->decide_backoff = 0;
                return;
        }
        m->decide_backoff = !m->decide_backoff ? DECIDE_RETRY_MIN_USEC :
                            m->decide_backoff * 2 < DECIDE_RETRY_MAX_USEC ? m->decide_backoff * 2 :
                            DECIDE_RETRY_MAX_USEC;
        if (failed > 0)
                log_warning_errno(first_error, "%zu request(s) cannot be decided again after the %s: the names "
                                  "of their owners cannot be looked up through NSS (%m). They are kept as they "
                                  "are and tried again in %llu s.", failed, when,
                                  (unsigned long long) (m->decide_backoff / 1000000ULL));
        if (m->event)
                (void) sd_event_add_time_relative(m->event, &m->decide_timer, CLOCK_MONOTONIC, m->decide_backoff,
                                                  100000ULL, on_decide_timer, m);
}

static void manager_redecide_requests(Manager *m, const char *when) {
        m->decide_when = when;
        m->decide_backoff = 0;
        for (size_t i = 0; i < m->n_requests; i++)
                if (!request_state_is_terminal(m->requests[i]->rec->state))
                        m->requests[i]->decision_due = true;
        manager_decide_due(m);
}

int manager_reload(Manager *m, char **ret_message) {
        CbConfig *c = NULL, *old;
        int r;

        r = manager_load_config(m->config_dir, &c, ret_message);
        if (r < 0)
                return r;
        old = m->config;
        m->config = c;
        r = engine_config_changed(m);
        if (r < 0) {
                /* Keep the old configuration: all or nothing. */
                m->config = old;
                cb_config_free(c);
                (void) engine_config_changed(m);
                if (asprintf(ret_message, "cannot apply the new configuration: %s", strerror(-r)) < 0)
                        *ret_message = NULL;
                return r;
        }
        cb_config_free(old);
        r = manager_apply_key_pool(m);
        if (r < 0)
                log_warning_errno(r, "Cannot apply KeyPool= from the new configuration: %m");
        r = metrics_config_changed(m);
        if (r < 0)
                log_warning_errno(r, "Cannot apply MetricsTextfileDirectory= from the new configuration: %m");
        trust_anchors_stamp(m, false);
        log_info("Configuration reloaded from %s: %zu CA(s), %zu rule(s).",
                 m->config_dir, m->config->n_cas, m->config->n_rules);
        if (m->nss)
                nss_cache_flush(m->nss);        /* decided with the names NSS gives now */
        manager_redecide_requests(m, "reload");
        return 0;
}

static int on_sighup(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        _cleanup_free_ char *msg = NULL;
        Manager *m = userdata;
        int r;

        (void) sd_notify(0, "RELOADING=1");
        r = manager_reload(m, &msg);
        if (r < 0)
                log_error_errno(r, "Reload on SIGHUP failed, keeping the old configuration: %s",
                                msg ?: strerror(-r));
        (void) sd_notify(0, "READY=1");
        return 0;
}

static int on_sigterm(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        Manager *m = userdata;

        (void) sd_notify(0, "STOPPING=1");
        m->stopping = true;
        log_info("Stopping on signal %u; requests in flight resume at the next start.", si->ssi_signo);
        return sd_event_exit(m->event, 0);
}

/* What store_request_load_all() gave: the records not handed to a request yet. */
typedef struct LoadedRecords {
        StoreRequest **recs;
        size_t n;
} LoadedRecords;

static void loaded_records_done(LoadedRecords *l) {
        for (size_t i = 0; i < l->n; i++)
                store_request_free(l->recs[i]);
        free(l->recs);
}

static int manager_load_requests(Manager *m) {
        _cleanup_(loaded_records_done) LoadedRecords loaded = {};
        bool scrubbed = false;
        int r;

        r = store_request_load_all(m->store, &loaded.recs, &loaded.n);
        if (r < 0)
                return log_error_errno(r, "Cannot load the request journal %s: %m", store_path(m->store));

        for (size_t i = 0; i < loaded.n; i++) {
                r = request_add(m, loaded.recs[i], NULL);
                if (r < 0)
                        return log_error_errno(r, "Cannot add request %s from %s to the broker's index: %m",
                                               loaded.recs[i]->id, store_path(m->store));
                loaded.recs[i] = NULL;          /* the request's now */
        }
        if (loaded.n > 0)
                log_info("Loaded %zu request(s) from %s.", loaded.n, store_path(m->store));
        for (size_t i = 0; i < m->n_requests; i++)
                if (request_scrub_csr(m->requests[i]) > 0)
                        scrubbed = true;
        if (scrubbed)
                /* Old pages into the database (secure_delete zeroed what was overwritten), the
                 * WAL truncated: the challenges are gone from the files too. */
                store_checkpoint(m->store);
        return 0;
}

/* An erase (a key, a request) committed without fsync: the journal's worker makes it durable
 * and truncates the WAL, so the erased ciphertext leaves no frame behind, off the loop. Without
 * the worker (stopping) the loop does both itself. */
static void on_store_erased(void *userdata) {
        Manager *m = userdata;

        if (m->journal_sync)
                journal_sync_request_checkpoint(m->journal_sync);
        else
                store_checkpoint(m->store);
}

/* Signals: SIGTERM and SIGINT stop the broker, SIGHUP reloads its configuration. */
static int manager_watch_signals(Manager *m) {
        static const struct {
                int signo;
                const char *name;
                sd_event_signal_handler_t handler;
        } signals[] = {
                { SIGTERM, "SIGTERM", on_sigterm },
                { SIGINT, "SIGINT", on_sigterm },
                { SIGHUP, "SIGHUP", on_sighup },
        };
        sigset_t ss;
        int r;

        sigemptyset(&ss);
        for (size_t i = 0; i < ELEMENTSOF(signals); i++)
                sigaddset(&ss, signals[i].signo);
        sigprocmask(SIG_BLOCK, &ss, NULL);
        for (size_t i = 0; i < ELEMENTSOF(signals); i++) {
                r = sd_event_add_signal(m->event, NULL, signals[i].signo, signals[i].handler, m);
                if (r < 0)
                        return log_error_errno(r, "Cannot handle %s: %m", signals[i].name);
        }
        return 0;
}

/* The key pool: its targets (KeyPool=), refilled on a worker thread at idle priority. */
static int manager_setup_key_pool(Manager *m) {
        KeyPoolRefillPriority prio;
        int prio_error = 0, r;

        r = key_pool_new(&m->pool);
        if (r < 0)
                return log_error_errno(r, "Cannot create the key pool: %m");
        prio = key_pool_refill_priority(m->pool, &prio_error);
        if (prio != KEY_POOL_REFILL_IDLE)
                /* certbrokerd.service's SystemCallFilter=~@resources refuses it (a drop-in with
                 * SystemCallFilter=sched_setscheduler setpriority allows it: README). */
                log_info("Key pool refill runs at %s priority, not SCHED_IDLE: %s.",
                         key_pool_refill_priority_to_string(prio), strerror(prio_error > 0 ? prio_error : -prio_error));
        r = manager_apply_key_pool(m);
        if (r < 0)
                return log_error_errno(r, "Cannot apply KeyPool=: %m");
        r = key_pool_attach_event(m->pool, m->event, 0);
        if (r < 0)
                return log_error_errno(r, "Cannot attach the key pool to the event loop: %m");
        return 0;
}

int manager_new(const char *config_dir, const char *state_dir, Manager **ret) {
        _cleanup_(manager_freep) Manager *m = NULL;
        _cleanup_free_ char *msg = NULL;
        int r;

        r = secret_init();
        if (r < 0)
                return log_error_errno(r, "Cannot initialise libsodium.");

        m = calloc(1, sizeof(*m));
        if (!m)
                return log_error_errno(ENOMEM, "Out of memory.");
        m->config_dir = strdup(config_dir);
        m->state_dir_override = state_dir ? strdup(state_dir) : NULL;
        if (!m->config_dir || (state_dir && !m->state_dir_override))
                return log_error_errno(ENOMEM, "Out of memory.");

        r = manager_load_config(m->config_dir, &m->config, &msg);
        if (r < 0) {
                log_error_errno(r, "Refusing to start: invalid configuration: %s", msg ?: strerror(-r));
                (void) sd_notifyf(0, "STATUS=Invalid configuration, fix it and start again: %s",
                                  msg ?: strerror(-r));
                return MANAGER_ERR_CONFIG;
        }

        r = store_open(m->state_dir_override ?: m->config->state_directory,
                       getenv("CREDENTIALS_DIRECTORY"), &m->store, &msg);
        if (r < 0) {
                log_error_errno(r, "Refusing to start: %s", msg ?: strerror(-r));
                (void) sd_notifyf(0, "STATUS=Refusing to start: %s", msg ?: strerror(-r));
                return r;
        }

        r = sd_event_default(&m->event);
        if (r < 0)
                return log_error_errno(r, "Cannot start: cannot get the event loop: %m");
        r = memory_trim_new(m->event, MEMORY_TRIM_QUIET_USEC, MEMORY_TRIM_MAX_USEC, NULL, &m->trim);
        if (r < 0)
                return log_error_errno(r, "Cannot start: cannot set up the memory trim timer: %m");

        store_set_group_commit(m->store, true);
        r = journal_sync_new(m->event, store_path(m->store), &m->journal_sync);
        if (r < 0)
                return log_error_errno(r, "Cannot start: cannot start the fsync worker of %s: %m",
                                       store_path(m->store));
        store_set_erase_hook(m->store, on_store_erased, m);

        r = manager_watch_signals(m);
        if (r < 0)
                return r;

        /* The engine first: krb5-creds sets KRB5_CONFIG and friends, which must happen before
         * any other thread (the key pool's worker) exists. */
        r = engine_new(m);
        if (r < 0)
                return log_error_errno(r, "Cannot start: cannot set up the request engine: %m");
        r = engine_config_changed(m);
        if (r < 0)
                return log_error_errno(r, "Cannot start: cannot apply the configuration's CAs and [Kerberos] to the "
                                       "request engine: %m");
        r = metrics_new(m);
        if (r < 0)
                return log_error_errno(r, "Cannot start: cannot set up the metrics: %m");
        r = metrics_config_changed(m);
        if (r < 0)
                return log_error_errno(r, "Cannot start: cannot apply MetricsTextfileDirectory=: %m");

        r = manager_setup_key_pool(m);
        if (r < 0)
                return r;
        r = nss_cache_new(m->event, caller_nss_lookup, &m->nss);
        if (r < 0)
                return log_error_errno(r, "Cannot start: cannot start the NSS look-up workers: %m");
        r = crypto_work_new(m->event, &m->crypto);
        if (r < 0)
                return log_error_errno(r, "Cannot start: cannot start the SCEP crypto workers: %m");
        caller_set_nss_cache(m->nss);

        r = manager_load_requests(m);
        if (r < 0)
                return r;
        manager_prune_history(m);
        manager_expire_keys(m);
        manager_expire_finished(m);
        r = sd_event_add_time_relative(m->event, NULL, CLOCK_MONOTONIC, prune_interval(m),
                                       60ULL * 1000000ULL, on_prune_timer, m);
        if (r < 0)
                return log_error_errno(r, "Cannot start: cannot schedule the housekeeping timer: %m");

        /* The table forgets a uid once its bucket is full again; 65536 uids at once is more
         * than any host has tenants, and beyond it records are logged, never lost. */
        r = uid_limit_new(MANAGER_AUDIT_BURST, MANAGER_AUDIT_REFILL_USEC, 65536, true, &m->audit_limit);
        if (r < 0)
                return log_error_errno(r, "Cannot start: cannot set up the audit records' flood control: %m");
        r = sd_event_add_time_relative(m->event, NULL, CLOCK_MONOTONIC, AUDIT_SWEEP_INTERVAL_USEC,
                                       1000000ULL, on_audit_sweep, m);
        if (r < 0)
                return log_error_errno(r, "Cannot start: cannot schedule the audit flood control's sweep: %m");

        *ret = TAKE_PTR(m);
        return 0;
}

void manager_start(Manager *m) {
        trust_anchors_stamp(m, true);
        /* The certificates of the CAs whose certificates go into the trust store, fetched now:
         * certbroker-trust.path hears of them (a renewed CA) without waiting for an enrollment. */
        for (size_t i = 0; i < m->n_cas; i++) {
                const CbCa *c = cb_config_find_ca(m->config, m->cas[i]->name);
                if (c && c->install_trust)
                        (void) engine_ca_refresh(m, m->cas[i]);
        }
        /* Resume what was in flight before the last stop: once decided against the rules in
         * force (those waiting for NSS are resumed by manager_decide_due()). */
        manager_redecide_requests(m, "start-up");
        for (size_t i = 0; i < m->n_requests; i++) {
                Request *req = m->requests[i];
                if (request_state_is_terminal(req->rec->state))
                        continue;
                if (req->decision_due)
                        req->start_when_decided = true;
                else
                        (void) engine_request_start(req);
        }
        /* Renewals due while the broker was stopped are made now (the list may grow). */
        for (size_t i = 0, n = m->n_requests; i < n; i++)
                renewal_schedule(m->requests[i]);
}

int manager_run(Manager *m) {
        int r;

        log_info("certbrokerd %s ready on %s: realm %s, suffix %s, %zu CA(s), %zu rule(s).",
                 CERTBROKER_VERSION, CB_BUS_NAME, m->config->realm, m->config->permitted_suffix,
                 m->config->n_cas, m->config->n_rules);
        (void) sd_notify(0, "READY=1\nSTATUS=Ready.");
        r = sd_event_loop(m->event);
        if (r < 0)
                return log_error_errno(r, "Event loop failed: %m");
        return r;       /* the status the loop was ended with: 0 on SIGTERM */
}

Manager *manager_free(Manager *m) {
        if (!m)
                return NULL;
        m->stopping = true;
        /* Last journal fsync first: Enroll calls waiting for it get their replies before the
         * bus closes. */
        m->journal_sync = journal_sync_free(m->journal_sync);
        if (m->recommit) {
                (void) request_recommit_all(m);         /* a last try */
                m->recommit = sd_event_source_disable_unref(m->recommit);
        }
        if (m->audit_limit) {
                uid_limit_sweep(m->audit_limit, UINT64_MAX, audit_report_suppressed, m);
                m->audit_limit = uid_limit_free(m->audit_limit);
        }
        if (m->hooks && m->hooks->closing)
                m->hooks->closing(m);           /* the bus goes */
        m->decide_waiter = (nss_waiter_free(m->decide_waiter), NULL);
        m->decide_timer = sd_event_source_disable_unref(m->decide_timer);
        while (m->n_requests > 0)
                request_free(m->requests[m->n_requests - 1]);
        free(m->requests);
        m->index = request_index_free(m->index);
        engine_free(m);
        metrics_free(m);
        m->crypto = crypto_work_free(m->crypto);
        key_pool_free(m->pool);
        caller_set_nss_cache(NULL);
        m->nss = nss_cache_free(m->nss);
        store_close(m->store);
        cb_config_free(m->config);
        m->trim = memory_trim_free(m->trim);
        sd_event_unref(m->event);
        free(m->config_dir);
        free(m->state_dir_override);
        free(m);
        return NULL;
}

void manager_test_kill_point(const char *point) {
        const char *e = getenv("CERTBROKER_TEST_KILL_AT");

        if (e && strcmp(e, point) == 0) {
                log_notice("CERTBROKER_TEST_KILL_AT=%s: killing myself.", point);
                (void) raise(SIGKILL);
        }
}
