/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Challenges handed back and kept over a restart (challenge-fetch.c, challenge-journal.c over
 * the real store): a spare's usable time and its slot's hold count from when NDES issued it,
 * however often it is handed back; what NDES may still hold is recorded per CA and server, and a
 * new fetcher counts it, uses the spares of its own server that NDES still keeps, and never
 * finds a password in the store's files; a challenge not sent yet is a spare after a restart. And
 * queued fetches are answered fairly between their
 * owners. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <systemd/sd-event.h>

#include "basic.h"
#include "challenge-fetch.h"
#include "challenge-journal.h"
#include "store-db.h"
#include "../daemon/test-helpers.h"

#define MIN_USEC (60ULL * 1000000ULL)
#define ADMIN_URL "https://ndes.example.test/certsrv/mscep_admin/"
#define URL1 "https://ndes.example.test/certsrv/mscep/mscep.dll"
#define URL2 "https://ndes2.example.test/certsrv/mscep/mscep.dll"
/* Within this of each other: the clocks are read at slightly different moments. */
#define SLACK_USEC (2ULL * 1000000ULL)

typedef struct Fixture {
        char *dir;
        sd_event *event;
        HttpClient *http;
        Store *store;
        ChallengeJournal journal;
} Fixture;

typedef struct Got {
        int calls;
        ChallengeResult res;
        ChallengeSecret *secret;
} Got;

static int setup(void **state) {
        Fixture *f = calloc(1, sizeof *f);
        char *msg = NULL;

        if (!f || secret_init() < 0 || sd_event_new(&f->event) < 0 || http_client_new(f->event, &f->http) < 0)
                return -1;
        f->dir = test_mkdtemp("cb-test-challenge-journal");
        if (!f->dir || store_open(f->dir, NULL, &f->store, &msg) < 0) {
                free(msg);
                return -1;
        }
        challenge_journal_init(&f->journal, f->store);
        *state = f;
        return 0;
}

static int teardown(void **state) {
        Fixture *f = *state;

        store_close(f->store);
        http_client_free(f->http);
        sd_event_unref(f->event);
        test_rm_rf(f->dir);
        free(f->dir);
        free(f);
        return 0;
}

static void on_got(ChallengeFetcher *fetcher, ChallengeResult *res, void *userdata) {
        Got *g = userdata;

        g->calls++;
        g->res = *res;
        g->secret = TAKE_PTR(res->secret);
        g->res.secret = NULL;
}

static ChallengeFetcher *new_fetcher(Fixture *f, const char *ca, const char *url, bool journal,
                                     ChallengeFetcher *previous) {
        ChallengeFetcherSettings s = {
                .ca_name = ca,
                .admin_url = ADMIN_URL,
                .permitted_suffix = "example.test",
                .timeout_usec = 30 * 1000000ULL,
                .max_outstanding = 4,
                .event = f->event,
                .server_url = url,
                .journal = journal ? &f->journal : NULL,
                .previous = previous,
        };
        ChallengeFetcher *x = NULL;

        assert_int_equal(challenge_fetcher_new(f->http, NULL, &s, &x), 0);
        return x;
}

static ChallengeSecret *secret(const char *text) {
        ChallengeSecret *s = NULL;

        assert_int_equal(challenge_secret_new(text, strlen(text), &s), 0);
        return s;
}

static void assert_near(uint64_t got, uint64_t want) {
        if (got + SLACK_USEC < want || got > want + SLACK_USEC)
                fail_msg("%llu is not within 2 s of %llu", (unsigned long long) got, (unsigned long long) want);
}

/* A spare handed back keeps the expiry it got when NDES issued it. */
static void test_spare_expiry_from_issue(void **state) {
        Fixture *f = *state;
        ChallengeFetcher *x = new_fetcher(f, "corp", URL1, false, NULL);
        uint64_t issued = monotonic_usec() - 45 * MIN_USEC;
        ChallengeResult res = {
                .outcome = TRANSPORT_OK,
                .validity_minutes = 60,
                .issued_usec = issued,
                .secret = secret("0123456789ABCDEF"),
        };
        Got g = {};

        challenge_fetcher_keep_spare(x, &res);
        assert_null(res.secret);
        assert_int_equal(challenge_fetcher_get_spares(x), 1);
        /* 60 minutes from its issue, less the margin for the enrollment: 5 minutes from now. */
        assert_near(challenge_fetcher_get_spare_until(x), issued + 60 * MIN_USEC - CHALLENGE_SPARE_MARGIN_USEC);

        assert_int_equal(challenge_fetcher_fetch(x, 0, on_got, &g, NULL), 0);
        assert_int_equal(g.calls, 1);
        assert_int_equal(g.res.outcome, TRANSPORT_OK);
        assert_non_null(g.secret);
        assert_int_equal(g.res.issued_usec, issued);
        assert_int_equal(challenge_fetcher_get_spares(x), 0);

        /* Handed back (the enrollment did not need it): still 5 minutes, not 50 again. */
        res = g.res;
        res.secret = TAKE_PTR(g.secret);
        challenge_fetcher_keep_spare(x, &res);
        assert_int_equal(challenge_fetcher_get_spares(x), 1);
        assert_near(challenge_fetcher_get_spare_until(x), issued + 60 * MIN_USEC - CHALLENGE_SPARE_MARGIN_USEC);

        /* One NDES issued 55 minutes ago is no spare: too little time left. */
        res = (ChallengeResult) {
                .outcome = TRANSPORT_OK,
                .validity_minutes = 60,
                .issued_usec = monotonic_usec() - 55 * MIN_USEC,
                .secret = secret("FEDCBA9876543210"),
        };
        challenge_fetcher_keep_spare(x, &res);
        assert_null(res.secret);
        assert_int_equal(challenge_fetcher_get_spares(x), 1);

        /* A 2-minute validity (PasswordValidity=2): the margin is a sixth, 20 s. */
        assert_int_equal(challenge_spare_margin_usec(2 * MIN_USEC), 20 * 1000000ULL);
        assert_int_equal(challenge_spare_margin_usec(60 * MIN_USEC), CHALLENGE_SPARE_MARGIN_USEC);
        issued = monotonic_usec() - 30 * 1000000ULL;
        res = (ChallengeResult) {
                .outcome = TRANSPORT_OK,
                .validity_minutes = 2,
                .issued_usec = issued,
                .secret = secret("SHORT-LIVED-123456"),
        };
        challenge_fetcher_keep_spare(x, &res);
        assert_int_equal(challenge_fetcher_get_spares(x), 2);
        challenge_fetcher_free(x);
}

static void add_row(Fixture *f, const char *ca, const char *url, uint64_t issued, unsigned validity, const char *spare,
                    int64_t *ret_row) {
        uint64_t expires = issued + (uint64_t) validity * MIN_USEC + CHALLENGE_HOLD_MARGIN_USEC;
        CbSecret *s = NULL;

        assert_int_equal(store_challenge_add(f->store, ca, ADMIN_URL, url, issued, expires, ret_row), 0);
        if (!spare)
                return;
        assert_int_equal(secret_new_copy(spare, strlen(spare), &s), 0);
        assert_int_equal(store_challenge_set_spare(f->store, *ret_row, s, validity, "0123456789abcdef0123456789abcdef"),
                         0);
        secret_free(s);
}

static StoreChallenge *find_row(StoreChallenge *a, size_t n, int64_t row) {
        for (size_t i = 0; i < n; i++)
                if (a[i].row == row)
                        return &a[i];
        return NULL;
}

static bool file_contains(const char *path, const char *needle) {
        FILE *fp = fopen(path, "rb");
        char *buf;
        size_t n;
        bool found;

        if (!fp)
                return false;   /* no such file (no WAL): nothing in it */
        buf = malloc(64 * 1024 * 1024);
        assert_non_null(buf);
        n = fread(buf, 1, 64 * 1024 * 1024, fp);
        fclose(fp);
        found = memmem(buf, n, needle, strlen(needle)) != NULL;
        free(buf);
        return found;
}

/* A restart (a new fetcher without a predecessor) counts what NDES still holds for it and uses
 * its spares. */
static void test_restart(void **state) {
        Fixture *f = *state;
        uint64_t now = now_usec();
        int64_t spare_row, held_row, other_row, expired_row, old_row;
        StoreChallenge *rows = NULL;
        size_t n = 0;
        char path[4200];
        Got g = {};

        /* A spare of this server, issued 30 minutes ago (60-minute validity): usable. */
        add_row(f, "corp", URL1, now - 30 * MIN_USEC, 60, "SPARE-ONE-1234567890", &spare_row);
        /* One in use when the broker was killed: consumption unknown, counted until it expires. */
        add_row(f, "corp", URL1, now - 20 * MIN_USEC, 60, NULL, &held_row);
        /* A spare recorded for another URL= entry (URL= changed): never used, only counted. */
        add_row(f, "corp", URL2, now - 10 * MIN_USEC, 60, "SPARE-OTHER-1234567890", &other_row);
        /* Expired at NDES: forgotten. */
        add_row(f, "corp", URL1, now - 120 * MIN_USEC, 60, "SPARE-OLD-1234567890", &expired_row);
        /* A spare too close to its expiry (12-minute validity, issued 11 minutes ago: less than
         * the margin of a sixth, 2 minutes, left): counted. */
        add_row(f, "corp", URL1, now - 11 * MIN_USEC, 12, "SPARE-LATE-1234567890", &old_row);
        /* Another CA's: none of this fetcher's business. */
        int64_t foreign_row;
        add_row(f, "other", URL1, now - 5 * MIN_USEC, 60, "SPARE-FOREIGN-123456", &foreign_row);

        ChallengeFetcher *x = new_fetcher(f, "corp", URL1, true, NULL);
        assert_int_equal(challenge_fetcher_get_spares(x), 1);
        assert_int_equal(challenge_fetcher_get_held(x), 4);     /* the 3 recorded ones and the spare */
        assert_int_equal(challenge_fetcher_get_outstanding(x), 4);       /* = MaxOutstandingChallenges */
        /* The earliest hold: the late spare's, 12 + 1 minutes after its issue. */
        assert_near(challenge_fetcher_get_next_hold_end(x),
                    monotonic_usec() - 11 * MIN_USEC + 12 * MIN_USEC + CHALLENGE_HOLD_MARGIN_USEC);

        assert_int_equal(store_challenge_load(f->store, "corp", ADMIN_URL, now_usec(), &rows, &n), 0);
        assert_int_equal(n, 4);
        assert_null(find_row(rows, n, expired_row));
        assert_true(find_row(rows, n, spare_row)->has_spare);
        assert_false(find_row(rows, n, other_row)->has_spare);  /* erased */
        assert_false(find_row(rows, n, old_row)->has_spare);
        assert_false(find_row(rows, n, held_row)->has_spare);
        store_challenge_array_free(rows, n);

        /* The spare serves the next enrollment, with its issue time and page. */
        assert_int_equal(challenge_fetcher_fetch(x, 0, on_got, &g, NULL), 0);
        assert_int_equal(g.calls, 1);
        assert_non_null(g.secret);
        assert_string_equal(challenge_secret_get(g.secret, NULL), "SPARE-ONE-1234567890");
        assert_string_equal(g.res.thumbprint, "0123456789abcdef0123456789abcdef");
        assert_near(g.res.issued_usec, monotonic_usec() - 30 * MIN_USEC);
        /* In use: its record no longer holds it. */
        assert_int_equal(store_challenge_load(f->store, "corp", ADMIN_URL, now_usec(), &rows, &n), 0);
        assert_false(find_row(rows, n, spare_row)->has_spare);
        store_challenge_array_free(rows, n);

        /* Consumed by NDES (a CertRep): its slot and its record go. */
        challenge_secret_set_consumed(g.secret);
        challenge_secret_free(g.secret);
        assert_int_equal(challenge_fetcher_get_outstanding(x), 3);
        assert_int_equal(store_challenge_load(f->store, "corp", ADMIN_URL, now_usec(), &rows, &n), 0);
        assert_int_equal(n, 3);
        assert_null(find_row(rows, n, spare_row));
        store_challenge_array_free(rows, n);
        challenge_fetcher_free(x);

        /* No password ever reached the store's files in the clear. */
        for (const char *const *name = (const char *const[]) { "certbroker.db", "certbroker.db-wal", NULL }; *name; name++) {
                snprintf(path, sizeof path, "%s/%s", f->dir, *name);
                assert_false(file_contains(path, "SPARE-ONE-1234567890"));
                assert_false(file_contains(path, "SPARE-OTHER-1234567890"));
                assert_false(file_contains(path, "SPARE-FOREIGN-123456"));
        }
}

/* A restored spare left unused keeps its slot until NDES forgets it, counted from its issue. */
static void test_restored_hold_from_issue(void **state) {
        Fixture *f = *state;
        uint64_t issued_wall = now_usec() - 40 * MIN_USEC;
        int64_t row;
        Got g = {};

        add_row(f, "solo", URL1, issued_wall, 60, "SOLO-SPARE-1234567890", &row);
        ChallengeFetcher *x = new_fetcher(f, "solo", URL1, true, NULL);
        uint64_t issued = monotonic_usec() - 40 * MIN_USEC;
        assert_int_equal(challenge_fetcher_get_spares(x), 1);
        assert_near(challenge_fetcher_get_spare_until(x), issued + 60 * MIN_USEC - CHALLENGE_SPARE_MARGIN_USEC);
        assert_int_equal(challenge_fetcher_fetch(x, 0, on_got, &g, NULL), 0);
        assert_non_null(g.secret);
        assert_int_equal(challenge_fetcher_get_next_hold_end(x), 0);    /* in use: no hold yet */
        challenge_secret_free(g.secret);        /* not consumed: held, 21 minutes from now */
        assert_int_equal(challenge_fetcher_get_held(x), 1);
        assert_int_equal(challenge_fetcher_get_outstanding(x), 1);
        assert_near(challenge_fetcher_get_next_hold_end(x), issued + 60 * MIN_USEC + CHALLENGE_HOLD_MARGIN_USEC);
        challenge_fetcher_free(x);

        /* And a restart after that counts it as well. */
        x = new_fetcher(f, "solo", URL1, true, NULL);
        assert_int_equal(challenge_fetcher_get_spares(x), 0);
        assert_int_equal(challenge_fetcher_get_held(x), 1);
        challenge_fetcher_free(x);
}

/* A spare kept, then the broker stops cleanly: the next start has it; a Reload that changes
 * the server's URL= drops it (NDES keeps counting it). */
static void test_spare_over_restart_and_reload(void **state) {
        Fixture *f = *state;
        ChallengeFetcher *x = new_fetcher(f, "corp", URL1, true, NULL), *y;
        StoreChallenge *rows = NULL;
        int64_t row;
        size_t n = 0;
        Got g = {};

        /* A spare as a fetch leaves it: recorded from the request on (done here by hand). */
        add_row(f, "corp", URL1, now_usec() - MIN_USEC, 60, NULL, &row);
        challenge_fetcher_free(x);
        x = new_fetcher(f, "corp", URL1, true, NULL);
        assert_int_equal(challenge_fetcher_get_held(x), 1);
        challenge_fetcher_free(x);
        assert_int_equal(store_challenge_delete(f->store, row), 0);

        add_row(f, "corp", URL1, now_usec() - MIN_USEC, 60, "KEEP-ME-1234567890", &row);
        x = new_fetcher(f, "corp", URL1, true, NULL);
        assert_int_equal(challenge_fetcher_get_spares(x), 1);
        /* Taken and handed back (a CA.Check(), a thumbprint retry): recorded as a spare again. */
        assert_int_equal(challenge_fetcher_fetch(x, 0, on_got, &g, NULL), 0);
        ChallengeResult res = g.res;
        res.secret = TAKE_PTR(g.secret);
        challenge_fetcher_keep_spare(x, &res);
        challenge_fetcher_free(x);      /* a clean stop: the record stays */
        x = new_fetcher(f, "corp", URL1, true, NULL);
        assert_int_equal(challenge_fetcher_get_spares(x), 1);

        /* Reload, same server: the new fetcher has it. */
        y = new_fetcher(f, "corp", URL1, true, x);
        assert_int_equal(challenge_fetcher_get_spares(y), 1);
        assert_int_equal(challenge_fetcher_get_spares(x), 0);
        challenge_fetcher_free(x);
        /* Reload with another URL=: dropped, held, its record no longer holds it. */
        x = new_fetcher(f, "corp", URL2, true, y);
        assert_int_equal(challenge_fetcher_get_spares(x), 0);
        assert_int_equal(challenge_fetcher_get_held(x), 1);
        challenge_fetcher_free(y);
        assert_int_equal(store_challenge_load(f->store, "corp", ADMIN_URL, now_usec(), &rows, &n), 0);
        assert_int_equal(n, 1);
        assert_false(rows[0].has_spare);
        store_challenge_array_free(rows, n);
        challenge_fetcher_free(x);
}

/* A challenge in an enrollment is kept in its record until it is sent: a broker killed before
 * sending it (here: a second fetcher reading the same journal, as a restart does) has it as a
 * spare; once it is sent, the record names the request and keeps no password. */
static void test_unsent_over_restart(void **state) {
        Fixture *f = *state;
        StoreChallenge *rows = NULL;
        ChallengeFetcher *x, *y;
        char path[4200];
        int64_t row;
        size_t n = 0;
        Got g = {}, h = {};

        add_row(f, "corp", URL1, now_usec() - MIN_USEC, 60, "UNSENT-1234567890AB", &row);
        x = new_fetcher(f, "corp", URL1, true, NULL);
        assert_int_equal(challenge_fetcher_fetch(x, 0, on_got, &g, NULL), 0);
        assert_non_null(g.secret);
        /* Handed out: not a spare in the journal any more (as before). */
        assert_int_equal(store_challenge_load(f->store, "corp", ADMIN_URL, now_usec(), &rows, &n), 0);
        assert_int_equal(n, 1);
        assert_false(rows[0].has_spare);
        store_challenge_array_free(rows, n);

        /* In the enrollment, not sent yet: kept again, with its page's thumbprint. */
        challenge_secret_keep_unsent(g.secret, 60, "0123456789abcdef0123456789abcdef");
        y = new_fetcher(f, "corp", URL1, true, NULL);
        assert_int_equal(challenge_fetcher_get_spares(y), 1);
        assert_int_equal(challenge_fetcher_fetch(y, 0, on_got, &h, NULL), 0);
        assert_non_null(h.secret);
        assert_string_equal(challenge_secret_get(h.secret, NULL), "UNSENT-1234567890AB");
        assert_string_equal(h.res.thumbprint, "0123456789abcdef0123456789abcdef");
        challenge_secret_free(h.secret);
        challenge_fetcher_free(y);

        /* Sent in request R's PKIOperation: named, no password kept; a restart only counts it
         * (until R's answer settles it). */
        challenge_secret_keep_unsent(g.secret, 60, "0123456789abcdef0123456789abcdef");
        challenge_secret_set_sent(g.secret, "0123456789abcdef");
        assert_int_equal(store_challenge_load(f->store, "corp", ADMIN_URL, now_usec(), &rows, &n), 0);
        assert_int_equal(n, 1);
        assert_false(rows[0].has_spare);
        assert_string_equal(rows[0].request, "0123456789abcdef");
        store_challenge_array_free(rows, n);
        y = new_fetcher(f, "corp", URL1, true, NULL);
        assert_int_equal(challenge_fetcher_get_spares(y), 0);
        assert_int_equal(challenge_fetcher_get_held(y), 1);
        assert_int_equal(challenge_fetcher_settle_request(y, "0123456789abcdef"), 1);
        assert_int_equal(challenge_fetcher_get_held(y), 0);
        challenge_fetcher_free(y);

        challenge_secret_set_consumed(g.secret);
        challenge_secret_free(g.secret);
        challenge_fetcher_free(x);
        for (const char *const *name = (const char *const[]) { "certbroker.db", "certbroker.db-wal", NULL }; *name; name++) {
                snprintf(path, sizeof path, "%s/%s", f->dir, *name);
                assert_false(file_contains(path, "UNSENT-1234567890AB"));
        }
}

/* Fetches waiting for a slot are answered fairly between owners: one owner's backlog does not
 * make another owner's fetch wait for all of it, and an owner who queues later goes next. */
typedef struct Turn {
        uint32_t owner;
        uint32_t *order;
        size_t *n;
} Turn;

static void on_turn(ChallengeFetcher *fetcher, ChallengeResult *res, void *userdata) {
        Turn *t = userdata;

        assert_int_equal(res->outcome, TRANSPORT_OK);
        t->order[(*t->n)++] = t->owner;
        challenge_secret_free(TAKE_PTR(res->secret));
}

static void hand_spare(ChallengeFetcher *x, const char *text) {
        ChallengeResult res = {
                .outcome = TRANSPORT_OK,
                .validity_minutes = 60,
                .issued_usec = monotonic_usec(),
                .secret = secret(text),
        };

        challenge_fetcher_keep_spare(x, &res);
        assert_null(res.secret);
}

static void test_owners_take_turns(void **state) {
        Fixture *f = *state;
        uint32_t order[8] = {};
        size_t n = 0;
        Turn turns[6];
        const uint32_t owners[] = { 1000, 1000, 1000, 2000, 1000 };
        int64_t row;

        /* Every slot held (MaxOutstandingChallenges=4, four unused challenges recorded): fetches
         * queue, and only spares handed back answer them, one each. */
        for (int i = 0; i < 4; i++)
                add_row(f, "fair", URL1, now_usec() - MIN_USEC, 60, NULL, &row);
        ChallengeFetcher *x = new_fetcher(f, "fair", URL1, true, NULL);
        assert_int_equal(challenge_fetcher_get_outstanding(x), 4);
        assert_false(challenge_fetcher_can_start_now(x));

        for (size_t i = 0; i < 5; i++) {
                turns[i] = (Turn) { .owner = owners[i], .order = order, .n = &n };
                assert_int_equal(challenge_fetcher_fetch(x, owners[i], on_turn, &turns[i], NULL), 0);
        }
        assert_int_equal(n, 0);
        assert_int_equal(challenge_fetcher_get_queued(x), 5);

        hand_spare(x, "TURN-ONE-1234567890");
        hand_spare(x, "TURN-TWO-1234567890");
        hand_spare(x, "TURN-THREE-123456789");
        /* uid 1000 first (oldest), then 2000 before the rest of 1000's backlog. */
        assert_int_equal(n, 3);
        assert_int_equal(order[0], 1000);
        assert_int_equal(order[1], 2000);
        assert_int_equal(order[2], 1000);

        /* A third owner queues now, behind two of 1000's: it goes next but one (the older of
         * the fetches of the same turn first), not after both. */
        turns[5] = (Turn) { .owner = 3000, .order = order, .n = &n };
        assert_int_equal(challenge_fetcher_fetch(x, 3000, on_turn, &turns[5], NULL), 0);
        hand_spare(x, "TURN-FOUR-123456789");
        hand_spare(x, "TURN-FIVE-123456789");
        hand_spare(x, "TURN-SIX-1234567890");
        assert_int_equal(n, 6);
        assert_int_equal(order[3], 1000);
        assert_int_equal(order[4], 3000);
        assert_int_equal(order[5], 1000);
        assert_int_equal(challenge_fetcher_get_queued(x), 0);
        challenge_fetcher_free(x);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_spare_expiry_from_issue, setup, teardown),
                cmocka_unit_test_setup_teardown(test_restart, setup, teardown),
                cmocka_unit_test_setup_teardown(test_restored_hold_from_issue, setup, teardown),
                cmocka_unit_test_setup_teardown(test_spare_over_restart_and_reload, setup, teardown),
                cmocka_unit_test_setup_teardown(test_unsent_over_restart, setup, teardown),
                cmocka_unit_test_setup_teardown(test_owners_take_turns, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
