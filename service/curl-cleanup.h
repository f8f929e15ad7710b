/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Cleanup functions for libcurl's URL API, for _cleanup_() (basic.h). */

#include <curl/curl.h>

static inline void curl_url_cleanupp(CURLU **u) {
        if (*u)
                curl_url_cleanup(*u);
}

/* A string libcurl returned (curl_url_get()): curl_free() takes NULL. */
static inline void curl_freep(char **p) {
        curl_free(*p);
}
