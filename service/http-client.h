/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * HTTP(S) over libcurl's multi interface, driven by sd-event: curl's socket and timer
 * callbacks become sd_event io and time sources, so hundreds of transfers run at once on the
 * loop thread and nothing blocks. Easy handles are recycled (curl_easy_reset) and the multi
 * handle keeps the connection cache, so requests to one server reuse kept-alive connections.
 *
 * Every request: the URL is parsed with curl_url() and its host must pass the suffix guard
 * (http-guard.h) before any connection; protocols http and https only; no proxy (the
 * environment's *_proxy variables are ignored); redirects are never followed (a 3xx is an error
 * naming the Location host); TLS verifies peer and host against TrustAnchors or the system
 * store; HTTP/1.1 (IIS Windows authentication is connection-bound); a timeout; a cap on the
 * response size. Negotiate (Kerberos only: CURLOPT_USERPWD ":" + CURLAUTH_NEGOTIATE, never
 * NTLM, delegation off) when asked; the ticket comes from the thread's default GSS ccache,
 * which krb5-creds points at the broker's credentials.
 *
 * Response bodies are wiped (sodium_memzero) when freed: an admin page holds a challenge.
 * Library code: never logs.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <systemd/sd-event.h>

#include "http-outcome.h"

#define HTTP_DEFAULT_TIMEOUT_USEC (30ULL * 1000000ULL)
#define HTTP_DEFAULT_MAX_RESPONSE ((size_t) 1024 * 1024)

typedef struct HttpClient HttpClient;
typedef struct HttpRequest HttpRequest;

typedef struct HttpRequestOptions {
        const char *url;                /* required */
        const char *permitted_suffix;   /* required: the guard's suffix */
        bool negotiate;                 /* Kerberos (SPNEGO) authentication */
        const char *trust_anchors;      /* PEM file of TLS roots; NULL: system store */
        uint64_t timeout_usec;          /* whole exchange; 0: HTTP_DEFAULT_TIMEOUT_USEC */
        size_t max_response;            /* body cap; 0: HTTP_DEFAULT_MAX_RESPONSE */
        const void *post_data;          /* non-NULL: POST these bytes (copied) */
        size_t post_size;
        const char *content_type;       /* of the POST body */
        bool fresh_connection;          /* open a new connection (CURLOPT_FRESH_CONNECT): to judge
                                         * whether the server takes part in Negotiate */
} HttpRequestOptions;

typedef struct HttpResult {
        /* TRANSPORT_OK: an HTTP answer arrived (any status but 3xx, and 401 when negotiate was
         * on): look at http_code. Else no usable answer; `message` says why and what to fix. */
        TransportOutcome outcome;
        const char *message;            /* NULL when outcome is TRANSPORT_OK */
        long http_code;                 /* 0 when nothing was answered */
        const uint8_t *body;            /* NUL-terminated for convenience (not counted) */
        size_t body_size;
        const char *content_type;       /* NULL when absent */
        const char *host;               /* the (normalized) URL host */
        int curl_code;                  /* CURLcode, for diagnostics */
        uint64_t elapsed_usec;
        long num_connects;              /* new connections this transfer opened (0: reused) */
        /* Some response of this transfer carried "WWW-Authenticate: Negotiate" (a 401 round, or
         * the mutual-authentication token of a 200). A 200 without it on a fresh connection to
         * a Negotiate request: the page lets anyone in (IIS: Anonymous Authentication on). IIS
         * may skip the exchange on an already-authenticated kept-alive connection, so judge
         * only num_connects > 0. */
        bool negotiate_answered;
} HttpResult;

/* Called once per request on the loop thread, unless the request was cancelled. The result
 * and everything it points to is valid only during the call. The handler may start or cancel
 * other requests, but must not free the client. */
typedef void (*http_handler_t)(HttpClient *client, const HttpResult *result, void *userdata);

int http_client_new(sd_event *event, HttpClient **ret);

/* Cancels all requests (no handlers called) and closes connections. Accepts NULL, returns NULL. */
HttpClient *http_client_free(HttpClient *c);

/* Limits: connections per host (default 8) and total (default 64); extra transfers queue. */
int http_client_set_limits(HttpClient *c, long max_host_connections, long max_total_connections);

/* Starts a request. The guard runs now: a refused URL fails here with -EPERM (outside the
 * suffix) or -EINVAL (unparsable), nothing is contacted, and *ret_message (malloc'd, optional)
 * says why. On success returns 0 and *ret (optional) can cancel the request. */
int http_client_start(HttpClient *c, const HttpRequestOptions *o, http_handler_t handler, void *userdata,
                      HttpRequest **ret, char **ret_message);

/* Cancels a request whose handler has not run yet. Accepts NULL, returns NULL. */
HttpRequest *http_request_cancel(HttpRequest *r);

/* Number of requests started and not yet completed or cancelled. */
unsigned http_client_get_active(const HttpClient *c);

/* Total connections opened by this client so far (sum of CURLINFO_NUM_CONNECTS). */
uint64_t http_client_get_connects(const HttpClient *c);

/* Classifies a transfer failure (a CURLcode) for `host` into an outcome and message
 * (malloc'd). Exposed for tests. */
TransportOutcome http_classify_curl_error(int curl_code, const char *host, const char *url, const char *errbuf,
                                          const char *trust_anchors, char **ret_message);
