/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * ndes-load: the server's capacity, measured without the broker. Run by enroll-bench.sh in the
 * lab (Kerberos ticket in KRB5CCNAME, trust anchors for https).
 *
 *   ndes-load ADMIN_URL SCEP_URL CA_FILE N CONCURRENCY [live]
 *
 * Preparation (not timed): GetCACaps and GetCACert once, one RSA-2048 key, then N challenges
 * fetched from ADMIN_URL (Kerberos) and N PKCSReq messages built with them by the broker's own
 * SCEP code (service/scep-*). The emulator must hold N + CONCURRENCY unused challenges
 * (ndes-emulator ctl cache_size=).
 *
 * Timed: CONCURRENCY threads, each with one kept-alive curl handle, take the next message and do
 * what an enrollment costs the server: GET the challenge page (a fresh challenge, which stays
 * unused) and POST the pre-made PKIOperation. An enrollment counts when both answers are 200 and
 * the CertRep is not empty (the script checks scep.log for N SUCCESS lines).
 *
 * With "live", nothing is pre-made beyond the key: each enrollment GETs its challenge page and
 * POSTs a PKCSReq built with that very challenge (the broker's SCEP code, on the client's
 * thread, as any client must), so at most CONCURRENCY challenges are outstanding at the server
 * at once, as with the broker's MaxOutstandingChallenges=: this runs with NDES's own password
 * cache of 5 (the preparation's N challenges would not fit in it).
 *
 * Prints one JSON line: enrollments, seconds, per_s, p50_ms, p95_ms.
 */
#include <curl/curl.h>
#include <errno.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "scep-cacert.h"
#include "scep-caps.h"
#include "scep-csr.h"
#include "scep-message.h"

typedef struct Buf {
        char *data;
        size_t size;
} Buf;

static const char *arg_admin_url, *arg_scep_url, *arg_ca_file;
static size_t arg_n;
static unsigned arg_concurrency;

static ScepMessage **messages;
static bool arg_live;
static EVP_PKEY *live_key;
static ScepCACerts *live_certs;
static ScepAlgorithms live_alg;
static double *latencies;
static atomic_size_t next_index;
static atomic_int failed;

static double now(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

static size_t write_cb(char *p, size_t size, size_t n, void *userdata) {
        Buf *b = userdata;
        char *d = realloc(b->data, b->size + size * n + 1);
        if (!d)
                return 0;
        memcpy(d + b->size, p, size * n);
        b->data = d;
        b->size += size * n;
        b->data[b->size] = 0;
        return size * n;
}

static CURL *handle_new(void) {
        CURL *h = curl_easy_init();
        if (!h)
                return NULL;
        curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(h, CURLOPT_HTTP_VERSION, (long) CURL_HTTP_VERSION_1_1);
        curl_easy_setopt(h, CURLOPT_TIMEOUT, 60L);
        curl_easy_setopt(h, CURLOPT_PROXY, "");
        curl_easy_setopt(h, CURLOPT_CAINFO, arg_ca_file);
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, write_cb);
        return h;
}

/* GET (post == NULL) or POST; the body in *ret (caller frees ret->data). Returns the HTTP status
 * or -1. Negotiate on every request, as the broker does. */
static long http(CURL *h, const char *url, bool negotiate, const ScepMessage *post, Buf *ret) {
        struct curl_slist *headers = NULL;
        long code = -1;

        *ret = (Buf) {};
        curl_easy_setopt(h, CURLOPT_URL, url);
        curl_easy_setopt(h, CURLOPT_WRITEDATA, ret);
        if (negotiate) {
                curl_easy_setopt(h, CURLOPT_HTTPAUTH, (long) CURLAUTH_NEGOTIATE);
                curl_easy_setopt(h, CURLOPT_USERPWD, ":");
        } else {
                curl_easy_setopt(h, CURLOPT_HTTPAUTH, (long) CURLAUTH_BASIC);
                curl_easy_setopt(h, CURLOPT_USERPWD, NULL);
        }
        if (post) {
                headers = curl_slist_append(headers, "Expect:");
                headers = curl_slist_append(headers, "Content-Type: application/x-pki-message");
                curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
                curl_easy_setopt(h, CURLOPT_POSTFIELDS, (const char *) post->der);
                curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long) post->size);
        } else {
                curl_easy_setopt(h, CURLOPT_HTTPHEADER, NULL);
                curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
        }
        CURLcode cc = curl_easy_perform(h);
        if (cc == CURLE_OK)
                curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
        else
                fprintf(stderr, "ndes-load: %s: %s\n", url, curl_easy_strerror(cc));
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, NULL);
        curl_slist_free_all(headers);
        return code;
}

/* The challenge from an NDES admin page (UTF-16LE or UTF-8): 16 upper-case hex digits. */
static int page_challenge(const Buf *page, char ret[17]) {
        static const char marker[] = "password is: <B> ";
        char *ascii = malloc(page->size + 1);
        size_t n = 0;
        if (!ascii)
                return -ENOMEM;
        for (size_t i = 0; i < page->size; i++)
                if (page->data[i] > 0 && page->data[i] < 0x7f)
                        ascii[n++] = page->data[i];
        ascii[n] = 0;
        char *p = strstr(ascii, marker);
        int r = -EBADMSG;
        if (p && strspn(p + strlen(marker), "0123456789ABCDEF") >= 16) {
                memcpy(ret, p + strlen(marker), 16);
                ret[16] = 0;
                r = 0;
        }
        free(ascii);
        return r;
}

/* A PKCSReq for enrollment i with challenge, the key and the CA's certificates. */
static int build_message(size_t i, const char *challenge, EVP_PKEY *key, ScepCACerts *certs, const ScepAlgorithms *alg,
                         ScepMessage **ret) {
        char cn[64];
        ScepError err = {};
        X509_REQ *csr = NULL;
        X509 *signer = NULL;
        int r;

        snprintf(cn, sizeof cn, "load%zu.a.example.test", i);
        const ScepRdn rdn = { "CN", cn };
        const char *names[] = { cn };
        ScepCsrParams p = {
                .subject = &rdn, .n_subject = 1, .dns_names = names, .n_dns_names = 1,
                .usage = SCEP_USAGE_BOTH, .challenge = challenge, .digest = alg->digest,
        };
        r = scep_csr_build(&p, key, &csr, &err);
        if (r == 0)
                r = scep_signer_cert_build(csr, key, alg->digest, &signer, &err);
        if (r == 0) {
                ScepRequestParams rp = {
                        .csr = csr, .signer_cert = signer, .signer_key = key,
                        .recipient = certs->recipient, .ca = certs->ca,
                        .cipher = alg->cipher, .digest = alg->digest,
                };
                r = scep_message_build(SCEP_MESSAGE_PKCS_REQ, &rp, ret, &err);
        }
        if (r != 0)
                fprintf(stderr, "ndes-load: message %zu: %s\n", i, err.message);
        X509_free(signer);
        scep_csr_free(csr);
        return r;
}

static char *url_with(const char *base, const char *query) {
        char *s = NULL;
        if (asprintf(&s, "%s?%s", base, query) < 0)
                return NULL;
        return s;
}

static void *worker(void *userdata) {
        char *pki_url = userdata;
        CURL *h = handle_new();
        if (!h) {
                atomic_store(&failed, 1);
                return NULL;
        }
        for (;;) {
                size_t i = atomic_fetch_add(&next_index, 1);
                if (i >= arg_n)
                        break;
                double t0 = now();
                Buf page, rep;
                long c1 = http(h, arg_admin_url, true, NULL, &page);
                if (arg_live && c1 == 200) {
                        char challenge[17];
                        if (page_challenge(&page, challenge) < 0 ||
                            build_message(i, challenge, live_key, live_certs, &live_alg, &messages[i]) != 0)
                                c1 = -1;
                }
                long c2 = c1 == 200 ? http(h, pki_url, false, messages[i], &rep) : (rep = (Buf) {}, -1);
                latencies[i] = now() - t0;
                if (c1 != 200 || c2 != 200 || rep.size == 0) {
                        fprintf(stderr, "ndes-load: enrollment %zu: challenge HTTP %ld, PKIOperation HTTP %ld (%zu bytes)\n",
                                i, c1, c2, rep.size);
                        atomic_store(&failed, 1);
                }
                free(page.data);
                free(rep.data);
        }
        curl_easy_cleanup(h);
        return NULL;
}

static int cmp_double(const void *a, const void *b) {
        double x = *(const double *) a, y = *(const double *) b;
        return (x > y) - (x < y);
}

int main(int argc, char *argv[]) {
        if (argc != 6 && !(argc == 7 && strcmp(argv[6], "live") == 0)) {
                fprintf(stderr, "usage: ndes-load ADMIN_URL SCEP_URL CA_FILE N CONCURRENCY [live]\n");
                return 2;
        }
        arg_live = argc == 7;
        arg_admin_url = argv[1];
        arg_scep_url = argv[2];
        arg_ca_file = argv[3];
        arg_n = strtoul(argv[4], NULL, 10);
        arg_concurrency = (unsigned) strtoul(argv[5], NULL, 10);
        if (arg_n == 0 || arg_concurrency == 0 || arg_concurrency > 256)
                return 2;
        curl_global_init(CURL_GLOBAL_DEFAULT);

        CURL *h = handle_new();
        char *caps_url = url_with(arg_scep_url, "operation=GetCACaps");
        char *cacert_url = url_with(arg_scep_url, "operation=GetCACert&message=ca");
        char *pki_url = url_with(arg_scep_url, "operation=PKIOperation");
        if (!h || !caps_url || !cacert_url || !pki_url)
                return 1;
        Buf caps_body, cacert_body;
        char *content_type = NULL;
        if (http(h, caps_url, false, NULL, &caps_body) != 200 ||
            http(h, cacert_url, false, NULL, &cacert_body) != 200) {
                fprintf(stderr, "ndes-load: GetCACaps or GetCACert failed\n");
                return 1;
        }
        curl_easy_getinfo(h, CURLINFO_CONTENT_TYPE, &content_type);

        ScepError err = {};
        unsigned caps;
        ScepAlgorithms alg;
        ScepCACerts *certs = NULL;
        if (scep_caps_parse(caps_body.data, caps_body.size, &caps, &err) != 0 ||
            scep_caps_choose(caps, SCEP_FLOOR_DEFAULT, &alg, &err) != 0 ||
            scep_cacert_parse(content_type, cacert_body.data, cacert_body.size, NULL, &certs, &err) != 0) {
                fprintf(stderr, "ndes-load: caps or CA certificates: %s\n", err.message);
                return 1;
        }

        EVP_PKEY *key = EVP_RSA_gen(2048);
        messages = calloc(arg_n, sizeof *messages);
        latencies = calloc(arg_n, sizeof *latencies);
        if (!key || !messages || !latencies)
                return 1;
        for (size_t i = 0; !arg_live && i < arg_n; i++) {
                char challenge[17];
                Buf page;
                long code = http(h, arg_admin_url, true, NULL, &page);
                if (code != 200 || page_challenge(&page, challenge) < 0) {
                        fprintf(stderr, "ndes-load: challenge %zu: HTTP %ld, no challenge in the page "
                                "(is cache_size at least N + CONCURRENCY?)\n", i, code);
                        return 1;
                }
                free(page.data);
                if (build_message(i, challenge, key, certs, &alg, &messages[i]) != 0)
                        return 1;
        }
        live_key = key;
        live_certs = certs;
        live_alg = alg;
        curl_easy_cleanup(h);

        pthread_t *threads = calloc(arg_concurrency, sizeof *threads);
        if (!threads)
                return 1;
        double t0 = now();
        for (unsigned t = 0; t < arg_concurrency; t++)
                if (pthread_create(&threads[t], NULL, worker, pki_url) != 0)
                        return 1;
        for (unsigned t = 0; t < arg_concurrency; t++)
                pthread_join(threads[t], NULL);
        double total = now() - t0;
        if (atomic_load(&failed))
                return 1;

        qsort(latencies, arg_n, sizeof *latencies, cmp_double);
        printf("{\"enrollments\": %zu, \"concurrency\": %u, \"seconds\": %.3f, \"per_s\": %.2f, "
               "\"p50_ms\": %.2f, \"p95_ms\": %.2f}\n",
               arg_n, arg_concurrency, total, (double) arg_n / total,
               latencies[arg_n / 2] * 1000, latencies[(size_t) (arg_n * 0.95)] * 1000);
        return 0;
}
