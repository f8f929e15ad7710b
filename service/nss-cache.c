/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "basic.h"
#include "nss-cache.h"

#define BUCKETS 256U

typedef struct Entry Entry;
struct Entry {
        NssKind kind;
        uint32_t id;
        bool answered;          /* answer is set (under the lock) */
        bool running;           /* a worker has taken it */
        uint64_t asked;         /* CLOCK_MONOTONIC */
        uint64_t answered_at;
        NssAnswer answer;
        Entry *next;            /* bucket chain (loop, under the lock) */
        Entry *next_queued;     /* work queue (under the lock) */
        /* Asked, not answered, deadline not passed: the cache's list in ask order (under the
         * lock). */
        bool waiting;
        Entry *prev_asked, *next_asked;
};

struct NssWaiter {
        NssCache *cache;
        NssWaiter **head;       /* the list it is on: the cache's waiters or running; NULL: none */
        NssWaitHandler handler;
        void *userdata;
        NssWaiter *prev, *next;
};

struct NssCache {
        pthread_mutex_t lock;
        pthread_cond_t wake;
        pthread_t threads[NSS_CACHE_WORKERS];
        unsigned n_threads;
        bool quit;
        NssLookup lookup;
        uint64_t ttl, error_ttl, timeout;
        Entry *buckets[BUCKETS];        /* under the lock */
        unsigned n_entries;
        Entry *queue_head, *queue_tail; /* under the lock */
        /* Look-ups asked and not answered whose deadline has not passed, oldest first: every
         * one has the same timeout, so the first has the earliest deadline (under the lock). */
        Entry *asked_head, *asked_tail;
        unsigned n_pending;             /* asked, not answered (under the lock) */

        /* Loop only. */
        int efd;
        sd_event *event;
        sd_event_source *io, *timer;
        NssWaiter *waiters;             /* for the next answer */
        NssWaiter *running;             /* being run now */
        unsigned n_waiters;
};

void nss_answer_done(NssAnswer *a) {
        if (!a)
                return;
        free(a->name);
        free(a->gids);
        *a = (NssAnswer) {};
}

static int answer_copy(const NssAnswer *a, NssAnswer *ret) {
        NssAnswer c = { .result = a->result, .gid = a->gid, .n_gids = a->n_gids };

        if (a->name && !(c.name = strdup(a->name)))
                return -ENOMEM;
        if (a->gids) {
                c.gids = malloc(a->n_gids > 0 ? a->n_gids * sizeof(gid_t) : 1);
                if (!c.gids) {
                        free(c.name);
                        return -ENOMEM;
                }
                memcpy(c.gids, a->gids, a->n_gids * sizeof(gid_t));
        }
        *ret = c;
        return 0;
}

static unsigned bucket_of(NssKind kind, uint32_t id) {
        return (id * 2654435761U + (unsigned) kind * 40503U) % BUCKETS;
}

/* Caller holds the lock. */
static void asked_append_locked(NssCache *c, Entry *e) {
        e->waiting = true;
        e->next_asked = NULL;
        e->prev_asked = c->asked_tail;
        if (c->asked_tail)
                c->asked_tail->next_asked = e;
        else
                c->asked_head = e;
        c->asked_tail = e;
}

static void asked_remove_locked(NssCache *c, Entry *e) {
        if (!e->waiting)
                return;
        if (e->prev_asked)
                e->prev_asked->next_asked = e->next_asked;
        else
                c->asked_head = e->next_asked;
        if (e->next_asked)
                e->next_asked->prev_asked = e->prev_asked;
        else
                c->asked_tail = e->prev_asked;
        e->prev_asked = e->next_asked = NULL;
        e->waiting = false;
}

static void *worker(void *userdata) {
        NssCache *c = userdata;

        pthread_mutex_lock(&c->lock);
        for (;;) {
                while (!c->quit && !c->queue_head)
                        pthread_cond_wait(&c->wake, &c->lock);
                if (c->quit)
                        break;
                Entry *e = c->queue_head;
                c->queue_head = e->next_queued;
                if (!c->queue_head)
                        c->queue_tail = NULL;
                e->next_queued = NULL;
                e->running = true;
                pthread_mutex_unlock(&c->lock);

                NssAnswer a = {};
                int r = c->lookup(e->kind, e->id, &a);
                if (r < 0) {
                        nss_answer_done(&a);
                        a.result = r;
                }

                pthread_mutex_lock(&c->lock);
                e->answer = a;
                e->answered = true;
                asked_remove_locked(c, e);
                e->running = false;
                e->answered_at = monotonic_usec();
                c->n_pending--;
                /* The loop is woken with the lock released (it takes the lock to read the
                 * answer, and would wait for this thread otherwise). */
                pthread_mutex_unlock(&c->lock);
                uint64_t one = 1;
                (void) !write(c->efd, &one, sizeof one);
                pthread_mutex_lock(&c->lock);
        }
        pthread_mutex_unlock(&c->lock);
        return NULL;
}

static void waiter_unlink(NssWaiter *w) {
        if (!w->head)
                return;
        if (w->prev)
                w->prev->next = w->next;
        else
                *w->head = w->next;
        if (w->next)
                w->next->prev = w->prev;
        w->prev = w->next = NULL;
        w->head = NULL;
        w->cache->n_waiters--;
}

/* Run every waiter registered before now, once. A handler may free other waiters (they are
 * unlinked from the running list) and register new ones (for the next answer). */
static void run_waiters(NssCache *c) {
        c->running = c->waiters;
        c->waiters = NULL;
        for (NssWaiter *w = c->running; w; w = w->next)
                w->head = &c->running;
        while (c->running) {
                NssWaiter *w = c->running;
                NssWaitHandler h = w->handler;
                void *u = w->userdata;

                waiter_unlink(w);
                free(w);
                h(u);
        }
}

static void arm_timer(NssCache *c);

static int on_io(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        NssCache *c = userdata;
        uint64_t n;

        (void) !read(fd, &n, sizeof n);
        run_waiters(c);
        arm_timer(c);
        return 0;
}

static int on_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        NssCache *c = userdata;

        run_waiters(c);
        arm_timer(c);
        return 0;
}

/* The timer fires at the earliest deadline of a look-up not answered yet and not past it: the
 * first of the asked list, once those past their deadline have left it. */
static void arm_timer(NssCache *c) {
        uint64_t next = UINT64_MAX, now = monotonic_usec();

        pthread_mutex_lock(&c->lock);
        while (c->asked_head && c->asked_head->asked + c->timeout <= now)
                asked_remove_locked(c, c->asked_head);
        if (c->asked_head)
                next = c->asked_head->asked + c->timeout;
        pthread_mutex_unlock(&c->lock);
        if (!c->timer)
                return;
        if (next == UINT64_MAX) {
                (void) sd_event_source_set_enabled(c->timer, SD_EVENT_OFF);
                return;
        }
        (void) sd_event_source_set_time(c->timer, next);
        (void) sd_event_source_set_enabled(c->timer, SD_EVENT_ONESHOT);
}

DEFINE_POINTER_CLEANUP(NssCache, nss_cache_free);

int nss_cache_new(sd_event *event, NssLookup lookup, NssCache **ret) {
        _cleanup_(nss_cache_freep) NssCache *c = calloc(1, sizeof(*c));
        int r;

        if (!c)
                return -ENOMEM;
        c->lookup = lookup;
        c->ttl = NSS_CACHE_TTL_USEC;
        c->error_ttl = NSS_CACHE_ERROR_TTL_USEC;
        c->timeout = NSS_CACHE_TIMEOUT_USEC;
        c->efd = -EBADF;
        pthread_mutex_init(&c->lock, NULL);
        pthread_cond_init(&c->wake, NULL);
        c->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (c->efd < 0)
                return -errno;
        c->event = sd_event_ref(event);
        r = sd_event_add_io(event, &c->io, c->efd, EPOLLIN, on_io, c);
        if (r < 0)
                return r;
        (void) sd_event_source_set_description(c->io, "nss-answers");
        r = sd_event_add_time(event, &c->timer, CLOCK_MONOTONIC, UINT64_MAX, 100000ULL, on_timer, c);
        if (r < 0)
                return r;
        (void) sd_event_source_set_enabled(c->timer, SD_EVENT_OFF);
        for (unsigned i = 0; i < NSS_CACHE_WORKERS; i++) {
                r = -pthread_create(&c->threads[i], NULL, worker, c);
                if (r < 0)
                        return r;
                c->n_threads++;
        }
        *ret = TAKE_PTR(c);
        return 0;
}

NssCache *nss_cache_free(NssCache *c) {
        bool abandoned = false;

        if (!c)
                return NULL;
        pthread_mutex_lock(&c->lock);
        c->quit = true;
        pthread_cond_broadcast(&c->wake);
        pthread_mutex_unlock(&c->lock);
        for (unsigned i = 0; i < c->n_threads; i++) {
                struct timespec ts;
                clock_gettime(CLOCK_REALTIME, &ts);
                ts.tv_sec += 2;
                if (pthread_timedjoin_np(c->threads[i], NULL, &ts) != 0) {
                        /* Stuck in NSS: it still holds an entry and the lock's memory. */
                        (void) pthread_detach(c->threads[i]);
                        abandoned = true;
                }
        }
        while (c->waiters) {
                NssWaiter *w = c->waiters;
                waiter_unlink(w);
                free(w);
        }
        c->io = sd_event_source_disable_unref(c->io);
        c->timer = sd_event_source_disable_unref(c->timer);
        c->event = sd_event_unref(c->event);
        if (abandoned)
                return NULL;
        for (unsigned b = 0; b < BUCKETS; b++)
                while (c->buckets[b]) {
                        Entry *e = c->buckets[b];
                        c->buckets[b] = e->next;
                        nss_answer_done(&e->answer);
                        free(e);
                }
        if (c->efd >= 0)
                close(c->efd);
        pthread_cond_destroy(&c->wake);
        pthread_mutex_destroy(&c->lock);
        free(c);
        return NULL;
}

/* Caller holds the lock. Forgets answers past their time, and, when the table is still full,
 * every answered entry. */
static void prune_locked(NssCache *c, uint64_t now, bool all_answered) {
        for (unsigned b = 0; b < BUCKETS; b++)
                for (Entry **p = &c->buckets[b]; *p;) {
                        Entry *e = *p;
                        uint64_t ttl = e->answer.result < 0 ? c->error_ttl : c->ttl;
                        if (e->answered && (all_answered || e->answered_at + ttl <= now)) {
                                *p = e->next;
                                nss_answer_done(&e->answer);
                                free(e);
                                c->n_entries--;
                                continue;
                        }
                        p = &e->next;
                }
}

/* Queues e for a worker (its entry made or made stale under the lock), then unlocks. The
 * caller's answer: asked, come back when it is there. */
static int queue_locked_and_unlock(NssCache *c, Entry *e) {
        if (c->queue_tail)
                c->queue_tail->next_queued = e;
        else
                c->queue_head = e;
        c->queue_tail = e;
        asked_append_locked(c, e);
        c->n_pending++;
        pthread_cond_signal(&c->wake);
        pthread_mutex_unlock(&c->lock);
        arm_timer(c);
        return -EINPROGRESS;
}

int nss_cache_get(NssCache *c, NssKind kind, uint32_t id, NssAnswer *ret) {
        uint64_t now = monotonic_usec();
        unsigned b = bucket_of(kind, id);
        Entry *e;
        int r;

        pthread_mutex_lock(&c->lock);
        for (e = c->buckets[b]; e; e = e->next)
                if (e->kind == kind && e->id == id)
                        break;
        if (e && e->answered) {
                uint64_t ttl = e->answer.result < 0 ? c->error_ttl : c->ttl;
                if (e->answered_at + ttl > now) {
                        r = answer_copy(&e->answer, ret);
                        pthread_mutex_unlock(&c->lock);
                        return r;
                }
                /* Stale: asked again, in place. */
                nss_answer_done(&e->answer);
                e->answered = false;
                e->asked = now;
                return queue_locked_and_unlock(c, e);
        }
        if (e) {
                r = e->asked + c->timeout <= now ? -ETIMEDOUT : -EINPROGRESS;
                pthread_mutex_unlock(&c->lock);
                return r;
        }
        if (c->n_entries >= NSS_CACHE_ENTRIES_MAX)
                prune_locked(c, now, false);
        if (c->n_entries >= NSS_CACHE_ENTRIES_MAX)
                prune_locked(c, now, true);
        if (c->n_entries >= NSS_CACHE_ENTRIES_MAX) {
                /* Every entry is a look-up still running: NSS is stuck. */
                pthread_mutex_unlock(&c->lock);
                return -ETIMEDOUT;
        }
        e = calloc(1, sizeof(*e));
        if (!e) {
                pthread_mutex_unlock(&c->lock);
                return -ENOMEM;
        }
        e->kind = kind;
        e->id = id;
        e->asked = now;
        e->next = c->buckets[b];
        c->buckets[b] = e;
        c->n_entries++;
        return queue_locked_and_unlock(c, e);
}

int nss_cache_wait(NssCache *c, NssWaitHandler handler, void *userdata, NssWaiter **ret) {
        NssWaiter *w = calloc(1, sizeof(*w));

        if (!w)
                return -ENOMEM;
        *w = (NssWaiter) { .cache = c, .head = &c->waiters, .handler = handler, .userdata = userdata,
                           .next = c->waiters };
        if (c->waiters)
                c->waiters->prev = w;
        c->waiters = w;
        c->n_waiters++;
        if (ret)
                *ret = w;
        return 0;
}

void nss_waiter_free(NssWaiter *w) {
        if (!w)
                return;
        waiter_unlink(w);
        free(w);
}

void nss_cache_flush(NssCache *c) {
        pthread_mutex_lock(&c->lock);
        prune_locked(c, monotonic_usec(), true);
        pthread_mutex_unlock(&c->lock);
}

void nss_cache_set_times(NssCache *c, uint64_t ttl, uint64_t error_ttl, uint64_t timeout) {
        pthread_mutex_lock(&c->lock);
        c->ttl = ttl;
        c->error_ttl = error_ttl;
        c->timeout = timeout;
        pthread_mutex_unlock(&c->lock);
}

unsigned nss_cache_pending(NssCache *c) {
        pthread_mutex_lock(&c->lock);
        unsigned n = c->n_pending;
        pthread_mutex_unlock(&c->lock);
        return n;
}

unsigned nss_cache_waiters(NssCache *c) {
        return c->n_waiters;
}
