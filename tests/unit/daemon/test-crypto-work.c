/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* crypto-work: jobs run on the workers, done() and free_fn() on the loop, once each, on the
 * thread that owns the loop; a cancelled job never gets done() but is always freed (queued,
 * running or finished); freeing the work with jobs queued frees them without done(). */
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
        bool block;                     /* wait for c->release */
        int value, result;
        bool done_on_loop, freed_on_loop;
} TJob;

static void run(void *userdata) {
        TJob *j = userdata;

        atomic_fetch_add(&j->c->started, 1);
        while (j->block && !atomic_load(&j->c->release))
                usleep(1000);
        j->result = j->value * 2;
        atomic_fetch_add(&j->c->ran, 1);
}

static void done(void *userdata) {
        TJob *j = userdata;

        assert_true(pthread_equal(pthread_self(), j->c->loop_thread));
        assert_int_equal(j->result, j->value * 2);
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
        c.exit_after = (int) CRYPTO_WORK_WORKERS_MAX - 1 + 1;   /* the other blocked ones and the last */
        atomic_store(&c.release, true);
        run_loop(e);
        assert_int_equal(atomic_load(&c.done), CRYPTO_WORK_WORKERS_MAX);
        /* Let the cancelled running one come back too. */
        while (crypto_work_pending(w) > 0) {
                assert_true(sd_event_run(e, 1000000) >= 0);
        }
        assert_int_equal(atomic_load(&c.ran), CRYPTO_WORK_WORKERS_MAX + 1);
        assert_int_equal(atomic_load(&c.freed), CRYPTO_WORK_WORKERS_MAX + 2);
        assert_true(n_workers >= 1);
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

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_jobs_run),
                cmocka_unit_test(test_cancel),
                cmocka_unit_test(test_free_with_jobs),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
