/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* polkit authorization of the administrative methods (README "Delegating administration with
 * polkit"): org.certbroker.broker1.reload, .check and .manage. Root never asks polkit; the
 * callers our policy files or ownership already allow never do either. polkit is asked only
 * where the broker would otherwise refuse.
 *
 * Asynchronous, without blocking the loop: the first time a message needs an action, a
 * CheckAuthorization call goes to org.freedesktop.PolicyKit1 (subject: the caller's unique
 * bus name, interactive when the caller allows interactive authorization) and
 * bus_polkit_authorize() returns 0 with the call deferred (BUS_DEFER_POLKIT, bus-util.h); the
 * handler then returns 1 without answering. When polkit answers, the call is dispatched again
 * (bus_deferred_resume()), and this time bus_polkit_authorize() gives the answer. */

#include <stdbool.h>
#include <systemd/sd-bus.h>

#include "manager.h"

#define CB_POLKIT_ACTION_RELOAD "org.certbroker.broker1.reload"
#define CB_POLKIT_ACTION_CHECK  "org.certbroker.broker1.check"
#define CB_POLKIT_ACTION_MANAGE "org.certbroker.broker1.manage"

/* Queries waiting for polkit at once, in all and per uid; a call past either is refused with
 * QuotaExceeded. Answers are kept at most CB_POLKIT_ANSWERS_MAX (the oldest go first). */
#define CB_POLKIT_QUERIES_MAX 256U
#define CB_POLKIT_QUERIES_PER_UID_MAX 16U
#define CB_POLKIT_ANSWERS_MAX 1024U

typedef struct PolkitRegistry PolkitRegistry;

int bus_polkit_registry_new(PolkitRegistry **ret);
/* Cancels what is in flight (its messages are not answered). Accepts NULL. */
PolkitRegistry *bus_polkit_registry_free(PolkitRegistry *r);

/* Whether polkit authorizes msg's sender for action; what: the refused thing, for the
 * message ("reload the configuration"). Returns 1 authorized; 0 asked, the message comes
 * again (return 1 from the handler without a reply); or a negative errno with error set:
 * AccessDenied (polkit said no, or is not there), org.freedesktop.DBus.Error.
 * InteractiveAuthorizationRequired (polkit wants authentication and the caller did not allow
 * interactive authorization), QuotaExceeded (too many queries in flight). uid: the caller's,
 * as its handler found it (counted against the per-uid limit of queries in flight). */
int bus_polkit_authorize(Manager *m, sd_bus_message *msg, uid_t uid, const char *action, const char *what,
                         sd_bus_error *error);

/* Whether msg's caller may do what (the refused thing, for the message): root may, anyone else
 * if polkit authorizes action. 1 authorized; 0 polkit was asked and the call comes again
 * (return 1 from the handler without a reply); a negative errno with error set (the caller
 * unknown or refused: bus_caller_error(); polkit's refusals). *ret_uid (optional): the caller's
 * uid, once known. */
int bus_polkit_authorize_unless_root(Manager *m, sd_bus_message *msg, const char *action, const char *what,
                                     uid_t *ret_uid, sd_bus_error *error);

/* The answer already known for msg and action, without asking: 1 authorized, 0 none known,
 * negative with error set as above. For the object lookup, after the filter asked. */
int bus_polkit_known(Manager *m, sd_bus_message *msg, const char *action, sd_bus_error *error);
