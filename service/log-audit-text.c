/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdio.h>
#include <string.h>

#include "log-audit-text.h"

static int is_plain(unsigned char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               c == '.' || c == '-' || c == '_' || c == '*';
}

/* One name, escaped and cut, into out (room for 4 * AUDIT_NAME_MAX + 4). */
static size_t format_one(const char *name, char *out) {
        size_t o = 0, len = name ? strlen(name) : 0;

        for (size_t i = 0; i < len && i < AUDIT_NAME_MAX; i++) {
                unsigned char c = (unsigned char) name[i];
                if (is_plain(c))
                        out[o++] = (char) c;
                else
                        o += (size_t) snprintf(out + o, 5, "\\x%02x", c);
        }
        if (len > AUDIT_NAME_MAX) {
                memcpy(out + o, "...", 3);
                o += 3;
        }
        out[o] = 0;
        return o;
}

char *audit_names_format(const char *const *names, size_t n_names, char *buf, size_t size) {
        char one[4 * AUDIT_NAME_MAX + 4], more[48];
        size_t o = 0;

        if (!buf || size < 32)
                return buf;
        buf[0] = 0;
        for (size_t i = 0; i < n_names; i++) {
                size_t len = format_one(names[i], one);
                size_t sep = i > 0 ? 1 : 0;
                /* Keep room for the " (+N more)" note unless this is the last name. */
                int m = snprintf(more, sizeof more, " (+%zu more)", n_names - i);
                size_t reserve = i + 1 < n_names ? (size_t) m : 0;

                if (o + sep + len + reserve + 1 > size) {
                        if (o + (size_t) m + 1 <= size)
                                memcpy(buf + o, more, (size_t) m + 1);
                        return buf;
                }
                if (sep)
                        buf[o++] = ' ';
                memcpy(buf + o, one, len + 1);
                o += len;
        }
        return buf;
}
