/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* journal-sync: group commit's fsync worker. Callbacks run on the loop, once, in request
 * order, after the files are synced; a burst shares rounds; cancel; shutdown runs the
 * waiting callbacks; errors reach the callbacks; the worker's TRUNCATE checkpoint empties a
 * real database's WAL, and waits out a writer that holds the lock. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>
#include <sqlite3.h>
#include <time.h>

#include "store-journal-sync.h"

typedef struct Seen {
        int order[64];
        int errors[64];
        size_t n;
} Seen;

typedef struct Tag {
        Seen *seen;
        int id;
        sd_event *event;
        int exit_after;         /* exit the loop when this many callbacks ran */
} Tag;

static void on_synced(int error, void *userdata) {
        Tag *t = userdata;

        t->seen->order[t->seen->n] = t->id;
        t->seen->errors[t->seen->n] = error;
        t->seen->n++;
        if (t->event && (int) t->seen->n == t->exit_after)
                sd_event_exit(t->event, 0);
}

static char *make_db(void) {
        char tmpl[4096];
        const char *tmp = getenv("TMPDIR") ?: "/tmp";

        snprintf(tmpl, sizeof tmpl, "%s/journal-sync-XXXXXX", tmp);
        assert_non_null(mkdtemp(tmpl));
        char *db = NULL;
        assert_true(asprintf(&db, "%s/test.db", tmpl) > 0);
        int fd = open(db, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
        assert_true(fd >= 0);
        assert_int_equal(write(fd, "journal", 7), 7);
        close(fd);
        return db;
}

static void remove_db(char *db) {
        char wal[4200];
        snprintf(wal, sizeof wal, "%s-wal", db);
        unlink(wal);
        unlink(db);
        *strrchr(db, '/') = 0;
        rmdir(db);
        free(db);
}

static void test_burst_in_order(void **state) {
        sd_event *e = NULL;
        JournalSync *j = NULL;
        Seen seen = {};
        Tag tags[20];
        char *db = make_db();

        assert_int_equal(sd_event_new(&e), 0);
        assert_int_equal(journal_sync_new(e, db, &j), 0);
        for (int i = 0; i < 20; i++) {
                tags[i] = (Tag) { .seen = &seen, .id = i, .event = e, .exit_after = 20 };
                assert_int_equal(journal_sync_request(j, on_synced, &tags[i], NULL), 0);
        }
        assert_int_equal(seen.n, 0);            /* nothing runs before the loop does */
        assert_int_equal(sd_event_loop(e), 0);
        assert_int_equal(seen.n, 20);
        for (int i = 0; i < 20; i++) {
                assert_int_equal(seen.order[i], i);
                assert_int_equal(seen.errors[i], 0);
        }
        /* At least one round ran (how many a burst shares depends on the disk's fsync time). */
        assert_true(journal_sync_get_rounds(j) >= 1);
        assert_true(journal_sync_get_rounds(j) <= 20);
        journal_sync_free(j);
        sd_event_unref(e);
        remove_db(db);
}

static void test_wal_synced_too(void **state) {
        sd_event *e = NULL;
        JournalSync *j = NULL;
        Seen seen = {};
        char *db = make_db(), wal[4200];

        snprintf(wal, sizeof wal, "%s-wal", db);
        int fd = open(wal, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
        assert_true(fd >= 0);
        assert_int_equal(write(fd, "wal", 3), 3);
        close(fd);
        assert_int_equal(sd_event_new(&e), 0);
        assert_int_equal(journal_sync_new(e, db, &j), 0);
        Tag t = { .seen = &seen, .id = 7, .event = e, .exit_after = 1 };
        assert_int_equal(journal_sync_request(j, on_synced, &t, NULL), 0);
        assert_int_equal(sd_event_loop(e), 0);
        assert_int_equal(seen.n, 1);
        assert_int_equal(seen.errors[0], 0);
        journal_sync_free(j);
        sd_event_unref(e);
        remove_db(db);
}

/* Waits (without running the loop) until the worker has done `rounds` rounds. */
static void wait_rounds(JournalSync *j, unsigned long rounds) {
        for (int i = 0; i < 10000 && journal_sync_get_rounds(j) < rounds; i++)
                usleep(1000);
        assert_true(journal_sync_get_rounds(j) >= rounds);
}

/* A round fails (the WAL's path a symlink loop: ELOOP), the next one succeeds, and the loop
 * reads both results at once: the first waiter still learns of the failure (what that fsync
 * could not write may be gone although the next one succeeded), the second of the success. */
static void test_failure_not_hidden_by_later_success(void **state) {
        sd_event *e = NULL;
        JournalSync *j = NULL;
        Seen seen = {};
        char *db = make_db(), wal[4200];

        snprintf(wal, sizeof wal, "%s-wal", db);
        assert_int_equal(symlink(wal, wal), 0);
        assert_int_equal(sd_event_new(&e), 0);
        assert_int_equal(journal_sync_new(e, db, &j), 0);
        Tag a = { .seen = &seen, .id = 1 }, b = { .seen = &seen, .id = 2, .event = e, .exit_after = 2 };
        assert_int_equal(journal_sync_request(j, on_synced, &a, NULL), 0);
        wait_rounds(j, 1);
        assert_int_equal(unlink(wal), 0);
        assert_int_equal(journal_sync_request(j, on_synced, &b, NULL), 0);
        wait_rounds(j, 2);
        assert_int_equal(seen.n, 0);    /* nothing reported before the loop runs */
        assert_int_equal(sd_event_loop(e), 0);
        assert_int_equal(seen.n, 2);
        assert_int_equal(seen.order[0], 1);
        assert_int_equal(seen.errors[0], -ELOOP);
        assert_int_equal(seen.order[1], 2);
        assert_int_equal(seen.errors[1], 0);
        journal_sync_free(j);
        sd_event_unref(e);
        remove_db(db);
}

static void test_cancel(void **state) {
        sd_event *e = NULL;
        JournalSync *j = NULL;
        JournalSyncWait *w = NULL;
        Seen seen = {};
        char *db = make_db();

        assert_int_equal(sd_event_new(&e), 0);
        assert_int_equal(journal_sync_new(e, db, &j), 0);
        Tag a = { .seen = &seen, .id = 1 }, b = { .seen = &seen, .id = 2, .event = e, .exit_after = 1 };
        assert_int_equal(journal_sync_request(j, on_synced, &a, &w), 0);
        assert_int_equal(journal_sync_request(j, on_synced, &b, NULL), 0);
        assert_null(journal_sync_wait_cancel(w));
        assert_int_equal(sd_event_loop(e), 0);
        assert_int_equal(seen.n, 1);
        assert_int_equal(seen.order[0], 2);     /* the cancelled one never ran */
        journal_sync_free(j);
        sd_event_unref(e);
        remove_db(db);
}

static void test_shutdown_runs_waiters(void **state) {
        sd_event *e = NULL;
        JournalSync *j = NULL;
        Seen seen = {};
        char *db = make_db();

        assert_int_equal(sd_event_new(&e), 0);
        assert_int_equal(journal_sync_new(e, db, &j), 0);
        Tag a = { .seen = &seen, .id = 1 }, b = { .seen = &seen, .id = 2 };
        assert_int_equal(journal_sync_request(j, on_synced, &a, NULL), 0);
        assert_int_equal(journal_sync_request(j, on_synced, &b, NULL), 0);
        /* No loop iteration: freeing syncs once more and answers both, in order. */
        journal_sync_free(j);
        assert_int_equal(seen.n, 2);
        assert_int_equal(seen.order[0], 1);
        assert_int_equal(seen.order[1], 2);
        assert_int_equal(seen.errors[0], 0);
        sd_event_unref(e);
        remove_db(db);
}

static void test_error_reaches_callback(void **state) {
        sd_event *e = NULL;
        JournalSync *j = NULL;
        Seen seen = {};
        char *db = make_db(), dir[4200];

        /* The "database" is a directory the process may open but the path below it is not
         * a file: make the database path itself unreadable by replacing it with a dangling
         * path under a file (ENOTDIR). */
        snprintf(dir, sizeof dir, "%s/sub/test.db", db);
        assert_int_equal(sd_event_new(&e), 0);
        assert_int_equal(journal_sync_new(e, dir, &j), 0);
        Tag t = { .seen = &seen, .id = 3, .event = e, .exit_after = 1 };
        assert_int_equal(journal_sync_request(j, on_synced, &t, NULL), 0);
        assert_int_equal(sd_event_loop(e), 0);
        assert_int_equal(seen.n, 1);
        assert_int_equal(seen.errors[0], -ENOTDIR);
        journal_sync_free(j);
        sd_event_unref(e);
        remove_db(db);
}

static off_t file_size(const char *path) {
        struct stat st;

        assert_int_equal(stat(path, &st), 0);
        return st.st_size;
}

/* Polls (the checkpoint runs on the worker after the round's callbacks): true once the worker
 * has done n checkpoints, false after 10 s. */
static bool wait_checkpoints(JournalSync *j, unsigned long n) {
        for (int i = 0; i < 1000; i++) {
                if (journal_sync_get_checkpoints(j) >= n)
                        return true;
                nanosleep(&(struct timespec) { .tv_nsec = 10 * 1000 * 1000 }, NULL);
        }
        return false;
}

static void exec_ok(sqlite3 *db, const char *sql) {
        assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
}

static void test_checkpoint_truncates_wal(void **state) {
        sd_event *e = NULL;
        JournalSync *j = NULL;
        Seen seen = {};
        sqlite3 *db = NULL;
        char *path = make_db(), wal[4200];
        sqlite3_stmt *st = NULL;

        snprintf(wal, sizeof wal, "%s-wal", path);
        unlink(path);
        assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
        exec_ok(db, "PRAGMA journal_mode=WAL; PRAGMA wal_autocheckpoint=0; PRAGMA synchronous=NORMAL;"
                    "CREATE TABLE t (v TEXT); INSERT INTO t VALUES ('secret ciphertext');");
        exec_ok(db, "UPDATE t SET v = 'erased'");
        assert_true(file_size(wal) > 0);

        assert_int_equal(sd_event_new(&e), 0);
        assert_int_equal(journal_sync_new(e, path, &j), 0);
        Tag t = { .seen = &seen, .id = 1, .event = e, .exit_after = 1 };
        assert_int_equal(journal_sync_request(j, on_synced, &t, NULL), 0);
        journal_sync_request_checkpoint(j);
        assert_int_equal(sd_event_loop(e), 0);
        assert_int_equal(seen.errors[0], 0);
        assert_true(wait_checkpoints(j, 1));
        assert_int_equal(file_size(wal), 0);

        /* A writer holding the lock: the checkpoint waits (tried again) and then truncates. */
        exec_ok(db, "BEGIN IMMEDIATE; UPDATE t SET v = 'again';");
        journal_sync_request_checkpoint(j);
        nanosleep(&(struct timespec) { .tv_nsec = 100 * 1000 * 1000 }, NULL);
        assert_int_equal(journal_sync_get_checkpoints(j), 1);
        exec_ok(db, "COMMIT");
        assert_true(wait_checkpoints(j, 2));
        assert_int_equal(file_size(wal), 0);

        /* Everything is in the database itself. */
        assert_int_equal(sqlite3_prepare_v2(db, "SELECT v FROM t", -1, &st, NULL), SQLITE_OK);
        assert_int_equal(sqlite3_step(st), SQLITE_ROW);
        assert_string_equal((const char *) sqlite3_column_text(st, 0), "again");
        sqlite3_finalize(st);

        journal_sync_free(j);
        sd_event_unref(e);
        assert_int_equal(sqlite3_close(db), SQLITE_OK);
        char shm[4200];
        snprintf(shm, sizeof shm, "%s-shm", path);
        unlink(shm);
        remove_db(path);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_burst_in_order),
                cmocka_unit_test(test_wal_synced_too),
                cmocka_unit_test(test_failure_not_hidden_by_later_success),
                cmocka_unit_test(test_cancel),
                cmocka_unit_test(test_shutdown_runs_waiters),
                cmocka_unit_test(test_error_reaches_callback),
                cmocka_unit_test(test_checkpoint_truncates_wal),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
