/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The suffix guard for the hosts the broker connects to (certbroker.policy(5) "THE SUFFIX GUARD").
 * Every URL is parsed with curl_url(); the host must be an ASCII DNS name (IDNs as xn--
 * A-labels), at or below the permitted suffix at a label boundary, never an IP literal.
 *
 * http_guard_host() is the single place the host rule is applied; it uses policy/'s guard
 * (cb_name_normalize, cb-names.h), so rule names and URL hosts follow the same code.
 * (policy's cb_url_check() is for configured base URLs and refuses queries; requests carry
 * ?operation=..., hence this wrapper.) Pure code, no logging.
 */

#include <curl/curl.h>

/* Maximum length of a DNS name, without the trailing dot. */
#define HTTP_GUARD_NAME_MAX 253

/* Lower-cases `name` into ret (a buffer of at least HTTP_GUARD_NAME_MAX + 1 bytes), removing
 * one trailing dot, and checks DNS syntax (LDH labels of 1..63 bytes, no leading or trailing
 * hyphen, at most 253 bytes, no IP literal in any form). 0, or -EINVAL with *ret_reason
 * (static text) set. */
int http_guard_normalize(const char *name, char ret[static HTTP_GUARD_NAME_MAX + 1], const char **ret_reason);

/* 0 when `host` is `suffix` or below it at a label boundary (both normalized first);
 * -EPERM when it is a valid name outside the suffix; -EINVAL when it is not a valid DNS name
 * (IP literals included). *ret_reason (static text, optional) says why on failure. */
int http_guard_host(const char *host, const char *suffix, const char **ret_reason);

/* Parses `url` with curl_url(): scheme http or https, no user info, a host that passes
 * http_guard_host(). On success returns 0, *ret_url (a CURLU with the normalized host set,
 * ready for CURLOPT_CURLU) and *ret_host (normalized host, malloc'd). On failure returns
 * -EPERM (host outside the suffix) or -EINVAL (anything else) and, if ret_message is not
 * NULL, a malloc'd human message naming the URL part that is wrong. */
int http_guard_url(const char *url, const char *suffix, CURLU **ret_url, char **ret_host, char **ret_message);
