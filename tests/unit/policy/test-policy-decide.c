/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The policy decision: selectors, CAs, keys, names, wildcards, quotas, root, subjects,
 * Identity=self. */

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "cb-policy.h"

static const char main_conf[] = "[Kerberos]\nRealm=EXAMPLE.COM\nPrincipal=svc-scep@EXAMPLE.COM\n";
static const char corp_conf[] = "[CA]\nURL=https://ndes.example.com/certsrv/mscep/mscep.dll\nDefault=yes\nDefaultKey=ec:p256\n";
static const char lab_conf[] = "[CA]\nURL=https://lab.example.com/certsrv/mscep/mscep.dll\n";
static const char policy_a[] =
        "[Rule]\n"
        "Name=tenant-a-web\n"
        "Users=alice 1001\n"
        "Names=*.a.example.com a.example.com\n"
        "Keys=rsa:2048 ec:p256\n"
        "CAs=corp\n"
        "MaxRequests=3/1h\n"
        "MaxActive=2\n"
        "Subject=O=Tenant\\ A OU=*\n"
        "[Rule]\n"                      /* line 10 */
        "Name=alice-lab\n"
        "Users=alice\n"
        "CAs=lab\n"
        "Names=lab.a.example.com\n"
        "Subject=O=Tenant\\,\\20A c=de\n";
static const char policy_b[] =
        "[Rule]\n"
        "Name=tenant-b\n"
        "Groups=tenant-b 3000\n"
        "Names=**.b.example.com\n"
        "Wildcards=yes\n"
        "[Rule]\n"
        "Name=web-unit\n"
        "Units=nginx-c.service\n"
        "Names=c.example.com\n"
        "[Rule]\n"
        "Name=selinux\n"
        "SELinuxTypes=httpd_t\n"
        "Names=d.example.com\n"
        "CAs=lab\n"
        "[Rule]\n"
        "Name=combo\n"
        "Users=carol\n"
        "Groups=ops\n"
        "Names=e.example.com\n"
        "[Rule]\n"
        "Name=nobody\n"
        "Names=**.example.com\n"
        "[Rule]\n"
        "Name=dave-rate\n"
        "Users=dave\n"
        "Names=g.example.com\n"
        "MaxRequests=5/10m\n"
        "[Rule]\n"
        "Name=dave-rate-2\n"
        "Users=dave\n"
        "Names=g.example.com\n"
        "MaxRequests=50/1d\n"
        "[Rule]\n"
        "Name=root-wild\n"
        "Users=root\n"
        "Names=**.w.example.com\n"
        "Wildcards=yes\n"
        "[Rule]\n"
        "Name=erin-sign\n"
        "Users=erin\n"
        "Names=u.example.com\n"
        "Usages=signature encryption\n";

static CbConfig *config_new(const char *extra_main) {
        char m[512];
        snprintf(m, sizeof m, "%s%s", main_conf, extra_main ? extra_main : "");
        CbConfigSource s[] = {
                { "/etc/certbroker/certbroker.conf", m, strlen(m) },
                { "/etc/certbroker/ca.d/corp.conf", corp_conf, strlen(corp_conf) },
                { "/etc/certbroker/ca.d/lab.conf", lab_conf, strlen(lab_conf) },
                { "/etc/certbroker/policy.d/a.policy", policy_a, strlen(policy_a) },
                { "/etc/certbroker/policy.d/b.policy", policy_b, strlen(policy_b) },
        };
        CbConfig *c = NULL;
        CbConfigError e = {};
        char buf[1200];
        int r = cb_config_parse(s, 5, &c, &e);
        if (r < 0)
                fail_msg("config: %s", cb_config_error_format(&e, buf, sizeof buf));
        return c;
}

enum {
        ALICE, ALICE_BY_NAME, UID_1001, BOB, TENANT_B_NAME, TENANT_B_GID, TENANT_B_SUPP, NGINX_C, HTTPD,
        HTTPD_NO_LEVEL, HTTPD_BAD_LABEL, CAROL_OPS, CAROL, ROOT, ROOT_UID_ONLY, DAVE, ERIN, _CALLER_MAX
};

static const gid_t gids_3000[] = { 3000 };
static const gid_t gids_supp[] = { 100, 27, 3000 };
static const gid_t gids_ops[] = { 4000 };
static const char *const names_tenant_b[] = { "tenant-b" };
static const char *const names_ops[] = { "ops" };

static const CbCaller callers[_CALLER_MAX] = {
        [ALICE] = { .uid = 1001, .user_name = "alice" },
        [ALICE_BY_NAME] = { .uid = 2001, .user_name = "alice" },
        [UID_1001] = { .uid = 1001 },
        [BOB] = { .uid = 1002, .user_name = "bob" },
        [TENANT_B_NAME] = { .uid = 1003, .user_name = "bea", .gids = gids_supp, .n_gids = 1,
                            .group_names = names_tenant_b, .n_group_names = 1 },
        [TENANT_B_GID] = { .uid = 1004, .gids = gids_3000, .n_gids = 1 },
        [TENANT_B_SUPP] = { .uid = 1005, .gids = gids_supp, .n_gids = 3 },
        [NGINX_C] = { .uid = 33, .unit = "nginx-c.service" },
        [HTTPD] = { .uid = 48, .selinux_label = "system_u:system_r:httpd_t:s0" },
        [HTTPD_NO_LEVEL] = { .uid = 48, .selinux_label = "system_u:system_r:httpd_t" },
        [HTTPD_BAD_LABEL] = { .uid = 48, .selinux_label = "httpd_t" },
        [CAROL_OPS] = { .uid = 1006, .user_name = "carol", .gids = gids_ops, .n_gids = 1,
                        .group_names = names_ops, .n_group_names = 1 },
        [CAROL] = { .uid = 1006, .user_name = "carol" },
        [ROOT] = { .uid = 0, .user_name = "root" },
        [ROOT_UID_ONLY] = { .uid = 0 },
        [DAVE] = { .uid = 1007, .user_name = "dave" },
        [ERIN] = { .uid = 1008, .user_name = "erin" },
};

typedef struct DecideCase {
        int caller;
        const char *ca, *subject;
        const char *names[4];
        const char *key, *usage, *label;
        uint64_t since, active;         /* what the counter reports */
        CbDecisionResult result;
        const char *rule;
        const char *reason;             /* substring */
} DecideCase;

#define A CB_DECISION_ALLOWED
#define DENIED CB_DECISION_ACCESS_DENIED
#define NAME CB_DECISION_NAME_NOT_PERMITTED
#define UNKNOWN CB_DECISION_UNKNOWN_CA
#define INVALID CB_DECISION_INVALID_ARGUMENT
#define KEY CB_DECISION_KEY_NOT_PERMITTED
#define QUOTA CB_DECISION_QUOTA_EXCEEDED

static const DecideCase decide_cases[] = {
        /* users: by name and by uid */
        { ALICE, "", "", { "web.a.example.com" }, .result = A, .rule = "tenant-a-web", .reason = "allowed by rule 'tenant-a-web' (/etc/certbroker/policy.d/a.policy:1)" },
        { ALICE_BY_NAME, "", "", { "a.example.com" }, .result = A, .rule = "tenant-a-web" },
        { UID_1001, "corp", "", { "a.example.com" }, .result = A, .rule = "tenant-a-web" },
        { BOB, "", "", { "web.a.example.com" }, .result = DENIED, .rule = "",
          .reason = "no rule applies to uid 1002 (user bob): add a [Rule] in policy.d/" },
        /* names: normalization, patterns, the guard */
        { ALICE, "", "", { "WEB.A.Example.COM." }, .result = A, .rule = "tenant-a-web" },
        { ALICE, "", "", { "web.a.example.com", "a.example.com" }, .result = A, .rule = "tenant-a-web" },
        { ALICE, "", "", { "x.web.a.example.com" }, .result = NAME, .rule = "tenant-a-web",
          .reason = "name 'x.web.a.example.com' is not permitted by rule 'tenant-a-web' (/etc/certbroker/policy.d/a.policy:1), which allows Names=*.a.example.com a.example.com" },
        { ALICE, "", "", { "web.a.example.com", "web.b.example.com" }, .result = NAME, .rule = "tenant-a-web", .reason = "name 'web.b.example.com'" },
        { ALICE, "", "", { "evilexample.com" }, .result = NAME, .rule = "", .reason = "name 'evilexample.com' is not under the permitted suffix example.com" },
        { ALICE, "", "", { "a.example.com.evil.net" }, .result = NAME, .reason = "is not under the permitted suffix example.com" },
        { ALICE, "", "", { "weba.example.com" }, .result = NAME, .rule = "tenant-a-web" },
        { ALICE, "", "", { "127.0.0.1" }, .result = NAME, .reason = "IPv4" },
        { ALICE, "", "", { "[::1]" }, .result = NAME, .reason = "IPv6" },
        { ALICE, "", "", { "web.a.example.com\n" }, .result = NAME, .reason = "name 'web.a.example.com\\x0a' contains a control character" },
        { ALICE, "", "", { "b\xc3\xbc" "cher.a.example.com" }, .result = NAME, .reason = "'b\\xc3\\xbccher.a.example.com' contains non-ASCII characters: give internationalized names as xn-- A-labels" },
        { ALICE, "", "", { "xn--bcher-kva.a.example.com" }, .result = A },
        { ALICE, "", "", { "web%2ea.example.com" }, .result = NAME, .reason = "'%'" },
        { ALICE, "", "", { "" }, .result = NAME, .reason = "name '' is empty" },
        { ALICE, "", "", { "a.example.com", "A.Example.com." }, .result = INVALID, .reason = "name 'a.example.com' is given twice" },
        /* wildcards */
        { ALICE, "", "", { "*.a.example.com" }, .result = NAME, .rule = "tenant-a-web",
          .reason = "name '*.a.example.com' is a wildcard and rule 'tenant-a-web' (/etc/certbroker/policy.d/a.policy:1) has Wildcards=no" },
        { ALICE, "", "", { "a.*.example.com" }, .result = NAME, .reason = "whole leftmost label" },
        { TENANT_B_NAME, "", "", { "*.x.b.example.com", "x.b.example.com" }, .result = A, .rule = "tenant-b" },
        { TENANT_B_NAME, "", "", { "*.b.example.com" }, .result = A, .rule = "tenant-b" },
        { TENANT_B_NAME, "", "", { "b.example.com" }, .result = NAME, .rule = "tenant-b" },
        { TENANT_B_NAME, "", "", { "*.example.com" }, .result = NAME, .rule = "tenant-b" },
        /* groups by name, gid, supplementary gid */
        { TENANT_B_GID, "", "", { "deep.er.b.example.com" }, .result = A, .rule = "tenant-b" },
        { TENANT_B_SUPP, "", "", { "x.b.example.com" }, .result = A, .rule = "tenant-b" },
        /* units */
        { NGINX_C, "", "", { "c.example.com" }, .result = A, .rule = "web-unit" },
        { NGINX_C, "", "", { "d.example.com" }, .result = NAME, .rule = "web-unit" },
        /* SELinux types from labels */
        { HTTPD, "lab", "", { "d.example.com" }, .result = A, .rule = "selinux" },
        { HTTPD_NO_LEVEL, "lab", "", { "d.example.com" }, .result = A, .rule = "selinux" },
        { HTTPD_BAD_LABEL, "lab", "", { "d.example.com" }, .result = DENIED, .rule = "" },
        { HTTPD, "", "", { "d.example.com" }, .result = DENIED, .rule = "selinux",
          .reason = "rule 'selinux' (/etc/certbroker/policy.d/b.policy:10) does not allow CA 'corp' (CAs=lab)" },
        /* every selector line must match */
        { CAROL_OPS, "", "", { "e.example.com" }, .result = A, .rule = "combo" },
        { CAROL, "", "", { "e.example.com" }, .result = DENIED, .rule = "", .reason = "no rule applies to uid 1006 (user carol)" },
        /* CAs */
        { ALICE, "lab", "", { "lab.a.example.com" }, .result = A, .rule = "alice-lab" },
        { ALICE, "lab", "", { "web.a.example.com" }, .result = NAME, .rule = "alice-lab",
          .reason = "name 'web.a.example.com' is not permitted by rule 'alice-lab'" },
        { ALICE, "corp", "", { "lab.a.example.com" }, .result = A, .rule = "tenant-a-web" },
        { ALICE, "nope", "", { "a.example.com" }, .result = UNKNOWN, .reason = "unknown CA 'nope': the configured CAs are corp, lab" },
        { ALICE, "Corp", "", { "a.example.com" }, .result = UNKNOWN },
        /* keys */
        { ALICE, "", "", { "a.example.com" }, .key = "ec:p384", .result = KEY, .rule = "tenant-a-web",
          .reason = "rule 'tenant-a-web' (/etc/certbroker/policy.d/a.policy:1) does not allow key type ec:p384 (Keys=rsa:2048 ec:p256)" },
        { ALICE, "", "", { "a.example.com" }, .key = "rsa:2048", .result = A },
        { ALICE, "lab", "", { "lab.a.example.com" }, .key = "rsa:4096", .result = A, .rule = "alice-lab" },
        { ALICE, "", "", { "a.example.com" }, .key = "rsa:1024", .result = INVALID, .reason = "option key='rsa:1024' is not a key type" },
        { ALICE, "", "", { "a.example.com" }, .key = "", .result = INVALID, .reason = "option key=''" },
        /* usage and label */
        { ALICE, "", "", { "a.example.com" }, .usage = "signature", .label = "web server", .result = A },
        { ALICE, "", "", { "a.example.com" }, .usage = "sign", .result = INVALID, .reason = "option usage='sign' is not a usage" },
        { ALICE, "", "", { "a.example.com" }, .label = "a\nb", .result = INVALID, .reason = "option label='a\\x0ab' contains a control character" },
        { ALICE, "", "", { "a.example.com" }, .label = "0123456789012345678901234567890123456789012345678901234567890123"
                                                         "01234567890123456789012345678901234567890123456789012345678901234",
          .result = INVALID, .reason = "longer than 128 bytes" },
        /* usages */
        { ERIN, "", "", { "u.example.com" }, .usage = "signature", .result = A, .rule = "erin-sign" },
        { ERIN, "", "", { "u.example.com" }, .usage = "encryption", .result = A, .rule = "erin-sign" },
        { ERIN, "", "", { "u.example.com" }, .usage = "both", .result = KEY, .rule = "erin-sign",
          .reason = "rule 'erin-sign' (/etc/certbroker/policy.d/b.policy:38) does not allow key usage both "
                    "(Usages=signature encryption); both is the default when the usage option is not given: request "
                    "one of those with the usage option" },
        { ERIN, "", "", { "u.example.com" }, .result = KEY, .rule = "erin-sign", .reason = "does not allow key usage both" },
        { ERIN, "", "", { "x.example.com" }, .usage = "both", .result = KEY, .rule = "erin-sign" },   /* usage before names */
        { ALICE, "", "", { "a.example.com" }, .usage = "both", .result = A },   /* no Usages=: every usage */
        { ROOT, "", "", { "u.example.com" }, .usage = "both", .result = A, .rule = "" },
        /* quotas */
        { ALICE, "", "", { "a.example.com" }, .since = 2, .active = 1, .result = A },
        { ALICE, "", "", { "a.example.com" }, .since = 3, .result = QUOTA, .rule = "tenant-a-web",
          .reason = "uid 1001 made 3 requests in the last 1h and rule 'tenant-a-web' (/etc/certbroker/policy.d/a.policy:1) allows MaxRequests=3/1h: try again later" },
        { ALICE, "", "", { "a.example.com" }, .active = 2, .result = QUOTA, .rule = "tenant-a-web",
          .reason = "uid 1001 has 2 active requests and rule 'tenant-a-web' (/etc/certbroker/policy.d/a.policy:1) allows MaxActive=2" },
        /* alice-lab sets no MaxRequests=: DefaultMaxRequests= (100/1h) applies, and it has no MaxActive= */
        { ALICE, "lab", "", { "lab.a.example.com" }, .since = 99, .active = 1000, .result = A, .rule = "alice-lab" },
        { ALICE, "lab", "", { "lab.a.example.com" }, .since = 100, .result = QUOTA, .rule = "alice-lab",
          .reason = "uid 1001 made 100 requests in the last 1h and rule 'alice-lab' (/etc/certbroker/policy.d/a.policy:10) "
                    "sets no MaxRequests=, so certbroker.conf's DefaultMaxRequests=100/1h applies: try again later" },
        { ALICE, "", "", { "web.b.example.com" }, .since = 100, .result = NAME, .rule = "tenant-a-web" },  /* names before quota */
        { DAVE, "", "", { "g.example.com" }, .since = 5, .result = A, .rule = "dave-rate-2" },      /* another rule still allows */
        { DAVE, "", "", { "g.example.com" }, .since = 50, .result = QUOTA, .rule = "dave-rate", .reason = "MaxRequests=5/10m" },
        /* root */
        { ROOT, "", "", { "anything.example.com" }, .key = "rsa:4096", .since = 1000, .active = 1000, .result = A, .rule = "",
          .reason = "uid 0 bypasses the rules (RootBypassesRules=yes)" },
        { ROOT_UID_ONLY, "", "", { "*.example.com" }, .result = NAME, .rule = "",
          .reason = "wildcard names need a rule with Wildcards=yes: RootBypassesRules=yes does not cover them" },
        { ROOT_UID_ONLY, "", "CN=*.a.example.com", { "a.example.com" }, .result = NAME, .reason = "RootBypassesRules=yes does not cover them" },
        { ROOT, "", "", { "*.example.com" }, .result = NAME, .rule = "root-wild",
          .reason = "name '*.example.com' is not permitted by rule 'root-wild'" },
        { ROOT, "", "", { "*.w.example.com", "other.example.com" }, .result = NAME, .rule = "root-wild",
          .reason = "name 'other.example.com' is not permitted by rule 'root-wild'" },
        { ROOT, "", "", { "*.w.example.com", "x.w.example.com" }, .result = A, .rule = "root-wild" },
        { ROOT, "", "", { "evilexample.com" }, .result = NAME, .reason = "not under the permitted suffix" },
        { ROOT, "", "CN=other.net", { "a.example.com" }, .result = NAME, .reason = "subject CN 'other.net' is not under the permitted suffix example.com" },
        { ROOT, "nope", "", { "a.example.com" }, .result = UNKNOWN },
        /* subjects: the CN is a name like the others */
        { ALICE, "", "CN=web.a.example.com,O=Tenant A", { "web.a.example.com" }, .result = A },
        { ALICE, "", "CN=a.example.com", { "web.a.example.com" }, .result = A },
        { ALICE, "", "CN=web.b.example.com", { "web.a.example.com" }, .result = NAME, .rule = "tenant-a-web",
          .reason = "subject CN 'web.b.example.com' is not permitted by rule 'tenant-a-web'" },
        { ALICE, "", "CN=evil.net", { "web.a.example.com" }, .result = NAME, .rule = "",
          .reason = "subject CN 'evil.net' is not under the permitted suffix example.com" },
        { ALICE, "", "CN=*.a.example.com", { "web.a.example.com" }, .result = NAME, .reason = "subject CN '*.a.example.com' is a wildcard" },
        { ALICE, "", "CN=WEB.A.EXAMPLE.COM.", { "web.a.example.com" }, .result = A },
        { ALICE, "", "CN=a.example.com", { NULL }, .result = A },
        { ALICE, "", "O=Tenant A", { "a.example.com" }, .result = A },
        { ALICE, "", "O=Tenant A", { NULL }, .result = INVALID, .reason = "the subject has no CN and there are no names" },
        { ALICE, "", "", { NULL }, .result = INVALID, .reason = "no names and no subject" },
        { ALICE, "", "CN=a.example.com+O=x", { "a.example.com" }, .result = INVALID,
          .reason = "subject 'CN=a.example.com+O=x' has a multi-valued RDN" },
        { ALICE, "", "E=x@example.com", { "a.example.com" }, .result = INVALID, .reason = "other than CN, O, OU, L, ST and C" },
        { ALICE, "", "", { "abcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghij.a.example.com" }, .result = INVALID,
          .reason = "longer than 64 bytes" },
        { ALICE, "", "O=Tenant A", { "abcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghij.a.example.com" }, .result = A },
        /* subject attributes besides the CN: only what the rule's Subject= lists */
        { ALICE, "", "CN=a.example.com,O=Tenant B", { "a.example.com" }, .result = NAME, .rule = "tenant-a-web",
          .reason = "subject attribute O='Tenant B' is not permitted by rule 'tenant-a-web' "
                    "(/etc/certbroker/policy.d/a.policy:1), which allows Subject=O=Tenant\\ A OU=*: leave the attribute "
                    "out or use an allowed value" },
        { ALICE, "", "O=Tenant B", { "a.example.com" }, .result = NAME, .rule = "tenant-a-web", .reason = "O='Tenant B'" },
        { ALICE, "", "CN=a.example.com,O=tenant a", { "a.example.com" }, .result = NAME, .reason = "O='tenant a'" },
        { ALICE, "", "CN=a.example.com,O=Tenant A ", { "a.example.com" }, .result = A },   /* unescaped end space ignored */
        { ALICE, "", "CN=a.example.com,OU=Web,OU=Ops,O=Tenant A", { "a.example.com" }, .result = A, .rule = "tenant-a-web" },
        { ALICE, "", "CN=a.example.com,L=Berlin,O=Tenant A", { "a.example.com" }, .result = NAME, .rule = "tenant-a-web",
          .reason = "subject attribute L='Berlin' is not permitted by rule 'tenant-a-web'" },
        { ALICE, "", "CN=a.example.com,C=DE", { "a.example.com" }, .result = NAME, .reason = "C='DE'" },
        { ALICE, "lab", "CN=lab.a.example.com,O=Tenant\\, A,C=de", { "lab.a.example.com" }, .result = A, .rule = "alice-lab" },
        { ALICE, "lab", "CN=lab.a.example.com,O=Tenant A", { "lab.a.example.com" }, .result = NAME, .rule = "alice-lab",
          .reason = "O='Tenant A' is not permitted by rule 'alice-lab' (/etc/certbroker/policy.d/a.policy:10), which "
                    "allows Subject=O=Tenant\\,\\20A c=de" },
        { ALICE, "lab", "CN=lab.a.example.com,OU=x", { "lab.a.example.com" }, .result = NAME, .rule = "alice-lab" },
        { TENANT_B_NAME, "", "CN=x.b.example.com,O=Tenant B", { "x.b.example.com" }, .result = NAME, .rule = "tenant-b",
          .reason = "subject attribute O='Tenant B' is not permitted by rule 'tenant-b' (/etc/certbroker/policy.d/b.policy:1), "
                    "which has no Subject= and so allows subjects with a CN only: leave the attribute out, or list it in "
                    "the rule's Subject= (e.g. Subject=O=*)" },
        { TENANT_B_NAME, "", "CN=x.b.example.com", { "x.b.example.com" }, .result = A, .rule = "tenant-b" },
        { DAVE, "", "CN=g.example.com,OU=x'y", { "g.example.com" }, .result = NAME, .rule = "dave-rate",
          .reason = "subject attribute OU='x\\x27y' is not permitted by rule 'dave-rate' (/etc/certbroker/policy.d/b.policy:23), "
                    "which has no Subject=" },
        { DAVE, "", "CN=g.example.com,OU=x", { "g.example.com" }, .result = NAME, .rule = "dave-rate",
          .reason = "; the subject is also refused by rule 'dave-rate-2' (/etc/certbroker/policy.d/b.policy:28)" },
        { DAVE, "", "CN=g.example.com,OU=x", { "h.example.com" }, .result = NAME, .rule = "dave-rate",
          .reason = "name 'h.example.com' is not permitted by rule 'dave-rate'" },  /* names before the subject */
        { ROOT, "", "CN=a.example.com,O=Anything,OU=x,L=y,ST=z,C=US", { "a.example.com" }, .result = A, .rule = "",
          .reason = "uid 0 bypasses the rules" },
};

typedef struct CounterState {
        uint64_t since, active;
        uid_t uid_seen;
        uint64_t since_seen;
        unsigned calls_since, calls_active;
        int fail;
} CounterState;

static int count_since(uid_t uid, uint64_t since_usec, uint64_t *ret, void *userdata) {
        CounterState *s = userdata;
        s->calls_since++;
        s->uid_seen = uid;
        s->since_seen = since_usec;
        if (s->fail)
                return s->fail;
        *ret = s->since;
        return 0;
}

static int count_active(uid_t uid, uint64_t *ret, void *userdata) {
        CounterState *s = userdata;
        s->calls_active++;
        s->uid_seen = uid;
        if (s->fail)
                return s->fail;
        *ret = s->active;
        return 0;
}

#define NOW (UINT64_C(1764000000) * CB_USEC_PER_SEC)

static void test_decide_table(void **state) {
        CbConfig *c = config_new(NULL);

        for (size_t i = 0; i < sizeof(decide_cases) / sizeof(decide_cases[0]); i++) {
                const DecideCase *t = &decide_cases[i];
                size_t n = 0;
                while (n < 4 && t->names[n])
                        n++;
                CbRequestSpec req = {
                        .ca = t->ca, .subject = t->subject, .names = t->names, .n_names = n,
                        .key = t->key, .usage = t->usage, .label = t->label,
                };
                CounterState cs = { .since = t->since, .active = t->active };
                CbUsageCounter counter = { .now_usec = NOW, .count_since = count_since, .count_active = count_active,
                                           .userdata = &cs };
                CbDecision d;
                assert_int_equal(cb_policy_decide(c, &callers[t->caller], &req, &counter, &d), 0);
                if (d.result != t->result || d.allowed != (t->result == A))
                        fail_msg("case %zu: result %s (%s), expected %s", i, cb_decision_result_to_error(d.result),
                                 d.reason, cb_decision_result_to_error(t->result));
                assert_non_null(d.reason);
                assert_non_null(d.rule);
                if (t->rule && strcmp(d.rule, t->rule) != 0)
                        fail_msg("case %zu: rule '%s', expected '%s' (%s)", i, d.rule, t->rule, d.reason);
                if (t->reason && !strstr(d.reason, t->reason))
                        fail_msg("case %zu: reason '%s' lacks '%s'", i, d.reason, t->reason);
                if (d.allowed) {
                        assert_non_null(d.ca);
                        assert_non_null(d.subject);
                        assert_int_equal(d.n_names, n);
                        assert_true(d.key >= 0 && d.key < _CB_KEY_TYPE_MAX);
                        if (t->key)
                                assert_string_equal(cb_key_type_to_string(d.key), t->key);
                        assert_string_equal(d.label, t->label ? t->label : "");
                        assert_int_equal(d.root_bypass, (t->caller == ROOT || t->caller == ROOT_UID_ONLY) && strcmp(d.rule, "") == 0);
                }
                cb_decision_done(&d);
        }
        cb_config_free(c);
}

static void test_resolved_request(void **state) {
        CbConfig *c = config_new(NULL);
        const char *names[] = { "WEB.A.Example.com.", "a.example.com" };
        CbRequestSpec req = { .names = names, .n_names = 2 };
        CbDecision d;

        assert_int_equal(cb_policy_decide(c, &callers[ALICE], &req, NULL, &d), 0);
        assert_true(d.allowed);
        assert_string_equal(d.ca->name, "corp");                /* the default CA */
        assert_int_equal(d.key, CB_KEY_EC_P256);                /* its DefaultKey */
        assert_int_equal(d.usage, CB_USAGE_BOTH);
        assert_string_equal(d.label, "");
        assert_string_equal(d.names[0], "web.a.example.com");
        assert_string_equal(d.names[1], "a.example.com");
        assert_int_equal(d.subject->n_rdns, 1);
        assert_string_equal(d.subject->cn, "web.a.example.com");        /* CN=<names[0]>, normalized */
        assert_string_equal(cb_decision_result_to_error(d.result), "");
        cb_decision_done(&d);
        cb_decision_done(&d);   /* idempotent */
        cb_decision_done(NULL);

        req.ca = "lab";
        req.usage = "encryption";
        req.subject = "cn=lab.a.example.com, o=Tenant\\, A";
        names[0] = "lab.a.example.com";
        req.n_names = 1;
        assert_int_equal(cb_policy_decide(c, &callers[ALICE], &req, NULL, &d), 0);
        assert_true(d.allowed);
        assert_string_equal(d.rule, "alice-lab");
        assert_string_equal(d.ca->name, "lab");
        assert_int_equal(d.key, CB_KEY_RSA_2048);
        assert_int_equal(d.usage, CB_USAGE_ENCRYPTION);
        assert_string_equal(d.subject->rdns[1].value, "Tenant, A");
        cb_decision_done(&d);
        cb_config_free(c);
}

static void test_counter_calls(void **state) {
        CbConfig *c = config_new(NULL);
        const char *names[] = { "a.example.com" };
        CbRequestSpec req = { .names = names, .n_names = 1 };
        CounterState cs = {};
        CbUsageCounter counter = { .now_usec = NOW, .count_since = count_since, .count_active = count_active, .userdata = &cs };
        CbDecision d;

        assert_int_equal(cb_policy_decide(c, &callers[ALICE], &req, &counter, &d), 0);
        assert_true(d.allowed);
        assert_int_equal(cs.uid_seen, 1001);
        assert_int_equal(cs.since_seen, NOW - 3600 * CB_USEC_PER_SEC);
        assert_int_equal(cs.calls_since, 1);
        assert_int_equal(cs.calls_active, 1);
        cb_decision_done(&d);

        /* a rule without MaxRequests= counts against DefaultMaxRequests= (100/1h) */
        cs = (CounterState) {};
        const char *lab[] = { "lab.a.example.com" };
        CbRequestSpec req_lab = { .ca = "lab", .names = lab, .n_names = 1 };
        assert_int_equal(cb_policy_decide(c, &callers[ALICE], &req_lab, &counter, &d), 0);
        assert_true(d.allowed);
        assert_int_equal(cs.calls_since, 1);
        assert_int_equal(cs.since_seen, NOW - 3600 * CB_USEC_PER_SEC);
        assert_int_equal(cs.calls_active, 0);
        cb_decision_done(&d);

        /* a counter failure is a failure, and leaves *ret alone */
        cs = (CounterState) { .fail = -EIO };
        CbDecision before;
        memset(&d, 0x55, sizeof d);
        memcpy(&before, &d, sizeof d);
        assert_int_equal(cb_policy_decide(c, &callers[ALICE], &req, &counter, &d), -EIO);
        assert_memory_equal(&d, &before, sizeof d);

        /* a NULL counter counts 0 */
        assert_int_equal(cb_policy_decide(c, &callers[ALICE], &req, NULL, &d), 0);
        assert_true(d.allowed);
        cb_decision_done(&d);
        CbUsageCounter empty = {};
        assert_int_equal(cb_policy_decide(c, &callers[ALICE], &req, &empty, &d), 0);
        assert_true(d.allowed);
        cb_decision_done(&d);

        /* bad arguments */
        assert_int_equal(cb_policy_decide(NULL, &callers[ALICE], &req, NULL, &d), -EINVAL);
        assert_int_equal(cb_policy_decide(c, NULL, &req, NULL, &d), -EINVAL);
        assert_int_equal(cb_policy_decide(c, &callers[ALICE], NULL, NULL, &d), -EINVAL);
        assert_int_equal(cb_policy_decide(c, &callers[ALICE], &req, NULL, NULL), -EINVAL);
        cb_config_free(c);
}

static void test_default_max_requests(void **state) {
        const char *lab[] = { "lab.a.example.com" };
        CbRequestSpec req = { .ca = "lab", .names = lab, .n_names = 1 };
        CounterState cs = { .since = 2 };
        CbUsageCounter counter = { .now_usec = NOW, .count_since = count_since, .count_active = count_active, .userdata = &cs };
        CbDecision d;

        /* a smaller default, for the rules without MaxRequests= only */
        CbConfig *c = config_new("[Broker]\nDefaultMaxRequests=2/10m\n");
        assert_int_equal(cb_policy_decide(c, &callers[ALICE], &req, &counter, &d), 0);
        assert_int_equal(d.result, CB_DECISION_QUOTA_EXCEEDED);
        assert_string_equal(d.rule, "alice-lab");
        assert_non_null(strstr(d.reason, "DefaultMaxRequests=2/10m applies"));
        assert_int_equal(cs.since_seen, NOW - 600 * CB_USEC_PER_SEC);
        cb_decision_done(&d);
        /* tenant-a-web has its own MaxRequests=3/1h */
        const char *a[] = { "a.example.com" };
        CbRequestSpec req_a = { .names = a, .n_names = 1 };
        assert_int_equal(cb_policy_decide(c, &callers[ALICE], &req_a, &counter, &d), 0);
        assert_true(d.allowed);
        cb_decision_done(&d);
        /* root still bypasses */
        cs.since = 1000000;
        assert_int_equal(cb_policy_decide(c, &callers[ROOT], &req_a, &counter, &d), 0);
        assert_true(d.allowed);
        assert_true(d.root_bypass);
        cb_decision_done(&d);
        cb_config_free(c);

        /* switched off */
        c = config_new("[Broker]\nDefaultMaxRequests=unlimited\n");
        cs = (CounterState) { .since = 1000000 };
        assert_int_equal(cb_policy_decide(c, &callers[ALICE], &req, &counter, &d), 0);
        assert_true(d.allowed);
        assert_int_equal(cs.calls_since + cs.calls_active, 0);
        cb_decision_done(&d);
        cb_config_free(c);
}

static void test_root_without_bypass(void **state) {
        CbConfig *c = config_new("[Broker]\nRootBypassesRules=no\n");
        const char *names[] = { "anything.example.com" };
        CbRequestSpec req = { .names = names, .n_names = 1 };
        CbDecision d;

        assert_int_equal(cb_policy_decide(c, &callers[ROOT], &req, NULL, &d), 0);
        assert_false(d.allowed);
        assert_int_equal(d.result, CB_DECISION_NAME_NOT_PERMITTED);
        assert_string_equal(d.rule, "root-wild");
        cb_decision_done(&d);
        assert_true(cb_policy_caller_may_use_ca(c, &callers[ROOT], "corp"));   /* through root-wild */

        CbCaller root_nameless = { .uid = 0 };
        assert_int_equal(cb_policy_decide(c, &root_nameless, &req, NULL, &d), 0);
        assert_int_equal(d.result, CB_DECISION_ACCESS_DENIED);
        assert_non_null(strstr(d.reason, "no rule applies to uid 0"));
        cb_decision_done(&d);
        assert_false(cb_policy_caller_may_use_ca(c, &root_nameless, "corp"));
        cb_config_free(c);
}

static void test_many_names(void **state) {
        CbConfig *c = config_new(NULL);
        const char *names[CB_REQUEST_NAMES_MAX + 1];
        char buf[CB_REQUEST_NAMES_MAX + 1][32];
        for (size_t i = 0; i <= CB_REQUEST_NAMES_MAX; i++) {
                snprintf(buf[i], sizeof buf[i], "h%zu.a.example.com", i);
                names[i] = buf[i];
        }
        CbRequestSpec req = { .names = names, .n_names = CB_REQUEST_NAMES_MAX };
        CbDecision d;
        assert_int_equal(cb_policy_decide(c, &callers[ALICE], &req, NULL, &d), 0);
        assert_true(d.allowed);
        cb_decision_done(&d);
        req.n_names++;
        assert_int_equal(cb_policy_decide(c, &callers[ALICE], &req, NULL, &d), 0);
        assert_int_equal(d.result, CB_DECISION_INVALID_ARGUMENT);
        assert_non_null(strstr(d.reason, "101 names: at most 100"));
        cb_decision_done(&d);
        cb_config_free(c);
}

static void test_default_ca_missing(void **state) {
        static const char lab_only_main[] = "[Kerberos]\nRealm=EXAMPLE.COM\nPrincipal=svc-scep@EXAMPLE.COM\n";
        static const char pol[] = "[Rule]\nName=r\nUsers=alice\nNames=a.example.com\n";
        CbConfigSource s[] = {
                { "certbroker.conf", lab_only_main, strlen(lab_only_main) },
                { "ca.d/one.conf", lab_conf, strlen(lab_conf) },
                { "ca.d/two.conf", lab_conf, strlen(lab_conf) },
                { "policy.d/p.policy", pol, strlen(pol) },
        };
        CbConfig *c = NULL;
        const char *names[] = { "a.example.com" };
        CbRequestSpec req = { .ca = "", .names = names, .n_names = 1 };
        CbDecision d;

        assert_int_equal(cb_config_parse(s, 4, &c, NULL), 0);
        assert_int_equal(cb_policy_decide(c, &callers[ALICE], &req, NULL, &d), 0);
        assert_int_equal(d.result, CB_DECISION_UNKNOWN_CA);
        assert_non_null(strstr(d.reason, "no default CA: name one of the configured CAs (one, two), or set Default=yes"));
        cb_decision_done(&d);
        req.ca = "two";
        assert_int_equal(cb_policy_decide(c, &callers[ALICE], &req, NULL, &d), 0);
        assert_true(d.allowed);
        cb_decision_done(&d);
        cb_config_free(c);

        assert_int_equal(cb_config_parse(s, 1, &c, NULL), 0);
        assert_int_equal(cb_policy_decide(c, &callers[ROOT], &req, NULL, &d), 0);
        assert_int_equal(d.result, CB_DECISION_UNKNOWN_CA);
        assert_non_null(strstr(d.reason, "no CA is configured"));
        cb_decision_done(&d);
        cb_config_free(c);
}

static void test_may_use_ca(void **state) {
        CbConfig *c = config_new(NULL);
        assert_true(cb_policy_caller_may_use_ca(c, &callers[ALICE], "corp"));
        assert_true(cb_policy_caller_may_use_ca(c, &callers[ALICE], "lab"));
        assert_false(cb_policy_caller_may_use_ca(c, &callers[BOB], "corp"));
        assert_true(cb_policy_caller_may_use_ca(c, &callers[HTTPD], "lab"));
        assert_false(cb_policy_caller_may_use_ca(c, &callers[HTTPD], "corp"));
        assert_true(cb_policy_caller_may_use_ca(c, &callers[TENANT_B_GID], "corp"));   /* no CAs=: every CA */
        assert_true(cb_policy_caller_may_use_ca(c, &callers[ROOT], "corp"));
        assert_false(cb_policy_caller_may_use_ca(NULL, &callers[ROOT], "corp"));

        /* a rule without selectors applies to no one */
        const CbRule *nobody = cb_config_find_rule(c, "nobody");
        assert_non_null(nobody);
        for (int i = 0; i < _CALLER_MAX; i++)
                assert_false(cb_rule_applies(nobody, &callers[i]));
        assert_true(cb_rule_applies(cb_config_find_rule(c, "tenant-a-web"), &callers[ALICE]));
        assert_false(cb_rule_applies(NULL, &callers[ALICE]));
        cb_config_free(c);
}

static void test_selinux_label_type(void **state) {
        static const struct {
                const char *label, *type;
        } cases[] = {
                { "system_u:system_r:httpd_t:s0", "httpd_t" },
                { "system_u:system_r:httpd_t:s0:c1,c2", "httpd_t" },
                { "u:r:t", "t" },
                { "unconfined_u:unconfined_r:unconfined_t:s0-s0:c0.c1023", "unconfined_t" },
                { "httpd_t", NULL },
                { "u:r", NULL },
                { "u:r:", NULL },
                { "u:r::s0", NULL },
                { "", NULL },
                { NULL, NULL },
        };
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                const char *t = NULL;
                size_t n = 0;
                int r = cb_selinux_label_type(cases[i].label, &t, &n);
                if (cases[i].type) {
                        assert_int_equal(r, 0);
                        assert_int_equal(n, strlen(cases[i].type));
                        assert_memory_equal(t, cases[i].type, n);
                } else
                        assert_int_equal(r, -EINVAL);
        }
}

static void test_result_names(void **state) {
        assert_string_equal(cb_decision_result_to_error(CB_DECISION_ALLOWED), "");
        assert_string_equal(cb_decision_result_to_error(CB_DECISION_ACCESS_DENIED), "AccessDenied");
        assert_string_equal(cb_decision_result_to_error(CB_DECISION_NAME_NOT_PERMITTED), "NameNotPermitted");
        assert_string_equal(cb_decision_result_to_error(CB_DECISION_UNKNOWN_CA), "UnknownCA");
        assert_string_equal(cb_decision_result_to_error(CB_DECISION_INVALID_ARGUMENT), "InvalidArgument");
        assert_string_equal(cb_decision_result_to_error(CB_DECISION_KEY_NOT_PERMITTED), "KeyNotPermitted");
        assert_string_equal(cb_decision_result_to_error(CB_DECISION_QUOTA_EXCEEDED), "QuotaExceeded");
        assert_string_equal(cb_decision_result_to_error(_CB_DECISION_RESULT_MAX), "AccessDenied");
}


/* Identity=self: the subject and names come from the caller's account. */
static const char identity_policy[] =
        "[Rule]\n"
        "Name=staff\n"
        "Groups=staff\n"
        "Identity=self\n"
        "IdentityNames=upn email\n"
        "IdentityUIDs=200000-299999\n"
        "[Rule]\n"
        "Name=locals\n"
        "Users=lou\n"
        "Identity=self\n"
        "IdentityAccounts=any\n"
        "IdentityUsage=both\n"
        "[Rule]\n"
        "Name=hosts\n"
        "Users=hank\n"
        "Names=h.example.com\n";

static CbConfig *identity_config(void) {
        CbConfigSource s[] = {
                { "/etc/certbroker/certbroker.conf", main_conf, strlen(main_conf) },
                { "/etc/certbroker/ca.d/corp.conf", corp_conf, strlen(corp_conf) },
                { "/etc/certbroker/policy.d/id.policy", identity_policy, strlen(identity_policy) },
        };
        CbConfig *c = NULL;
        CbConfigError e = {};
        char buf[1200];
        if (cb_config_parse(s, 3, &c, &e) < 0)
                fail_msg("config: %s", cb_config_error_format(&e, buf, sizeof buf));
        return c;
}

typedef struct IdentityCase {
        CbCaller caller;
        const char *identity, *subject, *usage;
        const char *names[3];
        CbDecisionResult result;
        const char *reason;             /* substring */
        const char *want_names[3];      /* when allowed */
        const char *want_usage;
} IdentityCase;

static const char *const staff_group[] = { "staff" };
static const gid_t staff_gid[] = { 5000 };
#define STAFF .gids = staff_gid, .n_gids = 1, .group_names = staff_group, .n_group_names = 1

static void test_identity_self(void **state) {
        static const IdentityCase cases[] = {
                /* sssd's fully qualified name: user and domain */
                { { .uid = 200001, .user_name = "carol@ad.example.com", STAFF, .account = CB_ACCOUNT_DIRECTORY },
                  "self", "", NULL, {}, A, "allowed by rule 'staff'",
                  { "upn:carol@ad.example.com", "email:carol@ad.example.com" }, "signature" },
                /* a short name: the realm's domain, lower case */
                { { .uid = 200002, .user_name = "Dave", STAFF, .account = CB_ACCOUNT_DIRECTORY },
                  "self", "", NULL, {}, A, "a certificate for Dave@example.com",
                  { "upn:Dave@example.com", "email:Dave@example.com" }, "signature" },
                /* a renewal: the names and CN given, exactly the caller's (domain case aside) */
                { { .uid = 200001, .user_name = "carol@ad.example.com", STAFF, .account = CB_ACCOUNT_DIRECTORY },
                  NULL, "CN=carol", "signature", { "email:carol@AD.example.com", "upn:carol@ad.example.com" }, A, "",
                  { "email:carol@ad.example.com", "upn:carol@ad.example.com" }, "signature" },
                /* refusals */
                { { .uid = 200001, .user_name = "carol@ad.example.com", STAFF, .account = CB_ACCOUNT_DIRECTORY },
                  "self", "", NULL, { "upn:dave@ad.example.com" }, NAME,
                  "name 'upn:dave@ad.example.com' is not your identity: you are carol@ad.example.com" },
                { { .uid = 200001, .user_name = "carol@ad.example.com", STAFF, .account = CB_ACCOUNT_DIRECTORY },
                  "self", "CN=dave", NULL, {}, NAME, "subject 'CN=dave' is not your identity" },
                { { .uid = 200001, .user_name = "carol@ad.example.com", STAFF, .account = CB_ACCOUNT_DIRECTORY },
                  "self", "CN=carol,O=Other", NULL, {}, NAME, "is not your identity" },
                { { .uid = 200001, .user_name = "carol@ad.example.com", STAFF, .account = CB_ACCOUNT_DIRECTORY },
                  "self", "", NULL, { "www.example.com" }, INVALID, "carries no DNS names" },
                { { .uid = 200001, .user_name = "carol@ad.example.com", STAFF, .account = CB_ACCOUNT_DIRECTORY },
                  "self", "", NULL, { "upn:carol@ad.example.com", "upn:carol@ad.example.com" }, INVALID, "given twice" },
                { { .uid = 200003, .user_name = "erin@evil.test", STAFF, .account = CB_ACCOUNT_DIRECTORY },
                  "self", "", NULL, {}, NAME,
                  "the UPN erin@evil.test is not permitted: its domain is not under the permitted suffix example.com" },
                { { .uid = 200004, .user_name = "evilexample.com@evilexample.com", STAFF, .account = CB_ACCOUNT_DIRECTORY },
                  "self", "", NULL, {}, NAME, "not under the permitted suffix" },
                { { .uid = 200005, .user_name = "sp ace", STAFF, .account = CB_ACCOUNT_DIRECTORY },
                  "self", "", NULL, {}, NAME, "cannot be a UPN's user part" },
                { { .uid = 200001, .user_name = "carol@ad.example.com", STAFF, .account = CB_ACCOUNT_LOCAL },
                  "self", "", NULL, {}, DENIED, "a local account (in /etc/passwd)" },
                { { .uid = 200001, .user_name = "carol@ad.example.com", STAFF, .account = CB_ACCOUNT_UNKNOWN },
                  "self", "", NULL, {}, DENIED, "an account of unknown kind" },
                { { .uid = 1500, .user_name = "carol@ad.example.com", STAFF, .account = CB_ACCOUNT_DIRECTORY },
                  "self", "", NULL, {}, DENIED, "uid 1500 is outside rule 'staff'" },
                { { .uid = 200001, .user_name = "carol@ad.example.com", STAFF, .account = CB_ACCOUNT_DIRECTORY },
                  "self", "", "both", {}, KEY, "IdentityUsage=signature" },
                { { .uid = 200001, .user_name = "carol@ad.example.com", STAFF, .account = CB_ACCOUNT_DIRECTORY },
                  "other", "", NULL, {}, INVALID, "the only identity is self" },
                { { .uid = 200001, .account = CB_ACCOUNT_DIRECTORY, STAFF },
                  "self", "", NULL, {}, DENIED, "has no user name" },
                { { .uid = 3000, .user_name = "hank", .account = CB_ACCOUNT_DIRECTORY },
                  "self", "", NULL, {}, DENIED, "rule 'hosts' (/etc/certbroker/policy.d/id.policy:13) has no Identity=self" },
                /* root gets no bypass */
                { { .uid = 0, .user_name = "root", .account = CB_ACCOUNT_LOCAL },
                  "self", "", NULL, {}, DENIED, "no rule applies to uid 0" },
                /* IdentityAccounts=any, IdentityNames= default upn, IdentityUsage=both */
                { { .uid = 1010, .user_name = "lou", .account = CB_ACCOUNT_LOCAL },
                  "self", "", NULL, {}, A, "allowed by rule 'locals'", { "upn:lou@example.com" }, "both" },
                { { .uid = 1010, .user_name = "lou", .account = CB_ACCOUNT_LOCAL },
                  "self", "", NULL, { "email:lou@example.com" }, NAME, "does not put the e-mail address" },
        };
        CbConfig *c = identity_config();

        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
                const IdentityCase *t = &cases[i];
                size_t n = 0;
                while (n < 3 && t->names[n])
                        n++;
                CbRequestSpec req = { .ca = "", .subject = t->subject, .names = t->names, .n_names = n,
                                      .usage = t->usage, .identity = t->identity };
                CbDecision d = {};
                assert_int_equal(cb_policy_decide(c, &t->caller, &req, NULL, &d), 0);
                if (d.result != t->result || !strstr(d.reason, t->reason))
                        fail_msg("identity case %zu: got %s '%s', want %s containing '%s'", i,
                                 cb_decision_result_to_error(d.result), d.reason,
                                 cb_decision_result_to_error(t->result), t->reason);
                if (t->result == A) {
                        size_t w = 0;
                        while (w < 3 && t->want_names[w])
                                w++;
                        assert_int_equal(d.n_names, w);
                        for (size_t j = 0; j < w; j++)
                                assert_string_equal(d.names[j], t->want_names[j]);
                        assert_string_equal(cb_usage_to_string(d.usage), t->want_usage);
                        assert_non_null(d.subject);
                        assert_non_null(d.subject->cn);
                        assert_int_equal(d.subject->n_rdns, 1);
                        assert_true(strncmp(d.subject->cn, t->caller.user_name, strlen(d.subject->cn)) == 0);
                }
                cb_decision_done(&d);
        }
        cb_config_free(c);
}

static void test_identity_config_errors(void **state) {
        static const struct {
                const char *policy, *error;
        } cases[] = {
                { "[Rule]\nName=x\nUsers=a\nIdentity=other\n", "Identity=: 'other' is not an identity" },
                { "[Rule]\nName=x\nUsers=a\nIdentity=self\nIdentityNames=upn dns\n", "'dns' is not a kind of name" },
                { "[Rule]\nName=x\nUsers=a\nIdentity=self\nIdentityAccounts=local\n", "use realm" },
                { "[Rule]\nName=x\nUsers=a\nIdentity=self\nIdentityUIDs=20-10\n", "is not a range MIN-MAX" },
                { "[Rule]\nName=x\nUsers=a\nIdentity=self\nIdentityUIDs=10\n", "is not a range MIN-MAX" },
                { "[Rule]\nName=x\nUsers=a\nIdentity=self\nIdentityUIDs=-1-5\n", "is not a range MIN-MAX" },
                { "[Rule]\nName=x\nUsers=a\nIdentity=self\nIdentityUsage=sign\n", "is not a usage" },
                { "[Rule]\nName=x\nUsers=a\nIdentityUsage=both\n", "but no Identity=self" },
                { "[Rule]\nName=x\nUsers=a\nIdentityUIDs=1-2\n", "but no Identity=self" },
        };
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
                CbConfigSource s[] = {
                        { "/etc/certbroker/certbroker.conf", main_conf, strlen(main_conf) },
                        { "/etc/certbroker/policy.d/x.policy", cases[i].policy, strlen(cases[i].policy) },
                };
                CbConfig *c = NULL;
                CbConfigError e = {};
                char buf[1200];
                assert_int_equal(cb_config_parse(s, 2, &c, &e), -EINVAL);
                cb_config_error_format(&e, buf, sizeof buf);
                if (!strstr(buf, cases[i].error))
                        fail_msg("config case %zu: got '%s', want '%s'", i, buf, cases[i].error);
        }
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_decide_table),
                cmocka_unit_test(test_resolved_request),
                cmocka_unit_test(test_counter_calls),
                cmocka_unit_test(test_default_max_requests),
                cmocka_unit_test(test_root_without_bypass),
                cmocka_unit_test(test_many_names),
                cmocka_unit_test(test_default_ca_missing),
                cmocka_unit_test(test_may_use_ca),
                cmocka_unit_test(test_selinux_label_type),
                cmocka_unit_test(test_result_names),
                cmocka_unit_test(test_identity_self),
                cmocka_unit_test(test_identity_config_errors),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
