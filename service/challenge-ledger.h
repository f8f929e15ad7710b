/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The challenges NDES may still hold for us, across restarts. NDES keeps an unused challenge
 * in its small password cache until it expires, whatever happens to the broker: a broker
 * killed after fetching one, and fetching again after every restart (a crash loop), would fill
 * the cache for every host using the account. So every challenge fetched is written here (the
 * CA's name and when NDES forgets it, never the challenge itself) and taken out when a CertRep
 * proves NDES consumed it; at start the CA's outstanding count begins with what is left.
 *
 * One small text file in the state directory, "CA EXPIRY ID" per line (EXPIRY in CLOCK_REALTIME
 * microseconds), rewritten whole (temporary file and rename, 0600) on every change; expired
 * lines are dropped on every write. A file that cannot be read is started afresh (logged by the
 * caller), never a reason to refuse to start. Loop thread only.
 */

#include <stddef.h>
#include <stdint.h>

typedef struct ChallengeLedger ChallengeLedger;

/* Loads path (missing: empty), dropping what expired before now_real. -ENOMEM, or another
 * negative errno with *ret still set to an empty ledger using path (the file was unreadable). */
int challenge_ledger_open(const char *path, uint64_t now_real, ChallengeLedger **ret);
ChallengeLedger *challenge_ledger_free(ChallengeLedger *l);

/* A challenge of CA ca that NDES keeps until expires_real: its id (never 0), written at once;
 * 0 when it could not be recorded (out of memory; a failed write is retried with the next). */
uint64_t challenge_ledger_add(ChallengeLedger *l, const char *ca, uint64_t now_real, uint64_t expires_real);
/* NDES consumed it: forgotten (0 and unknown ids are ignored). */
void challenge_ledger_remove(ChallengeLedger *l, uint64_t id, uint64_t now_real);

/* The ends of ca's unexpired entries, up to max of them, into ret (may be NULL to count). */
size_t challenge_ledger_pending(const ChallengeLedger *l, const char *ca, uint64_t now_real, uint64_t *ret,
                                size_t max);

/* Result of the last write: 0 or negative errno. */
int challenge_ledger_last_error(const ChallengeLedger *l);
