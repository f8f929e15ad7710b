/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The engine's paths against an NDES, in process: the real engine, challenge fetcher,
 * request.c, manager.c and journal, with the HTTP client replaced at link time by fake-http.c
 * and the server by fake-ndes.c, which answers with real SCEP messages (the NDES emulator's
 * PKI code). Covered: issued at once (with and without a challenge from mscep_admin), PENDING
 * polled to SUCCESS, a pending request resumed after a restart, a submission in doubt (no
 * answer) recovered with CertPoll after a restart, a successor enrolled with RenewalReq
 * (Renewal=scep-renewal), failover to a CA's second server, the admin page vouching for
 * another CA certificate, PendingDeadline= ending a PENDING request; then one table of server
 * answers (FAILURE with each failInfo, unusable CertReps, HTTP errors, GET refused for its
 * length, transport failures, failed polls, mscep_admin's pages) and what the request
 * becomes. */
#include <errno.h>
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
#include <openssl/bio.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "basic.h"
#include "broker-error.h"
#include "broker-fixture.h"
#include "engine.h"
#include "fake-ndes.h"
#include "manager.h"
#include "request.h"

#define NDES_HOST BROKER_NDES_HOST
#define SETTLE_MS 30000U

/* The [CA] settings after BROKER_CA_BASE (fixture_new_ca() adds PollInterval=1): no challenge,
 * or mscep_admin's. */
#define CA_NO_CHALLENGE "Challenge=none\nPendingDeadline=3600\n"
#define CA_ADMIN_CHALLENGE "Challenge=mscep-admin\nAdminURL=https://" NDES_HOST "/certsrv/mscep_admin/\n" \
        "PendingDeadline=3600\n"

static FakeNdes *ndes;

typedef struct Fixture {
        BrokerDirs dirs;
        Manager *m;
} Fixture;

static int group_setup(void **state) {
        (void) state;
        ndes = fake_ndes_new();
        fake_http_set_responder(fake_ndes_respond, ndes);
        return 0;
}

static int group_teardown(void **state) {
        (void) state;
        fake_http_set_responder(NULL, NULL);
        ndes = fake_ndes_free(ndes);
        return 0;
}

/* As certbrokerd starts: load, then resume what the journal has in flight. */
static void manager_open(Fixture *f) {
        assert_int_equal(manager_new(f->dirs.config_dir, f->dirs.state_dir, &f->m), 0);
        manager_start(f->m);
}

/* A broker whose CA "corp" has this [CA] section; the CA is the fake NDES. */
static Fixture *fixture_new_section(const char *ca_section) {
        Fixture *f = calloc(1, sizeof(*f));

        assert_non_null(f);
        broker_dirs_new(&f->dirs, "test-engine", ca_section);
        manager_open(f);
        return f;
}

/* The same with BROKER_CA_BASE's one server, polled every second, and these settings. */
static Fixture *fixture_new_ca(const char *settings) {
        char *section = NULL;

        assert_true(asprintf(&section, "%sPollInterval=1\n%s", BROKER_CA_BASE, settings) > 0);
        Fixture *f = fixture_new_section(section);
        free(section);
        return f;
}

static Fixture *fixture_new(void) {
        return fixture_new_ca(CA_NO_CHALLENGE);
}

static void fixture_free(Fixture *f) {
        manager_free(f->m);
        broker_dirs_free(&f->dirs);
        free(f);
}

static int setup(void **state) {
        *state = fixture_new();
        return 0;
}

static int teardown(void **state) {
        fixture_free(*state);
        return 0;
}

static void on_enrolled(Request *r, int error, void *userdata) {
        (void) r;
        *(int *) userdata = error;
}

/* Enroll for web.a.example.test as this user (key NULL: the CA's default; renew: Enroll's
 * option); returns the request's id (malloc'd). */
static char *enroll_key(Fixture *f, const char *key, bool renew) {
        static int error;
        Request *r = broker_enroll(f->m, "web.a.example.test", key, renew, renew ? "renewed" : NULL, on_enrolled,
                                   &error);
        char *id = strdup(r->rec->id);

        assert_non_null(id);
        return id;
}

static char *enroll(Fixture *f) {
        return enroll_key(f, NULL, false);
}

/* Runs the loop until request `id` is in state s, or SETTLE_MS. Records whether it passed
 * through PENDING on the way. */
static bool run_until_state(Fixture *f, const char *id, RequestState s, bool *ret_was_pending) {
        for (unsigned i = 0; i < SETTLE_MS / 10; i++) {
                Request *r = manager_find_request(f->m, id);
                assert_non_null(r);
                if (ret_was_pending && r->rec->state == REQUEST_PENDING)
                        *ret_was_pending = true;
                if (r->rec->state == s)
                        return true;
                assert_true(sd_event_run(f->m->event, 10000) >= 0);
        }
        return false;
}

/* Runs the loop until the server has answered n PKIOperations and request `id` is in state s
 * with the error name `error` (NULL: any), or SETTLE_MS. */
static bool run_until_settled(Fixture *f, const char *id, RequestState s, unsigned n, const char *error) {
        for (unsigned i = 0; i < SETTLE_MS / 10; i++) {
                const FakeNdesCounters *c = fake_ndes_counters(ndes);
                Request *r = manager_find_request(f->m, id);
                assert_non_null(r);
                /* The answer's CertRep is read on a crypto worker after the server counted the
                 * message: a state that does not change (PENDING) settles with its error. */
                if (c->pkcsreq + c->certpoll >= n && r->rec->state == s &&
                    (!error || strcmp(r->rec->error, error) == 0))
                        return true;
                assert_true(sd_event_run(f->m->event, 10000) >= 0);
        }
        return false;
}

static Request *request(Fixture *f, const char *id) {
        Request *r = manager_find_request(f->m, id);
        assert_non_null(r);
        return r;
}

/* The issued certificate in the record is the one the fake CA made for the request. */
static void assert_issued_by_fake_ca(const Request *r) {
        BIO *b;
        X509 *x;
        char cn[256] = "";

        assert_int_equal(r->rec->state, REQUEST_ISSUED);
        assert_string_equal(r->rec->error, "");
        assert_non_null(r->rec->certificate);
        b = BIO_new_mem_buf(r->rec->certificate, -1);
        assert_non_null(b);
        x = PEM_read_bio_X509(b, NULL, NULL, NULL);
        assert_non_null(x);
        assert_true(X509_NAME_get_text_by_NID(X509_get_issuer_name(x), NID_commonName, cn, sizeof cn) > 0);
        assert_string_equal(cn, "FAKE-NDES-CA");
        assert_int_equal(X509_check_host(x, "web.a.example.test", 0, 0, NULL), 1);
        assert_non_null(r->rec->chain);
        assert_non_null(strstr(r->rec->chain, "BEGIN CERTIFICATE"));
        assert_non_null(r->rec->serial);
        assert_true(strlen(r->rec->serial) > 0);
        X509_free(x);
        BIO_free(b);
}

static void script(const FakeNdesStep *steps, size_t n) {
        fake_ndes_script(ndes, steps, n);
}

/* ---- the paths ---- */

static void test_issued(void **state) {
        Fixture *f = *state;
        static const FakeNdesStep steps[] = { { FAKE_NDES_SUCCESS } };
        bool was_pending = false;

        script(steps, 1);
        char *id = enroll(f);
        assert_true(run_until_state(f, id, REQUEST_ISSUED, &was_pending));
        assert_false(was_pending);
        assert_issued_by_fake_ca(request(f, id));
        const FakeNdesCounters *c = fake_ndes_counters(ndes);
        assert_int_equal(c->caps, 1);
        assert_int_equal(c->cacert, 1);
        assert_int_equal(c->pkcsreq, 1);
        assert_int_equal(c->certpoll, 0);
        assert_int_equal(c->issued, 1);
        assert_int_equal(c->unverified, 0);
        free(id);
}

/* Challenge=mscep-admin: the real challenge fetcher over the fake client; the challenge the
 * page handed out is the one in the CSR, used once. */
static void test_issued_with_challenge(void **state) {
        static const FakeNdesStep steps[] = { { FAKE_NDES_SUCCESS } };
        Fixture *f = fixture_new_ca(CA_ADMIN_CHALLENGE);

        (void) state;
        script(steps, 1);
        char *id = enroll(f);
        assert_true(run_until_state(f, id, REQUEST_ISSUED, NULL));
        assert_issued_by_fake_ca(request(f, id));
        const FakeNdesCounters *c = fake_ndes_counters(ndes);
        assert_int_equal(c->admin, 1);
        assert_int_equal(c->pkcsreq, 1);
        assert_int_equal(c->challenge_ok, 1);
        assert_int_equal(c->challenge_bad, 0);
        /* The page's thumbprint is the CA certificate's: GetTrustAnchors may offer it. */
        const CaState *ca = manager_find_ca_state(f->m, "corp");
        assert_non_null(ca);
        assert_true(ca->trust_authenticated);
        /* With Challenge=none, no page is asked and the CSR carries no challenge. */
        free(id);
        fixture_free(f);
        f = fixture_new();
        script(steps, 1);
        id = enroll(f);
        assert_true(run_until_state(f, id, REQUEST_ISSUED, NULL));
        assert_int_equal(c->admin, 0);
        assert_int_equal(c->challenge_ok + c->challenge_bad, 0);
        free(id);
        fixture_free(f);
}

static void test_pending_then_issued(void **state) {
        Fixture *f = *state;
        static const FakeNdesStep steps[] = {
                { FAKE_NDES_PENDING }, { FAKE_NDES_PENDING }, { FAKE_NDES_SUCCESS },
        };
        bool was_pending = false;

        script(steps, 3);
        char *id = enroll(f);
        assert_true(run_until_state(f, id, REQUEST_PENDING, NULL));
        /* The CSR is kept for polling; the transaction is the one the CA saw. */
        Request *r = request(f, id);
        assert_non_null(r->rec->csr);
        assert_non_null(strstr(r->rec->csr, "CERTIFICATE REQUEST"));
        assert_true(r->rec->transaction_id && strlen(r->rec->transaction_id) > 0);
        assert_true(run_until_state(f, id, REQUEST_ISSUED, &was_pending));
        assert_issued_by_fake_ca(request(f, id));
        const FakeNdesCounters *c = fake_ndes_counters(ndes);
        assert_int_equal(c->pkcsreq, 1);
        assert_int_equal(c->certpoll, 2);
        assert_int_equal(c->issued, 1);
        free(id);
}

static void test_resume_after_restart(void **state) {
        Fixture *f = *state;
        static const FakeNdesStep pending[] = { { FAKE_NDES_PENDING } };
        static const FakeNdesStep issued[] = { { FAKE_NDES_SUCCESS } };

        script(pending, 1);
        char *id = enroll(f);
        assert_true(run_until_state(f, id, REQUEST_PENDING, NULL));
        char *txid = strdup(request(f, id)->rec->transaction_id);
        assert_non_null(txid);
        assert_int_equal(fake_ndes_counters(ndes)->pkcsreq, 1);

        /* The broker stops with the request pending and starts again from its journal. */
        manager_free(f->m);
        f->m = NULL;
        script(issued, 1);
        manager_open(f);
        Request *r = request(f, id);
        assert_int_equal(r->rec->state, REQUEST_PENDING);
        assert_true(run_until_state(f, id, REQUEST_ISSUED, NULL));
        r = request(f, id);
        assert_issued_by_fake_ca(r);
        /* It polled the same transaction; it did not submit again. */
        assert_string_equal(r->rec->transaction_id, txid);
        const FakeNdesCounters *c = fake_ndes_counters(ndes);
        assert_int_equal(c->pkcsreq, 0);
        assert_int_equal(c->certpoll, 1);
        assert_int_equal(c->issued, 1);
        free(txid);
        free(id);
}

/* A PKCSReq that got no answer may have reached the CA (it did: the fake kept it). After a
 * restart the broker asks with CertPoll for that transaction instead of submitting again. */
static void test_in_doubt_after_restart(void **state) {
        Fixture *f = *state;
        static const FakeNdesStep timeout[] = { { FAKE_NDES_TIMEOUT } };
        static const FakeNdesStep issued[] = { { FAKE_NDES_SUCCESS } };

        script(timeout, 1);
        char *id = enroll(f);
        assert_true(run_until_state(f, id, REQUEST_RETRYING, NULL));
        Request *r = request(f, id);
        assert_string_equal(r->rec->error, BROKER_ERROR_PREFIX "Timeout");
        assert_true(r->rec->submitted != 0);    /* in doubt */
        char *txid = strdup(r->rec->transaction_id);
        assert_non_null(txid);
        assert_int_equal(fake_ndes_counters(ndes)->pkcsreq, 1);

        manager_free(f->m);
        f->m = NULL;
        script(issued, 1);
        manager_open(f);
        assert_true(run_until_state(f, id, REQUEST_ISSUED, NULL));
        r = request(f, id);
        assert_issued_by_fake_ca(r);
        assert_string_equal(r->rec->transaction_id, txid);
        assert_int_equal(r->rec->submitted, 0);
        const FakeNdesCounters *c = fake_ndes_counters(ndes);
        assert_int_equal(c->pkcsreq, 0);
        assert_int_equal(c->certpoll, 1);
        assert_int_equal(c->issued, 1);
        free(txid);
        free(id);
}

/* Renewal=scep-renewal: the successor of an issued certificate is enrolled with a RenewalReq
 * signed by that certificate (and its kept key): no challenge is fetched, none is in the CSR. */
static void test_renewal_req(void **state) {
        static const FakeNdesStep steps[] = { { FAKE_NDES_SUCCESS } };
        Fixture *f = fixture_new_ca(CA_ADMIN_CHALLENGE "Renewal=scep-renewal\n");

        (void) state;
        script(steps, 1);
        char *id = enroll_key(f, "rsa:2048", true);
        assert_true(run_until_state(f, id, REQUEST_ISSUED, NULL));
        const FakeNdesCounters *c = fake_ndes_counters(ndes);
        assert_int_equal(c->admin, 1);
        assert_int_equal(c->pkcsreq, 1);
        assert_int_equal(c->renewalreq, 0);
        char *serial = strdup(request(f, id)->rec->serial);
        assert_non_null(serial);

        /* Its RenewAt, now. */
        script(steps, 1);
        Request *succ = broker_renew_now(request(f, id));
        char *succ_id = strdup(succ->rec->id);
        assert_non_null(succ_id);
        assert_int_equal(engine_request_start(succ), 0);
        assert_true(run_until_state(f, succ_id, REQUEST_ISSUED, NULL));
        assert_issued_by_fake_ca(request(f, succ_id));
        assert_string_not_equal(request(f, succ_id)->rec->serial, serial);
        assert_int_equal(c->renewalreq, 1);
        assert_int_equal(c->pkcsreq, 0);
        assert_int_equal(c->admin, 0);
        assert_int_equal(c->challenge_ok + c->challenge_bad, 0);
        assert_int_equal(c->unverified, 0);
        /* Signed by the certificate being renewed, which this CA issued. */
        assert_true(c->renewal_signer_ours);
        assert_string_equal(c->renewal_signer_serial, serial);
        free(succ_id);
        free(serial);
        free(id);
        fixture_free(f);
}

/* Two servers of one CA, the first down: the enrollment goes to the second at once, and takes
 * its challenge from the second's mscep_admin and sends its PKCSReq there (a challenge is
 * valid only at the server that issued it). The next enrollment passes the first over. */
#define NDES1 "ndes1.example.test"
#define NDES2 "ndes2.example.test"
static void test_failover(void **state) {
        static const FakeNdesStep steps[] = { { FAKE_NDES_SUCCESS } };
        Fixture *f = fixture_new_section("URL=https://" NDES1 "/certsrv/mscep/mscep.dll https://" NDES2
                                         "/certsrv/mscep/mscep.dll\nDefault=yes\nAuthentication=none\n"
                                         "Challenge=mscep-admin\nPollInterval=1\nPendingDeadline=3600\n");
        const FakeNdesCounters *c = fake_ndes_counters(ndes);

        (void) state;
        fake_ndes_refuse_host(ndes, NDES1);
        for (unsigned i = 0; i < 2; i++) {
                script(steps, 1);
                char *id = enroll(f);
                assert_true(run_until_state(f, id, REQUEST_ISSUED, NULL));
                Request *r = request(f, id);
                assert_issued_by_fake_ca(r);
                assert_string_equal(r->rec->server, "https://" NDES2 "/certsrv/mscep/mscep.dll");
                /* The first tried the first server (refused), the second did not. */
                if (i == 0)
                        assert_true(c->refused >= 1);
                else
                        assert_int_equal(c->refused, 0);
                assert_int_equal(c->admin, 1);
                assert_string_equal(c->admin_host, NDES2);
                assert_int_equal(c->pkcsreq, 1);
                assert_string_equal(c->pkioperation_host, NDES2);
                assert_int_equal(c->challenge_ok, 1);
                assert_int_equal(c->challenge_bad, 0);
                free(id);
        }
        fake_ndes_refuse_host(ndes, NULL);
        fixture_free(f);
}

/* "AAAAAAAA BBBBBBBB ..." as the broker writes an MD5 thumbprint: lower case, no spaces. */
static void thumbprint_plain(const char *page, char *buf, size_t size) {
        size_t k = 0;

        for (const char *p = page; *p && k + 1 < size; p++)
                if (*p != ' ')
                        buf[k++] = (char) (*p >= 'A' && *p <= 'F' ? *p - 'A' + 'a' : *p);
        buf[k] = 0;
}

/* The admin page shows the thumbprint of another CA certificate than GetCACert's: the CA's
 * certificates are fetched again once (the challenge kept for that try), then the request
 * fails naming both thumbprints; nothing was sent, and the CA is not authenticated. */
static void test_thumbprint_mismatch(void **state) {
        static const FakeNdesStep steps[] = { { FAKE_NDES_SUCCESS } };
        Fixture *f = fixture_new_ca(CA_ADMIN_CHALLENGE);
        char ours[64], page[64];

        (void) state;
        fake_ndes_admin(ndes, FAKE_NDES_ADMIN_OTHER_THUMBPRINT);
        script(steps, 1);
        char *id = enroll(f);
        assert_true(run_until_state(f, id, REQUEST_FAILED, NULL));
        Request *r = request(f, id);
        print_message("  -> %s: %s\n", r->rec->error, r->rec->error_message);
        assert_string_equal(r->rec->error, BROKER_ERROR_PREFIX "ProtocolError");
        thumbprint_plain(fake_ndes_thumbprint(ndes, false), ours, sizeof ours);
        thumbprint_plain(fake_ndes_thumbprint(ndes, true), page, sizeof page);
        assert_non_null(strstr(r->rec->error_message, ours));
        assert_non_null(strstr(r->rec->error_message, page));
        assert_non_null(strstr(r->rec->error_message, "CAFingerprint="));
        const FakeNdesCounters *c = fake_ndes_counters(ndes);
        assert_int_equal(c->cacert, 2);
        assert_int_equal(c->admin, 1);
        assert_int_equal(c->pkcsreq, 0);
        const CaState *ca = manager_find_ca_state(f->m, "corp");
        assert_non_null(ca);
        assert_false(ca->trust_authenticated);
        fake_ndes_admin(ndes, FAKE_NDES_ADMIN_CHALLENGE);
        free(id);
        fixture_free(f);
}

/* PendingDeadline=: a request the CA keeps PENDING ends failed (Timeout) once the deadline
 * has passed, not before. (Whether a CertPoll fits in before depends on how fast the key and
 * the PKCSReq were made: not asserted.) */
static void test_pending_deadline(void **state) {
        static const FakeNdesStep steps[] = { { FAKE_NDES_PENDING } };
        Fixture *f = fixture_new_ca("Challenge=none\nPendingDeadline=2\n");

        (void) state;
        script(steps, 1);
        char *id = enroll(f);
        assert_true(run_until_state(f, id, REQUEST_PENDING, NULL));
        assert_true(run_until_state(f, id, REQUEST_FAILED, NULL));
        Request *r = request(f, id);
        print_message("  -> %s: %s (%.1f s)\n", r->rec->error, r->rec->error_message,
                      (double) (r->rec->updated - r->rec->created) / 1e6);
        assert_string_equal(r->rec->error, BROKER_ERROR_PREFIX "Timeout");
        /* It ended while PENDING, at the deadline's attempt. */
        assert_non_null(strstr(r->rec->error_message, "did not issue the pending request before PendingDeadline"));
        assert_true(r->rec->updated >= r->rec->created + 2 * UINT64_C(1000000));
        const FakeNdesCounters *c = fake_ndes_counters(ndes);
        assert_int_equal(c->pkcsreq, 1);
        assert_int_equal(c->issued, 0);
        free(id);
        fixture_free(f);
}

/* ---- the table: every server answer and what the request becomes ---- */

typedef struct AnswerCase {
        const char *name;
        FakeNdesStep steps[4];
        size_t n_steps;
        RequestState state;             /* where the request settles */
        const char *error;              /* its Error name without the prefix, "" for none */
        const char *fail_info;          /* NULL: not checked */
        const char *message;            /* a part of error_message; NULL: not checked */
        unsigned pkcsreq, certpoll;     /* PKIOperations the server saw */
        unsigned get;                   /* of them, sent with GET */
        bool challenge;                 /* Challenge=mscep-admin (else none), mscep_admin answering: */
        FakeNdesAdmin admin;
        bool get_only;                  /* GetCACaps without POSTPKIOperation */
} AnswerCase;

#define STEPS(...) .steps = { __VA_ARGS__ }, .n_steps = sizeof((FakeNdesStep[]) { __VA_ARGS__ }) / sizeof(FakeNdesStep)

static const AnswerCase answer_cases[] = {
        { "success", STEPS({ FAKE_NDES_SUCCESS }), REQUEST_ISSUED, "", NULL, NULL, 1, 0 },
        { "pending, success", STEPS({ FAKE_NDES_PENDING }, { FAKE_NDES_SUCCESS }), REQUEST_ISSUED, "", NULL, NULL, 1, 1 },
        { "failure badAlg", STEPS({ FAKE_NDES_FAILURE, 0 }), REQUEST_REJECTED, "CARejected", "badAlg", NDES_HOST, 1, 0 },
        { "failure badMessageCheck", STEPS({ FAKE_NDES_FAILURE, 1 }), REQUEST_REJECTED, "CARejected",
          "badMessageCheck", NDES_HOST, 1, 0 },
        { "failure badRequest", STEPS({ FAKE_NDES_FAILURE, 2 }), REQUEST_REJECTED, "CARejected", "badRequest",
          NDES_HOST, 1, 0 },
        { "failure badTime", STEPS({ FAKE_NDES_FAILURE, 3 }), REQUEST_REJECTED, "CARejected", "badTime", NDES_HOST,
          1, 0 },
        { "failure badCertId", STEPS({ FAKE_NDES_FAILURE, 4 }), REQUEST_REJECTED, "CARejected", "badCertId",
          NDES_HOST, 1, 0 },
        { "pending, failure badRequest", STEPS({ FAKE_NDES_PENDING }, { FAKE_NDES_FAILURE, 2 }), REQUEST_REJECTED,
          "CARejected", "badRequest", NDES_HOST, 1, 1 },
        { "garbled", STEPS({ FAKE_NDES_GARBLED }), REQUEST_FAILED, "ProtocolError", NULL, "cannot be used", 1, 0 },
        { "truncated", STEPS({ FAKE_NDES_TRUNCATED }), REQUEST_FAILED, "ProtocolError", NULL, "cannot be used",
          1, 0 },
        { "wrong signer", STEPS({ FAKE_NDES_WRONG_SIGNER }), REQUEST_FAILED, "ProtocolError", NULL,
          "cannot be used", 1, 0 },
        { "html page", STEPS({ FAKE_NDES_HTML }), REQUEST_RETRYING, "CAUnreachable", NULL, "HTML page", 1, 0 },
        { "http 500", STEPS({ FAKE_NDES_HTTP_500 }), REQUEST_RETRYING, "CAUnreachable", NULL, NULL, 1, 0 },
        { "http 403", STEPS({ FAKE_NDES_HTTP_403 }), REQUEST_FAILED, "ProtocolError", NULL, "HTTP 403", 1, 0 },
        /* Without POSTPKIOperation the message travels in the URL, which IIS's request
         * filtering may refuse for its length (404.15 logged, or 414): the message says which
         * limits to raise. A POST answered 404 is no such case. */
        { "get: success", STEPS({ FAKE_NDES_SUCCESS }), REQUEST_ISSUED, "", NULL, NULL, 1, 0, 1, false,
          FAKE_NDES_ADMIN_CHALLENGE, true },
        { "get: 404 (404.15)", STEPS({ FAKE_NDES_HTTP_404 }), REQUEST_FAILED, "ProtocolError", NULL,
          "-byte GET PKIOperation URL with HTTP 404, which is how IIS request filtering refuses", 1, 0, 1, false,
          FAKE_NDES_ADMIN_CHALLENGE, true },
        { "get: 414", STEPS({ FAKE_NDES_HTTP_414 }), REQUEST_FAILED, "ProtocolError", NULL,
          "HTTP 414 URI Too Long: the CA does not offer POSTPKIOperation", 1, 0, 1, false,
          FAKE_NDES_ADMIN_CHALLENGE, true },
        { "post: 404", STEPS({ FAKE_NDES_HTTP_404 }), REQUEST_FAILED, "ProtocolError", NULL,
          "the server answered the POST PKIOperation with HTTP 404", 1, 0, 0 },
        /* Windows 2012: a POST gets an empty 200; the same message again with GET. */
        { "empty 200, success by GET", STEPS({ FAKE_NDES_EMPTY }, { FAKE_NDES_SUCCESS }), REQUEST_ISSUED, "", NULL,
          NULL, 2, 0, 1 },
        { "empty 200, garbled by GET", STEPS({ FAKE_NDES_EMPTY }, { FAKE_NDES_GARBLED }), REQUEST_FAILED,
          "ProtocolError", NULL, "cannot be used", 2, 0, 1 },
        { "timeout", STEPS({ FAKE_NDES_TIMEOUT }), REQUEST_RETRYING, "Timeout", NULL, "time-out", 1, 0 },
        { "unreachable", STEPS({ FAKE_NDES_UNREACHABLE }), REQUEST_RETRYING, "CAUnreachable", NULL,
          "connection refused", 1, 0 },
        /* A pending request stays pending when a poll gets no usable answer: the CA has it. */
        { "pending, garbled poll", STEPS({ FAKE_NDES_PENDING }, { FAKE_NDES_GARBLED }), REQUEST_PENDING,
          "CAUnreachable", NULL, "cannot be used", 1, 1 },
        { "pending, http 500 poll", STEPS({ FAKE_NDES_PENDING }, { FAKE_NDES_HTTP_500 }), REQUEST_PENDING,
          "CAUnreachable", NULL, "HTTP 500", 1, 1 },
        { "pending, timeout poll", STEPS({ FAKE_NDES_PENDING }, { FAKE_NDES_TIMEOUT }), REQUEST_PENDING, "Timeout",
          NULL, "time-out", 1, 1 },
        /* mscep_admin's answers (Challenge=mscep-admin): no PKIOperation without a challenge. */
        { "admin: challenge, success", STEPS({ FAKE_NDES_SUCCESS }), REQUEST_ISSUED, "", NULL, NULL, 1, 0, 0,
          true, FAKE_NDES_ADMIN_CHALLENGE },
        { "admin: challenge, failure badRequest", STEPS({ FAKE_NDES_FAILURE, 2 }), REQUEST_REJECTED, "CARejected",
          "badRequest", NDES_HOST, 1, 0, 0, true, FAKE_NDES_ADMIN_CHALLENGE },
        { "admin: cache full", STEPS({ FAKE_NDES_SUCCESS }), REQUEST_RETRYING, "ChallengeUnavailable", NULL,
          "password cache is full", 0, 0, 0, true, FAKE_NDES_ADMIN_CACHE_FULL },
        /* A configuration error at the CA: not retried, the message names the account to fix. */
        { "admin: permission", STEPS({ FAKE_NDES_SUCCESS }), REQUEST_FAILED, "ChallengeUnavailable", NULL,
          "svc-scep@EXAMPLE.TEST", 0, 0, 0, true, FAKE_NDES_ADMIN_PERMISSION },
        { "admin: http 500", STEPS({ FAKE_NDES_SUCCESS }), REQUEST_RETRYING, "CAUnreachable", NULL, "HTTP 500", 0,
          0, 0, true, FAKE_NDES_ADMIN_HTTP_500 },
};

static void test_answers(void **state) {
        (void) state;
        for (size_t i = 0; i < sizeof answer_cases / sizeof answer_cases[0]; i++) {
                const AnswerCase *t = &answer_cases[i];
                Fixture *f = fixture_new_ca(t->challenge ? CA_ADMIN_CHALLENGE : CA_NO_CHALLENGE);

                fake_ndes_admin(ndes, t->admin);
                fake_ndes_offer_post(ndes, !t->get_only);
                uint64_t start = monotonic_usec();
                print_message("answer: %s\n", t->name);
                script(t->steps, t->n_steps);
                char *id = enroll(f);
                char expected[256];
                snprintf(expected, sizeof expected, "%s%s", t->error[0] ? BROKER_ERROR_PREFIX : "", t->error);
                if (!run_until_settled(f, id, t->state, t->pkcsreq + t->certpoll, expected))
                        fail_msg("%s: the request is %s, not %s (%s: %s)", t->name,
                                 request_state_to_string(request(f, id)->rec->state),
                                 request_state_to_string(t->state), request(f, id)->rec->error,
                                 request(f, id)->rec->error_message);
                Request *r = request(f, id);
                print_message("  -> %s %s %s: %s (%.1f s)\n", request_state_to_string(r->rec->state),
                              r->rec->error, r->rec->fail_info ?: "", r->rec->error_message ?: "",
                              (double) (monotonic_usec() - start) / 1e6);
                if (t->state == REQUEST_ISSUED)
                        assert_issued_by_fake_ca(r);
                assert_string_equal(r->rec->error, expected);
                if (t->fail_info)
                        assert_string_equal(r->rec->fail_info, t->fail_info);
                if (t->message)
                        assert_non_null(strstr(r->rec->error_message, t->message));
                /* Tried again, or polled again, later. */
                if (t->state == REQUEST_RETRYING || t->state == REQUEST_PENDING)
                        assert_true(r->rec->next_attempt > now_usec());
                const FakeNdesCounters *c = fake_ndes_counters(ndes);
                assert_int_equal(c->pkcsreq, t->pkcsreq);
                assert_int_equal(c->certpoll, t->certpoll);
                assert_int_equal(c->get, t->get);
                assert_int_equal(c->unverified, 0);
                if (t->challenge)
                        assert_true(c->admin >= 1);
                else
                        assert_int_equal(c->admin, 0);
                assert_int_equal(c->challenge_ok, t->challenge && t->pkcsreq > 0 ? t->pkcsreq : 0);
                assert_int_equal(c->challenge_bad, 0);
                free(id);
                fixture_free(f);
        }
        fake_ndes_admin(ndes, FAKE_NDES_ADMIN_CHALLENGE);
        fake_ndes_offer_post(ndes, true);
}

/* An argument runs only the tests whose names match it (a cmocka filter: "test_failover"). */
int main(int argc, char **argv) {
        if (argc > 1)
                cmocka_set_test_filter(argv[1]);
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_issued, setup, teardown),
                cmocka_unit_test(test_issued_with_challenge),
                cmocka_unit_test_setup_teardown(test_pending_then_issued, setup, teardown),
                cmocka_unit_test_setup_teardown(test_resume_after_restart, setup, teardown),
                cmocka_unit_test_setup_teardown(test_in_doubt_after_restart, setup, teardown),
                cmocka_unit_test(test_renewal_req),
                cmocka_unit_test(test_failover),
                cmocka_unit_test(test_thumbprint_mismatch),
                cmocka_unit_test(test_pending_deadline),
                cmocka_unit_test(test_answers),
        };
        return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
