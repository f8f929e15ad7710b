/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The few macros, helpers and clocks every module of service/ uses: one copy, shared with policy/
 * (through its util.h) and client-lib/. Ownership: a variable declared _cleanup_(f) is passed
 * to f when it goes out of scope; TAKE_PTR() moves it out (to a caller, to a struct) first. */

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

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

/* A cleanup function f##p for a pointer type whose destructor f does not accept NULL (or whose
 * result must be ignored). */
#define DEFINE_POINTER_CLEANUP(type, f)                 \
        static inline void f##p(type **p) {             \
                if (*p)                                 \
                        (void) f(*p);                   \
        }

static inline void freep(void *p) {
        free(*(void **) p);
}
#define _cleanup_free_ _cleanup_(freep)

/* Closes *fd when it is a descriptor (>= 0), keeping errno. */
static inline void closep(int *fd) {
        if (*fd >= 0) {
                int saved = errno;
                (void) close(*fd);
                errno = saved;
        }
}
#define _cleanup_close_ _cleanup_(closep)

static inline void fclosep(FILE **f) {
        if (*f)
                (void) fclose(*f);
}
#define _cleanup_fclose_ _cleanup_(fclosep)

/* Returns fd and sets it to -1. */
#define TAKE_FD(fd)                             \
        ({                                      \
                int _fd_ = (fd);                \
                (fd) = -1;                      \
                _fd_;                           \
        })

#ifndef ELEMENTSOF
#define ELEMENTSOF(x) (sizeof(x) / sizeof((x)[0]))
#endif

/* The value of a hex digit (either case), or -1 when c is not one. */
static inline int unhexchar(char c) {
        if (c >= '0' && c <= '9')
                return c - '0';
        if (c >= 'a' && c <= 'f')
                return c - 'a' + 10;
        if (c >= 'A' && c <= 'F')
                return c - 'A' + 10;
        return -1;
}

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
