/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdlib.h>

#include "challenge-limit.h"

struct ChallengeLimit {
        unsigned n_ref;
        unsigned max, used;
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
        if (l && --l->n_ref == 0)
                free(l);
        return NULL;
}

bool challenge_limit_take(ChallengeLimit *l) {
        if (l->used >= l->max)
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
