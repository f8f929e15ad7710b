/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <systemd/sd-login.h>

#include "basic.h"
#include "caller.h"

#define _printf_(a, b) __attribute__((format(printf, a, b)))

#define CALLER_BUCKETS 1024U
#define UID_BUCKETS 256U

typedef struct CallerEntry {
        struct CallerEntry *next;
        char *name;                     /* unique bus name */
        uid_t uid;
        gid_t *gids; size_t n_gids;
        bool gids_known;
        pid_t pid;
        int pidfd;                      /* the pinned connecting process, -1 when none */
        char *pin_note;                 /* why there is no pin */
        char *label;
} CallerEntry;

/* Connections remembered per uid. */
typedef struct UidCount {
        struct UidCount *next;
        uid_t uid;
        size_t n;
} UidCount;

struct CallerRegistry {
        CallerEntry *buckets[CALLER_BUCKETS];
        UidCount *uids[UID_BUCKETS];
        size_t n;
        size_t max_total, max_per_uid;
        uid_t refused_uid;              /* of the last connection refused */
        sd_bus_slot *departures;        /* the one NameOwnerChanged match of the registry */
        CallerGoneHandler gone;
        void *gone_userdata;
};

static unsigned name_hash(const char *s) {
        unsigned h = 2166136261u;
        for (; *s; s++)
                h = (h ^ (unsigned char) *s) * 16777619u;
        return h % CALLER_BUCKETS;
}

static CallerEntry *entry_free(CallerEntry *e) {
        if (!e)
                return NULL;
        if (e->pidfd >= 0)
                close(e->pidfd);
        free(e->name);
        free(e->gids);
        free(e->pin_note);
        free(e->label);
        free(e);
        return NULL;
}

static void entry_freep(CallerEntry **e) {
        *e = entry_free(*e);
}

void caller_registry_limits(uint64_t nofile, size_t *ret_total, size_t *ret_per_uid) {
        uint64_t reserve = nofile / 4 > CALLER_FD_RESERVE ? nofile / 4 : CALLER_FD_RESERVE;
        uint64_t total = nofile > reserve ? nofile - reserve : 0;

        if (total > CALLER_REGISTRY_MAX)
                total = CALLER_REGISTRY_MAX;
        if (total < CALLER_PER_UID_MIN)
                total = CALLER_PER_UID_MIN;     /* a tiny limit: the process fails on fds anyway */
        *ret_total = (size_t) total;
        *ret_per_uid = total / 16 > CALLER_PER_UID_MIN ? (size_t) (total / 16) : CALLER_PER_UID_MIN;
}

int caller_registry_new(CallerRegistry **ret) {
        CallerRegistry *reg = calloc(1, sizeof(*reg));
        struct rlimit rl;

        if (!reg)
                return -ENOMEM;
        if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur == RLIM_INFINITY)
                rl.rlim_cur = 1024;
        caller_registry_limits((uint64_t) rl.rlim_cur, &reg->max_total, &reg->max_per_uid);
        *ret = reg;
        return 0;
}

void caller_registry_get_limits(const CallerRegistry *reg, size_t *ret_total, size_t *ret_per_uid) {
        *ret_total = reg->max_total;
        *ret_per_uid = reg->max_per_uid;
}

CallerRegistry *caller_registry_free(CallerRegistry *reg) {
        if (!reg)
                return NULL;
        sd_bus_slot_unref(reg->departures);
        for (unsigned i = 0; i < CALLER_BUCKETS; i++)
                while (reg->buckets[i]) {
                        CallerEntry *e = reg->buckets[i];
                        reg->buckets[i] = e->next;
                        entry_free(e);
                }
        for (unsigned i = 0; i < UID_BUCKETS; i++)
                while (reg->uids[i]) {
                        UidCount *u = reg->uids[i];
                        reg->uids[i] = u->next;
                        free(u);
                }
        free(reg);
        return NULL;
}

void caller_registry_set_gone_handler(CallerRegistry *reg, CallerGoneHandler handler, void *userdata) {
        reg->gone = handler;
        reg->gone_userdata = userdata;
}

size_t caller_registry_size(const CallerRegistry *reg) {
        return reg->n;
}

static UidCount **uid_slot(CallerRegistry *reg, uid_t uid) {
        UidCount **p = &reg->uids[uid % UID_BUCKETS];

        while (*p && (*p)->uid != uid)
                p = &(*p)->next;
        return p;
}

size_t caller_registry_count_uid(CallerRegistry *reg, uid_t uid) {
        UidCount *u = *uid_slot(reg, uid);
        return u ? u->n : 0;
}

static CallerEntry *registry_find(CallerRegistry *reg, const char *name) {
        for (CallerEntry *e = reg->buckets[name_hash(name)]; e; e = e->next)
                if (strcmp(e->name, name) == 0)
                        return e;
        return NULL;
}

static int registry_link(CallerRegistry *reg, CallerEntry *e) {
        UidCount **p = uid_slot(reg, e->uid);
        unsigned h = name_hash(e->name);

        if (!*p) {
                *p = calloc(1, sizeof(UidCount));
                if (!*p)
                        return -ENOMEM;
                (*p)->uid = e->uid;
        }
        (*p)->n++;
        e->next = reg->buckets[h];
        reg->buckets[h] = e;
        reg->n++;
        return 0;
}

static void registry_unlink(CallerRegistry *reg, CallerEntry *e) {
        for (CallerEntry **p = &reg->buckets[name_hash(e->name)]; *p; p = &(*p)->next)
                if (*p == e) {
                        UidCount **u = uid_slot(reg, e->uid);
                        *p = e->next;
                        reg->n--;
                        if (*u && --(*u)->n == 0) {
                                UidCount *gone = *u;
                                *u = gone->next;
                                free(gone);
                        }
                        return;
                }
}

/* A name left the bus (NameOwnerChanged with no new owner): forget the connection if it is
 * remembered, then tell the gone handler. */
static int on_name_owner_changed(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        CallerRegistry *reg = userdata;
        const char *name, *old_owner, *new_owner;
        CallerEntry *e;

        (void) error;
        if (sd_bus_message_read(m, "sss", &name, &old_owner, &new_owner) < 0)
                return 0;
        if (name[0] != ':' || new_owner[0] != 0)
                return 0;
        e = registry_find(reg, name);
        if (!e)
                return 0;
        registry_unlink(reg, e);
        if (reg->gone)
                reg->gone(e->name, reg->gone_userdata);
        entry_free(e);
        return 0;
}

#define DEPARTURES_MATCH \
        "type='signal',sender='org.freedesktop.DBus',path='/org/freedesktop/DBus'," \
        "interface='org.freedesktop.DBus',member='NameOwnerChanged'"

int caller_registry_attach(CallerRegistry *reg, sd_bus *bus) {
        int r;

        /* One match for every connection: the bus daemon counts match rules per connection
         * (dbus-daemon allows 512), so one per caller, as sd_bus_track makes, would cost the
         * broker its connection once that many callers are known. arg2='': only departures
         * (a name with no new owner); a bus that refuses the empty argument match gets the
         * match without it (the handler looks at the new owner anyway). Synchronous: from
         * here on no departure is missed. */
        r = sd_bus_add_match(bus, &reg->departures, DEPARTURES_MATCH ",arg2=''", on_name_owner_changed, reg);
        if (r < 0 && r != -ENOTCONN && r != -ECONNRESET)
                r = sd_bus_add_match(bus, &reg->departures, DEPARTURES_MATCH, on_name_owner_changed, reg);
        return r;
}

/* Effective uid of pid from /proc/<pid>/status; -errno. */
static int proc_euid(pid_t pid, uid_t *ret) {
        char path[64], line[256];
        unsigned ruid, euid;
        int r = -EIO;

        snprintf(path, sizeof path, "/proc/%d/status", (int) pid);
        FILE *f = fopen(path, "re");
        if (!f)
                return -errno;
        while (fgets(line, sizeof line, f))
                if (sscanf(line, "Uid: %u %u", &ruid, &euid) == 2) {
                        *ret = (uid_t) euid;
                        r = 0;
                        break;
                }
        fclose(f);
        return r;
}

/* true while the process behind pidfd has not exited (a zombie has exited). */
static bool pidfd_alive(int pidfd) {
        struct pollfd p = { .fd = pidfd, .events = POLLIN };
        return poll(&p, 1, 0) == 0;
}

static int set_note(char **note, const char *fmt, ...) _printf_(2, 3);
static int set_note(char **note, const char *fmt, ...) {
        va_list ap;
        int r;

        free(*note);
        va_start(ap, fmt);
        r = vasprintf(note, fmt, ap);
        va_end(ap);
        if (r < 0) {
                *note = NULL;
                return -ENOMEM;
        }
        return 0;
}

/* Pin the connecting process: keep a pidfd only when the pid's process has the bus's uid. */
static int entry_pin(CallerEntry *e, int bus_pidfd) {
        uid_t euid;
        int fd;

        if (e->pid <= 0)
                return set_note(&e->pin_note, "the bus does not say which process connected");
        if (bus_pidfd >= 0)
                fd = fcntl(bus_pidfd, F_DUPFD_CLOEXEC, 3);
        else
                fd = (int) syscall(SYS_pidfd_open, e->pid, 0);
        if (fd < 0) {
                if (errno == ESRCH)
                        return set_note(&e->pin_note, "the process that connected (pid %d) has exited", (int) e->pid);
                return set_note(&e->pin_note, "the process that connected (pid %d) cannot be pinned: %m", (int) e->pid);
        }
        if (proc_euid(e->pid, &euid) < 0 || !pidfd_alive(fd)) {
                close(fd);
                return set_note(&e->pin_note, "the process that connected (pid %d) has exited", (int) e->pid);
        }
        if (euid != e->uid) {
                close(fd);
                return set_note(&e->pin_note,
                                "pid %d, which connected, is now a process of uid %u: the process that connected has exited",
                                (int) e->pid, (unsigned) euid);
        }
        e->pidfd = fd;
        return 0;
}

/* The array of element type inside a variant of a credentials reply: *ret (into the message)
 * and its size in bytes; the variant is left entered (exit it afterwards). */
static int enter_variant_array(sd_bus_message *reply, char type, const void **ret, size_t *ret_size) {
        const char contents[] = { 'a', type, 0 };
        int r;

        r = sd_bus_message_enter_container(reply, 'v', contents);
        if (r < 0)
                return r;
        return sd_bus_message_read_array(reply, type, ret, ret_size);
}

/* The groups of a credentials reply (UnixGroupIDs: a variant holding "au"). */
static int entry_read_gids(sd_bus_message *reply, CallerEntry *e) {
        const void *a;
        size_t sz;
        int r;

        r = enter_variant_array(reply, 'u', &a, &sz);
        if (r < 0)
                return r;
        e->n_gids = sz / sizeof(uint32_t);
        e->gids = calloc(e->n_gids + 1, sizeof(gid_t));
        if (!e->gids)
                return -ENOMEM;
        for (size_t i = 0; i < e->n_gids; i++)
                e->gids[i] = (gid_t) ((const uint32_t *) a)[i];
        e->gids_known = true;
        return sd_bus_message_exit_container(reply);
}

/* The SELinux label of a credentials reply (LinuxSecurityLabel: a variant holding "ay", the
 * label with its NUL). */
static int entry_read_label(sd_bus_message *reply, CallerEntry *e) {
        const void *a;
        size_t sz;
        int r;

        r = enter_variant_array(reply, 'y', &a, &sz);
        if (r < 0)
                return r;
        if (sz > 0) {
                e->label = strndup(a, sz);  /* the bus includes the NUL */
                if (!e->label)
                        return -ENOMEM;
        }
        return sd_bus_message_exit_container(reply);
}

/* One entry of a credentials reply (the dict entry entered): its value read into e when it is
 * one the broker uses, else skipped. */
static int entry_read_credential(sd_bus_message *reply, CallerEntry *e, bool *have_uid, int *bus_pidfd) {
        const char *key;
        uint32_t u;
        int r;

        r = sd_bus_message_read(reply, "s", &key);
        if (r < 0)
                return r;
        if (strcmp(key, "UnixUserID") == 0) {
                r = sd_bus_message_read(reply, "v", "u", &u);
                e->uid = (uid_t) u;
                *have_uid = r >= 0;
                return r;
        }
        if (strcmp(key, "ProcessID") == 0) {
                r = sd_bus_message_read(reply, "v", "u", &u);
                e->pid = (pid_t) u;
                return r;
        }
        if (strcmp(key, "ProcessFD") == 0)
                return sd_bus_message_read(reply, "v", "h", bus_pidfd);
        if (strcmp(key, "UnixGroupIDs") == 0)
                return entry_read_gids(reply, e);
        if (strcmp(key, "LinuxSecurityLabel") == 0)
                return entry_read_label(reply, e);
        return sd_bus_message_skip(reply, "v");
}

/* Ask the bus daemon what it captured when the sender connected. */
static int entry_query(sd_bus *bus, const char *sender, CallerEntry *e) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        bool have_uid = false;
        int bus_pidfd = -1, r;

        r = sd_bus_call_method(bus, "org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus",
                               "GetConnectionCredentials", &error, &reply, "s", sender);
        if (r < 0)
                return r;
        r = sd_bus_message_enter_container(reply, 'a', "{sv}");
        if (r < 0)
                return r;
        while ((r = sd_bus_message_enter_container(reply, 'e', "sv")) > 0) {
                r = entry_read_credential(reply, e, &have_uid, &bus_pidfd);
                if (r < 0)
                        return r;
                r = sd_bus_message_exit_container(reply);
                if (r < 0)
                        return r;
        }
        if (r < 0)
                return r;
        if (!have_uid)
                return -EPROTO;
        if (e->label && !*e->label) {
                free(e->label);
                e->label = NULL;
        }
        /* The reply owns bus_pidfd: entry_pin() duplicates it. */
        return entry_pin(e, bus_pidfd);
}

/* The remembered entry of the sender (created at its first call), or a temporary one in
 * *ret_temp for root when the registry is full. Others are refused past their share:
 * CALLER_ERR_UID_FULL, CALLER_ERR_FULL. */
static int registry_get(CallerRegistry *reg, sd_bus_message *m, CallerEntry **ret, CallerEntry **ret_temp) {
        sd_bus *bus = sd_bus_message_get_bus(m);
        const char *sender = sd_bus_message_get_sender(m);
        _cleanup_(entry_freep) CallerEntry *e = NULL;
        CallerEntry *known;
        int r;

        if (!sender || sender[0] != ':')
                return -ENXIO;
        known = registry_find(reg, sender);
        if (known) {
                *ret = known;
                *ret_temp = NULL;
                return 0;
        }

        e = calloc(1, sizeof(*e));
        if (!e)
                return -ENOMEM;
        e->pidfd = -1;
        e->name = strdup(sender);
        if (!e->name)
                return -ENOMEM;
        /* The registry's match (caller_registry_attach()) was there before this message was
         * sent: a connection that leaves after the question below is noticed. */
        r = entry_query(bus, sender, e);
        if (r < 0)
                return r;
        switch (caller_registry_admit(reg->n, reg->max_total, caller_registry_count_uid(reg, e->uid),
                                      reg->max_per_uid, e->uid)) {
        case CALLER_ADMIT_KEEP:
                r = registry_link(reg, e);
                if (r < 0)
                        return r;
                *ret = TAKE_PTR(e);
                *ret_temp = NULL;
                return 0;
        case CALLER_ADMIT_TEMPORARY:
                *ret = *ret_temp = TAKE_PTR(e);
                return 0;
        case CALLER_ADMIT_UID_FULL:
                reg->refused_uid = e->uid;
                return CALLER_ERR_UID_FULL;
        default:
                reg->refused_uid = e->uid;
                return CALLER_ERR_FULL;
        }
}

CallerAdmission caller_registry_admit(size_t n, size_t max_total, size_t n_uid, size_t max_per_uid, uid_t uid) {
        if (uid == 0)
                /* Root administers the broker: never refused; past the total it is identified
                 * afresh on each call (no fd kept). */
                return n < max_total ? CALLER_ADMIT_KEEP : CALLER_ADMIT_TEMPORARY;
        if (n_uid >= max_per_uid)
                return CALLER_ADMIT_UID_FULL;
        if (n >= max_total)
                return CALLER_ADMIT_FULL;
        return CALLER_ADMIT_KEEP;
}

uid_t caller_registry_refused_uid(const CallerRegistry *reg) {
        return reg->refused_uid;
}

int caller_uid_from_message(CallerRegistry *reg, sd_bus_message *m, uid_t *ret_uid) {
        _cleanup_(entry_freep) CallerEntry *temp = NULL;
        CallerEntry *e;
        int r;

        r = registry_get(reg, m, &e, &temp);
        if (r < 0)
                return r;
        *ret_uid = e->uid;
        return 0;
}

/* ---- NSS ---- */

static const CallerNss nss_libc = {
        .getpwuid_r = getpwuid_r,
        .getgrgid_r = getgrgid_r,
        .getgrouplist = getgrouplist,
};
static const CallerNss *nss = &nss_libc;

void caller_set_nss(const CallerNss *n) {
        nss = n ?: &nss_libc;
}

/* Set: the loop's look-ups go through it (answered at once, or -EINPROGRESS). */
static NssCache *nss_cache;

void caller_set_nss_cache(NssCache *c) {
        nss_cache = c;
}

/* An _r look-up's answer: 1 found, 0 no such entry, negative errno NSS failed. ERANGE (the
 * entry does not fit) is asked again with a buffer twice the size, up to CALLER_NSS_BUFFER_MAX. */
static int nss_answer(int e, bool found) {
        if (e == 0)
                return found ? 1 : 0;
        if (e == ENOENT)                /* some modules say "not found" so */
                return 0;
        return -e;
}

/* One _r look-up of id into buf (size bytes): *ret_retry when NSS says ERANGE (the entry does
 * not fit), else nss_answer()'s value with what was found copied out through userdata. */
typedef int (*NssAsk)(uint32_t id, char *buf, size_t size, void *userdata, bool *ret_retry);

/* ask with a buffer twice the size while the entry does not fit, up to CALLER_NSS_BUFFER_MAX
 * (-ERANGE past it). */
static int nss_ask(NssAsk ask, uint32_t id, void *userdata) {
        for (size_t size = CALLER_NSS_BUFFER_MIN;; size *= 2) {
                _cleanup_free_ char *buf = malloc(size);
                bool retry = false;
                int r;

                if (!buf)
                        return -ENOMEM;
                r = ask(id, buf, size, userdata, &retry);
                if (!retry)
                        return r;
                if (size >= CALLER_NSS_BUFFER_MAX)
                        return -ERANGE;
        }
}

typedef struct UserAnswer {
        char **ret_name;        /* may be NULL */
        gid_t *ret_gid;         /* may be NULL */
} UserAnswer;

static int ask_user(uint32_t id, char *buf, size_t size, void *userdata, bool *ret_retry) {
        UserAnswer *a = userdata;
        struct passwd pw, *res = NULL;
        int e, r;

        e = nss->getpwuid_r((uid_t) id, &pw, buf, size, &res);
        *ret_retry = e == ERANGE;
        r = nss_answer(e, res != NULL);
        if (r <= 0)
                return r;
        if (a->ret_gid)
                *a->ret_gid = res->pw_gid;
        if (a->ret_name && !(*a->ret_name = strdup(res->pw_name)))
                return -ENOMEM;
        return r;
}

static int ask_group(uint32_t id, char *buf, size_t size, void *userdata, bool *ret_retry) {
        char **ret_name = userdata;
        struct group gr, *res = NULL;
        int e, r;

        e = nss->getgrgid_r((gid_t) id, &gr, buf, size, &res);
        *ret_retry = e == ERANGE;
        r = nss_answer(e, res != NULL);
        if (r > 0 && !(*ret_name = strdup(res->gr_name)))
                return -ENOMEM;
        return r;
}

/* uid's name and primary group: 1 and *ret_name (and *ret_gid), 0 when NSS has no such user,
 * negative errno when NSS failed (nothing is known then). */
static int user_lookup_blocking(uid_t uid, char **ret_name, gid_t *ret_gid) {
        UserAnswer a = { .ret_name = ret_name, .ret_gid = ret_gid };

        return nss_ask(ask_user, (uint32_t) uid, &a);
}

/* gid's name: as user_lookup_blocking(). A group of many members needs a large buffer: 8 KiB holds
 * only a few hundred. */
static int group_lookup_blocking(gid_t gid, char **ret_name) {
        return nss_ask(ask_group, (uint32_t) gid, ret_name);
}

/* The loop's look-ups: through the cache when there is one (never blocking: -EINPROGRESS while
 * a worker asks NSS), else directly (tests, tools). */
static int user_lookup(uid_t uid, char **ret_name, gid_t *ret_gid) {
        NssAnswer a = {};
        int r;

        if (!nss_cache)
                return user_lookup_blocking(uid, ret_name, ret_gid);
        r = nss_cache_get(nss_cache, NSS_USER, uid, &a);
        if (r < 0)
                return r;
        r = a.result;
        if (r > 0) {
                if (ret_gid)
                        *ret_gid = a.gid;
                if (ret_name)
                        *ret_name = TAKE_PTR(a.name);
        }
        nss_answer_done(&a);
        return r;
}

static int group_lookup(gid_t gid, char **ret_name) {
        NssAnswer a = {};
        int r;

        if (!nss_cache)
                return group_lookup_blocking(gid, ret_name);
        r = nss_cache_get(nss_cache, NSS_GROUP, gid, &a);
        if (r < 0)
                return r;
        r = a.result;
        if (r > 0)
                *ret_name = TAKE_PTR(a.name);
        nss_answer_done(&a);
        return r;
}

/* Whether uid has an entry in CALLER_LOCAL_PASSWD (the "files" source of NSS): 1 yes, 0 no,
 * negative errno when the file cannot be read. Reads the file: the cache's workers run it. */
static int uid_is_local_blocking(uid_t uid) {
        FILE *f = fopen(CALLER_LOCAL_PASSWD, "re");
        struct passwd pw, *res;
        char buf[4096];
        int r;

        if (!f)
                return -errno;
        for (;;) {
                int k = fgetpwent_r(f, &pw, buf, sizeof buf, &res);
                if (k == ENOENT) {
                        r = 0;
                        break;
                }
                if (k == ERANGE)        /* an entry longer than buf: not one we can compare */
                        continue;
                if (k != 0) {
                        r = -k;
                        break;
                }
                if (pw.pw_uid == uid) {
                        r = 1;
                        break;
                }
        }
        fclose(f);
        return r;
}

/* uid_is_local_blocking() through the cache when there is one (never blocking: -EINPROGRESS
 * while a worker reads the file), else directly. */
static int uid_is_local(uid_t uid) {
        NssAnswer a = {};
        int r;

        if (!nss_cache)
                return uid_is_local_blocking(uid);
        r = nss_cache_get(nss_cache, NSS_LOCAL_ACCOUNT, uid, &a);
        if (r < 0)
                return r;
        r = a.result;
        nss_answer_done(&a);
        return r;
}

/* The first failure that is not "still asking" (-EINPROGRESS): a real error wins over a deferral. */
static void keep_first_error(int *first, int r) {
        if (r < 0 && (*first == 0 || *first == -EINPROGRESS))
                *first = r;
}

static void group_names_free(char **g, size_t n) {
        if (!g)
                return;
        for (size_t i = 0; i < n; i++)
                free(g[i]);
        free(g);
}

/* Every group of c (the workers look them up together): 0 and *ret, or the first error. */
static int group_names_lookup(const Caller *c, char ***ret) {
        char **g = calloc(c->n_gids + 1, sizeof(char *));
        int first = 0;

        if (!g)
                return -ENOMEM;
        for (size_t i = 0; i < c->n_gids; i++)
                keep_first_error(&first, group_lookup(c->gids[i], &g[i]));
        if (first < 0) {
                group_names_free(g, c->n_gids);
                return first;
        }
        *ret = g;
        return 0;
}

int caller_resolve_names(Caller *c, CallerNames names) {
        int first = 0, r;

        /* Every look-up is asked before any answer is waited for: through the cache the workers
         * answer them together, and the decision is deferred once, not once per look-up. */
        if ((names & CALLER_ACCOUNT) && !c->account_known) {
                r = uid_is_local(c->uid);
                if (r >= 0) {
                        c->local_account = r > 0;
                        c->account_known = true;
                }
                keep_first_error(&first, r);
        }
        if ((names & CALLER_USER_NAME) && !c->user_name)
                keep_first_error(&first, user_lookup(c->uid, &c->user_name, NULL));
        if ((names & CALLER_GROUP_NAMES) && !c->group_names) {
                char **g = NULL;

                r = group_names_lookup(c, &g);
                if (r >= 0) {
                        c->group_names = g;
                        c->n_group_names = c->n_gids;
                }
                keep_first_error(&first, r);
        }
        return first;
}

/* The unit of the pinned process, read now and kept only if the process is still the pinned
 * one with the bus's uid afterwards. */
static int entry_unit(CallerEntry *e, char **ret_unit, char **ret_note) {
        char *unit = NULL;
        uid_t euid;

        *ret_unit = *ret_note = NULL;
        if (e->pidfd < 0)
                return (*ret_note = strdup(e->pin_note ?: "the connecting process is not known")) ? 0 : -ENOMEM;
        int r = sd_pid_get_unit(e->pid, &unit);
        if (!pidfd_alive(e->pidfd)) {
                free(unit);
                return set_note(ret_note, "the process that connected (pid %d) has exited", (int) e->pid);
        }
        if (proc_euid(e->pid, &euid) < 0 || !pidfd_alive(e->pidfd) || euid != e->uid) {
                free(unit);
                return set_note(ret_note, "the process that connected (pid %d) no longer has the connection's uid %u",
                                (int) e->pid, (unsigned) e->uid);
        }
        if (r < 0) {
                free(unit);
                return set_note(ret_note, "the process that connected (pid %d) is in no systemd unit", (int) e->pid);
        }
        *ret_unit = unit;
        return 0;
}

int caller_from_message(CallerRegistry *reg, sd_bus_message *m, CallerNames names, Caller *ret) {
        _cleanup_(entry_freep) CallerEntry *temp = NULL;
        _cleanup_(caller_done) Caller c = {};
        CallerEntry *e;
        int r;

        r = registry_get(reg, m, &e, &temp);
        if (r < 0)
                return r;

        c.uid = e->uid;
        c.pid = e->pid;
        c.gids_known = e->gids_known;
        c.gids = calloc(e->n_gids + 1, sizeof(gid_t));
        if (!c.gids)
                return -ENOMEM;
        memcpy(c.gids, e->gids ?: c.gids, e->n_gids * sizeof(gid_t));
        c.n_gids = e->n_gids;
        if (e->label) {
                c.selinux_label = strdup(e->label);
                if (!c.selinux_label)
                        return -ENOMEM;
        }
        if (names & CALLER_UNIT) {
                r = entry_unit(e, &c.unit, &c.unit_note);
                if (r < 0)
                        return r;
        }
        r = caller_resolve_names(&c, names);
        if (r < 0)
                return r;
        *ret = c;
        c = (Caller) {};
        return 0;
}

int caller_snapshot_format(const Caller *c, char **ret) {
        size_t size = 0;
        char *buf = NULL;
        FILE *f = open_memstream(&buf, &size);

        if (!f)
                return -ENOMEM;
        fputs("v=1\n", f);
        if (c->gids_known) {
                fputs("gids=", f);
                for (size_t i = 0; i < c->n_gids; i++)
                        fprintf(f, "%s%u", i ? " " : "", (unsigned) c->gids[i]);
                fputc('\n', f);
        }
        if (c->unit && !strchr(c->unit, '\n'))
                fprintf(f, "unit=%s\n", c->unit);
        if (c->selinux_label && !strchr(c->selinux_label, '\n'))
                fprintf(f, "label=%s\n", c->selinux_label);
        if (fclose(f) != 0 || !buf) {
                free(buf);
                return -ENOMEM;
        }
        *ret = buf;
        return 0;
}

/* uid's groups from NSS: 1 and the groups; 0 and none when there is no such user; negative
 * errno when NSS failed. */
static int gids_from_nss_blocking(uid_t uid, gid_t **ret, size_t *ret_n) {
        _cleanup_free_ char *name = NULL;
        _cleanup_free_ gid_t *g = NULL;
        gid_t primary = 0;
        int n = 64, r;

        *ret = NULL;
        *ret_n = 0;
        r = user_lookup_blocking(uid, &name, &primary);
        if (r <= 0)
                return r;               /* 0: no such user, no groups */
        for (;;) {
                int want = n;
                gid_t *ng = realloc(g, sizeof(gid_t) * (size_t) (n > 0 ? n : 1));

                if (!ng)
                        return -ENOMEM;
                g = ng;
                if (nss->getgrouplist(name, primary, g, &n) >= 0)
                        break;
                if (n <= want || n > 65536)
                        return -E2BIG;
        }
        *ret = TAKE_PTR(g);
        *ret_n = (size_t) n;
        return 1;
}

static int gids_from_nss(uid_t uid, gid_t **ret, size_t *ret_n) {
        NssAnswer a = {};
        int r;

        if (!nss_cache)
                return gids_from_nss_blocking(uid, ret, ret_n);
        r = nss_cache_get(nss_cache, NSS_GROUPLIST, uid, &a);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(a.gids);
        *ret_n = a.n_gids;
        r = a.result;
        nss_answer_done(&a);
        return r;
}

int caller_nss_lookup(NssKind kind, uint32_t id, NssAnswer *ret) {
        NssAnswer a = {};

        switch (kind) {
        case NSS_USER:
                a.result = user_lookup_blocking((uid_t) id, &a.name, &a.gid);
                break;
        case NSS_GROUP:
                a.result = group_lookup_blocking((gid_t) id, &a.name);
                break;
        case NSS_GROUPLIST:
                a.result = gids_from_nss_blocking((uid_t) id, &a.gids, &a.n_gids);
                break;
        case NSS_LOCAL_ACCOUNT:
                a.result = uid_is_local_blocking((uid_t) id);
                break;
        default:
                return -EINVAL;
        }
        if (a.result < 0) {
                int r = a.result;
                nss_answer_done(&a);
                return r;
        }
        *ret = a;
        return 0;
}

static int parse_gids(const char *v, gid_t **ret, size_t *ret_n) {
        size_t n = 0, cap = 0;
        gid_t *g = NULL;

        while (*v) {
                char *end;
                unsigned long x;

                if (*v == ' ') {
                        v++;
                        continue;
                }
                errno = 0;
                x = strtoul(v, &end, 10);
                if (errno || end == v || x >= (unsigned long) (gid_t) -1 || (*end && *end != ' ')) {
                        free(g);
                        return -EINVAL;
                }
                if (n == cap) {
                        gid_t *ng;
                        cap = cap ? cap * 2 : 16;
                        if (cap > 65536 || !(ng = realloc(g, cap * sizeof(gid_t)))) {
                                free(g);
                                return cap > 65536 ? -E2BIG : -ENOMEM;
                        }
                        g = ng;
                }
                g[n++] = (gid_t) x;
                v = end;
        }
        *ret = g;
        *ret_n = n;
        return 0;
}

/* One line of a snapshot (caller_snapshot_format()) into c; *versioned at "v=1". */
static int snapshot_line(const char *line, Caller *c, bool *versioned) {
        int r;

        if (strcmp(line, "v=1") == 0) {
                *versioned = true;
                return 0;
        }
        if (strncmp(line, "gids=", 5) == 0 && !c->gids_known) {
                r = parse_gids(line + 5, &c->gids, &c->n_gids);
                c->gids_known = r >= 0;
                return r;
        }
        if (strncmp(line, "unit=", 5) == 0 && !c->unit)
                return (c->unit = strdup(line + 5)) ? 0 : -ENOMEM;
        if (strncmp(line, "label=", 6) == 0 && !c->selinux_label)
                return (c->selinux_label = strdup(line + 6)) ? 0 : -ENOMEM;
        return -EINVAL;
}

static int snapshot_parse(const char *snapshot, Caller *c) {
        _cleanup_free_ char *copy = strdup(snapshot);
        bool versioned = false;
        char *save = NULL;
        int r;

        if (!copy)
                return -ENOMEM;
        for (char *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
                r = snapshot_line(line, c, &versioned);
                if (r < 0)
                        return r;
        }
        return versioned ? 0 : -EINVAL;
}

int caller_from_snapshot(uid_t uid, const char *snapshot, CallerNames names, bool nss_groups, Caller *ret) {
        _cleanup_(caller_done) Caller c = { .uid = uid };
        int r;

        if (!snapshot || !*snapshot) {
                r = gids_from_nss(uid, &c.gids, &c.n_gids);
                if (r < 0)
                        return r;
                c.gids_known = true;
                c.unit_note = strdup("the request was stored without its caller's unit");
                if (!c.unit_note)
                        return -ENOMEM;
        } else {
                r = snapshot_parse(snapshot, &c);
                if (r < 0)
                        return r;
                if (nss_groups) {
                        free(c.gids);
                        c.gids = NULL;
                        c.n_gids = 0;
                        r = gids_from_nss(uid, &c.gids, &c.n_gids);
                        c.gids_known = r >= 0;
                        if (r < 0)
                                return r;
                }
                if (!c.unit) {
                        c.unit_note = strdup("the caller's unit was not known when it enrolled");
                        if (!c.unit_note)
                                return -ENOMEM;
                }
        }
        r = caller_resolve_names(&c, names);
        if (r < 0)
                return r;
        *ret = c;
        c = (Caller) {};
        return 0;
}

void caller_done(Caller *c) {
        if (!c)
                return;
        free(c->gids);
        group_names_free(c->group_names, c->n_group_names);
        free(c->user_name);
        free(c->unit);
        free(c->unit_note);
        free(c->selinux_label);
        *c = (Caller) {};
}

void caller_to_policy(const Caller *c, CbCaller *ret) {
        *ret = (CbCaller) {
                .uid = c->uid,
                .user_name = c->user_name,
                .gids = c->gids,
                .n_gids = c->n_gids,
                .group_names = (const char *const *) c->group_names,
                .n_group_names = c->n_group_names,
                .unit = c->unit,
                .selinux_label = c->selinux_label,
                .account = !c->account_known ? CB_ACCOUNT_UNKNOWN :
                           c->local_account ? CB_ACCOUNT_LOCAL : CB_ACCOUNT_DIRECTORY,
        };
}

static bool any_name(char **values, size_t n) {
        for (size_t i = 0; i < n; i++)
                if (values[i][strspn(values[i], "0123456789")] != 0)
                        return true;
        return false;
}

CallerNames caller_names_needed(const CbConfig *config) {
        CallerNames n = 0;

        for (size_t i = 0; i < config->n_rules; i++) {
                if (any_name(config->rules[i].users, config->rules[i].n_users))
                        n |= CALLER_USER_NAME;
                if (any_name(config->rules[i].groups, config->rules[i].n_groups))
                        n |= CALLER_GROUP_NAMES;
                if (config->rules[i].n_units > 0)
                        n |= CALLER_UNIT;
                if (config->rules[i].identity_self)
                        n |= CALLER_USER_NAME | CALLER_ACCOUNT;
        }
        return n;
}
