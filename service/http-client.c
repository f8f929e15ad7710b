/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>
#include <openssl/ssl.h>
#include <sodium.h>

#include "basic.h"
#include "message-util.h"
#include "config.h"
#include "curl-cleanup.h"
#include "http-client.h"
#include "http-guard.h"
#include "krb5-errors.h"
#include "seed-steps.h"

#define IDLE_HANDLES_MAX 32

struct HttpRequest {
        HttpClient *client;
        HttpRequest *next, *prev;
        CURL *easy;
        CURLU *url;
        char *url_text;                 /* the URL as configured (no user info: the guard refuses it) */
        char *host;
        char *trust_anchors;
        http_handler_t handler;
        void *userdata;
        bool negotiate;
        struct curl_slist *headers;

        uint8_t *body;
        size_t size, cap, max;
        bool oversize;
        bool offered_negotiate, offered_other_auth;
        char errbuf[CURL_ERROR_SIZE];
};

struct HttpClient {
        sd_event *event;
        CURLM *multi;
        sd_event_source *timer;
        sd_event_source *more_done;     /* defer: further completions, one per loop iteration */
        HttpRequest *requests;
        unsigned n_active;
        CURL *idle[IDLE_HANDLES_MAX];
        unsigned n_idle;
        uint64_t n_connects;
        bool curl_global;
};

/* ---------- curl ↔ sd-event ---------- */

static void process_done(HttpClient *c);

static int on_io(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        HttpClient *c = userdata;
        int action = 0, running;

        if (revents & EPOLLIN)
                action |= CURL_CSELECT_IN;
        if (revents & EPOLLOUT)
                action |= CURL_CSELECT_OUT;
        if (revents & (EPOLLERR | EPOLLHUP))
                action |= CURL_CSELECT_ERR;
        (void) curl_multi_socket_action(c->multi, fd, action, &running);
        process_done(c);
        return 0;
}

static int on_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        HttpClient *c = userdata;
        int running;

        (void) curl_multi_socket_action(c->multi, CURL_SOCKET_TIMEOUT, 0, &running);
        process_done(c);
        return 0;
}

static int socket_cb(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp) {
        HttpClient *c = userp;
        sd_event_source *io = socketp;
        uint32_t events = 0;
        int r;

        if (what == CURL_POLL_REMOVE) {
                if (io) {
                        sd_event_source_disable_unref(io);
                        (void) curl_multi_assign(c->multi, fd, NULL);
                }
                return 0;
        }
        if (what & CURL_POLL_IN)
                events |= EPOLLIN;
        if (what & CURL_POLL_OUT)
                events |= EPOLLOUT;

        if (io) {
                r = sd_event_source_set_io_events(io, events);
                if (r < 0)
                        return -1;
                r = sd_event_source_set_enabled(io, SD_EVENT_ON);
                if (r < 0)
                        return -1;
                return 0;
        }
        r = sd_event_add_io(c->event, &io, fd, events, on_io, c);
        if (r < 0)
                return -1;
        (void) sd_event_source_set_description(io, "http-socket");
        if (curl_multi_assign(c->multi, fd, io) != CURLM_OK) {
                sd_event_source_disable_unref(io);
                return -1;
        }
        return 0;
}

static int timer_cb(CURLM *multi, long timeout_ms, void *userp) {
        HttpClient *c = userp;
        uint64_t now;
        int r;

        if (timeout_ms < 0)
                return c->timer && sd_event_source_set_enabled(c->timer, SD_EVENT_OFF) < 0 ? -1 : 0;

        r = sd_event_now(c->event, CLOCK_MONOTONIC, &now);
        if (r < 0)
                return -1;
        now += (uint64_t) timeout_ms * 1000;
        if (c->timer) {
                r = sd_event_source_set_time(c->timer, now);
                if (r < 0)
                        return -1;
                r = sd_event_source_set_enabled(c->timer, SD_EVENT_ONESHOT);
                if (r < 0)
                        return -1;
                return 0;
        }
        /* accuracy 1 µs: 0 would mean sd-event's default of 250 ms per curl timeout */
        r = sd_event_add_time(c->event, &c->timer, CLOCK_MONOTONIC, now, 1, on_timer, c);
        if (r < 0)
                return -1;
        (void) sd_event_source_set_description(c->timer, "http-timer");
        return 0;
}

/* ---------- requests ---------- */

static size_t write_cb(char *ptr, size_t size, size_t nmemb, void *userdata) {
        HttpRequest *req = userdata;
        size_t n = size * nmemb;

        if (n > req->max - req->size) {
                req->oversize = true;
                return 0;       /* aborts with CURLE_WRITE_ERROR */
        }
        if (req->size + n + 1 > req->cap) {
                size_t cap = req->cap ? req->cap : 4096;
                uint8_t *b;

                while (cap < req->size + n + 1)
                        cap *= 2;
                if (cap > req->max + 1)
                        cap = req->max + 1;
                /* Not realloc(): the old buffer is wiped, not left in the heap. */
                b = malloc(cap);
                if (!b)
                        return 0;
                if (req->body) {
                        memcpy(b, req->body, req->size);
                        sodium_memzero(req->body, req->cap);
                        free(req->body);
                }
                req->body = b;
                req->cap = cap;
        }
        memcpy(req->body + req->size, ptr, n);
        req->size += n;
        req->body[req->size] = 0;
        return n;
}

static size_t header_cb(char *ptr, size_t size, size_t nitems, void *userdata) {
        HttpRequest *req = userdata;
        size_t n = size * nitems;
        static const char name[] = "www-authenticate:";

        if (n > sizeof name - 1 && strncasecmp(ptr, name, sizeof name - 1) == 0) {
                const char *v = ptr + sizeof name - 1;
                size_t vl = n - (sizeof name - 1);

                while (vl > 0 && (*v == ' ' || *v == '\t')) {
                        v++;
                        vl--;
                }
                if (vl >= 9 && strncasecmp(v, "negotiate", 9) == 0)
                        req->offered_negotiate = true;
                else
                        req->offered_other_auth = true;
        }
        return n;
}

static void request_unlink(HttpRequest *req) {
        HttpClient *c = req->client;

        if (req->prev)
                req->prev->next = req->next;
        else if (c->requests == req)
                c->requests = req->next;
        if (req->next)
                req->next->prev = req->prev;
        req->next = req->prev = NULL;
        c->n_active--;
}

/* libcurl's OpenSSL backend: TLS record buffers hold a response in plaintext (an admin page: a
 * challenge password) after it was read; have OpenSSL wipe them. */
static CURLcode ssl_ctx_cb(CURL *curl, void *ssl_ctx, void *userdata) {
        SSL_CTX_set_options(ssl_ctx, SSL_OP_CLEANSE_PLAINTEXT);
        return CURLE_OK;
}

static void http_request_destroy(HttpRequest *req) {
        HttpClient *c = req->client;

        if (req->easy) {
                (void) curl_multi_remove_handle(c->multi, req->easy);
                if (c->n_idle < IDLE_HANDLES_MAX) {
                        curl_easy_reset(req->easy);
                        c->idle[c->n_idle++] = req->easy;
                } else
                        curl_easy_cleanup(req->easy);
        }
        curl_url_cleanup(req->url);
        curl_slist_free_all(req->headers);
        if (req->body) {
                sodium_memzero(req->body, req->cap);
                free(req->body);
        }
        free(req->url_text);
        free(req->host);
        free(req->trust_anchors);
        free(req);
}

HttpRequest *http_request_cancel(HttpRequest *req) {
        if (!req)
                return NULL;
        request_unlink(req);
        http_request_destroy(req);
        return NULL;
}

/* The values a transfer failure's message names. */
typedef enum CurlField {
        CURL_FIELD_NONE,
        CURL_FIELD_HOST,
        CURL_FIELD_URL,
        CURL_FIELD_ERROR,               /* curl's error buffer, or its text for the code */
        CURL_FIELD_ANCHORS_FILE,        /* TrustAnchors=, or "(system store)" */
        CURL_FIELD_ANCHORS_SETTING,     /* TrustAnchors=, or where to set it */
} CurlField;

typedef struct CurlFailure {
        int codes[5];                   /* CURLcode; CURLE_OK ends the list */
        TransportOutcome outcome;
        CurlField fields[MESSAGE_STRINGS_MAX];
        const char *format;             /* %s conversions only, filled with fields in order */
} CurlFailure;

static const CurlFailure curl_failures[] = {
        { { CURLE_COULDNT_RESOLVE_HOST }, TRANSPORT_CA_UNREACHABLE, { CURL_FIELD_HOST, CURL_FIELD_ERROR },
          "cannot resolve %s (%s): check the host name in URL=/AdminURL= and this host's DNS" },
        { { CURLE_COULDNT_CONNECT }, TRANSPORT_CA_UNREACHABLE, { CURL_FIELD_HOST, CURL_FIELD_URL, CURL_FIELD_ERROR },
          "cannot connect to %s for %s (%s): check that IIS runs on the SCEP server and that the "
          "port is reachable from this host" },
        { { CURLE_OPERATION_TIMEDOUT }, TRANSPORT_TIMEOUT, { CURL_FIELD_HOST, CURL_FIELD_URL, CURL_FIELD_ERROR },
          "no complete answer from %s for %s within the timeout (%s): check the server, or raise "
          "Timeout= in the CA's configuration" },
        { { CURLE_SSL_CACERT_BADFILE }, TRANSPORT_TLS_VERIFY_FAILED, { CURL_FIELD_ANCHORS_FILE, CURL_FIELD_ERROR },
          "cannot use the trust anchors %s (%s): TrustAnchors= must name a readable PEM file "
          "of CA certificates. " SEED_NONE_TLS },
        { { CURLE_SSL_CONNECT_ERROR }, TRANSPORT_TLS_VERIFY_FAILED,
          { CURL_FIELD_HOST, CURL_FIELD_ERROR, CURL_FIELD_URL },
          "TLS handshake with %s failed (%s): check that %s serves HTTPS with TLS 1.2 or "
          "newer. " SEED_NONE_TLS },
        { { CURLE_PEER_FAILED_VERIFICATION, CURLE_SSL_ISSUER_ERROR, CURLE_SSL_PINNEDPUBKEYNOTMATCH,
            CURLE_SSL_INVALIDCERTSTATUS, CURLE_SSL_CERTPROBLEM }, TRANSPORT_TLS_VERIFY_FAILED,
          { CURL_FIELD_HOST, CURL_FIELD_ERROR, CURL_FIELD_ANCHORS_SETTING, CURL_FIELD_HOST },
          "the TLS certificate of %s is not trusted for that name (%s): put the root of the "
          "CA that issued the SCEP server's certificate into %s, and make sure the "
          "certificate names %s. " SEED_NONE_TLS },
        { { CURLE_GOT_NOTHING, CURLE_RECV_ERROR, CURLE_SEND_ERROR, CURLE_PARTIAL_FILE }, TRANSPORT_CA_UNREACHABLE,
          { CURL_FIELD_HOST, CURL_FIELD_URL, CURL_FIELD_ERROR },
          "the connection to %s broke off during %s (%s)" },
        { { CURLE_AUTH_ERROR }, TRANSPORT_KERBEROS_FAILED, { CURL_FIELD_HOST, CURL_FIELD_ERROR },
          "Kerberos authentication to %s could not be started (%s)" },
        { { CURLE_FILESIZE_EXCEEDED }, TRANSPORT_PROTOCOL_ERROR, { CURL_FIELD_HOST, CURL_FIELD_URL, CURL_FIELD_ERROR },
          "the answer of %s to %s is larger than the broker accepts (%s)" },
};

static const CurlFailure *curl_failure_find(int curl_code) {
        for (size_t i = 0; i < ELEMENTSOF(curl_failures); i++)
                for (size_t j = 0; j < ELEMENTSOF(curl_failures[i].codes) && curl_failures[i].codes[j] != CURLE_OK; j++)
                        if (curl_failures[i].codes[j] == curl_code)
                                return &curl_failures[i];
        return NULL;
}

static char *curl_failure_message(const CurlFailure *failure, const char *host, const char *url, const char *error,
                                  const char *trust_anchors) {
        const char *values[] = {
                [CURL_FIELD_NONE] = NULL,
                [CURL_FIELD_HOST] = host,
                [CURL_FIELD_URL] = url,
                [CURL_FIELD_ERROR] = error,
                [CURL_FIELD_ANCHORS_FILE] = trust_anchors ? trust_anchors : "(system store)",
                [CURL_FIELD_ANCHORS_SETTING] = trust_anchors ? trust_anchors : "TrustAnchors= of the CA's configuration",
        };
        const char *strings[MESSAGE_STRINGS_MAX];

        for (size_t i = 0; i < ELEMENTSOF(strings); i++)
                strings[i] = values[failure->fields[i]];
        return message_printf_strings(failure->format, strings);
}

TransportOutcome http_classify_curl_error(int curl_code, const char *host, const char *url, const char *errbuf,
                                          const char *trust_anchors, char **ret_message) {
        const char *e = errbuf && *errbuf ? errbuf : curl_easy_strerror((CURLcode) curl_code);
        const CurlFailure *failure = curl_failure_find(curl_code);
        _cleanup_free_ char *m = NULL;

        host = host ? host : "?";
        url = url ? url : "?";
        if (failure)
                m = curl_failure_message(failure, host, url, e, trust_anchors);
        else
                m = message_printf("request to %s failed: %s", url, e);
        if (ret_message)
                *ret_message = TAKE_PTR(m);
        return failure ? failure->outcome : TRANSPORT_PROTOCOL_ERROR;
}

/* A 3xx answer: the broker never follows redirects; says where it pointed. */
static char *redirect_message(HttpRequest *req, long http_code) {
        _cleanup_(curl_url_cleanupp) CURLU *u = NULL;
        _cleanup_(curl_freep) char *target_host = NULL;
        char *location = NULL;

        (void) curl_easy_getinfo(req->easy, CURLINFO_REDIRECT_URL, &location);
        if (location && (u = curl_url()) && curl_url_set(u, CURLUPART_URL, location, 0) == CURLUE_OK)
                (void) curl_url_get(u, CURLUPART_HOST, &target_host, 0);
        return message_printf("%s answered %s with HTTP %ld, a redirect to host %s; the broker never follows "
                              "redirects: configure the final URL in URL=/AdminURL=", req->host, req->url_text,
                              http_code, target_host ? target_host : "(no Location header)");
}

/* A 401 to a request that offered Kerberos. */
static char *rejected_message(HttpRequest *req) {
        if (req->offered_negotiate)
                return krb5_error_rejected_hint(req->host, req->url_text);
        return message_printf("%s answered %s with 401 without offering Negotiate%s: enable Windows "
                              "Authentication on mscep_admin with Negotiate as the first provider, and "
                              "disable Anonymous Authentication. " SEED_WIN_NEGOTIATE, req->host, req->url_text,
                              req->offered_other_auth ? " (only other schemes, which the broker does not use)" : "");
}

/* The outcome of a finished transfer, and in *ret_message what went wrong (NULL if nothing). */
static TransportOutcome complete_outcome(HttpRequest *req, CURLcode code, long http_code, char **ret_message) {
        if (code != CURLE_OK && req->oversize) {
                *ret_message = message_printf("the answer of %s to %s is larger than %zu bytes: refused", req->host,
                                              req->url_text, req->max);
                return TRANSPORT_PROTOCOL_ERROR;
        }
        if (code != CURLE_OK)
                return http_classify_curl_error((int) code, req->host, req->url_text, req->errbuf, req->trust_anchors,
                                                ret_message);
        if (http_code >= 300 && http_code < 400) {
                *ret_message = redirect_message(req, http_code);
                return TRANSPORT_PROTOCOL_ERROR;
        }
        if (http_code == 401 && req->negotiate) {
                *ret_message = rejected_message(req);
                return TRANSPORT_AUTHENTICATION_REJECTED;
        }
        return TRANSPORT_OK;
}

static void complete(HttpClient *c, HttpRequest *req, CURLcode code) {
        HttpResult res = {
                .outcome = TRANSPORT_OK,
                .host = req->host,
                .curl_code = (int) code,
        };
        curl_off_t total = 0;
        _cleanup_free_ char *message = NULL;
        char *ct = NULL;
        long connects = 0;

        (void) curl_easy_getinfo(req->easy, CURLINFO_RESPONSE_CODE, &res.http_code);
        (void) curl_easy_getinfo(req->easy, CURLINFO_TOTAL_TIME_T, &total);
        (void) curl_easy_getinfo(req->easy, CURLINFO_NUM_CONNECTS, &connects);
        res.elapsed_usec = total > 0 ? (uint64_t) total : 0;
        res.num_connects = connects;
        res.negotiate_answered = req->offered_negotiate;
        c->n_connects += (uint64_t) connects;
        if (curl_easy_getinfo(req->easy, CURLINFO_CONTENT_TYPE, &ct) == CURLE_OK && ct)
                res.content_type = ct;

        res.outcome = complete_outcome(req, code, res.http_code, &message);
        res.message = message;
        if (res.outcome == TRANSPORT_OK) {
                res.body = req->body ? req->body : (const uint8_t *) "";
                res.body_size = req->size;
        }
        if (res.outcome != TRANSPORT_OK && !res.message)
                res.message = "out of memory";

        request_unlink(req);
        req->handler(c, &res, req->userdata);
        http_request_destroy(req);
}

/* Completes at most one finished transfer per loop iteration: a completion runs the caller's
 * handler (for the broker, a whole SCEP step with its crypto and journal write), and other
 * event sources, bus calls above all, get their turn between two of them. */
static void process_done(HttpClient *c) {
        CURLMsg *msg;
        int left = 0;

        while ((msg = curl_multi_info_read(c->multi, &left))) {
                HttpRequest *req = NULL;

                if (msg->msg != CURLMSG_DONE)
                        continue;
                if (curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **) &req) != CURLE_OK || !req)
                        continue;
                complete(c, req, msg->data.result);
                break;
        }
        if (left > 0 && c->more_done)
                (void) sd_event_source_set_enabled(c->more_done, SD_EVENT_ONESHOT);
}

static int on_more_done(sd_event_source *s, void *userdata) {
        process_done(userdata);
        return 0;
}

static CURL *take_easy(HttpClient *c) {
        if (c->n_idle > 0)
                return c->idle[--c->n_idle];
        return curl_easy_init();
}

DEFINE_POINTER_CLEANUP(HttpRequest, http_request_destroy);

/* Sets a transfer's option; returns from the calling function (which has `req` and
 * `ret_message`) with -EIO and a message naming the option when curl refuses it. */
#define SETOPT(opt, val)                                                                        \
        do {                                                                                    \
                if (curl_easy_setopt(req->easy, opt, val) != CURLE_OK)                          \
                        return setopt_failed(#opt, ret_message);                                \
        } while (0)

static int setopt_failed(const char *option, char **ret_message) {
        *ret_message = message_printf("cannot set curl option %s", option);
        return -EIO;
}

/* Fills a new request of c, not yet linked or started, once its URL passed the guard (else the
 * guard's message in *ret_message). */
static int request_init(HttpRequest *req, HttpClient *c, const HttpRequestOptions *o, http_handler_t handler,
                        void *userdata, char **ret_message) {
        int r;

        req->client = c;
        req->handler = handler;
        req->userdata = userdata;
        req->negotiate = o->negotiate;
        req->max = o->max_response ? o->max_response : HTTP_DEFAULT_MAX_RESPONSE;

        /* The guard, before anything can connect. */
        r = http_guard_url(o->url, o->permitted_suffix, &req->url, &req->host, ret_message);
        if (r < 0)
                return r;
        req->url_text = strdup(o->url);
        if (!req->url_text)
                return -ENOMEM;
        if (o->trust_anchors) {
                req->trust_anchors = strdup(o->trust_anchors);
                if (!req->trust_anchors)
                        return -ENOMEM;
        }
        req->easy = take_easy(c);
        if (!req->easy)
                return -ENOMEM;
        return 0;
}

static int request_set_options(HttpRequest *req, const HttpRequestOptions *o, char **ret_message) {
        uint64_t timeout = o->timeout_usec ? o->timeout_usec : HTTP_DEFAULT_TIMEOUT_USEC;

        SETOPT(CURLOPT_PRIVATE, req);
        SETOPT(CURLOPT_CURLU, req->url);
        SETOPT(CURLOPT_PROTOCOLS_STR, "http,https");
        SETOPT(CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
        SETOPT(CURLOPT_FOLLOWLOCATION, 0L);
        SETOPT(CURLOPT_PROXY, "");              /* ignore http_proxy & co. */
        SETOPT(CURLOPT_NOSIGNAL, 1L);
        SETOPT(CURLOPT_HTTP_VERSION, (long) CURL_HTTP_VERSION_1_1);
        SETOPT(CURLOPT_TIMEOUT_MS, (long) (timeout / 1000 ? timeout / 1000 : 1));
        SETOPT(CURLOPT_CONNECTTIMEOUT_MS, (long) (timeout / 1000 ? timeout / 1000 : 1));
        SETOPT(CURLOPT_TCP_KEEPALIVE, 1L);
        SETOPT(CURLOPT_SSL_VERIFYPEER, 1L);
        SETOPT(CURLOPT_SSL_VERIFYHOST, 2L);
        SETOPT(CURLOPT_SSLVERSION, (long) CURL_SSLVERSION_TLSv1_2);
        /* Only with the OpenSSL backend (CURLE_NOT_BUILT_IN otherwise): best effort. */
        (void) curl_easy_setopt(req->easy, CURLOPT_SSL_CTX_FUNCTION, ssl_ctx_cb);
        if (req->trust_anchors) {
                SETOPT(CURLOPT_CAINFO, req->trust_anchors);
                SETOPT(CURLOPT_CAPATH, (char *) NULL);  /* only these roots, not also the system's */
        }
        SETOPT(CURLOPT_MAXFILESIZE_LARGE, (curl_off_t) req->max);
        SETOPT(CURLOPT_WRITEFUNCTION, write_cb);
        SETOPT(CURLOPT_WRITEDATA, req);
        SETOPT(CURLOPT_HEADERFUNCTION, header_cb);
        SETOPT(CURLOPT_HEADERDATA, req);
        SETOPT(CURLOPT_ERRORBUFFER, req->errbuf);
        SETOPT(CURLOPT_USERAGENT, "certbroker/" CERTBROKER_VERSION);
        if (o->negotiate) {
                /* libcurl 7.88 only tries Negotiate when a user is set; ":" = the GSS default credentials. */
                SETOPT(CURLOPT_HTTPAUTH, (long) CURLAUTH_NEGOTIATE);
                SETOPT(CURLOPT_USERPWD, ":");
                SETOPT(CURLOPT_GSSAPI_DELEGATION, (long) CURLGSSAPI_DELEGATION_NONE);
        }
        if (o->fresh_connection)
                SETOPT(CURLOPT_FRESH_CONNECT, 1L);
        return 0;
}

static int request_set_post(HttpRequest *req, const HttpRequestOptions *o, char **ret_message) {
        req->headers = curl_slist_append(NULL, "Expect:");
        if (!req->headers)
                return -ENOMEM;
        if (o->content_type) {
                _cleanup_free_ char *h = message_printf("Content-Type: %s", o->content_type);
                struct curl_slist *l;

                if (!h)
                        return -ENOMEM;
                l = curl_slist_append(req->headers, h);
                if (!l)
                        return -ENOMEM;
                req->headers = l;
        }
        SETOPT(CURLOPT_HTTPHEADER, req->headers);
        SETOPT(CURLOPT_POST, 1L);
        SETOPT(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t) o->post_size);
        SETOPT(CURLOPT_COPYPOSTFIELDS, o->post_data);
        return 0;
}

#undef SETOPT

/* A request that failed to start: its message (NULL if none) to the caller, or dropped. */
static int start_failed(int r, char *m, char **ret_message) {
        if (ret_message)
                *ret_message = m;
        else
                free(m);
        return r;
}

int http_client_start(HttpClient *c, const HttpRequestOptions *o, http_handler_t handler, void *userdata,
                      HttpRequest **ret, char **ret_message) {
        _cleanup_(http_request_destroyp) HttpRequest *req = NULL;
        _cleanup_free_ char *m = NULL;
        int r;

        if (!c || !o || !o->url || !o->permitted_suffix || !handler)
                return -EINVAL;

        req = calloc(1, sizeof *req);
        if (!req)
                return -ENOMEM;
        r = request_init(req, c, o, handler, userdata, &m);
        if (r < 0)
                return start_failed(r, TAKE_PTR(m), ret_message);
        r = request_set_options(req, o, &m);
        if (r < 0)
                return start_failed(r, TAKE_PTR(m), ret_message);
        if (o->post_data) {
                r = request_set_post(req, o, &m);
                if (r < 0)
                        return start_failed(r, TAKE_PTR(m), ret_message);
        }
        if (curl_multi_add_handle(c->multi, req->easy) != CURLM_OK)
                return start_failed(-EIO, message_printf("cannot add the transfer for %s", req->url_text),
                                    ret_message);

        req->next = c->requests;
        if (c->requests)
                c->requests->prev = req;
        c->requests = req;
        c->n_active++;
        if (ret)
                *ret = req;
        TAKE_PTR(req);
        if (ret_message)
                *ret_message = NULL;
        return 0;
}

DEFINE_POINTER_CLEANUP(HttpClient, http_client_free);

static int client_set_callbacks(HttpClient *c) {
        if (curl_multi_setopt(c->multi, CURLMOPT_SOCKETFUNCTION, socket_cb) != CURLM_OK)
                return -EIO;
        if (curl_multi_setopt(c->multi, CURLMOPT_SOCKETDATA, c) != CURLM_OK)
                return -EIO;
        if (curl_multi_setopt(c->multi, CURLMOPT_TIMERFUNCTION, timer_cb) != CURLM_OK)
                return -EIO;
        if (curl_multi_setopt(c->multi, CURLMOPT_TIMERDATA, c) != CURLM_OK)
                return -EIO;
        if (curl_multi_setopt(c->multi, CURLMOPT_MAXCONNECTS, 64L) != CURLM_OK)
                return -EIO;
        if (http_client_set_limits(c, 8, 64) < 0)
                return -EIO;
        return 0;
}

int http_client_new(sd_event *event, HttpClient **ret) {
        _cleanup_(http_client_freep) HttpClient *c = NULL;
        int r;

        if (!event || !ret)
                return -EINVAL;
        c = calloc(1, sizeof *c);
        if (!c)
                return -ENOMEM;
        /* curl_global_init is not thread-safe in 7.88: certbrokerd calls this from main, early. */
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
                return -EIO;
        c->curl_global = true;
        c->event = sd_event_ref(event);
        c->multi = curl_multi_init();
        if (!c->multi)
                return -ENOMEM;
        r = client_set_callbacks(c);
        if (r < 0)
                return r;
        if (sd_event_add_defer(event, &c->more_done, on_more_done, c) < 0)
                return -ENOMEM;
        if (sd_event_source_set_enabled(c->more_done, SD_EVENT_OFF) < 0)
                return -ENOMEM;
        *ret = TAKE_PTR(c);
        return 0;
}

int http_client_set_limits(HttpClient *c, long max_host_connections, long max_total_connections) {
        if (curl_multi_setopt(c->multi, CURLMOPT_MAX_HOST_CONNECTIONS, max_host_connections) != CURLM_OK)
                return -EIO;
        if (curl_multi_setopt(c->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, max_total_connections) != CURLM_OK)
                return -EIO;
        return 0;
}

HttpClient *http_client_free(HttpClient *c) {
        if (!c)
                return NULL;
        while (c->requests)
                http_request_cancel(c->requests);
        while (c->n_idle > 0)
                curl_easy_cleanup(c->idle[--c->n_idle]);
        if (c->multi)
                curl_multi_cleanup(c->multi);   /* closes connections: REMOVE callbacks run */
        sd_event_source_disable_unref(c->timer);
        sd_event_source_disable_unref(c->more_done);
        sd_event_unref(c->event);
        if (c->curl_global)
                curl_global_cleanup();
        free(c);
        return NULL;
}

unsigned http_client_get_active(const HttpClient *c) {
        return c ? c->n_active : 0;
}

uint64_t http_client_get_connects(const HttpClient *c) {
        return c ? c->n_connects : 0;
}
