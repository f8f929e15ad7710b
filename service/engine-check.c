/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* CA.Check(): the diagnostic steps in order (configuration, keytab, ticket-granting ticket,
 * service ticket for HTTP/<host>, TLS, GetCACaps, GetCACert, and on request the mscep_admin
 * challenge), each answered ok, fail or skip with what to fix. */
#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "challenge-page.h"
#include "engine.h"
#include "engine-internal.h"
#include "log.h"
#include "basic.h"
#include "seed-steps.h"
#include "caller-uid-limit.h"

#define CHECK_ROWS_MAX (3 + 5 * CB_CA_SERVERS_MAX)

/* The steps in order (check_steps[] runs each). From CHECK_STEP_SERVICE_TICKET on they run once
 * per server of the CA; a step's row names may differ (GetCACaps also answers "tls"). */
typedef enum CheckStep {
        CHECK_STEP_CONFIGURATION,
        CHECK_STEP_KEYTAB,
        CHECK_STEP_TGT,
        CHECK_STEP_SERVICE_TICKET,
        CHECK_STEP_GETCACAPS,           /* TLS and GetCACaps */
        CHECK_STEP_GETCACERT,
        CHECK_STEP_CHALLENGE,
        _CHECK_STEP_MAX,                /* the current server's steps are done */
} CheckStep;

typedef struct Check {
        struct Check *next;
        Manager *manager;
        CaState *ca;
        CheckComplete complete;
        void *userdata;
        bool want_challenge;
        uid_t uid;
        CheckStep step;
        bool failed;                    /* a step of the current server (or before them) failed */
        /* A CA with several NDES servers: the service ticket, TLS, GetCACaps, GetCACert and
         * challenge steps run once per server (URL= order), each row's detail starting with the
         * server's host; a failure skips the rest of that server's steps only. */
        size_t server;
        size_t server_first_row;
        CheckRow rows[CHECK_ROWS_MAX];
        size_t n_rows;
        HttpRequest *http;
        Krb5ServiceWait *wait;
        ChallengeFetch *fetch;
        unsigned caps;
} Check;

static void check_free(Check *k) {
        Engine *e = manager_engine(k->manager);

        for (Check **p = &e->checks; *p; p = &(*p)->next)
                if (*p == k) {
                        *p = k->next;
                        break;
                }
        http_request_cancel(k->http);
        krb5_service_wait_cancel(k->wait);
        challenge_fetch_cancel(k->fetch);
        for (size_t i = 0; i < k->n_rows; i++) {
                free((char *) k->rows[i].step);
                free((char *) k->rows[i].result);
                free((char *) k->rows[i].detail);
        }
        free(k);
}

static void check_run(Check *k);

/* The seed step each Check step verifies (seed-steps.h). A failure whose message names a more
 * precise one keeps it. */
static const char *check_step_seed(const char *step) {
        static const struct {
                const char *step, *seed;
        } table[] = {
                { "configuration",              SEED_KRB_SETTINGS },
                { "keytab",                     SEED_KRB_USER },
                { "ticket-granting-ticket",     SEED_KRB_SETTINGS },
                { "service-ticket",             SEED_WIN_SETSPN },
                { "tls",                        SEED_NONE_TLS },
                { "getcacaps",                  SEED_CA_FIELDS },
                { "getcacert",                  SEED_CA_FIELDS },
                { "challenge",                  "Seed: Pre-configuration steps 2 and 3 (IIS_USRS, enroll permission on "
                                                "the template) and Configuring Windows servers, steps 3 to 7 "
                                                "(useAppPoolCredentials, Anonymous Authentication disabled, Kernel "
                                                "mode authentication disabled, Negotiate first)" },
        };

        for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
                if (strcmp(table[i].step, step) == 0)
                        return table[i].seed;
        return NULL;
}

static bool check_step_per_server(const char *step) {
        return strcmp(step, "service-ticket") == 0 || strcmp(step, "tls") == 0 || strcmp(step, "getcacaps") == 0 ||
               strcmp(step, "getcacert") == 0 || strcmp(step, "challenge") == 0;
}

static void check_add(Check *k, const char *step, const char *result, const char *detail) {
        const CbCa *c = cb_config_find_ca(k->manager->config, k->ca->name);
        const char *seed = check_step_seed(step);
        _cleanup_free_ char *prefixed = NULL;
        char *d = NULL;

        if (k->n_rows >= CHECK_ROWS_MAX)
                return;
        detail = detail ?: "";
        /* Out of memory, the row goes without the server's name or the seed step. */
        if (c && c->n_servers > 1 && check_step_per_server(step) &&
            asprintf(&prefixed, "%s: %s", ca_server_host(c, k->server), detail) >= 0)
                detail = prefixed;
        size_t len = strlen(detail);
        while (len > 0 && strchr(" .", detail[len - 1]))
                len--;
        if (seed && !strstr(detail, "Seed: ") && !strstr(detail, "Not a seed step") &&
            asprintf(&d, "%.*s%s%s", (int) len, detail, len ? ". " : "", seed) < 0)
                d = NULL;
        k->rows[k->n_rows] = (CheckRow) { .step = strdup(step), .result = strdup(result),
                                          .detail = d ?: strdup(detail) };
        k->n_rows++;
        if (strcmp(result, "fail") == 0)
                k->failed = true;
}

/* The steps go to whoever asked (bus-ca.c builds the reply); then k is freed. */
static void check_finish(Check *k) {
        k->complete(k->rows, k->n_rows, k->userdata);
        check_free(k);
}

static void check_abort(Check *k) {
        http_request_cancel(k->http);
        k->http = NULL;
        k->wait = krb5_service_wait_cancel(k->wait);
        k->fetch = challenge_fetch_cancel(k->fetch);
        check_add(k, "configuration", "fail",
                  "the configuration was reloaded while the check ran; run Check() again");
        check_finish(k);
}

static void check_on_service(Krb5Creds *creds, TransportOutcome outcome, const char *message, void *userdata) {
        Check *k = userdata;
        const CbCa *c = cb_config_find_ca(k->manager->config, k->ca->name);
        char detail[512];

        k->wait = NULL;
        snprintf(detail, sizeof detail, "ticket for HTTP/%s",
                 c ? ca_server_admin_host(c, k->server) ?: ca_server_host(c, k->server) : "?");
        check_add(k, "service-ticket", outcome == TRANSPORT_OK ? "ok" : "fail",
                  outcome == TRANSPORT_OK ? detail : message);
        check_run(k);           /* check_run() already moved past this step */
}

/* GetCACaps answered (TLS went through): the capabilities, and whether they meet the floor. */
static void check_getcacaps(Check *k, const CbCa *c, const HttpResult *res) {
        bool https = strncmp(ca_server_url(c, k->server), "https:", 6) == 0;
        const char *names[11];
        char detail[1024] = "";
        ScepAlgorithms alg;
        ScepError err = {};
        size_t n;

        check_add(k, "tls", https ? "ok" : "skip",
                  https ? "server certificate verified" : "plain http: no TLS (use https:// to protect the exchange)");
        k->caps = 0;
        if (res->http_code == 200)
                (void) scep_caps_parse(res->body, res->body_size, &k->caps, &err);
        n = scep_caps_to_strv(k->caps, names);
        for (size_t i = 0; i < n; i++) {
                strncat(detail, names[i], sizeof detail - strlen(detail) - 2);
                strncat(detail, " ", sizeof detail - strlen(detail) - 1);
        }
        if (scep_caps_choose(k->caps, c->allow_legacy_ciphers ? SCEP_FLOOR_LEGACY : SCEP_FLOOR_DEFAULT,
                             &alg, &err) != 0) {
                check_add(k, "getcacaps", "fail", err.message);
                return;
        }
        check_add(k, "getcacaps", "ok", n ? detail : "no capabilities advertised");
}

/* GetCACert answered 200: what the CA's certificates are. */
static void check_getcacert(Check *k, const CbCa *c, const HttpResult *res) {
        _cleanup_(scep_cacerts_freep) ScepCACerts *certs = NULL;
        ScepError err = {};
        char detail[1024], fp[100];

        if (scep_cacert_parse(res->content_type, res->body, res->body_size,
                              c->has_fingerprint ? c->fingerprint : NULL, &certs, &err) != 0) {
                check_add(k, "getcacert", "fail", err.message);
                return;
        }
        scep_fingerprint_format(certs->ca_fingerprint, fp, sizeof fp);
        snprintf(detail, sizeof detail, "CA %s%s", fp,
                 certs->ra_encrypt ? ", separate RA signing and encryption certificates" : ", no RA");
        check_add(k, "getcacert", "ok", detail);
}

static void check_on_http(HttpClient *client, const HttpResult *res, void *userdata) {
        Check *k = userdata;
        const CbCa *c = cb_config_find_ca(k->manager->config, k->ca->name);
        char detail[1024];

        assert(k->http && (k->step == CHECK_STEP_GETCACAPS || k->step == CHECK_STEP_GETCACERT));
        k->http = NULL;
        if (!c) {
                check_add(k, "configuration", "fail", "The CA was removed by a reload.");
                check_finish(k);
                return;
        }
        switch (k->step) {
        case CHECK_STEP_GETCACAPS:
                if (res->outcome != TRANSPORT_OK) {
                        check_add(k, "tls", res->outcome == TRANSPORT_TLS_VERIFY_FAILED ? "fail" : "ok",
                                  res->outcome == TRANSPORT_TLS_VERIFY_FAILED ? res->message : "");
                        if (res->outcome != TRANSPORT_TLS_VERIFY_FAILED)
                                check_add(k, "getcacaps", "fail", res->message);
                        break;
                }
                check_getcacaps(k, c, res);
                break;
        case CHECK_STEP_GETCACERT:
                if (res->outcome != TRANSPORT_OK || res->http_code != 200) {
                        snprintf(detail, sizeof detail, "%s", res->message ?: "unexpected HTTP status");
                        if (res->outcome == TRANSPORT_OK)
                                snprintf(detail, sizeof detail, "HTTP %ld", res->http_code);
                        check_add(k, "getcacert", "fail", detail);
                        break;
                }
                check_getcacert(k, c, res);
                break;
        default:
                break;
        }
        k->step++;
        check_run(k);
}

static void check_on_challenge(ChallengeFetcher *f, ChallengeResult *res, void *userdata) {
        Check *k = userdata;

        k->fetch = NULL;
        if (res->outcome == TRANSPORT_OK && res->anonymous) {
                const CbCa *c = cb_config_find_ca(k->manager->config, k->ca->name);
                _cleanup_free_ char *hint = challenge_anonymous_hint(c ? ca_server_admin_host(c, k->server) : NULL,
                                                                     c ? ca_server_admin_url(c, k->server) : NULL);
                check_add(k, "challenge", "fail", hint ?: "Disable Anonymous Authentication on mscep_admin");
        } else if (res->outcome == TRANSPORT_OK)
                check_add(k, "challenge", "ok", "a one-time challenge password was issued (kept for the next "
                          "enrollment: NDES holds only a few unused ones)");
        else
                check_add(k, "challenge", "fail", res->message);
        /* Not thrown away: the next enrollment of this CA uses it (it may be waiting now). */
        challenge_fetcher_keep_spare(f, res);
        res->secret = NULL;
        check_run(k);           /* check_run() already moved past this step */
}

/* The current server's steps are done (or skipped after a failure): 1 when there is another
 * server to check (k moved to it), 0 when the Check is complete. */
static int check_next_server(Check *k, const CbCa *c) {
        if (!c || k->server + 1 >= c->n_servers)
                return 0;
        k->server++;
        k->server_first_row = k->n_rows;
        k->failed = false;
        k->step = c->authentication == CB_AUTHENTICATION_KERBEROS ? CHECK_STEP_SERVICE_TICKET : CHECK_STEP_GETCACAPS;
        if (k->step == CHECK_STEP_GETCACAPS)
                check_add(k, "service-ticket", "skip", "Authentication=none");
        return 1;
}

/* What a step did: the next step is k->step (CHECK_CONTINUE), a callback runs check_run() again
 * (CHECK_WAIT: k may be freed already), or the current server's steps are done
 * (CHECK_SERVER_DONE). */
typedef enum CheckNext {
        CHECK_CONTINUE,
        CHECK_WAIT,
        CHECK_SERVER_DONE,
} CheckNext;

typedef CheckNext (*CheckStepRun)(Check *k, const CbCa *c);

static CheckNext check_step_configuration(Check *k, const CbCa *c) {
        const CbConfig *cfg = k->manager->config;
        char detail[1024];

        if (c->n_servers > 1) {
                char list[768] = "";
                for (size_t i = 0; i < c->n_servers; i++) {
                        strncat(list, i ? ", " : "", sizeof list - strlen(list) - 1);
                        strncat(list, c->server_urls[i], sizeof list - strlen(list) - 1);
                }
                snprintf(detail, sizeof detail, "CA %s at %zu servers (%s), realm %s, principal %s",
                         c->name, c->n_servers, list, cfg->realm, cfg->principal);
        } else
                snprintf(detail, sizeof detail, "CA %s at %s, realm %s, principal %s", c->name,
                         c->url, cfg->realm, cfg->principal);
        check_add(k, "configuration", "ok", detail);
        k->step++;
        return CHECK_CONTINUE;
}

static CheckNext check_step_keytab(Check *k, const CbCa *c) {
        const CbConfig *cfg = k->manager->config;
        char detail[1024];

        if (c->authentication != CB_AUTHENTICATION_KERBEROS) {
                check_add(k, "keytab", "skip", "Authentication=none");
                check_add(k, "ticket-granting-ticket", "skip", "Authentication=none");
                check_add(k, "service-ticket", "skip", "Authentication=none");
                k->step = CHECK_STEP_GETCACAPS;
                return CHECK_CONTINUE;
        }
        if (cfg->mode == CB_KERBEROS_MODE_GSS_PROXY)
                check_add(k, "keytab", "skip", "Mode=gss-proxy: gss-proxy holds the keytab");
        else if (access(cfg->keytab, R_OK) < 0) {
                snprintf(detail, sizeof detail, "Cannot read the keytab %s: %s. Export the service "
                         "account's keys (ktpass or kadmin ktadd) to it, readable by certbrokerd only.",
                         cfg->keytab, strerror(errno));
                check_add(k, "keytab", "fail", detail);
        } else
                check_add(k, "keytab", "ok", cfg->keytab);
        k->step++;
        return CHECK_CONTINUE;
}

static CheckNext check_step_tgt(Check *k, const CbCa *c) {
        Engine *e = manager_engine(k->manager);
        CredentialState st;
        const char *m = NULL;
        char detail[1024];

        k->step++;
        if (!e->creds) {
                check_add(k, "ticket-granting-ticket", "fail", e->krb5_error ?: "no credentials");
                return CHECK_CONTINUE;
        }
        st = krb5_creds_get_state(e->creds);
        if (st == CREDENTIAL_VALID) {
                snprintf(detail, sizeof detail, "valid for %s", k->manager->config->principal);
                check_add(k, "ticket-granting-ticket", "ok", detail);
        } else if (krb5_creds_is_acquiring(e->creds) && krb5_creds_get_error(e->creds, &m) == TRANSPORT_OK) {
                check_add(k, "ticket-granting-ticket", "fail",
                          "still being acquired from the KDC; run Check again in a moment");
        } else {
                (void) krb5_creds_get_error(e->creds, &m);
                check_add(k, "ticket-granting-ticket", "fail", m ?: "no ticket");
        }
        return CHECK_CONTINUE;
}

static CheckNext check_step_service_ticket(Check *k, const CbCa *c) {
        Engine *e = manager_engine(k->manager);
        char detail[1024];
        int r;

        k->step++;
        if (!e->creds) {
                check_add(k, "service-ticket", "fail", e->krb5_error ?: "no credentials");
                return CHECK_CONTINUE;
        }
        k->server_first_row = k->server == 0 ? k->n_rows : k->server_first_row;
        r = krb5_creds_ensure_service(e->creds, ca_server_admin_host(c, k->server) ?: ca_server_host(c, k->server),
                                      check_on_service, k, &k->wait);
        if (r == 0)
                return CHECK_WAIT;
        if (r > 0) {
                snprintf(detail, sizeof detail, "ticket for HTTP/%s",
                         ca_server_admin_host(c, k->server) ?: ca_server_host(c, k->server));
                check_add(k, "service-ticket", "ok", detail);
        } else
                check_add(k, "service-ticket", "fail", strerror(-r));
        return CHECK_CONTINUE;
}

/* GetCACaps (with TLS) and GetCACert: one GET each, answered in check_on_http(). */
static CheckNext check_step_http(Check *k, const CbCa *c) {
        const CbConfig *cfg = k->manager->config;
        _cleanup_free_ char *url = NULL, *why = NULL;
        int r;

        if (asprintf(&url, "%s?operation=%s", ca_server_url(c, k->server),
                     k->step == CHECK_STEP_GETCACAPS ? "GetCACaps" : "GetCACert") < 0) {
                check_add(k, "configuration", "fail", "out of memory building the URL");
                return CHECK_CONTINUE;
        }
        HttpRequestOptions o = {
                .url = url,
                .permitted_suffix = cfg->permitted_suffix,
                .negotiate = c->authentication == CB_AUTHENTICATION_KERBEROS,
                .trust_anchors = c->trust_anchors,
                .timeout_usec = c->timeout_usec,
        };
        r = http_client_start(manager_engine(k->manager)->http, &o, check_on_http, k, &k->http, &why);
        if (r < 0) {
                check_add(k, k->step == CHECK_STEP_GETCACAPS ? "tls" : "getcacert", "fail", why ?: strerror(-r));
                return CHECK_CONTINUE;
        }
        return CHECK_WAIT;
}

/* Why a challenge fetch asked for now would wait (challenge_fetcher_can_start_now() said so). */
static void check_challenge_busy(const ChallengeFetcher *f, char *buf, size_t size) {
        unsigned ceiling = challenge_fetcher_get_ceiling(f);

        if (challenge_fetcher_get_queued(f) > 0)
                snprintf(buf, size, "not fetched: %u enrollments are waiting for a challenge, and they come "
                         "first; run the Check again later", challenge_fetcher_get_queued(f));
        else if (ceiling > 0)
                snprintf(buf, size, "not fetched: %s, so this broker fetches at most %u at once (of "
                         "MaxOutstandingChallenges=%u) besides the %u NDES still holds unused, and that many are "
                         "taken; run the Check again later", challenge_fetcher_get_ceiling_why(f), ceiling,
                         challenge_fetcher_get_max(f), challenge_fetcher_get_held(f));
        else
                snprintf(buf, size, "not fetched: all %u of MaxOutstandingChallenges= are taken (%u by "
                         "challenges NDES still holds unused, until they expire; %u enrollments waiting), and "
                         "NDES keeps only a few unused challenges; run the Check again later",
                         challenge_fetcher_get_max(f), challenge_fetcher_get_held(f),
                         challenge_fetcher_get_queued(f));
}

static CheckNext check_step_challenge(Check *k, const CbCa *c) {
        ChallengeFetcher *f;
        int r;

        if (!k->want_challenge || c->challenge != CB_CHALLENGE_MSCEP_ADMIN) {
                if (k->want_challenge)
                        check_add(k, "challenge", "skip", "the CA does not use mscep_admin");
                return CHECK_SERVER_DONE;
        }
        f = k->server < CB_CA_SERVERS_MAX ? ca_engine(k->ca)->fetchers[k->server] : NULL;
        k->step++;
        if (!f) {
                check_add(k, "challenge", "fail", manager_engine(k->manager)->krb5_error ?: "no Kerberos credentials");
                return CHECK_CONTINUE;
        }
        if (!challenge_fetcher_can_start_now(f)) {
                /* Not waited for: a slot may stay held for as long as NDES keeps an unused
                 * challenge (an hour), and a waiting Check would hold one of the
                 * CHECK_MAX_RUNNING places as long. */
                char busy[640];
                check_challenge_busy(f, busy, sizeof busy);
                check_add(k, "challenge", "skip", busy);
                return CHECK_CONTINUE;
        }
        /* Fresh: the step checks what the page answers now. The handler may run (and free k)
         * before this returns. */
        r = challenge_fetcher_fetch_fresh(f, (uint32_t) k->uid, check_on_challenge, k, &k->fetch);
        if (r < 0) {
                check_add(k, "challenge", "fail", strerror(-r));
                return CHECK_CONTINUE;
        }
        return CHECK_WAIT;
}

static const CheckStepRun check_steps[_CHECK_STEP_MAX] = {
        [CHECK_STEP_CONFIGURATION]  = check_step_configuration,
        [CHECK_STEP_KEYTAB]         = check_step_keytab,
        [CHECK_STEP_TGT]            = check_step_tgt,
        [CHECK_STEP_SERVICE_TICKET] = check_step_service_ticket,
        [CHECK_STEP_GETCACAPS]      = check_step_http,
        [CHECK_STEP_GETCACERT]      = check_step_http,
        [CHECK_STEP_CHALLENGE]      = check_step_challenge,
};

/* After a failure everything that follows is skipped (of this server only, once the servers'
 * steps began). */
static void check_skip_rest(Check *k, bool servers) {
        static const char *const names[] = { "configuration", "keytab", "ticket-granting-ticket", "service-ticket",
                                             "tls", "getcacaps", "getcacert", "challenge" };

        for (size_t i = 0; i < ELEMENTSOF(names); i++) {
                bool seen = false;
                for (size_t j = servers ? k->server_first_row : 0; j < k->n_rows; j++)
                        if (k->rows[j].step && strcmp(k->rows[j].step, names[i]) == 0)
                                seen = true;
                if (!seen && (!servers || check_step_per_server(names[i])) &&
                    (i < ELEMENTSOF(names) - 1 || k->want_challenge))
                        check_add(k, names[i], "skip", "an earlier step failed");
        }
}

static void check_run(Check *k) {
        const CbCa *c = cb_config_find_ca(k->manager->config, k->ca->name);

        for (;;) {
                CheckNext next;

                if (!c) {
                        check_add(k, "configuration", "fail", "The CA was removed by a reload.");
                        check_finish(k);
                        return;
                }
                if (k->failed) {
                        bool servers = k->step >= CHECK_STEP_GETCACAPS;

                        check_skip_rest(k, servers);
                        if (servers && check_next_server(k, c))
                                continue;
                        check_finish(k);
                        return;
                }
                next = k->step < _CHECK_STEP_MAX ? check_steps[k->step](k, c) : CHECK_SERVER_DONE;
                if (next == CHECK_WAIT)
                        return;
                if (next == CHECK_CONTINUE)
                        continue;
                if (check_next_server(k, c))
                        continue;
                check_finish(k);
                return;
        }
}

CheckAdmission engine_ca_check_admit(Manager *m, CaState *ca, uid_t uid, bool want_challenge,
                                     uint64_t *ret_retry_usec) {
        unsigned total = 0, mine = 0;
        uint64_t retry = 0, now;

        for (Check *k = manager_engine(m)->checks; k; k = k->next) {
                total++;
                if (k->uid == uid)
                        mine++;
        }
        if (total >= CHECK_MAX_RUNNING)
                return CHECK_TOO_MANY;
        if (uid != 0 && mine >= CHECK_MAX_RUNNING_PER_UID)
                return CHECK_UID_BUSY;
        if (uid == 0 || !want_challenge)
                return CHECK_ADMITTED;
        if (!ca_engine(ca)->check_challenge_limit &&
            uid_limit_new(1, CHECK_CHALLENGE_INTERVAL_USEC, 65536, false, &ca_engine(ca)->check_challenge_limit) < 0)
                return CHECK_TOO_MANY;
        now = monotonic_usec();
        if (!uid_limit_take(ca_engine(ca)->check_challenge_limit, uid, now, NULL, &retry)) {
                if (ret_retry_usec)
                        *ret_retry_usec = retry > now ? retry - now : 0;
                return CHECK_CHALLENGE_RATE;
        }
        /* Forget uids whose interval has passed, so the table follows the active ones. */
        uid_limit_sweep(ca_engine(ca)->check_challenge_limit, now, NULL, NULL);
        return CHECK_ADMITTED;
}

int engine_ca_check(Manager *m, CaState *ca, bool want_challenge, uid_t uid, CheckComplete complete,
                    void *userdata) {
        Check *k = calloc(1, sizeof(*k));

        if (!k)
                return -ENOMEM;
        k->manager = m;
        k->uid = uid;
        k->ca = ca;
        k->complete = complete;
        k->userdata = userdata;
        k->want_challenge = want_challenge;
        k->next = manager_engine(m)->checks;
        manager_engine(m)->checks = k;
        log_debug("CA.Check of %s by uid %u started%s", ca->name, (unsigned) uid,
                  want_challenge ? ", with the challenge" : "");
        check_run(k);
        return 0;
}

void engine_checks_abort(Manager *m, CaState *ca) {
        for (Check *k = manager_engine(m)->checks, *next; k; k = next) {
                next = k->next;
                if (!ca || k->ca == ca)
                        check_abort(k);
        }
}

void engine_checks_free(Manager *m) {
        while (manager_engine(m)->checks) {
                Check *k = manager_engine(m)->checks;
                k->complete(NULL, 0, k->userdata);
                check_free(k);
        }
}
