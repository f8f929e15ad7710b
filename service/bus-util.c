/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus-polkit.h"
#include "bus-text.h"
#include "bus-util.h"
#include "caller.h"
#include "log.h"

/* An error whose message would not be valid UTF-8 gets the message escaped (\xNN): sd-bus
 * could not build the reply otherwise, and the caller would wait for its timeout. */
static int error_make_valid(sd_bus_error *error, int r) {
        sd_bus_error e = SD_BUS_ERROR_NULL;
        _cleanup_(freep) char *fixed = NULL;
        size_t size;

        if (!error->message || bus_text_is_valid(error->message))
                return r;
        size = bus_text_escaped_size(error->message);
        fixed = malloc(size);
        r = sd_bus_error_set(&e, error->name, fixed ? bus_text_escape(error->message, fixed, size) :
                             "(the message is not valid UTF-8)");
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
        _cleanup_(freep) char *fixed = NULL;

        if (!s)
                s = "";
        if (bus_text_is_valid(s))
                return sd_bus_message_append(m, "s", s);
        size_t size = bus_text_escaped_size(s);
        fixed = malloc(size);
        if (!fixed)
                return -ENOMEM;
        return sd_bus_message_append(m, "s", bus_text_escape(s, fixed, size));
}

int bus_property_get_text(sd_bus *bus, const char *path, const char *interface, const char *property,
                          sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        return bus_append_text(reply, *(const char *const *) userdata);
}

int bus_property_get_chars(sd_bus *bus, const char *path, const char *interface, const char *property,
                           sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        return bus_append_text(reply, userdata);
}

int bus_property_get_usec(sd_bus *bus, const char *path, const char *interface, const char *property,
                          sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        return sd_bus_message_append(reply, "t", *(const uint64_t *) userdata);
}

int bus_property_get_u32(sd_bus *bus, const char *path, const char *interface, const char *property,
                         sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        return sd_bus_message_append(reply, "u", *(const uint32_t *) userdata);
}

int bus_property_get_bool(sd_bus *bus, const char *path, const char *interface, const char *property,
                          sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        return sd_bus_message_append(reply, "b", (int) *(const bool *) userdata);
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

struct BusDeferred {
        Manager *manager;
        sd_bus_message *msg;
        BusDeferReason reason;
        NssWaiter *waiter;              /* BUS_DEFER_NSS: until NSS answers */
        BusDeferred *prev, *next;
};

_Static_assert(ELEMENTSOF(((Manager *) NULL)->n_deferred) == _BUS_DEFER_REASON_MAX,
               "Manager.n_deferred has a count per BusDeferReason");

static const char *const defer_reason_table[_BUS_DEFER_REASON_MAX] = {
        [BUS_DEFER_NSS] = "NSS",
        [BUS_DEFER_POLKIT] = "polkit",
};

int bus_option_next(sd_bus_message *m, const char **ret_name, const char **ret_contents) {
        char type;
        int r;

        r = sd_bus_message_enter_container(m, 'e', "sv");
        if (r <= 0)
                return r;
        r = sd_bus_message_read(m, "s", ret_name);
        if (r < 0)
                return r;
        r = sd_bus_message_peek_type(m, &type, ret_contents);
        return r < 0 ? r : 1;
}

static const char *bus_defer_reason_to_string(BusDeferReason reason) {
        return reason >= 0 && reason < _BUS_DEFER_REASON_MAX ? defer_reason_table[reason] : NULL;
}

int bus_defer(Manager *m, sd_bus_message *msg, BusDeferReason reason, BusDeferred **ret) {
        BusDeferred *d;

        assert(reason >= 0 && reason < _BUS_DEFER_REASON_MAX);
        d = calloc(1, sizeof(*d));
        if (!d)
                return -ENOMEM;
        *d = (BusDeferred) { .manager = m, .msg = sd_bus_message_ref(msg), .reason = reason,
                             .next = m->deferred };
        if (d->next)
                d->next->prev = d;
        m->deferred = d;
        m->n_deferred[reason]++;
        *ret = d;
        return 0;
}

BusDeferred *bus_deferred_free(BusDeferred *d) {
        if (!d)
                return NULL;
        Manager *m = d->manager;
        if (d->prev)
                d->prev->next = d->next;
        else
                m->deferred = d->next;
        if (d->next)
                d->next->prev = d->prev;
        m->n_deferred[d->reason]--;
        nss_waiter_free(d->waiter);
        sd_bus_message_unref(d->msg);
        free(d);
        return NULL;
}

/* A call that waited and cannot be dispatched again is answered with the error: never left
 * unanswered, the caller would wait for its whole timeout. */
static void deferred_unanswerable(sd_bus_message *msg, int r, const char *reason, const char *step) {
        log_error_errno(r, "Cannot dispatch %s.%s again after %s answered: it cannot be %s: %m",
                        sd_bus_message_get_interface(msg) ?: "?", sd_bus_message_get_member(msg) ?: "?", reason,
                        step);
        (void) sd_bus_reply_method_errnof(msg, r, "The broker cannot take up your call again after %s answered "
                                          "(%m): nothing was decided; call again.", reason);
}

void bus_deferred_resume(BusDeferred *d) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *msg = sd_bus_message_ref(d->msg);
        const char *reason = bus_defer_reason_to_string(d->reason);
        int r;

        bus_deferred_free(d);
        r = sd_bus_message_rewind(msg, true);
        if (r < 0) {
                deferred_unanswerable(msg, r, reason, "read from its start");
                return;
        }
        r = sd_bus_enqueue_for_read(sd_bus_message_get_bus(msg), msg);
        if (r < 0)
                deferred_unanswerable(msg, r, reason, "put back in the read queue");
}

static void on_nss_answered(void *userdata) {
        BusDeferred *d = userdata;

        d->waiter = NULL;               /* freed by the cache before this runs */
        bus_deferred_resume(d);
}

int bus_defer_for_nss(Manager *m, sd_bus_message *msg, uid_t uid, sd_bus_error *error) {
        BusDeferred *d;
        int r;

        if (!m->nss || m->n_deferred[BUS_DEFER_NSS] >= BUS_NSS_DEFERRED_MAX)
                return bus_nss_error(m, error, uid, -EBUSY);
        r = bus_defer(m, msg, BUS_DEFER_NSS, &d);
        if (r < 0)
                return r;
        r = nss_cache_wait(m->nss, on_nss_answered, d, &d->waiter);
        if (r < 0) {
                bus_deferred_free(d);
                return r;
        }
        return 1;
}

void bus_deferred_free_all(Manager *m) {
        while (m->deferred)
                bus_deferred_free(m->deferred);
}

int bus_request_path(const char *id, char **ret) {
        /* Ids are 16 lowercase hex digits: valid path elements as they are. */
        if (asprintf(ret, CB_REQUEST_PREFIX "/%s", id) < 0)
                return -ENOMEM;
        return 0;
}

int bus_append_array(sd_bus_message *m, const char *row, size_t n, BusAppendRow append_row, void *userdata) {
        int r;

        r = sd_bus_message_open_container(m, 'a', row);
        if (r < 0)
                return r;
        for (size_t i = 0; i < n; i++) {
                r = append_row(m, i, userdata);
                if (r < 0)
                        return r;
        }
        return sd_bus_message_close_container(m);
}

int bus_reply_array_new(sd_bus_message *call, const char *row, size_t n, BusAppendRow append_row, void *userdata,
                        sd_bus_message **ret) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        int r;

        r = sd_bus_message_new_method_return(call, &reply);
        if (r < 0)
                return r;
        r = bus_append_array(reply, row, n, append_row, userdata);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(reply);
        return 0;
}

int bus_reply_array(sd_bus_message *call, const char *row, size_t n, BusAppendRow append_row, void *userdata) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        int r;

        r = bus_reply_array_new(call, row, n, append_row, userdata, &reply);
        if (r < 0)
                return r;
        return sd_bus_send(NULL, reply, NULL);
}
