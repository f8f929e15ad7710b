/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The durable request journal: SQLite in the state directory (STATE_DIR/certbroker.db).
 *
 * - journal_mode=WAL. Durable writes (inserts, keys stored, taken, sealed or erased, deletes,
 *   the renewal key, a CA's renewal answer, history pruning) commit with synchronous=FULL: they
 *   return only after their transaction is committed AND fsync()ed, so "durable before Enroll
 *   replies" holds across kill -9 and power loss; a killed process leaves a WAL that the next
 *   open replays. The connection otherwise runs with synchronous=NORMAL, which the relaxed
 *   writes use: store_request_update() (state transitions) and the challenge journal are
 *   durable across kill -9, and after a power loss at worst an earlier state. With group
 *   commit, inserts and store_key_set() are relaxed too and the caller syncs.
 * - secure_delete=ON: pages freed by erasing a key or deleting a row are zeroed; after a key
 *   is erased the WAL is checkpointed and truncated (best effort).
 * - Each write is one transaction: a state transition is all-or-nothing.
 * - Private keys are stored only as store-crypto.h blobs.
 * - The state directory must be a directory owned by the euid with mode 0700 (created so if
 *   missing); the database file is created 0600 (O_CLOEXEC|O_NOFOLLOW).
 * - schema_version table; a database from a newer schema is refused.
 *
 * Single-threaded: use a Store from the thread that opened it. No logging: failures are
 * -errno (and for store_open() a message).
 */

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "request-state.h"
#include "secret-memory.h"
#include "store-crypto.h"

/* ---- request ids ---- */

/* 16 lowercase hex digits from randombytes_buf() (64 bits): short, unguessable, and valid
 * as a D-Bus object path element as is. */
#define STORE_ID_LEN 16U
void store_id_new(char ret[STORE_ID_LEN + 1]);
bool store_id_is_valid(const char *id);

/* ---- records ---- */

/* One row: every property of a Request object (ipc/org.certbroker.Broker1.Request.xml), plus the CSR the engine built. Strings are
 * never NULL in loaded records ("" = unset); on insert/update NULL is stored as "". A new field
 * gets its column in store-db.c's request_fields table, which reads, writes, checks and frees
 * every field. */
typedef struct StoreRequest {
        char id[STORE_ID_LEN + 1];
        uid_t owner;
        char *ca;
        char *label;
        char *subject;
        char **names;           /* NULL-terminated; no element may be empty or contain '\n' */
        char *key;              /* key type string, "rsa:2048" ... */
        char *usage;            /* "signature" | "encryption" | "both" */
        RequestState state;
        char *error;            /* D-Bus error name, "" when none */
        char *error_message;
        char *fail_info;
        char *transaction_id;
        char *certificate;      /* PEM */
        char *chain;            /* PEM */
        char *serial;           /* hex */
        char *csr;              /* PEM PKCS#10 (not secret); kept so polling after a restart reuses it */
        uint64_t not_before;    /* all times: usec since the epoch, 0 = unset */
        uint64_t not_after;
        uint64_t created;
        uint64_t updated;
        uint64_t next_attempt;
        uint32_t attempts;
        bool key_available;     /* set by the store on load: an encrypted key is stored */
        char *caller;           /* caller.h snapshot of who it was decided for; set on insert only */
        uint64_t submitted;     /* when a PKCSReq of transaction_id may have reached the CA (0: none
                                 * since the last CertRep): a resumed request asks with CertPoll first */
        char *warning;          /* what the request must tell beyond its state, "" when nothing */
        /* Renewal (the Enroll option "renew"). */
        bool renew;             /* kept valid by successors */
        uint64_t renew_at;      /* when the successor is made; 0: not tracked, not issued, stopped */
        char *successor;        /* id of the request that renews this one, "" until it exists */
        char *predecessor;      /* id of the request this one renews, "" for a first enrollment */
        uint32_t renew_warned;  /* expiry warnings given: 1 at 7 days, 2 at 1 day, 4 at expiry */
        char *token;            /* Enroll's idempotency token ("" none); successors keep it; insert only */
        bool key_sealed;        /* set by the store on load: a key sealed to its receiver awaits ConfirmKey */
        char *server;           /* URL= entry of the NDES server that has the transaction (its
                                 * PKCSReq went there: CertPolls go there too), "" none yet */
} StoreRequest;

/* Limits checked on insert/update (-E2BIG): names per request, bytes per text field, bytes
 * of certificate/chain/csr/error_message. */
#define STORE_NAMES_MAX 100U
#define STORE_TEXT_MAX 4096U
#define STORE_PEM_MAX (256U * 1024U)

StoreRequest *store_request_free(StoreRequest *r);     /* accepts NULL, returns NULL */
void store_request_freep(StoreRequest **r);
void store_request_array_free(StoreRequest **a, size_t n);

/* ---- the store ---- */

typedef struct Store Store;

/* Open (creating if needed) STATE_DIR/certbroker.db and load the master key
 * (store_cipher_load(), credentials_dir may be NULL). On failure -errno and, if ret_message
 * is given, a malloc()ed message naming the path and the fix. -EPROTONOSUPPORT: database from
 * a newer certbroker. */
int store_open(const char *state_dir, const char *credentials_dir, Store **ret, char **ret_message);

/* Same, with a given cipher (taken over by the store, even on failure). For tests. */
int store_open_with_cipher(const char *state_dir, StoreCipher *cipher, Store **ret, char **ret_message);

/* Closes the database (checkpointing the WAL) and wipes the master key. NULL-safe. */
Store *store_close(Store *s);
void store_closep(Store **s);

/* Insert a new request, durable on return. If r->id is "" a fresh id is generated (and written
 * to r->id); otherwise r->id must be valid and new (-EEXIST). r->key_available is ignored: pass
 * the private key (may be NULL) to store it encrypted in the same transaction. Also appends
 * (owner, created) to the enrollment history used by store_count_created_since().
 * -EINVAL invalid field, -E2BIG over a limit. */
int store_request_insert(Store *s, StoreRequest *r, const CbSecret *key_pem);

/* Write every mutable column of r (all but id, owner, created) in one transaction.
 * r->key_available is ignored (keys change only through the key functions). -ENOENT if no such id. */
int store_request_update(Store *s, const StoreRequest *r);

/* The successor of predecessor_id, in one durable transaction: r is inserted as a new request
 * (as store_request_insert(), r->predecessor set to predecessor_id) and the predecessor's
 * successor set to r->id, only if it had none: -EEXIST (and nothing written) if it has one. */
int store_request_insert_successor(Store *s, const char *predecessor_id, StoreRequest *r, const CbSecret *key_pem);

/* Checkpoint and truncate the WAL, so that rows just overwritten (secure_delete zeroes the old
 * content in the database pages) leave no old frames behind either. Best effort. */
void store_checkpoint(Store *s);

/* Read one request; -ENOENT. */
int store_request_get(Store *s, const char *id, StoreRequest **ret);

/* All requests (ordered by created, then id) / those of one owner. *ret is a malloc()ed array
 * of *ret_n records; free with store_request_array_free(). */
int store_request_load_all(Store *s, StoreRequest ***ret, size_t *ret_n);
int store_request_list_by_owner(Store *s, uid_t owner, StoreRequest ***ret, size_t *ret_n);

/* Forget a request and its key; -ENOENT. */
int store_request_delete(Store *s, const char *id);

/* Store (or replace) the request's private key, encrypted. -ENOENT no such request. */
int store_key_set(Store *s, const char *id, const CbSecret *key_pem);

/* Decrypt the stored key without erasing it (the engine, to poll after a restart).
 * -ENOENT no such request, -ENOKEY no key stored, -EBADMSG blob does not open (tampered or
 * wrong master key). */
int store_key_get(Store *s, const char *id, CbSecret **ret);

/* TakeKey: decrypt and erase in one transaction; the key is gone from the database when this
 * returns 0 (with group commit: once the caller's journal_sync_request() round is done; the
 * caller also asks for journal_sync_request_checkpoint()). Errors as store_key_get(); on
 * error nothing is erased. */
int store_key_take(Store *s, const char *id, CbSecret **ret);

/* TakeKeySealed: the key, decrypted, is sealed to recipient (an X25519 public key,
 * STORE_SEAL_RECIPIENT_LEN bytes; libsodium's crypto_box_seal()) and, in one transaction, the
 * key is erased and the sealed copy and its recipient stored in its place. From then on the
 * store cannot read the key; the sealed copy opens only with the recipient's secret key.
 * *ret_box (malloc()ed, *ret_size bytes). Errors as store_key_take(), and -EDOM when libsodium
 * refuses the recipient (a low-order point); nothing is changed then. */
#define STORE_SEAL_RECIPIENT_LEN 32U
int store_key_seal(Store *s, const char *id, const uint8_t recipient[static STORE_SEAL_RECIPIENT_LEN],
                   uint8_t **ret_box, size_t *ret_size);

/* The sealed copy stored by store_key_seal() and its recipient (ret_recipient may be NULL).
 * -ENOENT no such request, -ENOKEY none stored. */
int store_key_sealed_get(Store *s, const char *id, uint8_t ret_recipient[static STORE_SEAL_RECIPIENT_LEN],
                         uint8_t **ret_box, size_t *ret_size);

/* Erase the stored key (Cancel, expiry), and a sealed copy of it. 0 also when there was none;
 * -ENOENT no such request. */
int store_key_erase(Store *s, const char *id);

/* Renewal=scep-renewal|auto: the key of a tracked certificate is kept (a copy of its key_blob,
 * encrypted the same way) to sign the RenewalReq of its successor; TakeKey, TakeKeySealed and
 * store_key_erase() (ConfirmKey, expiry) leave it; store_request_delete() erases it with the row.
 * keep: -ENOKEY when no key is stored (or no such request). get: errors as store_key_get(). erase: 1 erased, 0
 * there was none. present: 1 or 0. */
int store_renewal_key_keep(Store *s, const char *id);
int store_renewal_key_get(Store *s, const char *id, CbSecret **ret);
int store_renewal_key_erase(Store *s, const char *id);
int store_renewal_key_present(Store *s, const char *id);

/* Renewal=auto: until when (CLOCK_REALTIME usec) the CA is known to refuse RenewalReq; 0
 * forgets it. get: 0 and 0 when nothing is recorded. */
int store_ca_renewal_set(Store *s, const char *ca, uint64_t refused_until);
int store_ca_renewal_get(Store *s, const char *ca, uint64_t *ret_refused_until);

/* Quotas. Active = not terminal (MaxActive). Created-since counts every request the uid ever
 * inserted with created >= since_usec, including removed ones (MaxRequests), from the history
 * table. */
int store_count_active(Store *s, uid_t owner, unsigned *ret);
int store_count_created_since(Store *s, uid_t owner, uint64_t since_usec, unsigned *ret);

/* Drop enrollment history older than before_usec (call now and then with the longest
 * MaxRequests window). Returns rows dropped or -errno. */
int store_history_prune(Store *s, uint64_t before_usec);

/* Group commit: store_request_insert() and store_key_set() commit without fsync() (still durable against a
 * crash of the daemon, in WAL mode); the caller makes it durable with store-journal-sync.h before it
 * relies on that (certbrokerd: before Enroll replies). So do store_key_take() and
 * store_key_seal() (certbrokerd: before TakeKey and TakeKeySealed reply), and they leave the
 * WAL's truncation to the journal's worker. Key erase and delete fsync and truncate the WAL
 * themselves, unless an erase hook is set (store_set_erase_hook()). Off by default. */
void store_set_group_commit(Store *s, bool on);

/* Under group commit: store_key_erase(), store_renewal_key_erase() and store_request_delete()
 * commit without fsync() as well and call erased(userdata) after each, which has the journal's
 * worker make them durable and truncate the WAL (journal_sync_request_checkpoint()), so a
 * thousand requests forgotten at once do not cost the loop a thousand fsyncs and checkpoints.
 * A caller that answers someone for the erase waits for a journal_sync_request() first. NULL:
 * none (the erase fsyncs). */
typedef void (*store_erased_t)(void *userdata);
void store_set_erase_hook(Store *s, store_erased_t erased, void *userdata);

/* Path of the database file (for messages). */
const char *store_path(const Store *s);

/* ---- challenges NDES holds for this broker (challenge-journal.c) ----
 * Per CA and NDES server (its AdminURL= and URL= entries): every challenge fetched and not
 * known consumed, with when NDES issued it and when NDES forgets it (CLOCK_REALTIME usec), so
 * that a restarted broker counts what NDES still holds for it; and, for an unused spare, the
 * challenge itself, encrypted as keys are (bound to its row). */
typedef struct StoreChallenge {
        int64_t row;
        char *url;                      /* the server's URL= entry when it was fetched */
        uint64_t issued, expires;       /* CLOCK_REALTIME usec */
        unsigned validity_minutes;      /* what its page said (0: nothing) */
        char thumbprint[33];
        bool has_spare;                 /* a spare was stored (spare: it, decrypted; NULL when it
                                         * cannot be decrypted) */
        CbSecret *spare;
        char request[STORE_ID_LEN + 1]; /* the enrollment it was handed to ("": none) */
} StoreChallenge;
/* A new row (no spare); *ret_row its id. */
int store_challenge_add(Store *s, const char *ca, const char *admin_url, const char *url, uint64_t issued,
                        uint64_t expires, int64_t *ret_row);
int store_challenge_set_times(Store *s, int64_t row, uint64_t issued, uint64_t expires);
/* Handed to the enrollment of request `request` (its id). */
int store_challenge_set_request(Store *s, int64_t row, const char *request);
/* Sent in request `request`'s PKIOperation: names the request and erases the challenge itself,
 * in one write. */
int store_challenge_set_sent(Store *s, int64_t row, const char *request);
/* Stores the unused challenge of a row (encrypted), or erases it (spare NULL): then the row
 * only counts. */
int store_challenge_set_spare(Store *s, int64_t row, const CbSecret *spare, unsigned validity_minutes,
                              const char *thumbprint);
int store_challenge_delete(Store *s, int64_t row);
/* The rows of ca at admin_url not expired by now, oldest first (those expired at the store's
 * opening are deleted then). */
int store_challenge_load(Store *s, const char *ca, const char *admin_url, uint64_t now, StoreChallenge **ret,
                         size_t *ret_n);
void store_challenge_array_free(StoreChallenge *a, size_t n);
/* Erases the spares recorded for ca at servers other than admin_urls[0..n) (their rows only
 * count from then on). */
int store_challenge_drop_spares_except(Store *s, const char *ca, const char *const *admin_urls, size_t n);
