/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* caller: the registry's bounds follow the file descriptor limit (a reserve kept, a share per
 * uid), and who is admitted when it fills: a uid past its share is refused, everyone but root
 * once it is full, root then identified per call. NSS (faked): a group of 1000 members is named
 * (the buffer grows on ERANGE, bounded), "not found" is no name, an error is an error. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <cmocka.h>

#include "caller.h"

static void test_limits_follow_nofile(void **state) {
        size_t total, per_uid;

        /* systemd's default soft limit: 256 kept for the rest, 768 callers, 48 each. */
        caller_registry_limits(1024, &total, &per_uid);
        assert_int_equal(total, 768);
        assert_int_equal(per_uid, 48);
        /* certbrokerd.service's LimitNOFILE=8192: a quarter kept. */
        caller_registry_limits(8192, &total, &per_uid);
        assert_int_equal(total, 6144);
        assert_int_equal(per_uid, 384);
        caller_registry_limits(4096, &total, &per_uid);
        assert_int_equal(total, 3072);
        assert_int_equal(per_uid, 192);
        /* Huge limits: at most CALLER_REGISTRY_MAX. */
        caller_registry_limits(1u << 20, &total, &per_uid);
        assert_int_equal(total, CALLER_REGISTRY_MAX);
        assert_int_equal(per_uid, CALLER_REGISTRY_MAX / 16);
        /* Tiny limits: a share of at least CALLER_PER_UID_MIN. */
        caller_registry_limits(300, &total, &per_uid);
        assert_int_equal(total, 44);
        assert_int_equal(per_uid, CALLER_PER_UID_MIN);
        caller_registry_limits(64, &total, &per_uid);
        assert_int_equal(total, CALLER_PER_UID_MIN);
        /* Whatever the limit, the registry's fds stay below it. */
        for (uint64_t n = 64; n < 100000; n = n * 3 / 2) {
                caller_registry_limits(n, &total, &per_uid);
                if (n > 2 * CALLER_FD_RESERVE)
                        assert_true(total + CALLER_FD_RESERVE <= n);
                assert_true(per_uid <= total);
        }
}

static void test_registry_new_reads_rlimit(void **state) {
        CallerRegistry *reg = NULL;
        struct rlimit rl;
        size_t total, per_uid, want_total, want_per_uid;

        assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
        assert_int_equal(caller_registry_new(&reg), 0);
        caller_registry_get_limits(reg, &total, &per_uid);
        caller_registry_limits(rl.rlim_cur == RLIM_INFINITY ? 1024 : rl.rlim_cur, &want_total, &want_per_uid);
        assert_int_equal(total, want_total);
        assert_int_equal(per_uid, want_per_uid);
        assert_int_equal(caller_registry_size(reg), 0);
        assert_int_equal(caller_registry_count_uid(reg, 1000), 0);
        caller_registry_free(reg);
}

static void test_admission(void **state) {
        /* Room, and the uid below its share. */
        assert_int_equal(caller_registry_admit(0, 768, 0, 48, 1000), CALLER_ADMIT_KEEP);
        assert_int_equal(caller_registry_admit(700, 768, 47, 48, 1000), CALLER_ADMIT_KEEP);
        /* The uid at its share: refused, though there is room. */
        assert_int_equal(caller_registry_admit(48, 768, 48, 48, 1000), CALLER_ADMIT_UID_FULL);
        /* Full: a uid with none yet is refused too. */
        assert_int_equal(caller_registry_admit(768, 768, 0, 48, 1001), CALLER_ADMIT_FULL);
        /* Root has no share to exhaust, and past the total is identified per call. */
        assert_int_equal(caller_registry_admit(100, 768, 5000, 48, 0), CALLER_ADMIT_KEEP);
        assert_int_equal(caller_registry_admit(768, 768, 48, 48, 0), CALLER_ADMIT_TEMPORARY);
        /* Sixteen uids at their share fill a registry of 16 shares: it takes that many. */
        size_t n = 0;
        for (uid_t u = 1000; u < 1016; u++)
                for (size_t k = 0; k < 48; k++) {
                        assert_int_equal(caller_registry_admit(n, 768, k, 48, u), CALLER_ADMIT_KEEP);
                        n++;
                }
        assert_int_equal(n, 768);
        assert_int_equal(caller_registry_admit(n, 768, 0, 48, 2000), CALLER_ADMIT_FULL);
}

/* ---- NSS, faked through caller_set_nss() ---- */

#define BIG_GID 5000U
#define BIG_MEMBERS 1000U

static size_t largest_group_buffer;

/* Packs name and members into buf as glibc does; ERANGE when they do not fit. */
static int pack_group(struct group *gr, char *buf, size_t size, const char *name, gid_t gid, unsigned members) {
        size_t need = strlen(name) + 1 + sizeof(char *) * (members + 1) + (size_t) members * 11 + 16;
        char **mem;
        char *p;

        if (size < need)
                return ERANGE;
        p = buf + sizeof(char *) * (members + 1) + 8;
        mem = (char **) (void *) buf;
        for (unsigned i = 0; i < members; i++) {
                mem[i] = p;
                p += sprintf(p, "member%04u", i) + 1;
        }
        mem[members] = NULL;
        gr->gr_name = strcpy(p, name);
        gr->gr_passwd = (char *) "x";
        gr->gr_gid = gid;
        gr->gr_mem = mem;
        return 0;
}

static int fake_getgrgid_r(gid_t gid, struct group *gr, char *buf, size_t size, struct group **ret) {
        int e;

        *ret = NULL;
        if (size > largest_group_buffer)
                largest_group_buffer = size;
        switch (gid) {
        case 3001:
                e = pack_group(gr, buf, size, "tenant-a", gid, 1);
                break;
        case BIG_GID:                   /* ~15 KiB: more than the 8 KiB the broker used to offer */
                e = pack_group(gr, buf, size, "bigteam", gid, BIG_MEMBERS);
                break;
        case 5001:                      /* no such group */
                return 0;
        case 5002:                      /* NSS down (sssd not answering) */
                return EIO;
        case 5003:                      /* "not found", as some modules say it */
                return ENOENT;
        case 5004:                      /* never fits */
                return ERANGE;
        default:
                return 0;
        }
        if (e == 0)
                *ret = gr;
        return e;
}

static int fake_getpwuid_r(uid_t uid, struct passwd *pw, char *buf, size_t size, struct passwd **ret) {
        *ret = NULL;
        switch (uid) {
        case 2001:
                if (size < 64)
                        return ERANGE;
                *pw = (struct passwd) { .pw_name = strcpy(buf, "alice"), .pw_passwd = (char *) "x", .pw_uid = uid,
                                        .pw_gid = 3001, .pw_gecos = (char *) "", .pw_dir = (char *) "/",
                                        .pw_shell = (char *) "/bin/sh" };
                *ret = pw;
                return 0;
        case 2002:
                return EIO;
        default:
                return 0;
        }
}

static int fake_getgrouplist(const char *user, gid_t group, gid_t *groups, int *n) {
        static const gid_t alice[] = { 3001, BIG_GID };
        int want = strcmp(user, "alice") == 0 ? 2 : 1;

        if (*n < want) {
                *n = want;
                return -1;
        }
        if (want == 2)
                memcpy(groups, alice, sizeof alice);
        else
                groups[0] = group;
        *n = want;
        return want;
}

static const CallerNss fake_nss = {
        .getpwuid_r = fake_getpwuid_r,
        .getgrgid_r = fake_getgrgid_r,
        .getgrouplist = fake_getgrouplist,
};

static int nss_setup(void **state) {
        caller_set_nss(&fake_nss);
        largest_group_buffer = 0;
        return 0;
}

static int nss_teardown(void **state) {
        caller_set_nss(NULL);
        return 0;
}

static void test_nss_big_group(void **state) {
        gid_t gids[] = { 3001, BIG_GID };
        Caller c = { .uid = 2001, .gids = malloc(sizeof gids), .n_gids = 2, .gids_known = true };

        assert_non_null(c.gids);
        memcpy(c.gids, gids, sizeof gids);
        assert_int_equal(caller_resolve_names(&c, CALLER_USER_NAME | CALLER_GROUP_NAMES), 0);
        assert_string_equal(c.user_name, "alice");
        assert_int_equal(c.n_group_names, 2);
        assert_string_equal(c.group_names[0], "tenant-a");
        /* 1000 members: asked again with larger buffers until it fitted. */
        assert_string_equal(c.group_names[1], "bigteam");
        assert_true(largest_group_buffer > 8192);
        assert_true(largest_group_buffer <= CALLER_NSS_BUFFER_MAX);
        caller_done(&c);
}

static void test_nss_not_found_is_no_name(void **state) {
        gid_t gids[] = { 5001, 5003, 3001 };
        Caller c = { .uid = 2003, .gids = malloc(sizeof gids), .n_gids = 3, .gids_known = true };

        assert_non_null(c.gids);
        memcpy(c.gids, gids, sizeof gids);
        assert_int_equal(caller_resolve_names(&c, CALLER_USER_NAME | CALLER_GROUP_NAMES), 0);
        assert_null(c.user_name);
        assert_int_equal(c.n_group_names, 3);
        assert_null(c.group_names[0]);
        assert_null(c.group_names[1]);
        assert_string_equal(c.group_names[2], "tenant-a");
        caller_done(&c);
}

static void test_nss_errors_are_errors(void **state) {
        gid_t gids[] = { 3001, 5002 };
        Caller c = { .uid = 2001, .gids = malloc(sizeof gids), .n_gids = 2, .gids_known = true };

        /* A group NSS cannot answer for: an error, and no names at all (not "no such group"). */
        assert_non_null(c.gids);
        memcpy(c.gids, gids, sizeof gids);
        assert_int_equal(caller_resolve_names(&c, CALLER_GROUP_NAMES), -EIO);
        assert_null(c.group_names);
        assert_int_equal(c.n_group_names, 0);
        /* A group that never fits: bounded, an error. */
        c.gids[1] = 5004;
        largest_group_buffer = 0;
        assert_int_equal(caller_resolve_names(&c, CALLER_GROUP_NAMES), -ERANGE);
        assert_int_equal(largest_group_buffer, CALLER_NSS_BUFFER_MAX);
        assert_null(c.group_names);
        /* A user NSS cannot answer for. */
        c.uid = 2002;
        assert_int_equal(caller_resolve_names(&c, CALLER_USER_NAME), -EIO);
        assert_null(c.user_name);
        caller_done(&c);
}

static void test_nss_snapshots(void **state) {
        Caller c = {};

        /* The snapshot's groups, named through NSS. */
        assert_int_equal(caller_from_snapshot(2001, "v=1\ngids=5000\n", CALLER_GROUP_NAMES, false, &c), 0);
        assert_int_equal(c.n_gids, 1);
        assert_string_equal(c.group_names[0], "bigteam");
        caller_done(&c);
        /* Renewal: the groups from NSS now. */
        assert_int_equal(caller_from_snapshot(2001, "v=1\n", CALLER_GROUP_NAMES, true, &c), 0);
        assert_int_equal(c.n_gids, 2);
        assert_int_equal(c.gids[1], BIG_GID);
        assert_string_equal(c.group_names[1], "bigteam");
        caller_done(&c);
        /* An owner NSS does not know has no groups; one it cannot answer for is an error (the
         * renewal waits and tries again instead of deciding for a caller without groups). */
        assert_int_equal(caller_from_snapshot(2003, "v=1\n", 0, true, &c), 0);
        assert_int_equal(c.n_gids, 0);
        caller_done(&c);
        assert_int_equal(caller_from_snapshot(2002, "v=1\n", 0, true, &c), -EIO);
        assert_int_equal(caller_from_snapshot(2002, "", 0, false, &c), -EIO);
        /* Names that cannot be looked up fail a snapshot too (Reload keeps the request). */
        assert_int_equal(caller_from_snapshot(2001, "v=1\ngids=5002\n", CALLER_GROUP_NAMES, false, &c), -EIO);
        assert_int_equal(caller_from_snapshot(2002, "v=1\ngids=3001\n", CALLER_USER_NAME, false, &c), -EIO);
        assert_int_equal(caller_from_snapshot(2002, "v=1\ngids=3001\n", CALLER_GROUP_NAMES, false, &c), 0);
        assert_string_equal(c.group_names[0], "tenant-a");
        caller_done(&c);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_limits_follow_nofile),
                cmocka_unit_test(test_registry_new_reads_rlimit),
                cmocka_unit_test(test_admission),
                cmocka_unit_test_setup_teardown(test_nss_big_group, nss_setup, nss_teardown),
                cmocka_unit_test_setup_teardown(test_nss_not_found_is_no_name, nss_setup, nss_teardown),
                cmocka_unit_test_setup_teardown(test_nss_errors_are_errors, nss_setup, nss_teardown),
                cmocka_unit_test_setup_teardown(test_nss_snapshots, nss_setup, nss_teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
