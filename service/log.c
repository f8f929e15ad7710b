/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <systemd/sd-journal.h>
#include <unistd.h>

#include "log.h"

static bool use_journal;
static int max_level = LOG_INFO;

void log_setup(void) {
        struct stat st;
        const char *e = getenv("CERTBROKER_LOG_LEVEL");

        /* The journal's socket is there when journald runs. */
        use_journal = stat("/run/systemd/journal/socket", &st) == 0 && S_ISSOCK(st.st_mode) &&
                      !getenv("CERTBROKER_LOG_STDERR");
        if (e && strcmp(e, "debug") == 0)
                max_level = LOG_DEBUG;
}

static void log_message(int level, const char *msg, int error) {
        if (level > max_level)
                return;
        if (use_journal) {
                if (error != 0)
                        sd_journal_send("MESSAGE=%s", msg, "PRIORITY=%i", level,
                                        "ERRNO=%i", error, "SYSLOG_IDENTIFIER=certbrokerd", NULL);
                else
                        sd_journal_send("MESSAGE=%s", msg, "PRIORITY=%i", level,
                                        "SYSLOG_IDENTIFIER=certbrokerd", NULL);
        } else
                fprintf(stderr, "certbrokerd: %s\n", msg);
}

int log_full_errno(int level, int error, const char *format, ...) {
        char buf[2048];
        va_list ap;
        int saved = errno;

        if (error < 0)
                error = -error;
        errno = error;          /* so %m works */
        va_start(ap, format);
        vsnprintf(buf, sizeof buf, format, ap);
        va_end(ap);
        errno = saved;

        log_message(level, buf, error);
        return -error;
}

void log_audit(int level, const AuditRecord *a, const char *format, ...) {
        char msg[2048];
        va_list ap;

        va_start(ap, format);
        vsnprintf(msg, sizeof msg, format, ap);
        va_end(ap);

        if (level > max_level)
                return;
        if (!use_journal) {
                fprintf(stderr, "certbrokerd: %s [request=%s uid=%lu rule=%s decision=%s ca=%s names=%s error=%s]\n",
                        msg, a->request ?: "-", a->uid, a->rule ?: "-", a->decision ?: "-",
                        a->ca ?: "-", a->names ?: "-", a->error ?: "-");
                return;
        }
        sd_journal_send("MESSAGE=%s", msg,
                        "PRIORITY=%i", level,
                        "SYSLOG_IDENTIFIER=certbrokerd",
                        "CERTBROKER_REQUEST=%s", a->request ?: "",
                        "CERTBROKER_UID=%lu", a->uid,
                        "CERTBROKER_RULE=%s", a->rule ?: "",
                        "CERTBROKER_DECISION=%s", a->decision ?: "",
                        "CERTBROKER_NAMES=%s", a->names ?: "",
                        "CERTBROKER_CA=%s", a->ca ?: "",
                        "CERTBROKER_ERROR=%s", a->error ?: "",
                        NULL);
}
