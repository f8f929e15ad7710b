/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Fuzzes cb_policy_decide() against a fixed configuration. Input lines:
 *   caller selector byte line, ca, subject, key ("-" = unset), usage ("-"), label ("-"),
 *   then names, one per line.
 * Invariant: an allowed request only has names (and a CN) under the suffix, and, unless root
 * bypassed the rules, every one of them, every other subject attribute and the usage are
 * allowed by the allowing rule. */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cb-names.h"
#include "cb-policy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char main_conf[] = "[Kerberos]\nRealm=EXAMPLE.COM\nPrincipal=svc-scep@EXAMPLE.COM\n";
static const char corp_conf[] = "[CA]\nURL=https://ndes.example.com/certsrv/mscep/mscep.dll\nDefault=yes\n";
static const char lab_conf[] = "[CA]\nURL=https://lab.example.com/certsrv/mscep/mscep.dll\n";
static const char policy[] =
        "[Rule]\nName=a\nUsers=alice 1001\nNames=*.a.example.com a.example.com\nKeys=rsa:2048 ec:p256\nCAs=corp\n"
        "MaxRequests=3/1h\nMaxActive=2\nSubject=O=Tenant\\ A OU=* C=DE\nUsages=signature both\n"
        "[Rule]\nName=b\nGroups=tenant-b 3000\nNames=**.b.example.com\nWildcards=yes\n"
        "[Rule]\nName=c\nUnits=nginx-c.service\nNames=c.example.com\nCAs=lab\n"
        "[Rule]\nName=d\nSELinuxTypes=httpd_t\nNames=**.d.example.com d.example.com\nWildcards=yes\n";

static CbConfig *config;

static int count_since(uid_t uid, uint64_t since, uint64_t *ret, void *userdata) {
        *ret = *(const uint8_t *) userdata & 7;
        return 0;
}

static int count_active(uid_t uid, uint64_t *ret, void *userdata) {
        *ret = (*(const uint8_t *) userdata >> 3) & 3;
        return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        if (!config) {
                CbConfigSource s[] = {
                        { "certbroker.conf", main_conf, sizeof main_conf - 1 },
                        { "ca.d/corp.conf", corp_conf, sizeof corp_conf - 1 },
                        { "ca.d/lab.conf", lab_conf, sizeof lab_conf - 1 },
                        { "policy.d/p.policy", policy, sizeof policy - 1 },
                };
                if (cb_config_parse(s, 4, &config, NULL) < 0)
                        abort();
        }
        if (size < 1 || size > 8192)
                return 0;

        char *buf = malloc(size + 1);
        if (!buf)
                return 0;
        memcpy(buf, data, size);
        buf[size] = 0;

        char *fields[6 + CB_REQUEST_NAMES_MAX + 1];
        const char *names[CB_REQUEST_NAMES_MAX + 1];
        size_t n = 0;
        for (char *p = buf; p && n < sizeof fields / sizeof fields[0];) {
                fields[n++] = p;
                p = strchr(p, '\n');
                if (p)
                        *p++ = 0;
        }
        while (n < 6)
                fields[n++] = (char *) "-";

        uint8_t sel = (uint8_t) fields[0][0];
        static const gid_t gids[] = { 3000 };
        static const char *const group_names[] = { "tenant-b" };
        CbCaller caller = {
                .uid = (sel & 1) ? 0 : (sel & 2) ? 1001 : 2000,
                .user_name = (sel & 4) ? "alice" : NULL,
                .gids = gids, .n_gids = (sel & 8) ? 1 : 0,
                .group_names = group_names, .n_group_names = (sel & 16) ? 1 : 0,
                .unit = (sel & 32) ? "nginx-c.service" : NULL,
                .selinux_label = (sel & 64) ? "system_u:system_r:httpd_t:s0" : NULL,
        };
        size_t n_names = 0;
        for (size_t i = 6; i < n && n_names < CB_REQUEST_NAMES_MAX + 1; i++)
                names[n_names++] = fields[i];
        CbRequestSpec req = {
                .ca = fields[1], .subject = fields[2],
                .key = strcmp(fields[3], "-") ? fields[3] : NULL,
                .usage = strcmp(fields[4], "-") ? fields[4] : NULL,
                .label = strcmp(fields[5], "-") ? fields[5] : NULL,
                .names = names, .n_names = n_names,
        };
        CbUsageCounter counter = { .now_usec = 1, .count_since = count_since, .count_active = count_active,
                                   .userdata = (void *) &data[0] };
        CbDecision d;
        if (cb_policy_decide(config, &caller, &req, &counter, &d) == 0) {
                if (!d.reason || !d.rule)
                        abort();
                if (d.allowed) {
                        const CbRule *rule = cb_config_find_rule(config, d.rule);
                        if (!d.subject || !d.ca || (!rule && !d.root_bypass))
                                abort();
                        for (size_t i = 0; i <= d.n_names; i++) {
                                const char *name = i < d.n_names ? d.names[i] : d.subject->cn;
                                if (!name)
                                        continue;
                                if (!cb_name_is_under_suffix(name, config->permitted_suffix))
                                        abort();
                                if (d.root_bypass)
                                        continue;
                                bool m = false;
                                for (size_t j = 0; j < rule->n_names; j++)
                                        m = m || cb_name_pattern_match(rule->names[j], name);
                                if (!m || (cb_name_is_wildcard(name) && !rule->wildcards))
                                        abort();
                        }
                        for (size_t i = 0; !d.root_bypass && i < d.subject->n_rdns; i++) {
                                const CbSubjectRdn *rdn = &d.subject->rdns[i];
                                bool m = rdn->value == d.subject->cn;
                                for (size_t j = 0; j < rule->n_subject && !m; j++)
                                        m = strcmp(rule->subject[j].type, rdn->type) == 0 &&
                                            (!rule->subject[j].value || strcmp(rule->subject[j].value, rdn->value) == 0);
                                if (!m)
                                        abort();
                        }
                        if (!d.root_bypass && rule->usages_set && !rule->usages[d.usage])
                                abort();
                }
                cb_decision_done(&d);
        }
        free(buf);
        return 0;
}
