/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "ca-servers.h"

#define N(s) ((s)->n == 0 ? 1 : (s)->n > CB_CA_SERVERS_MAX ? CB_CA_SERVERS_MAX : (s)->n)

bool ca_servers_passed_over(const CaServers *s, size_t i, uint64_t now) {
        return i < N(s) && s->passed_over_until[i] > now;
}

size_t ca_servers_pick(CaServers *s, uint64_t now, bool round_robin) {
        size_t n = N(s), start = round_robin ? s->next % n : 0, best = start;

        for (size_t k = 0; k < n; k++) {
                size_t i = (start + k) % n;
                if (!ca_servers_passed_over(s, i, now)) {
                        s->next = i + 1;
                        return i;
                }
                if (s->passed_over_until[i] < s->passed_over_until[best])
                        best = i;
        }
        s->next = best + 1;
        return best;
}

void ca_servers_failed(CaServers *s, size_t i, uint64_t now, uint64_t failback_usec) {
        if (i < N(s))
                s->passed_over_until[i] = now + failback_usec;
}

void ca_servers_answered(CaServers *s, size_t i) {
        if (i < N(s))
                s->passed_over_until[i] = 0;
}

bool ca_servers_other_usable(const CaServers *s, size_t i, uint64_t now) {
        for (size_t k = 0; k < N(s); k++)
                if (k != i && !ca_servers_passed_over(s, k, now))
                        return true;
        return false;
}
