/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdlib.h>

#include "challenge-limit.h"

struct ChallengeLimit {
        unsigned n_ref;
        unsigned max, used;             /* used counts the holds too */
        unsigned ceiling;               /* learned from a cache-full answer (0: none) */
        uint64_t ceiling_until;         /* then one more, every ceiling_period */
        uint64_t ceiling_period;
        uint64_t *holds;                /* ends of the holds, unsorted */
        size_t n_holds, n_holds_alloc;
        void (*wake)(void *userdata);
        void *wake_userdata;
};

int challenge_limit_new(unsigned max, ChallengeLimit **ret) {
        ChallengeLimit *l;

        if (max == 0 || !ret)
                return -EINVAL;
        l = calloc(1, sizeof *l);
        if (!l)
                return -ENOMEM;
        l->n_ref = 1;
        l->max = max;
        *ret = l;
        return 0;
}

ChallengeLimit *challenge_limit_ref(ChallengeLimit *l) {
        if (l)
                l->n_ref++;
        return l;
}

ChallengeLimit *challenge_limit_unref(ChallengeLimit *l) {
        if (l && --l->n_ref == 0) {
                free(l->holds);
                free(l);
        }
        return NULL;
}

/* The ceiling counts the slots in use besides the holds: challenges left unused at NDES never
 * keep the CA from enrolling longer than they would without a ceiling. */
static unsigned effective_max(const ChallengeLimit *l) {
        size_t m = l->n_holds + l->ceiling;
        return l->ceiling > 0 && m < l->max ? (unsigned) m : l->max;
}

bool challenge_limit_can_take(const ChallengeLimit *l) {
        return l->used < effective_max(l);
}

bool challenge_limit_take(ChallengeLimit *l) {
        if (!challenge_limit_can_take(l))
                return false;
        l->used++;
        return true;
}

void challenge_limit_put(ChallengeLimit *l) {
        if (l->used > 0)
                l->used--;
        if (l->wake)
                l->wake(l->wake_userdata);
}

void challenge_limit_set_wake(ChallengeLimit *l, void (*wake)(void *userdata), void *userdata) {
        l->wake = wake;
        l->wake_userdata = userdata;
}

void challenge_limit_clear_wake(ChallengeLimit *l, void *userdata) {
        if (l && l->wake_userdata == userdata) {
                l->wake = NULL;
                l->wake_userdata = NULL;
        }
}

int challenge_limit_hold(ChallengeLimit *l, uint64_t until) {
        if (l->n_holds == l->n_holds_alloc) {
                size_t n = l->n_holds_alloc ? l->n_holds_alloc * 2 : 8;
                uint64_t *h = realloc(l->holds, n * sizeof *h);
                if (!h) {
                        challenge_limit_put(l);
                        return -ENOMEM;
                }
                l->holds = h;
                l->n_holds_alloc = n;
        }
        l->holds[l->n_holds++] = until;
        if (l->wake)
                l->wake(l->wake_userdata);      /* the owner arms its timer */
        return 0;
}

int challenge_limit_add_hold(ChallengeLimit *l, uint64_t until) {
        l->used++;
        return challenge_limit_hold(l, until);
}

bool challenge_limit_release_hold(ChallengeLimit *l, uint64_t until) {
        for (size_t i = 0; i < l->n_holds; i++)
                if (l->holds[i] == until) {
                        l->holds[i] = l->holds[--l->n_holds];
                        challenge_limit_put(l);         /* wakes queued fetches */
                        return true;
                }
        return false;
}

void challenge_limit_back_off(ChallengeLimit *l, unsigned held, uint64_t now, uint64_t period) {
        unsigned c = held / 2 > 0 ? held / 2 : 1;

        if (l->ceiling == 0 || c < l->ceiling)
                l->ceiling = c;
        l->ceiling_period = period > 0 ? period : 1;
        l->ceiling_until = now + l->ceiling_period;
        if (l->ceiling >= l->max)
                l->ceiling = 0;
}

unsigned challenge_limit_get_ceiling(const ChallengeLimit *l) {
        return l->ceiling > 0 && l->ceiling < l->max ? l->ceiling : 0;
}

unsigned challenge_limit_expire(ChallengeLimit *l, uint64_t now) {
        unsigned n = 0;
        bool raised = false;

        /* One slot more per period without a cache-full answer, back to max. */
        while (l->ceiling > 0 && now >= l->ceiling_until) {
                raised = true;
                if (++l->ceiling >= l->max)
                        l->ceiling = 0;
                else
                        l->ceiling_until += l->ceiling_period;
        }

        for (size_t i = 0; i < l->n_holds;)
                if (l->holds[i] <= now) {
                        l->holds[i] = l->holds[--l->n_holds];
                        if (l->used > 0)
                                l->used--;
                        n++;
                } else
                        i++;
        if ((n > 0 || raised) && l->wake)
                l->wake(l->wake_userdata);
        return n;
}

uint64_t challenge_limit_next_expiry(const ChallengeLimit *l) {
        uint64_t next = l->ceiling > 0 ? l->ceiling_until : 0;

        for (size_t i = 0; i < l->n_holds; i++)
                if (next == 0 || l->holds[i] < next)
                        next = l->holds[i];
        return next;
}

unsigned challenge_limit_get_held(const ChallengeLimit *l) {
        return (unsigned) l->n_holds;
}

unsigned challenge_limit_get_used(const ChallengeLimit *l) {
        return l->used;
}

unsigned challenge_limit_get_max(const ChallengeLimit *l) {
        return l->max;
}

void challenge_limit_set_max(ChallengeLimit *l, unsigned max) {
        if (max > 0)
                l->max = max;
}
