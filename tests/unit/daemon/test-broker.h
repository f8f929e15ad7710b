/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* A broker configuration for the bus layer's unit tests, in a new temporary directory: realm
 * EXAMPLE.TEST without a keytab (credentials fail at once, without a KDC), CA "corp" whose
 * name does not resolve (Authentication=none, Challenge=none), and one rule "me" letting the
 * user running the test (by name: decisions need NSS) have *.a.example.test. */

#include <pwd.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "test-helpers.h"

typedef struct TestBroker {
        char *dir, *config_dir, *state_dir;
} TestBroker;

static inline void test_broker_write(const char *dir, const char *name, const char *text) {
        char *p = test_path(dir, name);
        FILE *f = fopen(p, "we");

        assert_non_null(f);
        assert_true(fputs(text, f) >= 0);
        assert_int_equal(fclose(f), 0);
        free(p);
}

static inline void test_broker_mkdir(const char *dir, const char *name) {
        char *p = test_path(dir, name);

        assert_int_equal(mkdir(p, 0700), 0);
        free(p);
}

static inline void test_broker_config(TestBroker *b, const char *prefix) {
        struct passwd *pw = getpwuid(getuid());
        char *text = NULL;

        assert_non_null(pw);
        b->dir = test_mkdtemp(prefix);
        assert_non_null(b->dir);
        test_broker_mkdir(b->dir, "conf");
        test_broker_mkdir(b->dir, "state");
        b->config_dir = test_path(b->dir, "conf");
        b->state_dir = test_path(b->dir, "state");
        test_broker_mkdir(b->config_dir, "ca.d");
        test_broker_mkdir(b->config_dir, "policy.d");
        assert_true(asprintf(&text, "[Kerberos]\nRealm=EXAMPLE.TEST\nPrincipal=svc-scep@EXAMPLE.TEST\n"
                             "Keytab=%s/missing.keytab\n\n[Broker]\nPermittedSuffix=example.test\n"
                             "StateDirectory=%s\n", b->dir, b->state_dir) > 0);
        test_broker_write(b->config_dir, "certbroker.conf", text);
        free(text);
        test_broker_write(b->config_dir, "ca.d/corp.conf",
                          "[CA]\nURL=https://ndes.example.test/certsrv/mscep/mscep.dll\nDefault=yes\n"
                          "Authentication=none\nChallenge=none\n");
        assert_true(asprintf(&text, "[Rule]\nName=me\nUsers=%s\nNames=*.a.example.test\n", pw->pw_name) > 0);
        test_broker_write(b->config_dir, "policy.d/me.policy", text);
        free(text);
}

static inline void test_broker_done(TestBroker *b) {
        if (b->dir)
                test_rm_rf(b->dir);
        free(b->dir);
        free(b->config_dir);
        free(b->state_dir);
        *b = (TestBroker) {};
}
