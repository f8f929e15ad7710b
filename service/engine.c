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
#include <errno.h>
#include <fcntl.h>
#include <openssl/bn.h>
#include <openssl/err.h>
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
#include "engine.h"
#include "engine-internal.h"
#include "renewal.h"
#include "uid-limit.h"
#include "http-client.h"
#include "krb5-creds.h"
#include "log.h"
#include "scep-cacert.h"
#include "scep-caps.h"
#include "scep-certrep.h"
#include "scep-csr.h"
#include "scep-message.h"

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
        X509_REQ *csr;
        X509 *signer;
        sd_event_source *prebuild;      /* builds the signer while the challenge is fetched */
        EVP_PKEY *transport_key;        /* EC requests: a transient RSA key for the SCEP envelope */
        uint64_t transport_job;
        ScepMessage *msg;
        ScepTransport transport;
        size_t url_size;                /* of a GET PKIOperation, for the URL-limit hint */
        bool challenge_sent;            /* challenge is in a PKCSReq built (and maybe sent) */
        ScepCACerts *certs;             /* the CA's certificates the message was built with (a
                                         * reference: a Reload may fetch the CA's again meanwhile) */
        char thumbprint[33];            /* what the challenge's page said (ChallengeResult) */
        bool multi_use;
        unsigned validity_minutes;
} Attempt;


static const CbCa *request_ca_config(Request *r) {
        return cb_config_find_ca(r->manager->config, r->rec->ca);
}

static CaState *request_ca_state(Request *r) {
        return manager_find_ca_state(r->manager, r->rec->ca);
}

/* ---- per-request bookkeeping ---- */

static void attempt_free(Attempt *a) {
        if (!a)
                return;
        http_request_cancel(a->http);
        sd_event_source_disable_unref(a->prebuild);
        journal_sync_wait_cancel(a->sync);
        challenge_fetch_cancel(a->fetch);
        challenge_secret_free(a->challenge);
        scep_csr_free(a->csr);          /* wipes the challenge if it is still in there */
        X509_free(a->signer);
        EVP_PKEY_free(a->transport_key);
        scep_message_free(a->msg);
        scep_cacerts_free(a->certs);
        free(a);
}

static void request_end_attempt(Request *r) {
        Attempt *a = r->engine;

        if (!a)
                return;
        if (a->transport_job)
                (void) key_pool_cancel(r->manager->pool, a->transport_job);
        r->engine = NULL;
        attempt_free(a);
}

static void meta_waiter_remove(CaState *ca, Request *r) {
        if (!ca || !CE(ca))
                return;
        for (MetaWaiter **p = &CE(ca)->meta_waiters; *p;)
                if ((*p)->request == r) {
                        MetaWaiter *w = *p;
                        *p = w->next;
                        free(w);
                } else
                        p = &(*p)->next;
}

void engine_request_stop(Request *r) {
        CaState *ca = request_ca_state(r);

        meta_waiter_remove(ca, r);
        request_end_attempt(r);
        if (r->key_job) {
                (void) key_pool_cancel(r->manager->pool, r->key_job);
                r->key_job = 0;
        }
        r->timer = sd_event_source_disable_unref(r->timer);
}

/* An attempt failed with a transport outcome: retried or ended by request.c. */
static void attempt_failed(Request *r, TransportOutcome outcome, const char *message) {
        request_attempt_failed(r, broker_error_from_transport(outcome), message);
}

static void end_failed(Request *r, BrokerError error, const char *message) {
        request_end(r, REQUEST_FAILED, error, NULL, message);
}

/* ---- certificates to strings ---- */

static uint64_t asn1_time_usec(const ASN1_TIME *t) {
        struct tm tm = {};

        if (!t || !ASN1_TIME_to_tm(t, &tm))
                return 0;
        time_t s = timegm(&tm);
        return s < 0 ? 0 : (uint64_t) s * 1000000;
}

static char *serial_hex(X509 *x) {
        BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL);
        char *hex = bn ? BN_bn2hex(bn) : NULL, *s = NULL;

        if (hex) {
                s = strdup(hex);
                for (char *p = s; p && *p; p++)
                        *p = (char) (*p >= 'A' && *p <= 'F' ? *p - 'A' + 'a' : *p);
        }
        OPENSSL_free(hex);
        BN_free(bn);
        return s;
}

/* ---- the steps ---- */

static void step_key(Request *r);
static void step_transport_key(Request *r);
static void step_meta(Request *r);
static void step_submit(Request *r);
static void step_challenge(Request *r);
static void step_pkioperation(Request *r);
static void ca_meta_fetch(CaState *ca);

static Attempt *attempt_begin(Request *r) {
        Attempt *a = r->engine;

        if (a)
                return a;
        a = calloc(1, sizeof(*a));
        if (!a)
                return NULL;
        a->request = r;
        r->engine = a;
        return a;
}

static void on_key_ready(KeyPool *pool, uint64_t job, int error, EVP_PKEY *key, void *userdata) {
        Request *r = userdata;
        int q;

        r->key_job = 0;
        if (error < 0) {
                request_attempt_failed_errno(r, error, "Cannot generate the private key");
                return;
        }
        q = request_keep_key(r, key);
        if (q < 0) {
                request_attempt_failed_errno(r, q, "Cannot store the private key (encrypted) in the journal");
                return;
        }
        step_transport_key(r);
}

static void step_key(Request *r) {
        Attempt *a = attempt_begin(r);
        KeyType t;
        int q;

        if (!a) {
                request_attempt_failed_errno(r, -ENOMEM, "Out of memory");
                return;
        }
        if (r->key) {
                step_transport_key(r);
                return;
        }
        if (r->rec->key_available) {
                /* Resumed after a restart: the key is in the journal, encrypted. */
                q = request_load_key(r);
                if (q < 0) {
                        end_failed(r, BROKER_ERROR_PROTOCOL_ERROR,
                                       "The stored private key cannot be decrypted (wrong or replaced store key?); "
                                       "enroll again.");
                        return;
                }
                step_transport_key(r);
                return;
        }

        t = key_type_from_string(r->rec->key);
        if (t < 0) {
                end_failed(r, BROKER_ERROR_INVALID_ARGUMENT, "Unknown key type in the journal.");
                return;
        }
        EVP_PKEY *pooled = key_pool_take(r->manager->pool, t);
        if (pooled) {
                q = request_keep_key(r, pooled);
                if (q < 0) {
                        request_attempt_failed_errno(r, q, "Cannot store the private key (encrypted) in the journal");
                        return;
                }
                step_transport_key(r);
                return;
        }
        q = key_pool_generate_async_for(r->manager->pool, t, r->rec->owner, on_key_ready, r, &r->key_job);
        if (q < 0)
                request_attempt_failed_errno(r, q, "Cannot start generating the private key");
}

/* SCEP encrypts the CertRep to the signer certificate's key, which must do key transport: an
 * EC request signs its PKCS#10 with its own key but wraps the exchange in a self-signed
 * certificate of a transient RSA key (from the pool, or made on the pool's worker). */
static void on_transport_key(KeyPool *pool, uint64_t job, int error, EVP_PKEY *key, void *userdata) {
        Request *r = userdata;
        Attempt *a = r->engine;

        a->transport_job = 0;
        if (error < 0) {
                request_attempt_failed_errno(r, error, "Cannot generate the RSA transport key");
                return;
        }
        a->transport_key = key;
        step_meta(r);
}

static void step_transport_key(Request *r) {
        Attempt *a = r->engine;
        int q;

        if (EVP_PKEY_get_base_id(r->key) == EVP_PKEY_RSA || a->transport_key) {
                step_meta(r);
                return;
        }
        a->transport_key = key_pool_take(r->manager->pool, KEY_TYPE_RSA_2048);
        if (a->transport_key) {
                step_meta(r);
                return;
        }
        q = key_pool_generate_async_for(r->manager->pool, KEY_TYPE_RSA_2048, r->rec->owner, on_transport_key, r,
                                        &a->transport_job);
        if (q < 0)
                request_attempt_failed_errno(r, q, "Cannot start generating the RSA transport key");
}

static void step_meta(Request *r) {
        CaState *ca = request_ca_state(r);
        MetaWaiter *w;

        if (!ca) {
                end_failed(r, BROKER_ERROR_UNKNOWN_CA,
                               "The request's CA is no longer configured (removed by a reload).");
                return;
        }
        if (CE(ca)->certs && CE(ca)->have_caps) {
                step_submit(r);
                return;
        }
        w = calloc(1, sizeof(*w));
        if (!w) {
                request_attempt_failed_errno(r, -ENOMEM, "Out of memory");
                return;
        }
        w->request = r;
        w->next = CE(ca)->meta_waiters;
        CE(ca)->meta_waiters = w;
        if (!CE(ca)->meta_http)
                ca_meta_fetch(ca);
}

static void recovery_resubmit(Request *r, bool unknown, const char *why);

/* Marks the request submitting (one network attempt) and goes on to the challenge. */
static void step_submit(Request *r) {
        Attempt *a = r->engine;

        if (r->recovery_resubmit && r->rec->submitted == 0)
                r->recovery_resubmit = false;  /* no longer in doubt (an answer came meanwhile) */
        if (r->recovery_resubmit && !a->polling && r->rec->submitted != 0) {
                /* The CA answered GetCACaps just now (step_meta()), but never a CertPoll. */
                char why[128];
                snprintf(why, sizeof why, "no CertRep to %u CertPolls while GetCACaps was answered", r->recovery_polls);
                r->recovery_resubmit = false;
                r->recovery_polls = 0;
                request_end_attempt(r);
                recovery_resubmit(r, false, why);
                return;
        }

        request_begin_attempt(r, a->polling);
        step_challenge(r);
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

static int thumbprint_check(Request *r) {
        const CbCa *c = request_ca_config(r);
        CaState *ca = request_ca_state(r);
        Attempt *a = r->engine;
        unsigned char md[EVP_MAX_MD_SIZE];
        unsigned mdlen = 0;
        char ours[2 * EVP_MAX_MD_SIZE + 1] = "", msg[1024];

        if (!c || c->has_fingerprint || !a->challenge || !a->thumbprint[0] || !ca || !CE(ca)->certs ||
            !CE(ca)->certs->ca)
                return 1;
        if (!X509_digest(CE(ca)->certs->ca, EVP_md5(), md, &mdlen)) {
                ERR_clear_error();
                return 1;       /* no MD5 in this OpenSSL: nothing to compare with */
        }
        for (unsigned i = 0; i < mdlen; i++)
                snprintf(ours + 2 * i, 3, "%02x", md[i]);
        if (strcmp(ours, a->thumbprint) == 0)
                return 1;

        if (!CE(ca)->meta_http)
                CE(ca)->certs = scep_cacerts_free(CE(ca)->certs);
        if (!r->thumbprint_retried) {
                /* Perhaps a CA certificate renewed since we fetched it: fetch it again, once.
                 * The challenge is good: it serves the next try instead of being thrown away. */
                r->thumbprint_retried = true;
                log_notice("Request %s: the CA certificate from GetCACert (MD5 %s) is not the one %s shows (%s); "
                           "fetching the CA's certificates again.", r->rec->id, ours, c->admin_url, a->thumbprint);
                attempt_give_back_challenge(a, CE(ca)->fetcher);
                request_end_attempt(r);
                (void) engine_request_start(r);
                return 0;
        }
        snprintf(msg, sizeof msg, "The CA certificate from GetCACert at %s (MD5 thumbprint %s) is not the one NDES's "
                 "authenticated admin page %s shows (%s): refusing to enroll with a CA that cannot be "
                 "authenticated. If a proxy or another server answers the SCEP URL, fix URL=; to trust a CA "
                 "explicitly, set CAFingerprint=sha256:<its SHA-256 fingerprint>.", c->url, ours, c->admin_url,
                 a->thumbprint);
        /* Its page vouched for another CA: not kept for anyone (it stays counted at NDES, freed
         * with the attempt). */
        end_failed(r, BROKER_ERROR_PROTOCOL_ERROR, msg);
        return 0;
}

static void on_challenge(ChallengeFetcher *f, ChallengeResult *res, void *userdata) {
        Request *r = userdata;
        Attempt *a = r->engine;

        a->fetch = NULL;
        if (res->outcome != TRANSPORT_OK) {
                attempt_failed(r, res->outcome, res->message);
                return;
        }
        if (res->anonymous) {
                CaEngine *ce = CE(request_ca_state(r));
                /* The server's weakness, not ours: the enrollment goes on, said once per load. */
                if (!ce->warned_anonymous) {
                        const CbCa *c = request_ca_config(r);
                        char *hint = challenge_anonymous_hint(c ? c->admin_url_host : NULL,
                                                              c ? c->admin_url : NULL);
                        log_warning("CA %s: mscep_admin answered without authentication: %s",
                                    request_ca_state(r)->name, hint ?: "disable Anonymous Authentication");
                        free(hint);
                        ce->warned_anonymous = true;
                }
        }
        challenge_secret_free(a->challenge);
        a->challenge = TAKE_PTR(res->secret);
        memcpy(a->thumbprint, res->thumbprint, sizeof a->thumbprint);
        a->multi_use = res->multi_use;
        a->validity_minutes = res->validity_minutes;
        step_pkioperation(r);
}

static int read_static_challenge(const char *path, ChallengeSecret **ret, char *msg, size_t msgsize) {
        char buf[CHALLENGE_SIZE_MAX + 2];
        struct stat st;
        ssize_t n;
        int fd, q;

        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
        if (fd < 0) {
                q = -errno;
                snprintf(msg, msgsize, "Cannot open ChallengeFile %s: %s", path, strerror(-q));
                return q;
        }
        if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || (st.st_mode & 0077) != 0) {
                close(fd);
                snprintf(msg, msgsize, "ChallengeFile %s must be a regular file readable by its owner only "
                         "(chmod 0600).", path);
                return -EPERM;
        }
        n = read(fd, buf, sizeof buf - 1);
        close(fd);
        if (n < 0) {
                q = -errno;
                snprintf(msg, msgsize, "Cannot read ChallengeFile %s: %s", path, strerror(-q));
                return q;
        }
        while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' '))
                n--;
        if (n <= 0 || (size_t) n > CHALLENGE_SIZE_MAX) {
                secret_erase(buf, sizeof buf);
                snprintf(msg, msgsize, "ChallengeFile %s must hold one password of 1 to %d bytes.",
                         path, CHALLENGE_SIZE_MAX);
                return -EINVAL;
        }
        q = challenge_secret_new(buf, (size_t) n, ret);
        secret_erase(buf, sizeof buf);
        if (q < 0)
                snprintf(msg, msgsize, "Out of memory");
        return q;
}

static int build_subject(const char *text, ScepRdn **ret, size_t *ret_n, CbSubject **ret_subject);

/* The self-signed signer certificate of the SCEP exchange: the CSR's subject and the key
 * that signs (the request's, or an EC request's RSA transport key). */
static int build_signer(Request *r, ScepError *err) {
        Attempt *a = r->engine;
        ScepRdn *rdns = NULL;
        size_t n_rdns = 0;
        CbSubject *subject = NULL;
        int q;

        q = build_subject(r->rec->subject, &rdns, &n_rdns, &subject);
        if (q < 0)
                return q;
        q = scep_signer_cert_build_for_subject(rdns, n_rdns, a->transport_key ?: r->key,
                                               CE(request_ca_state(r))->alg.digest, &a->signer, err);
        free(rdns);
        cb_subject_free(subject);
        return q;
}

static int on_prebuild_signer(sd_event_source *s, void *userdata) {
        Request *r = userdata;
        Attempt *a = r->engine;
        ScepError err = {};

        a->prebuild = sd_event_source_disable_unref(a->prebuild);
        if (!a->signer && build_signer(r, &err) != 0)
                a->signer = NULL;       /* step_pkioperation() tries again and names the error */
        else
                log_debug("Request %s: signer certificate built while the challenge is fetched.", r->rec->id);
        return 0;
}

static void step_challenge(Request *r) {
        const CbCa *c = request_ca_config(r);
        Attempt *a = r->engine;
        char msg[SCEP_ERROR_MESSAGE_MAX + 512];
        int q;

        if (a->polling || c->challenge == CB_CHALLENGE_NONE) {
                step_pkioperation(r);
                return;
        }
        if (c->challenge == CB_CHALLENGE_STATIC) {
                a->challenge = challenge_secret_free(a->challenge);
                q = read_static_challenge(c->challenge_file, &a->challenge, msg, sizeof msg);
                if (q < 0) {
                        end_failed(r, BROKER_ERROR_CHALLENGE_UNAVAILABLE, msg);
                        return;
                }
                step_pkioperation(r);
                return;
        }

        if (a->challenge && !a->challenge_sent) {
                /* Fetched before the CA's metadata had to be fetched again: still unused. */
                step_pkioperation(r);
                return;
        }

        /* mscep-admin: the CA's fetcher keeps at most MaxOutstandingChallenges in flight, gets
         * the service ticket for HTTP/<admin host> first (so KDC errors are named), and
         * recognises NDES's error pages. */
        ChallengeFetcher *f = CE(request_ca_state(r))->fetcher;
        if (!f) {
                attempt_failed(r, TRANSPORT_KERBEROS_FAILED,
                             E(r->manager)->krb5_error ?: "No Kerberos credentials for the challenge request.");
                return;
        }
        q = challenge_fetcher_fetch(f, on_challenge, r, &a->fetch);
        if (q < 0) {
                request_attempt_failed_errno(r, q, "Cannot start fetching a challenge");
                return;
        }
        /* While the challenge is on its way (or waits for a slot): the signer certificate,
         * which needs only subject and key, when the loop has nothing else to do. */
        if (r->engine == a && a->fetch && !a->signer && !a->prebuild &&
            sd_event_add_defer(r->manager->event, &a->prebuild, on_prebuild_signer, r) >= 0)
                (void) sd_event_source_set_priority(a->prebuild, SD_EVENT_PRIORITY_IDLE);
}

/* Recovering a submission that may have reached the CA, whose CertPoll got no certificate:
 * it is submitted again with a fresh challenge. Whether that makes the CA issue twice cannot
 * be known here: NDES documents CertPoll for pending requests only, so its "unknown
 * transaction" (badCertId, unknown) may also be its answer for one it issued at once, and
 * other answers (why) say nothing either. So the request (Warning) and the audit log say that
 * a duplicate may have been issued, with the transaction to look for in the CA database. */
static void recovery_resubmit(Request *r, bool unknown, const char *why) {
        char msg[3072];

        snprintf(msg, sizeof msg, "Transaction %s may have been issued twice: the broker was interrupted while "
                 "submitting it and the CA %s (CertPoll answered: %s); it was submitted again. Look for "
                 "transaction %s in the CA database and revoke a second certificate if there is one.",
                 r->rec->transaction_id,
                 unknown ? "does not say it has it, which NDES may also answer for a request it issued at once" :
                           "could not say whether it had issued it",
                 why, r->rec->transaction_id);
        request_warn_duplicate_risk(r, msg);
        (void) engine_request_start(r);
}

/* A CertPoll asking about a submission in doubt got no CertRep (HTTP 5xx, a timeout, the
 * connection refused): the server may be down, or may not answer CertPoll at all (micromdm's
 * scepserver answers HTTP 500 to every GetCertInitial). Retried with backoff; after
 * RECOVERY_POLLS_MAX of them the next attempt asks GetCACaps again and, if the CA answers,
 * submits again (the duplicate risk recorded, recovery_resubmit()), so a request never polls a
 * server that cannot answer for ever. */
#define RECOVERY_POLLS_MAX 3U
static void recovery_poll_failed(Request *r, TransportOutcome outcome, const char *why) {
        CaState *ca = request_ca_state(r);
        char msg[3072];

        r->recovery_polls++;
        if (r->recovery_polls >= RECOVERY_POLLS_MAX) {
                r->recovery_resubmit = true;
                snprintf(msg, sizeof msg, "CertPoll for transaction %s got no CertRep %u times (last: %s); it is "
                         "submitted again once the CA answers GetCACaps.", r->rec->transaction_id ?: "?",
                         r->recovery_polls, why ?: "no answer");
        } else
                snprintf(msg, sizeof msg, "CertPoll for transaction %s got no CertRep (%s); asking again (%u of %u "
                         "before submitting again).", r->rec->transaction_id ?: "?", why ?: "no answer",
                         r->recovery_polls, RECOVERY_POLLS_MAX);
        /* The server answered, or may have: the next attempt re-reads its capabilities. */
        if (r->recovery_resubmit && ca && !CE(ca)->meta_http)
                CE(ca)->have_caps = false;
        attempt_failed(r, transport_outcome_is_transient(outcome) ? outcome : TRANSPORT_CA_UNREACHABLE, msg);
}

static void handle_certrep(Request *r, const HttpResult *res) {
        const CbCa *c = request_ca_config(r);
        CaState *ca = request_ca_state(r);
        Attempt *a = r->engine;
        ScepCertRep *rep = NULL;
        ScepError err = {};
        char msg[SCEP_ERROR_MESSAGE_MAX + 512];
        int q;

        ScepCertRepParams p = {
                .request = a->msg,
                .ca_certs = a->certs,
                .signer_cert = a->signer,
                .signer_key = a->transport_key ?: r->key,
                .csr = a->csr,
                .allow_legacy = c->allow_legacy_ciphers,
        };
        if (res->content_type && strncasecmp(res->content_type, "text/html", 9) == 0 && !a->recovering) {
                /* A web page, not a CertRep: IIS's error or maintenance page, or NDES failing
                 * before it answered (it sends no CertRep for an envelope it cannot decrypt,
                 * certnanny/sscep#60). Nothing says NDES consumed the challenge: it stays counted
                 * (freed with the attempt), and the request tries again later. */
                snprintf(msg, sizeof msg, "%s answered the PKIOperation with an HTML page (HTTP %ld), not a CertRep; "
                         "retrying.", res->host, res->http_code);
                attempt_failed(r, TRANSPORT_CA_UNREACHABLE, msg);
                return;
        }
        q = scep_certrep_parse(&p, res->body, res->body_size, &rep, &err);
        if (q != 0) {
                snprintf(msg, sizeof msg, "The CertRep from %s cannot be used: %s", res->host,
                         err.message[0] ? err.message : strerror(-q));
                if (a->recovering) {
                        recovery_resubmit(r, false, msg);
                        return;
                }
                /* A bad reply may be a stale CA certificate: refetch it next time. A challenge the
                 * reply did not prove consumed stays counted at NDES (freed with the attempt). A
                 * pending request is still at the CA: polled again until PendingDeadline=. */
                CE(ca)->certs = scep_cacerts_free(CE(ca)->certs);
                attempt_failed(r, a->polling ? TRANSPORT_CA_UNREACHABLE : TRANSPORT_PROTOCOL_ERROR, msg);
                return;
        }

        request_set_transaction(r, a->msg->transaction_id);
        /* The CA has answered for this transaction: no submission is in doubt any more, and the
         * challenge it carried is out of NDES's password cache (used, or refused): its slot is
         * free again. */
        request_clear_submitted(r);
        r->recovery_polls = 0;
        challenge_secret_set_consumed(a->challenge);
        a->challenge = challenge_secret_free(a->challenge);
        if (rep->status == SCEP_STATUS_FAILURE && !a->polling && !r->challenge_retried &&
            c->challenge == CB_CHALLENGE_MSCEP_ADMIN && scep_certrep_challenge_unknown(rep)) {
                /* NDES no longer knows the challenge (restarted, expired, another node) or had it
                 * used already: once, at once, with a fresh one. */
                char desc[512];
                scep_certrep_describe_failure(rep, desc, sizeof desc);
                scep_certrep_free(rep);
                r->challenge_retried = true;
                log_notice("Request %s: %s did not take the challenge (%s); trying once more with a fresh one.",
                           r->rec->id, res->host, desc);
                request_end_attempt(r);
                (void) engine_request_start(r);
                return;
        }
        if (rep->status == SCEP_STATUS_FAILURE && a->recovering) {
                char desc[512];
                bool unknown = rep->fail_info == SCEP_FAIL_BAD_CERT_ID;
                scep_certrep_describe_failure(rep, desc, sizeof desc);
                scep_certrep_free(rep);
                recovery_resubmit(r, unknown, desc);
                return;
        }
        if (rep->status == SCEP_STATUS_FAILURE) {
                char desc[512];
                scep_certrep_describe_failure(rep, desc, sizeof desc);
                snprintf(msg, sizeof msg, "%s rejected the request: %s", res->host, desc);
                request_end(r, REQUEST_REJECTED, BROKER_ERROR_CA_REJECTED,
                               rep->fail_info >= 0 ? scep_fail_info_to_string(rep->fail_info) : "", msg);
                scep_certrep_free(rep);
                return;
        }
        if (rep->status == SCEP_STATUS_PENDING) {
                /* Kept for CertPoll (its subject and key). step_pkioperation() took the challenge
                 * out of it when the PKCSReq was built: no secret in the journal. */
                char *csr_pem = NULL;
                q = !a->polling && r->key ? scep_csr_resign(a->csr, r->key) : 0;
                if (q >= 0)
                        q = scep_csr_to_pem(a->csr, &csr_pem);
                scep_certrep_free(rep);
                if (q < 0) {
                        request_attempt_failed_errno(r, q, "Cannot keep the CSR for polling");
                        return;
                }
                request_set_pending(r, csr_pem, c->poll_interval_usec);
                return;
        }

        /* SUCCESS */
        char *cert = NULL, *chain = NULL, *serial = NULL;
        q = scep_certs_to_pem(rep->certificate, NULL, &cert);
        if (q >= 0)
                q = scep_certs_to_pem(NULL, rep->chain, &chain);
        serial = serial_hex(rep->certificate);
        if (q < 0 || !serial) {
                free(cert);
                free(chain);
                free(serial);
                scep_certrep_free(rep);
                request_attempt_failed_errno(r, -ENOMEM, "Cannot record the certificate");
                return;
        }
        uint64_t not_before = asn1_time_usec(X509_get0_notBefore(rep->certificate));
        uint64_t not_after = asn1_time_usec(X509_get0_notAfter(rep->certificate));
        scep_certrep_free(rep);
        request_set_issued(r, cert, chain, serial, not_before, not_after);
}

static void send_pkioperation(Request *r);

static void on_pkioperation(HttpClient *client, const HttpResult *res, void *userdata) {
        Request *r = userdata;
        Attempt *a = r->engine;
        CaState *ca = request_ca_state(r);
        ScepHttpNext next;
        ScepError err = {};
        int q;

        a->http = NULL;
        if (res->outcome != TRANSPORT_OK) {
                if (a->recovering)
                        recovery_poll_failed(r, res->outcome, res->message);
                else if (a->polling && !transport_outcome_is_transient(res->outcome)) {
                        /* The CA has the pending request: polled again until PendingDeadline=. */
                        char why[2048];
                        snprintf(why, sizeof why, "%s; the CA still has the pending request, polling again.",
                                 res->message ?: "No answer to CertPoll");
                        attempt_failed(r, TRANSPORT_CA_UNREACHABLE, why);
                } else
                        attempt_failed(r, res->outcome, res->message);
                return;
        }
        ca->last_contact = now_usec();
        q = scep_pkioperation_http_next(a->transport, res->http_code, res->body_size,
                                        a->transport == SCEP_TRANSPORT_GET ? a->url_size : 0, &next, &err);
        if (q != 0 && a->recovering && res->http_code < 500) {
                /* The server cannot answer a CertPoll at all. */
                char why[sizeof err.message + 64];
                snprintf(why, sizeof why, "HTTP %ld: %s", res->http_code,
                         err.message[0] ? err.message : "unusable answer");
                recovery_resubmit(r, false, why);
                return;
        }
        if (q != 0 && a->recovering) {
                char why[sizeof err.message + 64];
                snprintf(why, sizeof why, "HTTP %ld", res->http_code);
                recovery_poll_failed(r, TRANSPORT_CA_UNREACHABLE, why);
                return;
        }
        if (q != 0 && a->polling) {
                /* The CA has the pending request; an unusable answer to one poll changes nothing:
                 * polled again until PendingDeadline=. */
                char why[sizeof err.message + 128];
                snprintf(why, sizeof why, "%s; the CA still has the pending request, polling again.",
                         err.message[0] ? err.message : "Unusable CertPoll answer");
                attempt_failed(r, TRANSPORT_CA_UNREACHABLE, why);
                return;
        }
        if (q != 0 && !a->polling && res->http_code == 503) {
                /* IIS answers 503 when NDES's application pool is stopped: NDES never saw the
                 * request. Nothing is in doubt, and the challenge, still unused, serves the next
                 * try (NDES answers 0x80070490 if a restart of the pool forgot it, and the
                 * broker then fetches a fresh one). */
                request_clear_submitted(r);
                attempt_give_back_challenge(a, CE(ca)->fetcher);
        }
        if (q != 0) {
                attempt_failed(r, res->http_code >= 500 ? TRANSPORT_CA_UNREACHABLE : TRANSPORT_PROTOCOL_ERROR,
                             err.message[0] ? err.message : "Unusable PKIOperation answer");
                return;
        }
        if (next == SCEP_HTTP_RETRY_GET) {
                log_notice("CA %s answered a POST PKIOperation with an empty 200 (Windows 2012 NDES); "
                           "using GET from now on.", r->rec->ca);
                CE(ca)->force_get = true;
                a->transport = SCEP_TRANSPORT_GET;
                send_pkioperation(r);
                return;
        }
        handle_certrep(r, res);
}

static void send_pkioperation(Request *r) {
        const CbCa *c = request_ca_config(r);
        Attempt *a = r->engine;
        char *url = NULL, *why = NULL, *enc = NULL;
        int q;

        HttpRequestOptions o = {
                .permitted_suffix = r->manager->config->permitted_suffix,
                .negotiate = c->authentication == CB_AUTHENTICATION_KERBEROS,
                .trust_anchors = c->trust_anchors,
                .timeout_usec = c->timeout_usec,
                .max_response = SCEP_CERTREP_MAX_SIZE,
        };
        if (a->transport == SCEP_TRANSPORT_POST) {
                if (asprintf(&url, "%s?operation=PKIOperation", c->url) < 0)
                        url = NULL;
                o.post_data = a->msg->der;
                o.post_size = a->msg->size;
                o.content_type = "application/x-pki-message";
        } else {
                q = scep_message_encode_get(a->msg->der, a->msg->size, &enc);
                if (q != 0 || asprintf(&url, "%s?operation=PKIOperation&message=%s", c->url, enc) < 0)
                        url = NULL;
                free(enc);
        }
        if (!url) {
                request_attempt_failed_errno(r, -ENOMEM, "Cannot build the PKIOperation request");
                return;
        }
        o.url = url;
        a->url_size = strlen(url);
        q = http_client_start(E(r->manager)->http, &o, on_pkioperation, r, &a->http, &why);
        free(url);
        if (q < 0) {
                end_failed(r, q == -EPERM ? BROKER_ERROR_NAME_NOT_PERMITTED : BROKER_ERROR_PROTOCOL_ERROR,
                               why ?: "The CA URL is refused.");
                free(why);
        }
}

static void on_submission_durable(int error, void *userdata) {
        Request *r = userdata;
        Attempt *a = r->engine;

        a->sync = NULL;
        if (error < 0) {
                request_attempt_failed_errno(r, error, "Cannot make the submission durable");
                return;
        }
        send_pkioperation(r);
}

static int build_subject(const char *text, ScepRdn **ret, size_t *ret_n, CbSubject **ret_subject) {
        CbSubject *s = NULL;
        const char *reason = NULL;
        ScepRdn *rdns;
        int q;

        q = cb_subject_parse(text, &s, &reason);
        if (q < 0)
                return q;
        rdns = calloc(s->n_rdns ? s->n_rdns : 1, sizeof(*rdns));
        if (!rdns) {
                cb_subject_free(s);
                return -ENOMEM;
        }
        for (size_t i = 0; i < s->n_rdns; i++)
                rdns[i] = (ScepRdn) { .type = s->rdns[i].type, .value = s->rdns[i].value };
        *ret = rdns;
        *ret_n = s->n_rdns;
        *ret_subject = s;
        return 0;
}

static void step_pkioperation(Request *r) {
        CaState *ca = request_ca_state(r);
        Attempt *a = r->engine;
        ScepError err = {};
        char msg[SCEP_ERROR_MESSAGE_MAX + 512];
        int q;

        if (!CE(ca)->certs || !CE(ca)->have_caps) {
                /* Another request dropped the CA's metadata (a reply that did not verify) while
                 * this one waited for its challenge: fetched again first, the challenge kept. */
                step_meta(r);
                return;
        }
        /* Trust on first use: the CA is the one the challenge's page vouches for. */
        if (!a->polling && thumbprint_check(r) == 0)
                return;
        scep_cacerts_free(a->certs);
        a->certs = scep_cacerts_ref(CE(ca)->certs);
        const ScepAlgorithms *alg = &CE(ca)->alg;
        a->transport = CE(ca)->force_get ? SCEP_TRANSPORT_GET : alg->transport;

        a->prebuild = sd_event_source_disable_unref(a->prebuild);
        if (!a->polling) {
                /* A PKCSReq: on disk first that this transaction may reach the CA, so that
                 * after a crash the request asks the CA (CertPoll) instead of having it issue
                 * twice. The transaction id comes from the key, so the mark is written now and
                 * the group commit's worker does the fsync while the loop builds the request;
                 * it is sent once both are done (on_submission_durable()). */
                char txid[SCEP_TRANSACTION_ID_SIZE];
                q = scep_transaction_id_for_key(r->key, txid);
                if (q < 0) {
                        request_attempt_failed_errno(r, q, "Cannot derive the transaction id");
                        return;
                }
                q = request_mark_submitted(r, txid);
                if (q < 0) {
                        attempt_failed(r, TRANSPORT_CA_UNREACHABLE,
                                       "The request journal cannot record the submission (see the journal); not "
                                       "sent, retrying.");
                        return;
                }
                q = journal_sync_request(r->manager->journal_sync, on_submission_durable, r, &a->sync);
                if (q < 0) {
                        request_clear_submitted(r);
                        request_attempt_failed_errno(r, q, "Cannot make the submission durable");
                        return;
                }
        }

        if (a->polling && r->rec->csr && *r->rec->csr) {
                if (scep_csr_from_pem(r->rec->csr, &a->csr) < 0) {
                        end_failed(r, BROKER_ERROR_PROTOCOL_ERROR,
                                       "The pending request's CSR in the journal does not parse; enroll again.");
                        return;
                }
        } else {
                /* A CertPoll without a stored CSR (recovering a submission) names the same
                 * subject and key from the record; only a PKCSReq carries the challenge. */
                ScepRdn *rdns = NULL;
                size_t n_rdns = 0, n_names = 0;
                CbSubject *subject = NULL;

                q = build_subject(r->rec->subject, &rdns, &n_rdns, &subject);
                if (q < 0) {
                        end_failed(r, BROKER_ERROR_INVALID_ARGUMENT,
                                       "The request's subject in the journal does not parse.");
                        return;
                }
                while (r->rec->names && r->rec->names[n_names])
                        n_names++;
                ScepUsage usage = strcmp(r->rec->usage, "signature") == 0 ? SCEP_USAGE_SIGNATURE :
                                  strcmp(r->rec->usage, "encryption") == 0 ? SCEP_USAGE_ENCRYPTION :
                                  SCEP_USAGE_BOTH;
                ScepCsrParams p = {
                        .subject = rdns,
                        .n_subject = n_rdns,
                        .dns_names = (const char *const *) r->rec->names,
                        .n_dns_names = n_names,
                        .usage = usage,
                        .challenge = a->challenge ? challenge_secret_get(a->challenge, NULL) : NULL,
                        .digest = alg->digest,
                };
                q = scep_csr_build(&p, r->key, &a->csr, &err);
                free(rdns);
                cb_subject_free(subject);
                /* The challenge is in the CSR now. Our copy (guarded memory) stays until the
                 * PKIOperation is answered or the attempt ends: an answer that proves NDES never
                 * saw the request (IIS's 503) gives it to the next enrollment instead of leaving
                 * it unused in NDES's cache. Its outstanding slot is given back only when a
                 * CertRep answered (or held until NDES forgets it): until NDES has read the
                 * request it still holds the challenge as unused, and starting another fetch
                 * earlier overfilled its cache ("The password cache is full.") under many
                 * callers. */
                a->challenge_sent = a->challenge != NULL;
                if (q != 0) {
                        snprintf(msg, sizeof msg, "Cannot build the PKCS#10 request: %s",
                                 err.message[0] ? err.message : strerror(-q));
                        end_failed(r, BROKER_ERROR_PROTOCOL_ERROR, msg);
                        return;
                }
        }
        EVP_PKEY *signer_key = a->transport_key ?: r->key;
        q = a->signer ? 0 : scep_signer_cert_build(a->csr, signer_key, alg->digest, &a->signer, &err);
        if (q == 0) {
                ScepRequestParams rp = {
                        .csr = a->csr,
                        .signer_cert = a->signer,
                        .signer_key = signer_key,
                        .recipient = a->certs->recipient,
                        .ca = a->certs->ca,
                        .cipher = alg->cipher,
                        .digest = alg->digest,
                };
                q = scep_message_build(a->polling ? SCEP_MESSAGE_CERT_POLL : SCEP_MESSAGE_PKCS_REQ, &rp,
                                       &a->msg, &err);
        }
        if (q == 0 && !a->polling) {
                /* The challenge is in the (encrypted) PKCSReq now and is never needed again: a
                 * resubmission fetches a fresh one. What is kept of the CSR (CertRep, CertPoll,
                 * the journal if PENDING) is its subject and key: take the challenge out, wiped.
                 * Its signature is made again only if the journal keeps it (PENDING): one RSA
                 * private operation less on every enrollment issued at once. */
                q = scep_csr_strip_challenge(a->csr, NULL);
                if (q > 0)
                        q = 0;
        }
        if (q != 0) {
                snprintf(msg, sizeof msg, "Cannot build the SCEP message: %s",
                         err.message[0] ? err.message : strerror(-q));
                end_failed(r, BROKER_ERROR_PROTOCOL_ERROR, msg);        /* nothing was sent */
                return;
        }
        /* The transaction id is in the record already: request_mark_submitted() wrote it for a
         * PKCSReq, and a CertPoll is only sent for a request that has one. */
        if (a->polling)
                send_pkioperation(r);
        /* A PKCSReq goes when its mark is on disk (on_submission_durable()). */
}

int engine_request_start(Request *r) {
        uint64_t now = now_usec();

        if (request_state_is_terminal(r->rec->state) || r->engine || r->key_job)
                return 0;
        if (now >= request_deadline(r) && !request_is_renewal(r)) {
                end_failed(r, BROKER_ERROR_TIMEOUT,
                               r->rec->state == REQUEST_PENDING ?
                               "The CA did not issue the pending request before PendingDeadline." :
                               "The request did not succeed before PendingDeadline.");
                return 0;
        }
        if (r->rec->next_attempt > now && !r->timer) {
                request_schedule(r, r->rec->next_attempt);
                return 0;
        }
        if (r->rec->state == REQUEST_PENDING || (r->rec->submitted != 0 && !r->recovery_resubmit)) {
                Attempt *a = attempt_begin(r);
                if (!a)
                        return -ENOMEM;
                /* A PKCSReq that may have reached the CA (the broker was stopped, or the answer
                 * was lost): ask about its transaction before submitting it again. */
                a->polling = true;
                a->recovering = r->rec->state != REQUEST_PENDING;
        }
        /* else, with recovery_resubmit: CertPoll got no CertRep RECOVERY_POLLS_MAX times; step_submit()
         * submits again once GetCACaps has answered (step_meta()). */
        step_key(r);
        return 0;
}

/* ---- CA metadata ---- */

static void meta_done(CaState *ca, TransportOutcome outcome, const char *message) {
        CaEngine *ce = CE(ca);
        MetaWaiter *list = ce->meta_waiters;

        ce->meta_waiters = NULL;
        free(ca->last_error);
        ca->last_error = strdup(outcome == TRANSPORT_OK ? "" : message ?: "");
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
                Request *r = w->request;
                free(w);
                if (!r->engine)
                        continue;
                if (outcome == TRANSPORT_OK)
                        step_submit(r);
                else
                        attempt_failed(r, outcome, message);
        }
}

static void on_meta(HttpClient *client, const HttpResult *res, void *userdata) {
        CaState *ca = userdata;
        CaEngine *ce = CE(ca);
        const CbCa *c = cb_config_find_ca(ca->manager->config, ca->name);
        ScepError err = {};
        char msg[SCEP_ERROR_MESSAGE_MAX + 512];
        int q;

        ce->meta_http = NULL;
        if (!c)
                return;
        if (res->outcome != TRANSPORT_OK) {
                meta_done(ca, res->outcome, res->message);
                return;
        }
        ca->last_contact = now_usec();

        /* A web page where SCEP data was asked for: IIS's maintenance or error page, a portal in
         * front of it. Not the server's answer: try again later. */
        if (res->http_code == 200 && res->content_type && strncasecmp(res->content_type, "text/html", 9) == 0) {
                snprintf(msg, sizeof msg, "%s at %s answered an HTML page (%s) instead of SCEP data; retrying.",
                         ce->meta_step == 0 ? "GetCACaps" : "GetCACert", c->url, res->content_type);
                meta_done(ca, TRANSPORT_CA_UNREACHABLE, msg);
                return;
        }

        if (ce->meta_step == 0) {
                /* GetCACaps: a server that is down (5xx: IIS with its pool stopped answers 503)
                 * says nothing about capabilities: try again later. An other HTTP error or an
                 * empty body means no capabilities (servers before GetCACaps). */
                if (res->http_code >= 500) {
                        snprintf(msg, sizeof msg, "GetCACaps at %s answered HTTP %ld: the SCEP server is unavailable; "
                                 "retrying.", c->url, res->http_code);
                        meta_done(ca, TRANSPORT_CA_UNREACHABLE, msg);
                        return;
                }
                unsigned caps = 0;
                if (res->http_code == 200) {
                        q = scep_caps_parse(res->body, res->body_size, &caps, &err);
                        if (q != 0)
                                caps = 0;
                }
                q = scep_caps_choose(caps, c->allow_legacy_ciphers ? SCEP_FLOOR_LEGACY : SCEP_FLOOR_DEFAULT,
                                     &ce->alg, &err);
                if (q != 0) {
                        snprintf(msg, sizeof msg, "CA %s: %s", ca->name, err.message);
                        meta_done(ca, TRANSPORT_PROTOCOL_ERROR, msg);
                        return;
                }
                ce->caps = caps;
                ce->have_caps = true;
                const char *names[11];
                size_t n = scep_caps_to_strv(caps, names);
                for (size_t i = 0; i < ca->n_capabilities; i++)
                        free(ca->capabilities[i]);
                free(ca->capabilities);
                ca->capabilities = calloc(n + 1, sizeof(char *));
                ca->n_capabilities = 0;
                for (size_t i = 0; ca->capabilities && i < n; i++)
                        if ((ca->capabilities[ca->n_capabilities] = strdup(names[i])))
                                ca->n_capabilities++;
                ca_meta_fetch(ca);
                return;
        }

        if (res->http_code != 200) {
                snprintf(msg, sizeof msg, "GetCACert at %s answered HTTP %ld.", c->url, res->http_code);
                meta_done(ca, res->http_code >= 500 ? TRANSPORT_CA_UNREACHABLE : TRANSPORT_PROTOCOL_ERROR, msg);
                return;
        }
        ScepCACerts *certs = NULL;
        q = scep_cacert_parse(res->content_type, res->body, res->body_size,
                              c->has_fingerprint ? c->fingerprint : NULL, &certs, &err);
        if (q != 0) {
                snprintf(msg, sizeof msg, "GetCACert at %s: %s", c->url, err.message[0] ? err.message : strerror(-q));
                meta_done(ca, TRANSPORT_PROTOCOL_ERROR, msg);
                return;
        }
        scep_cacerts_free(ce->certs);
        ce->certs = certs;
        free(ca->ca_certificates);
        free(ca->ra_certificates);
        ca->ca_certificates = ca->ra_certificates = NULL;
        (void) scep_certs_to_pem(certs->ca, NULL, &ca->ca_certificates);
        STACK_OF(X509) *ra = sk_X509_new_null();
        if (ra) {
                if (certs->ra_sign)
                        sk_X509_push(ra, certs->ra_sign);
                if (certs->ra_encrypt && certs->ra_encrypt != certs->ra_sign)
                        sk_X509_push(ra, certs->ra_encrypt);
                (void) scep_certs_to_pem(NULL, ra, &ca->ra_certificates);
                sk_X509_free(ra);
        }
        meta_done(ca, TRANSPORT_OK, NULL);
}

static void ca_meta_fetch(CaState *ca) {
        const CbCa *c = cb_config_find_ca(ca->manager->config, ca->name);
        CaEngine *ce = CE(ca);
        char *url = NULL, *why = NULL;
        int q;

        if (!c)
                return;
        ce->meta_step = ce->have_caps ? 1 : 0;
        if (asprintf(&url, "%s?operation=%s", c->url, ce->meta_step == 0 ? "GetCACaps" : "GetCACert") < 0) {
                meta_done(ca, TRANSPORT_PROTOCOL_ERROR, "Out of memory");
                return;
        }
        HttpRequestOptions o = {
                .url = url,
                .permitted_suffix = ca->manager->config->permitted_suffix,
                .negotiate = c->authentication == CB_AUTHENTICATION_KERBEROS,
                .trust_anchors = c->trust_anchors,
                .timeout_usec = c->timeout_usec,
                .max_response = ce->meta_step == 0 ? SCEP_CAPS_MAX_SIZE : SCEP_CACERT_MAX_SIZE,
        };
        q = http_client_start(E(ca->manager)->http, &o, on_meta, ca, &ce->meta_http, &why);
        free(url);
        if (q < 0) {
                meta_done(ca, q == -EPERM ? TRANSPORT_NAME_NOT_PERMITTED : TRANSPORT_PROTOCOL_ERROR,
                          why ?: "The CA URL is refused.");
                free(why);
        }
}

int engine_ca_refresh(Manager *m, CaState *ca) {
        CaEngine *ce = CE(ca);

        if (ce->meta_http)
                return 0;       /* a fetch is under way already */
        ce->have_caps = false;
        ce->certs = scep_cacerts_free(ce->certs);
        ce->force_get = false;
        ca_meta_fetch(ca);
        return 0;
}

/* ---- engine-wide ---- */

const char *engine_credential_state(Manager *m) {
        Engine *e = E(m);
        return e && e->creds ? credential_state_to_string(krb5_creds_get_state(e->creds)) : "unavailable";
}

uint64_t engine_credential_expiry(Manager *m) {
        Engine *e = E(m);
        return e && e->creds ? krb5_creds_get_expiry(e->creds) : 0;
}

static void on_credential_state(Krb5Creds *c, void *userdata) {
        Manager *m = userdata;

        manager_notify_credentials_changed(m);
}

static int engine_start_creds(Manager *m) {
        Engine *e = E(m);
        const CbConfig *cfg = m->config;
        char *msg = NULL;
        int q;

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
        q = krb5_creds_new(m->event, &s, &e->creds, &msg);
        if (q < 0) {
                free(e->krb5_error);
                e->krb5_error = msg;
                return log_error_errno(q, "Kerberos credentials unavailable: %s", msg ?: strerror(-q));
        }
        krb5_creds_set_state_handler(e->creds, on_credential_state, m);
        return 0;
}

int engine_new(Manager *m) {
        Engine *e = calloc(1, sizeof(*e));
        const char *rt = getenv("RUNTIME_DIRECTORY");
        char tmpl[] = "/run/certbroker.XXXXXX";
        int q;

        if (!e)
                return -ENOMEM;
        m->engine = e;
        /* A private directory for the Kerberos profile: systemd's RuntimeDirectory=, else one of
         * our own under /run (or $TMPDIR when /run is not writable, as in tests). */
        if (rt && *rt)
                e->runtime_dir = strdup(rt);
        else {
                char *d = mkdtemp(tmpl);
                if (!d) {
                        char alt[4096];
                        snprintf(alt, sizeof alt, "%s/certbroker.XXXXXX", getenv("TMPDIR") ?: "/tmp");
                        d = mkdtemp(alt);
                        e->runtime_dir = d ? strdup(d) : NULL;
                } else
                        e->runtime_dir = strdup(d);
        }
        if (!e->runtime_dir)
                return log_error_errno(errno ?: ENOMEM, "Cannot create a private runtime directory: %m");

        q = http_client_new(m->event, &e->http);
        if (q < 0)
                return log_error_errno(q, "Cannot set up HTTP: %m");

        /* Without credentials the broker still starts: CredentialState says "unavailable",
         * requests wait in retrying, and CA.Check() names the problem. */
        (void) engine_start_creds(m);
        return 0;
}

static CaState *ca_state_free(CaState *ca) {
        if (!ca)
                return NULL;
        CaEngine *ce = CE(ca);
        if (ce) {
                http_request_cancel(ce->meta_http);
                while (ce->meta_waiters) {
                        MetaWaiter *w = ce->meta_waiters;
                        ce->meta_waiters = w->next;
                        free(w);
                }
                challenge_fetcher_free(ce->fetcher);
                uid_limit_free(ce->check_challenge_limit);
                scep_cacerts_free(ce->certs);
                free(ce);
        }
        for (size_t j = 0; j < ca->n_capabilities; j++)
                free(ca->capabilities[j]);
        free(ca->capabilities);
        free(ca->ca_certificates);
        free(ca->ra_certificates);
        free(ca->last_error);
        free(ca->name);
        free(ca);
        return NULL;
}

void engine_free(Manager *m) {
        Engine *e = E(m);

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
        char *s = NULL, *kdcs = NULL;
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
                s = NULL;
        free(kdcs);
        return s;
}


/* A Reload changed [Kerberos]: new credentials. Everything holding the old ones lets go first:
 * challenge fetches (restarted on the new fetchers by engine_config_changed()) and CA.Check()
 * calls in progress (answered with a note to run them again). */
static int engine_renew_creds(Manager *m, char *settings) {
        Engine *e = E(m);

        for (size_t i = 0; i < m->n_requests; i++) {
                Attempt *a = m->requests[i]->engine;
                if (a && a->fetch) {
                        a->fetch = challenge_fetch_cancel(a->fetch);
                        a->restart_challenge = true;
                }
        }
        engine_checks_abort(m, NULL);
        for (size_t i = 0; i < m->n_cas; i++)
                CE(m->cas[i])->fetcher = challenge_fetcher_free(CE(m->cas[i])->fetcher);
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

/* (Re)creates the CA's challenge fetcher from the configuration in force. Fetches in flight on
 * the old one move to the new one; challenges already handed out keep their slots. */
static int ca_setup_fetcher(Manager *m, CaState *ca, const CbCa *c) {
        CaEngine *ce = CE(ca);
        ChallengeFetcher *f = NULL;
        int q;

        if (c->challenge == CB_CHALLENGE_MSCEP_ADMIN && c->admin_url &&
            (c->authentication != CB_AUTHENTICATION_KERBEROS || E(m)->creds)) {
                ChallengeFetcherSettings s = {
                        .ca_name = c->name,
                        .admin_url = c->admin_url,
                        .permitted_suffix = m->config->permitted_suffix,
                        .trust_anchors = c->trust_anchors,
                        .timeout_usec = c->timeout_usec,
                        .max_outstanding = c->max_outstanding_challenges,
                        .kerberos = c->authentication == CB_AUTHENTICATION_KERBEROS,
                        .event = m->event,
                        .previous = ce->fetcher,
                };
                q = challenge_fetcher_new(E(m)->http, E(m)->creds, &s, &f);
                if (q < 0)
                        return q;
        }

        /* Requests waiting on the old fetcher start again on the new one. */
        Request *moved[m->n_requests + 1];
        size_t n_moved = 0;
        for (size_t i = 0; i < m->n_requests; i++) {
                Request *r = m->requests[i];
                Attempt *a = r->engine;
                if (a && a->fetch && strcmp(r->rec->ca, ca->name) == 0) {
                        a->fetch = challenge_fetch_cancel(a->fetch);
                        moved[n_moved++] = r;
                }
        }
        challenge_fetcher_free(ce->fetcher);
        ce->fetcher = f;
        ce->warned_anonymous = false;   /* a new load: a new warning if mscep_admin is still open */
        for (size_t i = 0; i < n_moved; i++)
                step_challenge(moved[i]);
        return 0;
}

int engine_config_changed(Manager *m) {
        char *settings = krb5_settings_string(m->config);

        if (!settings)
                return -ENOMEM;
        if (E(m)->krb5_settings && strcmp(settings, E(m)->krb5_settings) != 0)
                (void) engine_renew_creds(m, settings);
        else {
                free(E(m)->krb5_settings);
                E(m)->krb5_settings = settings;
        }

        /* Per-CA state follows the configuration: new CAs get fresh state, removed ones go
         * (their requests fail as UnknownCA at their next step), kept ones keep their cache
         * unless their URL changed. */
        CaState **cas = calloc(m->config->n_cas + 1, sizeof(CaState *));

        if (!cas)
                return -ENOMEM;
        for (size_t i = 0; i < m->config->n_cas; i++) {
                CaState *old = manager_find_ca_state(m, m->config->cas[i].name);
                if (old) {
                        cas[i] = old;
                        continue;
                }
                CaState *ca = calloc(1, sizeof(*ca));
                CaEngine *ce = calloc(1, sizeof(*ce));
                if (!ca || !ce || !(ca->name = strdup(m->config->cas[i].name))) {
                        free(ca);
                        free(ce);
                        for (size_t j = 0; j < i; j++)
                                if (!manager_find_ca_state(m, cas[j]->name))
                                        ca_state_free(cas[j]);
                        free(cas);
                        return -ENOMEM;
                }
                ca->manager = m;
                ca->engine = ce;
                cas[i] = ca;
        }
        /* Drop the CAs that are gone. */
        for (size_t i = 0; i < m->n_cas; i++) {
                bool kept = false;
                for (size_t j = 0; j < m->config->n_cas; j++)
                        if (cas[j] == m->cas[i])
                                kept = true;
                if (kept) {
                        /* Refetch metadata lazily in case the URL or trust changed. */
                        CaEngine *ce = CE(m->cas[i]);
                        if (!ce->meta_http) {
                                ce->have_caps = false;
                                ce->certs = scep_cacerts_free(ce->certs);
                                ce->force_get = false;
                        }
                        continue;
                }
                CaState *ca = m->cas[i];
                CaEngine *ce = CE(ca);
                /* Checks of this CA hold its state: they end now. */
                engine_checks_abort(m, ca);
                http_request_cancel(ce->meta_http);
                ce->meta_http = NULL;
                meta_done(ca, TRANSPORT_PROTOCOL_ERROR, "The CA was removed from the configuration.");
                for (size_t j = 0; j < m->n_requests; j++) {
                        Request *r = m->requests[j];
                        if (r->engine && strcmp(r->rec->ca, ca->name) == 0)
                                end_failed(r, BROKER_ERROR_UNKNOWN_CA,
                                               "The CA was removed from the configuration.");
                }
                /* Out of the list before it is freed: the next removed CA's requests look CAs up
                 * by name while they end. */
                m->cas[i] = NULL;
                ca_state_free(ca);
        }
        free(m->cas);
        m->cas = cas;
        m->n_cas = m->config->n_cas;

        for (size_t i = 0; i < m->n_cas; i++) {
                int q = ca_setup_fetcher(m, m->cas[i], &m->config->cas[i]);
                if (q < 0)
                        return log_error_errno(q, "CA %s: cannot set up challenge retrieval: %m",
                                               m->cas[i]->name);
        }
        for (size_t i = 0; i < m->n_requests; i++) {
                Attempt *a = m->requests[i]->engine;
                if (a && a->restart_challenge) {
                        a->restart_challenge = false;
                        step_challenge(m->requests[i]);
                }
        }
        return 0;
}
