/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* nss-cache: NSS look-ups off the event loop. A look-up the cache does not have is asked of a
 * worker and answered -EINPROGRESS; the loop goes on (a timer fires while NSS is stuck) and the
 * waiter runs once the answer is there; answers are reused for their time, errors only by
 * those who waited for them; a look-up stuck past its time-out is -ETIMEDOUT while the others
 * are answered by the second worker. Through caller.c: the names of a caller resolve without
 * blocking, and an NSS failure stays an error, never "no name". */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "caller.h"
#include "nss-cache.h"

/* The fake NSS: uid 1000 "alice" (group 100), gid 100 "staff", gid 666 fails with ECONNREFUSED,
 * uids 4242 and 4243 block until released. Counts the look-ups made. */
static pthread_mutex_t fake_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t fake_cond = PTHREAD_COND_INITIALIZER;
static bool fake_released;
static unsigned fake_calls;

static int fake_lookup(NssKind kind, uint32_t id, NssAnswer *ret) {
        pthread_mutex_lock(&fake_lock);
        fake_calls++;
        if (kind == NSS_USER && (id == 4242 || id == 4243))
                while (!fake_released)
                        pthread_cond_wait(&fake_cond, &fake_lock);
        pthread_mutex_unlock(&fake_lock);

        *ret = (NssAnswer) {};
        if (kind == NSS_GROUP && id == 666)
                return -ECONNREFUSED;
        if (kind == NSS_USER && id == 1000) {
                ret->result = 1;
                ret->name = strdup("alice");
                ret->gid = 100;
                return ret->name ? 0 : -ENOMEM;
        }
        if (kind == NSS_GROUP && id == 100) {
                ret->result = 1;
                ret->name = strdup("staff");
                return ret->name ? 0 : -ENOMEM;
        }
        ret->result = 0;        /* no such entry */
        return 0;
}

static void fake_release(void) {
        pthread_mutex_lock(&fake_lock);
        fake_released = true;
        pthread_cond_broadcast(&fake_cond);
        pthread_mutex_unlock(&fake_lock);
}

static unsigned calls(void) {
        pthread_mutex_lock(&fake_lock);
        unsigned n = fake_calls;
        pthread_mutex_unlock(&fake_lock);
        return n;
}

static void fake_reset(void) {
        pthread_mutex_lock(&fake_lock);
        fake_calls = 0;
        fake_released = false;
        pthread_mutex_unlock(&fake_lock);
}

static void on_answer(void *userdata) {
        (*(unsigned *) userdata)++;
}

static int on_tick(sd_event_source *s, uint64_t usec, void *userdata) {
        (*(unsigned *) userdata)++;
        return sd_event_source_set_enabled(s, SD_EVENT_OFF);
}

/* Runs the loop until *counter reaches want, at most 5 s. */
static void run_until(sd_event *e, unsigned *counter, unsigned want) {
        for (int i = 0; i < 500 && *counter < want; i++)
                assert_true(sd_event_run(e, 10000) >= 0);
        assert_true(*counter >= want);
}

static void test_answer_after_wait(void **state) {
        sd_event *e = NULL;
        NssCache *c = NULL;
        NssAnswer a = {};
        unsigned answered = 0;

        fake_reset();
        assert_int_equal(sd_event_new(&e), 0);
        assert_int_equal(nss_cache_new(e, fake_lookup, &c), 0);

        /* Asked again before the answer (uid 4242 hangs until released): still in progress,
         * and asked of NSS once. */
        assert_int_equal(nss_cache_get(c, NSS_USER, 4242, &a), -EINPROGRESS);
        assert_int_equal(nss_cache_get(c, NSS_USER, 4242, &a), -EINPROGRESS);
        fake_release();
        assert_int_equal(nss_cache_wait(c, on_answer, &answered, NULL), 0);
        run_until(e, &answered, 1);
        assert_int_equal(calls(), 1);
        answered = 0;
        fake_reset();

        assert_int_equal(nss_cache_get(c, NSS_USER, 1000, &a), -EINPROGRESS);
        assert_int_equal(nss_cache_wait(c, on_answer, &answered, NULL), 0);
        run_until(e, &answered, 1);
        assert_int_equal(nss_cache_waiters(c), 0);

        assert_int_equal(nss_cache_get(c, NSS_USER, 1000, &a), 0);
        assert_int_equal(a.result, 1);
        assert_string_equal(a.name, "alice");
        assert_int_equal(a.gid, 100);
        nss_answer_done(&a);
        /* Reused for its time: NSS was asked once. */
        assert_int_equal(nss_cache_get(c, NSS_USER, 1000, &a), 0);
        nss_answer_done(&a);
        assert_int_equal(calls(), 1);
        /* Flushed (Reload): asked again. */
        nss_cache_flush(c);
        assert_int_equal(nss_cache_get(c, NSS_USER, 1000, &a), -EINPROGRESS);
        assert_int_equal(nss_cache_wait(c, on_answer, &answered, NULL), 0);
        run_until(e, &answered, 2);
        assert_int_equal(calls(), 2);
        answered = 1;

        /* No such entry is an answer too (0), cached like one. */
        assert_int_equal(nss_cache_get(c, NSS_USER, 7, &a), -EINPROGRESS);
        assert_int_equal(nss_cache_wait(c, on_answer, &answered, NULL), 0);
        run_until(e, &answered, 2);
        assert_int_equal(nss_cache_get(c, NSS_USER, 7, &a), 0);
        assert_int_equal(a.result, 0);
        assert_null(a.name);
        nss_answer_done(&a);

        nss_cache_free(c);
        sd_event_unref(e);
}

static void test_error_not_kept(void **state) {
        sd_event *e = NULL;
        NssCache *c = NULL;
        NssAnswer a = {};
        unsigned answered = 0;

        fake_reset();
        assert_int_equal(sd_event_new(&e), 0);
        assert_int_equal(nss_cache_new(e, fake_lookup, &c), 0);
        nss_cache_set_times(c, 60 * 1000000ULL, 200 * 1000ULL /* 200 ms */, 10 * 1000000ULL);

        assert_int_equal(nss_cache_get(c, NSS_GROUP, 666, &a), -EINPROGRESS);
        assert_int_equal(nss_cache_wait(c, on_answer, &answered, NULL), 0);
        run_until(e, &answered, 1);
        /* Whoever waited gets the error, not "no such group"... */
        assert_int_equal(nss_cache_get(c, NSS_GROUP, 666, &a), 0);
        assert_int_equal(a.result, -ECONNREFUSED);
        assert_null(a.name);
        nss_answer_done(&a);
        /* ... and only within its short time: after it, NSS is asked again. */
        usleep(250 * 1000);
        unsigned before = calls();
        assert_int_equal(nss_cache_get(c, NSS_GROUP, 666, &a), -EINPROGRESS);
        assert_int_equal(nss_cache_wait(c, on_answer, &answered, NULL), 0);
        run_until(e, &answered, 2);
        assert_int_equal(calls(), before + 1);

        nss_cache_free(c);
        sd_event_unref(e);
}

static void test_stuck_lookup_does_not_block(void **state) {
        sd_event *e = NULL;
        sd_event_source *tick = NULL;
        NssCache *c = NULL;
        NssAnswer a = {};
        NssWaiter *cancelled = NULL;
        unsigned answered = 0, ticks = 0, never = 0;

        fake_reset();
        assert_int_equal(sd_event_new(&e), 0);
        assert_int_equal(nss_cache_new(e, fake_lookup, &c), 0);
        nss_cache_set_times(c, 60 * 1000000ULL, 1000000ULL, 300 * 1000ULL /* 300 ms */);

        /* uid 4242 hangs in NSS (sssd not answering). */
        assert_int_equal(nss_cache_get(c, NSS_USER, 4242, &a), -EINPROGRESS);
        /* The loop goes on meanwhile: a timer fires. */
        assert_int_equal(sd_event_add_time_relative(e, &tick, CLOCK_MONOTONIC, 20000, 1000, on_tick, &ticks), 0);
        run_until(e, &ticks, 1);
        /* The second worker answers others. */
        assert_int_equal(nss_cache_get(c, NSS_USER, 1000, &a), -EINPROGRESS);
        assert_int_equal(nss_cache_wait(c, on_answer, &answered, NULL), 0);
        run_until(e, &answered, 1);
        assert_int_equal(nss_cache_get(c, NSS_USER, 1000, &a), 0);
        assert_string_equal(a.name, "alice");
        nss_answer_done(&a);

        /* A waiter freed before any answer never runs. */
        assert_int_equal(nss_cache_wait(c, on_answer, &never, &cancelled), 0);
        nss_waiter_free(cancelled);
        /* Past its time-out the stuck look-up is -ETIMEDOUT; waiters are told at the time-out. */
        assert_int_equal(nss_cache_wait(c, on_answer, &answered, NULL), 0);
        run_until(e, &answered, 2);
        assert_int_equal(nss_cache_get(c, NSS_USER, 4242, &a), -ETIMEDOUT);
        assert_int_equal(nss_cache_pending(c), 1);
        assert_int_equal(never, 0);

        /* NSS answers at last: the answer is kept for the next asker. */
        fake_release();
        assert_int_equal(nss_cache_wait(c, on_answer, &answered, NULL), 0);
        run_until(e, &answered, 3);
        assert_int_equal(nss_cache_get(c, NSS_USER, 4242, &a), 0);
        assert_int_equal(a.result, 0);
        nss_answer_done(&a);
        assert_int_equal(nss_cache_pending(c), 0);

        sd_event_source_unref(tick);
        nss_cache_free(c);
        sd_event_unref(e);
}

/* Two stuck look-ups asked 150 ms apart: the timer fires at the first one's deadline, then at
 * the second's (the next in ask order), and each is -ETIMEDOUT from its own deadline on. */
static void test_deadlines_in_ask_order(void **state) {
        sd_event *e = NULL;
        sd_event_source *tick = NULL;
        NssCache *c = NULL;
        NssAnswer a = {};
        unsigned answered = 0, ticks = 0;

        fake_reset();
        assert_int_equal(sd_event_new(&e), 0);
        assert_int_equal(nss_cache_new(e, fake_lookup, &c), 0);
        nss_cache_set_times(c, 60 * 1000000ULL, 1000000ULL, 300 * 1000ULL /* 300 ms */);

        assert_int_equal(nss_cache_get(c, NSS_USER, 4242, &a), -EINPROGRESS);
        assert_int_equal(sd_event_add_time_relative(e, &tick, CLOCK_MONOTONIC, 150 * 1000, 1000, on_tick, &ticks), 0);
        run_until(e, &ticks, 1);
        assert_int_equal(nss_cache_get(c, NSS_USER, 4243, &a), -EINPROGRESS);

        /* The first deadline: 4242 timed out, 4243 not yet. */
        assert_int_equal(nss_cache_wait(c, on_answer, &answered, NULL), 0);
        run_until(e, &answered, 1);
        assert_int_equal(nss_cache_get(c, NSS_USER, 4242, &a), -ETIMEDOUT);
        assert_int_equal(nss_cache_get(c, NSS_USER, 4243, &a), -EINPROGRESS);
        /* The second: the timer was armed for it. */
        assert_int_equal(nss_cache_wait(c, on_answer, &answered, NULL), 0);
        run_until(e, &answered, 2);
        assert_int_equal(nss_cache_get(c, NSS_USER, 4243, &a), -ETIMEDOUT);
        assert_int_equal(nss_cache_pending(c), 2);

        fake_release();
        assert_int_equal(nss_cache_wait(c, on_answer, &answered, NULL), 0);
        run_until(e, &answered, 3);
        for (int i = 0; i < 500 && nss_cache_pending(c) > 0; i++)
                assert_true(sd_event_run(e, 10000) >= 0);
        assert_int_equal(nss_cache_pending(c), 0);

        sd_event_source_unref(tick);
        nss_cache_free(c);
        sd_event_unref(e);
}

/* caller.c through the cache: names resolve without blocking the loop. */
static int fake_getpwuid_r(uid_t uid, struct passwd *pw, char *buf, size_t size, struct passwd **ret) {
        *ret = NULL;
        if (uid != 1000)
                return 0;
        if (size < 16)
                return ERANGE;
        strcpy(buf, "alice");
        *pw = (struct passwd) { .pw_name = buf, .pw_uid = 1000, .pw_gid = 100 };
        *ret = pw;
        return 0;
}

static int fake_getgrgid_r(gid_t gid, struct group *gr, char *buf, size_t size, struct group **ret) {
        *ret = NULL;
        if (gid == 666)
                return ECONNREFUSED;
        if (gid != 100)
                return 0;
        strcpy(buf, "staff");
        *gr = (struct group) { .gr_name = buf, .gr_gid = 100 };
        *ret = gr;
        return 0;
}

static int fake_getgrouplist(const char *user, gid_t group, gid_t *groups, int *n) {
        if (*n < 2) {
                *n = 2;
                return -1;
        }
        groups[0] = group;
        groups[1] = 666;
        *n = 2;
        return 2;
}

static const CallerNss fake_nss = {
        .getpwuid_r = fake_getpwuid_r,
        .getgrgid_r = fake_getgrgid_r,
        .getgrouplist = fake_getgrouplist,
};

static void test_caller_through_cache(void **state) {
        sd_event *e = NULL;
        NssCache *c = NULL;
        unsigned answered = 0;
        int r;

        assert_int_equal(sd_event_new(&e), 0);
        assert_int_equal(nss_cache_new(e, caller_nss_lookup, &c), 0);
        caller_set_nss(&fake_nss);
        caller_set_nss_cache(c);

        gid_t gids[] = { 100 };
        Caller who = { .uid = 1000, .gids = gids, .n_gids = 1 };
        assert_int_equal(caller_resolve_names(&who, CALLER_USER_NAME | CALLER_GROUP_NAMES), -EINPROGRESS);
        for (int i = 0; i < 10; i++) {
                assert_int_equal(nss_cache_wait(c, on_answer, &answered, NULL), 0);
                run_until(e, &answered, answered + 1);
                r = caller_resolve_names(&who, CALLER_USER_NAME | CALLER_GROUP_NAMES);
                if (r != -EINPROGRESS)
                        break;
        }
        assert_int_equal(r, 0);
        assert_string_equal(who.user_name, "alice");
        assert_string_equal(who.group_names[0], "staff");
        free(who.user_name);
        free(who.group_names[0]);
        free(who.group_names);

        /* Renewal's path: groups from NSS, one of them failing: an error, not "no name". */
        Caller snap = {};
        for (int i = 0; i < 10; i++) {
                r = caller_from_snapshot(1000, "v=1\n", CALLER_GROUP_NAMES, true, &snap);
                if (r != -EINPROGRESS)
                        break;
                assert_int_equal(nss_cache_wait(c, on_answer, &answered, NULL), 0);
                run_until(e, &answered, answered + 1);
        }
        assert_int_equal(r, -ECONNREFUSED);

        caller_set_nss_cache(NULL);
        caller_set_nss(NULL);
        nss_cache_free(c);
        sd_event_unref(e);
}

/* A caller whose account, user name and group names are all unknown: the first resolve asks
 * every look-up at once, so once those answers are in, the second resolve decides (one deferral,
 * not one per look-up); and a real NSS failure wins over a look-up still being asked. */
static void test_caller_asks_everything_at_once(void **state) {
        sd_event *e = NULL;
        NssCache *c = NULL;

        assert_int_equal(sd_event_new(&e), 0);
        assert_int_equal(nss_cache_new(e, caller_nss_lookup, &c), 0);
        /* Errors kept long enough for a busy machine to ask again. */
        nss_cache_set_times(c, 60 * 1000000ULL, 60 * 1000000ULL, 10 * 1000000ULL);
        caller_set_nss(&fake_nss);
        caller_set_nss_cache(c);

        gid_t gids[] = { 100 };
        Caller who = { .uid = 1000, .gids = gids, .n_gids = 1 };
        CallerNames all = CALLER_ACCOUNT | CALLER_USER_NAME | CALLER_GROUP_NAMES;
        assert_int_equal(caller_resolve_names(&who, all), -EINPROGRESS);
        assert_true(nss_cache_pending(c) <= 3);
        for (int i = 0; i < 500 && nss_cache_pending(c) > 0; i++)
                assert_true(sd_event_run(e, 10000) >= 0);
        assert_int_equal(nss_cache_pending(c), 0);
        assert_int_equal(caller_resolve_names(&who, all), 0);
        assert_true(who.account_known);
        assert_string_equal(who.user_name, "alice");
        assert_string_equal(who.group_names[0], "staff");
        free(who.user_name);
        free(who.group_names[0]);
        free(who.group_names);

        /* gid 666 fails; uid 1001's look-ups are new (still being asked) when it is answered. */
        gid_t bad[] = { 666 };
        Caller other = { .uid = 1001, .gids = bad, .n_gids = 1 };
        assert_int_equal(caller_resolve_names(&other, CALLER_GROUP_NAMES), -EINPROGRESS);
        for (int i = 0; i < 500 && nss_cache_pending(c) > 0; i++)
                assert_true(sd_event_run(e, 10000) >= 0);
        assert_int_equal(nss_cache_pending(c), 0);
        /* The account and user look-ups of 1001 are asked now (-EINPROGRESS), the group's
         * answer is the error: the error is what the caller gets. */
        assert_int_equal(caller_resolve_names(&other, all), -ECONNREFUSED);
        assert_false(other.group_names);
        free(other.user_name);

        caller_set_nss_cache(NULL);
        caller_set_nss(NULL);
        nss_cache_free(c);
        sd_event_unref(e);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_answer_after_wait),
                cmocka_unit_test(test_error_not_kept),
                cmocka_unit_test(test_stuck_lookup_does_not_block),
                cmocka_unit_test(test_deadlines_in_ask_order),
                cmocka_unit_test(test_caller_through_cache),
                cmocka_unit_test(test_caller_asks_everything_at_once),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
