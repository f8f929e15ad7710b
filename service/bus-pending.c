/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "basic.h"
#include "bus-pending.h"

int pending_reply_new(sd_bus_message *call, PendingReply **head, void *data, PendingReply **ret) {
        PendingReply *p = calloc(1, sizeof(*p));

        if (!p)
                return -ENOMEM;
        p->call = sd_bus_message_ref(call);
        p->data = data;
        if (head) {
                p->head = head;
                p->next = *head;
                if (*head)
                        (*head)->prev = p;
                *head = p;
        }
        *ret = p;
        return 0;
}

static int on_timeout(sd_event_source *s, uint64_t usec, void *userdata) {
        PendingReply *p = userdata;

        p->timeout = sd_event_source_disable_unref(p->timeout);
        p->timeout_handler(p);
        return 0;
}

int pending_reply_set_timeout(PendingReply *p, sd_event *event, uint64_t usec,
                              void (*handler)(PendingReply *p)) {
        p->timeout = sd_event_source_disable_unref(p->timeout);
        p->timeout_handler = handler;
        return sd_event_add_time_relative(event, &p->timeout, CLOCK_MONOTONIC, usec, 0, on_timeout, p);
}

void pending_reply_drop(PendingReply *p) {
        if (!p)
                return;
        if (p->head) {
                if (p->prev)
                        p->prev->next = p->next;
                else
                        *p->head = p->next;
                if (p->next)
                        p->next->prev = p->prev;
        }
        sd_event_source_disable_unref(p->timeout);
        sd_bus_message_unref(p->call);
        free(p);
}

int pending_reply_send(PendingReply *p, sd_bus_message *reply) {
        int r = sd_bus_send(NULL, reply, NULL);

        pending_reply_drop(p);
        return r;
}

int pending_reply_return(PendingReply *p, const char *types, ...) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        va_list ap;
        int r;

        r = sd_bus_message_new_method_return(p->call, &reply);
        if (r < 0) {
                pending_reply_drop(p);
                return r;
        }
        if (types) {
                va_start(ap, types);
                r = sd_bus_message_appendv(reply, types, ap);
                va_end(ap);
                if (r < 0) {
                        pending_reply_drop(p);
                        return r;
                }
        }
        return pending_reply_send(p, reply);
}

static int reply_error_and_drop(PendingReply *p, sd_bus_error *e) {
        int r = sd_bus_reply_method_error(p->call, e);

        sd_bus_error_free(e);
        pending_reply_drop(p);
        return r;
}

int pending_reply_errno(PendingReply *p, int error, const char *format, ...) {
        sd_bus_error e = SD_BUS_ERROR_NULL;
        va_list ap;

        va_start(ap, format);
        (void) sd_bus_error_set_errnofv(&e, error, format, ap);
        va_end(ap);
        return reply_error_and_drop(p, &e);
}

unsigned pending_reply_count(PendingReply *head) {
        unsigned n = 0;

        for (PendingReply *p = head; p; p = p->next)
                n++;
        return n;
}
