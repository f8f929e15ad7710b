/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <string.h>

#include "request-state.h"

static const char *const request_state_table[_REQUEST_STATE_MAX] = {
        [REQUEST_QUEUED]     = "queued",
        [REQUEST_SUBMITTING] = "submitting",
        [REQUEST_PENDING]    = "pending",
        [REQUEST_RETRYING]   = "retrying",
        [REQUEST_ISSUED]     = "issued",
        [REQUEST_REJECTED]   = "rejected",
        [REQUEST_FAILED]     = "failed",
        [REQUEST_CANCELLED]  = "cancelled",
};

const char *request_state_to_string(RequestState s) {
        if (s < 0 || s >= _REQUEST_STATE_MAX)
                return NULL;
        return request_state_table[s];
}

RequestState request_state_from_string(const char *s) {
        if (!s)
                return _REQUEST_STATE_INVALID;
        for (RequestState i = 0; i < _REQUEST_STATE_MAX; i++)
                if (strcmp(s, request_state_table[i]) == 0)
                        return i;
        return _REQUEST_STATE_INVALID;
}

bool request_state_is_terminal(RequestState s) {
        return s >= REQUEST_ISSUED && s < _REQUEST_STATE_MAX;
}
