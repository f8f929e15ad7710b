/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <systemd/sd-bus.h>

#include "cb-policy.h"
#include "nss-cache.h"

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
 * bus, which also tells the registry's gone handler (Wait() callers are dropped). One
 * NameOwnerChanged match serves the whole registry (the bus daemon limits match rules per
 * connection), and each remembered connection holds one pidfd, so the registry is bounded below
 * the file descriptor limit and fair between uids: a uid past its share is refused
 * (CALLER_ERR_UID_FULL), any uid but root once the registry is full (CALLER_ERR_FULL); root is
 * then identified afresh on each call. */
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
        bool account_known;             /* CALLER_ACCOUNT resolved: */
        bool local_account;             /* the uid is in the local files database (/etc/passwd),
                                         * not only in a directory (sssd, winbind) */
} Caller;

/* What to resolve for a decision: names through NSS (which may block, e.g. sssd) only when
 * some rule selects by name, the unit only when some rule has Units=. */
typedef enum CallerNames {
        CALLER_USER_NAME   = 1 << 0,
        CALLER_GROUP_NAMES = 1 << 1,
        CALLER_UNIT        = 1 << 2,
        CALLER_ACCOUNT     = 1 << 3,    /* local account or directory account (Identity=self) */
} CallerNames;

/* The file whose accounts are local ones for Identity=self (IdentityAccounts=realm). */
#define CALLER_LOCAL_PASSWD "/etc/passwd"

typedef struct CallerRegistry CallerRegistry;
typedef void (*CallerGoneHandler)(const char *unique_name, void *userdata);

/* The sender's uid already has its share of remembered connections. */
#define CALLER_ERR_UID_FULL (-EUSERS)
/* The registry holds all the connections it may. */
#define CALLER_ERR_FULL     (-ENFILE)

/* Connections remembered at most, whatever the fd limit. */
#define CALLER_REGISTRY_MAX 16384U
/* File descriptors left to everything else (journal, HTTP, key workers, the bus): at least
 * this many, and at least a quarter of the limit. */
#define CALLER_FD_RESERVE 256U
/* A uid's share: a sixteenth of the registry, at least this many. */
#define CALLER_PER_UID_MIN 16U

/* The registry's bounds for a process allowed nofile file descriptors (RLIMIT_NOFILE). */
void caller_registry_limits(uint64_t nofile, size_t *ret_total, size_t *ret_per_uid);

typedef enum CallerAdmission {
        CALLER_ADMIT_KEEP,              /* remember the connection */
        CALLER_ADMIT_TEMPORARY,         /* root past the total: identify it for this call only */
        CALLER_ADMIT_UID_FULL,          /* refused: the uid has its share */
        CALLER_ADMIT_FULL,              /* refused: the registry is full */
} CallerAdmission;
/* Whether a new connection of uid is remembered, with n remembered in all and n_uid of uid. */
CallerAdmission caller_registry_admit(size_t n, size_t max_total, size_t n_uid, size_t max_per_uid, uid_t uid);

/* A registry with the bounds of this process's RLIMIT_NOFILE (caller_registry_limits()). */
int caller_registry_new(CallerRegistry **ret);
CallerRegistry *caller_registry_free(CallerRegistry *reg);
/* Installs the registry's one NameOwnerChanged match on bus (synchronously): call before the
 * first message is dispatched. */
int caller_registry_attach(CallerRegistry *reg, sd_bus *bus);
void caller_registry_set_gone_handler(CallerRegistry *reg, CallerGoneHandler handler, void *userdata);
void caller_registry_get_limits(const CallerRegistry *reg, size_t *ret_total, size_t *ret_per_uid);
size_t caller_registry_size(const CallerRegistry *reg);
size_t caller_registry_count_uid(CallerRegistry *reg, uid_t uid);
/* The uid of the connection refused last (for the audit record of a refusal). */
uid_t caller_registry_refused_uid(const CallerRegistry *reg);

/* Which look-ups the configuration's rules need. */
CallerNames caller_names_needed(const CbConfig *config);

/* NSS, as the caller module asks it (a seam for tests; NULL: the C library's). */
typedef struct CallerNss {
        int (*getpwuid_r)(uid_t uid, struct passwd *pw, char *buf, size_t size, struct passwd **ret);
        int (*getgrgid_r)(gid_t gid, struct group *gr, char *buf, size_t size, struct group **ret);
        int (*getgrouplist)(const char *user, gid_t group, gid_t *groups, int *n);
} CallerNss;
void caller_set_nss(const CallerNss *nss);
/* The look-ups made on the event loop go through c (NULL: none, they block): they then never
 * block, and answer -EINPROGRESS (wait with nss_cache_wait() and decide again) or -ETIMEDOUT
 * (NSS has not answered for NSS_CACHE_TIMEOUT_USEC) until the answer is there. */
void caller_set_nss_cache(NssCache *c);
/* The blocking look-up behind the cache (the NssLookup its workers run), through the NSS set
 * with caller_set_nss(). */
int caller_nss_lookup(NssKind kind, uint32_t id, NssAnswer *ret);
/* Buffers for one NSS entry: doubled from the first size while NSS says ERANGE, up to the
 * second (a group of tens of thousands of members). */
#define CALLER_NSS_BUFFER_MIN 4096U
#define CALLER_NSS_BUFFER_MAX (1024U * 1024U)

/* Fill in c's user name and group names (names: CALLER_USER_NAME, CALLER_GROUP_NAMES) through
 * NSS, which may block (sssd). A uid or gid NSS has no entry for gets no name (NULL); when NSS
 * fails (an error, or an entry larger than CALLER_NSS_BUFFER_MAX: -ERANGE) nothing is filled in
 * and a negative errno is returned: a decision must not take "the lookup failed" for "no
 * name". */
int caller_resolve_names(Caller *c, CallerNames names);

/* Fill *ret from the sender of m, with the names resolved as caller_resolve_names(). Returns 0
 * or a negative errno (CALLER_ERR_UID_FULL and CALLER_ERR_FULL when the connection is refused;
 * NSS's errors as caller_resolve_names()); on failure *ret is untouched. */
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
 * than the snapshot's (renewal: there is no bus message); an owner NSS does not know has none.
 * -EINVAL for a malformed snapshot; NSS's failures as caller_resolve_names() (then whatever
 * would be decided for this caller waits: Reload keeps the request, renewal tries again). */
int caller_from_snapshot(uid_t uid, const char *snapshot, CallerNames names, bool nss_groups, Caller *ret);

/* The caller as policy/ sees it (pointers into c). */
void caller_to_policy(const Caller *c, CbCaller *ret);
