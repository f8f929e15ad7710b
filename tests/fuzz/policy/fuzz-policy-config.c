/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Fuzzes cb_config_parse(). The input is split at lines "%%" into up to 8 files:
 * certbroker.conf, ca.d/corp.conf, ca.d/lab.conf, then policy.d/N.policy. A configuration
 * that parses is also used for one decision. */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cb-config.h"
#include "cb-names.h"
#include "cb-policy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FILES_MAX 8

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static const char *const paths[FILES_MAX] = {
                "/etc/certbroker/certbroker.conf", "/etc/certbroker/ca.d/corp.conf", "/etc/certbroker/ca.d/lab.conf",
                "/etc/certbroker/policy.d/1.policy", "/etc/certbroker/policy.d/2.policy", "/etc/certbroker/policy.d/3.policy",
                "/etc/certbroker/policy.d/4.policy", "/etc/certbroker/policy.d/5.policy",
        };
        CbConfigSource s[FILES_MAX];
        size_t n = 0;
        const char *p = (const char *) data, *end = p + size;

        if (size > 256 * 1024)
                return 0;
        while (n < FILES_MAX) {
                const char *m = NULL;
                for (const char *q = p; q + 4 <= end; q++)
                        if (memcmp(q, "\n%%\n", 4) == 0) {
                                m = q;
                                break;
                        }
                if (!m || n == FILES_MAX - 1) {
                        s[n] = (CbConfigSource) { paths[n], p, (size_t) (end - p) };
                        n++;
                        break;
                }
                s[n] = (CbConfigSource) { paths[n], p, (size_t) (m + 1 - p) };
                n++;
                p = m + 4;
        }

        CbConfig *c = NULL;
        CbConfigError e;
        int r = cb_config_parse(s, n, &c, &e);
        if (r < 0) {
                char buf[1200];
                cb_config_error_format(&e, buf, sizeof buf);
                if (!memchr(e.path, 0, sizeof e.path) || !memchr(e.message, 0, sizeof e.message) || !e.message[0])
                        abort();
                return 0;
        }

        /* Invariants of a parsed configuration. */
        if (!c->permitted_suffix || !c->realm || !c->principal || !c->keytab || !c->state_directory)
                abort();
        for (size_t i = 0; i < c->n_cas; i++)
                if (!cb_name_is_under_suffix(c->cas[i].url_host, c->permitted_suffix) ||
                    (c->cas[i].admin_url_host && !cb_name_is_under_suffix(c->cas[i].admin_url_host, c->permitted_suffix)))
                        abort();

        gid_t gids[] = { 3000 };
        const char *group_names[] = { "tenant-a" };
        CbCaller caller = { .uid = 1001, .user_name = "alice", .gids = gids, .n_gids = 1, .group_names = group_names,
                            .n_group_names = 1, .unit = "nginx-a.service", .selinux_label = "u:r:httpd_t:s0" };
        const char *names[] = { "web.a.example.com", "a.example.com" };
        CbRequestSpec req = { .ca = "", .subject = "", .names = names, .n_names = 2 };
        CbDecision d;
        if (cb_policy_decide(c, &caller, &req, NULL, &d) == 0) {
                if (d.allowed && (!cb_config_find_rule(c, d.rule)))
                        abort();
                cb_decision_done(&d);
        }
        cb_config_free(c);
        return 0;
}
