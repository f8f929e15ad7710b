/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* pthread_create() that fails on demand (thread-fault.h); otherwise the C library's (or a
 * sanitizer's, which comes next when one is linked). */

#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>

#include "thread-fault.h"

int thread_fault_budget = -1;

typedef int (*PthreadCreateFn)(pthread_t *, const pthread_attr_t *, void *(*)(void *), void *);

int pthread_create(pthread_t *thread, const pthread_attr_t *attr, void *(*start)(void *), void *arg) {
        static PthreadCreateFn next;

        if (thread_fault_budget == 0)
                return EAGAIN;
        if (thread_fault_budget > 0)
                thread_fault_budget--;
        if (!next) {
                void *sym = dlsym(RTLD_NEXT, "pthread_create");

                if (!sym)
                        return ENOSYS;
                *(void **) &next = sym;
        }
        return next(thread, attr, start, arg);
}
