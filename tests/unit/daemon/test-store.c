/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* store-db and store-crypto: CRUD, durability across reopen, encrypted keys (round trip,
 * tamper, wrong master key, id binding, erase), key file and directory permissions,
 * credentials, quotas, limits, schema version, O_CLOEXEC. */

#include <dirent.h>
#include <fcntl.h>
#include <setjmp.h>
#include <sodium.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cmocka.h>

#include "keys-generate.h"
#include "store-db.h"
#include "test-helpers.h"

typedef struct Fixture {
        char *dir;
} Fixture;

static int setup(void **state) {
        Fixture *f = calloc(1, sizeof(*f));

        if (!f || secret_init() < 0)
                return -1;
        f->dir = test_mkdtemp("cb-test-store");
        if (!f->dir)
                return -1;
        *state = f;
        return 0;
}

static int teardown(void **state) {
        Fixture *f = *state;

        test_rm_rf(f->dir);
        free(f->dir);
        free(f);
        return 0;
}

static Store *open_store(Fixture *f) {
        char *msg = NULL;
        Store *s = NULL;
        int r;

        r = store_open(f->dir, NULL, &s, &msg);
        if (r < 0)
                fail_msg("store_open: %d %s", r, msg ? msg : "");
        free(msg);
        return s;
}

static char *names3[] = { (char *) "web.a.example.com", (char *) "a.example.com", (char *) "x.a.example.com", NULL };

static void fill_request(StoreRequest *r, uid_t owner, uint64_t created) {
        *r = (StoreRequest) {
                .owner = owner,
                .ca = (char *) "corp",
                .label = (char *) "nginx front",
                .subject = (char *) "CN=web.a.example.com,O=Tenant A",
                .names = names3,
                .key = (char *) "ec:p256",
                .usage = (char *) "both",
                .state = REQUEST_QUEUED,
                .created = created,
                .updated = created,
        };
}

static CbSecret *make_key_pem(void) {
        EVP_PKEY *k = NULL;
        CbSecret *pem = NULL;

        assert_int_equal(key_generate(KEY_TYPE_EC_P256, &k), 0);
        assert_int_equal(key_export_pkcs8_pem(k, &pem), 0);
        EVP_PKEY_free(k);
        return pem;
}

/* Every fdatasync() SQLite makes (it syncs with fdatasync() only) comes here, this definition
 * standing in for the C library's: counted, then made. */
static unsigned n_syncs;

int fdatasync(int fd) {
        n_syncs++;
        return (int) syscall(SYS_fdatasync, fd);
}

/* A durable write reaches the disk before it returns; a relaxed one does not. */
#define ASSERT_DURABLE(call)                                    \
        do {                                                    \
                unsigned _before = n_syncs;                     \
                assert_true((call) >= 0);                       \
                assert_true(n_syncs > _before);                 \
        } while (0)
#define ASSERT_RELAXED(call)                                    \
        do {                                                    \
                unsigned _before = n_syncs;                     \
                assert_true((call) >= 0);                       \
                assert_int_equal(n_syncs, _before);             \
        } while (0)

/* A state transition that changes the row (SQLite writes nothing for a row written as it is). */
static int touch(Store *s, StoreRequest *r) {
        r->updated++;
        return store_request_update(s, r);
}

/* Which writes fsync: every durable write, also right after relaxed ones; no state transition
 * or challenge record, also right after durable ones; with group commit, inserts and keys
 * stored are relaxed (the caller syncs). */
static void count_erase(void *userdata) {
        (*(unsigned *) userdata)++;
}

static void test_durability(void **state) {
        Fixture *f = *state;
        Store *s = open_store(f);
        StoreRequest r, succ, other;
        CbSecret *pem = make_key_pem(), *got = NULL;
        int64_t row = 0;

        /* The fdatasync() of this test binary is the one SQLite calls. */
        fill_request(&r, 1001, 100);
        ASSERT_DURABLE(store_request_insert(s, &r, pem));

        r.state = REQUEST_SUBMITTING;
        ASSERT_RELAXED(store_request_update(s, &r));
        ASSERT_RELAXED(touch(s, &r));
        ASSERT_RELAXED(store_challenge_add(s, "corp", "https://ndes/admin", "https://ndes/", 1, 2, &row));
        ASSERT_RELAXED(store_challenge_set_times(s, row, 3, 4));
        ASSERT_RELAXED(store_challenge_set_request(s, row, r.id));
        ASSERT_RELAXED(store_challenge_set_spare(s, row, pem, 60, "00"));
        ASSERT_RELAXED(store_challenge_delete(s, row));

        ASSERT_DURABLE(store_key_set(s, r.id, pem));
        r.state = REQUEST_PENDING;
        ASSERT_RELAXED(store_request_update(s, &r));
        ASSERT_DURABLE(store_ca_renewal_set(s, "corp", 5));
        ASSERT_DURABLE(store_ca_renewal_set(s, "corp", 0));
        ASSERT_DURABLE(store_renewal_key_keep(s, r.id));
        fill_request(&succ, 1001, 200);
        succ.predecessor = r.id;
        ASSERT_DURABLE(store_request_insert_successor(s, r.id, &succ, NULL));
        ASSERT_DURABLE(store_history_prune(s, 150));
        ASSERT_DURABLE(store_key_take(s, r.id, &got));
        got = secret_free(got);

        /* A checkpoint empties the WAL: the first write after it syncs the new WAL's header. */
        assert_int_equal(touch(s, &r), 0);
        ASSERT_RELAXED(touch(s, &r));
        ASSERT_DURABLE(store_key_set(s, r.id, pem));
        ASSERT_DURABLE(store_key_erase(s, r.id));
        ASSERT_DURABLE(store_renewal_key_erase(s, r.id));
        ASSERT_DURABLE(store_request_delete(s, succ.id));

        assert_int_equal(touch(s, &r), 0);
        store_set_group_commit(s, true);
        fill_request(&other, 1002, 300);
        ASSERT_RELAXED(store_request_insert(s, &other, pem));
        ASSERT_RELAXED(store_key_set(s, other.id, pem));
        fill_request(&succ, 1001, 400);
        succ.predecessor = r.id;
        ASSERT_DURABLE(store_request_insert_successor(s, r.id, &succ, NULL));
        /* Under group commit the key's erase is the journal worker's to sync: TakeKey answers
         * only once it has (bus-request.c), as Enroll does for its insert. */
        ASSERT_RELAXED(store_key_take(s, other.id, &got));
        got = secret_free(got);
        /* Without an erase hook, erases still fsync themselves under group commit. */
        ASSERT_RELAXED(store_key_set(s, other.id, pem));
        ASSERT_DURABLE(store_key_erase(s, other.id));
        assert_int_equal(touch(s, &r), 0);      /* the new WAL's header (after the truncation) */
        /* With one, they are the journal worker's too, and each tells the hook. */
        unsigned erased = 0;
        store_set_erase_hook(s, count_erase, &erased);
        ASSERT_RELAXED(store_key_set(s, other.id, pem));
        assert_int_equal(erased, 0);
        ASSERT_RELAXED(store_key_erase(s, other.id));
        assert_int_equal(erased, 1);
        ASSERT_RELAXED(store_request_delete(s, other.id));
        assert_int_equal(erased, 2);
        /* Nothing erased (no such request): nothing told. */
        assert_int_equal(store_request_delete(s, other.id), -ENOENT);
        assert_int_equal(erased, 2);

        secret_free(pem);
        store_close(s);
}

static void test_ids(void **state) {
        char a[STORE_ID_LEN + 1], b[STORE_ID_LEN + 1];

        store_id_new(a);
        store_id_new(b);
        assert_int_equal(strlen(a), 16);
        assert_true(store_id_is_valid(a));
        assert_string_not_equal(a, b);
        assert_int_equal(strspn(a, "0123456789abcdef"), 16);

        assert_false(store_id_is_valid(NULL));
        assert_false(store_id_is_valid(""));
        assert_false(store_id_is_valid("0123456789abcde"));
        assert_false(store_id_is_valid("0123456789abcdef0"));
        assert_false(store_id_is_valid("0123456789ABCDEF"));
        assert_false(store_id_is_valid("../../etc/passwd"));
        assert_false(store_id_is_valid("0123456789abcde/"));

        for (RequestState s = 0; s < _REQUEST_STATE_MAX; s++)
                assert_int_equal(request_state_from_string(request_state_to_string(s)), s);
        assert_int_equal(request_state_from_string("done"), -EINVAL);
        assert_false(request_state_is_terminal(REQUEST_RETRYING));
        assert_true(request_state_is_terminal(REQUEST_ISSUED));
        assert_true(request_state_is_terminal(REQUEST_CANCELLED));
}

static void test_modes_and_cloexec(void **state) {
        Fixture *f = *state;
        struct stat st;
        char *p;
        Store *s = open_store(f);
        unsigned n_db = 0;
        DIR *d;
        struct dirent *de;

        assert_int_equal(stat(f->dir, &st), 0);
        assert_int_equal(st.st_mode & 07777, 0700);
        p = test_path(f->dir, "store.key");
        assert_int_equal(stat(p, &st), 0);
        assert_int_equal(st.st_mode & 07777, 0600);
        assert_int_equal(st.st_size, 32);
        free(p);
        p = test_path(f->dir, "certbroker.db");
        assert_int_equal(stat(p, &st), 0);
        assert_int_equal(st.st_mode & 07777, 0600);
        free(p);
        p = test_path(f->dir, "certbroker.db-wal");
        assert_int_equal(stat(p, &st), 0);
        assert_int_equal(st.st_mode & 077, 0);   /* WAL copies the database's mode */
        free(p);

        /* Every descriptor SQLite holds on our files is close-on-exec. */
        d = opendir("/proc/self/fd");
        assert_non_null(d);
        while ((de = readdir(d))) {
                char link[300], target[4096];
                ssize_t n;
                int fd, flags;

                if (de->d_name[0] == '.')
                        continue;
                snprintf(link, sizeof(link), "/proc/self/fd/%s", de->d_name);
                n = readlink(link, target, sizeof(target) - 1);
                if (n < 0)
                        continue;
                target[n] = 0;
                if (strncmp(target, f->dir, strlen(f->dir)) != 0)
                        continue;
                fd = atoi(de->d_name);
                flags = fcntl(fd, F_GETFD);
                assert_true(flags >= 0);
                assert_true(flags & FD_CLOEXEC);
                n_db++;
        }
        closedir(d);
        assert_true(n_db >= 2);   /* the database and its WAL at least */
        store_close(s);
}

static void test_crud_and_reopen(void **state) {
        Fixture *f = *state;
        StoreRequest r, *got = NULL, **all = NULL;
        char *names_new[] = { (char *) "b.example.com", NULL };
        Store *s = open_store(f);
        char id[STORE_ID_LEN + 1];
        size_t n = 0;

        fill_request(&r, 1001, 1000);
        assert_int_equal(store_request_insert(s, &r, NULL), 0);
        assert_true(store_id_is_valid(r.id));
        memcpy(id, r.id, sizeof(id));

        assert_int_equal(store_request_get(s, id, &got), 0);
        assert_string_equal(got->id, id);
        assert_int_equal(got->owner, 1001);
        assert_string_equal(got->ca, "corp");
        assert_string_equal(got->label, "nginx front");
        assert_string_equal(got->subject, "CN=web.a.example.com,O=Tenant A");
        assert_string_equal(got->names[0], "web.a.example.com");
        assert_string_equal(got->names[1], "a.example.com");
        assert_string_equal(got->names[2], "x.a.example.com");
        assert_null(got->names[3]);
        assert_string_equal(got->key, "ec:p256");
        assert_string_equal(got->usage, "both");
        assert_int_equal(got->state, REQUEST_QUEUED);
        assert_string_equal(got->error, "");
        assert_string_equal(got->certificate, "");
        assert_int_equal(got->created, 1000);
        assert_false(got->key_available);
        got = store_request_free(got);

        /* Update every mutable column, then read it back after close + reopen. */
        r.state = REQUEST_ISSUED;
        r.names = names_new;
        r.label = (char *) "";
        r.error = (char *) "org.certbroker.Broker1.Error.CARejected";
        r.error_message = (char *) "NDES said: denied by policy module";
        r.fail_info = (char *) "badRequest";
        r.transaction_id = (char *) "5F3A";
        r.certificate = (char *) "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
        r.chain = (char *) "-----BEGIN CERTIFICATE-----\nMIIC\n-----END CERTIFICATE-----\n";
        r.serial = (char *) "1a2b";
        r.csr = (char *) "-----BEGIN CERTIFICATE REQUEST-----\nMIID\n-----END CERTIFICATE REQUEST-----\n";
        r.not_before = 1700000000000000ULL;
        r.not_after = 1800000000000000ULL;
        r.updated = 2000;
        r.next_attempt = 3000;
        r.attempts = 7;
        r.owner = 4242;         /* immutable: ignored */
        r.created = 9;          /* immutable: ignored */
        assert_int_equal(store_request_update(s, &r), 0);
        store_close(s);

        s = open_store(f);
        assert_int_equal(store_request_get(s, id, &got), 0);
        assert_int_equal(got->owner, 1001);
        assert_int_equal(got->created, 1000);
        assert_int_equal(got->state, REQUEST_ISSUED);
        assert_string_equal(got->names[0], "b.example.com");
        assert_null(got->names[1]);
        assert_string_equal(got->label, "");
        assert_string_equal(got->error, "org.certbroker.Broker1.Error.CARejected");
        assert_string_equal(got->error_message, "NDES said: denied by policy module");
        assert_string_equal(got->fail_info, "badRequest");
        assert_string_equal(got->transaction_id, "5F3A");
        assert_string_equal(got->certificate, r.certificate);
        assert_string_equal(got->chain, r.chain);
        assert_string_equal(got->serial, "1a2b");
        assert_string_equal(got->csr, r.csr);
        assert_int_equal(got->not_before, 1700000000000000ULL);
        assert_int_equal(got->not_after, 1800000000000000ULL);
        assert_int_equal(got->updated, 2000);
        assert_int_equal(got->next_attempt, 3000);
        assert_int_equal(got->attempts, 7);
        got = store_request_free(got);

        /* A second request with no names, another owner; list and load. */
        fill_request(&r, 1002, 500);
        char *none[] = { NULL };
        r.names = none;
        assert_int_equal(store_request_insert(s, &r, NULL), 0);
        assert_int_equal(store_request_load_all(s, &all, &n), 0);
        assert_int_equal(n, 2);
        assert_string_equal(all[0]->id, r.id);     /* ordered by created */
        assert_null(all[0]->names[0]);
        assert_string_equal(all[1]->id, id);
        store_request_array_free(all, n);

        assert_int_equal(store_request_list_by_owner(s, 1001, &all, &n), 0);
        assert_int_equal(n, 1);
        assert_string_equal(all[0]->id, id);
        store_request_array_free(all, n);
        assert_int_equal(store_request_list_by_owner(s, 77, &all, &n), 0);
        assert_int_equal(n, 0);
        store_request_array_free(all, n);

        /* Duplicate id, unknown id, delete. */
        StoreRequest dup;
        fill_request(&dup, 1, 1);
        memcpy(dup.id, id, sizeof(id));
        assert_int_equal(store_request_insert(s, &dup, NULL), -EEXIST);
        assert_int_equal(store_request_get(s, "0000000000000000", &got), -ENOENT);
        assert_int_equal(store_request_get(s, "../x", &got), -ENOENT);
        assert_int_equal(store_request_delete(s, id), 0);
        assert_int_equal(store_request_delete(s, id), -ENOENT);
        assert_int_equal(store_request_get(s, id, &got), -ENOENT);
        memcpy(dup.id, id, sizeof(id));
        assert_int_equal(store_request_update(s, &dup), -ENOENT);
        store_close(s);

        s = open_store(f);
        assert_int_equal(store_request_load_all(s, &all, &n), 0);
        assert_int_equal(n, 1);
        store_request_array_free(all, n);
        store_close(s);
}

static void test_limits(void **state) {
        Fixture *f = *state;
        Store *s = open_store(f);
        StoreRequest r, **all = NULL;
        char *bad_names[] = { (char *) "a\nb", NULL };
        char *empty_name[] = { (char *) "", NULL };
        char **many = calloc(STORE_NAMES_MAX + 2, sizeof(char *));
        char *big = malloc(STORE_TEXT_MAX + 2);
        size_t n;

        assert_non_null(many);
        assert_non_null(big);
        memset(big, 'a', STORE_TEXT_MAX + 1);
        big[STORE_TEXT_MAX + 1] = 0;

        fill_request(&r, 1, 1);
        r.names = bad_names;
        assert_int_equal(store_request_insert(s, &r, NULL), -EINVAL);
        assert_string_equal(r.id, "");        /* generated id not kept on failure */
        r.names = empty_name;
        assert_int_equal(store_request_insert(s, &r, NULL), -EINVAL);

        for (unsigned i = 0; i <= STORE_NAMES_MAX; i++)
                many[i] = (char *) "n.example.com";
        r.names = many;
        assert_int_equal(store_request_insert(s, &r, NULL), -E2BIG);

        fill_request(&r, 1, 1);
        r.label = big;
        assert_int_equal(store_request_insert(s, &r, NULL), -E2BIG);
        fill_request(&r, 1, 1);
        r.state = _REQUEST_STATE_MAX;
        assert_int_equal(store_request_insert(s, &r, NULL), -EINVAL);
        fill_request(&r, 1, 1);
        memcpy(r.id, "ABCDEF0123456789", 17);
        assert_int_equal(store_request_insert(s, &r, NULL), -EINVAL);

        assert_int_equal(store_request_load_all(s, &all, &n), 0);
        assert_int_equal(n, 0);
        store_request_array_free(all, n);
        free(many);
        free(big);
        store_close(s);
}

/* Raw access to the database file, as an attacker with the file (not the key) would have. */
static sqlite3 *raw_open(Fixture *f) {
        char *p = test_path(f->dir, "certbroker.db");
        sqlite3 *db = NULL;

        assert_int_equal(sqlite3_open(p, &db), SQLITE_OK);
        free(p);
        return db;
}

static void raw_exec(sqlite3 *db, const char *sql) {
        char *err = NULL;

        if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK)
                fail_msg("%s: %s", sql, err);
}

static bool file_contains(const char *path, const void *needle, size_t len) {
        FILE *fp = fopen(path, "re");
        bool found = false;
        char *buf;
        long size;

        if (!fp)
                return false;   /* a missing WAL holds nothing */
        assert_int_equal(fseek(fp, 0, SEEK_END), 0);
        size = ftell(fp);
        rewind(fp);
        buf = malloc((size_t) size + 1);
        assert_non_null(buf);
        assert_int_equal(fread(buf, 1, (size_t) size, fp), (size_t) size);
        fclose(fp);
        found = len <= (size_t) size && memmem(buf, (size_t) size, needle, len);
        free(buf);
        return found;
}

static bool dir_files_contain(Fixture *f, const void *needle, size_t len) {
        const char *names[] = { "certbroker.db", "certbroker.db-wal", "certbroker.db-shm" };
        bool found = false;

        for (size_t i = 0; i < 3; i++) {
                char *p = test_path(f->dir, names[i]);
                found = found || file_contains(p, needle, len);
                free(p);
        }
        return found;
}

static void test_key_blob(void **state) {
        Fixture *f = *state;
        Store *s = open_store(f);
        CbSecret *pem = make_key_pem(), *back = NULL;
        StoreRequest r, *got = NULL;
        char id[STORE_ID_LEN + 1], id2[STORE_ID_LEN + 1];
        uint8_t cipher_sample[64];
        const char *body;
        sqlite3_stmt *st;
        sqlite3 *db;

        fill_request(&r, 1001, 1);
        assert_int_equal(store_request_insert(s, &r, pem), 0);
        memcpy(id, r.id, sizeof(id));
        fill_request(&r, 1001, 2);
        assert_int_equal(store_request_insert(s, &r, NULL), 0);
        memcpy(id2, r.id, sizeof(id2));

        assert_int_equal(store_request_get(s, id, &got), 0);
        assert_true(got->key_available);
        got = store_request_free(got);
        assert_int_equal(store_key_get(s, id2, &back), -ENOKEY);
        assert_int_equal(store_key_get(s, "0000000000000000", &back), -ENOENT);

        assert_int_equal(store_key_get(s, id, &back), 0);
        assert_true(secret_equal(pem, back));
        back = secret_free(back);
        store_close(s);

        /* Nothing of the PEM is on disk in plaintext: not the header, not the base64 body. */
        body = strchr((const char *) pem->data, '\n') + 1;
        assert_false(dir_files_contain(f, "PRIVATE KEY", 11));
        assert_false(dir_files_contain(f, body, 40));

        /* Survives reopen. */
        s = open_store(f);
        assert_int_equal(store_key_get(s, id, &back), 0);
        assert_true(secret_equal(pem, back));
        back = secret_free(back);
        store_close(s);

        /* A blob moved onto another request does not open there (id is associated data). */
        db = raw_open(f);
        assert_int_equal(sqlite3_prepare_v2(db, "SELECT key_blob FROM requests WHERE id = ?1", -1, &st, NULL), SQLITE_OK);
        sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
        assert_int_equal(sqlite3_step(st), SQLITE_ROW);
        assert_true(sqlite3_column_bytes(st, 0) > (int) (41 + sizeof(cipher_sample)));
        memcpy(cipher_sample, (const uint8_t *) sqlite3_column_blob(st, 0) + 30, sizeof(cipher_sample));
        sqlite3_finalize(st);
        char *sql;
        assert_true(asprintf(&sql, "UPDATE requests SET key_blob = (SELECT key_blob FROM requests WHERE id = '%s') WHERE id = '%s'", id, id2) > 0);
        raw_exec(db, sql);
        free(sql);
        sqlite3_close(db);
        s = open_store(f);
        assert_int_equal(store_key_get(s, id2, &back), -EBADMSG);
        assert_int_equal(store_key_erase(s, id2), 0);
        assert_int_equal(store_key_erase(s, id2), 0);
        assert_int_equal(store_key_erase(s, "0000000000000000"), -ENOENT);

        /* TakeKey: once; erased; the ciphertext is gone from every file afterwards. */
        assert_true(dir_files_contain(f, cipher_sample, sizeof(cipher_sample)));
        assert_int_equal(store_key_take(s, id, &back), 0);
        assert_true(secret_equal(pem, back));
        back = secret_free(back);
        assert_int_equal(store_key_take(s, id, &back), -ENOKEY);
        assert_null(back);
        assert_int_equal(store_request_get(s, id, &got), 0);
        assert_false(got->key_available);
        got = store_request_free(got);
        store_close(s);
        assert_false(dir_files_contain(f, cipher_sample, sizeof(cipher_sample)));

        secret_free(pem);
}

/* Renewal=scep-renewal|auto: the key is kept for the successor's RenewalReq, encrypted as the
 * key is (no plaintext on disk), survives TakeKey (the owner still takes it once), the key's
 * erasure (ConfirmKey of a sealed copy) and a reopen, and is erased on its own (no ciphertext
 * left in any file) or with the row.
 * The per-CA record of refused RenewalReqs is kept and forgotten. */
static void test_renewal_key(void **state) {
        Fixture *f = *state;
        Store *s = open_store(f);
        CbSecret *pem = make_key_pem(), *back = NULL;
        StoreRequest r;
        char id[STORE_ID_LEN + 1], id2[STORE_ID_LEN + 1];
        uint8_t cipher_sample[64];
        const char *body;
        uint64_t until = 1;
        sqlite3_stmt *st;
        sqlite3 *db;

        fill_request(&r, 1001, 1);
        assert_int_equal(store_request_insert(s, &r, pem), 0);
        memcpy(id, r.id, sizeof(id));
        fill_request(&r, 1001, 2);
        assert_int_equal(store_request_insert(s, &r, NULL), 0);
        memcpy(id2, r.id, sizeof(id2));

        assert_int_equal(store_renewal_key_present(s, id), 0);
        assert_int_equal(store_renewal_key_get(s, id, &back), -ENOKEY);
        assert_int_equal(store_renewal_key_keep(s, id2), -ENOKEY);     /* no key to keep */
        assert_int_equal(store_renewal_key_keep(s, "0000000000000000"), -ENOKEY);
        assert_int_equal(store_renewal_key_keep(s, id), 0);
        assert_int_equal(store_renewal_key_present(s, id), 1);

        /* TakeKey hands the key out once and leaves the kept copy. */
        assert_int_equal(store_key_take(s, id, &back), 0);
        assert_true(secret_equal(pem, back));
        back = secret_free(back);
        assert_int_equal(store_key_take(s, id, &back), -ENOKEY);
        assert_int_equal(store_renewal_key_get(s, id, &back), 0);
        assert_true(secret_equal(pem, back));
        back = secret_free(back);
        store_close(s);

        body = strchr((const char *) pem->data, '\n') + 1;
        assert_false(dir_files_contain(f, "PRIVATE KEY", 11));
        assert_false(dir_files_contain(f, body, 40));

        db = raw_open(f);
        assert_int_equal(sqlite3_prepare_v2(db, "SELECT renewal_key FROM requests WHERE id = ?1", -1, &st, NULL), SQLITE_OK);
        sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
        assert_int_equal(sqlite3_step(st), SQLITE_ROW);
        assert_true(sqlite3_column_bytes(st, 0) > (int) (41 + sizeof(cipher_sample)));
        memcpy(cipher_sample, (const uint8_t *) sqlite3_column_blob(st, 0) + 30, sizeof(cipher_sample));
        sqlite3_finalize(st);
        sqlite3_close(db);

        s = open_store(f);
        assert_int_equal(store_renewal_key_get(s, id, &back), 0);
        assert_true(secret_equal(pem, back));
        back = secret_free(back);
        assert_true(dir_files_contain(f, cipher_sample, sizeof(cipher_sample)));
        assert_int_equal(store_renewal_key_erase(s, id), 1);
        assert_int_equal(store_renewal_key_erase(s, id), 0);
        assert_int_equal(store_renewal_key_get(s, id, &back), -ENOKEY);
        store_close(s);
        assert_false(dir_files_contain(f, cipher_sample, sizeof(cipher_sample)));

        /* Not erased with the key (ConfirmKey erases the sealed copy); erased with the row. */
        s = open_store(f);
        fill_request(&r, 1001, 3);
        assert_int_equal(store_request_insert(s, &r, pem), 0);
        assert_int_equal(store_renewal_key_keep(s, r.id), 0);
        assert_int_equal(store_key_erase(s, r.id), 0);
        assert_int_equal(store_renewal_key_present(s, r.id), 1);
        assert_int_equal(store_request_delete(s, r.id), 0);
        assert_int_equal(store_renewal_key_present(s, r.id), -ENOENT);

        /* Per CA: until when RenewalReqs are not tried; 0 forgets. */
        assert_int_equal(store_ca_renewal_get(s, "corp", &until), 0);
        assert_int_equal(until, 0);
        assert_int_equal(store_ca_renewal_set(s, "corp", 123456789), 0);
        assert_int_equal(store_ca_renewal_set(s, "corp", 223456789), 0);
        store_close(s);
        s = open_store(f);
        assert_int_equal(store_ca_renewal_get(s, "corp", &until), 0);
        assert_int_equal(until, 223456789);
        assert_int_equal(store_ca_renewal_get(s, "other", &until), 0);
        assert_int_equal(until, 0);
        assert_int_equal(store_ca_renewal_set(s, "corp", 0), 0);
        assert_int_equal(store_ca_renewal_get(s, "corp", &until), 0);
        assert_int_equal(until, 0);
        store_close(s);
        secret_free(pem);
}

static void test_tamper_and_wrong_key(void **state) {
        Fixture *f = *state;
        Store *s = open_store(f);
        CbSecret *pem = make_key_pem(), *back = NULL;
        uint8_t other_key[STORE_MASTER_KEY_SIZE];
        StoreCipher *c = NULL;
        StoreRequest r;
        char *msg = NULL, *sql = NULL;
        sqlite3 *db;

        fill_request(&r, 1, 1);
        assert_int_equal(store_request_insert(s, &r, pem), 0);
        store_close(s);

        /* Wrong master key: the record loads, the key does not open. */
        memset(other_key, 0x5a, sizeof(other_key));
        assert_int_equal(store_cipher_new_from_key(other_key, &c), 0);
        assert_int_equal(store_open_with_cipher(f->dir, c, &s, &msg), 0);
        assert_int_equal(store_key_get(s, r.id, &back), -EBADMSG);
        assert_int_equal(store_key_take(s, r.id, &back), -EBADMSG);
        store_close(s);

        /* The right key still opens it (a failed take erased nothing). */
        s = open_store(f);
        assert_int_equal(store_key_get(s, r.id, &back), 0);
        back = secret_free(back);
        store_close(s);

        /* Flip one byte in the stored blob at several places (version, nonce, ciphertext,
         * tag): every one is detected. */
        const char *const offsets[] = { "0", "1", "24", "25", "100", "length(key_blob) - 1" };
        for (size_t i = 0; i < sizeof(offsets) / sizeof(offsets[0]); i++) {
                db = raw_open(f);
                /* SQLite has no byte-level blob update: rebuild it around the flipped byte
                 * (0-based offset o: keep o bytes, replace byte o, keep the rest). */
                assert_true(asprintf(&sql,
                        "UPDATE requests SET key_blob = CAST(substr(key_blob, 1, %s) || "
                        "CASE WHEN substr(key_blob, %s + 1, 1) = x'00' THEN x'01' ELSE x'00' END || "
                        "substr(key_blob, %s + 2) AS BLOB) WHERE id = '%s'",
                        offsets[i], offsets[i], offsets[i], r.id) > 0);
                raw_exec(db, "CREATE TEMP TABLE before AS SELECT key_blob FROM requests");

                raw_exec(db, sql);
                free(sql);
                sqlite3_stmt *st;
                assert_int_equal(sqlite3_prepare_v2(db, "SELECT (SELECT key_blob FROM before) = key_blob, "
                                                        "length((SELECT key_blob FROM before)) = length(key_blob) FROM requests",
                                                    -1, &st, NULL), SQLITE_OK);
                assert_int_equal(sqlite3_step(st), SQLITE_ROW);
                bool changed = sqlite3_column_int(st, 0) == 0, same_len = sqlite3_column_int(st, 1) == 1;
                sqlite3_finalize(st);
                sqlite3_close(db);
                assert_true(changed);
                assert_true(same_len);

                s = open_store(f);
                assert_int_equal(store_key_get(s, r.id, &back), -EBADMSG);
                assert_null(back);
                /* Restore for the next round by storing the key again. */
                assert_int_equal(store_key_set(s, r.id, pem), 0);
                assert_int_equal(store_key_get(s, r.id, &back), 0);
                back = secret_free(back);
                store_close(s);
        }
        secret_free(pem);
}

static void test_key_file_permissions(void **state) {
        Fixture *f = *state;
        char *key = test_path(f->dir, "store.key"), *msg = NULL;
        Store *s = open_store(f);
        int fd;

        store_close(s);

        assert_int_equal(chmod(key, 0640), 0);
        assert_int_equal(store_open(f->dir, NULL, &s, &msg), -EPERM);
        assert_non_null(msg);
        assert_non_null(strstr(msg, key));
        assert_non_null(strstr(msg, "0640"));
        assert_non_null(strstr(msg, "chmod 0600"));
        free(msg);
        msg = NULL;

        assert_int_equal(chmod(key, 0604), 0);
        assert_int_equal(store_open(f->dir, NULL, &s, &msg), -EPERM);
        free(msg);
        msg = NULL;

        assert_int_equal(chmod(key, 0600), 0);
        assert_int_equal(chown(key, 65534, 65534), 0);
        assert_int_equal(store_open(f->dir, NULL, &s, &msg), -EPERM);
        assert_non_null(strstr(msg, "owned by uid 65534"));
        free(msg);
        msg = NULL;
        assert_int_equal(chown(key, geteuid(), getegid()), 0);

        /* Truncated key file (e.g. copied badly): refused, not silently replaced. */
        fd = open(key, O_WRONLY | O_TRUNC | O_CLOEXEC);
        assert_true(fd >= 0);
        assert_int_equal(write(fd, "short", 5), 5);
        close(fd);
        assert_int_equal(store_open(f->dir, NULL, &s, &msg), -EBADMSG);
        assert_non_null(strstr(msg, "32 random bytes"));
        free(msg);
        msg = NULL;

        /* A symlink in its place is not followed. */
        assert_int_equal(unlink(key), 0);
        assert_int_equal(symlink("/etc/hostname", key), 0);
        assert_true(store_open(f->dir, NULL, &s, &msg) < 0);
        free(msg);
        msg = NULL;
        assert_int_equal(unlink(key), 0);

        /* The state directory itself must be private. */
        assert_int_equal(chmod(f->dir, 0755), 0);
        assert_int_equal(store_open(f->dir, NULL, &s, &msg), -EPERM);
        assert_non_null(strstr(msg, "chmod 0700"));
        free(msg);
        msg = NULL;
        assert_int_equal(chmod(f->dir, 0700), 0);

        /* A missing state directory is created 0700. */
        char *sub = test_path(f->dir, "new");
        struct stat st;
        assert_int_equal(store_open(sub, NULL, &s, &msg), 0);
        assert_int_equal(stat(sub, &st), 0);
        assert_int_equal(st.st_mode & 07777, 0700);
        store_close(s);
        free(sub);
        free(key);
}

/* The key file may also hold the key as 64 hex digits (either case, one trailing newline): it
 * opens what the raw key sealed; a character that is not a hex digit is refused. */
static void test_key_file_hex(void **state) {
        Fixture *f = *state;
        char *key = test_path(f->dir, "store.key"), *msg = NULL;
        char hex[2 * STORE_MASTER_KEY_SIZE + 1 + 1];
        uint8_t raw[STORE_MASTER_KEY_SIZE + 1];
        CbSecret *pem = make_key_pem(), *back = NULL;
        Store *s = open_store(f);
        StoreRequest r;
        int fd;

        fill_request(&r, 1, 1);
        assert_int_equal(store_request_insert(s, &r, pem), 0);
        store_close(s);

        fd = open(key, O_RDONLY | O_CLOEXEC);
        assert_true(fd >= 0);
        assert_int_equal(read(fd, raw, sizeof raw), STORE_MASTER_KEY_SIZE);
        close(fd);
        /* Upper-case digits for even bytes, lower-case for odd ones. */
        for (size_t i = 0; i < STORE_MASTER_KEY_SIZE; i++)
                snprintf(hex + 2 * i, 3, i % 2 ? "%02x" : "%02X", raw[i]);
        hex[2 * STORE_MASTER_KEY_SIZE] = '\n';

        fd = open(key, O_WRONLY | O_TRUNC | O_CLOEXEC);
        assert_true(fd >= 0);
        assert_int_equal(write(fd, hex, 2 * STORE_MASTER_KEY_SIZE + 1), 2 * STORE_MASTER_KEY_SIZE + 1);
        close(fd);
        s = open_store(f);
        assert_int_equal(store_key_get(s, r.id, &back), 0);
        assert_int_equal(back->size, pem->size);
        assert_memory_equal(back->data, pem->data, pem->size);
        back = secret_free(back);
        store_close(s);

        hex[7] = 'g';
        fd = open(key, O_WRONLY | O_TRUNC | O_CLOEXEC);
        assert_true(fd >= 0);
        assert_int_equal(write(fd, hex, 2 * STORE_MASTER_KEY_SIZE + 1), 2 * STORE_MASTER_KEY_SIZE + 1);
        close(fd);
        assert_int_equal(store_open(f->dir, NULL, &s, &msg), -EBADMSG);
        assert_non_null(msg);
        assert_non_null(strstr(msg, "hex digits"));
        free(msg);
        secret_free(pem);
        free(key);
}

static void test_credentials(void **state) {
        Fixture *f = *state;
        char *creds = test_path(f->dir, "creds"), *state_dir = test_path(f->dir, "state");
        char *cred = NULL, *msg = NULL;
        CbSecret *pem = make_key_pem(), *back = NULL;
        Store *s = NULL;
        StoreRequest r;
        FILE *fp;

        assert_int_equal(mkdir(creds, 0500), 0);
        /* A credentials directory without our credential: fall back to the state-dir file. */
        assert_int_equal(store_open(state_dir, creds, &s, &msg), 0);
        store_close(s);
        cred = test_path(creds, "certbroker-store-key");
        assert_int_equal(chmod(creds, 0700), 0);

        fp = fopen(cred, "we");
        assert_non_null(fp);
        fputs("00112233445566778899aabbccddeeff00112233445566778899AABBCCDDEEFF\n", fp);
        fclose(fp);

        StoreCipher *c = NULL;
        assert_int_equal(store_cipher_load(state_dir, creds, &c, &msg), 0);
        assert_string_equal(store_cipher_source(c), "credential");
        store_cipher_free(c);

        assert_int_equal(store_open(state_dir, creds, &s, &msg), 0);
        fill_request(&r, 5, 5);
        assert_int_equal(store_request_insert(s, &r, pem), 0);
        store_close(s);

        /* The state-dir key is a different key: the blob does not open with it... */
        assert_int_equal(store_open(state_dir, NULL, &s, &msg), 0);
        assert_int_equal(store_key_get(s, r.id, &back), -EBADMSG);
        store_close(s);
        /* ...and does with the credential, including the same bytes given raw. */
        uint8_t raw[32];
        for (int i = 0; i < 32; i++)
                raw[i] = (uint8_t) ((i % 16) * 0x11);
        assert_int_equal(store_cipher_new_from_key(raw, &c), 0);
        assert_int_equal(store_open_with_cipher(state_dir, c, &s, &msg), 0);
        assert_int_equal(store_key_get(s, r.id, &back), 0);
        assert_true(secret_equal(pem, back));
        back = secret_free(back);
        store_close(s);

        /* A malformed credential is an error, not a silent fallback. */
        fp = fopen(cred, "we");
        assert_non_null(fp);
        fputs("not-a-key\n", fp);
        fclose(fp);
        assert_int_equal(store_open(state_dir, creds, &s, &msg), -EBADMSG);
        assert_non_null(strstr(msg, cred));
        free(msg);

        secret_free(pem);
        free(cred);
        free(creds);
        free(state_dir);
}

static void test_counts(void **state) {
        Fixture *f = *state;
        Store *s = open_store(f);
        StoreRequest r;
        char ids[6][STORE_ID_LEN + 1];
        unsigned n;

        for (int i = 0; i < 6; i++) {
                fill_request(&r, i < 4 ? 1001 : 1002, 1000 + (uint64_t) i * 100);
                assert_int_equal(store_request_insert(s, &r, NULL), 0);
                memcpy(ids[i], r.id, sizeof(ids[i]));
        }

        assert_int_equal(store_count_active(s, 1001, &n), 0);
        assert_int_equal(n, 4);
        assert_int_equal(store_count_active(s, 1002, &n), 0);
        assert_int_equal(n, 2);
        assert_int_equal(store_count_active(s, 9999, &n), 0);
        assert_int_equal(n, 0);

        /* Terminal ones stop counting as active. */
        StoreRequest *got = NULL;
        assert_int_equal(store_request_get(s, ids[0], &got), 0);
        got->state = REQUEST_ISSUED;
        assert_int_equal(store_request_update(s, got), 0);
        got = store_request_free(got);
        assert_int_equal(store_request_get(s, ids[1], &got), 0);
        got->state = REQUEST_PENDING;
        assert_int_equal(store_request_update(s, got), 0);
        got = store_request_free(got);
        assert_int_equal(store_count_active(s, 1001, &n), 0);
        assert_int_equal(n, 3);

        assert_int_equal(store_count_created_since(s, 1001, 0, &n), 0);
        assert_int_equal(n, 4);
        assert_int_equal(store_count_created_since(s, 1001, 1200, &n), 0);
        assert_int_equal(n, 2);
        assert_int_equal(store_count_created_since(s, 1002, 1500, &n), 0);
        assert_int_equal(n, 1);

        /* Removing requests does not reset the rate count. */
        assert_int_equal(store_request_delete(s, ids[2]), 0);
        assert_int_equal(store_request_delete(s, ids[3]), 0);
        assert_int_equal(store_count_created_since(s, 1001, 1200, &n), 0);
        assert_int_equal(n, 2);
        assert_int_equal(store_count_active(s, 1001, &n), 0);
        assert_int_equal(n, 1);

        /* Pruning old history. */
        assert_int_equal(store_history_prune(s, 1200), 2);
        assert_int_equal(store_count_created_since(s, 1001, 0, &n), 0);
        assert_int_equal(n, 2);
        store_close(s);
}

static void test_schema_version(void **state) {
        Fixture *f = *state;
        Store *s = open_store(f);
        char *msg = NULL;
        sqlite3 *db;

        store_close(s);
        db = raw_open(f);
        raw_exec(db, "UPDATE schema_version SET version = 99");
        sqlite3_close(db);
        assert_int_equal(store_open(f->dir, NULL, &s, &msg), -EPROTONOSUPPORT);
        assert_non_null(strstr(msg, "newer certbroker"));
        free(msg);
}

/* Schema 2 added the caller snapshot, 3 the token and the sealed key, 4 the key kept for a
 * RenewalReq and what each CA's RenewalReqs got: a version-1 database is
 * migrated in place, its rows get an empty snapshot and token, and new rows keep theirs across
 * a reopen. */
static void test_migration_v1(void **state) {
        Fixture *f = *state;
        Store *s = open_store(f);
        StoreRequest r, *got = NULL;
        sqlite3 *db;
        char old_id[STORE_ID_LEN + 1];

        fill_request(&r, 1001, 100);
        assert_int_equal(store_request_insert(s, &r, NULL), 0);
        memcpy(old_id, r.id, sizeof old_id);
        store_close(s);
        db = raw_open(f);
        raw_exec(db, "ALTER TABLE requests DROP COLUMN caller; ALTER TABLE requests DROP COLUMN submitted; "
                     "ALTER TABLE requests DROP COLUMN warning; ALTER TABLE requests DROP COLUMN renew; "
                     "ALTER TABLE requests DROP COLUMN renew_at; ALTER TABLE requests DROP COLUMN successor; "
                     "ALTER TABLE requests DROP COLUMN predecessor; ALTER TABLE requests DROP COLUMN renew_warned; "
                     "ALTER TABLE requests DROP COLUMN token; ALTER TABLE requests DROP COLUMN sealed_to; "
                     "ALTER TABLE requests DROP COLUMN sealed_key; "
                     "ALTER TABLE requests DROP COLUMN renewal_key; DROP TABLE ca_renewal; "
                     "ALTER TABLE requests DROP COLUMN server; "
                     "UPDATE schema_version SET version = 1");
        sqlite3_close(db);

        s = open_store(f);
        assert_int_equal(store_request_get(s, old_id, &got), 0);
        assert_string_equal(got->caller, "");
        assert_string_equal(got->token, "");
        assert_false(got->key_sealed);
        assert_string_equal(got->server, "");
        got = store_request_free(got);
        fill_request(&r, 1002, 200);
        r.caller = (char *) "v=1\ngids=3001 3002\nunit=nginx-a.service\n";
        r.server = (char *) "https://ndes2.example.com/certsrv/mscep/mscep.dll";
        assert_int_equal(store_request_insert(s, &r, NULL), 0);
        store_close(s);

        s = open_store(f);
        assert_int_equal(store_request_get(s, r.id, &got), 0);
        assert_string_equal(got->caller, "v=1\ngids=3001 3002\nunit=nginx-a.service\n");
        assert_string_equal(got->server, "https://ndes2.example.com/certsrv/mscep/mscep.dll");
        /* the server recorded later (a PKCSReq sent) is kept by an update */
        free(got->server);
        got->server = strdup("https://ndes1.example.com/certsrv/mscep/mscep.dll");
        assert_non_null(got->server);
        assert_int_equal(store_request_update(s, got), 0);
        got = store_request_free(got);
        assert_int_equal(store_request_get(s, r.id, &got), 0);
        assert_string_equal(got->server, "https://ndes1.example.com/certsrv/mscep/mscep.dll");
        got = store_request_free(got);
        store_close(s);
        db = raw_open(f);
        sqlite3_stmt *st = NULL;
        assert_int_equal(sqlite3_prepare_v2(db, "SELECT version FROM schema_version", -1, &st, NULL), SQLITE_OK);
        assert_int_equal(sqlite3_step(st), SQLITE_ROW);
        assert_int_equal(sqlite3_column_int(st, 0), 5);
        sqlite3_finalize(st);
        sqlite3_close(db);
}

/* TakeKeySealed: the key is erased and only the sealed copy is kept, which opens with the
 * recipient's secret key into the same PEM; it is read back the same (for a receiver asking
 * again), survives a reopen, and is erased with the key (expiry, ConfirmKey). The token is
 * kept with the row. */
static void test_key_sealed(void **state) {
        Fixture *f = *state;
        Store *s = open_store(f);
        StoreRequest r, *got = NULL;
        CbSecret *pem = make_key_pem(), *back = NULL;
        unsigned char pk[crypto_box_PUBLICKEYBYTES], sk[crypto_box_SECRETKEYBYTES], rcpt[STORE_SEAL_RECIPIENT_LEN];
        uint8_t *box = NULL, *box2 = NULL;
        size_t size = 0, size2 = 0;
        char *opened;

        crypto_box_keypair(pk, sk);
        fill_request(&r, 1001, 100);
        r.token = (char *) "deploy-0123456789abcdef";
        assert_int_equal(store_request_insert(s, &r, pem), 0);
        assert_int_equal(store_key_sealed_get(s, r.id, rcpt, &box, &size), -ENOKEY);
        /* A low-order point is refused and nothing changes. */
        {
                uint8_t zero[STORE_SEAL_RECIPIENT_LEN] = {};
                assert_int_equal(store_key_seal(s, r.id, zero, &box, &size), -EDOM);
                assert_int_equal(store_request_get(s, r.id, &got), 0);
                assert_true(got->key_available);
                got = store_request_free(got);
        }
        assert_int_equal(store_key_seal(s, r.id, pk, &box, &size), 0);
        assert_int_equal(size, pem->size + crypto_box_SEALBYTES);
        opened = malloc(size - crypto_box_SEALBYTES + 1);
        assert_non_null(opened);
        assert_int_equal(crypto_box_seal_open((unsigned char *) opened, box, size, pk, sk), 0);
        assert_memory_equal(opened, pem->data, pem->size);
        free(opened);
        /* The key itself is gone: TakeKey and a second seal find none. */
        assert_int_equal(store_key_take(s, r.id, &back), -ENOKEY);
        assert_int_equal(store_key_seal(s, r.id, pk, &box2, &size2), -ENOKEY);
        assert_false(dir_files_contain(f, pem->data, pem->size));
        store_close(s);

        s = open_store(f);
        assert_int_equal(store_request_get(s, r.id, &got), 0);
        assert_false(got->key_available);
        assert_true(got->key_sealed);
        assert_string_equal(got->token, "deploy-0123456789abcdef");
        got = store_request_free(got);
        assert_int_equal(store_key_sealed_get(s, r.id, rcpt, &box2, &size2), 0);
        assert_int_equal(size2, size);
        assert_memory_equal(box2, box, size);
        assert_memory_equal(rcpt, pk, sizeof pk);
        free(box2);
        assert_int_equal(store_key_erase(s, r.id), 0);
        assert_int_equal(store_key_sealed_get(s, r.id, rcpt, &box2, &size2), -ENOKEY);
        assert_int_equal(store_request_get(s, r.id, &got), 0);
        assert_false(got->key_sealed);
        got = store_request_free(got);
        assert_int_equal(store_key_sealed_get(s, "0000000000000000", rcpt, &box2, &size2), -ENOENT);
        store_close(s);
        assert_false(dir_files_contain(f, box + crypto_box_PUBLICKEYBYTES, 32));
        free(box);
        secret_free(pem);
}

/* A request gets at most one successor: linked in the insert's transaction, refused after. */
static void test_successor_once(void **state) {
        Fixture *f = *state;
        Store *s = open_store(f);
        StoreRequest pred, succ, again, *got = NULL;
        StoreRequest **all = NULL;
        size_t n = 0;

        fill_request(&pred, 1001, 100);
        pred.renew = true;
        assert_int_equal(store_request_insert(s, &pred, NULL), 0);
        fill_request(&succ, 1001, 200);
        succ.renew = true;
        succ.predecessor = pred.id;
        assert_int_equal(store_request_insert_successor(s, pred.id, &succ, NULL), 0);
        fill_request(&again, 1001, 300);
        again.predecessor = pred.id;
        assert_int_equal(store_request_insert_successor(s, pred.id, &again, NULL), -EEXIST);
        assert_int_equal(store_request_insert_successor(s, "nope", &again, NULL), -EINVAL);
        store_close(s);

        s = open_store(f);
        assert_int_equal(store_request_load_all(s, &all, &n), 0);
        assert_int_equal(n, 2);         /* the refused one left nothing behind */
        store_request_array_free(all, n);
        assert_int_equal(store_request_get(s, pred.id, &got), 0);
        assert_string_equal(got->successor, succ.id);
        assert_true(got->renew);
        got = store_request_free(got);
        assert_int_equal(store_request_get(s, succ.id, &got), 0);
        assert_string_equal(got->predecessor, pred.id);
        assert_string_equal(got->successor, "");
        got = store_request_free(got);
        /* A successor is not a new request of its owner: MaxRequests= does not count it. */
        unsigned count = 0;
        assert_int_equal(store_count_created_since(s, 1001, 0, &count), 0);
        assert_int_equal(count, 1);
        store_close(s);
}

static void test_not_a_database(void **state) {
        Fixture *f = *state;
        char *p = test_path(f->dir, "certbroker.db"), *msg = NULL;
        Store *s = NULL;
        int fd;

        fd = open(p, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
        assert_true(fd >= 0);
        for (int i = 0; i < 64; i++)
                assert_int_equal(write(fd, "garbage garbage garbage garbage!", 32), 32);
        close(fd);
        assert_true(store_open(f->dir, NULL, &s, &msg) < 0);
        assert_non_null(msg);
        assert_non_null(strstr(msg, p));
        free(msg);
        free(p);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_ids),
                cmocka_unit_test_setup_teardown(test_modes_and_cloexec, setup, teardown),
                cmocka_unit_test_setup_teardown(test_crud_and_reopen, setup, teardown),
                cmocka_unit_test_setup_teardown(test_limits, setup, teardown),
                cmocka_unit_test_setup_teardown(test_key_blob, setup, teardown),
                cmocka_unit_test_setup_teardown(test_tamper_and_wrong_key, setup, teardown),
                cmocka_unit_test_setup_teardown(test_key_file_permissions, setup, teardown),
                cmocka_unit_test_setup_teardown(test_key_file_hex, setup, teardown),
                cmocka_unit_test_setup_teardown(test_credentials, setup, teardown),
                cmocka_unit_test_setup_teardown(test_counts, setup, teardown),
                cmocka_unit_test_setup_teardown(test_schema_version, setup, teardown),
                cmocka_unit_test_setup_teardown(test_renewal_key, setup, teardown),
                cmocka_unit_test_setup_teardown(test_migration_v1, setup, teardown),
                cmocka_unit_test_setup_teardown(test_successor_once, setup, teardown),
                cmocka_unit_test_setup_teardown(test_key_sealed, setup, teardown),
                cmocka_unit_test_setup_teardown(test_not_a_database, setup, teardown),
                cmocka_unit_test_setup_teardown(test_durability, setup, teardown),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
