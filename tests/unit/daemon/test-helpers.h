/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Small helpers shared by the daemon unit tests: temporary state directories. */

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static inline int test_rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
        (void) st;
        (void) flag;
        (void) ftw;
        return remove(path);
}

/* rm -rf dir (no symlinks followed). */
static inline void test_rm_rf(const char *dir) {
        if (dir)
                (void) nftw(dir, test_rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* A fresh 0700 directory under $TMPDIR (or /tmp); free() the result after test_rm_rf(). */
static inline char *test_mkdtemp(const char *prefix) {
        const char *tmp = getenv("TMPDIR");
        char *p = NULL;

        if (asprintf(&p, "%s/%s-XXXXXX", tmp && *tmp ? tmp : "/tmp", prefix) < 0)
                return NULL;
        if (!mkdtemp(p)) {
                free(p);
                return NULL;
        }
        return p;
}

static inline char *test_path(const char *dir, const char *name) {
        char *p = NULL;

        if (asprintf(&p, "%s/%s", dir, name) < 0 || !p)
                abort();
        return p;
}
