/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <stdint.h>
#include <stdlib.h>

#include "scep-caps.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        unsigned caps = 0;
        const char *names[11];
        ScepError e;

        if (scep_caps_parse(data, size, &caps, &e) != 0)
                return 0;
        if (scep_caps_to_strv(caps, names) > 10)
                abort();
        for (ScepFloor f = SCEP_FLOOR_DEFAULT; f <= SCEP_FLOOR_STRICT; f++) {
                ScepAlgorithms a;
                int r = scep_caps_choose(caps, f, &a, &e);

                if (r != 0 && r != SCEP_RESULT_ALGORITHM_FLOOR)
                        abort();
                /* Invariants: never below the floor. */
                if (r == 0 && f != SCEP_FLOOR_LEGACY && a.digest == SCEP_DIGEST_SHA1)
                        abort();
                if (r == 0 && f == SCEP_FLOOR_STRICT && a.cipher != SCEP_CIPHER_AES128_CBC)
                        abort();
        }
        return 0;
}
