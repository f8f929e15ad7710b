/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The request engine: one enrollment is a chain of asynchronous steps on the event loop
 *
 *   key (pool, or generated on the pool's worker) → CA metadata (GetCACaps, GetCACert,
 *   cached per CA) → challenge (mscep_admin with Negotiate, at most MaxOutstandingChallenges
 *   per CA in flight; or a static file; or none) → PKCSReq → CertRep
 *
 * and a PENDING request polls with CertPoll. Every state change is committed to the journal
 * before anything depends on it. Nothing here blocks: Kerberos runs on krb5-creds' worker,
 * HTTP on curl multi, key generation on the pool's worker. */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "basic.h"
#include "broker-error.h"
#include "cb-subject.h"
#include "challenge-fetch.h"
#include "challenge-page.h"
#include "crypto-jobs.h"
#include "crypto-work.h"
#include "engine.h"
#include "engine-internal.h"
#include "renewal.h"
#include "caller-uid-limit.h"
#include "http-client.h"
#include "keys-generate.h"
#include "krb5-creds.h"
#include "log.h"
#include "metrics.h"
#include "scep-cacert.h"
#include "challenge-journal.h"
#include "scep-caps.h"
#include "scep-certrep.h"
#include "scep-csr.h"
#include "scep-message.h"
#include "scep-util.h"

DEFINE_POINTER_CLEANUP(BIGNUM, BN_free)
DEFINE_POINTER_CLEANUP(CbSubject, cb_subject_free)
DEFINE_POINTER_CLEANUP(ScepCertRep, scep_certrep_free)
DEFINE_POINTER_CLEANUP(ScepBuildJob, scep_build_job_free)
DEFINE_POINTER_CLEANUP(ScepParseJob, scep_parse_job_free)

static inline void openssl_strfreep(char **p) {
        OPENSSL_free(*p);
}

typedef struct Attempt {
        Request *request;
        bool polling;                   /* CertPoll rather than PKCSReq */
        bool recovering;                /* CertPoll first: a PKCSReq may have reached the CA */
        JournalSyncWait *sync;          /* the submission mark going to disk before the PKCSReq */
        HttpRequest *http;
        ChallengeFetch *fetch;
        ChallengeSecret *challenge;     /* holds one of the CA's challenge slots until freed; NDES
                                         * keeps counting it after that unless a CertRep answered
                                         * (challenge_secret_set_consumed()) */
        bool restart_challenge;         /* its fetch was cancelled by a reload: fetch again */
        bool probe;                     /* a PKCSReq without a challenge: NDES could not read the
                                         * server's last one (step_challenge()) */
        X509_REQ *csr;
        X509 *signer;
        CryptoJob *prebuild;            /* builds the signer while the challenge is fetched */
        EVP_PKEY *transport_key;        /* EC requests: a transient RSA key for the SCEP envelope */
        uint64_t transport_job;
        ScepMessage *msg;
        CryptoJob *crypto;              /* the message built or the CertRep read on a worker */
        ScepTransport transport;
        size_t url_size;                /* of a GET PKIOperation, for the URL-limit hint */
        bool challenge_sent;            /* challenge is in a PKCSReq built (and maybe sent) */
        ScepCACerts *certs;             /* the CA's certificates the message was built with (a
                                         * reference: a Reload may fetch the CA's again meanwhile) */
        char thumbprint[33];            /* what the challenge's page said (ChallengeResult) */
        bool multi_use;
        unsigned validity_minutes;
        /* Renewal=scep-renewal|auto: a RenewalReq, signed by the predecessor's certificate and
         * its kept key (renewal_prepare()); no challenge. */
        bool renewal;
        X509 *renewal_cert;
        EVP_PKEY *renewal_key;
        /* The NDES server of the CA this attempt talks to (index in URL=): its challenge, its
         * PKCSReq and its CertPolls all go to that one, as a challenge is valid only on the
         * server that issued it. */
        size_t server;
        char *server_url;               /* its URL= entry: a Reload may reorder URL= */
} Attempt;


/* The metadata of the attempt's server. */
static CaMeta *attempt_meta(Request *req) {
        CaState *ca = request_ca_state(req);
        Attempt *a = req->engine;

        return ca ? ca_meta(ca, a ? a->server : 0) : NULL;
}

static ChallengeFetcher *attempt_fetcher(Request *req) {
        CaState *ca = request_ca_state(req);
        Attempt *a = req->engine;

        return ca && a && a->server < CB_CA_SERVERS_MAX ? ca_engine(ca)->fetchers[a->server] : NULL;
}

/* ---- per-request bookkeeping ---- */

static void attempt_free(Attempt *a) {
        if (!a)
                return;
        http_request_cancel(a->http);
        crypto_job_cancel(a->crypto);
        crypto_job_cancel(a->prebuild);
        journal_sync_wait_cancel(a->sync);
        challenge_fetch_cancel(a->fetch);
        challenge_secret_free(a->challenge);
        scep_csr_free(a->csr);          /* wipes the challenge if it is still in there */
        X509_free(a->signer);
        X509_free(a->renewal_cert);
        EVP_PKEY_free(a->renewal_key);
        EVP_PKEY_free(a->transport_key);
        scep_message_free(a->msg);
        scep_cacerts_free(a->certs);
        free(a->server_url);
        free(a);
}

static void attempt_end(Request *req) {
        Attempt *a = req->engine;

        if (!a)
                return;
        if (a->transport_job)
                (void) key_pool_cancel(req->manager->pool, a->transport_job);
        req->engine = NULL;
        attempt_free(a);
}

static void meta_waiter_remove(CaState *ca, Request *req) {
        if (!ca || !ca_engine(ca))
                return;
        for (size_t i = 0; i < CB_CA_SERVERS_MAX; i++)
                for (MetaWaiter **p = &ca_meta(ca, i)->meta_waiters; *p;)
                        if ((*p)->request == req) {
                                MetaWaiter *w = *p;
                                *p = w->next;
                                free(w);
                        } else
                                p = &(*p)->next;
}

void engine_request_stop(Request *req) {
        CaState *ca = request_ca_state(req);

        meta_waiter_remove(ca, req);
        attempt_end(req);
        if (req->key_job) {
                (void) key_pool_cancel(req->manager->pool, req->key_job);
                req->key_job = 0;
        }
        req->timer = sd_event_source_disable_unref(req->timer);
}

/* An attempt failed with a transport outcome: retried or ended by request.c. A server that is
 * down (no connection, a timeout, HTTP 5xx, an HTML page instead of SCEP data: CAUnreachable)
 * or has no challenge to give (its password cache full, a page that is not NDES's:
 * ChallengeUnavailable; each server has its own cache) is passed over for FailbackAfter=; an
 * enrollment that has nothing at that server (no PKCSReq in doubt, not PENDING there) goes at
 * once to another server of the CA that is not. */
static void attempt_failed(Request *req, TransportOutcome outcome, const char *message) {
        const CbCa *c = request_ca_config(req);
        CaState *ca = request_ca_state(req);
        Attempt *a = req->engine;
        uint64_t now = now_usec();

        if (a && c && ca && c->n_servers > 1 &&
            (outcome == TRANSPORT_CA_UNREACHABLE || outcome == TRANSPORT_TIMEOUT ||
             outcome == TRANSPORT_CHALLENGE_UNAVAILABLE)) {
                size_t from = a->server;
                ca_engine(ca)->servers.n = c->n_servers;
                if (!ca_servers_passed_over(&ca_engine(ca)->servers, from, now))
                        log_notice("CA %s: server %s is passed over for %llu s: %s", c->name, ca_server_host(c, from),
                                   (unsigned long long) (c->failback_usec / 1000000), message ?: "no answer");
                ca_servers_failed(&ca_engine(ca)->servers, from, now, c->failback_usec);
                if (!a->polling && req->rec->submitted == 0 && req->rec->state != REQUEST_PENDING &&
                    ca_servers_other_usable(&ca_engine(ca)->servers, from, now)) {
                        attempt_end(req);
                        (void) engine_request_start(req);
                        if (req->engine)
                                log_info("Request %s: %s failed; trying server %s of CA %s.", req->rec->id,
                                         ca_server_host(c, from),
                                         ca_server_host(c, req->engine->server), c->name);
                        return;
                }
        }
        request_attempt_failed(req, broker_error_from_transport(outcome), message);
}

static void end_failed(Request *req, BrokerError error, const char *message) {
        request_end(req, REQUEST_FAILED, error, NULL, message);
}

/* ---- certificates to strings ---- */

static uint64_t asn1_time_usec(const ASN1_TIME *t) {
        struct tm tm = {};

        if (!t || !ASN1_TIME_to_tm(t, &tm))
                return 0;
        time_t s = timegm(&tm);
        return s < 0 ? 0 : (uint64_t) s * 1000000;
}

/* The serial number in lower-case hex (malloc'd), or NULL when out of memory. */
static char *serial_hex(X509 *x) {
        _cleanup_(BN_freep) BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL);
        _cleanup_(openssl_strfreep) char *hex = NULL;
        char *s;

        if (!bn)
                return NULL;
        hex = BN_bn2hex(bn);
        if (!hex)
                return NULL;
        s = strdup(hex);
        if (!s)
                return NULL;
        for (char *p = s; *p; p++)
                *p = (char) (*p >= 'A' && *p <= 'F' ? *p - 'A' + 'a' : *p);
        return s;
}

/* ---- the steps ---- */

static void step_key(Request *req);
static void step_transport_key(Request *req);
static void step_meta(Request *req);
static void step_submit(Request *req);
static void step_challenge(Request *req);
static void step_pkioperation(Request *req);
static void ca_meta_fetch(CaMeta *cm);

/* The NDES server for a new attempt: the one that has the request's transaction (PENDING, or a
 * PKCSReq in doubt: its CertPolls must go where the PKCSReq went), else the CA's choice
 * (ca-servers.h). */
static size_t attempt_choose_server(Request *req) {
        const CbCa *c = request_ca_config(req);
        CaState *ca = request_ca_state(req);
        int i;

        if (!c || !ca || c->n_servers <= 1)
                return 0;
        if (req->rec->state == REQUEST_PENDING || (req->rec->submitted != 0 && !req->recovery_resubmit)) {
                i = cb_ca_server_index(c, req->rec->server);
                if (i >= 0)
                        return (size_t) i;
                if (req->rec->server && *req->rec->server)
                        log_warning("Request %s: its transaction went to %s, which is no longer in URL= of CA %s; "
                                    "asking %s instead.", req->rec->id, req->rec->server, c->name, c->url);
                return 0;
        }
        ca_engine(ca)->servers.n = c->n_servers;
        return ca_servers_pick(&ca_engine(ca)->servers, now_usec(), c->round_robin);
}

static Attempt *attempt_begin(Request *req) {
        Attempt *a = req->engine;

        if (a)
                return a;
        a = calloc(1, sizeof(*a));
        if (!a)
                return NULL;
        a->request = req;
        a->server = attempt_choose_server(req);
        const CbCa *c = request_ca_config(req);
        if (c && c->n_servers > 1)
                a->server_url = strdup(ca_server_url(c, a->server));   /* NULL: kept by index */
        req->engine = a;
        return a;
}

static void on_key_ready(KeyPool *pool, uint64_t job, int error, EVP_PKEY *key, void *userdata) {
        Request *req = userdata;
        int r;

        req->key_job = 0;
        if (error < 0) {
                request_attempt_failed_errno(req, error, "Cannot generate the private key");
                return;
        }
        r = request_keep_key(req, key);
        if (r < 0) {
                request_attempt_failed_errno(req, r, "Cannot store the private key (encrypted) in the journal");
                return;
        }
        step_transport_key(req);
}

static void step_key(Request *req) {
        Attempt *a = attempt_begin(req);
        KeyType t;
        int r;

        if (!a) {
                request_attempt_failed_errno(req, -ENOMEM, "Out of memory");
                return;
        }
        if (req->key) {
                step_transport_key(req);
                return;
        }
        if (req->rec->key_available) {
                /* Resumed after a restart: the key is in the journal, encrypted. */
                r = request_load_key(req);
                if (r < 0) {
                        end_failed(req, BROKER_ERROR_PROTOCOL_ERROR,
                                       "The stored private key cannot be decrypted (wrong or replaced store key?); "
                                       "enroll again.");
                        return;
                }
                step_transport_key(req);
                return;
        }

        t = key_type_from_string(req->rec->key);
        if (t < 0) {
                end_failed(req, BROKER_ERROR_INVALID_ARGUMENT, "Unknown key type in the journal.");
                return;
        }
        EVP_PKEY *pooled = key_pool_take(req->manager->pool, t);
        if (pooled) {
                r = request_keep_key(req, pooled);
                if (r < 0) {
                        request_attempt_failed_errno(req, r, "Cannot store the private key (encrypted) in the journal");
                        return;
                }
                step_transport_key(req);
                return;
        }
        r = key_pool_generate_async_for(req->manager->pool, t, req->rec->owner, on_key_ready, req, &req->key_job);
        if (r < 0)
                request_attempt_failed_errno(req, r, "Cannot start generating the private key");
}

/* SCEP encrypts the CertRep to the signer certificate's key, which must do key transport: an
 * EC request signs its PKCS#10 with its own key but wraps the exchange in a self-signed
 * certificate of a transient RSA key (from the pool, or made on the pool's worker). */
static void on_transport_key(KeyPool *pool, uint64_t job, int error, EVP_PKEY *key, void *userdata) {
        Request *req = userdata;
        Attempt *a = req->engine;

        a->transport_job = 0;
        if (error < 0) {
                request_attempt_failed_errno(req, error, "Cannot generate the RSA transport key");
                return;
        }
        a->transport_key = key;
        step_meta(req);
}

static void step_transport_key(Request *req) {
        Attempt *a = req->engine;
        int r;

        if (EVP_PKEY_get_base_id(req->key) == EVP_PKEY_RSA || a->transport_key) {
                step_meta(req);
                return;
        }
        a->transport_key = key_pool_take(req->manager->pool, KEY_TYPE_RSA_2048);
        if (a->transport_key) {
                step_meta(req);
                return;
        }
        r = key_pool_generate_async_for(req->manager->pool, KEY_TYPE_RSA_2048, req->rec->owner, on_transport_key, req,
                                        &a->transport_job);
        if (r < 0)
                request_attempt_failed_errno(req, r, "Cannot start generating the RSA transport key");
}

static void step_meta(Request *req) {
        CaState *ca = request_ca_state(req);
        MetaWaiter *w;

        if (!ca) {
                end_failed(req, BROKER_ERROR_UNKNOWN_CA,
                               "The request's CA is no longer configured (removed by a reload).");
                return;
        }
        CaMeta *cm = attempt_meta(req);
        if (cm->certs && cm->have_caps) {
                step_submit(req);
                return;
        }
        w = calloc(1, sizeof(*w));
        if (!w) {
                request_attempt_failed_errno(req, -ENOMEM, "Out of memory");
                return;
        }
        w->request = req;
        w->next = cm->meta_waiters;
        cm->meta_waiters = w;
        if (!cm->meta_http)
                ca_meta_fetch(cm);
}

static void recovery_resubmit(Request *req, bool unknown, const char *why);

/* Marks the request submitting (one network attempt) and goes on to the challenge. */
static void step_submit(Request *req) {
        Attempt *a = req->engine;

        if (req->recovery_resubmit && req->rec->submitted == 0)
                req->recovery_resubmit = false;  /* no longer in doubt (an answer came meanwhile) */
        if (req->recovery_resubmit && !a->polling && req->rec->submitted != 0) {
                /* The CA answered GetCACaps just now (step_meta()), but never a CertPoll. */
                char why[128];
                snprintf(why, sizeof why, "no CertRep to %u CertPolls while GetCACaps was answered", req->recovery_polls);
                req->recovery_resubmit = false;
                req->recovery_polls = 0;
                attempt_end(req);
                recovery_resubmit(req, false, why);
                return;
        }

        request_begin_attempt(req, a->polling);
        step_challenge(req);
}

/* Trust on first use, for a CA without CAFingerprint=: the mscep_admin page, fetched with
 * Kerberos, shows the MD5 thumbprint of NDES's CA certificate (the one GetCACert returns last,
 * micromdm/scep 70f835e); the CA certificate GetCACert gave us must be that one, checked just
 * before the PKCSReq is built (the challenge may have waited for the CA's metadata). 1 when it
 * matches or there is nothing to compare, 0 when the request was dealt with (a mismatch: tried
 * once more with the CA's certificates fetched again, then refused). */
/* The attempt's challenge, still unused at NDES, goes to the CA's next enrollment (a spare)
 * with what its page said, so that whoever gets it checks the thumbprint too. */
static void attempt_give_back_challenge(Attempt *a, ChallengeFetcher *f) {
        ChallengeResult spare = {
                .outcome = TRANSPORT_OK,
                .multi_use = a->multi_use,
                .validity_minutes = a->validity_minutes,
        };

        if (!a->challenge || !f)
                return;
        spare.secret = TAKE_PTR(a->challenge);
        memcpy(spare.thumbprint, a->thumbprint, sizeof spare.thumbprint);
        challenge_fetcher_keep_spare(f, &spare);
}

static int thumbprint_check(Request *req) {
        const CbCa *c = request_ca_config(req);
        CaMeta *cm = attempt_meta(req);
        Attempt *a = req->engine;
        unsigned char md[EVP_MAX_MD_SIZE];
        unsigned mdlen = 0;
        char ours[2 * EVP_MAX_MD_SIZE + 1] = "", msg[1024];

        if (!c || c->has_fingerprint || !a->challenge || !a->thumbprint[0] || !cm || !cm->certs ||
            !cm->certs->ca)
                return 1;
        if (!X509_digest(cm->certs->ca, EVP_md5(), md, &mdlen)) {
                ERR_clear_error();
                return 1;       /* no MD5 in this OpenSSL: nothing to compare with */
        }
        for (unsigned i = 0; i < mdlen; i++)
                snprintf(ours + 2 * i, 3, "%02x", md[i]);
        if (strcmp(ours, a->thumbprint) == 0) {
                /* Authenticated: GetTrustAnchors may offer it for the trust store. */
                CaState *ca = request_ca_state(req);
                if (ca && ca_set_trust_authenticated(ca, cm->certs->ca_fingerprint))
                        manager_notify_ca_changed(ca);
                return 1;
        }

        if (!cm->meta_http)
                cm->certs = scep_cacerts_free(cm->certs);
        if (!req->thumbprint_retried) {
                /* Perhaps a CA certificate renewed since we fetched it: fetch it again, once.
                 * The challenge is good: it serves the next try instead of being thrown away. */
                req->thumbprint_retried = true;
                log_notice("Request %s: the CA certificate from GetCACert (MD5 %s) is not the one %s shows (%s); "
                           "fetching the CA's certificates again.", req->rec->id, ours, ca_server_admin_url(c, a->server),
                           a->thumbprint);
                attempt_give_back_challenge(a, attempt_fetcher(req));
                attempt_end(req);
                (void) engine_request_start(req);
                return 0;
        }
        snprintf(msg, sizeof msg, "The CA certificate from GetCACert at %s (MD5 thumbprint %s) is not the one NDES's "
                 "authenticated admin page %s shows (%s): refusing to enroll with a CA that cannot be "
                 "authenticated. If a proxy or another server answers the SCEP URL, fix URL=; to trust a CA "
                 "explicitly, set CAFingerprint=sha256:<its SHA-256 fingerprint>.", ca_server_url(c, a->server), ours,
                 ca_server_admin_url(c, a->server), a->thumbprint);
        /* Its page vouched for another CA: not kept for anyone (it stays counted at NDES, freed
         * with the attempt). */
        end_failed(req, BROKER_ERROR_PROTOCOL_ERROR, msg);
        return 0;
}

static void on_challenge(ChallengeFetcher *f, ChallengeResult *res, void *userdata) {
        Request *req = userdata;
        Attempt *a = req->engine;

        a->fetch = NULL;
        if (res->outcome != TRANSPORT_OK) {
                /* The cache-full page's message quotes NDES's sentence (challenge-fetch.c). */
                if (res->outcome == TRANSPORT_CHALLENGE_UNAVAILABLE && res->http_code == 200 && res->message &&
                    strstr(res->message, "The password cache is full."))
                        metrics_count_ndes(req->manager, req->rec->ca, METRICS_NDES_CACHE_FULL);
                else if (res->outcome == TRANSPORT_CHALLENGE_DENIED)
                        metrics_count_ndes(req->manager, req->rec->ca, METRICS_NDES_PERMISSION);
                else if (res->http_code > 0 && res->http_code != 200)
                        metrics_count_ndes(req->manager, req->rec->ca, METRICS_NDES_HTTP_ERROR);
                attempt_failed(req, res->outcome, res->message);
                return;
        }
        if (res->anonymous) {
                CaEngine *ce = ca_engine(request_ca_state(req));
                /* The server's weakness, not ours: the enrollment goes on, said once per load. */
                if (!ce->warned_anonymous) {
                        const CbCa *c = request_ca_config(req);
                        _cleanup_free_ char *hint = challenge_anonymous_hint(
                                        c ? ca_server_admin_host(c, a->server) : NULL,
                                        c ? ca_server_admin_url(c, a->server) : NULL);
                        log_warning("CA %s: mscep_admin answered without authentication: %s",
                                    request_ca_state(req)->name, hint ?: "disable Anonymous Authentication");
                        ce->warned_anonymous = true;
                }
        }
        challenge_secret_free(a->challenge);
        a->challenge = TAKE_PTR(res->secret);
        /* For a restart before it is sent: a spare then, not a slot lost for its validity. */
        challenge_secret_keep_unsent(a->challenge, res->validity_minutes, res->thumbprint);
        manager_test_kill_point("challenge-unsent");
        memcpy(a->thumbprint, res->thumbprint, sizeof a->thumbprint);
        a->multi_use = res->multi_use;
        a->validity_minutes = res->validity_minutes;
        step_pkioperation(req);
}

static int read_static_challenge(const char *path, ChallengeSecret **ret, char *msg, size_t msgsize) {
        char buf[CHALLENGE_SIZE_MAX + 2];
        _cleanup_close_ int fd = -1;
        struct stat st;
        ssize_t n;
        int r;

        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
        if (fd < 0) {
                r = -errno;
                snprintf(msg, msgsize, "Cannot open ChallengeFile %s: %s", path, strerror(-r));
                return r;
        }
        if (fstat(fd, &st) < 0) {
                r = -errno;
                snprintf(msg, msgsize, "Cannot stat ChallengeFile %s: %s", path, strerror(-r));
                return r;
        }
        if (!S_ISREG(st.st_mode) || (st.st_mode & 0077) != 0) {
                snprintf(msg, msgsize, "ChallengeFile %s must be a regular file readable by its owner only "
                         "(chmod 0600).", path);
                return -EPERM;
        }
        n = read(fd, buf, sizeof buf - 1);
        if (n < 0) {
                r = -errno;
                snprintf(msg, msgsize, "Cannot read ChallengeFile %s: %s", path, strerror(-r));
                return r;
        }
        while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' '))
                n--;
        if (n <= 0 || (size_t) n > CHALLENGE_SIZE_MAX) {
                secret_erase(buf, sizeof buf);
                snprintf(msg, msgsize, "ChallengeFile %s must hold one password of 1 to %d bytes.",
                         path, CHALLENGE_SIZE_MAX);
                return -EINVAL;
        }
        r = challenge_secret_new(buf, (size_t) n, ret);
        secret_erase(buf, sizeof buf);
        if (r < 0)
                snprintf(msg, msgsize, "Out of memory");
        return r;
}

static int build_subject(const char *text, ScepRdn **ret, size_t *ret_n, CbSubject **ret_subject);

static void on_signer_built(void *userdata) {
        ScepBuildJob *j = userdata;
        Request *req = j->userdata;
        Attempt *a = req->engine;

        a->prebuild = NULL;
        if (j->result != 0 || a->signer)
                return;         /* step_pkioperation() tries again and names the error */
        a->signer = TAKE_PTR(j->signer_cert);
        log_debug("Request %s: signer certificate built while the challenge is fetched.", req->rec->id);
}

/* The self-signed signer certificate of the SCEP exchange: the CSR's subject and the key
 * that signs (the request's, or an EC request's RSA transport key), on a crypto worker. */
/* Ahead of time only: whatever fails here, step_pkioperation() builds the signer with the
 * message and names the error. */
static void prebuild_signer(Request *req) {
        Attempt *a = req->engine;
        EVP_PKEY *key = a->transport_key ?: req->key;
        _cleanup_free_ ScepRdn *rdns = NULL;
        _cleanup_(cb_subject_freep) CbSubject *subject = NULL;
        _cleanup_(scep_build_job_freep) ScepBuildJob *j = NULL;
        size_t n_rdns = 0;

        if (!key || !attempt_meta(req))
                return;
        if (build_subject(req->rec->subject, &rdns, &n_rdns, &subject) < 0)
                return;
        j = scep_build_job_new();
        if (!j)
                return;
        if (scep_build_job_set_subject(j, rdns, n_rdns, NULL) < 0)
                return;
        if (!EVP_PKEY_up_ref(key))
                return;
        j->signer_key = key;
        j->digest = attempt_meta(req)->alg.digest;
        j->signer_only = true;
        j->userdata = req;
        if (crypto_work_submit_background(req->manager->crypto, scep_build_job_run, on_signer_built,
                                          scep_build_job_free, j, &a->prebuild) < 0)
                return;
        TAKE_PTR(j);    /* the worker's now */
}

/* ---- Renewal=scep-renewal|auto: a successor enrolled with RenewalReq ---- */

/* Renewal=auto: after a CA refused a RenewalReq, its successors enroll with a challenge for
 * this long, then RenewalReq is tried again (the CA's configuration may have changed). */
#define RENEWAL_REFUSED_RETRY_USEC (24ULL * 3600ULL * 1000000ULL)

static void renewal_fall_back(Request *req, const CbCa *c, const char *why) {
        char msg[1024];

        if (c->renewal == CB_RENEWAL_AUTO) {
                log_info("Request %s: enrolling with a challenge instead of a RenewalReq (Renewal=auto): %s",
                         req->rec->id, why);
                return;
        }
        snprintf(msg, sizeof msg, "Renewal=scep-renewal: no RenewalReq possible (%s); enrolled with a challenge "
                 "instead.", why);
        request_warn(req, "renewal-reenroll", msg);
}

/* Whether this attempt sends a RenewalReq: 1 yes (a->renewal_cert and a->renewal_key set), 0
 * no (a fresh enrollment with a challenge), RENEWAL_PREPARE_ENDED the request was ended (failed:
 * an outcome, not an error of this function). */
#define RENEWAL_PREPARE_ENDED 2
static int renewal_prepare(Request *req) {
        const CbCa *c = request_ca_config(req);
        Attempt *a = req->engine;
        Request *pred;
        _cleanup_(secret_freep) CbSecret *pem = NULL;
        _cleanup_(BIO_free_allp) BIO *bio = NULL;
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *key = NULL;
        _cleanup_(X509_freep) X509 *cert = NULL;
        uint64_t refused_until = 0, now = now_usec();
        char msg[1024];
        int r;

        if (a->renewal)
                return 1;
        if (!c || c->renewal == CB_RENEWAL_REENROLL || !req->rec->predecessor || !*req->rec->predecessor ||
            a->polling || a->recovering)
                return 0;
        if (req->renewal_refused)
                return 0;       /* logged when the CA refused it */
        if (!(attempt_meta(req)->caps & SCEP_CAP_RENEWAL)) {
                if (c->renewal == CB_RENEWAL_AUTO) {
                        log_info("Request %s: CA %s does not offer Renewal in GetCACaps; enrolling with a challenge "
                                 "(Renewal=auto).", req->rec->id, c->name);
                        return 0;
                }
                snprintf(msg, sizeof msg, "CA %s is set to Renewal=scep-renewal, but its GetCACaps does not offer "
                         "Renewal: it takes no RenewalReq. Set Renewal=auto (RenewalReq where offered, else a "
                         "fresh enrollment) or Renewal=reenroll for this CA.", c->name);
                end_failed(req, BROKER_ERROR_INVALID_CONFIGURATION, msg);
                return RENEWAL_PREPARE_ENDED;
        }
        if (c->renewal == CB_RENEWAL_AUTO) {
                r = store_ca_renewal_get(req->manager->store, c->name, &refused_until);
                if (r < 0)
                        log_warning_errno(r, "CA %s: cannot read what its RenewalReqs got: %m", c->name);
                if (refused_until > now) {
                        log_info("Request %s: CA %s refused a RenewalReq before; enrolling with a challenge until "
                                 "%llu s from now (Renewal=auto).", req->rec->id, c->name,
                                 (unsigned long long) ((refused_until - now) / 1000000ULL));
                        return 0;
                }
        }
        pred = manager_find_request(req->manager, req->rec->predecessor);
        if (!pred || pred->rec->state != REQUEST_ISSUED || !pred->rec->certificate || !*pred->rec->certificate) {
                renewal_fall_back(req, c, "its predecessor holds no certificate");
                return 0;
        }
        if (pred->rec->not_after != 0 && pred->rec->not_after <= now) {
                renewal_fall_back(req, c, "the certificate being renewed has expired");
                return 0;
        }
        r = store_renewal_key_get(req->manager->store, pred->rec->id, &pem);
        if (r < 0) {
                renewal_fall_back(req, c, r == -ENOKEY ? "the key of the certificate being renewed was not kept (it "
                                  "was issued before Renewal= chose RenewalReq)" :
                                  "the kept key of the certificate being renewed cannot be read");
                return 0;
        }
        r = key_import_pkcs8_pem(pem, &key);
        if (r < 0) {
                renewal_fall_back(req, c, "the kept key of the certificate being renewed cannot be read");
                return 0;
        }
        if (EVP_PKEY_get_base_id(key) != EVP_PKEY_RSA) {
                /* The CA encrypts its CertRep to the signer certificate. */
                renewal_fall_back(req, c, "the certificate being renewed has no RSA key, and the CA encrypts its "
                                  "answer to it");
                return 0;
        }
        bio = BIO_new_mem_buf(pred->rec->certificate, -1);
        if (!bio) {
                renewal_fall_back(req, c, "out of memory reading the certificate being renewed");
                return 0;
        }
        cert = PEM_read_bio_X509(bio, NULL, NULL, NULL);
        if (!cert) {
                ERR_clear_error();
                renewal_fall_back(req, c, "the certificate being renewed does not parse");
                return 0;
        }
        if (X509_check_private_key(cert, key) != 1) {
                ERR_clear_error();
                renewal_fall_back(req, c, "the certificate being renewed does not match its kept key");
                return 0;
        }
        a->renewal_cert = TAKE_PTR(cert);
        a->renewal_key = TAKE_PTR(key);
        a->renewal = true;
        return 1;
}

static void step_challenge(Request *req) {
        const CbCa *c = request_ca_config(req);
        Attempt *a = req->engine;
        char msg[SCEP_ERROR_MESSAGE_MAX + 512];
        int r;

        if (a->polling || c->challenge == CB_CHALLENGE_NONE) {
                step_pkioperation(req);
                return;
        }
        r = renewal_prepare(req);
        if (r == RENEWAL_PREPARE_ENDED)
                return;
        if (r > 0) {
                /* A RenewalReq: the certificate being renewed vouches for it, no challenge. */
                log_info("Request %s: enrolling with a RenewalReq signed by the certificate of request %s.",
                         req->rec->id, req->rec->predecessor);
                step_pkioperation(req);
                return;
        }
        if (c->challenge == CB_CHALLENGE_STATIC) {
                a->challenge = challenge_secret_free(a->challenge);
                r = read_static_challenge(c->challenge_file, &a->challenge, msg, sizeof msg);
                if (r < 0) {
                        end_failed(req, BROKER_ERROR_CHALLENGE_UNAVAILABLE, msg);
                        return;
                }
                step_pkioperation(req);
                return;
        }

        if (a->challenge && !a->challenge_sent) {
                /* Fetched before the CA's metadata had to be fetched again: still unused. */
                step_pkioperation(req);
                return;
        }

        /* mscep-admin: the CA's fetcher keeps at most MaxOutstandingChallenges in flight, gets
         * the service ticket for HTTP/<admin host> first (so KDC errors are named), and
         * recognises NDES's error pages. */
        ChallengeFetcher *f = attempt_fetcher(req);
        if (!f) {
                attempt_failed(req, TRANSPORT_KERBEROS_FAILED,
                             manager_engine(req->manager)->krb5_error ?: "No Kerberos credentials for the challenge request.");
                return;
        }
        if (challenge_fetcher_wants_probe(f)) {
                /* NDES cannot decrypt this server's PKIOperations lately: a challenge sent now
                 * would stay unused in its cache, shared by the fleet, until it expires. */
                a->probe = true;
                log_info("Request %s: NDES could not read this CA's last PKIOperation (HTTP 500); asking with a "
                         "PKCSReq that carries no challenge before fetching one.", req->rec->id);
                step_pkioperation(req);
                return;
        }
        r = challenge_fetcher_fetch(f, (uint32_t) req->rec->owner, on_challenge, req, &a->fetch);
        if (r < 0) {
                request_attempt_failed_errno(req, r, "Cannot start fetching a challenge");
                return;
        }
        /* While the challenge is on its way (or waits for a slot): the signer certificate,
         * which needs only subject and key, when the loop has nothing else to do. */
        if (req->engine == a && a->fetch && !a->signer && !a->prebuild)
                prebuild_signer(req);
}

/* Recovering a submission that may have reached the CA, whose CertPoll got no certificate:
 * it is submitted again with a fresh challenge. Whether that makes the CA issue twice cannot
 * be known here: NDES documents CertPoll for pending requests only, so its "unknown
 * transaction" (badCertId, unknown) may also be its answer for one it issued at once, and
 * other answers (why) say nothing either. So the request (Warning) and the audit log say that
 * a duplicate may have been issued, with the transaction to look for in the CA database. */
static void recovery_resubmit(Request *req, bool unknown, const char *why) {
        char msg[3072];

        snprintf(msg, sizeof msg, "Transaction %s may have been issued twice: the broker was interrupted while "
                 "submitting it and the CA %s (CertPoll answered: %s); it was submitted again. Look for "
                 "transaction %s in the CA database and revoke a second certificate if there is one.",
                 req->rec->transaction_id,
                 unknown ? "does not say it has it, which NDES may also answer for a request it issued at once" :
                           "could not say whether it had issued it",
                 why, req->rec->transaction_id);
        /* The CertPoll's attempt is over (its answer is read, why formatted into msg): ended
         * here, so that engine_request_start(), which starts nothing while an attempt is set,
         * starts the new submission. */
        attempt_end(req);
        request_warn_duplicate_risk(req, msg);
        (void) engine_request_start(req);
}

/* A CertPoll asking about a submission in doubt got no CertRep (HTTP 5xx, a timeout, the
 * connection refused): the server may be down, or may not answer CertPoll at all (micromdm's
 * scepserver answers HTTP 500 to every GetCertInitial). Retried with backoff; after
 * RECOVERY_POLLS_MAX of them the next attempt asks GetCACaps again and, if the CA answers,
 * submits again (the duplicate risk recorded, recovery_resubmit()), so a request never polls a
 * server that cannot answer for ever. */
#define RECOVERY_POLLS_MAX 3U
static void recovery_poll_failed(Request *req, TransportOutcome outcome, const char *why) {
        CaState *ca = request_ca_state(req);
        char msg[3072];

        req->recovery_polls++;
        if (req->recovery_polls >= RECOVERY_POLLS_MAX) {
                req->recovery_resubmit = true;
                snprintf(msg, sizeof msg, "CertPoll for transaction %s got no CertRep %u times (last: %s); it is "
                         "submitted again once the CA answers GetCACaps.", req->rec->transaction_id ?: "?",
                         req->recovery_polls, why ?: "no answer");
        } else
                snprintf(msg, sizeof msg, "CertPoll for transaction %s got no CertRep (%s); asking again (%u of %u "
                         "before submitting again).", req->rec->transaction_id ?: "?", why ?: "no answer",
                         req->recovery_polls, RECOVERY_POLLS_MAX);
        /* The server answered, or may have: the next attempt re-reads its capabilities. */
        if (req->recovery_resubmit && ca && !attempt_meta(req)->meta_http)
                attempt_meta(req)->have_caps = false;
        attempt_failed(req, transport_outcome_is_transient(outcome) ? outcome : TRANSPORT_CA_UNREACHABLE, msg);
}

static void on_certrep_parsed(void *userdata);

static void handle_certrep(Request *req, const HttpResult *res) {
        const CbCa *c = request_ca_config(req);
        Attempt *a = req->engine;
        char msg[SCEP_ERROR_MESSAGE_MAX + 512];
        int r;

        if (res->content_type && strncasecmp(res->content_type, "text/html", 9) == 0 && !a->recovering) {
                /* A web page, not a CertRep: IIS's error or maintenance page, or NDES failing
                 * before it answered (it sends no CertRep for an envelope it cannot decrypt,
                 * certnanny/sscep#60). Nothing says NDES consumed the challenge: it stays counted
                 * (freed with the attempt), and the request tries again later. */
                snprintf(msg, sizeof msg, "%s answered the PKIOperation with an HTML page (HTTP %ld), not a CertRep; "
                         "retrying.", res->host, res->http_code);
                attempt_failed(req, TRANSPORT_CA_UNREACHABLE, msg);
                return;
        }
        /* Verified and decrypted on a crypto worker; on_certrep_parsed() goes on. */
        _cleanup_(scep_parse_job_freep) ScepParseJob *j = scep_parse_job_new(res->body, res->body_size);
        X509 *signer_cert = a->renewal ? a->renewal_cert : a->signer;
        EVP_PKEY *signer_key = a->renewal ? a->renewal_key : a->transport_key ?: req->key;
        EVP_PKEY *request_key = a->csr ? X509_REQ_get0_pubkey(a->csr) : NULL;
        if (!j) {
                request_attempt_failed_errno(req, -ENOMEM, "Cannot copy the CertRep for reading");
                return;
        }
        j->host = strdup(res->host ?: "");
        if (!j->host) {
                request_attempt_failed_errno(req, -ENOMEM, "Cannot copy the CertRep's host name");
                return;
        }
        j->request.type = a->msg->type;
        memcpy(j->request.transaction_id, a->msg->transaction_id, sizeof j->request.transaction_id);
        memcpy(j->request.sender_nonce, a->msg->sender_nonce, sizeof j->request.sender_nonce);
        j->certs = scep_cacerts_ref(a->certs);
        if (signer_cert && X509_up_ref(signer_cert))
                j->signer_cert = signer_cert;
        if (signer_key && EVP_PKEY_up_ref(signer_key))
                j->signer_key = signer_key;
        if (request_key && EVP_PKEY_up_ref(request_key))
                j->request_key = request_key;
        j->allow_legacy = c->allow_legacy_ciphers;
        j->userdata = req;
        r = crypto_work_submit(req->manager->crypto, scep_parse_job_run, on_certrep_parsed, scep_parse_job_free, j,
                               &a->crypto);
        if (r < 0) {
                request_attempt_failed_errno(req, r, "Cannot queue the CertRep for reading");
                return;
        }
        TAKE_PTR(j);    /* the worker's now */
}

/* PENDING: the CSR is kept for CertPoll (its subject and key). step_pkioperation() took the
 * challenge out of it when the PKCSReq was built: no secret in the journal. */
static void certrep_pending(Request *req) {
        const CbCa *c = request_ca_config(req);
        Attempt *a = req->engine;
        _cleanup_free_ char *csr_pem = NULL;
        int r;

        if (!a->polling && req->key) {
                r = scep_csr_resign(a->csr, req->key);
                if (r < 0) {
                        request_attempt_failed_errno(req, r, "Cannot sign the CSR kept for polling");
                        return;
                }
        }
        r = scep_csr_to_pem(a->csr, &csr_pem);
        if (r < 0) {
                request_attempt_failed_errno(req, r, "Cannot keep the CSR for polling");
                return;
        }
        request_set_pending(req, TAKE_PTR(csr_pem), c->poll_interval_usec);
}

/* SUCCESS: the certificate, its chain and serial into the record. */
static void certrep_issued(Request *req, const ScepCertRep *rep) {
        _cleanup_free_ char *cert = NULL, *chain = NULL, *serial = NULL;
        int r;

        r = scep_certs_to_pem(rep->certificate, NULL, &cert);
        if (r < 0) {
                request_attempt_failed_errno(req, r, "Cannot record the certificate");
                return;
        }
        r = scep_certs_to_pem(NULL, rep->chain, &chain);
        if (r < 0) {
                request_attempt_failed_errno(req, r, "Cannot record the certificate's chain");
                return;
        }
        serial = serial_hex(rep->certificate);
        if (!serial) {
                request_attempt_failed_errno(req, -ENOMEM, "Cannot record the certificate's serial number");
                return;
        }
        request_set_issued(req, TAKE_PTR(cert), TAKE_PTR(chain), TAKE_PTR(serial),
                           asn1_time_usec(X509_get0_notBefore(rep->certificate)),
                           asn1_time_usec(X509_get0_notAfter(rep->certificate)));
}

static void on_certrep_parsed(void *userdata) {
        ScepParseJob *j = userdata;
        Request *req = j->userdata;
        const CbCa *c = request_ca_config(req);
        Attempt *a = req->engine;
        _cleanup_(scep_certrep_freep) ScepCertRep *rep = TAKE_PTR(j->rep);
        const ScepError *err = &j->err;
        const char *host = j->host;
        char msg[SCEP_ERROR_MESSAGE_MAX + 512];
        int r = j->result;

        a->crypto = NULL;
        if (!c) {
                end_failed(req, BROKER_ERROR_UNKNOWN_CA, "The request's CA is no longer configured (removed by a reload).");
                return;
        }
        if (r != 0) {
                snprintf(msg, sizeof msg, "The CertRep from %s cannot be used: %s", host,
                         err->message[0] ? err->message : strerror(-r));
                if (a->recovering) {
                        recovery_resubmit(req, false, msg);
                        return;
                }
                /* A bad reply may be a stale CA certificate: refetch it next time. A challenge the
                 * reply did not prove consumed stays counted at NDES (freed with the attempt). A
                 * pending request is still at the CA: polled again until PendingDeadline=. */
                attempt_meta(req)->certs = scep_cacerts_free(attempt_meta(req)->certs);
                attempt_failed(req, a->polling ? TRANSPORT_CA_UNREACHABLE : TRANSPORT_PROTOCOL_ERROR, msg);
                return;
        }

        request_set_transaction(req, a->msg->transaction_id);
        metrics_count_ndes(req->manager, req->rec->ca, rep->status == SCEP_STATUS_SUCCESS ? METRICS_NDES_ISSUED :
                           rep->status == SCEP_STATUS_PENDING ? METRICS_NDES_PENDING : METRICS_NDES_FAILURE);
        /* The CA has answered for this transaction: no submission is in doubt any more, and the
         * challenge it carried is out of NDES's password cache (used, or refused): its slot is
         * free again. */
        request_clear_submitted(req);
        req->recovery_polls = 0;
        challenge_secret_set_consumed(a->challenge);
        a->challenge = challenge_secret_free(a->challenge);
        if (!a->polling && challenge_fetcher_set_read(attempt_fetcher(req)))
                log_notice("CA %s: %s answered a %s with a CertRep again: it reads this CA's requests, and "
                           "challenges are fetched again.", c->name, host,
                           a->renewal ? "RenewalReq" : a->probe ? "PKCSReq without a challenge" : "PKCSReq");
        if (a->probe && rep->status == SCEP_STATUS_FAILURE) {
                /* The answer NDES gives a PKCSReq without a challenge (0x80096004): it reads
                 * them now. The request goes on at once, with a challenge. */
                attempt_end(req);
                (void) engine_request_start(req);
                return;
        }
        if (a->renewal && c->renewal == CB_RENEWAL_AUTO && !a->polling) {
                int k;
                if (rep->status == SCEP_STATUS_FAILURE) {
                        /* The CA does not take RenewalReq (NDES: depending on its configuration):
                         * this request at once, and the CA's next successors for a while, enroll
                         * with a challenge. */
                        char desc[512];
                        scep_certrep_describe_failure(rep, desc, sizeof desc);
                        k = store_ca_renewal_set(req->manager->store, c->name, now_usec() + RENEWAL_REFUSED_RETRY_USEC);
                        if (k < 0)
                                log_warning_errno(k, "CA %s: cannot record that it refused a RenewalReq: %m", c->name);
                        log_notice("Request %s: %s refused the RenewalReq (%s); enrolling with a challenge instead, "
                                   "and so do the successors of CA %s for the next %llu hours (Renewal=auto).",
                                   req->rec->id, host, desc, c->name,
                                   (unsigned long long) (RENEWAL_REFUSED_RETRY_USEC / 3600000000ULL));
                        req->renewal_refused = true;
                        attempt_end(req);
                        (void) engine_request_start(req);
                        return;
                }
                k = store_ca_renewal_set(req->manager->store, c->name, 0);
                if (k < 0)
                        log_warning_errno(k, "CA %s: cannot record that it took a RenewalReq: %m", c->name);
        }
        if (rep->status == SCEP_STATUS_FAILURE && !a->polling && !req->challenge_retried && !a->renewal &&
            c->challenge == CB_CHALLENGE_MSCEP_ADMIN && scep_certrep_challenge_unknown(rep)) {
                /* NDES no longer knows the challenge (restarted, expired, another node) or had it
                 * used already: once, at once, with a fresh one. */
                char desc[512];
                scep_certrep_describe_failure(rep, desc, sizeof desc);
                req->challenge_retried = true;
                log_notice("Request %s: %s did not take the challenge (%s); trying once more with a fresh one.",
                           req->rec->id, host, desc);
                attempt_end(req);
                (void) engine_request_start(req);
                return;
        }
        if (rep->status != SCEP_STATUS_FAILURE && a->recovering)
                /* The CA has the transaction submitted before the restart: NDES consumed the
                 * challenge it carried, counted since the restart. (A FAILURE here says nothing
                 * of it: badCertId, the CA does not know the transaction.) */
                (void) challenge_fetcher_settle_request(attempt_fetcher(req), req->rec->id);
        if (rep->status == SCEP_STATUS_FAILURE && a->recovering) {
                char desc[512];
                bool unknown = rep->fail_info == SCEP_FAIL_BAD_CERT_ID;
                scep_certrep_describe_failure(rep, desc, sizeof desc);
                recovery_resubmit(req, unknown, desc);
                return;
        }
        if (rep->status == SCEP_STATUS_FAILURE) {
                char desc[512];
                scep_certrep_describe_failure(rep, desc, sizeof desc);
                snprintf(msg, sizeof msg, "%s rejected the %s: %s", host,
                         a->renewal ? "RenewalReq (Renewal=scep-renewal; Renewal=auto would enroll with a challenge "
                                      "instead)" : "request", desc);
                request_end(req, REQUEST_REJECTED, BROKER_ERROR_CA_REJECTED,
                               rep->fail_info >= 0 ? scep_fail_info_to_string(rep->fail_info) : "", msg);
                return;
        }
        if (rep->status == SCEP_STATUS_PENDING) {
                certrep_pending(req);
                return;
        }
        certrep_issued(req, rep);
}

static void send_pkioperation(Request *req);

static void on_pkioperation(HttpClient *client, const HttpResult *res, void *userdata) {
        Request *req = userdata;
        Attempt *a = req->engine;
        CaState *ca = request_ca_state(req);
        ScepHttpNext next;
        ScepError err = {};
        int r;

        a->http = NULL;
        if (res->outcome != TRANSPORT_OK) {
                if (a->recovering)
                        recovery_poll_failed(req, res->outcome, res->message);
                else if (a->polling && !transport_outcome_is_transient(res->outcome)) {
                        /* The CA has the pending request: polled again until PendingDeadline=. */
                        char why[2048];
                        snprintf(why, sizeof why, "%s; the CA still has the pending request, polling again.",
                                 res->message ?: "No answer to CertPoll");
                        attempt_failed(req, TRANSPORT_CA_UNREACHABLE, why);
                } else
                        attempt_failed(req, res->outcome, res->message);
                return;
        }
        ca_set_contact(ca, now_usec());
        if (res->http_code != 200 || (res->content_type && strncasecmp(res->content_type, "text/html", 9) == 0))
                metrics_count_ndes(req->manager, req->rec->ca, METRICS_NDES_HTTP_ERROR);
        if (res->http_code < 500)
                ca_servers_answered(&ca_engine(ca)->servers, a->server);
        r = scep_pkioperation_http_next(a->transport, res->http_code, res->body_size,
                                        a->transport == SCEP_TRANSPORT_GET ? a->url_size : 0, &next, &err);
        if (r != 0 && a->recovering && res->http_code < 500) {
                /* The server cannot answer a CertPoll at all. */
                char why[sizeof err.message + 64];
                snprintf(why, sizeof why, "HTTP %ld: %s", res->http_code,
                         err.message[0] ? err.message : "unusable answer");
                recovery_resubmit(req, false, why);
                return;
        }
        if (r != 0 && a->recovering) {
                char why[sizeof err.message + 64];
                snprintf(why, sizeof why, "HTTP %ld", res->http_code);
                recovery_poll_failed(req, TRANSPORT_CA_UNREACHABLE, why);
                return;
        }
        if (r != 0 && a->polling) {
                /* The CA has the pending request; an unusable answer to one poll changes nothing:
                 * polled again until PendingDeadline=. */
                char why[sizeof err.message + 128];
                snprintf(why, sizeof why, "%s; the CA still has the pending request, polling again.",
                         err.message[0] ? err.message : "Unusable CertPoll answer");
                attempt_failed(req, TRANSPORT_CA_UNREACHABLE, why);
                return;
        }
        if (r != 0 && !a->polling && res->http_code == 503) {
                /* IIS answers 503 when NDES's application pool is stopped: NDES never saw the
                 * request. Nothing is in doubt, and the challenge, still unused, serves the next
                 * try (NDES answers 0x80070490 if a restart of the pool forgot it, and the
                 * broker then fetches a fresh one). */
                request_clear_submitted(req);
                attempt_give_back_challenge(a, attempt_fetcher(req));
        }
        if (r != 0 && !a->polling && res->http_code == 500) {
                /* NDES answers 500 when it cannot decrypt the request (RA certificates it no longer
                 * has, IIS_IUSRS permissions): it never read the challenge inside, which stays
                 * unused in its cache. The next try uses it again rather than leave one more
                 * unused challenge in NDES's cache, shared by the fleet, at every retry (a reused
                 * one NDES did consume is answered 0x800B0110, and a fresh one is fetched); and
                 * the CA's other enrollments wait for that one instead of fetching their own. */
                attempt_give_back_challenge(a, attempt_fetcher(req));
                if (a->probe) {
                        /* Without a challenge NDES cannot have issued it; nothing is in doubt. */
                        request_clear_submitted(req);
                        snprintf(err.message, sizeof err.message, "NDES still cannot read this CA's PKIOperations "
                                 "(HTTP 500 to a PKCSReq without a challenge); no challenge is fetched until it "
                                 "can, asking again.");
                }
                /* The likeliest cause is RA certificates NDES no longer has (expired, renewed):
                 * the next try asks GetCACert again, so that it is encrypted to NDES's current
                 * ones. */
                if (!attempt_meta(req)->meta_http)
                        attempt_meta(req)->certs = scep_cacerts_free(attempt_meta(req)->certs);
                const CbCa *cc = request_ca_config(req);
                if (challenge_fetcher_limit_unread(attempt_fetcher(req)))
                        log_notice("CA %s: %s answered a PKIOperation with HTTP 500 (NDES cannot decrypt "
                                   "it, and never reads its challenge): the CA uses one challenge at a time "
                                   "for a challenge lifetime.", ca->name,
                                   (cc ? ca_server_host(cc, a->server) : NULL) ?: "NDES");
        }
        if (r != 0) {
                attempt_failed(req, res->http_code >= 500 ? TRANSPORT_CA_UNREACHABLE : TRANSPORT_PROTOCOL_ERROR,
                             err.message[0] ? err.message : "Unusable PKIOperation answer");
                return;
        }
        if (next == SCEP_HTTP_RETRY_GET) {
                log_notice("CA %s answered a POST PKIOperation with an empty 200 (Windows 2012 NDES); "
                           "using GET from now on.", req->rec->ca);
                attempt_meta(req)->force_get = true;
                a->transport = SCEP_TRANSPORT_GET;
                send_pkioperation(req);
                return;
        }
        handle_certrep(req, res);
}

static void send_pkioperation(Request *req) {
        const CbCa *c = request_ca_config(req);
        Attempt *a = req->engine;
        _cleanup_free_ char *url = NULL, *why = NULL, *enc = NULL;
        int r;

        HttpRequestOptions o = {
                .permitted_suffix = req->manager->config->permitted_suffix,
                .negotiate = c->authentication == CB_AUTHENTICATION_KERBEROS,
                .trust_anchors = c->trust_anchors,
                .timeout_usec = c->timeout_usec,
                .max_response = SCEP_CERTREP_MAX_SIZE,
        };
        if (a->transport == SCEP_TRANSPORT_POST) {
                if (asprintf(&url, "%s?operation=PKIOperation", ca_server_url(c, a->server)) < 0) {
                        request_attempt_failed_errno(req, -ENOMEM, "Cannot build the PKIOperation URL");
                        return;
                }
                o.post_data = a->msg->der;
                o.post_size = a->msg->size;
                o.content_type = "application/x-pki-message";
        } else {
                r = scep_message_encode_get(a->msg->der, a->msg->size, &enc);
                if (r != 0) {
                        request_attempt_failed_errno(req, r < 0 ? r : -ENOMEM,
                                                     "Cannot encode the PKIOperation for GET");
                        return;
                }
                if (asprintf(&url, "%s?operation=PKIOperation&message=%s", ca_server_url(c, a->server), enc) < 0) {
                        request_attempt_failed_errno(req, -ENOMEM, "Cannot build the PKIOperation URL");
                        return;
                }
        }
        o.url = url;
        a->url_size = strlen(url);
        r = http_client_start(manager_engine(req->manager)->http, &o, on_pkioperation, req, &a->http, &why);
        if (r < 0)
                end_failed(req, r == -EPERM ? BROKER_ERROR_NAME_NOT_PERMITTED : BROKER_ERROR_PROTOCOL_ERROR,
                           why ?: "The CA URL is refused.");
}

static void on_submission_durable(int error, void *userdata) {
        Request *req = userdata;
        Attempt *a = req->engine;

        assert(a && a->sync);   /* engine_request_stop() cancels the wait with the attempt */
        a->sync = NULL;
        if (error < 0) {
                request_attempt_failed_errno(req, error, "Cannot make the submission durable");
                return;
        }
        if (!a->crypto)         /* else on_message_built() sends it */
                send_pkioperation(req);
}

/* The request's subject as the CSR's RDNs: *ret (malloc'd) points into *ret_subject, which
 * must outlive it. */
static int build_subject(const char *text, ScepRdn **ret, size_t *ret_n, CbSubject **ret_subject) {
        _cleanup_(cb_subject_freep) CbSubject *s = NULL;
        const char *reason = NULL;
        ScepRdn *rdns;
        int r;

        r = cb_subject_parse(text, &s, &reason);
        if (r < 0)
                return r;
        rdns = calloc(s->n_rdns ? s->n_rdns : 1, sizeof(*rdns));
        if (!rdns)
                return -ENOMEM;
        for (size_t i = 0; i < s->n_rdns; i++)
                rdns[i] = (ScepRdn) { .type = s->rdns[i].type, .value = s->rdns[i].value };
        *ret = rdns;
        *ret_n = s->n_rdns;
        *ret_subject = TAKE_PTR(s);
        return 0;
}

static void on_message_built(void *userdata);

static void step_pkioperation(Request *req) {
        Attempt *a = req->engine;
        int r;

        CaMeta *cm = attempt_meta(req);
        if (!cm->certs || !cm->have_caps) {
                /* Another request dropped the CA's metadata (a reply that did not verify) while
                 * this one waited for its challenge: fetched again first, the challenge kept. */
                step_meta(req);
                return;
        }
        /* Trust on first use: the CA is the one the challenge's page vouches for. */
        if (!a->polling && thumbprint_check(req) == 0)
                return;
        scep_cacerts_free(a->certs);
        a->certs = scep_cacerts_ref(cm->certs);
        const ScepAlgorithms *alg = &cm->alg;
        a->transport = cm->force_get ? SCEP_TRANSPORT_GET : alg->transport;

        crypto_job_cancel(a->prebuild);         /* not built yet: the message's job builds it */
        a->prebuild = NULL;
        if (!a->polling) {
                /* A PKCSReq: on disk first that this transaction may reach the CA, so that
                 * after a crash the request asks the CA (CertPoll) instead of having it issue
                 * twice. The transaction id comes from the key, so the mark is written now and
                 * the group commit's worker does the fsync while the loop builds the request;
                 * it is sent once both are done (on_submission_durable()). */
                char txid[SCEP_TRANSACTION_ID_SIZE];
                r = scep_transaction_id_for_key(req->key, txid);
                if (r < 0) {
                        request_attempt_failed_errno(req, r, "Cannot derive the transaction id");
                        return;
                }
                /* Where it goes is recorded with it: CertPolls go to the same server. */
                const CbCa *c = request_ca_config(req);
                char *server = c ? strdup(ca_server_url(c, a->server)) : NULL;
                if (server) {
                        free(req->rec->server);
                        req->rec->server = server;
                }
                r = request_mark_submitted(req, txid);
                if (r < 0) {
                        attempt_failed(req, TRANSPORT_CA_UNREACHABLE,
                                       "The request journal cannot record the submission (see the journal); not "
                                       "sent, retrying.");
                        return;
                }
                /* The challenge's record, in the same fsync: no longer kept (it may reach NDES
                 * now), tied to this request (its CertRep proves it consumed). */
                challenge_secret_set_sent(a->challenge, req->rec->id);
                r = journal_sync_request(req->manager->journal_sync, on_submission_durable, req, &a->sync);
                if (r < 0) {
                        request_clear_submitted(req);
                        request_attempt_failed_errno(req, r, "Cannot make the submission durable");
                        return;
                }
        }

        /* The CSR, the signer certificate and the message are built on a crypto worker
         * (on_message_built() takes them back): the loop goes on answering the bus. */
        _cleanup_(scep_build_job_freep) ScepBuildJob *j = scep_build_job_new();
        if (!j) {
                request_attempt_failed_errno(req, -ENOMEM, "Cannot allocate the SCEP message's build job");
                return;
        }
        if (a->polling && req->rec->csr && *req->rec->csr) {
                if (scep_csr_from_pem(req->rec->csr, &j->csr) < 0) {
                        end_failed(req, BROKER_ERROR_PROTOCOL_ERROR,
                                       "The pending request's CSR in the journal does not parse; enroll again.");
                        return;
                }
        } else {
                /* A CertPoll without a stored CSR (recovering a submission) names the same
                 * subject and key from the record; only a PKCSReq carries the challenge. */
                _cleanup_free_ ScepRdn *rdns = NULL;
                _cleanup_(cb_subject_freep) CbSubject *subject = NULL;
                size_t n_rdns = 0;

                r = build_subject(req->rec->subject, &rdns, &n_rdns, &subject);
                if (r < 0) {
                        end_failed(req, BROKER_ERROR_INVALID_ARGUMENT,
                                       "The request's subject in the journal does not parse.");
                        return;
                }
                r = scep_build_job_set_subject(j, rdns, n_rdns, (const char *const *) req->rec->names);
                if (r < 0) {
                        request_attempt_failed_errno(req, r, "Cannot put the subject and names into the CSR");
                        return;
                }
                r = scep_build_job_set_challenge(j, a->challenge ? challenge_secret_get(a->challenge, NULL) : NULL);
                if (r < 0) {
                        request_attempt_failed_errno(req, r, "Cannot put the challenge into the CSR");
                        return;
                }
                j->usage = strcmp(req->rec->usage, "signature") == 0 ? SCEP_USAGE_SIGNATURE :
                           strcmp(req->rec->usage, "encryption") == 0 ? SCEP_USAGE_ENCRYPTION :
                           SCEP_USAGE_BOTH;
                /* The challenge goes into the CSR. Our copy (guarded memory) stays until the
                 * PKIOperation is answered or the attempt ends: an answer that proves NDES never
                 * saw the request (IIS's 503) gives it to the next enrollment instead of leaving
                 * it unused in NDES's cache. Its outstanding slot is given back only when a
                 * CertRep answered (or held until NDES forgets it): until NDES has read the
                 * request it still holds the challenge as unused, and starting another fetch
                 * earlier overfilled its cache ("The password cache is full.") under many
                 * callers. */
                a->challenge_sent = a->challenge != NULL;
        }
        EVP_PKEY *signer_key = a->renewal ? a->renewal_key : a->transport_key ?: req->key;
        X509 *signer = a->renewal ? a->renewal_cert : a->signer;
        if (req->key && EVP_PKEY_up_ref(req->key))
                j->key = req->key;
        if (signer_key && EVP_PKEY_up_ref(signer_key))
                j->signer_key = signer_key;
        if (signer && X509_up_ref(signer))
                j->signer_cert = signer;
        j->certs = scep_cacerts_ref(a->certs);
        j->cipher = alg->cipher;
        j->digest = alg->digest;
        j->type = a->polling ? SCEP_MESSAGE_CERT_POLL : a->renewal ? SCEP_MESSAGE_RENEWAL_REQ : SCEP_MESSAGE_PKCS_REQ;
        /* The challenge is in the (encrypted) PKCSReq then and is never needed again: a
         * resubmission fetches a fresh one. What is kept of the CSR (CertRep, CertPoll, the
         * journal if PENDING) is its subject and key: the challenge is taken out, wiped. Its
         * signature is made again only if the journal keeps it (PENDING): one RSA private
         * operation less on every enrollment issued at once. */
        j->strip_challenge = !a->polling;
        j->userdata = req;
        r = crypto_work_submit(req->manager->crypto, scep_build_job_run, on_message_built, scep_build_job_free, j,
                               &a->crypto);
        if (r < 0) {
                request_attempt_failed_errno(req, r, "Cannot queue the SCEP message for building");
                return;
        }
        TAKE_PTR(j);    /* the worker's now */
}

/* On the loop, with what the worker built. A CertPoll goes at once; a PKCSReq when its mark is
 * on disk too (on_submission_durable()). */
static void on_message_built(void *userdata) {
        ScepBuildJob *j = userdata;
        Request *req = j->userdata;
        Attempt *a = req->engine;
        char msg[SCEP_ERROR_MESSAGE_MAX + 512];

        a->crypto = NULL;
        scep_csr_free(a->csr);
        a->csr = TAKE_PTR(j->csr);
        if (!a->renewal && !a->signer)
                a->signer = TAKE_PTR(j->signer_cert);
        scep_message_free(a->msg);
        a->msg = TAKE_PTR(j->msg);
        if (j->result != 0) {
                const char *why = j->err.message[0] ? j->err.message : strerror(-j->result);
                if (j->csr_failed)
                        snprintf(msg, sizeof msg, "Cannot build the PKCS#10 request: %s", why);
                else
                        snprintf(msg, sizeof msg, "Cannot build the SCEP message: %s", why);
                end_failed(req, BROKER_ERROR_PROTOCOL_ERROR, msg);        /* nothing was sent */
                return;
        }
        /* The transaction id is in the record already: request_mark_submitted() wrote it for a
         * PKCSReq, and a CertPoll is only sent for a request that has one. */
        if (a->polling || !a->sync)
                send_pkioperation(req);
}

int engine_request_start(Request *req) {
        uint64_t now = now_usec();

        if (request_state_is_terminal(req->rec->state) || req->engine || req->key_job)
                return 0;
        if (now >= request_deadline(req) && !request_is_renewal(req)) {
                end_failed(req, BROKER_ERROR_TIMEOUT,
                               req->rec->state == REQUEST_PENDING ?
                               "The CA did not issue the pending request before PendingDeadline." :
                               "The request did not succeed before PendingDeadline.");
                return 0;
        }
        if (req->rec->next_attempt > now && !req->timer) {
                request_schedule(req, req->rec->next_attempt);
                return 0;
        }
        if (req->rec->state == REQUEST_PENDING || (req->rec->submitted != 0 && !req->recovery_resubmit)) {
                Attempt *a = attempt_begin(req);
                if (!a)
                        return -ENOMEM;
                /* A PKCSReq that may have reached the CA (the broker was stopped, or the answer
                 * was lost): ask about its transaction before submitting it again. */
                a->polling = true;
                a->recovering = req->rec->state != REQUEST_PENDING;
        }
        /* else, with recovery_resubmit: CertPoll got no CertRep RECOVERY_POLLS_MAX times; step_submit()
         * submits again once GetCACaps has answered (step_meta()). */
        step_key(req);
        return 0;
}

/* ---- CA metadata ---- */

static void meta_done(CaMeta *ce, TransportOutcome outcome, const char *message) {
        CaState *ca = ce->ca;
        MetaWaiter *list = ce->meta_waiters;

        ce->meta_waiters = NULL;
        ca_set_error(ca, outcome == TRANSPORT_OK ? NULL : message);
        manager_notify_ca_changed(ca);
        /* Reverse to FIFO order. */
        MetaWaiter *fifo = NULL;
        while (list) {
                MetaWaiter *n = list->next;
                list->next = fifo;
                fifo = list;
                list = n;
        }
        while (fifo) {
                MetaWaiter *w = fifo;
                fifo = w->next;
                Request *req = w->request;
                free(w);
                if (!req->engine)
                        continue;
                if (outcome == TRANSPORT_OK)
                        step_submit(req);
                else
                        attempt_failed(req, outcome, message);
        }
}

static void on_meta(HttpClient *client, const HttpResult *res, void *userdata) {
        CaMeta *ce = userdata;
        CaState *ca = ce->ca;
        const CbCa *c = cb_config_find_ca(ca->manager->config, ca->name);
        ScepError err = {};
        char msg[SCEP_ERROR_MESSAGE_MAX + 512];
        int r;

        assert(ce->meta_http);  /* cancelled requests call no handler */
        ce->meta_http = NULL;
        if (!c)
                return;
        if (res->outcome != TRANSPORT_OK) {
                meta_done(ce, res->outcome, res->message);
                return;
        }
        ca_set_contact(ca, now_usec());
        ca_servers_answered(&ca_engine(ca)->servers, ce->server);

        /* A web page where SCEP data was asked for: IIS's maintenance or error page, a portal in
         * front of it. Not the server's answer: try again later. */
        if (res->http_code == 200 && res->content_type && strncasecmp(res->content_type, "text/html", 9) == 0) {
                snprintf(msg, sizeof msg, "%s at %s answered an HTML page (%s) instead of SCEP data; retrying.",
                         ce->meta_step == CA_META_CAPS ? "GetCACaps" : "GetCACert", ca_server_url(c, ce->server), res->content_type);
                meta_done(ce, TRANSPORT_CA_UNREACHABLE, msg);
                return;
        }

        if (ce->meta_step == CA_META_CAPS) {
                /* GetCACaps: a server that is down (5xx: IIS with its pool stopped answers 503)
                 * says nothing about capabilities: try again later. An other HTTP error or an
                 * empty body means no capabilities (servers before GetCACaps). */
                if (res->http_code >= 500) {
                        snprintf(msg, sizeof msg, "GetCACaps at %s answered HTTP %ld: the SCEP server is unavailable; "
                                 "retrying.", ca_server_url(c, ce->server), res->http_code);
                        meta_done(ce, TRANSPORT_CA_UNREACHABLE, msg);
                        return;
                }
                unsigned caps = 0;
                if (res->http_code == 200) {
                        r = scep_caps_parse(res->body, res->body_size, &caps, &err);
                        if (r != 0)
                                caps = 0;
                }
                r = scep_caps_choose(caps, c->allow_legacy_ciphers ? SCEP_FLOOR_LEGACY : SCEP_FLOOR_DEFAULT,
                                     &ce->alg, &err);
                if (r != 0) {
                        snprintf(msg, sizeof msg, "CA %s: %s", ca->name, err.message);
                        meta_done(ce, TRANSPORT_PROTOCOL_ERROR, msg);
                        return;
                }
                ce->caps = caps;
                ce->have_caps = true;
                const char *names[11];
                size_t n = scep_caps_to_strv(caps, names);
                ca_set_capabilities(ca, names, n);
                ca_meta_fetch(ce);
                return;
        }

        if (res->http_code != 200) {
                snprintf(msg, sizeof msg, "GetCACert at %s answered HTTP %ld.", ca_server_url(c, ce->server), res->http_code);
                meta_done(ce, res->http_code >= 500 ? TRANSPORT_CA_UNREACHABLE : TRANSPORT_PROTOCOL_ERROR, msg);
                return;
        }
        _cleanup_(scep_cacerts_freep) ScepCACerts *certs = NULL;
        r = scep_cacert_parse(res->content_type, res->body, res->body_size,
                              c->has_fingerprint ? c->fingerprint : NULL, &certs, &err);
        if (r != 0) {
                snprintf(msg, sizeof msg, "GetCACert at %s: %s", ca_server_url(c, ce->server), err.message[0] ? err.message : strerror(-r));
                meta_done(ce, TRANSPORT_PROTOCOL_ERROR, msg);
                return;
        }
        scep_cacerts_free(ce->certs);
        ce->certs = TAKE_PTR(certs);
        ca_set_certificates(ca, ce->certs);
        meta_done(ce, TRANSPORT_OK, NULL);
}

static void ca_meta_fetch(CaMeta *ce) {
        CaState *ca = ce->ca;
        const CbCa *c = cb_config_find_ca(ca->manager->config, ca->name);
        _cleanup_free_ char *url = NULL, *why = NULL;
        int r;

        if (!c)
                return;
        ce->meta_step = ce->have_caps ? CA_META_CACERT : CA_META_CAPS;
        if (asprintf(&url, "%s?operation=%s", ca_server_url(c, ce->server), ce->meta_step == CA_META_CAPS ? "GetCACaps" : "GetCACert") < 0) {
                meta_done(ce, TRANSPORT_PROTOCOL_ERROR, "Out of memory building the CA metadata URL");
                return;
        }
        HttpRequestOptions o = {
                .url = url,
                .permitted_suffix = ca->manager->config->permitted_suffix,
                .negotiate = c->authentication == CB_AUTHENTICATION_KERBEROS,
                .trust_anchors = c->trust_anchors,
                .timeout_usec = c->timeout_usec,
                .max_response = ce->meta_step == CA_META_CAPS ? SCEP_CAPS_MAX_SIZE : SCEP_CACERT_MAX_SIZE,
        };
        r = http_client_start(manager_engine(ca->manager)->http, &o, on_meta, ce, &ce->meta_http, &why);
        if (r < 0)
                meta_done(ce, r == -EPERM ? TRANSPORT_NAME_NOT_PERMITTED : TRANSPORT_PROTOCOL_ERROR,
                          why ?: "The CA URL is refused.");
}

/* Every server of the CA fetches its metadata again. */
int engine_ca_refresh(Manager *m, CaState *ca) {
        const CbCa *c = cb_config_find_ca(m->config, ca->name);

        for (size_t i = 0; c && i < c->n_servers; i++) {
                CaMeta *ce = ca_meta(ca, i);
                if (ce->meta_http)
                        continue;       /* a fetch is under way already */
                ce->have_caps = false;
                ce->certs = scep_cacerts_free(ce->certs);
                ce->force_get = false;
                ca_meta_fetch(ce);
        }
        return 0;
}

/* ---- engine-wide ---- */

const char *engine_credential_state(Manager *m) {
        Engine *e = manager_engine(m);
        return e && e->creds ? credential_state_to_string(krb5_creds_get_state(e->creds)) : "unavailable";
}

uint64_t engine_credential_expiry(Manager *m) {
        Engine *e = manager_engine(m);
        return e && e->creds ? krb5_creds_get_expiry(e->creds) : 0;
}

static void on_credential_state(Krb5Creds *c, void *userdata) {
        Manager *m = userdata;

        manager_notify_credentials_changed(m);
}

static int engine_start_creds(Manager *m) {
        Engine *e = manager_engine(m);
        const CbConfig *cfg = m->config;
        _cleanup_free_ char *msg = NULL;
        int r;

        /* The configuration counts its KDCs; the credentials want a NULL-terminated list. */
        char *kdcs[cfg->n_kdcs + 1];
        for (size_t i = 0; i < cfg->n_kdcs; i++)
                kdcs[i] = cfg->kdcs[i];
        kdcs[cfg->n_kdcs] = NULL;

        Krb5Settings s = {
                .realm = cfg->realm,
                .kdcs = cfg->n_kdcs > 0 ? kdcs : NULL,
                .principal = cfg->principal,
                .keytab = cfg->keytab,
                .mode = cfg->mode == CB_KERBEROS_MODE_GSS_PROXY ? KRB5_MODE_GSS_PROXY : KRB5_MODE_KEYTAB,
                .domain_suffix = cfg->permitted_suffix,
                .runtime_dir = e->runtime_dir,
        };
        r = krb5_creds_new(m->event, &s, &e->creds, &msg);
        if (r < 0) {
                log_error_errno(r, "Kerberos credentials unavailable: %s", msg ?: strerror(-r));
                free(e->krb5_error);
                e->krb5_error = TAKE_PTR(msg);
                return r;
        }
        krb5_creds_set_state_handler(e->creds, on_credential_state, m);
        return 0;
}

/* A private directory for the Kerberos profile: systemd's RuntimeDirectory=, else one of our
 * own under /run (or $TMPDIR when /run is not writable, as in tests). malloc'd; NULL with
 * errno set. */
static char *runtime_dir_new(void) {
        const char *rt = getenv("RUNTIME_DIRECTORY");
        char tmpl[] = "/run/certbroker.XXXXXX", alt[4096];

        if (rt && *rt)
                return strdup(rt);
        if (mkdtemp(tmpl))
                return strdup(tmpl);
        snprintf(alt, sizeof alt, "%s/certbroker.XXXXXX", getenv("TMPDIR") ?: "/tmp");
        if (mkdtemp(alt))
                return strdup(alt);
        return NULL;
}

int engine_new(Manager *m) {
        Engine *e = calloc(1, sizeof(*e));
        int r;

        if (!e)
                return log_error_errno(ENOMEM, "Cannot allocate the request engine: %m");
        m->engine = e;  /* engine_free() undoes what follows, from any point */
        e->runtime_dir = runtime_dir_new();
        if (!e->runtime_dir)
                return log_error_errno(errno ?: ENOMEM, "Cannot create a private runtime directory: %m");

        r = http_client_new(m->event, &e->http);
        if (r < 0)
                return log_error_errno(r, "Cannot set up HTTP: %m");

        /* Without credentials the broker still starts: CredentialState says "unavailable",
         * requests wait in retrying, and CA.Check() names the problem. */
        (void) engine_start_creds(m);
        return 0;
}

void engine_ca_free(CaEngine *ce) {
        if (!ce)
                return;
        for (size_t i = 0; i < CB_CA_SERVERS_MAX; i++) {
                CaMeta *cm = &ce->meta[i];
                http_request_cancel(cm->meta_http);
                while (cm->meta_waiters) {
                        MetaWaiter *w = cm->meta_waiters;
                        cm->meta_waiters = w->next;
                        free(w);
                }
                scep_cacerts_free(cm->certs);
                challenge_fetcher_free(ce->fetchers[i]);
                free(ce->fetcher_urls[i]);
        }
        uid_limit_free(ce->check_challenge_limit);
        free(ce);
}

void engine_free(Manager *m) {
        Engine *e = manager_engine(m);

        if (!e)
                return;
        engine_checks_free(m);
        for (size_t i = 0; i < m->n_cas; i++)
                ca_state_free(m->cas[i]);
        free(m->cas);
        m->cas = NULL;
        m->n_cas = 0;
        http_client_free(e->http);
        krb5_creds_free(e->creds);
        if (e->runtime_dir && !getenv("RUNTIME_DIRECTORY")) {
                char path[4200];
                snprintf(path, sizeof path, "%s/krb5.conf", e->runtime_dir);
                (void) unlink(path);
                (void) rmdir(e->runtime_dir);
        }
        free(e->runtime_dir);
        free(e->krb5_error);
        free(e->krb5_settings);
        free(e);
        m->engine = NULL;
}

/* The [Kerberos] settings as one string, to notice when a Reload changes them. */
static char *krb5_settings_string(const CbConfig *cfg) {
        _cleanup_free_ char *kdcs = NULL;
        char *s;
        size_t len = 1;

        for (size_t i = 0; i < cfg->n_kdcs; i++)
                len += strlen(cfg->kdcs[i]) + 1;
        kdcs = calloc(1, len);
        if (!kdcs)
                return NULL;
        for (size_t i = 0; i < cfg->n_kdcs; i++) {
                strcat(kdcs, cfg->kdcs[i]);
                strcat(kdcs, " ");
        }
        if (asprintf(&s, "%s\n%s\n%s\n%s\n%d\n%s", cfg->realm, kdcs, cfg->principal, cfg->keytab,
                     (int) cfg->mode, cfg->permitted_suffix) < 0)
                return NULL;
        return s;
}


/* A Reload changed [Kerberos]: new credentials. Everything holding the old ones lets go first:
 * challenge fetches (restarted on the new fetchers by engine_config_changed()) and CA.Check()
 * calls in progress (answered with a note to run them again). */
static int engine_renew_creds(Manager *m, char *settings) {
        Engine *e = manager_engine(m);

        for (size_t i = 0; i < m->n_requests; i++) {
                Attempt *a = m->requests[i]->engine;
                if (a && a->fetch) {
                        a->fetch = challenge_fetch_cancel(a->fetch);
                        a->restart_challenge = true;
                }
        }
        engine_checks_abort(m, NULL);
        for (size_t i = 0; i < m->n_cas; i++)
                for (size_t j = 0; j < CB_CA_SERVERS_MAX; j++)
                        ca_engine(m->cas[i])->fetchers[j] = challenge_fetcher_free(ca_engine(m->cas[i])->fetchers[j]);
        e->creds = krb5_creds_free(e->creds);
        free(e->krb5_error);
        e->krb5_error = NULL;
        free(e->krb5_settings);
        e->krb5_settings = settings;
        log_info("The [Kerberos] settings changed: new credentials for %s.", m->config->principal);
        (void) engine_start_creds(m);
        on_credential_state(e->creds, m);
        return 0;
}

/* A CA's new challenge fetchers (one per server) and their admin pages, until they replace
 * the old ones. */
typedef struct CaFetchers {
        ChallengeFetcher *fetchers[CB_CA_SERVERS_MAX];
        char *urls[CB_CA_SERVERS_MAX];
} CaFetchers;

static void ca_fetchers_done(CaFetchers *f) {
        for (size_t i = 0; i < CB_CA_SERVERS_MAX; i++) {
                challenge_fetcher_free(f->fetchers[i]);
                free(f->urls[i]);
        }
}

/* (Re)creates the CA's challenge fetchers, one per server, from the configuration in force.
 * Fetches in flight on the old ones start again on the new ones; challenges already handed out
 * keep their slots. */
static int ca_setup_fetcher(Manager *m, CaState *ca, const CbCa *c) {
        CaEngine *ce = ca_engine(ca);
        _cleanup_(ca_fetchers_done) CaFetchers new = {};
        ChallengeJournal journal;
        int r;

        /* What NDES holds for us is recorded in the store: a restarted broker counts it. */
        challenge_journal_init(&journal, m->store);

        for (size_t i = 0; i < c->n_servers; i++) {
                const char *admin_url = ca_server_admin_url(c, i);
                if (c->challenge != CB_CHALLENGE_MSCEP_ADMIN || !admin_url ||
                    (c->authentication == CB_AUTHENTICATION_KERBEROS && !manager_engine(m)->creds))
                        continue;
                /* Servers may have been reordered, added or removed: the fetcher of the same page
                 * hands over what NDES holds for us. */
                ChallengeFetcher *previous = NULL;
                for (size_t j = 0; j < CB_CA_SERVERS_MAX && !previous; j++)
                        if (ce->fetchers[j] && ce->fetcher_urls[j] && strcmp(ce->fetcher_urls[j], admin_url) == 0)
                                previous = ce->fetchers[j];
                ChallengeFetcherSettings s = {
                        .ca_name = c->name,
                        .admin_url = admin_url,
                        .permitted_suffix = m->config->permitted_suffix,
                        .trust_anchors = c->trust_anchors,
                        .timeout_usec = c->timeout_usec,
                        .max_outstanding = c->max_outstanding_challenges,
                        .kerberos = c->authentication == CB_AUTHENTICATION_KERBEROS,
                        .event = m->event,
                        .previous = previous,
                        .server_url = ca_server_url(c, i),
                        .journal = m->store ? &journal : NULL,
                };
                r = challenge_fetcher_new(manager_engine(m)->http, manager_engine(m)->creds, &s, &new.fetchers[i]);
                if (r < 0)
                        return log_error_errno(r, "CA %s: cannot set up challenge retrieval from %s: %m",
                                               c->name, admin_url);
                new.urls[i] = strdup(admin_url);
                if (!new.urls[i])
                        return log_error_errno(ENOMEM, "CA %s: cannot keep the admin page %s: %m", c->name,
                                               admin_url);
        }

        /* Requests waiting on the old fetchers start again on the new ones. */
        Request *moved[m->n_requests + 1];
        size_t n_moved = 0;
        for (size_t i = 0; i < m->n_requests; i++) {
                Request *req = m->requests[i];
                Attempt *a = req->engine;
                if (a && a->fetch && strcmp(req->rec->ca, ca->name) == 0) {
                        a->fetch = challenge_fetch_cancel(a->fetch);
                        moved[n_moved++] = req;
                }
        }
        for (size_t i = 0; i < CB_CA_SERVERS_MAX; i++) {
                /* A server no longer configured (its spares went to its successor otherwise). */
                challenge_fetcher_drop_spares(ce->fetchers[i]);
                challenge_fetcher_free(ce->fetchers[i]);
                ce->fetchers[i] = TAKE_PTR(new.fetchers[i]);
                free(ce->fetcher_urls[i]);
                ce->fetcher_urls[i] = TAKE_PTR(new.urls[i]);
        }
        /* Spares recorded for a server no longer configured are not kept. */
        const char *admin_urls[CB_CA_SERVERS_MAX] = {};
        for (size_t i = 0; i < c->n_servers && i < CB_CA_SERVERS_MAX; i++)
                admin_urls[i] = ca_server_admin_url(c, i);
        challenge_journal_servers(m->store, c->name, admin_urls, c->n_servers);
        ce->servers = (CaServers) { .n = c->n_servers };       /* a new load tries every server again */
        ce->warned_anonymous = false;   /* a new load: a new warning if mscep_admin is still open */
        for (size_t i = 0; i < n_moved; i++)
                step_challenge(moved[i]);
        return 0;
}

/* A CA new in the configuration: its state with a fresh engine part. */
static int engine_ca_new(Manager *m, const char *name, CaState **ret) {
        CaEngine *ce = calloc(1, sizeof(*ce));
        CaState *ca;
        int r;

        if (!ce)
                return -ENOMEM;
        r = ca_state_new(m, name, ce, &ca);     /* takes ce, also on failure */
        if (r < 0)
                return r;
        for (size_t i = 0; i < CB_CA_SERVERS_MAX; i++)
                ce->meta[i] = (CaMeta) { .ca = ca, .server = i };
        *ret = ca;
        return 0;
}

/* Frees the first n of cas that engine_ca_new() made (those the manager does not have yet). */
static void engine_cas_free_new(Manager *m, CaState **cas, size_t n) {
        for (size_t i = 0; i < n; i++)
                if (!manager_find_ca_state(m, cas[i]->name))
                        ca_state_free(cas[i]);
}

int engine_config_changed(Manager *m) {
        char *settings = krb5_settings_string(m->config);
        int r;

        if (!settings)
                return log_error_errno(ENOMEM, "Cannot compare the [Kerberos] settings: %m");
        if (manager_engine(m)->krb5_settings && strcmp(settings, manager_engine(m)->krb5_settings) != 0)
                (void) engine_renew_creds(m, settings);
        else {
                free(manager_engine(m)->krb5_settings);
                manager_engine(m)->krb5_settings = settings;
        }

        /* Per-CA state follows the configuration: new CAs get fresh state, removed ones go
         * (their requests fail as UnknownCA at their next step), kept ones keep their cache
         * unless their URL changed. */
        _cleanup_free_ CaState **cas = calloc(m->config->n_cas + 1, sizeof(CaState *));

        if (!cas)
                return log_error_errno(ENOMEM, "Cannot allocate the list of CAs: %m");
        for (size_t i = 0; i < m->config->n_cas; i++) {
                const char *name = m->config->cas[i].name;

                cas[i] = manager_find_ca_state(m, name);
                if (cas[i])
                        continue;
                r = engine_ca_new(m, name, &cas[i]);
                if (r < 0) {
                        engine_cas_free_new(m, cas, i);
                        return log_error_errno(r, "CA %s: cannot set up its state: %m", name);
                }
        }
        /* Drop the CAs that are gone. */
        for (size_t i = 0; i < m->n_cas; i++) {
                bool kept = false;
                for (size_t j = 0; j < m->config->n_cas; j++)
                        if (cas[j] == m->cas[i])
                                kept = true;
                if (kept) {
                        /* Refetch metadata lazily in case the URL or trust changed. */
                        for (size_t j = 0; j < CB_CA_SERVERS_MAX; j++) {
                                CaMeta *ce = ca_meta(m->cas[i], j);
                                if (!ce->meta_http) {
                                        ce->have_caps = false;
                                        ce->certs = scep_cacerts_free(ce->certs);
                                        ce->force_get = false;
                                }
                        }
                        continue;
                }
                CaState *ca = m->cas[i];
                /* Checks of this CA hold its state: they end now. */
                engine_checks_abort(m, ca);
                for (size_t j = 0; j < CB_CA_SERVERS_MAX; j++) {
                        CaMeta *ce = ca_meta(ca, j);
                        http_request_cancel(ce->meta_http);
                        ce->meta_http = NULL;
                        meta_done(ce, TRANSPORT_PROTOCOL_ERROR, "The CA was removed from the configuration.");
                }
                for (size_t j = 0; j < m->n_requests; j++) {
                        Request *req = m->requests[j];
                        if (req->engine && strcmp(req->rec->ca, ca->name) == 0)
                                end_failed(req, BROKER_ERROR_UNKNOWN_CA,
                                               "The CA was removed from the configuration.");
                }
                /* Out of the list before it is freed: the next removed CA's requests look CAs up
                 * by name while they end. */
                m->cas[i] = NULL;
                ca_state_free(ca);
        }
        free(m->cas);
        m->cas = TAKE_PTR(cas);
        m->n_cas = m->config->n_cas;

        /* Attempts in flight keep their server when a Reload reordered URL=; one whose server is
         * gone starts again once the new fetchers are there (a new choice; a transaction at
         * that server is then asked about at the first server, as after a restart). */
        Request *restart[m->n_requests + 1];
        size_t n_restart = 0;
        for (size_t i = 0; i < m->n_requests; i++) {
                Request *req = m->requests[i];
                Attempt *a = req->engine;
                const CbCa *c = a && a->server_url ? request_ca_config(req) : NULL;
                int k = c ? cb_ca_server_index(c, a->server_url) : -ENOENT;
                if (!c)
                        continue;
                if (k >= 0) {
                        a->server = (size_t) k;
                        continue;
                }
                log_notice("Request %s: its server %s is no longer in URL= of CA %s; starting its attempt again.",
                           req->rec->id, a->server_url, c->name);
                attempt_end(req);
                restart[n_restart++] = req;
        }
        for (size_t i = 0; i < m->n_cas; i++) {
                r = ca_setup_fetcher(m, m->cas[i], &m->config->cas[i]);        /* logs why */
                if (r < 0) {
                        for (size_t j = 0; j < n_restart; j++)
                                (void) engine_request_start(restart[j]);
                        return r;
                }
        }
        for (size_t i = 0; i < m->n_requests; i++) {
                Attempt *a = m->requests[i]->engine;
                if (a && a->restart_challenge) {
                        a->restart_challenge = false;
                        step_challenge(m->requests[i]);
                }
        }
        for (size_t i = 0; i < n_restart; i++)
                (void) engine_request_start(restart[i]);
        return 0;
}
