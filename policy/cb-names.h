/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The suffix guard (certbroker.policy(5) "THE SUFFIX GUARD"): DNS name normalization,
 * suffix matching, rule name patterns and URL host checks.
 *
 * Pure functions: no I/O, no logging, no global state. Reasons returned
 * through ret_reason are static strings that never contain the name itself,
 * so callers compose "name 'X': <reason>" with the (escaped) name. */

#include <stdbool.h>
#include <stddef.h>

#define CB_NAME_MAX 253U           /* bytes, without the optional trailing dot */
#define CB_LABEL_MAX 63U
#define CB_URL_MAX 2048U

typedef enum CbNameFlags {
        /* Accept "*" as the whole leftmost label ("*.a.example.com"). */
        CB_NAME_ALLOW_WILDCARD = 1 << 0,
} CbNameFlags;

/* Normalizes a DNS name and applies the guard:
 *   - ASCII letters, digits and hyphens only (IDNs as xn-- A-labels; bytes >= 0x80 are
 *     refused with a reason saying so); no NUL, control bytes, percent signs, spaces;
 *   - labels 1..63 bytes, no empty labels, no label starting or ending with '-'; an "xn--"
 *     label must be valid punycode (RFC 3492) decoding to non-ASCII, non-control code points;
 *   - one trailing dot removed; at most 253 bytes after that;
 *   - no IP literals: IPv6 (anything with ':' or '[') and IPv4 in every form a URL parser
 *     or inet_aton() would accept (127.0.0.1, 127.1, 2130706433, 0x7f.1, 0177.0.0.1):
 *     a name whose last label is a number (decimal, or 0x followed by hex digits) is refused;
 *   - "*" only as the whole leftmost label, only with CB_NAME_ALLOW_WILDCARD, and never as
 *     the only label;
 *   - lower-cased;
 *   - when suffix is non-NULL (it must already be normalized), the name must equal it or
 *     end with "." + suffix (label boundary: evilexample.com is not under example.com).
 *
 * Returns 0 and *ret (malloc'ed, NUL-terminated, may be NULL to only check),
 * -EINVAL with *ret_reason (static string, if ret_reason is non-NULL) when the name is
 * refused, -ENOMEM. */
int cb_name_normalize(const char *name, size_t len, const char *suffix, CbNameFlags flags,
                      char **ret, const char **ret_reason);

/* True when the normalized name equals the normalized suffix or ends with "." suffix. */
bool cb_name_is_under_suffix(const char *name, const char *suffix);

/* True when the normalized name is a wildcard ("*.something"). */
bool cb_name_is_wildcard(const char *name);

/* Rule name patterns (certbroker.policy(5) Names=): an exact name, "*.x" (exactly one more label) or "**.x"
 * (one or more more labels). x is normalized and must lie inside suffix (non-NULL).
 * Returns 0 and *ret (normalized pattern, e.g. "**.a.example.com"), -EINVAL with a static
 * *ret_reason, or -ENOMEM. */
int cb_name_pattern_normalize(const char *pattern, const char *suffix, char **ret,
                              const char **ret_reason);

/* Matches a normalized name against a normalized pattern. A requested wildcard name's
 * leftmost "*" is treated as one literal label, so a wildcard certificate is allowed
 * exactly when every name it covers would be: "*.a.example.com" matches "*.a.example.com"
 * and "**.example.com" but not "*.example.com" (two more labels) nor "a.example.com". */
bool cb_name_pattern_match(const char *pattern, const char *name);

/* Checks a configured URL: at most CB_URL_MAX bytes, printable ASCII without spaces,
 * backslashes or other characters URLs cannot carry unencoded; parsed with curl_url();
 * scheme http or https; no userinfo (user, password or login options); no query and no
 * fragment; the host passes cb_name_normalize() under suffix (so no IP literals and no
 * names outside the suffix). Returns 0 with *ret_host (normalized host, malloc'ed; may be
 * NULL), -EINVAL with a static *ret_reason, -ENOMEM. */
int cb_url_check(const char *url, const char *suffix, char **ret_host, const char **ret_reason);
