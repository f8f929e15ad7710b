/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* What an audit record may say about the caller's arguments: the names of a request as they
 * reach the journal. Never the raw argument (a name can be megabytes, or hold newlines and
 * bytes that would forge journal lines): bytes other than letters, digits, '.', '-', '_'
 * and '*' become \xNN; each name is cut after AUDIT_NAME_MAX input bytes ("..." marks the
 * cut); the list is space-separated and cut at the buffer's end with " (+N more)". Pure. */

#include <stddef.h>

#define AUDIT_NAME_MAX 253U             /* a DNS name's limit */
#define AUDIT_NAMES_TEXT_MAX 1024U      /* CERTBROKER_NAMES= at most this long (with the NUL) */

/* Writes into buf (size >= 32) and returns buf. names may hold NULLs (shown as ""). */
char *audit_names_format(const char *const *names, size_t n_names, char *buf, size_t size);
