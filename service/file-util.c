/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "basic.h"
#include "file-util.h"

static int step_failed(int dfd, const char *tmp_name, const char *step, const char **ret_step) {
        int error = errno;

        (void) unlinkat(dfd, tmp_name, 0);
        if (ret_step)
                *ret_step = step;
        return -error;
}

int write_file_atomic_at(int dfd, const char *tmp_name, const char *name, const void *data, size_t size,
                         mode_t mode, const char **ret_step) {
        _cleanup_close_ int fd = -1;
        const char *p = data;

        (void) unlinkat(dfd, tmp_name, 0);
        fd = openat(dfd, tmp_name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
        if (fd < 0) {
                if (ret_step)
                        *ret_step = "create";
                return -errno;
        }
        for (size_t done = 0; done < size;) {
                ssize_t k = write(fd, p + done, size - done);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0)
                        return step_failed(dfd, tmp_name, "write", ret_step);
                done += (size_t) k;
        }
        /* The mode whatever the umask; on disk before it takes the name. */
        if (fchmod(fd, mode) < 0 || fsync(fd) < 0)
                return step_failed(dfd, tmp_name, "write", ret_step);
        if (close(TAKE_FD(fd)) < 0 || renameat(dfd, tmp_name, dfd, name) < 0)
                return step_failed(dfd, tmp_name, "put in place", ret_step);
        return 0;
}
