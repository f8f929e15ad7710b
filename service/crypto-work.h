/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * CryptoWork: the enrollment's RSA private-key operations and CMS work (the CSR, the signer
 * certificate, the PKCSReq, the CertRep's verification and decryption) run on a few worker
 * threads ("cb-crypto"), so that the event loop only schedules them and answers the bus.
 *
 * A job is three functions on one userdata: run() on a worker, then done() on the loop
 * (from the eventfd's sd-event source), then free_fn() on the loop. A cancelled job never
 * gets done(); free_fn() still runs, on the loop, once no worker uses the userdata any more.
 * run() must touch nothing but its userdata and objects that no thread modifies meanwhile
 * (OpenSSL keys and certificates shared read-only): no sd-bus, no sd-event, no logging
 * state of the loop.
 */

#include <systemd/sd-event.h>

typedef struct CryptoWork CryptoWork;
typedef struct CryptoJob CryptoJob;

typedef void (*CryptoRunFn)(void *userdata);
typedef void (*CryptoDoneFn)(void *userdata);
typedef void (*CryptoFreeFn)(void *userdata);

#define CRYPTO_WORK_WORKERS_MAX 4U
/* The workers run this much nicer than the loop (the key pool's job workers: 5). */
#define CRYPTO_WORK_NICE_BELOW_LOOP 2

/* Starts the workers (one per CPU the daemon may use, at most CRYPTO_WORK_WORKERS_MAX) and
 * watches their eventfd from event. -errno on failure. */
int crypto_work_new(sd_event *event, CryptoWork **ret);

/* Waits for the jobs running now, frees every job without calling done(). NULL-safe. */
CryptoWork *crypto_work_free(CryptoWork *w);
static inline void crypto_work_freep(CryptoWork **w) {
        *w = crypto_work_free(*w);
}

/* Queues a job; *ret (if given) is a handle for crypto_job_cancel(), valid until done() or
 * free_fn() ran. free_fn may be NULL. -ENOMEM. */
int crypto_work_submit(CryptoWork *w, CryptoRunFn run, CryptoDoneFn done, CryptoFreeFn free_fn, void *userdata,
                       CryptoJob **ret);

/* The same for work that only saves time later (the signer certificate built while the
 * challenge is fetched): a worker takes it only when no other job waits, so that it never
 * delays an enrollment's critical path. */
int crypto_work_submit_background(CryptoWork *w, CryptoRunFn run, CryptoDoneFn done, CryptoFreeFn free_fn,
                                  void *userdata, CryptoJob **ret);

/* On the loop: done() will not be called; free_fn() runs now if no worker has the job, else
 * when the worker is finished with it. NULL-safe. */
void crypto_job_cancel(CryptoJob *j);

/* Jobs queued or running, and the number of workers (tests). */
unsigned crypto_work_pending(CryptoWork *w);
unsigned crypto_work_workers(CryptoWork *w);
