/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* org.certbroker.Broker1.Manager: Enroll, CheckAccess, ListRequests, ListCAs, Reload. */
#include <stdio.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "audit-text.h"
#include "bus-errors.h"
#include "bus-util.h"
#include "caller.h"
#include "cb-policy.h"
#include "config.h"
#include "engine.h"
#include "log.h"
#include "manager.h"

/* Options of Enroll/CheckAccess: a{sv} with string values only; unknown names and other
 * types are InvalidArgument. The strings point into the message. */
typedef struct EnrollOptions {
        const char *key;
        const char *usage;
        const char *label;
        int renew;              /* -1: not given */
} EnrollOptions;

static int read_options(sd_bus_message *m, EnrollOptions *ret, sd_bus_error *error) {
        EnrollOptions o = { .renew = -1 };
        int r;

        r = sd_bus_message_enter_container(m, 'a', "{sv}");
        if (r < 0)
                return r;
        for (;;) {
                const char *name, *contents, *value;
                char type;

                r = sd_bus_message_enter_container(m, 'e', "sv");
                if (r < 0)
                        return r;
                if (r == 0)
                        break;
                r = sd_bus_message_read(m, "s", &name);
                if (r < 0)
                        return r;
                if (!cb_enroll_option_is_known(name))
                        return sd_bus_error_setf(error, CB_ERROR_INVALID_ARGUMENT,
                                                 "Unknown option '%.64s': the options are key, usage, label and "
                                                 "renew.", name);
                r = sd_bus_message_peek_type(m, &type, &contents);
                if (r < 0)
                        return r;
                if (strcmp(name, "renew") == 0) {
                        int b;
                        if (!contents || strcmp(contents, "b") != 0)
                                return sd_bus_error_setf(error, CB_ERROR_INVALID_ARGUMENT,
                                                         "Option 'renew' must be a boolean (variant type 'b'), not '%s'.",
                                                         contents ?: "?");
                        if (o.renew >= 0)
                                return sd_bus_error_setf(error, CB_ERROR_INVALID_ARGUMENT, "Option 'renew' given twice.");
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
                        return sd_bus_error_setf(error, CB_ERROR_INVALID_ARGUMENT,
                                                 "Option '%s' must be a string (variant type 's'), not '%s'.",
                                                 name, contents ?: "?");
                r = sd_bus_message_read(m, "v", "s", &value);
                if (r < 0)
                        return r;
                const char **slot = strcmp(name, "key") == 0 ? &o.key :
                                    strcmp(name, "usage") == 0 ? &o.usage : &o.label;
                if (*slot)
                        return sd_bus_error_setf(error, CB_ERROR_INVALID_ARGUMENT,
                                                 "Option '%s' given twice.", name);
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

/* Reads (s ca, s subject, as names, a{sv} options), identifies the caller, decides. */
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
                        return sd_bus_error_setf(error, CB_ERROR_INVALID_ARGUMENT,
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

        CallerNames needed = caller_names_needed(m->config);
        r = caller_from_message(m->callers, msg, needed | extra, &p->caller);
        if (r < 0)
                return sd_bus_error_set_errnof(error, r, "Cannot identify the caller from the bus: %m");

        caller_to_policy(&p->caller, &p->cb_caller);

        p->spec = (CbRequestSpec) {
                .ca = p->ca,
                .subject = p->subject,
                .names = (const char *const *) p->names,
                .n_names = n,
                .key = o.key,
                .usage = o.usage,
                .label = o.label,
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
        char names[AUDIT_NAMES_TEXT_MAX], ca[AUDIT_NAME_MAX + 16], err[128] = "";

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
        if (!d->allowed)
                snprintf(err, sizeof err, CB_ERROR_PREFIX "%s", cb_decision_result_to_error(d->result));
        log_audit(d->allowed ? LOG_INFO : LOG_NOTICE,
                  &(AuditRecord) {
                          .request = request,
                          .uid = p->caller.uid,
                          .rule = d->rule,
                          .decision = d->allowed ? "allow" : "deny",
                          .names = names,
                          .ca = ca,
                          .error = err,
                  },
                  "%s by uid %u: %s", what, (unsigned) p->caller.uid, d->reason ?: "");
}

/* An Enroll call waiting for its request to reach the disk (group commit). */
typedef struct EnrollReply {
        Manager *manager;
        sd_bus_message *call;
        char id[STORE_ID_LEN + 1];
} EnrollReply;

static void on_enroll_durable(int error, void *userdata) {
        EnrollReply *e = userdata;
        Manager *m = e->manager;
        Request *req = manager_find_request(m, e->id);
        char *path = NULL;

        if (error < 0) {
                log_error_errno(error, "Cannot make request %s durable in %s: %m", e->id, store_path(m->store));
                (void) sd_bus_reply_method_errnof(e->call, error, "Cannot write the request journal to disk: %m");
                if (req) {
                        (void) store_request_delete(m->store, req->rec->id);
                        manager_drop_request(m, req);
                        request_free(req);
                }
        } else if (bus_request_path(e->id, &path) >= 0) {
                (void) sd_bus_reply_method_return(e->call, "o", path);
                if (req && !m->stopping)
                        (void) engine_request_start(req);
        } else
                (void) sd_bus_reply_method_errno(e->call, -ENOMEM, NULL);
        free(path);
        sd_bus_message_unref(e->call);
        free(e);
}

static int method_enroll(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        PolicyCall p = {};
        CbDecision d = {};
        StoreRequest *rec = NULL;
        Request *req = NULL;
        char *path = NULL;
        int r;

        r = policy_call_decide(m, msg, CALLER_UNIT, &p, &d, error);
        if (r < 0)
                goto finish;
        if (!d.allowed) {
                audit_decision(m, &p, &d, NULL, "Enroll denied", true);
                r = bus_error_setf_named(error, cb_decision_result_to_error(d.result), "%s", d.reason);
                goto finish;
        }
        /* What a tenant keeps is bounded: MaxStoredRequests= requests of every state per uid
         * (root is not counted: it administers the broker). */
        unsigned stored = p.caller.uid != 0 ? manager_count_stored(m, p.caller.uid) : 0;
        if (stored >= m->config->max_stored_requests) {
                if (manager_audit_admit(m, p.caller.uid))
                        log_audit(LOG_NOTICE, &(AuditRecord) { .uid = p.caller.uid, .decision = "deny",
                                                               .ca = d.ca->name,
                                                               .error = CB_ERROR_QUOTA_EXCEEDED },
                                  "Enroll denied for uid %u: it keeps %u requests (MaxStoredRequests=%u)",
                                  (unsigned) p.caller.uid, stored, m->config->max_stored_requests);
                r = sd_bus_error_setf(error, CB_ERROR_QUOTA_EXCEEDED,
                                      "uid %u keeps %u requests and certbroker.conf allows MaxStoredRequests=%u per "
                                      "user: Remove() finished ones (certbrokerctl remove ID), or wait until they "
                                      "are forgotten (RetainFinished=%llu s after they end).",
                                      (unsigned) p.caller.uid, stored, m->config->max_stored_requests,
                                      (unsigned long long) (m->config->retain_finished_usec / 1000000ULL));
                goto finish;
        }

        rec = calloc(1, sizeof(*rec));
        req = calloc(1, sizeof(*req));
        if (!rec || !req) {
                r = -ENOMEM;
                goto finish;
        }
        rec->owner = p.caller.uid;
        rec->renew = p.renew;
        r = caller_snapshot_format(&p.caller, &rec->caller);
        if (r < 0)
                goto finish;
        rec->ca = strdup(d.ca->name);
        rec->label = strdup(d.label ?: "");
        r = cb_subject_format(d.subject, &rec->subject);
        if (r < 0)
                goto finish;
        rec->names = calloc(d.n_names + 1, sizeof(char *));
        if (!rec->names) {
                r = -ENOMEM;
                goto finish;
        }
        for (size_t i = 0; i < d.n_names; i++)
                if (!(rec->names[i] = strdup(d.names[i]))) {
                        r = -ENOMEM;
                        goto finish;
                }
        rec->key = strdup(cb_key_type_to_string(d.key));
        rec->usage = strdup(cb_usage_to_string(d.usage));
        if (!rec->ca || !rec->label || !rec->key || !rec->usage) {
                r = -ENOMEM;
                goto finish;
        }
        rec->state = REQUEST_QUEUED;
        rec->created = rec->updated = now_usec();

        /* Durable before the reply; a key from the pool goes into the same transaction. */
        EVP_PKEY *key = NULL;
        CbSecret *key_pem = NULL;
        manager_take_pool_key(m, rec->key, &key, &key_pem);
        r = store_request_insert(m->store, rec, key_pem);
        secret_free(key_pem);
        if (r >= 0 && key) {
                req->key = key;
                rec->key_available = true;
        } else
                EVP_PKEY_free(key);
        if (r < 0) {
                req->key = NULL;
                log_error_errno(r, "Cannot record a new request in %s: %m", store_path(m->store));
                if (r == -ENOSPC || r == -EDQUOT)
                        r = sd_bus_error_setf(error, CB_ERROR_QUOTA_EXCEEDED,
                                              "The broker's state directory is full (%s: %s): the request was not "
                                              "accepted. Free space there; requests already accepted are kept and "
                                              "finish once there is room.", store_path(m->store), strerror(-r));
                else
                        r = sd_bus_error_set_errnof(error, r, "Cannot record the request in %s: %m",
                                                    store_path(m->store));
                goto finish;
        }
        req->rec = TAKE_PTR(rec);
        r = manager_add_request(m, req);
        if (r < 0) {
                (void) store_request_delete(m->store, req->rec->id);
                goto finish;
        }
        Request *added = TAKE_PTR(req);
        audit_decision(m, &p, &d, added->rec->id, "Enroll allowed", false);

        /* Durable before the reply: the reply (and the engine) wait for the journal's fsync,
         * which the loop does not wait for. */
        EnrollReply *er = calloc(1, sizeof(*er));
        if (!er) {
                r = -ENOMEM;
                goto finish;
        }
        er->manager = m;
        er->call = sd_bus_message_ref(msg);
        memcpy(er->id, added->rec->id, sizeof er->id);
        r = journal_sync_request(m->journal_sync, on_enroll_durable, er, NULL);
        if (r < 0) {
                sd_bus_message_unref(er->call);
                free(er);
                goto finish;
        }
        r = 1;          /* replied by on_enroll_durable() */

finish:
        free(path);
        store_request_free(rec);
        if (req)
                request_free(req);
        cb_decision_done(&d);
        policy_call_done(&p);
        return r;
}

static int method_check_access(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        PolicyCall p = {};
        CbDecision d = {};
        int r;

        r = policy_call_decide(m, msg, 0, &p, &d, error);
        if (r >= 0) {
                audit_decision(m, &p, &d, NULL, "CheckAccess", true);
                r = sd_bus_reply_method_return(msg, "bss", d.allowed, d.rule ?: "", d.reason ?: "");
        }
        cb_decision_done(&d);
        policy_call_done(&p);
        return r;
}

static int method_list_requests(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        sd_bus_message *reply = NULL;
        uid_t uid;
        int r;

        r = caller_uid_from_message(m->callers, msg, &uid);
        if (r < 0)
                return r;
        r = sd_bus_message_new_method_return(msg, &reply);
        if (r >= 0)
                r = sd_bus_message_open_container(reply, 'a', "(sso)");
        for (size_t i = 0; r >= 0 && i < m->n_requests; i++) {
                Request *q = m->requests[i];
                char *path = NULL;
                if (uid != 0 && q->rec->owner != uid)
                        continue;
                r = bus_request_path(q->rec->id, &path);
                if (r >= 0)
                        r = sd_bus_message_append(reply, "(sso)", q->rec->id,
                                                  request_state_to_string(q->rec->state), path);
                free(path);
        }
        if (r >= 0)
                r = sd_bus_message_close_container(reply);
        if (r >= 0)
                r = sd_bus_send(NULL, reply, NULL);
        sd_bus_message_unref(reply);
        return r;
}

static int method_list_cas(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        sd_bus_message *reply = NULL;
        int r;

        r = sd_bus_message_new_method_return(msg, &reply);
        if (r >= 0)
                r = sd_bus_message_open_container(reply, 'a', "(so)");
        for (size_t i = 0; r >= 0 && i < m->config->n_cas; i++) {
                char *path = NULL;
                r = sd_bus_path_encode(CB_CA_PREFIX, m->config->cas[i].name, &path);
                if (r >= 0)
                        r = sd_bus_message_append(reply, "(so)", m->config->cas[i].name, path);
                free(path);
        }
        if (r >= 0)
                r = sd_bus_message_close_container(reply);
        if (r >= 0)
                r = sd_bus_send(NULL, reply, NULL);
        sd_bus_message_unref(reply);
        return r;
}

static int method_reload(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        char *reason = NULL;
        uid_t uid;
        int r;

        r = caller_uid_from_message(m->callers, msg, &uid);
        if (r < 0)
                return r;
        if (uid != 0)
                return sd_bus_error_set(error, CB_ERROR_ACCESS_DENIED,
                                        "Only root may reload the configuration.");
        r = manager_reload(m, &reason);
        if (r < 0) {
                log_error("Reload requested by root failed, keeping the old configuration: %s",
                          reason ?: strerror(-r));
                r = sd_bus_error_setf(error, CB_ERROR_INVALID_CONFIGURATION,
                                      "%s (the old configuration stays in force)", reason ?: strerror(-r));
                free(reason);
                return r;
        }
        return sd_bus_reply_method_return(msg, NULL);
}

static int property_get_config_string(sd_bus *bus, const char *path, const char *interface,
                                      const char *property, sd_bus_message *reply, void *userdata,
                                      sd_bus_error *error) {
        Manager *m = userdata;
        const char *v = "";

        if (strcmp(property, "Version") == 0)
                v = CERTBROKER_VERSION;
        else if (strcmp(property, "Realm") == 0)
                v = m->config->realm;
        else if (strcmp(property, "PermittedSuffix") == 0)
                v = m->config->permitted_suffix;
        else if (strcmp(property, "Principal") == 0)
                v = m->config->principal;
        else if (strcmp(property, "CredentialState") == 0)
                v = engine_credential_state(m);
        return sd_bus_message_append(reply, "s", v ?: "");
}

static int property_get_credential_expiry(sd_bus *bus, const char *path, const char *interface,
                                          const char *property, sd_bus_message *reply, void *userdata,
                                          sd_bus_error *error) {
        return sd_bus_message_append(reply, "t", engine_credential_expiry(userdata));
}

/* KeyPool a(suu): (key type, keys ready now, target) for every type with a target. An
 * addition to API.md, for administrators and benchmarks; read on demand (no change signals:
 * it moves with every enrollment). */
static int property_get_key_pool(sd_bus *bus, const char *path, const char *interface,
                                 const char *property, sd_bus_message *reply, void *userdata,
                                 sd_bus_error *error) {
        Manager *m = userdata;
        int r = sd_bus_message_open_container(reply, 'a', "(suu)");

        for (KeyType t = 0; r >= 0 && t < _KEY_TYPE_MAX; t++)
                if (key_pool_target(m->pool, t) > 0)
                        r = sd_bus_message_append(reply, "(suu)", key_type_to_string(t),
                                                  key_pool_count(m->pool, t), key_pool_target(m->pool, t));
        if (r >= 0)
                r = sd_bus_message_close_container(reply);
        return r;
}

static const sd_bus_vtable manager_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_PROPERTY("Version", "s", property_get_config_string, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Realm", "s", property_get_config_string, 0, SD_BUS_VTABLE_PROPERTY_EMITS_INVALIDATION),
        SD_BUS_PROPERTY("PermittedSuffix", "s", property_get_config_string, 0, SD_BUS_VTABLE_PROPERTY_EMITS_INVALIDATION),
        SD_BUS_PROPERTY("Principal", "s", property_get_config_string, 0, SD_BUS_VTABLE_PROPERTY_EMITS_INVALIDATION),
        SD_BUS_PROPERTY("CredentialState", "s", property_get_config_string, 0, SD_BUS_VTABLE_PROPERTY_EMITS_INVALIDATION),
        SD_BUS_PROPERTY("CredentialExpiry", "t", property_get_credential_expiry, 0, SD_BUS_VTABLE_PROPERTY_EMITS_INVALIDATION),
        SD_BUS_PROPERTY("KeyPool", "a(suu)", property_get_key_pool, 0, 0),
        SD_BUS_METHOD_WITH_NAMES("Enroll", "ssasa{sv}", SD_BUS_PARAM(ca) SD_BUS_PARAM(subject) SD_BUS_PARAM(names) SD_BUS_PARAM(options),
                                 "o", SD_BUS_PARAM(request), method_enroll, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_NAMES("CheckAccess", "ssasa{sv}", SD_BUS_PARAM(ca) SD_BUS_PARAM(subject) SD_BUS_PARAM(names) SD_BUS_PARAM(options),
                                 "bss", SD_BUS_PARAM(allowed) SD_BUS_PARAM(rule) SD_BUS_PARAM(reason), method_check_access, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_NAMES("ListRequests", "", , "a(sso)", SD_BUS_PARAM(requests),
                                 method_list_requests, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_NAMES("ListCAs", "", , "a(so)", SD_BUS_PARAM(cas),
                                 method_list_cas, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD("Reload", "", "", method_reload, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_VTABLE_END
};

int bus_manager_register(Manager *m) {
        int r;

        r = sd_bus_add_object_vtable(m->bus, NULL, CB_MANAGER_PATH, CB_MANAGER_IFACE, manager_vtable, m);
        if (r < 0)
                return r;
        r = bus_request_register(m);
        if (r < 0)
                return r;
        return bus_ca_register(m);
}
