/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <unistd.h>

#include "keys-pool.h"

typedef struct Job {
        uint64_t id;            /* 0 for refill work */
        uint32_t owner;         /* whose job: jobs are served fairly between owners */
        uint64_t start, finish; /* tags of fair queueing: served in start order; finish = start + cost */
        KeyType type;
        KeyReadyHandler handler;
        void *userdata;
        bool cancelled;
        int error;
        EVP_PKEY *key;
        CbSecret *pem;                  /* refill: the key's PKCS#8 PEM, made on the worker */
        struct Job *next;
} Job;

struct KeyPool {
        /* Everything below is protected by lock, except where noted. */
        pthread_mutex_t lock;
        pthread_cond_t wake_jobs;       /* job workers: a job was queued */
        pthread_cond_t wake_refill;     /* refill workers: a key is wanted in the pool */
        pthread_cond_t started;         /* key_pool_new(): a worker has set its priority */
        pthread_t threads[2 * KEY_POOL_WORKERS_MAX];
        unsigned n_threads;
        unsigned n_job_workers;         /* threads[0..n_job_workers) serve jobs, the rest refill */
        unsigned n_started;
        bool quit;

        /* What the refill workers got (set before key_pool_new() returns, then constant). */
        KeyPoolRefillPriority refill_priority;
        int refill_priority_error;

        Job *queue_head, *queue_tail;   /* caller jobs not started yet, in arrival order */
        uint64_t vclock;                /* start tag of the job started last */
        Job *running[2 * KEY_POOL_WORKERS_MAX]; /* what each worker generates right now */
        unsigned n_running;
        Job *done_head, *done_tail;     /* finished, waiting for key_pool_dispatch() */

        unsigned target[_KEY_TYPE_MAX];
        unsigned refilling[_KEY_TYPE_MAX];      /* refill keys running or undelivered */
        bool refill_failed;                     /* stop refilling until something changes */
        EVP_PKEY *keys[_KEY_TYPE_MAX][KEY_POOL_TARGET_MAX];
        CbSecret *pems[_KEY_TYPE_MAX][KEY_POOL_TARGET_MAX];    /* each key's PKCS#8 PEM, or NULL */
        unsigned n_keys[_KEY_TYPE_MAX];
        unsigned n_jobs;                /* caller jobs queued, running or undelivered */

        /* Main thread only. */
        uint64_t next_id;
        int efd;
        sd_event_source *source;
};

static void job_free(Job *j) {
        if (!j)
                return;
        EVP_PKEY_free(j->key);
        secret_free(j->pem);
        free(j);
}

static void job_list_free(Job *j) {
        while (j) {
                Job *next = j->next;
                job_free(j);
                j = next;
        }
}

/* Caller holds the lock. The type most in need of a refill key, or -1. */
static int pool_refill_type_locked(KeyPool *p) {
        if (p->refill_failed)
                return -1;
        for (KeyType t = 0; t < _KEY_TYPE_MAX; t++)
                if (p->n_keys[t] + p->refilling[t] < p->target[t])
                        return (int) t;
        return -1;
}

static void pool_signal_done(KeyPool *p) {
        uint64_t one = 1;

        /* The counter cannot overflow in practice (dispatch resets it); EAGAIN then would
         * only mean it is already readable. */
        (void) !write(p->efd, &one, sizeof(one));
}

/* What a key of each type costs to make, in about half-milliseconds of a worker's time (RSA's
 * prime search dominates): the weights of fair queueing, so that an owner whose cheap EC keys
 * went first is not put behind another owner's RSA keys for them. */
static const unsigned key_cost[_KEY_TYPE_MAX] = {
        [KEY_TYPE_RSA_2048] = 200,
        [KEY_TYPE_RSA_3072] = 700,
        [KEY_TYPE_RSA_4096] = 2000,
        [KEY_TYPE_EC_P256] = 1,
        [KEY_TYPE_EC_P384] = 2,
};

/* Caller holds the lock. Start-time fair queueing: the queued job with the lowest start tag
 * (the oldest of those on ties), so an owner with a hundred jobs queued does not make another
 * owner's single job wait for all of them. */
static Job *pool_dequeue_locked(KeyPool *p) {
        Job *best = NULL, *best_prev = NULL, *prev = NULL;

        for (Job *j = p->queue_head; j; prev = j, j = j->next)
                if (!best || j->start < best->start) {
                        best = j;
                        best_prev = prev;
                }
        if (!best)
                return NULL;
        if (best_prev)
                best_prev->next = best->next;
        else
                p->queue_head = best->next;
        if (p->queue_tail == best)
                p->queue_tail = best_prev;
        best->next = NULL;
        if (best->start > p->vclock)
                p->vclock = best->start;
        return best;
}

typedef struct Worker {
        KeyPool *pool;
        unsigned index;
        bool refill;
} Worker;

/* A refill worker lowers itself to SCHED_IDLE: it runs only on CPU time nothing else of
 * normal priority wants (the loop, on-demand key jobs, the rest of the machine). Lowering
 * one's own priority needs no privilege, but a seccomp filter may refuse the call
 * (systemd's @resources group has sched_setscheduler and setpriority): then nice 19, then
 * nothing. A thread cannot leave SCHED_IDLE again without CAP_SYS_NICE (or RLIMIT_NICE),
 * which is why refill and jobs have threads of their own. Returns what it got. */
static KeyPoolRefillPriority worker_lower_to_idle(int *ret_error) {
        struct sched_param sp = { .sched_priority = 0 };
        pid_t tid = gettid();

        if (sched_setscheduler(tid, SCHED_IDLE, &sp) == 0) {
                *ret_error = 0;
                return KEY_POOL_REFILL_IDLE;
        }
        *ret_error = -errno;
        if (setpriority(PRIO_PROCESS, (id_t) tid, KEY_POOL_REFILL_FALLBACK_NICE) == 0)
                return KEY_POOL_REFILL_NICE;
        return KEY_POOL_REFILL_NORMAL;
}

static void *pool_worker(void *userdata) {
        Worker *w = userdata;
        KeyPool *p = w->pool;
        unsigned me = w->index;
        bool refill = w->refill;
        KeyPoolRefillPriority prio = KEY_POOL_REFILL_NORMAL;
        int prio_error = 0;

        free(w);
        if (refill)
                prio = worker_lower_to_idle(&prio_error);
        else
        {
                /* Someone waits for these keys: below the event loop so its turn comes first,
                 * above any refill; never above the process itself (root could raise it). */
                errno = 0;
                int now = getpriority(PRIO_PROCESS, (id_t) gettid());
                if (errno == 0 && now < KEY_POOL_WORKER_NICE)
                        (void) setpriority(PRIO_PROCESS, (id_t) gettid(), KEY_POOL_WORKER_NICE);
        }

        pthread_mutex_lock(&p->lock);
        if (refill && prio > p->refill_priority) {
                /* The worst any refill worker got is what the pool reports. */
                p->refill_priority = prio;
                p->refill_priority_error = prio_error;
        }
        p->n_started++;
        pthread_cond_broadcast(&p->started);
        for (;;) {
                Job *j;
                int r;

                if (p->quit)
                        break;

                if (!refill) {
                        j = pool_dequeue_locked(p);
                        if (!j) {
                                pthread_cond_wait(&p->wake_jobs, &p->lock);
                                continue;
                        }
                } else {
                        int t = pool_refill_type_locked(p);

                        if (t < 0) {
                                pthread_cond_wait(&p->wake_refill, &p->lock);
                                continue;
                        }
                        j = calloc(1, sizeof(*j));
                        if (!j) {
                                p->refill_failed = true;
                                continue;
                        }
                        j->type = (KeyType) t;
                        p->refilling[t]++;
                }

                p->running[me] = j;
                p->n_running++;
                pthread_mutex_unlock(&p->lock);

                r = key_generate(j->type, &j->key);
                /* What the journal stores of it: exported here, not on the loop. Without it
                 * (out of guarded memory) key_pool_take_with_pem() gives the key alone. */
                if (r >= 0 && refill && key_export_pkcs8_pem(j->key, &j->pem) < 0)
                        j->pem = NULL;

                pthread_mutex_lock(&p->lock);
                p->running[me] = NULL;
                p->n_running--;
                j->error = r;
                if (p->done_tail)
                        p->done_tail->next = j;
                else
                        p->done_head = j;
                p->done_tail = j;
                /* The loop is woken with the lock released: woken first, it would preempt
                 * this thread (nice 5 or SCHED_IDLE) inside the lock and then wait on it for as
                 * long as a busy machine keeps this thread off the CPU. */
                pthread_mutex_unlock(&p->lock);
                pool_signal_done(p);
                pthread_mutex_lock(&p->lock);
        }
        pthread_mutex_unlock(&p->lock);
        return NULL;
}

/* One "type=count" word of a pool spec, p[0..len). -EINVAL (not of that form, an unknown
 * type, a type seen already), -ERANGE (a count above KEY_POOL_TARGET_MAX). */
static int parse_spec_word(const char *p, size_t len, const bool seen[_KEY_TYPE_MAX], KeyType *ret_type,
                           unsigned *ret_count) {
        char word[64], *eq, *end;
        unsigned long n;
        KeyType t;

        if (len >= sizeof(word))
                return -EINVAL;
        memcpy(word, p, len);
        word[len] = 0;

        eq = strchr(word, '=');
        if (!eq || eq[1] < '0' || eq[1] > '9')
                return -EINVAL;
        *eq = 0;
        t = key_type_from_string(word);
        *eq = '=';
        if (t < 0 || seen[t])
                return -EINVAL;

        errno = 0;
        n = strtoul(eq + 1, &end, 10);
        if (*end != 0 || errno != 0)
                return -EINVAL;
        if (n > KEY_POOL_TARGET_MAX)
                return -ERANGE;

        *ret_type = t;
        *ret_count = (unsigned) n;
        return 0;
}

int key_pool_parse_spec(const char *spec, unsigned ret_targets[_KEY_TYPE_MAX], char **ret_bad_word) {
        unsigned targets[_KEY_TYPE_MAX] = {};
        bool seen[_KEY_TYPE_MAX] = {};
        const char *p = spec;

        if (!ret_targets)
                return -EINVAL;

        while (p && *p) {
                unsigned n;
                size_t len;
                KeyType t;
                int r;

                p += strspn(p, " \t");
                if (!*p)
                        break;
                len = strcspn(p, " \t");

                r = parse_spec_word(p, len, seen, &t, &n);
                if (r < 0) {
                        if (ret_bad_word)
                                *ret_bad_word = strndup(p, len);
                        return r;
                }

                seen[t] = true;
                targets[t] = n;
                p += len;
        }

        memcpy(ret_targets, targets, sizeof(targets));
        return 0;
}

unsigned key_pool_default_workers(void) {
        cpu_set_t set;
        int n = 0;

        if (sched_getaffinity(0, sizeof set, &set) == 0)
                n = CPU_COUNT(&set);
        if (n <= 0)
                n = (int) sysconf(_SC_NPROCESSORS_ONLN);
        if (n <= 0)
                n = 1;
        return (unsigned) n > KEY_POOL_WORKERS_MAX ? KEY_POOL_WORKERS_MAX : (unsigned) n;
}

int key_pool_new(KeyPool **ret) {
        return key_pool_new_with_workers(key_pool_default_workers(), ret);
}

/* The lock and the condition variables; on failure none of them is left initialized. */
static int pool_init_sync(KeyPool *p) {
        int r;

        r = pthread_mutex_init(&p->lock, NULL);
        if (r != 0)
                return -r;

        r = pthread_cond_init(&p->wake_jobs, NULL);
        if (r != 0) {
                pthread_mutex_destroy(&p->lock);
                return -r;
        }

        r = pthread_cond_init(&p->wake_refill, NULL);
        if (r != 0) {
                pthread_cond_destroy(&p->wake_jobs);
                pthread_mutex_destroy(&p->lock);
                return -r;
        }

        r = pthread_cond_init(&p->started, NULL);
        if (r != 0) {
                pthread_cond_destroy(&p->wake_refill);
                pthread_cond_destroy(&p->wake_jobs);
                pthread_mutex_destroy(&p->lock);
                return -r;
        }

        return 0;
}

int key_pool_new_with_workers(unsigned workers, KeyPool **ret) {
        _cleanup_free_ KeyPool *unsynced = NULL;
        sigset_t all, saved;
        int r;

        if (!ret || workers == 0 || workers > KEY_POOL_WORKERS_MAX)
                return -EINVAL;

        unsynced = calloc(1, sizeof(*unsynced));
        if (!unsynced)
                return -ENOMEM;
        unsynced->next_id = 1;
        unsynced->efd = -EBADF;

        r = pool_init_sync(unsynced);
        if (r < 0)
                return r;

        /* From here on key_pool_free() undoes everything. */
        _cleanup_(key_pool_freep) KeyPool *p = TAKE_PTR(unsynced);
        p->refill_priority = KEY_POOL_REFILL_IDLE;      /* the best; workers report worse */

        p->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (p->efd < 0)
                return -errno;

        /* The workers must never receive process signals (the daemon takes them through
         * signalfd on the main thread), whatever the mask is when we are called. */
        /* workers job workers first ("cb-keygen", nice KEY_POOL_WORKER_NICE), then as many
         * refill workers ("cb-keyfill", SCHED_IDLE). */
        sigfillset(&all);
        pthread_sigmask(SIG_BLOCK, &all, &saved);
        for (unsigned i = 0; i < 2 * workers; i++) {
                _cleanup_free_ Worker *w = malloc(sizeof *w);
                if (!w) {
                        r = -ENOMEM;
                        break;
                }
                *w = (Worker) { .pool = p, .index = i, .refill = i >= workers };
                r = -pthread_create(&p->threads[i], NULL, pool_worker, w);
                if (r < 0)
                        break;
                TAKE_PTR(w);            /* pool_worker() frees it */
                p->n_threads++;
                if (i < workers)
                        p->n_job_workers++;
                (void) pthread_setname_np(p->threads[i], i < workers ? "cb-keygen" : "cb-keyfill");
        }
        pthread_sigmask(SIG_SETMASK, &saved, NULL);
        if (r < 0)
                return r;

        /* Every worker has set its priority before we return: key_pool_refill_priority() is
         * final from here on. */
        pthread_mutex_lock(&p->lock);
        while (p->n_started < p->n_threads)
                pthread_cond_wait(&p->started, &p->lock);
        pthread_mutex_unlock(&p->lock);

        *ret = TAKE_PTR(p);
        return 0;
}

KeyPool *key_pool_free(KeyPool *p) {
        if (!p)
                return NULL;

        key_pool_detach_event(p);

        if (p->n_threads > 0) {
                pthread_mutex_lock(&p->lock);
                p->quit = true;
                pthread_cond_broadcast(&p->wake_jobs);
                pthread_cond_broadcast(&p->wake_refill);
                pthread_mutex_unlock(&p->lock);
                for (unsigned i = 0; i < p->n_threads; i++)
                        pthread_join(p->threads[i], NULL);
        }

        job_list_free(p->queue_head);
        job_list_free(p->done_head);
        for (KeyType t = 0; t < _KEY_TYPE_MAX; t++)
                for (unsigned i = 0; i < p->n_keys[t]; i++) {
                        EVP_PKEY_free(p->keys[t][i]);
                        secret_free(p->pems[t][i]);
                }

        if (p->efd >= 0)
                close(p->efd);
        pthread_cond_destroy(&p->wake_jobs);
        pthread_cond_destroy(&p->wake_refill);
        pthread_cond_destroy(&p->started);
        pthread_mutex_destroy(&p->lock);
        free(p);
        return NULL;
}

int key_pool_set_targets(KeyPool *p, const unsigned targets[_KEY_TYPE_MAX]) {
        if (!p || !targets)
                return -EINVAL;
        for (KeyType t = 0; t < _KEY_TYPE_MAX; t++)
                if (targets[t] > KEY_POOL_TARGET_MAX)
                        return -ERANGE;

        pthread_mutex_lock(&p->lock);
        for (KeyType t = 0; t < _KEY_TYPE_MAX; t++) {
                p->target[t] = targets[t];
                while (p->n_keys[t] > p->target[t]) {
                        p->n_keys[t]--;
                        EVP_PKEY_free(p->keys[t][p->n_keys[t]]);
                        p->keys[t][p->n_keys[t]] = NULL;
                        p->pems[t][p->n_keys[t]] = secret_free(p->pems[t][p->n_keys[t]]);
                }
        }
        p->refill_failed = false;
        pthread_cond_broadcast(&p->wake_refill);
        pthread_mutex_unlock(&p->lock);
        return 0;
}

static int pool_on_io(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        KeyPool *p = userdata;

        (void) key_pool_dispatch(p);
        return 0;
}

int key_pool_attach_event(KeyPool *p, sd_event *e, int64_t priority) {
        int r;

        if (!p || !e)
                return -EINVAL;
        if (p->source)
                return -EBUSY;

        r = sd_event_add_io(e, &p->source, p->efd, EPOLLIN, pool_on_io, p);
        if (r < 0)
                return r;

        r = sd_event_source_set_priority(p->source, priority);
        if (r < 0) {
                p->source = sd_event_source_disable_unref(p->source);
                return r;
        }
        (void) sd_event_source_set_description(p->source, "key-pool");
        return 0;
}

void key_pool_detach_event(KeyPool *p) {
        if (p)
                p->source = sd_event_source_disable_unref(p->source);
}

int key_pool_get_fd(KeyPool *p) {
        if (!p)
                return -EINVAL;
        return p->efd;
}

int key_pool_dispatch(KeyPool *p) {
        uint64_t counter;
        int n = 0;

        if (!p)
                return -EINVAL;

        /* Reset the eventfd first: anything finished after this read writes it again. */
        if (read(p->efd, &counter, sizeof(counter)) < 0 && errno != EAGAIN)
                return -errno;

        for (;;) {
                Job *j;

                pthread_mutex_lock(&p->lock);
                j = p->done_head;
                if (!j) {
                        pthread_mutex_unlock(&p->lock);
                        break;
                }
                p->done_head = j->next;
                if (!p->done_head)
                        p->done_tail = NULL;
                j->next = NULL;

                if (j->id == 0) {
                        /* Refill work: into the pool, if it is still wanted. */
                        p->refilling[j->type]--;
                        if (j->error < 0)
                                p->refill_failed = true;
                        else if (p->n_keys[j->type] < p->target[j->type]) {
                                p->pems[j->type][p->n_keys[j->type]] = j->pem;
                                p->keys[j->type][p->n_keys[j->type]++] = j->key;
                                j->key = NULL;
                                j->pem = NULL;
                        }
                        pthread_mutex_unlock(&p->lock);
                        job_free(j);
                } else {
                        p->n_jobs--;
                        pthread_mutex_unlock(&p->lock);

                        /* Handlers run unlocked: they may take, queue or cancel. */
                        if (!j->cancelled) {
                                EVP_PKEY *key = j->key;

                                j->key = NULL;
                                j->handler(p, j->id, j->error, key, j->userdata);
                        }
                        job_free(j);
                }
                n++;
        }

        return n;
}

EVP_PKEY *key_pool_take(KeyPool *p, KeyType t) {
        CbSecret *pem = NULL;
        EVP_PKEY *key = key_pool_take_with_pem(p, t, &pem);

        secret_free(pem);
        return key;
}

EVP_PKEY *key_pool_take_with_pem(KeyPool *p, KeyType t, CbSecret **ret_pem) {
        EVP_PKEY *key = NULL;

        *ret_pem = NULL;
        if (!p || t < 0 || t >= _KEY_TYPE_MAX)
                return NULL;

        pthread_mutex_lock(&p->lock);
        if (p->n_keys[t] > 0) {
                p->n_keys[t]--;
                key = p->keys[t][p->n_keys[t]];
                p->keys[t][p->n_keys[t]] = NULL;
                *ret_pem = p->pems[t][p->n_keys[t]];
                p->pems[t][p->n_keys[t]] = NULL;
        }
        p->refill_failed = false;
        pthread_cond_signal(&p->wake_refill);
        pthread_mutex_unlock(&p->lock);

        return key;
}

#define OWNERS_SEEN_MAX (KEY_POOL_SHARE_BASE / KEY_POOL_SHARE_MIN)

unsigned key_pool_owner_share(unsigned n_owners) {
        unsigned share = KEY_POOL_SHARE_BASE / (n_owners + 2);

        return share > KEY_POOL_SHARE_MIN ? share : KEY_POOL_SHARE_MIN;
}

int key_pool_generate_async(KeyPool *p, KeyType t, KeyReadyHandler handler, void *userdata, uint64_t *ret_job) {
        return key_pool_generate_async_for(p, t, 0, handler, userdata, ret_job);
}

int key_pool_generate_async_for(KeyPool *p, KeyType t, uint32_t owner, KeyReadyHandler handler, void *userdata,
                                uint64_t *ret_job) {
        uint64_t start;
        Job *j;

        if (!p || !handler || t < 0 || t >= _KEY_TYPE_MAX)
                return -EINVAL;

        j = calloc(1, sizeof(*j));
        if (!j)
                return -ENOMEM;
        j->type = t;
        j->handler = handler;
        j->userdata = userdata;

        pthread_mutex_lock(&p->lock);
        /* It starts (in virtual time) when the owner's jobs queued or running finish, and not
         * before the job started last: owners take turns, each by the time its keys cost, and
         * one who queued nothing lately goes next. Counted on the way:
         * the owner's queued jobs and the other owners with some (up to OWNERS_SEEN_MAX; past
         * it every share is the minimum anyway). */
        uint32_t others[OWNERS_SEEN_MAX];
        unsigned n_others = 0, mine = 0;
        start = p->vclock;
        for (Job *q = p->queue_head; q; q = q->next) {
                if (q->owner == owner) {
                        mine++;
                        if (q->finish > start)
                                start = q->finish;
                        continue;
                }
                bool seen = false;
                for (unsigned i = 0; i < n_others && !seen; i++)
                        seen = others[i] == q->owner;
                if (!seen && n_others < OWNERS_SEEN_MAX)
                        others[n_others++] = q->owner;
        }
        /* Started or done but not delivered yet still count as the owner's. */
        for (unsigned i = 0; i < p->n_threads; i++)
                if (p->running[i] && p->running[i]->owner == owner && p->running[i]->id != 0) {
                        mine++;
                        if (p->running[i]->finish > start)
                                start = p->running[i]->finish;
                }
        for (Job *q = p->done_head; q; q = q->next)
                if (q->owner == owner && q->id != 0)
                        mine++;
        if (p->n_jobs >= KEY_POOL_JOBS_MAX || mine >= key_pool_owner_share(n_others)) {
                pthread_mutex_unlock(&p->lock);
                free(j);
                return -EBUSY;
        }
        j->id = p->next_id++;
        j->owner = owner;
        j->start = start;
        j->finish = start + key_cost[t];
        p->n_jobs++;
        if (p->queue_tail)
                p->queue_tail->next = j;
        else
                p->queue_head = j;
        p->queue_tail = j;
        pthread_cond_signal(&p->wake_jobs);
        pthread_mutex_unlock(&p->lock);

        if (ret_job)
                *ret_job = j->id;
        return 0;
}

int key_pool_cancel(KeyPool *p, uint64_t job) {
        Job *prev = NULL;

        if (!p || job == 0)
                return -EINVAL;

        pthread_mutex_lock(&p->lock);

        for (Job *j = p->queue_head; j; prev = j, j = j->next)
                if (j->id == job) {
                        if (prev)
                                prev->next = j->next;
                        else
                                p->queue_head = j->next;
                        if (p->queue_tail == j)
                                p->queue_tail = prev;
                        p->n_jobs--;
                        pthread_mutex_unlock(&p->lock);
                        job_free(j);
                        return 0;
                }

        for (unsigned i = 0; i < p->n_threads; i++)
                if (p->running[i] && p->running[i]->id == job && !p->running[i]->cancelled) {
                        /* The worker owns it until it lands in the done list; dispatch drops it. */
                        p->running[i]->cancelled = true;
                        pthread_mutex_unlock(&p->lock);
                        return 0;
                }

        for (Job *j = p->done_head; j; j = j->next)
                if (j->id == job && !j->cancelled) {
                        j->cancelled = true;
                        pthread_mutex_unlock(&p->lock);
                        return 0;
                }

        pthread_mutex_unlock(&p->lock);
        return -ENOENT;
}

unsigned key_pool_count(KeyPool *p, KeyType t) {
        unsigned n;

        if (!p || t < 0 || t >= _KEY_TYPE_MAX)
                return 0;
        pthread_mutex_lock(&p->lock);
        n = p->n_keys[t];
        pthread_mutex_unlock(&p->lock);
        return n;
}

unsigned key_pool_target(KeyPool *p, KeyType t) {
        unsigned n;

        if (!p || t < 0 || t >= _KEY_TYPE_MAX)
                return 0;
        pthread_mutex_lock(&p->lock);
        n = p->target[t];
        pthread_mutex_unlock(&p->lock);
        return n;
}

bool key_pool_is_idle(KeyPool *p) {
        bool idle;

        if (!p)
                return true;
        pthread_mutex_lock(&p->lock);
        idle = !p->queue_head && p->n_running == 0 && !p->done_head && pool_refill_type_locked(p) < 0;
        pthread_mutex_unlock(&p->lock);
        return idle;
}

KeyPoolRefillPriority key_pool_refill_priority(KeyPool *p, int *ret_error) {
        KeyPoolRefillPriority prio;

        if (!p)
                return KEY_POOL_REFILL_NORMAL;
        pthread_mutex_lock(&p->lock);
        prio = p->refill_priority;
        if (ret_error)
                *ret_error = p->refill_priority_error;
        pthread_mutex_unlock(&p->lock);
        return prio;
}

const char *key_pool_refill_priority_to_string(KeyPoolRefillPriority prio) {
        switch (prio) {
        case KEY_POOL_REFILL_IDLE:
                return "SCHED_IDLE";
        case KEY_POOL_REFILL_NICE:
                return "nice 19 (SCHED_IDLE refused)";
        case KEY_POOL_REFILL_NORMAL:
                return "normal priority (SCHED_IDLE and nice refused)";
        }
        return NULL;
}
