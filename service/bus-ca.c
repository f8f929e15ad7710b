/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* org.certbroker.Broker1.CA objects: configuration and what the CA last said. */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus-pending.h"
#include "bus-polkit.h"
#include "bus-text.h"
#include "bus-util.h"
#include "caller.h"
#include "cb-policy.h"
#include "engine.h"
#include "manager.h"
#include "trust-anchors.h"

static int ca_find(sd_bus *bus, const char *path, const char *interface, void *userdata,
                   void **ret_found, sd_bus_error *error) {
        _cleanup_(freep) char *name = NULL;
        Manager *m = userdata;
        CaState *ca;
        int r;

        r = sd_bus_path_decode(path, CB_CA_PREFIX, &name);
        if (r <= 0)
                return r;
        ca = cb_ca_name_is_valid(name) ? manager_find_ca_state(m, name) : NULL;
        if (!ca) {
                char echo[BUS_TEXT_ECHO_SIZE(64)];
                return bus_error_set(error, BROKER_ERROR_UNKNOWN_CA, "No CA '%s' is configured (ListCAs lists them).",
                                     bus_text_echo(name, 64, echo, sizeof echo));
        }
        *ret_found = ca;
        return 1;
}

static int ca_enumerate(sd_bus *bus, const char *prefix, void *userdata, char ***ret_nodes,
                        sd_bus_error *error) {
        Manager *m = userdata;
        _cleanup_(bus_nodes_freep) char **nodes = calloc(m->n_cas + 1, sizeof(char *));

        if (!nodes)
                return -ENOMEM;
        for (size_t i = 0; i < m->n_cas; i++)
                if (sd_bus_path_encode(CB_CA_PREFIX, m->cas[i]->name, &nodes[i]) < 0)
                        return -ENOMEM;
        *ret_nodes = TAKE_PTR(nodes);
        return 0;
}

static const CbCa *ca_config(CaState *ca) {
        return cb_config_find_ca(ca->manager->config, ca->name);
}

/* URL and AdminURL of a CA with several NDES servers: every server's, space-separated, in
 * URL= order (a single server's: its URL, as before). */
static char *server_list(const CbCa *c, bool admin) {
        char **urls = admin ? c->server_admin_urls : c->server_urls;
        size_t len = 1;
        char *s;

        if (!urls || !urls[0])
                return NULL;
        for (size_t i = 0; i < c->n_servers; i++)
                len += (urls[i] ? strlen(urls[i]) : 0) + 1;
        s = calloc(1, len);
        for (size_t i = 0; s && i < c->n_servers; i++)
                if (urls[i]) {
                        if (*s)
                                strcat(s, " ");
                        strcat(s, urls[i]);
                }
        return s;
}

/* URL, AdminURL: a CA with several NDES servers has every server's, in URL= order. */
static int get_urls(sd_bus_message *reply, CaState *ca, bool admin) {
        const CbCa *c = ca_config(ca);

        if (c && c->n_servers > 1) {
                _cleanup_(freep) char *list = server_list(c, admin);
                return bus_append_text(reply, list);
        }
        return bus_append_text(reply, !c ? NULL : admin ? c->admin_url : c->url);
}

static int get_url(sd_bus *bus, const char *path, const char *interface, const char *property,
                   sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        return get_urls(reply, userdata, false);
}

static int get_admin_url(sd_bus *bus, const char *path, const char *interface, const char *property,
                         sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        return get_urls(reply, userdata, true);
}

static int get_authentication(sd_bus *bus, const char *path, const char *interface, const char *property,
                              sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        const CbCa *c = ca_config(userdata);
        return bus_append_text(reply, c ? cb_authentication_to_string(c->authentication) : NULL);
}

static int get_challenge(sd_bus *bus, const char *path, const char *interface, const char *property,
                         sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        const CbCa *c = ca_config(userdata);
        return bus_append_text(reply, c ? cb_challenge_mode_to_string(c->challenge) : NULL);
}

static int append_capability(sd_bus_message *reply, size_t i, void *userdata) {
        const CaState *ca = userdata;

        return bus_append_text(reply, ca->capabilities[i]);
}

static int get_capabilities(sd_bus *bus, const char *path, const char *interface, const char *property,
                            sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        CaState *ca = userdata;

        return bus_append_array(reply, "s", ca->n_capabilities, append_capability, ca);
}

/* A Check step as (sss): step, result, detail; texts from servers escaped (bus_append_text()). */
static int append_check_row(sd_bus_message *reply, size_t i, void *userdata) {
        const CheckRow *row = (const CheckRow *) userdata + i;
        const char *texts[] = { row->step, row->result, row->detail };
        int r;

        r = sd_bus_message_open_container(reply, 'r', "sss");
        if (r < 0)
                return r;
        for (size_t j = 0; j < ELEMENTSOF(texts); j++) {
                r = bus_append_text(reply, texts[j]);
                if (r < 0)
                        return r;
        }
        return sd_bus_message_close_container(reply);
}

/* The Check's steps, as the a(sss) reply; rows NULL: dropped unanswered (shutdown). */
static void on_check_complete(const CheckRow *rows, size_t n_rows, void *userdata) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        PendingReply *p = userdata;
        int r;

        if (!rows) {
                pending_reply_drop(p);
                return;
        }
        r = bus_reply_array_new(p->call, "(sss)", n_rows, append_check_row, (void *) rows, &reply);
        if (r < 0) {
                (void) pending_reply_errno(p, -r, "Cannot build the Check() reply: %s", strerror(-r));
                return;
        }
        (void) pending_reply_send(p, reply);
}

/* A caller no rule lets use the CA, and polkit did not authorize (perr says why). */
static int check_refused(CaState *ca, const sd_bus_error *perr, sd_bus_error *error) {
        _cleanup_(freep) char *text = NULL;

        if (asprintf(&text, "No policy rule lets you use CA '%s'; Check() is for root, for callers some rule "
                     "allows to use the CA, and for users polkit authorizes (%s).",
                     ca->name, perr->message ?: perr->name ?: "refused") < 0)
                return -ENOMEM;
        if (sd_bus_error_has_name(perr, SD_BUS_ERROR_INTERACTIVE_AUTHORIZATION_REQUIRED))
                return sd_bus_error_set(error, perr->name, text);
        return bus_error_set(error, BROKER_ERROR_ACCESS_DENIED, "%s", text);
}

static int method_check(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        _cleanup_(caller_done) Caller caller = {};
        CaState *ca = userdata;
        Manager *m = ca->manager;
        int want_challenge = 0, r;

        r = sd_bus_message_enter_container(msg, 'a', "{sv}");
        if (r < 0)
                return r;
        for (;;) {
                const char *name, *contents;

                r = bus_option_next(msg, &name, &contents);
                if (r < 0)
                        return r;
                if (r == 0)
                        break;
                if (strcmp(name, "challenge") != 0) {
                        char echo[BUS_TEXT_ECHO_SIZE(64)];
                        return bus_error_set(error, BROKER_ERROR_INVALID_ARGUMENT,
                                             "Unknown option '%s': Check() knows only 'challenge' (b).",
                                             bus_text_echo(name, 64, echo, sizeof echo));
                }
                if (!contents || strcmp(contents, "b") != 0)
                        return bus_error_set(error, BROKER_ERROR_INVALID_ARGUMENT,
                                                 "Option 'challenge' must be a boolean (variant type 'b').");
                r = sd_bus_message_read(msg, "v", "b", &want_challenge);
                if (r < 0)
                        return r;
                r = sd_bus_message_exit_container(msg);
                if (r < 0)
                        return r;
        }
        r = sd_bus_message_exit_container(msg);
        if (r < 0)
                return r;

        r = caller_from_message(m->callers, msg, caller_names_needed(m->config) & CALLER_UNIT, &caller);
        if (r < 0)
                return bus_caller_error(m, error, r);
        r = caller_resolve_names(&caller, caller_names_needed(m->config));
        if (r == -EINPROGRESS)          /* dispatched again once NSS has answered */
                return bus_defer_for_nss(m, msg, caller.uid, error);
        if (r < 0)
                return bus_nss_error(m, error, caller.uid, r);
        CbCaller cb;
        caller_to_policy(&caller, &cb);
        uid_t uid = caller.uid;
        bool allowed = uid == 0 || cb_policy_caller_may_use_ca(m->config, &cb, ca->name);
        /* Whom no rule lets use the CA, or who asks for a challenge again within the
         * interval: polkit may authorize it (action .check), and then it is treated like root
         * (no per-user challenge interval). The answer may come later: the call comes again. */
        bool delegated = false;
        if (!allowed) {
                _cleanup_(sd_bus_error_free) sd_bus_error perr = SD_BUS_ERROR_NULL;

                r = bus_polkit_authorize(m, msg, uid, CB_POLKIT_ACTION_CHECK, "run Check()", &perr);
                if (r == 0)
                        return 1;       /* deferred */
                if (r < 0)
                        return check_refused(ca, &perr, error);
                delegated = true;
        }

        uint64_t retry = 0;
        CheckAdmission admission = engine_ca_check_admit(m, ca, delegated ? 0 : uid, want_challenge, &retry);
        if (admission == CHECK_CHALLENGE_RATE) {
                /* polkit may let this user check again now, like root; asked only then. */
                _cleanup_(sd_bus_error_free) sd_bus_error perr = SD_BUS_ERROR_NULL;

                r = bus_polkit_authorize(m, msg, uid, CB_POLKIT_ACTION_CHECK, "run Check()", &perr);
                if (r == 0)
                        return 1;       /* deferred */
                if (r > 0)
                        admission = engine_ca_check_admit(m, ca, 0, want_challenge, &retry);
        }
        switch (admission) {
        case CHECK_ADMITTED:
                break;
        case CHECK_TOO_MANY:
                return bus_error_set(error, BROKER_ERROR_QUOTA_EXCEEDED,
                                         "%u Checks are running already (the broker runs at most that many at "
                                         "once); try again when one has answered.", CHECK_MAX_RUNNING);
        case CHECK_UID_BUSY:
                return bus_error_set(error, BROKER_ERROR_QUOTA_EXCEEDED,
                                         "Your previous Check is still running (one at a time per user); wait "
                                         "for its answer.");
        case CHECK_CHALLENGE_RATE:
                return bus_error_set(error, BROKER_ERROR_QUOTA_EXCEEDED,
                                         "Check with challenge=true on CA '%s' runs once per %llu minutes per "
                                         "user: each one spends one of the few one-time passwords NDES keeps. "
                                         "Try again in %llu s, run it without the challenge option, or as root.",
                                         ca->name, CHECK_CHALLENGE_INTERVAL_USEC / 60000000ULL,
                                         (unsigned long long) ((retry + 999999ULL) / 1000000ULL));
        }
        PendingReply *p = NULL;
        r = pending_reply_new(msg, NULL, NULL, &p);
        if (r < 0)
                return r;
        /* on_check_complete() answers, possibly before this returns. */
        r = engine_ca_check(m, ca, want_challenge, uid, on_check_complete, p);
        if (r < 0) {
                pending_reply_drop(p);
                return r;
        }
        return 1;
}

static int method_refresh(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        CaState *ca = userdata;
        int r;

        r = bus_polkit_authorize_unless_root(ca->manager, msg, CB_POLKIT_ACTION_RELOAD, "refresh a CA", NULL,
                                             error);
        if (r <= 0)
                return r < 0 ? r : 1;   /* refused, or deferred */
        r = engine_ca_refresh(ca->manager, ca);
        if (r < 0)
                return sd_bus_error_set_errnof(error, r, "Cannot start refreshing CA '%s': %m", ca->name);
        return sd_bus_reply_method_return(msg, NULL);
}

static int get_install_trust(sd_bus *bus, const char *path, const char *interface, const char *property,
                             sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        const CbCa *c = ca_config(userdata);

        return sd_bus_message_append(reply, "b", c && c->install_trust);
}

static int append_trust_anchor(sd_bus_message *reply, size_t i, void *userdata) {
        const TrustAnchor *a = (const TrustAnchor *) userdata + i;

        return sd_bus_message_append(reply, "(sbs)", a->fingerprint, a->authenticated, a->pem);
}

static int trust_reply_build(sd_bus_message *call, const TrustAnchor *a, size_t n, const char *note,
                             sd_bus_message **ret) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        int r;

        r = bus_reply_array_new(call, "(sbs)", n, append_trust_anchor, (void *) a, &reply);
        if (r < 0)
                return r;
        r = sd_bus_message_append(reply, "s", note);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(reply);
        return 0;
}

/* GetTrustAnchors() answered from the certificates just fetched (or the error that stopped it). */
static void trust_answer(PendingReply *p, CaState *ca) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_(freep) char *note = NULL;
        TrustAnchor *a = NULL;
        size_t n = 0;
        int r;

        r = trust_anchors_collect(ca, &a, &n, &note);
        if (r == -ENODATA) {
                (void) pending_reply_errno(p, EHOSTUNREACH, "CA %s: no certificates from GetCACert: %s", ca->name,
                                           ca->last_error && *ca->last_error ? ca->last_error : "no answer");
                return;
        }
        if (r < 0) {
                (void) pending_reply_errno(p, -r, "CA %s: cannot list its certificates: %s", ca->name, strerror(-r));
                return;
        }
        r = trust_reply_build(p->call, a, n, note, &reply);
        trust_anchors_free(a, n);
        if (r < 0) {
                (void) pending_reply_errno(p, -r, "Cannot build the GetTrustAnchors() reply: %s", strerror(-r));
                return;
        }
        (void) pending_reply_send(p, reply);
}

static int method_get_trust_anchors(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        CaState *ca = userdata;
        Manager *m = ca->manager;
        PendingReply *p = NULL;
        uid_t uid;
        int r;

        r = caller_uid_from_message(m->callers, msg, &uid);
        if (r < 0)
                return bus_caller_error(m, error, r);
        if (uid != 0)
                return bus_error_set(error, BROKER_ERROR_ACCESS_DENIED,
                                     "Only root may ask for a CA's trust anchors (certbrokerctl trust).");
        r = pending_reply_new(msg, &m->trust_waiters, ca, &p);
        if (r < 0)
                return r;
        /* Fresh from GetCACert (a renewed CA shows up): bus_ca_changed() answers, possibly
         * before this returns. */
        (void) engine_ca_refresh(m, ca);
        return 1;
}

#define INVAL SD_BUS_VTABLE_PROPERTY_EMITS_INVALIDATION
#define FIELD(name, sig, getter, field, flags) SD_BUS_PROPERTY(name, sig, getter, offsetof(CaState, field), flags)

/* The CA's state at its offsets in CaState; what comes from its configuration through getters. */
static const sd_bus_vtable ca_vtable[] = {
        SD_BUS_VTABLE_START(0),
        FIELD("Name", "s", bus_property_get_text, name, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("URL", "s", get_url, 0, INVAL),
        SD_BUS_PROPERTY("AdminURL", "s", get_admin_url, 0, INVAL),
        SD_BUS_PROPERTY("Authentication", "s", get_authentication, 0, INVAL),
        SD_BUS_PROPERTY("Challenge", "s", get_challenge, 0, INVAL),
        SD_BUS_PROPERTY("Capabilities", "as", get_capabilities, 0, INVAL),
        FIELD("CACertificates", "s", bus_property_get_text, ca_certificates, INVAL),
        FIELD("RACertificates", "s", bus_property_get_text, ra_certificates, INVAL),
        FIELD("LastContact", "t", bus_property_get_usec, last_contact, INVAL),
        FIELD("LastError", "s", bus_property_get_text, last_error, INVAL),
        SD_BUS_PROPERTY("InstallTrust", "b", get_install_trust, 0, INVAL),
        SD_BUS_METHOD_WITH_NAMES("Check", "a{sv}", SD_BUS_PARAM(options), "a(sss)", SD_BUS_PARAM(steps),
                                 method_check, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD("Refresh", "", "", method_refresh, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_NAMES("GetTrustAnchors", "", , "a(sbs)s", SD_BUS_PARAM(anchors) SD_BUS_PARAM(note),
                                 method_get_trust_anchors, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_VTABLE_END
};

int bus_ca_register(Manager *m) {
        int r;

        r = sd_bus_add_fallback_vtable(m->bus, NULL, CB_CA_PREFIX, CB_CA_IFACE, ca_vtable, ca_find, m);
        if (r < 0)
                return r;
        return sd_bus_add_node_enumerator(m->bus, NULL, CB_CA_PREFIX, ca_enumerate, m);
}

void bus_ca_changed(CaState *ca) {
        _cleanup_(freep) char *path = NULL;

        /* A GetCACert fetch ended (or the CA goes): the GetTrustAnchors() calls waiting for it. */
        if (!trust_anchors_fetching(ca))
                for (PendingReply *p = ca->manager->trust_waiters, *next; p; p = next) {
                        next = p->next;
                        if (p->data == ca)
                                trust_answer(p, ca);
                }

        if (!ca->manager->bus || sd_bus_path_encode(CB_CA_PREFIX, ca->name, &path) < 0)
                return;
        (void) sd_bus_emit_properties_changed_strv(ca->manager->bus, path, CB_CA_IFACE, NULL);
}
