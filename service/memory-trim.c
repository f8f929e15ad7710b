/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <inttypes.h>
#include <malloc.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "memory-trim.h"

struct MemoryTrim {
        sd_event_source *timer;
        uint64_t quiet, max;
        uint64_t first;         /* CLOCK_MONOTONIC usec of the first activity since the last trim */
        uint64_t last;          /* ... and of the last one */
        MemoryTrimFunc trim;
        unsigned count;
};

static int trim_all_arenas(void) {
        return malloc_trim(0);
}

int64_t memory_rss_anon_kib(void) {
        _cleanup_fclose_ FILE *f = fopen("/proc/self/status", "re");
        char line[128];

        if (!f)
                return -errno;
        while (fgets(line, sizeof line, f)) {
                unsigned long long kib;

                if (sscanf(line, "RssAnon: %llu kB", &kib) == 1)
                        return (int64_t) kib;
        }
        return -ENODATA;
}

static int on_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        MemoryTrim *t = userdata;
        uint64_t start;
        int64_t before, after;
        bool quiet;
        int released;

        /* Activity since the timer was set: wait for the quiet after it, up to the ceiling. */
        if (usec < t->last + t->quiet && usec < t->first + t->max) {
                uint64_t next = t->last + t->quiet;

                (void) sd_event_source_set_time(s, next < t->first + t->max ? next : t->first + t->max);
                (void) sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
                return 0;
        }
        quiet = usec >= t->last + t->quiet;
        before = memory_rss_anon_kib();
        start = monotonic_usec();
        released = t->trim();
        t->count++;
        after = memory_rss_anon_kib();
        log_debug("%s for %" PRIu64 " s: freed memory %s (RssAnon %" PRIi64 " -> %" PRIi64 " KiB, %" PRIu64 " us).",
                  quiet ? "Quiet" : "Busy", (quiet ? t->quiet : t->max) / UINT64_C(1000000),
                  released ? "given back to the system" : "had nothing to give back", before, after,
                  monotonic_usec() - start);
        return 0;
}

int memory_trim_new(sd_event *event, uint64_t quiet, uint64_t max, MemoryTrimFunc trim, MemoryTrim **ret) {
        _cleanup_(memory_trim_freep) MemoryTrim *t = NULL;
        uint64_t accuracy = quiet / 10 < 1000000ULL ? quiet / 10 : 1000000ULL;
        int r;

        if (!event || quiet == 0 || max < quiet || !ret)
                return -EINVAL;
        t = calloc(1, sizeof(*t));
        if (!t)
                return -ENOMEM;
        t->quiet = quiet;
        t->max = max;
        t->trim = trim ?: trim_all_arenas;
        /* Late by a tenth of the quiet is of no consequence, and lets the timer coalesce. */
        r = sd_event_add_time(event, &t->timer, CLOCK_MONOTONIC, UINT64_MAX, accuracy, on_timer, t);
        if (r < 0)
                return r;
        (void) sd_event_source_set_enabled(t->timer, SD_EVENT_OFF);
        (void) sd_event_source_set_description(t->timer, "memory-trim");
        *ret = TAKE_PTR(t);
        return 0;
}

MemoryTrim *memory_trim_free(MemoryTrim *t) {
        if (!t)
                return NULL;
        sd_event_source_disable_unref(t->timer);
        free(t);
        return NULL;
}

void memory_trim_note_activity(MemoryTrim *t) {
        uint64_t now;

        if (!t || sd_event_now(sd_event_source_get_event(t->timer), CLOCK_MONOTONIC, &now) < 0)
                return;
        t->last = now;
        /* Armed (a one-shot timer is off again once it fired): on_timer() moves it past this
         * activity. */
        if (sd_event_source_get_enabled(t->timer, NULL) > 0)
                return;
        t->first = now;
        if (sd_event_source_set_time(t->timer, now + t->quiet) >= 0)
                (void) sd_event_source_set_enabled(t->timer, SD_EVENT_ONESHOT);
}

unsigned memory_trim_count(const MemoryTrim *t) {
        return t ? t->count : 0;
}
