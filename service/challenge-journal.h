/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The challenge fetchers' journal (challenge-fetch.h) in the broker's store (store-db.h): per
 * CA and NDES server, the challenges NDES may still hold for this broker, and unused spares,
 * encrypted with the store's key as private keys are. The store must outlive every fetcher and
 * every challenge handed out. Loop thread only.
 */

#include "challenge-fetch.h"
#include "store-db.h"

void challenge_journal_init(ChallengeJournal *j, Store *store);

/* The CA's servers are now these (its AdminURL= entries): spares recorded for others are not
 * used again, and no longer kept (their records still count until they expire). */
void challenge_journal_servers(Store *store, const char *ca, const char *const *admin_urls, size_t n);
