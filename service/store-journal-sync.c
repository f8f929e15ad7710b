/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sqlite3.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "basic.h"
#include "store-journal-sync.h"

struct JournalSyncWait {
        JournalSync *owner;
        JournalSyncWait *next;
        uint64_t generation;
        journal_synced_t cb;
        void *userdata;
};

struct JournalSync {
        char *paths[2];                 /* database, WAL */
        sd_event_source *io;
        int efd;
        pthread_t thread;
        bool thread_started;

        pthread_mutex_t lock;
        pthread_cond_t cond;
        uint64_t requested;             /* generations asked for */
        uint64_t done;                  /* last generation known on disk */
        int done_error;                 /* result of the round that reached `done` */
        /* The last generation whose round failed, and how (0: none). A later round that
         * succeeds does not make it good: after a failed fsync the kernel may have dropped the
         * pages it could not write, and the next fsync has nothing left to fail on. */
        uint64_t failed;
        int failed_error;
        bool stop;
        bool checkpoint_wanted;
        unsigned long rounds;
        unsigned long checkpoints;

        sqlite3 *db;                    /* worker thread only: its connection for checkpoints */

        JournalSyncWait *waiters;       /* loop thread only, in request order */
        JournalSyncWait **tail;
};

/* fsync() both files. A missing WAL (checkpointed away) is fine. */
static int sync_files(JournalSync *j) {
        int r = 0;

        for (size_t i = 0; i < 2; i++) {
                int fd = open(j->paths[i], O_RDONLY | O_CLOEXEC | O_NOCTTY);
                if (fd < 0) {
                        if (errno != ENOENT && r == 0)
                                r = -errno;
                        continue;
                }
                if (fsync(fd) < 0 && r == 0)
                        r = -errno;
                close(fd);
        }
        return r;
}

/* A TRUNCATE checkpoint on the worker's own connection, without a busy handler: true when
 * done, false when the loop's connection holds a lock (tried again) or it failed. */
static bool checkpoint(JournalSync *j) {
        if (!j->db) {
                /* A statement first: a connection that has read nothing is not in WAL mode yet,
                 * and its checkpoint would do nothing. */
                if (sqlite3_open_v2(j->paths[0], &j->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX,
                                    NULL) != SQLITE_OK ||
                    sqlite3_exec(j->db, "PRAGMA schema_version", NULL, NULL, NULL) != SQLITE_OK) {
                        sqlite3_close(j->db);
                        j->db = NULL;
                        return false;
                }
        }
        return sqlite3_wal_checkpoint_v2(j->db, NULL, SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL) == SQLITE_OK;
}

/* Waits (lock held) until the monotonic time `until`, a new sync request or stop. */
static void wait_until(JournalSync *j, uint64_t until) {
        struct timespec ts = { .tv_sec = (time_t) (until / 1000000), .tv_nsec = (long) (until % 1000000) * 1000 };

        while (!j->stop && j->requested == j->done)
                if (pthread_cond_timedwait(&j->cond, &j->lock, &ts) != 0)
                        break;
}

static void *worker(void *userdata) {
        JournalSync *j = userdata;
        uint64_t checkpoint_after = 0;

        pthread_mutex_lock(&j->lock);
        for (;;) {
                while (!j->stop && j->requested == j->done && !j->checkpoint_wanted)
                        pthread_cond_wait(&j->cond, &j->lock);
                if (j->stop)
                        break;
                if (j->requested != j->done) {
                        uint64_t target = j->requested;
                        pthread_mutex_unlock(&j->lock);

                        int r = sync_files(j);

                        pthread_mutex_lock(&j->lock);
                        j->done = target;
                        j->done_error = r;
                        if (r < 0) {
                                j->failed = target;
                                j->failed_error = r;
                        }
                        j->rounds++;
                        /* The loop is woken with the lock released (it takes the lock to read
                         * the result, and would wait for this thread otherwise). */
                        pthread_mutex_unlock(&j->lock);
                        uint64_t one = 1;
                        (void) !write(j->efd, &one, sizeof one);
                        pthread_mutex_lock(&j->lock);
                        continue;
                }
                /* A checkpoint is wanted and no fsync waits. */
                uint64_t now = monotonic_usec();
                if (now < checkpoint_after) {
                        wait_until(j, checkpoint_after);
                        continue;
                }
                j->checkpoint_wanted = false;
                pthread_mutex_unlock(&j->lock);

                bool ok = checkpoint(j);

                pthread_mutex_lock(&j->lock);
                if (ok) {
                        j->checkpoints++;
                        checkpoint_after = now + JOURNAL_CHECKPOINT_INTERVAL_USEC;
                } else {
                        /* Busy: again in 20 ms. */
                        j->checkpoint_wanted = true;
                        checkpoint_after = now + 20 * 1000;
                }
        }
        pthread_mutex_unlock(&j->lock);
        sqlite3_close(j->db);
        j->db = NULL;
        return NULL;
}

/* Waiters up to `done` learn `error`, or the failure of a round that covered them (`failed`),
 * even when a later round (which they are also below) succeeded. */
static void run_callbacks(JournalSync *j, uint64_t done, int error, uint64_t failed, int failed_error) {
        while (j->waiters && j->waiters->generation <= done) {
                JournalSyncWait *w = j->waiters;
                j->waiters = w->next;
                if (!j->waiters)
                        j->tail = &j->waiters;
                journal_synced_t cb = w->cb;
                void *ud = w->userdata;
                int e = w->generation <= failed ? failed_error : error;
                free(w);
                cb(e, ud);
        }
}

static int on_event(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        JournalSync *j = userdata;
        uint64_t n, done, failed;
        int error, failed_error;

        (void) !read(j->efd, &n, sizeof n);
        pthread_mutex_lock(&j->lock);
        done = j->done;
        error = j->done_error;
        failed = j->failed;
        failed_error = j->failed_error;
        pthread_mutex_unlock(&j->lock);
        run_callbacks(j, done, error, failed, failed_error);
        return 0;
}

int journal_sync_new(sd_event *event, const char *db_path, JournalSync **ret) {
        JournalSync *j = calloc(1, sizeof(*j));
        sigset_t all, old;
        int r;

        if (!j)
                return -ENOMEM;
        j->efd = -1;
        j->tail = &j->waiters;
        pthread_condattr_t attr;
        pthread_mutex_init(&j->lock, NULL);
        pthread_condattr_init(&attr);
        pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
        pthread_cond_init(&j->cond, &attr);
        pthread_condattr_destroy(&attr);
        j->paths[0] = strdup(db_path);
        if (!j->paths[0] || asprintf(&j->paths[1], "%s-wal", db_path) < 0) {
                j->paths[1] = NULL;
                journal_sync_free(j);
                return -ENOMEM;
        }
        j->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (j->efd < 0) {
                r = -errno;
                journal_sync_free(j);
                return r;
        }
        r = sd_event_add_io(event, &j->io, j->efd, EPOLLIN, on_event, j);
        if (r < 0) {
                journal_sync_free(j);
                return r;
        }
        /* The worker takes no signals: the loop's signalfd sources must see them all. */
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &old);
        r = -pthread_create(&j->thread, NULL, worker, j);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        if (r < 0) {
                journal_sync_free(j);
                return r;
        }
        j->thread_started = true;
        *ret = j;
        return 0;
}

int journal_sync_request(JournalSync *j, journal_synced_t cb, void *userdata, JournalSyncWait **ret) {
        JournalSyncWait *w = calloc(1, sizeof(*w));

        if (!w)
                return -ENOMEM;
        pthread_mutex_lock(&j->lock);
        w->generation = ++j->requested;
        pthread_cond_signal(&j->cond);
        pthread_mutex_unlock(&j->lock);
        w->owner = j;
        w->cb = cb;
        w->userdata = userdata;
        *j->tail = w;
        j->tail = &w->next;
        if (ret)
                *ret = w;
        return 0;
}

void journal_sync_request_checkpoint(JournalSync *j) {
        pthread_mutex_lock(&j->lock);
        j->checkpoint_wanted = true;
        pthread_cond_signal(&j->cond);
        pthread_mutex_unlock(&j->lock);
}

JournalSyncWait *journal_sync_wait_cancel(JournalSyncWait *w) {
        if (!w)
                return NULL;
        JournalSync *j = w->owner;
        for (JournalSyncWait **p = &j->waiters; *p; p = &(*p)->next)
                if (*p == w) {
                        *p = w->next;
                        if (j->tail == &w->next)
                                j->tail = p;
                        free(w);
                        break;
                }
        return NULL;
}

JournalSync *journal_sync_free(JournalSync *j) {
        if (!j)
                return NULL;
        if (j->thread_started) {
                pthread_mutex_lock(&j->lock);
                j->stop = true;
                pthread_cond_signal(&j->cond);
                pthread_mutex_unlock(&j->lock);
                pthread_join(j->thread, NULL);
        }
        if (j->waiters)
                run_callbacks(j, UINT64_MAX, sync_files(j), j->failed, j->failed_error);
        sd_event_source_disable_unref(j->io);
        if (j->efd >= 0)
                close(j->efd);
        pthread_cond_destroy(&j->cond);
        pthread_mutex_destroy(&j->lock);
        free(j->paths[0]);
        free(j->paths[1]);
        free(j);
        return NULL;
}

unsigned long journal_sync_get_rounds(const JournalSync *j) {
        return j ? j->rounds : 0;
}

unsigned long journal_sync_get_checkpoints(const JournalSync *j) {
        unsigned long n;

        if (!j)
                return 0;
        pthread_mutex_lock((pthread_mutex_t *) &j->lock);
        n = j->checkpoints;
        pthread_mutex_unlock((pthread_mutex_t *) &j->lock);
        return n;
}
