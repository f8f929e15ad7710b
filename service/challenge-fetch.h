/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Fetching one-time challenges from NDES's mscep_admin page, per CA:
 *   guard the AdminURL host → service ticket for HTTP/<host> (krb5-creds, its real KDC error
 *   when it fails) → GET with Negotiate (http-client) → parse (challenge-page).
 * At most MaxOutstandingChallenges fetched-and-not-yet-freed challenges per CA; further
 * fetches queue (FIFO) until a challenge is freed or a fetch fails. Loop thread only.
 * Never logs; the challenge never appears in any message.
 */

#include <stdbool.h>
#include <stdint.h>

#include <systemd/sd-event.h>

#include "challenge-page.h"
#include "http-client.h"
#include "http-outcome.h"
#include "krb5-creds.h"

typedef struct ChallengeFetcher ChallengeFetcher;
typedef struct ChallengeFetch ChallengeFetch;

/* Where a fetcher records the challenges NDES holds for it, so that a broker that restarts
 * (even after kill -9) counts them instead of starting from nothing, and uses its spares
 * (challenge-journal.h records them in the broker's store). Times are CLOCK_REALTIME usec: a
 * record outlives the process. Best effort: the count in memory is what the running broker
 * goes by; a failed write only loses what a restart would know. */
typedef struct ChallengeRecord {
        int64_t row;
        bool same_url;                  /* recorded for the URL= entry the fetcher has now */
        uint64_t issued, expires;       /* NDES issued it; NDES forgets it (margin included) */
        unsigned validity_minutes;
        char thumbprint[33];
        bool had_spare;                 /* it was recorded as a spare */
        char request[33];               /* the enrollment it was handed to ("": none) */
        ChallengeSecret *spare;         /* that spare, readable (NULL: none, or not decryptable) */
} ChallengeRecord;

typedef struct ChallengeJournal {
        void *userdata;
        /* A challenge being fetched or fetched: *ret_row names it from then on. */
        int (*add)(void *userdata, const char *ca, const char *admin_url, const char *url, uint64_t issued,
                   uint64_t expires, int64_t *ret_row);
        void (*set_times)(void *userdata, int64_t row, uint64_t issued, uint64_t expires);
        /* Keeps the unused challenge itself (encrypted), or erases it (spare NULL). */
        void (*set_spare)(void *userdata, int64_t row, const ChallengeSecret *spare, unsigned validity_minutes,
                          const char *thumbprint);
        /* Handed to the enrollment of request `request` (its id), or out of it (""). */
        void (*set_request)(void *userdata, int64_t row, const char *request);
        /* In a PKIOperation of request `request` about to be sent: tied to that request, the
         * challenge itself no longer kept (one write: the two must not be apart). */
        void (*set_sent)(void *userdata, int64_t row, const char *request);
        /* NDES consumed it, or never issued it. */
        void (*forget)(void *userdata, int64_t row);
        /* What is recorded for ca at admin_url and not expired by now (those expired are
         * dropped). Free with challenge_records_free(). */
        int (*load)(void *userdata, const char *ca, const char *admin_url, const char *url, uint64_t now,
                    ChallengeRecord **ret, size_t *ret_n);
} ChallengeJournal;

void challenge_records_free(ChallengeRecord *a, size_t n);

typedef struct ChallengeFetcherSettings {
        const char *ca_name;            /* for messages: "corp" */
        const char *admin_url;          /* AdminURL= */
        const char *permitted_suffix;   /* PermittedSuffix= */
        const char *trust_anchors;      /* TrustAnchors=, NULL: system store */
        uint64_t timeout_usec;          /* Timeout= */
        unsigned max_outstanding;       /* MaxOutstandingChallenges=, >= 1 */
        bool kerberos;                  /* Authentication=kerberos */
        sd_event *event;                /* for the holds' timer; NULL: the thread's default loop */
        /* The CA's fetcher being replaced (a Reload), or NULL: the new one takes over its count of
         * outstanding challenges (those handed out and those held at NDES), and its spares if
         * server_url is the same (else they are dropped: NDES keeps counting them). */
        struct ChallengeFetcher *previous;
        const char *server_url;         /* the URL= entry the challenges are for ("" if none) */
        /* Optional, copied. Without previous, the new fetcher starts from what it recorded:
         * every challenge NDES still holds for it counts, and spares recorded for the same
         * server_url that NDES still keeps are used again. */
        const ChallengeJournal *journal;
} ChallengeFetcherSettings;

typedef struct ChallengeResult {
        TransportOutcome outcome;
        const char *message;            /* NULL on success; else what went wrong and the fix */
        long http_code;                 /* 0 if no HTTP answer */
        const char *encoding;           /* of the page, when one was parsed */
        uint64_t elapsed_usec;          /* HTTP exchange time */
        /* Authentication=kerberos and the page answered 200 on a fresh connection without taking
         * part in Negotiate (no WWW-Authenticate: Negotiate): mscep_admin lets anyone in (IIS:
         * Anonymous Authentication left on). The challenge is still delivered. */
        bool anonymous;
        /* What the page said besides the challenge (zero when no page was parsed, and for a
         * spare): the CA thumbprint, MD5 of the CA certificate, as 32 lowercase hex digits ("" if
         * the page shows none; GetCACert's CA certificate can be checked against it, trust on
         * first use); single-password mode (the password can be used multiple times and does not
         * expire); the minutes the page says the password is valid (0: it does not say). */
        char thumbprint[33];
        bool multi_use;
        unsigned validity_minutes;
        /* TRANSPORT_OK: when NDES issued the challenge (CLOCK_MONOTONIC usec: its answer
         * arrived; for a spare, the original fetch's). Its expiry, and its slot's hold, count
         * from then, however often it is handed back (challenge_fetcher_keep_spare()). */
        uint64_t issued_usec;
        /* TRANSPORT_OK: the challenge. The handler takes ownership: keep it until it is put in the
         * CSR, then challenge_secret_free() it, which gives the CA's outstanding slot back if NDES
         * consumed it (challenge_secret_set_consumed(): a CertRep answered), else holds the slot
         * until NDES forgets the challenge (validity_minutes, else 60, plus a margin). */
        ChallengeSecret *secret;
} ChallengeResult;

typedef void (*challenge_handler_t)(ChallengeFetcher *f, ChallengeResult *result, void *userdata);

/* creds may be NULL only when settings->kerberos is false. Settings are copied. */
int challenge_fetcher_new(HttpClient *http, Krb5Creds *creds, const ChallengeFetcherSettings *settings,
                          ChallengeFetcher **ret);

/* Cancels queued and running fetches (no handlers). Challenges already handed out stay valid.
 * Accepts NULL, returns NULL. */
ChallengeFetcher *challenge_fetcher_free(ChallengeFetcher *f);

/* Queues a fetch for owner (a uid); the handler is called exactly once (unless cancelled).
 * *ret (optional) can cancel it until the handler runs. 0 or negative errno. Queued fetches
 * are started (and answered from spares) fairly between owners: one owner's hundred queued
 * fetches do not make another owner's single fetch wait for all of them. */
int challenge_fetcher_fetch(ChallengeFetcher *f, uint32_t owner, challenge_handler_t handler, void *userdata,
                            ChallengeFetch **ret);

/* The same, but never answered from a spare (below): CA.Check() must see the page answer. */
int challenge_fetcher_fetch_fresh(ChallengeFetcher *f, uint32_t owner, challenge_handler_t handler, void *userdata,
                                  ChallengeFetch **ret);

/* How long NDES keeps an unused challenge: the minutes its page gives, else its default
 * (PasswordValidity, 60 minutes). A challenge freed without proof that NDES consumed it
 * (challenge_secret_set_consumed()) keeps its slot that long, plus a margin for the clocks. */
#define CHALLENGE_VALIDITY_DEFAULT_MINUTES 60U
#define CHALLENGE_HOLD_MARGIN_USEC (60ULL * 1000000ULL)
uint64_t challenge_validity_usec(unsigned validity_minutes);

/* A challenge fetched for something that did not need it (CA.Check()) serves the next
 * enrollment instead of being thrown away: NDES counts it as outstanding until it is used or
 * expires. The oldest queued (non-fresh) fetch gets it now; else it is kept, still holding its
 * slot, and the next challenge_fetcher_fetch() is answered with it at once (its handler runs
 * before challenge_fetcher_fetch() returns). A spare is used only while NDES still has it, with
 * CHALLENGE_SPARE_MARGIN_USEC left for the enrollment (a sixth of the validity if that is less:
 * NDES's PasswordValidity may be a few minutes); then it is dropped, and its slot held
 * until NDES forgets it. Takes res->secret (NULL afterwards) with what its page said (thumbprint,
 * single-password mode, validity), which the fetch it serves gets too. */
#define CHALLENGE_SPARE_MARGIN_USEC (10ULL * 60ULL * 1000000ULL)
uint64_t challenge_spare_margin_usec(uint64_t validity_usec);
void challenge_fetcher_keep_spare(ChallengeFetcher *f, ChallengeResult *res);
unsigned challenge_fetcher_get_spares(const ChallengeFetcher *f);
/* Until when (CLOCK_MONOTONIC usec) the oldest spare is used; 0 when there is none. */
uint64_t challenge_fetcher_get_spare_until(const ChallengeFetcher *f);
/* The end of the earliest hold (CLOCK_MONOTONIC usec), 0 when none. */
uint64_t challenge_fetcher_get_next_hold_end(const ChallengeFetcher *f);
/* Its server left the configuration: its spares are not kept for a restart (their slots are
 * held until NDES forgets them). */
void challenge_fetcher_drop_spares(ChallengeFetcher *f);

/* NDES answered a PKIOperation with HTTP 500: it cannot decrypt this CA's requests and never
 * reads their challenges, which stay unused in its cache (shared by the fleet). Until a
 * challenge lifetime passes without another such answer, the CA fetches one at a time besides
 * those NDES holds (the ceiling of challenge_limit_back_off()); the enrollments pass the one
 * challenge on. true when the ceiling was lowered now. */
bool challenge_fetcher_limit_unread(ChallengeFetcher *f);

/* Whether the next enrollment should fetch no challenge and ask NDES first with a PKCSReq that
 * carries none (a probe, which costs no slot of NDES's cache): NDES answered a PKIOperation of
 * this server with HTTP 500 and has not read one of its PKCSReqs since (a Reload keeps that
 * for the same server, a restart forgets it), and no spare is at hand (the
 * challenge held at the 500 is still unused at NDES: a fresh one would stay unused as well).
 * NDES answers the probe with 500 again while it still cannot read, and with a CertRep
 * (FAILURE, no challenge) once it can; then challenges are fetched again. Stale spares are
 * dropped first. */
bool challenge_fetcher_wants_probe(ChallengeFetcher *f);
/* NDES answered a PKCSReq (or RenewalReq) of this server with a CertRep: it reads this CA's
 * requests. true when it could not before. */
bool challenge_fetcher_set_read(ChallengeFetcher *f);

/* The challenge s (handed out by a fetcher) is in an enrollment and not sent yet: its record
 * keeps it (encrypted, as a spare), so that a broker killed before sending it finds it again as
 * a spare after the restart instead of leaving it unused in NDES's cache, shared by every
 * broker of the service account, for its whole validity. */
void challenge_secret_keep_unsent(ChallengeSecret *s, unsigned validity_minutes, const char *thumbprint);
/* s is about to leave in request `request`'s PKIOperation (call it before the message can be
 * sent): the record no longer keeps the challenge and names the request, so that after a
 * restart the request's answer can free its slot (challenge_fetcher_settle_request()). */
void challenge_secret_set_sent(ChallengeSecret *s, const char *request);
/* Request `request` (resumed after a restart) got a CertRep: NDES consumed the challenge its
 * enrollment carried before the restart, whose record counted since. Its slot is free again
 * and its record erased. Returns how many were settled. */
unsigned challenge_fetcher_settle_request(ChallengeFetcher *f, const char *request);

/* Cancels a fetch whose handler has not run. Accepts NULL, returns NULL. */
ChallengeFetch *challenge_fetch_cancel(ChallengeFetch *x);

/* Slots taken (running fetches + challenges not yet freed), and fetches waiting for a slot. */
unsigned challenge_fetcher_get_outstanding(const ChallengeFetcher *f);
unsigned challenge_fetcher_get_queued(const ChallengeFetcher *f);
/* Whether a fetch asked for now would start at once: a slot is free under the limit (and the
 * ceiling learned from NDES) and no fetch is waiting for one. Otherwise it would wait, possibly
 * for as long as NDES keeps an unused challenge. */
bool challenge_fetcher_can_start_now(const ChallengeFetcher *f);
/* The ceiling learned from NDES (challenge_limit_get_ceiling()), 0 when none, and why. */
unsigned challenge_fetcher_get_ceiling(const ChallengeFetcher *f);
const char *challenge_fetcher_get_ceiling_why(const ChallengeFetcher *f);
/* MaxOutstandingChallenges= in force. */
unsigned challenge_fetcher_get_max(const ChallengeFetcher *f);
/* Of the slots taken: those of challenges NDES holds unused, that is all but the fetches
 * under way: left unused until they expire (also those a restart found recorded), spares, and
 * those handed to enrollments whose PKIOperation has not been answered yet. */
unsigned challenge_fetcher_get_held(const ChallengeFetcher *f);

/* What to tell about an anonymous mscep_admin (ChallengeResult.anonymous), in the seed's words
 * (malloc'd). */
char *challenge_anonymous_hint(const char *host, const char *url);

/* Classifies the mscep_admin answer (exposed for tests): outcome + message (malloc'd), *ret_secret
 * on success, *ret_info (optional) what the page said when a 200 page was parsed (else zeroed).
 * A 200 page that is neither a challenge nor one of NDES's error pages, in English or recognised
 * by its structure, is TRANSPORT_CHALLENGE_UNAVAILABLE (retried), its message quoting the page's
 * visible text (escaped, cut). principal is for the permission hints. */
TransportOutcome challenge_classify_page(const uint8_t *body, size_t size, long http_code, const char *host,
                                         const char *url, const char *principal, ChallengeSecret **ret_secret,
                                         const char **ret_encoding, char **ret_message,
                                         ChallengePageInfo *ret_info);
