/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The pure parts of certbrokerctl: command-line parsing, exit codes, JSON strings, time
 * formatting. No bus, no files: unit-tested in tests/unit/client/. */

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "certbroker.h"

#define CLI_PROGRAM "certbrokerctl"

/* Exit codes (documented in --help and certbrokerctl(1)). */
enum {
        CLI_EXIT_OK = 0,
        CLI_EXIT_FAILURE = 1,           /* anything else: I/O, existing file, daemon error */
        CLI_EXIT_USAGE = 2,             /* bad command line, or the daemon's InvalidArgument */
        CLI_EXIT_DENIED = 3,            /* refused by policy (AccessDenied, NameNotPermitted,
                                         * KeyNotPermitted, QuotaExceeded; 'access' says no) */
        CLI_EXIT_REJECTED = 4,          /* the CA rejected the request; a 'check' step failed */
        CLI_EXIT_TIMEOUT = 5,           /* --timeout passed before the request ended */
        CLI_EXIT_REQUEST_FAILED = 6,    /* the request ended failed or cancelled */
        CLI_EXIT_UNAVAILABLE = 7,       /* no system bus, or certbrokerd is not running */
        CLI_EXIT_NOT_FOUND = 8,         /* no such request or CA */
};

/* The exit code for a failed call: its D-Bus error name (may be NULL) and errno (negative). */
int cli_exit_code_from_error(const char *error_name, int r);

/* The exit code for a request that ended in state (a non-terminal state: timeout). */
int cli_exit_code_from_state(const char *state);

typedef enum CliCommand {
        CLI_COMMAND_HELP,
        CLI_COMMAND_VERSION,
        CLI_COMMAND_ENROLL,
        CLI_COMMAND_STATUS,
        CLI_COMMAND_WAIT,
        CLI_COMMAND_FETCH,
        CLI_COMMAND_LIST,
        CLI_COMMAND_CANCEL,
        CLI_COMMAND_REMOVE,
        CLI_COMMAND_CAS,
        CLI_COMMAND_CHECK,
        CLI_COMMAND_ACCESS,
        CLI_COMMAND_DEPLOY,
        _CLI_COMMAND_MAX,
} CliCommand;

const char *cli_command_to_string(CliCommand c);

#define CLI_DNS_MAX 100U
#define CLI_TIMEOUT_INFINITY UINT64_MAX

typedef struct CliArgs {
        CliCommand command;
        bool json;
        bool quiet;
        bool force;
        bool no_wait;
        bool challenge;
        const char *ca;
        const char *subject;
        const char *key_type;
        const char *usage;
        const char *label;
        const char **dns;               /* NULL-terminated; the strings point into argv */
        size_t n_dns;
        const char *key_out;
        const char *cert_out;
        const char *chain_out;
        const char *dir;                /* deploy --dir */
        const char *reload;             /* deploy --reload */
        const char *config;             /* deploy --config */
        bool once;                      /* deploy --once */
        bool identity_self;             /* enroll/deploy --identity self */
        const char *reload_timeout;     /* deploy --reload-timeout, checked by deploy_parse_timeout() */
        const char *format;             /* deploy --format, checked by deploy_outputs_check() */
        const char *passphrase_file;    /* deploy --passphrase-file */
        const char *passphrase_credential; /* deploy --passphrase-credential */
        const char *nssdb;              /* deploy --nssdb */
        const char *nickname;           /* deploy --nickname */
        const char *operand;            /* the request id (status, wait, ...) or CA (check) */
        uint64_t timeout_usec;          /* CLI_TIMEOUT_INFINITY when not given */
} CliArgs;

/* Parses argv. Returns 0 and fills *ret; on a usage error returns -EINVAL and sets
 * *ret_error to a message naming the offending argument (malloc()ed). Free *ret with
 * cli_args_done(). Does not print. */
int cli_parse_args(int argc, char *argv[], CliArgs *ret, char **ret_error);
void cli_args_done(CliArgs *a);

/* Parses a non-negative number of seconds ("30", "1.5") into µs. */
int cli_parse_seconds(const char *s, uint64_t *ret_usec);

/* s as a JSON string literal (with the quotes), malloc()ed; NULL on ENOMEM. Escapes '"',
 * '\\' and every control character; other bytes (UTF-8) are copied. */
char *cli_json_string(const char *s);

/* Writes cli_json_string(s) to f. Returns 0 or -ENOMEM/-EIO. */
int cli_json_print_string(FILE *f, const char *s);

/* "2026-11-25 04:08:00 UTC" for µs since the epoch, "-" for 0. buf: at least 32 bytes. */
const char *cli_format_timestamp(char *buf, size_t size, uint64_t usec);

/* A minimal JSON writer for certbrokerctl --json: values are separated with commas as
 * needed; strings go through cli_json_string(). Nesting up to CLI_JSON_DEPTH_MAX. */
#define CLI_JSON_DEPTH_MAX 16
typedef struct CliJson {
        FILE *f;
        unsigned depth;
        bool has_items[CLI_JSON_DEPTH_MAX];
        bool after_key;
} CliJson;

void cli_json_init(CliJson *j, FILE *f);
void cli_json_begin(CliJson *j, char bracket);          /* '{' or '[' */
void cli_json_end(CliJson *j, char bracket);            /* '}' or ']' */
void cli_json_key(CliJson *j, const char *key);
void cli_json_str(CliJson *j, const char *s);
void cli_json_u64(CliJson *j, uint64_t v);
void cli_json_int(CliJson *j, int v);
void cli_json_bool(CliJson *j, bool b);
void cli_json_strv(CliJson *j, char *const *strv);      /* an array of strings; NULL: [] */
/* "key": value inside an object (cli_json_key() followed by the value). */
void cli_json_field_str(CliJson *j, const char *key, const char *s);
void cli_json_field_u64(CliJson *j, const char *key, uint64_t v);
void cli_json_field_int(CliJson *j, const char *key, int v);
void cli_json_field_bool(CliJson *j, const char *key, bool b);
void cli_json_field_strv(CliJson *j, const char *key, char *const *strv);

/* vasprintf() into a new string; NULL when out of memory. */
char *cli_vformat(const char *format, va_list ap) __attribute__((format(printf, 1, 0)));

/* Prints a failure ("certbrokerctl: message [name]" on stderr; with json also an error
 * object on stdout) and returns code, the exit code. name may be NULL. */
int cli_fail(bool json, int code, const char *name, const char *format, ...) __attribute__((format(printf, 4, 5)));

/* cli_fail() for a failed libcertbroker call: what, then the daemon's message; the exit code
 * follows the error's name. Clears *e. */
int cli_fail_call(bool json, CertbrokerError *e, int r, const char *what);

/* The request the command line describes (--ca, --subject, --dns, ...); borrows a's strings. */
CertbrokerRequestSpec cli_args_spec(const CliArgs *a);
