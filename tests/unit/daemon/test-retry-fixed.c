/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The test-only knob CERTBROKER_TEST_RETRY_FIXED=SECONDS (the fleet simulation's control run):
 * set to 1..3600, every retry comes after exactly that long, failure after failure; any other
 * value (0, above 3600, not a number, empty) or none leaves the jittered exponential backoff.
 * The value is read once per process: meson runs this once per value, the expectation as the
 * argument ("fixed=SECONDS" or "backoff"), with the daemon core as in test-request.c (no
 * keytab, a CA whose name does not resolve in the private network namespace). */
#include <errno.h>
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

#include "broker-error.h"
#include "engine.h"
#include "manager.h"
#include "request.h"
#include "test-helpers.h"

static unsigned expect_fixed;   /* seconds; 0: the backoff */

typedef struct Fixture {
        char *dir;
        char *config_dir;
        char *state_dir;
        Manager *m;
        unsigned changed, gone;
        Request *enrolled;
        int enrolled_error;
        bool enrolled_called;
} Fixture;

static Fixture *current;

static void hook_changed(Request *r) {
        current->changed++;
}

static void hook_gone(Request *r) {
        current->gone++;
}

static const ManagerHooks test_hooks = {
        .request_changed = hook_changed,
        .request_gone = hook_gone,
};

static void write_file(const char *dir, const char *name, const char *text) {
        char *p = test_path(dir, name);
        FILE *f = fopen(p, "we");

        assert_non_null(f);
        assert_true(fputs(text, f) >= 0);
        assert_int_equal(fclose(f), 0);
        free(p);
}

static const char *user_name(void) {
        struct passwd *pw = getpwuid(getuid());
        assert_non_null(pw);
        return pw->pw_name;
}

static int manager_open(Fixture *f) {
        int r = manager_new(f->config_dir, f->state_dir, &f->m);
        if (r >= 0)
                f->m->hooks = &test_hooks;
        return r;
}

static int setup(void **state) {
        Fixture *f = calloc(1, sizeof(*f));
        char *text = NULL, *sub;

        assert_non_null(f);
        f->dir = test_mkdtemp("test-request");
        assert_non_null(f->dir);
        f->config_dir = test_path(f->dir, "conf");
        f->state_dir = test_path(f->dir, "state");
        assert_int_equal(mkdir(f->config_dir, 0700), 0);
        assert_int_equal(mkdir(f->state_dir, 0700), 0);
        sub = test_path(f->config_dir, "ca.d");
        assert_int_equal(mkdir(sub, 0700), 0);
        free(sub);
        sub = test_path(f->config_dir, "policy.d");
        assert_int_equal(mkdir(sub, 0700), 0);
        free(sub);

        /* No keytab (the credentials fail at once, without a KDC), no key pool (keys are made
         * on demand, on the pool's worker), and a CA whose name does not resolve here. */
        assert_true(asprintf(&text, "[Kerberos]\nRealm=EXAMPLE.TEST\nPrincipal=svc-scep@EXAMPLE.TEST\n"
                             "Keytab=%s/missing.keytab\n\n[Broker]\nPermittedSuffix=example.test\n"
                             "StateDirectory=%s\n", f->dir, f->state_dir) > 0);
        write_file(f->config_dir, "certbroker.conf", text);
        free(text);
        write_file(f->config_dir, "ca.d/corp.conf",
                   "[CA]\nURL=https://ndes.example.test/certsrv/mscep/mscep.dll\nDefault=yes\n"
                   "Authentication=none\nChallenge=none\nPollInterval=1\nPendingDeadline=3600\n");
        assert_true(asprintf(&text, "[Rule]\nName=me\nUsers=%s\nNames=*.a.example.test\n", user_name()) > 0);
        write_file(f->config_dir, "policy.d/me.policy", text);
        free(text);

        current = f;
        assert_int_equal(manager_open(f), 0);
        *state = f;
        return 0;
}

static int teardown(void **state) {
        Fixture *f = *state;

        manager_free(f->m);
        test_rm_rf(f->dir);
        free(f->dir);
        free(f->config_dir);
        free(f->state_dir);
        free(f);
        current = NULL;
        return 0;
}

/* Runs the loop until cond(f) or about `ms` milliseconds. */
static bool run_until(Fixture *f, bool (*cond)(Fixture *f), unsigned ms) {
        for (unsigned i = 0; i < ms / 10; i++) {
                if (cond && cond(f))
                        return true;
                assert_true(sd_event_run(f->m->event, 10000) >= 0);
        }
        return cond ? cond(f) : true;
}

static void on_enrolled(Request *r, int error, void *userdata) {
        Fixture *f = userdata;

        f->enrolled_called = true;
        f->enrolled = r;
        f->enrolled_error = error;
}

static bool enrolled(Fixture *f) {
        return f->enrolled_called;
}

/* Enroll for web.a.example.test as this user; returns the request, not yet durable. */
static Request *enroll(Fixture *f) {
        const char *names[] = { "web.a.example.test" };
        CbCaller caller = { .uid = getuid(), .user_name = user_name() };
        CbRequestSpec spec = { .names = names, .n_names = 1 };
        CbDecision d = {};
        Request *r = NULL;

        assert_int_equal(cb_policy_decide(f->m->config, &caller, &spec, NULL, &d), 0);
        assert_true(d.allowed);
        f->enrolled_called = false;
        assert_int_equal(request_enroll(f->m, getuid(), "", &d, false, NULL, on_enrolled, f, &r), 0);
        cb_decision_done(&d);
        assert_non_null(r);
        return r;
}

static bool first_attempt_failed(Fixture *f) {
        return f->m->n_requests > 0 && f->m->requests[0]->rec->state == REQUEST_RETRYING;
}

/* The next attempt comes `delay` after now (the call just made), give or take a second of
 * the test's own time. */
static void assert_next_in(Request *r, uint64_t delay_min, uint64_t delay_max) {
        uint64_t now = now_usec();

        if (r->rec->next_attempt + 1000000ULL < now + delay_min || r->rec->next_attempt > now + delay_max + 1000000ULL)
                fail_msg("next attempt in %lld usec, expected %llu..%llu", (long long) (r->rec->next_attempt - now),
                         (unsigned long long) delay_min, (unsigned long long) delay_max);
}

static void test_retry_knob(void **state) {
        Fixture *f = *state;
        Request *r = enroll(f);

        assert_true(run_until(f, enrolled, 5000));
        /* The CA cannot be reached: retrying, the first delay. */
        assert_true(run_until(f, first_attempt_failed, 20000));
        if (expect_fixed > 0)
                assert_next_in(r, expect_fixed * 1000000ULL, expect_fixed * 1000000ULL);
        else
                assert_next_in(r, request_retry_delay(r->rec->attempts, 0),
                               request_retry_delay(r->rec->attempts, UINT32_MAX));

        /* Failures in a row: fixed stays fixed; else 5 s, 10 s, 20 s, 40 s, 80 s (each up to a
         * quarter more). */
        for (unsigned i = 1; i <= 5; i++) {
                request_attempt_failed_errno(r, -ENOSPC, "Cannot keep the CSR for polling");
                assert_int_equal(r->rec->state, REQUEST_RETRYING);
                if (expect_fixed > 0)
                        assert_next_in(r, expect_fixed * 1000000ULL, expect_fixed * 1000000ULL);
                else
                        assert_next_in(r, request_retry_delay(i, 0), request_retry_delay(i, UINT32_MAX));
        }
        if (expect_fixed == 0)
                /* The backoff grew: 80 s now, never 5. */
                assert_true(r->rec->next_attempt >= now_usec() + 70 * 1000000ULL);
}

int main(int argc, char **argv) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_retry_knob, setup, teardown),
        };

        if (argc != 2 || (strcmp(argv[1], "backoff") != 0 && sscanf(argv[1], "fixed=%u", &expect_fixed) != 1)) {
                fprintf(stderr, "usage: %s fixed=SECONDS|backoff\n", argv[0]);
                return 2;
        }
        if (secret_init() < 0)
                return 1;
        return cmocka_run_group_tests(tests, NULL, NULL);
}
