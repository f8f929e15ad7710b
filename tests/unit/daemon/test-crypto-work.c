/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* crypto-work: jobs run on the workers, done() and free_fn() on the loop, once each, on the
 * thread that owns the loop; a cancelled job never gets done() but is always freed (queued,
 * running or finished); freeing the work with jobs queued frees them without done(). */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>
#include <cmocka.h>

#include "crypto-work.h"
#include "thread-fault.h"

typedef struct Counts {
        atomic_int ran, done, freed;
        int exit_after;                 /* leave the loop when this many done() ran */
        sd_event *event;
        pthread_t loop_thread;
        atomic_bool release;            /* blocking jobs wait for this */
        atomic_int started;
} Counts;

typedef struct TJob {
        Counts *c;
        bool block;                     /* wait for c->release (or for *own_release) */
        atomic_bool *own_release;
        int *order, *n_order;           /* done() appends value here */
        int value, result;
        bool done_on_loop, freed_on_loop;
} TJob;

static void run(void *userdata) {
        TJob *j = userdata;

        atomic_fetch_add(&j->c->started, 1);
        while (j->block && !atomic_load(&j->c->release) && !(j->own_release && atomic_load(j->own_release)))
                usleep(1000);
        j->result = j->value * 2;
        atomic_fetch_add(&j->c->ran, 1);
}

static void done(void *userdata) {
        TJob *j = userdata;

        assert_true(pthread_equal(pthread_self(), j->c->loop_thread));
        assert_int_equal(j->result, j->value * 2);
        if (j->order)
                j->order[(*j->n_order)++] = j->value;
        atomic_fetch_add(&j->c->done, 1);
        if (j->c->event && atomic_load(&j->c->done) == j->c->exit_after)
                sd_event_exit(j->c->event, 0);
}

static void free_job(void *userdata) {
        TJob *j = userdata;

        assert_true(pthread_equal(pthread_self(), j->c->loop_thread));
        atomic_fetch_add(&j->c->freed, 1);
        free(j);
}

static TJob *job(Counts *c, int value, bool block) {
        TJob *j = calloc(1, sizeof(*j));

        assert_non_null(j);
        *j = (TJob) { .c = c, .value = value, .block = block };
        return j;
}

static int on_timeout(sd_event_source *s, uint64_t usec, void *userdata) {
        fail_msg("the loop timed out waiting for jobs");
        return 0;
}

static void run_loop(sd_event *e) {
        sd_event_source *t = NULL;

        assert_true(sd_event_add_time_relative(e, &t, CLOCK_MONOTONIC, 30 * 1000000ULL, 0, on_timeout, NULL) >= 0);
        assert_true(sd_event_loop(e) >= 0);
        sd_event_source_disable_unref(t);
}

/* Runs the loop (without sd_event_exit()) until *n reaches want or pending work drains. */
static void run_until(sd_event *e, CryptoWork *w, atomic_int *n, int want) {
        for (int i = 0; i < 3000; i++) {
                if (n ? atomic_load(n) >= want : crypto_work_pending(w) == 0)
                        return;
                assert_true(sd_event_run(e, 10000) >= 0);
        }
        fail_msg("the loop timed out waiting for jobs");
}

static void test_jobs_run(void **state) {
        sd_event *e = NULL;
        CryptoWork *w = NULL;
        Counts c = { .exit_after = 50, .loop_thread = pthread_self() };

        assert_true(sd_event_new(&e) >= 0);
        c.event = e;
        assert_int_equal(crypto_work_new(e, &w), 0);
        for (int i = 0; i < 50; i++)
                assert_int_equal(crypto_work_submit(w, run, done, free_job, job(&c, i, false), NULL), 0);
        assert_int_equal(crypto_work_pending(w), 50);
        run_loop(e);
        assert_int_equal(atomic_load(&c.ran), 50);
        assert_int_equal(atomic_load(&c.done), 50);
        assert_int_equal(atomic_load(&c.freed), 50);
        assert_int_equal(crypto_work_pending(w), 0);
        crypto_work_free(w);
        sd_event_unref(e);
}

static void test_cancel(void **state) {
        sd_event *e = NULL;
        CryptoWork *w = NULL;
        Counts c = { .loop_thread = pthread_self() };
        CryptoJob *blocked[CRYPTO_WORK_WORKERS_MAX], *queued = NULL, *last = NULL;
        unsigned n_workers;

        assert_true(sd_event_new(&e) >= 0);
        c.event = e;
        assert_int_equal(crypto_work_new(e, &w), 0);
        /* Occupy every worker (at most CRYPTO_WORK_WORKERS_MAX), then queue one behind them. */
        for (n_workers = 0; n_workers < CRYPTO_WORK_WORKERS_MAX; n_workers++)
                assert_int_equal(crypto_work_submit(w, run, done, free_job, job(&c, 1, true), &blocked[n_workers]), 0);
        while ((unsigned) atomic_load(&c.started) < 1)
                usleep(1000);
        usleep(50000);
        n_workers = (unsigned) atomic_load(&c.started);         /* as many as there are workers */
        assert_int_equal(crypto_work_submit(w, run, done, free_job, job(&c, 2, false), &queued), 0);
        assert_int_equal(crypto_work_submit(w, run, done, free_job, job(&c, 3, false), &last), 0);

        /* Queued: freed at once, never run. */
        crypto_job_cancel(queued);
        assert_int_equal(atomic_load(&c.freed), 1);
        /* Running: freed once the worker lets go, without done(). */
        crypto_job_cancel(blocked[0]);
        assert_int_equal(atomic_load(&c.freed), 1);
        c.event = NULL;
        atomic_store(&c.release, true);
        /* The other blocked ones and the last one; the cancelled running one comes back too. */
        run_until(e, w, NULL, 0);
        assert_int_equal(atomic_load(&c.done), CRYPTO_WORK_WORKERS_MAX);
        assert_int_equal(atomic_load(&c.ran), CRYPTO_WORK_WORKERS_MAX + 1);
        assert_int_equal(atomic_load(&c.freed), CRYPTO_WORK_WORKERS_MAX + 2);
        assert_true(n_workers >= 1);
        crypto_work_free(w);
        sd_event_unref(e);
}

static void test_background_last(void **state) {
        sd_event *e = NULL;
        CryptoWork *w = NULL;
        Counts c = { .loop_thread = pthread_self() };
        atomic_bool own[CRYPTO_WORK_WORKERS_MAX] = {};
        int order[8], n_order = 0;
        unsigned n;

        assert_true(sd_event_new(&e) >= 0);
        c.event = e;
        assert_int_equal(crypto_work_new(e, &w), 0);
        n = crypto_work_workers(w);
        assert_true(n >= 1 && n <= CRYPTO_WORK_WORKERS_MAX);
        /* Every worker busy, then a background job and a normal one queued behind them. */
        for (unsigned i = 0; i < n; i++) {
                TJob *b = job(&c, 100 + (int) i, true);
                b->own_release = &own[i];
                assert_int_equal(crypto_work_submit(w, run, done, free_job, b, NULL), 0);
        }
        while ((unsigned) atomic_load(&c.started) < n)
                usleep(1000);
        TJob *bg = job(&c, 1, false), *fg = job(&c, 2, false);
        bg->order = fg->order = order;
        bg->n_order = fg->n_order = &n_order;
        assert_int_equal(crypto_work_submit_background(w, run, done, free_job, bg, NULL), 0);
        assert_int_equal(crypto_work_submit(w, run, done, free_job, fg, NULL), 0);
        /* One worker free: it takes the normal job first although it came later. */
        c.event = NULL;
        atomic_store(&own[0], true);
        run_until(e, w, &c.done, 3);
        assert_int_equal(n_order, 2);
        assert_int_equal(order[0], 2);
        assert_int_equal(order[1], 1);
        atomic_store(&c.release, true);
        run_until(e, w, NULL, 0);
        assert_int_equal(atomic_load(&c.freed), (int) n + 2);
        crypto_work_free(w);
        sd_event_unref(e);
}

static void test_free_with_jobs(void **state) {
        sd_event *e = NULL;
        CryptoWork *w = NULL;
        Counts c = { .loop_thread = pthread_self(), .release = true };

        assert_true(sd_event_new(&e) >= 0);
        assert_int_equal(crypto_work_new(e, &w), 0);
        for (int i = 0; i < 20; i++)
                assert_int_equal(crypto_work_submit(w, run, done, free_job, job(&c, i, false), NULL), 0);
        crypto_work_free(w);            /* no done(): every job freed */
        assert_int_equal(atomic_load(&c.done), 0);
        assert_int_equal(atomic_load(&c.freed), 20);
        sd_event_unref(e);
}

/* A worker that cannot be started: crypto_work_new() fails with its code, hands out nothing,
 * and stops and frees whatever it had started (checked for leaks under ASan). */
static void test_new_thread_fails(void **state) {
        sd_event *e = NULL;
        CryptoWork *w = NULL;
        unsigned n;

        assert_true(sd_event_new(&e) >= 0);
        assert_int_equal(crypto_work_new(e, &w), 0);
        n = crypto_work_workers(w);
        w = crypto_work_free(w);
        assert_true(n >= 1);

        for (unsigned started = 0; started < n; started++) {
                thread_fault_budget = (int) started;
                assert_int_equal(crypto_work_new(e, &w), -EAGAIN);
                thread_fault_budget = -1;
                assert_null(w);
        }
        sd_event_unref(e);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_jobs_run),
                cmocka_unit_test(test_cancel),
                cmocka_unit_test(test_background_last),
                cmocka_unit_test(test_free_with_jobs),
                cmocka_unit_test(test_new_thread_fails),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
