/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* A malloc()ed message, printf-style; NULL when out of memory (callers then use a fixed text). */
char *message_printf(const char *format, ...) __attribute__((format(printf, 1, 2)));
