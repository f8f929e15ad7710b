/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "basic.h"
#include "certbroker.h"
#include "cli-util.h"
#include "deploy-files.h"

/* ---- exit codes ---- */

int cli_exit_code_from_error(const char *name, int r) {
        static const struct {
                const char *name;
                int code;
        } map[] = {
                { CERTBROKER_ERROR_ACCESS_DENIED,        CLI_EXIT_DENIED },
                { CERTBROKER_ERROR_NAME_NOT_PERMITTED,   CLI_EXIT_DENIED },
                { CERTBROKER_ERROR_KEY_NOT_PERMITTED,    CLI_EXIT_DENIED },
                { CERTBROKER_ERROR_QUOTA_EXCEEDED,       CLI_EXIT_DENIED },
                { CERTBROKER_ERROR_INVALID_ARGUMENT,     CLI_EXIT_USAGE },
                { CERTBROKER_ERROR_UNKNOWN_CA,           CLI_EXIT_NOT_FOUND },
                { CERTBROKER_ERROR_NO_SUCH_REQUEST,      CLI_EXIT_NOT_FOUND },
                { "org.freedesktop.DBus.Error.UnknownObject", CLI_EXIT_NOT_FOUND },
                { "org.freedesktop.DBus.Error.ServiceUnknown", CLI_EXIT_UNAVAILABLE },
                { "org.freedesktop.DBus.Error.NameHasNoOwner", CLI_EXIT_UNAVAILABLE },
                { "org.freedesktop.DBus.Error.NoServer",  CLI_EXIT_UNAVAILABLE },
                { "org.freedesktop.DBus.Error.Disconnected", CLI_EXIT_UNAVAILABLE },
        };

        if (name) {
                for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
                        if (strcmp(name, map[i].name) == 0)
                                return map[i].code;
                return CLI_EXIT_FAILURE;
        }
        /* The library's own errors: a malformed argument, or no bus to talk to. */
        switch (r) {
        case -EINVAL:
                return CLI_EXIT_USAGE;
        case -ECONNREFUSED:
        case -ENOENT:
        case -ECONNRESET:
        case -ENOTCONN:
        case -ESHUTDOWN:
        case -EHOSTUNREACH:
                return CLI_EXIT_UNAVAILABLE;
        default:
                return CLI_EXIT_FAILURE;
        }
}

int cli_exit_code_from_state(const char *state) {
        if (!state)
                return CLI_EXIT_FAILURE;
        if (strcmp(state, "issued") == 0)
                return CLI_EXIT_OK;
        if (strcmp(state, "rejected") == 0)
                return CLI_EXIT_REJECTED;
        if (strcmp(state, "failed") == 0 || strcmp(state, "cancelled") == 0)
                return CLI_EXIT_REQUEST_FAILED;
        return CLI_EXIT_TIMEOUT;
}

/* ---- commands and options ---- */

static const char *const command_names[_CLI_COMMAND_MAX] = {
        [CLI_COMMAND_HELP]    = "help",
        [CLI_COMMAND_VERSION] = "version",
        [CLI_COMMAND_ENROLL]  = "enroll",
        [CLI_COMMAND_STATUS]  = "status",
        [CLI_COMMAND_WAIT]    = "wait",
        [CLI_COMMAND_FETCH]   = "fetch",
        [CLI_COMMAND_LIST]    = "list",
        [CLI_COMMAND_CANCEL]  = "cancel",
        [CLI_COMMAND_REMOVE]  = "remove",
        [CLI_COMMAND_CAS]     = "cas",
        [CLI_COMMAND_CHECK]   = "check",
        [CLI_COMMAND_ACCESS]  = "access",
        [CLI_COMMAND_DEPLOY]  = "deploy",
};

const char *cli_command_to_string(CliCommand c) {
        return c >= 0 && c < _CLI_COMMAND_MAX ? command_names[c] : NULL;
}

enum {
        OPT_HELP = 'h',
        OPT_QUIET = 'q',
        OPT_VERSION = 0x100,
        OPT_JSON,
        OPT_CA,
        OPT_SUBJECT,
        OPT_DNS,
        OPT_KEY_TYPE,
        OPT_USAGE,
        OPT_LABEL,
        OPT_KEY_OUT,
        OPT_CERT_OUT,
        OPT_CHAIN_OUT,
        OPT_FORCE,
        OPT_NO_WAIT,
        OPT_TIMEOUT,
        OPT_CHALLENGE,
        OPT_DIR,
        OPT_RELOAD,
        OPT_CONFIG,
        OPT_ONCE,
        OPT_RELOAD_TIMEOUT,
        OPT_IDENTITY,
        OPT_FORMAT,
        OPT_PASSPHRASE_FILE,
        OPT_PASSPHRASE_CREDENTIAL,
        OPT_NSSDB,
        OPT_NICKNAME,
};

#define B(c) (1U << (c))
#define ALL_COMMANDS (~0U)
#define SPEC_COMMANDS (B(CLI_COMMAND_ENROLL) | B(CLI_COMMAND_ACCESS) | B(CLI_COMMAND_DEPLOY))
#define OUT_COMMANDS (B(CLI_COMMAND_ENROLL) | B(CLI_COMMAND_FETCH))

static const struct {
        struct option opt;
        unsigned commands;      /* where the option is valid */
} options[] = {
        { { "help",      no_argument,       NULL, OPT_HELP },      ALL_COMMANDS },
        { { "version",   no_argument,       NULL, OPT_VERSION },   ALL_COMMANDS },
        { { "json",      no_argument,       NULL, OPT_JSON },      ALL_COMMANDS },
        { { "quiet",     no_argument,       NULL, OPT_QUIET },     ALL_COMMANDS },
        { { "ca",        required_argument, NULL, OPT_CA },        SPEC_COMMANDS },
        { { "subject",   required_argument, NULL, OPT_SUBJECT },   SPEC_COMMANDS },
        { { "dns",       required_argument, NULL, OPT_DNS },       SPEC_COMMANDS },
        { { "key-type",  required_argument, NULL, OPT_KEY_TYPE },  SPEC_COMMANDS },
        { { "usage",     required_argument, NULL, OPT_USAGE },     SPEC_COMMANDS },
        { { "label",     required_argument, NULL, OPT_LABEL },     SPEC_COMMANDS },
        { { "key-out",   required_argument, NULL, OPT_KEY_OUT },   OUT_COMMANDS },
        { { "cert-out",  required_argument, NULL, OPT_CERT_OUT },  OUT_COMMANDS },
        { { "chain-out", required_argument, NULL, OPT_CHAIN_OUT }, OUT_COMMANDS },
        { { "force",     no_argument,       NULL, OPT_FORCE },     OUT_COMMANDS },
        { { "no-wait",   no_argument,       NULL, OPT_NO_WAIT },   B(CLI_COMMAND_ENROLL) },
        { { "timeout",   required_argument, NULL, OPT_TIMEOUT },   B(CLI_COMMAND_ENROLL) | B(CLI_COMMAND_WAIT) },
        { { "challenge", no_argument,       NULL, OPT_CHALLENGE }, B(CLI_COMMAND_CHECK) },
        { { "dir",       required_argument, NULL, OPT_DIR },       B(CLI_COMMAND_DEPLOY) },
        { { "reload",    required_argument, NULL, OPT_RELOAD },    B(CLI_COMMAND_DEPLOY) },
        { { "config",    required_argument, NULL, OPT_CONFIG },    B(CLI_COMMAND_DEPLOY) },
        { { "once",      no_argument,       NULL, OPT_ONCE },      B(CLI_COMMAND_DEPLOY) },
        { { "reload-timeout", required_argument, NULL, OPT_RELOAD_TIMEOUT }, B(CLI_COMMAND_DEPLOY) },
        { { "identity",  required_argument, NULL, OPT_IDENTITY },  B(CLI_COMMAND_ENROLL) | B(CLI_COMMAND_DEPLOY) | B(CLI_COMMAND_ACCESS) },
        { { "format",    required_argument, NULL, OPT_FORMAT },    B(CLI_COMMAND_DEPLOY) },
        { { "passphrase-file", required_argument, NULL, OPT_PASSPHRASE_FILE }, B(CLI_COMMAND_DEPLOY) },
        { { "passphrase-credential", required_argument, NULL, OPT_PASSPHRASE_CREDENTIAL }, B(CLI_COMMAND_DEPLOY) },
        { { "nssdb",     required_argument, NULL, OPT_NSSDB },     B(CLI_COMMAND_DEPLOY) },
        { { "nickname",  required_argument, NULL, OPT_NICKNAME },  B(CLI_COMMAND_DEPLOY) },
};
#define N_OPTIONS (sizeof(options) / sizeof(options[0]))

static int usage_error(char **ret_error, const char *format, ...) __attribute__((format(printf, 2, 3)));
static int usage_error(char **ret_error, const char *format, ...) {
        va_list ap;

        if (!ret_error)
                return -EINVAL;
        va_start(ap, format);
        *ret_error = cli_vformat(format, ap);
        va_end(ap);
        return -EINVAL;
}

int cli_parse_seconds(const char *s, uint64_t *ret_usec) {
        uint64_t whole = 0, frac = 0, scale = 100000;
        const char *p = s;

        if (!s || !*s)
                return -EINVAL;
        if (*p < '0' || *p > '9')
                return -EINVAL;
        for (; *p >= '0' && *p <= '9'; p++) {
                if (whole > (UINT64_MAX / 1000000 - 9) / 10)
                        return -ERANGE;
                whole = whole * 10 + (uint64_t) (*p - '0');
        }
        if (*p == '.') {
                p++;
                if (*p < '0' || *p > '9')
                        return -EINVAL;
                for (; *p >= '0' && *p <= '9'; p++) {
                        frac += (uint64_t) (*p - '0') * scale;
                        scale /= 10;
                }
        }
        if (*p != 0)
                return -EINVAL;
        *ret_usec = whole * 1000000 + frac;
        return 0;
}

static int set_once(const char **slot, const char *value, const char *name, char **ret_error) {
        if (*slot)
                return usage_error(ret_error, "Option --%s given twice.", name);
        *slot = value;
        return 0;
}

void cli_args_done(CliArgs *a) {
        if (!a)
                return;
        free(a->dns);
        a->dns = NULL;
        a->n_dns = 0;
}

int cli_parse_args(int argc, char *argv[], CliArgs *ret, char **ret_error) {
        struct option longopts[N_OPTIONS + 1];
        bool seen[N_OPTIONS] = {};
        _cleanup_(cli_args_done) CliArgs a = { .command = _CLI_COMMAND_MAX, .timeout_usec = CLI_TIMEOUT_INFINITY };
        const char *timeout = NULL;
        int c, r, n_operands;
        char **operands;

        for (size_t i = 0; i < N_OPTIONS; i++)
                longopts[i] = options[i].opt;
        longopts[N_OPTIONS] = (struct option) {};

        a.dns = calloc(1, sizeof(char *));
        if (!a.dns)
                return -ENOMEM;

        optind = 0;             /* glibc: full re-initialisation, so that tests can parse again */
        opterr = 0;
        while ((c = getopt_long(argc, argv, ":hq", longopts, NULL)) >= 0) {
                for (size_t i = 0; i < N_OPTIONS; i++)
                        if (options[i].opt.val == c)
                                seen[i] = true;
                switch (c) {
                case OPT_HELP:
                        a.command = CLI_COMMAND_HELP;
                        break;
                case OPT_VERSION:
                        a.command = CLI_COMMAND_VERSION;
                        break;
                case OPT_JSON:
                        a.json = true;
                        break;
                case OPT_QUIET:
                        a.quiet = true;
                        break;
                case OPT_CA:
                        r = set_once(&a.ca, optarg, "ca", ret_error);
                        if (r < 0)
                                return r;
                        break;
                case OPT_SUBJECT:
                        r = set_once(&a.subject, optarg, "subject", ret_error);
                        if (r < 0)
                                return r;
                        break;
                case OPT_DNS: {
                        const char **l;
                        if (a.n_dns >= CLI_DNS_MAX)
                                return usage_error(ret_error, "Too many --dns names: at most %u.", CLI_DNS_MAX);
                        if (!*optarg)
                                return usage_error(ret_error, "--dns needs a DNS name, not an empty string.");
                        l = realloc(a.dns, (a.n_dns + 2) * sizeof(char *));
                        if (!l)
                                return -ENOMEM;
                        a.dns = l;
                        a.dns[a.n_dns++] = optarg;
                        a.dns[a.n_dns] = NULL;
                        break;
                }
                case OPT_KEY_TYPE:
                        r = set_once(&a.key_type, optarg, "key-type", ret_error);
                        if (r < 0)
                                return r;
                        break;
                case OPT_USAGE:
                        r = set_once(&a.usage, optarg, "usage", ret_error);
                        if (r < 0)
                                return r;
                        break;
                case OPT_LABEL:
                        r = set_once(&a.label, optarg, "label", ret_error);
                        if (r < 0)
                                return r;
                        break;
                case OPT_KEY_OUT:
                        r = set_once(&a.key_out, optarg, "key-out", ret_error);
                        if (r < 0)
                                return r;
                        break;
                case OPT_CERT_OUT:
                        r = set_once(&a.cert_out, optarg, "cert-out", ret_error);
                        if (r < 0)
                                return r;
                        break;
                case OPT_CHAIN_OUT:
                        r = set_once(&a.chain_out, optarg, "chain-out", ret_error);
                        if (r < 0)
                                return r;
                        break;
                case OPT_FORCE:
                        a.force = true;
                        break;
                case OPT_NO_WAIT:
                        a.no_wait = true;
                        break;
                case OPT_TIMEOUT:
                        r = set_once(&timeout, optarg, "timeout", ret_error);
                        if (r < 0)
                                return r;
                        if (cli_parse_seconds(optarg, &a.timeout_usec) < 0)
                                return usage_error(ret_error, "Invalid --timeout '%s': expected a number of "
                                                   "seconds (e.g. 30 or 0.5).", optarg);
                        break;
                case OPT_CHALLENGE:
                        a.challenge = true;
                        break;
                case OPT_DIR:
                        r = set_once(&a.dir, optarg, "dir", ret_error);
                        if (r < 0)
                                return r;
                        break;
                case OPT_RELOAD:
                        r = set_once(&a.reload, optarg, "reload", ret_error);
                        if (r < 0)
                                return r;
                        break;
                case OPT_CONFIG:
                        r = set_once(&a.config, optarg, "config", ret_error);
                        if (r < 0)
                                return r;
                        break;
                case OPT_ONCE:
                        a.once = true;
                        break;
                case OPT_IDENTITY:
                        if (strcmp(optarg, "self") != 0)
                                return usage_error(ret_error, "Invalid --identity '%s': the only identity is self "
                                                   "(your own user name and UPN).", optarg);
                        a.identity_self = true;
                        break;
                case OPT_RELOAD_TIMEOUT: {
                        uint64_t usec;
                        r = set_once(&a.reload_timeout, optarg, "reload-timeout", ret_error);
                        if (r < 0)
                                return r;
                        if (deploy_parse_timeout(optarg, &usec) < 0)
                                return usage_error(ret_error, "Invalid --reload-timeout '%s': expected seconds "
                                                   "(60, 2.5, 90s, 5min, 1h; 0 or infinity: none).", optarg);
                        break;
                }
                case OPT_FORMAT:
                        r = set_once(&a.format, optarg, "format", ret_error);
                        if (r < 0)
                                return r;
                        break;
                case OPT_PASSPHRASE_FILE:
                        r = set_once(&a.passphrase_file, optarg, "passphrase-file", ret_error);
                        if (r < 0)
                                return r;
                        break;
                case OPT_PASSPHRASE_CREDENTIAL:
                        r = set_once(&a.passphrase_credential, optarg, "passphrase-credential", ret_error);
                        if (r < 0)
                                return r;
                        break;
                case OPT_NSSDB:
                        r = set_once(&a.nssdb, optarg, "nssdb", ret_error);
                        if (r < 0)
                                return r;
                        break;
                case OPT_NICKNAME:
                        r = set_once(&a.nickname, optarg, "nickname", ret_error);
                        if (r < 0)
                                return r;
                        break;
                case ':':
                        return usage_error(ret_error, "Option '%s' needs a value.", argv[optind - 1]);
                case '?':
                default:
                        if (optopt && optopt < 0x100 && optopt != '?')
                                return usage_error(ret_error, "Unknown option '-%c' (see --help).", optopt);
                        return usage_error(ret_error, "Unknown option '%s' (see --help).", argv[optind - 1]);
                }
        }

        operands = argv + optind;
        n_operands = argc - optind;

        if (a.command != _CLI_COMMAND_MAX) {       /* --help and --version win over everything */
                *ret = a;
                a = (CliArgs) {};
                return 0;
        }
        if (n_operands == 0)
                return usage_error(ret_error, "No command given (see --help).");
        for (int i = 0; i < _CLI_COMMAND_MAX; i++)
                if (strcmp(operands[0], command_names[i]) == 0)
                        a.command = (CliCommand) i;
        if (a.command == _CLI_COMMAND_MAX)
                return usage_error(ret_error, "Unknown command '%s' (see --help).", operands[0]);
        operands++;
        n_operands--;

        for (size_t i = 0; i < N_OPTIONS; i++)
                if (seen[i] && !(options[i].commands & B(a.command)))
                        return usage_error(ret_error, "Option --%s is not valid with '%s' (see --help).",
                                           options[i].opt.name, command_names[a.command]);

        switch (a.command) {
        case CLI_COMMAND_HELP:
        case CLI_COMMAND_VERSION:
        case CLI_COMMAND_LIST:
        case CLI_COMMAND_CAS:
        case CLI_COMMAND_ENROLL:
        case CLI_COMMAND_ACCESS:
        case CLI_COMMAND_DEPLOY:
                if (n_operands > 0)
                        return usage_error(ret_error, "'%s' takes no arguments, got '%s'.",
                                           command_names[a.command], operands[0]);
                break;
        default:
                if (n_operands != 1)
                        return usage_error(ret_error, "'%s' takes exactly one %s, got %d arguments.",
                                           command_names[a.command],
                                           a.command == CLI_COMMAND_CHECK ? "CA name" : "request id",
                                           n_operands);
                a.operand = operands[0];
        }

        if (a.command == CLI_COMMAND_DEPLOY) {
                if (a.config && (a.dir || a.reload || a.ca || a.subject || a.n_dns > 0 || a.key_type ||
                                 a.usage || a.label || a.identity_self || a.format || a.passphrase_file ||
                                 a.passphrase_credential || a.nssdb || a.nickname))
                        return usage_error(ret_error, "'deploy --config FILE' takes its directory, reload "
                                           "command, formats and request from FILE: only --once and "
                                           "--reload-timeout may be added.");
                if (!a.config) {
                        DeployOutputs o = {
                                .passphrase_file = a.passphrase_file, .passphrase_credential = a.passphrase_credential,
                                .nssdb = a.nssdb, .nickname = a.nickname,
                        };
                        _cleanup_free_ char *w = NULL;
                        if (deploy_outputs_check(a.format, &o, false, &w) < 0)
                                return usage_error(ret_error, "'deploy': %s.", w ?: "invalid output settings");
                }
                if (!a.config && (!a.dir || !*a.dir))
                        return usage_error(ret_error, "'deploy' needs --dir DIR (or --config FILE).");
                if (a.reload && !*a.reload)
                        return usage_error(ret_error, "--reload needs a command.");
                if (a.label && strlen(a.label) > DEPLOY_USER_LABEL_MAX)
                        return usage_error(ret_error, "'deploy --label' is at most %u bytes (the rest of Enroll's "
                                           "128 carries the deployment's token).", (unsigned) DEPLOY_USER_LABEL_MAX);
        }
        if ((a.command == CLI_COMMAND_ENROLL || a.command == CLI_COMMAND_ACCESS ||
             (a.command == CLI_COMMAND_DEPLOY && !a.config)) &&
            a.n_dns == 0 && !a.subject && !a.identity_self)
                return usage_error(ret_error, "'%s' needs at least one --dns NAME (or --subject, or --identity self).",
                                   command_names[a.command]);
        if (a.identity_self && (a.n_dns > 0 || a.subject))
                return usage_error(ret_error, "--identity self takes no --dns or --subject: the broker derives the "
                                   "subject and the UPN from your account.");
        if (a.no_wait && (a.key_out || a.cert_out || a.chain_out || timeout))
                return usage_error(ret_error, "--no-wait cannot be combined with --key-out, --cert-out, "
                                   "--chain-out or --timeout: run 'certbrokerctl fetch ID' later.");
        if (a.force && !a.key_out && !a.cert_out && !a.chain_out)
                return usage_error(ret_error, "--force only applies to --key-out, --cert-out and --chain-out.");
        if (a.command == CLI_COMMAND_FETCH && !a.key_out && !a.cert_out && !a.chain_out)
                return usage_error(ret_error, "'fetch' needs --key-out, --cert-out or --chain-out.");
        {
                const char *outs[] = { a.key_out, a.cert_out, a.chain_out };
                const char *names[] = { "key-out", "cert-out", "chain-out" };
                for (size_t i = 0; i < 3; i++) {
                        if (outs[i] && !*outs[i])
                                return usage_error(ret_error, "--%s needs a file name.", names[i]);
                        for (size_t j = i + 1; j < 3; j++)
                                if (outs[i] && outs[j] && strcmp(outs[i], outs[j]) == 0)
                                        return usage_error(ret_error, "--%s and --%s name the same file '%s'.",
                                                           names[i], names[j], outs[i]);
                }
        }

        *ret = a;
        a = (CliArgs) {};
        return 0;
}

/* ---- JSON ---- */

char *cli_json_string(const char *s) {
        size_t n = 2;
        char *out, *p;

        if (!s)
                s = "";
        for (const unsigned char *q = (const unsigned char *) s; *q; q++)
                n += (*q == '"' || *q == '\\') ? 2 : *q < 0x20 ? 6 : 1;
        out = malloc(n + 1);
        if (!out)
                return NULL;
        p = out;
        *p++ = '"';
        for (const unsigned char *q = (const unsigned char *) s; *q; q++) {
                switch (*q) {
                case '"':
                        *p++ = '\\';
                        *p++ = '"';
                        break;
                case '\\':
                        *p++ = '\\';
                        *p++ = '\\';
                        break;
                case '\n':
                        *p++ = '\\';
                        *p++ = 'n';
                        break;
                case '\t':
                        *p++ = '\\';
                        *p++ = 't';
                        break;
                case '\r':
                        *p++ = '\\';
                        *p++ = 'r';
                        break;
                default:
                        if (*q < 0x20) {
                                static const char hex[] = "0123456789abcdef";
                                *p++ = '\\';
                                *p++ = 'u';
                                *p++ = '0';
                                *p++ = '0';
                                *p++ = hex[*q >> 4];
                                *p++ = hex[*q & 0xf];
                        } else
                                *p++ = (char) *q;
                }
        }
        *p++ = '"';
        *p = 0;
        return out;
}

int cli_json_print_string(FILE *f, const char *s) {
        char *j = cli_json_string(s);
        int r;

        if (!j)
                return -ENOMEM;
        r = fputs(j, f) < 0 ? -EIO : 0;
        free(j);
        return r;
}

/* ---- time ---- */

const char *cli_format_timestamp(char *buf, size_t size, uint64_t usec) {
        time_t t;
        struct tm tm;

        if (usec == 0) {
                snprintf(buf, size, "-");
                return buf;
        }
        t = (time_t) (usec / 1000000ULL);
        if (!gmtime_r(&t, &tm) || strftime(buf, size, "%Y-%m-%d %H:%M:%S UTC", &tm) == 0)
                snprintf(buf, size, "@%llu", (unsigned long long) (usec / 1000000ULL));
        return buf;
}

/* ---- JSON writer ---- */

void cli_json_init(CliJson *j, FILE *f) {
        *j = (CliJson) { .f = f };
}

static void json_separate(CliJson *j) {
        if (j->after_key) {
                j->after_key = false;
                return;
        }
        if (j->depth > 0 && j->depth <= CLI_JSON_DEPTH_MAX) {
                if (j->has_items[j->depth - 1])
                        fputc(',', j->f);
                j->has_items[j->depth - 1] = true;
        }
}

void cli_json_begin(CliJson *j, char bracket) {
        json_separate(j);
        fputc(bracket, j->f);
        j->depth++;
        if (j->depth <= CLI_JSON_DEPTH_MAX)
                j->has_items[j->depth - 1] = false;
}

void cli_json_end(CliJson *j, char bracket) {
        fputc(bracket, j->f);
        if (j->depth > 0)
                j->depth--;
        if (j->depth == 0)
                fputc('\n', j->f);
}

void cli_json_key(CliJson *j, const char *key) {
        json_separate(j);
        (void) cli_json_print_string(j->f, key);
        fputc(':', j->f);
        j->after_key = true;
}

void cli_json_str(CliJson *j, const char *s) {
        json_separate(j);
        (void) cli_json_print_string(j->f, s);
}

void cli_json_u64(CliJson *j, uint64_t v) {
        json_separate(j);
        fprintf(j->f, "%llu", (unsigned long long) v);
}

void cli_json_int(CliJson *j, int v) {
        json_separate(j);
        fprintf(j->f, "%d", v);
}

void cli_json_bool(CliJson *j, bool b) {
        json_separate(j);
        fputs(b ? "true" : "false", j->f);
}

void cli_json_strv(CliJson *j, char *const *strv) {
        cli_json_begin(j, '[');
        for (char *const *s = strv; s && *s; s++)
                cli_json_str(j, *s);
        cli_json_end(j, ']');
}

/* "key": value, in an object. */
void cli_json_field_str(CliJson *j, const char *key, const char *s) {
        cli_json_key(j, key);
        cli_json_str(j, s);
}

void cli_json_field_u64(CliJson *j, const char *key, uint64_t v) {
        cli_json_key(j, key);
        cli_json_u64(j, v);
}

void cli_json_field_int(CliJson *j, const char *key, int v) {
        cli_json_key(j, key);
        cli_json_int(j, v);
}

void cli_json_field_bool(CliJson *j, const char *key, bool b) {
        cli_json_key(j, key);
        cli_json_bool(j, b);
}

void cli_json_field_strv(CliJson *j, const char *key, char *const *strv) {
        cli_json_key(j, key);
        cli_json_strv(j, strv);
}

/* ---- failures ---- */

char *cli_vformat(const char *format, va_list ap) {
        char *s;

        if (vasprintf(&s, format, ap) < 0)
                return NULL;
        return s;
}

int cli_fail(bool json, int code, const char *name, const char *format, ...) {
        _cleanup_free_ char *msg = NULL;
        va_list ap;

        va_start(ap, format);
        msg = cli_vformat(format, ap);
        va_end(ap);
        fprintf(stderr, "%s: %s", CLI_PROGRAM, msg ?: "out of memory");
        if (name)
                fprintf(stderr, " [%s]", name);
        fputc('\n', stderr);
        if (json) {
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
        return code;
}

int cli_fail_call(bool json, CertbrokerError *e, int r, const char *what) {
        int code = cli_fail(json, cli_exit_code_from_error(e->name, r), e->name, "%s: %s", what,
                            e->message ?: strerror(-r));

        /* Not certbroker_error_clear(): this file is also linked without libcertbroker. */
        free(e->name);
        free(e->message);
        *e = CERTBROKER_ERROR_NULL;
        return code;
}

CertbrokerRequestSpec cli_args_spec(const CliArgs *a) {
        return (CertbrokerRequestSpec) {
                .ca = a->ca,
                .subject = a->subject,
                .names = a->dns,
                .key_type = a->key_type,
                .usage = a->usage,
                .label = a->label,
        };
}
