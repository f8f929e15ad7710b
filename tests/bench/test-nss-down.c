/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The soak's NSS module (nss-down.c) must make look-ups fail with an error, not "not found":
 * otherwise the soak's NSS windows would test nothing. Checked two ways: each entry point of
 * the module, loaded with dlopen(), answers UNAVAIL with ECONNREFUSED and writes nothing; and
 * glibc, told to use the module for passwd and group (__nss_configure_lookup(), the module
 * found through LD_LIBRARY_PATH), makes getpwuid_r(), getpwnam_r() and getgrgid_r() return
 * ECONNREFUSED with no result.
 *
 *   test-nss-down MODULE-PATH */
#include <dlfcn.h>
#include <errno.h>
#include <grp.h>
#include <nss.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>

int __nss_configure_lookup(const char *db, const char *service_line);

static int checks, failures;

static void check(int ok, const char *what) {
        printf("%s - %s\n", ok ? "ok" : "not ok", what);
        checks++;
        if (!ok)
                failures++;
}

typedef enum nss_status (*pw_uid_fn)(uid_t, struct passwd *, char *, size_t, int *);
typedef enum nss_status (*pw_nam_fn)(const char *, struct passwd *, char *, size_t, int *);
typedef enum nss_status (*gr_gid_fn)(gid_t, struct group *, char *, size_t, int *);
typedef enum nss_status (*gr_nam_fn)(const char *, struct group *, char *, size_t, int *);
typedef enum nss_status (*initgroups_fn)(const char *, gid_t, long *, long *, gid_t **, long, int *);

int main(int argc, char **argv) {
        char buf[1024], untouched[1024];
        struct passwd pw, *pwres;
        struct group gr, *grres;
        int err, e;
        void *h;

        if (argc != 2) {
                fprintf(stderr, "usage: test-nss-down MODULE-PATH\n");
                return 2;
        }
        h = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
        if (!h) {
                fprintf(stderr, "cannot load %s: %s\n", argv[1], dlerror());
                return 1;
        }
        memset(buf, 0x5a, sizeof buf);
        memcpy(untouched, buf, sizeof buf);

        pw_uid_fn pw_uid = (pw_uid_fn) dlsym(h, "_nss_down_getpwuid_r");
        pw_nam_fn pw_nam = (pw_nam_fn) dlsym(h, "_nss_down_getpwnam_r");
        gr_gid_fn gr_gid = (gr_gid_fn) dlsym(h, "_nss_down_getgrgid_r");
        gr_nam_fn gr_nam = (gr_nam_fn) dlsym(h, "_nss_down_getgrnam_r");
        initgroups_fn initgroups = (initgroups_fn) dlsym(h, "_nss_down_initgroups_dyn");
        check(pw_uid && pw_nam && gr_gid && gr_nam && initgroups, "the module has all five entry points");
        if (failures)
                return 1;

        err = 0;
        check(pw_uid(0, &pw, buf, sizeof buf, &err) == NSS_STATUS_UNAVAIL && err == ECONNREFUSED,
              "getpwuid_r entry: UNAVAIL, ECONNREFUSED");
        err = 0;
        check(pw_nam("root", &pw, buf, sizeof buf, &err) == NSS_STATUS_UNAVAIL && err == ECONNREFUSED,
              "getpwnam_r entry: UNAVAIL, ECONNREFUSED");
        err = 0;
        check(gr_gid(0, &gr, buf, sizeof buf, &err) == NSS_STATUS_UNAVAIL && err == ECONNREFUSED,
              "getgrgid_r entry: UNAVAIL, ECONNREFUSED");
        err = 0;
        check(gr_nam("root", &gr, buf, sizeof buf, &err) == NSS_STATUS_UNAVAIL && err == ECONNREFUSED,
              "getgrnam_r entry: UNAVAIL, ECONNREFUSED");
        long start = 0, size = 0;
        gid_t *groups = NULL;
        err = 0;
        check(initgroups("root", 0, &start, &size, &groups, 16, &err) == NSS_STATUS_UNAVAIL &&
              err == ECONNREFUSED && start == 0 && size == 0 && !groups,
              "initgroups_dyn entry: UNAVAIL, ECONNREFUSED, no groups");
        check(memcmp(buf, untouched, sizeof buf) == 0, "nothing written to the callers' buffers");
        dlclose(h);

        /* Through glibc, as certbrokerd's look-ups meet it. */
        if (__nss_configure_lookup("passwd", "down") != 0 || __nss_configure_lookup("group", "down") != 0) {
                fprintf(stderr, "__nss_configure_lookup failed\n");
                return 1;
        }
        pwres = &pw;
        e = getpwuid_r(0, &pw, buf, sizeof buf, &pwres);
        check(e == ECONNREFUSED && !pwres, "getpwuid_r(0): ECONNREFUSED, no entry (not \"not found\")");
        pwres = &pw;
        e = getpwnam_r("root", &pw, buf, sizeof buf, &pwres);
        check(e == ECONNREFUSED && !pwres, "getpwnam_r(root): ECONNREFUSED, no entry");
        grres = &gr;
        e = getgrgid_r(0, &gr, buf, sizeof buf, &grres);
        check(e == ECONNREFUSED && !grres, "getgrgid_r(0): ECONNREFUSED, no entry");

        printf("test-nss-down: %d checks, %d failed\n", checks, failures);
        return failures ? 1 : 0;
}
