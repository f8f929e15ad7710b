/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Prometheus/OpenMetrics text for Manager.GetMetrics() and MetricsTextfileDirectory=: the
 * tracked certificates and requests (from the requests the broker keeps), and what the broker
 * counted since it started: NDES's answers by outcome and enrollment durations, per CA. */

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "manager.h"

typedef enum MetricsNdes {
        METRICS_NDES_ISSUED,            /* CertRep SUCCESS */
        METRICS_NDES_PENDING,           /* CertRep PENDING */
        METRICS_NDES_FAILURE,           /* CertRep FAILURE */
        METRICS_NDES_CACHE_FULL,        /* mscep_admin: the password cache is full */
        METRICS_NDES_PERMISSION,        /* mscep_admin: no permission to enroll */
        METRICS_NDES_HTTP_ERROR,        /* an HTTP answer that is not SCEP data (status, HTML page) */
        _METRICS_NDES_MAX,
} MetricsNdes;

/* Counters; m may have no metrics (unit tests): then nothing is counted. */
void metrics_count_ndes(Manager *m, const char *ca, MetricsNdes outcome);
/* An enrollment ended issued, usec after its request was made. */
void metrics_observe_enrollment(Manager *m, const char *ca, uint64_t usec);

int metrics_new(Manager *m);
void metrics_free(Manager *m);
/* Starts (or stops, with the setting removed) the minutely textfile writer; after a Reload too. */
int metrics_config_changed(Manager *m);

/* The text: every request for all, else the requests of uid only (and no broker-wide
 * counters). */
int metrics_format(Manager *m, bool all, uid_t uid, char **ret);

/* Writes DIR/certbroker.prom (temporary file + rename). Refuses a directory that is a
 * symbolic link, not a directory, or writable by others than its owner (root or the
 * broker's user): *ret_message names it. */
int metrics_write_textfile(Manager *m, const char *dir, char **ret_message);
