/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>

#include "caller.h"

static char *user_name_of(uid_t uid) {
        struct passwd pw, *res = NULL;
        char buf[4096];

        if (getpwuid_r(uid, &pw, buf, sizeof buf, &res) != 0 || !res)
                return NULL;
        return strdup(res->pw_name);
}

static char *group_name_of(gid_t gid) {
        struct group gr, *res = NULL;
        char buf[8192];

        if (getgrgid_r(gid, &gr, buf, sizeof buf, &res) != 0 || !res)
                return NULL;
        return strdup(res->gr_name);
}

int caller_uid_from_message(sd_bus_message *m, uid_t *ret_uid) {
        sd_bus_creds *creds = NULL;
        uid_t uid;
        int r;

        r = sd_bus_query_sender_creds(m, SD_BUS_CREDS_EUID, &creds);
        if (r < 0)
                return r;
        r = sd_bus_creds_get_euid(creds, &uid);
        sd_bus_creds_unref(creds);
        if (r < 0)
                return r;
        *ret_uid = uid;
        return 0;
}

int caller_from_message(sd_bus_message *m, CallerNames names, Caller *ret) {
        sd_bus_creds *creds = NULL;
        Caller c = { .gid = (gid_t) -1 };
        const gid_t *gids = NULL;
        const char *s;
        int r, n;

        r = sd_bus_query_sender_creds(m,
                                      SD_BUS_CREDS_EUID | SD_BUS_CREDS_PID | SD_BUS_CREDS_EGID |
                                      SD_BUS_CREDS_SUPPLEMENTARY_GIDS | SD_BUS_CREDS_UNIT |
                                      SD_BUS_CREDS_SELINUX_CONTEXT | SD_BUS_CREDS_AUGMENT,
                                      &creds);
        if (r < 0)
                return r;

        /* The uid is the one thing we insist on: the bus daemon vouches for it. */
        r = sd_bus_creds_get_euid(creds, &c.uid);
        if (r < 0)
                goto fail;

        (void) sd_bus_creds_get_pid(creds, &c.pid);
        (void) sd_bus_creds_get_egid(creds, &c.gid);

        /* Groups= matches the primary group like a supplementary one: it goes first. */
        n = sd_bus_creds_get_supplementary_gids(creds, &gids);
        c.gids = calloc((size_t) (n > 0 ? n : 0) + 1, sizeof(gid_t));
        if (!c.gids) {
                r = -ENOMEM;
                goto fail;
        }
        if (c.gid != (gid_t) -1)
                c.gids[c.n_gids++] = c.gid;
        for (int i = 0; i < n; i++)
                if (gids[i] != c.gid)
                        c.gids[c.n_gids++] = gids[i];

        if (sd_bus_creds_get_unit(creds, &s) >= 0 && s) {
                c.unit = strdup(s);
                if (!c.unit) {
                        r = -ENOMEM;
                        goto fail;
                }
        }
        if (sd_bus_creds_get_selinux_context(creds, &s) >= 0 && s && *s) {
                c.selinux_label = strdup(s);
                if (!c.selinux_label) {
                        r = -ENOMEM;
                        goto fail;
                }
        }

        if (names & CALLER_USER_NAME)
                c.user_name = user_name_of(c.uid);

        /* Group names, for rules that name groups. */
        if (names & CALLER_GROUP_NAMES) {
                c.group_names = calloc(c.n_gids + 1, sizeof(char *));
                if (!c.group_names) {
                        r = -ENOMEM;
                        goto fail;
                }
                for (size_t i = 0; i < c.n_gids; i++)
                        c.group_names[c.n_group_names++] = group_name_of(c.gids[i]);
        }

        sd_bus_creds_unref(creds);
        *ret = c;
        return 0;

fail:
        sd_bus_creds_unref(creds);
        caller_done(&c);
        return r;
}

void caller_done(Caller *c) {
        if (!c)
                return;
        free(c->gids);
        for (size_t i = 0; i < c->n_group_names; i++)
                free(c->group_names[i]);
        free(c->group_names);
        free(c->user_name);
        free(c->unit);
        free(c->selinux_label);
        *c = (Caller) { .gid = (gid_t) -1 };
}

void caller_to_policy(const Caller *c, CbCaller *ret) {
        *ret = (CbCaller) {
                .uid = c->uid,
                .user_name = c->user_name,
                .gids = c->gids,
                .n_gids = c->n_gids,
                .group_names = (const char *const *) c->group_names,
                .n_group_names = c->n_group_names,
                .unit = c->unit,
                .selinux_label = c->selinux_label,
        };
}

static bool any_name(char **values, size_t n) {
        for (size_t i = 0; i < n; i++)
                if (values[i][strspn(values[i], "0123456789")] != 0)
                        return true;
        return false;
}

CallerNames caller_names_needed(const CbConfig *config) {
        CallerNames n = 0;

        for (size_t i = 0; i < config->n_rules; i++) {
                if (any_name(config->rules[i].users, config->rules[i].n_users))
                        n |= CALLER_USER_NAME;
                if (any_name(config->rules[i].groups, config->rules[i].n_groups))
                        n |= CALLER_GROUP_NAMES;
        }
        return n;
}
