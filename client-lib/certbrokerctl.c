/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* certbrokerctl: certificates from certbrokerd on the command line (certbrokerctl(1)). */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "certbroker.h"
#include "cli-trust.h"
#include "cli-util.h"
#include "deploy-files.h"
#include "deploy-formats.h"
#include "config.h"

static CliArgs arg;
static const char *program = "certbrokerctl";

static void help(void) {
        printf("Usage: %s [OPTIONS] COMMAND [ARGS]\n"
               "\n"
               "Get certificates from certbrokerd (the NDES certificate broker).\n"
               "\n"
               "Commands:\n"
               "  enroll --dns NAME [--dns NAME...] [--ca CA] [--subject DN] [--key-type TYPE]\n"
               "         [--usage USAGE] [--label TEXT] [--key-out FILE] [--cert-out FILE]\n"
               "         [--chain-out FILE] [--force] [--timeout SECS | --no-wait]\n"
               "  enroll --identity self [--ca CA] [--key-type TYPE] [--key-out FILE] ...\n"
               "                         request a certificate, wait for it, write the files\n"
               "  status ID              show a request\n"
               "  wait ID [--timeout SECS]  wait until a request has ended\n"
               "  fetch ID [--key-out FILE] [--cert-out FILE] [--chain-out FILE] [--force]\n"
               "                         write an issued request's key (once), certificate, chain\n"
               "  list                   list your requests (root: all requests)\n"
               "  cancel ID              cancel a request in progress\n"
               "  remove ID              forget an ended request and erase its key\n"
               "  cas                    list the configured CAs\n"
               "  trust install|remove CA, trust status [CA], trust sync\n"
               "         [--directory DIR] [--update-command PATH]\n"
               "                         root: the CAs' certificates in the system trust store\n"
               "  metrics                Prometheus text (root: every request; else your own)\n"
               "  check CA [--challenge] run the CA's diagnostic steps\n"
               "  access --dns NAME... [--ca CA] [--subject DN] [--key-type TYPE] [--usage USAGE]\n"
               "                         would policy allow this request? (no network)\n"
               "  deploy --dir DIR --dns NAME... [--reload CMD] [--reload-timeout SECS] [--once]\n"
               "         [--ca CA] [--subject DN] [--key-type TYPE] [--usage USAGE] [--label TEXT]\n"
               "         [--format pem,pkcs12,nssdb] [--passphrase-file FILE | --passphrase-credential NAME]\n"
               "         [--nssdb DIR] [--nickname NAME]\n"
               "  deploy --dir DIR --identity self [--reload CMD] [--ca CA] [--key-type TYPE] ...\n"
               "  deploy --config=FILE [--reload-timeout SECS] [--once]\n"
               "                         keep a renewed certificate deployed in DIR/live and run\n"
               "                         CMD after each one (timeout default 60 s, 0: none); also\n"
               "                         as DIR/live/bundle.p12 (pkcs12) or in an NSS database (nssdb)\n"
               "\n"
               "Options:\n"
               "  --json                 machine-readable output on stdout (also for errors)\n"
               "  -q --quiet             no progress messages\n"
               "  -h --help              show this help\n"
               "     --version           show the version\n"
               "\n"
               "--key-out is created with mode 0600 and never overwritten: --force replaces\n"
               "existing files through a temporary file and rename(2). Key types: rsa:2048\n"
               "rsa:3072 rsa:4096 ec:p256 ec:p384. Usages: signature encryption both.\n"
               "\n"
               "Exit status:\n"
               "  0  success\n"
               "  1  failure (I/O, existing output file, daemon error)\n"
               "  2  usage error (bad command line, or the daemon's InvalidArgument)\n"
               "  3  denied by policy ('access': the request would be denied)\n"
               "  4  the CA rejected the request ('check': a step failed)\n"
               "  5  --timeout passed before the request ended\n"
               "  6  the request failed or was cancelled\n"
               "  7  no system bus, or certbrokerd is not running\n"
               "  8  no such request or CA\n"
               "\n"
               "See certbrokerctl(1).\n", program);
}

/* ---- errors ---- */

/* Prints a failure (stderr, and with --json an error object on stdout) and returns the
 * exit code. */
static int fail(int code, const char *name, const char *format, ...) __attribute__((format(printf, 3, 4)));
static int fail(int code, const char *name, const char *format, ...) {
        va_list ap;
        char *msg = NULL;

        va_start(ap, format);
        if (vasprintf(&msg, format, ap) < 0)
                msg = NULL;
        va_end(ap);
        fprintf(stderr, "%s: %s", program, msg ?: "out of memory");
        if (name)
                fprintf(stderr, " [%s]", name);
        fputc('\n', stderr);
        if (arg.json) {
                CliJson j;
                cli_json_init(&j, stdout);
                cli_json_begin(&j, '{');
                cli_json_key(&j, "error");
                cli_json_begin(&j, '{');
                cli_json_field_str(&j, "name", name ?: "");
                cli_json_field_str(&j, "message", msg ?: "out of memory");
                cli_json_field_int(&j, "exit_code", code);
                cli_json_end(&j, '}');
                cli_json_end(&j, '}');
        }
        free(msg);
        return code;
}

static int fail_call(CertbrokerError *e, int r, const char *what) {
        int code = cli_exit_code_from_error(e->name, r);
        code = fail(code, e->name, "%s: %s", what, e->message ?: strerror(-r));
        certbroker_error_clear(e);
        return code;
}

/* ---- output files ---- */

typedef struct OutputFile {
        const char *path;       /* what the user asked for */
        const char *option;     /* "--key-out", ... */
        char *temp;             /* with --force: the temporary file renamed over path */
        mode_t mode;
        int fd;
} OutputFile;

/* Before enrolling: fail early when an output would be refused later. */
static int output_precheck(const char *path, const char *option) {
        struct stat st;
        char *copy, *dir;
        int r = 0;

        if (!path)
                return 0;
        if (lstat(path, &st) == 0) {
                if (S_ISDIR(st.st_mode))
                        return fail(CLI_EXIT_FAILURE, NULL, "%s '%s' is a directory: give a file name.",
                                    option, path);
                if (!arg.force)
                        return fail(CLI_EXIT_FAILURE, NULL, "Refusing to overwrite the existing file '%s' (%s); "
                                    "remove it or use --force to replace it.", path, option);
        }
        copy = strdup(path);
        if (!copy)
                return fail(CLI_EXIT_FAILURE, NULL, "Out of memory.");
        dir = dirname(copy);
        if (access(dir, W_OK) < 0)
                r = fail(CLI_EXIT_FAILURE, NULL, "Cannot create %s '%s': directory '%s': %s.",
                         option, path, dir, strerror(errno));
        free(copy);
        return r;
}

/* A new file "DIR/.BASE.XXXXXX" next to path, created 0600 and exclusively (mkostemp). Returns
 * its fd and its name, or -errno. */
static int temp_file_next_to(const char *path, char **ret_name) {
        char *copy = strdup(path), *base, *name = NULL;
        int fd;

        if (!copy)
                return -ENOMEM;
        base = strdup(basename(copy));
        if (!base || asprintf(&name, "%s/.%s.XXXXXX", dirname(copy), base) < 0)
                name = NULL;
        free(base);
        free(copy);
        if (!name)
                return -ENOMEM;
        fd = mkostemp(name, O_CLOEXEC);
        if (fd < 0) {
                fd = -errno;
                free(name);
                return fd;
        }
        *ret_name = name;
        return fd;
}

static int output_open(OutputFile *o, const char *path, const char *option, mode_t mode) {
        *o = (OutputFile) { .path = path, .option = option, .mode = mode, .fd = -1 };
        if (!path)
                return 0;
        if (!arg.force) {
                o->fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
                if (o->fd < 0) {
                        if (errno == EEXIST)
                                return fail(CLI_EXIT_FAILURE, NULL, "Refusing to overwrite the existing file "
                                            "'%s' (%s); remove it or use --force to replace it.", path, option);
                        return fail(CLI_EXIT_FAILURE, NULL, "Cannot create %s '%s': %s.", option, path,
                                    strerror(errno));
                }
        } else {
                o->fd = temp_file_next_to(path, &o->temp);
                if (o->fd == -ENOMEM)
                        return fail(CLI_EXIT_FAILURE, NULL, "Out of memory.");
                if (o->fd < 0)
                        return fail(CLI_EXIT_FAILURE, NULL, "Cannot create a temporary file next to %s '%s': %s.",
                                    option, path, strerror(-o->fd));
        }
        /* The umask may have taken bits away; never more than asked for. */
        if (fchmod(o->fd, mode) < 0)
                return fail(CLI_EXIT_FAILURE, NULL, "Cannot set the mode of %s '%s': %s.", option, path,
                            strerror(errno));
        return 0;
}

static int output_write(OutputFile *o, const char *data) {
        size_t n = strlen(data), done = 0;

        if (o->fd < 0)
                return 0;
        while (done < n) {
                ssize_t k = write(o->fd, data + done, n - done);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return fail(CLI_EXIT_FAILURE, NULL, "Cannot write %s '%s': %s.", o->option, o->path,
                                    strerror(errno));
                }
                done += (size_t) k;
        }
        if (fsync(o->fd) < 0)
                return fail(CLI_EXIT_FAILURE, NULL, "Cannot write %s '%s' to disk: %s.", o->option, o->path,
                            strerror(errno));
        return 0;
}

static int output_commit(OutputFile *o) {
        if (o->fd < 0)
                return 0;
        if (close(o->fd) < 0) {
                o->fd = -1;
                return fail(CLI_EXIT_FAILURE, NULL, "Cannot write %s '%s': %s.", o->option, o->path,
                            strerror(errno));
        }
        o->fd = -1;
        if (o->temp) {
                if (rename(o->temp, o->path) < 0)
                        return fail(CLI_EXIT_FAILURE, NULL, "Cannot replace %s '%s': %s.", o->option, o->path,
                                    strerror(errno));
                free(o->temp);
                o->temp = NULL;
        }
        return 0;
}

/* Removes what output_open() created (never a pre-existing file). */
static void output_abort(OutputFile *o) {
        if (o->fd >= 0) {
                close(o->fd);
                o->fd = -1;
                (void) unlink(o->temp ?: o->path);
        } else if (o->temp)
                (void) unlink(o->temp);
        free(o->temp);
        o->temp = NULL;
}

/* ---- printing ---- */

static void json_request(CliJson *j, const CertbrokerRequestInfo *i, bool with_pem) {
        cli_json_field_str(j, "id", i->id);
        cli_json_field_str(j, "state", i->state);
        cli_json_field_str(j, "ca", i->ca);
        cli_json_field_str(j, "label", i->label);
        cli_json_field_str(j, "subject", i->subject);
        cli_json_field_strv(j, "names", i->names);
        cli_json_field_str(j, "key_type", i->key_type);
        cli_json_field_str(j, "usage", i->usage);
        cli_json_field_u64(j, "owner", i->owner);
        cli_json_field_str(j, "error", i->error_name);
        cli_json_field_str(j, "error_message", i->error_message);
        cli_json_field_str(j, "fail_info", i->fail_info);
        cli_json_field_str(j, "transaction_id", i->transaction_id);
        cli_json_field_str(j, "serial", i->serial);
        cli_json_field_u64(j, "not_before", i->not_before);
        cli_json_field_u64(j, "not_after", i->not_after);
        cli_json_field_u64(j, "created", i->created);
        cli_json_field_u64(j, "updated", i->updated);
        cli_json_field_u64(j, "next_attempt", i->next_attempt);
        cli_json_field_u64(j, "attempts", i->attempts);
        cli_json_field_bool(j, "key_available", i->key_available);
        if (with_pem) {
                cli_json_field_str(j, "certificate", i->certificate);
                cli_json_field_str(j, "chain", i->chain);
        }
}

/* Renew, RenewAt, Successor and Predecessor (n: NULL when the daemon could not say). */
static void json_renewal(CliJson *j, const CertbrokerRenewal *n) {
        cli_json_field_bool(j, "renew", n && n->renew);
        cli_json_field_u64(j, "renew_at", n ? n->renew_at : 0);
        cli_json_field_str(j, "successor", n ? n->successor : "");
        cli_json_field_str(j, "predecessor", n ? n->predecessor : "");
}

static void print_renewal(const CertbrokerRenewal *n) {
        char t[64];

        if (!n)
                return;
        printf("%-14s %s\n", "Renew:", n->renew ? "yes" : "no");
        if (n->renew_at)
                printf("%-14s %s\n", "Renew at:", cli_format_timestamp(t, sizeof t, n->renew_at));
        if (*n->successor)
                printf("%-14s %s\n", "Successor:", n->successor);
        if (*n->predecessor)
                printf("%-14s %s\n", "Predecessor:", n->predecessor);
}

static void print_request(const CertbrokerRequestInfo *i) {
        char t[64];

        printf("%-14s %s\n", "Id:", i->id);
        printf("%-14s %s\n", "State:", i->state);
        printf("%-14s %s\n", "CA:", i->ca);
        printf("%-14s %s\n", "Subject:", i->subject);
        printf("%-14s", "Names:");
        for (char **n = i->names; n && *n; n++)
                printf(" %s", *n);
        printf("\n");
        printf("%-14s %s\n", "Key:", i->key_type);
        printf("%-14s %s\n", "Usage:", i->usage);
        if (*i->label)
                printf("%-14s %s\n", "Label:", i->label);
        printf("%-14s %u\n", "Owner:", i->owner);
        printf("%-14s %s\n", "Created:", cli_format_timestamp(t, sizeof t, i->created));
        printf("%-14s %s\n", "Updated:", cli_format_timestamp(t, sizeof t, i->updated));
        printf("%-14s %u\n", "Attempts:", i->attempts);
        if (i->next_attempt)
                printf("%-14s %s\n", "Next attempt:", cli_format_timestamp(t, sizeof t, i->next_attempt));
        if (*i->transaction_id)
                printf("%-14s %s\n", "Transaction:", i->transaction_id);
        if (*i->error_name)
                printf("%-14s %s\n", "Error:", i->error_name);
        if (*i->error_message)
                printf("%-14s %s\n", "Message:", i->error_message);
        if (*i->fail_info)
                printf("%-14s %s\n", "FailInfo:", i->fail_info);
        if (*i->serial)
                printf("%-14s %s\n", "Serial:", i->serial);
        if (i->not_before)
                printf("%-14s %s\n", "Not before:", cli_format_timestamp(t, sizeof t, i->not_before));
        if (i->not_after)
                printf("%-14s %s\n", "Not after:", cli_format_timestamp(t, sizeof t, i->not_after));
        printf("%-14s %s\n", "Key available:", i->key_available ? "yes" : "no");
}

/* ---- progress ---- */

typedef struct Progress {
        bool tty;
        bool shown;             /* a line is on the terminal that the next update replaces */
} Progress;

static int on_progress(const CertbrokerProgress *p, void *userdata) {
        Progress *pr = userdata;
        char line[256], t[64];
        int n;

        if (arg.quiet)
                return 0;
        n = snprintf(line, sizeof line, "request %s: %s", p->id, p->state);
        if (n > 0 && (size_t) n < sizeof line && p->attempts > 0)
                n += snprintf(line + n, sizeof line - (size_t) n, ", %u attempt%s", p->attempts,
                              p->attempts == 1 ? "" : "s");
        if (n > 0 && (size_t) n < sizeof line && p->next_attempt > 0 && !certbroker_state_is_terminal(p->state))
                snprintf(line + n, sizeof line - (size_t) n, ", next attempt %s",
                         cli_format_timestamp(t, sizeof t, p->next_attempt));
        if (pr->tty) {
                /* One line, rewritten in place; ended when the request ends. */
                fprintf(stderr, "\r\033[K%s %s", certbroker_state_is_terminal(p->state) ? "*" : ">", line);
                pr->shown = true;
                if (certbroker_state_is_terminal(p->state)) {
                        fputc('\n', stderr);
                        pr->shown = false;
                }
        } else
                fprintf(stderr, "%s: %s\n", program, line);
        fflush(stderr);
        return 0;
}

static void progress_done(Progress *pr) {
        if (pr->tty && pr->shown)
                fputc('\n', stderr);
        pr->shown = false;
}

/* Waits for id; returns the exit code for the final state, after printing a failure. */
static int wait_request(CertbrokerClient *c, const char *id, char **ret_state) {
        CertbrokerError e = CERTBROKER_ERROR_NULL;
        Progress pr = { .tty = isatty(STDERR_FILENO) == 1 };
        uint64_t timeout = arg.timeout_usec == CLI_TIMEOUT_INFINITY ? CERTBROKER_WAIT_INFINITY : arg.timeout_usec;
        char *state = NULL;
        int r;

        r = certbroker_wait(c, id, timeout, on_progress, &pr, &state, &e);
        progress_done(&pr);
        if (r < 0)
                return fail_call(&e, r, "Waiting for the request failed");
        *ret_state = state;
        return CLI_EXIT_OK;
}

/* After a wait: explain a request that did not end issued; returns its exit code. */
static int explain_state(CertbrokerClient *c, const char *id, const char *state, CliJson *j) {
        CertbrokerError e = CERTBROKER_ERROR_NULL;
        CertbrokerRequestInfo *i = NULL;
        int code = cli_exit_code_from_state(state), r;
        char secs[32];

        r = certbroker_request_get(c, id, &i, &e);
        if (r < 0)
                return fail_call(&e, r, "Cannot read the request");
        if (j) {
                cli_json_begin(j, '{');
                json_request(j, i, code == CLI_EXIT_OK);
                cli_json_field_int(j, "exit_code", code);
                cli_json_end(j, '}');
        }
        if (code == CLI_EXIT_TIMEOUT) {
                snprintf(secs, sizeof secs, "%.1f", (double) arg.timeout_usec / 1e6);
                fprintf(stderr, "%s: request %s is still %s after %s s; run 'certbrokerctl wait %s' "
                        "to go on waiting.\n", program, id, state, secs, id);
        } else if (code != CLI_EXIT_OK) {
                fprintf(stderr, "%s: request %s ended %s: %s", program, id, state,
                        *i->error_message ? i->error_message : "no reason given");
                if (*i->error_name)
                        fprintf(stderr, " [%s%s%s]", i->error_name, *i->fail_info ? ", failInfo " : "",
                                i->fail_info);
                fputc('\n', stderr);
        }
        certbroker_request_info_free(i);
        return code;
}

/* The key was taken: the broker has erased its copy, o is the only place it will exist. Writes
 * and commits it, and never removes what was written. If it cannot be put at its path, it is
 * written to (or left in) a 0600 file next to it, and the error names that file. */
static int output_keep_key(OutputFile *o, const char *pem, const char *id) {
        char *rescue = NULL;
        bool written;
        int r, fd;

        r = output_write(o, pem);
        written = r == 0;
        if (r == 0)
                r = output_commit(o);
        if (r == 0)
                return 0;

        if (written && o->temp) {
                /* Complete in the temporary file; only the rename failed. */
                rescue = o->temp;
                o->temp = NULL;
        } else if (written) {
                /* Written and flushed at its path; only close(2) complained. */
                fprintf(stderr, "%s: the private key of request %s was written to '%s' (mode 0600) before the "
                        "error; the broker no longer has it: check that file.\n", program, id, o->path);
                return r;
        } else {
                /* Not completely written (the partial file is left as it is). */
                if (o->fd >= 0) {
                        (void) close(o->fd);
                        o->fd = -1;
                }
                free(o->temp);
                o->temp = NULL;
                fd = temp_file_next_to(o->path, &rescue);
                if (fd >= 0) {
                        OutputFile t = { .path = rescue, .option = o->option, .mode = 0600, .fd = fd };
                        if (fchmod(fd, 0600) < 0 || output_write(&t, pem) != 0 || output_commit(&t) != 0) {
                                if (t.fd >= 0)
                                        (void) close(t.fd);
                                free(rescue);
                                rescue = NULL;
                        }
                }
        }
        if (rescue) {
                fprintf(stderr, "%s: the private key of request %s is in '%s' (mode 0600), not in '%s': the broker "
                        "no longer has it; move it into place yourself.\n", program, id, rescue, o->path);
                free(rescue);
        } else
                fprintf(stderr, "%s: the broker has erased its copy of the key of request %s and it could not "
                        "be written anywhere: enroll again once '%s' can be written.\n", program, id, o->path);
        return r;
}

/* Writes the outputs of an issued request: certificate, chain, and (taken once) the key.
 * All files are claimed before the key is taken. Once taken, the key is written and committed
 * first and never removed (output_keep_key()); the certificate and chain, which the broker
 * keeps, are removed again on any failure. */
static int write_outputs(CertbrokerClient *c, const char *id, CertbrokerRequestInfo *i) {
        CertbrokerError e = CERTBROKER_ERROR_NULL;
        OutputFile key = { .fd = -1 }, cert = { .fd = -1 }, chain = { .fd = -1 };
        bool taken = false, key_written = false;
        char *pem = NULL;
        int r;

        if (strcmp(i->state, "issued") != 0)
                return fail(cli_exit_code_from_state(i->state), NULL,
                            "Request %s is %s, not issued: there is nothing to write yet.", id, i->state);
        r = output_open(&cert, arg.cert_out, "--cert-out", 0644);
        if (r == 0)
                r = output_open(&chain, arg.chain_out, "--chain-out", 0644);
        if (r == 0)
                r = output_open(&key, arg.key_out, "--key-out", 0600);
        if (r == 0 && arg.key_out) {
                r = certbroker_take_key(c, id, &pem, &e);
                if (r < 0) {
                        if (certbroker_error_has_name(&e, CERTBROKER_ERROR_KEY_ALREADY_TAKEN))
                                r = fail_call(&e, r, "Cannot write --key-out (the broker hands out a key once)");
                        else
                                r = fail_call(&e, r, "Cannot take the private key");
                }
        }
        if (pem) {
                taken = true;
                r = output_keep_key(&key, pem, id);
                key_written = r == 0;
                pem = certbroker_secret_free(pem);
        }
        if (r == 0)
                r = output_write(&cert, i->certificate);
        if (r == 0)
                r = output_write(&chain, i->chain);
        if (r == 0)
                r = output_commit(&cert);
        if (r == 0)
                r = output_commit(&chain);
        if (r != 0) {
                output_abort(&cert);
                output_abort(&chain);
                if (!taken)
                        output_abort(&key);
                else if (key_written)
                        fprintf(stderr, "%s: the private key of request %s is in '%s'; the certificate stays "
                                "with the broker ('%s status %s').\n", program, id, key.path, program, id);
                return r;
        }
        return CLI_EXIT_OK;
}

static void json_outputs(CliJson *j) {
        cli_json_field_str(j, "key_out", arg.key_out ?: "");
        cli_json_field_str(j, "cert_out", arg.cert_out ?: "");
        cli_json_field_str(j, "chain_out", arg.chain_out ?: "");
}

static void print_outputs(const CertbrokerRequestInfo *i) {
        char t[64];

        if (arg.quiet)
                return;
        printf("Request %s issued: serial %s, valid until %s.\n", i->id, i->serial,
               cli_format_timestamp(t, sizeof t, i->not_after));
        if (arg.key_out)
                printf("Private key:  %s\n", arg.key_out);
        if (arg.cert_out)
                printf("Certificate:  %s\n", arg.cert_out);
        if (arg.chain_out)
                printf("CA chain:     %s\n", arg.chain_out);
        if (!arg.key_out)
                printf("The private key stays with the broker until 'certbrokerctl fetch %s --key-out FILE'.\n",
                       i->id);
}

/* Wait (unless already issued), then write outputs, then report. */
static int finish_issued(CertbrokerClient *c, const char *id) {
        CertbrokerError e = CERTBROKER_ERROR_NULL;
        CertbrokerRequestInfo *i = NULL;
        int r;

        r = certbroker_request_get(c, id, &i, &e);
        if (r < 0)
                return fail_call(&e, r, "Cannot read the request");
        r = write_outputs(c, id, i);
        if (r == 0) {
                if (arg.json) {
                        CliJson j;
                        cli_json_init(&j, stdout);
                        cli_json_begin(&j, '{');
                        json_request(&j, i, true);
                        json_outputs(&j);
                        cli_json_field_int(&j, "exit_code", 0);
                        cli_json_end(&j, '}');
                } else
                        print_outputs(i);
        }
        certbroker_request_info_free(i);
        return r;
}

/* ---- commands ---- */

static CertbrokerRequestSpec spec_from_args(void) {
        return (CertbrokerRequestSpec) {
                .ca = arg.ca,
                .subject = arg.subject,
                .names = arg.dns,
                .key_type = arg.key_type,
                .usage = arg.usage,
                .label = arg.label,
        };
}

static int verb_enroll(CertbrokerClient *c) {
        CertbrokerError e = CERTBROKER_ERROR_NULL;
        CertbrokerRequestSpec spec = spec_from_args();
        char *id = NULL, *state = NULL;
        int r;

        r = output_precheck(arg.key_out, "--key-out");
        if (r == 0)
                r = output_precheck(arg.cert_out, "--cert-out");
        if (r == 0)
                r = output_precheck(arg.chain_out, "--chain-out");
        if (r != 0)
                return r;

        r = certbroker_enroll_flags(c, &spec, arg.identity_self ? CERTBROKER_ENROLL_IDENTITY_SELF : 0, &id, &e);
        if (r < 0)
                return fail_call(&e, r, "Enroll refused");
        if (arg.no_wait) {
                if (arg.json) {
                        CliJson j;
                        cli_json_init(&j, stdout);
                        cli_json_begin(&j, '{');
                        cli_json_field_str(&j, "id", id);
                        char path[128];
                        snprintf(path, sizeof path, "%s/request/%s", CERTBROKER_MANAGER_PATH, id);
                        cli_json_field_str(&j, "path", path);
                        cli_json_end(&j, '}');
                } else
                        printf("%s\n", id);
                free(id);
                return CLI_EXIT_OK;
        }
        if (!arg.quiet && !arg.json)
                fprintf(stderr, "%s: request %s started.\n", program, id);
        r = wait_request(c, id, &state);
        if (r == 0) {
                if (strcmp(state, "issued") == 0)
                        r = finish_issued(c, id);
                else if (arg.json) {
                        CliJson j;
                        cli_json_init(&j, stdout);
                        r = explain_state(c, id, state, &j);
                } else
                        r = explain_state(c, id, state, NULL);
        }
        free(state);
        free(id);
        return r;
}

static int verb_status(CertbrokerClient *c) {
        CertbrokerError e = CERTBROKER_ERROR_NULL;
        CertbrokerRequestInfo *i = NULL;
        CertbrokerRenewal *n = NULL;
        int r;

        r = certbroker_request_get(c, arg.operand, &i, &e);
        if (r < 0)
                return fail_call(&e, r, "Cannot read the request");
        r = certbroker_request_renewal(c, arg.operand, &n, &e);
        if (r < 0) {
                certbroker_request_info_free(i);
                return fail_call(&e, r, "Cannot read the request's renewal");
        }
        bool sealed = false;
        r = certbroker_request_key_sealed(c, arg.operand, &sealed, &e);
        if (r < 0) {
                certbroker_renewal_free(n);
                certbroker_request_info_free(i);
                return fail_call(&e, r, "Cannot read the request");
        }
        if (arg.json) {
                CliJson j;
                cli_json_init(&j, stdout);
                cli_json_begin(&j, '{');
                json_request(&j, i, true);
                cli_json_field_bool(&j, "key_sealed", sealed);
                json_renewal(&j, n);
                cli_json_end(&j, '}');
        } else {
                print_request(i);
                if (!i->key_available && sealed)
                        printf("%-14s %s\n", "Key sealed:", "yes: sealed to a receiver (TakeKeySealed), awaiting its ConfirmKey");
                print_renewal(n);
        }
        certbroker_renewal_free(n);
        certbroker_request_info_free(i);
        return CLI_EXIT_OK;
}

static int verb_wait(CertbrokerClient *c) {
        char *state = NULL;
        CliJson j;
        int r;

        r = wait_request(c, arg.operand, &state);
        if (r != 0)
                return r;
        cli_json_init(&j, stdout);
        r = explain_state(c, arg.operand, state, arg.json ? &j : NULL);
        if (!arg.json)
                printf("%s\n", state);
        free(state);
        return r;
}

static int verb_fetch(CertbrokerClient *c) {
        int r;

        r = output_precheck(arg.key_out, "--key-out");
        if (r == 0)
                r = output_precheck(arg.cert_out, "--cert-out");
        if (r == 0)
                r = output_precheck(arg.chain_out, "--chain-out");
        if (r != 0)
                return r;
        return finish_issued(c, arg.operand);
}

static int verb_list(CertbrokerClient *c) {
        CertbrokerError e = CERTBROKER_ERROR_NULL;
        CertbrokerRequestEntry *l = NULL;
        size_t n = 0;
        CliJson j;
        int r;

        r = certbroker_list_requests(c, &l, &n, &e);
        if (r < 0)
                return fail_call(&e, r, "Cannot list requests");
        cli_json_init(&j, stdout);
        if (arg.json)
                cli_json_begin(&j, '[');
        else if (n > 0)
                printf("%-16s  %-10s  %-10s  %-23s  %-23s  %-16s  %-16s  %s\n", "ID", "STATE", "CA", "CREATED",
                       "RENEW AT", "SUCCESSOR", "PREDECESSOR", "NAMES");
        for (size_t k = 0; k < n; k++) {
                CertbrokerRequestInfo *i = NULL;
                CertbrokerRenewal *rn = NULL;
                char t[64], t2[64];

                /* The request may have been removed since the list was made. */
                if (certbroker_request_get(c, l[k].id, &i, &e) < 0) {
                        certbroker_error_clear(&e);
                        i = NULL;
                }
                if (i && certbroker_request_renewal(c, l[k].id, &rn, &e) < 0) {
                        certbroker_error_clear(&e);
                        rn = NULL;
                }
                if (arg.json) {
                        bool sealed = false;
                        if (i && certbroker_request_key_sealed(c, l[k].id, &sealed, &e) < 0)
                                certbroker_error_clear(&e);     /* removed meanwhile */
                        cli_json_begin(&j, '{');
                        if (i) {
                                json_request(&j, i, false);
                                cli_json_field_bool(&j, "key_sealed", sealed);
                                json_renewal(&j, rn);
                        } else {
                                cli_json_field_str(&j, "id", l[k].id);
                                cli_json_field_str(&j, "state", l[k].state);
                        }
                        cli_json_end(&j, '}');
                } else {
                        printf("%-16s  %-10s  %-10s  %-23s  %-23s  %-16s  %-16s ", l[k].id,
                               i ? i->state : l[k].state, i ? i->ca : "",
                               cli_format_timestamp(t, sizeof t, i ? i->created : 0),
                               cli_format_timestamp(t2, sizeof t2, rn ? rn->renew_at : 0),
                               rn && *rn->successor ? rn->successor : "-",
                               rn && *rn->predecessor ? rn->predecessor : "-");
                        for (char **s = i ? i->names : NULL; s && *s; s++)
                                printf(" %s", *s);
                        if (i && *i->label)
                                printf("  (%s)", i->label);
                        printf("\n");
                }
                certbroker_renewal_free(rn);
                certbroker_request_info_free(i);
        }
        if (arg.json)
                cli_json_end(&j, ']');
        else if (n == 0 && !arg.quiet)
                printf("No requests.\n");
        certbroker_request_entries_free(l, n);
        return CLI_EXIT_OK;
}

static int verb_cancel_remove(CertbrokerClient *c) {
        CertbrokerError e = CERTBROKER_ERROR_NULL;
        bool cancel = arg.command == CLI_COMMAND_CANCEL;
        int r;

        r = cancel ? certbroker_cancel(c, arg.operand, &e) : certbroker_remove(c, arg.operand, &e);
        if (r < 0)
                return fail_call(&e, r, cancel ? "Cannot cancel the request" : "Cannot remove the request");
        if (arg.json) {
                CliJson j;
                cli_json_init(&j, stdout);
                cli_json_begin(&j, '{');
                cli_json_field_str(&j, "id", arg.operand);
                cli_json_field_str(&j, "result", cancel ? "cancelled" : "removed");
                cli_json_end(&j, '}');
        } else if (!arg.quiet)
                printf("Request %s %s.\n", arg.operand, cancel ? "cancelled" : "removed");
        return CLI_EXIT_OK;
}

static int verb_cas(CertbrokerClient *c) {
        CertbrokerError e = CERTBROKER_ERROR_NULL;
        char **names = NULL;
        CliJson j;
        int r, code = CLI_EXIT_OK;

        r = certbroker_list_cas(c, &names, &e);
        if (r < 0)
                return fail_call(&e, r, "Cannot list the CAs");
        cli_json_init(&j, stdout);
        if (arg.json)
                cli_json_begin(&j, '[');
        else if (names[0])
                printf("%-12s  %-14s  %-11s  %-20s  %s\n", "NAME", "AUTHENTICATION", "CHALLENGE",
                       "LAST CONTACT", "URL");
        for (char **n = names; *n; n++) {
                CertbrokerCAInfo *i = NULL;
                char t[64];

                r = certbroker_ca_get(c, *n, &i, &e);
                if (r < 0) {
                        code = fail_call(&e, r, "Cannot read a CA");
                        break;
                }
                if (arg.json) {
                        cli_json_begin(&j, '{');
                        cli_json_field_str(&j, "name", i->name);
                        cli_json_field_str(&j, "url", i->url);
                        cli_json_field_str(&j, "admin_url", i->admin_url);
                        cli_json_field_str(&j, "authentication", i->authentication);
                        cli_json_field_str(&j, "challenge", i->challenge);
                        cli_json_field_strv(&j, "capabilities", i->capabilities);
                        cli_json_field_u64(&j, "last_contact", i->last_contact);
                        cli_json_field_str(&j, "last_error", i->last_error);
                        cli_json_end(&j, '}');
                } else {
                        printf("%-12s  %-14s  %-11s  %-20s  %s\n", i->name, i->authentication, i->challenge,
                               cli_format_timestamp(t, sizeof t, i->last_contact), i->url);
                        if (*i->last_error)
                                printf("%-12s  last error: %s\n", "", i->last_error);
                }
                certbroker_ca_info_free(i);
        }
        if (arg.json && code == CLI_EXIT_OK)
                cli_json_end(&j, ']');
        else if (!names[0] && !arg.quiet && !arg.json)
                printf("No CAs configured.\n");
        certbroker_strv_free(names);
        return code;
}

/* The "Seed: ..." (or "Not a seed step: ...") tail of a Check detail, "" if none. */
static const char *check_seed_part(const char *detail) {
        const char *p;

        if (!detail)
                return "";
        if ((p = strstr(detail, "Seed: ")) || (p = strstr(detail, "Not a seed step")))
                return p;
        return detail + strlen(detail);
}

static int verb_check(CertbrokerClient *c) {
        CertbrokerError e = CERTBROKER_ERROR_NULL;
        CertbrokerCheckStep *steps = NULL;
        size_t n = 0;
        int failed;

        failed = certbroker_ca_check(c, arg.operand, arg.challenge, &steps, &n, &e);
        if (failed < 0)
                return fail_call(&e, failed, "Cannot check the CA");
        if (arg.json) {
                CliJson j;
                cli_json_init(&j, stdout);
                cli_json_begin(&j, '{');
                cli_json_field_str(&j, "ca", arg.operand);
                cli_json_key(&j, "steps");
                cli_json_begin(&j, '[');
                for (size_t k = 0; k < n; k++) {
                        cli_json_begin(&j, '{');
                        cli_json_field_str(&j, "step", steps[k].step);
                        cli_json_field_str(&j, "result", steps[k].result);
                        cli_json_field_str(&j, "detail", steps[k].detail);
                        cli_json_field_str(&j, "seed", check_seed_part(steps[k].detail));
                        cli_json_end(&j, '}');
                }
                cli_json_end(&j, ']');
                cli_json_field_int(&j, "failed", failed);
                cli_json_end(&j, '}');
        } else {
                /* A checklist in the seed's order: one line per step; under a failing one, the
                 * fix and the seed step it concerns, indented. */
                int w = 4;
                for (size_t k = 0; k < n; k++)
                        if ((int) strlen(steps[k].step) > w)
                                w = (int) strlen(steps[k].step);
                for (size_t k = 0; k < n; k++) {
                        const char *res = steps[k].result, *d = steps[k].detail ?: "";
                        const char *seed = check_seed_part(d);
                        int fix_len = (int) (seed - d);

                        while (fix_len > 0 && strchr(". ", d[fix_len - 1]))
                                fix_len--;
                        if (strcmp(res, "fail") == 0) {
                                printf("[FAIL] %s\n", steps[k].step);
                                if (fix_len > 0)
                                        printf("       fix: %.*s\n", fix_len, d);
                                if (*seed)
                                        printf("       %s\n", seed);
                        } else {
                                int pad = 4 - (int) strlen(res);
                                printf("[%s]%*s %-*s  %s\n", res, pad > 0 ? pad : 0, "", w, steps[k].step, d);
                        }
                }
                if (!arg.quiet)
                        printf("\nCA %s: %s\n", arg.operand,
                               failed ? "a step failed; its detail says what to fix." : "all steps passed.");
        }
        certbroker_check_steps_free(steps, n);
        return failed > 0 ? CLI_EXIT_REJECTED : CLI_EXIT_OK;
}

static int verb_access(CertbrokerClient *c) {
        CertbrokerError e = CERTBROKER_ERROR_NULL;
        CertbrokerRequestSpec spec = spec_from_args();
        char *rule = NULL, *reason = NULL;
        int allowed;

        allowed = certbroker_check_access(c, &spec, &rule, &reason, &e);
        if (allowed < 0)
                return fail_call(&e, allowed, "Cannot check access");
        if (arg.json) {
                CliJson j;
                cli_json_init(&j, stdout);
                cli_json_begin(&j, '{');
                cli_json_field_bool(&j, "allowed", allowed);
                cli_json_field_str(&j, "rule", rule);
                cli_json_field_str(&j, "reason", reason);
                cli_json_end(&j, '}');
        } else if (allowed)
                printf("allowed by rule '%s'%s%s\n", rule, *reason ? ": " : "", reason);
        else
                printf("denied: %s\n", *reason ? reason : "no rule allows it");
        free(rule);
        free(reason);
        return allowed ? CLI_EXIT_OK : CLI_EXIT_DENIED;
}

/* ---- deploy: keep a certificate deployed in a directory (deploy-files.h) ---- */

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
        d->exit_code = fail_call(e, r, what);
        return -ECANCELED;
}

static int deploy_fatal(Deploy *d, int code, const char *format, ...) __attribute__((format(printf, 3, 4)));
static int deploy_fatal(Deploy *d, int code, const char *format, ...) {
        va_list ap;
        char *msg = NULL;

        va_start(ap, format);
        if (vasprintf(&msg, format, ap) < 0)
                msg = NULL;
        va_end(ap);
        d->exit_code = fail(code, NULL, "deploy: %s", msg ?: "out of memory");
        free(msg);
        return -ECANCELED;
}

static void deploy_note(const char *format, ...) __attribute__((format(printf, 1, 2)));
static void deploy_note(const char *format, ...) {
        va_list ap;

        if (arg.quiet)
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
        char *label = NULL, *id = NULL;
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
        free(label);
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
        free(id);
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
        char id[17];
        int gfd = -1, r;

        if (!*d->state.seal_request)
                return 0;
        snprintf(id, sizeof id, "%s", d->state.seal_request);
        r = deploy_generation_open(d->dfd, d->uid, id, false, &gfd, NULL, NULL);
        if (r < 0)
                return 0;       /* not written yet: deploy_take_key() goes on from the receiver key */
        bool has_key = deploy_generation_has_key(gfd);
        close(gfd);
        return has_key ? deploy_confirm_key(d, id) : 0;
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
        uint8_t pub[32], *sealed = NULL;
        size_t size = 0;
        char *key = NULL;
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
        free(sealed);
        if (r < 0)
                return deploy_fatal(d, CLI_EXIT_FAILURE, "the sealed key of request %s does not open with the "
                                    "receiver key in %s/%s: %s", id, d->dir, DEPLOY_STATE_FILE, strerror(-r));
        if (again)
                deploy_note("request %s: took its sealed key again (a run stopped before it stored it)", id);
        r = deploy_write_file(gfd, "key.pem", key, 0600);
        certbroker_secret_free(key);
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
        char *why = NULL;
        int r;

        if (d->out.formats & DEPLOY_FORMAT_PKCS12) {
                struct stat st;
                if (fresh || fstatat(gfd, DEPLOY_PKCS12_FILE, &st, AT_SYMLINK_NOFOLLOW) < 0) {
                        r = deploy_pkcs12_write(gfd, d->passphrase, d->out.nickname, &why);
                        if (r >= 0)
                                r = deploy_fsync_dir(gfd);
                        if (r < 0) {
                                r = deploy_fatal(d, CLI_EXIT_FAILURE, "%s/gen-%s/%s: %s", d->dir, id,
                                                 DEPLOY_PKCS12_FILE, why ?: strerror(-r));
                                free(why);
                                return r;
                        }
                        deploy_note("request %s: wrote %s/gen-%s/%s", id, d->dir, id, DEPLOY_PKCS12_FILE);
                }
        }
        if (d->out.formats & DEPLOY_FORMAT_NSSDB) {
                bool imported = false;
                r = deploy_nssdb_import(d->out.nssdb, d->uid, gfd, d->out.nickname, &imported, &why);
                if (r < 0) {
                        r = deploy_fatal(d, CLI_EXIT_FAILURE, "request %s: %s", id, why ?: strerror(-r));
                        free(why);
                        return r;
                }
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
        char *why = NULL;
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
        free(why);
}

/* The live generation id already deployed (a restart, or a Format= added since): the formats
 * it lacks are written into it (bundle.p12 by one rename, like every file) and the NSS
 * database is brought to it. */
static int deploy_formats_refresh(Deploy *d, const char *id) {
        char *why = NULL;
        int gfd = -1, r;

        if (!(d->out.formats & (DEPLOY_FORMAT_PKCS12 | DEPLOY_FORMAT_NSSDB)))
                return 0;
        r = deploy_generation_open(d->dfd, d->uid, id, false, &gfd, NULL, &why);
        if (r < 0) {
                r = deploy_fatal(d, CLI_EXIT_FAILURE, "%s: live: %s", d->dir, why ?: strerror(-r));
                free(why);
                return r;
        }
        r = deploy_formats_write(d, id, gfd, false);
        if (r >= 0)
                deploy_formats_prune(d, id, gfd);
        close(gfd);
        return r;
}

/* Writes request id's key, certificate and chain into DIR/gen-<id>/ and points DIR/live at it.
 * Returns 0 when deployed (now or before), 1 when it cannot be (its key is gone). */
static int deploy_member(Deploy *d, const char *id) {
        CertbrokerError e = CERTBROKER_ERROR_NULL;
        char live[17] = "", *why = NULL, *cert = NULL, *chain = NULL, *full = NULL;
        bool created = false;
        int r, gfd = -1;

        r = deploy_confirm_pending(d);
        if (r < 0)
                return r;
        r = deploy_live_read(d->dfd, live, &why);
        if (r < 0 && r != -ENOENT) {
                r = deploy_fatal(d, CLI_EXIT_FAILURE, "%s: %s", d->dir, why ?: strerror(-r));
                free(why);
                return r;
        }
        if (strcmp(live, id) == 0)
                return deploy_formats_refresh(d, id);

        r = certbroker_request_certificate(d->client, id, &cert, &chain, &e);
        if (r < 0)
                return deploy_call_failed(d, &e, r, "Cannot read the certificate");

        r = deploy_generation_open(d->dfd, d->uid, id, true, &gfd, &created, &why);
        if (r < 0) {
                r = deploy_fatal(d, CLI_EXIT_FAILURE, "%s: %s", d->dir, why ?: strerror(-r));
                goto finish;
        }
        if (!deploy_generation_has_key(gfd)) {
                r = deploy_take_key(d, id, gfd);
                if (r != 0)
                        goto finish;
        }
        if (asprintf(&full, "%s%s%s", cert, *cert && cert[strlen(cert) - 1] != '\n' ? "\n" : "", chain) < 0) {
                full = NULL;
                r = deploy_fatal(d, CLI_EXIT_FAILURE, "out of memory");
                goto finish;
        }
        {
                const char *names[] = { "cert.pem", "chain.pem", "fullchain.pem" };
                const char *data[] = { cert, chain, full };
                for (size_t k = 0; k < 3; k++) {
                        r = deploy_write_file(gfd, names[k], data[k], 0644);
                        if (r < 0) {
                                r = deploy_fatal(d, CLI_EXIT_FAILURE, "cannot write %s/gen-%s/%s: %s", d->dir, id,
                                                 names[k], strerror(-r));
                                goto finish;
                        }
                }
        }
        r = deploy_fsync_dir(gfd);
        if (r < 0) {
                r = deploy_fatal(d, CLI_EXIT_FAILURE, "cannot fsync %s/gen-%s: %s", d->dir, id, strerror(-r));
                goto finish;
        }
        /* Every format of the generation is complete before live points at it. */
        r = deploy_formats_write(d, id, gfd, true);
        if (r < 0)
                goto finish;
        deploy_test_kill_point("deploy-generation-written");
        r = deploy_live_swap(d->dfd, id);
        if (r < 0) {
                r = deploy_fatal(d, CLI_EXIT_FAILURE, "cannot switch %s/%s to gen-%s: %s", d->dir, DEPLOY_LIVE,
                                 id, strerror(-r));
                goto finish;
        }
        deploy_note("request %s deployed: %s/%s -> gen-%s", id, d->dir, DEPLOY_LIVE, id);
        deploy_test_kill_point("deploy-live-swapped");
        deploy_formats_prune(d, id, gfd);
        (void) deploy_prune(d->dfd, id, DEPLOY_KEEP_GENERATIONS);
        r = 0;
finish:
        if (gfd >= 0)
                close(gfd);
        if (r == 1 && created) {
                char name[64];
                snprintf(name, sizeof name, DEPLOY_GEN_PREFIX "%s", id);
                (void) unlinkat(d->dfd, name, AT_REMOVEDIR);
        }
        free(cert);
        free(chain);
        free(full);
        free(why);
        return r;
}

static uint64_t monotonic_msec(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000U + (uint64_t) ts.tv_nsec / 1000000U;
}

/* Waits up to timeout_msec (-1: no limit) for child pid to exit, without reaping it (so its
 * pid, and the process group named after it, stay ours). 1: exited; 0: still running. */
static int deploy_wait_exit(pid_t pid, int pidfd, int64_t timeout_msec) {
        uint64_t deadline = timeout_msec < 0 ? 0 : monotonic_msec() + (uint64_t) timeout_msec;

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
                        uint64_t now = monotonic_msec();
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
        char *latest = NULL;
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
                        d->exit_code = fail(CLI_EXIT_NOT_FOUND, e.name, "deploy: request %s, recorded in %s/%s, "
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
                if (r < 0) {
                        free(latest);
                        return r;
                }
        }
        free(latest);

        for (;;) {
                char id[17], *state = NULL, *next = NULL;

                snprintf(id, sizeof id, "%s", d->state.request);
                r = certbroker_wait(d->client, id, CERTBROKER_WAIT_INFINITY, NULL, NULL, &state, &e);
                if (r < 0)
                        return deploy_call_failed(d, &e, r, "Cannot wait for the request");
                if (strcmp(state, "issued") != 0) {
                        CertbrokerRequestInfo *i = NULL;
                        if (certbroker_request_get(d->client, id, &i, &e) < 0)
                                certbroker_error_clear(&e);
                        d->exit_code = fail(CLI_EXIT_REQUEST_FAILED, i ? i->error_name : NULL,
                                            "deploy: request %s of the chain ended %s%s%s; the certificate "
                                            "deployed before stays. Remove %s/%s to enroll a new chain.", id,
                                            state, i && *i->error_message ? ": " : "", i ? i->error_message : "",
                                            d->dir, DEPLOY_STATE_FILE);
                        certbroker_request_info_free(i);
                        free(state);
                        return -ECANCELED;
                }
                free(state);
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
                free(next);
                r = deploy_save_state(d);
                if (r < 0)
                        return r;
        }
}

/* deploy --config FILE: read it (owned by root or the caller, not writable by others) and,
 * as root, become its User= before anything else happens. A PassphraseCredential= is read
 * before (systemd makes the credentials readable by the unit's user: root). */
static int deploy_load_config(DeployConfig *cfg, char **ret_passphrase) {
        char buf[16384], *why = NULL;
        struct stat st;
        ssize_t n;
        int fd, r;

        fd = open(arg.config, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return fail(CLI_EXIT_FAILURE, NULL, "deploy: cannot open --config '%s': %s", arg.config, strerror(errno));
        if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || (st.st_uid != 0 && st.st_uid != geteuid()) ||
            (st.st_mode & (S_IWGRP | S_IWOTH))) {
                close(fd);
                return fail(CLI_EXIT_FAILURE, NULL, "deploy: --config '%s' must be a regular file owned by root "
                            "(or you) and not writable by group or others.", arg.config);
        }
        n = read(fd, buf, sizeof buf - 1);
        close(fd);
        if (n < 0)
                return fail(CLI_EXIT_FAILURE, NULL, "deploy: cannot read '%s': %s", arg.config, strerror(errno));
        buf[n] = 0;
        r = deploy_config_parse(buf, cfg, &why);
        if (r < 0) {
                r = fail(CLI_EXIT_USAGE, NULL, "deploy: %s: %s", arg.config, why ?: strerror(-r));
                free(why);
                return r;
        }
        if (cfg->user) {
                struct passwd *pw = getpwnam(cfg->user);
                if (!pw)
                        return fail(CLI_EXIT_USAGE, NULL, "deploy: %s: User=%s: no such user.", arg.config, cfg->user);
                if (cfg->passphrase_credential) {
                        r = deploy_passphrase_read_credential(cfg->passphrase_credential, pw->pw_uid,
                                                              ret_passphrase, &why);
                        if (r < 0) {
                                r = fail(CLI_EXIT_FAILURE, NULL, "deploy: %s: PassphraseCredential=: %s.",
                                         arg.config, why ?: strerror(-r));
                                free(why);
                                return r;
                        }
                }
                if (geteuid() == 0 && pw->pw_uid != 0) {
                        if (initgroups(pw->pw_name, pw->pw_gid) < 0 || setresgid(pw->pw_gid, pw->pw_gid, pw->pw_gid) < 0 ||
                            setresuid(pw->pw_uid, pw->pw_uid, pw->pw_uid) < 0)
                                return fail(CLI_EXIT_FAILURE, NULL, "deploy: cannot become User=%s: %s", cfg->user,
                                            strerror(errno));
                        if (setuid(0) == 0)
                                return fail(CLI_EXIT_FAILURE, NULL, "deploy: could become root again after "
                                            "dropping to User=%s: refusing to go on.", cfg->user);
                } else if (pw->pw_uid != geteuid())
                        return fail(CLI_EXIT_FAILURE, NULL, "deploy: %s says User=%s, but this runs as uid %u (only "
                                    "root can switch users).", arg.config, cfg->user, (unsigned) geteuid());
        } else if (geteuid() == 0)
                return fail(CLI_EXIT_USAGE, NULL, "deploy: %s: User= is missing; the deployment runs as the "
                            "application's user, never as root.", arg.config);
        return 0;
}

static int verb_deploy(void) {
        DeployConfig cfg = {};
        Deploy d = { .dfd = -1, .once = arg.once };
        char *why = NULL;
        unsigned backoff = 1;
        int r;

        if (arg.config) {
                r = deploy_load_config(&cfg, &d.passphrase);
                if (r != 0) {
                        deploy_config_done(&cfg);
                        deploy_passphrase_free(d.passphrase);
                        return r;
                }
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
                d.dir = arg.dir;
                d.reload = arg.reload;
                d.spec = spec_from_args();
                d.identity_self = arg.identity_self;
                d.reload_timeout_usec = DEPLOY_RELOAD_TIMEOUT_DEFAULT_USEC;
                d.out = (DeployOutputs) {
                        .passphrase_file = arg.passphrase_file, .passphrase_credential = arg.passphrase_credential,
                        .nssdb = arg.nssdb, .nickname = arg.nickname,
                };
                (void) deploy_outputs_check(arg.format, &d.out, false, NULL);    /* checked when parsed */
        }
        /* --reload-timeout wins over ReloadTimeout= */
        if (arg.reload_timeout)
                (void) deploy_parse_timeout(arg.reload_timeout, &d.reload_timeout_usec);
        d.uid = geteuid();
        umask(0077);

        r = deploy_dir_open(d.dir, d.uid, &d.dfd, &why);
        if (r < 0) {
                r = fail(CLI_EXIT_FAILURE, NULL, "deploy: refusing the directory: %s.", why ?: strerror(-r));
                goto finish;
        }
        /* One deployment per directory: two would each make an intent token (two enrollments)
         * and overwrite each other's receiver key (a lost key). The lock lives as long as this
         * process (the directory fd is O_CLOEXEC: the reload command does not hold it). */
        if (flock(d.dfd, LOCK_EX | LOCK_NB) < 0) {
                r = errno == EWOULDBLOCK ?
                        fail(CLI_EXIT_FAILURE, NULL, "deploy: %s: another certbrokerctl deploy is running for this "
                             "directory (it holds its lock); one deployment per directory.", d.dir) :
                        fail(CLI_EXIT_FAILURE, NULL, "deploy: %s: cannot lock it: %s.", d.dir, strerror(errno));
                goto finish;
        }
        /* The formats' inputs, before anything is written: a passphrase others can read, an NSS
         * database others can change, are refused here. */
        if (d.out.passphrase_file) {
                r = deploy_passphrase_read_file(d.out.passphrase_file, d.uid, &d.passphrase, &why);
                if (r < 0) {
                        r = fail(CLI_EXIT_FAILURE, NULL, "deploy: refusing the PKCS#12 passphrase: %s.",
                                 why ?: strerror(-r));
                        goto finish;
                }
        } else if (d.out.passphrase_credential && !d.passphrase) {
                r = deploy_passphrase_read_credential(d.out.passphrase_credential, d.uid, &d.passphrase, &why);
                if (r < 0) {
                        r = fail(CLI_EXIT_FAILURE, NULL, "deploy: refusing the PKCS#12 passphrase: %s.",
                                 why ?: strerror(-r));
                        goto finish;
                }
        }
        if (d.out.formats & DEPLOY_FORMAT_NSSDB) {
                r = deploy_nssdb_check(d.out.nssdb, d.uid, &why);
                if (r < 0) {
                        r = fail(CLI_EXIT_FAILURE, NULL, "deploy: refusing the NSS database: %s.", why ?: strerror(-r));
                        goto finish;
                }
        }
        r = deploy_state_read(d.dfd, d.uid, &d.state, &why);
        if (r < 0) {
                r = fail(CLI_EXIT_FAILURE, NULL, "deploy: %s: %s.", d.dir, why ?: strerror(-r));
                goto finish;
        }
        {
                char live[17];
                r = deploy_live_read(d.dfd, live, &why);
                if (r < 0 && r != -ENOENT) {
                        r = fail(CLI_EXIT_FAILURE, NULL, "deploy: %s: %s.", d.dir, why ?: strerror(-r));
                        goto finish;
                }
        }
        if (*d.state.request)
                deploy_note("following the chain of request %s recorded in %s/%s", d.state.request, d.dir,
                            DEPLOY_STATE_FILE);

        for (;;) {
                r = deploy_round(&d);
                if (r == -EAGAIN) {
                        sleep(backoff);
                        backoff = backoff * 2 > DEPLOY_BUS_BACKOFF_MAX_SEC ? DEPLOY_BUS_BACKOFF_MAX_SEC : backoff * 2;
                        continue;
                }
                r = r < 0 ? d.exit_code : CLI_EXIT_OK;
                break;
        }
finish:
        if (d.dfd >= 0)
                close(d.dfd);
        explicit_bzero(&d.state, sizeof d.state);       /* a receiver key, if one was in flight */
        deploy_passphrase_free(d.passphrase);
        certbroker_close(d.client);
        deploy_config_done(&cfg);
        free(why);
        return r;
}

int main(int argc, char *argv[]) {
        CertbrokerError e = CERTBROKER_ERROR_NULL;
        CertbrokerClient *c = NULL;
        char *err = NULL;
        int r;

        /* trust, metrics: cli-trust.c */
        if (cli_extra_handles(argc, argv))
                return cli_extra_main(argc, argv);
        r = cli_parse_args(argc, argv, &arg, &err);
        if (r < 0) {
                if (r == -EINVAL) {
                        /* --json may not have been parsed; look for it so scripts still get JSON. */
                        for (int i = 1; i < argc; i++)
                                if (strcmp(argv[i], "--json") == 0)
                                        arg.json = true;
                        r = fail(CLI_EXIT_USAGE, NULL, "%s", err ?: "invalid command line");
                } else
                        r = fail(CLI_EXIT_FAILURE, NULL, "Cannot parse the command line: %s", strerror(-r));
                free(err);
                return r;
        }

        switch (arg.command) {
        case CLI_COMMAND_HELP:
                help();
                r = CLI_EXIT_OK;
                goto finish;
        case CLI_COMMAND_VERSION:
                if (arg.json)
                        printf("{\"version\":\"%s\"}\n", CERTBROKER_VERSION);
                else
                        printf("certbrokerctl %s\n", CERTBROKER_VERSION);
                r = CLI_EXIT_OK;
                goto finish;
        case CLI_COMMAND_DEPLOY:
                /* Its own connection: it may first drop privileges, and reconnects. */
                r = verb_deploy();
                goto finish;
        default:
                break;
        }

        r = certbroker_open(&c, &e);
        if (r < 0) {
                r = fail(CLI_EXIT_UNAVAILABLE, e.name, "%s", e.message ?: strerror(-r));
                certbroker_error_clear(&e);
                goto finish;
        }

        switch (arg.command) {
        case CLI_COMMAND_ENROLL:
                r = verb_enroll(c);
                break;
        case CLI_COMMAND_STATUS:
                r = verb_status(c);
                break;
        case CLI_COMMAND_WAIT:
                r = verb_wait(c);
                break;
        case CLI_COMMAND_FETCH:
                r = verb_fetch(c);
                break;
        case CLI_COMMAND_LIST:
                r = verb_list(c);
                break;
        case CLI_COMMAND_CANCEL:
        case CLI_COMMAND_REMOVE:
                r = verb_cancel_remove(c);
                break;
        case CLI_COMMAND_CAS:
                r = verb_cas(c);
                break;
        case CLI_COMMAND_CHECK:
                r = verb_check(c);
                break;
        case CLI_COMMAND_ACCESS:
                r = verb_access(c);
                break;
        default:
                r = fail(CLI_EXIT_FAILURE, NULL, "Internal error: command not handled.");
        }
        if (fflush(stdout) != 0 && r == 0)
                r = fail(CLI_EXIT_FAILURE, NULL, "Cannot write to standard output: %s", strerror(errno));
finish:
        certbroker_close(c);
        cli_args_done(&arg);
        return r;
}
