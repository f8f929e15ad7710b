/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Internal helpers of policy/ (not installed, not for other modules). */

#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "basic.h"      /* _cleanup_, TAKE_PTR, freep, ELEMENTSOF, unhexchar: shared with service/ */

static inline bool streq_ptr(const char *a, const char *b) {
        if (!a || !b)
                return a == b;
        return strcmp(a, b) == 0;
}

static inline bool ascii_isdigit(char c) {
        return c >= '0' && c <= '9';
}
static inline bool ascii_isalpha(char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}
static inline char ascii_tolower(char c) {
        return c >= 'A' && c <= 'Z' ? (char) (c - 'A' + 'a') : c;
}
static inline char ascii_toupper(char c) {
        return c >= 'a' && c <= 'z' ? (char) (c - 'a' + 'A') : c;
}
static inline bool ascii_isxdigit(char c) {
        return ascii_isdigit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

void strv_free_n(char **v, size_t n);
int strv_push(char ***v, size_t *n, char *s);   /* takes s on success */
bool utf8_is_valid_n(const char *s, size_t n);
