/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "cb-names.h"
#include "cb-subject.h"
#include "cb-policy.h"
#include "util.h"

#define SHOW_INPUT_MAX 128U

const char *cb_decision_result_to_error(CbDecisionResult r) {
        static const char *const table[_CB_DECISION_RESULT_MAX] = {
                [CB_DECISION_ALLOWED] = "",
                [CB_DECISION_ACCESS_DENIED] = "AccessDenied",
                [CB_DECISION_NAME_NOT_PERMITTED] = "NameNotPermitted",
                [CB_DECISION_UNKNOWN_CA] = "UnknownCA",
                [CB_DECISION_INVALID_ARGUMENT] = "InvalidArgument",
                [CB_DECISION_KEY_NOT_PERMITTED] = "KeyNotPermitted",
                [CB_DECISION_QUOTA_EXCEEDED] = "QuotaExceeded",
        };
        if ((int) r < 0 || r >= _CB_DECISION_RESULT_MAX)
                return "AccessDenied";
        return table[r];
}

int cb_selinux_label_type(const char *label, const char **ret_start, size_t *ret_len) {
        if (!label)
                return -EINVAL;
        const char *a = strchr(label, ':');
        if (!a)
                return -EINVAL;
        const char *b = strchr(a + 1, ':');
        if (!b)
                return -EINVAL;
        const char *t = b + 1;
        size_t n = strcspn(t, ":");
        if (n == 0)
                return -EINVAL;
        if (ret_start)
                *ret_start = t;
        if (ret_len)
                *ret_len = n;
        return 0;
}

static bool parse_id(const char *s, uint32_t *ret) {
        uint64_t x = 0;
        if (!*s)
                return false;
        for (; *s; s++) {
                if (!ascii_isdigit(*s))
                        return false;
                x = x * 10 + (uint64_t) (*s - '0');
                if (x > UINT32_MAX)
                        return false;
        }
        *ret = (uint32_t) x;
        return true;
}

static bool strv_contains(const char *const *v, size_t n, const char *s) {
        if (!v || !s)
                return false;
        for (size_t i = 0; i < n; i++)
                if (streq_ptr(v[i], s))
                        return true;
        return false;
}

bool cb_rule_applies(const CbRule *rule, const CbCaller *caller) {
        uint32_t id;

        if (!rule || !caller)
                return false;
        if (rule->n_users == 0 && rule->n_groups == 0 && rule->n_units == 0 && rule->n_selinux_types == 0)
                return false;

        if (rule->n_users > 0) {
                bool m = false;
                for (size_t i = 0; i < rule->n_users && !m; i++)
                        m = parse_id(rule->users[i], &id) ? id == (uint32_t) caller->uid
                                                          : streq_ptr(rule->users[i], caller->user_name);
                if (!m)
                        return false;
        }
        if (rule->n_groups > 0) {
                bool m = false;
                for (size_t i = 0; i < rule->n_groups && !m; i++) {
                        if (parse_id(rule->groups[i], &id)) {
                                for (size_t j = 0; j < caller->n_gids && caller->gids && !m; j++)
                                        m = (uint32_t) caller->gids[j] == id;
                        } else
                                m = strv_contains(caller->group_names, caller->n_group_names, rule->groups[i]);
                }
                if (!m)
                        return false;
        }
        if (rule->n_units > 0 &&
            !strv_contains((const char *const *) rule->units, rule->n_units, caller->unit))
                return false;
        if (rule->n_selinux_types > 0) {
                const char *t;
                size_t n;
                bool m = false;
                if (cb_selinux_label_type(caller->selinux_label, &t, &n) < 0)
                        return false;
                for (size_t i = 0; i < rule->n_selinux_types && !m; i++)
                        m = strlen(rule->selinux_types[i]) == n && memcmp(rule->selinux_types[i], t, n) == 0;
                if (!m)
                        return false;
        }
        return true;
}

static bool rule_allows_ca(const CbRule *rule, const char *ca) {
        return rule->n_cas == 0 || strv_contains((const char *const *) rule->cas, rule->n_cas, ca);
}

bool cb_policy_caller_may_use_ca(const CbConfig *c, const CbCaller *caller, const char *ca) {
        if (!c || !caller || !ca)
                return false;
        if (caller->uid == 0 && c->root_bypasses_rules)
                return true;
        for (size_t i = 0; i < c->n_rules; i++)
                if (cb_rule_applies(&c->rules[i], caller) && rule_allows_ca(&c->rules[i], ca))
                        return true;
        return false;
}

void cb_decision_done(CbDecision *d) {
        if (!d)
                return;
        free(d->rule);
        free(d->reason);
        free(d->label);
        strv_free_n(d->names, d->n_names);
        cb_subject_free(d->subject);
        *d = (CbDecision) {};
}

/* "a b c": the names of the values a rule's Keys= or Usages= allows. */
static void allowed_list(const bool *allowed, int n, const char *(*name)(int), char *buf, size_t size) {
        size_t o = 0;

        buf[0] = 0;
        for (int i = 0; i < n && o < size; i++)
                if (allowed[i])
                        o += (size_t) snprintf(buf + o, size - o, "%s%s", o ? " " : "", name(i));
}

static const char *key_name(int t) {
        return cb_key_type_to_string((CbKeyType) t);
}

static const char *usage_name(int u) {
        return cb_usage_to_string((CbUsage) u);
}

/* Caller-supplied text in messages: printable ASCII as is, everything else as \xNN, cut. */
static char *show(const char *s) {
        if (!s)
                return strdup("(null)");
        size_t n = strlen(s);
        bool cut = n > SHOW_INPUT_MAX;
        if (cut)
                n = SHOW_INPUT_MAX;
        char *buf = malloc(n * 4 + 4), *o = buf;
        if (!buf)
                return NULL;
        for (size_t i = 0; i < n; i++) {
                uint8_t c = (uint8_t) s[i];
                if (c < 0x20 || c >= 0x7f || c == '\\' || c == '\'')
                        o += sprintf(o, "\\x%02x", c);
                else
                        *o++ = (char) c;
        }
        if (cut)
                o = stpcpy(o, "...");
        *o = 0;
        return buf;
}

static char *join(char *const *v, size_t n) {
        size_t len = 1;
        for (size_t i = 0; i < n; i++)
                len += strlen(v[i]) + 1;
        char *s = malloc(len), *o = s;
        if (!s)
                return NULL;
        *o = 0;
        for (size_t i = 0; i < n; i++) {
                if (i > 0)
                        *o++ = ' ';
                o = stpcpy(o, v[i]);
        }
        if (len > 256)
                strcpy(s + 250, " ...");
        return s;
}

static int set_outcome(CbDecision *d, CbDecisionResult result, const char *rule, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));

static int set_outcome(CbDecision *d, CbDecisionResult result, const char *rule, const char *fmt, ...) {
        char *reason = NULL, *r = NULL;
        va_list ap;

        va_start(ap, fmt);
        int k = vasprintf(&reason, fmt, ap);
        va_end(ap);
        if (k < 0)
                return -ENOMEM;
        r = strdup(rule ? rule : "");
        if (!r) {
                free(reason);
                return -ENOMEM;
        }
        free(d->reason);
        free(d->rule);
        d->reason = reason;
        d->rule = r;
        d->result = result;
        d->allowed = result == CB_DECISION_ALLOWED;
        return 0;
}

static char *window_string(uint64_t usec, char *buf, size_t size) {
        uint64_t s = usec / CB_USEC_PER_SEC;
        if (s % 86400 == 0)
                snprintf(buf, size, "%llud", (unsigned long long) (s / 86400));
        else if (s % 3600 == 0)
                snprintf(buf, size, "%lluh", (unsigned long long) (s / 3600));
        else if (s % 60 == 0)
                snprintf(buf, size, "%llum", (unsigned long long) (s / 60));
        else
                snprintf(buf, size, "%llus", (unsigned long long) s);
        return buf;
}

typedef struct Counts {
        const CbUsageCounter *counter;
        uid_t uid;
        bool have_active;
        uint64_t active;
        uint64_t windows[8], since[8];
        size_t n_windows;
} Counts;

static int counts_active(Counts *c, uint64_t *ret) {
        if (!c->have_active) {
                c->active = 0;
                if (c->counter && c->counter->count_active) {
                        int r = c->counter->count_active(c->uid, &c->active, c->counter->userdata);
                        if (r < 0)
                                return r;
                }
                c->have_active = true;
        }
        *ret = c->active;
        return 0;
}

static int counts_since(Counts *c, uint64_t window, uint64_t *ret) {
        for (size_t i = 0; i < c->n_windows; i++)
                if (c->windows[i] == window) {
                        *ret = c->since[i];
                        return 0;
                }
        uint64_t n = 0;
        if (c->counter && c->counter->count_since) {
                uint64_t now = c->counter->now_usec;
                uint64_t since = now > window ? now - window : 0;
                int r = c->counter->count_since(c->uid, since, &n, c->counter->userdata);
                if (r < 0)
                        return r;
        }
        if (c->n_windows < ELEMENTSOF(c->windows)) {
                c->windows[c->n_windows] = window;
                c->since[c->n_windows++] = n;
        }
        *ret = n;
        return 0;
}

enum {
        STAGE_CA,
        STAGE_KEY,
        STAGE_USAGE,
        STAGE_NAMES,
        STAGE_SUBJECT,
        STAGE_QUOTA,
        STAGE_PASSED,
};

/* Checks one applicable rule. Returns the stage reached (STAGE_PASSED when the rule allows the
 * request) and on failure a message in *ret_reason; negative errno on failure. */
static bool rule_allows_rdn(const CbRule *rule, const CbSubjectRdn *rdn) {
        for (size_t i = 0; i < rule->n_subject; i++)
                if (strcmp(rule->subject[i].type, rdn->type) == 0 &&
                    (!rule->subject[i].value || strcmp(rule->subject[i].value, rdn->value) == 0))
                        return true;
        return false;
}

static char *subject_patterns_list(const CbRule *rule) {
        _cleanup_free_ char **v = calloc(rule->n_subject + 1, sizeof(char *));
        if (!v)
                return NULL;
        for (size_t i = 0; i < rule->n_subject; i++)
                v[i] = rule->subject[i].text;
        return join(v, rule->n_subject);
}

static int rule_check_quota(const CbRule *rule, Counts *counts, char **ret_reason);

/* A check that refuses: the formatted reason into *ret_reason, and result (the stage reached, or 1)
 * returned; -ENOMEM with *ret_reason untouched. */
static int refuse(char **ret_reason, int result, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int refuse(char **ret_reason, int result, const char *fmt, ...) {
        char *reason;
        va_list ap;
        int k;

        va_start(ap, fmt);
        k = vasprintf(&reason, fmt, ap);
        va_end(ap);
        if (k < 0)
                return -ENOMEM;
        *ret_reason = reason;
        return result;
}

/* The first two checks every rule makes, ordinary or Identity=self: the CA, then the key type.
 * Returns 0 when both allow; 1 when one refuses, *ret_by_key telling which, *ret_reason naming
 * the rule and its setting; or -ENOMEM. */
static int rule_refuse_ca_or_key(const CbRule *rule, const CbCa *ca, CbKeyType key, bool *ret_by_key,
                                 char **ret_reason) {
        int r;

        if (!rule_allows_ca(rule, ca->name)) {
                _cleanup_free_ char *list = join(rule->cas, rule->n_cas);
                if (!list)
                        return -ENOMEM;
                r = refuse(ret_reason, 1, "rule '%s' (%s:%u) does not allow CA '%s' (CAs=%s)", rule->name,
                           rule->path, rule->line, ca->name, list);
                if (r > 0)
                        *ret_by_key = false;
                return r;
        }
        if (rule->keys_set && !rule->keys[key]) {
                char allowed[128];
                allowed_list(rule->keys, _CB_KEY_TYPE_MAX, key_name, allowed, sizeof allowed);
                r = refuse(ret_reason, 1, "rule '%s' (%s:%u) does not allow key type %s (Keys=%s): request one of "
                           "those with the key option", rule->name, rule->path, rule->line,
                           cb_key_type_to_string(key), allowed);
                if (r > 0)
                        *ret_by_key = true;
                return r;
        }
        return 0;
}

static int rule_check(const CbRule *rule, const CbCa *ca, CbKeyType key, CbUsage usage, char *const *names,
                      size_t n_names, const char *cn, const CbSubject *subject, Counts *counts,
                      char **ret_reason) {
        bool by_key;
        int r;

        r = rule_refuse_ca_or_key(rule, ca, key, &by_key, ret_reason);
        if (r != 0)
                return r < 0 ? r : by_key ? STAGE_KEY : STAGE_CA;

        if (rule->usages_set && !rule->usages[usage]) {
                char allowed[64];
                allowed_list(rule->usages, _CB_USAGE_MAX, usage_name, allowed, sizeof allowed);
                return refuse(ret_reason, STAGE_USAGE, "rule '%s' (%s:%u) does not allow key usage %s (Usages=%s)%s: "
                              "request one of those with the usage option", rule->name, rule->path, rule->line,
                              cb_usage_to_string(usage), allowed,
                              usage == CB_USAGE_BOTH ? "; both is the default when the usage option is not given" : "");
        }

        for (size_t i = 0; i <= n_names; i++) {
                const char *name = i < n_names ? names[i] : cn;
                const char *what = i < n_names ? "name" : "subject CN";
                if (!name)
                        continue;
                if (cb_name_is_wildcard(name) && !rule->wildcards)
                        return refuse(ret_reason, STAGE_NAMES, "%s '%s' is a wildcard and rule '%s' (%s:%u) has "
                                      "Wildcards=no", what, name, rule->name, rule->path, rule->line);
                bool m = false;
                for (size_t j = 0; j < rule->n_names && !m; j++)
                        m = cb_name_pattern_match(rule->names[j], name);
                if (!m) {
                        _cleanup_free_ char *list = join(rule->names, rule->n_names);
                        if (!list)
                                return -ENOMEM;
                        return refuse(ret_reason, STAGE_NAMES, "%s '%s' is not permitted by rule '%s' (%s:%u), which "
                                      "allows Names=%s", what, name, rule->name, rule->path, rule->line, list);
                }
        }

        /* Subject attributes besides the CN: only those the rule's Subject= lists. */
        for (size_t i = 0; subject && i < subject->n_rdns; i++) {
                const CbSubjectRdn *rdn = &subject->rdns[i];
                if (rdn->value == subject->cn || rule_allows_rdn(rule, rdn))
                        continue;
                _cleanup_free_ char *v = show(rdn->value);
                if (!v)
                        return -ENOMEM;
                if (rule->n_subject == 0)
                        return refuse(ret_reason, STAGE_SUBJECT, "subject attribute %s='%s' is not permitted by rule "
                                      "'%s' (%s:%u), which has no Subject= and so allows subjects with a CN only: leave "
                                      "the attribute out, or list it in the rule's Subject= (e.g. Subject=%s=*)",
                                      rdn->type, v, rule->name, rule->path, rule->line, rdn->type);
                _cleanup_free_ char *list = subject_patterns_list(rule);
                if (!list)
                        return -ENOMEM;
                return refuse(ret_reason, STAGE_SUBJECT, "subject attribute %s='%s' is not permitted by rule '%s' "
                              "(%s:%u), which allows Subject=%s: leave the attribute out or use an allowed value",
                              rdn->type, v, rule->name, rule->path, rule->line, list);
        }

        r = rule_check_quota(rule, counts, ret_reason);
        if (r != 0)
                return r < 0 ? r : STAGE_QUOTA;
        return STAGE_PASSED;
}

static char *ca_list(const CbConfig *c) {
        size_t len = 1;
        for (size_t i = 0; i < c->n_cas; i++)
                len += strlen(c->cas[i].name) + 2;
        char *s = malloc(len), *o = s;
        if (!s)
                return NULL;
        *o = 0;
        for (size_t i = 0; i < c->n_cas; i++) {
                if (i > 0)
                        o = stpcpy(o, ", ");
                o = stpcpy(o, c->cas[i].name);
        }
        return s;
}

/* MaxActive= and MaxRequests=: 0 within them, 1 with *ret_reason when over one, -errno. */
static int rule_check_quota(const CbRule *rule, Counts *counts, char **ret_reason) {
        int r;

        if (rule->max_active > 0) {
                uint64_t n;
                r = counts_active(counts, &n);
                if (r < 0)
                        return r;
                if (n >= rule->max_active)
                        return refuse(ret_reason, 1, "uid %u has %llu active requests and rule '%s' (%s:%u) allows "
                                      "MaxActive=%u: wait for them to finish, or cancel or remove some",
                                      (unsigned) counts->uid, (unsigned long long) n, rule->name, rule->path,
                                      rule->line, rule->max_active);
        }
        if (rule->max_requests > 0) {
                uint64_t n;
                char w[32];
                r = counts_since(counts, rule->max_requests_window_usec, &n);
                if (r < 0)
                        return r;
                if (n < rule->max_requests)
                        return 0;
                window_string(rule->max_requests_window_usec, w, sizeof w);
                if (rule->max_requests_default)
                        return refuse(ret_reason, 1, "uid %u made %llu requests in the last %s and rule '%s' (%s:%u) "
                                      "sets no MaxRequests=, so certbroker.conf's DefaultMaxRequests=%u/%s "
                                      "applies: try again later (or give the rule its own MaxRequests=)",
                                      (unsigned) counts->uid, (unsigned long long) n, w, rule->name,
                                      rule->path, rule->line, rule->max_requests, w);
                return refuse(ret_reason, 1, "uid %u made %llu requests in the last %s and rule '%s' (%s:%u) "
                              "allows MaxRequests=%u/%s: try again later", (unsigned) counts->uid,
                              (unsigned long long) n, w, rule->name, rule->path, rule->line,
                              rule->max_requests, w);
        }
        return 0;
}

/* ---- Identity=self ---------------------------------------------------------------------- */

static bool is_identity_name(const char *n) {
        return n && (strncmp(n, CB_IDENTITY_UPN_PREFIX, strlen(CB_IDENTITY_UPN_PREFIX)) == 0 ||
                     strncmp(n, CB_IDENTITY_EMAIL_PREFIX, strlen(CB_IDENTITY_EMAIL_PREFIX)) == 0);
}

/* A UPN's user part as the broker derives it: what sAMAccountName allows, without spaces. */
static bool identity_user_ok(const char *u, size_t n) {
        if (n == 0 || n > 64)
                return false;
        for (size_t i = 0; i < n; i++)
                if (!ascii_isalpha(u[i]) && !ascii_isdigit(u[i]) && u[i] != '.' && u[i] != '_' && u[i] != '-')
                        return false;
        return u[0] != '.' && u[n - 1] != '.';
}

enum {
        ID_STAGE_CA,
        ID_STAGE_KEY,
        ID_STAGE_USAGE,
        ID_STAGE_IDENTITY,
        ID_STAGE_NAMES,
        ID_STAGE_QUOTA,
        ID_STAGE_PASSED,
};

static int identity_rule_check(const CbRule *rule, const CbCaller *caller, const CbCa *ca, CbKeyType key,
                               const CbRequestSpec *req, CbUsage req_usage, bool want_upn, bool want_email,
                               Counts *counts, char **ret_reason) {
        bool by_key;
        int r;

        r = rule_refuse_ca_or_key(rule, ca, key, &by_key, ret_reason);
        if (r != 0)
                return r < 0 ? r : by_key ? ID_STAGE_KEY : ID_STAGE_CA;
        if (req->usage && req_usage != rule->identity_usage)
                return refuse(ret_reason, ID_STAGE_USAGE, "rule '%s' (%s:%u) gives certificates for your identity the "
                              "key usage %s (IdentityUsage=%s, which picks the CA's template): leave out the usage "
                              "option", rule->name, rule->path, rule->line, cb_usage_to_string(rule->identity_usage),
                              cb_usage_to_string(rule->identity_usage));
        if (!rule->identity_self)
                return refuse(ret_reason, ID_STAGE_IDENTITY, "rule '%s' (%s:%u) has no Identity=self: it does not give "
                              "certificates for the caller's own identity", rule->name, rule->path, rule->line);
        if (rule->identity_uids_set &&
            ((uint32_t) caller->uid < rule->identity_uid_min || (uint32_t) caller->uid > rule->identity_uid_max))
                return refuse(ret_reason, ID_STAGE_IDENTITY, "uid %u is outside rule '%s' (%s:%u)'s IdentityUIDs=%u-%u "
                              "(the range of the directory's users)", (unsigned) caller->uid, rule->name, rule->path,
                              rule->line, rule->identity_uid_min, rule->identity_uid_max);
        if (!rule->identity_any_account && caller->account != CB_ACCOUNT_DIRECTORY)
                return refuse(ret_reason, ID_STAGE_IDENTITY, "uid %u is %s and rule '%s' (%s:%u) gives certificates for "
                              "their own identity to the realm's accounts only (IdentityAccounts=realm): log in with "
                              "your directory account", (unsigned) caller->uid,
                              caller->account == CB_ACCOUNT_LOCAL ? "a local account (in /etc/passwd)"
                                                                  : "an account of unknown kind",
                              rule->name, rule->path, rule->line);
        if ((want_upn && !rule->identity_upn) || (want_email && !rule->identity_email))
                return refuse(ret_reason, ID_STAGE_NAMES, "rule '%s' (%s:%u) does not put %s in certificates for the "
                              "caller's identity (IdentityNames=%s%s%s)", rule->name, rule->path, rule->line,
                              want_upn && !rule->identity_upn ? "the UPN" : "the e-mail address",
                              rule->identity_upn ? "upn" : "", rule->identity_upn && rule->identity_email ? " " : "",
                              rule->identity_email ? "email" : "");
        r = rule_check_quota(rule, counts, ret_reason);
        if (r != 0)
                return r < 0 ? r : ID_STAGE_QUOTA;
        return ID_STAGE_PASSED;
}

/* The refusal to report when no rule allows a request: the one that got furthest (the highest
 * stage), the first of those on ties. */
typedef struct Refusal {
        char *reason;
        const CbRule *rule;
        int stage;
} Refusal;

/* Keeps rule's refusal (reason, taken) if it got further than the one kept. */
static void refusal_keep(Refusal *best, const CbRule *rule, int stage, char *reason) {
        if (stage <= best->stage) {
                free(reason);
                return;
        }
        free(best->reason);
        *best = (Refusal) { .reason = reason, .rule = rule, .stage = stage };
}

static void refusal_done(Refusal *best) {
        free(best->reason);
}

/* An Identity=self request: the option identity=self, or names that are identities (a renewal,
 * or a request decided again after a reload, carries them). The subject and the names come
 * from the caller's account, never from the request: what the request gives must be exactly
 * those. */
static int decide_identity(const CbConfig *c, const CbCaller *caller, const CbRequestSpec *req,
                           const CbUsageCounter *counter, CbDecision *d) {
        _cleanup_free_ char *domain = NULL, *upn = NULL, *user = NULL, *shown = NULL;
        const char *why = NULL;
        bool want_upn = false, want_email = false;
        int r;

        if (req->identity && strcmp(req->identity, "self") != 0) {
                _cleanup_free_ char *s = show(req->identity);
                return s ? set_outcome(d, CB_DECISION_INVALID_ARGUMENT, NULL,
                                       "option identity='%s': the only identity is self", s) : -ENOMEM;
        }
        if (!caller->user_name)
                return set_outcome(d, CB_DECISION_ACCESS_DENIED, NULL,
                                   "uid %u has no user name (NSS): a certificate for your own identity needs the "
                                   "account's name", (unsigned) caller->uid);

        /* sssd's fully qualified names are user@domain; a short name is in the realm's domain. */
        const char *at = strrchr(caller->user_name, '@');
        size_t ulen = at ? (size_t) (at - caller->user_name) : strlen(caller->user_name);
        shown = show(caller->user_name);
        if (!shown)
                return -ENOMEM;
        if (!identity_user_ok(caller->user_name, ulen))
                return set_outcome(d, CB_DECISION_NAME_NOT_PERMITTED, NULL,
                                   "user name '%s' cannot be a UPN's user part (1 to 64 letters, digits, '.', '_' "
                                   "or '-')", shown);
        user = strndup(caller->user_name, ulen);
        if (!user)
                return -ENOMEM;
        const char *dom = at ? at + 1 : c->realm;
        r = cb_name_normalize(dom, strlen(dom), c->permitted_suffix, 0, &domain, &why);
        if (r == -ENOMEM)
                return r;
        if (r < 0) {
                _cleanup_free_ char *s = show(dom);
                return s ? set_outcome(d, CB_DECISION_NAME_NOT_PERMITTED, NULL,
                                       "the UPN %s@%s is not permitted: its domain %s%s%s", user, s, why,
                                       streq_ptr(why, "is not under the permitted suffix") ? " " : "",
                                       streq_ptr(why, "is not under the permitted suffix") ? c->permitted_suffix : "")
                         : -ENOMEM;
        }
        if (asprintf(&upn, "%s@%s", user, domain) < 0)
                return -ENOMEM;

        /* The subject: "" or exactly CN=<user>. */
        r = cb_subject_new_cn(user, &d->subject);
        if (r < 0)
                return r;
        if (req->subject && *req->subject) {
                CbSubject *s = NULL;
                _cleanup_free_ char *text = show(req->subject);
                if (!text)
                        return -ENOMEM;
                r = cb_subject_parse(req->subject, &s, &why);
                if (r == -ENOMEM)
                        return r;
                bool same = r >= 0 && s->n_rdns == 1 && s->cn && strcasecmp(s->cn, user) == 0;
                cb_subject_free(s);
                if (!same)
                        return set_outcome(d, CB_DECISION_NAME_NOT_PERMITTED, NULL,
                                           "subject '%s' is not your identity: a certificate for your own identity "
                                           "has the subject CN=%s (your user name); give \"\"", text, user);
        }

        /* The names: none (the rule's IdentityNames= decide), or exactly the caller's. */
        d->names = calloc(3, sizeof(char *));
        if (!d->names)
                return -ENOMEM;
        if (req->n_names > 2)
                return set_outcome(d, CB_DECISION_INVALID_ARGUMENT, NULL,
                                   "%zu names: a certificate for your own identity has at most its UPN and e-mail "
                                   "address", req->n_names);
        for (size_t i = 0; i < req->n_names; i++) {
                const char *n = req->names[i] ? req->names[i] : "";
                _cleanup_free_ char *s = show(n);
                if (!s)
                        return -ENOMEM;
                if (!is_identity_name(n))
                        return set_outcome(d, CB_DECISION_INVALID_ARGUMENT, NULL,
                                           "name '%s' is no identity: a certificate for your own identity carries "
                                           "no DNS names; enroll those in a request of their own", s);
                bool is_upn = strncmp(n, CB_IDENTITY_UPN_PREFIX, strlen(CB_IDENTITY_UPN_PREFIX)) == 0;
                const char *v = n + strlen(is_upn ? CB_IDENTITY_UPN_PREFIX : CB_IDENTITY_EMAIL_PREFIX);
                if (strcasecmp(v, upn) != 0)
                        return set_outcome(d, CB_DECISION_NAME_NOT_PERMITTED, NULL,
                                           "name '%s' is not your identity: you are %s; the broker derives the UPN "
                                           "and e-mail address from your account (leave the names empty)", s, upn);
                if ((is_upn && want_upn) || (!is_upn && want_email))
                        return set_outcome(d, CB_DECISION_INVALID_ARGUMENT, NULL, "name '%s' is given twice", s);
                if (is_upn)
                        want_upn = true;
                else
                        want_email = true;
        }

        /* Rules: no root bypass (root's is a local account like any other). */
        Counts counts = { .counter = counter, .uid = caller->uid };
        _cleanup_(refusal_done) Refusal best = { .stage = -1 };
        for (size_t i = 0; i < c->n_rules; i++) {
                const CbRule *rule = &c->rules[i];
                char *reason = NULL;

                if (!cb_rule_applies(rule, caller))
                        continue;
                r = identity_rule_check(rule, caller, d->ca, d->key, req, d->usage, want_upn, want_email, &counts,
                                        &reason);
                if (r < 0)
                        return r;
                if (r == ID_STAGE_PASSED) {
                        d->usage = rule->identity_usage;
                        for (size_t j = 0; j < (req->n_names > 0 ? req->n_names : 2); j++) {
                                bool is_upn = req->n_names > 0 ? strncmp(req->names[j], CB_IDENTITY_UPN_PREFIX,
                                                                         strlen(CB_IDENTITY_UPN_PREFIX)) == 0
                                                               : j == 0;
                                char *n = NULL;
                                if (req->n_names == 0 && !(is_upn ? rule->identity_upn : rule->identity_email))
                                        continue;
                                if (asprintf(&n, "%s%s", is_upn ? CB_IDENTITY_UPN_PREFIX : CB_IDENTITY_EMAIL_PREFIX,
                                             upn) < 0)
                                        return -ENOMEM;
                                d->names[d->n_names++] = n;
                        }
                        return set_outcome(d, CB_DECISION_ALLOWED, rule->name,
                                           "allowed by rule '%s' (%s:%u): a certificate for %s", rule->name,
                                           rule->path, rule->line, upn);
                }
                refusal_keep(&best, rule, r, reason);
        }
        if (!best.rule)
                return set_outcome(d, CB_DECISION_ACCESS_DENIED, NULL,
                                   "no rule applies to uid %u (user %s): add a [Rule] with Identity=self in policy.d/ "
                                   "whose Users=, Groups=, Units= or SELinuxTypes= match this caller",
                                   (unsigned) caller->uid, shown);
        static const CbDecisionResult stage_result[] = {
                [ID_STAGE_CA] = CB_DECISION_ACCESS_DENIED,
                [ID_STAGE_KEY] = CB_DECISION_KEY_NOT_PERMITTED,
                [ID_STAGE_USAGE] = CB_DECISION_KEY_NOT_PERMITTED,
                [ID_STAGE_IDENTITY] = CB_DECISION_ACCESS_DENIED,
                [ID_STAGE_NAMES] = CB_DECISION_NAME_NOT_PERMITTED,
                [ID_STAGE_QUOTA] = CB_DECISION_QUOTA_EXCEEDED,
        };
        return set_outcome(d, stage_result[best.stage], best.rule->name, "%s", best.reason);
}

static int decide(const CbConfig *c, const CbCaller *caller, const CbRequestSpec *req,
                  const CbUsageCounter *counter, CbDecision *d) {
        const char *why = NULL;
        int r;

        /* Options. */
        if (req->usage) {
                if (cb_usage_validate(req->usage, &d->usage, &why) < 0) {
                        _cleanup_free_ char *s = show(req->usage);
                        return s ? set_outcome(d, CB_DECISION_INVALID_ARGUMENT, NULL, "option usage='%s' %s", s, why)
                                 : -ENOMEM;
                }
        } else
                d->usage = CB_USAGE_BOTH;
        if (req->label && cb_label_validate(req->label, &why) < 0) {
                _cleanup_free_ char *s = show(req->label);
                return s ? set_outcome(d, CB_DECISION_INVALID_ARGUMENT, NULL, "option label='%s' %s", s, why) : -ENOMEM;
        }
        d->label = strdup(req->label ? req->label : "");
        if (!d->label)
                return -ENOMEM;
        CbKeyType key = _CB_KEY_TYPE_INVALID;
        if (req->key && cb_key_type_validate(req->key, &key, &why) < 0) {
                _cleanup_free_ char *s = show(req->key);
                return s ? set_outcome(d, CB_DECISION_INVALID_ARGUMENT, NULL, "option key='%s' %s", s, why) : -ENOMEM;
        }

        /* CA. */
        const CbCa *ca = cb_config_find_ca(c, req->ca);
        if (!ca) {
                _cleanup_free_ char *list = ca_list(c), *s = show(req->ca);
                if (!list || !s)
                        return -ENOMEM;
                if (c->n_cas == 0)
                        return set_outcome(d, CB_DECISION_UNKNOWN_CA, NULL,
                                           "no CA is configured: add a ca.d/NAME.conf file with a [CA] section");
                if (!req->ca || !*req->ca)
                        return set_outcome(d, CB_DECISION_UNKNOWN_CA, NULL,
                                           "no default CA: name one of the configured CAs (%s), or set Default=yes "
                                           "in one ca.d/*.conf", list);
                return set_outcome(d, CB_DECISION_UNKNOWN_CA, NULL, "unknown CA '%s': the configured CAs are %s", s,
                                   list);
        }
        d->ca = ca;
        d->key = key >= 0 ? key : ca->default_key;

        /* A certificate for the caller's own identity (Identity=self). */
        bool identity = req->identity != NULL;
        for (size_t i = 0; !identity && req->names && i < req->n_names && i < CB_REQUEST_NAMES_MAX; i++)
                identity = is_identity_name(req->names[i]);
        if (identity)
                return decide_identity(c, caller, req, counter, d);

        /* Names. */
        if (req->n_names > CB_REQUEST_NAMES_MAX)
                return set_outcome(d, CB_DECISION_INVALID_ARGUMENT, NULL, "%zu names: at most %u are allowed",
                                   req->n_names, CB_REQUEST_NAMES_MAX);
        if (req->n_names > 0 && !req->names)
                return -EINVAL;
        d->names = calloc(req->n_names + 1, sizeof(char *));
        if (!d->names)
                return -ENOMEM;
        for (size_t i = 0; i < req->n_names; i++) {
                const char *in = req->names[i] ? req->names[i] : "";
                char *n = NULL;
                r = cb_name_normalize(in, strlen(in), c->permitted_suffix, CB_NAME_ALLOW_WILDCARD, &n, &why);
                if (r == -ENOMEM)
                        return r;
                if (r < 0) {
                        _cleanup_free_ char *s = show(in);
                        if (!s)
                                return -ENOMEM;
                        return set_outcome(d, CB_DECISION_NAME_NOT_PERMITTED, NULL, "name '%s' %s%s%s", s, why,
                                           streq_ptr(why, "is not under the permitted suffix") ? " " : "",
                                           streq_ptr(why, "is not under the permitted suffix") ? c->permitted_suffix : "");
                }
                for (size_t j = 0; j < d->n_names; j++)
                        if (strcmp(d->names[j], n) == 0) {
                                free(n);
                                return set_outcome(d, CB_DECISION_INVALID_ARGUMENT, NULL,
                                                   "name '%s' is given twice (names are compared in lower case and "
                                                   "without a trailing dot)", d->names[j]);
                        }
                d->names[d->n_names++] = n;
        }

        /* Subject. */
        if (req->subject && *req->subject) {
                r = cb_subject_parse(req->subject, &d->subject, &why);
                if (r == -ENOMEM)
                        return r;
                if (r < 0) {
                        _cleanup_free_ char *s = show(req->subject);
                        return s ? set_outcome(d, CB_DECISION_INVALID_ARGUMENT, NULL,
                                               "subject '%s' %s: give an RFC 4514 DN such as "
                                               "CN=web.example.com,O=Example (CN, O, OU, L, ST, C), or \"\"", s, why)
                                 : -ENOMEM;
                }
                _cleanup_free_ char *cn = d->subject->cn ? show(d->subject->cn) : NULL;
                if (d->subject->cn && !cn)
                        return -ENOMEM;
                r = cb_subject_check_cn(d->subject, c->permitted_suffix, &why);
                if (r == -ENOMEM)
                        return r;
                if (r < 0)
                        return set_outcome(d, CB_DECISION_NAME_NOT_PERMITTED, NULL, "subject CN '%s' %s%s%s", cn, why,
                                           streq_ptr(why, "is not under the permitted suffix") ? " " : "",
                                           streq_ptr(why, "is not under the permitted suffix") ? c->permitted_suffix : "");
                if (!d->subject->cn && d->n_names == 0)
                        return set_outcome(d, CB_DECISION_INVALID_ARGUMENT, NULL,
                                           "the subject has no CN and there are no names: give at least one name");
        } else {
                if (d->n_names == 0)
                        return set_outcome(d, CB_DECISION_INVALID_ARGUMENT, NULL,
                                           "no names and no subject: give at least one DNS name");
                if (strlen(d->names[0]) > 64)
                        return set_outcome(d, CB_DECISION_INVALID_ARGUMENT, NULL,
                                           "the first name '%s' is longer than 64 bytes, too long for the default "
                                           "subject CN=<first name>: give a subject explicitly (one without a CN, "
                                           "such as O=Example, is fine)", d->names[0]);
                r = cb_subject_new_cn(d->names[0], &d->subject);
                if (r < 0)
                        return r;
        }
        /* The CN is checked like a name; skip it when it is one of the names anyway. */
        const char *cn = d->subject->cn;
        for (size_t i = 0; cn && i < d->n_names; i++)
                if (strcmp(d->names[i], cn) == 0)
                        cn = NULL;

        /* Root: any name under the suffix, but wildcards only ever through a rule with
         * Wildcards=yes (certbroker.policy(5): no '*' except in such a rule). */
        bool wildcard = d->subject->cn && cb_name_is_wildcard(d->subject->cn);
        for (size_t i = 0; i < d->n_names; i++)
                wildcard = wildcard || cb_name_is_wildcard(d->names[i]);
        bool root = caller->uid == 0 && c->root_bypasses_rules;
        if (root && !wildcard) {
                d->root_bypass = true;
                return set_outcome(d, CB_DECISION_ALLOWED, NULL, "allowed: uid 0 bypasses the rules (RootBypassesRules=yes)");
        }

        /* Rules. */
        Counts counts = { .counter = counter, .uid = caller->uid };
        _cleanup_(refusal_done) Refusal best = { .stage = -1 };
        bool applicable = false;
        const CbRule *subject_refused[8];       /* rules that refused only the subject, for the reason */
        size_t n_subject_refused = 0;

        for (size_t i = 0; i < c->n_rules; i++) {
                const CbRule *rule = &c->rules[i];
                char *reason = NULL;

                if (!cb_rule_applies(rule, caller))
                        continue;
                applicable = true;

                r = rule_check(rule, ca, d->key, d->usage, d->names, d->n_names, cn, d->subject, &counts, &reason);
                if (r < 0)
                        return r;
                if (r == STAGE_PASSED)
                        return set_outcome(d, CB_DECISION_ALLOWED, rule->name, "allowed by rule '%s' (%s:%u)",
                                           rule->name, rule->path, rule->line);
                if (r == STAGE_SUBJECT && n_subject_refused < ELEMENTSOF(subject_refused))
                        subject_refused[n_subject_refused++] = rule;
                refusal_keep(&best, rule, r, reason);
        }

        if (!applicable && root)
                return set_outcome(d, CB_DECISION_NAME_NOT_PERMITTED, NULL,
                                   "wildcard names need a rule with Wildcards=yes: RootBypassesRules=yes does not "
                                   "cover them; add a [Rule] with Users=root and Wildcards=yes");
        if (!applicable) {
                _cleanup_free_ char *user = caller->user_name ? show(caller->user_name) : NULL;
                if (caller->user_name && !user)
                        return -ENOMEM;
                return set_outcome(d, CB_DECISION_ACCESS_DENIED, NULL,
                                   "no rule applies to uid %u%s%s%s: add a [Rule] in policy.d/ whose Users=, Groups=, "
                                   "Units= or SELinuxTypes= match this caller", (unsigned) caller->uid,
                                   user ? " (user " : "", user ? user : "", user ? ")" : "");
        }

        static const CbDecisionResult stage_result[] = {
                [STAGE_CA] = CB_DECISION_ACCESS_DENIED,
                [STAGE_KEY] = CB_DECISION_KEY_NOT_PERMITTED,
                [STAGE_USAGE] = CB_DECISION_KEY_NOT_PERMITTED,  /* the key's usage: the nearest error */
                [STAGE_NAMES] = CB_DECISION_NAME_NOT_PERMITTED,
                [STAGE_SUBJECT] = CB_DECISION_NAME_NOT_PERMITTED,
                [STAGE_QUOTA] = CB_DECISION_QUOTA_EXCEEDED,
        };
        if (best.stage == STAGE_SUBJECT && n_subject_refused > 1) {
                char also[512] = "";
                size_t o = 0;
                for (size_t i = 0; i < n_subject_refused && o < sizeof also; i++)
                        if (subject_refused[i] != best.rule)
                                o += snprintf(also + o, sizeof also - o, "%s'%s' (%s:%u)", o ? ", " : "",
                                              subject_refused[i]->name, subject_refused[i]->path,
                                              subject_refused[i]->line);
                return set_outcome(d, stage_result[best.stage], best.rule->name,
                                   "%s; the subject is also refused by rule %s", best.reason, also);
        }
        return set_outcome(d, stage_result[best.stage], best.rule->name, "%s", best.reason);
}

int cb_policy_decide(const CbConfig *config, const CbCaller *caller, const CbRequestSpec *req,
                     const CbUsageCounter *counter, CbDecision *ret) {
        CbDecision d = { .key = _CB_KEY_TYPE_INVALID, .usage = CB_USAGE_BOTH };
        int r;

        if (!config || !caller || !req || !ret)
                return -EINVAL;

        r = decide(config, caller, req, counter, &d);
        if (r < 0) {
                cb_decision_done(&d);
                return r;
        }
        *ret = d;
        return 0;
}
