/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Text that reaches the bus. sd-bus refuses to build a message holding a string that is not
 * valid UTF-8 (and a method's reply that cannot be built is never sent: the caller waits for
 * its timeout), so every text the broker puts on the bus goes through here when it may hold
 * bytes from elsewhere: a caller's argument (a request id decoded from an object path is any
 * bytes), a server's answer, a configuration file. Pure: no bus, no allocation but where said.
 *
 * Valid means what sd-bus accepts: well-formed UTF-8 of at most 4 bytes per character, no
 * surrogates, nothing above U+10FFFF, no non-characters (U+FDD0..U+FDEF, U+xFFFE, U+xFFFF). */

#include <stdbool.h>
#include <stddef.h>

/* The length of the valid character at s (at most n bytes), 0 if the bytes there are not one. */
size_t bus_text_char_len(const char *s, size_t n);

/* Whether s (NUL-terminated) is valid as a D-Bus string. */
bool bus_text_is_valid(const char *s);

/* A caller's text echoed in a message: s with every byte that is not part of a valid character,
 * every control character and '\' written as \xNN, cut after at most max bytes of output on a
 * character boundary (never inside a character or an escape), "..." appended when cut. Writes
 * into buf (size >= max + 4, see BUS_TEXT_ECHO_SIZE) and returns buf. s NULL: "". */
#define BUS_TEXT_ECHO_SIZE(max) ((max) + 4)
char *bus_text_echo(const char *s, size_t max, char *buf, size_t size);

/* How many bytes bus_text_escape() makes of s, with the NUL. */
size_t bus_text_escaped_size(const char *s);
/* s made valid as it is: invalid bytes as \xNN, valid text (control characters and '\'
 * included) unchanged. Writes into buf (size >= bus_text_escaped_size(s)); returns buf. */
char *bus_text_escape(const char *s, char *buf, size_t size);
