/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <fcntl.h>
#include <limits.h>
#include <sodium.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "basic.h"
#include "store-db.h"

#define STORE_DB_NAME "certbroker.db"
#define STORE_SCHEMA_VERSION 5

/* Prepared statements kept for the next use of the same SQL (every SQL text here is a literal:
 * the pointer stays valid as long as the store). */
#define STMT_CACHE_SIZE 40U

typedef struct StmtSlot {
        const char *sql;
        sqlite3_stmt *st;
        bool in_use;            /* handed out by prepare(), not yet back through stmt_done() */
        uint64_t used;          /* last use, for replacing the least recently used */
} StmtSlot;

struct Store {
        sqlite3 *db;
        StoreCipher *cipher;
        char *path;
        bool group_commit;      /* inserts commit without fsync; the caller syncs (store-journal-sync.h) */
        store_erased_t erased;  /* under group commit: erases too, and this is told (store-db.h) */
        void *erased_userdata;
        bool sync_full;         /* the connection's level now: synchronous=FULL, else NORMAL */
        StmtSlot stmts[STMT_CACHE_SIZE];
        uint64_t stmt_clock;
};

/* ---- ids ---- */

void store_id_new(char ret[STORE_ID_LEN + 1]) {
        static const char hex[] = "0123456789abcdef";
        uint8_t b[STORE_ID_LEN / 2];

        randombytes_buf(b, sizeof(b));
        for (size_t i = 0; i < sizeof(b); i++) {
                ret[2 * i] = hex[b[i] >> 4];
                ret[2 * i + 1] = hex[b[i] & 15];
        }
        ret[STORE_ID_LEN] = 0;
}

bool store_id_is_valid(const char *id) {
        if (!id)
                return false;
        for (size_t i = 0; i < STORE_ID_LEN; i++)
                if (!((id[i] >= '0' && id[i] <= '9') || (id[i] >= 'a' && id[i] <= 'f')))
                        return false;       /* also catches a NUL before the end */
        return id[STORE_ID_LEN] == 0;
}

/* ---- records ---- */

static void strv_free(char **l) {
        if (!l)
                return;
        for (char **i = l; *i; i++)
                free(*i);
        free(l);
}

/* ---- SQLite helpers ---- */

static int errno_from_sqlite(int rc) {
        switch (rc & 0xff) {
        case SQLITE_OK:
        case SQLITE_DONE:
        case SQLITE_ROW:
                return 0;
        case SQLITE_NOMEM:
                return -ENOMEM;
        case SQLITE_BUSY:
        case SQLITE_LOCKED:
                return -EBUSY;
        case SQLITE_FULL:
                return -ENOSPC;
        case SQLITE_CORRUPT:
        case SQLITE_NOTADB:
                return -EUCLEAN;
        case SQLITE_READONLY:
        case SQLITE_PERM:
        case SQLITE_AUTH:
                return -EACCES;
        case SQLITE_CONSTRAINT:
                return (rc == SQLITE_CONSTRAINT_PRIMARYKEY || rc == SQLITE_CONSTRAINT_UNIQUE) ? -EEXIST : -EINVAL;
        case SQLITE_TOOBIG:
                return -E2BIG;
        case SQLITE_CANTOPEN:
                return -ENOENT;
        default:
                return -EIO;
        }
}

/* A statement for sql, from the cache when it holds one not in use; give it back with
 * stmt_done(), never sqlite3_finalize(). */
static int prepare(Store *s, const char *sql, sqlite3_stmt **ret) {
        StmtSlot *empty = NULL, *lru = NULL, *slot;
        int rc;

        for (size_t i = 0; i < STMT_CACHE_SIZE; i++) {
                StmtSlot *c = &s->stmts[i];
                if (!c->st) {
                        if (!empty)
                                empty = c;
                        continue;
                }
                if (c->in_use)
                        continue;
                if (c->sql == sql || strcmp(c->sql, sql) == 0) {
                        c->in_use = true;
                        c->used = ++s->stmt_clock;
                        *ret = c->st;
                        return 0;
                }
                if (!lru || c->used < lru->used)
                        lru = c;
        }
        rc = sqlite3_prepare_v3(s->db, sql, -1, SQLITE_PREPARE_PERSISTENT, ret, NULL);
        if (rc != SQLITE_OK)
                return errno_from_sqlite(rc);
        slot = empty ?: lru;
        if (slot) {                     /* else every slot is in use: finalized when done */
                if (slot->st)
                        sqlite3_finalize(slot->st);
                *slot = (StmtSlot) { .sql = sql, .st = *ret, .in_use = true, .used = ++s->stmt_clock };
        }
        return 0;
}

/* A statement from prepare() back: reset for the next use (its bindings and rows let go). */
static void stmt_done(Store *s, sqlite3_stmt *st) {
        if (!st)
                return;
        for (size_t i = 0; i < STMT_CACHE_SIZE; i++)
                if (s->stmts[i].st == st) {
                        (void) sqlite3_reset(st);
                        (void) sqlite3_clear_bindings(st);
                        s->stmts[i].in_use = false;
                        return;
                }
        sqlite3_finalize(st);
}

static void stmt_cache_clear(Store *s) {
        for (size_t i = 0; i < STMT_CACHE_SIZE; i++) {
                sqlite3_finalize(s->stmts[i].st);
                s->stmts[i] = (StmtSlot) {};
        }
}

/* A statement handed out by prepare() and the store it came from. Declared _cleanup_stmt_, it
 * goes back through stmt_done() when it leaves scope (never sqlite3_finalize(): the cache
 * still holds it). */
typedef struct Stmt {
        Store *store;
        sqlite3_stmt *st;
} Stmt;

static void stmt_releasep(Stmt *q) {
        if (q->st)
                stmt_done(q->store, TAKE_PTR(q->st));
}
#define _cleanup_stmt_ _cleanup_(stmt_releasep)

static int stmt_prepare(Store *s, const char *sql, Stmt *ret) {
        *ret = (Stmt) { .store = s };
        return prepare(s, sql, &ret->st);
}

/* One statement through the cache (BEGIN, COMMIT, a PRAGMA); several (the schema) directly. */
static int exec_sql(Store *s, const char *sql) {
        _cleanup_stmt_ Stmt q = {};
        int rc;

        if (strchr(sql, ';'))
                return errno_from_sqlite(sqlite3_exec(s->db, sql, NULL, NULL, NULL));
        rc = stmt_prepare(s, sql, &q);
        if (rc < 0)
                return rc;
        while ((rc = sqlite3_step(q.st)) == SQLITE_ROW)
                ;
        return errno_from_sqlite(rc);
}

static int bind_text(sqlite3_stmt *st, int idx, const char *v) {
        return errno_from_sqlite(sqlite3_bind_text(st, idx, v ? v : "", -1, SQLITE_STATIC));
}

static int bind_i64(sqlite3_stmt *st, int idx, int64_t v) {
        return errno_from_sqlite(sqlite3_bind_int64(st, idx, (sqlite3_int64) v));
}

static int bind_u64(sqlite3_stmt *st, int idx, uint64_t v) {
        if (v > INT64_MAX)
                return -ERANGE;
        return bind_i64(st, idx, (int64_t) v);
}

/* A blob, or NULL when data is NULL. */
static int bind_blob(sqlite3_stmt *st, int idx, const void *data, size_t size) {
        if (!data)
                return errno_from_sqlite(sqlite3_bind_null(st, idx));
        if (size > INT_MAX)
                return -E2BIG;
        return errno_from_sqlite(sqlite3_bind_blob(st, idx, data, (int) size, SQLITE_STATIC));
}

/* The statement's error as -errno (after a step that was neither a row nor done). */
static int stmt_errno(sqlite3_stmt *st) {
        return errno_from_sqlite(sqlite3_extended_errcode(sqlite3_db_handle(st)));
}

/* Run a statement that returns no rows. */
static int step_done(sqlite3_stmt *st) {
        int rc = sqlite3_step(st);

        if (rc == SQLITE_DONE)
                return 0;
        if (rc == SQLITE_ROW)
                return -EIO;
        return stmt_errno(st);
}

/* Step a query: 1 on a row, 0 when there are no (more) rows, -errno. */
static int step_row(sqlite3_stmt *st) {
        int rc = sqlite3_step(st);

        if (rc == SQLITE_ROW)
                return 1;
        if (rc == SQLITE_DONE)
                return 0;
        return stmt_errno(st);
}

/* The parameters of a statement, ?1 onwards, in order: PREPARE(s, sql, &q, ARG_TEXT(id), ...). */
typedef enum ArgKind {
        ARG_KIND_TEXT,          /* NULL binds "" */
        ARG_KIND_I64,
        ARG_KIND_U64,           /* -ERANGE past INT64_MAX */
        ARG_KIND_BLOB,          /* NULL binds NULL */
} ArgKind;

typedef struct Arg {
        ArgKind kind;
        const void *data;
        uint64_t value;
        size_t size;
} Arg;

#define ARG_TEXT(v) { .kind = ARG_KIND_TEXT, .data = (v) }
#define ARG_I64(v) { .kind = ARG_KIND_I64, .value = (uint64_t) (int64_t) (v) }
#define ARG_U64(v) { .kind = ARG_KIND_U64, .value = (v) }
#define ARG_BLOB(p, n) { .kind = ARG_KIND_BLOB, .data = (p), .size = (n) }

static int bind_args(sqlite3_stmt *st, const Arg *args, size_t n) {
        for (size_t i = 0; i < n; i++) {
                int idx = (int) i + 1, k = -EINVAL;

                switch (args[i].kind) {
                case ARG_KIND_TEXT:
                        k = bind_text(st, idx, args[i].data);
                        break;
                case ARG_KIND_I64:
                        k = bind_i64(st, idx, (int64_t) args[i].value);
                        break;
                case ARG_KIND_U64:
                        k = bind_u64(st, idx, args[i].value);
                        break;
                case ARG_KIND_BLOB:
                        k = bind_blob(st, idx, args[i].data, args[i].size);
                        break;
                }
                if (k < 0)
                        return k;
        }
        return 0;
}

static int prepare_args(Store *s, const char *sql, Stmt *ret, const Arg *args, size_t n) {
        int k;

        k = stmt_prepare(s, sql, ret);
        if (k < 0)
                return k;
        return bind_args(ret->st, args, n);
}

#define ARGS(...) (const Arg[]) { __VA_ARGS__ }, ELEMENTSOF(((const Arg[]) { __VA_ARGS__ }))
/* sql prepared into *q with its parameters bound. */
#define PREPARE(s, sql, q, ...) prepare_args(s, sql, q, ARGS(__VA_ARGS__))

/* How a write commits. The connection runs with synchronous=NORMAL: in WAL mode a commit is
 * durable against a crash or kill -9 of the daemon (the WAL is written before COMMIT returns)
 * without the fsync() that would stall the event loop; the next durable commit or checkpoint
 * makes it durable on disk too. A durable write commits with synchronous=FULL: it returns only
 * after the WAL is fsync()ed, so it survives a power loss. */
typedef enum WriteMode {
        WRITE_DURABLE,
        WRITE_RELAXED,
        WRITE_IN_TRANSACTION,   /* inside begin_write() ... commit(): the transaction decides */
} WriteMode;

/* The connection's synchronous level for a commit of mode, switched only when it changes. A
 * durable write that cannot have FULL fails before it writes anything; a relaxed one that
 * keeps FULL is only slower. */
static int sync_level(Store *s, WriteMode mode) {
        bool full = mode == WRITE_DURABLE;
        int k;

        if (mode == WRITE_IN_TRANSACTION || full == s->sync_full)
                return 0;
        k = exec_sql(s, full ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL");
        if (k < 0)
                return full ? k : 0;
        s->sync_full = full;
        return 0;
}

static int step_write(Store *s, sqlite3_stmt *st, WriteMode mode) {
        int k;

        k = sync_level(s, mode);
        if (k < 0)
                return k;
        return step_done(st);
}

/* A statement that returns no rows, with its parameters: the number of rows it changed. */
static int write_args(Store *s, WriteMode mode, const char *sql, const Arg *args, size_t n) {
        _cleanup_stmt_ Stmt q = {};
        int k;

        k = prepare_args(s, sql, &q, args, n);
        if (k < 0)
                return k;
        k = step_write(s, q.st, mode);
        if (k < 0)
                return k;
        return sqlite3_changes(s->db);
}
#define WRITE(s, mode, sql, ...) write_args(s, mode, sql, ARGS(__VA_ARGS__))

/* A write's result (write_args()) when it must change a row: 0, or -ENOENT when it changed none. */
static int one_changed(int k) {
        if (k == 0)
                return -ENOENT;
        return k < 0 ? k : 0;
}

static int begin(Store *s) {
        return exec_sql(s, "BEGIN IMMEDIATE");
}

/* A transaction whose COMMIT is as durable as mode says (WRITE_DURABLE or WRITE_RELAXED):
 * SQLite takes no change of the synchronous level inside a transaction, so it is set here. */
static int begin_write(Store *s, WriteMode mode) {
        int k;

        k = sync_level(s, mode);
        if (k < 0)
                return k;
        return begin(s);
}

static int commit(Store *s) {
        int r = exec_sql(s, "COMMIT");

        if (r < 0)
                (void) exec_sql(s, "ROLLBACK");
        return r;
}

static void rollback(Store *s) {
        if (!sqlite3_get_autocommit(s->db))
                (void) exec_sql(s, "ROLLBACK");
}

/* Declared _cleanup_rollback_ after begin(): a transaction still open when it leaves scope
 * (an early return) is rolled back; after COMMIT there is none, and nothing happens. */
static void rollbackp(Store **s) {
        if (*s)
                rollback(*s);
}
#define _cleanup_rollback_ _cleanup_(rollbackp)

static void checkpoint_truncate(Store *s) {
        /* After erasing a key: move the (zeroed, secure_delete) pages into the database and
         * truncate the WAL so old frames holding the ciphertext are not kept around. Best
         * effort: a busy checkpoint is simply retried by the next one. */
        (void) sqlite3_wal_checkpoint_v2(s->db, NULL, SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL);
}

void store_checkpoint(Store *s) {
        checkpoint_truncate(s);
}

static void set_message(char **ret_message, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void set_message(char **ret_message, const char *fmt, ...) {
        va_list ap;

        if (!ret_message)
                return;
        free(*ret_message);
        va_start(ap, fmt);
        if (vasprintf(ret_message, fmt, ap) < 0)
                *ret_message = NULL;
        va_end(ap);
}

/* ---- open / schema ---- */

static const char schema_v1[] =
        "CREATE TABLE schema_version (version INTEGER NOT NULL) STRICT;"
        "INSERT INTO schema_version (version) VALUES (1);"
        "CREATE TABLE requests ("
        "  id TEXT PRIMARY KEY NOT NULL CHECK (length(id) = 16),"
        "  owner INTEGER NOT NULL,"
        "  ca TEXT NOT NULL,"
        "  label TEXT NOT NULL,"
        "  subject TEXT NOT NULL,"
        "  names TEXT NOT NULL,"
        "  key_type TEXT NOT NULL,"
        "  usage TEXT NOT NULL,"
        "  state TEXT NOT NULL,"
        "  error TEXT NOT NULL,"
        "  error_message TEXT NOT NULL,"
        "  fail_info TEXT NOT NULL,"
        "  transaction_id TEXT NOT NULL,"
        "  certificate TEXT NOT NULL,"
        "  chain TEXT NOT NULL,"
        "  serial TEXT NOT NULL,"
        "  csr TEXT NOT NULL,"
        "  not_before INTEGER NOT NULL,"
        "  not_after INTEGER NOT NULL,"
        "  created INTEGER NOT NULL,"
        "  updated INTEGER NOT NULL,"
        "  next_attempt INTEGER NOT NULL,"
        "  attempts INTEGER NOT NULL,"
        "  key_blob BLOB"             /* store-crypto.h blob; NULL once taken or erased */
        ") STRICT;"
        "CREATE INDEX requests_owner ON requests (owner);"
        /* Every insert, kept after Remove, so MaxRequests cannot be dodged by removing. */
        "CREATE TABLE enroll_history (owner INTEGER NOT NULL, created INTEGER NOT NULL) STRICT;"
        "CREATE INDEX enroll_history_owner ON enroll_history (owner, created);";

/* Migration to version N (from N - 1), run inside the set-up transaction. */
static const char *const schema_migrations[STORE_SCHEMA_VERSION + 1] = {
        /* 2: the identity each request was decided for (caller.h's snapshot), so that Reload and
         * start-up can decide it again; when a PKCSReq may have reached the CA (CertPoll first
         * on resume); what the request has to tell beyond its state (a duplicate that may have
         * been issued); and renewal. */
        [2] = "ALTER TABLE requests ADD COLUMN caller TEXT NOT NULL DEFAULT '';"
              "ALTER TABLE requests ADD COLUMN submitted INTEGER NOT NULL DEFAULT 0;"
              "ALTER TABLE requests ADD COLUMN warning TEXT NOT NULL DEFAULT '';"
              "ALTER TABLE requests ADD COLUMN renew INTEGER NOT NULL DEFAULT 0;"
              "ALTER TABLE requests ADD COLUMN renew_at INTEGER NOT NULL DEFAULT 0;"
              "ALTER TABLE requests ADD COLUMN successor TEXT NOT NULL DEFAULT '';"
              "ALTER TABLE requests ADD COLUMN predecessor TEXT NOT NULL DEFAULT '';"
              "ALTER TABLE requests ADD COLUMN renew_warned INTEGER NOT NULL DEFAULT 0;"
              "UPDATE schema_version SET version = 2;",
        /* 3: the caller's idempotency token of Enroll (kept by successors), and a key sealed to
         * its receiver (TakeKeySealed) until the receiver confirms it. */
        [3] = "ALTER TABLE requests ADD COLUMN token TEXT NOT NULL DEFAULT '';"
              "ALTER TABLE requests ADD COLUMN sealed_to BLOB;"
              "ALTER TABLE requests ADD COLUMN sealed_key BLOB;"
              "UPDATE schema_version SET version = 3;",
        /* 4: the key of a tracked certificate kept, encrypted as key_blob is, to sign its
         * RenewalReq (Renewal=scep-renewal|auto) after the owner took it; and per CA what a
         * RenewalReq got (Renewal=auto). */
        [4] = "ALTER TABLE requests ADD COLUMN renewal_key BLOB;"
              "CREATE TABLE ca_renewal (ca TEXT PRIMARY KEY NOT NULL, refused_until INTEGER NOT NULL) STRICT;"
              "UPDATE schema_version SET version = 4;",
        /* 5: the NDES server (URL= entry) a request's transaction went to, when a CA has
         * several: its CertPolls go to that server. */
        [5] = "ALTER TABLE requests ADD COLUMN server TEXT NOT NULL DEFAULT '';"
              "UPDATE schema_version SET version = 5;",
};

/* The schema version of the database (in the open transaction): 1 and *ret when it has a
 * schema_version table (*ret < 1: empty or invalid), 0 when it has no schema yet. */
static int schema_version_read(Store *s, int *ret) {
        _cleanup_stmt_ Stmt q = {};
        int k;

        k = stmt_prepare(s, "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'", &q);
        if (k < 0)
                return k;
        k = step_row(q.st);
        if (k <= 0)
                return k;
        stmt_releasep(&q);
        k = stmt_prepare(s, "SELECT max(version) FROM schema_version", &q);
        if (k < 0)
                return k;
        k = step_row(q.st);
        if (k < 0)
                return k;
        *ret = k > 0 ? sqlite3_column_int(q.st, 0) : 0;
        return 1;
}

static int schema_fail(Store *s, int k, char **ret_message, const char *what) {
        set_message(ret_message, "cannot %s of %s: %s", what, s->path, sqlite3_errmsg(s->db));
        return k < 0 ? k : -EIO;
}

static int schema_setup(Store *s, char **ret_message) {
        int k, version = 0;

        k = begin_write(s, WRITE_DURABLE);
        if (k < 0)
                return schema_fail(s, k, ret_message, "begin setting up the schema");
        _cleanup_rollback_ Store *txn = s;

        k = schema_version_read(s, &version);
        if (k < 0)
                return schema_fail(s, k, ret_message, "read the schema version");
        if (k == 0) {
                k = exec_sql(s, schema_v1);
                if (k < 0)
                        return schema_fail(s, k, ret_message, "create the tables");
                version = 1;    /* and migrated below, like an existing one */
        }
        if (version > STORE_SCHEMA_VERSION) {
                set_message(ret_message,
                            "%s has schema version %d, this certbrokerd knows only up to %d: "
                            "it was written by a newer certbroker; run that version or restore a backup",
                            s->path, version, STORE_SCHEMA_VERSION);
                return -EPROTONOSUPPORT;
        }
        if (version < 1) {
                set_message(ret_message, "%s: schema_version table is empty or invalid", s->path);
                return -EUCLEAN;
        }
        for (int v = version + 1; v <= STORE_SCHEMA_VERSION; v++) {
                k = exec_sql(s, schema_migrations[v]);
                if (k < 0) {
                        set_message(ret_message, "cannot migrate %s to schema version %d: %s", s->path, v,
                                    sqlite3_errmsg(s->db));
                        return k;
                }
        }
        k = commit(s);
        if (k < 0)
                return schema_fail(s, k, ret_message, "commit the schema");
        return 0;
}

static int precreate_db_file(const char *path, char **ret_message) {
        _cleanup_close_ int fd = -1;
        struct stat st;
        int k;

        /* Create it ourselves, 0600 and without following links, so SQLite never creates it
         * with the umask's idea of a mode; -wal and -shm copy this file's mode. */
        fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY, 0600);
        if (fd < 0) {
                k = -errno;
                set_message(ret_message, "cannot open %s: %s", path, strerror(-k));
                return k;
        }
        if (fstat(fd, &st) < 0) {
                k = -errno;
                set_message(ret_message, "cannot stat %s: %s", path, strerror(-k));
                return k;
        }
        if (!S_ISREG(st.st_mode)) {
                set_message(ret_message, "%s: %s", path, strerror(EINVAL));
                return -EINVAL;
        }
        if (st.st_uid != geteuid() || (st.st_mode & 077) != 0) {
                set_message(ret_message,
                            "%s has owner %u and mode %04o: it must belong to uid %u with no group/other "
                            "access; fix with chown %u %s && chmod 0600 %s",
                            path, (unsigned) st.st_uid, (unsigned) (st.st_mode & 07777),
                            (unsigned) geteuid(), (unsigned) geteuid(), path, path);
                return -EPERM;
        }
        return 0;
}

/* The challenges NDES holds for this broker (the block at the end of this file): their own
 * table, outside the numbered schema (a journal without it just had nothing recorded), and the
 * rows NDES has forgotten dropped once per start. */
static int challenge_table(Store *s) {
        int k;

        k = exec_sql(s, "CREATE TABLE IF NOT EXISTS challenges ("
                           "row INTEGER PRIMARY KEY, ca TEXT NOT NULL, admin_url TEXT NOT NULL, "
                           "url TEXT NOT NULL, issued INTEGER NOT NULL, expires INTEGER NOT NULL, "
                           "validity INTEGER NOT NULL DEFAULT 0, thumbprint TEXT NOT NULL DEFAULT '', "
                           "spare BLOB, request TEXT NOT NULL DEFAULT '') STRICT");
        if (k < 0)
                return k;
        /* Those NDES has forgotten: once per start, not per CA and server. */
        k = WRITE(s, WRITE_RELAXED, "DELETE FROM challenges WHERE expires <= ?1", ARG_U64(now_usec()));
        return k < 0 ? k : 0;
}

/* The text of the first row of a PRAGMA (valid while q holds the statement); -EIO when it
 * answers no row. */
static int pragma_answer(Store *s, const char *sql, Stmt *q, const char **ret) {
        int k;

        k = stmt_prepare(s, sql, q);
        if (k < 0)
                return k;
        k = step_row(q->st);
        if (k < 0)
                return k;
        if (k == 0)
                return -EIO;
        *ret = (const char *) sqlite3_column_text(q->st, 0);
        return 0;
}

/* WAL, the synchronous level, secure_delete (freed pages are zeroed), foreign keys. */
static int db_configure(Store *s, char **ret_message) {
        _cleanup_stmt_ Stmt q = {};
        const char *mode;
        int k;

        k = pragma_answer(s, "PRAGMA journal_mode=WAL", &q, &mode);
        if (k < 0) {
                set_message(ret_message, "cannot switch database %s to WAL mode: %s", s->path, sqlite3_errmsg(s->db));
                return k;
        }
        if (!mode || strcmp(mode, "wal") != 0) {
                set_message(ret_message, "cannot switch database %s to WAL mode: it stays in mode %s", s->path,
                            mode ?: "(none)");
                return -EIO;
        }
        /* NORMAL, and FULL for the commits that must survive a power loss (WriteMode). */
        k = exec_sql(s, "PRAGMA synchronous=NORMAL; PRAGMA secure_delete=ON; PRAGMA foreign_keys=ON;");
        if (k < 0) {
                set_message(ret_message, "cannot configure database %s (synchronous=NORMAL, secure_delete): %s",
                            s->path, sqlite3_errmsg(s->db));
                return k;
        }
        s->sync_full = false;
        return 0;
}

/* A quick structural check on every start: cheap at our sizes, and it turns a damaged file
 * into a clear message instead of odd failures later. */
static int db_check(Store *s, char **ret_message) {
        _cleanup_stmt_ Stmt q = {};
        const char *res, *first;
        int k, len;

        k = pragma_answer(s, "PRAGMA quick_check", &q, &res);
        if (k < 0) {
                set_message(ret_message, "cannot read database %s: %s", s->path, sqlite3_errmsg(s->db));
                return k;
        }
        if (res && strcmp(res, "ok") == 0)
                return 0;
        /* integrity_check lists problems one per line: the first, cut. */
        first = res ? res : "?";
        if (strncmp(first, "*** in database ", 16) == 0 && strchr(first, '\n'))
                first = strchr(first, '\n') + 1;
        len = (int) strcspn(first, "\n");
        set_message(ret_message,
                    "database %s is damaged (%.*s%s): certbrokerd does not start on it, so "
                    "that no request is lost without notice. Restore it from a backup, or "
                    "salvage it with 'sqlite3 %s .recover'; moving it aside starts an empty "
                    "journal that forgets every request and its key",
                    s->path, len > 200 ? 200 : len, first, first[len] || len > 200 ? "; ..." : "", s->path);
        return -EUCLEAN;
}

int store_open_with_cipher(const char *state_dir, StoreCipher *cipher, Store **ret, char **ret_message) {
        _cleanup_(store_cipher_freep) StoreCipher *c = cipher;
        _cleanup_(store_closep) Store *s = NULL;
        int k, rc;

        if (!state_dir || !cipher || !ret)
                return -EINVAL;

        k = store_state_dir_prepare(state_dir, ret_message);
        if (k < 0)
                return k;

        s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        s->cipher = TAKE_PTR(c);
        if (asprintf(&s->path, "%s/" STORE_DB_NAME, state_dir) < 0) {
                s->path = NULL;
                return -ENOMEM;
        }

        k = precreate_db_file(s->path, ret_message);
        if (k < 0)
                return k;

        rc = sqlite3_open_v2(s->path, &s->db,
                             SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_NOFOLLOW, NULL);
        if (rc != SQLITE_OK) {
                set_message(ret_message, "cannot open database %s: %s", s->path,
                            s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc));
                return errno_from_sqlite(rc);
        }
        (void) sqlite3_extended_result_codes(s->db, 1);
        (void) sqlite3_busy_timeout(s->db, 5000);
        (void) sqlite3_db_config(s->db, SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0, NULL);
        (void) sqlite3_db_config(s->db, SQLITE_DBCONFIG_DEFENSIVE, 1, NULL);

        k = db_configure(s, ret_message);
        if (k < 0)
                return k;
        k = db_check(s, ret_message);
        if (k < 0)
                return k;
        k = schema_setup(s, ret_message);
        if (k < 0)
                return k;
        k = challenge_table(s);
        if (k < 0) {
                set_message(ret_message, "cannot create the challenges table in %s: %s", s->path,
                            sqlite3_errmsg(s->db));
                return k;
        }

        *ret = TAKE_PTR(s);
        return 0;
}

int store_open(const char *state_dir, const char *credentials_dir, Store **ret, char **ret_message) {
        StoreCipher *c = NULL;
        int k;

        if (!state_dir || !ret)
                return -EINVAL;

        k = store_cipher_load(state_dir, credentials_dir, &c, ret_message);
        if (k < 0)
                return k;

        return store_open_with_cipher(state_dir, c, ret, ret_message);
}

Store *store_close(Store *s) {
        if (!s)
                return NULL;
        stmt_cache_clear(s);
        if (s->db) {
                /* sqlite3_close_v2 checkpoints and removes the WAL when it is the last user. */
                (void) sqlite3_close_v2(s->db);
        }
        store_cipher_free(s->cipher);
        free(s->path);
        free(s);
        return NULL;
}

void store_closep(Store **s) {
        if (s)
                *s = store_close(*s);
}

void store_set_group_commit(Store *s, bool on) {
        s->group_commit = on;
}

void store_set_erase_hook(Store *s, store_erased_t erased, void *userdata) {
        s->erased = erased;
        s->erased_userdata = userdata;
}

const char *store_path(const Store *s) {
        return s ? s->path : NULL;
}

/* ---- validation and (de)serialisation ---- */

static int names_join(char **names, char **ret) {
        size_t n = 0, len = 0;
        char *buf, *p;

        for (char **i = names; i && *i; i++, n++) {
                size_t l = strlen(*i);

                if (l == 0 || strchr(*i, '\n'))
                        return -EINVAL;
                if (l > STORE_TEXT_MAX)
                        return -E2BIG;
                len += l + 1;
        }
        if (n > STORE_NAMES_MAX)
                return -E2BIG;

        buf = malloc(len + 1);
        if (!buf)
                return -ENOMEM;
        p = buf;
        for (char **i = names; i && *i; i++) {
                if (p != buf)
                        *p++ = '\n';
                p = stpcpy(p, *i);
        }
        *p = 0;
        *ret = buf;
        return 0;
}

static void strv_freep(char ***l) {
        strv_free(*l);
}

static int names_split(const char *s, char ***ret) {
        _cleanup_(strv_freep) char **l = NULL;
        size_t n = 0, k = 0;

        if (*s) {
                n = 1;
                for (const char *p = s; *p; p++)
                        if (*p == '\n')
                                n++;
        }

        l = calloc(n + 1, sizeof(char *));
        if (!l)
                return -ENOMEM;

        for (const char *p = s; *s && k < n; k++) {
                size_t len = strcspn(p, "\n");

                l[k] = strndup(p, len);
                if (!l[k])
                        return -ENOMEM;
                p += len;
                if (*p == '\n')
                        p++;
        }
        *ret = TAKE_PTR(l);
        return 0;
}

/* The plain fields of a request: where each stands in REQUEST_COLUMNS (column) and in the
 * INSERT and UPDATE statements (param: ?2 to ?29 in both, ?30 and up on insert only, 0 never
 * written). id, names and state are converted and so written and read by hand. */
typedef enum FieldKind {
        FIELD_TEXT,             /* char *, at most STORE_TEXT_MAX bytes */
        FIELD_LONG_TEXT,        /* char *, at most STORE_PEM_MAX bytes: PEM, messages that may
                                 * quote a server's answer, the caller snapshot */
        FIELD_U64,
        FIELD_U32,
        FIELD_BOOL,
        FIELD_UID,
} FieldKind;

typedef struct RequestField {
        int column;
        int param;
        FieldKind kind;
        size_t offset;
} RequestField;

#define REQUEST_PARAM_SHARED_MAX 29
#define FIELD(c, p, k, f) { .column = c, .param = p, .kind = k, .offset = offsetof(StoreRequest, f) }

static const RequestField request_fields[] = {
        FIELD(1, 30, FIELD_UID, owner),
        FIELD(2, 2, FIELD_TEXT, ca),
        FIELD(3, 3, FIELD_TEXT, label),
        FIELD(4, 4, FIELD_TEXT, subject),
        FIELD(6, 6, FIELD_TEXT, key),
        FIELD(7, 7, FIELD_TEXT, usage),
        FIELD(9, 9, FIELD_TEXT, error),
        FIELD(10, 10, FIELD_LONG_TEXT, error_message),
        FIELD(11, 11, FIELD_TEXT, fail_info),
        FIELD(12, 12, FIELD_TEXT, transaction_id),
        FIELD(13, 13, FIELD_LONG_TEXT, certificate),
        FIELD(14, 14, FIELD_LONG_TEXT, chain),
        FIELD(15, 15, FIELD_TEXT, serial),
        FIELD(16, 16, FIELD_LONG_TEXT, csr),
        FIELD(17, 17, FIELD_U64, not_before),
        FIELD(18, 18, FIELD_U64, not_after),
        FIELD(19, 31, FIELD_U64, created),
        FIELD(20, 19, FIELD_U64, updated),
        FIELD(21, 20, FIELD_U64, next_attempt),
        FIELD(22, 21, FIELD_U32, attempts),
        FIELD(23, 0, FIELD_BOOL, key_available),
        FIELD(24, 33, FIELD_LONG_TEXT, caller),
        FIELD(25, 22, FIELD_U64, submitted),
        FIELD(26, 23, FIELD_LONG_TEXT, warning),
        FIELD(27, 24, FIELD_BOOL, renew),
        FIELD(28, 25, FIELD_U64, renew_at),
        FIELD(29, 26, FIELD_TEXT, successor),
        FIELD(30, 27, FIELD_TEXT, predecessor),
        FIELD(31, 28, FIELD_U32, renew_warned),
        FIELD(32, 34, FIELD_TEXT, token),
        FIELD(33, 0, FIELD_BOOL, key_sealed),
        FIELD(34, 29, FIELD_TEXT, server),
};

#define REQUEST_COLUMNS                                                           \
        "id, owner, ca, label, subject, names, key_type, usage, state, error, "   \
        "error_message, fail_info, transaction_id, certificate, chain, serial, "  \
        "csr, not_before, not_after, created, updated, next_attempt, attempts, "  \
        "key_blob IS NOT NULL, caller, submitted, warning, renew, renew_at, successor, predecessor, " \
        "renew_warned, token, sealed_key IS NOT NULL, server"

/* Where field f of request r is. */
#define FIELD_AT(r, f, type) ((type *) (void *) ((uint8_t *) (r) + (f)->offset))
#define FIELD_OF(r, f, type) (*(const type *) (const void *) ((const uint8_t *) (r) + (f)->offset))

/* Checks r's fields and limits; *ret_names: its names as stored (one per line). */
static int request_validate(const StoreRequest *r, char **ret_names) {
        if (!store_id_is_valid(r->id))
                return -EINVAL;
        if (r->state < 0 || r->state >= _REQUEST_STATE_MAX)
                return -EINVAL;
        if (r->attempts > INT32_MAX)
                return -ERANGE;

        for (size_t i = 0; i < ELEMENTSOF(request_fields); i++) {
                const RequestField *f = &request_fields[i];
                size_t max = f->kind == FIELD_TEXT ? STORE_TEXT_MAX : STORE_PEM_MAX;

                if (f->kind != FIELD_TEXT && f->kind != FIELD_LONG_TEXT)
                        continue;
                const char *v = FIELD_OF(r, f, char *);
                if (v && strlen(v) > max)
                        return -E2BIG;
        }
        return names_join(r->names, ret_names);
}

StoreRequest *store_request_free(StoreRequest *r) {
        if (!r)
                return NULL;
        strv_free(r->names);
        for (size_t i = 0; i < ELEMENTSOF(request_fields); i++)
                if (request_fields[i].kind == FIELD_TEXT || request_fields[i].kind == FIELD_LONG_TEXT)
                        free(*FIELD_AT(r, &request_fields[i], char *));
        free(r);
        return NULL;
}

void store_request_freep(StoreRequest **r) {
        if (r)
                *r = store_request_free(*r);
}

void store_request_array_free(StoreRequest **a, size_t n) {
        if (!a)
                return;
        for (size_t i = 0; i < n; i++)
                store_request_free(a[i]);
        free(a);
}

static int column_strdup(sqlite3_stmt *st, int col, char **ret) {
        const unsigned char *t = sqlite3_column_text(st, col);

        *ret = strdup(t ? (const char *) t : "");
        return *ret ? 0 : -ENOMEM;
}

static int field_read(sqlite3_stmt *st, const RequestField *f, StoreRequest *r) {
        switch (f->kind) {
        case FIELD_TEXT:
        case FIELD_LONG_TEXT:
                return column_strdup(st, f->column, FIELD_AT(r, f, char *));
        case FIELD_U64:
                *FIELD_AT(r, f, uint64_t) = (uint64_t) sqlite3_column_int64(st, f->column);
                return 0;
        case FIELD_U32:
                *FIELD_AT(r, f, uint32_t) = (uint32_t) sqlite3_column_int64(st, f->column);
                return 0;
        case FIELD_BOOL:
                *FIELD_AT(r, f, bool) = sqlite3_column_int(st, f->column) != 0;
                return 0;
        case FIELD_UID:
                *FIELD_AT(r, f, uid_t) = (uid_t) sqlite3_column_int64(st, f->column);
                return 0;
        }
        return -EINVAL;
}

static int field_bind(sqlite3_stmt *st, const RequestField *f, const StoreRequest *r) {
        switch (f->kind) {
        case FIELD_TEXT:
        case FIELD_LONG_TEXT:
                return bind_text(st, f->param, FIELD_OF(r, f, char *));
        case FIELD_U64:
                return bind_u64(st, f->param, FIELD_OF(r, f, uint64_t));
        case FIELD_U32:
                return bind_u64(st, f->param, FIELD_OF(r, f, uint32_t));
        case FIELD_BOOL:
                return bind_u64(st, f->param, FIELD_OF(r, f, bool) ? 1 : 0);
        case FIELD_UID:
                return bind_i64(st, f->param, FIELD_OF(r, f, uid_t));
        }
        return -EINVAL;
}

static int request_from_row(sqlite3_stmt *st, StoreRequest **ret) {
        _cleanup_(store_request_freep) StoreRequest *r = NULL;
        const unsigned char *t;
        int k;

        r = calloc(1, sizeof(*r));
        if (!r)
                return -ENOMEM;

        t = sqlite3_column_text(st, 0);
        if (!t || !store_id_is_valid((const char *) t))
                return -EUCLEAN;
        memcpy(r->id, t, STORE_ID_LEN + 1);

        t = sqlite3_column_text(st, 5);
        k = names_split(t ? (const char *) t : "", &r->names);
        if (k < 0)
                return k;

        r->state = request_state_from_string((const char *) sqlite3_column_text(st, 8));
        if (r->state < 0)
                return -EUCLEAN;

        for (size_t i = 0; i < ELEMENTSOF(request_fields); i++) {
                k = field_read(st, &request_fields[i], r);
                if (k < 0)
                        return k;
        }

        *ret = TAKE_PTR(r);
        return 0;
}

/* ---- CRUD ---- */

/* The columns of a request's row: ?1 (id) to ?29 as INSERT and UPDATE share them, and with
 * insert also those only an INSERT writes (?30 and up; ?32, the key, is bound by the caller). */
static int bind_request_columns(sqlite3_stmt *st, const StoreRequest *r, const char *names, bool insert) {
        int k;

        k = bind_text(st, 1, r->id);
        if (k < 0)
                return k;
        k = bind_text(st, 5, names);
        if (k < 0)
                return k;
        k = bind_text(st, 8, request_state_to_string(r->state));
        if (k < 0)
                return k;
        for (size_t i = 0; i < ELEMENTSOF(request_fields); i++) {
                const RequestField *f = &request_fields[i];

                if (f->param == 0 || (!insert && f->param > REQUEST_PARAM_SHARED_MAX))
                        continue;
                k = field_bind(st, f, r);
                if (k < 0)
                        return k;
        }
        return 0;
}

static int prepare_request(Store *s, const char *sql, const StoreRequest *r, const char *names, bool insert,
                           Stmt *q) {
        int k;

        k = stmt_prepare(s, sql, q);
        if (k < 0)
                return k;
        return bind_request_columns(q->st, r, names, insert);
}

static int insert_row(Store *s, const StoreRequest *r, const char *names, const uint8_t *blob, size_t blob_size) {
        static const char sql[] =
                "INSERT INTO requests (id, ca, label, subject, names, key_type, usage, state, "
                "error, error_message, fail_info, transaction_id, certificate, chain, serial, csr, "
                "not_before, not_after, updated, next_attempt, attempts, submitted, warning, renew, renew_at, "
                "successor, predecessor, renew_warned, server, owner, created, key_blob, caller, token) "
                "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, "
                "?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26, ?27, ?28, ?29, ?30, ?31, ?32, ?33, ?34)";
        _cleanup_stmt_ Stmt q = {};
        int k;

        k = prepare_request(s, sql, r, names, /* insert= */ true, &q);
        if (k < 0)
                return k;
        k = bind_blob(q.st, 32, blob, blob_size);
        if (k < 0)
                return k;
        /* In insert_once()'s transaction: its commit decides how durable. */
        return step_done(q.st);
}

static int insert_history(Store *s, uid_t owner, uint64_t created) {
        int k;

        k = WRITE(s, WRITE_IN_TRANSACTION, "INSERT INTO enroll_history (owner, created) VALUES (?1, ?2)",
                  ARG_I64(owner), ARG_U64(created));
        return k < 0 ? k : 0;
}

/* The predecessor gets its successor only if it has none (exactly one per request). */
static int link_successor(Store *s, const char *predecessor_id, const char *successor_id) {
        int k;

        k = WRITE(s, WRITE_IN_TRANSACTION, "UPDATE requests SET successor = ?2 WHERE id = ?1 AND successor = ''",
                  ARG_TEXT(predecessor_id), ARG_TEXT(successor_id));
        if (k < 0)
                return k;
        return k == 1 ? 0 : -EEXIST;
}

/* One attempt at inserting r (its key sealed to r->id) in one transaction: -EEXIST and
 * *ret_id_taken when r->id is taken. */
static int insert_once(Store *s, const StoreRequest *r, const char *names, const CbSecret *key_pem,
                       const char *predecessor_id, bool *ret_id_taken) {
        _cleanup_free_ uint8_t *blob = NULL;
        size_t blob_size = 0;
        int k;

        *ret_id_taken = false;
        if (key_pem) {
                k = store_cipher_seal(s->cipher, r->id, key_pem, &blob, &blob_size);
                if (k < 0)
                        return k;
        }

        /* Group commit: the caller makes it durable (store-journal-sync.h); a successor is made
         * on the loop's own schedule and is durable on return. */
        k = begin_write(s, s->group_commit && !predecessor_id ? WRITE_RELAXED : WRITE_DURABLE);
        if (k < 0)
                return k;
        _cleanup_rollback_ Store *txn = s;

        k = insert_row(s, r, names, blob, blob_size);
        if (k < 0) {
                *ret_id_taken = k == -EEXIST;
                return k;
        }
        if (predecessor_id)
                k = link_successor(s, predecessor_id, r->id);
        else
                k = insert_history(s, r->owner, r->created);
        if (k < 0)
                return k;
        return commit(s);
}

/* predecessor_id: insert r as its successor (linked in the same transaction, FULL sync, not
 * counted in the enrollment history: a renewal is not a new request of its owner). */
static int insert_validated(Store *s, StoreRequest *r, const CbSecret *key_pem, const char *predecessor_id,
                            bool generated) {
        _cleanup_free_ char *names = NULL;
        bool id_taken;
        int k;

        k = request_validate(r, &names);
        if (k < 0)
                return k;

        for (unsigned attempt = 0;; attempt++) {
                k = insert_once(s, r, names, key_pem, predecessor_id, &id_taken);
                if (!id_taken || !generated || attempt >= 3)
                        return k;
                /* 64 random bits colliding: astronomically rare, but cheap to handle. */
                store_id_new(r->id);
        }
}

static int insert_request(Store *s, StoreRequest *r, const CbSecret *key_pem, const char *predecessor_id) {
        bool generated = false;
        int k;

        if (!s || !r)
                return -EINVAL;

        if (r->id[0] == 0) {
                store_id_new(r->id);
                generated = true;
        }
        k = insert_validated(s, r, key_pem, predecessor_id, generated);
        if (k < 0 && generated)
                r->id[0] = 0;
        return k;
}

int store_request_insert(Store *s, StoreRequest *r, const CbSecret *key_pem) {
        return insert_request(s, r, key_pem, NULL);
}

int store_request_insert_successor(Store *s, const char *predecessor_id, StoreRequest *r, const CbSecret *key_pem) {
        if (!predecessor_id || !store_id_is_valid(predecessor_id))
                return -EINVAL;
        return insert_request(s, r, key_pem, predecessor_id);
}

int store_request_update(Store *s, const StoreRequest *r) {
        static const char sql[] =
                "UPDATE requests SET ca = ?2, label = ?3, subject = ?4, names = ?5, key_type = ?6, "
                "usage = ?7, state = ?8, error = ?9, error_message = ?10, fail_info = ?11, "
                "transaction_id = ?12, certificate = ?13, chain = ?14, serial = ?15, csr = ?16, "
                "not_before = ?17, not_after = ?18, updated = ?19, next_attempt = ?20, attempts = ?21, "
                "submitted = ?22, warning = ?23, renew = ?24, renew_at = ?25, successor = ?26, "
                "predecessor = ?27, renew_warned = ?28, server = ?29 WHERE id = ?1";
        _cleanup_stmt_ Stmt q = {};
        _cleanup_free_ char *names = NULL;
        int k;

        if (!s || !r)
                return -EINVAL;
        k = request_validate(r, &names);
        if (k < 0)
                return k;

        k = prepare_request(s, sql, r, names, /* insert= */ false, &q);
        if (k < 0)
                return k;

        /* One statement in autocommit mode is one transaction. State transitions are relaxed
         * (WriteMode): an fsync() would stall the event loop several ms per transition. After a
         * power loss a request can only fall back to an earlier state and redo that step; the
         * next durable commit (insert, key take/erase, delete) or checkpoint makes it durable
         * anyway. */
        k = step_write(s, q.st, WRITE_RELAXED);
        if (k < 0)
                return k;
        return sqlite3_changes(s->db) == 0 ? -ENOENT : 0;
}

/* The statement sql with ?1 = id, stepped to its first row: 1 with *ret on that row, 0 when
 * there is none. */
static int select_by_id(Store *s, const char *sql, const char *id, Stmt *ret) {
        int k;

        k = PREPARE(s, sql, ret, ARG_TEXT(id));
        if (k < 0)
                return k;
        return step_row(ret->st);
}

int store_request_get(Store *s, const char *id, StoreRequest **ret) {
        _cleanup_stmt_ Stmt q = {};
        int k;

        if (!s || !ret || !id)
                return -EINVAL;
        if (!store_id_is_valid(id))
                return -ENOENT;

        k = select_by_id(s, "SELECT " REQUEST_COLUMNS " FROM requests WHERE id = ?1", id, &q);
        if (k < 0)
                return k;
        if (k == 0)
                return -ENOENT;
        return request_from_row(q.st, ret);
}

static void request_array_freep(StoreRequest ***a, size_t *n) {
        store_request_array_free(*a, *n);
}

static int load_query(sqlite3_stmt *st, StoreRequest ***ret, size_t *ret_n) {
        StoreRequest **a = NULL;
        size_t n = 0, allocated = 0;
        int k;

        for (;;) {
                k = step_row(st);
                if (k <= 0)
                        break;
                if (n == allocated) {
                        size_t m = allocated ? allocated * 2 : 16;
                        StoreRequest **b = reallocarray(a, m, sizeof(*a));

                        if (!b) {
                                k = -ENOMEM;
                                break;
                        }
                        a = b;
                        allocated = m;
                }
                k = request_from_row(st, &a[n]);
                if (k < 0)
                        break;
                n++;
        }
        if (k < 0) {
                request_array_freep(&a, &n);
                return k;
        }
        *ret = a;
        *ret_n = n;
        return 0;
}

int store_request_load_all(Store *s, StoreRequest ***ret, size_t *ret_n) {
        _cleanup_stmt_ Stmt q = {};
        int k;

        if (!s || !ret || !ret_n)
                return -EINVAL;
        k = stmt_prepare(s, "SELECT " REQUEST_COLUMNS " FROM requests ORDER BY created, id", &q);
        if (k < 0)
                return k;
        return load_query(q.st, ret, ret_n);
}

int store_request_list_by_owner(Store *s, uid_t owner, StoreRequest ***ret, size_t *ret_n) {
        _cleanup_stmt_ Stmt q = {};
        int k;

        if (!s || !ret || !ret_n)
                return -EINVAL;
        k = PREPARE(s, "SELECT " REQUEST_COLUMNS " FROM requests WHERE owner = ?1 ORDER BY created, id", &q,
                    ARG_I64(owner));
        if (k < 0)
                return k;
        return load_query(q.st, ret, ret_n);
}

/* A write of the row of id (?1 = id): -ENOENT when it changed nothing. */
static int exec_by_id(Store *s, WriteMode mode, const char *sql, const char *id) {
        return one_changed(WRITE(s, mode, sql, ARG_TEXT(id)));
}

/* The arguments every function of a request id checks: -EINVAL without a store or an id, or
 * when the function's other arguments are not (args_ok), -ENOENT for an id no request can
 * have. */
static int check_id(Store *s, const char *id, bool args_ok) {
        if (!s || !id || !args_ok)
                return -EINVAL;
        if (!store_id_is_valid(id))
                return -ENOENT;
        return 0;
}

/* exec_by_id(), then the WAL truncated so the erased content leaves no frame behind (under
 * group commit with an erase hook: by the journal's worker, store_set_erase_hook()). */
static int erase_by_id(Store *s, const char *sql, const char *id) {
        bool handed;
        int k;

        k = check_id(s, id, true);
        if (k < 0)
                return k;
        handed = s->group_commit && s->erased;
        k = exec_by_id(s, handed ? WRITE_RELAXED : WRITE_DURABLE, sql, id);
        if (k < 0)
                return k;
        if (handed)
                s->erased(s->erased_userdata);  /* its worker syncs and truncates */
        else
                checkpoint_truncate(s);
        return k;
}

int store_request_delete(Store *s, const char *id) {
        return erase_by_id(s, "DELETE FROM requests WHERE id = ?1", id);
}

int store_key_set(Store *s, const char *id, const CbSecret *key_pem) {
        _cleanup_free_ uint8_t *blob = NULL;
        size_t size = 0;
        int k;

        k = check_id(s, id, key_pem);
        if (k < 0)
                return k;

        k = store_cipher_seal(s->cipher, id, key_pem, &blob, &size);
        if (k < 0)
                return k;
        /* Group commit: a key not yet on disk after a power loss only means the request makes a
         * new one when it resumes. */
        return one_changed(WRITE(s, s->group_commit ? WRITE_RELAXED : WRITE_DURABLE,
                                 "UPDATE requests SET key_blob = ?2 WHERE id = ?1",
                                 ARG_TEXT(id), ARG_BLOB(blob, size)));
}

/* The row of id from a one-parameter SELECT (?1 = id): 0 with *ret on that row; -ENOENT no
 * such row, -ENOKEY when column blob_col is NULL (nothing stored there). */
static int select_blob_row(Store *s, const char *sql, const char *id, int blob_col, Stmt *ret) {
        int k;

        k = select_by_id(s, sql, id, ret);
        if (k < 0)
                return k;
        if (k == 0)
                return -ENOENT;
        if (sqlite3_column_type(ret->st, blob_col) == SQLITE_NULL)
                return -ENOKEY;
        return 0;
}

/* Read and decrypt the key blob of id in column 0 of sql; the caller may hold a transaction. */
static int key_read(Store *s, const char *sql, const char *id, CbSecret **ret) {
        _cleanup_stmt_ Stmt q = {};
        int k, size;

        k = select_blob_row(s, sql, id, 0, &q);
        if (k < 0)
                return k;
        size = sqlite3_column_bytes(q.st, 0);
        return store_cipher_open(s->cipher, id, sqlite3_column_blob(q.st, 0), size > 0 ? (size_t) size : 0, ret);
}

#define SELECT_KEY "SELECT key_blob FROM requests WHERE id = ?1"
#define SELECT_RENEWAL_KEY "SELECT renewal_key FROM requests WHERE id = ?1"

/* key_read() behind the checks of the public functions. */
static int key_get(Store *s, const char *sql, const char *id, CbSecret **ret) {
        int k;

        k = check_id(s, id, ret);
        if (k < 0)
                return k;
        return key_read(s, sql, id, ret);
}

int store_key_get(Store *s, const char *id, CbSecret **ret) {
        return key_get(s, SELECT_KEY, id, ret);
}

/* pem sealed to recipient (libsodium's crypto_box_seal()): -EDOM when it is not a usable
 * public key. */
static int key_box(const CbSecret *pem, const uint8_t *recipient, uint8_t **ret, size_t *ret_size) {
        _cleanup_free_ uint8_t *box = NULL;
        size_t size = pem->size + crypto_box_SEALBYTES;

        box = malloc(size);
        if (!box)
                return -ENOMEM;
        if (crypto_box_seal(box, pem->data, pem->size, recipient) != 0)
                return -EDOM;
        *ret = TAKE_PTR(box);
        *ret_size = size;
        return 0;
}

static int key_store_sealed(Store *s, const char *id, const uint8_t *recipient, const uint8_t *box, size_t size) {
        int k;

        k = WRITE(s, WRITE_IN_TRANSACTION, "UPDATE requests SET key_blob = NULL, sealed_to = ?2, sealed_key = ?3 WHERE id = ?1",
                  ARG_TEXT(id), ARG_BLOB(recipient, STORE_SEAL_RECIPIENT_LEN), ARG_BLOB(box, size));
        return k < 0 ? k : 0;
}

/* TakeKey and TakeKeySealed: in one transaction the key is read and erased; with a recipient
 * it is sealed to it (*ret_box) and the sealed copy stored in its place, else it is returned
 * (*ret_pem). The WAL is truncated afterwards, so the erased ciphertext leaves no frame. */
static int key_take(Store *s, const char *id, const uint8_t *recipient, CbSecret **ret_pem, uint8_t **ret_box,
                    size_t *ret_size) {
        _cleanup_(secret_freep) CbSecret *pem = NULL;
        _cleanup_free_ uint8_t *box = NULL;
        size_t size = 0;
        int k;

        if (!store_id_is_valid(id))
                return -ENOENT;
        k = begin_write(s, s->group_commit ? WRITE_RELAXED : WRITE_DURABLE);
        if (k < 0)
                return k;
        _cleanup_rollback_ Store *txn = s;

        k = key_read(s, SELECT_KEY, id, &pem);
        if (k < 0)
                return k;
        if (recipient) {
                k = key_box(pem, recipient, &box, &size);
                if (k < 0)
                        return k;
                pem = secret_free(pem);
                k = key_store_sealed(s, id, recipient, box, size);
        } else
                k = exec_by_id(s, WRITE_IN_TRANSACTION, "UPDATE requests SET key_blob = NULL WHERE id = ?1", id);
        if (k < 0)
                return k;
        k = commit(s);
        if (k < 0)
                return k;
        /* Group commit: the worker makes it durable and truncates the WAL (store-journal-sync.h);
         * the caller answers only after that (bus-request.c). */
        if (!s->group_commit)
                checkpoint_truncate(s);
        if (recipient) {
                *ret_box = TAKE_PTR(box);
                *ret_size = size;
        } else
                *ret_pem = TAKE_PTR(pem);
        return 0;
}

int store_key_take(Store *s, const char *id, CbSecret **ret) {
        if (!s || !id || !ret)
                return -EINVAL;
        return key_take(s, id, NULL, ret, NULL, NULL);
}

int store_key_erase(Store *s, const char *id) {
        return erase_by_id(s, "UPDATE requests SET key_blob = NULL, sealed_to = NULL, sealed_key = NULL WHERE id = ?1",
                           id);
}

int store_key_seal(Store *s, const char *id, const uint8_t recipient[static STORE_SEAL_RECIPIENT_LEN],
                   uint8_t **ret_box, size_t *ret_size) {
        if (!s || !id || !recipient || !ret_box || !ret_size)
                return -EINVAL;
        return key_take(s, id, recipient, NULL, ret_box, ret_size);
}

int store_key_sealed_get(Store *s, const char *id, uint8_t ret_recipient[static STORE_SEAL_RECIPIENT_LEN],
                         uint8_t **ret_box, size_t *ret_size) {
        _cleanup_stmt_ Stmt q = {};
        uint8_t *box;
        int k, size;

        k = check_id(s, id, ret_box && ret_size);
        if (k < 0)
                return k;
        k = select_blob_row(s, "SELECT sealed_to, sealed_key FROM requests WHERE id = ?1", id, 1, &q);
        if (k < 0)
                return k;
        size = sqlite3_column_bytes(q.st, 1);
        if (sqlite3_column_bytes(q.st, 0) != (int) STORE_SEAL_RECIPIENT_LEN || size <= (int) crypto_box_SEALBYTES)
                return -EUCLEAN;
        box = malloc((size_t) size);
        if (!box)
                return -ENOMEM;
        memcpy(box, sqlite3_column_blob(q.st, 1), (size_t) size);
        if (ret_recipient)
                memcpy(ret_recipient, sqlite3_column_blob(q.st, 0), STORE_SEAL_RECIPIENT_LEN);
        *ret_box = box;
        *ret_size = (size_t) size;
        return 0;
}

/* The count(*) of a prepared query. */
static int count_result(sqlite3_stmt *st, unsigned *ret) {
        sqlite3_int64 n;
        int k;

        k = step_row(st);
        if (k <= 0)
                return k < 0 ? k : -EIO;
        n = sqlite3_column_int64(st, 0);
        *ret = n > UINT32_MAX ? UINT32_MAX : (unsigned) n;
        return 0;
}

int store_count_active(Store *s, uid_t owner, unsigned *ret) {
        _cleanup_stmt_ Stmt q = {};
        int k;

        if (!s || !ret)
                return -EINVAL;
        k = PREPARE(s,
                    "SELECT count(*) FROM requests WHERE owner = ?1 AND "
                    "state IN ('queued', 'submitting', 'pending', 'retrying')",
                    &q, ARG_I64(owner));
        if (k < 0)
                return k;
        return count_result(q.st, ret);
}

int store_count_created_since(Store *s, uid_t owner, uint64_t since_usec, unsigned *ret) {
        _cleanup_stmt_ Stmt q = {};
        int k;

        if (!s || !ret)
                return -EINVAL;
        k = PREPARE(s, "SELECT count(*) FROM enroll_history WHERE owner = ?1 AND created >= ?2", &q,
                    ARG_I64(owner), ARG_U64(since_usec));
        if (k < 0)
                return k;
        return count_result(q.st, ret);
}

int store_history_prune(Store *s, uint64_t before_usec) {
        if (!s)
                return -EINVAL;
        return WRITE(s, WRITE_DURABLE, "DELETE FROM enroll_history WHERE created < ?1", ARG_U64(before_usec));
}

/* ---- the key kept for a RenewalReq ---- */

int store_renewal_key_keep(Store *s, const char *id) {
        int k;

        k = check_id(s, id, true);
        if (k < 0)
                return k;
        /* The same blob: it is bound to the request's id, which does not change. */
        k = exec_by_id(s, WRITE_DURABLE, "UPDATE requests SET renewal_key = key_blob WHERE id = ?1 AND key_blob IS NOT NULL", id);
        return k == -ENOENT ? -ENOKEY : k;      /* no such row, or no key in it */
}

int store_renewal_key_get(Store *s, const char *id, CbSecret **ret) {
        return key_get(s, SELECT_RENEWAL_KEY, id, ret);
}

int store_renewal_key_erase(Store *s, const char *id) {
        int k;

        k = erase_by_id(s, "UPDATE requests SET renewal_key = NULL WHERE id = ?1 AND renewal_key IS NOT NULL", id);
        if (k == -ENOENT && store_id_is_valid(id))
                return 0;       /* nothing was kept */
        if (k < 0)
                return k;
        return 1;
}

int store_renewal_key_present(Store *s, const char *id) {
        _cleanup_stmt_ Stmt q = {};
        int k;

        k = check_id(s, id, true);
        if (k < 0)
                return k;
        k = select_blob_row(s, SELECT_RENEWAL_KEY, id, 0, &q);
        if (k == -ENOKEY)
                return 0;
        if (k < 0)
                return k;
        return 1;
}

int store_ca_renewal_set(Store *s, const char *ca, uint64_t refused_until) {
        int k;

        if (!s || !ca)
                return -EINVAL;
        if (refused_until == 0)
                k = WRITE(s, WRITE_DURABLE, "DELETE FROM ca_renewal WHERE ca = ?1", ARG_TEXT(ca));
        else
                k = WRITE(s, WRITE_DURABLE,
                          "INSERT INTO ca_renewal (ca, refused_until) VALUES (?1, ?2) "
                          "ON CONFLICT (ca) DO UPDATE SET refused_until = excluded.refused_until",
                          ARG_TEXT(ca), ARG_I64(refused_until));
        return k < 0 ? k : 0;
}

int store_ca_renewal_get(Store *s, const char *ca, uint64_t *ret_refused_until) {
        _cleanup_stmt_ Stmt q = {};
        int k;

        if (!s || !ca || !ret_refused_until)
                return -EINVAL;
        *ret_refused_until = 0;
        k = select_by_id(s, "SELECT refused_until FROM ca_renewal WHERE ca = ?1", ca, &q);
        if (k <= 0)
                return k;
        *ret_refused_until = (uint64_t) sqlite3_column_int64(q.st, 0);
        return 0;
}

/* ---- challenges NDES holds for this broker (one block: store-db.h) ----
 * Their own table (challenge_table(), made at store_open_with_cipher()), outside the numbered
 * schema. Written relaxed (WriteMode): durable against a crash of the daemon, which is what
 * they are for. */

static void challenge_blob_id(int64_t row, char id[static 48]) {
        snprintf(id, 48, "challenge-%lld", (long long) row);
}

int store_challenge_add(Store *s, const char *ca, const char *admin_url, const char *url, uint64_t issued,
                        uint64_t expires, int64_t *ret_row) {
        int k;

        if (!s || !ca || !admin_url || !url || !ret_row)
                return -EINVAL;
        k = WRITE(s, WRITE_RELAXED,
                  "INSERT INTO challenges (ca, admin_url, url, issued, expires) VALUES (?1, ?2, ?3, ?4, ?5)",
                  ARG_TEXT(ca), ARG_TEXT(admin_url), ARG_TEXT(url), ARG_U64(issued), ARG_U64(expires));
        if (k < 0)
                return k;
        *ret_row = sqlite3_last_insert_rowid(s->db);
        return 0;
}

int store_challenge_set_times(Store *s, int64_t row, uint64_t issued, uint64_t expires) {
        if (!s)
                return -EINVAL;
        return one_changed(WRITE(s, WRITE_RELAXED, "UPDATE challenges SET issued = ?2, expires = ?3 WHERE row = ?1",
                                 ARG_I64(row), ARG_U64(issued), ARG_U64(expires)));
}

int store_challenge_set_request(Store *s, int64_t row, const char *request) {
        if (!s || !request)
                return -EINVAL;
        return one_changed(WRITE(s, WRITE_RELAXED, "UPDATE challenges SET request = ?2 WHERE row = ?1",
                                 ARG_I64(row), ARG_TEXT(request)));
}

int store_challenge_set_sent(Store *s, int64_t row, const char *request) {
        if (!s || !request)
                return -EINVAL;
        return one_changed(WRITE(s, WRITE_RELAXED, "UPDATE challenges SET request = ?2, spare = NULL WHERE row = ?1",
                                 ARG_I64(row), ARG_TEXT(request)));
}

int store_challenge_set_spare(Store *s, int64_t row, const CbSecret *spare, unsigned validity_minutes,
                              const char *thumbprint) {
        _cleanup_free_ uint8_t *blob = NULL;
        size_t size = 0;
        char id[48];
        int k;

        if (!s)
                return -EINVAL;
        if (!spare)
                return one_changed(WRITE(s, WRITE_RELAXED, "UPDATE challenges SET spare = NULL WHERE row = ?1",
                                         ARG_I64(row)));

        challenge_blob_id(row, id);
        k = store_cipher_seal(s->cipher, id, spare, &blob, &size);
        if (k < 0)
                return k;
        return one_changed(WRITE(s, WRITE_RELAXED,
                                 "UPDATE challenges SET spare = ?2, validity = ?3, thumbprint = ?4 WHERE row = ?1",
                                 ARG_I64(row), ARG_BLOB(blob, size), ARG_I64(validity_minutes), ARG_TEXT(thumbprint)));
}

int store_challenge_delete(Store *s, int64_t row) {
        int k;

        if (!s)
                return -EINVAL;
        k = WRITE(s, WRITE_RELAXED, "DELETE FROM challenges WHERE row = ?1", ARG_I64(row));
        return k < 0 ? k : 0;
}

void store_challenge_array_free(StoreChallenge *a, size_t n) {
        for (size_t i = 0; i < n && a; i++) {
                free(a[i].url);
                secret_free(a[i].spare);
        }
        free(a);
}

/* The current row of a challenges SELECT (row, url, issued, expires, validity, thumbprint,
 * spare, request) into *c, its spare decrypted. */
static int challenge_from_row(Store *s, sqlite3_stmt *st, StoreChallenge *c) {
        const char *t;
        int k;

        *c = (StoreChallenge) {
                .row = sqlite3_column_int64(st, 0),
                .issued = (uint64_t) sqlite3_column_int64(st, 2),
                .expires = (uint64_t) sqlite3_column_int64(st, 3),
                .validity_minutes = (unsigned) sqlite3_column_int64(st, 4),
                .has_spare = sqlite3_column_type(st, 6) != SQLITE_NULL,
        };
        t = (const char *) sqlite3_column_text(st, 5);
        if (t && strlen(t) < sizeof c->thumbprint)
                strcpy(c->thumbprint, t);
        t = (const char *) sqlite3_column_text(st, 7);
        if (t && strlen(t) < sizeof c->request)
                strcpy(c->request, t);
        k = column_strdup(st, 1, &c->url);
        if (k < 0)
                return k;
        if (c->has_spare) {
                char id[48];
                int size = sqlite3_column_bytes(st, 6);

                challenge_blob_id(c->row, id);
                /* Not decryptable (another master key, tampered): it only counts. */
                if (store_cipher_open(s->cipher, id, sqlite3_column_blob(st, 6), size > 0 ? (size_t) size : 0,
                                      &c->spare) < 0)
                        c->spare = NULL;
        }
        return 0;
}

int store_challenge_load(Store *s, const char *ca, const char *admin_url, uint64_t now, StoreChallenge **ret,
                         size_t *ret_n) {
        _cleanup_stmt_ Stmt q = {};
        StoreChallenge *a = NULL;
        size_t n = 0;
        int k;

        if (!s || !ca || !admin_url || !ret || !ret_n)
                return -EINVAL;
        k = PREPARE(s, "SELECT row, url, issued, expires, validity, thumbprint, spare, request FROM challenges "
                       "WHERE ca = ?1 AND admin_url = ?2 AND expires > ?3 ORDER BY issued, row",
                    &q, ARG_TEXT(ca), ARG_TEXT(admin_url), ARG_U64(now));
        if (k < 0)
                return k;
        while ((k = step_row(q.st)) > 0) {
                StoreChallenge *b = realloc(a, (n + 1) * sizeof *a);
                if (!b) {
                        k = -ENOMEM;
                        break;
                }
                a = b;
                k = challenge_from_row(s, q.st, &a[n++]);
                if (k < 0)
                        break;
        }
        if (k < 0) {
                store_challenge_array_free(a, n);
                return k;
        }
        *ret = a;
        *ret_n = n;
        return 0;
}

static bool url_in(const char *url, const char *const *urls, size_t n) {
        for (size_t i = 0; i < n; i++)
                if (url && urls[i] && strcmp(url, urls[i]) == 0)
                        return true;
        return false;
}

/* The rows of ca with a spare recorded for a server not in admin_urls. */
static int challenge_rows_elsewhere(Store *s, const char *ca, const char *const *admin_urls, size_t n,
                                    int64_t **ret, size_t *ret_n) {
        _cleanup_stmt_ Stmt q = {};
        _cleanup_free_ int64_t *rows = NULL;
        size_t n_rows = 0;
        int k;

        k = PREPARE(s, "SELECT row, admin_url FROM challenges WHERE ca = ?1 AND spare IS NOT NULL", &q, ARG_TEXT(ca));
        if (k < 0)
                return k;
        while ((k = step_row(q.st)) > 0) {
                if (url_in((const char *) sqlite3_column_text(q.st, 1), admin_urls, n))
                        continue;
                int64_t *r = realloc(rows, (n_rows + 1) * sizeof *rows);
                if (!r)
                        return -ENOMEM;
                rows = r;
                rows[n_rows++] = sqlite3_column_int64(q.st, 0);
        }
        if (k < 0)
                return k;
        *ret = TAKE_PTR(rows);
        *ret_n = n_rows;
        return 0;
}

int store_challenge_drop_spares_except(Store *s, const char *ca, const char *const *admin_urls, size_t n) {
        _cleanup_free_ int64_t *rows = NULL;
        size_t n_rows = 0;
        int k;

        if (!s || !ca || (n > 0 && !admin_urls))
                return -EINVAL;
        k = challenge_rows_elsewhere(s, ca, admin_urls, n, &rows, &n_rows);
        if (k < 0)
                return k;
        for (size_t i = 0; i < n_rows; i++) {
                k = store_challenge_set_spare(s, rows[i], NULL, 0, NULL);
                if (k < 0)
                        return k;
        }
        return 0;
}
