/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* A malloc()ed message, printf-style; NULL when out of memory (callers then use a fixed text). */
char *message_printf(const char *format, ...) __attribute__((format(printf, 1, 2)));

/* For tables of messages: format holds only %s conversions, at most MESSAGE_STRINGS_MAX, filled
 * from strings[] in order (entries past those the format uses may be NULL). The format is
 * not checked by the compiler: a table's test runs each of its entries. */
#define MESSAGE_STRINGS_MAX 5
char *message_printf_strings(const char *format, const char *const strings[static MESSAGE_STRINGS_MAX]);
