/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <fcntl.h>
#include <sodium.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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

StoreRequest *store_request_free(StoreRequest *r) {
        if (!r)
                return NULL;
        free(r->ca);
        free(r->label);
        free(r->subject);
        strv_free(r->names);
        free(r->key);
        free(r->usage);
        free(r->error);
        free(r->error_message);
        free(r->fail_info);
        free(r->transaction_id);
        free(r->certificate);
        free(r->chain);
        free(r->serial);
        free(r->csr);
        free(r->caller);
        free(r->warning);
        free(r->server);
        free(r->successor);
        free(r->predecessor);
        free(r->token);
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

/* One statement through the cache (BEGIN, COMMIT, a PRAGMA); several (the schema) directly. */
static int exec_sql(Store *s, const char *sql) {
        sqlite3_stmt *st = NULL;
        int rc;

        if (strchr(sql, ';'))
                return errno_from_sqlite(sqlite3_exec(s->db, sql, NULL, NULL, NULL));
        rc = prepare(s, sql, &st);
        if (rc < 0)
                return rc;
        while ((rc = sqlite3_step(st)) == SQLITE_ROW)
                ;
        stmt_done(s, st);
        return errno_from_sqlite(rc);
}

static int bind_text(sqlite3_stmt *st, int idx, const char *v) {
        return errno_from_sqlite(sqlite3_bind_text(st, idx, v ? v : "", -1, SQLITE_STATIC));
}

static int bind_u64(sqlite3_stmt *st, int idx, uint64_t v) {
        if (v > INT64_MAX)
                return -ERANGE;
        return errno_from_sqlite(sqlite3_bind_int64(st, idx, (sqlite3_int64) v));
}

/* Run a statement that returns no rows. */
static int step_done(sqlite3_stmt *st) {
        int rc = sqlite3_step(st);

        if (rc == SQLITE_DONE)
                return 0;
        if (rc == SQLITE_ROW)
                return -EIO;
        return errno_from_sqlite(sqlite3_extended_errcode(sqlite3_db_handle(st)));
}

/* One statement committed with synchronous=NORMAL: in WAL mode durable against a crash or
 * kill -9 of the daemon (the WAL is written before COMMIT returns), without the fsync() that
 * would stall the event loop; the next FULL commit or checkpoint makes it durable on disk. */
static int step_relaxed(Store *s, sqlite3_stmt *st) {
        int k;

        (void) exec_sql(s, "PRAGMA synchronous=NORMAL");
        k = step_done(st);
        (void) exec_sql(s, "PRAGMA synchronous=FULL");
        return k;
}

/* Group commit (store_set_group_commit()): the transactions between these two commit with
 * synchronous=NORMAL, no fsync on the loop; the caller makes them durable with the journal's
 * worker. Set outside the transaction: SQLite refuses to change synchronous inside one. */
static void group_commit_begin(Store *s) {
        if (s->group_commit)
                (void) exec_sql(s, "PRAGMA synchronous=NORMAL");
}

static void group_commit_end(Store *s) {
        if (s->group_commit)
                (void) exec_sql(s, "PRAGMA synchronous=FULL");
}

static int begin(Store *s) {
        return exec_sql(s, "BEGIN IMMEDIATE");
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

static int schema_setup(Store *s, char **ret_message) {
        sqlite3_stmt *st = NULL;
        int r, version = 0;

        r = begin(s);
        if (r < 0)
                goto fail_msg;

        r = prepare(s, "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'", &st);
        if (r < 0)
                goto fail_msg;
        r = sqlite3_step(st);
        stmt_done(s, st);
        st = NULL;

        if (r == SQLITE_DONE) {
                r = exec_sql(s, schema_v1);
                if (r < 0)
                        goto fail_msg;
                version = 1;    /* and migrated below, like an existing one */
        } else if (r == SQLITE_ROW) {
                r = prepare(s, "SELECT max(version) FROM schema_version", &st);
                if (r < 0)
                        goto fail_msg;
                if (sqlite3_step(st) == SQLITE_ROW)
                        version = sqlite3_column_int(st, 0);
                stmt_done(s, st);
                st = NULL;
        } else {
                r = errno_from_sqlite(r);
                goto fail_msg;
        }

        if (version > STORE_SCHEMA_VERSION) {
                rollback(s);
                set_message(ret_message,
                            "%s has schema version %d, this certbrokerd knows only up to %d: "
                            "it was written by a newer certbroker; run that version or restore a backup",
                            s->path, version, STORE_SCHEMA_VERSION);
                return -EPROTONOSUPPORT;
        }
        if (version < 1) {
                rollback(s);
                set_message(ret_message, "%s: schema_version table is empty or invalid", s->path);
                return -EUCLEAN;
        }
        /* Migrations from version N to N+1, inside this transaction. */
        if (version < 2) {
                /* 2: the identity each request was decided for (caller.h's snapshot), so that
                 * Reload and start-up can decide it again. */
                /* and when a PKCSReq may have reached the CA (CertPoll first on resume), and what
                 * the request has to tell beyond its state (a duplicate that may have been
                 * issued). */
                r = exec_sql(s, "ALTER TABLE requests ADD COLUMN caller TEXT NOT NULL DEFAULT '';"
                                "ALTER TABLE requests ADD COLUMN submitted INTEGER NOT NULL DEFAULT 0;"
                                "ALTER TABLE requests ADD COLUMN warning TEXT NOT NULL DEFAULT '';"
                                "ALTER TABLE requests ADD COLUMN renew INTEGER NOT NULL DEFAULT 0;"
                                "ALTER TABLE requests ADD COLUMN renew_at INTEGER NOT NULL DEFAULT 0;"
                                "ALTER TABLE requests ADD COLUMN successor TEXT NOT NULL DEFAULT '';"
                                "ALTER TABLE requests ADD COLUMN predecessor TEXT NOT NULL DEFAULT '';"
                                "ALTER TABLE requests ADD COLUMN renew_warned INTEGER NOT NULL DEFAULT 0;"
                                "UPDATE schema_version SET version = 2;");
                if (r < 0)
                        goto fail_msg;
                version = 2;
        }
        if (version < 3) {
                /* 3: the caller's idempotency token of Enroll (kept by successors), and a key
                 * sealed to its receiver (TakeKeySealed) until the receiver confirms it. */
                r = exec_sql(s, "ALTER TABLE requests ADD COLUMN token TEXT NOT NULL DEFAULT '';"
                                "ALTER TABLE requests ADD COLUMN sealed_to BLOB;"
                                "ALTER TABLE requests ADD COLUMN sealed_key BLOB;"
                                "UPDATE schema_version SET version = 3;");
                if (r < 0)
                        goto fail_msg;
                version = 3;
        }
        if (version < 4) {
                /* 4: the key of a tracked certificate kept, encrypted as key_blob is, to sign its
                 * RenewalReq (Renewal=scep-renewal|auto) after the owner took it; and per CA
                 * what a RenewalReq got (Renewal=auto). */
                r = exec_sql(s, "ALTER TABLE requests ADD COLUMN renewal_key BLOB;"
                                "CREATE TABLE ca_renewal (ca TEXT PRIMARY KEY NOT NULL, refused_until INTEGER NOT NULL) STRICT;"
                                "UPDATE schema_version SET version = 4;");
                if (r < 0)
                        goto fail_msg;
                version = 4;
        }
        if (version < 5) {
                /* 5: the NDES server (URL= entry) a request's transaction went to, when a CA has
                 * several: its CertPolls go to that server. */
                r = exec_sql(s, "ALTER TABLE requests ADD COLUMN server TEXT NOT NULL DEFAULT '';"
                                "UPDATE schema_version SET version = 5;");
                if (r < 0)
                        goto fail_msg;
                version = 5;
        }

        r = commit(s);
        if (r < 0)
                goto fail_msg;
        return 0;

fail_msg:
        set_message(ret_message, "cannot set up the schema of %s: %s", s->path, sqlite3_errmsg(s->db));
        rollback(s);
        return r < 0 ? r : -EIO;
}

static int precreate_db_file(const char *path, char **ret_message) {
        struct stat st;
        int fd, r = 0;

        /* Create it ourselves, 0600 and without following links, so SQLite never creates it
         * with the umask's idea of a mode; -wal and -shm copy this file's mode. */
        fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY, 0600);
        if (fd < 0) {
                r = -errno;
                set_message(ret_message, "cannot open %s: %s", path, strerror(-r));
                return r;
        }
        if (fstat(fd, &st) < 0)
                r = -errno;
        else if (!S_ISREG(st.st_mode))
                r = -EINVAL;
        else if (st.st_uid != geteuid() || (st.st_mode & 077) != 0) {
                r = -EPERM;
                set_message(ret_message,
                            "%s has owner %u and mode %04o: it must belong to uid %u with no group/other "
                            "access; fix with chown %u %s && chmod 0600 %s",
                            path, (unsigned) st.st_uid, (unsigned) (st.st_mode & 07777),
                            (unsigned) geteuid(), (unsigned) geteuid(), path, path);
        }
        if (r < 0 && ret_message && !*ret_message)
                set_message(ret_message, "%s: %s", path, strerror(-r));
        close(fd);
        return r;
}

/* The challenges NDES holds for this broker (the block at the end of this file): their own
 * table, outside the numbered schema (a journal without it just had nothing recorded), and the
 * rows NDES has forgotten dropped once per start. */
static int challenge_table(Store *s) {
        sqlite3_stmt *st = NULL;
        int k;

        k = exec_sql(s, "CREATE TABLE IF NOT EXISTS challenges ("
                           "row INTEGER PRIMARY KEY, ca TEXT NOT NULL, admin_url TEXT NOT NULL, "
                           "url TEXT NOT NULL, issued INTEGER NOT NULL, expires INTEGER NOT NULL, "
                           "validity INTEGER NOT NULL DEFAULT 0, thumbprint TEXT NOT NULL DEFAULT '', "
                           "spare BLOB, request TEXT NOT NULL DEFAULT '') STRICT");
        if (k < 0)
                return k;
        /* Those NDES has forgotten: once per start, not per CA and server. */
        k = prepare(s, "DELETE FROM challenges WHERE expires <= ?1", &st);
        if (k >= 0 && (k = bind_u64(st, 1, now_usec())) >= 0)
                k = step_relaxed(s, st);
        stmt_done(s, st);
        return k;
}

int store_open_with_cipher(const char *state_dir, StoreCipher *cipher, Store **ret, char **ret_message) {
        sqlite3_stmt *st = NULL;
        Store *s = NULL;
        int r, rc;

        if (!state_dir || !cipher || !ret) {
                store_cipher_free(cipher);
                return -EINVAL;
        }

        r = store_state_dir_prepare(state_dir, ret_message);
        if (r < 0) {
                store_cipher_free(cipher);
                return r;
        }

        s = calloc(1, sizeof(*s));
        if (!s) {
                store_cipher_free(cipher);
                return -ENOMEM;
        }
        s->cipher = cipher;
        if (asprintf(&s->path, "%s/" STORE_DB_NAME, state_dir) < 0) {
                s->path = NULL;
                r = -ENOMEM;
                goto fail;
        }

        r = precreate_db_file(s->path, ret_message);
        if (r < 0)
                goto fail;

        rc = sqlite3_open_v2(s->path, &s->db,
                             SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_NOFOLLOW, NULL);
        if (rc != SQLITE_OK) {
                r = errno_from_sqlite(rc);
                set_message(ret_message, "cannot open database %s: %s", s->path,
                            s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc));
                goto fail;
        }
        (void) sqlite3_extended_result_codes(s->db, 1);
        (void) sqlite3_busy_timeout(s->db, 5000);
        (void) sqlite3_db_config(s->db, SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0, NULL);
        (void) sqlite3_db_config(s->db, SQLITE_DBCONFIG_DEFENSIVE, 1, NULL);

        /* WAL + FULL: a commit returns after the WAL is fsync()ed (durable across power
         * loss, not just kill -9). secure_delete: freed pages are zeroed. */
        r = prepare(s, "PRAGMA journal_mode=WAL", &st);
        if (r >= 0 && sqlite3_step(st) == SQLITE_ROW) {
                const char *mode = (const char *) sqlite3_column_text(st, 0);
                if (!mode || strcmp(mode, "wal") != 0)
                        r = -EIO;
        } else if (r >= 0)
                r = errno_from_sqlite(sqlite3_extended_errcode(s->db));
        stmt_done(s, st);
        st = NULL;
        if (r >= 0)
                r = exec_sql(s, "PRAGMA synchronous=FULL; PRAGMA secure_delete=ON; PRAGMA foreign_keys=ON;");
        if (r < 0) {
                set_message(ret_message, "cannot configure database %s (WAL, synchronous=FULL): %s",
                            s->path, sqlite3_errmsg(s->db));
                goto fail;
        }

        /* A quick structural check on every start: cheap at our sizes, and it turns a damaged
         * file into a clear message instead of odd failures later. */
        r = prepare(s, "PRAGMA quick_check", &st);
        if (r >= 0) {
                rc = sqlite3_step(st);
                if (rc == SQLITE_ROW) {
                        const char *res = (const char *) sqlite3_column_text(st, 0);
                        if (!res || strcmp(res, "ok") != 0) {
                                r = -EUCLEAN;
                                /* integrity_check lists problems one per line: the first, cut. */
                                const char *first = res ? res : "?";
                                if (strncmp(first, "*** in database ", 16) == 0 && strchr(first, '\n'))
                                        first = strchr(first, '\n') + 1;
                                int len = (int) strcspn(first, "\n");
                                set_message(ret_message,
                                            "database %s is damaged (%.*s%s): certbrokerd does not start on it, so "
                                            "that no request is lost without notice. Restore it from a backup, or "
                                            "salvage it with 'sqlite3 %s .recover'; moving it aside starts an empty "
                                            "journal that forgets every request and its key",
                                            s->path, len > 200 ? 200 : len, first,
                                            first[len] || len > 200 ? "; ..." : "", s->path);
                        }
                } else
                        r = errno_from_sqlite(sqlite3_extended_errcode(s->db));
        }
        stmt_done(s, st);
        st = NULL;
        if (r < 0) {
                if (ret_message && !*ret_message)
                        set_message(ret_message, "cannot read database %s: %s", s->path, sqlite3_errmsg(s->db));
                goto fail;
        }

        r = schema_setup(s, ret_message);
        if (r < 0)
                goto fail;
        r = challenge_table(s);
        if (r < 0) {
                set_message(ret_message, "cannot create the challenges table in %s: %s", s->path,
                            sqlite3_errmsg(s->db));
                goto fail;
        }

        *ret = s;
        return 0;

fail:
        store_close(s);
        return r;
}


int store_open(const char *state_dir, const char *credentials_dir, Store **ret, char **ret_message) {
        StoreCipher *c = NULL;
        int r;

        if (!state_dir || !ret)
                return -EINVAL;

        r = store_cipher_load(state_dir, credentials_dir, &c, ret_message);
        if (r < 0)
                return r;

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

const char *store_path(const Store *s) {
        return s ? s->path : NULL;
}

/* ---- validation and (de)serialisation ---- */

static int check_text(const char *v, size_t max) {
        if (v && strlen(v) > max)
                return -E2BIG;
        return 0;
}

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

static int names_split(const char *s, char ***ret) {
        size_t n = 0, k = 0;
        char **l;

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
                if (!l[k]) {
                        strv_free(l);
                        return -ENOMEM;
                }
                p += len;
                if (*p == '\n')
                        p++;
        }
        *ret = l;
        return 0;
}

static int request_validate(const StoreRequest *r) {
        int k = 0;

        if (!store_id_is_valid(r->id))
                return -EINVAL;
        if (r->state < 0 || r->state >= _REQUEST_STATE_MAX)
                return -EINVAL;
        if (r->attempts > INT32_MAX)
                return -ERANGE;

        const char *texts[] = { r->ca, r->label, r->subject, r->key, r->usage, r->error,
                                r->fail_info, r->transaction_id, r->serial, r->successor, r->predecessor, r->token,
                                r->server };
        for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
                k = check_text(texts[i], STORE_TEXT_MAX);
                if (k < 0)
                        return k;
        }
        /* Long ones: PEM, and error messages that may quote a server's answer. */
        const char *pems[] = { r->certificate, r->chain, r->csr, r->error_message, r->caller, r->warning };
        for (size_t i = 0; i < sizeof(pems) / sizeof(pems[0]); i++) {
                k = check_text(pems[i], STORE_PEM_MAX);
                if (k < 0)
                        return k;
        }
        return 0;
}

#define REQUEST_COLUMNS                                                           \
        "id, owner, ca, label, subject, names, key_type, usage, state, error, "   \
        "error_message, fail_info, transaction_id, certificate, chain, serial, "  \
        "csr, not_before, not_after, created, updated, next_attempt, attempts, "  \
        "key_blob IS NOT NULL, caller, submitted, warning, renew, renew_at, successor, predecessor, " \
        "renew_warned, token, sealed_key IS NOT NULL, server"

static int column_strdup(sqlite3_stmt *st, int col, char **ret) {
        const unsigned char *t = sqlite3_column_text(st, col);

        *ret = strdup(t ? (const char *) t : "");
        return *ret ? 0 : -ENOMEM;
}

static int request_from_row(sqlite3_stmt *st, StoreRequest **ret) {
        StoreRequest *r;
        const unsigned char *t;
        int k = 0;

        r = calloc(1, sizeof(*r));
        if (!r)
                return -ENOMEM;

        t = sqlite3_column_text(st, 0);
        if (!t || !store_id_is_valid((const char *) t)) {
                k = -EUCLEAN;
                goto fail;
        }
        memcpy(r->id, t, STORE_ID_LEN + 1);
        r->owner = (uid_t) sqlite3_column_int64(st, 1);

        char **cols[] = { &r->ca, &r->label, &r->subject };
        for (int i = 0; i < 3; i++)
                if ((k = column_strdup(st, 2 + i, cols[i])) < 0)
                        goto fail;

        t = sqlite3_column_text(st, 5);
        k = names_split(t ? (const char *) t : "", &r->names);
        if (k < 0)
                goto fail;

        if ((k = column_strdup(st, 6, &r->key)) < 0 ||
            (k = column_strdup(st, 7, &r->usage)) < 0)
                goto fail;

        t = sqlite3_column_text(st, 8);
        r->state = request_state_from_string((const char *) t);
        if (r->state < 0) {
                k = -EUCLEAN;
                goto fail;
        }

        char **cols2[] = { &r->error, &r->error_message, &r->fail_info, &r->transaction_id,
                           &r->certificate, &r->chain, &r->serial, &r->csr };
        for (int i = 0; i < 8; i++)
                if ((k = column_strdup(st, 9 + i, cols2[i])) < 0)
                        goto fail;

        r->not_before = (uint64_t) sqlite3_column_int64(st, 17);
        r->not_after = (uint64_t) sqlite3_column_int64(st, 18);
        r->created = (uint64_t) sqlite3_column_int64(st, 19);
        r->updated = (uint64_t) sqlite3_column_int64(st, 20);
        r->next_attempt = (uint64_t) sqlite3_column_int64(st, 21);
        r->attempts = (uint32_t) sqlite3_column_int64(st, 22);
        r->key_available = sqlite3_column_int(st, 23) != 0;
        if ((k = column_strdup(st, 24, &r->caller)) < 0)
                goto fail;
        r->submitted = (uint64_t) sqlite3_column_int64(st, 25);
        if ((k = column_strdup(st, 26, &r->warning)) < 0)
                goto fail;
        r->renew = sqlite3_column_int(st, 27) != 0;
        r->renew_at = (uint64_t) sqlite3_column_int64(st, 28);
        if ((k = column_strdup(st, 29, &r->successor)) < 0 ||
            (k = column_strdup(st, 30, &r->predecessor)) < 0)
                goto fail;
        r->renew_warned = (uint32_t) sqlite3_column_int64(st, 31);
        if ((k = column_strdup(st, 32, &r->token)) < 0)
                goto fail;
        r->key_sealed = sqlite3_column_int(st, 33) != 0;
        if ((k = column_strdup(st, 34, &r->server)) < 0)
                goto fail;

        *ret = r;
        return 0;

fail:
        store_request_free(r);
        return k;
}

/* ---- CRUD ---- */

/* The columns a request's row shares between INSERT and UPDATE, as ?1 (id) to ?28. */
static int bind_request_columns(sqlite3_stmt *st, const StoreRequest *r, const char *names) {
        int k;

        if ((k = bind_text(st, 1, r->id)) < 0 ||
            (k = bind_text(st, 2, r->ca)) < 0 ||
            (k = bind_text(st, 3, r->label)) < 0 ||
            (k = bind_text(st, 4, r->subject)) < 0 ||
            (k = bind_text(st, 5, names)) < 0 ||
            (k = bind_text(st, 6, r->key)) < 0 ||
            (k = bind_text(st, 7, r->usage)) < 0 ||
            (k = bind_text(st, 8, request_state_to_string(r->state))) < 0 ||
            (k = bind_text(st, 9, r->error)) < 0 ||
            (k = bind_text(st, 10, r->error_message)) < 0 ||
            (k = bind_text(st, 11, r->fail_info)) < 0 ||
            (k = bind_text(st, 12, r->transaction_id)) < 0 ||
            (k = bind_text(st, 13, r->certificate)) < 0 ||
            (k = bind_text(st, 14, r->chain)) < 0 ||
            (k = bind_text(st, 15, r->serial)) < 0 ||
            (k = bind_text(st, 16, r->csr)) < 0 ||
            (k = bind_u64(st, 17, r->not_before)) < 0 ||
            (k = bind_u64(st, 18, r->not_after)) < 0 ||
            (k = bind_u64(st, 19, r->updated)) < 0 ||
            (k = bind_u64(st, 20, r->next_attempt)) < 0 ||
            (k = bind_u64(st, 21, r->attempts)) < 0 ||
            (k = bind_u64(st, 22, r->submitted)) < 0 ||
            (k = bind_text(st, 23, r->warning)) < 0 ||
            (k = bind_u64(st, 24, r->renew ? 1 : 0)) < 0 ||
            (k = bind_u64(st, 25, r->renew_at)) < 0 ||
            (k = bind_text(st, 26, r->successor)) < 0 ||
            (k = bind_text(st, 27, r->predecessor)) < 0 ||
            (k = bind_u64(st, 28, r->renew_warned)) < 0 ||
            (k = bind_text(st, 29, r->server)) < 0)
                return k;
        return 0;
}

static int insert_row(Store *s, const StoreRequest *r, const char *names, const uint8_t *blob, size_t blob_size) {
        static const char sql[] =
                "INSERT INTO requests (id, ca, label, subject, names, key_type, usage, state, "
                "error, error_message, fail_info, transaction_id, certificate, chain, serial, csr, "
                "not_before, not_after, updated, next_attempt, attempts, submitted, warning, renew, renew_at, "
                "successor, predecessor, renew_warned, server, owner, created, key_blob, caller, token) "
                "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, "
                "?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26, ?27, ?28, ?29, ?30, ?31, ?32, ?33, ?34)";
        sqlite3_stmt *st = NULL;
        int k;

        k = prepare(s, sql, &st);
        if (k < 0)
                return k;

        if ((k = bind_request_columns(st, r, names)) < 0 ||
            (k = errno_from_sqlite(sqlite3_bind_int64(st, 30, (sqlite3_int64) r->owner))) < 0 ||
            (k = bind_u64(st, 31, r->created)) < 0 ||
            (k = bind_text(st, 33, r->caller)) < 0 ||
            (k = bind_text(st, 34, r->token)) < 0)
                goto finish;

        if (blob)
                k = errno_from_sqlite(sqlite3_bind_blob(st, 32, blob, (int) blob_size, SQLITE_STATIC));
        else
                k = errno_from_sqlite(sqlite3_bind_null(st, 32));
        if (k < 0)
                goto finish;

        k = step_done(st);

finish:
        stmt_done(s, st);
        return k;
}

static int insert_history(Store *s, uid_t owner, uint64_t created) {
        sqlite3_stmt *st = NULL;
        int k;

        k = prepare(s, "INSERT INTO enroll_history (owner, created) VALUES (?1, ?2)", &st);
        if (k < 0)
                return k;
        if ((k = errno_from_sqlite(sqlite3_bind_int64(st, 1, (sqlite3_int64) owner))) >= 0 &&
            (k = bind_u64(st, 2, created)) >= 0)
                k = step_done(st);
        stmt_done(s, st);
        return k;
}

/* The predecessor gets its successor only if it has none (exactly one per request). */
static int link_successor(Store *s, const char *predecessor_id, const char *successor_id) {
        sqlite3_stmt *st = NULL;
        int k;

        k = prepare(s, "UPDATE requests SET successor = ?2 WHERE id = ?1 AND successor = ''", &st);
        if (k < 0)
                return k;
        if ((k = bind_text(st, 1, predecessor_id)) >= 0 && (k = bind_text(st, 2, successor_id)) >= 0)
                k = step_done(st);
        stmt_done(s, st);
        if (k >= 0 && sqlite3_changes(s->db) != 1)
                k = -EEXIST;
        return k;
}

/* predecessor_id: insert r as its successor (linked in the same transaction, FULL sync, not
 * counted in the enrollment history: a renewal is not a new request of its owner). */
static int insert_request(Store *s, StoreRequest *r, const CbSecret *key_pem, const char *predecessor_id) {
        uint8_t *blob = NULL;
        size_t blob_size = 0;
        char *names = NULL;
        bool generated = false;
        int k;

        if (!s || !r)
                return -EINVAL;

        if (r->id[0] == 0) {
                store_id_new(r->id);
                generated = true;
        }

        k = request_validate(r);
        if (k < 0)
                goto fail;
        k = names_join(r->names, &names);
        if (k < 0)
                goto fail;

        for (unsigned attempt = 0;; attempt++) {
                if (key_pem) {
                        free(blob);
                        blob = NULL;
                        k = store_cipher_seal(s->cipher, r->id, key_pem, &blob, &blob_size);
                        if (k < 0)
                                goto fail;
                }

                k = begin(s);
                if (k < 0)
                        goto fail;
                k = insert_row(s, r, names, blob, blob_size);
                if (k == -EEXIST && generated && attempt < 3) {
                        /* 64 random bits colliding: astronomically rare, but cheap to handle. */
                        rollback(s);
                        store_id_new(r->id);
                        continue;
                }
                if (k >= 0 && !predecessor_id)
                        k = insert_history(s, r->owner, r->created);
                if (k >= 0 && predecessor_id)
                        k = link_successor(s, predecessor_id, r->id);
                if (k < 0) {
                        rollback(s);
                        goto fail;
                }
                k = commit(s);
                if (k < 0)
                        goto fail;
                break;
        }

        free(names);
        free(blob);
        return 0;

fail:
        if (generated)
                r->id[0] = 0;
        free(names);
        free(blob);
        return k;
}

int store_request_insert(Store *s, StoreRequest *r, const CbSecret *key_pem) {
        int k;

        if (!s)
                return -EINVAL;
        group_commit_begin(s);
        k = insert_request(s, r, key_pem, NULL);
        group_commit_end(s);
        return k;
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
        sqlite3_stmt *st = NULL;
        char *names = NULL;
        int k;

        if (!s || !r)
                return -EINVAL;
        k = request_validate(r);
        if (k < 0)
                return k;
        k = names_join(r->names, &names);
        if (k < 0)
                return k;

        k = prepare(s, sql, &st);
        if (k < 0)
                goto finish;

        if ((k = bind_request_columns(st, r, names)) < 0)
                goto finish;

        /* One statement in autocommit mode is one transaction. State transitions commit with
         * synchronous=NORMAL: in WAL mode that is durable against a crash or kill -9 of the
         * daemon (the WAL is written before COMMIT returns) but skips the fsync(), which would
         * otherwise stall the event loop several ms per transition. After a power loss a request
         * can only fall back to an earlier state and redo that step; the next FULL commit
         * (insert, key take/erase, delete) or checkpoint makes it durable anyway. */
        k = step_relaxed(s, st);
        if (k >= 0 && sqlite3_changes(s->db) == 0)
                k = -ENOENT;

finish:
        stmt_done(s, st);
        free(names);
        return k;
}

int store_request_get(Store *s, const char *id, StoreRequest **ret) {
        sqlite3_stmt *st = NULL;
        int k, rc;

        if (!s || !ret || !id)
                return -EINVAL;
        if (!store_id_is_valid(id))
                return -ENOENT;

        k = prepare(s, "SELECT " REQUEST_COLUMNS " FROM requests WHERE id = ?1", &st);
        if (k < 0)
                return k;
        k = bind_text(st, 1, id);
        if (k < 0)
                goto finish;

        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW)
                k = request_from_row(st, ret);
        else if (rc == SQLITE_DONE)
                k = -ENOENT;
        else
                k = errno_from_sqlite(sqlite3_extended_errcode(s->db));

finish:
        stmt_done(s, st);
        return k;
}

static int load_query(Store *s, sqlite3_stmt *st, StoreRequest ***ret, size_t *ret_n) {
        StoreRequest **a = NULL;
        size_t n = 0, allocated = 0;
        int k = 0, rc;

        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
                if (n == allocated) {
                        size_t m = allocated ? allocated * 2 : 16;
                        StoreRequest **b = reallocarray(a, m, sizeof(*a));

                        if (!b) {
                                k = -ENOMEM;
                                goto fail;
                        }
                        a = b;
                        allocated = m;
                }
                k = request_from_row(st, &a[n]);
                if (k < 0)
                        goto fail;
                n++;
        }
        if (rc != SQLITE_DONE) {
                k = errno_from_sqlite(sqlite3_extended_errcode(s->db));
                goto fail;
        }

        *ret = a;
        *ret_n = n;
        return 0;

fail:
        store_request_array_free(a, n);
        return k;
}

int store_request_load_all(Store *s, StoreRequest ***ret, size_t *ret_n) {
        sqlite3_stmt *st = NULL;
        int k;

        if (!s || !ret || !ret_n)
                return -EINVAL;
        k = prepare(s, "SELECT " REQUEST_COLUMNS " FROM requests ORDER BY created, id", &st);
        if (k < 0)
                return k;
        k = load_query(s, st, ret, ret_n);
        stmt_done(s, st);
        return k;
}

int store_request_list_by_owner(Store *s, uid_t owner, StoreRequest ***ret, size_t *ret_n) {
        sqlite3_stmt *st = NULL;
        int k;

        if (!s || !ret || !ret_n)
                return -EINVAL;
        k = prepare(s, "SELECT " REQUEST_COLUMNS " FROM requests WHERE owner = ?1 ORDER BY created, id", &st);
        if (k < 0)
                return k;
        k = errno_from_sqlite(sqlite3_bind_int64(st, 1, (sqlite3_int64) owner));
        if (k >= 0)
                k = load_query(s, st, ret, ret_n);
        stmt_done(s, st);
        return k;
}

static int exec_by_id(Store *s, const char *sql, const char *id) {
        sqlite3_stmt *st = NULL;
        int k;

        k = prepare(s, sql, &st);
        if (k < 0)
                return k;
        k = bind_text(st, 1, id);
        if (k >= 0)
                k = step_done(st);
        if (k >= 0 && sqlite3_changes(s->db) == 0)
                k = -ENOENT;
        stmt_done(s, st);
        return k;
}

int store_request_delete(Store *s, const char *id) {
        int k;

        if (!s || !id)
                return -EINVAL;
        if (!store_id_is_valid(id))
                return -ENOENT;
        k = exec_by_id(s, "DELETE FROM requests WHERE id = ?1", id);
        if (k >= 0)
                checkpoint_truncate(s);
        return k;
}

int store_key_set(Store *s, const char *id, const CbSecret *key_pem) {
        sqlite3_stmt *st = NULL;
        uint8_t *blob = NULL;
        size_t size = 0;
        int k;

        if (!s || !id || !key_pem)
                return -EINVAL;
        if (!store_id_is_valid(id))
                return -ENOENT;

        k = store_cipher_seal(s->cipher, id, key_pem, &blob, &size);
        if (k < 0)
                return k;

        k = prepare(s, "UPDATE requests SET key_blob = ?2 WHERE id = ?1", &st);
        if (k < 0)
                goto finish;
        if ((k = bind_text(st, 1, id)) >= 0 &&
            (k = errno_from_sqlite(sqlite3_bind_blob(st, 2, blob, (int) size, SQLITE_STATIC))) >= 0) {
                /* Group commit: a key not yet on disk after a power loss only means the request
                 * makes a new one when it resumes. */
                k = s->group_commit ? step_relaxed(s, st) : step_done(st);
        }
        if (k >= 0 && sqlite3_changes(s->db) == 0)
                k = -ENOENT;

finish:
        stmt_done(s, st);
        free(blob);
        return k;
}

/* The row of id from a one-parameter SELECT (?1 = id): 0 with *ret on that row (stmt_done() it);
 * -ENOENT no such row, -ENOKEY when column blob_col is NULL (nothing stored there). */
static int select_blob_row(Store *s, const char *sql, const char *id, int blob_col, sqlite3_stmt **ret) {
        sqlite3_stmt *st = NULL;
        int k, rc;

        k = prepare(s, sql, &st);
        if (k < 0)
                return k;
        k = bind_text(st, 1, id);
        if (k >= 0) {
                rc = sqlite3_step(st);
                if (rc == SQLITE_DONE)
                        k = -ENOENT;
                else if (rc != SQLITE_ROW)
                        k = errno_from_sqlite(sqlite3_extended_errcode(s->db));
                else if (sqlite3_column_type(st, blob_col) == SQLITE_NULL)
                        k = -ENOKEY;
        }
        if (k < 0) {
                stmt_done(s, st);
                return k;
        }
        *ret = st;
        return 0;
}

/* Read and decrypt the key of id; caller may hold a transaction. */
static int key_read(Store *s, const char *id, CbSecret **ret) {
        sqlite3_stmt *st = NULL;
        int k;

        k = select_blob_row(s, "SELECT key_blob FROM requests WHERE id = ?1", id, 0, &st);
        if (k < 0)
                return k;
        const void *blob = sqlite3_column_blob(st, 0);
        int size = sqlite3_column_bytes(st, 0);
        k = store_cipher_open(s->cipher, id, blob, size > 0 ? (size_t) size : 0, ret);
        stmt_done(s, st);
        return k;
}

int store_key_get(Store *s, const char *id, CbSecret **ret) {
        if (!s || !id || !ret)
                return -EINVAL;
        if (!store_id_is_valid(id))
                return -ENOENT;
        return key_read(s, id, ret);
}

/* TakeKey and TakeKeySealed: in one transaction the key is read and erased; with a recipient
 * it is sealed to it (*ret_box) and the sealed copy stored in its place, else it is returned
 * (*ret_pem). The WAL is truncated afterwards, so the erased ciphertext leaves no frame. */
static int key_take(Store *s, const char *id, const uint8_t *recipient, CbSecret **ret_pem, uint8_t **ret_box,
                    size_t *ret_size) {
        sqlite3_stmt *st = NULL;
        CbSecret *pem = NULL;
        uint8_t *box = NULL;
        size_t size = 0;
        int k;

        if (!store_id_is_valid(id))
                return -ENOENT;
        k = begin(s);
        if (k < 0)
                return k;
        k = key_read(s, id, &pem);
        if (k < 0)
                goto fail;
        if (!recipient) {
                k = exec_by_id(s, "UPDATE requests SET key_blob = NULL WHERE id = ?1", id);
                if (k < 0)
                        goto fail;
        } else {
                size = pem->size + crypto_box_SEALBYTES;
                box = malloc(size);
                if (!box) {
                        k = -ENOMEM;
                        goto fail;
                }
                if (crypto_box_seal(box, pem->data, pem->size, recipient) != 0) {
                        k = -EDOM;      /* not a usable public key */
                        goto fail;
                }
                pem = secret_free(pem);
                k = prepare(s, "UPDATE requests SET key_blob = NULL, sealed_to = ?2, sealed_key = ?3 WHERE id = ?1",
                            &st);
                if (k < 0)
                        goto fail;
                if ((k = bind_text(st, 1, id)) >= 0 &&
                    (k = errno_from_sqlite(sqlite3_bind_blob(st, 2, recipient, STORE_SEAL_RECIPIENT_LEN,
                                                             SQLITE_STATIC))) >= 0 &&
                    (k = errno_from_sqlite(sqlite3_bind_blob(st, 3, box, (int) size, SQLITE_STATIC))) >= 0)
                        k = step_done(st);
                stmt_done(s, st);
                if (k < 0)
                        goto fail;
        }
        k = commit(s);
        if (k < 0)
                goto fail;
        /* Group commit: the worker truncates the WAL (store-journal-sync.h). */
        if (!s->group_commit)
                checkpoint_truncate(s);
        if (recipient) {
                *ret_box = box;
                *ret_size = size;
        } else
                *ret_pem = pem;
        return 0;

fail:
        rollback(s);
        secret_free(pem);
        free(box);
        return k;
}

int store_key_take(Store *s, const char *id, CbSecret **ret) {
        int k;

        if (!s || !id || !ret)
                return -EINVAL;
        group_commit_begin(s);
        k = key_take(s, id, NULL, ret, NULL, NULL);
        group_commit_end(s);
        return k;
}

int store_key_erase(Store *s, const char *id) {
        int k;

        if (!s || !id)
                return -EINVAL;
        if (!store_id_is_valid(id))
                return -ENOENT;
        k = exec_by_id(s, "UPDATE requests SET key_blob = NULL, sealed_to = NULL, sealed_key = NULL WHERE id = ?1", id);
        if (k >= 0)
                checkpoint_truncate(s);
        return k;
}

int store_key_seal(Store *s, const char *id, const uint8_t recipient[static STORE_SEAL_RECIPIENT_LEN],
                   uint8_t **ret_box, size_t *ret_size) {
        int k;

        if (!s || !id || !recipient || !ret_box || !ret_size)
                return -EINVAL;
        group_commit_begin(s);
        k = key_take(s, id, recipient, NULL, ret_box, ret_size);
        group_commit_end(s);
        return k;
}

int store_key_sealed_get(Store *s, const char *id, uint8_t ret_recipient[static STORE_SEAL_RECIPIENT_LEN],
                         uint8_t **ret_box, size_t *ret_size) {
        sqlite3_stmt *st = NULL;
        uint8_t *box;
        int k, size;

        if (!s || !id || !ret_box || !ret_size)
                return -EINVAL;
        if (!store_id_is_valid(id))
                return -ENOENT;
        k = select_blob_row(s, "SELECT sealed_to, sealed_key FROM requests WHERE id = ?1", id, 1, &st);
        if (k < 0)
                return k;
        size = sqlite3_column_bytes(st, 1);
        if (sqlite3_column_bytes(st, 0) != (int) STORE_SEAL_RECIPIENT_LEN || size <= (int) crypto_box_SEALBYTES) {
                stmt_done(s, st);
                return -EUCLEAN;
        }
        box = malloc((size_t) size);
        if (!box) {
                stmt_done(s, st);
                return -ENOMEM;
        }
        memcpy(box, sqlite3_column_blob(st, 1), (size_t) size);
        if (ret_recipient)
                memcpy(ret_recipient, sqlite3_column_blob(st, 0), STORE_SEAL_RECIPIENT_LEN);
        stmt_done(s, st);
        *ret_box = box;
        *ret_size = (size_t) size;
        return 0;
}

static int count_query(Store *s, const char *sql, uid_t owner, const uint64_t *since, unsigned *ret) {
        sqlite3_stmt *st = NULL;
        int k;

        if (!s || !ret)
                return -EINVAL;
        k = prepare(s, sql, &st);
        if (k < 0)
                return k;
        k = errno_from_sqlite(sqlite3_bind_int64(st, 1, (sqlite3_int64) owner));
        if (k >= 0 && since)
                k = bind_u64(st, 2, *since);
        if (k >= 0) {
                if (sqlite3_step(st) == SQLITE_ROW) {
                        sqlite3_int64 n = sqlite3_column_int64(st, 0);
                        *ret = n > UINT32_MAX ? UINT32_MAX : (unsigned) n;
                } else
                        k = errno_from_sqlite(sqlite3_extended_errcode(s->db));
        }
        stmt_done(s, st);
        return k;
}

int store_count_active(Store *s, uid_t owner, unsigned *ret) {
        return count_query(s,
                           "SELECT count(*) FROM requests WHERE owner = ?1 AND "
                           "state IN ('queued', 'submitting', 'pending', 'retrying')",
                           owner, NULL, ret);
}

int store_count_created_since(Store *s, uid_t owner, uint64_t since_usec, unsigned *ret) {
        return count_query(s, "SELECT count(*) FROM enroll_history WHERE owner = ?1 AND created >= ?2",
                           owner, &since_usec, ret);
}

int store_history_prune(Store *s, uint64_t before_usec) {
        sqlite3_stmt *st = NULL;
        int k;

        if (!s)
                return -EINVAL;
        k = prepare(s, "DELETE FROM enroll_history WHERE created < ?1", &st);
        if (k < 0)
                return k;
        k = bind_u64(st, 1, before_usec);
        if (k >= 0)
                k = step_done(st);
        if (k >= 0)
                k = sqlite3_changes(s->db);
        stmt_done(s, st);
        return k;
}

/* ---- the key kept for a RenewalReq ---- */

int store_renewal_key_keep(Store *s, const char *id) {
        int k;

        if (!s || !id)
                return -EINVAL;
        if (!store_id_is_valid(id))
                return -ENOENT;
        /* The same blob: it is bound to the request's id, which does not change. */
        k = exec_by_id(s, "UPDATE requests SET renewal_key = key_blob WHERE id = ?1 AND key_blob IS NOT NULL", id);
        return k == -ENOENT ? -ENOKEY : k;      /* no such row, or no key in it */
}

int store_renewal_key_get(Store *s, const char *id, CbSecret **ret) {
        sqlite3_stmt *st = NULL;
        int k;

        if (!s || !id || !ret)
                return -EINVAL;
        if (!store_id_is_valid(id))
                return -ENOENT;
        k = select_blob_row(s, "SELECT renewal_key FROM requests WHERE id = ?1", id, 0, &st);
        if (k < 0)
                return k;
        const void *blob = sqlite3_column_blob(st, 0);
        int size = sqlite3_column_bytes(st, 0);
        k = store_cipher_open(s->cipher, id, blob, size > 0 ? (size_t) size : 0, ret);
        stmt_done(s, st);
        return k;
}

int store_renewal_key_erase(Store *s, const char *id) {
        int k;

        if (!s || !id)
                return -EINVAL;
        if (!store_id_is_valid(id))
                return -ENOENT;
        k = exec_by_id(s, "UPDATE requests SET renewal_key = NULL WHERE id = ?1 AND renewal_key IS NOT NULL", id);
        if (k == -ENOENT)
                return 0;       /* nothing was kept */
        if (k < 0)
                return k;
        checkpoint_truncate(s);
        return 1;
}

int store_renewal_key_present(Store *s, const char *id) {
        sqlite3_stmt *st = NULL;
        int k;

        if (!s || !id)
                return -EINVAL;
        if (!store_id_is_valid(id))
                return -ENOENT;
        k = select_blob_row(s, "SELECT renewal_key FROM requests WHERE id = ?1", id, 0, &st);
        if (k == -ENOKEY)
                return 0;
        if (k < 0)
                return k;
        stmt_done(s, st);
        return 1;
}

int store_ca_renewal_set(Store *s, const char *ca, uint64_t refused_until) {
        sqlite3_stmt *st = NULL;
        int k;

        if (!s || !ca)
                return -EINVAL;
        k = prepare(s, refused_until == 0 ? "DELETE FROM ca_renewal WHERE ca = ?1" :
                       "INSERT INTO ca_renewal (ca, refused_until) VALUES (?1, ?2) "
                       "ON CONFLICT (ca) DO UPDATE SET refused_until = excluded.refused_until", &st);
        if (k < 0)
                return k;
        k = bind_text(st, 1, ca);
        if (k >= 0 && refused_until != 0)
                k = errno_from_sqlite(sqlite3_bind_int64(st, 2, (sqlite3_int64) refused_until));
        if (k >= 0)
                k = step_done(st);
        stmt_done(s, st);
        return k;
}

int store_ca_renewal_get(Store *s, const char *ca, uint64_t *ret_refused_until) {
        sqlite3_stmt *st = NULL;
        int k, rc;

        if (!s || !ca || !ret_refused_until)
                return -EINVAL;
        *ret_refused_until = 0;
        k = prepare(s, "SELECT refused_until FROM ca_renewal WHERE ca = ?1", &st);
        if (k < 0)
                return k;
        k = bind_text(st, 1, ca);
        if (k >= 0) {
                rc = sqlite3_step(st);
                if (rc == SQLITE_ROW)
                        *ret_refused_until = (uint64_t) sqlite3_column_int64(st, 0);
                else if (rc != SQLITE_DONE)
                        k = errno_from_sqlite(sqlite3_extended_errcode(s->db));
        }
        stmt_done(s, st);
        return k;
}

/* ---- challenges NDES holds for this broker (one block: store-db.h) ----
 * Their own table (challenge_table(), made at store_open_with_cipher()), outside the numbered
 * schema. Written with step_relaxed(): durable against a crash of the daemon, which is what
 * they are for. */


static void challenge_blob_id(int64_t row, char id[static 48]) {
        snprintf(id, 48, "challenge-%lld", (long long) row);
}

int store_challenge_add(Store *s, const char *ca, const char *admin_url, const char *url, uint64_t issued,
                        uint64_t expires, int64_t *ret_row) {
        sqlite3_stmt *st = NULL;
        int k;

        if (!s || !ca || !admin_url || !url || !ret_row)
                return -EINVAL;
        k = prepare(s, "INSERT INTO challenges (ca, admin_url, url, issued, expires) VALUES (?1, ?2, ?3, ?4, ?5)",
                            &st);
        if (k < 0)
                return k;
        if ((k = bind_text(st, 1, ca)) >= 0 && (k = bind_text(st, 2, admin_url)) >= 0 &&
            (k = bind_text(st, 3, url)) >= 0 && (k = bind_u64(st, 4, issued)) >= 0 &&
            (k = bind_u64(st, 5, expires)) >= 0)
                k = step_relaxed(s, st);
        if (k >= 0)
                *ret_row = sqlite3_last_insert_rowid(s->db);
        stmt_done(s, st);
        return k;
}

int store_challenge_set_times(Store *s, int64_t row, uint64_t issued, uint64_t expires) {
        sqlite3_stmt *st = NULL;
        int k;

        if (!s)
                return -EINVAL;
        k = prepare(s, "UPDATE challenges SET issued = ?2, expires = ?3 WHERE row = ?1", &st);
        if (k < 0)
                return k;
        if ((k = errno_from_sqlite(sqlite3_bind_int64(st, 1, row))) >= 0 && (k = bind_u64(st, 2, issued)) >= 0 &&
            (k = bind_u64(st, 3, expires)) >= 0)
                k = step_relaxed(s, st);
        if (k >= 0 && sqlite3_changes(s->db) == 0)
                k = -ENOENT;
        stmt_done(s, st);
        return k;
}

int store_challenge_set_request(Store *s, int64_t row, const char *request) {
        sqlite3_stmt *st = NULL;
        int k;

        if (!s || !request)
                return -EINVAL;
        k = prepare(s, "UPDATE challenges SET request = ?2 WHERE row = ?1", &st);
        if (k < 0)
                return k;
        if ((k = errno_from_sqlite(sqlite3_bind_int64(st, 1, row))) >= 0 && (k = bind_text(st, 2, request)) >= 0)
                k = step_relaxed(s, st);
        if (k >= 0 && sqlite3_changes(s->db) == 0)
                k = -ENOENT;
        stmt_done(s, st);
        return k;
}

int store_challenge_set_spare(Store *s, int64_t row, const CbSecret *spare, unsigned validity_minutes,
                              const char *thumbprint) {
        sqlite3_stmt *st = NULL;
        uint8_t *blob = NULL;
        size_t size = 0;
        char id[48];
        int k;

        if (!s)
                return -EINVAL;
        if (spare) {
                challenge_blob_id(row, id);
                k = store_cipher_seal(s->cipher, id, spare, &blob, &size);
                if (k < 0)
                        return k;
        }
        k = prepare(s, spare ? "UPDATE challenges SET spare = ?2, validity = ?3, thumbprint = ?4 WHERE row = ?1"
                             : "UPDATE challenges SET spare = NULL WHERE row = ?1", &st);
        if (k < 0)
                goto finish;
        k = errno_from_sqlite(sqlite3_bind_int64(st, 1, row));
        if (k >= 0 && spare &&
            (k = errno_from_sqlite(sqlite3_bind_blob(st, 2, blob, (int) size, SQLITE_STATIC))) >= 0 &&
            (k = errno_from_sqlite(sqlite3_bind_int64(st, 3, validity_minutes))) >= 0)
                k = bind_text(st, 4, thumbprint ? thumbprint : "");
        if (k >= 0)
                k = step_relaxed(s, st);
        if (k >= 0 && sqlite3_changes(s->db) == 0)
                k = -ENOENT;
finish:
        stmt_done(s, st);
        free(blob);
        return k;
}

int store_challenge_delete(Store *s, int64_t row) {
        sqlite3_stmt *st = NULL;
        int k;

        if (!s)
                return -EINVAL;
        k = prepare(s, "DELETE FROM challenges WHERE row = ?1", &st);
        if (k < 0)
                return k;
        k = errno_from_sqlite(sqlite3_bind_int64(st, 1, row));
        if (k >= 0)
                k = step_relaxed(s, st);
        stmt_done(s, st);
        return k;
}

void store_challenge_array_free(StoreChallenge *a, size_t n) {
        for (size_t i = 0; i < n && a; i++) {
                free(a[i].url);
                secret_free(a[i].spare);
        }
        free(a);
}

int store_challenge_load(Store *s, const char *ca, const char *admin_url, uint64_t now, StoreChallenge **ret,
                         size_t *ret_n) {
        StoreChallenge *a = NULL;
        sqlite3_stmt *st = NULL;
        size_t n = 0;
        int k, rc = SQLITE_DONE;

        if (!s || !ca || !admin_url || !ret || !ret_n)
                return -EINVAL;
        k = prepare(s, "SELECT row, url, issued, expires, validity, thumbprint, spare, request FROM challenges "
                       "WHERE ca = ?1 AND admin_url = ?2 AND expires > ?3 ORDER BY issued, row", &st);
        if (k >= 0 && (k = bind_text(st, 1, ca)) >= 0 && (k = bind_text(st, 2, admin_url)) >= 0)
                k = bind_u64(st, 3, now);
        while (k >= 0 && (rc = sqlite3_step(st)) == SQLITE_ROW) {
                StoreChallenge *b = realloc(a, (n + 1) * sizeof *a), *c;
                if (!b) {
                        k = -ENOMEM;
                        break;
                }
                a = b;
                c = &a[n++];
                *c = (StoreChallenge) {
                        .row = sqlite3_column_int64(st, 0),
                        .issued = (uint64_t) sqlite3_column_int64(st, 2),
                        .expires = (uint64_t) sqlite3_column_int64(st, 3),
                        .validity_minutes = (unsigned) sqlite3_column_int64(st, 4),
                        .has_spare = sqlite3_column_type(st, 6) != SQLITE_NULL,
                };
                const char *t = (const char *) sqlite3_column_text(st, 5);
                if (t && strlen(t) < sizeof c->thumbprint)
                        strcpy(c->thumbprint, t);
                t = (const char *) sqlite3_column_text(st, 7);
                if (t && strlen(t) < sizeof c->request)
                        strcpy(c->request, t);
                k = column_strdup(st, 1, &c->url);
                if (k >= 0 && c->has_spare) {
                        char id[48];
                        const void *blob = sqlite3_column_blob(st, 6);
                        int size = sqlite3_column_bytes(st, 6);
                        challenge_blob_id(c->row, id);
                        /* Not decryptable (another master key, tampered): it only counts. */
                        if (store_cipher_open(s->cipher, id, blob, size > 0 ? (size_t) size : 0, &c->spare) < 0)
                                c->spare = NULL;
                }
        }
        if (k >= 0 && rc != SQLITE_DONE)
                k = errno_from_sqlite(sqlite3_extended_errcode(s->db));
        stmt_done(s, st);
        if (k < 0) {
                store_challenge_array_free(a, n);
                return k;
        }
        *ret = a;
        *ret_n = n;
        return 0;
}

int store_challenge_drop_spares_except(Store *s, const char *ca, const char *const *admin_urls, size_t n) {
        sqlite3_stmt *st = NULL;
        int64_t *rows = NULL;
        size_t n_rows = 0;
        int k, rc = SQLITE_DONE;

        if (!s || !ca || (n > 0 && !admin_urls))
                return -EINVAL;
        k = prepare(s, "SELECT row, admin_url FROM challenges WHERE ca = ?1 AND spare IS NOT NULL", &st);
        if (k >= 0)
                k = bind_text(st, 1, ca);
        while (k >= 0 && (rc = sqlite3_step(st)) == SQLITE_ROW) {
                const char *url = (const char *) sqlite3_column_text(st, 1);
                bool configured = false;
                for (size_t i = 0; i < n && !configured; i++)
                        configured = url && admin_urls[i] && strcmp(url, admin_urls[i]) == 0;
                if (configured)
                        continue;
                int64_t *r = realloc(rows, (n_rows + 1) * sizeof *rows);
                if (!r) {
                        k = -ENOMEM;
                        break;
                }
                rows = r;
                rows[n_rows++] = sqlite3_column_int64(st, 0);
        }
        if (k >= 0 && rc != SQLITE_DONE)
                k = errno_from_sqlite(sqlite3_extended_errcode(s->db));
        stmt_done(s, st);
        for (size_t i = 0; k >= 0 && i < n_rows; i++)
                k = store_challenge_set_spare(s, rows[i], NULL, 0, NULL);
        free(rows);
        return k;
}
