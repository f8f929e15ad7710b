/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The daemon core without a bus: request.c's transitions, backoff and deadline, and the
 * owner's operations racing the engine (cancel during key generation or before the insert
 * is on disk, take-key, remove, expiry), against a real journal in a temporary directory and
 * the real engine. The only boundary faked is the network: the test runs in a private network
 * namespace (meson runs it under unshare), so the CA's name does not resolve and every
 * attempt fails as CAUnreachable, at once. */
#include <errno.h>
#include <setjmp.h>
#include <sodium.h>
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
#include "broker-fixture.h"
#include "engine.h"
#include "keys-generate.h"
#include "manager.h"
#include "request.h"
#include "test-helpers.h"

typedef struct Fixture {
        BrokerDirs dirs;
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

static int manager_open(Fixture *f) {
        int r = manager_new(f->dirs.config_dir, f->dirs.state_dir, &f->m);
        if (r >= 0)
                f->m->hooks = &test_hooks;
        return r;
}

static int setup(void **state) {
        Fixture *f = calloc(1, sizeof(*f));

        assert_non_null(f);
        /* The CA's name does not resolve here. */
        broker_dirs_new(&f->dirs, "test-request", BROKER_CA_BASE "Challenge=none\nPollInterval=1\nPendingDeadline=3600\n");

        current = f;
        assert_int_equal(manager_open(f), 0);
        *state = f;
        return 0;
}

static int teardown(void **state) {
        Fixture *f = *state;

        manager_free(f->m);
        broker_dirs_free(&f->dirs);
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
        f->enrolled_called = false;
        return broker_enroll(f->m, "web.a.example.test", NULL, false, NULL, on_enrolled, f);
}

static bool first_attempt_failed(Fixture *f) {
        return f->m->n_requests > 0 && f->m->requests[0]->rec->state == REQUEST_RETRYING;
}

static StoreRequest *stored(Fixture *f, const char *id) {
        StoreRequest *rec = NULL;
        int r = store_request_get(f->m->store, id, &rec);
        return r >= 0 ? rec : NULL;
}

/* ---- pure ---- */

static void test_retry_delay(void **state) {
        (void) state;
        assert_int_equal(request_retry_delay(0, 0), REQUEST_RETRY_MIN_USEC);
        assert_int_equal(request_retry_delay(1, 0), REQUEST_RETRY_MIN_USEC);
        assert_int_equal(request_retry_delay(2, 0), 2 * REQUEST_RETRY_MIN_USEC);
        assert_int_equal(request_retry_delay(5, 0), 16 * REQUEST_RETRY_MIN_USEC);
        /* Capped at 15 minutes however many attempts; the jitter adds at most a quarter. */
        assert_int_equal(request_retry_delay(9, 0), REQUEST_RETRY_MAX_USEC);
        assert_int_equal(request_retry_delay(1000, 0), REQUEST_RETRY_MAX_USEC);
        assert_int_equal(request_retry_delay(1, UINT32_MAX), REQUEST_RETRY_MIN_USEC + REQUEST_RETRY_MIN_USEC / 4);
        assert_int_equal(request_retry_delay(1000, UINT32_MAX), REQUEST_RETRY_MAX_USEC + REQUEST_RETRY_MAX_USEC / 4);
        assert_true(request_retry_delay(3, UINT32_MAX / 2) > request_retry_delay(3, 0));
}

static void test_poll_delay(void **state) {
        (void) state;
        assert_int_equal(request_poll_delay(1000, 1, true), 1000);
        assert_int_equal(request_poll_delay(1000, 1, false), 1000);
        assert_int_equal(request_poll_delay(1000, 2, false), 2000);
        assert_int_equal(request_poll_delay(1000, 5, false), 16000);
        assert_int_equal(request_poll_delay(1000, 6, false), 16000);
        assert_int_equal(request_poll_delay(1000, 60, false), 16000);
}

static void test_error_names(void **state) {
        (void) state;
        /* One table: every value has a D-Bus error name (NONE: ""), the outcomes map onto it. */
        for (BrokerError e = 1; e < _BROKER_ERROR_MAX; e++)
                assert_true(strncmp(broker_error_name(e), BROKER_ERROR_PREFIX, strlen(BROKER_ERROR_PREFIX)) == 0);
        assert_string_equal(broker_error_name(BROKER_ERROR_NONE), "");
        assert_string_equal(broker_error_name(_BROKER_ERROR_MAX), "");
        for (TransportOutcome o = 1; o < _TRANSPORT_OUTCOME_MAX; o++) {
                BrokerError e = broker_error_from_transport(o);
                assert_string_equal(broker_error_name(e) + strlen(BROKER_ERROR_PREFIX), transport_outcome_to_string(o));
                assert_true(broker_error_is_transient(e) == transport_outcome_is_transient(o));
        }
        for (CbDecisionResult d = 1; d < _CB_DECISION_RESULT_MAX; d++)
                assert_string_equal(broker_error_name(broker_error_from_decision(d)) + strlen(BROKER_ERROR_PREFIX),
                                    cb_decision_result_to_error(d));
        /* A challenge the server denies for good is named ChallengeUnavailable but not retried. */
        assert_false(broker_error_is_transient(BROKER_ERROR_CHALLENGE_DENIED));
        assert_true(broker_error_is_transient(BROKER_ERROR_CHALLENGE_UNAVAILABLE));
}

/* ---- with a manager ---- */

static void test_enroll_durable_then_retry(void **state) {
        Fixture *f = *state;
        Request *r = enroll(f);
        char id[STORE_ID_LEN + 1];
        StoreRequest *rec;

        strcpy(id, r->rec->id);
        /* In the journal already, but not answered until the fsync. */
        assert_int_equal(r->rec->state, REQUEST_QUEUED);
        assert_false(f->enrolled_called);
        rec = stored(f, id);
        assert_non_null(rec);
        store_request_free(rec);

        assert_true(run_until(f, enrolled, 5000));
        assert_int_equal(f->enrolled_error, 0);
        assert_ptr_equal(f->enrolled, r);

        /* The engine started: a key is made, the CA cannot be reached, the request retries
         * with the first backoff step. */
        unsigned before = f->changed;
        assert_true(run_until(f, first_attempt_failed, 20000));
        assert_true(f->changed > before);
        assert_string_equal(r->rec->error, BROKER_ERROR_PREFIX "CAUnreachable");
        uint64_t now = now_usec();
        assert_true(r->rec->next_attempt > now);
        assert_true(r->rec->next_attempt - now <= REQUEST_RETRY_MIN_USEC + REQUEST_RETRY_MIN_USEC / 4);
        assert_true(r->rec->next_attempt - now >= REQUEST_RETRY_MIN_USEC - 2000000ULL);
        assert_true(r->rec->key_available);     /* the key waits with it */

        /* What the journal holds is what the object says, also after a restart. */
        rec = stored(f, id);
        assert_non_null(rec);
        assert_int_equal(rec->state, REQUEST_RETRYING);
        assert_string_equal(rec->error, r->rec->error);
        store_request_free(rec);
        manager_free(f->m);
        assert_int_equal(manager_open(f), 0);
        r = manager_find_request(f->m, id);
        assert_non_null(r);
        assert_int_equal(r->rec->state, REQUEST_RETRYING);
        assert_true(r->rec->key_available);
        assert_int_equal(request_load_key(r), 0);
        assert_non_null(r->key);
}

static void test_deadline_and_terminal_errors(void **state) {
        Fixture *f = *state;
        Request *r = enroll(f);

        assert_true(run_until(f, enrolled, 5000));
        assert_true(run_until(f, first_attempt_failed, 20000));

        /* A transient failure before the deadline retries; the attempts back off. */
        r->rec->attempts = 3;
        request_attempt_failed(r, BROKER_ERROR_KERBEROS_FAILED, "the KDC is away");
        assert_int_equal(r->rec->state, REQUEST_RETRYING);
        assert_string_equal(r->rec->error, BROKER_ERROR_PREFIX "KerberosFailed");
        assert_true(r->rec->next_attempt >= now_usec() + 4 * REQUEST_RETRY_MIN_USEC - 1000000ULL);

        /* A renewal successor retries past PendingDeadline= (its certificate must be renewed
         * even after it expired). */
        r->rec->created = now_usec() - 2ULL * 3600ULL * 1000000ULL;
        r->rec->predecessor = strdup("0123456789abcdef");
        assert_true(request_is_renewal(r));
        request_attempt_failed(r, BROKER_ERROR_CA_UNREACHABLE, "down");
        assert_int_equal(r->rec->state, REQUEST_RETRYING);

        /* Anything else past the deadline ends with Timeout, the key erased. */
        free(r->rec->predecessor);
        r->rec->predecessor = NULL;
        request_attempt_failed(r, BROKER_ERROR_CA_UNREACHABLE, "down");
        assert_int_equal(r->rec->state, REQUEST_FAILED);
        assert_string_equal(r->rec->error, BROKER_ERROR_PREFIX "Timeout");
        assert_false(r->rec->key_available);
        assert_int_equal(r->rec->next_attempt, 0);
        assert_null(r->timer);
        CbSecret *pem = NULL;
        assert_int_equal(store_key_get(f->m->store, r->rec->id, &pem), -ENOKEY);

        /* A second request: a failure that will not pass ends it at once, named. */
        Request *r2 = enroll(f);
        assert_true(run_until(f, enrolled, 5000));
        request_attempt_failed(r2, BROKER_ERROR_TLS_VERIFY_FAILED, "bad certificate");
        assert_int_equal(r2->rec->state, REQUEST_FAILED);
        assert_string_equal(r2->rec->error, BROKER_ERROR_PREFIX "TLSVerifyFailed");
        assert_string_equal(r2->rec->error_message, "bad certificate");
        /* The engine has nothing left in flight for it, and restarting does nothing. */
        assert_null(r2->engine);
        assert_int_equal(r2->key_job, 0);
        assert_int_equal(engine_request_start(r2), 0);
        assert_int_equal(r2->rec->state, REQUEST_FAILED);

        /* engine_request_start() on a request past its deadline ends it too. */
        Request *r3 = enroll(f);
        assert_true(run_until(f, enrolled, 5000));
        assert_true(run_until(f, first_attempt_failed, 20000) || r3->rec->state == REQUEST_RETRYING);
        engine_request_stop(r3);
        r3->rec->created = now_usec() - 2ULL * 3600ULL * 1000000ULL;
        r3->rec->next_attempt = 0;
        assert_int_equal(engine_request_start(r3), 0);
        assert_int_equal(r3->rec->state, REQUEST_FAILED);
        assert_string_equal(r3->rec->error, BROKER_ERROR_PREFIX "Timeout");
}

static void test_cancel_races(void **state) {
        Fixture *f = *state;

        /* Cancelled before its insert is on disk: the reply still comes, the engine does not
         * start, nothing is left of the key. */
        Request *r = enroll(f);
        char id[STORE_ID_LEN + 1];
        strcpy(id, r->rec->id);
        assert_false(f->enrolled_called);
        assert_int_equal(request_cancel(r), 0);
        assert_int_equal(r->rec->state, REQUEST_CANCELLED);
        assert_true(run_until(f, enrolled, 5000));
        assert_int_equal(f->enrolled_error, 0);
        assert_null(r->engine);
        assert_int_equal(r->key_job, 0);
        run_until(f, NULL, 300);
        assert_int_equal(r->rec->state, REQUEST_CANCELLED);
        assert_string_equal(r->rec->error, BROKER_ERROR_PREFIX "Cancelled");
        assert_int_equal(request_cancel(r), 1);         /* again: nothing to do */

        /* Cancelled while its key is being generated on the pool's worker: the key that
         * arrives afterwards is thrown away, not stored. */
        Request *r2 = enroll(f);
        assert_true(run_until(f, enrolled, 5000));
        assert_true(r2->key_job != 0 || r2->key);
        assert_int_equal(request_cancel(r2), 0);
        assert_int_equal(r2->key_job, 0);
        run_until(f, NULL, 1500);
        assert_int_equal(r2->rec->state, REQUEST_CANCELLED);
        assert_false(r2->rec->key_available);
        assert_null(r2->key);
        CbSecret *pem = NULL;
        assert_int_equal(store_key_get(f->m->store, r2->rec->id, &pem), -ENOKEY);
        StoreRequest *rec = stored(f, r2->rec->id);
        assert_non_null(rec);
        assert_int_equal(rec->state, REQUEST_CANCELLED);
        store_request_free(rec);

        /* Ended by the broker (a reload's re-decision) while its key is being generated: the
         * same, the key job is dropped with the attempt. */
        Request *r4 = enroll(f);
        assert_true(run_until(f, enrolled, 5000));
        assert_true(r4->key_job != 0);
        request_end(r4, REQUEST_FAILED, BROKER_ERROR_ACCESS_DENIED, NULL, "no rule allows it any more");
        assert_int_equal(r4->key_job, 0);
        run_until(f, NULL, 1500);
        assert_int_equal(r4->rec->state, REQUEST_FAILED);
        assert_false(r4->rec->key_available);
        assert_null(r4->key);
        assert_null(r4->engine);
        assert_int_equal(store_key_get(f->m->store, r4->rec->id, &pem), -ENOKEY);

        /* A finished request cannot be cancelled; it can be removed, once. */
        Request *r3 = enroll(f);
        assert_true(run_until(f, enrolled, 5000));
        assert_int_equal(request_remove(r3), -EBUSY);   /* in progress */
        request_end(r3, REQUEST_REJECTED, BROKER_ERROR_CA_REJECTED, "badRequest", "no");
        assert_int_equal(request_cancel(r3), -EBUSY);
        assert_int_equal(r3->rec->state, REQUEST_REJECTED);
        char id3[STORE_ID_LEN + 1];
        strcpy(id3, r3->rec->id);
        unsigned gone = f->gone;
        assert_int_equal(request_remove(r3), 0);
        assert_int_equal(f->gone, gone + 1);
        assert_null(manager_find_request(f->m, id3));
        assert_null(stored(f, id3));
        assert_non_null(manager_find_request(f->m, id));
}

/* ---- request_set_state(): the one place the state changes ---- */

static bool has_key(Fixture *f) {
        return f->enrolled && f->enrolled->rec->key_available;
}

static void test_set_state(void **state) {
        Fixture *f = *state;
        Request *r = enroll(f);
        StoreRequest *rec;
        CbSecret *pem = NULL;
        unsigned before;
        uint64_t next;

        assert_true(run_until(f, enrolled, 5000));
        assert_true(run_until(f, has_key, 20000));

        /* PENDING: the attempt stops, the poll is scheduled at the time given, all committed. */
        before = f->changed;
        next = now_usec() + 3600ULL * 1000000ULL;
        assert_int_equal(request_set_state(r, REQUEST_PENDING, next), 0);
        assert_int_equal(r->rec->state, REQUEST_PENDING);
        assert_int_equal(r->rec->next_attempt, next);
        assert_non_null(r->timer);
        assert_null(r->engine);
        assert_int_equal(r->key_job, 0);
        assert_true(f->changed > before);
        rec = stored(f, r->rec->id);
        assert_non_null(rec);
        assert_int_equal(rec->state, REQUEST_PENDING);
        assert_int_equal(rec->next_attempt, next);
        store_request_free(rec);

        /* FAILED: nothing scheduled, no submission in doubt, the key erased, committed. */
        r->rec->submitted = now_usec();
        assert_int_equal(request_set_state(r, REQUEST_FAILED, 0), 0);
        assert_int_equal(r->rec->state, REQUEST_FAILED);
        assert_int_equal(r->rec->next_attempt, 0);
        assert_int_equal(r->rec->submitted, 0);
        assert_null(r->timer);
        assert_false(r->rec->key_available);
        assert_null(r->key);
        assert_int_equal(store_key_get(f->m->store, r->rec->id, &pem), -ENOKEY);
        rec = stored(f, r->rec->id);
        assert_non_null(rec);
        assert_int_equal(rec->state, REQUEST_FAILED);
        assert_int_equal(rec->submitted, 0);
        store_request_free(rec);
}

/* request_decide_again(): the rules in force, for the identity and parameters recorded. */
static void test_decide_again(void **state) {
        Fixture *f = *state;
        Request *r = enroll(f);
        CbDecision d = {};
        unsigned tries = 0;
        char *name;
        int q;

        assert_true(run_until(f, enrolled, 5000));
        /* The rule names its user: the name is asked of NSS off the loop first. */
        while ((q = request_decide_again(r, false, &d)) == -EINPROGRESS && tries++ < 500)
                assert_true(sd_event_run(f->m->event, 10000) >= 0);
        assert_int_equal(q, 0);
        assert_true(d.allowed);
        assert_true(d.root_bypass || strcmp(d.rule, "me") == 0);
        cb_decision_done(&d);

        /* A name outside PermittedSuffix=, which nothing allows: denied, the name named. */
        name = r->rec->names[0];
        r->rec->names[0] = strdup("web.example.org");
        assert_non_null(r->rec->names[0]);
        assert_int_equal(request_decide_again(r, false, &d), 0);
        assert_false(d.allowed);
        assert_int_equal(d.result, CB_DECISION_NAME_NOT_PERMITTED);
        assert_non_null(d.reason);
        assert_true(strstr(d.reason, "web.example.org") != NULL);
        cb_decision_done(&d);
        free(r->rec->names[0]);
        r->rec->names[0] = name;
}

/* ---- local shortages: retried, never final ---- */

static void test_local_errnos(void **state) {
        (void) state;
        static const int transient[] = { ENOSPC, EDQUOT, ENOMEM, ENOBUFS, EBUSY, EAGAIN };
        static const int other[] = { EIO, EINVAL, EPERM, ENOENT, EBADMSG, EPROTO, 0 };

        for (size_t i = 0; i < sizeof transient / sizeof transient[0]; i++) {
                assert_true(broker_errno_is_local_transient(transient[i]));
                assert_true(broker_errno_is_local_transient(-transient[i]));
        }
        for (size_t i = 0; i < sizeof other / sizeof other[0]; i++)
                assert_false(broker_errno_is_local_transient(-other[i]));
}

static bool retrying_with_quota(Fixture *f) {
        Request *r = f->m->n_requests > 0 ? f->m->requests[f->m->n_requests - 1] : NULL;
        return r && r->rec->state == REQUEST_RETRYING && r->rec->error &&
               strcmp(r->rec->error, BROKER_ERROR_PREFIX "QuotaExceeded") == 0;
}

static bool retrying_with_ca_unreachable(Fixture *f) {
        Request *r = f->m->requests[f->m->n_requests - 1];
        return r->rec->state == REQUEST_RETRYING && r->rec->error &&
               strcmp(r->rec->error, BROKER_ERROR_PREFIX "CAUnreachable") == 0;
}

static void drop_key(KeyPool *pool, uint64_t job, int error, EVP_PKEY *key, void *userdata) {
        EVP_PKEY_free(key);
}

static void assert_retry_in(Request *r, unsigned local_failures) {
        uint64_t now = now_usec(), want = request_retry_delay(local_failures, 0);

        assert_true(r->rec->next_attempt + 1000000ULL >= now + want);
        assert_true(r->rec->next_attempt <= now + want + want / 4 + 1000000ULL);
}

static void test_local_shortage_retries(void **state) {
        Fixture *f = *state;
        Request *r = enroll(f);
        CbSecret *pem = NULL;

        assert_true(run_until(f, enrolled, 5000));
        assert_true(run_until(f, first_attempt_failed, 20000));
        assert_true(r->rec->key_available);
        unsigned attempts = r->rec->attempts;

        /* A full disk at some step: retried, named QuotaExceeded with what ran out, the state
         * and the stored key kept, no network attempt counted. */
        request_attempt_failed_errno(r, -ENOSPC, "Cannot keep the CSR for polling");
        assert_int_equal(r->rec->state, REQUEST_RETRYING);
        assert_string_equal(r->rec->error, BROKER_ERROR_PREFIX "QuotaExceeded");
        assert_non_null(strstr(r->rec->error_message, "Cannot keep the CSR for polling: No space left on device"));
        assert_non_null(strstr(r->rec->error_message, "state directory is full"));
        assert_true(r->rec->key_available);
        assert_int_equal(store_key_get(f->m->store, r->rec->id, &pem), 0);
        secret_free(pem);
        assert_int_equal(r->rec->attempts, attempts);
        assert_retry_in(r, 1);

        /* Shortages in a row back off: 5 s, 10 s, 20 s, 40 s (each up to a quarter more). */
        request_attempt_failed_errno(r, -ENOMEM, "Out of memory");
        assert_retry_in(r, 2);
        assert_non_null(strstr(r->rec->error_message, "short of memory"));
        request_attempt_failed_errno(r, EAGAIN, "Cannot start fetching a challenge");
        assert_retry_in(r, 3);
        request_attempt_failed_errno(r, -EBUSY, "Cannot start generating the private key");
        assert_retry_in(r, 4);
        assert_non_null(strstr(r->rec->error_message, "key generation queue is full"));
        assert_int_equal(r->rec->state, REQUEST_RETRYING);

        /* Never final: also past PendingDeadline= (that applies when the next attempt starts). */
        r->rec->created = now_usec() - 2ULL * 3600ULL * 1000000ULL;
        request_attempt_failed_errno(r, -EDQUOT, "Cannot make the submission durable");
        assert_int_equal(r->rec->state, REQUEST_RETRYING);
        assert_string_equal(r->rec->error, BROKER_ERROR_PREFIX "QuotaExceeded");
        assert_true(r->rec->key_available);

        /* A pending request stays pending through a shortage (the CA has it). */
        r->rec->created = now_usec();
        r->rec->state = REQUEST_PENDING;
        request_attempt_failed_errno(r, -ENOBUFS, "Cannot poll");
        assert_int_equal(r->rec->state, REQUEST_PENDING);
        assert_string_equal(r->rec->error, BROKER_ERROR_PREFIX "QuotaExceeded");

        /* What the journal holds says the same, also after a restart. */
        StoreRequest *rec = stored(f, r->rec->id);
        assert_non_null(rec);
        assert_int_equal(rec->state, REQUEST_PENDING);
        assert_string_equal(rec->error, BROKER_ERROR_PREFIX "QuotaExceeded");
        assert_true(rec->key_available);
        store_request_free(rec);

        /* A key made but not stored (the disk was full when it was to be kept) is dropped: the
         * next attempt makes and stores another. */
        Request *r2 = enroll(f);
        assert_true(run_until(f, enrolled, 5000));
        engine_request_stop(r2);
        r2->rec->key_available = false;         /* as if request_keep_key() had failed */
        EVP_PKEY_free(r2->key);
        assert_int_equal(key_generate(KEY_TYPE_EC_P256, &r2->key), 0);
        request_attempt_failed_errno(r2, -ENOSPC, "Cannot store the private key (encrypted) in the journal");
        assert_int_equal(r2->rec->state, REQUEST_RETRYING);
        assert_null(r2->key);
        assert_false(r2->rec->key_available);

        /* Any other errno still ends the request, as a protocol error. */
        Request *r3 = enroll(f);
        assert_true(run_until(f, enrolled, 5000));
        request_attempt_failed_errno(r3, -EIO, "Cannot read something");
        assert_int_equal(r3->rec->state, REQUEST_FAILED);
        assert_string_equal(r3->rec->error, BROKER_ERROR_PREFIX "ProtocolError");
}

/* The key queue full (KEY_POOL_JOBS_MAX jobs, -EBUSY) when a request needs its key: the request
 * waits as retrying with QuotaExceeded, and goes on once the queue has room. */
static void test_key_queue_full(void **state) {
        Fixture *f = *state;
        uint64_t *jobs = calloc(KEY_POOL_JOBS_MAX, sizeof(uint64_t));
        unsigned n = 0;

        assert_non_null(jobs);
        for (; n < KEY_POOL_JOBS_MAX; n++)
                if (key_pool_generate_async(f->m->pool, KEY_TYPE_RSA_4096, drop_key, NULL, &jobs[n]) < 0)
                        break;
        assert_int_equal(key_pool_generate_async(f->m->pool, KEY_TYPE_RSA_4096, drop_key, NULL, NULL), -EBUSY);

        Request *r = enroll(f);
        assert_true(run_until(f, enrolled, 5000));
        assert_true(run_until(f, retrying_with_quota, 5000));
        assert_non_null(strstr(r->rec->error_message, "key generation queue is full"));
        assert_false(r->rec->key_available);

        /* Room again: the next attempt makes the key and reaches for the CA. */
        for (unsigned i = 0; i < n; i++)
                (void) key_pool_cancel(f->m->pool, jobs[i]);
        free(jobs);
        assert_true(run_until(f, retrying_with_ca_unreachable, 30000));
        assert_true(r->rec->key_available);
}

/* Issued by hand (the network is not there): the engine stopped, a key kept, the certificate set. */
static void issue(Request *r, uint64_t not_after) {
        EVP_PKEY *key = NULL;
        uint64_t now = now_usec();

        engine_request_stop(r);
        if (!r->rec->key_available) {
                assert_int_equal(key_generate(KEY_TYPE_EC_P256, &key), 0);
                assert_int_equal(request_keep_key(r, key), 0);
        }
        request_set_issued(r, strdup("CERT"), strdup("CHAIN"), strdup("0c"), now - 1000000ULL, not_after);
        assert_int_equal(r->rec->state, REQUEST_ISSUED);
}

static void test_take_key_and_expiry(void **state) {
        Fixture *f = *state;
        Request *r = enroll(f);
        CbSecret *pem = NULL;

        assert_true(run_until(f, enrolled, 5000));
        assert_int_equal(request_take_key(r, &pem), -EBUSY);    /* not issued */
        uint64_t now = now_usec();
        issue(r, now + 3600ULL * 1000000ULL);
        assert_true(r->rec->key_available);
        assert_null(r->key);                    /* kept encrypted in the journal only */
        assert_int_equal(request_cancel(r), -EBUSY);

        /* Taken once: then gone from the journal. */
        assert_int_equal(request_take_key(r, &pem), 0);
        assert_non_null(pem);
        assert_non_null(strstr((const char *) pem->data, "PRIVATE KEY"));
        secret_free(pem);
        pem = NULL;
        assert_false(r->rec->key_available);
        assert_int_equal(request_take_key(r, &pem), -ENOKEY);
        assert_int_equal(store_key_get(f->m->store, r->rec->id, &pem), -ENOKEY);
        StoreRequest *rec = stored(f, r->rec->id);
        assert_non_null(rec);
        assert_false(rec->key_available);
        store_request_free(rec);

        /* A key nobody took is erased when the certificate expires, not before. */
        Request *r2 = enroll(f);
        assert_true(run_until(f, enrolled, 5000));
        issue(r2, now + 10ULL * 1000000ULL);
        assert_int_equal(request_expire_key(r2, now), 0);
        assert_true(r2->rec->key_available);
        assert_int_equal(request_expire_key(r2, now + 11ULL * 1000000ULL), 1);
        assert_false(r2->rec->key_available);
        assert_int_equal(store_key_get(f->m->store, r2->rec->id, &pem), -ENOKEY);

        /* RetainFinished=: forgotten, journal and object. */
        char id2[STORE_ID_LEN + 1];
        strcpy(id2, r2->rec->id);
        assert_int_equal(request_forget(r2, 0), 0);
        assert_null(manager_find_request(f->m, id2));
        assert_null(stored(f, id2));
}

static Request *enroll_token(Fixture *f, const char *name, const char *token, CbDecision *ret_d) {
        Request *r = NULL;

        broker_decide(f->m, name, NULL, ret_d);
        f->enrolled_called = false;
        assert_int_equal(request_enroll(f->m, getuid(), "", ret_d, false, token, on_enrolled, f, &r), 0);
        assert_true(run_until(f, enrolled, 5000));
        assert_int_equal(f->enrolled_error, 0);
        return r;
}

/* Enroll's token: found for its owner only, the oldest kept member of a chain, other
 * parameters named; the reply to a repeated Enroll waits for the journal like a new one. */
static void test_token(void **state) {
        Fixture *f = *state;
        CbDecision d = {}, d2 = {};
        const char *field = NULL;
        Request *r = enroll_token(f, "web.a.example.test", "tok-1", &d), *succ = NULL;

        assert_string_equal(r->rec->token, "tok-1");
        assert_ptr_equal(request_find_token(f->m, getuid(), "tok-1"), r);
        assert_null(request_find_token(f->m, getuid() + 1, "tok-1"));
        assert_null(request_find_token(f->m, getuid(), "tok-2"));
        assert_null(request_find_token(f->m, getuid(), NULL));
        assert_null(request_find_token(f->m, getuid(), ""));
        assert_int_equal(request_differs(r, &d, false, false, false, &field), 0);
        assert_null(field);
        assert_int_equal(request_differs(r, &d, true, true, false, &field), 0);
        assert_int_equal(request_differs(r, &d, false, false, true, &field), 1);
        assert_string_equal(field, "renew");
        /* A key type or CA that was not asked for is the default, which a Reload may change:
         * compared only when given. */
        char *kept_key = r->rec->key, *kept_ca = r->rec->ca;
        r->rec->key = (char *) "rsa:4096";
        r->rec->ca = (char *) "other";
        assert_int_equal(request_differs(r, &d, false, false, false, &field), 0);
        assert_int_equal(request_differs(r, &d, false, true, false, &field), 1);
        assert_string_equal(field, "key");
        assert_int_equal(request_differs(r, &d, true, true, false, &field), 1);
        assert_string_equal(field, "ca");
        r->rec->key = kept_key;
        r->rec->ca = kept_ca;
        Request *other = enroll_token(f, "api.a.example.test", NULL, &d2);
        assert_string_equal(other->rec->token, "");
        assert_int_equal(request_differs(r, &d2, false, false, false, &field), 1);
        assert_string_equal(field, "names");

        f->enrolled_called = false;
        f->enrolled = NULL;
        assert_int_equal(request_when_durable(r, on_enrolled, f), 0);
        assert_false(f->enrolled_called);       /* answered after the journal's fsync */
        assert_true(run_until(f, enrolled, 5000));
        assert_ptr_equal(f->enrolled, r);
        assert_int_equal(f->enrolled_error, 0);

        /* A successor keeps the token; the chain's oldest kept member is found, then the next
         * once that one is forgotten. */
        issue(r, now_usec() + 3600ULL * 1000000ULL);
        StoreRequest *rec = calloc(1, sizeof(*rec));
        assert_non_null(rec);
        rec->owner = getuid();
        rec->renew = true;
        rec->ca = strdup(r->rec->ca);
        rec->label = strdup("");
        rec->subject = strdup(r->rec->subject);
        rec->names = calloc(2, sizeof(char *));
        rec->names[0] = strdup(r->rec->names[0]);
        rec->key = strdup(r->rec->key);
        rec->usage = strdup(r->rec->usage);
        rec->caller = strdup("");
        rec->predecessor = strdup(r->rec->id);
        rec->token = strdup(r->rec->token);
        rec->state = REQUEST_QUEUED;
        rec->created = rec->updated = r->rec->created + 1;
        assert_int_equal(request_add_successor(r, rec, &succ), 0);
        assert_ptr_equal(request_find_token(f->m, getuid(), "tok-1"), r);
        StoreRequest *back = stored(f, succ->rec->id);
        assert_non_null(back);
        assert_string_equal(back->token, "tok-1");
        store_request_free(back);
        /* renew: compared with what the request is now; a stopped chain is not renew. */
        assert_int_equal(request_differs(succ, &d, false, false, true, &field), 0);
        assert_int_equal(request_differs(succ, &d, false, false, false, &field), 1);
        assert_string_equal(field, "renew");
        succ->rec->renew = false;
        assert_int_equal(request_differs(succ, &d, false, false, true, &field), 1);
        assert_string_equal(field, "renew");
        succ->rec->renew = true;
        assert_int_equal(request_forget(r, 0), 0);
        assert_ptr_equal(request_find_token(f->m, getuid(), "tok-1"), succ);
        cb_decision_done(&d);
        cb_decision_done(&d2);
}

/* ---- MaxStoredRequests= and the indexes ---- */

static Request *enroll_renewing(Fixture *f, const char *name, const char *token) {
        Request *r;

        f->enrolled_called = false;
        r = broker_enroll(f->m, name, "ec:p256", true, token, on_enrolled, f);
        assert_true(run_until(f, enrolled, 5000));
        assert_int_equal(f->enrolled_error, 0);
        return r;
}

/* What the indexes say agrees with the list of requests, for every owner that has some. */
static void assert_indexes(Fixture *f) {
        Manager *m = f->m;

        for (size_t i = 0; i < m->n_requests; i++) {
                Request *r = m->requests[i];
                unsigned n = 0, listed = 0;

                assert_ptr_equal(manager_find_request(m, r->rec->id), r);
                for (size_t j = 0; j < m->n_requests; j++)
                        if (m->requests[j]->rec->owner == r->rec->owner)
                                n++;
                assert_int_equal(manager_count_stored(m, r->rec->owner), n);
                uint64_t last = 0;
                for (Request *q = manager_owned_requests(m, r->rec->owner); q; q = q->owner_next) {
                        assert_int_equal(q->rec->owner, r->rec->owner);
                        assert_true(q->rec->created >= last);   /* made first first */
                        last = q->rec->created;
                        listed++;
                }
                assert_int_equal(listed, n);
        }
}

/* Successors count against MaxStoredRequests=: a uid whose chains renew short-lived
 * certificates again and again keeps at most the bound, its oldest finished requests
 * forgotten (journal and object), never a chain's live end, and every chain goes on. */
static void test_successors_bounded(void **state) {
        Fixture *f = *state;
        enum { CHAINS = 3, ROUNDS = 40, BOUND = 8 };
        Request *end[CHAINS];
        char first_id[CHAINS][STORE_ID_LEN + 1];
        const char *names[CHAINS] = { "a.a.example.test", "b.a.example.test", "c.a.example.test" };
        const char *tokens[CHAINS] = { "chain-a", "chain-b", "chain-c" };
        StoreRequest **all = NULL;
        size_t n_all = 0;

        f->m->config->max_stored_requests = BOUND;
        for (unsigned c = 0; c < CHAINS; c++) {
                end[c] = enroll_renewing(f, names[c], tokens[c]);
                issue(end[c], now_usec() + 3600ULL * 1000000ULL);
                strcpy(first_id[c], end[c]->rec->id);
        }

        for (unsigned round = 0; round < ROUNDS; round++)
                for (unsigned c = 0; c < CHAINS; c++) {
                        char pred_id[STORE_ID_LEN + 1];
                        strcpy(pred_id, end[c]->rec->id);
                        Request *succ = broker_renew_now(end[c]);
                        /* The predecessor is the live end until its successor is issued. */
                        assert_ptr_equal(manager_find_request(f->m, pred_id), end[c]);
                        assert_true(manager_count_stored(f->m, getuid()) <= BOUND);
                        issue(succ, now_usec() + 3600ULL * 1000000ULL);
                        end[c] = succ;
                        assert_true(manager_count_stored(f->m, getuid()) <= BOUND);
                        assert_indexes(f);
                }

        /* Every chain goes on: its live end is renewing and issued, its token finds a kept
         * member of it, and the first enrollments are forgotten, journal and object. */
        for (unsigned c = 0; c < CHAINS; c++) {
                assert_true(end[c]->rec->renew);
                assert_int_equal(end[c]->rec->state, REQUEST_ISSUED);
                Request *t = request_find_token(f->m, getuid(), tokens[c]);
                assert_non_null(t);
                assert_string_equal(t->rec->token, tokens[c]);
                assert_null(manager_find_request(f->m, first_id[c]));
                assert_null(stored(f, first_id[c]));
        }
        assert_int_equal(manager_count_stored(f->m, getuid()), BOUND);
        /* The journal holds what memory holds. */
        assert_int_equal(store_request_list_by_owner(f->m->store, getuid(), &all, &n_all), 0);
        assert_int_equal(n_all, BOUND);
        for (size_t i = 0; i < n_all; i++)
                assert_non_null(manager_find_request(f->m, all[i]->id));
        store_request_array_free(all, n_all);

        /* Nothing finished left to forget: the successor is made all the same (the uid goes
         * over the bound by the renewals in progress), the chain is not ended. */
        f->m->config->max_stored_requests = CHAINS;
        for (unsigned c = 0; c < CHAINS; c++) {
                while (manager_count_stored(f->m, getuid()) > CHAINS) {
                        Request *victim = NULL;
                        for (Request *q = manager_owned_requests(f->m, getuid()); q && !victim; q = q->owner_next)
                                if (q != end[0] && q != end[1] && q != end[2])
                                        victim = q;
                        assert_non_null(victim);
                        assert_int_equal(request_remove(victim), 0);
                }
        }
        assert_indexes(f);
        Request *succ = broker_renew_now(end[0]);
        assert_int_equal(manager_count_stored(f->m, getuid()), CHAINS + 1);
        assert_non_null(manager_find_request(f->m, end[0]->rec->id));
        assert_int_equal(succ->rec->state, REQUEST_QUEUED);
        assert_indexes(f);
}

/* The indexes through many inserts, removals and forgets of several owners: found by id, by
 * token, counted per owner, listed in order; the tables grow past their first size. */
static void test_request_index(void **state) {
        Fixture *f = *state;
        enum { N = 2000 };
        char (*ids)[STORE_ID_LEN + 1] = calloc(N, sizeof(*ids));
        bool *gone = calloc(N, sizeof(bool));
        Request **reqs = calloc(N, sizeof(Request *));
        char token[32];

        assert_non_null(ids);
        assert_non_null(gone);
        assert_non_null(reqs);
        for (unsigned i = 0; i < N; i++) {
                StoreRequest *rec = calloc(1, sizeof(*rec));
                assert_non_null(rec);
                store_id_new(rec->id);
                rec->owner = 5000 + i % 7;
                rec->ca = strdup("corp");
                snprintf(token, sizeof token, "t%u", i % 50);   /* shared by several requests */
                rec->token = strdup(i % 3 == 0 ? "" : token);
                rec->state = REQUEST_FAILED;
                rec->created = rec->updated = 1000 + i;
                assert_int_equal(request_add(f->m, rec, &reqs[i]), 0);
                strcpy(ids[i], rec->id);
        }
        assert_indexes(f);
        /* Removed in a scattered order, some through request_forget() (journal too: absent
         * there, which it accepts). */
        for (unsigned i = 0; i < N; i += 3) {
                unsigned k = (i * 7919) % N;
                if (gone[k])
                        continue;
                if (k % 2)
                        request_free(reqs[k]);
                else
                        assert_int_equal(request_forget(reqs[k], 0), 0);
                gone[k] = true;
        }
        assert_indexes(f);
        for (unsigned i = 0; i < N; i++)
                assert_ptr_equal(manager_find_request(f->m, ids[i]), gone[i] ? NULL : reqs[i]);
        assert_null(manager_find_request(f->m, "0000000000000000000000000000000"));
        assert_int_equal(manager_count_stored(f->m, 4999), 0);
        /* By token: the oldest kept one of that owner and token. */
        for (unsigned t = 0; t < 50; t++) {
                snprintf(token, sizeof token, "t%u", t);
                for (uid_t o = 5000; o < 5007; o++) {
                        Request *want = NULL;
                        for (unsigned i = 0; i < N && !want; i++)
                                if (!gone[i] && i % 3 != 0 && i % 50 == t && 5000 + i % 7 == o)
                                        want = reqs[i];
                        assert_ptr_equal(request_find_token(f->m, o, token), want);
                }
        }
        /* All of one owner gone: its counter and list go with it. */
        for (unsigned i = 0; i < N; i++)
                if (!gone[i] && 5000 + i % 7 == 5003) {
                        request_free(reqs[i]);
                        gone[i] = true;
                }
        assert_int_equal(manager_count_stored(f->m, 5003), 0);
        assert_null(manager_owned_requests(f->m, 5003));
        assert_indexes(f);
        free(ids);
        free(gone);
        free(reqs);
}

/* TakeKeySealed: sealed once to one receiver, the same copy again, nobody else; ConfirmKey
 * erases it; expiry erases it too. */
static void test_take_key_sealed(void **state) {
        Fixture *f = *state;
        CbDecision d = {};
        Request *r = enroll_token(f, "web.a.example.test", NULL, &d);
        unsigned char pk[crypto_box_PUBLICKEYBYTES], sk[crypto_box_SECRETKEYBYTES];
        unsigned char pk2[crypto_box_PUBLICKEYBYTES], sk2[crypto_box_SECRETKEYBYTES];
        uint8_t zero[32] = {}, *box = NULL, *box2 = NULL;
        size_t size = 0, size2 = 0;
        CbSecret *pem = NULL;

        crypto_box_keypair(pk, sk);
        crypto_box_keypair(pk2, sk2);
        assert_int_equal(request_take_key_sealed(r, pk, sizeof pk, &box, &size), -EBUSY);   /* not issued */
        assert_int_equal(request_confirm_key(r), -EBUSY);
        {
                /* Ended without a certificate: no key, nothing sealed, still not confirmable. */
                CbDecision dc = {};
                Request *rc = enroll_token(f, "gone.a.example.test", NULL, &dc);
                assert_int_equal(request_cancel(rc), 0);
                assert_false(rc->rec->key_available);
                assert_int_equal(request_confirm_key(rc), -EBUSY);
                cb_decision_done(&dc);
        }
        issue(r, now_usec() + 3600ULL * 1000000ULL);
        assert_int_equal(request_confirm_key(r), -EBUSY);                   /* nothing taken yet */
        assert_int_equal(request_take_key_sealed(r, pk, 31, &box, &size), -EINVAL);
        assert_int_equal(request_take_key_sealed(r, zero, sizeof zero, &box, &size), -EDOM);
        assert_true(r->rec->key_available);
        assert_int_equal(request_take_key_sealed(r, pk, sizeof pk, &box, &size), 0);
        assert_false(r->rec->key_available);
        assert_true(r->rec->key_sealed);
        char *plain = calloc(1, size - crypto_box_SEALBYTES + 1);
        assert_non_null(plain);
        assert_int_equal(crypto_box_seal_open((unsigned char *) plain, box, size, pk, sk), 0);
        assert_non_null(strstr(plain, "PRIVATE KEY"));
        free(plain);
        assert_int_equal(request_take_key_sealed(r, pk, sizeof pk, &box2, &size2), 1);
        assert_int_equal(size2, size);
        assert_memory_equal(box2, box, size);
        free(box2);
        box2 = NULL;
        assert_int_equal(request_take_key_sealed(r, pk2, sizeof pk2, &box2, &size2), -EPERM);
        assert_null(box2);
        assert_int_equal(request_take_key(r, &pem), -ENOKEY);
        StoreRequest *rec = stored(f, r->rec->id);
        assert_true(rec->key_sealed);
        assert_false(rec->key_available);
        store_request_free(rec);
        assert_int_equal(request_confirm_key(r), 0);
        assert_false(r->rec->key_sealed);
        assert_int_equal(request_confirm_key(r), 1);
        assert_int_equal(request_take_key_sealed(r, pk, sizeof pk, &box2, &size2), -ENOKEY);
        rec = stored(f, r->rec->id);
        assert_false(rec->key_sealed);
        store_request_free(rec);
        free(box);

        /* Sealed and never confirmed: erased when the certificate expires. */
        CbDecision d2 = {};
        Request *r2 = enroll_token(f, "api.a.example.test", NULL, &d2);
        uint64_t now = now_usec();
        issue(r2, now + 10ULL * 1000000ULL);
        assert_int_equal(request_take_key_sealed(r2, pk, sizeof pk, &box, &size), 0);
        free(box);
        assert_int_equal(request_expire_key(r2, now), 0);
        assert_true(r2->rec->key_sealed);
        assert_int_equal(request_expire_key(r2, now + 11ULL * 1000000ULL), 1);
        assert_false(r2->rec->key_sealed);
        assert_int_equal(request_take_key_sealed(r2, pk, sizeof pk, &box, &size), -ENOKEY);
        sodium_memzero(sk, sizeof sk);
        sodium_memzero(sk2, sizeof sk2);
        cb_decision_done(&d);
        cb_decision_done(&d2);
}

/* ---- the test-only knob CERTBROKER_TEST_RETRY_FIXED=SECONDS (the fleet simulation's control
 * run): set to 1..3600, every retry comes after exactly that long, failure after failure; any
 * other value (0, above 3600, not a number, empty) or none leaves the jittered exponential
 * backoff. The daemon reads it once per process: meson runs `test-request fixed=SECONDS` or
 * `test-request backoff` once per value, with the variable set. ---- */

static unsigned expect_fixed;   /* seconds; 0: the backoff */

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
        const struct CMUnitTest knob[] = {
                cmocka_unit_test_setup_teardown(test_retry_knob, setup, teardown),
        };
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_retry_delay),
                cmocka_unit_test(test_poll_delay),
                cmocka_unit_test(test_error_names),
                cmocka_unit_test_setup_teardown(test_enroll_durable_then_retry, setup, teardown),
                cmocka_unit_test_setup_teardown(test_deadline_and_terminal_errors, setup, teardown),
                cmocka_unit_test(test_local_errnos),
                cmocka_unit_test_setup_teardown(test_local_shortage_retries, setup, teardown),
                cmocka_unit_test_setup_teardown(test_key_queue_full, setup, teardown),
                cmocka_unit_test_setup_teardown(test_cancel_races, setup, teardown),
                cmocka_unit_test_setup_teardown(test_set_state, setup, teardown),
                cmocka_unit_test_setup_teardown(test_decide_again, setup, teardown),
                cmocka_unit_test_setup_teardown(test_take_key_and_expiry, setup, teardown),
                cmocka_unit_test_setup_teardown(test_token, setup, teardown),
                cmocka_unit_test_setup_teardown(test_take_key_sealed, setup, teardown),
                cmocka_unit_test_setup_teardown(test_successors_bounded, setup, teardown),
                cmocka_unit_test_setup_teardown(test_request_index, setup, teardown),
        };

        if (argc > 2 || (argc == 2 && strcmp(argv[1], "backoff") != 0 &&
                         sscanf(argv[1], "fixed=%u", &expect_fixed) != 1)) {
                fprintf(stderr, "usage: %s [fixed=SECONDS|backoff]\n", argv[0]);
                return 2;
        }
        if (secret_init() < 0)
                return 1;
        if (argc == 2)
                return cmocka_run_group_tests(knob, NULL, NULL);
        return cmocka_run_group_tests(tests, NULL, NULL);
}
