/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* memory-trim: freed memory is given back once the broker has been quiet. Nothing is trimmed
 * without activity, nor before `quiet` has passed since the last activity (activity postpones
 * it), and once per quiet period; activity that never stops gets one trim per `max`; the real
 * trim returns the free pages a burst left inside the heap (RssAnon falls), which glibc's
 * free() alone keeps. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "memory-trim.h"

#define QUIET_USEC (200ULL * 1000ULL)
/* Generous: the timer may fire up to a second late (its accuracy), more on a loaded machine. */
#define PATIENCE_USEC (10ULL * 1000000ULL)

static unsigned fake_trims;

static int fake_trim(void) {
        fake_trims++;
        return 1;
}

/* Runs the loop for usec, or until t has trimmed `until` times (when until > 0). */
static void run(sd_event *e, const MemoryTrim *t, uint64_t usec, unsigned until) {
        uint64_t deadline = monotonic_usec() + usec, n;

        while ((n = monotonic_usec()) < deadline && !(until > 0 && memory_trim_count(t) >= until))
                assert_true(sd_event_run(e, deadline - n) >= 0);
}

static void test_trims_after_quiet(void **state) {
        sd_event *e = NULL;
        MemoryTrim *t = NULL;
        uint64_t last;

        fake_trims = 0;
        assert_int_equal(sd_event_new(&e), 0);
        assert_int_equal(memory_trim_new(e, QUIET_USEC, 100 * QUIET_USEC, fake_trim, &t), 0);

        /* No activity, no trim. */
        run(e, t, 2 * QUIET_USEC, 0);
        assert_int_equal(memory_trim_count(t), 0);

        /* Activity, then again half-way: not trimmed before quiet after the second. */
        memory_trim_note_activity(t);
        run(e, t, QUIET_USEC / 2, 0);
        assert_int_equal(memory_trim_count(t), 0);
        memory_trim_note_activity(t);
        assert_int_equal(sd_event_now(e, CLOCK_MONOTONIC, &last), 0);  /* the time it noted */
        run(e, t, PATIENCE_USEC, 1);
        assert_int_equal(memory_trim_count(t), 1);
        assert_true(monotonic_usec() >= last + QUIET_USEC);
        assert_int_equal(fake_trims, 1);

        /* Quiet goes on: no second trim without new activity. */
        run(e, t, 2 * QUIET_USEC, 0);
        assert_int_equal(memory_trim_count(t), 1);

        /* New activity: one more. */
        memory_trim_note_activity(t);
        run(e, t, PATIENCE_USEC, 2);
        assert_int_equal(memory_trim_count(t), 2);
        assert_int_equal(fake_trims, 2);

        memory_trim_free(t);
        sd_event_unref(e);
}

/* Activity every tenth of the quiet, never a quiet spell: one trim once `max` has passed
 * since the first activity, not before. (A quiet of a second: a stall of the test process
 * that long would look like a quiet spell.) */
static void test_trims_when_never_quiet(void **state) {
        const uint64_t quiet = 1000000ULL, max = 2 * quiet;
        sd_event *e = NULL;
        MemoryTrim *t = NULL;
        uint64_t first, end, at = 0;

        fake_trims = 0;
        assert_int_equal(sd_event_new(&e), 0);
        assert_int_equal(memory_trim_new(e, quiet, max, fake_trim, &t), 0);
        memory_trim_note_activity(t);
        assert_true(sd_event_now(e, CLOCK_MONOTONIC, &first) >= 0);   /* 1: the loop has not run yet */
        end = monotonic_usec() + 2 * max;
        while (monotonic_usec() < end) {
                run(e, t, quiet / 10, 0);
                if (at == 0 && memory_trim_count(t) > 0)
                        at = monotonic_usec();
                memory_trim_note_activity(t);
        }
        assert_true(memory_trim_count(t) >= 1);
        assert_true(at >= first + max);
        assert_int_equal(fake_trims, memory_trim_count(t));

        memory_trim_free(t);
        sd_event_unref(e);
}

static void test_null_and_bad_arguments(void **state) {
        sd_event *e = NULL;
        MemoryTrim *t = NULL;

        assert_int_equal(sd_event_new(&e), 0);
        assert_int_equal(memory_trim_new(e, 0, QUIET_USEC, fake_trim, &t), -EINVAL);
        assert_int_equal(memory_trim_new(NULL, QUIET_USEC, QUIET_USEC, fake_trim, &t), -EINVAL);
        assert_int_equal(memory_trim_new(e, QUIET_USEC, QUIET_USEC - 1, fake_trim, &t), -EINVAL);
        assert_null(t);
        memory_trim_note_activity(NULL);
        assert_int_equal(memory_trim_count(NULL), 0);
        assert_null(memory_trim_free(NULL));
        sd_event_unref(e);
}

static void test_rss_anon_reads(void **state) {
        int64_t kib = memory_rss_anon_kib();

        assert_true(kib > 0);
}

/* The real trim: 16 MiB in 4 KiB blocks (inside the heap, under the mmap threshold), all
 * freed but the last, which keeps glibc from giving back the top of the heap. */
static void test_real_trim_gives_back(void **state) {
#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) || defined(UNDER_ASAN)
        skip();         /* AddressSanitizer's allocator replaces glibc's: malloc_trim() has no heap to trim */
#else
        enum { N = 4096, SIZE = 4096 };
        void **blocks = calloc(N, sizeof(void *));
        sd_event *e = NULL;
        MemoryTrim *t = NULL;
        int64_t before, after;

        assert_non_null(blocks);
        for (size_t i = 0; i < N; i++) {
                blocks[i] = malloc(SIZE);
                assert_non_null(blocks[i]);
                /* Through volatile: a memset() before free() is a dead store the compiler drops. */
                for (size_t o = 0; o < SIZE; o += 256)
                        ((volatile char *) blocks[i])[o] = 0x5a;
        }
        for (size_t i = 0; i + 1 < N; i++)
                free(blocks[i]);
        before = memory_rss_anon_kib();
        assert_true(before > 0);

        assert_int_equal(sd_event_new(&e), 0);
        assert_int_equal(memory_trim_new(e, QUIET_USEC, 100 * QUIET_USEC, NULL, &t), 0);
        memory_trim_note_activity(t);
        run(e, t, PATIENCE_USEC, 1);
        assert_int_equal(memory_trim_count(t), 1);
        after = memory_rss_anon_kib();
        print_message("RssAnon %lld KiB with 16 MiB freed in the heap, %lld KiB after the trim\n",
                      (long long) before, (long long) after);
        assert_true(after > 0);
        assert_true(before - after >= 12 * 1024);

        memory_trim_free(t);
        sd_event_unref(e);
        free(blocks[N - 1]);
        free(blocks);
#endif
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_trims_after_quiet),
                cmocka_unit_test(test_trims_when_never_quiet),
                cmocka_unit_test(test_null_and_bad_arguments),
                cmocka_unit_test(test_rss_anon_reads),
                cmocka_unit_test(test_real_trim_gives_back),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
