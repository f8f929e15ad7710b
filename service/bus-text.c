/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "bus-text.h"

static bool unichar_is_valid(uint32_t c) {
        if (c > 0x10ffffU)
                return false;
        if (c >= 0xd800U && c <= 0xdfffU)               /* surrogates */
                return false;
        if (c >= 0xfdd0U && c <= 0xfdefU)               /* non-characters */
                return false;
        if ((c & 0xfffeU) == 0xfffeU)                   /* U+xFFFE, U+xFFFF */
                return false;
        return true;
}

size_t bus_text_char_len(const char *s, size_t n) {
        const unsigned char *u = (const unsigned char *) s;
        size_t len;
        uint32_t c, min;

        if (n == 0 || u[0] == 0)
                return 0;
        if (u[0] < 0x80)
                return 1;
        if (u[0] >= 0xc0 && u[0] < 0xe0) {
                len = 2;
                c = u[0] & 0x1fU;
                min = 0x80;
        } else if (u[0] >= 0xe0 && u[0] < 0xf0) {
                len = 3;
                c = u[0] & 0x0fU;
                min = 0x800;
        } else if (u[0] >= 0xf0 && u[0] < 0xf8) {
                len = 4;
                c = u[0] & 0x07U;
                min = 0x10000;
        } else
                return 0;                               /* a continuation byte, or 0xf8..0xff */
        if (len > n)
                return 0;
        for (size_t i = 1; i < len; i++) {
                if ((u[i] & 0xc0U) != 0x80U)
                        return 0;
                c = (c << 6) | (u[i] & 0x3fU);
        }
        if (c < min || !unichar_is_valid(c))            /* overlong, or not a character */
                return 0;
        return len;
}

bool bus_text_is_valid(const char *s) {
        size_t n = strlen(s);

        for (size_t i = 0; i < n;) {
                size_t l = bus_text_char_len(s + i, n - i);
                if (l == 0)
                        return false;
                i += l;
        }
        return true;
}

static bool echo_as_is(const char *s, size_t l) {
        unsigned char c = (unsigned char) s[0];
        return l > 1 || (c >= 0x20 && c != 0x7f && c != '\\');
}

char *bus_text_echo(const char *s, size_t max, char *buf, size_t size) {
        size_t n = s ? strlen(s) : 0, o = 0;

        if (!buf || size == 0)
                return buf;
        if (size < BUS_TEXT_ECHO_SIZE(max))
                max = size >= 4 ? size - 4 : 0;
        for (size_t i = 0; i < n;) {
                size_t l = bus_text_char_len(s + i, n - i);
                size_t out = l > 0 && echo_as_is(s + i, l) ? l : 4;

                if (o + out > max) {
                        if (size >= o + 4) {
                                memcpy(buf + o, "...", 3);
                                o += 3;
                        }
                        break;
                }
                if (out == 4) {
                        snprintf(buf + o, 5, "\\x%02x", (unsigned char) s[i]);
                        i++;
                } else {
                        memcpy(buf + o, s + i, l);
                        i += l;
                }
                o += out;
        }
        buf[o] = 0;
        return buf;
}

size_t bus_text_escaped_size(const char *s) {
        size_t n = strlen(s), o = 0;

        for (size_t i = 0; i < n;) {
                size_t l = bus_text_char_len(s + i, n - i);
                o += l > 0 ? l : 4;
                i += l > 0 ? l : 1;
        }
        return o + 1;
}

char *bus_text_escape(const char *s, char *buf, size_t size) {
        size_t n = strlen(s), o = 0;

        if (!buf || size == 0)
                return buf;
        for (size_t i = 0; i < n;) {
                size_t l = bus_text_char_len(s + i, n - i);
                size_t out = l > 0 ? l : 4;

                if (o + out + 1 > size)
                        break;
                if (l > 0)
                        memcpy(buf + o, s + i, l);
                else
                        snprintf(buf + o, 5, "\\x%02x", (unsigned char) s[i]);
                o += out;
                i += l > 0 ? l : 1;
        }
        buf[o] = 0;
        return buf;
}
