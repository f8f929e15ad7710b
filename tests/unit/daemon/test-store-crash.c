/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* kill -9 at random points: a child inserts, updates, takes keys and deletes in a loop and
 * reports each operation on a pipe only after the store call returned (i.e. committed). The
 * parent SIGKILLs it at a random moment, reopens the database and checks that every reported
 * operation is there, nothing is torn, every stored key still decrypts, and at most the one
 * operation in flight at the kill went further than reported. Repeated CRASH_ROUNDS times on
 * the same database. */

#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/wait.h>
#include <time.h>

#include <cmocka.h>

#include "keys-generate.h"
#include "store-db.h"
#include "test-helpers.h"

#define CRASH_ROUNDS 25
#define MODEL_MAX 20000

typedef struct Entry {
        char id[STORE_ID_LEN + 1];
        bool updated, taken, delete_intent, deleted;
} Entry;

static Entry model[MODEL_MAX];
static size_t n_model;
static unsigned n_ahead;        /* kills that landed between a commit and its report */

static Entry *model_find(const char *id) {
        for (size_t i = 0; i < n_model; i++)
                if (strcmp(model[i].id, id) == 0)
                        return &model[i];
        return NULL;
}

static char *names1[] = { (char *) "crash.example.com", NULL };

static void child_write(int fd, char op, const char *id) {
        char line[STORE_ID_LEN + 4];
        int n = snprintf(line, sizeof(line), "%c %s\n", op, id);

        if (write(fd, line, (size_t) n) != n)
                _exit(3);
}

static _Noreturn void child_run(const char *dir, int fd, const CbSecret *pem, unsigned seed) {
        char pending_ids[8][STORE_ID_LEN + 1];
        unsigned n_pending = 0;
        char *msg = NULL;
        Store *s = NULL;

        srand(seed);
        if (store_open(dir, NULL, &s, &msg) < 0)
                _exit(2);

        for (uint64_t i = 1;; i++) {
                StoreRequest r = {
                        .owner = 1000 + (uid_t) (i % 3),
                        .ca = (char *) "corp",
                        .subject = (char *) "CN=crash.example.com",
                        .names = names1,
                        .key = (char *) "ec:p256",
                        .usage = (char *) "both",
                        .state = REQUEST_QUEUED,
                        .created = i,
                        .updated = i,
                };

                if (store_request_insert(s, &r, pem) < 0)
                        _exit(4);
                child_write(fd, 'I', r.id);

                r.state = REQUEST_PENDING;
                r.attempts = 1;
                r.transaction_id = (char *) "TXN";
                r.updated = i + 1;
                if (store_request_update(s, &r) < 0)
                        _exit(5);
                child_write(fd, 'U', r.id);

                memcpy(pending_ids[n_pending++], r.id, sizeof(r.id));
                if (n_pending == 8) {
                        unsigned x = (unsigned) rand() % 8, y = (x + 1) % 8;
                        CbSecret *k = NULL;

                        /* Take one key, delete another request, keep the rest. */
                        if (store_key_take(s, pending_ids[x], &k) < 0)
                                _exit(6);
                        secret_free(k);
                        child_write(fd, 'T', pending_ids[x]);

                        child_write(fd, 'd', pending_ids[y]);   /* intent: may or may not commit */
                        if (store_request_delete(s, pending_ids[y]) < 0)
                                _exit(7);
                        child_write(fd, 'D', pending_ids[y]);
                        n_pending = 0;
                }
        }
}

/* Read whatever the (now dead or still running) child reported; apply to the model. */
static unsigned drain_events(int fd, char *buf, size_t *len, size_t cap, bool block_for_one) {
        unsigned events = 0;

        for (;;) {
                struct pollfd pfd = { .fd = fd, .events = POLLIN };
                ssize_t k;
                char *nl;

                while ((nl = memchr(buf, '\n', *len))) {
                        char op = buf[0];
                        char id[STORE_ID_LEN + 1];
                        Entry *e;

                        assert_int_equal(nl - buf, STORE_ID_LEN + 2);
                        memcpy(id, buf + 2, STORE_ID_LEN);
                        id[STORE_ID_LEN] = 0;
                        e = model_find(id);
                        switch (op) {
                        case 'I':
                                if (!e) {
                                        assert_true(n_model < MODEL_MAX);
                                        e = &model[n_model++];
                                        memcpy(e->id, id, sizeof(id));
                                }
                                break;
                        case 'U':
                                assert_non_null(e);
                                e->updated = true;
                                break;
                        case 'T':
                                assert_non_null(e);
                                e->taken = true;
                                break;
                        case 'd':
                                assert_non_null(e);
                                e->delete_intent = true;
                                break;
                        case 'D':
                                assert_non_null(e);
                                e->deleted = true;
                                break;
                        default:
                                fail_msg("bad event %c", op);
                        }
                        memmove(buf, nl + 1, *len - (size_t) (nl + 1 - buf));
                        *len -= (size_t) (nl + 1 - buf);
                        events++;
                }
                if (block_for_one && events > 0)
                        return events;

                if (poll(&pfd, 1, block_for_one ? 30000 : 0) <= 0) {
                        assert_false(block_for_one);  /* child stalled for 30 s */
                        return events;
                }
                k = read(fd, buf + *len, cap - *len);
                assert_true(k >= 0);
                if (k == 0)
                        return events;
                *len += (size_t) k;
        }
}

static void verify(const char *dir, unsigned round) {
        StoreRequest **all = NULL;
        unsigned unexpected = 0;
        char *msg = NULL;
        Store *s = NULL;
        size_t n = 0;
        int r;

        r = store_open(dir, NULL, &s, &msg);
        if (r < 0)
                fail_msg("round %u: reopen after kill failed: %d %s", round, r, msg ? msg : "");
        assert_int_equal(store_request_load_all(s, &all, &n), 0);

        /* Every reported insert is there, with at least its reported progress; every
         * reported delete is gone; a delete in flight may have gone either way. */
        for (size_t i = 0; i < n_model; i++) {
                Entry *e = &model[i];
                StoreRequest *got = NULL;

                r = store_request_get(s, e->id, &got);
                if (e->deleted) {
                        assert_int_equal(r, -ENOENT);
                        continue;
                }
                if (r == -ENOENT && e->delete_intent) {
                        e->deleted = true;
                        n_ahead++;
                        continue;
                }
                if (r < 0)
                        fail_msg("round %u: committed request %s lost (%d)", round, e->id, r);
                if (e->updated) {
                        assert_int_equal(got->state, REQUEST_PENDING);
                        assert_int_equal(got->attempts, 1);
                        assert_string_equal(got->transaction_id, "TXN");
                }
                if (e->taken)
                        assert_false(got->key_available);
                store_request_free(got);
        }

        /* Every row is whole: a consistent state/attempts pair, and a key that decrypts. */
        for (size_t i = 0; i < n; i++) {
                StoreRequest *q = all[i];
                Entry *e = model_find(q->id);

                assert_true((q->state == REQUEST_QUEUED && q->attempts == 0 && q->transaction_id[0] == 0) ||
                            (q->state == REQUEST_PENDING && q->attempts == 1 && strcmp(q->transaction_id, "TXN") == 0));
                assert_string_equal(q->names[0], "crash.example.com");
                assert_null(q->names[1]);
                if (q->key_available) {
                        CbSecret *k = NULL;
                        assert_int_equal(store_key_get(s, q->id, &k), 0);
                        assert_true(k->size > 100);
                        secret_free(k);
                }

                if (!e) {
                        /* The insert in flight at the kill committed but was not reported. */
                        unexpected++;
                        n_ahead++;
                        assert_true(n_model < MODEL_MAX);
                        e = &model[n_model++];
                        memcpy(e->id, q->id, sizeof(e->id));
                }
                /* Adopt what the database says for the next round (at most one op ahead). */
                if ((q->state == REQUEST_PENDING && !e->updated) || (!q->key_available && !e->taken))
                        n_ahead++;
                e->updated = q->state == REQUEST_PENDING;
                e->taken = e->taken || !q->key_available;
        }
        assert_true(unexpected <= 1);

        store_request_array_free(all, n);
        store_close(s);
}

static void test_kill_loop(void **state) {
        char *dir = test_mkdtemp("cb-test-crash");
        unsigned seed = (unsigned) time(NULL) ^ (unsigned) getpid();
        CbSecret *pem = NULL;
        EVP_PKEY *k = NULL;
        char *msg = NULL;
        Store *s = NULL;

        assert_non_null(dir);
        if (getenv("CB_CRASH_SEED"))
                seed = (unsigned) strtoul(getenv("CB_CRASH_SEED"), NULL, 10);
        print_message("crash test seed %u (set CB_CRASH_SEED to repeat)\n", seed);
        srand(seed);

        assert_int_equal(key_generate(KEY_TYPE_EC_P256, &k), 0);
        assert_int_equal(key_export_pkcs8_pem(k, &pem), 0);
        EVP_PKEY_free(k);

        /* Create the database and key file once. */
        assert_int_equal(store_open(dir, NULL, &s, &msg), 0);
        store_close(s);

        unsigned rounds = CRASH_ROUNDS;
        if (getenv("CB_CRASH_ROUNDS"))          /* longer stress runs by hand */
                rounds = (unsigned) strtoul(getenv("CB_CRASH_ROUNDS"), NULL, 10);

        for (unsigned round = 0; round < rounds; round++) {
                unsigned want = 1 + (unsigned) rand() % 60, got = 0;
                char buf[4096];
                size_t len = 0;
                int p[2], status;
                pid_t pid;

                assert_int_equal(pipe2(p, O_CLOEXEC), 0);
                pid = fork();
                assert_true(pid >= 0);
                if (pid == 0) {
                        close(p[0]);
                        child_run(dir, p[1], pem, (unsigned) rand());
                }
                close(p[1]);

                /* Kill after a random number of committed operations plus a random delay
                 * of up to 3 ms, so the kill lands anywhere inside a transaction. */
                while (got < want)
                        got += drain_events(p[0], buf, &len, sizeof(buf), true);
                struct timespec ts = { 0, (long) (rand() % 3000) * 1000L };
                nanosleep(&ts, NULL);
                assert_int_equal(kill(pid, SIGKILL), 0);
                assert_int_equal(waitpid(pid, &status, 0), pid);
                assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
                (void) drain_events(p[0], buf, &len, sizeof(buf), false);
                assert_int_equal(len, 0);       /* no torn event line */
                close(p[0]);

                verify(dir, round);
        }
        print_message("crash test: %u kills, %zu requests checked, %u kills landed between a commit "
                      "and its report\n", rounds, n_model, n_ahead);

        secret_free(pem);
        test_rm_rf(dir);
        free(dir);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_kill_loop),
        };

        if (secret_init() < 0)
                return 1;
        return cmocka_run_group_tests(tests, NULL, NULL);
}
