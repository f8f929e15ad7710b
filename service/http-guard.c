/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "basic.h"
#include "cb-names.h"
#include "curl-cleanup.h"
#include "http-guard.h"
#include "seed-steps.h"

/* The guard itself is policy/'s (cb-names.h), so names in rules and hosts of URLs are
 * checked by the same code. */

int http_guard_normalize(const char *name, char ret[static HTTP_GUARD_NAME_MAX + 1], const char **ret_reason) {
        char *n = NULL;
        int r;

        if (!name) {
                if (ret_reason)
                        *ret_reason = "empty host name";
                return -EINVAL;
        }
        r = cb_name_normalize(name, strlen(name), NULL, 0, &n, ret_reason);
        if (r < 0)
                return r;
        if (strlen(n) > HTTP_GUARD_NAME_MAX) {  /* cannot happen: CB_NAME_MAX is the same */
                free(n);
                if (ret_reason)
                        *ret_reason = "host name longer than 253 bytes";
                return -EINVAL;
        }
        strcpy(ret, n);
        free(n);
        return 0;
}

static int guard_refuse(const char **ret_reason, const char *reason, int r) {
        if (ret_reason)
                *ret_reason = reason;
        return r;
}

int http_guard_host(const char *host, const char *suffix, const char **ret_reason) {
        char h[HTTP_GUARD_NAME_MAX + 1], s[HTTP_GUARD_NAME_MAX + 1];
        const char *reason = NULL;
        int r;

        r = http_guard_normalize(host, h, &reason);
        if (r < 0)
                return guard_refuse(ret_reason, reason, r);
        r = http_guard_normalize(suffix, s, NULL);
        if (r < 0)
                return guard_refuse(ret_reason, "the permitted suffix is not a valid DNS name", r);
        if (!cb_name_is_under_suffix(h, s))
                return guard_refuse(ret_reason, "host is not the permitted suffix or a name below it", -EPERM);
        return 0;
}

static void set_message(char **ret_message, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void set_message(char **ret_message, const char *fmt, ...) {
        va_list ap;
        char *m = NULL;

        if (!ret_message)
                return;
        va_start(ap, fmt);
        if (vasprintf(&m, fmt, ap) < 0)
                m = NULL;
        va_end(ap);
        *ret_message = m;
}

int http_guard_url(const char *url, const char *suffix, CURLU **ret_url, char **ret_host, char **ret_message) {
        _cleanup_(curl_url_cleanupp) CURLU *u = NULL;
        _cleanup_(curl_freep) char *scheme = NULL, *host = NULL, *user = NULL, *password = NULL;
        _cleanup_free_ char *normalized = NULL;
        const char *reason = NULL;
        CURLUcode uc;
        int r;

        if (!url || !suffix) {
                set_message(ret_message, "no URL given");
                return -EINVAL;
        }

        u = curl_url();
        if (!u) {
                set_message(ret_message, "out of memory");
                return -ENOMEM;
        }
        /* No CURLU_GUESS_SCHEME, no CURLU_NON_SUPPORT_SCHEME: the scheme must be written and supported. */
        uc = curl_url_set(u, CURLUPART_URL, url, 0);
        if (uc != CURLUE_OK) {
                set_message(ret_message, "cannot parse URL '%s': %s", url, curl_url_strerror(uc));
                return -EINVAL;
        }
        uc = curl_url_get(u, CURLUPART_SCHEME, &scheme, 0);
        if (uc != CURLUE_OK || (strcmp(scheme, "https") != 0 && strcmp(scheme, "http") != 0)) {
                set_message(ret_message, "URL '%s' does not use http or https", url);
                return -EINVAL;
        }
        if (curl_url_get(u, CURLUPART_USER, &user, 0) == CURLUE_OK ||
            curl_url_get(u, CURLUPART_PASSWORD, &password, 0) == CURLUE_OK) {
                /* Do not echo the URL: it may carry a password. */
                set_message(ret_message, "URL for %s carries user information; remove it (authentication is Kerberos only)", suffix);
                return -EINVAL;
        }
#ifdef CURLU_PUNYCODE
        uc = curl_url_get(u, CURLUPART_HOST, &host, CURLU_PUNYCODE);
#else
        uc = curl_url_get(u, CURLUPART_HOST, &host, 0);
#endif
        if (uc != CURLUE_OK) {
                set_message(ret_message, "URL '%s' has no usable host: %s", url, curl_url_strerror(uc));
                return -EINVAL;
        }
        r = http_guard_host(host, suffix, &reason);
        if (r < 0) {
                set_message(ret_message, "host '%s' of URL '%s' is refused: %s (permitted suffix: %s). " SEED_KRB_DOMAINS,
                            host, url, reason, suffix);
                return r;
        }
        normalized = malloc(HTTP_GUARD_NAME_MAX + 1);
        if (!normalized)
                return -ENOMEM;
        r = http_guard_normalize(host, normalized, NULL);
        if (r < 0)
                return r;
        /* Connect to exactly the name that was checked. */
        uc = curl_url_set(u, CURLUPART_HOST, normalized, 0);
        if (uc != CURLUE_OK) {
                set_message(ret_message, "cannot set host '%s': %s", normalized, curl_url_strerror(uc));
                return -EINVAL;
        }
        if (ret_url)
                *ret_url = TAKE_PTR(u);
        if (ret_host)
                *ret_host = TAKE_PTR(normalized);
        if (ret_message)
                *ret_message = NULL;
        return 0;
}
