/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The few macros and clocks every module of service/ uses: one copy. (policy/ is a library of
 * its own with its own util.h; its definitions are token-identical where they overlap.) */

#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#ifndef _cleanup_
#define _cleanup_(f) __attribute__((cleanup(f)))
#endif

#ifndef TAKE_PTR
/* Returns p and sets it to NULL: ownership moves to the caller. */
#define TAKE_PTR(p)                             \
        ({                                      \
                __typeof__(p) _p_ = (p);        \
                (p) = NULL;                     \
                _p_;                            \
        })
#endif

/* For _cleanup_(freep): free(*p). */
static inline void freep(void *p) {
        free(*(void **) p);
}

#ifndef ELEMENTSOF
#define ELEMENTSOF(x) (sizeof(x) / sizeof((x)[0]))
#endif

static inline uint64_t clock_usec(clockid_t clock) {
        struct timespec ts;

        clock_gettime(clock, &ts);
        return (uint64_t) ts.tv_sec * UINT64_C(1000000) + (uint64_t) ts.tv_nsec / 1000U;
}

/* CLOCK_REALTIME in microseconds: what the journal and the bus carry (Created, NextAttempt...). */
static inline uint64_t now_usec(void) {
        return clock_usec(CLOCK_REALTIME);
}

/* CLOCK_MONOTONIC in microseconds: for limits and ages that must not jump with the wall clock. */
static inline uint64_t monotonic_usec(void) {
        return clock_usec(CLOCK_MONOTONIC);
}
