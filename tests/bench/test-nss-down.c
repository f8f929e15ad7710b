/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The soak's NSS module (nss-down.c) must make look-ups fail with an error, not "not found":
 * otherwise the soak's NSS windows would test nothing. Checked two ways: each of its five entry
 * points, loaded with dlopen(), answers UNAVAIL with ECONNREFUSED and writes nothing; and
 * glibc, told to use the module for passwd and group (__nss_configure_lookup(), the module
 * found through LD_LIBRARY_PATH), makes getpwuid_r(), getpwnam_r() and getgrgid_r() return
 * ECONNREFUSED with no result, the module's log ($CB_NSS_LOG) naming each look-up; a log it
 * cannot write turns the answer's error into the write's.
 *
 *   test-nss-down MODULE-PATH */
#include <stdlib.h>
#include <unistd.h>

#include "../nss-module-check.h"

int main(int argc, char **argv) {
        char buf[1024], log[64];
        struct passwd pw, *pwres;
        struct group gr, *grres;
        NssModule m;
        int e;

        if (argc != 2) {
                fprintf(stderr, "usage: test-nss-down MODULE-PATH\n");
                return 2;
        }
        if (nss_module_load(argv[1], "down", &m) < 0)
                return 1;
        nss_module_check_all(&m, "the module", NSS_STATUS_UNAVAIL, ECONNREFUSED, 0, 0);
        setenv("CB_NSS_LOG", "/nonexistent-dir/nss.log", 1);
        nss_module_check_all(&m, "a log it cannot write", NSS_STATUS_UNAVAIL, ENOENT, 0, 0);
        dlclose(m.handle);

        snprintf(log, sizeof log, "/tmp/test-nss-down.%ld.log", (long) getpid());
        unlink(log);
        setenv("CB_NSS_LOG", log, 1);

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
        check(nss_log_has(log, "down getpwuid_r 0") && nss_log_has(log, "down getpwnam_r root") &&
              nss_log_has(log, "down getgrgid_r 0"), "the module's log names the three look-ups");
        unlink(log);
        return nss_checks_done("test-nss-down");
}
