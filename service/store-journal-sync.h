/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Group commit for the request journal (store-db.h).
 *
 * Writes commit with synchronous=NORMAL, which in WAL mode is durable against a crash of the
 * daemon but leaves the data in the page cache; a worker thread then fsync()s the database
 * and its WAL, and the callbacks of every request made before that fsync started run on the
 * loop thread. So a burst of Enroll calls costs one fsync, and the event loop never waits for
 * the disk: it keeps answering other callers meanwhile.
 *
 * Loop thread only (except the worker itself). Never logs. */

#include <systemd/sd-event.h>

typedef struct JournalSync JournalSync;
typedef struct JournalSyncWait JournalSyncWait;

/* error: 0 when everything written before journal_sync_request() is on disk, else -errno. */
typedef void (*journal_synced_t)(int error, void *userdata);

/* db_path: the SQLite database; "<db_path>-wal" is synced too. Starts the worker. */
int journal_sync_new(sd_event *event, const char *db_path, JournalSync **ret);

/* Asks for an fsync covering every write already made; cb runs once, on the loop, when it is
 * done. *ret (optional) can cancel the callback. */
int journal_sync_request(JournalSync *j, journal_synced_t cb, void *userdata, JournalSyncWait **ret);
JournalSyncWait *journal_sync_wait_cancel(JournalSyncWait *w);

/* The worker also truncates the WAL: a TRUNCATE checkpoint on a database connection of its
 * own, so frames that held an erased key's ciphertext do not stay in the WAL, and the loop
 * never waits for the checkpoint's writes and fsyncs. Pending fsync rounds (and their
 * callbacks) go first; checkpoints are at least JOURNAL_CHECKPOINT_INTERVAL_USEC apart, so a
 * burst of takes shares one (each truncation makes the loop's next commit sync a new WAL
 * header); one the loop's writes keep busy is tried again every 20 ms until it succeeds (or
 * the worker stops). */
#define JOURNAL_CHECKPOINT_INTERVAL_USEC (1000 * 1000)
void journal_sync_request_checkpoint(JournalSync *j);

/* Number of TRUNCATE checkpoints done so far (for tests). */
unsigned long journal_sync_get_checkpoints(const JournalSync *j);

/* Stops the worker, makes one last fsync on the calling thread and runs the callbacks still
 * waiting with its result (so Enroll calls get their replies on shutdown). Accepts NULL. */
JournalSync *journal_sync_free(JournalSync *j);

/* Number of fsync rounds done so far (for tests and benchmarks). */
unsigned long journal_sync_get_rounds(const JournalSync *j);
