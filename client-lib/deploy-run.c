/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* certbrokerctl deploy: keep a renewed certificate deployed in a directory (deploy-run.h). The
 * files it writes are deploy-files.c's, the formats beyond PEM deploy-formats.c's and
 * deploy-nssdb.c's; this file runs the rounds: enroll once, take the key, write a generation,
 * switch live, run the reload command, follow the renewal chain. */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "basic.h"
#include "certbroker.h"
#include "certbroker-cleanup.h"
#include "cli-util.h"
#include "deploy-files.h"
#include "deploy-formats.h"
#include "deploy-run.h"

static const char *const program = CLI_PROGRAM;
/* The command line of this run (deploy_run()). */
static const CliArgs *arg;

/* Backoff after certbrokerd or the bus failed under us, and after a failed reload command. */
#define DEPLOY_BUS_BACKOFF_MAX_SEC      15U
#define DEPLOY_RELOAD_BACKOFF_MAX_SEC   60U
/* After the reload timeout: SIGTERM to the command's process group, SIGKILL this much later. */
#define DEPLOY_RELOAD_KILL_GRACE_MSEC   3000

typedef struct Deploy {
        CertbrokerClient *client;       /* NULL after a bus failure: reconnect */
        const char *dir;
        const char *reload;
        uint64_t reload_timeout_usec;   /* 0: none */
        CertbrokerRequestSpec spec;
        bool identity_self;             /* Enroll option identity=self */
        bool once;
        uid_t uid;
        int dfd;
        DeployState state;
        DeployOutputs out;              /* Format= and what it needs */
        char *passphrase;               /* of the PKCS#12 bundle, read at the start */
        int exit_code;                  /* of a fatal failure, already reported */
} Deploy;

/* The D-Bus failures that mean certbrokerd (or the bus) is going away or coming back: the
 * deployment reconnects and tries again, it does not give up. */
static bool error_is_transient(const CertbrokerError *e, int r) {
        static const char *const names[] = {
                "org.freedesktop.DBus.Error.ServiceUnknown",
                "org.freedesktop.DBus.Error.NameHasNoOwner",
                "org.freedesktop.DBus.Error.NoReply",
                "org.freedesktop.DBus.Error.Disconnected",
                "org.freedesktop.DBus.Error.Timeout",
                "org.freedesktop.DBus.Error.TimedOut",
                "org.freedesktop.DBus.Error.NoServer",
                "org.freedesktop.DBus.Error.LimitsExceeded",
                "System.Error.EAGAIN",          /* certbrokerd: "call again" */
        };
        if (e->name) {
                for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
                        if (strcmp(e->name, names[i]) == 0)
                                return true;
                return false;
        }
        return r == -ECONNRESET || r == -ENOTCONN || r == -EPIPE || r == -ETIMEDOUT || r == -ECONNREFUSED ||
               r == -ESHUTDOWN || r == -ENOENT || r == -EIO;
}

/* A failed call: transient (-EAGAIN, reported as a retry) or fatal (-ECANCELED, reported and
 * d->exit_code set). */
static int deploy_call_failed(Deploy *d, CertbrokerError *e, int r, const char *what) {
        if (error_is_transient(e, r)) {
                fprintf(stderr, "%s: deploy: %s: %s%s%s%s: will reconnect and retry.\n", program, what,
                        e->message ?: strerror(-r), e->name ? " [" : "", e->name ?: "", e->name ? "]" : "");
                certbroker_error_clear(e);
                d->client = certbroker_close(d->client);
                return -EAGAIN;
        }
        d->exit_code = cli_fail_call(arg->json, e, r, what);
        return -ECANCELED;
}

static int deploy_fatal(Deploy *d, int code, const char *format, ...) __attribute__((format(printf, 3, 4)));
static int deploy_fatal(Deploy *d, int code, const char *format, ...) {
        _cleanup_free_ char *msg = NULL;
        va_list ap;

        va_start(ap, format);
        msg = cli_vformat(format, ap);
        va_end(ap);
        d->exit_code = cli_fail(arg->json, code, NULL, "deploy: %s", msg ?: "out of memory");
        return -ECANCELED;
}

static void deploy_note(const char *format, ...) __attribute__((format(printf, 1, 2)));
static void deploy_note(const char *format, ...) {
        va_list ap;

        if (arg->quiet)
                return;
        fprintf(stderr, "%s: deploy: ", program);
        va_start(ap, format);
        vfprintf(stderr, format, ap);
        va_end(ap);
        fputc('\n', stderr);
}

/* Tests kill the command at its crash points with CERTBROKER_TEST_KILL_AT= (the daemon's
 * variable; the environment of a test, never of a deployed unit): deploy-enrolled (Enroll
 * replied, its id not yet recorded), deploy-key-written (the key in gen-<id>/, the
 * certificate not), deploy-formats-written (gen-<id>/'s bundle.p12 written and the NSS database
 * given its key and certificate, live not switched), deploy-generation-written (the same),
 * deploy-live-swapped (live switched, the reload command not run), deploy-reloaded (the
 * reload command succeeded, not yet recorded); and deploy-confirm-lost, not a kill: ConfirmKey
 * is not sent, as if it had timed out. */
static void deploy_test_kill_point(const char *point) {
        const char *e = getenv("CERTBROKER_TEST_KILL_AT");

        if (e && strcmp(e, point) == 0) {
                fprintf(stderr, "%s: deploy: CERTBROKER_TEST_KILL_AT=%s: killing myself.\n", program, point);
                fflush(stderr);
                (void) raise(SIGKILL);
        }
}

static int deploy_save_state(Deploy *d) {
        int r = deploy_state_write(d->dfd, &d->state);
        if (r < 0)
                return deploy_fatal(d, CLI_EXIT_FAILURE, "cannot write %s/%s: %s", d->dir, DEPLOY_STATE_FILE,
                                    strerror(-r));
        return 0;
}

/* Enrolls the chain of this directory, once: the intent token is made durable before Enroll
 * and is Enroll's option token (and, for people reading `certbrokerctl list`, in its label).
 * A run killed before it recorded the request's id calls Enroll again with the same token,
 * and certbrokerd answers with the request that token already names (the chain's first kept
 * member) instead of making a second one, whether or not it had read the first call yet. */
static int deploy_enroll(Deploy *d) {
        CertbrokerError e = CERTBROKER_ERROR_NULL;
        CertbrokerRequestSpec spec = d->spec;
        _cleanup_free_ char *label = NULL, *id = NULL;
        bool again = false;
        int r;

        if (!*d->state.intent) {
                r = deploy_intent_new(d->state.intent);
                if (r < 0)
                        return deploy_fatal(d, CLI_EXIT_FAILURE, "cannot make a random token: %s", strerror(-r));
                r = deploy_save_state(d);
                if (r < 0)
                        return r;
        } else
                again = true;
        r = deploy_intent_label(d->spec.label, d->state.intent, &label);
        if (r < 0)
                return deploy_fatal(d, CLI_EXIT_USAGE, "the label '%s' is too long: at most %u bytes with deploy",
                                    d->spec.label ?: "", (unsigned) DEPLOY_USER_LABEL_MAX);
        spec.label = label;
        r = certbroker_enroll_token(d->client, &spec,
                                    CERTBROKER_ENROLL_RENEW | (d->identity_self ? CERTBROKER_ENROLL_IDENTITY_SELF : 0),
                                    d->state.intent, &id, &e);
        if (r < 0 && again && certbroker_error_has_name(&e, CERTBROKER_ERROR_INVALID_ARGUMENT) && e.message &&
            strstr(e.message, "already names request")) {
                r = deploy_fatal(d, CLI_EXIT_FAILURE, "%s: this directory's enrollment was started with other "
                                 "parameters than now (%s). To enroll anew with the new ones, remove the intent= "
                                 "line of %s/%s; the request it names stays at the broker and goes on renewing "
                                 "(certbrokerctl status, cancel and remove; Request.StopRenewal ends its chain).",
                                 d->dir, e.message, d->dir, DEPLOY_STATE_FILE);
                certbroker_error_clear(&e);
                return r;
        }
        if (r < 0)
                return deploy_call_failed(d, &e, r, "Enroll refused");
        deploy_test_kill_point("deploy-enrolled");
        snprintf(d->state.request, sizeof d->state.request, "%s", id);
        r = deploy_save_state(d);
        if (r < 0)
                return r;
        if (again)
                deploy_note("request %s: certbrokerd's answer to Enroll with the token in %s/%s (a request it "
                            "already had for it is not made twice)", d->state.request, d->dir, DEPLOY_STATE_FILE);
        else
                deploy_note("enrolled request %s (renewed by certbrokerd, followed from %s/%s)",
                            d->state.request, d->dir, DEPLOY_STATE_FILE);
        return 0;
}

/* key.pem of request id is on disk: the broker may forget the sealed copy, and the receiver
 * key its secret. A failure of ConfirmKey only leaves the copy until the certificate expires
 * (it opens with nothing but the receiver key, erased here). */
static int deploy_confirm_key(Deploy *d, const char *id) {
        CertbrokerError e = CERTBROKER_ERROR_NULL;
        const char *t = getenv("CERTBROKER_TEST_KILL_AT");
        int r;

        if (t && strcmp(t, "deploy-confirm-lost") == 0)
                r = -ETIMEDOUT;         /* tests: as if the call had timed out */
        else
                r = certbroker_confirm_key(d->client, id, &e);
        if (r < 0 && error_is_transient(&e, r)) {
                /* key.pem is safe on disk: deploy it; seal= stays and the next round (or run)
                 * confirms it (deploy_confirm_pending()). */
                fprintf(stderr, "%s: deploy: ConfirmKey for request %s: %s: will ask again.\n", program, id,
                        e.message ?: strerror(-r));
                certbroker_error_clear(&e);
                return 0;
        }
        if (r < 0) {
                fprintf(stderr, "%s: deploy: ConfirmKey for request %s: %s (the sealed copy stays in "
                        "certbrokerd until the certificate expires).\n", program, id, e.message ?: strerror(-r));
                certbroker_error_clear(&e);
        }
        deploy_seal_clear(&d->state);
        return deploy_save_state(d);
}

/* A receiver key left from a ConfirmKey that did not get through: once its generation has
 * key.pem, the sealed copy is no longer needed; ask the broker again to erase it. */
static int deploy_confirm_pending(Deploy *d) {
        _cleanup_close_ int gfd = -1;
        char id[17];
        int r;

        if (!*d->state.seal_request)
                return 0;
        snprintf(id, sizeof id, "%s", d->state.seal_request);
        r = deploy_generation_open(d->dfd, d->uid, id, false, &gfd, NULL, NULL);
        if (r < 0)
                return 0;       /* not written yet: deploy_take_key() goes on from the receiver key */
        if (!deploy_generation_has_key(gfd))
                return 0;
        return deploy_confirm_key(d, id);
}

/* The key of request id into gen-<id>/key.pem, sealed: a receiver key is made and recorded in
 * the state file first, certbrokerd seals the key to it and erases its own copy (keeping only
 * the sealed copy, which it cannot open), and only once key.pem is on disk does ConfirmKey()
 * erase that copy and the receiver key its secret. Killed anywhere in between, the next run
 * finds the receiver key for id and asks again: the same sealed copy, the same key. 0 when
 * written, 1 when the key is gone (taken by another program, or expired), -EAGAIN/-ECANCELED
 * as deploy_call_failed(). */
static int deploy_take_key(Deploy *d, const char *id, int gfd) {
        CertbrokerError e = CERTBROKER_ERROR_NULL;
        _cleanup_(certbroker_secret_freep) char *key = NULL;
        _cleanup_free_ uint8_t *sealed = NULL;
        uint8_t pub[32];
        size_t size = 0;
        bool again = strcmp(d->state.seal_request, id) == 0;
        int r;

        if (!again) {
                r = deploy_seal_new(&d->state, id);
                if (r < 0)
                        return deploy_fatal(d, CLI_EXIT_FAILURE, "cannot make a receiver key: %s", strerror(-r));
                r = deploy_save_state(d);
                if (r < 0)
                        return r;
        }
        r = deploy_seal_public(&d->state, pub);
        if (r < 0)
                return deploy_fatal(d, CLI_EXIT_FAILURE, "%s/%s: the receiver key does not work: %s", d->dir,
                                    DEPLOY_STATE_FILE, strerror(-r));
        r = certbroker_take_key_sealed(d->client, id, pub, sizeof pub, &sealed, &size, &e);
        if (r < 0 && certbroker_error_has_name(&e, CERTBROKER_ERROR_KEY_ALREADY_TAKEN)) {
                fprintf(stderr, "%s: deploy: the key of request %s is not in certbrokerd any more (%s): this "
                        "certificate cannot be deployed; waiting for its successor.\n", program, id,
                        e.message ?: "taken");
                certbroker_error_clear(&e);
                deploy_seal_clear(&d->state);
                (void) deploy_state_write(d->dfd, &d->state);  /* a stale seal= is harmless: retried */
                return 1;
        }
        if (r < 0)
                return deploy_call_failed(d, &e, r, "Cannot take the key");
        deploy_test_kill_point("deploy-key-sealed");
        r = deploy_seal_open(&d->state, sealed, size, &key);
        if (r < 0)
                return deploy_fatal(d, CLI_EXIT_FAILURE, "the sealed key of request %s does not open with the "
                                    "receiver key in %s/%s: %s", id, d->dir, DEPLOY_STATE_FILE, strerror(-r));
        if (again)
                deploy_note("request %s: took its sealed key again (a run stopped before it stored it)", id);
        r = deploy_write_file(gfd, "key.pem", key, 0600);
        key = certbroker_secret_free(key);      /* wiped as soon as it is on disk */
        if (r < 0)
                return deploy_fatal(d, CLI_EXIT_FAILURE, "cannot write the key of request %s into "
                                    "%s/gen-%s/key.pem: %s", id, d->dir, id, strerror(-r));
        r = deploy_fsync_dir(gfd);
        if (r < 0)
                return deploy_fatal(d, CLI_EXIT_FAILURE, "cannot fsync %s/gen-%s: %s", d->dir, id, strerror(-r));
        deploy_test_kill_point("deploy-key-written");
        return deploy_confirm_key(d, id);
}

/* The formats beyond PEM of generation id (gfd), written into it or imported, before live
 * points at it: bundle.p12 (when missing, or always when fresh is set) and the NSS database's
 * new key and certificate. */
static int deploy_formats_write(Deploy *d, const char *id, int gfd, bool fresh) {
        _cleanup_free_ char *why = NULL;
        int r;

        if (d->out.formats & DEPLOY_FORMAT_PKCS12) {
                struct stat st;
                if (fresh || fstatat(gfd, DEPLOY_PKCS12_FILE, &st, AT_SYMLINK_NOFOLLOW) < 0) {
                        r = deploy_pkcs12_write(gfd, d->passphrase, d->out.nickname, &why);
                        if (r < 0)
                                return deploy_fatal(d, CLI_EXIT_FAILURE, "%s/gen-%s/%s: %s", d->dir, id,
                                                    DEPLOY_PKCS12_FILE, why ?: strerror(-r));
                        r = deploy_fsync_dir(gfd);
                        if (r < 0)
                                return deploy_fatal(d, CLI_EXIT_FAILURE, "%s/gen-%s/%s: %s", d->dir, id,
                                                    DEPLOY_PKCS12_FILE, why ?: strerror(-r));
                        deploy_note("request %s: wrote %s/gen-%s/%s", id, d->dir, id, DEPLOY_PKCS12_FILE);
                }
        }
        if (d->out.formats & DEPLOY_FORMAT_NSSDB) {
                bool imported = false;
                r = deploy_nssdb_import(d->out.nssdb, d->uid, gfd, d->out.nickname, &imported, &why);
                if (r < 0)
                        return deploy_fatal(d, CLI_EXIT_FAILURE, "request %s: %s", id, why ?: strerror(-r));
                if (imported)
                        deploy_note("request %s: imported into the NSS database sql:%s as '%s'", id, d->out.nssdb,
                                    d->out.nickname ?: DEPLOY_NICKNAME_DEFAULT);
        }
        deploy_test_kill_point("deploy-formats-written");
        return 0;
}

/* After live points at generation id: the NSS database keeps only its certificate (and key)
 * under the nickname. A failure is reported and retried with the next run or certificate. */
static void deploy_formats_prune(Deploy *d, const char *id, int gfd) {
        _cleanup_free_ char *why = NULL;
        int r;

        if (!(d->out.formats & DEPLOY_FORMAT_NSSDB))
                return;
        r = deploy_nssdb_prune(d->out.nssdb, d->uid, gfd, d->out.nickname, &why);
        if (r < 0)
                fprintf(stderr, "%s: deploy: request %s: the previous certificates stay in the NSS database: %s\n",
                        program, id, why ?: strerror(-r));
        else if (r > 0)
                deploy_note("request %s: removed %d previous certificate%s '%s' from sql:%s", id, r,
                            r == 1 ? "" : "s", d->out.nickname ?: DEPLOY_NICKNAME_DEFAULT, d->out.nssdb);
}

/* The live generation id already deployed (a restart, or a Format= added since): the formats
 * it lacks are written into it (bundle.p12 by one rename, like every file) and the NSS
 * database is brought to it. */
static int deploy_formats_refresh(Deploy *d, const char *id) {
        _cleanup_free_ char *why = NULL;
        _cleanup_close_ int gfd = -1;
        int r;

        if (!(d->out.formats & (DEPLOY_FORMAT_PKCS12 | DEPLOY_FORMAT_NSSDB)))
                return 0;
        r = deploy_generation_open(d->dfd, d->uid, id, false, &gfd, NULL, &why);
        if (r < 0)
                return deploy_fatal(d, CLI_EXIT_FAILURE, "%s: live: %s", d->dir, why ?: strerror(-r));
        r = deploy_formats_write(d, id, gfd, false);
        if (r < 0)
                return r;
        deploy_formats_prune(d, id, gfd);
        return r;
}

/* Fills generation id (gfd) with its key, certificate, chain and formats and points DIR/live
 * at it. 0 when deployed, 1 when it cannot be (its key is gone). */
static int deploy_generation_fill(Deploy *d, const char *id, int gfd, const char *cert, const char *chain) {
        const char *names[] = { "cert.pem", "chain.pem", "fullchain.pem" };
        _cleanup_free_ char *full = NULL;
        int r;

        if (!deploy_generation_has_key(gfd)) {
                r = deploy_take_key(d, id, gfd);
                if (r != 0)
                        return r;
        }
        if (asprintf(&full, "%s%s%s", cert, *cert && cert[strlen(cert) - 1] != '\n' ? "\n" : "", chain) < 0) {
                full = NULL;
                return deploy_fatal(d, CLI_EXIT_FAILURE, "out of memory");
        }
        const char *data[] = { cert, chain, full };
        for (size_t k = 0; k < ELEMENTSOF(names); k++) {
                r = deploy_write_file(gfd, names[k], data[k], 0644);
                if (r < 0)
                        return deploy_fatal(d, CLI_EXIT_FAILURE, "cannot write %s/gen-%s/%s: %s", d->dir, id,
                                            names[k], strerror(-r));
        }
        r = deploy_fsync_dir(gfd);
        if (r < 0)
                return deploy_fatal(d, CLI_EXIT_FAILURE, "cannot fsync %s/gen-%s: %s", d->dir, id, strerror(-r));
        /* Every format of the generation is complete before live points at it. */
        r = deploy_formats_write(d, id, gfd, true);
        if (r < 0)
                return r;
        deploy_test_kill_point("deploy-generation-written");
        r = deploy_live_swap(d->dfd, id);
        if (r < 0)
                return deploy_fatal(d, CLI_EXIT_FAILURE, "cannot switch %s/%s to gen-%s: %s", d->dir, DEPLOY_LIVE,
                                    id, strerror(-r));
        deploy_note("request %s deployed: %s/%s -> gen-%s", id, d->dir, DEPLOY_LIVE, id);
        deploy_test_kill_point("deploy-live-swapped");
        deploy_formats_prune(d, id, gfd);
        (void) deploy_prune(d->dfd, id, DEPLOY_KEEP_GENERATIONS);
        return 0;
}

/* Writes request id's key, certificate and chain into DIR/gen-<id>/ and points DIR/live at it.
 * Returns 0 when deployed (now or before), 1 when it cannot be (its key is gone). */
static int deploy_member(Deploy *d, const char *id) {
        CertbrokerError e = CERTBROKER_ERROR_NULL;
        _cleanup_free_ char *why = NULL, *cert = NULL, *chain = NULL;
        _cleanup_close_ int gfd = -1;
        char live[17] = "";
        bool created = false;
        int r;

        r = deploy_confirm_pending(d);
        if (r < 0)
                return r;
        r = deploy_live_read(d->dfd, live, &why);
        if (r < 0 && r != -ENOENT)
                return deploy_fatal(d, CLI_EXIT_FAILURE, "%s: %s", d->dir, why ?: strerror(-r));
        if (strcmp(live, id) == 0)
                return deploy_formats_refresh(d, id);

        r = certbroker_request_certificate(d->client, id, &cert, &chain, &e);
        if (r < 0)
                return deploy_call_failed(d, &e, r, "Cannot read the certificate");

        r = deploy_generation_open(d->dfd, d->uid, id, true, &gfd, &created, &why);
        if (r < 0)
                return deploy_fatal(d, CLI_EXIT_FAILURE, "%s: %s", d->dir, why ?: strerror(-r));
        r = deploy_generation_fill(d, id, gfd, cert, chain);
        if (r == 1 && created) {
                /* Nothing of it will ever be deployed: not left behind empty. */
                char name[64];

                close(TAKE_FD(gfd));
                snprintf(name, sizeof name, DEPLOY_GEN_PREFIX "%s", id);
                (void) unlinkat(d->dfd, name, AT_REMOVEDIR);
        }
        return r;
}

/* Waits up to timeout_msec (-1: no limit) for child pid to exit, without reaping it (so its
 * pid, and the process group named after it, stay ours). 1: exited; 0: still running. */
static int deploy_wait_exit(pid_t pid, int pidfd, int64_t timeout_msec) {
        uint64_t deadline = timeout_msec < 0 ? 0 : (monotonic_usec() / 1000U) + (uint64_t) timeout_msec;

        for (;;) {
                siginfo_t si = {};
                int64_t left = -1;

                if (waitid(P_PID, (id_t) pid, &si, WEXITED | WNOHANG | WNOWAIT) < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (si.si_pid == pid)
                        return 1;
                if (timeout_msec >= 0) {
                        uint64_t now = (monotonic_usec() / 1000U);
                        if (now >= deadline)
                                return 0;
                        left = (int64_t) (deadline - now);
                }
                if (pidfd >= 0) {
                        struct pollfd p = { .fd = pidfd, .events = POLLIN };
                        if (poll(&p, 1, left < 0 ? -1 : (int) (left > 60000 ? 60000 : left)) < 0 && errno != EINTR)
                                return -errno;
                } else {
                        /* No pidfd_open(2) (Linux < 5.3): look again every 20 ms. */
                        struct timespec ts = { 0, 20 * 1000000L };
                        (void) nanosleep(&ts, NULL);
                }
        }
}

/* Runs the reload command once, in its own process group; returns its wait status, or
 * -errno. With a timeout, a command still running then gets SIGTERM, and SIGKILL
 * DEPLOY_RELOAD_KILL_GRACE_MSEC later, sent to its whole process group (what it started
 * too); *ret_timed_out says so. */
static int deploy_run_reload(Deploy *d, const char *id, bool *ret_timed_out) {
        char path[PATH_MAX];
        pid_t pid;
        int status, pidfd = -1, r;

        *ret_timed_out = false;
        pid = fork();
        if (pid < 0)
                return -errno;
        if (pid == 0) {
                static const struct { const char *var, *file; } env[] = {
                        { "CERTBROKER_CERT", "cert.pem" },
                        { "CERTBROKER_KEY", "key.pem" },
                        { "CERTBROKER_CHAIN", "chain.pem" },
                        { "CERTBROKER_FULLCHAIN", "fullchain.pem" },
                };
                (void) setpgid(0, 0);
                for (size_t k = 0; k < sizeof env / sizeof env[0]; k++) {
                        snprintf(path, sizeof path, "%s/%s/%s", d->dir, DEPLOY_LIVE, env[k].file);
                        setenv(env[k].var, path, 1);
                }
                if (d->out.formats & DEPLOY_FORMAT_PKCS12) {
                        snprintf(path, sizeof path, "%s/%s/%s", d->dir, DEPLOY_LIVE, DEPLOY_PKCS12_FILE);
                        setenv("CERTBROKER_PKCS12", path, 1);
                }
                if (d->out.formats & DEPLOY_FORMAT_NSSDB) {
                        snprintf(path, sizeof path, "sql:%s", d->out.nssdb);
                        setenv("CERTBROKER_NSSDB", path, 1);
                }
                if (d->out.formats & (DEPLOY_FORMAT_PKCS12 | DEPLOY_FORMAT_NSSDB))
                        setenv("CERTBROKER_NICKNAME", d->out.nickname ?: DEPLOY_NICKNAME_DEFAULT, 1);
                setenv("CERTBROKER_REQUEST", id, 1);
                setenv("CERTBROKER_DIR", d->dir, 1);
                unsetenv("CERTBROKER_TEST_KILL_AT");
                execl("/bin/sh", "sh", "-c", d->reload, (char *) NULL);
                fprintf(stderr, "%s: deploy: cannot run /bin/sh: %s\n", program, strerror(errno));
                _exit(127);
        }
        /* Also here, so that the group exists before a timeout can name it. */
        (void) setpgid(pid, pid);
        if (d->reload_timeout_usec > 0) {
                uint64_t ms = (d->reload_timeout_usec + 999) / 1000;
                pidfd = (int) syscall(SYS_pidfd_open, pid, 0);
                r = deploy_wait_exit(pid, pidfd, ms > INT32_MAX ? INT32_MAX : (int64_t) ms);
                if (r == 0) {
                        *ret_timed_out = true;
                        (void) kill(-pid, SIGTERM);
                        r = deploy_wait_exit(pid, pidfd, DEPLOY_RELOAD_KILL_GRACE_MSEC);
                        /* The leader is not reaped yet: the group id cannot have been reused. */
                        (void) kill(-pid, SIGKILL);
                }
                if (pidfd >= 0)
                        close(pidfd);
                if (r < 0 && r != -ECHILD) {
                        (void) kill(-pid, SIGKILL);
                }
        }
        while (waitpid(pid, &status, 0) < 0)
                if (errno != EINTR)
                        return -errno;
        return status;
}

static void format_seconds(char *buf, size_t size, uint64_t usec) {
        if (usec % 1000000 == 0)
                snprintf(buf, size, "%llu s", (unsigned long long) (usec / 1000000));
        else
                snprintf(buf, size, "%.3g s", (double) usec / 1e6);
}

/* Runs the reload command for request id until it succeeds, with backoff; a newer certificate
 * arriving meanwhile ends the retries (it gets its own reload). */
static int deploy_reload(Deploy *d, const char *id) {
        CertbrokerError e = CERTBROKER_ERROR_NULL;
        unsigned backoff = 1;

        if (strcmp(d->state.reloaded, id) == 0)
                return 0;
        for (unsigned attempt = 1;; attempt++) {
                char how[128], limit[32];
                bool timed_out;
                int status, r;

                if (!d->reload)
                        break;
                fflush(stdout);
                fflush(stderr);
                status = deploy_run_reload(d, id, &timed_out);
                if (timed_out) {
                        format_seconds(limit, sizeof limit, d->reload_timeout_usec);
                        snprintf(how, sizeof how, "timed out: still running after the reload timeout of %s, "
                                 "killed with its process group", limit);
                } else
                if (status >= 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0) {
                        deploy_note("reload command for request %s succeeded%s", id, attempt > 1 ? " (after retries)" : "");
                        break;
                }
                if (timed_out)
                        ;
                else if (status < 0)
                        snprintf(how, sizeof how, "could not be started: %s", strerror(-status));
                else if (WIFEXITED(status))
                        snprintf(how, sizeof how, "failed with exit status %d", WEXITSTATUS(status));
                else
                        snprintf(how, sizeof how, "was killed by signal %d", WTERMSIG(status));
                fprintf(stderr, "%s: deploy: the reload command for request %s %s (attempt %u); retrying in "
                        "%u s.\n", program, id, how, attempt, backoff);
                r = certbroker_wait_successor(d->client, id, (uint64_t) backoff * 1000000ULL, NULL, &e);
                if (r < 0)
                        return deploy_call_failed(d, &e, r, "Cannot follow the chain");
                if (r == 1) {
                        deploy_note("a newer certificate than request %s's arrived: reloading for that one instead", id);
                        return 0;
                }
                backoff = backoff * 2 > DEPLOY_RELOAD_BACKOFF_MAX_SEC ? DEPLOY_RELOAD_BACKOFF_MAX_SEC : backoff * 2;
        }
        deploy_test_kill_point("deploy-reloaded");
        snprintf(d->state.reloaded, sizeof d->state.reloaded, "%s", id);
        return deploy_save_state(d);
}

/* One run from the recorded state: enroll (once per DIR), follow the chain to its latest
 * member, deploy each issued member and reload. 0: done (--once, or the chain was stopped). */
static int deploy_round(Deploy *d) {
        CertbrokerError e = CERTBROKER_ERROR_NULL;
        _cleanup_free_ char *latest = NULL;
        int r;

        if (!d->client) {
                r = certbroker_open(&d->client, &e);
                if (r < 0)
                        return deploy_call_failed(d, &e, r, "Cannot connect to the system bus");
        }
        if (!*d->state.request) {
                r = deploy_enroll(d);
                if (r < 0)
                        return r;
        }
        r = certbroker_chain_latest(d->client, d->state.request, &latest, &e);
        if (r < 0) {
                if (certbroker_error_has_name(&e, CERTBROKER_ERROR_NO_SUCH_REQUEST)) {
                        d->exit_code = cli_fail(arg->json, CLI_EXIT_NOT_FOUND, e.name, "deploy: request %s, recorded in %s/%s, "
                                            "is gone: %s Remove %s/%s to enroll a new chain.", d->state.request,
                                            d->dir, DEPLOY_STATE_FILE, e.message ?: "", d->dir, DEPLOY_STATE_FILE);
                        certbroker_error_clear(&e);
                        return -ECANCELED;
                }
                return deploy_call_failed(d, &e, r, "Cannot follow the chain");
        }
        if (strcmp(latest, d->state.request) != 0) {
                snprintf(d->state.request, sizeof d->state.request, "%s", latest);
                r = deploy_save_state(d);
                if (r < 0)
                        return r;
        }

        for (;;) {
                _cleanup_free_ char *state = NULL, *next = NULL;
                char id[17];

                snprintf(id, sizeof id, "%s", d->state.request);
                r = certbroker_wait(d->client, id, CERTBROKER_WAIT_INFINITY, NULL, NULL, &state, &e);
                if (r < 0)
                        return deploy_call_failed(d, &e, r, "Cannot wait for the request");
                if (strcmp(state, "issued") != 0) {
                        _cleanup_(certbroker_request_info_freep) CertbrokerRequestInfo *i = NULL;
                        if (certbroker_request_get(d->client, id, &i, &e) < 0)
                                certbroker_error_clear(&e);
                        d->exit_code = cli_fail(arg->json, CLI_EXIT_REQUEST_FAILED, i ? i->error_name : NULL,
                                            "deploy: request %s of the chain ended %s%s%s; the certificate "
                                            "deployed before stays. Remove %s/%s to enroll a new chain.", id,
                                            state, i && *i->error_message ? ": " : "", i ? i->error_message : "",
                                            d->dir, DEPLOY_STATE_FILE);
                        return -ECANCELED;
                }
                r = deploy_member(d, id);
                if (r < 0)
                        return r;
                if (r == 0) {
                        r = deploy_reload(d, id);
                        if (r < 0)
                                return r;
                }
                if (d->once)
                        return 0;
                r = certbroker_wait_successor(d->client, id, CERTBROKER_WAIT_INFINITY, &next, &e);
                if (r < 0)
                        return deploy_call_failed(d, &e, r, "Cannot follow the chain");
                if (r == CERTBROKER_CHAIN_ENDED) {
                        deploy_note("renewal of request %s was stopped: nothing more to deploy", id);
                        return 0;
                }
                deploy_note("request %s is renewed by request %s", id, next);
                snprintf(d->state.request, sizeof d->state.request, "%s", next);
                r = deploy_save_state(d);
                if (r < 0)
                        return r;
        }
}

/* deploy --config FILE: read it (owned by root or the caller, not writable by others) and,
 * as root, become its User= before anything else happens. A PassphraseCredential= is read
 * before (systemd makes the credentials readable by the unit's user: root). */
static int deploy_load_config(DeployConfig *cfg, char **ret_passphrase) {
        _cleanup_free_ char *why = NULL;
        _cleanup_close_ int fd = -1;
        char buf[16384];
        struct stat st;
        ssize_t n;
        int r;

        fd = open(arg->config, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return cli_fail(arg->json, CLI_EXIT_FAILURE, NULL, "deploy: cannot open --config '%s': %s", arg->config, strerror(errno));
        if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || (st.st_uid != 0 && st.st_uid != geteuid()) ||
            (st.st_mode & (S_IWGRP | S_IWOTH)))
                return cli_fail(arg->json, CLI_EXIT_FAILURE, NULL, "deploy: --config '%s' must be a regular file owned by root "
                            "(or you) and not writable by group or others.", arg->config);
        n = read(fd, buf, sizeof buf - 1);
        if (n < 0)
                return cli_fail(arg->json, CLI_EXIT_FAILURE, NULL, "deploy: cannot read '%s': %s", arg->config,
                                strerror(errno));
        close(TAKE_FD(fd));     /* not kept open across the switch to User= */
        buf[n] = 0;
        r = deploy_config_parse(buf, cfg, &why);
        if (r < 0)
                return cli_fail(arg->json, CLI_EXIT_USAGE, NULL, "deploy: %s: %s", arg->config, why ?: strerror(-r));
        if (cfg->user) {
                struct passwd *pw = getpwnam(cfg->user);
                if (!pw)
                        return cli_fail(arg->json, CLI_EXIT_USAGE, NULL, "deploy: %s: User=%s: no such user.", arg->config, cfg->user);
                if (cfg->passphrase_credential) {
                        r = deploy_passphrase_read_credential(cfg->passphrase_credential, pw->pw_uid,
                                                              ret_passphrase, &why);
                        if (r < 0)
                                return cli_fail(arg->json, CLI_EXIT_FAILURE, NULL, "deploy: %s: "
                                                "PassphraseCredential=: %s.", arg->config, why ?: strerror(-r));
                }
                if (geteuid() == 0 && pw->pw_uid != 0) {
                        if (initgroups(pw->pw_name, pw->pw_gid) < 0 || setresgid(pw->pw_gid, pw->pw_gid, pw->pw_gid) < 0 ||
                            setresuid(pw->pw_uid, pw->pw_uid, pw->pw_uid) < 0)
                                return cli_fail(arg->json, CLI_EXIT_FAILURE, NULL, "deploy: cannot become User=%s: %s", cfg->user,
                                            strerror(errno));
                        if (setuid(0) == 0)
                                return cli_fail(arg->json, CLI_EXIT_FAILURE, NULL, "deploy: could become root again after "
                                            "dropping to User=%s: refusing to go on.", cfg->user);
                } else if (pw->pw_uid != geteuid())
                        return cli_fail(arg->json, CLI_EXIT_FAILURE, NULL, "deploy: %s says User=%s, but this runs as uid %u (only "
                                    "root can switch users).", arg->config, cfg->user, (unsigned) geteuid());
        } else if (geteuid() == 0)
                return cli_fail(arg->json, CLI_EXIT_USAGE, NULL, "deploy: %s: User= is missing; the deployment runs as the "
                            "application's user, never as root.", arg->config);
        return 0;
}

/* What deploy_run() holds, released when it returns. */
static void deploy_done(Deploy *d) {
        if (d->dfd >= 0)
                (void) close(d->dfd);
        explicit_bzero(&d->state, sizeof d->state);    /* a receiver key, if one was in flight */
        deploy_passphrase_free(d->passphrase);
        certbroker_close(d->client);
}

int deploy_run(const CliArgs *args) {
        _cleanup_(deploy_config_done) DeployConfig cfg = {};
        _cleanup_(deploy_done) Deploy d = { .dfd = -1, .once = args->once };
        _cleanup_free_ char *why = NULL;
        unsigned backoff = 1;
        char live[17];
        int r;

        arg = args;

        if (arg->config) {
                r = deploy_load_config(&cfg, &d.passphrase);
                if (r != 0)
                        return r;
                d.out = (DeployOutputs) {
                        .passphrase_file = cfg.passphrase_file, .passphrase_credential = cfg.passphrase_credential,
                        .nssdb = cfg.nssdb, .nickname = cfg.nickname,
                };
                (void) deploy_outputs_check(cfg.format, &d.out, true, NULL);     /* checked when parsed */
                d.dir = cfg.dir;
                d.reload = cfg.reload;
                if (cfg.reload_timeout)
                        (void) deploy_parse_timeout(cfg.reload_timeout, &d.reload_timeout_usec);
                else
                        d.reload_timeout_usec = DEPLOY_RELOAD_TIMEOUT_DEFAULT_USEC;
                d.spec = (CertbrokerRequestSpec) {
                        .ca = cfg.ca, .subject = cfg.subject, .names = (const char *const *) cfg.dns,
                        .key_type = cfg.key_type, .usage = cfg.usage, .label = cfg.label,
                };
                d.identity_self = cfg.identity != NULL;
        } else {
                d.dir = arg->dir;
                d.reload = arg->reload;
                d.spec = cli_args_spec(arg);
                d.identity_self = arg->identity_self;
                d.reload_timeout_usec = DEPLOY_RELOAD_TIMEOUT_DEFAULT_USEC;
                d.out = (DeployOutputs) {
                        .passphrase_file = arg->passphrase_file, .passphrase_credential = arg->passphrase_credential,
                        .nssdb = arg->nssdb, .nickname = arg->nickname,
                };
                (void) deploy_outputs_check(arg->format, &d.out, false, NULL);    /* checked when parsed */
        }
        /* --reload-timeout wins over ReloadTimeout= */
        if (arg->reload_timeout)
                (void) deploy_parse_timeout(arg->reload_timeout, &d.reload_timeout_usec);
        d.uid = geteuid();
        umask(0077);

        r = deploy_dir_open(d.dir, d.uid, &d.dfd, &why);
        if (r < 0)
                return cli_fail(arg->json, CLI_EXIT_FAILURE, NULL, "deploy: refusing the directory: %s.",
                                why ?: strerror(-r));
        /* One deployment per directory: two would each make an intent token (two enrollments)
         * and overwrite each other's receiver key (a lost key). The lock lives as long as this
         * process (the directory fd is O_CLOEXEC: the reload command does not hold it). */
        if (flock(d.dfd, LOCK_EX | LOCK_NB) < 0) {
                if (errno == EWOULDBLOCK)
                        return cli_fail(arg->json, CLI_EXIT_FAILURE, NULL, "deploy: %s: another certbrokerctl "
                                        "deploy is running for this directory (it holds its lock); one deployment "
                                        "per directory.", d.dir);
                return cli_fail(arg->json, CLI_EXIT_FAILURE, NULL, "deploy: %s: cannot lock it: %s.", d.dir,
                                strerror(errno));
        }
        /* The formats' inputs, before anything is written: a passphrase others can read, an NSS
         * database others can change, are refused here. */
        if (d.out.passphrase_file)
                r = deploy_passphrase_read_file(d.out.passphrase_file, d.uid, &d.passphrase, &why);
        else if (d.out.passphrase_credential && !d.passphrase)
                r = deploy_passphrase_read_credential(d.out.passphrase_credential, d.uid, &d.passphrase, &why);
        else
                r = 0;
        if (r < 0)
                return cli_fail(arg->json, CLI_EXIT_FAILURE, NULL, "deploy: refusing the PKCS#12 passphrase: %s.",
                                why ?: strerror(-r));
        if (d.out.formats & DEPLOY_FORMAT_NSSDB) {
                r = deploy_nssdb_check(d.out.nssdb, d.uid, &why);
                if (r < 0)
                        return cli_fail(arg->json, CLI_EXIT_FAILURE, NULL, "deploy: refusing the NSS database: %s.",
                                        why ?: strerror(-r));
        }
        r = deploy_state_read(d.dfd, d.uid, &d.state, &why);
        if (r < 0)
                return cli_fail(arg->json, CLI_EXIT_FAILURE, NULL, "deploy: %s: %s.", d.dir, why ?: strerror(-r));
        r = deploy_live_read(d.dfd, live, &why);
        if (r < 0 && r != -ENOENT)
                return cli_fail(arg->json, CLI_EXIT_FAILURE, NULL, "deploy: %s: %s.", d.dir, why ?: strerror(-r));
        if (*d.state.request)
                deploy_note("following the chain of request %s recorded in %s/%s", d.state.request, d.dir,
                            DEPLOY_STATE_FILE);

        for (;;) {
                r = deploy_round(&d);
                if (r != -EAGAIN)
                        return r < 0 ? d.exit_code : CLI_EXIT_OK;
                sleep(backoff);
                backoff = backoff * 2 > DEPLOY_BUS_BACKOFF_MAX_SEC ? DEPLOY_BUS_BACKOFF_MAX_SEC : backoff * 2;
        }
}
