/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* org.certbroker.Broker1.Manager: Enroll, CheckAccess, ListRequests, ListCAs, Reload. */
#include <stdio.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "log-audit-text.h"
#include "basic.h"
#include "bus-pending.h"
#include "bus-polkit.h"
#include "bus-text.h"
#include "bus-util.h"
#include "caller.h"
#include "cb-policy.h"
#include "config.h"
#include "engine.h"
#include "log.h"
#include "manager.h"
#include "memory-trim.h"
#include "metrics.h"

/* Options of Enroll/CheckAccess: a{sv} with string values only; unknown names and other
 * types are InvalidArgument. The strings point into the message. */
typedef struct EnrollOptions {
        const char *key;
        const char *usage;
        const char *label;
        const char *token;      /* idempotency key of Enroll; checked by token_check() */
        const char *identity;   /* "self": Identity=self (the policy checks the value) */
        int renew;              /* -1: not given */
} EnrollOptions;

/* Enroll's option token: 1 to ENROLL_TOKEN_MAX bytes of printable ASCII without spaces. */
#define ENROLL_TOKEN_MAX 128U
static int token_check(const char *t, sd_bus_error *error) {
        size_t n = strlen(t);

        if (n == 0 || n > ENROLL_TOKEN_MAX)
                return bus_error_set(error, BROKER_ERROR_INVALID_ARGUMENT,
                                     "Option 'token' is %zu bytes: it must be 1 to %u bytes.", n, ENROLL_TOKEN_MAX);
        for (size_t i = 0; i < n; i++)
                if ((unsigned char) t[i] <= 0x20 || (unsigned char) t[i] >= 0x7f)
                        return bus_error_set(error, BROKER_ERROR_INVALID_ARGUMENT,
                                             "Option 'token' has byte 0x%02x at offset %zu: only printable ASCII "
                                             "without spaces is allowed.", (unsigned char) t[i], i);
        return 0;
}

static int read_options(sd_bus_message *m, EnrollOptions *ret, sd_bus_error *error) {
        EnrollOptions o = { .renew = -1 };
        int r;

        r = sd_bus_message_enter_container(m, 'a', "{sv}");
        if (r < 0)
                return r;
        for (;;) {
                const char *name, *contents, *value;

                r = bus_option_next(m, &name, &contents);
                if (r < 0)
                        return r;
                if (r == 0)
                        break;
                if (!cb_enroll_option_is_known(name)) {
                        char echo[BUS_TEXT_ECHO_SIZE(64)];
                        return bus_error_set(error, BROKER_ERROR_INVALID_ARGUMENT,
                                             "Unknown option '%s': the options are key, usage, label, renew, "
                                             "token and identity.", bus_text_echo(name, 64, echo, sizeof echo));
                }
                if (strcmp(name, "renew") == 0) {
                        int b;
                        if (!contents || strcmp(contents, "b") != 0)
                                return bus_error_set(error, BROKER_ERROR_INVALID_ARGUMENT,
                                                         "Option 'renew' must be a boolean (variant type 'b'), not '%s'.",
                                                         contents ?: "?");
                        if (o.renew >= 0)
                                return bus_error_set(error, BROKER_ERROR_INVALID_ARGUMENT, "Option 'renew' given twice.");
                        r = sd_bus_message_read(m, "v", "b", &b);
                        if (r < 0)
                                return r;
                        o.renew = !!b;
                        r = sd_bus_message_exit_container(m);
                        if (r < 0)
                                return r;
                        continue;
                }
                if (!contents || strcmp(contents, "s") != 0)
                        return bus_error_set(error, BROKER_ERROR_INVALID_ARGUMENT,
                                                 "Option '%s' must be a string (variant type 's'), not '%s'.",
                                                 name, contents ?: "?");
                r = sd_bus_message_read(m, "v", "s", &value);
                if (r < 0)
                        return r;
                const char **slot = strcmp(name, "key") == 0 ? &o.key :
                                    strcmp(name, "usage") == 0 ? &o.usage :
                                    strcmp(name, "identity") == 0 ? &o.identity :
                                    strcmp(name, "token") == 0 ? &o.token : &o.label;
                if (*slot)
                        return bus_error_set(error, BROKER_ERROR_INVALID_ARGUMENT,
                                                 "Option '%s' given twice.", name);
                if (slot == &o.token && (r = token_check(value, error)) < 0)
                        return r;
                *slot = value;
                r = sd_bus_message_exit_container(m);
                if (r < 0)
                        return r;
        }
        r = sd_bus_message_exit_container(m);
        if (r < 0)
                return r;
        *ret = o;
        return 0;
}

typedef struct PolicyCall {
        Caller caller;
        CbCaller cb_caller;
        char **names;
        CbRequestSpec spec;
        const char *ca;
        const char *subject;
        bool renew;                     /* option renew */
        const char *token;              /* option token, NULL when not given */
} PolicyCall;

static void policy_call_done(PolicyCall *p) {
        caller_done(&p->caller);
        free(p->names);         /* the strings point into the message */
}

static int count_since(uid_t uid, uint64_t since_usec, uint64_t *ret, void *userdata) {
        Manager *m = userdata;
        unsigned n;
        int r = store_count_created_since(m->store, uid, since_usec, &n);
        if (r < 0)
                return r;
        *ret = n;
        return 0;
}

static int count_active(uid_t uid, uint64_t *ret, void *userdata) {
        Manager *m = userdata;
        unsigned n;
        int r = store_count_active(m->store, uid, &n);
        if (r < 0)
                return r;
        *ret = n;
        return 0;
}

/* Reads (s ca, s subject, as names, a{sv} options), identifies the caller, decides: 0. When
 * the caller's names are still being asked of NSS, the call is dispatched again once it has
 * answered (bus_defer_for_nss()): 1, nothing decided. */
/* extra: what to resolve beyond what the rules need (Enroll stores the unit with the request,
 * for decisions against later rules). */
static int policy_call_decide(Manager *m, sd_bus_message *msg, CallerNames extra, PolicyCall *p, CbDecision *ret,
                              sd_bus_error *error) {
        EnrollOptions o = {};
        size_t n = 0, cap = 0;
        int r;

        r = sd_bus_message_read(msg, "ss", &p->ca, &p->subject);
        if (r < 0)
                return r;
        r = sd_bus_message_enter_container(msg, 'a', "s");
        if (r < 0)
                return r;
        for (;;) {
                const char *s;
                r = sd_bus_message_read(msg, "s", &s);
                if (r < 0)
                        return r;
                if (r == 0)
                        break;
                if (n >= CB_REQUEST_NAMES_MAX)
                        return bus_error_set(error, BROKER_ERROR_INVALID_ARGUMENT,
                                                 "Too many names: at most %u per request.", CB_REQUEST_NAMES_MAX);
                if (n + 1 >= cap) {
                        cap = cap ? cap * 2 : 8;
                        char **a = realloc(p->names, cap * sizeof(char *));
                        if (!a)
                                return -ENOMEM;
                        p->names = a;
                }
                p->names[n++] = (char *) s;
        }
        r = sd_bus_message_exit_container(msg);
        if (r < 0)
                return r;
        r = read_options(msg, &o, error);
        if (r < 0)
                return r;
        p->renew = o.renew > 0;
        p->token = o.token;

        CallerNames needed = caller_names_needed(m->config);
        r = caller_from_message(m->callers, msg, (needed | extra) & CALLER_UNIT, &p->caller);
        if (r < 0)
                return bus_caller_error(m, error, r);
        r = caller_resolve_names(&p->caller, needed);
        if (r == -EINPROGRESS)
                return bus_defer_for_nss(m, msg, p->caller.uid, error);
        if (r < 0)
                return bus_nss_error(m, error, p->caller.uid, r);

        caller_to_policy(&p->caller, &p->cb_caller);

        p->spec = (CbRequestSpec) {
                .ca = p->ca,
                .subject = p->subject,
                .names = (const char *const *) p->names,
                .n_names = n,
                .key = o.key,
                .usage = o.usage,
                .label = o.label,
                .identity = o.identity,
        };
        CbUsageCounter counter = {
                .now_usec = now_usec(),
                .count_since = count_since,
                .count_active = count_active,
                .userdata = m,
        };
        r = cb_policy_decide(m->config, &p->cb_caller, &p->spec, &counter, ret);
        if (r < 0)
                return sd_bus_error_set_errnof(error, r, "Policy evaluation failed: %m");
        /* A denial where a Units= rule might have applied says why the unit is not known. */
        if (!ret->allowed && p->caller.unit_note && (needed & CALLER_UNIT)) {
                char *reason = NULL;
                if (asprintf(&reason, "%s (Units= selectors match no unit for this caller: %s)",
                             ret->reason ?: "denied", p->caller.unit_note) < 0)
                        return -ENOMEM;
                free(ret->reason);
                ret->reason = reason;
        }
        return 0;
}

/* Denials and CheckAccess records are what a tenant can make at will: they are limited per
 * uid (manager_audit_admit()), so a flood cannot push the records that matter out of the
 * journal. Allowed enrollments are not: MaxRequests= bounds them, and each is a request. */
static void audit_decision(Manager *m, const PolicyCall *p, const CbDecision *d, const char *request,
                           const char *what, bool limited) {
        char names[AUDIT_NAMES_TEXT_MAX], ca[AUDIT_NAME_MAX + 16];

        if (limited && !manager_audit_admit(m, p->caller.uid))
                return;
        /* The normalized names when the decision got that far, else the arguments escaped. */
        if (d->names && d->n_names == p->spec.n_names)
                audit_names_format((const char *const *) d->names, d->n_names, names, sizeof names);
        else
                audit_names_format((const char *const *) p->names, p->spec.n_names, names, sizeof names);
        if (d->ca)
                snprintf(ca, sizeof ca, "%s", d->ca->name);
        else
                audit_names_format(&p->ca, 1, ca, sizeof ca);
        log_audit(d->allowed ? LOG_INFO : LOG_NOTICE,
                  &(AuditRecord) {
                          .request = request,
                          .uid = p->caller.uid,
                          .rule = d->rule,
                          .decision = d->allowed ? "allow" : "deny",
                          .names = names,
                          .ca = ca,
                          .error = d->allowed ? "" : broker_error_name(broker_error_from_decision(d->result)),
                  },
                  "%s by uid %u: %s", what, (unsigned) p->caller.uid, d->reason ?: "");
}

/* The Enroll call's request is on disk (or could not be written): the reply. */
static void on_enrolled(Request *req, int error, void *userdata) {
        _cleanup_(freep) char *path = NULL;
        PendingReply *p = userdata;

        if (error < 0) {
                (void) pending_reply_errno(p, error, "Cannot write the request journal to disk: %s", strerror(-error));
                return;
        }
        if (bus_request_path(req->rec->id, &path) < 0) {
                (void) pending_reply_errno(p, ENOMEM, "Out of memory");
                return;
        }
        (void) pending_reply_return(p, "o", path);
}

/* The reply to a repeated Enroll: as on_enrolled(), but the request it named may have been
 * dropped meanwhile because its own insert could not be made durable. */
static void on_repeated(Request *req, int error, void *userdata) {
        PendingReply *p = userdata;

        if (error == -ENOENT) {
                (void) pending_reply_errno(p, EAGAIN, "The request this token named is gone (its own insert "
                                           "could not be made durable, or it was removed meanwhile): call "
                                           "Enroll again.");
                return;
        }
        if (error >= 0 && manager_audit_admit(req->manager, req->rec->owner))
                log_audit(LOG_INFO, &(AuditRecord) { .request = req->rec->id, .uid = req->rec->owner,
                                                     .decision = "repeated", .ca = req->rec->ca },
                          "Enroll by uid %u repeated with the token of request %s: answered with that request.",
                          (unsigned) req->rec->owner, req->rec->id);
        on_enrolled(req, error, userdata);
}

/* Enroll with a token that names req: the same parameters get req (after the journal's next
 * fsync, as a new request would), other parameters are refused naming the first that differs.
 * The policy is not decided again for it (req was decided when made, and is decided again on
 * Reload), so a retry is not refused by a MaxRequests= window the first call used up. */
static int enroll_repeated(Manager *m, sd_bus_message *msg, const PolicyCall *p, const CbDecision *d, Request *req,
                           sd_bus_error *error) {
        PendingReply *pending = NULL;
        const char *field = NULL;
        int r;

        r = request_differs(req, d, p->ca && *p->ca, p->spec.key != NULL, p->renew, &field);
        if (r < 0)
                return r;
        if (r > 0)
                return bus_error_set(error, BROKER_ERROR_INVALID_ARGUMENT,
                                     "Option token '%s' already names request %s, which was made with another %s: "
                                     "a token stands for one request; use a new token for different parameters.",
                                     p->token, req->rec->id, field);
        r = pending_reply_new(msg, NULL, NULL, &pending);
        if (r < 0)
                return r;
        r = request_when_durable(req, on_repeated, pending);
        if (r < 0) {
                pending_reply_drop(pending);
                return r;
        }
        return 1;       /* on_repeated() answers and audits (limited per uid, like denials) */
}

static int method_enroll(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        _cleanup_(pending_reply_dropp) PendingReply *pending = NULL;
        _cleanup_(policy_call_done) PolicyCall p = {};
        _cleanup_(cb_decision_done) CbDecision d = {};
        _cleanup_(freep) char *snapshot = NULL;
        Manager *m = userdata;
        Request *req = NULL, *named;
        int r;

        r = policy_call_decide(m, msg, CALLER_UNIT, &p, &d, error);
        if (r != 0)
                return r;       /* an error, or dispatched again once NSS answers */
        /* The same token again (a caller that did not see the reply): that request, made once. */
        named = request_find_token(m, p.caller.uid, p.token);
        if (named && d.ca && d.subject) {
                return enroll_repeated(m, msg, &p, &d, named, error);
        }
        if (!d.allowed) {
                audit_decision(m, &p, &d, NULL, "Enroll denied", true);
                return bus_error_set(error, broker_error_from_decision(d.result), "%s", d.reason);
        }
        /* What a tenant keeps is bounded: MaxStoredRequests= requests of every state per uid
         * (root is not counted: it administers the broker). */
        unsigned stored = p.caller.uid != 0 ? manager_count_stored(m, p.caller.uid) : 0;
        if (stored >= m->config->max_stored_requests) {
                if (manager_audit_admit(m, p.caller.uid))
                        log_audit(LOG_NOTICE, &(AuditRecord) { .uid = p.caller.uid, .decision = "deny",
                                                               .ca = d.ca->name,
                                                               .error = broker_error_name(BROKER_ERROR_QUOTA_EXCEEDED) },
                                  "Enroll denied for uid %u: it keeps %u requests (MaxStoredRequests=%u)",
                                  (unsigned) p.caller.uid, stored, m->config->max_stored_requests);
                return bus_error_set(error, BROKER_ERROR_QUOTA_EXCEEDED,
                                  "uid %u keeps %u requests and certbroker.conf allows MaxStoredRequests=%u per "
                                  "user: Remove() finished ones (certbrokerctl remove ID), or wait until they "
                                  "are forgotten (RetainFinished=%llu s after they end).",
                                  (unsigned) p.caller.uid, stored, m->config->max_stored_requests,
                                  (unsigned long long) (m->config->retain_finished_usec / 1000000ULL));
        }

        r = caller_snapshot_format(&p.caller, &snapshot);
        if (r < 0)
                return r;
        r = pending_reply_new(msg, NULL, NULL, &pending);
        if (r < 0)
                return r;
        /* Durable before the reply: on_enrolled() answers once the insert is on disk. */
        r = request_enroll(m, p.caller.uid, snapshot, &d, p.renew, p.token, on_enrolled, pending, &req);
        if (r == -ENOSPC || r == -EDQUOT)
                return bus_error_set(error, BROKER_ERROR_QUOTA_EXCEEDED,
                                  "The broker's state directory is full (%s: %s): the request was not "
                                  "accepted. Free space there; requests already accepted are kept and "
                                     "finish once there is room.", store_path(m->store), strerror(-r));
        if (r < 0)
                return sd_bus_error_set_errnof(error, r, "Cannot record the request in %s: %m", store_path(m->store));
        (void) TAKE_PTR(pending);       /* on_enrolled() has it */
        audit_decision(m, &p, &d, req->rec->id, "Enroll allowed", false);
        return 1;
}

static int method_check_access(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_(policy_call_done) PolicyCall p = {};
        _cleanup_(cb_decision_done) CbDecision d = {};
        Manager *m = userdata;
        int r;

        r = policy_call_decide(m, msg, 0, &p, &d, error);
        if (r != 0)
                return r;       /* an error, or dispatched again once NSS answers */
        audit_decision(m, &p, &d, NULL, "CheckAccess", true);
        r = sd_bus_message_new_method_return(msg, &reply);
        if (r < 0)
                return r;
        r = sd_bus_message_append(reply, "b", d.allowed);
        if (r < 0)
                return r;
        r = bus_append_text(reply, d.rule);
        if (r < 0)
                return r;
        r = bus_append_text(reply, d.reason);
        if (r < 0)
                return r;
        return sd_bus_send(NULL, reply, NULL);
}

/* The requests as a(sso) (id, state, path), or a(ssou) with the owner; only owner's unless
 * it is UID_INVALID. */
#define UID_INVALID ((uid_t) -1)
typedef struct RequestRows {
        Manager *manager;
        uid_t owner;
        bool with_owner;
} RequestRows;

static int append_request_row(sd_bus_message *reply, size_t i, void *userdata) {
        const RequestRows *rows = userdata;
        const StoreRequest *rec = rows->manager->requests[i]->rec;
        _cleanup_(freep) char *path = NULL;
        int r;

        if (rows->owner != UID_INVALID && rec->owner != rows->owner)
                return 0;
        r = bus_request_path(rec->id, &path);
        if (r < 0)
                return r;
        if (rows->with_owner)
                return sd_bus_message_append(reply, "(ssou)", rec->id, request_state_to_string(rec->state), path,
                                             (uint32_t) rec->owner);
        return sd_bus_message_append(reply, "(sso)", rec->id, request_state_to_string(rec->state), path);
}

static int reply_requests(Manager *m, sd_bus_message *msg, uid_t owner, bool with_owner) {
        RequestRows rows = { .manager = m, .owner = owner, .with_owner = with_owner };

        return bus_reply_array(msg, with_owner ? "(ssou)" : "(sso)", m->n_requests, append_request_row, &rows);
}

/* The caller's requests (root: every request). */
static int method_list_requests(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        uid_t uid;
        int r;

        r = caller_uid_from_message(m->callers, msg, &uid);
        if (r < 0)
                return bus_caller_error(m, error, r);
        return reply_requests(m, msg, uid == 0 ? UID_INVALID : uid, false);
}

/* Every user's requests: root, or whom polkit authorizes for .manage (the answer may come
 * later: the call is then dispatched again). */
static int method_list_all_requests(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        int r;

        r = bus_polkit_authorize_unless_root(m, msg, CB_POLKIT_ACTION_MANAGE, "list every user's requests", NULL,
                                             error);
        if (r <= 0)
                return r < 0 ? r : 1;   /* refused, or deferred */
        return reply_requests(m, msg, UID_INVALID, true);
}

static int append_ca_row(sd_bus_message *reply, size_t i, void *userdata) {
        const CbConfig *config = userdata;
        _cleanup_(freep) char *path = NULL;
        int r;

        r = sd_bus_path_encode(CB_CA_PREFIX, config->cas[i].name, &path);
        if (r < 0)
                return r;
        return sd_bus_message_append(reply, "(so)", config->cas[i].name, path);
}

static int method_list_cas(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;

        return bus_reply_array(msg, "(so)", m->config->n_cas, append_ca_row, m->config);
}

/* GetMetrics(): root sees every request and the broker's counters, others their own requests. */
static int method_get_metrics(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        _cleanup_(freep) char *text = NULL;
        Manager *m = userdata;
        uid_t uid;
        int r;

        r = caller_uid_from_message(m->callers, msg, &uid);
        if (r < 0)
                return bus_caller_error(m, error, r);
        r = metrics_format(m, uid == 0, uid, &text);
        if (r < 0)
                return sd_bus_error_set_errnof(error, r, "Cannot format the metrics: %m");
        return sd_bus_reply_method_return(msg, "s", text);
}

static int method_reload(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        _cleanup_(freep) char *reason = NULL;
        Manager *m = userdata;
        uid_t uid;
        int r;

        /* Root, or whom polkit authorizes (the answer may come later: the call is then
         * dispatched again). */
        r = bus_polkit_authorize_unless_root(m, msg, CB_POLKIT_ACTION_RELOAD, "reload the configuration", &uid,
                                             error);
        if (r <= 0)
                return r < 0 ? r : 1;   /* refused, or deferred */
        r = manager_reload(m, &reason);
        if (r < 0) {
                log_error("Reload requested by uid %u failed, keeping the old configuration: %s",
                          (unsigned) uid, reason ?: strerror(-r));
                return bus_error_set(error, BROKER_ERROR_INVALID_CONFIGURATION,
                                     "%s (the old configuration stays in force)", reason ?: strerror(-r));
        }
        return sd_bus_reply_method_return(msg, NULL);
}

static int property_get_version(sd_bus *bus, const char *path, const char *interface, const char *property,
                                sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        return bus_append_text(reply, CERTBROKER_VERSION);
}

static int property_get_realm(sd_bus *bus, const char *path, const char *interface, const char *property,
                              sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        return bus_append_text(reply, ((Manager *) userdata)->config->realm);
}

static int property_get_permitted_suffix(sd_bus *bus, const char *path, const char *interface,
                                         const char *property, sd_bus_message *reply, void *userdata,
                                         sd_bus_error *error) {
        return bus_append_text(reply, ((Manager *) userdata)->config->permitted_suffix);
}

static int property_get_principal(sd_bus *bus, const char *path, const char *interface, const char *property,
                                  sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        return bus_append_text(reply, ((Manager *) userdata)->config->principal);
}

static int property_get_credential_state(sd_bus *bus, const char *path, const char *interface,
                                         const char *property, sd_bus_message *reply, void *userdata,
                                         sd_bus_error *error) {
        return bus_append_text(reply, engine_credential_state(userdata));
}

static int property_get_credential_expiry(sd_bus *bus, const char *path, const char *interface,
                                          const char *property, sd_bus_message *reply, void *userdata,
                                          sd_bus_error *error) {
        return sd_bus_message_append(reply, "t", engine_credential_expiry(userdata));
}

/* KeyPool a(suu): (key type, keys ready now, target) for every type with a target. An
 * addition to version 1 of the interface, for administrators and benchmarks; read on demand (no change signals:
 * it moves with every enrollment). */
static int append_key_pool_row(sd_bus_message *reply, size_t i, void *userdata) {
        KeyPool *pool = userdata;
        KeyType t = (KeyType) i;

        if (key_pool_target(pool, t) == 0)
                return 0;
        return sd_bus_message_append(reply, "(suu)", key_type_to_string(t), key_pool_count(pool, t),
                                     key_pool_target(pool, t));
}

static int property_get_key_pool(sd_bus *bus, const char *path, const char *interface,
                                 const char *property, sd_bus_message *reply, void *userdata,
                                 sd_bus_error *error) {
        Manager *m = userdata;

        return bus_append_array(reply, "(suu)", _KEY_TYPE_MAX, append_key_pool_row, m->pool);
}

static const sd_bus_vtable manager_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_PROPERTY("Version", "s", property_get_version, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Realm", "s", property_get_realm, 0, SD_BUS_VTABLE_PROPERTY_EMITS_INVALIDATION),
        SD_BUS_PROPERTY("PermittedSuffix", "s", property_get_permitted_suffix, 0, SD_BUS_VTABLE_PROPERTY_EMITS_INVALIDATION),
        SD_BUS_PROPERTY("Principal", "s", property_get_principal, 0, SD_BUS_VTABLE_PROPERTY_EMITS_INVALIDATION),
        SD_BUS_PROPERTY("CredentialState", "s", property_get_credential_state, 0, SD_BUS_VTABLE_PROPERTY_EMITS_INVALIDATION),
        SD_BUS_PROPERTY("CredentialExpiry", "t", property_get_credential_expiry, 0, SD_BUS_VTABLE_PROPERTY_EMITS_INVALIDATION),
        SD_BUS_PROPERTY("KeyPool", "a(suu)", property_get_key_pool, 0, 0),
        SD_BUS_METHOD_WITH_NAMES("Enroll", "ssasa{sv}", SD_BUS_PARAM(ca) SD_BUS_PARAM(subject) SD_BUS_PARAM(names) SD_BUS_PARAM(options),
                                 "o", SD_BUS_PARAM(request), method_enroll, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_NAMES("CheckAccess", "ssasa{sv}", SD_BUS_PARAM(ca) SD_BUS_PARAM(subject) SD_BUS_PARAM(names) SD_BUS_PARAM(options),
                                 "bss", SD_BUS_PARAM(allowed) SD_BUS_PARAM(rule) SD_BUS_PARAM(reason), method_check_access, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_NAMES("ListRequests", "", , "a(sso)", SD_BUS_PARAM(requests),
                                 method_list_requests, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_NAMES("ListAllRequests", "", , "a(ssou)", SD_BUS_PARAM(requests),
                                 method_list_all_requests, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_NAMES("ListCAs", "", , "a(so)", SD_BUS_PARAM(cas),
                                 method_list_cas, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD("Reload", "", "", method_reload, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_NAMES("GetMetrics", "", , "s", SD_BUS_PARAM(text),
                                 method_get_metrics, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_VTABLE_END
};

/* ---- the hooks: how the core's changes reach the bus ---- */

static void hook_credentials_changed(Manager *m) {
        if (m->bus)
                (void) sd_bus_emit_properties_changed(m->bus, CB_MANAGER_PATH, CB_MANAGER_IFACE,
                                                      "CredentialState", "CredentialExpiry", NULL);
}

static void hook_closing(Manager *m) {
        while (m->trust_waiters)
                pending_reply_drop(m->trust_waiters);
        m->polkit = bus_polkit_registry_free(m->polkit);        /* with the calls it deferred */
        bus_deferred_free_all(m);
        m->callers = caller_registry_free(m->callers);
        if (m->bus) {
                (void) sd_bus_flush(m->bus);
                sd_bus_flush_close_unref(m->bus);
                m->bus = NULL;
        }
}

static const ManagerHooks bus_hooks = {
        .request_changed = bus_request_changed,
        .request_gone = bus_request_gone,
        .ca_changed = bus_ca_changed,
        .credentials_changed = hook_credentials_changed,
        .closing = hook_closing,
};

int bus_manager_attach(Manager *m, sd_bus *bus) {
        int r;

        m->bus = sd_bus_ref(bus);
        m->hooks = &bus_hooks;
        r = caller_registry_new(&m->callers);
        if (r < 0)
                return log_error_errno(r, "Cannot create the registry of callers: %m");
        caller_registry_set_gone_handler(m->callers, bus_request_caller_gone, m);
        r = bus_polkit_registry_new(&m->polkit);
        if (r < 0)
                return log_error_errno(r, "Cannot create the registry of polkit queries: %m");
        r = sd_bus_add_object_vtable(m->bus, NULL, CB_MANAGER_PATH, CB_MANAGER_IFACE, manager_vtable, m);
        if (r < 0)
                return log_error_errno(r, "Cannot register the object %s on the bus: %m", CB_MANAGER_PATH);
        r = bus_request_register(m);
        if (r < 0)
                return log_error_errno(r, "Cannot register the request objects under %s on the bus: %m",
                                       CB_REQUEST_PREFIX);
        r = bus_ca_register(m);
        if (r < 0)
                return log_error_errno(r, "Cannot register the CA objects under %s on the bus: %m", CB_CA_PREFIX);
        return 0;
}

/* The connection to the bus is gone (the bus daemon stopped, or closed it): without it the
 * broker serves nobody and holds no name, so it exits with a failure and systemd starts it
 * again (Restart=on-failure); what was in flight is in the journal and resumes then. */
static int on_disconnected(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;

        log_error("Lost the connection to the system bus: exiting with a failure, to be started again; "
                  "requests in flight resume then.");
        (void) sd_event_exit(m->event, EXIT_FAILURE);
        return 0;
}

/* Every method call is activity: freed memory is given back once they stop (memory-trim.h).
 * Signals are not: the departures of every client of the system bus (NameOwnerChanged) would
 * keep a broker that nobody calls from ever being quiet. */
static int on_any_message(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;

        if (sd_bus_message_is_method_call(msg, NULL, NULL))
                memory_trim_note_activity(m->trim);
        return 0;
}

int bus_manager_connect(Manager *m) {
        _cleanup_(sd_bus_unrefp) sd_bus *bus = NULL;
        size_t total, per_uid;
        int r;

        r = sd_bus_open_system(&bus);
        if (r < 0)
                return log_error_errno(r, "Cannot connect to the system bus: %m");
        r = bus_manager_attach(m, bus);
        if (r < 0)
                return r;       /* bus_manager_attach() said which step failed */
        /* Every caller's departure through one match (caller.h), installed before any call
         * is dispatched. */
        r = caller_registry_attach(m->callers, m->bus);
        if (r < 0)
                return log_error_errno(r, "Cannot watch for callers leaving the bus (NameOwnerChanged): %m");
        r = sd_bus_add_filter(m->bus, NULL, on_any_message, m);
        if (r < 0)
                return log_error_errno(r, "Cannot watch the bus for activity: %m");
        /* A match on the local Disconnected signal costs no match rule on the bus. */
        r = sd_bus_match_signal(m->bus, NULL, "org.freedesktop.DBus.Local", "/org/freedesktop/DBus/Local",
                                "org.freedesktop.DBus.Local", "Disconnected", on_disconnected, m);
        if (r < 0)
                return log_error_errno(r, "Cannot watch for the loss of the bus connection: %m");
        /* Bus calls before HTTP completions and key deliveries: callers (ListCAs, Wait, ...)
         * stay responsive however many enrollments are in flight. */
        r = sd_bus_attach_event(m->bus, m->event, SD_EVENT_PRIORITY_IMPORTANT);
        if (r < 0)
                return log_error_errno(r, "Cannot attach the bus connection to the event loop: %m");
        caller_registry_get_limits(m->callers, &total, &per_uid);
        log_debug("Callers: at most %zu connections remembered, %zu per user (RLIMIT_NOFILE).", total, per_uid);
        r = sd_bus_request_name(m->bus, CB_BUS_NAME, 0);
        if (r < 0)
                return log_error_errno(r, "Cannot own the bus name %s (is another certbrokerd running, or "
                                       "is the bus policy org.certbroker.Broker1.conf missing?): %m", CB_BUS_NAME);
        return 0;
}
