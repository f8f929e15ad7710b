/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <syslog.h>

/* Logging for the daemon (only service/ logs). To the journal when one is
 * there, else to stderr. Structured audit records carry CERTBROKER_* fields.
 * Never pass secrets (challenges, keys, tickets) to any of these. */

void log_setup(void);

/* Returns -abs(error) so callers can `return log_error_errno(r, ...)`. */
int log_full_errno(int level, int error, const char *format, ...) __attribute__((format(printf, 3, 4)));

#define log_debug(...)              log_full_errno(LOG_DEBUG, 0, __VA_ARGS__)
#define log_info(...)               log_full_errno(LOG_INFO, 0, __VA_ARGS__)
#define log_notice(...)             log_full_errno(LOG_NOTICE, 0, __VA_ARGS__)
#define log_warning(...)            log_full_errno(LOG_WARNING, 0, __VA_ARGS__)
#define log_error(...)              log_full_errno(LOG_ERR, 0, __VA_ARGS__)
#define log_warning_errno(e, ...)   log_full_errno(LOG_WARNING, (e), __VA_ARGS__)
#define log_error_errno(e, ...)     log_full_errno(LOG_ERR, (e), __VA_ARGS__)

/* One audit record: a decision or an outcome. Fields may be NULL. */
typedef struct AuditRecord {
        const char *request;
        unsigned long uid;
        const char *rule;
        const char *decision;   /* "allow", "deny", "issued", "rejected", "failed", ... */
        const char *names;      /* space-separated */
        const char *ca;
        const char *error;      /* D-Bus error name */
} AuditRecord;

void log_audit(int level, const AuditRecord *a, const char *format, ...) __attribute__((format(printf, 3, 4)));
