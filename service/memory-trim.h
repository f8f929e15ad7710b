/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Freed memory given back to the system once the broker is quiet. glibc's malloc keeps what a
 * burst of calls freed inside its heaps (it returns only a free top of a heap, and only past a
 * threshold that grows on its own), so after a busy hour the broker's private memory (RssAnon)
 * stays at the burst's peak although nothing is live any more. When no activity has been
 * noted for `quiet`, malloc_trim() releases the free pages of every arena (the main heap and
 * the workers'); then nothing more until the next activity. Activity is noted by the caller
 * (every method call on the bus, every request state change): while it goes on the memory
 * would be used again at once, so nothing is trimmed, except once per `max` after the first
 * activity since the last trim, so that a broker that is never quiet still gives back what a
 * burst left. Loop thread only.
 */

#include <stdint.h>
#include <systemd/sd-event.h>

#include "basic.h"

#define MEMORY_TRIM_QUIET_USEC (5ULL * 1000000ULL)
#define MEMORY_TRIM_MAX_USEC (600ULL * 1000000ULL)

typedef struct MemoryTrim MemoryTrim;

/* The trim itself, replaceable for tests: what it released (1) or not (0), as malloc_trim(). */
typedef int (*MemoryTrimFunc)(void);

/* quiet: microseconds without activity before a trim (> 0); max: microseconds after the first
 * activity since the last trim at which it trims however busy (>= quiet); the timer's accuracy
 * is a tenth of quiet (at most a second); trim: NULL for malloc_trim(0). */
int memory_trim_new(sd_event *event, uint64_t quiet, uint64_t max, MemoryTrimFunc trim, MemoryTrim **ret);
MemoryTrim *memory_trim_free(MemoryTrim *t);
DEFINE_POINTER_CLEANUP(MemoryTrim, memory_trim_free)

/* Activity now: the trim waits for `quiet` after the last one. NULL-safe, cheap (the loop's
 * cached time; the timer is moved only when it fires). */
void memory_trim_note_activity(MemoryTrim *t);

/* How many trims ran. */
unsigned memory_trim_count(const MemoryTrim *t);

/* This process's RssAnon in KiB (/proc/self/status), or a negative errno. */
int64_t memory_rss_anon_kib(void);
