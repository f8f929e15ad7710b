/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <gssapi/gssapi.h>
#include <gssapi/gssapi_krb5.h>
#include <krb5/krb5.h>

#include "basic.h"
#include "krb5-creds.h"
#include "krb5-errors.h"

DEFINE_POINTER_CLEANUP(Krb5Creds, krb5_creds_free);

#define USEC_PER_SEC 1000000ULL
/* A service ticket closer than this to its end (or than a quarter of its life) is fetched
 * again before use. */
#define SERVICE_MARGIN_USEC (60 * USEC_PER_SEC)

typedef enum JobType {
        JOB_ACQUIRE,
        JOB_PROBE,
} JobType;

typedef struct Job Job;
struct Job {
        Job *next;
        JobType type;
        unsigned gen;
        char *ccache;           /* the generation's ccache name */
        char *host;             /* JOB_PROBE */
        /* results */
        bool ok;
        Krb5Step step;
        long code;
        char *detail;
        char *keytab_principal; /* the keytab has no key for the principal, but for this one */
        uint64_t end_usec;      /* CLOCK_REALTIME end of the ticket, 0 if unknown */
};

typedef enum HostState {
        HOST_IDLE,
        HOST_WAIT_TGT,
        HOST_PROBING,
        HOST_READY,
} HostState;

typedef struct HostEntry HostEntry;
struct HostEntry {
        HostEntry *next;
        char *host;
        HostState state;
        unsigned gen;           /* HOST_READY: generation whose ccache holds the ticket */
        uint64_t end_usec;      /* HOST_READY: CLOCK_REALTIME end of the service ticket */
        uint64_t margin_usec;   /* HOST_READY: probe again this long before end_usec */
        Krb5ServiceWait *waiters;
};

struct Krb5ServiceWait {
        Krb5ServiceWait *next, *prev;
        Krb5Creds *creds;
        HostEntry *entry;
        krb5_service_handler_t handler;
        void *userdata;
};

struct Krb5Creds {
        sd_event *event;
        Krb5Settings settings;          /* deep copy */
        char **kdcs_copy;
        char *kdcs_text;                /* "a b:88" for messages */

        /* worker */
        pthread_t thread;
        bool thread_started;
        pthread_mutex_t lock;
        pthread_cond_t cond;
        Job *queue_head, *queue_tail;   /* under lock */
        bool quit;                      /* under lock */
        int pipe_fd[2];                 /* worker → loop: Job pointers */
        sd_event_source *pipe_source;

        /* loop-thread state */
        unsigned next_gen;
        unsigned active_gen;            /* 0: none */
        char *active_ccache;
        uint64_t expiry_usec;           /* CLOCK_REALTIME */
        bool acquiring;
        bool in_backoff;                /* the last acquisition failed; a retry is scheduled */
        sd_event_source *fail_defer;    /* fails HOST_WAIT_TGT waiters while in backoff */
        bool ever_valid;
        CredentialState state;
        TransportOutcome error;
        Krb5Step error_step;
        char *error_message;
        uint64_t backoff_usec, backoff_min_usec, backoff_max_usec;
        sd_event_source *refresh_timer; /* CLOCK_BOOTTIME: renewal or retry */
        sd_event_source *expire_timer;  /* CLOCK_REALTIME: VALID → EXPIRED */
        HostEntry *hosts;
        unsigned jobs_in_flight;

        krb5_state_handler_t state_handler;
        void *state_userdata;

        uint64_t n_as, n_tgs;
};

static const char *const state_table[_CREDENTIAL_STATE_MAX] = {
        [CREDENTIAL_UNAVAILABLE] = "unavailable",
        [CREDENTIAL_VALID] = "valid",
        [CREDENTIAL_EXPIRED] = "expired",
};

const char *credential_state_to_string(CredentialState s) {
        return (unsigned) s < _CREDENTIAL_STATE_MAX ? state_table[s] : NULL;
}


static void job_free(Job *j) {
        if (!j)
                return;
        free(j->ccache);
        free(j->host);
        free(j->detail);
        free(j->keytab_principal);
        free(j);
}

/* ---------- worker thread ---------- */

static char *krb5_detail(krb5_context ctx, krb5_error_code code) {
        const char *m = krb5_get_error_message(ctx, code);
        char *d = strdup(m ? m : "unknown Kerberos error");
        krb5_free_error_message(ctx, m);
        return d;
}

static char *gss_detail(OM_uint32 major, OM_uint32 minor) {
        char *out = NULL;
        size_t size = 0;
        FILE *f = open_memstream(&out, &size);
        OM_uint32 min2, ctx = 0;
        gss_buffer_desc buf;

        if (!f)
                return NULL;
        /* "Unspecified GSS failure. Minor code may provide more information" says nothing: then
         * only the mechanism's (minor) text is useful. */
        if (GSS_ROUTINE_ERROR(major) != GSS_S_FAILURE || minor == 0) {
                do {
                        if (GSS_ERROR(gss_display_status(&min2, major, GSS_C_GSS_CODE, GSS_C_NO_OID, &ctx, &buf)))
                                break;
                        fprintf(f, "%s%.*s", ftell(f) > 0 ? "; " : "", (int) buf.length, (const char *) buf.value);
                        gss_release_buffer(&min2, &buf);
                } while (ctx != 0);
        }
        if (minor != 0) {
                ctx = 0;
                do {
                        if (GSS_ERROR(gss_display_status(&min2, minor, GSS_C_MECH_CODE, (gss_OID) gss_mech_krb5,
                                                         &ctx, &buf)))
                                break;
                        fprintf(f, "%s%.*s", ftell(f) > 0 ? "; " : "", (int) buf.length, (const char *) buf.value);
                        gss_release_buffer(&min2, &buf);
                } while (ctx != 0);
        }
        fclose(f);
        return out;
}

/* A principal of the keytab with the name of princ in another realm (malloc'd), or NULL: the
 * keytab was made for another realm than Realm=. */
static char *keytab_find_other_realm(krb5_context ctx, krb5_keytab kt, krb5_const_principal princ) {
        krb5_kt_cursor cursor;
        krb5_keytab_entry e;
        char *want = NULL, *found = NULL;

        if (krb5_unparse_name_flags(ctx, princ, KRB5_PRINCIPAL_UNPARSE_NO_REALM, &want) != 0)
                return NULL;
        if (krb5_kt_start_seq_get(ctx, kt, &cursor) != 0) {
                krb5_free_unparsed_name(ctx, want);
                return NULL;
        }
        while (!found && krb5_kt_next_entry(ctx, kt, &e, &cursor) == 0) {
                char *name = NULL;

                if (!krb5_realm_compare(ctx, e.principal, princ) &&
                    krb5_unparse_name_flags(ctx, e.principal, KRB5_PRINCIPAL_UNPARSE_NO_REALM, &name) == 0 &&
                    strcmp(name, want) == 0) {
                        krb5_free_unparsed_name(ctx, name);
                        name = NULL;
                        if (krb5_unparse_name(ctx, e.principal, &name) == 0)
                                found = strdup(name);
                }
                krb5_free_unparsed_name(ctx, name);
                krb5_free_keytab_entry_contents(ctx, &e);
        }
        krb5_kt_end_seq_get(ctx, kt, &cursor);
        krb5_free_unparsed_name(ctx, want);
        return found;
}

/* What one acquisition from the keytab holds; released by keytab_acquisition_done(). */
typedef struct KeytabAcquisition {
        krb5_context ctx;
        krb5_principal princ;
        krb5_keytab kt;
        krb5_ccache cc;
        krb5_get_init_creds_opt *opt;
        krb5_creds creds;
        bool have_creds;
} KeytabAcquisition;

static void keytab_acquisition_done(KeytabAcquisition *a) {
        if (!a->ctx)
                return;
        if (a->have_creds)
                krb5_free_cred_contents(a->ctx, &a->creds);
        if (a->cc)
                krb5_cc_close(a->ctx, a->cc);
        if (a->opt)
                krb5_get_init_creds_opt_free(a->ctx, a->opt);
        if (a->kt)
                krb5_kt_close(a->ctx, a->kt);
        if (a->princ)
                krb5_free_principal(a->ctx, a->princ);
        krb5_free_context(a->ctx);
}

/* Records a failed step of the acquisition in j: the keytab's own errors as the keytab step,
 * and for a keytab without our principal, the principal it holds (a realm mix-up). */
static void keytab_acquisition_failed(KeytabAcquisition *a, Job *j, krb5_error_code code) {
        j->step = (code == KRB5_KT_NOTFOUND || code == KRB5_KT_KVNONOTFOUND || code == KRB5_KT_END ||
                   code == KRB5_KT_BADNAME || code == KRB5_KT_FORMAT) ? KRB5_STEP_KEYTAB : KRB5_STEP_TGT;
        j->code = code;
        j->detail = krb5_detail(a->ctx, code);
        if ((code == KRB5_KT_NOTFOUND || code == KRB5_KT_END) && a->kt && a->princ)
                j->keytab_principal = keytab_find_other_realm(a->ctx, a->kt, a->princ);
}

/* The TGT from the keytab into j's ccache; 0 or the Kerberos code of the step that failed. */
static krb5_error_code keytab_acquire(Krb5Creds *c, Job *j, KeytabAcquisition *a) {
        _cleanup_free_ char *ktname = NULL;
        krb5_error_code code;

        code = krb5_parse_name(a->ctx, c->settings.principal, &a->princ);
        if (code != 0)
                return code;
        if (asprintf(&ktname, "FILE:%s", c->settings.keytab) < 0) {
                ktname = NULL;
                return ENOMEM;
        }
        code = krb5_kt_resolve(a->ctx, ktname, &a->kt);
        if (code != 0)
                return code;
        code = krb5_get_init_creds_opt_alloc(a->ctx, &a->opt);
        if (code != 0)
                return code;
        /* Forwardable so that IIS may use constrained delegation ("Use Kerberos only") with our
         * service ticket as evidence; libcurl never forwards the TGT (delegation is off). */
        krb5_get_init_creds_opt_set_forwardable(a->opt, 1);
        krb5_get_init_creds_opt_set_proxiable(a->opt, 0);
        krb5_get_init_creds_opt_set_address_list(a->opt, NULL);

        __atomic_add_fetch(&c->n_as, 1, __ATOMIC_RELAXED);
        code = krb5_get_init_creds_keytab(a->ctx, &a->creds, a->princ, a->kt, 0, NULL, a->opt);
        if (code != 0)
                return code;
        a->have_creds = true;

        code = krb5_cc_resolve(a->ctx, j->ccache, &a->cc);
        if (code != 0)
                return code;
        code = krb5_cc_initialize(a->ctx, a->cc, a->princ);
        if (code != 0)
                return code;
        return krb5_cc_store_cred(a->ctx, a->cc, &a->creds);
}

static void worker_acquire_keytab(Krb5Creds *c, Job *j) {
        _cleanup_(keytab_acquisition_done) KeytabAcquisition a = {};
        krb5_error_code code;
        int fd;

        /* Open it ourselves first: krb5 reports an unreadable keytab as "no key". */
        j->step = KRB5_STEP_KEYTAB;
        fd = open(c->settings.keytab, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0) {
                j->code = errno;
                j->detail = strdup(strerror(errno));
                return;
        }
        close(fd);

        code = krb5_init_context(&a.ctx);
        if (code != 0) {
                a.ctx = NULL;
                j->step = KRB5_STEP_TGT;
                j->code = code;
                j->detail = strdup("cannot initialise the Kerberos library (is the generated krb5.conf readable?)");
                return;
        }
        code = keytab_acquire(c, j, &a);
        if (code != 0) {
                keytab_acquisition_failed(&a, j, code);
                return;
        }
        j->ok = true;
        j->end_usec = (uint64_t) (uint32_t) a.creds.times.endtime * USEC_PER_SEC;
}

/* The result of a GSS exchange: success with the credential's lifetime, or the failure's
 * code (the mechanism's minor status when there is one) and text. */
static void job_set_gss_result(Job *j, OM_uint32 major, OM_uint32 minor, OM_uint32 lifetime) {
        if (!GSS_ERROR(major)) {
                j->ok = true;
                if (lifetime != GSS_C_INDEFINITE && lifetime > 0)
                        j->end_usec = clock_usec(CLOCK_REALTIME) + (uint64_t) lifetime * USEC_PER_SEC;
                return;
        }
        j->code = minor ? (long) (int32_t) minor : (long) major;
        j->detail = gss_detail(major, minor);
}

static void gss_namep(gss_name_t *n) {
        OM_uint32 minor;
        gss_release_name(&minor, n);
}

static void gss_credp(gss_cred_id_t *cred) {
        OM_uint32 minor;
        gss_release_cred(&minor, cred);
}

static void gss_bufferp(gss_buffer_desc *b) {
        OM_uint32 minor;
        gss_release_buffer(&minor, b);
}

static void gss_ctxp(gss_ctx_id_t *ctx) {
        OM_uint32 minor;
        if (*ctx != GSS_C_NO_CONTEXT)
                gss_delete_sec_context(&minor, ctx, GSS_C_NO_BUFFER);
}

static void worker_acquire_proxy(Krb5Creds *c, Job *j) {
        OM_uint32 major, minor, lifetime = 0;
        gss_buffer_desc namebuf = { strlen(c->settings.principal), (void *) c->settings.principal };
        _cleanup_(gss_namep) gss_name_t name = GSS_C_NO_NAME;
        _cleanup_(gss_credp) gss_cred_id_t cred = GSS_C_NO_CREDENTIAL;
        gss_OID_set_desc mechs = { 1, (gss_OID) gss_mech_krb5 };

        j->step = KRB5_STEP_TGT;
        (void) gss_krb5_ccache_name(&minor, j->ccache, NULL);
        major = gss_import_name(&minor, &namebuf, (gss_OID) GSS_KRB5_NT_PRINCIPAL_NAME, &name);
        if (GSS_ERROR(major)) {
                job_set_gss_result(j, major, minor, 0);
                return;
        }
        __atomic_add_fetch(&c->n_as, 1, __ATOMIC_RELAXED);
        major = gss_acquire_cred(&minor, name, GSS_C_INDEFINITE, &mechs, GSS_C_INITIATE, &cred, NULL, &lifetime);
        job_set_gss_result(j, major, minor, lifetime);
}

static void worker_probe(Krb5Creds *c, Job *j) {
        OM_uint32 major, minor, lifetime = 0;
        _cleanup_free_ char *spn = NULL;
        gss_buffer_desc namebuf;
        _cleanup_(gss_bufferp) gss_buffer_desc out = GSS_C_EMPTY_BUFFER;
        _cleanup_(gss_namep) gss_name_t target = GSS_C_NO_NAME;
        _cleanup_(gss_ctxp) gss_ctx_id_t gctx = GSS_C_NO_CONTEXT;

        j->step = KRB5_STEP_SERVICE_TICKET;
        if (asprintf(&spn, "HTTP@%s", j->host) < 0) {
                spn = NULL;
                j->code = ENOMEM;
                j->detail = NULL;
                return;
        }
        (void) gss_krb5_ccache_name(&minor, j->ccache, NULL);
        namebuf.value = spn;
        namebuf.length = strlen(spn);
        major = gss_import_name(&minor, &namebuf, GSS_C_NT_HOSTBASED_SERVICE, &target);
        if (GSS_ERROR(major)) {
                job_set_gss_result(j, major, minor, 0);
                return;
        }
        __atomic_add_fetch(&c->n_tgs, 1, __ATOMIC_RELAXED);
        major = gss_init_sec_context(&minor, GSS_C_NO_CREDENTIAL, &gctx, target, (gss_OID) gss_mech_krb5,
                                     GSS_C_MUTUAL_FLAG, GSS_C_INDEFINITE, GSS_C_NO_CHANNEL_BINDINGS,
                                     GSS_C_NO_BUFFER, NULL, &out, NULL, &lifetime);
        job_set_gss_result(j, major, minor, lifetime);
}

static void *worker_main(void *arg) {
        Krb5Creds *c = arg;

        for (;;) {
                Job *j;

                pthread_mutex_lock(&c->lock);
                while (!c->queue_head && !c->quit)
                        pthread_cond_wait(&c->cond, &c->lock);
                if (c->quit) {
                        pthread_mutex_unlock(&c->lock);
                        return NULL;
                }
                j = c->queue_head;
                c->queue_head = j->next;
                if (!c->queue_head)
                        c->queue_tail = NULL;
                pthread_mutex_unlock(&c->lock);

                j->next = NULL;
                if (j->type == JOB_ACQUIRE) {
                        if (c->settings.mode == KRB5_MODE_GSS_PROXY)
                                worker_acquire_proxy(c, j);
                        else
                                worker_acquire_keytab(c, j);
                } else
                        worker_probe(c, j);

                for (;;) {
                        ssize_t n = write(c->pipe_fd[1], &j, sizeof j);
                        if (n == (ssize_t) sizeof j)
                                break;
                        if (n < 0 && errno == EINTR)
                                continue;
                        job_free(j);   /* the loop side is gone; nothing else to do */
                        break;
                }
        }
}

/* ---------- loop thread ---------- */

static void notify_state(Krb5Creds *c) {
        if (c->state_handler)
                c->state_handler(c, c->state_userdata);
}

static void set_state(Krb5Creds *c, CredentialState s) {
        if (c->state == s)
                return;
        c->state = s;
        notify_state(c);
}

static int queue_job(Krb5Creds *c, JobType type, const char *host) {
        Job *j = calloc(1, sizeof *j);

        if (!j)
                return -ENOMEM;
        j->type = type;
        if (type == JOB_ACQUIRE) {
                j->gen = ++c->next_gen;
                if (c->settings.mode == KRB5_MODE_GSS_PROXY)
                        j->ccache = strdup(KRB5_PROFILE_CCACHE);
                else if (asprintf(&j->ccache, "MEMORY:certbroker-%u", j->gen) < 0)
                        j->ccache = NULL;
        } else {
                j->gen = c->active_gen;
                j->ccache = c->active_ccache ? strdup(c->active_ccache) : NULL;
                j->host = strdup(host);
                if (!j->host) {
                        job_free(j);
                        return -ENOMEM;
                }
        }
        if (!j->ccache) {
                job_free(j);
                return -ENOMEM;
        }
        pthread_mutex_lock(&c->lock);
        if (c->queue_tail)
                c->queue_tail->next = j;
        else
                c->queue_head = j;
        c->queue_tail = j;
        pthread_cond_signal(&c->cond);
        pthread_mutex_unlock(&c->lock);
        c->jobs_in_flight++;
        return 0;
}

static HostEntry *host_find(Krb5Creds *c, const char *host) {
        for (HostEntry *h = c->hosts; h; h = h->next)
                if (strcmp(h->host, host) == 0)
                        return h;
        return NULL;
}

/* Calls and frees every waiter of h. Handlers may start new waits (on h too): detach first. */
static void host_complete(Krb5Creds *c, HostEntry *h, TransportOutcome o, const char *message) {
        Krb5ServiceWait *list = h->waiters;

        h->waiters = NULL;
        while (list) {
                Krb5ServiceWait *w = list;
                list = w->next;
                w->entry = NULL;
                w->handler(c, o, message, w->userdata);
                free(w);
        }
}

static int start_acquire(Krb5Creds *c) {
        int r;

        if (c->acquiring)
                return 0;
        r = queue_job(c, JOB_ACQUIRE, NULL);
        if (r < 0)
                return r;
        c->acquiring = true;
        c->in_backoff = false;
        return 0;
}

static int on_refresh_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        Krb5Creds *c = userdata;
        (void) start_acquire(c);
        return 0;
}

static int on_expire_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        Krb5Creds *c = userdata;

        if (c->state == CREDENTIAL_VALID && clock_usec(CLOCK_REALTIME) >= c->expiry_usec) {
                set_state(c, CREDENTIAL_EXPIRED);
                (void) start_acquire(c);
        }
        return 0;
}

static void arm_timer(Krb5Creds *c, sd_event_source **src, clockid_t clock, uint64_t when,
                      sd_event_time_handler_t handler) {
        if (*src) {
                (void) sd_event_source_set_time(*src, when);
                (void) sd_event_source_set_enabled(*src, SD_EVENT_ONESHOT);
                return;
        }
        if (sd_event_add_time(c->event, src, clock, when, 0, handler, c) >= 0)
                (void) sd_event_source_set_description(*src, "krb5-creds-timer");
}

static void destroy_ccache(const char *name) {
        krb5_context ctx;
        krb5_ccache cc;

        if (!name || krb5_init_context(&ctx) != 0)
                return;
        if (krb5_cc_resolve(ctx, name, &cc) == 0)
                (void) krb5_cc_destroy(ctx, cc);   /* MEMORY: tickets are wiped and freed */
        krb5_free_context(ctx);
}

static void fail_waiting_hosts(Krb5Creds *c) {
        for (HostEntry *h = c->hosts; h; h = h->next)
                if (h->state == HOST_WAIT_TGT) {
                        h->state = HOST_IDLE;
                        host_complete(c, h, c->error, c->error_message);
                }
}

static void start_waiting_probes(Krb5Creds *c) {
        for (HostEntry *h = c->hosts; h; h = h->next)
                if (h->state == HOST_WAIT_TGT) {
                        if (queue_job(c, JOB_PROBE, h->host) < 0) {
                                h->state = HOST_IDLE;
                                host_complete(c, h, TRANSPORT_KERBEROS_FAILED, "out of memory");
                        } else
                                h->state = HOST_PROBING;
                }
}

static Krb5ErrorContext error_context(Krb5Creds *c, const char *host, const char *detail) {
        return (Krb5ErrorContext) {
                .keytab_principal = NULL,
                .realm = c->settings.realm,
                .kdcs = c->kdcs_text,
                .principal = c->settings.principal,
                .keytab = c->settings.mode == KRB5_MODE_KEYTAB ? c->settings.keytab : NULL,
                .host = host,
                .detail = detail,
                .gss_proxy = c->settings.mode == KRB5_MODE_GSS_PROXY,
        };
}

static void acquire_done(Krb5Creds *c, Job *j) {
        uint64_t now_rt = clock_usec(CLOCK_REALTIME), now_bt = clock_usec(CLOCK_BOOTTIME);

        c->acquiring = false;
        if (j->ok) {
                char *old = c->active_ccache;
                unsigned old_gen = c->active_gen;
                uint64_t end = j->end_usec, lifetime;

                c->active_ccache = j->ccache;
                j->ccache = NULL;
                c->active_gen = j->gen;
                (void) krb5_creds_activate_thread(c);
                if (old && old_gen != c->active_gen && c->settings.mode == KRB5_MODE_KEYTAB)
                        destroy_ccache(old);
                free(old);

                if (end == 0)   /* gss-proxy did not say: assume the common 10 h, check again hourly */
                        end = now_rt + 3600 * USEC_PER_SEC;
                lifetime = end > now_rt ? end - now_rt : 0;
                c->expiry_usec = end;
                c->ever_valid = true;
                c->error = TRANSPORT_OK;
                free(c->error_message);
                c->error_message = NULL;
                c->backoff_usec = 0;
                c->in_backoff = false;
                /* Service tickets of the old generation are gone with its ccache. */
                for (HostEntry *h = c->hosts; h; h = h->next)
                        if (h->state == HOST_READY)
                                h->state = HOST_IDLE;
                arm_timer(c, &c->refresh_timer, CLOCK_BOOTTIME,
                          now_bt + (lifetime / 4 * 3 > 10 * USEC_PER_SEC ? lifetime / 4 * 3 : 10 * USEC_PER_SEC),
                          on_refresh_timer);
                arm_timer(c, &c->expire_timer, CLOCK_REALTIME, end, on_expire_timer);
                c->state = CREDENTIAL_VALID;
                notify_state(c);   /* expiry changed even if the state did not */
                start_waiting_probes(c);
                return;
        }

        {
                Krb5ErrorContext ec = error_context(c, NULL, j->detail);
                char *m = NULL;

                ec.keytab_principal = j->keytab_principal;

                c->error = krb5_error_classify(j->step, j->code, &ec, &m);
                c->error_step = j->step;
                free(c->error_message);
                c->error_message = m;
        }
        c->in_backoff = true;
        c->backoff_usec = c->backoff_usec == 0 ? c->backoff_min_usec :
                          (c->backoff_usec * 2 > c->backoff_max_usec ? c->backoff_max_usec : c->backoff_usec * 2);
        arm_timer(c, &c->refresh_timer, CLOCK_BOOTTIME, now_bt + c->backoff_usec, on_refresh_timer);

        if (c->active_gen != 0 && now_rt < c->expiry_usec)
                notify_state(c);                /* the old ticket still works; error changed */
        else if (c->ever_valid) {
                c->state = CREDENTIAL_EXPIRED;
                notify_state(c);
        } else {
                c->state = CREDENTIAL_UNAVAILABLE;
                notify_state(c);
        }
        if (c->active_gen != 0 && now_rt < c->expiry_usec)
                start_waiting_probes(c);
        else
                fail_waiting_hosts(c);
}

static void probe_done(Krb5Creds *c, Job *j) {
        HostEntry *h = host_find(c, j->host);

        if (!h || h->state != HOST_PROBING)
                return;         /* forgotten meanwhile */
        if (j->gen != c->active_gen) {
                /* Renewed while probing: the ticket is in a destroyed ccache. Probe again. */
                if (queue_job(c, JOB_PROBE, h->host) < 0) {
                        h->state = HOST_IDLE;
                        host_complete(c, h, TRANSPORT_KERBEROS_FAILED, "out of memory");
                }
                return;
        }
        if (j->ok) {
                h->state = HOST_READY;
                h->gen = j->gen;
                h->end_usec = j->end_usec ? j->end_usec : c->expiry_usec;
                {
                        /* A quarter of the ticket's remaining life, at most a minute: libcurl must
                         * never find it expired (it would then ask the KDC itself, on the loop). */
                        uint64_t now_rt = clock_usec(CLOCK_REALTIME);
                        uint64_t left = h->end_usec > now_rt ? h->end_usec - now_rt : 0;
                        h->margin_usec = left / 4 < SERVICE_MARGIN_USEC ? left / 4 : SERVICE_MARGIN_USEC;
                }
                host_complete(c, h, TRANSPORT_OK, NULL);
                return;
        }

        {
                Krb5ErrorContext ec = error_context(c, h->host, j->detail);
                char *m = NULL;
                TransportOutcome o = krb5_error_classify(KRB5_STEP_SERVICE_TICKET, j->code, &ec, &m);

                h->state = HOST_IDLE;
                /* An expired or missing TGT: renew it, the next request will probe again. */
                if (j->code == KRB5KRB_AP_ERR_TKT_EXPIRED || j->code == KRB5_CC_NOTFOUND ||
                    j->code == KRB5_FCC_NOFILE)
                        (void) start_acquire(c);
                host_complete(c, h, o, m ? m : "out of memory");
                free(m);
        }
}

static int on_pipe(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        Krb5Creds *c = userdata;

        for (;;) {
                Job *j;
                ssize_t n = read(fd, &j, sizeof j);

                if (n < 0 && errno == EINTR)
                        continue;
                if (n != (ssize_t) sizeof j)
                        break;   /* EAGAIN: drained (pipe writes of a pointer are atomic) */
                c->jobs_in_flight--;
                if (j->type == JOB_ACQUIRE)
                        acquire_done(c, j);
                else
                        probe_done(c, j);
                job_free(j);
        }
        return 0;
}

static int set_env(const char *name, const char *value) {
        const char *cur = getenv(name);

        if (cur && strcmp(cur, value) == 0)
                return 0;       /* unchanged: no setenv() while other threads may read it */
        return setenv(name, value, 1) < 0 ? -errno : 0;
}

static char **strv_copy(char *const *l) {
        size_t n = 0;
        char **r;

        while (l && l[n])
                n++;
        r = calloc(n + 1, sizeof *r);
        if (!r)
                return NULL;
        for (size_t i = 0; i < n; i++) {
                r[i] = strdup(l[i]);
                if (!r[i]) {
                        for (size_t k = 0; k < i; k++)
                                free(r[k]);
                        free(r);
                        return NULL;
                }
        }
        return r;
}

static char *strv_join(char *const *l) {
        size_t len = 1;
        char *r;

        for (size_t i = 0; l && l[i]; i++)
                len += strlen(l[i]) + 1;
        r = calloc(1, len);
        if (!r)
                return NULL;
        for (size_t i = 0; l && l[i]; i++) {
                if (i > 0)
                        strcat(r, " ");
                strcat(r, l[i]);
        }
        return r;
}

static char *strdup_or_null(const char *s, bool *oom) {
        char *r;
        if (!s)
                return NULL;
        r = strdup(s);
        if (!r)
                *oom = true;
        return r;
}

static void settings_free(Krb5Settings *s) {
        free((char *) s->realm);
        free((char *) s->principal);
        free((char *) s->keytab);
        free((char *) s->domain_suffix);
        free((char *) s->runtime_dir);
}

int krb5_creds_new(sd_event *event, const Krb5Settings *settings, Krb5Creds **ret, char **ret_message) {
        _cleanup_(krb5_creds_freep) Krb5Creds *c = NULL;
        _cleanup_free_ char *config = NULL;
        bool oom = false;
        int r;

        if (!event || !settings || !ret || !settings->realm || !settings->principal || !settings->runtime_dir)
                return -EINVAL;
        if (settings->mode == KRB5_MODE_KEYTAB && !settings->keytab)
                return -EINVAL;

        c = calloc(1, sizeof *c);
        if (!c)
                return -ENOMEM;
        c->pipe_fd[0] = c->pipe_fd[1] = -1;
        pthread_mutex_init(&c->lock, NULL);
        pthread_cond_init(&c->cond, NULL);
        c->event = sd_event_ref(event);
        c->backoff_min_usec = 2 * USEC_PER_SEC;
        c->backoff_max_usec = 300 * USEC_PER_SEC;
        c->state = CREDENTIAL_UNAVAILABLE;

        c->settings.mode = settings->mode;
        c->settings.realm = strdup_or_null(settings->realm, &oom);
        c->settings.principal = strdup_or_null(settings->principal, &oom);
        c->settings.keytab = strdup_or_null(settings->keytab, &oom);
        c->settings.domain_suffix = strdup_or_null(settings->domain_suffix, &oom);
        c->settings.runtime_dir = strdup_or_null(settings->runtime_dir, &oom);
        c->kdcs_copy = strv_copy(settings->kdcs);
        c->kdcs_text = strv_join(settings->kdcs);
        if (oom || !c->kdcs_copy || !c->kdcs_text)
                return -ENOMEM;
        c->settings.kdcs = c->kdcs_copy;

        r = krb5_profile_write(&c->settings, &config, ret_message);
        if (r < 0)
                return r;
        /* Before any krb5/GSS call and any thread (see the header). */
        r = set_env("KRB5_CONFIG", config);
        if (r < 0)
                return r;
        r = set_env("KRB5CCNAME", KRB5_PROFILE_CCACHE);
        if (r < 0)
                return r;
        r = set_env("GSS_USE_PROXY", c->settings.mode == KRB5_MODE_GSS_PROXY ? "yes" : "no");
        if (r < 0)
                return r;

        /* The worker's end blocks (a result is never dropped); the loop's end does not. */
        if (pipe2(c->pipe_fd, O_CLOEXEC) < 0 ||
            fcntl(c->pipe_fd[0], F_SETFL, fcntl(c->pipe_fd[0], F_GETFL) | O_NONBLOCK) < 0)
                return -errno;
        r = sd_event_add_io(event, &c->pipe_source, c->pipe_fd[0], EPOLLIN, on_pipe, c);
        if (r < 0)
                return r;
        (void) sd_event_source_set_description(c->pipe_source, "krb5-creds-worker");

        r = -pthread_create(&c->thread, NULL, worker_main, c);
        if (r < 0)
                return r;
        c->thread_started = true;

        r = start_acquire(c);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(c);
        return 0;
}

Krb5Creds *krb5_creds_free(Krb5Creds *c) {
        if (!c)
                return NULL;

        if (c->thread_started) {
                pthread_mutex_lock(&c->lock);
                c->quit = true;
                pthread_cond_signal(&c->cond);
                pthread_mutex_unlock(&c->lock);
                pthread_join(c->thread, NULL);
        }
        /* Jobs never started, and finished ones not yet read. */
        while (c->queue_head) {
                Job *j = c->queue_head;
                c->queue_head = j->next;
                job_free(j);
        }
        if (c->pipe_fd[0] >= 0) {
                Job *j;
                while (read(c->pipe_fd[0], &j, sizeof j) == (ssize_t) sizeof j)
                        job_free(j);
        }
        while (c->hosts) {
                HostEntry *h = c->hosts;
                c->hosts = h->next;
                while (h->waiters) {
                        Krb5ServiceWait *w = h->waiters;
                        h->waiters = w->next;
                        free(w);
                }
                free(h->host);
                free(h);
        }
        if (c->active_ccache) {
                if (c->settings.mode == KRB5_MODE_KEYTAB)
                        destroy_ccache(c->active_ccache);
                free(c->active_ccache);
        }
        sd_event_source_disable_unref(c->pipe_source);
        sd_event_source_disable_unref(c->refresh_timer);
        sd_event_source_disable_unref(c->expire_timer);
        sd_event_source_disable_unref(c->fail_defer);
        if (c->pipe_fd[0] >= 0)
                close(c->pipe_fd[0]);
        if (c->pipe_fd[1] >= 0)
                close(c->pipe_fd[1]);
        sd_event_unref(c->event);
        pthread_mutex_destroy(&c->lock);
        pthread_cond_destroy(&c->cond);
        settings_free(&c->settings);
        if (c->kdcs_copy) {
                for (char **k = c->kdcs_copy; *k; k++)
                        free(*k);
                free(c->kdcs_copy);
        }
        free(c->kdcs_text);
        free(c->error_message);
        free(c);
        return NULL;
}

void krb5_creds_set_state_handler(Krb5Creds *c, krb5_state_handler_t handler, void *userdata) {
        c->state_handler = handler;
        c->state_userdata = userdata;
}

CredentialState krb5_creds_get_state(const Krb5Creds *c) {
        return c ? c->state : CREDENTIAL_UNAVAILABLE;
}

uint64_t krb5_creds_get_expiry(const Krb5Creds *c) {
        return c && c->active_gen != 0 ? c->expiry_usec : 0;
}

TransportOutcome krb5_creds_get_error(const Krb5Creds *c, const char **ret_message) {
        if (ret_message)
                *ret_message = c ? c->error_message : NULL;
        return c ? c->error : TRANSPORT_KERBEROS_FAILED;
}

Krb5Step krb5_creds_get_error_step(const Krb5Creds *c) {
        return c->error_step;
}

bool krb5_creds_is_acquiring(const Krb5Creds *c) {
        return c && c->acquiring;
}

int krb5_creds_refresh(Krb5Creds *c) {
        if (!c)
                return -EINVAL;
        return start_acquire(c);
}

void krb5_creds_set_backoff(Krb5Creds *c, uint64_t min_usec, uint64_t max_usec) {
        c->backoff_min_usec = min_usec > 0 ? min_usec : 1;
        c->backoff_max_usec = max_usec >= c->backoff_min_usec ? max_usec : c->backoff_min_usec;
}

const Krb5Settings *krb5_creds_get_settings(const Krb5Creds *c) {
        return &c->settings;
}

void krb5_creds_get_counters(const Krb5Creds *c, uint64_t *ret_as, uint64_t *ret_tgs) {
        if (ret_as)
                *ret_as = __atomic_load_n(&c->n_as, __ATOMIC_RELAXED);
        if (ret_tgs)
                *ret_tgs = __atomic_load_n(&c->n_tgs, __ATOMIC_RELAXED);
}

int krb5_creds_activate_thread(Krb5Creds *c) {
        OM_uint32 major, minor;

        if (!c || !c->active_ccache)
                return -ENOENT;
        major = gss_krb5_ccache_name(&minor, c->active_ccache, NULL);
        return GSS_ERROR(major) ? -EIO : 0;
}

static int on_fail_defer(sd_event_source *s, void *userdata) {
        Krb5Creds *c = userdata;

        (void) sd_event_source_set_enabled(s, SD_EVENT_OFF);
        if (!c->acquiring)
                fail_waiting_hosts(c);
        return 0;
}

int krb5_creds_ensure_service(Krb5Creds *c, const char *host, krb5_service_handler_t handler, void *userdata,
                              Krb5ServiceWait **ret_wait) {
        uint64_t now_rt = clock_usec(CLOCK_REALTIME);
        Krb5ServiceWait *w;
        HostEntry *h;
        bool tgt_usable;
        int r;

        if (!c || !host || !handler)
                return -EINVAL;
        tgt_usable = c->active_gen != 0 && now_rt < c->expiry_usec;

        h = host_find(c, host);
        if (h && h->state == HOST_READY && h->gen == c->active_gen && tgt_usable &&
            h->end_usec > now_rt + h->margin_usec)
                return 1;

        if (!h) {
                h = calloc(1, sizeof *h);
                if (!h)
                        return -ENOMEM;
                h->host = strdup(host);
                if (!h->host) {
                        free(h);
                        return -ENOMEM;
                }
                h->next = c->hosts;
                c->hosts = h;
        }

        w = calloc(1, sizeof *w);
        if (!w)
                return -ENOMEM;
        w->creds = c;
        w->handler = handler;
        w->userdata = userdata;

        if (h->state == HOST_IDLE || h->state == HOST_READY) {
                if (tgt_usable) {
                        r = queue_job(c, JOB_PROBE, host);
                        if (r < 0) {
                                free(w);
                                return r;
                        }
                        h->state = HOST_PROBING;
                } else if (c->in_backoff) {
                        /* The last attempt failed and the next one is scheduled: do not hammer the
                         * KDC per request. Fail with the last error, from the loop, right away. */
                        if (!c->fail_defer) {
                                r = sd_event_add_defer(c->event, &c->fail_defer, on_fail_defer, c);
                                if (r < 0) {
                                        free(w);
                                        return r;
                                }
                        } else {
                                r = sd_event_source_set_enabled(c->fail_defer, SD_EVENT_ONESHOT);
                                if (r < 0) {
                                        free(w);
                                        return r;
                                }
                        }
                        h->state = HOST_WAIT_TGT;
                } else {
                        r = start_acquire(c);
                        if (r < 0) {
                                free(w);
                                return r;
                        }
                        h->state = HOST_WAIT_TGT;
                }
        }

        w->entry = h;
        w->next = h->waiters;
        if (h->waiters)
                h->waiters->prev = w;
        h->waiters = w;
        if (ret_wait)
                *ret_wait = w;
        return 0;
}

Krb5ServiceWait *krb5_service_wait_cancel(Krb5ServiceWait *w) {
        if (!w)
                return NULL;
        if (w->entry) {
                if (w->prev)
                        w->prev->next = w->next;
                else
                        w->entry->waiters = w->next;
                if (w->next)
                        w->next->prev = w->prev;
        }
        free(w);
        return NULL;
}

void krb5_creds_forget_service(Krb5Creds *c, const char *host) {
        for (HostEntry *h = c->hosts; h; h = h->next)
                if ((!host || strcmp(h->host, host) == 0) && h->state == HOST_READY)
                        h->state = HOST_IDLE;
}
