/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* write_file_atomic_at(): the content and mode it promises, a stale or planted temporary name,
 * and each failing step named with nothing left behind. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "file-util.h"

static char dir[] = "/tmp/test-file-util.XXXXXX";
static int dfd = -1;

static char *read_at(const char *name) {
        static char buf[256];
        int fd = openat(dfd, name, O_RDONLY | O_CLOEXEC);
        ssize_t n;

        if (fd < 0)
                return NULL;
        n = read(fd, buf, sizeof buf - 1);
        close(fd);
        assert_true(n >= 0);
        buf[n] = 0;
        return buf;
}

static void test_write_and_replace(void **state) {
        const char *step = "untouched";
        struct stat st;

        umask(0077);
        assert_int_equal(write_file_atomic_at(dfd, ".f.tmp", "f", "one\n", 4, 0644, &step), 0);
        assert_string_equal(step, "untouched");
        assert_string_equal(read_at("f"), "one\n");
        assert_int_equal(fstatat(dfd, "f", &st, 0), 0);
        assert_int_equal(st.st_mode & 07777, 0644);     /* whatever the umask */
        assert_int_equal(faccessat(dfd, ".f.tmp", F_OK, 0), -1);

        assert_int_equal(write_file_atomic_at(dfd, ".f.tmp", "f", "two", 3, 0600, NULL), 0);
        assert_string_equal(read_at("f"), "two");
        assert_int_equal(fstatat(dfd, "f", &st, 0), 0);
        assert_int_equal(st.st_mode & 07777, 0600);
}

static void test_stale_and_planted_temporary(void **state) {
        int fd;

        /* A temporary file left by a crash is replaced. */
        fd = openat(dfd, ".g.tmp", O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
        assert_true(fd >= 0);
        assert_int_equal(write(fd, "stale", 5), 5);
        close(fd);
        assert_int_equal(write_file_atomic_at(dfd, ".g.tmp", "g", "fresh", 5, 0600, NULL), 0);
        assert_string_equal(read_at("g"), "fresh");

        /* A link at the temporary name is removed, never written through. */
        fd = openat(dfd, "target", O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
        assert_true(fd >= 0);
        close(fd);
        assert_int_equal(symlinkat("target", dfd, ".h.tmp"), 0);
        assert_int_equal(write_file_atomic_at(dfd, ".h.tmp", "h", "new", 3, 0600, NULL), 0);
        assert_string_equal(read_at("h"), "new");
        assert_string_equal(read_at("target"), "");
}

static void test_failures_named(void **state) {
        const char *step = NULL;
        char path[sizeof dir + 32];

        /* No such directory: the create step. */
        snprintf(path, sizeof path, "%s/missing/.x.tmp", dir);
        assert_int_equal(write_file_atomic_at(AT_FDCWD, path, "x", "a", 1, 0600, &step), -ENOENT);
        assert_string_equal(step, "create");

        /* The name is a directory: the rename fails, the temporary file is gone, the old
         * directory stays. */
        assert_int_equal(mkdirat(dfd, "d", 0700), 0);
        assert_int_equal(mkdirat(dfd, "d/sub", 0700), 0);
        step = NULL;
        assert_int_equal(write_file_atomic_at(dfd, ".d.tmp", "d", "a", 1, 0600, &step), -EISDIR);
        assert_string_equal(step, "put in place");
        assert_int_equal(faccessat(dfd, ".d.tmp", F_OK, 0), -1);
        assert_int_equal(faccessat(dfd, "d/sub", F_OK, 0), 0);
}

static int setup(void **state) {
        assert_non_null(mkdtemp(dir));
        dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        return dfd < 0 ? -1 : 0;
}

static int teardown(void **state) {
        char cmd[sizeof dir + 16];

        close(dfd);
        snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
        return system(cmd) == 0 ? 0 : -1;
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_write_and_replace),
                cmocka_unit_test(test_stale_and_planted_temporary),
                cmocka_unit_test(test_failures_named),
        };
        return cmocka_run_group_tests(tests, setup, teardown);
}
