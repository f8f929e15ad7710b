/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The mscep_admin page parser on arbitrary bytes (what a hostile or broken server sends). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "challenge-page.h"

/* NUL-terminated within size, valid UTF-8 (no overlong forms, surrogates or code points past
 * U+10FFFF), no ASCII control characters. */
static void check_utf8(const char *s, size_t size) {
        size_t len = strnlen(s, size);
        const unsigned char *p = (const unsigned char *) s;

        if (len == size)
                abort();
        for (size_t i = 0; i < len;) {
                unsigned c = p[i], n, cp;
                if (c < 0x80) {
                        if (c < 0x20 || c == 0x7f)
                                abort();
                        i++;
                        continue;
                }
                if (c >= 0xc2 && c <= 0xdf)
                        n = 1, cp = c & 0x1f;
                else if (c >= 0xe0 && c <= 0xef)
                        n = 2, cp = c & 0x0f;
                else if (c >= 0xf0 && c <= 0xf4)
                        n = 3, cp = c & 0x07;
                else
                        abort();
                if (i + n >= len)
                        abort();
                for (unsigned k = 1; k <= n; k++) {
                        if ((p[i + k] & 0xc0) != 0x80)
                                abort();
                        cp = (cp << 6) | (p[i + k] & 0x3f);
                }
                if ((n == 2 && cp < 0x800) || (n == 3 && (cp < 0x10000 || cp > 0x10ffff)) ||
                    (cp >= 0xd800 && cp <= 0xdfff))
                        abort();
                i += n + 1;
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        ChallengeSecret *s = NULL;
        const char *enc = NULL;
        int r = challenge_page_parse(data, size, &s, &enc);

        if (r == CHALLENGE_PAGE_FOUND) {
                size_t len = 0;
                const char *p = challenge_secret_get(s, &len);
                /* Invariants: printable, no spaces, bounded, NUL-terminated. */
                if (!p || len == 0 || len > CHALLENGE_SIZE_MAX || strlen(p) != len)
                        abort();
                for (size_t i = 0; i < len; i++)
                        if ((unsigned char) p[i] <= 0x20 || (unsigned char) p[i] > 0x7e)
                                abort();
                challenge_secret_free(s);
        } else if (s || (r != CHALLENGE_PAGE_CACHE_FULL && r != CHALLENGE_PAGE_NO_PERMISSION &&
                         r != CHALLENGE_PAGE_UNRECOGNIZED && r != -12 /* -ENOMEM */))
                abort();
        if (!enc && r >= 0 && size <= CHALLENGE_PAGE_SIZE_MAX)
                abort();

        /* What the page said besides the challenge: a thumbprint of 32 lowercase hex digits or
         * none, and the visible text of an unrecognised page bounded and valid UTF-8 (it goes
         * into messages on the bus and in the journal). */
        ChallengePageInfo info;
        r = challenge_page_parse_info(data, size, NULL, &info);
        if (r >= 0) {
                size_t n = strlen(info.thumbprint);
                if (n != 0 && n != 32)
                        abort();
                for (size_t i = 0; i < n; i++)
                        if (!((info.thumbprint[i] >= '0' && info.thumbprint[i] <= '9') ||
                              (info.thumbprint[i] >= 'a' && info.thumbprint[i] <= 'f')))
                                abort();
                if (r != CHALLENGE_PAGE_UNRECOGNIZED && info.text[0])
                        abort();
                check_utf8(info.text, sizeof info.text);
        }
        return 0;
}
