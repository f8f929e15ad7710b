/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* certbrokerctl's pure parts: JSON strings and the JSON writer, argument parsing, exit
 * codes, seconds, timestamps. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "certbroker.h"
#include "cli-util.h"

/* ---- JSON ---- */

static void assert_json_string(const char *in, const char *want) {
        char *got = cli_json_string(in);
        assert_non_null(got);
        assert_string_equal(got, want);
        free(got);
}

static void test_json_string(void **state) {
        assert_json_string("", "\"\"");
        assert_json_string(NULL, "\"\"");
        assert_json_string("web.a.example.com", "\"web.a.example.com\"");
        assert_json_string("say \"hi\"", "\"say \\\"hi\\\"\"");
        assert_json_string("back\\slash", "\"back\\\\slash\"");
        assert_json_string("\\\"", "\"\\\\\\\"\"");
        assert_json_string("a\nb\tc\rd", "\"a\\nb\\tc\\rd\"");
        assert_json_string("\x01\x1f\x7f", "\"\\u0001\\u001f\x7f\"");
        assert_json_string("\x1b[31m", "\"\\u001b[31m\"");
        /* UTF-8 passes through; '/' needs no escape */
        assert_json_string("Gr\xc3\xbc\xc3\x9f" "e/\xe2\x82\xac", "\"Gr\xc3\xbc\xc3\x9f" "e/\xe2\x82\xac\"");
        assert_json_string("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
                           "\"-----BEGIN CERTIFICATE-----\\nMIIB\\n-----END CERTIFICATE-----\\n\"");
}

static void test_json_string_every_byte(void **state) {
        /* Every byte 1..255 alone: the output is quoted, has no raw control character, and
         * decodes back (by our own minimal decoder) to the input. */
        for (int c = 1; c < 256; c++) {
                char in[2] = { (char) c, 0 };
                char *out = cli_json_string(in);
                size_t n;

                assert_non_null(out);
                n = strlen(out);
                assert_true(n >= 3);
                assert_int_equal(out[0], '"');
                assert_int_equal(out[n - 1], '"');
                for (size_t i = 0; i < n; i++)
                        assert_true((unsigned char) out[i] >= 0x20);
                if (c == '"' || c == '\\')
                        assert_int_equal(n, 4);
                else if (c < 0x20 && c != '\n' && c != '\t' && c != '\r') {
                        unsigned v;
                        assert_int_equal(n, 8);
                        assert_int_equal(sscanf(out, "\"\\u%4x\"", &v), 1);
                        assert_int_equal(v, (unsigned) c);
                } else if (c >= 0x20)
                        assert_int_equal(n, 3);
                free(out);
        }
}

static char *capture(void (*fn)(CliJson *j)) {
        char *buf = NULL;
        size_t size = 0;
        FILE *f = open_memstream(&buf, &size);
        CliJson j;

        assert_non_null(f);
        cli_json_init(&j, f);
        fn(&j);
        assert_int_equal(fclose(f), 0);
        return buf;
}

static void write_object(CliJson *j) {
        char *names[] = { "a.example.com", "b\"c", NULL };

        cli_json_begin(j, '{');
        cli_json_key(j, "id");
        cli_json_str(j, "0123456789abcdef");
        cli_json_key(j, "names");
        cli_json_strv(j, names);
        cli_json_key(j, "empty");
        cli_json_strv(j, NULL);
        cli_json_key(j, "n");
        cli_json_u64(j, UINT64_MAX);
        cli_json_key(j, "code");
        cli_json_int(j, -3);
        cli_json_key(j, "ok");
        cli_json_bool(j, true);
        cli_json_key(j, "nested");
        cli_json_begin(j, '[');
        cli_json_begin(j, '{');
        cli_json_key(j, "k\\");
        cli_json_bool(j, false);
        cli_json_end(j, '}');
        cli_json_begin(j, '{');
        cli_json_end(j, '}');
        cli_json_end(j, ']');
        cli_json_end(j, '}');
}

static void write_empty_array(CliJson *j) {
        cli_json_begin(j, '[');
        cli_json_end(j, ']');
}

static void test_json_writer(void **state) {
        char *s = capture(write_object);
        assert_string_equal(s, "{\"id\":\"0123456789abcdef\",\"names\":[\"a.example.com\",\"b\\\"c\"],"
                               "\"empty\":[],\"n\":18446744073709551615,\"code\":-3,\"ok\":true,"
                               "\"nested\":[{\"k\\\\\":false},{}]}\n");
        free(s);
        s = capture(write_empty_array);
        assert_string_equal(s, "[]\n");
        free(s);
}

/* ---- exit codes ---- */

static void test_exit_codes(void **state) {
        assert_int_equal(cli_exit_code_from_error(CERTBROKER_ERROR_ACCESS_DENIED, -EACCES), CLI_EXIT_DENIED);
        assert_int_equal(cli_exit_code_from_error(CERTBROKER_ERROR_NAME_NOT_PERMITTED, -EPERM), CLI_EXIT_DENIED);
        assert_int_equal(cli_exit_code_from_error(CERTBROKER_ERROR_KEY_NOT_PERMITTED, -EPERM), CLI_EXIT_DENIED);
        assert_int_equal(cli_exit_code_from_error(CERTBROKER_ERROR_QUOTA_EXCEEDED, -EDQUOT), CLI_EXIT_DENIED);
        assert_int_equal(cli_exit_code_from_error(CERTBROKER_ERROR_INVALID_ARGUMENT, -EINVAL), CLI_EXIT_USAGE);
        assert_int_equal(cli_exit_code_from_error(CERTBROKER_ERROR_UNKNOWN_CA, -ENXIO), CLI_EXIT_NOT_FOUND);
        assert_int_equal(cli_exit_code_from_error(CERTBROKER_ERROR_NO_SUCH_REQUEST, -ENOENT), CLI_EXIT_NOT_FOUND);
        assert_int_equal(cli_exit_code_from_error(CERTBROKER_ERROR_KEY_ALREADY_TAKEN, -ENOKEY), CLI_EXIT_FAILURE);
        assert_int_equal(cli_exit_code_from_error(CERTBROKER_ERROR_NOT_READY, -EBUSY), CLI_EXIT_FAILURE);
        assert_int_equal(cli_exit_code_from_error(CERTBROKER_ERROR_INVALID_CONFIGURATION, -EBADMSG), CLI_EXIT_FAILURE);
        assert_int_equal(cli_exit_code_from_error("org.freedesktop.DBus.Error.ServiceUnknown", -EHOSTUNREACH),
                         CLI_EXIT_UNAVAILABLE);
        assert_int_equal(cli_exit_code_from_error("org.freedesktop.DBus.Error.NameHasNoOwner", -ENXIO),
                         CLI_EXIT_UNAVAILABLE);
        assert_int_equal(cli_exit_code_from_error("org.freedesktop.DBus.Error.UnknownObject", -ENXIO),
                         CLI_EXIT_NOT_FOUND);
        assert_int_equal(cli_exit_code_from_error("org.example.Something", -EIO), CLI_EXIT_FAILURE);
        /* the library's own errors */
        assert_int_equal(cli_exit_code_from_error(NULL, -EINVAL), CLI_EXIT_USAGE);
        assert_int_equal(cli_exit_code_from_error(NULL, -ENOENT), CLI_EXIT_UNAVAILABLE);
        assert_int_equal(cli_exit_code_from_error(NULL, -ECONNREFUSED), CLI_EXIT_UNAVAILABLE);
        assert_int_equal(cli_exit_code_from_error(NULL, -ENOMEM), CLI_EXIT_FAILURE);

        assert_int_equal(cli_exit_code_from_state("issued"), CLI_EXIT_OK);
        assert_int_equal(cli_exit_code_from_state("rejected"), CLI_EXIT_REJECTED);
        assert_int_equal(cli_exit_code_from_state("failed"), CLI_EXIT_REQUEST_FAILED);
        assert_int_equal(cli_exit_code_from_state("cancelled"), CLI_EXIT_REQUEST_FAILED);
        assert_int_equal(cli_exit_code_from_state("pending"), CLI_EXIT_TIMEOUT);
        assert_int_equal(cli_exit_code_from_state("queued"), CLI_EXIT_TIMEOUT);
        assert_int_equal(cli_exit_code_from_state(NULL), CLI_EXIT_FAILURE);

        /* documented values never change */
        assert_int_equal(CLI_EXIT_OK, 0);
        assert_int_equal(CLI_EXIT_FAILURE, 1);
        assert_int_equal(CLI_EXIT_USAGE, 2);
        assert_int_equal(CLI_EXIT_DENIED, 3);
        assert_int_equal(CLI_EXIT_REJECTED, 4);
        assert_int_equal(CLI_EXIT_TIMEOUT, 5);
        assert_int_equal(CLI_EXIT_REQUEST_FAILED, 6);
        assert_int_equal(CLI_EXIT_UNAVAILABLE, 7);
        assert_int_equal(CLI_EXIT_NOT_FOUND, 8);
}

static void test_state_is_terminal(void **state) {
        assert_true(certbroker_state_is_terminal("issued"));
        assert_true(certbroker_state_is_terminal("rejected"));
        assert_true(certbroker_state_is_terminal("failed"));
        assert_true(certbroker_state_is_terminal("cancelled"));
        assert_false(certbroker_state_is_terminal("queued"));
        assert_false(certbroker_state_is_terminal("submitting"));
        assert_false(certbroker_state_is_terminal("pending"));
        assert_false(certbroker_state_is_terminal("retrying"));
        assert_false(certbroker_state_is_terminal(""));
        assert_false(certbroker_state_is_terminal(NULL));
}

/* ---- seconds and timestamps ---- */

static void test_parse_seconds(void **state) {
        uint64_t u = 42;

        assert_int_equal(cli_parse_seconds("0", &u), 0);
        assert_int_equal(u, 0);
        assert_int_equal(cli_parse_seconds("30", &u), 0);
        assert_int_equal(u, 30000000);
        assert_int_equal(cli_parse_seconds("0.5", &u), 0);
        assert_int_equal(u, 500000);
        assert_int_equal(cli_parse_seconds("1.000001", &u), 0);
        assert_int_equal(u, 1000001);
        assert_int_equal(cli_parse_seconds("2.1234567", &u), 0);      /* below a µs: dropped */
        assert_int_equal(u, 2123456);
        u = 42;
        assert_int_equal(cli_parse_seconds("", &u), -EINVAL);
        assert_int_equal(cli_parse_seconds(NULL, &u), -EINVAL);
        assert_int_equal(cli_parse_seconds("-1", &u), -EINVAL);
        assert_int_equal(cli_parse_seconds("1.", &u), -EINVAL);
        assert_int_equal(cli_parse_seconds(".5", &u), -EINVAL);
        assert_int_equal(cli_parse_seconds("5s", &u), -EINVAL);
        assert_int_equal(cli_parse_seconds(" 5", &u), -EINVAL);
        assert_int_equal(cli_parse_seconds("1e3", &u), -EINVAL);
        assert_int_equal(cli_parse_seconds("99999999999999999999", &u), -ERANGE);
        assert_int_equal(u, 42);
}

static void test_format_timestamp(void **state) {
        char buf[64];

        assert_string_equal(cli_format_timestamp(buf, sizeof buf, 0), "-");
        assert_string_equal(cli_format_timestamp(buf, sizeof buf, 1000000), "1970-01-01 00:00:01 UTC");
        assert_string_equal(cli_format_timestamp(buf, sizeof buf, 1795838880ULL * 1000000ULL + 999999),
                            "2026-11-28 04:08:00 UTC");
}

/* ---- argument parsing ---- */

/* Parses a NULL-terminated list of arguments (after the program name). */
static int parse(CliArgs *a, char **err, ...) {
        char *argv[64];
        int argc = 0;
        va_list ap;

        argv[argc++] = (char *) "certbrokerctl";
        va_start(ap, err);
        for (char *s; (s = va_arg(ap, char *)); )
                argv[argc++] = s;
        va_end(ap);
        argv[argc] = NULL;
        *err = NULL;
        return cli_parse_args(argc, argv, a, err);
}

static void assert_usage_error(const char *want, ...) {
        char *argv[64], *err = NULL;
        CliArgs a = {};
        int argc = 0;
        va_list ap;

        argv[argc++] = (char *) "certbrokerctl";
        va_start(ap, want);
        for (char *s; (s = va_arg(ap, char *)); )
                argv[argc++] = s;
        va_end(ap);
        argv[argc] = NULL;
        assert_int_equal(cli_parse_args(argc, argv, &a, &err), -EINVAL);
        assert_non_null(err);
        if (!strstr(err, want))
                fail_msg("usage error '%s' lacks '%s'", err, want);
        free(err);
}

static void test_parse_enroll(void **state) {
        CliArgs a;
        char *err;

        assert_int_equal(parse(&a, &err, "enroll", "--ca", "corp", "--subject", "CN=x,O=y", "--dns", "a.example.com",
                               "--dns=b.example.com", "--key-type", "ec:p256", "--usage", "signature",
                               "--label", "l\"\\", "--key-out", "k.pem", "--cert-out", "c.pem",
                               "--chain-out", "ch.pem", "--force", "--timeout", "1.5", "--json", "-q", NULL), 0);
        assert_null(err);
        assert_int_equal(a.command, CLI_COMMAND_ENROLL);
        assert_string_equal(a.ca, "corp");
        assert_string_equal(a.subject, "CN=x,O=y");
        assert_int_equal(a.n_dns, 2);
        assert_string_equal(a.dns[0], "a.example.com");
        assert_string_equal(a.dns[1], "b.example.com");
        assert_null(a.dns[2]);
        assert_string_equal(a.key_type, "ec:p256");
        assert_string_equal(a.usage, "signature");
        assert_string_equal(a.label, "l\"\\");
        assert_string_equal(a.key_out, "k.pem");
        assert_string_equal(a.cert_out, "c.pem");
        assert_string_equal(a.chain_out, "ch.pem");
        assert_true(a.force);
        assert_true(a.json);
        assert_true(a.quiet);
        assert_false(a.no_wait);
        assert_int_equal(a.timeout_usec, 1500000);
        cli_args_done(&a);

        /* options before the command, defaults */
        assert_int_equal(parse(&a, &err, "--json", "enroll", "--dns", "a.example.com", "--no-wait", NULL), 0);
        assert_int_equal(a.command, CLI_COMMAND_ENROLL);
        assert_true(a.json);
        assert_true(a.no_wait);
        assert_null(a.ca);
        assert_null(a.key_out);
        assert_int_equal(a.timeout_usec, CLI_TIMEOUT_INFINITY);
        cli_args_done(&a);

        /* --subject alone is enough */
        assert_int_equal(parse(&a, &err, "access", "--subject", "CN=a.example.com", NULL), 0);
        assert_int_equal(a.command, CLI_COMMAND_ACCESS);
        assert_int_equal(a.n_dns, 0);
        cli_args_done(&a);
}

static void test_parse_operands(void **state) {
        CliArgs a;
        char *err;

        assert_int_equal(parse(&a, &err, "status", "0123456789abcdef", NULL), 0);
        assert_int_equal(a.command, CLI_COMMAND_STATUS);
        assert_string_equal(a.operand, "0123456789abcdef");
        cli_args_done(&a);
        assert_int_equal(parse(&a, &err, "wait", "--timeout=0", "0123456789abcdef", NULL), 0);
        assert_int_equal(a.command, CLI_COMMAND_WAIT);
        assert_int_equal(a.timeout_usec, 0);
        cli_args_done(&a);
        assert_int_equal(parse(&a, &err, "check", "corp", "--challenge", NULL), 0);
        assert_int_equal(a.command, CLI_COMMAND_CHECK);
        assert_string_equal(a.operand, "corp");
        assert_true(a.challenge);
        cli_args_done(&a);
        assert_int_equal(parse(&a, &err, "fetch", "0123456789abcdef", "--key-out", "k", NULL), 0);
        assert_int_equal(a.command, CLI_COMMAND_FETCH);
        cli_args_done(&a);
        assert_int_equal(parse(&a, &err, "list", NULL), 0);
        assert_int_equal(a.command, CLI_COMMAND_LIST);
        cli_args_done(&a);
        assert_int_equal(parse(&a, &err, "cas", "--json", NULL), 0);
        assert_int_equal(a.command, CLI_COMMAND_CAS);
        cli_args_done(&a);
        assert_int_equal(parse(&a, &err, "cancel", "x", NULL), 0);
        assert_int_equal(a.command, CLI_COMMAND_CANCEL);
        cli_args_done(&a);
        assert_int_equal(parse(&a, &err, "remove", "x", NULL), 0);
        assert_int_equal(a.command, CLI_COMMAND_REMOVE);
        cli_args_done(&a);
        /* "--" ends options */
        assert_int_equal(parse(&a, &err, "status", "--", "--json", NULL), 0);
        assert_string_equal(a.operand, "--json");
        assert_false(a.json);
        cli_args_done(&a);
}

static void test_parse_deploy(void **state) {
        CliArgs a;
        char *err = NULL;

        assert_int_equal(parse(&a, &err, "deploy", "--dir", "/srv/x", "--dns", "a.example.com", "--reload", "true",
                               "--reload-timeout", "2.5", "--once", NULL), 0);
        assert_int_equal(a.command, CLI_COMMAND_DEPLOY);
        assert_string_equal(a.reload_timeout, "2.5");
        assert_true(a.once);
        cli_args_done(&a);
        /* the only options besides --once that --config takes */
        assert_int_equal(parse(&a, &err, "deploy", "--config=/etc/certbroker/deploy.d/web.conf",
                               "--reload-timeout=0", NULL), 0);
        assert_string_equal(a.reload_timeout, "0");
        cli_args_done(&a);
        assert_usage_error("Invalid --reload-timeout 'soon'", "deploy", "--dir", "/x", "--dns", "a", "--reload-timeout",
                           "soon", NULL);
        assert_usage_error("--reload-timeout given twice", "deploy", "--dir", "/x", "--dns", "a", "--reload-timeout",
                           "1", "--reload-timeout", "2", NULL);
        assert_usage_error("not valid with 'enroll'", "enroll", "--dns", "a", "--reload-timeout", "1", NULL);
        assert_usage_error("only --once and --reload-timeout", "deploy", "--config=/x", "--dir", "/y", NULL);
        /* --identity self: no --dns needed, none allowed */
        assert_int_equal(parse(&a, &err, "deploy", "--dir", "/srv/x", "--identity", "self", NULL), 0);
        assert_true(a.identity_self);
        assert_int_equal(a.n_dns, 0);
        cli_args_done(&a);
        assert_int_equal(parse(&a, &err, "enroll", "--identity", "self", "--key-out", "k", NULL), 0);
        assert_true(a.identity_self);
        cli_args_done(&a);
        assert_usage_error("Invalid --identity 'bob'", "enroll", "--identity", "bob", NULL);
        assert_usage_error("--identity self takes no --dns", "enroll", "--identity", "self", "--dns", "a", NULL);
        assert_int_equal(parse(&a, &err, "access", "--identity", "self", "--ca", "corp", NULL), 0);
        assert_true(a.identity_self);
        assert_int_equal(a.n_dns, 0);
        cli_args_done(&a);
        assert_usage_error("--identity self takes no --dns", "access", "--identity", "self", "--dns", "a", NULL);
        assert_usage_error("not valid with 'check'", "check", "corp", "--identity", "self", NULL);
        assert_usage_error("only --once and --reload-timeout", "deploy", "--config=/x", "--identity", "self", NULL);
        assert_usage_error("at most 88 bytes", "deploy", "--dir", "/x", "--dns", "a", "--label",
                           "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", NULL);
}

static void test_parse_help_version(void **state) {
        CliArgs a;
        char *err;

        assert_int_equal(parse(&a, &err, "--help", NULL), 0);
        assert_int_equal(a.command, CLI_COMMAND_HELP);
        cli_args_done(&a);
        assert_int_equal(parse(&a, &err, "-h", "enroll", "--bogus-but-later", NULL), -EINVAL);
        free(err);
        assert_int_equal(parse(&a, &err, "enroll", "-h", NULL), 0);
        assert_int_equal(a.command, CLI_COMMAND_HELP);
        cli_args_done(&a);
        assert_int_equal(parse(&a, &err, "help", NULL), 0);
        assert_int_equal(a.command, CLI_COMMAND_HELP);
        cli_args_done(&a);
        assert_int_equal(parse(&a, &err, "--version", NULL), 0);
        assert_int_equal(a.command, CLI_COMMAND_VERSION);
        cli_args_done(&a);
        assert_int_equal(parse(&a, &err, "version", NULL), 0);
        assert_int_equal(a.command, CLI_COMMAND_VERSION);
        cli_args_done(&a);
}

static void test_parse_errors(void **state) {
        char dns[64], *many[CLI_DNS_MAX * 2 + 8], *err = NULL;
        CliArgs a;
        int argc = 0;

        assert_usage_error("No command given", NULL);
        assert_usage_error("No command given", "--json", NULL);
        assert_usage_error("Unknown command 'frob'", "frob", NULL);
        assert_usage_error("Unknown option '--bogus'", "list", "--bogus", NULL);
        assert_usage_error("Unknown option '-x'", "list", "-x", NULL);
        assert_usage_error("Option '--ca' needs a value", "enroll", "--dns", "a", "--ca", NULL);
        assert_usage_error("Option --dns is not valid with 'list'", "list", "--dns", "a", NULL);
        assert_usage_error("Option --challenge is not valid with 'enroll'", "enroll", "--dns", "a", "--challenge", NULL);
        assert_usage_error("Option --key-out is not valid with 'access'", "access", "--dns", "a", "--key-out", "k", NULL);
        assert_usage_error("Option --timeout is not valid with 'status'", "status", "x", "--timeout", "1", NULL);
        assert_usage_error("Option --no-wait is not valid with 'fetch'", "fetch", "x", "--key-out", "k", "--no-wait", NULL);
        assert_usage_error("'list' takes no arguments, got 'x'", "list", "x", NULL);
        assert_usage_error("'enroll' takes no arguments", "enroll", "--dns", "a", "extra", NULL);
        assert_usage_error("'status' takes exactly one request id, got 0", "status", NULL);
        assert_usage_error("'cancel' takes exactly one request id, got 2", "cancel", "a", "b", NULL);
        assert_usage_error("'check' takes exactly one CA name", "check", NULL);
        assert_usage_error("needs at least one --dns", "enroll", NULL);
        assert_usage_error("needs at least one --dns", "access", "--ca", "corp", NULL);
        assert_usage_error("--dns needs a DNS name", "enroll", "--dns", "", NULL);
        assert_usage_error("Option --ca given twice", "enroll", "--dns", "a", "--ca", "x", "--ca", "y", NULL);
        assert_usage_error("Option --label given twice", "enroll", "--dns", "a", "--label", "x", "--label", "x", NULL);
        assert_usage_error("Option --timeout given twice", "wait", "x", "--timeout", "1", "--timeout", "2", NULL);
        assert_usage_error("Invalid --timeout 'soon'", "wait", "x", "--timeout", "soon", NULL);
        assert_usage_error("Invalid --timeout '-1'", "wait", "x", "--timeout=-1", NULL);
        assert_usage_error("--no-wait cannot be combined", "enroll", "--dns", "a", "--no-wait", "--key-out", "k", NULL);
        assert_usage_error("--no-wait cannot be combined", "enroll", "--dns", "a", "--no-wait", "--timeout", "1", NULL);
        assert_usage_error("--force only applies", "enroll", "--dns", "a", "--force", NULL);
        assert_usage_error("'fetch' needs --key-out", "fetch", "x", NULL);
        assert_usage_error("--key-out needs a file name", "fetch", "x", "--key-out", "", NULL);
        assert_usage_error("--key-out and --chain-out name the same file 'f'", "fetch", "x", "--key-out", "f",
                           "--chain-out", "f", NULL);

        /* at most CLI_DNS_MAX names */
        many[argc++] = (char *) "certbrokerctl";
        many[argc++] = (char *) "enroll";
        snprintf(dns, sizeof dns, "a.example.com");
        for (unsigned i = 0; i <= CLI_DNS_MAX; i++) {
                many[argc++] = (char *) "--dns";
                many[argc++] = dns;
        }
        many[argc] = NULL;
        assert_int_equal(cli_parse_args(argc, many, &a, &err), -EINVAL);
        assert_non_null(strstr(err, "Too many --dns names"));
        free(err);
        err = NULL;
        assert_int_equal(cli_parse_args(argc - 2, many, &a, &err), 0);
        assert_int_equal(a.n_dns, CLI_DNS_MAX);
        cli_args_done(&a);

        /* a NULL ret_error is fine */
        char *argv[] = { (char *) "certbrokerctl", (char *) "frob", NULL };
        assert_int_equal(cli_parse_args(2, argv, &a, NULL), -EINVAL);
}

static void test_command_names(void **state) {
        assert_string_equal(cli_command_to_string(CLI_COMMAND_ENROLL), "enroll");
        assert_string_equal(cli_command_to_string(CLI_COMMAND_ACCESS), "access");
        assert_null(cli_command_to_string(_CLI_COMMAND_MAX));
        assert_null(cli_command_to_string((CliCommand) -1));
        for (int c = 0; c < _CLI_COMMAND_MAX; c++)
                assert_non_null(cli_command_to_string((CliCommand) c));
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_json_string),
                cmocka_unit_test(test_json_string_every_byte),
                cmocka_unit_test(test_json_writer),
                cmocka_unit_test(test_exit_codes),
                cmocka_unit_test(test_state_is_terminal),
                cmocka_unit_test(test_parse_seconds),
                cmocka_unit_test(test_format_timestamp),
                cmocka_unit_test(test_parse_enroll),
                cmocka_unit_test(test_parse_operands),
                cmocka_unit_test(test_parse_deploy),
                cmocka_unit_test(test_parse_help_version),
                cmocka_unit_test(test_parse_errors),
                cmocka_unit_test(test_command_names),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
