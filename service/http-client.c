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

#include "message-util.h"
#include "config.h"
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
                if (r >= 0)
                        r = sd_event_source_set_enabled(io, SD_EVENT_ON);
                return r < 0 ? -1 : 0;
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
                if (r >= 0)
                        r = sd_event_source_set_enabled(c->timer, SD_EVENT_ONESHOT);
                return r < 0 ? -1 : 0;
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
        HttpRequest *r = userdata;
        size_t n = size * nmemb;

        if (n > r->max - r->size) {
                r->oversize = true;
                return 0;       /* aborts with CURLE_WRITE_ERROR */
        }
        if (r->size + n + 1 > r->cap) {
                size_t cap = r->cap ? r->cap : 4096;
                uint8_t *b;

                while (cap < r->size + n + 1)
                        cap *= 2;
                if (cap > r->max + 1)
                        cap = r->max + 1;
                /* Not realloc(): the old buffer is wiped, not left in the heap. */
                b = malloc(cap);
                if (!b)
                        return 0;
                if (r->body) {
                        memcpy(b, r->body, r->size);
                        sodium_memzero(r->body, r->cap);
                        free(r->body);
                }
                r->body = b;
                r->cap = cap;
        }
        memcpy(r->body + r->size, ptr, n);
        r->size += n;
        r->body[r->size] = 0;
        return n;
}

static size_t header_cb(char *ptr, size_t size, size_t nitems, void *userdata) {
        HttpRequest *r = userdata;
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
                        r->offered_negotiate = true;
                else
                        r->offered_other_auth = true;
        }
        return n;
}

static void request_unlink(HttpRequest *r) {
        HttpClient *c = r->client;

        if (r->prev)
                r->prev->next = r->next;
        else if (c->requests == r)
                c->requests = r->next;
        if (r->next)
                r->next->prev = r->prev;
        r->next = r->prev = NULL;
        c->n_active--;
}

/* libcurl's OpenSSL backend: TLS record buffers hold a response in plaintext (an admin page: a
 * challenge password) after it was read; have OpenSSL wipe them. */
static CURLcode ssl_ctx_cb(CURL *curl, void *ssl_ctx, void *userdata) {
        SSL_CTX_set_options(ssl_ctx, SSL_OP_CLEANSE_PLAINTEXT);
        return CURLE_OK;
}

static void http_request_destroy(HttpRequest *r) {
        HttpClient *c = r->client;

        if (r->easy) {
                (void) curl_multi_remove_handle(c->multi, r->easy);
                if (c->n_idle < IDLE_HANDLES_MAX) {
                        curl_easy_reset(r->easy);
                        c->idle[c->n_idle++] = r->easy;
                } else
                        curl_easy_cleanup(r->easy);
        }
        curl_url_cleanup(r->url);
        curl_slist_free_all(r->headers);
        if (r->body) {
                sodium_memzero(r->body, r->cap);
                free(r->body);
        }
        free(r->url_text);
        free(r->host);
        free(r->trust_anchors);
        free(r);
}

HttpRequest *http_request_cancel(HttpRequest *r) {
        if (!r)
                return NULL;
        request_unlink(r);
        http_request_destroy(r);
        return NULL;
}

TransportOutcome http_classify_curl_error(int curl_code, const char *host, const char *url, const char *errbuf,
                                          const char *trust_anchors, char **ret_message) {
        const char *e = errbuf && *errbuf ? errbuf : curl_easy_strerror((CURLcode) curl_code);
        TransportOutcome o;
        char *m;

        host = host ? host : "?";
        url = url ? url : "?";
        switch (curl_code) {
        case CURLE_COULDNT_RESOLVE_HOST:
                o = TRANSPORT_CA_UNREACHABLE;
                m = message_printf("cannot resolve %s (%s): check the host name in URL=/AdminURL= and this host's DNS", host, e);
                break;
        case CURLE_COULDNT_CONNECT:
                o = TRANSPORT_CA_UNREACHABLE;
                m = message_printf("cannot connect to %s for %s (%s): check that IIS runs on the SCEP server and that the "
                        "port is reachable from this host", host, url, e);
                break;
        case CURLE_OPERATION_TIMEDOUT:
                o = TRANSPORT_TIMEOUT;
                m = message_printf("no complete answer from %s for %s within the timeout (%s): check the server, or raise "
                        "Timeout= in the CA's configuration", host, url, e);
                break;
        case CURLE_PEER_FAILED_VERIFICATION:
        case CURLE_SSL_CACERT_BADFILE:
        case CURLE_SSL_ISSUER_ERROR:
        case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
        case CURLE_SSL_INVALIDCERTSTATUS:
        case CURLE_SSL_CONNECT_ERROR:
        case CURLE_SSL_CERTPROBLEM:
                o = TRANSPORT_TLS_VERIFY_FAILED;
                if (curl_code == CURLE_SSL_CACERT_BADFILE)
                        m = message_printf("cannot use the trust anchors %s (%s): TrustAnchors= must name a readable PEM file "
                                "of CA certificates. " SEED_NONE_TLS, trust_anchors ? trust_anchors : "(system store)", e);
                else if (curl_code == CURLE_SSL_CONNECT_ERROR)
                        m = message_printf("TLS handshake with %s failed (%s): check that %s serves HTTPS with TLS 1.2 or "
                                "newer. " SEED_NONE_TLS, host, e, url);
                else
                        m = message_printf("the TLS certificate of %s is not trusted for that name (%s): put the root of the "
                                "CA that issued the SCEP server's certificate into %s, and make sure the "
                                "certificate names %s. " SEED_NONE_TLS, host, e,
                                trust_anchors ? trust_anchors : "TrustAnchors= of the CA's configuration", host);
                break;
        case CURLE_GOT_NOTHING:
        case CURLE_RECV_ERROR:
        case CURLE_SEND_ERROR:
        case CURLE_PARTIAL_FILE:
                o = TRANSPORT_CA_UNREACHABLE;
                m = message_printf("the connection to %s broke off during %s (%s)", host, url, e);
                break;
        case CURLE_AUTH_ERROR:
                o = TRANSPORT_KERBEROS_FAILED;
                m = message_printf("Kerberos authentication to %s could not be started (%s)", host, e);
                break;
        case CURLE_FILESIZE_EXCEEDED:
                o = TRANSPORT_PROTOCOL_ERROR;
                m = message_printf("the answer of %s to %s is larger than the broker accepts (%s)", host, url, e);
                break;
        default:
                o = TRANSPORT_PROTOCOL_ERROR;
                m = message_printf("request to %s failed: %s", url, e);
        }
        if (ret_message)
                *ret_message = m;
        else
                free(m);
        return o;
}

static void complete(HttpClient *c, HttpRequest *r, CURLcode code) {
        HttpResult res = {
                .outcome = TRANSPORT_OK,
                .host = r->host,
                .curl_code = (int) code,
        };
        curl_off_t total = 0;
        char *message = NULL, *ct = NULL, *location = NULL;
        long connects = 0;

        (void) curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &res.http_code);
        (void) curl_easy_getinfo(r->easy, CURLINFO_TOTAL_TIME_T, &total);
        (void) curl_easy_getinfo(r->easy, CURLINFO_NUM_CONNECTS, &connects);
        res.elapsed_usec = total > 0 ? (uint64_t) total : 0;
        res.num_connects = connects;
        res.negotiate_answered = r->offered_negotiate;
        c->n_connects += (uint64_t) connects;
        if (curl_easy_getinfo(r->easy, CURLINFO_CONTENT_TYPE, &ct) == CURLE_OK && ct)
                res.content_type = ct;

        if (code != CURLE_OK) {
                if (r->oversize) {
                        res.outcome = TRANSPORT_PROTOCOL_ERROR;
                        message = message_printf("the answer of %s to %s is larger than %zu bytes: refused", r->host,
                                      r->url_text, r->max);
                } else
                        res.outcome = http_classify_curl_error((int) code, r->host, r->url_text, r->errbuf,
                                                               r->trust_anchors, &message);
        } else if (res.http_code >= 300 && res.http_code < 400) {
                char *target_host = NULL;
                CURLU *u = NULL;

                (void) curl_easy_getinfo(r->easy, CURLINFO_REDIRECT_URL, &location);
                if (location && (u = curl_url()) && curl_url_set(u, CURLUPART_URL, location, 0) == CURLUE_OK)
                        (void) curl_url_get(u, CURLUPART_HOST, &target_host, 0);
                res.outcome = TRANSPORT_PROTOCOL_ERROR;
                message = message_printf("%s answered %s with HTTP %ld, a redirect to host %s; the broker never follows "
                              "redirects: configure the final URL in URL=/AdminURL=", r->host, r->url_text,
                              res.http_code, target_host ? target_host : "(no Location header)");
                curl_free(target_host);
                curl_url_cleanup(u);
        } else if (res.http_code == 401 && r->negotiate) {
                res.outcome = TRANSPORT_AUTHENTICATION_REJECTED;
                if (!r->offered_negotiate)
                        message = message_printf("%s answered %s with 401 without offering Negotiate%s: enable Windows "
                                      "Authentication on mscep_admin with Negotiate as the first provider, and "
                                      "disable Anonymous Authentication. " SEED_WIN_NEGOTIATE, r->host, r->url_text,
                                      r->offered_other_auth ? " (only other schemes, which the broker does not use)" : "");
                else
                        message = krb5_error_rejected_hint(r->host, r->url_text);
        }
        res.message = message;
        if (res.outcome == TRANSPORT_OK) {
                res.body = r->body ? r->body : (const uint8_t *) "";
                res.body_size = r->size;
        }
        if (res.outcome != TRANSPORT_OK && !res.message)
                res.message = "out of memory";

        request_unlink(r);
        r->handler(c, &res, r->userdata);
        free(message);
        http_request_destroy(r);
}

/* Completes at most one finished transfer per loop iteration: a completion runs the caller's
 * handler (for the broker, a whole SCEP step with its crypto and journal write), and other
 * event sources, bus calls above all, get their turn between two of them. */
static void process_done(HttpClient *c) {
        CURLMsg *msg;
        int left = 0;

        while ((msg = curl_multi_info_read(c->multi, &left))) {
                HttpRequest *r = NULL;

                if (msg->msg != CURLMSG_DONE)
                        continue;
                if (curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **) &r) != CURLE_OK || !r)
                        continue;
                complete(c, r, msg->data.result);
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

#define SETOPT(opt, val)                                                        \
        do {                                                                    \
                if (curl_easy_setopt(r->easy, opt, val) != CURLE_OK) {          \
                        rc = -EIO;                                             \
                        m = message_printf("cannot set curl option %s", #opt);             \
                        goto fail;                                              \
                }                                                               \
        } while (0)

int http_client_start(HttpClient *c, const HttpRequestOptions *o, http_handler_t handler, void *userdata,
                      HttpRequest **ret, char **ret_message) {
        HttpRequest *r = NULL;
        char *m = NULL;
        uint64_t timeout;
        int rc;

        if (!c || !o || !o->url || !o->permitted_suffix || !handler)
                return -EINVAL;

        r = calloc(1, sizeof *r);
        if (!r)
                return -ENOMEM;
        r->client = c;
        r->handler = handler;
        r->userdata = userdata;
        r->negotiate = o->negotiate;
        r->max = o->max_response ? o->max_response : HTTP_DEFAULT_MAX_RESPONSE;

        /* The guard, before anything can connect. */
        rc = http_guard_url(o->url, o->permitted_suffix, &r->url, &r->host, &m);
        if (rc < 0)
                goto fail_nolist;
        r->url_text = strdup(o->url);
        if (o->trust_anchors)
                r->trust_anchors = strdup(o->trust_anchors);
        if (!r->url_text || (o->trust_anchors && !r->trust_anchors)) {
                rc = -ENOMEM;
                goto fail_nolist;
        }
        r->easy = take_easy(c);
        if (!r->easy) {
                rc = -ENOMEM;
                goto fail_nolist;
        }
        /* Linked now so that fail: can use request_unlink(). */
        r->next = c->requests;
        if (c->requests)
                c->requests->prev = r;
        c->requests = r;
        c->n_active++;

        timeout = o->timeout_usec ? o->timeout_usec : HTTP_DEFAULT_TIMEOUT_USEC;
        SETOPT(CURLOPT_PRIVATE, r);
        SETOPT(CURLOPT_CURLU, r->url);
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
        (void) curl_easy_setopt(r->easy, CURLOPT_SSL_CTX_FUNCTION, ssl_ctx_cb);
        if (r->trust_anchors) {
                SETOPT(CURLOPT_CAINFO, r->trust_anchors);
                SETOPT(CURLOPT_CAPATH, (char *) NULL);  /* only these roots, not also the system's */
        }
        SETOPT(CURLOPT_MAXFILESIZE_LARGE, (curl_off_t) r->max);
        SETOPT(CURLOPT_WRITEFUNCTION, write_cb);
        SETOPT(CURLOPT_WRITEDATA, r);
        SETOPT(CURLOPT_HEADERFUNCTION, header_cb);
        SETOPT(CURLOPT_HEADERDATA, r);
        SETOPT(CURLOPT_ERRORBUFFER, r->errbuf);
        SETOPT(CURLOPT_USERAGENT, "certbroker/" CERTBROKER_VERSION);
        if (o->negotiate) {
                /* libcurl 7.88 only tries Negotiate when a user is set; ":" = the GSS default credentials. */
                SETOPT(CURLOPT_HTTPAUTH, (long) CURLAUTH_NEGOTIATE);
                SETOPT(CURLOPT_USERPWD, ":");
                SETOPT(CURLOPT_GSSAPI_DELEGATION, (long) CURLGSSAPI_DELEGATION_NONE);
        }
        if (o->fresh_connection)
                SETOPT(CURLOPT_FRESH_CONNECT, 1L);
        if (o->post_data) {
                r->headers = curl_slist_append(NULL, "Expect:");
                if (r->headers && o->content_type) {
                        char *h = message_printf("Content-Type: %s", o->content_type);
                        struct curl_slist *l = h ? curl_slist_append(r->headers, h) : NULL;
                        free(h);
                        if (!l) {
                                rc = -ENOMEM;
                                goto fail;
                        }
                        r->headers = l;
                }
                if (!r->headers) {
                        rc = -ENOMEM;
                        goto fail;
                }
                SETOPT(CURLOPT_HTTPHEADER, r->headers);
                SETOPT(CURLOPT_POST, 1L);
                SETOPT(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t) o->post_size);
                SETOPT(CURLOPT_COPYPOSTFIELDS, o->post_data);
        }
        if (curl_multi_add_handle(c->multi, r->easy) != CURLM_OK) {
                rc = -EIO;
                m = message_printf("cannot add the transfer for %s", r->url_text);
                goto fail;
        }
        if (ret)
                *ret = r;
        if (ret_message)
                *ret_message = NULL;
        return 0;

fail:
        if (ret_message)
                *ret_message = m;
        else
                free(m);
        request_unlink(r);
        http_request_destroy(r);
        return rc;
fail_nolist:
        if (ret_message)
                *ret_message = m;
        else
                free(m);
        if (r->easy) {
                curl_easy_cleanup(r->easy);
                r->easy = NULL;
        }
        r->client = c;
        curl_url_cleanup(r->url);
        free(r->url_text);
        free(r->host);
        free(r->trust_anchors);
        free(r);
        return rc;
}

int http_client_new(sd_event *event, HttpClient **ret) {
        HttpClient *c;

        if (!event || !ret)
                return -EINVAL;
        c = calloc(1, sizeof *c);
        if (!c)
                return -ENOMEM;
        /* curl_global_init is not thread-safe in 7.88: certbrokerd calls this from main, early. */
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
                free(c);
                return -EIO;
        }
        c->curl_global = true;
        c->event = sd_event_ref(event);
        c->multi = curl_multi_init();
        if (!c->multi) {
                http_client_free(c);
                return -ENOMEM;
        }
        if (curl_multi_setopt(c->multi, CURLMOPT_SOCKETFUNCTION, socket_cb) != CURLM_OK ||
            curl_multi_setopt(c->multi, CURLMOPT_SOCKETDATA, c) != CURLM_OK ||
            curl_multi_setopt(c->multi, CURLMOPT_TIMERFUNCTION, timer_cb) != CURLM_OK ||
            curl_multi_setopt(c->multi, CURLMOPT_TIMERDATA, c) != CURLM_OK ||
            curl_multi_setopt(c->multi, CURLMOPT_MAXCONNECTS, 64L) != CURLM_OK ||
            http_client_set_limits(c, 8, 64) < 0) {
                http_client_free(c);
                return -EIO;
        }
        if (sd_event_add_defer(event, &c->more_done, on_more_done, c) < 0 ||
            sd_event_source_set_enabled(c->more_done, SD_EVENT_OFF) < 0) {
                http_client_free(c);
                return -ENOMEM;
        }
        *ret = c;
        return 0;
}

int http_client_set_limits(HttpClient *c, long max_host_connections, long max_total_connections) {
        if (curl_multi_setopt(c->multi, CURLMOPT_MAX_HOST_CONNECTIONS, max_host_connections) != CURLM_OK ||
            curl_multi_setopt(c->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, max_total_connections) != CURLM_OK)
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
