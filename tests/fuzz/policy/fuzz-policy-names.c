/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Fuzzes the suffix guard: cb_name_normalize(), patterns and cb_url_check(), and checks what
 * every accepted name must be. The first byte selects flags; the rest is the name. */

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cb-names.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_name(const char *n, bool wildcard_ok, const char *suffix) {
        size_t len = strlen(n);
        if (len == 0 || len > CB_NAME_MAX || n[len - 1] == '.' || n[0] == '.')
                abort();
        if (suffix && !cb_name_is_under_suffix(n, suffix))
                abort();
        size_t label = 0;
        for (size_t i = 0; i < len; i++) {
                char c = n[i];
                if (c == '.') {
                        if (label == 0 || n[i - 1] == '-')
                                abort();
                        label = 0;
                        continue;
                }
                if (c == '*') {
                        if (!wildcard_ok || i != 0 || n[1] != '.')
                                abort();
                } else if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'))
                        abort();
                if (label == 0 && c == '-')
                        abort();
                if (++label > CB_LABEL_MAX)
                        abort();
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        if (size < 1 || size > 4096)
                return 0;
        uint8_t sel = data[0];
        const char *name = (const char *) data + 1;
        size_t len = size - 1;
        const char *suffix = (sel & 2) ? NULL : "example.com";
        CbNameFlags flags = (sel & 1) ? CB_NAME_ALLOW_WILDCARD : 0;
        char *out = NULL;
        const char *why = NULL;

        int r = cb_name_normalize(name, len, suffix, flags, &out, &why);
        if (r == 0) {
                check_name(out, flags & CB_NAME_ALLOW_WILDCARD, suffix);
                /* normalizing is idempotent */
                char *again = NULL;
                if (cb_name_normalize(out, strlen(out), suffix, flags, &again, NULL) != 0 || strcmp(again, out) != 0)
                        abort();
                free(again);
        } else if (r != -EINVAL || !why || out)
                abort();

        /* NUL-terminated forms for the string APIs */
        char *s = malloc(len + 1);
        if (!s)
                return 0;
        memcpy(s, name, len);
        s[len] = 0;

        char *pattern = NULL;
        if (cb_name_pattern_normalize(s, "example.com", &pattern, &why) == 0) {
                const char *base = pattern + (strncmp(pattern, "**.", 3) == 0 ? 3 : strncmp(pattern, "*.", 2) == 0 ? 2 : 0);
                check_name(base, false, "example.com");
                if (out && cb_name_pattern_match(pattern, out) && !cb_name_is_under_suffix(out, "example.com"))
                        abort();
        }

        char *host = NULL;
        r = cb_url_check(s, "example.com", &host, &why);
        if (r == 0) {
                check_name(host, false, "example.com");
                free(host);
        } else if (r != -EINVAL || !why)
                abort();

        free(pattern);
        free(out);
        free(s);
        return 0;
}
