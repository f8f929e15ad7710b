/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* KeyPool: spec parsing, fill to target, take, refill, async jobs and cancellation,
 * driven both by hand (poll + dispatch) and from sd-event. */

#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <sys/resource.h>
#include <unistd.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "keys-pool.h"
#include "thread-fault.h"

static int setup(void **state) {
        return secret_init() < 0 ? -1 : 0;
}

static uint64_t now_ms(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000 + (uint64_t) ts.tv_nsec / 1000000;
}

/* Wait on the pool's eventfd and dispatch until cond(p) holds; fail after 60 s. */
static void run_until(KeyPool *p, bool (*cond)(KeyPool *p, void *ud), void *ud) {
        uint64_t deadline = now_ms() + 60000;

        while (!cond(p, ud)) {
                struct pollfd pfd = { .fd = key_pool_get_fd(p), .events = POLLIN };
                uint64_t n = now_ms();

                assert_true(n < deadline);
                assert_true(poll(&pfd, 1, (int) (deadline - n)) >= 0);
                assert_true(key_pool_dispatch(p) >= 0);
        }
}

static bool is_idle(KeyPool *p, void *ud) {
        return key_pool_is_idle(p);
}

static void test_parse_spec(void **state) {
        unsigned t[_KEY_TYPE_MAX];
        char *bad = NULL;

        assert_int_equal(key_pool_parse_spec("rsa:2048=4 ec:p256=8", t, &bad), 0);
        assert_int_equal(t[KEY_TYPE_RSA_2048], 4);
        assert_int_equal(t[KEY_TYPE_EC_P256], 8);
        assert_int_equal(t[KEY_TYPE_RSA_3072], 0);
        assert_int_equal(t[KEY_TYPE_RSA_4096], 0);
        assert_int_equal(t[KEY_TYPE_EC_P384], 0);

        assert_int_equal(key_pool_parse_spec("", t, &bad), 0);
        assert_int_equal(t[KEY_TYPE_RSA_2048], 0);
        assert_int_equal(key_pool_parse_spec(NULL, t, &bad), 0);
        assert_int_equal(key_pool_parse_spec("  ec:p384=1\trsa:4096=0  ", t, &bad), 0);
        assert_int_equal(t[KEY_TYPE_EC_P384], 1);

        t[KEY_TYPE_EC_P384] = 77;
        assert_int_equal(key_pool_parse_spec("rsa:2048=4 rsa:1024=2", t, &bad), -EINVAL);
        assert_string_equal(bad, "rsa:1024=2");
        free(bad);
        bad = NULL;
        assert_int_equal(t[KEY_TYPE_EC_P384], 77); /* untouched on failure */

        assert_int_equal(key_pool_parse_spec("rsa:2048=65", t, &bad), -ERANGE);
        assert_string_equal(bad, "rsa:2048=65");
        free(bad);
        bad = NULL;

        const char *const invalid[] = { "rsa:2048", "rsa:2048=", "rsa:2048=-1", "rsa:2048=1x",
                                        "=4", "rsa:2048=1 rsa:2048=2", "rsa:2048=99999999999999999999",
                                        "ec:p256=+3" };
        for (size_t i = 0; i < sizeof(invalid) / sizeof(invalid[0]); i++) {
                int r = key_pool_parse_spec(invalid[i], t, &bad);
                assert_true(r == -EINVAL || r == -ERANGE);
                assert_non_null(bad);
                free(bad);
                bad = NULL;
        }

        /* Which word is named, and with which code: the offending one, wherever it stands. */
        static const struct {
                const char *spec, *bad;
                int r;
        } named[] = {
                { "rsa:2048=1 rsa:2048=2",                  "rsa:2048=2",   -EINVAL },
                { "ec:p256=1  rsa:3072=1x ec:p384=1",       "rsa:3072=1x",  -EINVAL },
                { "rsa:2048=99999999999999999999",          "rsa:2048=99999999999999999999", -EINVAL },
                { "ec:p384=2\trsa:4096=65",                 "rsa:4096=65",  -ERANGE },
                { "rsa:2048=000000000000000000000000000000000000000000000000000000000000000001",
                  "rsa:2048=000000000000000000000000000000000000000000000000000000000000000001", -EINVAL },
        };
        for (size_t i = 0; i < sizeof(named) / sizeof(named[0]); i++) {
                assert_int_equal(key_pool_parse_spec(named[i].spec, t, &bad), named[i].r);
                assert_string_equal(bad, named[i].bad);
                free(bad);
                bad = NULL;
        }
}

static void test_fill_take_refill(void **state) {
        unsigned t[_KEY_TYPE_MAX] = {};
        KeyPool *p = NULL;
        EVP_PKEY *k1, *k2;
        KeyType got;

        assert_int_equal(key_pool_new(&p), 0);
        assert_true(key_pool_is_idle(p));
        assert_null(key_pool_take(p, KEY_TYPE_EC_P256));

        t[KEY_TYPE_EC_P256] = 3;
        t[KEY_TYPE_RSA_2048] = 2;
        assert_int_equal(key_pool_set_targets(p, t), 0);
        assert_int_equal(key_pool_target(p, KEY_TYPE_EC_P256), 3);
        run_until(p, is_idle, NULL);
        assert_int_equal(key_pool_count(p, KEY_TYPE_EC_P256), 3);
        assert_int_equal(key_pool_count(p, KEY_TYPE_RSA_2048), 2);
        assert_int_equal(key_pool_count(p, KEY_TYPE_RSA_4096), 0);

        k1 = key_pool_take(p, KEY_TYPE_EC_P256);
        k2 = key_pool_take(p, KEY_TYPE_EC_P256);
        assert_non_null(k1);
        assert_non_null(k2);
        assert_false(key_public_equal(k1, k2));
        assert_int_equal(key_get_type(k1, &got), 0);
        assert_int_equal(got, KEY_TYPE_EC_P256);
        assert_int_equal(key_pool_count(p, KEY_TYPE_EC_P256), 1);
        assert_null(key_pool_take(p, KEY_TYPE_RSA_4096));

        /* Refilled after taking. */
        run_until(p, is_idle, NULL);
        assert_int_equal(key_pool_count(p, KEY_TYPE_EC_P256), 3);

        /* Lowering a target frees keys at once; zero empties. */
        t[KEY_TYPE_EC_P256] = 1;
        t[KEY_TYPE_RSA_2048] = 0;
        assert_int_equal(key_pool_set_targets(p, t), 0);
        assert_int_equal(key_pool_count(p, KEY_TYPE_EC_P256), 1);
        assert_int_equal(key_pool_count(p, KEY_TYPE_RSA_2048), 0);

        t[KEY_TYPE_EC_P256] = KEY_POOL_TARGET_MAX + 1;
        assert_int_equal(key_pool_set_targets(p, t), -ERANGE);

        EVP_PKEY_free(k1);
        EVP_PKEY_free(k2);
        key_pool_free(p);
}

typedef struct Results {
        unsigned calls;
        uint64_t last_job;
        uint64_t jobs_seen[8];          /* every job delivered, in delivery order */
        int last_error;
        KeyType want;
        bool type_ok;
        unsigned rsa2048_in_pool;       /* pool count when the handler ran */
} Results;

static void on_key(KeyPool *p, uint64_t job, int error, EVP_PKEY *key, void *userdata) {
        Results *res = userdata;
        KeyType t;

        if (res->calls < 8)
                res->jobs_seen[res->calls] = job;
        res->calls++;
        res->last_job = job;
        res->last_error = error;
        res->type_ok = key && key_get_type(key, &t) >= 0 && t == res->want;
        res->rsa2048_in_pool = key_pool_count(p, KEY_TYPE_RSA_2048);
        EVP_PKEY_free(key);
}

static Results *results_ptr;

static bool calls_at_least(KeyPool *p, void *ud) {
        const unsigned *want = ud;
        return results_ptr->calls >= *want;
}

static void test_async_and_cancel(void **state) {
        Results res = { .want = KEY_TYPE_EC_P384 };
        uint64_t j1 = 0, j2 = 0, j3 = 0;
        KeyPool *p = NULL;
        unsigned want;

        results_ptr = &res;
        assert_int_equal(key_pool_new(&p), 0);
        assert_int_equal(key_pool_generate_async(p, _KEY_TYPE_MAX, on_key, &res, &j1), -EINVAL);

        assert_int_equal(key_pool_generate_async(p, KEY_TYPE_EC_P384, on_key, &res, &j1), 0);
        assert_int_equal(key_pool_generate_async(p, KEY_TYPE_EC_P384, on_key, &res, &j2), 0);
        assert_int_equal(key_pool_generate_async(p, KEY_TYPE_EC_P384, on_key, &res, &j3), 0);
        assert_true(j1 > 0 && j2 > j1 && j3 > j2);

        /* Cancel the middle one wherever it is (queued, running or done): never delivered. */
        assert_int_equal(key_pool_cancel(p, j2), 0);
        assert_int_equal(key_pool_cancel(p, j2), -ENOENT);
        assert_int_equal(key_pool_cancel(p, 999999), -ENOENT);

        want = 2;
        run_until(p, calls_at_least, &want);
        run_until(p, is_idle, NULL);
        assert_int_equal(res.calls, 2);
        /* Several workers may finish them in either order; j2 is never delivered. */
        assert_true((res.jobs_seen[0] == j1 && res.jobs_seen[1] == j3) ||
                    (res.jobs_seen[0] == j3 && res.jobs_seen[1] == j1));
        assert_int_equal(res.last_error, 0);
        assert_true(res.type_ok);
        assert_int_equal(key_pool_cancel(p, j3), -ENOENT);  /* already delivered */

        /* Freeing with work still queued: no handler runs, nothing leaks. */
        res.calls = 0;
        assert_int_equal(key_pool_generate_async(p, KEY_TYPE_RSA_3072, on_key, &res, NULL), 0);
        assert_int_equal(key_pool_generate_async(p, KEY_TYPE_RSA_3072, on_key, &res, NULL), 0);
        key_pool_free(p);
        assert_int_equal(res.calls, 0);
}

/* Jobs never wait for refill work: with one job worker and one refill worker busy with a
 * slow refill (two RSA-3072 keys, a second or more of CPU), jobs queued after it are all
 * delivered before the refill is done; then the refill completes. */
static void test_jobs_beside_refill(void **state) {
        Results res = { .want = KEY_TYPE_EC_P256 };
        unsigned t[_KEY_TYPE_MAX] = {}, want = 3;
        KeyPool *p = NULL;

        results_ptr = &res;
        assert_int_equal(key_pool_new_with_workers(1, &p), 0);
        t[KEY_TYPE_RSA_3072] = 2;
        assert_int_equal(key_pool_set_targets(p, t), 0);
        for (int i = 0; i < 3; i++)
                assert_int_equal(key_pool_generate_async(p, KEY_TYPE_EC_P256, on_key, &res, NULL), 0);
        run_until(p, calls_at_least, &want);
        assert_true(res.type_ok);
        assert_true(key_pool_count(p, KEY_TYPE_RSA_3072) < 2);
        run_until(p, is_idle, NULL);
        assert_int_equal(key_pool_count(p, KEY_TYPE_RSA_3072), 2);
        key_pool_free(p);
}

/* The pool's threads by name: their tids. */
static size_t pool_threads(const char *name, pid_t *tids, size_t max) {
        DIR *d = opendir("/proc/self/task");
        struct dirent *de;
        size_t n = 0;

        assert_non_null(d);
        while ((de = readdir(d))) {
                char path[sizeof "/proc/self/task//comm" + sizeof de->d_name], comm[32] = "";
                FILE *f;

                if (de->d_name[0] == '.')
                        continue;
                snprintf(path, sizeof path, "/proc/self/task/%s/comm", de->d_name);
                f = fopen(path, "re");
                if (!f)
                        continue;       /* the thread ended meanwhile */
                if (fgets(comm, sizeof comm, f))
                        comm[strcspn(comm, "\n")] = 0;
                fclose(f);
                if (strcmp(comm, name) == 0 && n < max)
                        tids[n++] = (pid_t) atoi(de->d_name);
        }
        closedir(d);
        return n;
}

/* Refill workers run at SCHED_IDLE (as read back from the kernel), job workers at SCHED_OTHER
 * below the caller's priority; key_pool_refill_priority() says what they got. */
static void test_worker_priorities(void **state) {
        pid_t tids[2 * KEY_POOL_WORKERS_MAX];
        KeyPoolRefillPriority prio;
        int error = 1, nice0;
        KeyPool *p = NULL;
        size_t n;

        errno = 0;
        nice0 = getpriority(PRIO_PROCESS, 0);
        assert_int_equal(errno, 0);

        assert_int_equal(key_pool_new_with_workers(2, &p), 0);
        prio = key_pool_refill_priority(p, &error);
        assert_non_null(key_pool_refill_priority_to_string(prio));
        if (prio == KEY_POOL_REFILL_IDLE)
                assert_int_equal(error, 0);
        else {
                /* Only a seccomp filter (systemd's SystemCallFilter=~@resources) or an LSM
                 * refuses lowering one's own priority; the fallback must match what the
                 * kernel says. (Run under such a filter to check that path.) */
                print_message("refill workers at %s: %s\n", key_pool_refill_priority_to_string(prio),
                              strerror(-error));
                assert_int_equal(error, -EPERM);
        }

        n = pool_threads("cb-keyfill", tids, 2 * KEY_POOL_WORKERS_MAX);
        assert_int_equal(n, 2);
        for (size_t i = 0; i < n; i++) {
                errno = 0;
                int nice = getpriority(PRIO_PROCESS, (id_t) tids[i]);
                assert_int_equal(errno, 0);
                switch (prio) {
                case KEY_POOL_REFILL_IDLE:
                        assert_int_equal(sched_getscheduler(tids[i]), SCHED_IDLE);
                        break;
                case KEY_POOL_REFILL_NICE:
                        assert_int_equal(sched_getscheduler(tids[i]), SCHED_OTHER);
                        assert_int_equal(nice, KEY_POOL_REFILL_FALLBACK_NICE);
                        break;
                case KEY_POOL_REFILL_NORMAL:
                        assert_int_equal(sched_getscheduler(tids[i]), SCHED_OTHER);
                        assert_int_equal(nice, nice0);
                        break;
                }
        }

        n = pool_threads("cb-keygen", tids, 2 * KEY_POOL_WORKERS_MAX);
        assert_int_equal(n, 2);
        for (size_t i = 0; i < n; i++) {
                assert_int_equal(sched_getscheduler(tids[i]), SCHED_OTHER);
                errno = 0;
                int nice = getpriority(PRIO_PROCESS, (id_t) tids[i]);
                assert_int_equal(errno, 0);
                /* nice 5, unless the test itself runs lower than that already, or
                 * setpriority() is refused too */
                if (prio != KEY_POOL_REFILL_NORMAL)
                        assert_int_equal(nice, nice0 > KEY_POOL_WORKER_NICE ? nice0 : KEY_POOL_WORKER_NICE);
                else
                        assert_int_equal(nice, nice0);
        }

        /* The test's own thread is untouched. */
        assert_int_equal(sched_getscheduler(0), SCHED_OTHER);
        key_pool_free(p);
        assert_int_equal(pool_threads("cb-keyfill", tids, 2 * KEY_POOL_WORKERS_MAX), 0);
}

/* Fairness between owners: owner 1 queues eight jobs, then owner 2 one; owner 2's key comes
 * within the first three (FIFO would make it the ninth), and each owner's keys come in the
 * order asked for. */
typedef struct Order {
        uint32_t owner[16];
        uint64_t job[16];
        size_t n;
} Order;

typedef struct OrderTag {
        Order *order;
        uint32_t owner;
} OrderTag;

static void on_key_order(KeyPool *p, uint64_t job, int error, EVP_PKEY *key, void *userdata) {
        OrderTag *t = userdata;

        assert_int_equal(error, 0);
        EVP_PKEY_free(key);
        assert_true(t->order->n < 16);
        t->order->owner[t->order->n] = t->owner;
        t->order->job[t->order->n++] = job;
}

static bool order_done(KeyPool *p, void *ud) {
        return ((Order *) ud)->n == 9;
}

static void test_fair_between_owners(void **state) {
        Order order = {};
        OrderTag a = { &order, 1 }, b = { &order, 2 };
        KeyPool *p = NULL;
        size_t pos = SIZE_MAX;
        uint64_t last = 0;

        assert_int_equal(key_pool_new_with_workers(1, &p), 0);
        for (int i = 0; i < 8; i++)
                assert_int_equal(key_pool_generate_async_for(p, KEY_TYPE_RSA_2048, 1, on_key_order, &a, NULL), 0);
        assert_int_equal(key_pool_generate_async_for(p, KEY_TYPE_RSA_2048, 2, on_key_order, &b, NULL), 0);
        run_until(p, order_done, &order);
        for (size_t i = 0; i < order.n; i++) {
                if (order.owner[i] == 2)
                        pos = i;
                else {
                        assert_true(order.job[i] > last);
                        last = order.job[i];
                }
        }
        assert_true(pos <= 2);
        key_pool_free(p);

        assert_int_equal(key_pool_new_with_workers(0, &p), -EINVAL);
        assert_int_equal(key_pool_new_with_workers(KEY_POOL_WORKERS_MAX + 1, &p), -EINVAL);
        assert_true(key_pool_default_workers() >= 1);
}

/* Turns are weighed by what keys cost: owner 1 queues two RSA keys, owner 2 then ten EC keys
 * (cheap) and an RSA key. Owner 2's RSA key comes before owner 1's second, not after it as
 * when every key counted one turn (ten EC keys would have put owner 2 ten turns behind). */
static bool order_done_13(KeyPool *p, void *ud) {
        return ((Order *) ud)->n == 13;
}

static void test_fair_by_cost(void **state) {
        Order order = {};
        OrderTag a = { &order, 1 }, b_ec = { &order, 2 }, b_rsa = { &order, 3 };
        KeyPool *p = NULL;
        size_t b_rsa_at = SIZE_MAX, a_second_at = SIZE_MAX, a_seen = 0;

        assert_int_equal(key_pool_new_with_workers(1, &p), 0);
        for (int i = 0; i < 2; i++)
                assert_int_equal(key_pool_generate_async_for(p, KEY_TYPE_RSA_2048, 1, on_key_order, &a, NULL), 0);
        for (int i = 0; i < 10; i++)
                assert_int_equal(key_pool_generate_async_for(p, KEY_TYPE_EC_P256, 2, on_key_order, &b_ec, NULL), 0);
        assert_int_equal(key_pool_generate_async_for(p, KEY_TYPE_RSA_2048, 2, on_key_order, &b_rsa, NULL), 0);
        run_until(p, order_done_13, &order);
        for (size_t i = 0; i < order.n; i++) {
                if (order.owner[i] == 3)
                        b_rsa_at = i;
                if (order.owner[i] == 1 && ++a_seen == 2)
                        a_second_at = i;
        }
        assert_true(b_rsa_at != SIZE_MAX && a_second_at != SIZE_MAX);
        if (b_rsa_at > a_second_at)
                fail_msg("owner 2's RSA key came %zu-th, after owner 1's second (%zu-th)", b_rsa_at + 1,
                         a_second_at + 1);
        key_pool_free(p);
}

static void on_key_unused(KeyPool *p, uint64_t job, int error, EVP_PKEY *key, void *userdata) {
        EVP_PKEY_free(key);
}

/* One owner cannot take the queue: past its share it is told -EBUSY (a shortage, retried), and
 * another owner still has room; the shares shrink as owners join, never below the minimum. */
static void test_owner_share(void **state) {
        KeyPool *p = NULL;
        uint64_t jobs[1200];
        unsigned n = 0, first = 0, second = 0;

        assert_int_equal(key_pool_owner_share(0), KEY_POOL_SHARE_BASE / 2);
        assert_int_equal(key_pool_owner_share(1), KEY_POOL_SHARE_BASE / 3);
        assert_int_equal(key_pool_owner_share(1000), KEY_POOL_SHARE_MIN);
        for (unsigned k = 0; k < 100; k++) {
                assert_true(key_pool_owner_share(k) >= KEY_POOL_SHARE_MIN);
                assert_true(key_pool_owner_share(k + 1) <= key_pool_owner_share(k));
                /* k owners at their share leave at least a newcomer's share free. */
                if (key_pool_owner_share(k) > KEY_POOL_SHARE_MIN)
                        assert_true((k + 1) * key_pool_owner_share(k) + key_pool_owner_share(k + 1) <= KEY_POOL_SHARE_BASE);
        }

        /* One worker busy with slow keys: the queue only grows while this runs. */
        assert_int_equal(key_pool_new_with_workers(1, &p), 0);
        for (unsigned i = 0; i < 600; i++) {
                int r = key_pool_generate_async_for(p, KEY_TYPE_RSA_4096, 1, on_key_unused, NULL, &jobs[n]);
                if (r == -EBUSY)
                        break;
                assert_int_equal(r, 0);
                n++;
                first++;
        }
        /* Its share, counting the job the worker has taken off the queue. */
        assert_int_equal(first, key_pool_owner_share(0));
        assert_int_equal(key_pool_generate_async_for(p, KEY_TYPE_RSA_4096, 1, on_key_unused, NULL, NULL), -EBUSY);
        /* Another owner is admitted, up to its own share beside the first. */
        for (unsigned i = 0; i < 600; i++) {
                int r = key_pool_generate_async_for(p, KEY_TYPE_RSA_4096, 2, on_key_unused, NULL, &jobs[n]);
                if (r == -EBUSY)
                        break;
                assert_int_equal(r, 0);
                n++;
                second++;
        }
        assert_int_equal(second, key_pool_owner_share(1));
        for (unsigned i = 0; i < n; i++)
                (void) key_pool_cancel(p, jobs[i]);
        key_pool_free(p);
}

typedef struct EventCtx {
        KeyPool *pool;
        sd_event *event;
} EventCtx;

static void on_key_exit(KeyPool *p, uint64_t job, int error, EVP_PKEY *key, void *userdata) {
        EventCtx *c = userdata;

        assert_int_equal(error, 0);
        assert_non_null(key);
        EVP_PKEY_free(key);
        assert_int_equal(sd_event_exit(c->event, 0), 0);
}

static void test_sd_event(void **state) {
        EventCtx c = {};

        assert_int_equal(sd_event_new(&c.event), 0);
        assert_int_equal(key_pool_new(&c.pool), 0);
        assert_int_equal(key_pool_attach_event(c.pool, c.event, 0), 0);
        assert_int_equal(key_pool_attach_event(c.pool, c.event, 0), -EBUSY);
        assert_int_equal(key_pool_generate_async(c.pool, KEY_TYPE_EC_P256, on_key_exit, &c, NULL), 0);
        assert_int_equal(sd_event_loop(c.event), 0);
        key_pool_free(c.pool);
        sd_event_unref(c.event);
}

/* A thread that cannot be started: key_pool_new_with_workers() fails with its code, hands out
 * nothing, and stops and frees whatever it had started (checked for leaks under ASan). */
static void test_new_thread_fails(void **state) {
        KeyPool *p = NULL;

        /* Two workers: two job threads, then two refill threads. */
        for (int started = 0; started < 4; started++) {
                thread_fault_budget = started;
                assert_int_equal(key_pool_new_with_workers(2, &p), -EAGAIN);
                thread_fault_budget = -1;
                assert_null(p);
        }

        thread_fault_budget = 4;
        assert_int_equal(key_pool_new_with_workers(2, &p), 0);
        thread_fault_budget = -1;
        assert_non_null(p);
        assert_true(key_pool_is_idle(p));
        p = key_pool_free(p);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_parse_spec),
                cmocka_unit_test(test_new_thread_fails),
                cmocka_unit_test(test_fill_take_refill),
                cmocka_unit_test(test_async_and_cancel),
                cmocka_unit_test(test_jobs_beside_refill),
                cmocka_unit_test(test_worker_priorities),
                cmocka_unit_test(test_fair_between_owners),
                cmocka_unit_test(test_fair_by_cost),
                cmocka_unit_test(test_owner_share),
                cmocka_unit_test(test_sd_event),
        };

        return cmocka_run_group_tests(tests, setup, NULL);
}
