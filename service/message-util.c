/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdarg.h>
#include <stdio.h>

#include "message-util.h"

char *message_printf(const char *format, ...) {
        va_list ap;
        char *m;

        va_start(ap, format);
        if (vasprintf(&m, format, ap) < 0)
                m = NULL;
        va_end(ap);
        return m;
}

char *message_printf_strings(const char *format, const char *const strings[static MESSAGE_STRINGS_MAX]) {
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
        return message_printf(format, strings[0], strings[1], strings[2], strings[3], strings[4]);
#pragma GCC diagnostic pop
}
