/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* NSS look-ups off the event loop. getpwuid_r() and friends may block for as long as sssd,
 * winbind or an LDAP server takes; the loop serves every tenant, so it never calls them. It asks
 * this cache instead: an answer it has (fresh) is given at once; otherwise worker threads look
 * it up and the caller is told -EINPROGRESS, registers a waiter, and asks again when the waiter
 * runs (on the loop, once any look-up has answered or one has taken too long). A look-up that
 * has not answered within NSS_CACHE_TIMEOUT_USEC is answered -ETIMEDOUT (the worker goes on; a
 * later answer is cached). */

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <systemd/sd-event.h>

typedef enum NssKind {
        NSS_USER,               /* uid: name and primary group */
        NSS_GROUP,              /* gid: name */
        NSS_GROUPLIST,          /* uid: every group of the user (its name through NSS_USER first) */
        NSS_LOCAL_ACCOUNT,      /* uid: whether the local files database has it (result 1 or 0) */
        _NSS_KIND_MAX,
} NssKind;

typedef struct NssAnswer {
        int result;             /* 1 found, 0 no such entry, negative errno: NSS failed */
        char *name;             /* NSS_USER, NSS_GROUP */
        gid_t gid;              /* NSS_USER: primary group */
        gid_t *gids;            /* NSS_GROUPLIST */
        size_t n_gids;
} NssAnswer;

void nss_answer_done(NssAnswer *a);

/* The blocking look-up the workers run (thread-safe, reentrant). */
typedef int (*NssLookup)(NssKind kind, uint32_t id, NssAnswer *ret);

/* An answer (found or not) is reused this long (sssd's own cache keeps entries far longer);
 * an error only by the callers waiting for it. */
#define NSS_CACHE_TTL_USEC (30ULL * 1000000ULL)
#define NSS_CACHE_ERROR_TTL_USEC (1ULL * 1000000ULL)
/* A look-up still running after this is answered -ETIMEDOUT. */
#define NSS_CACHE_TIMEOUT_USEC (10ULL * 1000000ULL)
#define NSS_CACHE_WORKERS 2U
/* Entries kept at most; past it, answered ones are forgotten first. */
#define NSS_CACHE_ENTRIES_MAX 4096U

typedef struct NssCache NssCache;
typedef struct NssWaiter NssWaiter;
typedef void (*NssWaitHandler)(void *userdata);

int nss_cache_new(sd_event *event, NssLookup lookup, NssCache **ret);
/* Joins the workers; a worker stuck in NSS is left behind (with what it needs). NULL-safe. */
NssCache *nss_cache_free(NssCache *c);

/* (kind, id)'s answer: 0 and *ret (a copy: nss_answer_done() it) when known; -EINPROGRESS when
 * a worker is looking it up (asked now, or earlier); -ETIMEDOUT when that has run longer than
 * NSS_CACHE_TIMEOUT_USEC; -ENOMEM. */
int nss_cache_get(NssCache *c, NssKind kind, uint32_t id, NssAnswer *ret);

/* handler(userdata) runs once, on the loop, after the next answer (or time-out) of any
 * look-up. Free the waiter to cancel it (NULL-safe); once its handler runs it is freed
 * already (the handler forgets the pointer). */
int nss_cache_wait(NssCache *c, NssWaitHandler handler, void *userdata, NssWaiter **ret);
void nss_waiter_free(NssWaiter *w);

/* Forgets every answer (Reload: decisions against the rules now use the names NSS gives now);
 * look-ups running go on. */
void nss_cache_flush(NssCache *c);

/* Other times than NSS_CACHE_TTL_USEC, NSS_CACHE_ERROR_TTL_USEC, NSS_CACHE_TIMEOUT_USEC (tests). */
void nss_cache_set_times(NssCache *c, uint64_t ttl, uint64_t error_ttl, uint64_t timeout);

/* Look-ups asked and not answered yet; waiters registered. */
unsigned nss_cache_pending(NssCache *c);
unsigned nss_cache_waiters(NssCache *c);
