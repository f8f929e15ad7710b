/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <sys/types.h>
#include <systemd/sd-bus.h>

#include "cb-policy.h"

/* Who is calling, from the bus credentials only: never from anything the
 * caller says about itself. dbus-daemon reports pid and euid; the rest
 * (supplementary gids, unit) is augmented from /proc by sd-bus, which is
 * racy against pid reuse, so it only ever narrows what a caller may do when
 * the pid is gone (a vanished process has no gids and no unit). */
typedef struct Caller {
        uid_t uid;
        gid_t gid;                      /* primary gid, (gid_t) -1 when unknown */
        gid_t *gids;                    /* primary (first, when known) and supplementary gids */
        size_t n_gids;
        pid_t pid;                      /* 0 when unknown */
        char *user_name;                /* NULL when the uid has no passwd entry */
        char **group_names;             /* parallel to gids; entries may be NULL */
        size_t n_group_names;
        char *unit;                     /* systemd unit, NULL when unknown */
        char *selinux_label;            /* full label, NULL when the bus gives none */
} Caller;

/* What to resolve through NSS (which may block, e.g. sssd): user and group names are only
 * looked up when some rule selects by name. */
typedef enum CallerNames {
        CALLER_USER_NAME  = 1 << 0,
        CALLER_GROUP_NAMES = 1 << 1,
} CallerNames;

/* Which names the configuration's rules need (Users=/Groups= values that are not numbers). */
CallerNames caller_names_needed(const CbConfig *config);

/* Fill *ret from the sender of m. Returns 0 or a negative errno; on failure
 * *ret is untouched. */
int caller_from_message(sd_bus_message *m, CallerNames names, Caller *ret);

/* The sender's uid alone (cheaper: no group or unit look-ups). */
int caller_uid_from_message(sd_bus_message *m, uid_t *ret_uid);

void caller_done(Caller *c);

/* The caller as policy/ sees it (pointers into c). */
void caller_to_policy(const Caller *c, CbCaller *ret);
