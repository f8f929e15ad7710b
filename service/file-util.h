/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stddef.h>
#include <sys/types.h>

/* Replaces the file name in the directory dfd (AT_FDCWD: name and tmp_name are paths) with
 * data, so that a reader sees the old content or the new, never a part: tmp_name (in the same
 * directory, a stale one removed first) is created exclusively without following a link,
 * written, given mode, synced and renamed over name. On failure the temporary file is removed,
 * *ret_step (when not NULL) names the step that failed ("create", "write" or "put in place")
 * and -errno is returned. */
int write_file_atomic_at(int dfd, const char *tmp_name, const char *name, const void *data, size_t size,
                         mode_t mode, const char **ret_step);
