/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* daemon-nss's slow NSS module (nss-slow.c) must be slow and then leave the answer to the next
 * source, or daemon-nss's "slow NSS" checks would test nothing. Checked: each of its five entry
 * points, loaded with dlopen(), answers NOTFOUND with ENOENT, writing nothing; without
 * $CB_NSS_SLOW_FILE at once (a file saying 3000 ms exists but is not named), and only after the
 * named file's milliseconds with it; a file that holds no number, or one out of range: UNAVAIL
 * with EINVAL, at once (a test must not pass on a delay that never happened); a control file
 * it cannot read, or a log it cannot write: UNAVAIL with that error; and glibc, told
 * "passwd: slow files", still finds root through "files" after the delay, the module's log
 * ($CB_NSS_LOG) naming the look-up.
 *
 *   test-nss-slow MODULE-PATH */
#include <stdlib.h>
#include <unistd.h>

#include "../nss-module-check.h"

static void write_file(const char *path, const char *text) {
        FILE *f = fopen(path, "we");
        if (!f || fputs(text, f) < 0 || fclose(f) != 0) {
                perror(path);
                exit(1);
        }
}

int main(int argc, char **argv) {
        char buf[1024], file[] = "/tmp/test-nss-slow.XXXXXX", log[sizeof file + 4];
        struct passwd pw, *pwres;
        NssModule m;
        long t0, took;
        int err, fd;

        if (argc != 2) {
                fprintf(stderr, "usage: test-nss-slow MODULE-PATH\n");
                return 2;
        }
        if (nss_module_load(argv[1], "slow", &m) < 0)
                return 1;
        fd = mkstemp(file);
        if (fd < 0) {
                perror("mkstemp");
                return 1;
        }
        close(fd);
        snprintf(log, sizeof log, "%s.log", file);

        write_file(file, "3000\n");
        unsetenv("CB_NSS_SLOW_FILE");
        nss_module_check_all(&m, "no CB_NSS_SLOW_FILE", NSS_STATUS_NOTFOUND, ENOENT, 0, 2000);
        setenv("CB_NSS_SLOW_FILE", file, 1);
        write_file(file, "300\n");
        nss_module_check_all(&m, "300 ms", NSS_STATUS_NOTFOUND, ENOENT, 300, 0);
        write_file(file, "soon\n");
        nss_module_check_all(&m, "a file with no number", NSS_STATUS_UNAVAIL, EINVAL, 0, 2000);
        write_file(file, "700000\n");
        nss_module_check_all(&m, "700000 ms (more than 600000)", NSS_STATUS_UNAVAIL, EINVAL, 0, 2000);
        write_file(file, "-5\n");
        nss_module_check_all(&m, "a negative number", NSS_STATUS_UNAVAIL, EINVAL, 0, 2000);
        /* A control file it cannot read (a directory: fopen() succeeds, fread() fails). */
        setenv("CB_NSS_SLOW_FILE", "/", 1);
        nss_module_check_all(&m, "a control file it cannot read", NSS_STATUS_UNAVAIL, EISDIR, 0, 2000);
        setenv("CB_NSS_SLOW_FILE", file, 1);
        write_file(file, "0\n");
        /* A log it cannot write: the write's error, not a silent pass. */
        setenv("CB_NSS_LOG", "/nonexistent-dir/nss.log", 1);
        nss_module_check_all(&m, "a log it cannot write", NSS_STATUS_UNAVAIL, ENOENT, 0, 2000);
        unsetenv("CB_NSS_LOG");
        dlclose(m.handle);

        /* Through glibc: slow, then "files" answers; the module logs what it was asked. */
        write_file(file, "200\n");
        unlink(log);
        setenv("CB_NSS_LOG", log, 1);
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
        check(nss_log_has(log, "slow getpwuid_r 0"), "the module's log: \"slow getpwuid_r 0\"");
        unlink(log);

        unlink(file);
        return nss_checks_done("test-nss-slow");
}
