/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <arpa/inet.h>
#include <errno.h>
#include <ini.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "cb-config.h"
#include "cb-names.h"
#include "cb-subject.h"
#include "util.h"

/* inih (as Debian builds it) reads lines into a 200-byte stack buffer and splits longer lines
 * silently. Our reader hands it one line at a time; a line that would not fit is handed over
 * as "Key=" and its value is kept aside for the handler. */
#define INIH_SAFE_LINE 190U
/* Key names are short; this also bounds what read_line() copies into inih's buffer. */
#define KEY_NAME_MAX 64U

/* Values shown in messages are cut to this many bytes. */
#define SHOW_MAX 96

typedef enum SourceKind {
        SOURCE_MAIN,
        SOURCE_CA,
        SOURCE_POLICY,
        _SOURCE_KIND_MAX,
} SourceKind;

typedef enum SectionKind {
        SECTION_NONE,
        SECTION_KERBEROS,
        SECTION_BROKER,
        SECTION_CA,
        SECTION_RULE,
} SectionKind;

typedef struct Parser Parser;
typedef int (*KeyParser)(Parser *p, const char *key, const char *value);

typedef struct KeyDesc {
        const char *name;
        KeyParser parse;
} KeyDesc;

#define KEYS_MAX 24

struct Parser {
        CbConfig *config;
        CbConfigError *error;
        int r;                          /* first error, 0 while fine */

        const CbConfigSource *src;
        SourceKind kind;
        const char *pos, *end;
        unsigned line;
        char *long_value;

        SectionKind section;
        unsigned section_line;
        unsigned seen_line[KEYS_MAX];   /* per key of the current section: line, 0 = unset */
        unsigned kerberos_line, broker_line, ca_line;

        unsigned realm_line, principal_line, kdc_line;
        CbCa *ca;
        CbRule *rule;
};

/* ---- errors ---------------------------------------------------------------------------- */

static int parser_fail_atv(Parser *p, unsigned line, int r, const char *fmt, va_list ap)
        __attribute__((format(printf, 4, 0)));

static int parser_fail_atv(Parser *p, unsigned line, int r, const char *fmt, va_list ap) {
        if (p->r == 0) {
                p->r = r;
                if (p->error) {
                        snprintf(p->error->path, sizeof p->error->path, "%s",
                                 p->src && p->src->path ? p->src->path : "");
                        p->error->line = line;
                        vsnprintf(p->error->message, sizeof p->error->message, fmt, ap);
                }
        }
        return p->r;
}

static int parser_fail_at(Parser *p, unsigned line, int r, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));

static int parser_fail_at(Parser *p, unsigned line, int r, const char *fmt, ...) {
        va_list ap;

        va_start(ap, fmt);
        r = parser_fail_atv(p, line, r, fmt, ap);
        va_end(ap);
        return r;
}

/* The same, for a failure found outside the parse of src (a whole file, or a check across files). */
static int parser_fail_in(Parser *p, const CbConfigSource *src, unsigned line, int r, const char *fmt, ...)
        __attribute__((format(printf, 5, 6)));

static int parser_fail_in(Parser *p, const CbConfigSource *src, unsigned line, int r, const char *fmt, ...) {
        va_list ap;

        p->src = src;
        va_start(ap, fmt);
        r = parser_fail_atv(p, line, r, fmt, ap);
        va_end(ap);
        return r;
}

#define parser_fail(p, ...) parser_fail_at((p), (p)->line, -EINVAL, __VA_ARGS__)

static int parser_oom(Parser *p) {
        if (p->r == 0)
                p->r = -ENOMEM;
        return -ENOMEM;
}

char *cb_config_error_format(const CbConfigError *e, char *buf, size_t size) {
        if (!buf || size == 0)
                return buf;
        if (!e) {
                snprintf(buf, size, "unknown configuration error");
                return buf;
        }
        if (e->line > 0)
                snprintf(buf, size, "%s:%u: %s", e->path, e->line, e->message);
        else
                snprintf(buf, size, "%s: %s", e->path, e->message);
        return buf;
}

/* ---- value helpers --------------------------------------------------------------------- */

static int parse_bool(const char *v) {
        static const char *const yes[] = { "yes", "true", "on", "1" };
        static const char *const no[] = { "no", "false", "off", "0" };
        for (size_t i = 0; i < ELEMENTSOF(yes); i++)
                if (strcasecmp(v, yes[i]) == 0)
                        return 1;
        for (size_t i = 0; i < ELEMENTSOF(no); i++)
                if (strcasecmp(v, no[i]) == 0)
                        return 0;
        return -EINVAL;
}

static int parse_uint64(const char *v, uint64_t min, uint64_t max, uint64_t *ret) {
        uint64_t x = 0;
        if (!ascii_isdigit(*v))
                return -EINVAL;
        for (; *v; v++) {
                if (!ascii_isdigit(*v))
                        return -EINVAL;
                if (x > (UINT64_MAX - 9) / 10)
                        return -ERANGE;
                x = x * 10 + (uint64_t) (*v - '0');
        }
        if (x < min || x > max)
                return -ERANGE;
        *ret = x;
        return 0;
}

static int parse_unsigned_key(Parser *p, const char *key, const char *v, unsigned min, unsigned max,
                              unsigned *ret) {
        uint64_t x;
        if (parse_uint64(v, min, max, &x) < 0)
                return parser_fail(p, "%s=%.*s is not a whole number from %u to %u", key, SHOW_MAX, v, min, max);
        *ret = (unsigned) x;
        return 0;
}

static int parse_seconds_key(Parser *p, const char *key, const char *v, uint64_t min, uint64_t max,
                             uint64_t *ret) {
        uint64_t x;
        if (parse_uint64(v, min, max, &x) < 0)
                return parser_fail(p, "%s=%.*s is not a number of seconds from %llu to %llu", key, SHOW_MAX, v,
                                   (unsigned long long) min, (unsigned long long) max);
        *ret = x * CB_USEC_PER_SEC;
        return 0;
}

/* A time span: a number of seconds, or a number followed by s, m, h or d ("30d", "12h",
 * "90s", "3600"). */
static int parse_timespan(const char *v, uint64_t min_sec, uint64_t max_sec, uint64_t *ret_sec) {
        char num[24];
        uint64_t x, unit = 1;
        size_t l = strlen(v);
        int r;

        if (l == 0 || l >= sizeof num)
                return -EINVAL;
        memcpy(num, v, l + 1);
        switch (num[l - 1]) {
        case 's': unit = 1; break;
        case 'm': unit = 60; break;
        case 'h': unit = 3600; break;
        case 'd': unit = 86400; break;
        default:
                if (!ascii_isdigit(num[l - 1]))
                        return -EINVAL;
                l++;
        }
        num[l - 1] = 0;
        r = parse_uint64(num, 0, UINT64_MAX / 86400 / CB_USEC_PER_SEC, &x);
        if (r < 0)
                return r;
        x *= unit;
        if (x < min_sec || x > max_sec)
                return -ERANGE;
        *ret_sec = x;
        return 0;
}

static int parse_timespan_key(Parser *p, const char *key, const char *v, uint64_t min_sec, uint64_t max_sec,
                              uint64_t *ret_usec) {
        uint64_t x;
        if (parse_timespan(v, min_sec, max_sec, &x) < 0)
                return parser_fail(p, "%s=%.*s is not a time span from %llus to %llud: give seconds or a number "
                                   "with s, m, h or d (e.g. %s=30d, 12h, 90s)", key, SHOW_MAX, v,
                                   (unsigned long long) min_sec, (unsigned long long) (max_sec / 86400), key);
        *ret_usec = x * CB_USEC_PER_SEC;
        return 0;
}

/* COUNT/WINDOW ("20/1h"), or "unlimited" (*ret_count 0); -EINVAL for anything else. */
static int rate_parse(const char *v, unsigned *ret_count, uint64_t *ret_window_usec) {
        const char *slash = strchr(v, '/');
        char num[16], win[16];
        uint64_t n, w = 1, unit;
        size_t l;

        if (strcmp(v, "unlimited") == 0) {
                *ret_count = 0;
                *ret_window_usec = 0;
                return 0;
        }
        if (!slash || (size_t) (slash - v) >= sizeof num || strlen(slash + 1) >= sizeof win)
                return -EINVAL;
        memcpy(num, v, slash - v);
        num[slash - v] = 0;
        strcpy(win, slash + 1);
        if (parse_uint64(num, 1, 1000000, &n) < 0)
                return -EINVAL;
        l = strlen(win);
        if (l == 0)
                return -EINVAL;
        switch (win[l - 1]) {
        case 's': unit = 1; break;
        case 'm': unit = 60; break;
        case 'h': unit = 3600; break;
        case 'd': unit = 86400; break;
        default: return -EINVAL;
        }
        win[l - 1] = 0;
        if (win[0] && parse_uint64(win, 1, 31622400, &w) < 0)
                return -EINVAL;
        if (w * unit > 31622400)
                return -EINVAL;
        *ret_count = (unsigned) n;
        *ret_window_usec = w * unit * CB_USEC_PER_SEC;
        return 0;
}

static int parse_rate(Parser *p, const char *key, const char *v, unsigned *ret_count, uint64_t *ret_window_usec) {
        if (rate_parse(v, ret_count, ret_window_usec) < 0)
                return parser_fail(p, "%s=%.*s is not COUNT/WINDOW: COUNT 1..1000000, WINDOW a number with "
                                   "s, m, h or d, at most 366 days (e.g. %s=20/1h), or %s=unlimited", key, SHOW_MAX, v,
                                   key, key);
        return 0;
}

static int parse_bool_key(Parser *p, const char *key, const char *v, bool *ret) {
        int b = parse_bool(v);
        if (b < 0)
                return parser_fail(p, "%s=%.*s is not a boolean: use yes or no", key, SHOW_MAX, v);
        *ret = b;
        return 0;
}

static int set_string(Parser *p, char **field, const char *v) {
        char *s = strdup(v);
        if (!s)
                return parser_oom(p);
        free(*field);
        *field = s;
        return 0;
}

static bool path_is_valid(const char *v) {
        if (v[0] != '/' || strlen(v) > 4095)
                return false;
        for (const char *c = v; *c; c++)
                if ((uint8_t) *c < 0x20 || *c == 0x7f)
                        return false;
        return utf8_is_valid_n(v, strlen(v));
}

static int parse_path_key(Parser *p, const char *key, const char *v, char **field) {
        if (!path_is_valid(v))
                return parser_fail(p, "%s=%.*s is not an absolute path: give the full path starting with /",
                                   key, SHOW_MAX, v);
        return set_string(p, field, v);
}

/* The length of the word at v: up to a space or tab; with escapes, a backslash keeps the next
 * character in the word. */
static size_t word_length(const char *v, bool escapes) {
        size_t n = 0;

        if (!escapes)
                return strcspn(v, " \t");
        while (v[n] && v[n] != ' ' && v[n] != '\t')
                n += v[n] == '\\' && v[n + 1] ? 2 : 1;
        return n;
}

/* Splits v into words (word_length()) and calls f for each, at most CB_CONFIG_LIST_MAX. */
static int for_each_word_full(Parser *p, const char *key, const char *v, bool escapes,
                              int (*f)(Parser *p, const char *key, const char *word, void *userdata),
                              void *userdata) {
        size_t count = 0;
        int r;

        for (;;) {
                _cleanup_free_ char *w = NULL;
                size_t n;

                v += strspn(v, " \t");
                if (!*v)
                        return 0;
                n = word_length(v, escapes);
                if (++count > CB_CONFIG_LIST_MAX)
                        return parser_fail_at(p, p->line, -E2BIG, "%s= has more than %u values", key,
                                              CB_CONFIG_LIST_MAX);
                w = strndup(v, n);
                if (!w)
                        return parser_oom(p);
                r = f(p, key, w, userdata);
                if (r < 0)
                        return r;
                v += n;
        }
}

/* Splits v on spaces and tabs and calls f for each word. */
static int for_each_word(Parser *p, const char *key, const char *v,
                         int (*f)(Parser *p, const char *key, const char *word, void *userdata),
                         void *userdata) {
        return for_each_word_full(p, key, v, false, f, userdata);
}

/* Like for_each_word(), but a backslash keeps the next character in the word ("O=Tenant\ A"
 * is one word); the backslash stays for the callback to unescape. */
static int for_each_escaped_word(Parser *p, const char *key, const char *v,
                                 int (*f)(Parser *p, const char *key, const char *word, void *userdata),
                                 void *userdata) {
        return for_each_word_full(p, key, v, true, f, userdata);
}

/* ---- [Kerberos] ------------------------------------------------------------------------ */

static int parse_realm(Parser *p, const char *key, const char *v) {
        for (const char *c = v; *c; c++)
                if (!ascii_isalpha(*c) && !ascii_isdigit(*c) && *c != '.' && *c != '-')
                        return parser_fail(p, "Realm=%.*s is not a Kerberos realm: use the Active Directory "
                                           "domain in upper case, e.g. Realm=EXAMPLE.COM", SHOW_MAX, v);
        p->realm_line = p->line;
        return set_string(p, &p->config->realm, v);
}

static int kdc_add(Parser *p, const char *key, const char *w, void *userdata) {
        const char *host = w, *port = NULL;
        char buf[256];
        const char *why = NULL;

        if (strlen(w) >= sizeof buf)
                return parser_fail(p, "KDC=%.*s is too long", SHOW_MAX, w);
        strcpy(buf, w);

        if (buf[0] == '[') {
                char *close = strchr(buf, ']');
                struct in6_addr a6;
                if (!close)
                        return parser_fail(p, "KDC=%.*s: an IPv6 address needs a closing ']'", SHOW_MAX, w);
                *close = 0;
                if (inet_pton(AF_INET6, buf + 1, &a6) != 1)
                        return parser_fail(p, "KDC=%.*s is not a valid IPv6 address", SHOW_MAX, w);
                if (close[1] == ':')
                        port = close + 2;
                else if (close[1])
                        return parser_fail(p, "KDC=%.*s: expected ':PORT' after ']'", SHOW_MAX, w);
        } else {
                char *colon = strchr(buf, ':');
                if (colon) {
                        *colon = 0;
                        port = colon + 1;
                }
                host = buf;
                struct in_addr a4;
                bool is_ipv4 = inet_pton(AF_INET, host, &a4) == 1;
                if (!is_ipv4 && cb_name_normalize(host, strlen(host), NULL, 0, NULL, &why) < 0)
                        return parser_fail(p, "KDC=%.*s: the host %s; give host or host:port "
                                           "(a DNS name, an IPv4 address or [IPv6])", SHOW_MAX, w,
                                           why ? why : "is invalid");
        }
        if (port) {
                uint64_t x;
                if (parse_uint64(port, 1, 65535, &x) < 0)
                        return parser_fail(p, "KDC=%.*s: the port is not a number from 1 to 65535", SHOW_MAX, w);
        }

        char *s = strdup(w);
        if (!s || strv_push(&p->config->kdcs, &p->config->n_kdcs, s) < 0) {
                free(s);
                return parser_oom(p);
        }
        for (char *c = s; *c && *c != ':' && *c != ']'; c++)
                *c = ascii_tolower(*c);
        return 0;
}

static int parse_kdc(Parser *p, const char *key, const char *v) {
        p->kdc_line = p->line;
        return for_each_word(p, key, v, kdc_add, NULL);
}

/* KDC= names go through the suffix guard once PermittedSuffix is known (it may be set after
 * [Kerberos]). IP literals are allowed: a KDC is not trusted by its name (no ticket is ever
 * asked for the KDC's host, and the KDC proves itself with the realm's keys), so an address
 * opens no path to another service the way an HTTP or TLS host name would. */
static int kdcs_check_suffix(Parser *p) {
        const CbConfig *c = p->config;

        for (size_t i = 0; i < c->n_kdcs; i++) {
                const char *k = c->kdcs[i], *why = NULL;
                char host[256];
                struct in_addr a4;

                if (k[0] == '[')
                        continue;       /* an IPv6 literal (checked by kdc_add()) */
                size_t n = strcspn(k, ":");
                if (n >= sizeof host)
                        continue;       /* kdc_add() refuses these */
                memcpy(host, k, n);
                host[n] = 0;
                if (inet_pton(AF_INET, host, &a4) == 1)
                        continue;
                int r = cb_name_normalize(host, n, c->permitted_suffix, 0, NULL, &why);
                if (r == -ENOMEM)
                        return parser_oom(p);
                if (r < 0)
                        return parser_fail_at(p, p->kdc_line, -EINVAL,
                                              "KDC=%s: the host %s is not under PermittedSuffix=%s: every configured "
                                              "host must be; give the domain controller's name in the domain (or its "
                                              "IP address), or widen PermittedSuffix= in [Broker]", k, host,
                                              c->permitted_suffix);
        }
        return 0;
}

static int parse_principal(Parser *p, const char *key, const char *v) {
        const char *at = strrchr(v, '@');
        if (!at || at == v || !at[1])
                return parser_fail(p, "Principal=%.*s is not user@REALM: give the service user's principal, "
                                   "e.g. Principal=svc-scep@EXAMPLE.COM", SHOW_MAX, v);
        for (const char *c = v; *c; c++)
                if ((uint8_t) *c <= 0x20 || (uint8_t) *c >= 0x7f)
                        return parser_fail(p, "Principal=%.*s contains spaces, control or non-ASCII characters",
                                           SHOW_MAX, v);
        if (memchr(v, '@', at - v))
                return parser_fail(p, "Principal=%.*s contains more than one '@'", SHOW_MAX, v);
        p->principal_line = p->line;
        return set_string(p, &p->config->principal, v);
}

static int parse_keytab(Parser *p, const char *key, const char *v) {
        return parse_path_key(p, key, v, &p->config->keytab);
}

static int parse_mode(Parser *p, const char *key, const char *v) {
        CbKerberosMode m = cb_kerberos_mode_from_string(v);
        if (m < 0)
                return parser_fail(p, "Mode=%.*s is not a mode: use keytab or gss-proxy", SHOW_MAX, v);
        p->config->mode = m;
        return 0;
}

/* ---- [Broker] -------------------------------------------------------------------------- */

static int parse_permitted_suffix(Parser *p, const char *key, const char *v) {
        const char *why = NULL;
        char *n = NULL;
        int r = cb_name_normalize(v, strlen(v), NULL, 0, &n, &why);
        if (r == -ENOMEM)
                return parser_oom(p);
        if (r < 0)
                return parser_fail(p, "PermittedSuffix=%.*s %s; give a DNS domain such as example.com",
                                   SHOW_MAX, v, why);
        free(p->config->permitted_suffix);
        p->config->permitted_suffix = n;
        return 0;
}

static int parse_root_bypasses_rules(Parser *p, const char *key, const char *v) {
        return parse_bool_key(p, key, v, &p->config->root_bypasses_rules);
}

static int parse_state_directory(Parser *p, const char *key, const char *v) {
        return parse_path_key(p, key, v, &p->config->state_directory);
}

static int key_pool_add(Parser *p, const char *key, const char *w, void *userdata) {
        const char *eq = strrchr(w, '=');
        char type[32];
        uint64_t count;

        if (!eq || (size_t) (eq - w) >= sizeof type)
                return parser_fail(p, "KeyPool= entry '%.*s' is not TYPE=COUNT, e.g. KeyPool=rsa:2048=4 ec:p256=8",
                                   SHOW_MAX, w);
        memcpy(type, w, eq - w);
        type[eq - w] = 0;
        CbKeyType t = cb_key_type_from_string(type);
        if (t < 0)
                return parser_fail(p, "KeyPool= entry '%.*s': '%s' is not a key type: use rsa:2048, rsa:3072, "
                                   "rsa:4096, ec:p256 or ec:p384", SHOW_MAX, w, type);
        if (parse_uint64(eq + 1, 1, 1024, &count) < 0)
                return parser_fail(p, "KeyPool= entry '%.*s': the count is not a number from 1 to 1024",
                                   SHOW_MAX, w);
        for (size_t i = 0; i < p->config->n_key_pool; i++)
                if (p->config->key_pool[i].type == t)
                        return parser_fail(p, "KeyPool= names %s twice", type);

        CbKeyPoolEntry *n = realloc(p->config->key_pool, (p->config->n_key_pool + 1) * sizeof(CbKeyPoolEntry));
        if (!n)
                return parser_oom(p);
        p->config->key_pool = n;
        n[p->config->n_key_pool++] = (CbKeyPoolEntry) { .type = t, .count = (unsigned) count };
        return 0;
}

static int parse_key_pool(Parser *p, const char *key, const char *v) {
        return for_each_word(p, key, v, key_pool_add, NULL);
}

static int parse_default_max_requests(Parser *p, const char *key, const char *v) {
        return parse_rate(p, key, v, &p->config->default_max_requests,
                          &p->config->default_max_requests_window_usec);
}

static int parse_retain_finished(Parser *p, const char *key, const char *v) {
        return parse_timespan_key(p, key, v, 60, CB_RETAIN_FINISHED_MAX_SEC, &p->config->retain_finished_usec);
}

static int parse_max_stored_requests(Parser *p, const char *key, const char *v) {
        return parse_unsigned_key(p, key, v, 1, 1000000, &p->config->max_stored_requests);
}

static int parse_metrics_textfile_directory(Parser *p, const char *key, const char *v) {
        return parse_path_key(p, key, v, &p->config->metrics_textfile_directory);
}

/* ---- [CA] ------------------------------------------------------------------------------ */

static int parse_url_into(Parser *p, const char *key, const char *v, char **url, char **host) {
        const char *why = NULL;
        char *h = NULL;
        int r = cb_url_check(v, p->config->permitted_suffix, &h, &why);
        if (r == -ENOMEM)
                return parser_oom(p);
        if (r < 0)
                return parser_fail(p, "%s=%.*s %s; give an https:// (or http://) URL whose host is a DNS "
                                   "name under PermittedSuffix=%s", key, SHOW_MAX, v, why,
                                   p->config->permitted_suffix);
        free(*host);
        *host = h;
        return set_string(p, url, v);
}

/* One word of URL= or AdminURL= (userdata: bool *admin), appended to the CA's servers. */
static int server_url_add(Parser *p, const char *key, const char *word, void *userdata) {
        bool admin = *(bool *) userdata;
        CbCa *ca = p->ca;
        size_t *n = admin ? &ca->n_admin_urls : &ca->n_servers;
        char ***urls = admin ? &ca->server_admin_urls : &ca->server_urls;
        char ***hosts = admin ? &ca->server_admin_url_hosts : &ca->server_url_hosts;
        int r;

        if (*n >= CB_CA_SERVERS_MAX)
                return parser_fail(p, "%s= names more than %u servers", key, CB_CA_SERVERS_MAX);
        for (size_t i = 0; i < *n; i++)
                if (strcmp((*urls)[i], word) == 0)
                        return parser_fail(p, "%s= names %.*s twice", key, SHOW_MAX, word);
        if (!*urls) {
                *urls = calloc(CB_CA_SERVERS_MAX, sizeof(char *));
                *hosts = calloc(CB_CA_SERVERS_MAX, sizeof(char *));
                if (!*urls || !*hosts)
                        return parser_oom(p);
        }
        r = parse_url_into(p, key, word, &(*urls)[*n], &(*hosts)[*n]);
        if (r < 0)
                return r;
        (*n)++;
        return 0;
}

static int parse_url(Parser *p, const char *key, const char *v) {
        bool admin = false;
        return for_each_word(p, key, v, server_url_add, &admin);
}

static int parse_admin_url(Parser *p, const char *key, const char *v) {
        bool admin = true;
        return for_each_word(p, key, v, server_url_add, &admin);
}

static int parse_failback(Parser *p, const char *key, const char *v) {
        return parse_seconds_key(p, key, v, 1, 86400, &p->ca->failback_usec);
}

static int parse_server_selection(Parser *p, const char *key, const char *v) {
        if (strcmp(v, "in-order") == 0)
                p->ca->round_robin = false;
        else if (strcmp(v, "round-robin") == 0)
                p->ca->round_robin = true;
        else
                return parser_fail(p, "ServerSelection=%.*s: use in-order or round-robin", SHOW_MAX, v);
        return 0;
}

int cb_ca_server_index(const CbCa *ca, const char *url) {
        if (!ca || !url)
                return -ENOENT;
        for (size_t i = 0; i < ca->n_servers; i++)
                if (strcmp(ca->server_urls[i], url) == 0)
                        return (int) i;
        return -ENOENT;
}

static int parse_authentication(Parser *p, const char *key, const char *v) {
        CbAuthentication a = cb_authentication_from_string(v);
        if (a < 0)
                return parser_fail(p, "Authentication=%.*s: use kerberos or none", SHOW_MAX, v);
        p->ca->authentication = a;
        return 0;
}

static int parse_challenge(Parser *p, const char *key, const char *v) {
        CbChallengeMode c = cb_challenge_mode_from_string(v);
        if (c < 0)
                return parser_fail(p, "Challenge=%.*s: use mscep-admin, static or none", SHOW_MAX, v);
        p->ca->challenge = c;
        return 0;
}

static int parse_renewal(Parser *p, const char *key, const char *v) {
        CbRenewalMode m = cb_renewal_mode_from_string(v);
        if (m < 0)
                return parser_fail(p, "Renewal=%.*s: use reenroll, scep-renewal or auto", SHOW_MAX, v);
        p->ca->renewal = m;
        return 0;
}

static int parse_challenge_file(Parser *p, const char *key, const char *v) {
        return parse_path_key(p, key, v, &p->ca->challenge_file);
}

static int parse_trust_anchors(Parser *p, const char *key, const char *v) {
        return parse_path_key(p, key, v, &p->ca->trust_anchors);
}

/* "sha256:" and 64 hex digits, with ':' between every pair or none; -EINVAL otherwise. */
static int fingerprint_parse(const char *v, uint8_t ret[32]) {
        uint8_t fp[32];
        const char *h;
        size_t n = 0;
        bool colons;

        if (strncasecmp(v, "sha256:", 7) != 0)
                return -EINVAL;
        h = v + 7;
        colons = strlen(h) == 95;
        if (!colons && strlen(h) != 64)
                return -EINVAL;
        for (size_t i = 0; i < 32; i++) {
                if (!ascii_isxdigit(h[0]) || !ascii_isxdigit(h[1]))
                        return -EINVAL;
                fp[n++] = (uint8_t) (unhexchar(h[0]) << 4 | unhexchar(h[1]));
                h += 2;
                if (colons && i < 31) {
                        if (*h != ':')
                                return -EINVAL;
                        h++;
                }
        }
        memcpy(ret, fp, sizeof fp);
        return 0;
}

static int parse_ca_fingerprint(Parser *p, const char *key, const char *v) {
        if (fingerprint_parse(v, p->ca->fingerprint) < 0)
                return parser_fail(p, "CAFingerprint=%.*s is not sha256:<64 hex digits> (pairs may be separated by "
                                   "':'); get it with: openssl x509 -in ca.pem -noout -fingerprint -sha256",
                                   SHOW_MAX, v);
        p->ca->has_fingerprint = true;
        return 0;
}

static int parse_default_key(Parser *p, const char *key, const char *v) {
        CbKeyType t = cb_key_type_from_string(v);
        if (t < 0)
                return parser_fail(p, "DefaultKey=%.*s: use rsa:2048, rsa:3072, rsa:4096, ec:p256 or ec:p384",
                                   SHOW_MAX, v);
        p->ca->default_key = t;
        return 0;
}

static int parse_max_outstanding(Parser *p, const char *key, const char *v) {
        return parse_unsigned_key(p, key, v, 1, 64, &p->ca->max_outstanding_challenges);
}

static int parse_timeout(Parser *p, const char *key, const char *v) {
        return parse_seconds_key(p, key, v, 1, 3600, &p->ca->timeout_usec);
}

static int parse_poll_interval(Parser *p, const char *key, const char *v) {
        return parse_seconds_key(p, key, v, 1, 86400, &p->ca->poll_interval_usec);
}

static int parse_pending_deadline(Parser *p, const char *key, const char *v) {
        return parse_seconds_key(p, key, v, 1, 31536000, &p->ca->pending_deadline_usec);
}

uint64_t cb_lead_usec(const CbLead *l, uint64_t lifetime_usec) {
        if (!l->percent)
                return l->usec;
        return lifetime_usec / 100 * l->value + lifetime_usec % 100 * l->value / 100;
}

/* "33%" (min_percent..100) or a time span (min_percent s..3650d: RenewJitter= may be 0);
 * -EINVAL for anything else. */
static int lead_parse(const char *v, unsigned min_percent, CbLead *ret) {
        size_t n = strlen(v);
        uint64_t x;

        if (n > 1 && v[n - 1] == '%') {
                char num[8];
                if (n - 1 >= sizeof num)
                        return -EINVAL;
                memcpy(num, v, n - 1);
                num[n - 1] = 0;
                if (parse_uint64(num, min_percent, 100, &x) < 0)
                        return -EINVAL;
                *ret = (CbLead) { .percent = true, .value = (unsigned) x };
                return 0;
        }
        if (parse_timespan(v, min_percent, 3650ULL * 86400ULL, &x) < 0)
                return -EINVAL;
        *ret = (CbLead) { .usec = x * CB_USEC_PER_SEC };
        return 0;
}

static int parse_lead(Parser *p, const char *key, const char *v, unsigned min_percent, CbLead *ret) {
        if (lead_parse(v, min_percent, ret) < 0)
                return parser_fail(p, "%s=%.*s is neither a share of the certificate's lifetime (%u%% to 100%%, "
                                   "e.g. %s=33%%) nor a time span (seconds, or a number with s, m, h or d: 30d, "
                                   "12h, 90s)", key, SHOW_MAX, v, min_percent, key);
        return 0;
}

static int parse_renew_before(Parser *p, const char *key, const char *v) {
        return parse_lead(p, key, v, 1, &p->ca->renew_before);
}

static int parse_renew_jitter(Parser *p, const char *key, const char *v) {
        return parse_lead(p, key, v, 0, &p->ca->renew_jitter);
}

static int parse_allow_legacy(Parser *p, const char *key, const char *v) {
        return parse_bool_key(p, key, v, &p->ca->allow_legacy_ciphers);
}

static int parse_install_trust(Parser *p, const char *key, const char *v) {
        return parse_bool_key(p, key, v, &p->ca->install_trust);
}

static int parse_default(Parser *p, const char *key, const char *v) {
        int r = parse_bool_key(p, key, v, &p->ca->is_default);
        if (r >= 0 && p->ca->is_default)
                p->ca->default_line = p->line;
        return r;
}

/* ---- [Rule] ---------------------------------------------------------------------------- */

static int rule_name_parse(Parser *p, const char *key, const char *v) {
        if (strlen(v) > 128)
                return parser_fail(p, "Name= is longer than 128 bytes");
        for (const char *c = v; *c; c++)
                if (!ascii_isalpha(*c) && !ascii_isdigit(*c) && !strchr("-_.@", *c))
                        return parser_fail(p, "Name=%.*s: rule names may contain letters, digits, '-', '_', '.' "
                                           "and '@' only", SHOW_MAX, v);
        return set_string(p, &p->rule->name, v);
}

static bool is_decimal(const char *s) {
        if (!*s)
                return false;
        for (; *s; s++)
                if (!ascii_isdigit(*s))
                        return false;
        return true;
}

static int user_add(Parser *p, const char *key, const char *w, void *userdata) {
        bool groups = userdata != NULL;
        uint64_t x;

        if (is_decimal(w)) {
                if (parse_uint64(w, 0, UINT32_MAX - 1, &x) < 0)
                        return parser_fail(p, "%s=%.*s is not a valid %s", key, SHOW_MAX, w, groups ? "gid" : "uid");
        } else {
                if (strlen(w) > 256 || w[0] == '-' || !utf8_is_valid_n(w, strlen(w)))
                        return parser_fail(p, "%s=: '%.*s' is not a valid %s name", key, SHOW_MAX, w,
                                           groups ? "group" : "user");
        }
        char *s = strdup(w);
        if (!s)
                return parser_oom(p);
        if (strv_push(groups ? &p->rule->groups : &p->rule->users,
                      groups ? &p->rule->n_groups : &p->rule->n_users, s) < 0) {
                free(s);
                return parser_oom(p);
        }
        return 0;
}

static int rule_users_parse(Parser *p, const char *key, const char *v) {
        return for_each_word(p, key, v, user_add, NULL);
}

static int rule_groups_parse(Parser *p, const char *key, const char *v) {
        return for_each_word(p, key, v, user_add, (void *) 1);
}

static bool unit_name_is_valid(const char *w) {
        if (strlen(w) > 255 || w[0] == '.' || !strchr(w, '.'))
                return false;
        for (const char *c = w; *c; c++)
                if (!ascii_isalpha(*c) && !ascii_isdigit(*c) && !strchr(":_.\\@-", *c))
                        return false;
        return true;
}

static int unit_add(Parser *p, const char *key, const char *w, void *userdata) {
        if (!unit_name_is_valid(w))
                return parser_fail(p, "Units=: '%.*s' is not a systemd unit name (e.g. nginx.service)", SHOW_MAX, w);
        char *s = strdup(w);
        if (!s || strv_push(&p->rule->units, &p->rule->n_units, s) < 0) {
                free(s);
                return parser_oom(p);
        }
        return 0;
}

static int rule_units_parse(Parser *p, const char *key, const char *v) {
        return for_each_word(p, key, v, unit_add, NULL);
}

static bool selinux_type_is_valid(const char *w) {
        if (strlen(w) > 255)
                return false;
        for (const char *c = w; *c; c++)
                if (!ascii_isalpha(*c) && !ascii_isdigit(*c) && *c != '_')
                        return false;
        return true;
}

static int selinux_type_add(Parser *p, const char *key, const char *w, void *userdata) {
        if (!selinux_type_is_valid(w))
                return parser_fail(p, "SELinuxTypes=: '%.*s' is not an SELinux type (e.g. httpd_t; give the type, "
                                   "not the whole label)", SHOW_MAX, w);
        char *s = strdup(w);
        if (!s || strv_push(&p->rule->selinux_types, &p->rule->n_selinux_types, s) < 0) {
                free(s);
                return parser_oom(p);
        }
        return 0;
}

static int rule_selinux_types_parse(Parser *p, const char *key, const char *v) {
        return for_each_word(p, key, v, selinux_type_add, NULL);
}

static int ca_ref_add(Parser *p, const char *key, const char *w, void *userdata) {
        if (!cb_ca_name_is_valid(w))
                return parser_fail(p, "CAs=: '%.*s' is not a CA name (the name of a ca.d/NAME.conf file: "
                                   "letters, digits, '-' and '_')", SHOW_MAX, w);
        char *s = strdup(w);
        if (!s || strv_push(&p->rule->cas, &p->rule->n_cas, s) < 0) {
                free(s);
                return parser_oom(p);
        }
        return 0;
}

static int rule_cas_parse(Parser *p, const char *key, const char *v) {
        p->rule->cas_line = p->line;
        return for_each_word(p, key, v, ca_ref_add, NULL);
}

static int pattern_add(Parser *p, const char *key, const char *w, void *userdata) {
        const char *why = NULL;
        char *n = NULL;
        int r = cb_name_pattern_normalize(w, p->config->permitted_suffix, &n, &why);
        if (r == -ENOMEM)
                return parser_oom(p);
        if (r < 0) {
                if (streq_ptr(why, "is not under the permitted suffix"))
                        return parser_fail(p, "Names=: pattern '%.*s' is outside PermittedSuffix=%s: every "
                                           "pattern must lie inside it", SHOW_MAX, w, p->config->permitted_suffix);
                return parser_fail(p, "Names=: pattern '%.*s' %s", SHOW_MAX, w, why);
        }
        if (strv_push(&p->rule->names, &p->rule->n_names, n) < 0) {
                free(n);
                return parser_oom(p);
        }
        return 0;
}

static int rule_names_parse(Parser *p, const char *key, const char *v) {
        return for_each_word(p, key, v, pattern_add, NULL);
}

static int key_type_add(Parser *p, const char *key, const char *w, void *userdata) {
        CbKeyType t = cb_key_type_from_string(w);
        if (t < 0)
                return parser_fail(p, "Keys=: '%.*s' is not a key type: use rsa:2048, rsa:3072, rsa:4096, "
                                   "ec:p256 or ec:p384", SHOW_MAX, w);
        p->rule->keys[t] = true;
        p->rule->keys_set = true;
        return 0;
}

static int rule_keys_parse(Parser *p, const char *key, const char *v) {
        return for_each_word(p, key, v, key_type_add, NULL);
}

static int usage_add(Parser *p, const char *key, const char *w, void *userdata) {
        CbUsage u = cb_usage_from_string(w);
        if (u < 0)
                return parser_fail(p, "Usages=: '%.*s' is not a usage: use signature, encryption or both (the "
                                   "values of the Enroll option usage)", SHOW_MAX, w);
        p->rule->usages[u] = true;
        p->rule->usages_set = true;
        return 0;
}

static int rule_usages_parse(Parser *p, const char *key, const char *v) {
        return for_each_word(p, key, v, usage_add, NULL);
}

static void cb_subject_freep(CbSubject **s) {
        cb_subject_free(*s);
}

static void subject_pattern_done(CbSubjectPattern *sp) {
        free(sp->type);
        free(sp->value);
        free(sp->text);
}

static int subject_pattern_add(Parser *p, const char *key, const char *w, void *userdata) {
        static const char *const types[] = { "O", "OU", "L", "ST", "C" };
        _cleanup_(cb_subject_freep) CbSubject *subject = NULL;
        CbSubjectPattern sp = {};
        const char *eq = strchr(w, '='), *why = NULL;
        int r;

        if (!eq || eq == w)
                return parser_fail(p, "Subject=: '%.*s' is not TYPE=VALUE: list attributes as O=VALUE, OU=, L=, ST= "
                                   "or C=, separated by spaces, with a space inside a value written as '\\ ' or "
                                   "'\\20' (e.g. Subject=O=Tenant\\ A OU=*)", SHOW_MAX, w);
        if ((size_t) (eq - w) == 2 && strncasecmp(w, "CN", 2) == 0)
                return parser_fail(p, "Subject=: '%.*s': the CN is not listed in Subject=, Names= decides it; "
                                   "list only the other attributes (O, OU, L, ST, C)", SHOW_MAX, w);

        if (strcmp(eq + 1, "*") == 0) {
                for (size_t i = 0; i < ELEMENTSOF(types); i++)
                        if (strlen(types[i]) == (size_t) (eq - w) && strncasecmp(types[i], w, eq - w) == 0)
                                sp.type = strdup(types[i]);
                if (!sp.type)
                        return parser_fail(p, "Subject=: '%.*s' has an attribute type other than O, OU, L, ST and C",
                                           SHOW_MAX, w);
        } else {
                r = cb_subject_parse(w, &subject, &why);
                if (r == -ENOMEM)
                        return parser_oom(p);
                if (r < 0)
                        return parser_fail(p, "Subject=: '%.*s' %s; give TYPE=VALUE with O, OU, L, ST or C, RFC 4514 "
                                           "escapes in the value ('\\ ' or '\\20' for a space), or TYPE=* for "
                                           "any value", SHOW_MAX, w, why);
                if (subject->n_rdns != 1)
                        return parser_fail(p, "Subject=: '%.*s' has more than one attribute: give one TYPE=VALUE per "
                                           "item, separated by spaces (a ',' inside a value is '\\,')", SHOW_MAX, w);
                if (subject->cn)
                        return parser_fail(p, "Subject=: '%.*s': the CN is not listed in Subject=, Names= decides "
                                           "it; list only the other attributes (O, OU, L, ST, C)", SHOW_MAX, w);
                sp.type = strdup(subject->rdns[0].type);
                sp.value = strdup(subject->rdns[0].value);
                if (!sp.type || !sp.value) {
                        subject_pattern_done(&sp);
                        return parser_oom(p);
                }
        }
        if (!sp.type)
                return parser_oom(p);
        sp.text = strdup(w);
        CbSubjectPattern *n = sp.text ? realloc(p->rule->subject, (p->rule->n_subject + 1) * sizeof *n) : NULL;
        if (!n) {
                subject_pattern_done(&sp);
                return parser_oom(p);
        }
        p->rule->subject = n;
        n[p->rule->n_subject++] = sp;
        return 0;
}

static int rule_subject_parse(Parser *p, const char *key, const char *v) {
        return for_each_escaped_word(p, key, v, subject_pattern_add, NULL);
}

static int rule_wildcards_parse(Parser *p, const char *key, const char *v) {
        return parse_bool_key(p, key, v, &p->rule->wildcards);
}

static int rule_max_requests_parse(Parser *p, const char *key, const char *v) {
        p->rule->max_requests_default = false;
        return parse_rate(p, key, v, &p->rule->max_requests, &p->rule->max_requests_window_usec);
}

static int rule_max_active_parse(Parser *p, const char *key, const char *v) {
        return parse_unsigned_key(p, key, v, 1, 1000000, &p->rule->max_active);
}

static int rule_identity_parse(Parser *p, const char *key, const char *v) {
        if (strcmp(v, "self") != 0)
                return parser_fail(p, "Identity=: '%.*s' is not an identity: the only one is self (the caller's own "
                                   "user name and UPN, from its account)", SHOW_MAX, v);
        p->rule->identity_self = true;
        return 0;
}

static int identity_name_add(Parser *p, const char *key, const char *w, void *userdata) {
        bool *seen = userdata;
        if (!*seen) {
                p->rule->identity_upn = p->rule->identity_email = false;
                *seen = true;
        }
        if (strcmp(w, "upn") == 0)
                p->rule->identity_upn = true;
        else if (strcmp(w, "email") == 0)
                p->rule->identity_email = true;
        else
                return parser_fail(p, "IdentityNames=: '%.*s' is not a kind of name: use upn (the UPN otherName "
                                   "user@domain) and/or email (the rfc822Name user@domain)", SHOW_MAX, w);
        return 0;
}

static int rule_identity_names_parse(Parser *p, const char *key, const char *v) {
        bool seen = false;
        return for_each_word(p, key, v, identity_name_add, &seen);
}

static int rule_identity_accounts_parse(Parser *p, const char *key, const char *v) {
        if (strcmp(v, "realm") == 0)
                p->rule->identity_any_account = false;
        else if (strcmp(v, "any") == 0)
                p->rule->identity_any_account = true;
        else
                return parser_fail(p, "IdentityAccounts=: '%.*s': use realm (accounts of the directory, not in "
                                   "/etc/passwd) or any", SHOW_MAX, v);
        return 0;
}

/* "MIN-MAX" of uids below UINT32_MAX, MIN <= MAX; -EINVAL otherwise. */
static int uid_range_parse(const char *v, uint32_t *ret_min, uint32_t *ret_max) {
        unsigned long long a, b;
        char *end = NULL;
        const char *dash = strchr(v, '-');

        if (!dash || dash == v || !ascii_isdigit(*v) || !ascii_isdigit(dash[1]))
                return -EINVAL;
        errno = 0;
        a = strtoull(v, &end, 10);
        if (errno != 0 || end != dash || a > UINT32_MAX - 1)
                return -EINVAL;
        b = strtoull(dash + 1, &end, 10);
        if (errno != 0 || *end || b > UINT32_MAX - 1 || b < a)
                return -EINVAL;
        *ret_min = (uint32_t) a;
        *ret_max = (uint32_t) b;
        return 0;
}

static int rule_identity_uids_parse(Parser *p, const char *key, const char *v) {
        if (uid_range_parse(v, &p->rule->identity_uid_min, &p->rule->identity_uid_max) < 0)
                return parser_fail(p, "IdentityUIDs=: '%.*s' is not a range MIN-MAX of uids (e.g. "
                                   "200000-2000200000, the range sssd maps the domain's users into), with "
                                   "MIN <= MAX", SHOW_MAX, v);
        p->rule->identity_uids_set = true;
        return 0;
}

static int rule_identity_usage_parse(Parser *p, const char *key, const char *v) {
        CbUsage u = cb_usage_from_string(v);
        if (u < 0)
                return parser_fail(p, "IdentityUsage=: '%.*s' is not a usage: use signature, encryption or both "
                                   "(NDES picks its SignatureTemplate, EncryptionTemplate or GeneralPurposeTemplate "
                                   "by it)", SHOW_MAX, v);
        p->rule->identity_usage = u;
        return 0;
}

/* ---- tables ---------------------------------------------------------------------------- */

static const KeyDesc kerberos_keys[] = {
        { "Realm", parse_realm },
        { "KDC", parse_kdc },
        { "Principal", parse_principal },
        { "Keytab", parse_keytab },
        { "Mode", parse_mode },
        {}
};

static const KeyDesc broker_keys[] = {
        { "PermittedSuffix", parse_permitted_suffix },
        { "RootBypassesRules", parse_root_bypasses_rules },
        { "StateDirectory", parse_state_directory },
        { "KeyPool", parse_key_pool },
        { "DefaultMaxRequests", parse_default_max_requests },
        { "RetainFinished", parse_retain_finished },
        { "MaxStoredRequests", parse_max_stored_requests },
        { "MetricsTextfileDirectory", parse_metrics_textfile_directory },
        {}
};

static const KeyDesc ca_keys[] = {
        { "URL", parse_url },
        { "AdminURL", parse_admin_url },
        { "Authentication", parse_authentication },
        { "Challenge", parse_challenge },
        { "Renewal", parse_renewal },
        { "ChallengeFile", parse_challenge_file },
        { "TrustAnchors", parse_trust_anchors },
        { "CAFingerprint", parse_ca_fingerprint },
        { "DefaultKey", parse_default_key },
        { "MaxOutstandingChallenges", parse_max_outstanding },
        { "Timeout", parse_timeout },
        { "PollInterval", parse_poll_interval },
        { "PendingDeadline", parse_pending_deadline },
        { "AllowLegacyCiphers", parse_allow_legacy },
        { "InstallTrust", parse_install_trust },
        { "Default", parse_default },
        { "RenewBefore", parse_renew_before },
        { "RenewJitter", parse_renew_jitter },
        { "FailbackAfter", parse_failback },
        { "ServerSelection", parse_server_selection },
        {}
};

static const KeyDesc rule_keys[] = {
        { "Name", rule_name_parse },
        { "Users", rule_users_parse },
        { "Groups", rule_groups_parse },
        { "Units", rule_units_parse },
        { "SELinuxTypes", rule_selinux_types_parse },
        { "CAs", rule_cas_parse },
        { "Names", rule_names_parse },
        { "Keys", rule_keys_parse },
        { "Usages", rule_usages_parse },
        { "Subject", rule_subject_parse },
        { "Wildcards", rule_wildcards_parse },
        { "MaxRequests", rule_max_requests_parse },
        { "MaxActive", rule_max_active_parse },
        { "Identity", rule_identity_parse },
        { "IdentityNames", rule_identity_names_parse },
        { "IdentityAccounts", rule_identity_accounts_parse },
        { "IdentityUIDs", rule_identity_uids_parse },
        { "IdentityUsage", rule_identity_usage_parse },
        {}
};

static const struct {
        const char *name;
        SectionKind kind;
        SourceKind source;
        const KeyDesc *keys;
} sections[] = {
        { "Kerberos", SECTION_KERBEROS, SOURCE_MAIN, kerberos_keys },
        { "Broker", SECTION_BROKER, SOURCE_MAIN, broker_keys },
        { "CA", SECTION_CA, SOURCE_CA, ca_keys },
        { "Rule", SECTION_RULE, SOURCE_POLICY, rule_keys },
};

static const KeyDesc *section_keys(SectionKind k) {
        for (size_t i = 0; i < ELEMENTSOF(sections); i++)
                if (sections[i].kind == k)
                        return sections[i].keys;
        return NULL;
}

static const char *section_name(SectionKind k) {
        for (size_t i = 0; i < ELEMENTSOF(sections); i++)
                if (sections[i].kind == k)
                        return sections[i].name;
        return "";
}

static const char *const expected_sections[_SOURCE_KIND_MAX] = {
        [SOURCE_MAIN] = "[Kerberos] and [Broker]",
        [SOURCE_CA] = "[CA]",
        [SOURCE_POLICY] = "[Rule]",
};

static void key_list(const KeyDesc *keys, char *buf, size_t size) {
        size_t n = 0;
        buf[0] = 0;
        for (const KeyDesc *k = keys; k->name && n < size; k++)
                n += snprintf(buf + n, size - n, "%s%s=", n > 0 ? " " : "", k->name);
}

/* ---- sections -------------------------------------------------------------------------- */

static int section_finish(Parser *p) {
        switch (p->section) {
        case SECTION_CA: {
                CbCa *ca = p->ca;
                if (ca->n_servers == 0)
                        return parser_fail_at(p, p->section_line, -EINVAL,
                                              "[CA] has no URL=: add URL=https://NDES-HOST/certsrv/mscep/mscep.dll");
                if (ca->n_admin_urls > 0 && ca->n_admin_urls != ca->n_servers)
                        return parser_fail_at(p, p->seen_line[1], -EINVAL,
                                              "AdminURL= names %zu server%s and URL= %zu: give one admin page per "
                                              "SCEP URL, in the same order (or leave AdminURL= out to derive them)",
                                              ca->n_admin_urls, ca->n_admin_urls == 1 ? "" : "s", ca->n_servers);
                ca->admin_url_derived = ca->n_admin_urls == 0;
                for (size_t i = 0; ca->admin_url_derived && i < ca->n_servers; i++) {
                        static const char tail[] = "/certsrv/mscep/mscep.dll";
                        const char *url = ca->server_urls[i];
                        size_t ul = strlen(url), tl = strlen(tail);
                        if (ul > tl && strcasecmp(url + ul - tl, tail) == 0) {
                                static const char admin[] = "/certsrv/mscep_admin/";
                                char *a;
                                if (!ca->server_admin_urls) {
                                        ca->server_admin_urls = calloc(CB_CA_SERVERS_MAX, sizeof(char *));
                                        ca->server_admin_url_hosts = calloc(CB_CA_SERVERS_MAX, sizeof(char *));
                                        if (!ca->server_admin_urls || !ca->server_admin_url_hosts)
                                                return parser_oom(p);
                                }
                                a = malloc(ul - tl + strlen(admin) + 1);
                                if (!a)
                                        return parser_oom(p);
                                memcpy(a, url, ul - tl);
                                strcpy(a + ul - tl, admin);
                                ca->server_admin_urls[i] = a;
                                ca->server_admin_url_hosts[i] = strdup(ca->server_url_hosts[i]);
                                if (!ca->server_admin_url_hosts[i])
                                        return parser_oom(p);
                        } else if (ca->challenge == CB_CHALLENGE_MSCEP_ADMIN)
                                return parser_fail_at(p, p->seen_line[0] ? p->seen_line[0] : p->section_line, -EINVAL,
                                                      "AdminURL= cannot be derived from URL=%.*s (it does not end in "
                                                      "/certsrv/mscep/mscep.dll): set AdminURL= to the mscep_admin page, "
                                                      "or Challenge=static or none", SHOW_MAX, url);
                        else {
                                /* Not needed (no mscep-admin): none for any server, as for one. */
                                for (size_t j = 0; ca->server_admin_urls && j < i; j++) {
                                        free(ca->server_admin_urls[j]);
                                        free(ca->server_admin_url_hosts[j]);
                                        ca->server_admin_urls[j] = ca->server_admin_url_hosts[j] = NULL;
                                }
                                break;
                        }
                }
                /* The first server's, under the names a single-server CA has always had. */
                if (set_string(p, &ca->url, ca->server_urls[0]) < 0 ||
                    set_string(p, &ca->url_host, ca->server_url_hosts[0]) < 0)
                        return p->r;
                if (ca->server_admin_urls && ca->server_admin_urls[0] &&
                    (set_string(p, &ca->admin_url, ca->server_admin_urls[0]) < 0 ||
                     set_string(p, &ca->admin_url_host, ca->server_admin_url_hosts[0]) < 0))
                        return p->r;
                /* Cleartext: an http:// SCEP URL is only safe when the CA certificate is pinned
                 * (GetCACert's answer could come from anyone on the path), and Kerberos never
                 * authenticates a challenge fetch over http:// (the challenge in the answer would
                 * go to anyone on the path). A derived AdminURL= counts when it is used. Every
                 * server is checked. */
                for (size_t i = 0; i < ca->n_servers; i++) {
                        const char *url = ca->server_urls[i];
                        const char *admin_url = ca->server_admin_urls ? ca->server_admin_urls[i] : NULL;
                        bool url_http = strncasecmp(url, "http://", 7) == 0;
                        bool admin_http = admin_url && strncasecmp(admin_url, "http://", 7) == 0;
                        if (admin_http && ca->authentication == CB_AUTHENTICATION_KERBEROS &&
                            (!ca->admin_url_derived || ca->challenge == CB_CHALLENGE_MSCEP_ADMIN))
                                return parser_fail_at(p, ca->admin_url_derived ? p->seen_line[0] : p->seen_line[1],
                                                      -EINVAL,
                                                      "AdminURL=%.*s%s is http:// and Authentication=kerberos: a "
                                                      "Kerberos-authenticated challenge fetch over cleartext hands the "
                                                      "challenge to anyone on the path; use https:// (set %s to an "
                                                      "https:// URL), or Authentication=none if the page really needs "
                                                      "no login", SHOW_MAX, admin_url,
                                                      ca->admin_url_derived ? " (derived from URL=)" : "",
                                                      ca->admin_url_derived ? "URL= or AdminURL=" : "AdminURL=");
                        if (url_http && !ca->has_fingerprint)
                                return parser_fail_at(p, p->seen_line[0], -EINVAL,
                                                      "URL=%.*s is http:// without CAFingerprint=: over cleartext anyone "
                                                      "on the path could answer GetCACert with their own CA; use https://, "
                                                      "or pin the CA with CAFingerprint=sha256:... (openssl x509 -in "
                                                      "ca.pem -noout -fingerprint -sha256)", SHOW_MAX, url);
                }
                if (ca->challenge == CB_CHALLENGE_STATIC && !ca->challenge_file)
                        return parser_fail_at(p, p->section_line, -EINVAL,
                                              "Challenge=static needs ChallengeFile=: the path of a root-only file "
                                              "holding the challenge password");
                if (ca->challenge != CB_CHALLENGE_STATIC && ca->challenge_file)
                        return parser_fail_at(p, p->section_line, -EINVAL,
                                              "ChallengeFile= is set but Challenge=%s: it is only used with "
                                              "Challenge=static", cb_challenge_mode_to_string(ca->challenge));
                if (ca->pending_deadline_usec < ca->poll_interval_usec)
                        return parser_fail_at(p, p->section_line, -EINVAL,
                                              "PendingDeadline= is shorter than PollInterval=: no poll would ever run");
                break;
        }
        case SECTION_RULE:
                if (!p->rule->name)
                        return parser_fail_at(p, p->section_line, -EINVAL,
                                              "[Rule] has no Name=: every rule needs a unique name");
                if (!p->rule->identity_self && (!p->rule->identity_upn || p->rule->identity_email ||
                                                p->rule->identity_any_account || p->rule->identity_uids_set ||
                                                p->rule->identity_usage != CB_USAGE_SIGNATURE))
                        return parser_fail_at(p, p->section_line, -EINVAL,
                                              "[Rule] '%s' has IdentityNames=, IdentityAccounts=, IdentityUIDs= or "
                                              "IdentityUsage= but no Identity=self: add Identity=self, or remove them",
                                              p->rule->name);
                if (p->rule->identity_self && !p->rule->identity_upn && !p->rule->identity_email)
                        return parser_fail_at(p, p->section_line, -EINVAL,
                                              "[Rule] '%s': IdentityNames= lists no name", p->rule->name);
                break;
        default:
                break;
        }
        return 0;
}

static int section_start(Parser *p, const char *name) {
        int r;

        r = section_finish(p);
        if (r < 0)
                return r;

        SectionKind k = SECTION_NONE;
        for (size_t i = 0; i < ELEMENTSOF(sections); i++)
                if (strcmp(sections[i].name, name) == 0 && sections[i].source == p->kind)
                        k = sections[i].kind;
        if (k == SECTION_NONE)
                return parser_fail(p, "unknown section [%.*s]: this file may contain %s only", SHOW_MAX, name,
                                   expected_sections[p->kind]);

        unsigned *once = k == SECTION_KERBEROS ? &p->kerberos_line :
                         k == SECTION_BROKER ? &p->broker_line :
                         k == SECTION_CA ? &p->ca_line : NULL;
        if (once) {
                if (*once)
                        return parser_fail(p, "section [%s] appears twice (first on line %u): merge them", name, *once);
                *once = p->line;
        }

        p->section = k;
        p->section_line = p->line;
        memset(p->seen_line, 0, sizeof p->seen_line);

        if (k == SECTION_RULE) {
                if (p->config->n_rules >= 4096)
                        return parser_fail_at(p, p->line, -E2BIG, "more than 4096 rules");
                CbRule *n = realloc(p->config->rules, (p->config->n_rules + 1) * sizeof(CbRule));
                if (!n)
                        return parser_oom(p);
                p->config->rules = n;
                p->rule = &n[p->config->n_rules++];
                *p->rule = (CbRule) { .line = p->line, .max_requests_default = true, .identity_upn = true,
                                      .identity_usage = CB_USAGE_SIGNATURE };
                p->rule->path = strdup(p->src->path);
                if (!p->rule->path)
                        return parser_oom(p);
        }
        return 0;
}

static int handle_key(void *userdata, const char *section, const char *name, const char *value) {
        Parser *p = userdata;
        _cleanup_free_ char *long_value = TAKE_PTR(p->long_value);

        if (p->r < 0)
                return 0;
        if (long_value)
                value = long_value;

        const KeyDesc *keys = section_keys(p->section);
        if (!keys) {
                parser_fail(p, "%s= appears before the first section: put it under %s", name,
                            expected_sections[p->kind]);
                return 0;
        }
        size_t i;
        for (i = 0; keys[i].name; i++)
                if (strcmp(keys[i].name, name) == 0)
                        break;
        if (!keys[i].name) {
                char known[512];
                key_list(keys, known, sizeof known);
                parser_fail(p, "unknown key %.*s= in [%s]; known keys: %s", SHOW_MAX, name,
                            section_name(p->section), known);
                return 0;
        }
        if (p->seen_line[i]) {
                parser_fail(p, "%s= is set twice in this [%s] section (first on line %u): keep one; lists "
                            "are space-separated on one line", name, section_name(p->section), p->seen_line[i]);
                return 0;
        }
        p->seen_line[i] = p->line;

        if (!*value)
                return 1;       /* empty: the default */

        size_t vl = strlen(value);
        if (vl >= 2 && ((value[0] == '"' && value[vl - 1] == '"') || (value[0] == '\'' && value[vl - 1] == '\''))) {
                parser_fail(p, "%s= has a quoted value: values are not quoted, write %s=%.*s", name, name,
                            (int) (vl - 2 < SHOW_MAX ? vl - 2 : SHOW_MAX), value + 1);
                return 0;
        }

        return keys[i].parse(p, name, value) < 0 ? 0 : 1;
}

/* ---- the line reader ------------------------------------------------------------------- */

static bool is_blank(char c) {
        return c == ' ' || c == '\t';
}

static char *read_line(char *str, int num, void *stream) {
        Parser *p = stream;

        if (p->r < 0 || p->pos >= p->end || num < (int) INIH_SAFE_LINE + 3)
                return NULL;

        const char *line = p->pos;
        const char *nl = memchr(line, '\n', p->end - line);
        size_t len = nl ? (size_t) (nl - line) : (size_t) (p->end - line);
        p->pos = nl ? nl + 1 : p->end;
        p->line++;

        if (len > CB_CONFIG_LINE_MAX) {
                parser_fail_at(p, p->line, -E2BIG, "line is longer than %u bytes", CB_CONFIG_LINE_MAX);
                return NULL;
        }
        if (len > 0 && line[len - 1] == '\r')
                len--;
        if (p->line == 1 && len >= 3 && memcmp(line, "\xef\xbb\xbf", 3) == 0) {
                line += 3;
                len -= 3;
        }
        for (size_t i = 0; i < len; i++) {
                uint8_t c = (uint8_t) line[i];
                if (c == 0) {
                        parser_fail(p, "line contains a NUL byte");
                        return NULL;
                }
                if ((c < 0x20 && c != '\t') || c == 0x7f) {
                        parser_fail(p, "line contains a control character (0x%02x)", c);
                        return NULL;
                }
        }

        /* Comments: '#' or ';' at the start or after a space or tab. */
        for (size_t i = 0; i < len; i++)
                if ((line[i] == '#' || line[i] == ';') && (i == 0 || is_blank(line[i - 1]))) {
                        len = i;
                        break;
                }
        while (len > 0 && is_blank(*line)) {
                line++;
                len--;
        }
        while (len > 0 && is_blank(line[len - 1]))
                len--;

        if (len == 0) {
                str[0] = 0;
                return str;
        }

        if (!utf8_is_valid_n(line, len)) {
                parser_fail(p, "line is not valid UTF-8");
                return NULL;
        }

        if (line[0] == '[') {
                if (line[len - 1] != ']' || len < 3 || memchr(line + 1, ']', len - 2) || memchr(line + 1, '[', len - 2)) {
                        parser_fail(p, "malformed section header '%.*s': this file may contain %s",
                                    (int) (len < SHOW_MAX ? len : SHOW_MAX), line, expected_sections[p->kind]);
                        return NULL;
                }
                char name[64];
                if (len - 2 >= sizeof name) {
                        parser_fail(p, "unknown section %.*s", SHOW_MAX, line);
                        return NULL;
                }
                memcpy(name, line + 1, len - 2);
                name[len - 2] = 0;
                if (section_start(p, name) < 0)
                        return NULL;
                memcpy(str, line, len);
                str[len] = 0;
                return str;
        }

        const char *eq = memchr(line, '=', len);
        if (!eq) {
                parser_fail(p, "expected Key=Value, [Section] or a comment, got '%.*s'",
                            (int) (len < SHOW_MAX ? len : SHOW_MAX), line);
                return NULL;
        }
        size_t klen = eq - line;
        while (klen > 0 && is_blank(line[klen - 1]))
                klen--;
        if (klen == 0) {
                parser_fail(p, "expected Key=Value: the key is missing before '='");
                return NULL;
        }
        if (klen > KEY_NAME_MAX) {
                parser_fail(p, "'%.*s...' is not a key name (longer than %u bytes)", 32, line, KEY_NAME_MAX);
                return NULL;
        }
        for (size_t i = 0; i < klen; i++)
                if (!ascii_isalpha(line[i]) && !ascii_isdigit(line[i])) {
                        parser_fail(p, "'%.*s' is not a key name (keys are letters and digits, e.g. Realm=)",
                                    (int) (klen < SHOW_MAX ? klen : SHOW_MAX), line);
                        return NULL;
                }
        if (p->section == SECTION_NONE) {
                parser_fail(p, "%.*s= appears before the first section: put it under %s", (int) klen, line,
                            expected_sections[p->kind]);
                return NULL;
        }

        if (len <= INIH_SAFE_LINE) {
                memcpy(str, line, len);
                str[len] = 0;
                return str;
        }

        /* Too long for inih's buffer: hand it the key only (klen <= KEY_NAME_MAX), keep the value
         * aside. */
        const char *v = eq + 1;
        size_t vlen = len - (v - line);
        while (vlen > 0 && is_blank(*v)) {
                v++;
                vlen--;
        }
        free(p->long_value);
        /* The file buffer is not NUL-terminated: copy exactly vlen bytes (strndup() may look
         * further for a NUL). */
        p->long_value = malloc(vlen + 1);
        if (p->long_value) {
                memcpy(p->long_value, v, vlen);
                p->long_value[vlen] = 0;
        }
        if (!p->long_value) {
                parser_oom(p);
                return NULL;
        }
        memcpy(str, line, klen);
        str[klen] = '=';
        str[klen + 1] = 0;
        return str;
}

/* ---- files ----------------------------------------------------------------------------- */

static const char *path_basename(const char *path) {
        const char *s = strrchr(path, '/');
        return s ? s + 1 : path;
}

/* Returns the kind, and for CA files the CA name in buf. */
static int source_kind(const char *path, char *buf, size_t size) {
        const char *base = path_basename(path);
        size_t blen = strlen(base);
        const char *parent = NULL;
        size_t plen = 0;

        if (base != path) {
                const char *end = base - 1;     /* the '/' */
                const char *start = end;
                while (start > path && start[-1] != '/')
                        start--;
                parent = start;
                plen = end - start;
        }

        if (parent && plen == 4 && memcmp(parent, "ca.d", 4) == 0 && blen > 5 &&
            strcmp(base + blen - 5, ".conf") == 0) {
                if (blen - 5 >= size)
                        return -E2BIG;
                memcpy(buf, base, blen - 5);
                buf[blen - 5] = 0;
                return SOURCE_CA;
        }
        if (parent && plen == 8 && memcmp(parent, "policy.d", 8) == 0 && blen > 7 &&
            strcmp(base + blen - 7, ".policy") == 0)
                return SOURCE_POLICY;
        if (strcmp(base, "certbroker.conf") == 0)
                return SOURCE_MAIN;
        return -EINVAL;
}

static int parse_source(Parser *p, const CbConfigSource *src, SourceKind kind, const char *ca_name) {
        int r;

        p->src = src;
        p->kind = kind;
        p->pos = src->contents;
        p->end = src->contents + src->length;
        p->line = 0;
        p->section = SECTION_NONE;
        p->section_line = 0;
        p->kerberos_line = p->broker_line = p->ca_line = p->kdc_line = 0;
        p->rule = NULL;
        p->ca = NULL;

        if (src->length > CB_CONFIG_FILE_MAX)
                return parser_fail_at(p, 0, -E2BIG, "file is larger than %u bytes", CB_CONFIG_FILE_MAX);
        if (src->length > 0 && !src->contents)
                return parser_fail_at(p, 0, -EINVAL, "no contents");

        if (kind == SOURCE_CA) {
                CbConfig *c = p->config;
                for (size_t i = 0; i < c->n_cas; i++)
                        if (strcmp(c->cas[i].name, ca_name) == 0)
                                return parser_fail_at(p, 0, -EINVAL, "CA '%s' is configured twice (also in %s)",
                                                      ca_name, c->cas[i].path);
                if (c->n_cas >= 1024)
                        return parser_fail_at(p, 0, -E2BIG, "more than 1024 CAs");
                CbCa *n = realloc(c->cas, (c->n_cas + 1) * sizeof(CbCa));
                if (!n)
                        return parser_oom(p);
                c->cas = n;
                p->ca = &n[c->n_cas++];
                *p->ca = (CbCa) {
                        .authentication = CB_AUTHENTICATION_KERBEROS,
                        .challenge = CB_CHALLENGE_MSCEP_ADMIN,
                        .default_key = CB_KEY_RSA_2048,
                        .max_outstanding_challenges = 4,
                        .timeout_usec = 30 * CB_USEC_PER_SEC,
                        .poll_interval_usec = 60 * CB_USEC_PER_SEC,
                        .pending_deadline_usec = 604800 * CB_USEC_PER_SEC,
                        .renew_before = { .percent = true, .value = 33 },
                        .renew_jitter = { .percent = true, .value = 5 },
                        .failback_usec = CB_DEFAULT_FAILBACK_SEC * CB_USEC_PER_SEC,
                };
                p->ca->name = strdup(ca_name);
                p->ca->path = strdup(src->path);
                if (!p->ca->name || !p->ca->path)
                        return parser_oom(p);
        }

        r = ini_parse_stream(read_line, p, handle_key, p);
        free(p->long_value);
        p->long_value = NULL;
        if (p->r < 0)
                return p->r;
        if (r < 0)
                return parser_oom(p);
        if (r > 0)
                return parser_fail_at(p, (unsigned) r, -EINVAL, "syntax error");

        p->line = 0;
        r = section_finish(p);
        if (r < 0)
                return r;

        switch (kind) {
        case SOURCE_MAIN:
                if (!p->kerberos_line)
                        return parser_fail_at(p, 0, -EINVAL, "no [Kerberos] section: add one with Realm= and Principal=");
                if (!p->config->realm)
                        return parser_fail_at(p, p->kerberos_line, -EINVAL,
                                              "[Kerberos] has no Realm=: add the Active Directory realm, e.g. Realm=EXAMPLE.COM");
                if (!p->config->principal)
                        return parser_fail_at(p, p->kerberos_line, -EINVAL,
                                              "[Kerberos] has no Principal=: add the service user, e.g. "
                                              "Principal=svc-scep@%s", p->config->realm);
                const char *at = strrchr(p->config->principal, '@');
                if (strcmp(at + 1, p->config->realm) != 0)
                        return parser_fail_at(p, p->principal_line, -EINVAL,
                                              "Principal=%s is not in Realm=%s: the service user must be a user of "
                                              "the realm", p->config->principal, p->config->realm);
                if (!p->config->permitted_suffix) {
                        const char *why = NULL;
                        char *n = NULL;
                        r = cb_name_normalize(p->config->realm, strlen(p->config->realm), NULL, 0, &n, &why);
                        if (r == -ENOMEM)
                                return parser_oom(p);
                        if (r < 0)
                                return parser_fail_at(p, p->realm_line, -EINVAL,
                                                      "Realm=%s %s, so it cannot be the default PermittedSuffix: "
                                                      "set PermittedSuffix= in [Broker]", p->config->realm, why);
                        p->config->permitted_suffix = n;
                }
                r = kdcs_check_suffix(p);
                if (r < 0)
                        return r;
                break;
        case SOURCE_CA:
                if (!p->ca_line)
                        return parser_fail_at(p, 0, -EINVAL, "no [CA] section: add [CA] with URL=");
                break;
        default:
                break;
        }
        return 0;
}

CbConfig *cb_config_free(CbConfig *c) {
        if (!c)
                return NULL;
        free(c->realm);
        strv_free_n(c->kdcs, c->n_kdcs);
        free(c->principal);
        free(c->keytab);
        free(c->permitted_suffix);
        free(c->state_directory);
        free(c->metrics_textfile_directory);
        free(c->key_pool);
        for (size_t i = 0; i < c->n_cas; i++) {
                CbCa *ca = &c->cas[i];
                free(ca->name);
                free(ca->path);
                free(ca->url);
                free(ca->url_host);
                free(ca->admin_url);
                free(ca->admin_url_host);
                for (size_t j = 0; j < CB_CA_SERVERS_MAX; j++) {
                        if (ca->server_urls)
                                free(ca->server_urls[j]);
                        if (ca->server_url_hosts)
                                free(ca->server_url_hosts[j]);
                        if (ca->server_admin_urls)
                                free(ca->server_admin_urls[j]);
                        if (ca->server_admin_url_hosts)
                                free(ca->server_admin_url_hosts[j]);
                }
                free(ca->server_urls);
                free(ca->server_url_hosts);
                free(ca->server_admin_urls);
                free(ca->server_admin_url_hosts);
                free(ca->challenge_file);
                free(ca->trust_anchors);
        }
        free(c->cas);
        for (size_t i = 0; i < c->n_rules; i++) {
                CbRule *r = &c->rules[i];
                free(r->name);
                free(r->path);
                strv_free_n(r->users, r->n_users);
                strv_free_n(r->groups, r->n_groups);
                strv_free_n(r->units, r->n_units);
                strv_free_n(r->selinux_types, r->n_selinux_types);
                strv_free_n(r->cas, r->n_cas);
                strv_free_n(r->names, r->n_names);
                for (size_t j = 0; j < r->n_subject; j++)
                        subject_pattern_done(&r->subject[j]);
                free(r->subject);
        }
        free(c->rules);
        free(c);
        return NULL;
}

static void cb_config_freep(CbConfig **c) {
        cb_config_free(*c);
}

static int ca_compare(const void *a, const void *b) {
        return strcmp(((const CbCa *) a)->name, ((const CbCa *) b)->name);
}

/* How cb_config_parse() returns a failure the parser recorded: the caller gets its error, except
 * for -ENOMEM. */
static int config_fail(const Parser *p, int r, CbConfigError *ret_error) {
        if (r == -ENOMEM)
                return r;
        if (ret_error)
                *ret_error = *p->error;
        return r;
}

int cb_config_parse(const CbConfigSource *sources, size_t n_sources, CbConfig **ret,
                    CbConfigError *ret_error) {
        _cleanup_(cb_config_freep) CbConfig *c = NULL;
        CbConfigError scratch;
        Parser p = {
                .error = ret_error ? &scratch : NULL,
        };
        const CbConfigSource *main_src = NULL;
        char name[CB_CA_NAME_MAX + 2];
        int r;

        if (!sources && n_sources > 0)
                return -EINVAL;
        memset(&scratch, 0, sizeof scratch);

        c = calloc(1, sizeof(CbConfig));
        if (!c)
                return -ENOMEM;
        c->mode = CB_KERBEROS_MODE_KEYTAB;
        c->root_bypasses_rules = true;
        c->default_max_requests = CB_DEFAULT_MAX_REQUESTS;
        c->default_max_requests_window_usec = CB_DEFAULT_MAX_REQUESTS_WINDOW_SEC * CB_USEC_PER_SEC;
        c->retain_finished_usec = CB_DEFAULT_RETAIN_FINISHED_SEC * CB_USEC_PER_SEC;
        c->max_stored_requests = CB_DEFAULT_MAX_STORED_REQUESTS;
        p.config = c;

        if (n_sources > CB_CONFIG_SOURCES_MAX) {
                static const CbConfigSource none = { .path = "" };
                r = parser_fail_in(&p, &none, 0, -E2BIG, "more than %u configuration files", CB_CONFIG_SOURCES_MAX);
                return config_fail(&p, r, ret_error);
        }

        /* Kinds first: certbroker.conf is parsed before the others (they need PermittedSuffix). */
        for (size_t i = 0; i < n_sources; i++) {
                if (!sources[i].path)
                        return -EINVAL;
                r = source_kind(sources[i].path, name, sizeof name);
                if (r == SOURCE_MAIN) {
                        if (main_src) {
                                r = parser_fail_in(&p, &sources[i], 0, -EINVAL,
                                                   "a second certbroker.conf (the first is %s)", main_src->path);
                                return config_fail(&p, r, ret_error);
                        }
                        main_src = &sources[i];
                } else if (r == SOURCE_CA && !cb_ca_name_is_valid(name)) {
                        r = parser_fail_in(&p, &sources[i], 0, -EINVAL,
                                           "'%.*s' is not a valid CA name (the file name without .conf): use "
                                           "letters, digits, '-' and '_' only, at most %u bytes", SHOW_MAX,
                                           path_basename(sources[i].path), CB_CA_NAME_MAX);
                        return config_fail(&p, r, ret_error);
                } else if (r == -E2BIG) {
                        r = parser_fail_in(&p, &sources[i], 0, -EINVAL,
                                           "the CA name (the file name without .conf) is longer than %u bytes",
                                           CB_CA_NAME_MAX);
                        return config_fail(&p, r, ret_error);
                } else if (r < 0) {
                        r = parser_fail_in(&p, &sources[i], 0, -EINVAL,
                                           "not a configuration file certbroker knows: expected certbroker.conf, "
                                           "ca.d/NAME.conf or policy.d/NAME.policy");
                        return config_fail(&p, r, ret_error);
                }
        }
        if (!main_src) {
                static const CbConfigSource none = { .path = "certbroker.conf" };
                r = parser_fail_in(&p, &none, 0, -EINVAL,
                                   "missing: the configuration needs certbroker.conf with [Kerberos] Realm= and Principal=");
                return config_fail(&p, r, ret_error);
        }

        r = parse_source(&p, main_src, SOURCE_MAIN, NULL);
        if (r < 0)
                return config_fail(&p, r, ret_error);
        for (SourceKind k = SOURCE_CA; k <= SOURCE_POLICY; k++)
                for (size_t i = 0; i < n_sources; i++) {
                        if (source_kind(sources[i].path, name, sizeof name) != (int) k)
                                continue;
                        r = parse_source(&p, &sources[i], k, name);
                        if (r < 0)
                                return config_fail(&p, r, ret_error);
                }

        if (!c->keytab) {
                c->keytab = strdup(CB_DEFAULT_KEYTAB);
                if (!c->keytab)
                        return -ENOMEM;
        }
        if (!c->state_directory) {
                c->state_directory = strdup(CB_DEFAULT_STATE_DIRECTORY);
                if (!c->state_directory)
                        return -ENOMEM;
        }

        /* Default CA: at most one Default=yes; a single CA is the default by itself. */
        const CbCa *first_default = NULL;
        for (size_t i = 0; i < c->n_cas; i++) {
                if (!c->cas[i].is_default)
                        continue;
                if (first_default) {
                        CbConfigSource at = { .path = c->cas[i].path };
                        r = parser_fail_in(&p, &at, c->cas[i].default_line, -EINVAL,
                                           "Default=yes is also set for CA '%s' (%s:%u): only one CA may be the default",
                                           first_default->name, first_default->path, first_default->default_line);
                        return config_fail(&p, r, ret_error);
                }
                first_default = &c->cas[i];
        }
        if (!first_default && c->n_cas == 1)
                c->cas[0].is_default = true;

        /* Rules: unique names, CAs= must name configured CAs; DefaultMaxRequests= where
         * MaxRequests= is not set. */
        for (size_t i = 0; i < c->n_rules; i++) {
                CbRule *rule = &c->rules[i];
                if (rule->max_requests_default) {
                        rule->max_requests = c->default_max_requests;
                        rule->max_requests_window_usec = c->default_max_requests_window_usec;
                }
                for (size_t j = 0; j < i; j++)
                        if (strcmp(c->rules[j].name, rule->name) == 0) {
                                CbConfigSource at = { .path = rule->path };
                                r = parser_fail_in(&p, &at, rule->line, -EINVAL,
                                                   "rule name '%s' is already used by the rule at %s:%u: rule names "
                                                   "must be unique across all policy files", rule->name,
                                                   c->rules[j].path, c->rules[j].line);
                                return config_fail(&p, r, ret_error);
                        }
                for (size_t j = 0; j < rule->n_cas; j++) {
                        bool found = false;
                        for (size_t k = 0; k < c->n_cas; k++)
                                if (strcmp(c->cas[k].name, rule->cas[j]) == 0)
                                        found = true;
                        if (!found) {
                                CbConfigSource at = { .path = rule->path };
                                r = parser_fail_in(&p, &at, rule->cas_line, -EINVAL,
                                                   "rule '%s': CAs= names '%s', but there is no ca.d/%s.conf", rule->name,
                                                   rule->cas[j], rule->cas[j]);
                                return config_fail(&p, r, ret_error);
                        }
                }
        }

        if (c->n_cas > 1)
                qsort(c->cas, c->n_cas, sizeof(CbCa), ca_compare);

        *ret = TAKE_PTR(c);
        return 0;
}

const CbCa *cb_config_default_ca(const CbConfig *c) {
        if (!c)
                return NULL;
        for (size_t i = 0; i < c->n_cas; i++)
                if (c->cas[i].is_default)
                        return &c->cas[i];
        return NULL;
}

const CbCa *cb_config_find_ca(const CbConfig *c, const char *name) {
        if (!c)
                return NULL;
        if (!name || !*name)
                return cb_config_default_ca(c);
        for (size_t i = 0; i < c->n_cas; i++)
                if (strcmp(c->cas[i].name, name) == 0)
                        return &c->cas[i];
        return NULL;
}

const CbRule *cb_config_find_rule(const CbConfig *c, const char *name) {
        if (!c || !name)
                return NULL;
        for (size_t i = 0; i < c->n_rules; i++)
                if (strcmp(c->rules[i].name, name) == 0)
                        return &c->rules[i];
        return NULL;
}
