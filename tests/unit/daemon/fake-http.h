/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* A fake of http-client.h for in-process tests of the engine: linked in place of
 * service/http-client.c (the test's object defines every function of http-client.h, so the
 * linker takes none from the transport library). The host guard is the real one; nothing is
 * contacted: each request is answered on the next loop iteration by the responder the test
 * set, as if a server had answered. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "http-client.h"

/* What the fake server saw. */
typedef struct FakeHttpExchange {
        const char *url;
        const char *host;
        const uint8_t *post_data;       /* NULL for a GET */
        size_t post_size;
        const char *content_type;
        bool negotiate;
} FakeHttpExchange;

/* What it answers: outcome TRANSPORT_OK with an HTTP status and body, or a transport failure
 * (TRANSPORT_TIMEOUT, TRANSPORT_CA_UNREACHABLE, ...) with a message. body and message are
 * malloc'd and taken by the fake; content_type is static. */
typedef struct FakeHttpAnswer {
        TransportOutcome outcome;
        char *message;
        long http_code;
        uint8_t *body;
        size_t body_size;
        const char *content_type;
} FakeHttpAnswer;

typedef void (*fake_http_responder_t)(const FakeHttpExchange *x, FakeHttpAnswer *ret, void *userdata);

/* The responder of every HttpClient (process-wide; NULL: every request fails as
 * CAUnreachable). */
void fake_http_set_responder(fake_http_responder_t responder, void *userdata);
