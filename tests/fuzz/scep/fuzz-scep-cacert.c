/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "scep-cacert.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Parsed three ways: as the PKCS#7 content type, as the single-certificate type, and with a
 * fingerprint to check. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static const char *const types[] = {
                "application/x-x509-ca-ra-cert", "application/x-x509-ca-cert", NULL,
        };
        static const uint8_t fp[SCEP_FINGERPRINT_SIZE] = { 1, 2, 3 };

        for (size_t i = 0; i < 3; i++) {
                ScepCACerts *c = NULL;
                ScepError e;
                int r = scep_cacert_parse(types[i], data, size, i == 2 ? fp : NULL, &c, &e);

                if (r < 0 && r != -ENOMEM)
                        abort();
                if (r == 0) {
                        /* Invariants of a successful parse. */
                        if (!c || !c->ca || !c->recipient || !c->verifier)
                                abort();
                        if (c->recipient != c->ca && c->recipient != c->ra_encrypt)
                                abort();
                        if (c->verifier != c->ca && c->verifier != c->ra_sign)
                                abort();
                        if (i == 2)     /* that fingerprint matches nothing real */
                                abort();
                        scep_cacerts_free(c);
                } else if (c)
                        abort();
        }
        return 0;
}
