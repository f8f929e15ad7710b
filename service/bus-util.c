/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus-text.h"
#include "bus-util.h"
#include "caller.h"
#include "log.h"

/* An error whose message would not be valid UTF-8 gets the message escaped (\xNN): sd-bus
 * could not build the reply otherwise, and the caller would wait for its timeout. */
static int error_make_valid(sd_bus_error *error, int r) {
        sd_bus_error e = SD_BUS_ERROR_NULL;
        char *fixed;
        size_t size;

        if (!error->message || bus_text_is_valid(error->message))
                return r;
        size = bus_text_escaped_size(error->message);
        fixed = malloc(size);
        r = sd_bus_error_set(&e, error->name, fixed ? bus_text_escape(error->message, fixed, size) :
                             "(the message is not valid UTF-8)");
        free(fixed);
        sd_bus_error_free(error);
        *error = e;
        return r;
}

int bus_error_set(sd_bus_error *error, BrokerError e, const char *format, ...) {
        va_list ap;
        int r;

        va_start(ap, format);
        r = sd_bus_error_setfv(error, broker_error_name(e), format, ap);
        va_end(ap);
        return error_make_valid(error, r);
}

int bus_append_text(sd_bus_message *m, const char *s) {
        char *fixed;
        int r;

        if (!s)
                s = "";
        if (bus_text_is_valid(s))
                return sd_bus_message_append(m, "s", s);
        size_t size = bus_text_escaped_size(s);
        fixed = malloc(size);
        if (!fixed)
                return -ENOMEM;
        r = sd_bus_message_append(m, "s", bus_text_escape(s, fixed, size));
        free(fixed);
        return r;
}

int bus_caller_error(Manager *m, sd_bus_error *error, int r) {
        size_t total, per_uid;

        if (r != CALLER_ERR_UID_FULL && r != CALLER_ERR_FULL)
                return sd_bus_error_set_errnof(error, r, "Cannot identify the caller from the bus: %m");
        caller_registry_get_limits(m->callers, &total, &per_uid);
        uid_t uid = caller_registry_refused_uid(m->callers);
        if (manager_audit_admit(m, uid))
                log_audit(LOG_WARNING, &(AuditRecord) { .uid = uid, .decision = "deny",
                                                        .error = broker_error_name(BROKER_ERROR_QUOTA_EXCEEDED) },
                          "A connection of uid %u was refused: %s (%zu of at most %zu per user, %zu of %zu in all).",
                          (unsigned) uid, r == CALLER_ERR_UID_FULL ? "its user has its share of connections" :
                          "the broker keeps all the connections it can",
                          caller_registry_count_uid(m->callers, uid), per_uid, caller_registry_size(m->callers),
                          total);
        if (r == CALLER_ERR_UID_FULL)
                return bus_error_set(error, BROKER_ERROR_QUOTA_EXCEEDED,
                                     "Your user already has %zu connections to the bus that the broker keeps "
                                     "track of, the most it keeps per user: close connections you no longer "
                                     "use, or make your calls over one connection.", per_uid);
        return bus_error_set(error, BROKER_ERROR_QUOTA_EXCEEDED,
                             "The broker keeps track of %zu connections already, all it can: try again once "
                             "some have closed.", total);
}

int bus_nss_error(Manager *m, sd_bus_error *error, uid_t uid, int r) {
        if (r == -ETIMEDOUT || r == -EBUSY) {
                if (manager_audit_admit(m, uid))
                        log_warning("Cannot look up the names of uid %u's user or groups: %s.", (unsigned) uid,
                                    r == -EBUSY ? "too many calls are waiting for NSS" : "NSS has not answered");
                return bus_error_set(error, BROKER_ERROR_NOT_READY,
                                     "The broker cannot look up the names of your user (uid %u) or its groups: "
                                     "%s, and its policy selects callers by name: nothing was decided; try "
                                     "again once NSS (sssd, winbind, LDAP) answers.", (unsigned) uid,
                                     r == -EBUSY ? "too many calls are waiting for NSS"
                                                 : "NSS has not answered in time");
        }
        if (manager_audit_admit(m, uid))
                log_warning_errno(r, "Cannot look up the names of uid %u's user or groups through NSS: %m",
                                  (unsigned) uid);
        return bus_error_set(error, BROKER_ERROR_NOT_READY,
                             "The broker cannot look up the names of your user (uid %u) or its groups through NSS "
                             "(%s), and its policy selects callers by name: nothing was decided; try again "
                             "once NSS (sssd, winbind, LDAP) answers.", (unsigned) uid, strerror(r < 0 ? -r : r));
}

typedef struct DeferredCall DeferredCall;
struct DeferredCall {
        Manager *manager;
        sd_bus_message *msg;
        sd_bus_message_handler_t handler;
        BusRefind refind;
        NssWaiter *waiter;
        DeferredCall *prev, *next;
};

static void deferred_unlink_free(DeferredCall *d) {
        Manager *m = d->manager;

        if (d->prev)
                d->prev->next = d->next;
        else
                m->nss_deferred = d->next;
        if (d->next)
                d->next->prev = d->prev;
        m->n_nss_deferred--;
        nss_waiter_free(d->waiter);
        sd_bus_message_unref(d->msg);
        free(d);
}

static void deferred_run(void *userdata) {
        DeferredCall *d = userdata;
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus_message *msg = sd_bus_message_ref(d->msg);
        sd_bus_message_handler_t handler = d->handler;
        Manager *m = d->manager;
        void *object;
        int r;

        d->waiter = NULL;               /* freed by the cache before this runs */
        object = d->refind ? d->refind(m, msg) : m;
        deferred_unlink_free(d);
        if (!object)
                r = bus_error_set(&error, BROKER_ERROR_NOT_READY,
                                  "The object this call was made on went away while the broker waited for NSS "
                                  "(a Reload removed it?): call again.");
        else {
                r = sd_bus_message_rewind(msg, true);
                if (r >= 0)
                        r = handler(msg, object, &error);
        }
        if (sd_bus_error_is_set(&error))
                (void) sd_bus_reply_method_error(msg, &error);
        else if (r < 0)
                (void) sd_bus_reply_method_errnof(msg, r, "Cannot answer this call: %m");
        sd_bus_error_free(&error);
        sd_bus_message_unref(msg);
}

int bus_defer_for_nss(Manager *m, sd_bus_message *msg, sd_bus_message_handler_t handler, BusRefind refind,
                      uid_t uid, sd_bus_error *error) {
        DeferredCall *d;
        int r;

        if (!m->nss || m->n_nss_deferred >= BUS_NSS_DEFERRED_MAX)
                return bus_nss_error(m, error, uid, -EBUSY);
        d = calloc(1, sizeof(*d));
        if (!d)
                return -ENOMEM;
        *d = (DeferredCall) { .manager = m, .msg = sd_bus_message_ref(msg), .handler = handler, .refind = refind,
                              .next = m->nss_deferred };
        r = nss_cache_wait(m->nss, deferred_run, d, &d->waiter);
        if (r < 0) {
                sd_bus_message_unref(d->msg);
                free(d);
                return r;
        }
        if (d->next)
                d->next->prev = d;
        m->nss_deferred = d;
        m->n_nss_deferred++;
        return 1;
}

void bus_deferred_free_all(Manager *m) {
        while (m->nss_deferred)
                deferred_unlink_free(m->nss_deferred);
}

int bus_request_path(const char *id, char **ret) {
        /* Ids are 16 lowercase hex digits: valid path elements as they are. */
        if (asprintf(ret, CB_REQUEST_PREFIX "/%s", id) < 0)
                return -ENOMEM;
        return 0;
}
