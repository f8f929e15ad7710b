/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Choosing among the NDES servers of one CA (URL= with several URLs, certbroker.conf(5)). Pure:
 * times are given, nothing is read or logged.
 *
 * A server that failed (connection refused, timeout, HTTP 5xx, an HTML page where SCEP data was
 * expected) is passed over until FailbackAfter= has gone by; then it is tried again. New
 * enrollments go to the first server in URL= order that is not passed over ("in-order"), or to
 * the next one after the server the previous enrollment got ("round-robin"). When every server
 * is passed over, the one that will be tried again soonest is used (an enrollment never waits
 * for a server to be chosen). */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cb-config.h"

typedef struct CaServers {
        size_t n;                       /* 1..CB_CA_SERVERS_MAX */
        uint64_t passed_over_until[CB_CA_SERVERS_MAX];  /* per server, usec; 0: usable */
        size_t next;                    /* round-robin: where the next search starts */
} CaServers;

/* The server for a new enrollment at now. round_robin: starts after the previous choice. */
size_t ca_servers_pick(CaServers *s, uint64_t now, bool round_robin);

/* Server i failed at now: passed over until now + failback_usec. */
void ca_servers_failed(CaServers *s, size_t i, uint64_t now, uint64_t failback_usec);

/* Server i answered: usable again at once. */
void ca_servers_answered(CaServers *s, size_t i);

/* Whether server i is passed over at now. */
bool ca_servers_passed_over(const CaServers *s, size_t i, uint64_t now);

/* Whether some server other than i is usable at now. */
bool ca_servers_other_usable(const CaServers *s, size_t i, uint64_t now);
