/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <curl/curl.h>
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include "cb-names.h"
#include "curl-cleanup.h"
#include "util.h"

#define R_EMPTY "is empty"
#define R_NUL "contains a NUL byte"
#define R_CTRL "contains a control character"
#define R_NONASCII "contains non-ASCII characters: give internationalized names as xn-- A-labels (punycode)"
#define R_PERCENT "contains '%': percent-encoding is not allowed in DNS names"
#define R_COLON "contains ':' (an IPv6 address literal or a port): IP addresses and ports are not allowed, give a DNS name"
#define R_SPACE "contains a space"
#define R_LONG "is longer than 253 bytes"
#define R_EMPTYLABEL "has an empty label (a leading dot or \"..\")"
#define R_LONGLABEL "has a label longer than 63 bytes"
#define R_STAR "has '*' other than as the whole leftmost label"
#define R_WILDCARD "is a wildcard name, which is not allowed here"
#define R_ONLYSTAR "is only a wildcard"
#define R_CHAR "contains a character other than ASCII letters, digits, hyphens and dots"
#define R_HYPHEN "has a label that starts or ends with a hyphen"
#define R_IPV4 "is an IPv4 address literal (its last label is a number): IP addresses are not allowed, give a DNS name"
#define R_SUFFIX "is not under the permitted suffix"
#define R_PUNYCODE "has an xn-- label that is not valid punycode (RFC 3492)"

static const struct {
        const char *name, *host;
} host_reasons[] = {
        { R_EMPTY, "has a host that " R_EMPTY },
        { R_NUL, "has a host that " R_NUL },
        { R_CTRL, "has a host that " R_CTRL },
        { R_NONASCII, "has a host that " R_NONASCII },
        { R_PERCENT, "has a host that " R_PERCENT },
        { R_COLON, "has a host that " R_COLON },
        { R_SPACE, "has a host that " R_SPACE },
        { R_LONG, "has a host that " R_LONG },
        { R_EMPTYLABEL, "has a host that " R_EMPTYLABEL },
        { R_LONGLABEL, "has a host that " R_LONGLABEL },
        { R_STAR, "has a host that " R_STAR },
        { R_WILDCARD, "has a host that " R_WILDCARD },
        { R_ONLYSTAR, "has a host that " R_ONLYSTAR },
        { R_CHAR, "has a host that " R_CHAR },
        { R_HYPHEN, "has a host that " R_HYPHEN },
        { R_IPV4, "has a host that " R_IPV4 },
        { R_SUFFIX, "has a host that " R_SUFFIX },
        { R_PUNYCODE, "has a host that " R_PUNYCODE },
};

static int refuse(const char **ret_reason, const char *reason) {
        if (ret_reason)
                *ret_reason = reason;
        return -EINVAL;
}

static bool label_is_number(const char *l, size_t n) {
        /* What a URL parser or inet_aton() would read as an IPv4 number part:
         * decimal (and octal with a leading 0, also only digits) or "0x" + hex (even empty). */
        if (n == 0)
                return false;
        if (n >= 2 && l[0] == '0' && (l[1] == 'x' || l[1] == 'X')) {
                for (size_t i = 2; i < n; i++)
                        if (!ascii_isxdigit(l[i]))
                                return false;
                return true;
        }
        for (size_t i = 0; i < n; i++)
                if (!ascii_isdigit(l[i]))
                        return false;
        return true;
}

/* RFC 3492 decoding, only to check that an A-label's tail is valid punycode that yields
 * code points that are neither ASCII nor C1 controls nor surrogates. l/n: the label without
 * "xn--". (IDNA2008's per-code-point rules are not checked: the CA and the clients do.) */
static uint32_t punycode_adapt(uint32_t delta, uint32_t points, bool first) {
        uint32_t k = 0;
        delta = first ? delta / 700 : delta / 2;
        delta += delta / points;
        while (delta > ((36 - 1) * 26) / 2) {
                delta /= 36 - 1;
                k += 36;
        }
        return k + (36 - 1 + 1) * delta / (delta + 38);
}

static bool punycode_is_valid(const char *l, size_t n) {
        const uint32_t max = 0x7fffffff;
        uint32_t code = 128, i = 0, bias = 72, out = 0;
        size_t in = 0;

        if (n == 0)
                return false;
        for (size_t j = n; j > 0; j--)
                if (l[j - 1] == '-') {
                        out = (uint32_t) (j - 1);
                        in = j;
                        break;
                }
        if (in >= n)
                return false;   /* nothing encoded: not an A-label of anything */

        while (in < n) {
                uint32_t old = i, w = 1;
                for (uint32_t k = 36;; k += 36) {
                        if (in >= n)
                                return false;
                        char c = ascii_tolower(l[in++]);
                        uint32_t digit = c >= 'a' && c <= 'z' ? (uint32_t) (c - 'a') :
                                         c >= '0' && c <= '9' ? (uint32_t) (c - '0' + 26) : 36;
                        if (digit >= 36 || digit > (max - i) / w)
                                return false;
                        i += digit * w;
                        uint32_t t = k <= bias ? 1 : k >= bias + 26 ? 26 : k - bias;
                        if (digit < t)
                                break;
                        if (w > max / (36 - t))
                                return false;
                        w *= 36 - t;
                }
                out++;
                bias = punycode_adapt(i - old, out, old == 0);
                if (i / out > max - code)
                        return false;
                code += i / out;
                i %= out;
                if (code < 0xa0 || code > 0x10ffff || (code >= 0xd800 && code <= 0xdfff))
                        return false;
                i++;
        }
        return true;
}

int cb_name_normalize(const char *name, size_t len, const char *suffix, CbNameFlags flags,
                      char **ret, const char **ret_reason) {
        if (!name || len == 0)
                return refuse(ret_reason, R_EMPTY);

        /* Byte classes first, so that the reason names the most specific problem. */
        for (size_t i = 0; i < len; i++) {
                uint8_t c = (uint8_t) name[i];
                if (c == 0)
                        return refuse(ret_reason, R_NUL);
                if (c < 0x20 || c == 0x7f)
                        return refuse(ret_reason, R_CTRL);
        }
        for (size_t i = 0; i < len; i++)
                if ((uint8_t) name[i] >= 0x80)
                        return refuse(ret_reason,
                                      R_NONASCII);
        if (memchr(name, '%', len))
                return refuse(ret_reason, R_PERCENT);
        if (memchr(name, ':', len))
                return refuse(ret_reason,
                              R_COLON);
        if (memchr(name, ' ', len))
                return refuse(ret_reason, R_SPACE);

        if (name[len - 1] == '.')
                len--;  /* one trailing dot: the absolute form of the same name */
        if (len == 0)
                return refuse(ret_reason, R_EMPTY);
        if (len > CB_NAME_MAX)
                return refuse(ret_reason, R_LONG);

        size_t start = 0, last_start = 0, n_labels = 0;
        for (size_t i = 0; i <= len; i++) {
                if (i < len && name[i] != '.')
                        continue;

                const char *l = name + start;
                size_t n = i - start;

                if (n == 0)
                        return refuse(ret_reason, R_EMPTYLABEL);
                if (n > CB_LABEL_MAX)
                        return refuse(ret_reason, R_LONGLABEL);

                if (n == 1 && l[0] == '*') {
                        if (n_labels > 0)
                                return refuse(ret_reason,
                                              R_STAR);
                        if (!(flags & CB_NAME_ALLOW_WILDCARD))
                                return refuse(ret_reason, R_WILDCARD);
                        if (i == len)
                                return refuse(ret_reason, R_ONLYSTAR);
                } else {
                        for (size_t j = 0; j < n; j++) {
                                if (l[j] == '*')
                                        return refuse(ret_reason,
                                                      R_STAR);
                                if (!ascii_isalpha(l[j]) && !ascii_isdigit(l[j]) && l[j] != '-')
                                        return refuse(ret_reason,
                                                      R_CHAR);
                        }
                        if (l[0] == '-' || l[n - 1] == '-')
                                return refuse(ret_reason, R_HYPHEN);
                        if (n >= 4 && strncasecmp(l, "xn--", 4) == 0 && !punycode_is_valid(l + 4, n - 4))
                                return refuse(ret_reason, R_PUNYCODE);
                }

                n_labels++;
                last_start = start;
                start = i + 1;
        }

        if (label_is_number(name + last_start, len - last_start))
                return refuse(ret_reason,
                              R_IPV4);

        _cleanup_free_ char *s = malloc(len + 1);
        if (!s)
                return -ENOMEM;
        for (size_t i = 0; i < len; i++)
                s[i] = ascii_tolower(name[i]);
        s[len] = 0;

        if (suffix && !cb_name_is_under_suffix(s, suffix))
                return refuse(ret_reason, R_SUFFIX);

        if (ret)
                *ret = TAKE_PTR(s);
        return 0;
}

bool cb_name_is_under_suffix(const char *name, const char *suffix) {
        if (!name || !suffix || !*suffix)
                return false;
        size_t n = strlen(name), s = strlen(suffix);
        if (n == s)
                return memcmp(name, suffix, n) == 0;
        if (n < s + 2)
                return false;
        return name[n - s - 1] == '.' && memcmp(name + n - s, suffix, s) == 0;
}

bool cb_name_is_wildcard(const char *name) {
        return name && name[0] == '*' && name[1] == '.';
}

int cb_name_pattern_normalize(const char *pattern, const char *suffix, char **ret,
                              const char **ret_reason) {
        const char *prefix = "";
        int r;

        if (!pattern || !suffix)
                return refuse(ret_reason, "is empty");
        if (strncmp(pattern, "**.", 3) == 0)
                prefix = "**.";
        else if (strncmp(pattern, "*.", 2) == 0)
                prefix = "*.";

        const char *rest = pattern + strlen(prefix);
        if (strchr(rest, '*'))
                return refuse(ret_reason,
                              "has '*' other than a leading \"*.\" or \"**.\" (patterns are NAME, "
                              "*.NAME or **.NAME)");

        _cleanup_free_ char *n = NULL;
        r = cb_name_normalize(rest, strlen(rest), suffix, 0, &n, ret_reason);
        if (r < 0)
                return r;

        size_t pl = strlen(prefix), nl = strlen(n);
        char *s = malloc(pl + nl + 1);
        if (!s)
                return -ENOMEM;
        memcpy(s, prefix, pl);
        memcpy(s + pl, n, nl + 1);
        if (ret)
                *ret = s;
        else
                free(s);
        return 0;
}

bool cb_name_pattern_match(const char *pattern, const char *name) {
        if (!pattern || !name)
                return false;

        if (strncmp(pattern, "**.", 3) == 0) {
                const char *base = pattern + 3;
                return !streq_ptr(name, base) && cb_name_is_under_suffix(name, base);
        }
        if (strncmp(pattern, "*.", 2) == 0) {
                const char *base = pattern + 2;
                if (streq_ptr(name, base) || !cb_name_is_under_suffix(name, base))
                        return false;
                /* exactly one more label */
                size_t extra = strlen(name) - strlen(base) - 1;
                return !memchr(name, '.', extra);
        }
        return streq_ptr(pattern, name);
}

static bool has_prefix_ci(const char *s, const char *p) {
        for (; *p; s++, p++)
                if (ascii_tolower(*s) != *p)
                        return false;
        return true;
}

static int url_part_absent(CURLU *h, CURLUPart part, CURLUcode absent) {
        char *v = NULL;
        CURLUcode uc = curl_url_get(h, part, &v, 0);
        if (uc == CURLUE_OK) {
                curl_free(v);
                return 0;       /* present */
        }
        if (uc == CURLUE_OUT_OF_MEMORY)
                return -ENOMEM;
        return uc == absent ? 1 : 0;
}

int cb_url_check(const char *url, const char *suffix, char **ret_host, const char **ret_reason) {
        int r;

        if (!url || !*url)
                return refuse(ret_reason, "is empty");
        size_t len = strlen(url);
        if (len > CB_URL_MAX)
                return refuse(ret_reason, "is longer than 2048 bytes");
        for (size_t i = 0; i < len; i++) {
                uint8_t c = (uint8_t) url[i];
                if (c <= 0x20 || c >= 0x7f)
                        return refuse(ret_reason, "contains spaces, control or non-ASCII characters");
                if (strchr("\\\"<>^`{|}", c))
                        return refuse(ret_reason,
                                      "contains a character that must be percent-encoded "
                                      "(one of \\ \" < > ^ ` { | })");
        }
        if (!has_prefix_ci(url, "https://") && !has_prefix_ci(url, "http://"))
                return refuse(ret_reason, "does not start with https:// or http://");

        _cleanup_(curl_url_cleanupp) CURLU *h = curl_url();
        if (!h)
                return -ENOMEM;

        CURLUcode uc = curl_url_set(h, CURLUPART_URL, url, 0);
        if (uc == CURLUE_OUT_OF_MEMORY)
                return -ENOMEM;
        if (uc != CURLUE_OK)
                return refuse(ret_reason, "cannot be parsed as a URL");

        _cleanup_(curl_freep) char *scheme = NULL;
        uc = curl_url_get(h, CURLUPART_SCHEME, &scheme, 0);
        if (uc != CURLUE_OK)
                return uc == CURLUE_OUT_OF_MEMORY ? -ENOMEM : refuse(ret_reason, "has no scheme");
        if (strcmp(scheme, "https") != 0 && strcmp(scheme, "http") != 0)
                return refuse(ret_reason, "has a scheme other than https or http");

        static const struct {
                CURLUPart part;
                CURLUcode absent;
                const char *reason;
        } must_be_absent[] = {
                { CURLUPART_USER,     CURLUE_NO_USER,     "contains userinfo (user@ or user:password@ before the host)" },
                { CURLUPART_PASSWORD, CURLUE_NO_PASSWORD, "contains userinfo (user@ or user:password@ before the host)" },
                { CURLUPART_OPTIONS,  CURLUE_NO_OPTIONS,  "contains userinfo (login options before the host)" },
                { CURLUPART_QUERY,    CURLUE_NO_QUERY,    "contains a query ('?'): give the base URL, the broker adds ?operation=..." },
                { CURLUPART_FRAGMENT, CURLUE_NO_FRAGMENT, "contains a fragment ('#')" },
        };
        for (size_t i = 0; i < ELEMENTSOF(must_be_absent); i++) {
                r = url_part_absent(h, must_be_absent[i].part, must_be_absent[i].absent);
                if (r < 0)
                        return r;
                if (r == 0)
                        return refuse(ret_reason, must_be_absent[i].reason);
        }
        /* '@' is allowed in paths, but nowhere before the path: belt and braces over curl. */
        const char *auth = url + (has_prefix_ci(url, "https://") ? 8 : 7);
        size_t auth_len = strcspn(auth, "/");
        if (memchr(auth, '@', auth_len))
                return refuse(ret_reason, "contains userinfo (user@ or user:password@ before the host)");
        if (memchr(auth, '%', auth_len))
                return refuse(ret_reason, "has a percent-encoded host: write the host name plainly");

        _cleanup_(curl_freep) char *host = NULL;
        uc = curl_url_get(h, CURLUPART_HOST, &host, 0);
        if (uc != CURLUE_OK)
                return uc == CURLUE_OUT_OF_MEMORY ? -ENOMEM : refuse(ret_reason, "has no host");
        const char *why = NULL;
        _cleanup_free_ char *normalized = NULL;
        r = cb_name_normalize(host, strlen(host), suffix, 0, &normalized, &why);
        if (r == -EINVAL) {
                const char *out = "has a host that fails the name guard";
                for (size_t i = 0; i < ELEMENTSOF(host_reasons); i++)
                        if (streq_ptr(why, host_reasons[i].name))
                                out = host_reasons[i].host;
                return refuse(ret_reason, out);
        }
        if (r < 0)
                return r;

        if (ret_host)
                *ret_host = TAKE_PTR(normalized);
        return 0;
}
