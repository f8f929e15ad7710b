/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The daemon core's unit tests' broker (broker-fixture.h). */
#include <pwd.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "broker-fixture.h"
#include "test-helpers.h"

void broker_write_file(const char *dir, const char *name, const char *text) {
        char *p = test_path(dir, name);
        FILE *f = fopen(p, "we");

        assert_non_null(f);
        assert_true(fputs(text, f) >= 0);
        assert_int_equal(fclose(f), 0);
        free(p);
}

const char *broker_user_name(void) {
        struct passwd *pw = getpwuid(getuid());

        assert_non_null(pw);
        return pw->pw_name;
}

static void make_dir(const char *dir, const char *name) {
        char *p = test_path(dir, name);

        assert_int_equal(mkdir(p, 0700), 0);
        free(p);
}

void broker_dirs_new(BrokerDirs *d, const char *prefix, const char *ca_section) {
        char *text = NULL;

        d->dir = test_mkdtemp(prefix);
        assert_non_null(d->dir);
        d->config_dir = test_path(d->dir, "conf");
        d->state_dir = test_path(d->dir, "state");
        assert_int_equal(mkdir(d->config_dir, 0700), 0);
        assert_int_equal(mkdir(d->state_dir, 0700), 0);
        make_dir(d->config_dir, "ca.d");
        make_dir(d->config_dir, "policy.d");

        /* No keytab (the credentials fail at once, and Authentication=none needs none), no key
         * pool (keys are made on demand, on the pool's worker). */
        assert_true(asprintf(&text, "[Kerberos]\nRealm=EXAMPLE.TEST\nPrincipal=svc-scep@EXAMPLE.TEST\n"
                             "Keytab=%s/missing.keytab\n\n[Broker]\nPermittedSuffix=example.test\n"
                             "StateDirectory=%s\n", d->dir, d->state_dir) > 0);
        broker_write_file(d->config_dir, "certbroker.conf", text);
        free(text);
        assert_true(asprintf(&text, "[CA]\n%s", ca_section) > 0);
        broker_write_file(d->config_dir, "ca.d/corp.conf", text);
        free(text);
        assert_true(asprintf(&text, "[Rule]\nName=me\nUsers=%s\nNames=*.a.example.test\n", broker_user_name()) > 0);
        broker_write_file(d->config_dir, "policy.d/me.policy", text);
        free(text);
}

void broker_dirs_free(BrokerDirs *d) {
        if (d->dir)
                test_rm_rf(d->dir);
        free(d->dir);
        free(d->config_dir);
        free(d->state_dir);
        *d = (BrokerDirs) {};
}

void broker_decide(Manager *m, const char *name, const char *key, CbDecision *ret) {
        const char *names[] = { name };
        CbCaller caller = { .uid = getuid(), .user_name = broker_user_name() };
        CbRequestSpec spec = { .names = names, .n_names = 1, .key = key };

        assert_int_equal(cb_policy_decide(m->config, &caller, &spec, NULL, ret), 0);
        assert_true(ret->allowed);
}

Request *broker_enroll(Manager *m, const char *name, const char *key, bool renew, const char *token,
                       RequestEnrolled done, void *userdata) {
        CbDecision d = {};
        Request *r = NULL;

        broker_decide(m, name, key, &d);
        assert_int_equal(request_enroll(m, getuid(), "", &d, renew, token, done, userdata, &r), 0);
        cb_decision_done(&d);
        assert_non_null(r);
        return r;
}

Request *broker_renew_now(Request *pred) {
        StoreRequest *rec = calloc(1, sizeof(*rec));
        Request *succ = NULL;

        assert_non_null(rec);
        rec->owner = pred->rec->owner;
        rec->renew = true;
        rec->ca = strdup(pred->rec->ca);
        rec->label = strdup(pred->rec->label);
        rec->subject = strdup(pred->rec->subject);
        rec->names = calloc(2, sizeof(char *));
        assert_non_null(rec->names);
        rec->names[0] = strdup(pred->rec->names[0]);
        rec->key = strdup(pred->rec->key);
        rec->usage = strdup(pred->rec->usage);
        rec->caller = strdup("");
        rec->predecessor = strdup(pred->rec->id);
        rec->token = strdup(pred->rec->token);
        rec->state = REQUEST_QUEUED;
        /* Made later than its predecessor also within one clock tick. */
        rec->created = rec->updated = (now_usec() > pred->rec->created ? now_usec() : pred->rec->created + 1);
        assert_int_equal(request_add_successor(pred, rec, &succ), 0);
        assert_non_null(succ);
        assert_string_equal(pred->rec->successor, succ->rec->id);
        return succ;
}
