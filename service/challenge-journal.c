/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "challenge-journal.h"

static int journal_add(void *userdata, const char *ca, const char *admin_url, const char *url, uint64_t issued,
                       uint64_t expires, int64_t *ret_row) {
        return store_challenge_add(userdata, ca, admin_url, url, issued, expires, ret_row);
}

static void journal_set_times(void *userdata, int64_t row, uint64_t issued, uint64_t expires) {
        (void) store_challenge_set_times(userdata, row, issued, expires);
}

static void journal_set_spare(void *userdata, int64_t row, const ChallengeSecret *spare, unsigned validity_minutes,
                              const char *thumbprint) {
        _cleanup_(secret_freep) CbSecret *copy = NULL;
        const char *data;
        size_t size = 0;

        if (spare) {
                data = challenge_secret_get(spare, &size);
                if (!data || size == 0 || secret_new_copy(data, size, &copy) < 0) {
                        /* Not kept for a restart: the record still counts it. */
                        (void) store_challenge_set_spare(userdata, row, NULL, 0, NULL);
                        return;
                }
        }
        (void) store_challenge_set_spare(userdata, row, copy, validity_minutes, thumbprint);
}

static void journal_set_request(void *userdata, int64_t row, const char *request) {
        (void) store_challenge_set_request(userdata, row, request);
}

static void journal_set_sent(void *userdata, int64_t row, const char *request) {
        (void) store_challenge_set_sent(userdata, row, request);
}

static void journal_forget(void *userdata, int64_t row) {
        (void) store_challenge_delete(userdata, row);
}

static int journal_load(void *userdata, const char *ca, const char *admin_url, const char *url, uint64_t now,
                        ChallengeRecord **ret, size_t *ret_n) {
        StoreChallenge *sc = NULL;
        ChallengeRecord *a;
        size_t n = 0;
        int k;

        k = store_challenge_load(userdata, ca, admin_url, now, &sc, &n);
        if (k < 0)
                return k;
        a = calloc(n > 0 ? n : 1, sizeof *a);
        if (!a) {
                store_challenge_array_free(sc, n);
                return -ENOMEM;
        }
        for (size_t i = 0; i < n; i++) {
                a[i] = (ChallengeRecord) {
                        .row = sc[i].row,
                        .same_url = strcmp(sc[i].url, url ? url : "") == 0,
                        .issued = sc[i].issued,
                        .expires = sc[i].expires,
                        .validity_minutes = sc[i].validity_minutes,
                        .had_spare = sc[i].has_spare,
                };
                memcpy(a[i].thumbprint, sc[i].thumbprint, sizeof a[i].thumbprint);
                snprintf(a[i].request, sizeof a[i].request, "%s", sc[i].request);
                /* Unreadable or not a password: it only counts. */
                if (sc[i].spare && sc[i].spare->size > 0 &&
                    challenge_secret_new((const char *) sc[i].spare->data, sc[i].spare->size, &a[i].spare) < 0)
                        a[i].spare = NULL;
        }
        store_challenge_array_free(sc, n);
        *ret = a;
        *ret_n = n;
        return 0;
}

void challenge_journal_init(ChallengeJournal *j, Store *store) {
        *j = (ChallengeJournal) {
                .userdata = store,
                .add = journal_add,
                .set_times = journal_set_times,
                .set_spare = journal_set_spare,
                .set_request = journal_set_request,
                .set_sent = journal_set_sent,
                .forget = journal_forget,
                .load = journal_load,
        };
}

void challenge_journal_servers(Store *store, const char *ca, const char *const *admin_urls, size_t n) {
        if (store)
                (void) store_challenge_drop_spares_except(store, ca, admin_urls, n);
}
