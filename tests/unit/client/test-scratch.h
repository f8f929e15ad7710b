/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* A test group's scratch directory, from a mkdtemp() template such as
 * "/tmp/test-NAME.XXXXXX": test_scratch_make() creates it (0700), test_scratch_remove() removes
 * it with everything in it; test_mkdir_mode() makes a directory with exactly the given mode
 * (whatever the umask). For cmocka's group setup and teardown. */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <cmocka.h>

static inline int test_scratch_make(char *template) {
        assert_non_null(mkdtemp(template));
        assert_int_equal(chmod(template, 0700), 0);
        return 0;
}

static inline int test_scratch_remove(const char *dir) {
        char cmd[128];

        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
        return system(cmd) == 0 ? 0 : -1;
}

static inline void test_mkdir_mode(const char *path, mode_t mode) {
        assert_int_equal(mkdir(path, mode), 0);
        assert_int_equal(chmod(path, mode), 0);
}
