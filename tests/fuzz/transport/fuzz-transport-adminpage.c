/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The mscep_admin page parser on arbitrary bytes (what a hostile or broken server sends). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "challenge-page.h"

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
        return 0;
}
