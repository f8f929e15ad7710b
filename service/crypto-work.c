/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <unistd.h>

#include "basic.h"
#include "crypto-work.h"

struct CryptoJob {
        CryptoWork *work;
        CryptoRunFn run;
        CryptoDoneFn done;
        CryptoFreeFn free_fn;
        void *userdata;
        bool cancelled;         /* loop only */
        bool background;        /* in the background queue */
        CryptoJob *next;        /* queue or finished list (under the lock) */
};

struct CryptoWork {
        pthread_mutex_t lock;
        pthread_cond_t wake;
        pthread_t threads[CRYPTO_WORK_WORKERS_MAX];
        unsigned n_threads;
        bool quit;
        CryptoJob *queue_head, *queue_tail;     /* under the lock */
        CryptoJob *bg_head, *bg_tail;           /* background jobs: taken when queue is empty */
        CryptoJob *finished;                    /* under the lock, newest first */
        unsigned n_pending;                     /* queued, running or finished, not yet handed back */

        /* Loop only. */
        int efd;
        sd_event *event;
        sd_event_source *io;
};

static void job_release(CryptoJob *j) {
        if (j->free_fn)
                j->free_fn(j->userdata);
        free(j);
}

static void *worker(void *userdata) {
        CryptoWork *w = userdata;
        int now;

        /* A little below the loop, so that a bus call's answer comes before the crypto of the
         * next enrollment; lowering one's own priority needs no privilege (refused under
         * SystemCallFilter=~@resources: then the same priority as the loop). */
        errno = 0;
        now = getpriority(PRIO_PROCESS, (id_t) gettid());
        if (errno == 0 && now + CRYPTO_WORK_NICE_BELOW_LOOP <= 19)
                (void) setpriority(PRIO_PROCESS, (id_t) gettid(), now + CRYPTO_WORK_NICE_BELOW_LOOP);

        pthread_mutex_lock(&w->lock);
        for (;;) {
                while (!w->quit && !w->queue_head && !w->bg_head)
                        pthread_cond_wait(&w->wake, &w->lock);
                if (w->quit)
                        break;
                CryptoJob *j;
                if (w->queue_head) {
                        j = w->queue_head;
                        w->queue_head = j->next;
                        if (!w->queue_head)
                                w->queue_tail = NULL;
                } else {
                        j = w->bg_head;
                        w->bg_head = j->next;
                        if (!w->bg_head)
                                w->bg_tail = NULL;
                }
                j->next = NULL;
                pthread_mutex_unlock(&w->lock);

                j->run(j->userdata);

                pthread_mutex_lock(&w->lock);
                j->next = w->finished;
                w->finished = j;
                /* The loop is woken with the lock released: woken first, it would preempt
                 * this thread (nice 5 below it) inside the lock and then wait on it. */
                pthread_mutex_unlock(&w->lock);
                uint64_t one = 1;
                (void) !write(w->efd, &one, sizeof one);
                pthread_mutex_lock(&w->lock);
        }
        pthread_mutex_unlock(&w->lock);
        return NULL;
}

static int on_io(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        CryptoWork *w = userdata;
        CryptoJob *list, *rev = NULL;
        uint64_t n;

        (void) !read(fd, &n, sizeof n);
        pthread_mutex_lock(&w->lock);
        list = w->finished;
        w->finished = NULL;
        pthread_mutex_unlock(&w->lock);
        /* Oldest first. */
        while (list) {
                CryptoJob *next = list->next;
                list->next = rev;
                rev = list;
                list = next;
        }
        while (rev) {
                CryptoJob *j = rev;
                rev = j->next;
                w->n_pending--;
                if (!j->cancelled) {
                        j->cancelled = true;    /* a cancel from done() is a no-op */
                        j->done(j->userdata);
                }
                job_release(j);
        }
        return 0;
}

static unsigned default_workers(void) {
        cpu_set_t set;
        int n = 0;

        if (sched_getaffinity(0, sizeof set, &set) == 0)
                n = CPU_COUNT(&set);
        if (n < 1)
                n = 1;
        return (unsigned) n > CRYPTO_WORK_WORKERS_MAX ? CRYPTO_WORK_WORKERS_MAX : (unsigned) n;
}

int crypto_work_new(sd_event *event, CryptoWork **ret) {
        _cleanup_(crypto_work_freep) CryptoWork *w = NULL;
        unsigned n = default_workers();
        int r;

        w = calloc(1, sizeof(*w));
        if (!w)
                return -ENOMEM;
        pthread_mutex_init(&w->lock, NULL);
        pthread_cond_init(&w->wake, NULL);
        w->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (w->efd < 0)
                return -errno;
        w->event = sd_event_ref(event);
        r = sd_event_add_io(event, &w->io, w->efd, EPOLLIN, on_io, w);
        if (r < 0)
                return r;
        (void) sd_event_source_set_description(w->io, "crypto-work");
        for (unsigned i = 0; i < n; i++) {
                r = -pthread_create(&w->threads[i], NULL, worker, w);
                if (r < 0)
                        return r;
                (void) pthread_setname_np(w->threads[i], "cb-crypto");
                w->n_threads++;
        }
        *ret = TAKE_PTR(w);
        return 0;
}

CryptoWork *crypto_work_free(CryptoWork *w) {
        if (!w)
                return NULL;
        pthread_mutex_lock(&w->lock);
        w->quit = true;
        pthread_cond_broadcast(&w->wake);
        pthread_mutex_unlock(&w->lock);
        for (unsigned i = 0; i < w->n_threads; i++)
                (void) pthread_join(w->threads[i], NULL);
        /* No worker left: what is queued or finished is ours. */
        while (w->queue_head) {
                CryptoJob *j = w->queue_head;
                w->queue_head = j->next;
                job_release(j);
        }
        while (w->bg_head) {
                CryptoJob *j = w->bg_head;
                w->bg_head = j->next;
                job_release(j);
        }
        while (w->finished) {
                CryptoJob *j = w->finished;
                w->finished = j->next;
                job_release(j);
        }
        w->io = sd_event_source_disable_unref(w->io);
        w->event = sd_event_unref(w->event);
        if (w->efd >= 0)
                close(w->efd);
        pthread_cond_destroy(&w->wake);
        pthread_mutex_destroy(&w->lock);
        free(w);
        return NULL;
}

static int submit(CryptoWork *w, bool background, CryptoRunFn run, CryptoDoneFn done, CryptoFreeFn free_fn,
                  void *userdata, CryptoJob **ret) {
        CryptoJob *j;

        if (!w || !run || !done)
                return -EINVAL;
        j = calloc(1, sizeof(*j));
        if (!j)
                return -ENOMEM;
        *j = (CryptoJob) {
                .work = w, .run = run, .done = done, .free_fn = free_fn, .userdata = userdata,
                .background = background,
        };
        pthread_mutex_lock(&w->lock);
        CryptoJob **head = background ? &w->bg_head : &w->queue_head;
        CryptoJob **tail = background ? &w->bg_tail : &w->queue_tail;
        if (*tail)
                (*tail)->next = j;
        else
                *head = j;
        *tail = j;
        w->n_pending++;
        pthread_cond_signal(&w->wake);
        pthread_mutex_unlock(&w->lock);
        if (ret)
                *ret = j;
        return 0;
}

int crypto_work_submit(CryptoWork *w, CryptoRunFn run, CryptoDoneFn done, CryptoFreeFn free_fn, void *userdata,
                       CryptoJob **ret) {
        return submit(w, false, run, done, free_fn, userdata, ret);
}

int crypto_work_submit_background(CryptoWork *w, CryptoRunFn run, CryptoDoneFn done, CryptoFreeFn free_fn,
                                  void *userdata, CryptoJob **ret) {
        return submit(w, true, run, done, free_fn, userdata, ret);
}

void crypto_job_cancel(CryptoJob *j) {
        CryptoWork *w;
        bool unqueued = false;

        if (!j || j->cancelled)
                return;
        w = j->work;
        j->cancelled = true;
        /* Still queued: no worker has it, take it out and free it now. */
        pthread_mutex_lock(&w->lock);
        CryptoJob **tail = j->background ? &w->bg_tail : &w->queue_tail;
        for (CryptoJob **p = j->background ? &w->bg_head : &w->queue_head, *prev = NULL; *p; prev = *p, p = &(*p)->next)
                if (*p == j) {
                        *p = j->next;
                        if (*tail == j)
                                *tail = prev;
                        unqueued = true;
                        break;
                }
        pthread_mutex_unlock(&w->lock);
        if (unqueued) {
                w->n_pending--;
                job_release(j);
        }
        /* Else running or finished: on_io() frees it without done(). */
}

unsigned crypto_work_pending(CryptoWork *w) {
        return w ? w->n_pending : 0;
}

unsigned crypto_work_workers(CryptoWork *w) {
        return w ? w->n_threads : 0;
}
