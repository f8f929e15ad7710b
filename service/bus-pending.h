/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* A method call answered later: the one pending-reply object of the bus layer, for Wait()
 * (until the request ends or the timeout), Enroll (until its request is on disk) and
 * CA.Check() (until its steps have answered). Whoever completes the operation answers it
 * exactly once, or drops it (the caller left the bus, shutdown); either frees it. */

#include <stdint.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

typedef struct PendingReply PendingReply;
struct PendingReply {
        PendingReply *next, *prev;
        PendingReply **head;            /* the list it is on (a request's Wait() calls), or NULL */
        sd_bus_message *call;
        sd_event_source *timeout;
        void (*timeout_handler)(PendingReply *p);
        void *data;                     /* what it waits on (Wait(): the Request) */
};

/* A pending reply to call, on the list *head when head is not NULL. */
int pending_reply_new(sd_bus_message *call, PendingReply **head, void *data, PendingReply **ret);
/* handler(p) is called after usec (CLOCK_MONOTONIC) unless p was answered before. */
int pending_reply_set_timeout(PendingReply *p, sd_event *event, uint64_t usec,
                              void (*handler)(PendingReply *p));
/* Answer and free. */
int pending_reply_return(PendingReply *p, const char *types, ...);
int pending_reply_send(PendingReply *p, sd_bus_message *reply);
int pending_reply_errno(PendingReply *p, int error, const char *format, ...)
        __attribute__((format(printf, 3, 4)));
/* Free without an answer. NULL-safe. */
void pending_reply_drop(PendingReply *p);
static inline void pending_reply_dropp(PendingReply **p) {
        pending_reply_drop(*p);
}

unsigned pending_reply_count(PendingReply *head);
