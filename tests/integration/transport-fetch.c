/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * transport-fetch: drives the transport modules (krb5-creds, http-client, challenge-fetch) on
 * a real sd-event loop for the integration tests in tests/integration/transport-*.sh.
 *
 *   transport-fetch [OPTIONS] state
 *   transport-fetch [OPTIONS] challenge URL [N]      N challenges, one after the other
 *   transport-fetch [OPTIONS] challenge-parallel URL N   N at once (MaxOutstandingChallenges applies)
 *   transport-fetch [OPTIONS] get URL                one GET (Negotiate unless --no-kerberos)
 *   transport-fetch [OPTIONS] post URL FILE TYPE     one POST of FILE's bytes as Content-Type TYPE
 *   transport-fetch [OPTIONS] watch URL SECONDS      a challenge every second for SECONDS,
 *                                                    printing every credential state change
 *
 * Options: --realm R --kdc HOST[:PORT] (repeatable) --principal P --keytab F
 *          --mode keytab|gss-proxy --runtime-dir D --suffix S --trust-anchors F
 *          --timeout SEC --max-outstanding N --no-kerberos
 *          --unused   free each challenge as never used (NDES keeps it: its slot stays held until
 *                     it expires; each result line then also says held=N), instead of as used
 *
 * Output, one line per result: "result=<ok|Outcome> http=<code> ..." and a final
 * "summary ..." line. Challenges are never printed: only their length and a SHA-256 prefix
 * (so a test with a known page can compare).
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>
#include <systemd/sd-event.h>

#include "challenge-fetch.h"
#include "http-client.h"
#include "http-guard.h"
#include "krb5-creds.h"

static const char *arg_realm = "EXAMPLE.TEST", *arg_principal = "svc-scep@EXAMPLE.TEST", *arg_keytab;
static const char *arg_runtime_dir, *arg_suffix = "example.test", *arg_trust;
static char *arg_kdcs[16];
static unsigned arg_n_kdcs;
static Krb5Mode arg_mode = KRB5_MODE_KEYTAB;
static unsigned arg_timeout = 30, arg_max_outstanding = 4;
static bool arg_kerberos = true;
static bool arg_unused = false;
static void *arg_post_data;
static size_t arg_post_size;
static const char *arg_post_type;

typedef struct Run {
        sd_event *event;
        Krb5Creds *creds;
        HttpClient *http;
        ChallengeFetcher *fetcher;
        const char *url;
        unsigned total, started, done, ok;
        bool parallel;
        bool watch;
        bool watch_busy;
        unsigned watch_seconds;
        sd_event_source *watch_timer;
        int exit_code;
        uint64_t t0;
} Run;

static uint64_t now_usec(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000 + (uint64_t) ts.tv_nsec / 1000;
}

static const char *name(TransportOutcome o) {
        return o == TRANSPORT_OK ? "ok" : transport_outcome_to_string(o);
}

static void summary(Run *run) {
        uint64_t as = 0, tgs = 0, el = now_usec() - run->t0;

        if (run->creds)
                krb5_creds_get_counters(run->creds, &as, &tgs);
        printf("summary fetches=%u ok=%u connects=%llu as=%llu tgs=%llu elapsed_ms=%.1f per_fetch_ms=%.3f\n",
               run->done, run->ok, (unsigned long long) http_client_get_connects(run->http),
               (unsigned long long) as, (unsigned long long) tgs, el / 1000.0,
               run->done ? el / 1000.0 / run->done : 0.0);
        fflush(stdout);
}

static void start_next(Run *run);

static void on_challenge(ChallengeFetcher *f, ChallengeResult *res, void *userdata) {
        Run *run = userdata;

        run->done++;
        if (res->outcome == TRANSPORT_OK) {
                size_t len;
                const char *pw = challenge_secret_get(res->secret, &len);
                unsigned char h[crypto_hash_sha256_BYTES];

                crypto_hash_sha256(h, (const unsigned char *) pw, len);
                run->ok++;
                printf("result=ok http=%ld encoding=%s challenge_len=%zu challenge_sha256=%02x%02x%02x%02x%02x%02x%02x%02x outstanding=%u\n",
                       res->http_code, res->encoding ? res->encoding : "-", len, h[0], h[1], h[2], h[3], h[4],
                       h[5], h[6], h[7], challenge_fetcher_get_outstanding(f));
                /* "Used" (as if a CertRep had answered it): freeing wipes it and gives the CA's
                 * slot back. --unused: NDES still has it, the slot stays held. */
                if (!arg_unused)
                        challenge_secret_set_consumed(res->secret);
                challenge_secret_free(res->secret);
                res->secret = NULL;
                if (arg_unused)
                        printf("held=%u outstanding=%u queued=%u\n", challenge_fetcher_get_held(f),
                               challenge_fetcher_get_outstanding(f), challenge_fetcher_get_queued(f));
        } else {
                printf("result=%s http=%ld message=%s\n", name(res->outcome), res->http_code,
                       res->message ? res->message : "");
                run->exit_code = 1;
        }
        fflush(stdout);
        if (run->watch) {
                run->watch_busy = false;
                return;
        }
        if (run->done == run->total) {
                summary(run);
                sd_event_exit(run->event, run->exit_code);
                return;
        }
        if (!run->parallel)
                start_next(run);
}

static void start_next(Run *run) {
        int r;

        run->started++;
        r = challenge_fetcher_fetch(run->fetcher, 0, on_challenge, run, NULL);
        if (r < 0) {
                fprintf(stderr, "cannot start fetch: %s\n", strerror(-r));
                sd_event_exit(run->event, 2);
        }
}

static void on_get(HttpClient *c, const HttpResult *res, void *userdata) {
        Run *run = userdata;

        run->done++;
        if (res->outcome == TRANSPORT_OK)
                run->ok++;
        printf("result=%s http=%ld body_size=%zu content_type=%s connects=%ld message=%s\n", name(res->outcome),
               res->http_code, res->body_size, res->content_type ? res->content_type : "-", res->num_connects,
               res->message ? res->message : "");
        summary(run);
        sd_event_exit(run->event, res->outcome == TRANSPORT_OK ? 0 : 1);
}

static void do_get(Run *run) {
        HttpRequestOptions o = {
                .url = run->url,
                .permitted_suffix = arg_suffix,
                .negotiate = arg_kerberos,
                .trust_anchors = arg_trust,
                .timeout_usec = (uint64_t) arg_timeout * 1000000,
                .post_data = arg_post_data,
                .post_size = arg_post_size,
                .content_type = arg_post_type,
        };
        char *m = NULL;
        int r;

        r = http_client_start(run->http, &o, on_get, run, NULL, &m);
        if (r < 0) {
                printf("result=%s http=0 message=%s\n", r == -EPERM ? "NameNotPermitted" : "ProtocolError",
                       m ? m : strerror(-r));
                free(m);
                sd_event_exit(run->event, 1);
        }
}

static void on_ticket(Krb5Creds *c, TransportOutcome o, const char *message, void *userdata) {
        Run *run = userdata;

        if (o != TRANSPORT_OK) {
                printf("result=%s http=0 message=%s\n", name(o), message ? message : "");
                sd_event_exit(run->event, 1);
                return;
        }
        do_get(run);
}

static int on_watch_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        Run *run = userdata;

        if ((now_usec() - run->t0) / 1000000 >= run->watch_seconds) {
                summary(run);
                sd_event_exit(run->event, 0);
                return 0;
        }
        if (!run->watch_busy) {
                run->watch_busy = true;
                printf("t=%.1f ", (now_usec() - run->t0) / 1e6);
                start_next(run);
        }
        (void) sd_event_source_set_time_relative(s, 1000000);
        (void) sd_event_source_set_enabled(s, SD_EVENT_ON);
        return 0;
}

static void on_state(Krb5Creds *c, void *userdata) {
        Run *run = userdata;
        const char *m;
        TransportOutcome o = krb5_creds_get_error(c, &m);

        if (run->watch) {
                printf("t=%.1f state=%s expiry_usec=%llu error=%s\n", (now_usec() - run->t0) / 1e6,
                       credential_state_to_string(krb5_creds_get_state(c)),
                       (unsigned long long) krb5_creds_get_expiry(c), o == TRANSPORT_OK ? "-" : name(o));
                fflush(stdout);
                return;
        }
        if (krb5_creds_is_acquiring(c))
                return;
        printf("state=%s expiry_usec=%llu error=%s message=%s\n",
               credential_state_to_string(krb5_creds_get_state(c)),
               (unsigned long long) krb5_creds_get_expiry(c), o == TRANSPORT_OK ? "-" : name(o), m ? m : "");
        fflush(stdout);
        sd_event_exit(run->event, krb5_creds_get_state(c) == CREDENTIAL_VALID ? 0 : 1);
}

int main(int argc, char **argv) {
        static const struct option options[] = {
                { "realm", required_argument, NULL, 'r' },
                { "kdc", required_argument, NULL, 'k' },
                { "principal", required_argument, NULL, 'p' },
                { "keytab", required_argument, NULL, 't' },
                { "mode", required_argument, NULL, 'm' },
                { "runtime-dir", required_argument, NULL, 'd' },
                { "suffix", required_argument, NULL, 's' },
                { "trust-anchors", required_argument, NULL, 'a' },
                { "timeout", required_argument, NULL, 'T' },
                { "max-outstanding", required_argument, NULL, 'o' },
                { "no-kerberos", no_argument, NULL, 'n' },
                { "unused", no_argument, NULL, 'u' },
                {}
        };
        Run run = { .exit_code = 0 };
        const char *cmd;
        char *m = NULL;
        int c, r;

        while ((c = getopt_long(argc, argv, "", options, NULL)) >= 0)
                switch (c) {
                case 'r': arg_realm = optarg; break;
                case 'k':
                        if (arg_n_kdcs < 15)
                                arg_kdcs[arg_n_kdcs++] = optarg;
                        break;
                case 'p': arg_principal = optarg; break;
                case 't': arg_keytab = optarg; break;
                case 'm':
                        if (strcmp(optarg, "gss-proxy") == 0)
                                arg_mode = KRB5_MODE_GSS_PROXY;
                        else if (strcmp(optarg, "keytab") == 0)
                                arg_mode = KRB5_MODE_KEYTAB;
                        else
                                return fprintf(stderr, "--mode: keytab or gss-proxy\n"), 2;
                        break;
                case 'd': arg_runtime_dir = optarg; break;
                case 's': arg_suffix = optarg; break;
                case 'a': arg_trust = optarg; break;
                case 'T': arg_timeout = (unsigned) atoi(optarg); break;
                case 'o': arg_max_outstanding = (unsigned) atoi(optarg); break;
                case 'n': arg_kerberos = false; break;
                case 'u': arg_unused = true; break;
                default: return 2;
                }
        if (optind >= argc || !arg_runtime_dir) {
                fprintf(stderr, "usage: transport-fetch --runtime-dir D [options] state|challenge URL [N]|challenge-parallel URL N|get URL\n");
                return 2;
        }
        cmd = argv[optind];
        run.url = optind + 1 < argc ? argv[optind + 1] : NULL;
        run.total = optind + 2 < argc ? (unsigned) atoi(argv[optind + 2]) : 1;
        if (sodium_init() < 0)
                return 2;

        r = sd_event_default(&run.event);
        if (r < 0)
                return 2;

        if (arg_kerberos || strcmp(cmd, "state") == 0) {
                Krb5Settings s = {
                        .realm = arg_realm,
                        .kdcs = arg_kdcs,
                        .principal = arg_principal,
                        .keytab = arg_keytab,
                        .mode = arg_mode,
                        .domain_suffix = arg_suffix,
                        .runtime_dir = arg_runtime_dir,
                };
                r = krb5_creds_new(run.event, &s, &run.creds, &m);
                if (r < 0) {
                        fprintf(stderr, "krb5_creds_new: %s: %s\n", strerror(-r), m ? m : "");
                        r = 2;
                        goto finish;
                }
                krb5_creds_set_backoff(run.creds, 200000, 1000000);
        }
        r = http_client_new(run.event, &run.http);
        if (r < 0) {
                r = 2;
                goto finish;
        }
        run.t0 = now_usec();

        if (strcmp(cmd, "state") == 0) {
                krb5_creds_set_state_handler(run.creds, on_state, &run);
        } else if (strcmp(cmd, "challenge") == 0 || strcmp(cmd, "challenge-parallel") == 0 ||
                   strcmp(cmd, "watch") == 0) {
                ChallengeFetcherSettings fs = {
                        .ca_name = "test",
                        .admin_url = run.url,
                        .permitted_suffix = arg_suffix,
                        .trust_anchors = arg_trust,
                        .timeout_usec = (uint64_t) arg_timeout * 1000000,
                        .max_outstanding = arg_max_outstanding,
                        .kerberos = arg_kerberos,
                };
                if (!run.url || run.total == 0) {
                        r = 2;
                        goto finish;
                }
                run.parallel = strcmp(cmd, "challenge-parallel") == 0;
                run.watch = strcmp(cmd, "watch") == 0;
                r = challenge_fetcher_new(run.http, run.creds, &fs, &run.fetcher);
                if (r < 0) {
                        r = 2;
                        goto finish;
                }
                if (run.watch) {
                        run.watch_seconds = run.total;
                        run.total = UINT_MAX;
                        if (run.creds)
                                krb5_creds_set_state_handler(run.creds, on_state, &run);
                        r = sd_event_add_time_relative(run.event, &run.watch_timer, CLOCK_MONOTONIC, 0, 1000,
                                                       on_watch_timer, &run);
                        if (r < 0) {
                                r = 2;
                                goto finish;
                        }
                } else if (run.parallel)
                        for (unsigned i = 0; i < run.total; i++)
                                start_next(&run);
                else
                        start_next(&run);
        } else if (strcmp(cmd, "get") == 0 || strcmp(cmd, "post") == 0) {
                char *host = NULL, *gm = NULL;

                if (strcmp(cmd, "post") == 0) {
                        FILE *f = optind + 3 < argc ? fopen(argv[optind + 2], "rbe") : NULL;
                        if (!f) {
                                r = 2;
                                goto finish;
                        }
                        arg_post_data = malloc(1024 * 1024);
                        arg_post_size = arg_post_data ? fread(arg_post_data, 1, 1024 * 1024, f) : 0;
                        fclose(f);
                        arg_post_type = argv[optind + 3];
                        if (!arg_post_data) {
                                r = 2;
                                goto finish;
                        }
                }

                if (!run.url) {
                        r = 2;
                        goto finish;
                }
                /* Guard first: a refused host reaches neither the KDC nor the server. */
                r = http_guard_url(run.url, arg_suffix, NULL, &host, &gm);
                if (r < 0) {
                        printf("result=NameNotPermitted http=0 message=%s\n", gm ? gm : "");
                        free(gm);
                        r = 1;
                        goto finish;
                }
                if (arg_kerberos) {
                        r = krb5_creds_ensure_service(run.creds, host, on_ticket, &run, NULL);
                        if (r > 0)
                                do_get(&run);
                } else
                        do_get(&run);
                free(host);
                if (r < 0) {
                        r = 2;
                        goto finish;
                }
        } else {
                fprintf(stderr, "unknown command %s\n", cmd);
                r = 2;
                goto finish;
        }

        r = sd_event_loop(run.event);
        if (r < 0)
                r = 2;
finish:
        free(m);
        free(arg_post_data);
        sd_event_source_disable_unref(run.watch_timer);
        challenge_fetcher_free(run.fetcher);
        http_client_free(run.http);
        krb5_creds_free(run.creds);
        sd_event_unref(run.event);
        return r;
}
