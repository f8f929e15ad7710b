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
        if (manager_audit_admit(m, uid))
                log_warning_errno(r, "Cannot look up the names of uid %u's user or groups through NSS: %m",
                                  (unsigned) uid);
        return bus_error_set(error, BROKER_ERROR_NOT_READY,
                             "The broker cannot look up the names of your user (uid %u) or its groups through NSS "
                             "(%s), and its policy selects callers by name: nothing was decided; try again "
                             "once NSS (sssd, winbind, LDAP) answers.", (unsigned) uid, strerror(r < 0 ? -r : r));
}

int bus_request_path(const char *id, char **ret) {
        /* Ids are 16 lowercase hex digits: valid path elements as they are. */
        if (asprintf(ret, CB_REQUEST_PREFIX "/%s", id) < 0)
                return -ENOMEM;
        return 0;
}
