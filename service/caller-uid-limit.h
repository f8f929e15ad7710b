/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Per-uid token buckets: each uid may do something `burst` times at once and then once per
 * `refill_usec`. What a uid was refused is counted, so the caller can say "N suppressed"
 * when it next gets through or when uid_limit_sweep() runs. Entries of uids whose bucket is
 * full again and who have nothing suppressed are forgotten by the sweep, so memory follows
 * the uids active within one refill of a full bucket. Time is passed in (monotonic
 * microseconds): pure code, unit-tested without a clock.
 *
 * Used for the audit records a tenant can trigger at will (denials, CheckAccess) and for
 * CA.Check()'s challenge, which spends one of the few challenges NDES keeps.
 */

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

typedef struct UidLimit UidLimit;

/* burst >= 1, refill_usec >= 1. max_entries bounds memory: a uid that finds the table full
 * is treated as over_capacity_allows says (true: allowed and not counted; false: refused). */
int uid_limit_new(unsigned burst, uint64_t refill_usec, unsigned max_entries, bool over_capacity_allows,
                  UidLimit **ret);
UidLimit *uid_limit_free(UidLimit *l);

/* Takes a token for uid at now. true: allowed; *ret_suppressed (optional) is how many times
 * this uid was refused since its last allowed take (then reset to 0). false: refused (and
 * counted); *ret_retry_usec (optional) is the monotonic time the next token is there. */
bool uid_limit_take(UidLimit *l, uid_t uid, uint64_t now, uint64_t *ret_suppressed, uint64_t *ret_retry_usec);

/* Reports every uid with suppressed takes (then reset) and forgets idle entries. */
void uid_limit_sweep(UidLimit *l, uint64_t now, void (*report)(uid_t uid, uint64_t suppressed, void *userdata),
                     void *userdata);

unsigned uid_limit_get_entries(const UidLimit *l);
