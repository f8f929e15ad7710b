/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The fake HTTP client (fake-http.h): http-client.h's functions over a responder, answering
 * each request from a deferred event source on the client's sd-event loop, as the real client
 * answers from curl's callbacks: never before http_client_start() has returned. */
#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "basic.h"
#include "fake-http.h"
#include "http-guard.h"

struct HttpRequest {
        HttpClient *client;
        HttpRequest *prev, *next;
        sd_event_source *defer;
        char *url;
        char *host;
        uint8_t *post_data;
        size_t post_size;
        bool post;
        char *content_type;
        bool negotiate;
        http_handler_t handler;
        void *userdata;
};

struct HttpClient {
        sd_event *event;
        HttpRequest *requests;
        unsigned active;
        uint64_t connects;
};

static fake_http_responder_t responder;
static void *responder_userdata;

void fake_http_set_responder(fake_http_responder_t r, void *userdata) {
        responder = r;
        responder_userdata = userdata;
}

static void request_unlink(HttpRequest *q) {
        HttpClient *c = q->client;

        if (q->prev)
                q->prev->next = q->next;
        else
                c->requests = q->next;
        if (q->next)
                q->next->prev = q->prev;
        q->prev = q->next = NULL;
        c->active--;
}

static HttpRequest *request_free(HttpRequest *q) {
        if (!q)
                return NULL;
        sd_event_source_disable_unref(q->defer);
        free(q->url);
        free(q->host);
        free(q->post_data);
        free(q->content_type);
        free(q);
        return NULL;
}

static void request_freep(HttpRequest **q) {
        request_free(*q);
}

static void answer_done(FakeHttpAnswer *a) {
        free(a->message);
        free(a->body);
}

static int on_defer(sd_event_source *s, void *userdata) {
        HttpRequest *q = userdata;
        HttpClient *c = q->client;
        _cleanup_(answer_done) FakeHttpAnswer a = {
                .outcome = TRANSPORT_CA_UNREACHABLE,
        };

        request_unlink(q);
        c->connects++;
        FakeHttpExchange x = {
                .url = q->url,
                .host = q->host,
                .post_data = q->post ? q->post_data : NULL,
                .post_size = q->post_size,
                .content_type = q->content_type,
                .negotiate = q->negotiate,
        };
        if (responder)
                responder(&x, &a, responder_userdata);
        else
                a.message = strdup("No fake server answers here.");

        /* Like the real client: the body is NUL-terminated (not counted). */
        uint8_t *body = calloc(1, a.body_size + 1);
        assert(body);
        if (a.body_size > 0)
                memcpy(body, a.body, a.body_size);
        HttpResult res = {
                .outcome = a.outcome,
                .message = a.outcome == TRANSPORT_OK ? NULL : a.message ?: "fake transport failure",
                .http_code = a.outcome == TRANSPORT_OK ? a.http_code : 0,
                .body = body,
                .body_size = a.body_size,
                .content_type = a.content_type,
                .host = q->host,
                .num_connects = 1,
                .negotiate_answered = q->negotiate,
        };
        http_handler_t handler = q->handler;
        void *handler_userdata = q->userdata;
        /* The handler may start or cancel other requests; this one is out of the list. Its
         * strings stay valid during the call, as the real client's do. */
        handler(c, &res, handler_userdata);
        free(body);
        request_free(q);
        return 0;
}

int http_client_new(sd_event *event, HttpClient **ret) {
        HttpClient *c = calloc(1, sizeof(*c));

        if (!c)
                return -ENOMEM;
        c->event = sd_event_ref(event);
        *ret = c;
        return 0;
}

HttpClient *http_client_free(HttpClient *c) {
        if (!c)
                return NULL;
        while (c->requests) {
                HttpRequest *q = c->requests;
                request_unlink(q);
                request_free(q);
        }
        sd_event_unref(c->event);
        free(c);
        return NULL;
}

int http_client_set_limits(HttpClient *c, long max_host_connections, long max_total_connections) {
        return c && max_host_connections > 0 && max_total_connections > 0 ? 0 : -EINVAL;
}

int http_client_start(HttpClient *c, const HttpRequestOptions *o, http_handler_t handler, void *userdata,
                      HttpRequest **ret, char **ret_message) {
        _cleanup_(request_freep) HttpRequest *q = NULL;
        char *message = NULL;
        int r;

        assert(c && o && o->url && o->permitted_suffix && handler);
        q = calloc(1, sizeof(*q));
        if (!q)
                return -ENOMEM;
        r = http_guard_url(o->url, o->permitted_suffix, NULL, &q->host, &message);
        if (r < 0) {
                if (ret_message)
                        *ret_message = message;
                else
                        free(message);
                return r;
        }
        q->url = strdup(o->url);
        q->content_type = o->content_type ? strdup(o->content_type) : NULL;
        if (!q->url || (o->content_type && !q->content_type))
                return -ENOMEM;
        if (o->post_data) {
                q->post = true;
                q->post_data = malloc(o->post_size ?: 1);
                if (!q->post_data)
                        return -ENOMEM;
                memcpy(q->post_data, o->post_data, o->post_size);
                q->post_size = o->post_size;
        }
        q->negotiate = o->negotiate;
        q->handler = handler;
        q->userdata = userdata;
        q->client = c;
        r = sd_event_add_defer(c->event, &q->defer, on_defer, q);
        if (r < 0)
                return r;
        r = sd_event_source_set_enabled(q->defer, SD_EVENT_ONESHOT);
        if (r < 0)
                return r;
        q->next = c->requests;
        if (c->requests)
                c->requests->prev = q;
        c->requests = q;
        c->active++;
        if (ret)
                *ret = q;
        TAKE_PTR(q);
        return 0;
}

HttpRequest *http_request_cancel(HttpRequest *q) {
        if (!q)
                return NULL;
        request_unlink(q);
        return request_free(q);
}

unsigned http_client_get_active(const HttpClient *c) {
        return c ? c->active : 0;
}

uint64_t http_client_get_connects(const HttpClient *c) {
        return c ? c->connects : 0;
}

TransportOutcome http_classify_curl_error(int curl_code, const char *host, const char *url, const char *errbuf,
                                          const char *trust_anchors, char **ret_message) {
        /* Never called by the engine (the real client classifies inside itself); defined so that
         * the linker takes nothing from service/http-client.c. */
        if (ret_message && asprintf(ret_message, "%s: transfer failed (curl %d)", host ?: url, curl_code) < 0)
                *ret_message = NULL;
        return TRANSPORT_CA_UNREACHABLE;
}
