/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* A request (the Request object, ipc/org.certbroker.Broker1.Request.xml) and the one place that changes it. Everything that writes a
 * request's state, error, key or key availability is here: enroll (insert, durable, start),
 * the named transitions the engine calls at the end of each step, take-key, cancel, remove,
 * key expiry and RetainFinished=. Every change is committed to the journal and announced
 * through the manager's hooks (manager.h), never to the bus directly: the bus layer installs
 * the hooks and keeps what waits on a request (Wait() calls). */

#include <openssl/evp.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <systemd/sd-event.h>

#include "broker-error.h"
#include "cb-policy.h"
#include "request-state.h"
#include "secret-memory.h"
#include "store-db.h"

typedef struct CaState CaState;
typedef struct Manager Manager;
typedef struct Request Request;
struct PendingReply;

struct Request {
        Manager *manager;
        StoreRequest *rec;              /* the durable record: authoritative */
        EVP_PKEY *key;                  /* in memory while the request is in flight */
        uint64_t key_job;               /* key pool job, 0 when none (engine.c) */
        sd_event_source *timer;         /* next attempt or poll */
        sd_event_source *renew_timer;   /* renewal.c: RenewAt and expiry warnings */
        struct PendingReply *waiters;   /* Wait() calls: kept by the bus layer (bus-request.c) */
        struct Attempt *engine;         /* the attempt in progress (engine.c), NULL when none */
        bool unsaved;                   /* the last commit failed (disk full): written again later */
        /* manager.c: its decision against the rules in force (start-up, Reload) waits for NSS;
         * start_when_decided: at start-up it is resumed only once decided. */
        bool decision_due;
        bool start_when_decided;
        struct NssWaiter *renew_nss_waiter;     /* renewal.c: the successor waits for NSS */
        uint64_t renew_retry_usec;              /* renewal.c: backoff of a successor not made */
        /* engine.c, for this run of the broker: CertPolls of a submission in doubt that got no
         * CertRep; once RECOVERY_POLLS_MAX did, the next attempt checks the CA with GetCACaps and
         * submits again (recovery_resubmit). challenge_retried: NDES said it did not know the
         * challenge, and the attempt was made again at once with a fresh one (only once). */
        unsigned recovery_polls;
        bool recovery_resubmit;
        bool challenge_retried;
        /* Renewal=auto: the CA answered this request's RenewalReq with a FAILURE; its next
         * attempts enroll with a challenge (engine.c). */
        bool renewal_refused;
        /* The CA certificate did not match the admin page's thumbprint once: the CA's
         * certificates were fetched again for one more try (engine.c, thumbprint_check()). */
        bool thumbprint_retried;
        /* Local shortages since the last recorded submission (request_attempt_failed_errno()):
         * their own backoff. */
        unsigned local_failures;
        /* The manager's indexes (manager.c; the keys, id, owner and token, never change): the
         * next request in the same bucket by id, and by owner and token; the owner's list, in
         * the order the requests were made. */
        Request *by_id_next, *by_token_next;
        Request *owner_prev, *owner_next;
};

/* Retry backoff: 5 s doubling per attempt to 15 min, plus up to a quarter at random. */
#define REQUEST_RETRY_MIN_USEC   (5ULL * 1000000ULL)
#define REQUEST_RETRY_MAX_USEC   (15ULL * 60ULL * 1000000ULL)
/* Polls of a PENDING request: PollInterval, doubling per poll up to 16 × PollInterval. */
#define REQUEST_POLL_MAX_FACTOR  16ULL

/* The CA the request is made to: its configuration (NULL once a Reload removed it), and the
 * broker's state of it (ca.h; NULL likewise). */
const CbCa *request_ca_config(const Request *req);
CaState *request_ca_state(const Request *req);

/* The delay before the next attempt after `attempts` attempts; rnd is uniform random. */
uint64_t request_retry_delay(unsigned attempts, uint32_t rnd);
/* The delay before the next poll of a pending request. */
uint64_t request_poll_delay(uint64_t poll_interval_usec, unsigned attempts, bool first);
/* When a request (not a renewal) gives up: Created + the CA's PendingDeadline=. */
uint64_t request_deadline(const Request *req);
/* A successor of a renewal chain: retried past PendingDeadline= and expiry. */
bool request_is_renewal(const Request *req);

/* ---- life ---- */

/* A request object for a record loaded or inserted (takes rec), added to the manager. */
int request_add(Manager *m, StoreRequest *rec, Request **ret);
/* Journals of older versions kept a PENDING request's CSR whole, challengePassword included:
 * it is taken out at load. 1 if rewritten, 0 if nothing to do, negative errno. */
int request_scrub_csr(Request *req);
/* Forgets the object (not the journal row): the engine stops, waiters are answered. */
Request *request_free(Request *req);

/* Enroll: what the policy decided (d, allowed) for owner, as a new request; caller_snapshot
 * (caller_snapshot_format()) is whom it was decided for, kept for later decisions. The record and a key from the
 * pool go into the journal in one transaction; done() is called once the insert is on disk
 * (group commit: the loop never waits for the fsync) with the request, or with NULL and a
 * negative errno (the request is then gone again), and the engine starts right after it.
 * Synchronous failures return a negative errno (-ENOSPC, -EDQUOT: the state directory is full)
 * and done() is not called. *ret is the request (not durable yet, not started), to audit. */
typedef void (*RequestEnrolled)(Request *req, int error, void *userdata);
int request_enroll(Manager *m, uid_t owner, const char *caller_snapshot, const CbDecision *d, bool renew,
                   const char *token, RequestEnrolled done, void *userdata, Request **ret);
/* Enroll's option token (caller's idempotency key, kept by successors): the first kept member
 * of owner's chain carrying it (the oldest), or NULL. */
Request *request_find_token(Manager *m, uid_t owner, const char *token);
/* Whether an Enroll decided as d (with renew) asks for other parameters than req was made with:
 * 1 and *ret_field names the first that differs ("ca" and "key" only when given (ca_given,
 * key_given): else the default CA and the CA's default key type were applied, which a Reload
 * may change; "names", "subject", "usage", "label", "renew" (req's current value: a chain
 * stopped with StopRenewal is not renew any more)), 0 when the same, negative errno. */
int request_differs(const Request *req, const CbDecision *d, bool ca_given, bool key_given, bool renew,
                    const char **ret_field);
/* done(req) once everything written so far (req's insert included) is on disk, as for a new
 * request, but nothing is started: the reply to an Enroll repeated with req's token. */
int request_when_durable(Request *req, RequestEnrolled done, void *userdata);
/* Renewal: rec (taken; owner, parameters and predecessor filled in, state QUEUED or FAILED)
 * becomes pred's successor, recorded with the link in one transaction (never two); a QUEUED
 * one gets a key from the pool in the same transaction. Not started. */
int request_add_successor(Request *pred, StoreRequest *rec, Request **ret);

/* The policy decided again for req (start-up, Reload, and its renewal): for the identity it was
 * decided for at Enroll (its caller snapshot; nss_groups: with the owner's groups from NSS now,
 * as for a renewal), against the rules in force, for req's parameters. Limits (MaxActive=,
 * MaxRequests=) are not counted again: they bound new requests. 0 and *ret (release with
 * cb_decision_done(); a denial is a decision too), -EINPROGRESS when the owner's names were asked
 * from NSS (decide again once it answered, nss-cache.h), other negative errno (-EINVAL a
 * malformed snapshot, NSS's failures): nothing decided. */
int request_decide_again(Request *req, bool nss_groups, CbDecision *ret);

/* MaxStoredRequests= for what the broker makes by itself (a renewal's successor): while owner
 * keeps at least that many requests, its finished ones are forgotten (journal, object, key),
 * those made first before the others, preferring those that ended without a certificate, whose
 * certificate was renewed, or whose key is gone, to issued ones still holding a key. Never one
 * in progress, nor the live end of a renewal chain (renewal_keeps()). for_id names the
 * successor's predecessor in the audit records. The number forgotten; when nothing more can be
 * forgotten the owner stays over the bound (a chain is not ended for it), which the journal
 * says. */
unsigned request_make_room(Manager *m, uid_t owner, const char *for_id);

/* Persist the record and announce the change (hooks.request_changed). On a journal error the
 * state is kept in memory and written again later (disk full). */
int request_commit(Request *req);
/* Announce a change that is written with the next commit (hooks.request_changed). */
void request_notify(Request *req);
/* Write again the requests whose last commit failed; the number still unsaved. */
size_t request_recommit_all(Manager *m);

/* ---- the state ---- */

/* The one place a request's state changes (a record is made QUEUED, or FAILED for a successor the
 * policy denied). The attempt in flight stops (unless state is SUBMITTING: one begins), the
 * change is logged ("Request ID: A -> B", at debug level: the audit record says what is news),
 * the fields that go with state are set, the record committed (request_commit(), whose result is
 * returned) and the consequences run:
 *   SUBMITTING  NextAttempt cleared.
 *   PENDING, RETRYING  the next poll or attempt scheduled at next (CLOCK_REALTIME usec, given for
 *               these two only); PENDING audited when entered ("pending").
 *   ISSUED      NextAttempt cleared, the key dropped from memory (the journal keeps it for
 *               TakeKey), the enrollment time observed, RenewAt fixed and the key kept for a
 *               RenewalReq (renewal.c), audited ("issued"), the renewal scheduled and the
 *               predecessor told.
 *   REJECTED, FAILED, CANCELLED  NextAttempt and a submission in doubt cleared (nothing resumes
 *               an ended request), the key erased, audited (cancelled: once committed).
 * Error, ErrorMessage and FailInfo are the caller's to set before. */
int request_set_state(Request *req, RequestState state, uint64_t next);

/* ---- transitions (the engine's steps end in these) ---- */

/* Runs the next step at `when` (CLOCK_REALTIME usec): NextAttempt. */
void request_schedule(Request *req, uint64_t when);
/* One network attempt begins: Attempts + 1, state submitting (a pending request stays pending,
 * a poll does not change the state). */
void request_begin_attempt(Request *req, bool polling);
/* Terminal: failed or rejected with error, fail_info (the property FailInfo) and message. What is
 * in flight stops, the key is erased, a submission in doubt is no longer kept (nothing resumes
 * an ended request), the outcome is committed and audited. */
void request_end(Request *req, RequestState state, BrokerError error, const char *fail_info, const char *message);
/* An attempt failed. Transient errors retry with backoff and jitter until PendingDeadline=
 * (then Timeout; a renewal retries on), others end the request failed. */
void request_attempt_failed(Request *req, BrokerError error, const char *message);
/* A local failure (error: an errno) at step `what`. A shortage that passes by itself
 * (broker_errno_is_local_transient(): disk full, memory, the key queue) retries with backoff
 * counted in local_failures (until request_mark_submitted() succeeds), never ends the request
 * itself (PendingDeadline= applies when the next attempt starts), and keeps its state and
 * stored key (Error QuotaExceeded, the message saying what ran out); any other errno is
 * request_attempt_failed(PROTOCOL_ERROR) with "what: strerror(error)". */
void request_attempt_failed_errno(Request *req, int error, const char *what);
/* The key the request is enrolled with (takes key): kept encrypted in the journal for
 * TakeKey. */
int request_keep_key(Request *req, EVP_PKEY *key);
/* Loads the key of a resumed request from the journal into req->key. */
int request_load_key(Request *req);
/* The transaction id of the SCEP exchange (written with the next commit). */
void request_set_transaction(Request *req, const char *transaction_id);
/* A PKCSReq may reach the CA: recorded durably before it is sent (request_commit() and the
 * journal's fsync), so that a restart asks the CA first. Negative errno if not recorded. */
int request_mark_submitted(Request *req, const char *transaction_id);
/* The CA answered for the transaction: no submission in doubt any more. */
void request_clear_submitted(Request *req);
/* A submission in doubt is sent again: Warning says a duplicate may have been issued. */
void request_warn_duplicate_risk(Request *req, const char *message);
/* Sets the request's Warning (and logs it), without changing its state. */
void request_warn(Request *req, const char *decision, const char *message);
/* PENDING at the CA: the CSR (PEM, taken) is kept for CertPoll; the next poll is scheduled. */
void request_set_pending(Request *req, char *csr_pem, uint64_t poll_interval_usec);
/* ISSUED: certificate and chain (PEM, taken), serial (hex, taken), validity. The key stays in
 * the journal for TakeKey; the renewal is scheduled. */
void request_set_issued(Request *req, char *certificate, char *chain, char *serial, uint64_t not_before,
                        uint64_t not_after);

/* ---- the owner's operations ---- */

/* Cancel(): 0 when cancelled now, 1 when it was cancelled already, -EBUSY when it ended
 * otherwise (only a request in progress can be cancelled), other negative errno. */
int request_cancel(Request *req);
/* TakeKey(): the key (PEM, for the reply), erased from the journal. -EBUSY when not issued,
 * -ENOKEY when taken or erased already, -EIO a store error (logged). */
int request_take_key(Request *req, CbSecret **ret_pem);
/* TakeKeySealed(): the key sealed (libsodium crypto_box_seal()) to recipient, an X25519 public
 * key of STORE_SEAL_RECIPIENT_LEN bytes: the key is erased and the sealed copy kept in its place
 * until request_confirm_key() or the certificate's expiry, so a receiver that died before it
 * stored the key asks again with the same recipient and gets the same copy. 0 sealed now, 1 the
 * copy sealed before; -EBUSY not issued, -EINVAL recipient of the wrong size, -EDOM not a usable
 * public key, -EPERM sealed before to another recipient, -ENOKEY taken or erased already, -EIO
 * a store error (logged). */
int request_take_key_sealed(Request *req, const uint8_t *recipient, size_t recipient_size, uint8_t **ret_box,
                            size_t *ret_size);
/* ConfirmKey(): the receiver stored the key, the sealed copy is erased. 0 erased now, 1 none
 * was kept (confirmed before, taken with TakeKey, or erased at expiry), -EBUSY not issued or
 * the key not taken yet, -EIO a store error (logged). */
int request_confirm_key(Request *req);
/* Remove(): forgets a finished request (journal and object, key erased); req is freed.
 * -EBUSY when it is still in progress. */
int request_remove(Request *req);

/* ---- the broker's housekeeping ---- */

/* A key nobody took is erased once its certificate expired. 1 if erased. */
int request_expire_key(Request *req, uint64_t now);
/* RetainFinished=: req is forgotten (journal row, object, key) and freed. */
int request_forget(Request *req, uint64_t keep_usec);
