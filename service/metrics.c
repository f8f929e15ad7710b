/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Metrics in the Prometheus text format (version 0.0.4, what node_exporter's textfile collector
 * reads): Manager.GetMetrics() and the file MetricsTextfileDirectory=/certbroker.prom, written
 * every minute. */
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "basic.h"
#include "scep-util.h"
#include "challenge-fetch.h"
#include "engine-internal.h"
#include "file-util.h"
#include "log.h"
#include "metrics.h"

#define METRICS_FILE "certbroker.prom"
#define METRICS_INTERVAL_USEC (60ULL * 1000000ULL)

/* Enrollment duration buckets, seconds (the last, +Inf, is the count). */
static const double duration_buckets[] = { 1, 5, 15, 60, 300, 1800, 3600, 21600, 86400 };
#define N_BUCKETS ELEMENTSOF(duration_buckets)

static const char *const ndes_names[_METRICS_NDES_MAX] = {
        [METRICS_NDES_ISSUED] = "issued",
        [METRICS_NDES_PENDING] = "pending",
        [METRICS_NDES_FAILURE] = "failure",
        [METRICS_NDES_CACHE_FULL] = "cache_full",
        [METRICS_NDES_PERMISSION] = "permission",
        [METRICS_NDES_HTTP_ERROR] = "http_error",
};

typedef struct MetricsCa {
        char *ca;
        uint64_t ndes[_METRICS_NDES_MAX];
        uint64_t buckets[N_BUCKETS];
        uint64_t count;
        double sum;
} MetricsCa;

typedef struct Metrics {
        MetricsCa *cas; size_t n_cas;
        sd_event_source *timer;
        char *warned;                   /* the last textfile error logged (said once) */
} Metrics;

static Metrics *manager_metrics(Manager *m) {
        return m ? m->metrics : NULL;
}

/* Counters stay for a CA removed by a Reload (they count what happened). */
static MetricsCa *metrics_ca(Manager *m, const char *ca) {
        Metrics *x = manager_metrics(m);

        if (!x || !ca)
                return NULL;
        for (size_t i = 0; i < x->n_cas; i++)
                if (strcmp(x->cas[i].ca, ca) == 0)
                        return &x->cas[i];
        MetricsCa *n = realloc(x->cas, (x->n_cas + 1) * sizeof(MetricsCa));
        if (!n)
                return NULL;
        x->cas = n;
        n[x->n_cas] = (MetricsCa) { .ca = strdup(ca) };
        if (!n[x->n_cas].ca)
                return NULL;
        return &n[x->n_cas++];
}

void metrics_count_ndes(Manager *m, const char *ca, MetricsNdes outcome) {
        MetricsCa *c = metrics_ca(m, ca);

        if (c && outcome >= 0 && outcome < _METRICS_NDES_MAX)
                c->ndes[outcome]++;
}

void metrics_observe_enrollment(Manager *m, const char *ca, uint64_t usec) {
        MetricsCa *c = metrics_ca(m, ca);
        double s = (double) usec / 1e6;

        if (!c)
                return;
        for (size_t i = 0; i < N_BUCKETS; i++)
                if (s <= duration_buckets[i])
                        c->buckets[i]++;
        c->count++;
        c->sum += s;
}

/* ---- the text ---- */

/* A label value: backslash, double quote and newline escaped. */
static void put_label(FILE *f, const char *name, const char *v) {
        fprintf(f, "%s=\"", name);
        for (const char *p = v ?: ""; *p; p++)
                if (*p == '\\')
                        fputs("\\\\", f);
                else if (*p == '"')
                        fputs("\\\"", f);
                else if (*p == '\n')
                        fputs("\\n", f);
                else
                        fputc(*p, f);
        fputc('"', f);
}

static void put_request_labels(FILE *f, const StoreRequest *rec) {
        char owner[16];

        snprintf(owner, sizeof owner, "%u", (unsigned) rec->owner);
        fputc('{', f);
        put_label(f, "request", rec->id);
        fputc(',', f);
        put_label(f, "owner", owner);
        fputc(',', f);
        put_label(f, "ca", rec->ca);
        fputc(',', f);
        put_label(f, "name", rec->names && rec->names[0] ? rec->names[0] : rec->subject);
        fputc('}', f);
}

static void header(FILE *f, const char *name, const char *type, const char *help) {
        fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static bool visible(const Request *req, bool all, uid_t uid) {
        return all || req->rec->owner == uid;
}

/* A certificate the broker tracks: issued, with its dates. */
static bool tracked(const Request *req) {
        return req->rec->state == REQUEST_ISSUED && req->rec->not_after > 0;
}

/* Its successor (renewal) is issued: it is replaced. */
static bool superseded(Manager *m, const Request *req) {
        Request *s = req->rec->successor && *req->rec->successor ? manager_find_request(m, req->rec->successor) : NULL;

        return s && s->rec->state == REQUEST_ISSUED;
}

/* The series with one sample per tracked certificate; value() says whether it has one. */
static bool value_not_after(Manager *m, const Request *req, uint64_t *ret) {
        *ret = req->rec->not_after / 1000000ULL;
        return true;
}

static bool value_renew_at(Manager *m, const Request *req, uint64_t *ret) {
        *ret = req->rec->renew_at / 1000000ULL;
        return req->rec->renew_at != 0;
}

static bool value_superseded(Manager *m, const Request *req, uint64_t *ret) {
        *ret = superseded(m, req) ? 1 : 0;
        return true;
}

typedef struct CertificateSeries {
        const char *name;
        const char *help;
        bool (*value)(Manager *m, const Request *req, uint64_t *ret);
} CertificateSeries;

static const CertificateSeries certificate_series[] = {
        { "certbroker_certificate_not_after_seconds",
          "When the certificate of an issued request expires (seconds since the epoch).", value_not_after },
        { "certbroker_certificate_renew_at_seconds",
          "When the broker renews the certificate (seconds since the epoch); absent when it is not renewed.",
          value_renew_at },
        { "certbroker_certificate_superseded",
          "1 when the certificate's renewal (its successor) is issued, else 0.", value_superseded },
};

int metrics_format(Manager *m, bool all, uid_t uid, char **ret) {
        char *buf = NULL;
        size_t size = 0;
        FILE *f;
        uint64_t by_state[_REQUEST_STATE_MAX] = {};

        f = open_memstream(&buf, &size);
        if (!f)
                return -errno;

        for (size_t k = 0; k < ELEMENTSOF(certificate_series); k++) {
                const CertificateSeries *c = &certificate_series[k];
                header(f, c->name, "gauge", c->help);
                for (size_t i = 0; i < m->n_requests; i++) {
                        Request *req = m->requests[i];
                        uint64_t v;
                        if (!visible(req, all, uid) || !tracked(req) || !c->value(m, req, &v))
                                continue;
                        fputs(c->name, f);
                        put_request_labels(f, req->rec);
                        fprintf(f, " %llu\n", (unsigned long long) v);
                }
        }

        uint64_t renewals_failed = 0;
        for (size_t i = 0; i < m->n_requests; i++) {
                Request *req = m->requests[i];
                if (!visible(req, all, uid))
                        continue;
                if (req->rec->state >= 0 && req->rec->state < _REQUEST_STATE_MAX)
                        by_state[req->rec->state]++;
                if ((req->rec->state == REQUEST_FAILED || req->rec->state == REQUEST_REJECTED) &&
                    req->rec->predecessor && *req->rec->predecessor)
                        renewals_failed++;
        }
        header(f, "certbroker_requests", "gauge", "Requests the broker keeps, by state.");
        for (int s = 0; s < _REQUEST_STATE_MAX; s++) {
                fputs("certbroker_requests{", f);
                put_label(f, "state", request_state_to_string(s));
                fprintf(f, "} %llu\n", (unsigned long long) by_state[s]);
        }
        header(f, "certbroker_renewals_failed", "gauge",
               "Renewals (successors the broker made) that ended failed or rejected.");
        fprintf(f, "certbroker_renewals_failed %llu\n", (unsigned long long) renewals_failed);

        Metrics *x = manager_metrics(m);
        if (all && x) {
                header(f, "certbroker_ndes_answers_total", "counter",
                       "NDES's answers since the broker started, by CA and outcome.");
                for (size_t i = 0; i < x->n_cas; i++)
                        for (int o = 0; o < _METRICS_NDES_MAX; o++) {
                                fputs("certbroker_ndes_answers_total{", f);
                                put_label(f, "ca", x->cas[i].ca);
                                fputc(',', f);
                                put_label(f, "outcome", ndes_names[o]);
                                fprintf(f, "} %llu\n", (unsigned long long) x->cas[i].ndes[o]);
                        }
                header(f, "certbroker_outstanding_challenges", "gauge",
                       "Challenges the broker holds at NDES (fetches running and challenges not yet used up), by CA, summed over its NDES servers.");
                for (size_t i = 0; i < m->n_cas; i++) {
                        CaState *ca = m->cas[i];
                        if (!ca || !ca_engine(ca))
                                continue;
                        unsigned held = 0;      /* at every NDES server of the CA */
                        for (size_t j = 0; j < CB_CA_SERVERS_MAX; j++)
                                if (ca_engine(ca)->fetchers[j])
                                        held += challenge_fetcher_get_outstanding(ca_engine(ca)->fetchers[j]);
                        fputs("certbroker_outstanding_challenges{", f);
                        put_label(f, "ca", ca->name);
                        fprintf(f, "} %u\n", held);
                }
                header(f, "certbroker_enrollment_duration_seconds", "histogram",
                       "From Enroll (or the renewal's start) to the certificate, for requests issued since the broker started.");
                for (size_t i = 0; i < x->n_cas; i++) {
                        MetricsCa *c = &x->cas[i];
                        for (size_t b = 0; b < N_BUCKETS; b++) {
                                fputs("certbroker_enrollment_duration_seconds_bucket{", f);
                                put_label(f, "ca", c->ca);
                                fprintf(f, ",le=\"%g\"} %llu\n", duration_buckets[b], (unsigned long long) c->buckets[b]);
                        }
                        fputs("certbroker_enrollment_duration_seconds_bucket{", f);
                        put_label(f, "ca", c->ca);
                        fprintf(f, ",le=\"+Inf\"} %llu\n", (unsigned long long) c->count);
                        fputs("certbroker_enrollment_duration_seconds_sum{", f);
                        put_label(f, "ca", c->ca);
                        fprintf(f, "} %.6f\n", c->sum);
                        fputs("certbroker_enrollment_duration_seconds_count{", f);
                        put_label(f, "ca", c->ca);
                        fprintf(f, "} %llu\n", (unsigned long long) c->count);
                }
        }
        if (fclose(f) != 0 || !buf) {
                free(buf);
                return -ENOMEM;
        }
        *ret = buf;
        return 0;
}

/* ---- the textfile ---- */

static int fail(char **ret_message, int error, const char *format, ...) __attribute__((format(printf, 3, 4)));
static int fail(char **ret_message, int error, const char *format, ...) {
        va_list ap;

        va_start(ap, format);
        if (vasprintf(ret_message, format, ap) < 0)
                *ret_message = NULL;
        va_end(ap);
        return -error;
}

int metrics_write_textfile(Manager *m, const char *dir, char **ret_message) {
        _cleanup_(freep) char *text = NULL;
        _cleanup_close_ int dfd = -1;
        const char *step;
        char tmp[64];
        struct stat st;
        int r;

        *ret_message = NULL;
        if (lstat(dir, &st) < 0)
                return fail(ret_message, errno, "MetricsTextfileDirectory=%s: %s", dir, strerror(errno));
        /* A link planted by someone else would send the file wherever they like. */
        if (S_ISLNK(st.st_mode) && st.st_uid != 0 && st.st_uid != geteuid())
                return fail(ret_message, EPERM, "MetricsTextfileDirectory=%s is a symbolic link owned by uid %u (not "
                            "root, not the broker): refusing to write through it", dir, (unsigned) st.st_uid);
        /* Not a link when looked at: not one when opened either. */
        dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC | (S_ISLNK(st.st_mode) ? 0 : O_NOFOLLOW));
        if (dfd < 0)
                return fail(ret_message, errno, "MetricsTextfileDirectory=%s: %s", dir, strerror(errno));
        if (fstat(dfd, &st) < 0)
                return fail(ret_message, errno, "MetricsTextfileDirectory=%s: %s", dir, strerror(errno));
        if ((st.st_uid != 0 && st.st_uid != geteuid()) || (st.st_mode & S_IWOTH) ||
            ((st.st_mode & S_IWGRP) && st.st_gid != getegid() && st.st_gid != 0))
                return fail(ret_message, EPERM, "MetricsTextfileDirectory=%s (owner uid %u, group gid %u, mode %04o) "
                            "can be written by others than root and the broker: refusing to write there; make it "
                            "owned by root or the broker's user and not writable by others", dir,
                            (unsigned) st.st_uid, (unsigned) st.st_gid, (unsigned) (st.st_mode & 07777));
        r = metrics_format(m, true, 0, &text);
        if (r < 0)
                return fail(ret_message, -r, "Cannot format the metrics: %s", strerror(-r));
        /* Not *.prom: the collector reads only the finished file. Readable by node_exporter's
         * user whatever the broker's umask. */
        snprintf(tmp, sizeof tmp, ".%s.%u.tmp", METRICS_FILE, (unsigned) getpid());
        r = write_file_atomic_at(dfd, tmp, METRICS_FILE, text, strlen(text), 0644, &step);
        if (r < 0)
                return fail(ret_message, -r, "Cannot %s %s/%s: %s", step, dir, METRICS_FILE, strerror(-r));
        return 0;
}

static void textfile_now(Manager *m) {
        Metrics *x = manager_metrics(m);
        const char *dir = m->config->metrics_textfile_directory;
        char *msg = NULL;
        int r;

        if (!x || !dir)
                return;
        r = metrics_write_textfile(m, dir, &msg);
        if (r < 0) {
                /* Said once until it changes or works again. */
                if (!x->warned || !msg || strcmp(x->warned, msg) != 0)
                        log_warning("%s", msg ?: strerror(-r));
                free(x->warned);
                x->warned = msg;
                return;
        }
        free(msg);
        free(x->warned);
        x->warned = NULL;
}

static int on_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        Manager *m = userdata;

        textfile_now(m);
        (void) sd_event_source_set_time_relative(s, METRICS_INTERVAL_USEC);
        return 0;
}

int metrics_new(Manager *m) {
        m->metrics = calloc(1, sizeof(Metrics));
        return m->metrics ? 0 : -ENOMEM;
}

int metrics_config_changed(Manager *m) {
        Metrics *x = manager_metrics(m);
        int r;

        if (!x)
                return 0;
        if (!m->config->metrics_textfile_directory) {
                x->timer = sd_event_source_disable_unref(x->timer);
                return 0;
        }
        if (!x->timer) {
                r = sd_event_add_time_relative(m->event, &x->timer, CLOCK_MONOTONIC, 0, 1000000ULL, on_timer, m);
                if (r < 0)
                        return r;
                return sd_event_source_set_enabled(x->timer, SD_EVENT_ON);
        }
        /* A Reload may name another directory: written at once. */
        return sd_event_source_set_time_relative(x->timer, 0);
}

void metrics_free(Manager *m) {
        Metrics *x = manager_metrics(m);

        if (!x)
                return;
        sd_event_source_disable_unref(x->timer);
        for (size_t i = 0; i < x->n_cas; i++)
                free(x->cas[i].ca);
        free(x->cas);
        free(x->warned);
        free(x);
        m->metrics = NULL;
}
