/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The broker the daemon core's unit tests run (test-request, test-engine, and through
 * test-broker.h the bus tests): a temporary
 * directory with certbroker.conf (no keytab: the credentials fail at once, without a KDC;
 * PermittedSuffix=example.test), one default CA "corp" whose [CA] section the test writes,
 * and a policy letting this user enroll *.a.example.test; and enrolling as this user. */

#include <stdbool.h>

#include "manager.h"
#include "request.h"

#define BROKER_NDES_HOST "ndes.example.test"
#define BROKER_CA_URL "https://" BROKER_NDES_HOST "/certsrv/mscep/mscep.dll"
/* The start of a [CA] section for ca.d/corp.conf: the one server above, the default CA, no
 * Kerberos. A test appends Challenge=, PollInterval=, PendingDeadline= and the rest. */
#define BROKER_CA_BASE "URL=" BROKER_CA_URL "\nDefault=yes\nAuthentication=none\n"

typedef struct BrokerDirs {
        char *dir;              /* $TMPDIR/<prefix>-XXXXXX, removed by broker_dirs_free() */
        char *config_dir;       /* dir/conf: certbroker.conf, ca.d/corp.conf, policy.d/me.policy */
        char *state_dir;        /* dir/state: the journal */
} BrokerDirs;

/* Makes the directories and writes the files; ca_section is the body of corp.conf's [CA]
 * section (BROKER_CA_BASE and more). */
void broker_dirs_new(BrokerDirs *d, const char *prefix, const char *ca_section);
/* Removes the directory and frees the names. */
void broker_dirs_free(BrokerDirs *d);

/* Writes text to dir/name. */
void broker_write_file(const char *dir, const char *name, const char *text);
/* This user's name, whom the policy allows. */
const char *broker_user_name(void);

/* The policy's decision for this user enrolling name (key type: NULL for the CA's default);
 * asserted allowed. cb_decision_done() it. */
void broker_decide(Manager *m, const char *name, const char *key, CbDecision *ret);
/* Enroll as this user (request_enroll()): the request, not durable yet; done() follows. */
Request *broker_enroll(Manager *m, const char *name, const char *key, bool renew, const char *token,
                       RequestEnrolled done, void *userdata);
/* The successor renewal.c would make of pred at its RenewAt (the same owner and parameters),
 * made now; not started. */
Request *broker_renew_now(Request *pred);
