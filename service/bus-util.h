/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdarg.h>
#include <stdlib.h>
#include <systemd/sd-bus.h>

#include "broker-error.h"
#include "manager.h"

#define CB_MANAGER_PATH    "/org/certbroker/Broker1"
#define CB_REQUEST_PREFIX  "/org/certbroker/Broker1/request"
#define CB_CA_PREFIX       "/org/certbroker/Broker1/ca"
#define CB_MANAGER_IFACE   "org.certbroker.Broker1.Manager"
#define CB_REQUEST_IFACE   "org.certbroker.Broker1.Request"
#define CB_CA_IFACE        "org.certbroker.Broker1.CA"

#include "basic.h"

/* Set error to the D-Bus name of e (broker-error.h) with a formatted message, made valid UTF-8
 * (bus-text.h) if it is not. Returns the negative errno sd-bus maps the error to. A caller's
 * argument goes into the format through bus_text_echo(), never cut with "%.Ns" (which can
 * split a character). */
int bus_error_set(sd_bus_error *error, BrokerError e, const char *format, ...)
        __attribute__((format(printf, 3, 4)));

/* Append s (NULL: "") as a string, escaped (bus_text_escape()) if it is not valid UTF-8. For
 * texts from elsewhere: server answers, stored requests, configuration. */
int bus_append_text(sd_bus_message *m, const char *s);

/* Property getters for a field at the vtable entry's offset (SD_BUS_PROPERTY(name, sig, getter,
 * offsetof(Struct, field), flags)): the object's userdata plus the offset is the field. Texts
 * through bus_append_text() (NULL: ""). */
int bus_property_get_text(sd_bus *bus, const char *path, const char *interface, const char *property,
                          sd_bus_message *reply, void *userdata, sd_bus_error *error);      /* char * */
int bus_property_get_chars(sd_bus *bus, const char *path, const char *interface, const char *property,
                           sd_bus_message *reply, void *userdata, sd_bus_error *error);     /* char [] */
int bus_property_get_usec(sd_bus *bus, const char *path, const char *interface, const char *property,
                          sd_bus_message *reply, void *userdata, sd_bus_error *error);      /* uint64_t */
int bus_property_get_u32(sd_bus *bus, const char *path, const char *interface, const char *property,
                         sd_bus_message *reply, void *userdata, sd_bus_error *error);       /* uint32_t, uid_t */
int bus_property_get_bool(sd_bus *bus, const char *path, const char *interface, const char *property,
                          sd_bus_message *reply, void *userdata, sd_bus_error *error);      /* bool */

/* The error for a failed caller_from_message()/caller_uid_from_message(): a refused connection
 * (CALLER_ERR_UID_FULL, CALLER_ERR_FULL) is QuotaExceeded, saying why, and audited (limited
 * per uid); anything else is the errno's error. Returns the negative errno. */
int bus_caller_error(Manager *m, sd_bus_error *error, int r);
/* caller_resolve_names() failed (NSS): NotReady, nothing decided, try again; logged (limited
 * per uid). */
int bus_nss_error(Manager *m, sd_bus_error *error, uid_t uid, int r);

/* A method call answered later, once what it waits for is there (the reason): NSS's answer
 * for the caller's names (BUS_DEFER_NSS), polkit's for an action (BUS_DEFER_POLKIT, bus-polkit.h).
 * Then the call is read from its start and put back in the bus's read queue
 * (sd_bus_enqueue_for_read()), so it goes through the same filters, object lookup and handler
 * as the first time; the handler finds what it waited for (the NSS cache's answer, the polkit
 * registry's) and answers, or defers again. An object that went away meanwhile is answered by
 * its lookup, as for any call. A call that cannot be dispatched again is answered with an
 * error: none is left unanswered. */
typedef enum BusDeferReason {
        BUS_DEFER_NSS,
        BUS_DEFER_POLKIT,
        _BUS_DEFER_REASON_MAX,
} BusDeferReason;

typedef struct BusDeferred BusDeferred;

/* At most this many calls wait for NSS at once; past it a call is answered NotReady. (polkit
 * has its own bounds, bus-polkit.h.) */
#define BUS_NSS_DEFERRED_MAX 1024U

/* The next entry of an a{sv} the caller has entered: 1 with its name and its variant's
 * contents type (NULL when there is none), the message at the variant (read it, then
 * sd_bus_message_exit_container() the entry); 0 after the last entry. */
int bus_option_next(sd_bus_message *m, const char **ret_name, const char **ret_contents);

/* msg waits (a reference is kept) until bus_deferred_resume(). */
int bus_defer(Manager *m, sd_bus_message *msg, BusDeferReason reason, BusDeferred **ret);
/* What it waited for is there: dispatch the call again. Frees d. */
void bus_deferred_resume(BusDeferred *d);
/* Drops the call without an answer (shutdown). NULL-safe; returns NULL. */
BusDeferred *bus_deferred_free(BusDeferred *d);

/* Where a handler's caller_resolve_names() (or caller_from_message()) answered -EINPROGRESS:
 * msg is dispatched again once NSS has answered (any look-up: the handler asks again, and
 * defers again while its own look-up runs). Returns 1 (the call will be answered) or a
 * negative errno with error set (NotReady past BUS_NSS_DEFERRED_MAX). */
int bus_defer_for_nss(Manager *m, sd_bus_message *msg, uid_t uid, sd_bus_error *error);
/* Drops the calls still waiting (shutdown). */
void bus_deferred_free_all(Manager *m);

/* A node enumerator's NULL-terminated list of paths: frees the paths and the list. */
static inline void bus_nodes_freep(char ***nodes) {
        if (!*nodes)
                return;
        for (char **p = *nodes; *p; p++)
                free(*p);
        free(*nodes);
}

/* /org/certbroker/Broker1/request/<id> */
int bus_request_path(const char *id, char **ret);

/* Connects to the system bus, registers the objects, installs the hooks (manager.h) and owns
 * the name. Losing the connection later ends the event loop with EXIT_FAILURE (the unit's
 * Restart=on-failure starts the broker again). */
int bus_manager_connect(Manager *m);
/* Registers the objects on bus (m->bus), with the caller registry and the hooks; no name, no
 * match on the bus (bus_manager_connect(), and tests over a direct connection). */
int bus_manager_attach(Manager *m, sd_bus *bus);

int bus_request_register(Manager *m);
int bus_ca_register(Manager *m);

/* The hooks (bus-manager.c installs them). PropertiesChanged with invalidations only: no
 * values reach other tenants. No ObjectManager either, for the same reason (InterfacesAdded
 * would carry values). A request that ended answers its Wait() calls. */
void bus_request_changed(Request *r);
void bus_request_gone(Request *r);
void bus_ca_changed(CaState *ca);
/* The connection unique_name left the bus: its Wait() calls are dropped (nobody to reply to). */
void bus_request_caller_gone(const char *unique_name, void *userdata);

/* Appends an array of rows of type row (a signature: "s", "(so)"...): append_row(m, i, userdata)
 * appends row i for each i from 0 to n - 1, or nothing to leave it out. */
typedef int (*BusAppendRow)(sd_bus_message *m, size_t i, void *userdata);
int bus_append_array(sd_bus_message *m, const char *row, size_t n, BusAppendRow append_row, void *userdata);
/* A method return to call that starts with such an array (more may be appended before it is
 * sent); bus_reply_array() sends it as it is. */
int bus_reply_array_new(sd_bus_message *call, const char *row, size_t n, BusAppendRow append_row, void *userdata,
                        sd_bus_message **ret);
int bus_reply_array(sd_bus_message *call, const char *row, size_t n, BusAppendRow append_row, void *userdata);

