/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdlib.h>

#include "caller-uid-limit.h"

/* A generic cell rate algorithm per uid: tat ("theoretical arrival time") advances by refill
 * per take; a take is allowed while tat stays within (burst - 1) refills of now. */

#define UID_LIMIT_BUCKETS 1024U

typedef struct Entry {
        struct Entry *next;
        uid_t uid;
        uint64_t tat;
        uint64_t suppressed;
} Entry;

struct UidLimit {
        unsigned burst, max_entries, n_entries;
        uint64_t refill;
        bool over_capacity_allows;
        Entry *buckets[UID_LIMIT_BUCKETS];
};

int uid_limit_new(unsigned burst, uint64_t refill_usec, unsigned max_entries, bool over_capacity_allows,
                  UidLimit **ret) {
        UidLimit *l;

        if (burst == 0 || refill_usec == 0 || max_entries == 0 || !ret)
                return -EINVAL;
        l = calloc(1, sizeof *l);
        if (!l)
                return -ENOMEM;
        l->burst = burst;
        l->refill = refill_usec;
        l->max_entries = max_entries;
        l->over_capacity_allows = over_capacity_allows;
        *ret = l;
        return 0;
}

UidLimit *uid_limit_free(UidLimit *l) {
        if (!l)
                return NULL;
        for (unsigned i = 0; i < UID_LIMIT_BUCKETS; i++)
                while (l->buckets[i]) {
                        Entry *e = l->buckets[i];
                        l->buckets[i] = e->next;
                        free(e);
                }
        free(l);
        return NULL;
}

static unsigned bucket_of(uid_t uid) {
        uint32_t h = (uint32_t) uid * 2654435761U;
        return (h >> 16) % UID_LIMIT_BUCKETS;
}

bool uid_limit_take(UidLimit *l, uid_t uid, uint64_t now, uint64_t *ret_suppressed, uint64_t *ret_retry_usec) {
        Entry **head = &l->buckets[bucket_of(uid)], *e;
        uint64_t span = (uint64_t) (l->burst - 1) * l->refill;

        for (e = *head; e; e = e->next)
                if (e->uid == uid)
                        break;
        if (!e) {
                if (l->n_entries >= l->max_entries || !(e = calloc(1, sizeof *e))) {
                        if (ret_suppressed)
                                *ret_suppressed = 0;
                        if (ret_retry_usec)
                                *ret_retry_usec = now + l->refill;
                        return l->over_capacity_allows;
                }
                e->uid = uid;
                e->tat = now;
                e->next = *head;
                *head = e;
                l->n_entries++;
        }
        if (e->tat < now)
                e->tat = now;
        if (e->tat - now > span) {
                e->suppressed++;
                if (ret_retry_usec)
                        *ret_retry_usec = e->tat - span;
                return false;
        }
        e->tat += l->refill;
        if (ret_suppressed)
                *ret_suppressed = e->suppressed;
        e->suppressed = 0;
        return true;
}

void uid_limit_sweep(UidLimit *l, uint64_t now, void (*report)(uid_t uid, uint64_t suppressed, void *userdata),
                     void *userdata) {
        for (unsigned i = 0; i < UID_LIMIT_BUCKETS; i++)
                for (Entry **p = &l->buckets[i]; *p;) {
                        Entry *e = *p;
                        if (e->suppressed > 0) {
                                uint64_t n = e->suppressed;
                                e->suppressed = 0;
                                if (report)
                                        report(e->uid, n, userdata);
                        }
                        if (e->tat <= now) {    /* full again: nothing to remember */
                                *p = e->next;
                                free(e);
                                l->n_entries--;
                        } else
                                p = &e->next;
                }
}

unsigned uid_limit_get_entries(const UidLimit *l) {
        return l->n_entries;
}
