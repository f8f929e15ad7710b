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

#include "basic.h"
#include "certbroker.h"
#include "certbroker-cleanup.h"
#include "cli-trust.h"
#include "cli-util.h"
#include "deploy-run.h"
#include "config.h"

static CliArgs arg;
static const char *const program = CLI_PROGRAM;

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
               "  access --identity self [--ca CA] [--key-type TYPE] [--usage USAGE]\n"
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
        _cleanup_free_ char *copy = NULL;
        struct stat st;
        char *dir;

        if (!path)
                return 0;
        if (lstat(path, &st) == 0) {
                if (S_ISDIR(st.st_mode))
                        return cli_fail(arg.json, CLI_EXIT_FAILURE, NULL, "%s '%s' is a directory: give a file name.",
                                    option, path);
                if (!arg.force)
                        return cli_fail(arg.json, CLI_EXIT_FAILURE, NULL, "Refusing to overwrite the existing file '%s' (%s); "
                                    "remove it or use --force to replace it.", path, option);
        }
        copy = strdup(path);
        if (!copy)
                return cli_fail(arg.json, CLI_EXIT_FAILURE, NULL, "Out of memory.");
        dir = dirname(copy);
        if (access(dir, W_OK) < 0)
                return cli_fail(arg.json, CLI_EXIT_FAILURE, NULL, "Cannot create %s '%s': directory '%s': %s.",
                                option, path, dir, strerror(errno));
        return 0;
}

/* output_precheck() of --key-out, --cert-out and --chain-out. */
static int outputs_precheck(void) {
        int r;

        r = output_precheck(arg.key_out, "--key-out");
        if (r != 0)
                return r;
        r = output_precheck(arg.cert_out, "--cert-out");
        if (r != 0)
                return r;
        return output_precheck(arg.chain_out, "--chain-out");
}

/* A new file "DIR/.BASE.XXXXXX" next to path, created 0600 and exclusively (mkostemp). Returns
 * its fd and its name, or -errno. */
static int temp_file_next_to(const char *path, char **ret_name) {
        _cleanup_free_ char *copy = strdup(path), *base = NULL, *name = NULL;
        int fd;

        if (!copy)
                return -ENOMEM;
        base = strdup(basename(copy));
        if (!base)
                return -ENOMEM;
        if (asprintf(&name, "%s/.%s.XXXXXX", dirname(copy), base) < 0) {
                name = NULL;
                return -ENOMEM;
        }
        fd = mkostemp(name, O_CLOEXEC);
        if (fd < 0)
                return -errno;
        *ret_name = TAKE_PTR(name);
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
                                return cli_fail(arg.json, CLI_EXIT_FAILURE, NULL, "Refusing to overwrite the existing file "
                                            "'%s' (%s); remove it or use --force to replace it.", path, option);
                        return cli_fail(arg.json, CLI_EXIT_FAILURE, NULL, "Cannot create %s '%s': %s.", option, path,
                                    strerror(errno));
                }
        } else {
                o->fd = temp_file_next_to(path, &o->temp);
                if (o->fd == -ENOMEM)
                        return cli_fail(arg.json, CLI_EXIT_FAILURE, NULL, "Out of memory.");
                if (o->fd < 0)
                        return cli_fail(arg.json, CLI_EXIT_FAILURE, NULL, "Cannot create a temporary file next to %s '%s': %s.",
                                    option, path, strerror(-o->fd));
        }
        /* The umask may have taken bits away; never more than asked for. */
        if (fchmod(o->fd, mode) < 0)
                return cli_fail(arg.json, CLI_EXIT_FAILURE, NULL, "Cannot set the mode of %s '%s': %s.", option, path,
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
                        return cli_fail(arg.json, CLI_EXIT_FAILURE, NULL, "Cannot write %s '%s': %s.", o->option, o->path,
                                    strerror(errno));
                }
                done += (size_t) k;
        }
        if (fsync(o->fd) < 0)
                return cli_fail(arg.json, CLI_EXIT_FAILURE, NULL, "Cannot write %s '%s' to disk: %s.", o->option, o->path,
                            strerror(errno));
        return 0;
}

static int output_commit(OutputFile *o) {
        if (o->fd < 0)
                return 0;
        if (close(o->fd) < 0) {
                o->fd = -1;
                return cli_fail(arg.json, CLI_EXIT_FAILURE, NULL, "Cannot write %s '%s': %s.", o->option, o->path,
                            strerror(errno));
        }
        o->fd = -1;
        if (o->temp) {
                if (rename(o->temp, o->path) < 0)
                        return cli_fail(arg.json, CLI_EXIT_FAILURE, NULL, "Cannot replace %s '%s': %s.", o->option, o->path,
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
        int r;

        r = certbroker_wait(c, id, timeout, on_progress, &pr, ret_state, &e);
        progress_done(&pr);
        if (r < 0)
                return cli_fail_call(arg.json, &e, r, "Waiting for the request failed");
        return CLI_EXIT_OK;
}

/* After a wait: explain a request that did not end issued; returns its exit code. */
static int explain_state(CertbrokerClient *c, const char *id, const char *state, CliJson *j) {
        _cleanup_(certbroker_request_info_freep) CertbrokerRequestInfo *i = NULL;
        CertbrokerError e = CERTBROKER_ERROR_NULL;
        int code = cli_exit_code_from_state(state), r;
        char secs[32];

        r = certbroker_request_get(c, id, &i, &e);
        if (r < 0)
                return cli_fail_call(arg.json, &e, r, "Cannot read the request");
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
                return cli_fail(arg.json, cli_exit_code_from_state(i->state), NULL,
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
                                r = cli_fail_call(arg.json, &e, r, "Cannot write --key-out (the broker hands out a key once)");
                        else
                                r = cli_fail_call(arg.json, &e, r, "Cannot take the private key");
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
        _cleanup_(certbroker_request_info_freep) CertbrokerRequestInfo *i = NULL;
        CertbrokerError e = CERTBROKER_ERROR_NULL;
        int r;

        r = certbroker_request_get(c, id, &i, &e);
        if (r < 0)
                return cli_fail_call(arg.json, &e, r, "Cannot read the request");
        r = write_outputs(c, id, i);
        if (r != 0)
                return r;
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
        return CLI_EXIT_OK;
}

/* ---- commands ---- */

static int verb_enroll(CertbrokerClient *c) {
        CertbrokerError e = CERTBROKER_ERROR_NULL;
        CertbrokerRequestSpec spec = cli_args_spec(&arg);
        _cleanup_free_ char *id = NULL, *state = NULL;
        int r;

        r = outputs_precheck();
        if (r != 0)
                return r;

        r = certbroker_enroll_flags(c, &spec, arg.identity_self ? CERTBROKER_ENROLL_IDENTITY_SELF : 0, &id, &e);
        if (r < 0)
                return cli_fail_call(arg.json, &e, r, "Enroll refused");
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
                return CLI_EXIT_OK;
        }
        if (!arg.quiet && !arg.json)
                fprintf(stderr, "%s: request %s started.\n", program, id);
        r = wait_request(c, id, &state);
        if (r != 0)
                return r;
        if (strcmp(state, "issued") == 0)
                return finish_issued(c, id);
        if (arg.json) {
                CliJson j;
                cli_json_init(&j, stdout);
                return explain_state(c, id, state, &j);
        }
        return explain_state(c, id, state, NULL);
}

static int verb_status(CertbrokerClient *c) {
        _cleanup_(certbroker_request_info_freep) CertbrokerRequestInfo *i = NULL;
        _cleanup_(certbroker_renewal_freep) CertbrokerRenewal *n = NULL;
        CertbrokerError e = CERTBROKER_ERROR_NULL;
        bool sealed = false;
        int r;

        r = certbroker_request_get(c, arg.operand, &i, &e);
        if (r < 0)
                return cli_fail_call(arg.json, &e, r, "Cannot read the request");
        r = certbroker_request_renewal(c, arg.operand, &n, &e);
        if (r < 0)
                return cli_fail_call(arg.json, &e, r, "Cannot read the request's renewal");
        r = certbroker_request_key_sealed(c, arg.operand, &sealed, &e);
        if (r < 0)
                return cli_fail_call(arg.json, &e, r, "Cannot read whether the request's key is sealed");
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
        return CLI_EXIT_OK;
}

static int verb_wait(CertbrokerClient *c) {
        _cleanup_free_ char *state = NULL;
        CliJson j;
        int r;

        r = wait_request(c, arg.operand, &state);
        if (r != 0)
                return r;
        cli_json_init(&j, stdout);
        r = explain_state(c, arg.operand, state, arg.json ? &j : NULL);
        if (!arg.json)
                printf("%s\n", state);
        return r;
}

static int verb_fetch(CertbrokerClient *c) {
        int r;

        r = outputs_precheck();
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
                return cli_fail_call(arg.json, &e, r, "Cannot list requests");
        cli_json_init(&j, stdout);
        if (arg.json)
                cli_json_begin(&j, '[');
        else if (n > 0)
                printf("%-16s  %-10s  %-10s  %-23s  %-23s  %-16s  %-16s  %s\n", "ID", "STATE", "CA", "CREATED",
                       "RENEW AT", "SUCCESSOR", "PREDECESSOR", "NAMES");
        for (size_t k = 0; k < n; k++) {
                _cleanup_(certbroker_request_info_freep) CertbrokerRequestInfo *i = NULL;
                _cleanup_(certbroker_renewal_freep) CertbrokerRenewal *rn = NULL;
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
                return cli_fail_call(arg.json, &e, r, cancel ? "Cannot cancel the request" : "Cannot remove the request");
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
        _cleanup_(certbroker_strv_freep) char **names = NULL;
        CertbrokerError e = CERTBROKER_ERROR_NULL;
        CliJson j;
        int r, code = CLI_EXIT_OK;

        r = certbroker_list_cas(c, &names, &e);
        if (r < 0)
                return cli_fail_call(arg.json, &e, r, "Cannot list the CAs");
        cli_json_init(&j, stdout);
        if (arg.json)
                cli_json_begin(&j, '[');
        else if (names[0])
                printf("%-12s  %-14s  %-11s  %-20s  %s\n", "NAME", "AUTHENTICATION", "CHALLENGE",
                       "LAST CONTACT", "URL");
        for (char **n = names; *n; n++) {
                _cleanup_(certbroker_ca_info_freep) CertbrokerCAInfo *i = NULL;
                char t[64];

                r = certbroker_ca_get(c, *n, &i, &e);
                if (r < 0) {
                        code = cli_fail_call(arg.json, &e, r, "Cannot read a CA");
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
        }
        if (arg.json && code == CLI_EXIT_OK)
                cli_json_end(&j, ']');
        else if (!names[0] && !arg.quiet && !arg.json)
                printf("No CAs configured.\n");
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
                return cli_fail_call(arg.json, &e, failed, "Cannot check the CA");
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
        CertbrokerRequestSpec spec = cli_args_spec(&arg);
        _cleanup_free_ char *rule = NULL, *reason = NULL;
        int allowed;

        allowed = certbroker_check_access_flags(c, &spec, arg.identity_self ? CERTBROKER_ENROLL_IDENTITY_SELF : 0,
                                                &rule, &reason, &e);
        if (allowed < 0)
                return cli_fail_call(arg.json, &e, allowed, "Cannot check access");
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
        return allowed ? CLI_EXIT_OK : CLI_EXIT_DENIED;
}

/* The commands that need no connection: help, version, and deploy (its own connection: it
 * may first drop privileges, and reconnects). */
static int verb_help(void) {
        help();
        return CLI_EXIT_OK;
}

static int verb_version(void) {
        if (arg.json)
                printf("{\"version\":\"%s\"}\n", CERTBROKER_VERSION);
        else
                printf("certbrokerctl %s\n", CERTBROKER_VERSION);
        return CLI_EXIT_OK;
}

static int verb_deploy(void) {
        return deploy_run(&arg);
}

/* What each command runs: without a connection, or on one to certbrokerd. */
static const struct {
        int (*local)(void);
        int (*on_bus)(CertbrokerClient *c);
} verbs[_CLI_COMMAND_MAX] = {
        [CLI_COMMAND_HELP]    = { .local = verb_help },
        [CLI_COMMAND_VERSION] = { .local = verb_version },
        [CLI_COMMAND_DEPLOY]  = { .local = verb_deploy },
        [CLI_COMMAND_ENROLL]  = { .on_bus = verb_enroll },
        [CLI_COMMAND_STATUS]  = { .on_bus = verb_status },
        [CLI_COMMAND_WAIT]    = { .on_bus = verb_wait },
        [CLI_COMMAND_FETCH]   = { .on_bus = verb_fetch },
        [CLI_COMMAND_LIST]    = { .on_bus = verb_list },
        [CLI_COMMAND_CANCEL]  = { .on_bus = verb_cancel_remove },
        [CLI_COMMAND_REMOVE]  = { .on_bus = verb_cancel_remove },
        [CLI_COMMAND_CAS]     = { .on_bus = verb_cas },
        [CLI_COMMAND_CHECK]   = { .on_bus = verb_check },
        [CLI_COMMAND_ACCESS]  = { .on_bus = verb_access },
};

/* Runs a command that talks to certbrokerd. */
static int run_on_bus(int (*verb)(CertbrokerClient *c)) {
        _cleanup_(certbroker_error_clear) CertbrokerError e = CERTBROKER_ERROR_NULL;
        CertbrokerClient *c = NULL;
        int r;

        r = certbroker_open(&c, &e);
        if (r < 0)
                return cli_fail(arg.json, CLI_EXIT_UNAVAILABLE, e.name, "%s", e.message ?: strerror(-r));
        r = verb(c);
        c = certbroker_close(c);
        if (fflush(stdout) != 0 && r == 0)
                return cli_fail(arg.json, CLI_EXIT_FAILURE, NULL, "Cannot write to standard output: %s",
                                strerror(errno));
        return r;
}

int main(int argc, char *argv[]) {
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
                        r = cli_fail(arg.json, CLI_EXIT_USAGE, NULL, "%s", err ?: "invalid command line");
                } else
                        r = cli_fail(arg.json, CLI_EXIT_FAILURE, NULL, "Cannot parse the command line: %s",
                                     strerror(-r));
                free(err);
                return r;
        }

        if (arg.command >= _CLI_COMMAND_MAX || (!verbs[arg.command].local && !verbs[arg.command].on_bus))
                r = cli_fail(arg.json, CLI_EXIT_FAILURE, NULL, "Internal error: command not handled.");
        else if (verbs[arg.command].local)
                r = verbs[arg.command].local();
        else
                r = run_on_bus(verbs[arg.command].on_bus);
        cli_args_done(&arg);
        return r;
}
