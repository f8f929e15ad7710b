/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* certbrokerctl trust (the CA certificates in the system trust store, root) and
 * certbrokerctl metrics (Prometheus text). Straight over the bus: CA.GetTrustAnchors(),
 * Manager.GetMetrics(). The broker runs unprivileged and authenticates the CA certificates;
 * writing the trust store and running its update command is root's, here. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <systemd/sd-bus.h>
#include <time.h>
#include <unistd.h>

#include "basic.h"
#include "certbroker-cleanup.h"
#include "cli-trust.h"
#include "cli-util.h"

#define BUS_NAME "org.certbroker.Broker1"
#define MANAGER_PATH "/org/certbroker/Broker1"
#define MANAGER_IFACE "org.certbroker.Broker1.Manager"
#define CA_PREFIX "/org/certbroker/Broker1/ca"
#define CA_IFACE "org.certbroker.Broker1.CA"
#define FILE_PREFIX "certbroker-"
#define FP_HEX 64

static const char *const program = CLI_PROGRAM;

DEFINE_POINTER_CLEANUP(DIR, closedir);
DEFINE_POINTER_CLEANUP(X509, X509_free);

typedef struct TrustArgs {
        const char *directory;
        const char *update;
        bool changed;                   /* files written or removed: run the update command */
        bool failed;
} TrustArgs;

static int say_error(int code, const char *format, ...) __attribute__((format(printf, 2, 3)));
static int say_error(int code, const char *format, ...) {
        va_list ap;

        fprintf(stderr, "%s: ", program);
        va_start(ap, format);
        vfprintf(stderr, format, ap);
        va_end(ap);
        fputc('\n', stderr);
        return code;
}

static int bus_code(const sd_bus_error *e, int r) {
        return cli_exit_code_from_error(e && e->name ? e->name : NULL, r);
}

static int connect_bus(sd_bus **ret) {
        int r = sd_bus_open_system(ret);
        if (r < 0)
                return say_error(CLI_EXIT_UNAVAILABLE, "Cannot connect to the system bus: %s", strerror(-r));
        return 0;
}

/* ---- metrics ---- */

static int verb_metrics(int argc, char *argv[]) {
        _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        const char *text;
        int r;

        if (argc > 2)
                return say_error(CLI_EXIT_USAGE, "'metrics' takes no arguments, got '%s'.", argv[2]);
        r = connect_bus(&bus);
        if (r != 0)
                return r;
        r = sd_bus_call_method(bus, BUS_NAME, MANAGER_PATH, MANAGER_IFACE, "GetMetrics", &e, &reply, "");
        if (r < 0)
                return say_error(bus_code(&e, r), "metrics: %s", e.message ?: strerror(-r));
        r = sd_bus_message_read(reply, "s", &text);
        if (r < 0)
                return say_error(CLI_EXIT_FAILURE, "metrics: GetMetrics() returned an unexpected reply: %s",
                                 strerror(-r));
        fputs(text, stdout);
        if (fflush(stdout) != 0)
                return say_error(CLI_EXIT_FAILURE, "Cannot write to standard output: %s", strerror(errno));
        return CLI_EXIT_OK;
}

/* ---- the store: DIR/certbroker-<CA>.<sha256 hex>.crt ---- */

typedef struct Installed {
        char *path;                     /* NULL: the end of a list */
        char fp[FP_HEX + 1];
        time_t not_after;               /* 0: unreadable */
        char subject[256];
} Installed;

/* Frees a list ended by an entry without a path. */
static Installed *installed_free(Installed *a) {
        for (size_t i = 0; a && a[i].path; i++)
                free(a[i].path);
        free(a);
        return NULL;
}
DEFINE_POINTER_CLEANUP(Installed, installed_free);

/* The CA of a file name of ours (NULL: not ours); *fp its fingerprint. */
static char *parse_name(const char *name, char fp[FP_HEX + 1]) {
        size_t n = strlen(name), pre = strlen(FILE_PREFIX);
        const char *dot;

        if (n < pre + 1 + 1 + FP_HEX + 4 || strncmp(name, FILE_PREFIX, pre) != 0 || strcmp(name + n - 4, ".crt") != 0)
                return NULL;
        dot = name + n - 4 - FP_HEX - 1;
        if (*dot != '.')
                return NULL;
        for (size_t i = 0; i < FP_HEX; i++)
                if (!strchr("0123456789abcdef", dot[1 + i]))
                        return NULL;
        memcpy(fp, dot + 1, FP_HEX);
        fp[FP_HEX] = 0;
        return strndup(name + pre, (size_t) (dot - name - pre));
}

static void read_cert_info(Installed *x) {
        _cleanup_fclose_ FILE *f = fopen(x->path, "re");
        _cleanup_(X509_freep) X509 *c = f ? PEM_read_X509(f, NULL, NULL, NULL) : NULL;
        struct tm tm;

        if (!c)
                return;
        if (ASN1_TIME_to_tm(X509_get0_notAfter(c), &tm) == 1)
                x->not_after = timegm(&tm);
        X509_NAME_oneline(X509_get_subject_name(c), x->subject, sizeof x->subject);
}

/* Our files in the store for ca (NULL: every CA; *ret_cas then says whose, a NULL-terminated
 * list in the same order). *ret ends with an entry without a path. */
static int list_installed(const TrustArgs *t, const char *ca, Installed **ret, char ***ret_cas, size_t *ret_n) {
        _cleanup_(installed_freep) Installed *a = calloc(1, sizeof(Installed));
        _cleanup_(certbroker_strv_freep) char **cas = calloc(1, sizeof(char *));
        _cleanup_(closedirp) DIR *d = NULL;
        size_t n = 0;
        struct dirent *de;

        if (!a || !cas)
                return say_error(CLI_EXIT_FAILURE, "Out of memory.");
        d = opendir(t->directory);
        if (!d && errno != ENOENT)
                return say_error(CLI_EXIT_FAILURE, "trust: cannot read %s: %s", t->directory, strerror(errno));
        /* No store: nothing of ours in it (writing there fails, naming it). */
        while (d && (de = readdir(d))) {
                _cleanup_free_ char *name = NULL;
                char fp[FP_HEX + 1];
                Installed *na;
                char **nc;

                name = parse_name(de->d_name, fp);
                if (!name || (ca && strcmp(name, ca) != 0))
                        continue;
                na = realloc(a, (n + 2) * sizeof(Installed));
                if (na)
                        a = na;
                nc = realloc(cas, (n + 2) * sizeof(char *));
                if (nc)
                        cas = nc;
                if (!na || !nc)
                        return say_error(CLI_EXIT_FAILURE, "Out of memory.");
                a[n + 1] = (Installed) {};
                cas[n + 1] = NULL;
                a[n] = (Installed) {};
                if (asprintf(&a[n].path, "%s/%s", t->directory, de->d_name) < 0) {
                        a[n].path = NULL;
                        return say_error(CLI_EXIT_FAILURE, "Out of memory.");
                }
                memcpy(a[n].fp, fp, sizeof fp);
                read_cert_info(&a[n]);
                cas[n++] = TAKE_PTR(name);
        }
        *ret = TAKE_PTR(a);
        *ret_n = n;
        if (ret_cas)
                *ret_cas = TAKE_PTR(cas);
        return 0;
}

/* Atomically: a temporary name the update command ignores, then the final one. */
static int write_anchor(TrustArgs *t, const char *ca, const char *fp, const char *pem) {
        _cleanup_free_ char *path = NULL, *tmp = NULL;
        _cleanup_close_ int fd = -1;
        size_t n = strlen(pem);

        if (asprintf(&path, "%s/" FILE_PREFIX "%s.%s.crt", t->directory, ca, fp) < 0) {
                path = NULL;
                return say_error(CLI_EXIT_FAILURE, "Out of memory.");
        }
        if (asprintf(&tmp, "%s/.%s%s.tmp", t->directory, FILE_PREFIX, ca) < 0) {
                tmp = NULL;
                return say_error(CLI_EXIT_FAILURE, "Out of memory.");
        }
        (void) unlink(tmp);
        fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
        if (fd < 0 || write(fd, pem, n) != (ssize_t) n || fchmod(fd, 0644) < 0 || fsync(fd) < 0 ||
            rename(tmp, path) < 0) {
                int r = say_error(CLI_EXIT_FAILURE, "trust: cannot write %s: %s", path, strerror(errno));
                (void) unlink(tmp);
                return r;
        }
        printf("CA %s: installed %s (sha256:%s)\n", ca, path, fp);
        t->changed = true;
        return 0;
}

static int remove_anchor(TrustArgs *t, const char *ca, const Installed *x, const char *why) {
        if (unlink(x->path) < 0 && errno != ENOENT)
                return say_error(CLI_EXIT_FAILURE, "trust: cannot remove %s: %s", x->path, strerror(errno));
        printf("CA %s: removed %s (%s)\n", ca, x->path, why);
        t->changed = true;
        return 0;
}

/* The directory holds what every program on the host trusts: root's, and no one else's. */
static int check_directory(const TrustArgs *t) {
        struct stat st;

        if (lstat(t->directory, &st) < 0 && errno == ENOENT)
                return 0;       /* nothing there to trust; an install fails naming it */
        if (lstat(t->directory, &st) < 0)
                return say_error(CLI_EXIT_FAILURE, "trust: %s: %s", t->directory, strerror(errno));
        if (!S_ISDIR(st.st_mode) || st.st_uid != 0 || (st.st_mode & (S_IWGRP | S_IWOTH)))
                return say_error(CLI_EXIT_FAILURE, "trust: %s is not a directory owned by root and writable only by "
                                 "root (uid %u, mode %04o%s): refusing to put trust anchors there", t->directory,
                                 (unsigned) st.st_uid, (unsigned) (st.st_mode & 07777),
                                 S_ISLNK(st.st_mode) ? ", a symbolic link" : "");
        return 0;
}

static int run_update(TrustArgs *t) {
        pid_t pid;
        int status;

        if (!t->changed)
                return 0;
        fflush(stdout);
        pid = fork();
        if (pid < 0)
                return say_error(CLI_EXIT_FAILURE, "trust: cannot run %s: %s", t->update, strerror(errno));
        if (pid == 0) {
                (void) dup2(STDERR_FILENO, STDOUT_FILENO);
                execl(t->update, t->update, (char *) NULL);
                fprintf(stderr, "%s: trust: cannot run %s: %s\n", program, t->update, strerror(errno));
                _exit(127);
        }
        while (waitpid(pid, &status, 0) < 0)
                if (errno != EINTR)
                        return say_error(CLI_EXIT_FAILURE, "trust: waiting for %s: %s", t->update, strerror(errno));
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
                return say_error(CLI_EXIT_FAILURE, "trust: %s failed (status %d): the trust store may not show the "
                                 "change yet; run it again", t->update, WIFEXITED(status) ? WEXITSTATUS(status) : -1);
        t->changed = false;
        return 0;
}

/* The broker's answer for ca: anchors (fingerprint without "sha256:", authenticated, PEM). */
typedef struct Anchor {
        char fp[FP_HEX + 1];
        int authenticated;
        char *pem;                      /* NULL: the end of a list */
} Anchor;

static Anchor *anchors_free(Anchor *a) {
        for (size_t i = 0; a && a[i].pem; i++)
                free(a[i].pem);
        free(a);
        return NULL;
}
DEFINE_POINTER_CLEANUP(Anchor, anchors_free);

/* The anchors of a GetTrustAnchors() reply, ended by an entry without PEM. */
static int read_anchors(sd_bus_message *reply, Anchor **ret, size_t *ret_n) {
        _cleanup_(anchors_freep) Anchor *a = calloc(1, sizeof(Anchor));
        size_t n = 0;
        int r;

        if (!a)
                return -ENOMEM;
        r = sd_bus_message_enter_container(reply, 'a', "(sbs)");
        if (r < 0)
                return r;
        for (;;) {
                const char *fp, *pem;
                Anchor *na;
                int auth;

                r = sd_bus_message_read(reply, "(sbs)", &fp, &auth, &pem);
                if (r < 0)
                        return r;
                if (r == 0)
                        break;
                if (strncmp(fp, "sha256:", 7) != 0 || strlen(fp + 7) != FP_HEX)
                        return -EBADMSG;
                na = realloc(a, (n + 2) * sizeof(Anchor));
                if (!na)
                        return -ENOMEM;
                a = na;
                a[n + 1] = (Anchor) {};
                a[n] = (Anchor) { .authenticated = auth, .pem = strdup(pem) };
                memcpy(a[n].fp, fp + 7, FP_HEX + 1);
                if (!a[n++].pem)
                        return -ENOMEM;
        }
        r = sd_bus_message_exit_container(reply);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(a);
        *ret_n = n;
        return 0;
}

static int get_anchors(sd_bus *bus, const char *ca, Anchor **ret, size_t *ret_n, char **ret_note) {
        _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *call = NULL, *reply = NULL;
        _cleanup_(anchors_freep) Anchor *a = NULL;
        _cleanup_free_ char *path = NULL;
        const char *note;
        size_t n = 0;
        int r;

        r = sd_bus_path_encode(CA_PREFIX, ca, &path);
        if (r < 0)
                return say_error(CLI_EXIT_FAILURE, "Out of memory.");
        r = sd_bus_message_new_method_call(bus, &call, BUS_NAME, path, CA_IFACE, "GetTrustAnchors");
        if (r < 0)
                return say_error(CLI_EXIT_FAILURE, "trust: CA %s: cannot build the GetTrustAnchors() call: %s", ca,
                                 strerror(-r));
        /* GetCACert may wait for the CA's timeout. */
        r = sd_bus_call(bus, call, 300ULL * 1000000ULL, &e, &reply);
        if (r < 0)
                return say_error(bus_code(&e, r), "trust: CA %s: %s", ca, e.message ?: strerror(-r));
        r = read_anchors(reply, &a, &n);
        if (r < 0)
                return say_error(CLI_EXIT_FAILURE, "trust: CA %s: cannot read the broker's answer: %s", ca,
                                 strerror(-r));
        r = sd_bus_message_read(reply, "s", &note);
        if (r < 0)
                return say_error(CLI_EXIT_FAILURE, "trust: CA %s: cannot read the broker's answer: %s", ca,
                                 strerror(-r));
        *ret_note = strdup(note);
        if (!*ret_note)
                return say_error(CLI_EXIT_FAILURE, "Out of memory.");
        *ret = TAKE_PTR(a);
        *ret_n = n;
        return 0;
}

/* quiet_unknown: a CA that is not configured is CLI_EXIT_NOT_FOUND without a message. */
static int get_install_trust(sd_bus *bus, const char *ca, bool quiet_unknown, int *ret) {
        _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
        _cleanup_free_ char *path = NULL;
        int r;

        r = sd_bus_path_encode(CA_PREFIX, ca, &path);
        if (r < 0)
                return say_error(bus_code(&e, r), "trust: CA %s: %s", ca, strerror(-r));
        r = sd_bus_get_property_trivial(bus, BUS_NAME, path, CA_IFACE, "InstallTrust", &e, 'b', ret);
        if (r < 0 && quiet_unknown && bus_code(&e, r) == CLI_EXIT_NOT_FOUND)
                return CLI_EXIT_NOT_FOUND;
        if (r < 0)
                return say_error(bus_code(&e, r), "trust: CA %s: %s", ca, e.message ?: strerror(-r));
        return r;
}

/* Brings ca's files in line with what the broker serves: authenticated certificates in (new ones
 * only when install), those no longer served out once expired. */
static int sync_ca(TrustArgs *t, sd_bus *bus, const char *ca, bool install) {
        _cleanup_(installed_freep) Installed *have = NULL;
        _cleanup_(anchors_freep) Anchor *a = NULL;
        _cleanup_free_ char *note = NULL;
        size_t n_have = 0, n = 0;
        int r, ret = 0;

        r = list_installed(t, ca, &have, NULL, &n_have);
        if (r != 0)
                return r;
        if (!install && n_have == 0)
                return 0;
        r = get_anchors(bus, ca, &a, &n, &note);
        if (r != 0)
                return r;       /* nothing known about what the CA serves now: its anchors stay */
        for (size_t i = 0; i < n; i++) {
                bool present = false;
                for (size_t j = 0; j < n_have; j++)
                        if (strcmp(have[j].fp, a[i].fp) == 0)
                                present = true;
                if (present)
                        continue;
                if (!a[i].authenticated) {
                        ret = say_error(CLI_EXIT_FAILURE, "trust: refusing the certificate sha256:%s: %s", a[i].fp,
                                        *note ? note : "it is not authenticated");
                        continue;
                }
                r = write_anchor(t, ca, a[i].fp, a[i].pem);
                if (r != 0)
                        ret = r;
        }
        time_t now = time(NULL);
        for (size_t j = 0; j < n_have; j++) {
                bool served = false;
                for (size_t i = 0; i < n; i++)
                        if (strcmp(have[j].fp, a[i].fp) == 0)
                                served = true;
                if (served)
                        continue;
                if (have[j].not_after > 0 && have[j].not_after > now) {
                        char when[64];
                        struct tm tm;
                        strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S UTC", gmtime_r(&have[j].not_after, &tm));
                        printf("CA %s: %s is no longer served by the CA; it stays until it expires (%s)\n", ca,
                               have[j].path, when);
                        continue;
                }
                r = remove_anchor(t, ca, &have[j], "no longer served by the CA, expired");
                if (r != 0)
                        ret = r;
        }
        return ret;
}

static int remove_ca(TrustArgs *t, const char *ca, const char *why) {
        _cleanup_(installed_freep) Installed *have = NULL;
        size_t n = 0;
        int r, ret = 0;

        r = list_installed(t, ca, &have, NULL, &n);
        if (r != 0)
                return r;
        for (size_t i = 0; i < n; i++)
                if ((r = remove_anchor(t, ca, &have[i], why)) != 0)
                        ret = r;
        return ret;
}

/* The configured CAs' names, NULL-terminated. */
static int list_cas(sd_bus *bus, char ***ret) {
        _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_(certbroker_strv_freep) char **names = calloc(1, sizeof(char *));
        size_t n = 0;
        int r;

        if (!names)
                return say_error(CLI_EXIT_FAILURE, "Out of memory.");
        r = sd_bus_call_method(bus, BUS_NAME, MANAGER_PATH, MANAGER_IFACE, "ListCAs", &e, &reply, "");
        if (r < 0)
                return say_error(bus_code(&e, r), "trust: cannot list the CAs: %s", e.message ?: strerror(-r));
        r = sd_bus_message_enter_container(reply, 'a', "(so)");
        while (r >= 0) {
                const char *name, *path;
                char **nn;

                r = sd_bus_message_read(reply, "(so)", &name, &path);
                if (r <= 0)
                        break;
                nn = realloc(names, (n + 2) * sizeof(char *));
                if (!nn)
                        return say_error(CLI_EXIT_FAILURE, "Out of memory.");
                names = nn;
                names[n + 1] = NULL;
                names[n] = strdup(name);
                if (!names[n++])
                        return say_error(CLI_EXIT_FAILURE, "Out of memory.");
        }
        if (r < 0)
                return say_error(CLI_EXIT_FAILURE, "trust: cannot list the CAs: ListCAs() returned an unexpected "
                                 "reply: %s", strerror(-r));
        *ret = TAKE_PTR(names);
        return 0;
}

static bool strv_has(char **v, const char *s) {
        for (size_t i = 0; v && v[i]; i++)
                if (strcmp(v[i], s) == 0)
                        return true;
        return false;
}

/* Every CA: those with InstallTrust=yes or anchors installed kept current; the anchors of CAs
 * no longer configured removed. */
static int trust_sync(TrustArgs *t, sd_bus *bus) {
        _cleanup_(certbroker_strv_freep) char **cas = NULL, **owners = NULL;
        _cleanup_(installed_freep) Installed *have = NULL;
        size_t n_have = 0;
        int r, ret = 0;

        r = list_cas(bus, &cas);
        if (r != 0)
                return r;
        r = list_installed(t, NULL, &have, &owners, &n_have);
        if (r != 0)
                return r;
        for (size_t i = 0; i < n_have; i++)
                if (!strv_has(cas, owners[i]) &&
                    (r = remove_anchor(t, owners[i], &have[i], "the CA is no longer configured")) != 0)
                        ret = r;
        for (size_t i = 0; cas[i]; i++) {
                int install = 0;
                r = get_install_trust(bus, cas[i], false, &install);
                if (r == 0)
                        r = sync_ca(t, bus, cas[i], install);
                if (r != 0)
                        ret = r;
        }
        return ret;
}

/* The broker's stamp (what it last reported of its CAs' certificates), or NULL when absent. */
static char *read_stamp(const char *path) {
        _cleanup_fclose_ FILE *f = path ? fopen(path, "re") : NULL;
        _cleanup_free_ char *text = NULL;
        size_t size = 0;

        if (!f)
                return NULL;
        if (getdelim(&text, &size, '\0', f) < 0)
                return NULL;
        return TAKE_PTR(text);
}

/* trust sync, then the store's update command; again while the broker's stamp changed
 * meanwhile (certbroker-trust.path starts this unit when the stamp changes, and a change made
 * while it runs starts nothing), at most TRUST_SYNC_ROUNDS times. */
#define TRUST_SYNC_ROUNDS 5
static int trust_sync_until_settled(TrustArgs *t, sd_bus *bus, const char *stamp) {
        for (unsigned round = 1;; round++) {
                _cleanup_free_ char *before = read_stamp(stamp);
                int r = trust_sync(t, bus);
                int q = run_update(t);
                _cleanup_free_ char *after = read_stamp(stamp);
                bool changed = stamp && !((!before && !after) || (before && after && strcmp(before, after) == 0));

                if (r == 0)
                        r = q;
                if (r != 0 || !changed)
                        return r;
                if (round >= TRUST_SYNC_ROUNDS)
                        return say_error(CLI_EXIT_FAILURE, "trust sync: %s kept changing during %u syncs; the next "
                                         "change (or the daily timer) syncs again.", stamp, round);
                printf("trust sync: the broker's CA certificates changed during the sync (%s): syncing again.\n",
                       stamp);
        }
}

static int trust_status(TrustArgs *t, sd_bus *bus, const char *ca) {
        _cleanup_(installed_freep) Installed *have = NULL;
        _cleanup_(certbroker_strv_freep) char **owners = NULL;
        size_t n = 0;
        int r, install = 0;

        if (ca) {
                r = get_install_trust(bus, ca, false, &install);
                if (r != 0)
                        return r;
                printf("CA %s: InstallTrust=%s\n", ca, install ? "yes" : "no");
        }
        r = list_installed(t, ca, &have, &owners, &n);
        if (r != 0)
                return r;
        for (size_t i = 0; i < n; i++) {
                char when[64] = "?";
                struct tm tm;
                if (have[i].not_after > 0)
                        strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S UTC", gmtime_r(&have[i].not_after, &tm));
                printf("CA %s: installed sha256:%s %s expires %s (%s)\n", owners[i], have[i].fp, have[i].subject,
                       when, have[i].path);
        }
        if (n == 0)
                printf("%s%s: no trust anchors installed in %s\n", ca ? "CA " : "", ca ?: "certbroker", t->directory);
        return 0;
}

static int verb_trust(int argc, char *argv[]) {
        static const struct option options[] = {
                { "directory",      required_argument, NULL, 'd' },
                { "update-command", required_argument, NULL, 'u' },
                { "stamp",          required_argument, NULL, 's' },
                { "help",           no_argument,       NULL, 'h' },
                {}
        };
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        TrustArgs t = {};
        const char *verb, *ca, *stamp = NULL;
        int c, r;

        optind = 2;
        while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0)
                switch (c) {
                case 'd':
                        t.directory = optarg;
                        break;
                case 'u':
                        t.update = optarg;
                        break;
                case 's':
                        stamp = optarg;
                        break;
                case 'h':
                        printf("%s trust install|remove|status|sync [CA] [--directory DIR] [--update-command PATH]\n"
                               "         [--stamp FILE]   (sync: again while FILE changed during the sync)\n",
                               program);
                        return CLI_EXIT_OK;
                default:
                        return CLI_EXIT_USAGE;
                }
        if (optind >= argc)
                return say_error(CLI_EXIT_USAGE, "'trust' needs install, remove, status or sync.");
        verb = argv[optind];
        ca = optind + 1 < argc ? argv[optind + 1] : NULL;
        bool needs_ca = strcmp(verb, "install") == 0 || strcmp(verb, "remove") == 0;
        if (!needs_ca && strcmp(verb, "status") != 0 && strcmp(verb, "sync") != 0)
                return say_error(CLI_EXIT_USAGE, "'trust %s': use install, remove, status or sync.", verb);
        if (needs_ca && !ca)
                return say_error(CLI_EXIT_USAGE, "'trust %s' needs a CA name.", verb);
        if ((strcmp(verb, "sync") == 0 && ca) || optind + 2 < argc)
                return say_error(CLI_EXIT_USAGE, "'trust %s': too many arguments.", verb);
        if (stamp && (strcmp(verb, "sync") != 0 || stamp[0] != '/'))
                return say_error(CLI_EXIT_USAGE, "--stamp takes an absolute path, and only with 'trust sync'.");
        if (ca && (strchr(ca, '/') || strchr(ca, '.') || !*ca))
                return say_error(CLI_EXIT_USAGE, "'%s' is not a CA name.", ca);
        if (geteuid() != 0)
                return say_error(CLI_EXIT_DENIED, "trust: only root changes or reads the system trust store's "
                                 "certbroker anchors.");
        /* Debian's store, unless told otherwise (Fedora: --directory /etc/pki/ca-trust/source/anchors
         * --update-command /usr/bin/update-ca-trust). */
        if (!t.directory)
                t.directory = "/usr/local/share/ca-certificates";
        if (!t.update)
                t.update = "/usr/sbin/update-ca-certificates";
        if (t.update[0] != '/' || t.directory[0] != '/')
                return say_error(CLI_EXIT_USAGE, "--directory and --update-command take absolute paths.");
        r = check_directory(&t);
        if (r != 0)
                return r;
        r = connect_bus(&bus);
        if (r != 0)
                return r;

        if (strcmp(verb, "status") == 0)
                r = trust_status(&t, bus, ca);
        else if (strcmp(verb, "sync") == 0)
                return trust_sync_until_settled(&t, bus, stamp);
        else if (strcmp(verb, "install") == 0)
                r = sync_ca(&t, bus, ca, true);
        else {
                int install = 0;
                r = get_install_trust(bus, ca, true, &install);
                if (r == 0 && install)
                        r = say_error(CLI_EXIT_FAILURE, "trust: CA %s has InstallTrust=yes: its anchors come back with "
                                      "the next sync; set InstallTrust=no in its file in ca.d/, reload, then remove.", ca);
                else if (r == CLI_EXIT_NOT_FOUND)
                        r = 0;  /* no longer configured: its anchors go all the same */
                if (r == 0)
                        r = remove_ca(&t, ca, "removed by certbrokerctl trust remove");
        }
        int q = run_update(&t);
        return r != 0 ? r : q;
}

/* The command: the first argument after the global options that take no value (an option
 * with a value, e.g. "--ca trust", is the other commands' business). */
static int command_index(int argc, char *argv[]) {
        for (int i = 1; i < argc; i++)
                if (strcmp(argv[i], "--json") != 0 && strcmp(argv[i], "-q") != 0 && strcmp(argv[i], "--quiet") != 0)
                        return i;
        return -1;
}

int cli_extra_main(int argc, char *argv[]) {
        int i = command_index(argc, argv);

        if (i != 1)
                return say_error(CLI_EXIT_USAGE, "'%s' does not take %s (its output is text).", argv[i], argv[1]);
        if (strcmp(argv[1], "metrics") == 0)
                return verb_metrics(argc, argv);
        return verb_trust(argc, argv);
}

bool cli_extra_handles(int argc, char *argv[]) {
        int i = command_index(argc, argv);

        return i > 0 && (strcmp(argv[i], "metrics") == 0 || strcmp(argv[i], "trust") == 0);
}
