/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * KeyPool: keys generated off the event loop, on worker threads owned by the pool (no fork):
 * two sets of workers, each one per CPU the daemon may use (at most KEY_POOL_WORKERS_MAX).
 *
 *   - jobs: key_pool_generate_async_for() asks for one key of a type for a request of an
 *     owner (a uid). Someone waits for these: the job workers ("cb-keygen") run at normal
 *     priority, a little below the loop (nice KEY_POOL_WORKER_NICE), fairly between owners
 *     (start-time fair queueing: owners take turns, so one tenant's hundred queued jobs
 *     delay another's by at most one key per worker), in arrival order within an owner;
 *   - refill: the refill workers ("cb-keyfill") top up the pool (config KeyPool=
 *     "rsa:2048=4 ec:p256=8") one key at a time each, at SCHED_IDLE: they use only CPU time
 *     nothing else wants (the loop, the job workers, the rest of the machine), so a refill
 *     never delays an enrollment, and refill and on-demand keys run side by side. A thread
 *     cannot leave SCHED_IDLE without privilege, hence the two sets.
 *     Under a seccomp filter that refuses sched_setscheduler() (systemd's
 *     SystemCallFilter=~@resources) they fall back to nice KEY_POOL_REFILL_FALLBACK_NICE
 *     (setpriority(), also in @resources), else stay at normal priority:
 *     key_pool_refill_priority() says which (for the daemon to log).
 *
 * The worker hands results back through an eventfd. The main thread calls
 * key_pool_dispatch() when it is readable (key_pool_attach_event() does that from an
 * sd-event io source): finished keys go into the pool, and job handlers are called
 * there, on the main thread, never on the worker. Everything except the worker's own
 * generation happens on the thread that owns the pool (not thread-safe otherwise).
 *
 * Ready keys are EVP_PKEY objects in OpenSSL's heap, each with its PKCS#8 PEM in guarded
 * memory (secret-memory.h), made by the refill worker for the journal (store-db.h encrypts
 * it) so that the loop does not encode the key when a request takes it.
 */

#include <stdint.h>
#include <systemd/sd-event.h>

#include "keys-generate.h"

typedef struct KeyPool KeyPool;

#define KEY_POOL_WORKERS_MAX 16U
#define KEY_POOL_WORKER_NICE 5
#define KEY_POOL_REFILL_FALLBACK_NICE 19

/* What the refill workers got, best first. */
typedef enum KeyPoolRefillPriority {
        KEY_POOL_REFILL_IDLE,           /* SCHED_IDLE */
        KEY_POOL_REFILL_NICE,           /* SCHED_IDLE refused: SCHED_OTHER at nice 19 */
        KEY_POOL_REFILL_NORMAL,         /* both refused: the priority the daemon has */
} KeyPoolRefillPriority;

/* Most keys of one type the pool will keep (limits memory and refill work). */
#define KEY_POOL_TARGET_MAX 64U

/* Called on the main thread from key_pool_dispatch(). On success error == 0 and the handler
 * owns key (EVP_PKEY_free() it). On failure error is a negative errno and key is NULL. */
typedef void (*KeyReadyHandler)(KeyPool *pool, uint64_t job, int error, EVP_PKEY *key, void *userdata);

/* Parse a KeyPool= value: space-separated "TYPE=COUNT" words, TYPE as key_type_from_string(),
 * COUNT 0..KEY_POOL_TARGET_MAX; "" or NULL means no pool. A type given twice is an error.
 * On -EINVAL (bad word) or -ERANGE (count too large), *ret_bad_word (if given) gets a copy of
 * the offending word for the error message (free() it); ret_targets is untouched. */
int key_pool_parse_spec(const char *spec, unsigned ret_targets[_KEY_TYPE_MAX], char **ret_bad_word);

/* A pool with all targets 0; starts key_pool_default_workers() job workers and as many
 * refill workers (the CPUs in the daemon's affinity mask, at most KEY_POOL_WORKERS_MAX
 * each), or the given number of each (1..max). Returns once every worker has set its
 * priority. -errno on failure. */
unsigned key_pool_default_workers(void);
int key_pool_new(KeyPool **ret);
int key_pool_new_with_workers(unsigned workers, KeyPool **ret);

/* Stops the worker (waits for the key being generated, at most about one RSA-4096
 * generation), frees the ready keys, detaches from the event loop. Handlers of unfinished
 * jobs are NOT called. Accepts NULL, returns NULL. */
KeyPool *key_pool_free(KeyPool *p);

/* Set (or on reload change) how many keys of each type to keep. Keys above a lowered target
 * are freed; refill starts at once if needed. -ERANGE if a target > KEY_POOL_TARGET_MAX. */
int key_pool_set_targets(KeyPool *p, const unsigned targets[_KEY_TYPE_MAX]);

/* Watch the pool's eventfd from e and dispatch completions there. */
int key_pool_attach_event(KeyPool *p, sd_event *e, int64_t priority);
void key_pool_detach_event(KeyPool *p);

/* For callers with their own loop: the eventfd (readable when results are waiting; owned by
 * the pool) and the function to call then. key_pool_dispatch() never blocks; it returns how
 * many results it handled (>= 0) or -errno. */
int key_pool_get_fd(KeyPool *p);
int key_pool_dispatch(KeyPool *p);

/* A ready key of type t, now owned by the caller, or NULL if there is none (or t is invalid).
 * Taking a key wakes the worker to replace it. */
EVP_PKEY *key_pool_take(KeyPool *p, KeyType t);
/* The same, with the key's PKCS#8 PEM as key_export_pkcs8_pem() makes it (done by the refill
 * worker, off the loop) in *ret_pem, or NULL there (export it yourself). */
EVP_PKEY *key_pool_take_with_pem(KeyPool *p, KeyType t, CbSecret **ret_pem);

/* Generate one key of type t for the caller (ahead of any refill). handler runs later from
 * key_pool_dispatch(), exactly once unless the job is cancelled. *ret_job (if given) gets a
 * job id > 0. -EINVAL bad type, -ENOMEM, -EBUSY when the owner has its share of the queue
 * (key_pool_owner_share()) or KEY_POOL_JOBS_MAX jobs wait in all: a shortage to retry later.
 * Each owner's share leaves room for an owner that has none queued yet. */
#define KEY_POOL_JOBS_MAX 2048U
#define KEY_POOL_SHARE_BASE 1024U
#define KEY_POOL_SHARE_MIN 16U
/* Jobs an owner may have queued while n_owners other owners have some: KEY_POOL_SHARE_BASE
 * divided among them and one more (a newcomer), at least KEY_POOL_SHARE_MIN. */
unsigned key_pool_owner_share(unsigned n_owners);
int key_pool_generate_async_for(KeyPool *p, KeyType t, uint32_t owner, KeyReadyHandler handler, void *userdata,
                                uint64_t *ret_job);
/* The same for owner 0. */
int key_pool_generate_async(KeyPool *p, KeyType t, KeyReadyHandler handler, void *userdata, uint64_t *ret_job);

/* Forget a job: its handler will not be called (a key already made for it is freed).
 * 0, or -ENOENT if there is no such job (unknown, or its handler already ran). */
int key_pool_cancel(KeyPool *p, uint64_t job);

/* Ready keys of type t in the pool; its target. */
unsigned key_pool_count(KeyPool *p, KeyType t);
unsigned key_pool_target(KeyPool *p, KeyType t);

/* The priority the refill workers run at (the worst any of them got) and, unless it is
 * KEY_POOL_REFILL_IDLE, the errno of the refused sched_setscheduler(SCHED_IDLE) in
 * *ret_error (if given). Final once key_pool_new() has returned. */
KeyPoolRefillPriority key_pool_refill_priority(KeyPool *p, int *ret_error);
const char *key_pool_refill_priority_to_string(KeyPoolRefillPriority prio);

/* True when the worker has nothing to do: no job queued or running, every type at target and
 * no undelivered result (used by tests and by shutdown logging). */
bool key_pool_is_idle(KeyPool *p);

static inline void key_pool_freep(KeyPool **p) {
        if (p)
                *p = key_pool_free(*p);
}
