/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * A per-CA counter of outstanding challenges (MaxOutstandingChallenges): a slot is taken when
 * a fetch starts and given back when the fetch fails or the challenge it produced is freed
 * (used or abandoned). NDES keeps only a few unused challenges, so the broker never holds more
 * than this many. Reference counted: a challenge that outlives its fetcher still gives its
 * slot back safely. Loop thread only. Pure code.
 */

#include <stdbool.h>

typedef struct ChallengeLimit ChallengeLimit;

/* max >= 1. */
int challenge_limit_new(unsigned max, ChallengeLimit **ret);
ChallengeLimit *challenge_limit_ref(ChallengeLimit *l);
ChallengeLimit *challenge_limit_unref(ChallengeLimit *l);

/* Takes a slot: true, or false when all are taken. */
bool challenge_limit_take(ChallengeLimit *l);

/* Gives a slot back and runs the wake function (if any), which may take it again. */
void challenge_limit_put(ChallengeLimit *l);

/* Set (or clear, with NULL) the function run whenever a slot is given back. */
void challenge_limit_set_wake(ChallengeLimit *l, void (*wake)(void *userdata), void *userdata);

unsigned challenge_limit_get_used(const ChallengeLimit *l);
unsigned challenge_limit_get_max(const ChallengeLimit *l);
void challenge_limit_set_max(ChallengeLimit *l, unsigned max);
