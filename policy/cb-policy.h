/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The policy decision (certbroker.policy(5)): who may request what. Pure code: the daemon
 * resolves the caller (uid, user name, gids, group names, unit, SELinux label) from the bus
 * credentials and NSS, and provides the usage counts through CbUsageCounter; nothing here
 * does I/O or logs. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "cb-config.h"
#include "cb-subject.h"

#define CB_REQUEST_NAMES_MAX 100U

/* Identity=self: the names of a certificate for the caller's own identity, as requests and
 * the Request's Names carry them (a DNS name has no ':'): the UPN otherName and the
 * rfc822Name, each "user@domain". */
#define CB_IDENTITY_UPN_PREFIX   "upn:"
#define CB_IDENTITY_EMAIL_PREFIX "email:"

typedef enum CbAccount {
        CB_ACCOUNT_UNKNOWN,                     /* not resolved (no rule has Identity=self) */
        CB_ACCOUNT_LOCAL,                       /* in the local files database (/etc/passwd) */
        CB_ACCOUNT_DIRECTORY,                   /* only in a directory (sssd, winbind) */
} CbAccount;

/* The caller as the daemon resolved it. Any pointer may be NULL (unknown): a selector line
 * that needs an unknown attribute does not match. */
typedef struct CbCaller {
        uid_t uid;
        const char *user_name;                  /* from getpwuid(uid), or NULL */
        const gid_t *gids; size_t n_gids;       /* primary and supplementary gids */
        const char *const *group_names; size_t n_group_names;  /* names of those gids */
        const char *unit;                       /* systemd unit, e.g. "nginx-a.service" */
        const char *selinux_label;              /* full label "u:r:httpd_t:s0" */
        CbAccount account;                      /* Identity=self: local or a directory's account */
} CbCaller;

/* The request: Enroll/CheckAccess arguments. Strings are NUL-terminated. */
typedef struct CbRequestSpec {
        const char *ca;                         /* "" or NULL: the default CA */
        const char *subject;                    /* "" or NULL: CN=<names[0]> */
        const char *const *names; size_t n_names;       /* DNS subjectAltNames */
        const char *key;                        /* option "key", NULL: the CA's DefaultKey */
        const char *usage;                      /* option "usage", NULL: both */
        const char *label;                      /* option "label", NULL: "" */
        const char *identity;                   /* option "identity": "self", or NULL */
} CbRequestSpec;

/* Usage counts the engine provides. Both callbacks count the caller uid's requests over all
 * CAs and rules (requests the broker accepted; denials are not requests):
 *   count_since: requests created at or after since_usec (CLOCK_REALTIME µs), used for
 *                MaxRequests=N/WINDOW with since_usec = now_usec - WINDOW;
 *   count_active: non-terminal requests (queued, submitting, pending, retrying), used for
 *                MaxActive=.
 * They are called only for rules that have the limit, at most once per distinct window.
 * A negative return aborts cb_policy_decide() with that error. A NULL counter (or NULL
 * callback) counts 0. */
typedef struct CbUsageCounter {
        uint64_t now_usec;
        int (*count_since)(uid_t uid, uint64_t since_usec, uint64_t *ret, void *userdata);
        int (*count_active)(uid_t uid, uint64_t *ret, void *userdata);
        void *userdata;
} CbUsageCounter;

/* The outcome, mapping 1:1 to the D-Bus error names of org.certbroker.Broker1(5) ERRORS (cb_decision_result_to_error()). */
typedef enum CbDecisionResult {
        CB_DECISION_ALLOWED,
        CB_DECISION_ACCESS_DENIED,              /* no applicable rule, or no rule allows the CA */
        CB_DECISION_NAME_NOT_PERMITTED,         /* a name, the CN or another subject attribute fails
                                                 * the guard or the rules */
        CB_DECISION_UNKNOWN_CA,
        CB_DECISION_INVALID_ARGUMENT,           /* bad option, subject, empty names, ... */
        CB_DECISION_KEY_NOT_PERMITTED,          /* key type (Keys=) or key usage (Usages=) */
        CB_DECISION_QUOTA_EXCEEDED,
        _CB_DECISION_RESULT_MAX,
} CbDecisionResult;

/* "AccessDenied", "NameNotPermitted", ... ("" for ALLOWED). The bus layer prefixes
 * "org.certbroker.Broker1.Error.". */
const char *cb_decision_result_to_error(CbDecisionResult r);

typedef struct CbDecision {
        bool allowed;
        CbDecisionResult result;
        char *rule;             /* the allowing rule; on denial the rule the reason is about;
                                 * "" when none (no applicable rule, or root bypass) */
        bool root_bypass;       /* allowed by RootBypassesRules=yes */
        char *reason;           /* human message naming what failed and the fix; on allow a
                                 * short "allowed by rule 'x' (path:line)" */
        /* The resolved request (set whenever the arguments were valid, also on some denials): */
        const CbCa *ca;         /* points into the CbConfig; NULL if unresolved */
        CbKeyType key;          /* resolved key type (CA default applied) */
        CbUsage usage;
        char *label;
        char **names; size_t n_names;   /* normalized, in request order */
        CbSubject *subject;             /* parsed (or CN=<names[0]>), CN normalized */
} CbDecision;

/* Decides a request. Order: options (InvalidArgument), CA (UnknownCA), names and subject
 * (syntax and duplicates: InvalidArgument; the suffix guard: NameNotPermitted), root bypass
 * (RootBypassesRules=yes and uid 0: allowed, any key type, no quota; but not for wildcard
 * names, which certbroker.policy(5) allows only through a rule with Wildcards=yes, so root's wildcard
 * requests go through the rules like anyone's), then the rules in order:
 * the first applicable rule that allows the CA, the key type, the usage, every name, the CN,
 * every other subject attribute (its Subject=; none: CN-only subjects), and is within its
 * MaxActive and MaxRequests limits allows the request. When none does, the denial reports the
 * rule that got furthest (CA < key < usage < names < subject < quota; the first such rule on
 * ties; a subject denial also names the other rules that refused only the subject). A usage no
 * rule allows is KeyNotPermitted (it is the key's usage); a subject attribute NameNotPermitted.
 *
 * The CN is checked like a name (it must be allowed by the same rule) but need not also be
 * in names. Names are normalized (lower case, trailing dot removed) and duplicates after
 * normalization are InvalidArgument. A request needs at least one name unless its subject
 * has a CN.
 *
 * Returns 0 with *ret filled (allowed or denied: a denial is not a failure), or a negative
 * errno (-ENOMEM, or a counter's error) with *ret untouched. Release with cb_decision_done(). */
int cb_policy_decide(const CbConfig *config, const CbCaller *caller, const CbRequestSpec *req,
                     const CbUsageCounter *counter, CbDecision *ret);

void cb_decision_done(CbDecision *d);

/* Whether some rule that applies to the caller may use this CA (for CA.Check); root is
 * always allowed when RootBypassesRules=yes. */
bool cb_policy_caller_may_use_ca(const CbConfig *config, const CbCaller *caller, const char *ca);

/* Whether the rule's selectors match the caller (false for a rule without selectors). */
bool cb_rule_applies(const CbRule *rule, const CbCaller *caller);

/* The type field of an SELinux label ("u:r:httpd_t:s0" → "httpd_t", also without a level
 * "u:r:httpd_t"): returns 0 with *ret_start and *ret_len pointing into label, or -EINVAL when
 * label is NULL or has no non-empty third field. */
int cb_selinux_label_type(const char *label, const char **ret_start, size_t *ret_len);
