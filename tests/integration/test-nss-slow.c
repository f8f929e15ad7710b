/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* daemon-nss's slow NSS module (nss-slow.c) must be slow and then leave the answer to the next
 * source, or daemon-nss's "slow NSS" checks would test nothing. Checked: each entry point,
 * loaded with dlopen(), answers NOTFOUND with ENOENT at once without $CB_NSS_SLOW_FILE, and
 * only after the file's milliseconds with it (a file that holds no number: no sleep); and
 * glibc, told "passwd: slow files", still finds root through "files" after the delay.
 *
 *   test-nss-slow MODULE-PATH */
#include <dlfcn.h>
#include <errno.h>
#include <grp.h>
#include <nss.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int __nss_configure_lookup(const char *db, const char *service_line);

static int checks, failures;

static void check(int ok, const char *what) {
        printf("%s - %s\n", ok ? "ok" : "not ok", what);
        checks++;
        if (!ok)
                failures++;
}

static long now_ms(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

typedef enum nss_status (*pw_uid_fn)(uid_t, struct passwd *, char *, size_t, int *);
typedef enum nss_status (*gr_gid_fn)(gid_t, struct group *, char *, size_t, int *);

static void write_file(const char *path, const char *text) {
        FILE *f = fopen(path, "we");
        if (!f || fputs(text, f) < 0 || fclose(f) != 0) {
                perror(path);
                exit(1);
        }
}

int main(int argc, char **argv) {
        char buf[1024], file[] = "/tmp/test-nss-slow.XXXXXX";
        struct passwd pw, *pwres;
        struct group gr;
        int err, fd;
        long t0, took;
        void *h;

        if (argc != 2) {
                fprintf(stderr, "usage: test-nss-slow MODULE-PATH\n");
                return 2;
        }
        h = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
        if (!h) {
                fprintf(stderr, "cannot load %s: %s\n", argv[1], dlerror());
                return 1;
        }
        pw_uid_fn pw_uid = (pw_uid_fn) dlsym(h, "_nss_slow_getpwuid_r");
        gr_gid_fn gr_gid = (gr_gid_fn) dlsym(h, "_nss_slow_getgrgid_r");
        check(pw_uid && gr_gid && dlsym(h, "_nss_slow_getpwnam_r") && dlsym(h, "_nss_slow_getgrnam_r") &&
              dlsym(h, "_nss_slow_initgroups_dyn"), "the module has all five entry points");
        if (failures)
                return 1;
        fd = mkstemp(file);
        if (fd < 0) {
                perror("mkstemp");
                return 1;
        }
        close(fd);

        unsetenv("CB_NSS_SLOW_FILE");
        err = 0;
        t0 = now_ms();
        check(pw_uid(0, &pw, buf, sizeof buf, &err) == NSS_STATUS_NOTFOUND && err == ENOENT,
              "no CB_NSS_SLOW_FILE: getpwuid_r entry NOTFOUND, ENOENT");
        check(now_ms() - t0 < 150, "no CB_NSS_SLOW_FILE: no sleep");

        setenv("CB_NSS_SLOW_FILE", file, 1);
        write_file(file, "300\n");
        err = 0;
        t0 = now_ms();
        check(gr_gid(0, &gr, buf, sizeof buf, &err) == NSS_STATUS_NOTFOUND && err == ENOENT,
              "300 ms: getgrgid_r entry NOTFOUND, ENOENT");
        took = now_ms() - t0;
        check(took >= 300, "300 ms: the entry point slept at least that long");

        write_file(file, "soon\n");
        err = 0;
        t0 = now_ms();
        check(pw_uid(0, &pw, buf, sizeof buf, &err) == NSS_STATUS_NOTFOUND && err == ENOENT,
              "a file with no number: NOTFOUND");
        check(now_ms() - t0 < 150, "a file with no number: no sleep");
        dlclose(h);

        /* Through glibc: slow, then "files" answers. */
        write_file(file, "200\n");
        if (__nss_configure_lookup("passwd", "slow files") != 0) {
                fprintf(stderr, "__nss_configure_lookup failed\n");
                return 1;
        }
        pwres = NULL;
        t0 = now_ms();
        err = getpwuid_r(0, &pw, buf, sizeof buf, &pwres);
        took = now_ms() - t0;
        check(err == 0 && pwres && strcmp(pwres->pw_name, "root") == 0, "glibc, \"slow files\": root found through files");
        check(took >= 200, "glibc, \"slow files\": after the module's 200 ms");

        unlink(file);
        printf("test-nss-slow: %d checks, %d failed\n", checks, failures);
        return failures ? 1 : 0;
}
