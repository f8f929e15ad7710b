/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* polkit authorization of the administrative methods (bus-polkit.h). */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "basic.h"
#include "bus-polkit.h"
#include "bus-util.h"
#include "caller.h"
#include "log.h"

#define POLKIT_NAME  "org.freedesktop.PolicyKit1"
#define POLKIT_PATH  "/org/freedesktop/PolicyKit1/Authority"
#define POLKIT_IFACE "org.freedesktop.PolicyKit1.Authority"
#define POLKIT_FLAG_ALLOW_USER_INTERACTION 1U

/* How long polkit may take: a person typing a password, or a daemon answering. */
#define POLKIT_TIMEOUT_INTERACTIVE_USEC (UINT64_C(300) * 1000000U)
#define POLKIT_TIMEOUT_USEC (UINT64_C(25) * 1000000U)
/* A known answer is kept this long after polkit gave it (the message's second dispatch
 * reads it; the message itself is held so its address cannot be reused meanwhile). */
#define POLKIT_ANSWER_KEEP_USEC (UINT64_C(60) * 1000000U)

typedef enum PolkitAnswer {
        POLKIT_PENDING,
        POLKIT_YES,
        POLKIT_NO,
} PolkitAnswer;

typedef struct PolkitQuery PolkitQuery;
struct PolkitQuery {
        PolkitRegistry *registry;
        PolkitQuery *next;
        sd_bus_message *msg;            /* the call being authorized (a reference) */
        BusDeferred *deferred;          /* the call, until polkit answers (bus-util.h) */
        char *action;
        uid_t uid;                      /* the caller, for the log */
        bool interactive;               /* the call allowed interactive authorization */
        sd_bus_slot *slot;              /* the CheckAuthorization call while pending */
        PolkitAnswer answer;
        uint64_t answered_usec;
        char *error_name;               /* POLKIT_NO: the error the call gets */
        char *error_message;
};

struct PolkitRegistry {
        PolkitQuery *queries;
        unsigned n_pending;
};

static void query_free(PolkitQuery *q) {
        if (!q)
                return;
        if (q->slot) {
                q->slot = sd_bus_slot_unref(q->slot);
                q->registry->n_pending--;
        }
        bus_deferred_free(q->deferred);
        sd_bus_message_unref(q->msg);
        free(q->action);
        free(q->error_name);
        free(q->error_message);
        free(q);
}

static void query_freep(PolkitQuery **q) {
        query_free(*q);
}

int bus_polkit_registry_new(PolkitRegistry **ret) {
        PolkitRegistry *r = calloc(1, sizeof *r);
        if (!r)
                return -ENOMEM;
        *ret = r;
        return 0;
}

PolkitRegistry *bus_polkit_registry_free(PolkitRegistry *r) {
        if (!r)
                return NULL;
        while (r->queries) {
                PolkitQuery *q = r->queries;
                r->queries = q->next;
                query_free(q);
        }
        free(r);
        return NULL;
}

/* Drops answers older than POLKIT_ANSWER_KEEP_USEC, and past CB_POLKIT_ANSWERS_MAX the older
 * ones (the list is newest first). */
static void registry_sweep(PolkitRegistry *r, uint64_t now) {
        unsigned answers = 0;

        for (PolkitQuery **p = &r->queries; *p;) {
                PolkitQuery *q = *p;
                if (q->answer != POLKIT_PENDING &&
                    (q->answered_usec + POLKIT_ANSWER_KEEP_USEC < now || ++answers > CB_POLKIT_ANSWERS_MAX)) {
                        *p = q->next;
                        query_free(q);
                } else
                        p = &q->next;
        }
}

static unsigned registry_pending_for(PolkitRegistry *r, uid_t uid) {
        unsigned n = 0;
        for (PolkitQuery *q = r->queries; q; q = q->next)
                if (q->answer == POLKIT_PENDING && q->uid == uid)
                        n++;
        return n;
}

static PolkitQuery *registry_find(PolkitRegistry *r, sd_bus_message *msg, const char *action) {
        for (PolkitQuery *q = r->queries; q; q = q->next)
                if (q->msg == msg && strcmp(q->action, action) == 0)
                        return q;
        return NULL;
}

static int query_deny(PolkitQuery *q, const char *name, const char *format, ...)
        __attribute__((format(printf, 3, 4)));
static int query_deny(PolkitQuery *q, const char *name, const char *format, ...) {
        va_list ap;
        int k;

        q->answer = POLKIT_NO;
        q->error_name = strdup(name);
        va_start(ap, format);
        k = vasprintf(&q->error_message, format, ap);
        va_end(ap);
        if (k < 0)
                q->error_message = NULL;
        return q->error_name && q->error_message ? 0 : -ENOMEM;
}

static void query_log(const PolkitQuery *q, uid_t uid) {
        log_info("polkit %s action %s for uid %u (%s.%s)%s%s",
                 q->answer == POLKIT_YES ? "authorized" : "did not authorize", q->action, (unsigned) uid,
                 sd_bus_message_get_interface(q->msg) ?: "?", sd_bus_message_get_member(q->msg) ?: "?",
                 q->answer == POLKIT_YES ? "" : ": ", q->answer == POLKIT_YES ? "" : q->error_message ?: "");
}

/* CheckAuthorization's (bba{ss}): is_authorized, is_challenge, and the detail polkit.dismissed. */
static int polkit_reply_read(sd_bus_message *reply, int *ret_authorized, int *ret_challenge, bool *ret_dismissed) {
        int r;

        r = sd_bus_message_enter_container(reply, 'r', "bba{ss}");
        if (r < 0)
                return r;
        r = sd_bus_message_read(reply, "bb", ret_authorized, ret_challenge);
        if (r < 0)
                return r;
        r = sd_bus_message_enter_container(reply, 'a', "{ss}");
        if (r < 0)
                return r;
        for (;;) {
                const char *k, *v;

                r = sd_bus_message_read(reply, "{ss}", &k, &v);
                if (r <= 0)
                        return r;
                if (strcmp(k, "polkit.dismissed") == 0 && strcmp(v, "true") == 0)
                        *ret_dismissed = true;
        }
}

static int on_polkit_reply(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        PolkitQuery *q = userdata;
        const sd_bus_error *e = sd_bus_message_get_error(reply);
        uid_t uid = q->uid;
        int r = 0;

        q->slot = sd_bus_slot_unref(q->slot);
        q->registry->n_pending--;
        q->answered_usec = monotonic_usec();

        if (e) {
                /* Not there (no polkitd on this bus), or it failed: nobody but root. */
                r = query_deny(q, BROKER_ERROR_PREFIX "AccessDenied",
                               "Only root, or a user polkit authorizes for %s, may do this; polkit did not "
                               "answer on the system bus (%s: %s).",
                               q->action, e->name, e->message ?: "no message");
        } else {
                int authorized = 0, challenge = 0;
                bool dismissed = false;

                r = polkit_reply_read(reply, &authorized, &challenge, &dismissed);
                if (r < 0)
                        r = query_deny(q, BROKER_ERROR_PREFIX "AccessDenied",
                                       "polkit's answer for %s does not parse: %s.", q->action, strerror(-r));
                else if (authorized)
                        q->answer = POLKIT_YES;
                else if (dismissed)
                        r = query_deny(q, BROKER_ERROR_PREFIX "AccessDenied",
                                       "Authentication for polkit action %s was dismissed.", q->action);
                else if (challenge && q->interactive)
                        r = query_deny(q, BROKER_ERROR_PREFIX "AccessDenied",
                                       "polkit action %s needs authentication (an administrator's password) and "
                                       "none was given: no polkit agent asked in the caller's session (start one, "
                                       "e.g. pkttyagent), or ask the administrator for a polkit rule.", q->action);
                else if (challenge)
                        r = query_deny(q, SD_BUS_ERROR_INTERACTIVE_AUTHORIZATION_REQUIRED,
                                       "polkit action %s needs authentication (an administrator's password): "
                                       "call again allowing interactive authorization, with a polkit agent "
                                       "running (certbrokerctl does from a terminal; busctl --allow-interactive-authorization=yes), "
                                       "or ask the administrator for a polkit rule.", q->action);
                else
                        r = query_deny(q, BROKER_ERROR_PREFIX "AccessDenied",
                                       "polkit does not authorize uid %u for action %s (no polkit rule grants it "
                                       "to this user or its groups).", (unsigned) uid, q->action);
        }
        if (r < 0 && q->answer == POLKIT_PENDING)
                q->answer = POLKIT_NO;
        query_log(q, uid);

        /* The handler reads the answer this time. */
        bus_deferred_resume(TAKE_PTR(q->deferred));
        return 0;
}

static int query_result(const PolkitQuery *q, sd_bus_error *error) {
        if (q->answer == POLKIT_YES)
                return 1;
        if (!q->error_name || !q->error_message)
                return -ENOMEM;
        return sd_bus_error_set(error, q->error_name, q->error_message);
}

int bus_polkit_known(Manager *m, sd_bus_message *msg, const char *action, sd_bus_error *error) {
        PolkitQuery *q = m->polkit ? registry_find(m->polkit, msg, action) : NULL;

        if (!q || q->answer == POLKIT_PENDING)
                return 0;
        return query_result(q, error);
}

int bus_polkit_authorize(Manager *m, sd_bus_message *msg, uid_t uid, const char *action, const char *what,
                         sd_bus_error *error) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *call = NULL;
        PolkitRegistry *reg = m->polkit;
        PolkitQuery *known;
        const char *sender = sd_bus_message_get_sender(msg);
        bool interactive = sd_bus_message_get_allow_interactive_authorization(msg) > 0;
        int r;

        if (!reg || !m->bus)
                return bus_error_set(error, BROKER_ERROR_ACCESS_DENIED, "Only root may %s.", what);
        registry_sweep(reg, monotonic_usec());
        known = registry_find(reg, msg, action);
        if (known) {
                if (known->answer == POLKIT_PENDING)
                        return 0;       /* still deferred: dispatched again when polkit answers */
                return query_result(known, error);
        }
        if (!sender)
                return bus_error_set(error, BROKER_ERROR_ACCESS_DENIED,
                                     "Only root may %s (a call without a sender cannot be authorized by polkit).",
                                     what);
        if (reg->n_pending >= CB_POLKIT_QUERIES_MAX)
                return bus_error_set(error, BROKER_ERROR_QUOTA_EXCEEDED,
                                     "%u polkit authorizations are in flight already; try again when they "
                                     "have been answered.", CB_POLKIT_QUERIES_MAX);
        if (registry_pending_for(reg, uid) >= CB_POLKIT_QUERIES_PER_UID_MAX)
                return bus_error_set(error, BROKER_ERROR_QUOTA_EXCEEDED,
                                     "%u of your calls wait for polkit already; try again when they have been "
                                     "answered.", CB_POLKIT_QUERIES_PER_UID_MAX);

        _cleanup_(query_freep) PolkitQuery *q = calloc(1, sizeof *q);
        if (!q)
                return -ENOMEM;
        q->registry = reg;
        q->uid = uid;
        q->interactive = interactive;
        q->msg = sd_bus_message_ref(msg);
        q->action = strdup(action);
        if (!q->action)
                return -ENOMEM;
        r = sd_bus_message_new_method_call(m->bus, &call, POLKIT_NAME, POLKIT_PATH, POLKIT_IFACE,
                                           "CheckAuthorization");
        if (r < 0)
                return sd_bus_error_set_errnof(error, r, "Cannot make the polkit call for %s: %m", action);
        r = sd_bus_message_append(call, "(sa{sv})sa{ss}us", "system-bus-name", 1, "name", "s", sender,
                                  action, 0, interactive ? POLKIT_FLAG_ALLOW_USER_INTERACTION : 0U, "");
        if (r < 0)
                return sd_bus_error_set_errnof(error, r, "Cannot fill in the polkit call for %s: %m", action);
        r = bus_defer(m, msg, BUS_DEFER_POLKIT, &q->deferred);
        if (r < 0)
                return r;
        r = sd_bus_call_async(m->bus, &q->slot, call, on_polkit_reply, q,
                              interactive ? POLKIT_TIMEOUT_INTERACTIVE_USEC : POLKIT_TIMEOUT_USEC);
        if (r < 0)
                return sd_bus_error_set_errnof(error, r, "Cannot ask polkit to authorize %s: %m", action);
        reg->n_pending++;
        q->next = reg->queries;
        reg->queries = TAKE_PTR(q);
        return 0;
}

int bus_polkit_authorize_unless_root(Manager *m, sd_bus_message *msg, const char *action, const char *what,
                                     uid_t *ret_uid, sd_bus_error *error) {
        uid_t uid;
        int r;

        r = caller_uid_from_message(m->callers, msg, &uid);
        if (r < 0)
                return bus_caller_error(m, error, r);
        if (ret_uid)
                *ret_uid = uid;
        if (uid == 0)
                return 1;
        return bus_polkit_authorize(m, msg, uid, action, what, error);
}
