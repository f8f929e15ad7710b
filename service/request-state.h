/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* A request's states: the Request property State (ipc/org.certbroker.Broker1.Request.xml), also
 * the text the journal stores them as. Only request_set_state() (request.h) changes a
 * request's state; the journal (store-db.h) writes and reads it. */

#include <errno.h>
#include <stdbool.h>

typedef enum RequestState {
        REQUEST_QUEUED,
        REQUEST_SUBMITTING,
        REQUEST_PENDING,
        REQUEST_RETRYING,
        REQUEST_ISSUED,         /* terminal from here on */
        REQUEST_REJECTED,
        REQUEST_FAILED,
        REQUEST_CANCELLED,
        _REQUEST_STATE_MAX,
        _REQUEST_STATE_INVALID = -EINVAL,
} RequestState;

const char *request_state_to_string(RequestState s);    /* "queued" ... "cancelled"; NULL if invalid */
RequestState request_state_from_string(const char *s);  /* -EINVAL if unknown */
bool request_state_is_terminal(RequestState s);
