/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * A per-CA counter of outstanding challenges (MaxOutstandingChallenges): a slot is taken when
 * a fetch starts and given back when the fetch fails or NDES is known to have consumed the
 * challenge it produced. A challenge freed without that proof (its PKIOperation got no CertRep,
 * the request was cancelled, a spare aged) is still unused in NDES's password cache: its slot
 * becomes a hold, given back only when NDES forgets the challenge (it expires). NDES keeps
 * only a few unused challenges for all its clients, so the broker never counts fewer than it
 * leaves there. Reference counted: a challenge that outlives its fetcher still gives its slot
 * back safely, and a new fetcher of the same CA (a Reload) takes over the counter. Loop thread
 * only. Pure code: times are the caller's (CLOCK_BOOTTIME usec).
 */

#include <stdbool.h>
#include <stdint.h>

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

/* Clears the wake function only if it is still the one set with userdata. */
void challenge_limit_clear_wake(ChallengeLimit *l, void *userdata);

/* A taken slot stays taken until `until` (a challenge left unused at NDES). On -ENOMEM the slot
 * is given back at once (as before holds existed). */
int challenge_limit_hold(ChallengeLimit *l, uint64_t until);
/* Takes a slot, beyond max if need be, and holds it until `until`: a challenge NDES still
 * holds for us that this limit did not see fetched (recorded before a restart). */
int challenge_limit_add_hold(ChallengeLimit *l, uint64_t until);
/* Gives back the slots of holds whose time has come and raises the ceiling when its time has
 * come (runs the wake function once if either); returns how many slots. */
unsigned challenge_limit_expire(ChallengeLimit *l, uint64_t now);
/* NDES's password cache is shared by all its clients, and the limit may be set above it. When
 * NDES answered "The password cache is full." to a fetch of this limit while `held` other slots
 * of it were taken, the limit takes at most half of held (at least 1) at once besides its
 * holds from now on, and one more after each `period` (usec, the challenges' validity: NDES has
 * forgotten the ones that filled it) without another such answer, until it is back at max. The
 * holds are not limited by the ceiling, nor do they use it up: they never keep the CA from
 * enrolling longer than without one. A ceiling at or above max is none. */
void challenge_limit_back_off(ChallengeLimit *l, unsigned held, uint64_t now, uint64_t period);
/* A hold ending at `until` is over early (NDES is known to have consumed its challenge): its
 * slot is free again. false when no hold ends then (it expired already). */
bool challenge_limit_release_hold(ChallengeLimit *l, uint64_t until);
/* The ceiling in force (below max), 0 when none. challenge_limit_expire() raises it. */
unsigned challenge_limit_get_ceiling(const ChallengeLimit *l);

/* The earliest hold's end (or the ceiling's next raise), 0 when there is none. */
uint64_t challenge_limit_next_expiry(const ChallengeLimit *l);
unsigned challenge_limit_get_held(const ChallengeLimit *l);

unsigned challenge_limit_get_used(const ChallengeLimit *l);
/* Whether challenge_limit_take() would succeed now (the ceiling in force counted). */
bool challenge_limit_can_take(const ChallengeLimit *l);
unsigned challenge_limit_get_max(const ChallengeLimit *l);
void challenge_limit_set_max(ChallengeLimit *l, unsigned max);
