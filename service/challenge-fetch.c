/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>

#include "message-util.h"
#include "challenge-fetch.h"
#include "challenge-limit.h"
#include "http-guard.h"
#include "basic.h"
#include "seed-steps.h"

typedef enum FetchState {
        FETCH_QUEUED,
        FETCH_TICKET,
        FETCH_HTTP,
} FetchState;

struct ChallengeFetch {
        ChallengeFetch *next, *prev;
        ChallengeFetcher *fetcher;
        FetchState state;
        challenge_handler_t handler;
        void *userdata;
        Krb5ServiceWait *wait;
        HttpRequest *request;
        bool fresh;                     /* never answered from a spare */
        uint32_t owner;                 /* whose fetch: owners take turns for the slots */
        uint64_t tag;                   /* start tag of fair queueing: started in tag order */
        ChallengePageInfo page;         /* what the page said, once parsed (else zero) */
        uint64_t issued;                /* CLOCK_MONOTONIC usec: its answer came */
        bool recorded;                  /* in the journal as row, from the request on */
        int64_t row;
};

#define CHALLENGE_SPARES_MAX 64U        /* MaxOutstandingChallenges' own limit */

typedef struct Spare {
        ChallengeSecret *secret;        /* holds its slot until freed */
        uint64_t issued;                /* CLOCK_MONOTONIC usec: NDES issued it */
        uint64_t until;                 /* CLOCK_MONOTONIC usec: usable until then (from issued) */
        char thumbprint[33];            /* what its page said (ChallengeResult) */
        bool multi_use;
        unsigned validity_minutes;
} Spare;

/* What a handed-out challenge's release hook needs: its slot, and how long NDES keeps the
 * challenge if it was never consumed. */
typedef struct SlotRef {
        ChallengeLimit *limit;
        ChallengeSecret *secret;
        uint64_t issued;                /* CLOCK_MONOTONIC usec: NDES issued it */
        uint64_t expires;               /* CLOCK_MONOTONIC usec: NDES forgets it then (from issued) */
        bool multi_use;                 /* single-password mode: nothing to count */
        ChallengeJournal journal;       /* where it is recorded (as row), if recorded */
        bool recorded;
        int64_t row;
} SlotRef;

struct ChallengeFetcher {
        HttpClient *http;
        Krb5Creds *creds;
        ChallengeLimit *limit;
        char *ca_name, *admin_url, *suffix, *trust_anchors, *host, *server_url;
        ChallengeJournal journal;       /* add == NULL: none */
        uint64_t timeout_usec;
        bool kerberos;
        bool judged;                    /* a fetch on a fresh connection showed whether the page
                                         * takes part in Negotiate */
        ChallengeFetch *judging;        /* the enrollment fetch on a fresh connection to tell it */
        ChallengeFetch *fetches;        /* all, newest first */
        unsigned n_queued;
        uint64_t vclock;                /* tag of the fetch started (or answered) last */
        bool waking;
        Spare spares[CHALLENGE_SPARES_MAX];     /* oldest first */
        unsigned n_spares;
        sd_event *event;
        sd_event_source *hold_timer;    /* the next hold's end (challenge_limit_hold()) */
        unsigned validity_minutes;      /* what the last challenge page said (0: nothing yet) */
        bool ceiling_unread;            /* the last ceiling came from an HTTP 500, not cache-full */
        bool unread;                    /* NDES answered a PKIOperation with HTTP 500 and has not
                                         * answered one of this server's PKCSReqs with a CertRep
                                         * since (challenge_fetcher_set_read()) */
        /* Restored holds of challenges that were in an enrollment when the broker stopped:
         * that request's CertRep proves them consumed (challenge_fetcher_settle_request()). */
        struct Restored {
                int64_t row;
                uint64_t expires;       /* CLOCK_MONOTONIC, as its hold */
                char request[33];
        } *restored;
        size_t n_restored;
};

char *challenge_anonymous_hint(const char *host, const char *url) {
        return message_printf("Disable Anonymous Authentication on the Microsoft SCEP Admin webpage (mscep_admin): "
                "Authentication > Anonymous Authentication > Disable. %s answered %s with a challenge password "
                "on a new connection without ever asking for Kerberos (no WWW-Authenticate: Negotiate): anyone "
                "who can reach that page can mint enrollment challenges. " SEED_WIN_ANONYMOUS,
                host ? host : "?", url ? url : "?");
}

/* An answer other than 200: the outcome, and in *ret_message what the status means. */
static TransportOutcome classify_status(long http_code, const char *host, const char *url, const char *principal,
                                        char **ret_message) {
        if (http_code == 401) {
                *ret_message = message_printf("%s answered %s with 401: the SCEP admin page requires authentication; set "
                        "Authentication=kerberos (\"Prefer Kerberos authentication\") for this CA. " SEED_CA_KERBEROS, host, url);
                return TRANSPORT_AUTHENTICATION_REJECTED;
        }
        if (http_code == 403) {
                /* Microsoft's NDES troubleshooting page requires IIS_IUSRS of the NDES service
                 * account, not of the account that fetches passwords; what makes mscep_admin answer
                 * 403 is not publicly documented: both settings are named. */
                *ret_message = message_printf("%s answered %s with 403 Forbidden: IIS refused the SCEP admin page to %s. What "
                        "causes a 403 there is not publicly documented (the SCEP server's IIS log gives the "
                        "substatus); check both: the NDES service account (the SCEP application pool's identity) "
                        "must be a member of IIS_IUSRS on the NDES server; and the broker's own account %s needs "
                        "Enroll permission on the NDES templates. " SEED_PRE_IIS_USRS "; " SEED_PRE_ENROLL,
                        host, url, principal ? principal : "(none)", principal ? principal : "(none)");
                return TRANSPORT_AUTHENTICATION_REJECTED;
        }
        if (http_code == 404) {
                *ret_message = message_printf("%s has no page at %s (HTTP 404): AdminURL= must point at /certsrv/mscep_admin/. " SEED_CA_FIELDS, host, url);
                return TRANSPORT_PROTOCOL_ERROR;
        }
        if (http_code == 500) {
                *ret_message = message_printf("%s answered %s with HTTP 500: the NDES service has a problem (see the SCEP server's "
                        "event log). Microsoft's NDES troubleshooting names two causes: the NDES service account "
                        "(the SCEP application pool's identity) must be a member of IIS_IUSRS on the NDES server, "
                        "and the RA certificates must not have expired. " SEED_PRE_IIS_USRS, host, url);
                return TRANSPORT_CA_UNREACHABLE;
        }
        if (http_code >= 500) {
                *ret_message = message_printf("%s answered %s with HTTP %ld: the NDES service has a problem (see the SCEP server's "
                        "event log)", host, url, http_code);
                return TRANSPORT_CA_UNREACHABLE;
        }
        *ret_message = message_printf("%s answered %s with HTTP %ld where the challenge page was expected", host, url, http_code);
        return TRANSPORT_PROTOCOL_ERROR;
}

/* A 200 answer: the challenge it holds (in *ret_secret), or which of NDES's pages it is and what
 * to do (in *ret_message); *info gets what the page said. */
static TransportOutcome classify_body(const uint8_t *body, size_t size, const char *host, const char *url,
                                      const char *principal, ChallengeSecret **ret_secret, ChallengePageInfo *info,
                                      char **ret_message) {
        int r;

        r = challenge_page_parse_info(body, size, ret_secret, info);
        switch (r) {
        case CHALLENGE_PAGE_FOUND:
                return TRANSPORT_OK;
        case CHALLENGE_PAGE_CACHE_FULL:
                info->cache_full = true;
                *ret_message = message_printf("%s answered %s: NDES keeps only a few unused challenges "
                        "(5 by default, each valid 60 minutes); wait until they expire or restart IIS on the SCEP "
                        "server, and keep MaxOutstandingChallenges= below NDES's cache size. " SEED_NONE_CACHE, host,
                        info->by_structure ? "NDES's cache-full page in another language (recognised by the page's "
                                             "structure: NDES's markup, no challenge, a list of three remedies), "
                                             "in English \"The password cache is full.\""
                                           : "\"The password cache is full.\"");
                return TRANSPORT_CHALLENGE_UNAVAILABLE;
        case CHALLENGE_PAGE_NO_PERMISSION:
                /* A configuration error: retrying until PendingDeadline changes nothing. */
                *ret_message = message_printf("%s answered %s: on the CA server, give the broker's own account %s Enroll permission "
                        "on the certificate template that is being provisioned (the NDES templates); the NDES "
                        "service account (the SCEP application pool's identity) must also be a member of IIS_IUSRS "
                        "on the NDES server. " SEED_PRE_ENROLL, host,
                        info->by_structure ? "NDES's permission page in another language (recognised by the page's "
                                             "structure: NDES's markup, no challenge, no list), in English \"You do "
                                             "not have sufficient permission to enroll with SCEP.\""
                                           : "\"You do not have sufficient permission to enroll with SCEP.\"",
                        principal ? principal : "(the service user)");
                return TRANSPORT_CHALLENGE_DENIED;
        case CHALLENGE_PAGE_UNRECOGNIZED:
                /* Maybe a page in front of NDES for a while (maintenance, a proxy): retried. */
                *ret_message = message_printf("%s answered %s with a page (HTTP 200, %zu bytes, %s) that holds no enrollment "
                        "challenge password and is none of NDES's error pages; it reads: \"%s\". Retrying; check "
                        "that AdminURL= points at NDES's /certsrv/mscep_admin/. " SEED_CA_FIELDS,
                        host, url, size, info->encoding ? info->encoding : "?", info->text);
                return TRANSPORT_CHALLENGE_UNAVAILABLE;
        default:
                *ret_message = message_printf("cannot parse the page at %s: %s", url, strerror(-r));
                return TRANSPORT_PROTOCOL_ERROR;
        }
}

TransportOutcome challenge_classify_page(const uint8_t *body, size_t size, long http_code, const char *host,
                                         const char *url, const char *principal, ChallengeSecret **ret_secret,
                                         const char **ret_encoding, char **ret_message,
                                         ChallengePageInfo *ret_info) {
        ChallengePageInfo info = {};
        _cleanup_free_ char *m = NULL;
        TransportOutcome o;

        host = host ? host : "?";
        url = url ? url : "?";
        if (http_code == 200)
                o = classify_body(body, size, host, url, principal, ret_secret, &info, &m);
        else
                o = classify_status(http_code, host, url, principal, &m);
        if (ret_encoding)
                *ret_encoding = info.encoding;
        if (ret_info)
                *ret_info = info;
        if (ret_message)
                *ret_message = TAKE_PTR(m);
        return o;
}

static void fetch_unlink(ChallengeFetch *x) {
        ChallengeFetcher *f = x->fetcher;

        if (f->judging == x)
                f->judging = NULL;

        if (x->prev)
                x->prev->next = x->next;
        else if (f->fetches == x)
                f->fetches = x->next;
        if (x->next)
                x->next->prev = x->prev;
        x->next = x->prev = NULL;
        if (x->state == FETCH_QUEUED)
                f->n_queued--;
}

/* A challenge's slot when it is freed: given back if NDES consumed it (or it may be used any
 * number of times), else held until NDES forgets it. */
static void release_slot(void *userdata) {
        SlotRef *ref = userdata;

        if (ref->multi_use || challenge_secret_is_consumed(ref->secret)) {
                if (ref->recorded && ref->journal.forget)
                        ref->journal.forget(ref->journal.userdata, ref->row);
                challenge_limit_put(ref->limit);
        } else {        /* still recorded: a restart counts it until it expires */
                if (ref->recorded && ref->journal.set_request)
                        ref->journal.set_request(ref->journal.userdata, ref->row, "");  /* out of it */
                (void) challenge_limit_hold(ref->limit, ref->expires);
        }
        challenge_limit_unref(ref->limit);
        free(ref);
}

/* CLOCK_MONOTONIC and CLOCK_REALTIME usec, one into the other (records outlive the process;
 * the hold timers run on CLOCK_MONOTONIC). */
static uint64_t mono_to_wall(uint64_t mono) {
        uint64_t nm = monotonic_usec(), nw = now_usec();

        if (mono >= nm)
                return nw + (mono - nm);
        return nw > nm - mono ? nw - (nm - mono) : 1;
}

static uint64_t wall_to_mono(uint64_t wall) {
        uint64_t nm = monotonic_usec(), nw = now_usec();

        if (wall >= nw)
                return nm + (wall - nw);
        return nm > nw - wall ? nm - (nw - wall) : 1;
}

/* NDES forgets a challenge issued then (validity_minutes, else its default), plus a margin. */
static uint64_t hold_end(uint64_t issued, unsigned validity_minutes) {
        return issued + challenge_validity_usec(validity_minutes) + CHALLENGE_HOLD_MARGIN_USEC;
}

/* A spare issued then is used until then: while NDES still has it, with time left for the
 * PKIOperation (a password of single-password mode does not expire). */
static uint64_t spare_until(uint64_t issued, unsigned validity_minutes, bool multi_use) {
        uint64_t v = challenge_validity_usec(validity_minutes);

        if (multi_use)
                return UINT64_MAX;
        return issued + v - challenge_spare_margin_usec(v);
}

/* Gives the slot of a challenge to the secret (freeing it gives it back, or holds it until
 * NDES forgets it, counted from when NDES issued it). */
static int secret_take_slot(ChallengeSecret *secret, ChallengeLimit *l, unsigned validity_minutes, bool multi_use,
                            uint64_t issued, const ChallengeJournal *journal, bool recorded, int64_t row) {
        SlotRef *ref = calloc(1, sizeof *ref);

        if (!ref)
                return -ENOMEM;
        *ref = (SlotRef) {
                .limit = challenge_limit_ref(l),
                .secret = secret,
                .issued = issued,
                .expires = hold_end(issued, validity_minutes),
                .multi_use = multi_use,
                .journal = *journal,
                .recorded = recorded && journal->add,
                .row = row,
        };
        challenge_secret_set_release(secret, release_slot, ref);
        return 0;
}

static SlotRef *secret_slot(const ChallengeSecret *secret) {
        return challenge_secret_get_release(secret, release_slot);
}

/* The record of a spare keeps the challenge itself, or no more (spare NULL). */
static void record_spare(ChallengeSecret *secret, bool keep, unsigned validity_minutes, const char *thumbprint) {
        SlotRef *ref = secret_slot(secret);

        if (ref && ref->recorded && ref->journal.set_spare)
                ref->journal.set_spare(ref->journal.userdata, ref->row, keep ? secret : NULL, validity_minutes,
                                       thumbprint);
}

void challenge_records_free(ChallengeRecord *a, size_t n) {
        for (size_t i = 0; a && i < n; i++)
                challenge_secret_free(a[i].spare);
        free(a);
}

uint64_t challenge_spare_margin_usec(uint64_t validity_usec) {
        return validity_usec / 6 < CHALLENGE_SPARE_MARGIN_USEC ? validity_usec / 6 : CHALLENGE_SPARE_MARGIN_USEC;
}

uint64_t challenge_validity_usec(unsigned validity_minutes) {
        return (uint64_t) (validity_minutes > 0 ? validity_minutes : CHALLENGE_VALIDITY_DEFAULT_MINUTES) * 60ULL *
               1000000ULL;
}

/* Calls the handler once, frees x; a failed fetch gives its slot back. */
static void fetch_finish(ChallengeFetch *x, TransportOutcome o, const char *message, long http_code,
                         const char *encoding, uint64_t elapsed, bool anonymous, ChallengeSecret *secret) {
        ChallengeFetcher *f = x->fetcher;
        ChallengeLimit *l = challenge_limit_ref(f->limit);
        ChallengeResult res = {
                .outcome = o,
                .message = o == TRANSPORT_OK ? NULL : (message ? message : "out of memory"),
                .http_code = http_code,
                .encoding = encoding,
                .elapsed_usec = elapsed,
                .anonymous = o == TRANSPORT_OK && anonymous,
                .secret = secret,
                .multi_use = x->page.multi_use,
                .validity_minutes = x->page.validity_minutes,
                .issued_usec = secret ? x->issued : 0,
        };
        bool had_slot = x->state != FETCH_QUEUED;

        memcpy(res.thumbprint, x->page.thumbprint, sizeof res.thumbprint);

        fetch_unlink(x);
        /* The slot now belongs to the secret: given back (or held) when it is freed. */
        if (secret && secret_take_slot(secret, l, x->page.validity_minutes, x->page.multi_use, x->issued,
                                       &f->journal, x->recorded && !x->page.multi_use, x->row) < 0) {
                challenge_secret_free(secret);
                res.secret = secret = NULL;
                res.outcome = TRANSPORT_PROTOCOL_ERROR;
                res.message = "out of memory";
        }
        if (x->recorded) {
                /* NDES holds it from now on (counted from its answer), or it holds nothing. */
                if (secret && !x->page.multi_use)
                        f->journal.set_times(f->journal.userdata, x->row, mono_to_wall(x->issued),
                                             mono_to_wall(hold_end(x->issued, x->page.validity_minutes)));
                else
                        f->journal.forget(f->journal.userdata, x->row);
                x->recorded = false;
        }
        x->handler(f, &res, x->userdata);
        free(x);
        if (had_slot && !secret)
                challenge_limit_put(l);
        challenge_limit_unref(l);
}

static void hold_timer_arm(ChallengeFetcher *f);

/* NDES's cache, shared by every client, is full: hold fewer for a while (this fetch's own slot
 * is not counted; it is given back). Returns the message with what the broker does now, or
 * NULL if that did not change. */
static char *back_off_cache_full(ChallengeFetcher *f, const char *message) {
        unsigned used = challenge_limit_get_used(f->limit);
        unsigned before = challenge_limit_get_ceiling(f->limit);
        char *n = NULL;

        challenge_limit_back_off(f->limit, used > 0 ? used - 1 : 0, monotonic_usec(),
                                 challenge_validity_usec(f->validity_minutes));
        f->ceiling_unread = false;
        if (challenge_limit_get_ceiling(f->limit) != before && message)
                /* Said with the answer (the request's message and the journal). */
                n = message_printf("%s This broker held %u other challenge(s) then: it fetches at "
                        "most %u at once (besides those NDES still holds unused) until NDES has forgotten "
                        "them, one more every %u minutes, back to MaxOutstandingChallenges=%u.", message,
                        used > 0 ? used - 1 : 0, challenge_limit_get_ceiling(f->limit),
                        f->validity_minutes > 0 ? f->validity_minutes : CHALLENGE_VALIDITY_DEFAULT_MINUTES,
                        challenge_limit_get_max(f->limit));
        hold_timer_arm(f);
        return n;
}

static void on_http(HttpClient *http, const HttpResult *result, void *userdata) {
        ChallengeFetch *x = userdata;
        ChallengeFetcher *f = x->fetcher;
        const Krb5Settings *ks = f->creds ? krb5_creds_get_settings(f->creds) : NULL;
        _cleanup_(challenge_secret_freep) ChallengeSecret *secret = NULL;
        const char *enc = NULL;
        _cleanup_free_ char *m = NULL;
        bool anonymous = false;
        TransportOutcome o;

        x->request = NULL;
        x->issued = monotonic_usec();
        if (result->outcome != TRANSPORT_OK) {
                if (result->outcome == TRANSPORT_AUTHENTICATION_REJECTED && f->creds)
                        krb5_creds_forget_service(f->creds, f->host);
                fetch_finish(x, result->outcome, result->message, result->http_code, NULL, result->elapsed_usec, false, NULL);
                return;
        }
        o = challenge_classify_page(result->body, result->body_size, result->http_code, f->host, f->admin_url,
                                    ks ? ks->principal : NULL, &secret, &enc, &m, &x->page);
        if (o == TRANSPORT_OK && x->page.validity_minutes > 0)
                f->validity_minutes = x->page.validity_minutes;
        if (x->page.cache_full) {
                char *n = back_off_cache_full(f, m);

                if (n) {
                        free(m);
                        m = n;
                }
        }
        /* libcurl sends Negotiate at once; a protected page answers 200 with its mutual
         * authentication token, an anonymous one with no WWW-Authenticate at all. Only a fresh
         * connection tells: IIS may skip the exchange on one it has authenticated already. */
        if (f->kerberos && result->http_code == 200 && result->num_connects > 0) {
                if (f->judging == x)    /* CA.Check() judges for itself; enrollments again */
                        f->judged = true;
                anonymous = !result->negotiate_answered;
        }
        /* Only a challenge that is the outcome goes to the handler; anything else is freed here. */
        fetch_finish(x, o, m, result->http_code, enc, result->elapsed_usec, anonymous,
                     o == TRANSPORT_OK ? TAKE_PTR(secret) : NULL);
}

static void start_http(ChallengeFetch *x) {
        ChallengeFetcher *f = x->fetcher;
        HttpRequestOptions o = {
                .url = f->admin_url,
                .permitted_suffix = f->suffix,
                .negotiate = f->kerberos,
                .trust_anchors = f->trust_anchors,
                .timeout_usec = f->timeout_usec,
                .max_response = 64 * 1024,      /* an admin page is ~2 KiB */
        };
        _cleanup_free_ char *m = NULL;
        int r;

        /* A new connection for CA.Check(), and for one enrollment fetch at a time until one has
         * shown whether the page takes part in Negotiate (see on_http()); the others reuse
         * connections. */
        if (f->kerberos && (x->fresh || (!f->judged && !f->judging))) {
                o.fresh_connection = true;
                if (!x->fresh)
                        f->judging = x;
        }
        x->state = FETCH_HTTP;
        if (f->journal.add && !x->recorded) {
                /* From the request on, NDES may hold a challenge for us: a broker killed before the
                 * answer counts it when it starts again, until it would have expired. */
                uint64_t now = monotonic_usec();
                x->recorded = f->journal.add(f->journal.userdata, f->ca_name, f->admin_url, f->server_url,
                                             mono_to_wall(now),
                                             mono_to_wall(hold_end(now + f->timeout_usec, f->validity_minutes)),
                                             &x->row) >= 0;
        }
        r = http_client_start(f->http, &o, on_http, x, &x->request, &m);
        if (r < 0)
                fetch_finish(x, r == -EPERM ? TRANSPORT_NAME_NOT_PERMITTED : TRANSPORT_PROTOCOL_ERROR,
                             m ? m : strerror(-r), 0, NULL, 0, false, NULL);
}

static void on_ticket(Krb5Creds *c, TransportOutcome o, const char *message, void *userdata) {
        ChallengeFetch *x = userdata;

        x->wait = NULL;
        if (o != TRANSPORT_OK) {
                fetch_finish(x, o, message, 0, NULL, 0, false, NULL);
                return;
        }
        start_http(x);
}

static void start_fetch(ChallengeFetch *x) {
        ChallengeFetcher *f = x->fetcher;
        int r;

        f->n_queued--;
        x->state = FETCH_TICKET;
        if (!f->kerberos || !f->host) {
                /* No ticket needed, or the guard refused the host: http_client_start() says why,
                 * and neither the KDC nor the server is contacted. */
                start_http(x);
                return;
        }
        r = krb5_creds_ensure_service(f->creds, f->host, on_ticket, x, &x->wait);
        if (r > 0)
                start_http(x);
        else if (r < 0)
                fetch_finish(x, TRANSPORT_KERBEROS_FAILED, strerror(-r), 0, NULL, 0, false, NULL);
}


static int on_hold_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        ChallengeFetcher *f = userdata;

        (void) challenge_limit_expire(f->limit, monotonic_usec());     /* runs wake() */
        hold_timer_arm(f);
        return 0;
}

/* The timer at the next hold's end (none without holds or an event loop). */
static void hold_timer_arm(ChallengeFetcher *f) {
        uint64_t next = challenge_limit_next_expiry(f->limit);

        if (!f->event)
                return;
        if (next == 0) {
                if (f->hold_timer)
                        (void) sd_event_source_set_enabled(f->hold_timer, SD_EVENT_OFF);
                return;
        }
        if (f->hold_timer) {
                (void) sd_event_source_set_time(f->hold_timer, next);
                (void) sd_event_source_set_enabled(f->hold_timer, SD_EVENT_ONESHOT);
                return;
        }
        (void) sd_event_add_time(f->event, &f->hold_timer, CLOCK_MONOTONIC, next, 1000000, on_hold_timer, f);
}

/* Start-time fair queueing between owners: the queued fetch with the lowest tag, the oldest
 * of those on ties (spare_only: only those a spare may answer). */
static ChallengeFetch *next_queued(ChallengeFetcher *f, bool spare_only) {
        ChallengeFetch *best = NULL;

        /* The list is newest first: "<=" keeps the oldest of equal tags. */
        for (ChallengeFetch *x = f->fetches; x; x = x->next)
                if (x->state == FETCH_QUEUED && !(spare_only && x->fresh) && (!best || x->tag <= best->tag))
                        best = x;
        return best;
}

/* x leaves the queue now (started or answered): its tag moves the clock, so an owner who
 * queued nothing lately goes next, not after everyone's backlog. */
static void advance_clock(ChallengeFetcher *f, const ChallengeFetch *x) {
        if (x->tag > f->vclock)
                f->vclock = x->tag;
}

/* Start queued fetches, fairly between owners (next_queued()), while slots are free. */
static void wake(void *userdata) {
        ChallengeFetcher *f = userdata;

        if (f->waking)
                return;         /* a handler freed a secret while we are starting fetches */
        f->waking = true;
        (void) challenge_limit_expire(f->limit, monotonic_usec());
        hold_timer_arm(f);
        while (f->n_queued > 0) {
                ChallengeFetch *next = next_queued(f, false);

                if (!next || !challenge_limit_take(f->limit))
                        break;
                advance_clock(f, next);
                start_fetch(next);
        }
        f->waking = false;
}

/* Hands a spare (which already holds its slot) to a fetch and frees the fetch. */
static void deliver_spare(ChallengeFetch *x, Spare *spare) {
        ChallengeFetcher *f = x->fetcher;
        ChallengeResult res = {
                .outcome = TRANSPORT_OK,
                .secret = spare->secret,
                .multi_use = spare->multi_use,
                .validity_minutes = spare->validity_minutes,
                .issued_usec = spare->issued,
        };

        memcpy(res.thumbprint, spare->thumbprint, sizeof res.thumbprint);
        fetch_unlink(x);
        x->handler(f, &res, x->userdata);
        free(x);
}

/* Spares too close to their expiry to be used are freed (their slots are held until NDES
 * forgets them). */
static void drop_stale_spares(ChallengeFetcher *f) {
        uint64_t now = monotonic_usec();

        while (f->n_spares > 0 && now >= f->spares[0].until) {
                ChallengeSecret *s = f->spares[0].secret;
                memmove(f->spares, f->spares + 1, --f->n_spares * sizeof(Spare));
                record_spare(s, false, 0, NULL);
                challenge_secret_free(s);
        }
}

static bool take_spare(ChallengeFetcher *f, Spare *ret) {
        if (f->n_spares == 0 || monotonic_usec() >= f->spares[0].until)
                return false;   /* stale ones are dropped by the caller, before it queues */
        *ret = f->spares[0];
        memmove(f->spares, f->spares + 1, --f->n_spares * sizeof(Spare));
        /* In use now: if the broker stops, whether NDES consumed it is unknown (it counts). */
        record_spare(ret->secret, false, 0, NULL);
        return true;
}

static int fetch_start(ChallengeFetcher *f, uint32_t owner, challenge_handler_t handler, void *userdata,
                       bool fresh, ChallengeFetch **ret) {
        uint64_t tag;
        Spare spare;
        ChallengeFetch *x;

        if (!f || !handler)
                return -EINVAL;
        /* Before x is queued: dropping a stale spare holds its slot, which wakes the queue, and
         * a queued x could be started there and then answered from a spare as well. */
        if (!fresh)
                drop_stale_spares(f);
        x = calloc(1, sizeof *x);
        if (!x)
                return -ENOMEM;
        x->fetcher = f;
        x->handler = handler;
        x->userdata = userdata;
        x->fresh = fresh;
        x->owner = owner;
        /* One more than the owner's last queued fetch, and not before the one started last. */
        tag = f->vclock;
        for (ChallengeFetch *q = f->fetches; q; q = q->next)
                if (q->state == FETCH_QUEUED && q->owner == owner && q->tag > tag)
                        tag = q->tag;
        x->tag = tag + 1;
        x->state = FETCH_QUEUED;
        x->next = f->fetches;
        if (f->fetches)
                f->fetches->prev = x;
        f->fetches = x;
        f->n_queued++;
        if (ret)
                *ret = x;
        if (!fresh && x->state == FETCH_QUEUED && take_spare(f, &spare)) {
                advance_clock(f, x);
                deliver_spare(x, &spare);
                return 0;
        }
        /* Even a fetch that can start now starts from here: the handler may run synchronously
         * only for errors known at once (guard refusals, allocation failures) and spares. */
        wake(f);
        return 0;
}

int challenge_fetcher_fetch(ChallengeFetcher *f, uint32_t owner, challenge_handler_t handler, void *userdata,
                            ChallengeFetch **ret) {
        return fetch_start(f, owner, handler, userdata, false, ret);
}

int challenge_fetcher_fetch_fresh(ChallengeFetcher *f, uint32_t owner, challenge_handler_t handler, void *userdata,
                                  ChallengeFetch **ret) {
        return fetch_start(f, owner, handler, userdata, true, ret);
}

void challenge_fetcher_keep_spare(ChallengeFetcher *f, ChallengeResult *res) {
        ChallengeFetch *next;
        const SlotRef *ref;
        uint64_t issued;
        Spare spare;

        if (!res || !res->secret)
                return;
        if (!f) {
                res->secret = challenge_secret_free(res->secret);
                return;
        }
        /* Usable while NDES still holds it, counted from when NDES issued it, not from now: a
         * challenge handed back again and again does not live longer than at NDES. Its own slot
         * knows when (it came from a fetch); else the caller says. */
        ref = secret_slot(res->secret);
        issued = ref ? ref->issued : res->issued_usec > 0 ? res->issued_usec : monotonic_usec();
        spare = (Spare) {
                .secret = TAKE_PTR(res->secret),
                .issued = issued,
                .until = spare_until(issued, res->validity_minutes, res->multi_use),
                .multi_use = res->multi_use,
                .validity_minutes = res->validity_minutes,
        };
        memcpy(spare.thumbprint, res->thumbprint, sizeof spare.thumbprint);
        if (monotonic_usec() >= spare.until) {
                /* Too old for an enrollment: its slot is held until NDES forgets it. */
                record_spare(spare.secret, false, 0, NULL);
                challenge_secret_free(spare.secret);
                return;
        }
        next = next_queued(f, true);
        if (next) {
                advance_clock(f, next);
                deliver_spare(next, &spare);
                return;
        }
        drop_stale_spares(f);
        if (f->n_spares >= CHALLENGE_SPARES_MAX) {
                challenge_secret_free(spare.secret);
                return;
        }
        f->spares[f->n_spares++] = spare;
        /* For a restart: the spare itself, encrypted. */
        record_spare(spare.secret, true, spare.validity_minutes, spare.thumbprint);
}

void challenge_fetcher_drop_spares(ChallengeFetcher *f) {
        if (!f)
                return;
        while (f->n_spares > 0) {
                ChallengeSecret *s = f->spares[--f->n_spares].secret;
                record_spare(s, false, 0, NULL);
                challenge_secret_free(s);
        }
}

uint64_t challenge_fetcher_get_spare_until(const ChallengeFetcher *f) {
        return f && f->n_spares > 0 ? f->spares[0].until : 0;
}

uint64_t challenge_fetcher_get_next_hold_end(const ChallengeFetcher *f) {
        return f ? challenge_limit_next_expiry(f->limit) : 0;
}

unsigned challenge_fetcher_get_ceiling(const ChallengeFetcher *f) {
        return f ? challenge_limit_get_ceiling(f->limit) : 0;
}

const char *challenge_fetcher_get_ceiling_why(const ChallengeFetcher *f) {
        return f->ceiling_unread ? "NDES could not read a PKIOperation of this CA lately (HTTP 500)" :
                                   "NDES answered \"The password cache is full\" lately";
}

unsigned challenge_fetcher_get_spares(const ChallengeFetcher *f) {
        return f->n_spares;
}

ChallengeFetch *challenge_fetch_cancel(ChallengeFetch *x) {
        ChallengeFetcher *f;
        bool had_slot;

        if (!x)
                return NULL;
        f = x->fetcher;
        had_slot = x->state != FETCH_QUEUED;
        krb5_service_wait_cancel(x->wait);
        http_request_cancel(x->request);
        if (x->recorded)
                f->journal.forget(f->journal.userdata, x->row);
        fetch_unlink(x);
        free(x);
        if (had_slot)
                challenge_limit_put(f->limit);
        return NULL;
}

/* A record's unused spare, a spare again if a slot is free for it. */
static bool restore_spare(ChallengeFetcher *f, ChallengeRecord *c, uint64_t issued) {
        Spare *sp;

        if (!challenge_limit_take(f->limit))
                return false;
        if (secret_take_slot(c->spare, f->limit, c->validity_minutes, false, issued, &f->journal, true, c->row) < 0) {
                challenge_limit_put(f->limit);
                return false;
        }
        sp = &f->spares[f->n_spares++];
        *sp = (Spare) {
                .secret = TAKE_PTR(c->spare),
                .issued = issued,
                .until = spare_until(issued, c->validity_minutes, false),
                .validity_minutes = c->validity_minutes,
        };
        memcpy(sp->thumbprint, c->thumbprint, sizeof sp->thumbprint);
        return true;
}

/* In use when the broker stopped (consumed or not: unknown), a fetch without its answer, a
 * spare for another server or too old, or no slot left for it (MaxOutstandingChallenges=
 * lowered): it only counts. */
static void restore_hold(ChallengeFetcher *f, const ChallengeRecord *c, uint64_t expires) {
        struct Restored *a;

        if (c->had_spare && f->journal.set_spare)
                f->journal.set_spare(f->journal.userdata, c->row, NULL, 0, NULL);
        if (challenge_limit_add_hold(f->limit, expires) < 0 || !c->request[0] || c->had_spare)
                return;
        a = realloc(f->restored, (f->n_restored + 1) * sizeof *a);
        if (!a)
                return;
        f->restored = a;
        a[f->n_restored] = (struct Restored) { .row = c->row, .expires = expires };
        memcpy(a[f->n_restored].request, c->request, sizeof a->request);
        f->n_restored++;
}

/* A fetcher without a predecessor starts from its records: every challenge NDES may still hold
 * for it takes a slot until NDES forgets it; an unused spare for the same server that NDES still
 * keeps, long enough for an enrollment, is a spare again. */
static void restore_records(ChallengeFetcher *f) {
        ChallengeRecord *recs = NULL;
        size_t n = 0;

        if (f->journal.load(f->journal.userdata, f->ca_name, f->admin_url, f->server_url, now_usec(), &recs, &n) < 0)
                return;
        for (size_t i = 0; i < n; i++) {
                ChallengeRecord *c = &recs[i];
                uint64_t issued = wall_to_mono(c->issued), expires = wall_to_mono(c->expires);
                bool usable = c->spare && c->same_url && f->n_spares < CHALLENGE_SPARES_MAX &&
                              monotonic_usec() < spare_until(issued, c->validity_minutes, false);

                if (usable && restore_spare(f, c, issued))
                        continue;
                restore_hold(f, c, expires);
        }
        challenge_records_free(recs, n);
}

/* The same CA again (a Reload): what NDES holds for us is still held; its spares serve us if
 * they are for the same server. */
static void take_over(ChallengeFetcher *f, ChallengeFetcher *p, unsigned max_outstanding) {
        f->limit = challenge_limit_ref(p->limit);
        challenge_limit_set_max(f->limit, max_outstanding);
        if (strcmp(p->server_url, f->server_url) == 0) {
                memcpy(f->spares, p->spares, p->n_spares * sizeof(Spare));
                f->n_spares = p->n_spares;
                p->n_spares = 0;
        } else
                challenge_fetcher_drop_spares(p);
        f->restored = TAKE_PTR(p->restored);
        f->n_restored = p->n_restored;
        p->n_restored = 0;
        f->unread = p->unread && strcmp(p->server_url, f->server_url) == 0;
        f->ceiling_unread = p->ceiling_unread;
}

DEFINE_POINTER_CLEANUP(ChallengeFetcher, challenge_fetcher_free);

int challenge_fetcher_new(HttpClient *http, Krb5Creds *creds, const ChallengeFetcherSettings *s,
                          ChallengeFetcher **ret) {
        _cleanup_(challenge_fetcher_freep) ChallengeFetcher *f = NULL;
        unsigned max_outstanding;
        int r;

        if (!http || !s || !s->admin_url || !s->permitted_suffix || !ret || (s->kerberos && !creds))
                return -EINVAL;
        f = calloc(1, sizeof *f);
        if (!f)
                return -ENOMEM;
        f->http = http;
        f->creds = creds;
        f->kerberos = s->kerberos;
        f->timeout_usec = s->timeout_usec;
        if (s->journal)
                f->journal = *s->journal;
        f->server_url = strdup(s->server_url ? s->server_url : "");
        if (!f->server_url)
                return -ENOMEM;
        max_outstanding = s->max_outstanding > 0 ? s->max_outstanding : 1;
        if (s->previous)
                take_over(f, s->previous, max_outstanding);
        else {
                r = challenge_limit_new(max_outstanding, &f->limit);
                if (r < 0)
                        return r;
        }
        f->ca_name = strdup(s->ca_name ? s->ca_name : "");
        if (!f->ca_name)
                return -ENOMEM;
        f->admin_url = strdup(s->admin_url);
        if (!f->admin_url)
                return -ENOMEM;
        if (!s->previous && f->journal.load)
                restore_records(f);
        challenge_limit_set_wake(f->limit, wake, f);
        f->event = s->event ? sd_event_ref(s->event) : NULL;
        if (!f->event)
                (void) sd_event_default(&f->event);
        hold_timer_arm(f);
        f->suffix = strdup(s->permitted_suffix);
        if (!f->suffix)
                return -ENOMEM;
        if (s->trust_anchors) {
                f->trust_anchors = strdup(s->trust_anchors);
                if (!f->trust_anchors)
                        return -ENOMEM;
        }
        /* The host for the service ticket; the guard runs again on every request. */
        r = http_guard_url(f->admin_url, f->suffix, NULL, &f->host, NULL);
        if (r < 0)
                f->host = NULL; /* every fetch will fail with the guard's message */
        *ret = TAKE_PTR(f);
        return 0;
}

ChallengeFetcher *challenge_fetcher_free(ChallengeFetcher *f) {
        if (!f)
                return NULL;
        while (f->fetches)
                challenge_fetch_cancel(f->fetches);
        while (f->n_spares > 0)
                challenge_secret_free(f->spares[--f->n_spares].secret);
        /* After the spares: freeing them may hold their slots, which wakes us. */
        challenge_limit_clear_wake(f->limit, f);
        challenge_limit_unref(f->limit);
        sd_event_source_disable_unref(f->hold_timer);
        sd_event_unref(f->event);
        free(f->ca_name);
        free(f->admin_url);
        free(f->suffix);
        free(f->trust_anchors);
        free(f->host);
        free(f->server_url);
        free(f->restored);
        free(f);
        return NULL;
}

bool challenge_fetcher_limit_unread(ChallengeFetcher *f) {
        unsigned before;

        if (!f)
                return false;
        before = challenge_limit_get_ceiling(f->limit);
        challenge_limit_back_off(f->limit, 1, monotonic_usec(), challenge_validity_usec(f->validity_minutes));
        f->ceiling_unread = true;
        f->unread = true;
        hold_timer_arm(f);
        return challenge_limit_get_ceiling(f->limit) != before;
}

bool challenge_fetcher_set_read(ChallengeFetcher *f) {
        bool was;

        if (!f)
                return false;
        was = f->unread;
        f->unread = false;
        return was;
}

bool challenge_fetcher_wants_probe(ChallengeFetcher *f) {
        if (!f || !f->unread)
                return false;
        drop_stale_spares(f);   /* their slots held until NDES forgets them */
        return f->n_spares == 0;
}

void challenge_secret_keep_unsent(ChallengeSecret *s, unsigned validity_minutes, const char *thumbprint) {
        if (s)
                record_spare(s, true, validity_minutes, thumbprint);
}

void challenge_secret_set_sent(ChallengeSecret *s, const char *request) {
        SlotRef *ref = s && request ? challenge_secret_get_release(s, release_slot) : NULL;

        if (ref && ref->recorded && ref->journal.set_sent)
                ref->journal.set_sent(ref->journal.userdata, ref->row, request);
}

unsigned challenge_fetcher_settle_request(ChallengeFetcher *f, const char *request) {
        unsigned n = 0;

        if (!f || !request || !*request)
                return 0;
        for (size_t i = 0; i < f->n_restored;) {
                struct Restored *x = &f->restored[i];
                if (strcmp(x->request, request) != 0) {
                        i++;
                        continue;
                }
                /* Its hold may have ended already (then there is nothing to give back). */
                (void) challenge_limit_release_hold(f->limit, x->expires);
                if (f->journal.forget)
                        f->journal.forget(f->journal.userdata, x->row);
                *x = f->restored[--f->n_restored];
                n++;
        }
        if (n > 0)
                hold_timer_arm(f);
        return n;
}

unsigned challenge_fetcher_get_outstanding(const ChallengeFetcher *f) {
        return challenge_limit_get_used(f->limit);
}

unsigned challenge_fetcher_get_max(const ChallengeFetcher *f) {
        return challenge_limit_get_max(f->limit);
}

unsigned challenge_fetcher_get_held(const ChallengeFetcher *f) {
        unsigned used = challenge_limit_get_used(f->limit), running = 0;

        for (const ChallengeFetch *x = f->fetches; x; x = x->next)
                if (x->state != FETCH_QUEUED)
                        running++;
        return used > running ? used - running : 0;
}

bool challenge_fetcher_can_start_now(const ChallengeFetcher *f) {
        return f->n_queued == 0 && challenge_limit_can_take(f->limit);
}

unsigned challenge_fetcher_get_queued(const ChallengeFetcher *f) {
        return f->n_queued;
}
