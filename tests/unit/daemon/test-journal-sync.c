/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* journal-sync: group commit's fsync worker. Callbacks run on the loop, once, in request
 * order, after the files are synced; a burst shares rounds; cancel; shutdown runs the
 * waiting callbacks; errors reach the callbacks. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

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

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_burst_in_order),
                cmocka_unit_test(test_wal_synced_too),
                cmocka_unit_test(test_cancel),
                cmocka_unit_test(test_shutdown_runs_waiters),
                cmocka_unit_test(test_error_reaches_callback),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
