/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The checks test-nss-slow.c and test-nss-down.c share: a test NSS module (nss-slow.c,
 * nss-down.c) loaded with dlopen(), each of its five entry points called the way glibc calls
 * it, with what it answered, how long it took and whether it wrote to the caller's buffers.
 * TAP-like output ("ok - ...", "not ok - ..."); nss_checks_done() is the exit status. */

#include <dlfcn.h>
#include <errno.h>
#include <grp.h>
#include <nss.h>
#include <pwd.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/* glibc's, not in its headers: which modules a database uses, as nsswitch.conf says. */
int __nss_configure_lookup(const char *db, const char *service_line);

static int nss_checks, nss_failures;

static void check(int ok, const char *what) {
        printf("%s - %s\n", ok ? "ok" : "not ok", what);
        nss_checks++;
        if (!ok)
                nss_failures++;
}

static int nss_checks_done(const char *name) {
        printf("%s: %d checks, %d failed\n", name, nss_checks, nss_failures);
        return nss_failures ? 1 : 0;
}

static long now_ms(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

typedef struct NssModule {
        void *handle;
        enum nss_status (*getpwuid_r)(uid_t, struct passwd *, char *, size_t, int *);
        enum nss_status (*getpwnam_r)(const char *, struct passwd *, char *, size_t, int *);
        enum nss_status (*getgrgid_r)(gid_t, struct group *, char *, size_t, int *);
        enum nss_status (*getgrnam_r)(const char *, struct group *, char *, size_t, int *);
        enum nss_status (*initgroups_dyn)(const char *, gid_t, long *, long *, gid_t **, long, int *);
} NssModule;

static void *nss_sym(void *h, const char *service, const char *fn) {
        char name[128];
        snprintf(name, sizeof name, "_nss_%s_%s", service, fn);
        return dlsym(h, name);
}

/* Loads the module at path for service ("slow": _nss_slow_*); 0, or -1 when it cannot be
 * loaded or lacks an entry point (said as a failed check). */
static int nss_module_load(const char *path, const char *service, NssModule *ret) {
        NssModule m = { .handle = dlopen(path, RTLD_NOW | RTLD_LOCAL) };

        if (!m.handle) {
                fprintf(stderr, "cannot load %s: %s\n", path, dlerror());
                check(0, "the module loads");
                return -1;
        }
        m.getpwuid_r = nss_sym(m.handle, service, "getpwuid_r");
        m.getpwnam_r = nss_sym(m.handle, service, "getpwnam_r");
        m.getgrgid_r = nss_sym(m.handle, service, "getgrgid_r");
        m.getgrnam_r = nss_sym(m.handle, service, "getgrnam_r");
        m.initgroups_dyn = nss_sym(m.handle, service, "initgroups_dyn");
        check(m.getpwuid_r && m.getpwnam_r && m.getgrgid_r && m.getgrnam_r && m.initgroups_dyn,
              "the module has all five entry points");
        if (nss_failures) {
                dlclose(m.handle);
                return -1;
        }
        *ret = m;
        return 0;
}

/* One call's result against what is expected: status and errno, nothing written to the
 * caller's buffer (or group list), and its time within [min_ms, max_ms] (max_ms 0: no bound;
 * the bounds only tell a sleep of seconds from none). */
static void nss_expect(const char *label, const char *entry, enum nss_status got, int got_err, bool untouched,
                       long took, enum nss_status status, int err, long min_ms, long max_ms) {
        char what[256];

        snprintf(what, sizeof what, "%s: %s answers %d with errno %d, writes nothing", label, entry, (int) status,
                 err);
        check(got == status && got_err == err && untouched, what);
        if (min_ms > 0) {
                snprintf(what, sizeof what, "%s: %s took at least %ld ms (%ld)", label, entry, min_ms, took);
                check(took >= min_ms, what);
        }
        if (max_ms > 0) {
                snprintf(what, sizeof what, "%s: %s took less than %ld ms (%ld)", label, entry, max_ms, took);
                check(took < max_ms, what);
        }
}

/* Every entry point of m, once, each expected to answer status with errno err (see
 * nss_expect()). */
static void nss_module_check_all(const NssModule *m, const char *label, enum nss_status status, int err,
                                 long min_ms, long max_ms) {
        char buf[1024], pristine[1024];
        struct passwd pw;
        struct group gr;
        enum nss_status s;
        long t0, start, size;
        gid_t *groups;
        int e;

        memset(pristine, 0x5a, sizeof pristine);
#define CALL(entry, expr)                                                                               \
        do {                                                                                            \
                memcpy(buf, pristine, sizeof buf);                                                      \
                e = 0;                                                                                  \
                t0 = now_ms();                                                                          \
                s = (expr);                                                                             \
                nss_expect(label, entry, s, e, memcmp(buf, pristine, sizeof buf) == 0, now_ms() - t0,   \
                           status, err, min_ms, max_ms);                                                \
        } while (0)
        CALL("getpwuid_r", m->getpwuid_r(0, &pw, buf, sizeof buf, &e));
        CALL("getpwnam_r", m->getpwnam_r("root", &pw, buf, sizeof buf, &e));
        CALL("getgrgid_r", m->getgrgid_r(0, &gr, buf, sizeof buf, &e));
        CALL("getgrnam_r", m->getgrnam_r("root", &gr, buf, sizeof buf, &e));
#undef CALL
        start = 0, size = 0, groups = NULL, e = 0;
        t0 = now_ms();
        s = m->initgroups_dyn("root", 0, &start, &size, &groups, 16, &e);
        nss_expect(label, "initgroups_dyn", s, e, start == 0 && size == 0 && !groups, now_ms() - t0, status, err,
                   min_ms, max_ms);
}

/* Whether the module log at path (tests/nss-module-log.h) has the line `line`. */
static bool nss_log_has(const char *path, const char *line) {
        char text[256];
        bool found = false;
        FILE *f = fopen(path, "re");

        if (!f)
                return false;
        while (!found && fgets(text, sizeof text, f)) {
                text[strcspn(text, "\n")] = 0;
                found = strcmp(text, line) == 0;
        }
        fclose(f);
        return found;
}
