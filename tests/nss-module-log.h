/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The test NSS modules (tests/integration/nss-slow.c, tests/bench/nss-down.c) say what they were
 * asked: when $CB_NSS_LOG names a file, each look-up appends one line, "SERVICE ENTRY KEY", so a
 * test checks that the module it set up was consulted, and for whom, instead of passing on a
 * module glibc never loaded. */

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

/* 0 when the line is written or no log is asked for; -errno when it could not be written (the
 * module then answers UNAVAIL with that error and says why on stderr). */
static inline int nss_log(const char *service, const char *entry, const char *key) {
        const char *path = getenv("CB_NSS_LOG");
        char line[512];
        int fd, n, r = 0;

        if (!path || !*path)
                return 0;
        n = snprintf(line, sizeof line, "%s %s %s\n", service, entry, key ? key : "-");
        if (n < 0 || (size_t) n >= sizeof line)
                return -ENAMETOOLONG;
        fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
        if (fd < 0)
                r = -errno;
        else {
                /* One write of a short line on O_APPEND: whole, whatever other threads write. */
                if (write(fd, line, (size_t) n) != n)
                        r = errno ? -errno : -EIO;
                close(fd);
        }
        if (r < 0)
                fprintf(stderr, "nss-%s: cannot log %s(%s) to %s: %s\n", service, entry, key ? key : "-", path,
                        strerror(-r));
        return r;
}

static inline const char *nss_log_id(unsigned long id, char buf[static 24]) {
        snprintf(buf, 24, "%lu", id);
        return buf;
}
