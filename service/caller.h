/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <sys/types.h>
#include <systemd/sd-bus.h>

#include "cb-policy.h"

/* Who is calling: only what the bus daemon vouches for, never what /proc says later.
 *
 * - uid, groups and SELinux label: what dbus-daemon captured when the caller connected
 *   (GetConnectionCredentials: UnixUserID, UnixGroupIDs, LinuxSecurityLabel). sd-bus 252 would
 *   "augment" the groups from /proc/<pid>, which is whoever holds that pid now: never used.
 * - unit: only of the process that connected, while it provably is that process. At the first
 *   call of a connection the process is pinned (ProcessFD where the bus offers it, else a pidfd
 *   of ProcessID) and kept only if its effective uid is the bus's uid; each decision reads its
 *   unit from /proc and then checks that the pinned process is still alive and still has that
 *   uid. A connection whose connecting process is gone, or was another uid's when first seen,
 *   has no unit, and unit_note says why.
 * What remains: a uid's own processes can stand in for each other (the connecting process may
 * have exited, and its pid been taken by another process of the same uid, before the
 * connection's first call to the broker); the bus does not tell when a connection was made.
 *
 * Connections are remembered per unique name (the bus never reuses one) until they leave the
 * bus, which also tells the registry's gone handler (Wait() callers are dropped). */
typedef struct Caller {
        uid_t uid;
        gid_t *gids;                    /* the groups the bus captured at connect time */
        size_t n_gids;
        bool gids_known;                /* false: the bus does not report groups */
        pid_t pid;                      /* the connecting pid as the bus saw it; 0 when unknown */
        char *user_name;                /* NULL when the uid has no passwd entry */
        char **group_names;             /* parallel to gids; entries may be NULL */
        size_t n_group_names;
        char *unit;                     /* systemd unit of the connecting process, NULL when unknown */
        char *unit_note;                /* why unit is NULL (for denial messages), or NULL */
        char *selinux_label;            /* the bus's label, NULL when the bus gives none */
} Caller;

/* What to resolve for a decision: names through NSS (which may block, e.g. sssd) only when
 * some rule selects by name, the unit only when some rule has Units=. */
typedef enum CallerNames {
        CALLER_USER_NAME   = 1 << 0,
        CALLER_GROUP_NAMES = 1 << 1,
        CALLER_UNIT        = 1 << 2,
} CallerNames;

typedef struct CallerRegistry CallerRegistry;
typedef void (*CallerGoneHandler)(const char *unique_name, void *userdata);

int caller_registry_new(CallerRegistry **ret);
CallerRegistry *caller_registry_free(CallerRegistry *reg);
void caller_registry_set_gone_handler(CallerRegistry *reg, CallerGoneHandler handler, void *userdata);
size_t caller_registry_size(const CallerRegistry *reg);

/* Which look-ups the configuration's rules need. */
CallerNames caller_names_needed(const CbConfig *config);

/* Fill *ret from the sender of m. Returns 0 or a negative errno; on failure *ret is
 * untouched. */
int caller_from_message(CallerRegistry *reg, sd_bus_message *m, CallerNames names, Caller *ret);

/* The sender's uid alone (from the same remembered credentials). */
int caller_uid_from_message(CallerRegistry *reg, sd_bus_message *m, uid_t *ret_uid);

void caller_done(Caller *c);

/* The identity a request was decided for, stored with it so that Reload and start-up can
 * decide it again against new rules (there is no bus message then): "v=1", then "gids=G G..."
 * when the bus reported groups, "unit=U" and "label=L" when known, one per line. Values with
 * a newline are left out (nothing could match them). */
int caller_snapshot_format(const Caller *c, char **ret);

/* The caller from a stored snapshot for owner uid. An empty snapshot (a request stored by a
 * certbroker before 0.3) stands for the owner's groups from NSS, without unit or label. Names
 * are resolved through NSS as for a bus caller. nss_groups: the groups from NSS now rather
 * than the snapshot's (renewal: there is no bus message). -EINVAL for a malformed snapshot. */
int caller_from_snapshot(uid_t uid, const char *snapshot, CallerNames names, bool nss_groups, Caller *ret);

/* The caller as policy/ sees it (pointers into c). */
void caller_to_policy(const Caller *c, CbCaller *ret);
