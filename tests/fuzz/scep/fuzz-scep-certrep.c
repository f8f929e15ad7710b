/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

#include "scep-certrep.h"
#include "scep-fuzz-fixture.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A CertRep answering the fixture's request, parsed against an NDES (RA) and a CA-only
 * (micromdm) GetCACert, with and without AllowLegacyCiphers. The seeds are valid replies
 * signed with the fixture keys, so every path after the signature check is reachable. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        const ScepFuzzFixture *f = scep_fuzz_fixture();
        static const struct {
                int ndes;
                int legacy;
        } runs[] = { { 1, 0 }, { 1, 1 }, { 0, 1 } };

        for (size_t i = 0; i < 3; i++) {
                ScepCertRepParams p = {
                        .request = &f->request,
                        .ca_certs = runs[i].ndes ? f->ndes : f->ca_only,
                        .signer_cert = f->signer,
                        .signer_key = f->client_key,
                        .csr = f->csr,
                        .allow_legacy = runs[i].legacy,
                };
                ScepCertRep *rep = NULL;
                ScepError e;
                int r = scep_certrep_parse(&p, data, size, &rep, &e);

                if (r < 0 && r != -ENOMEM && r != -EIO)
                        abort();
                if (r == 0) {
                        if (!rep)
                                abort();
                        if (rep->status == SCEP_STATUS_SUCCESS && !rep->certificate)
                                abort();
                        if (!scep_fail_info_to_string(rep->fail_info))
                                abort();
                        char text[600];
                        scep_certrep_describe_failure(rep, text, sizeof text);
                        scep_certrep_free(rep);
                } else if (rep)
                        abort();
        }
        return 0;
}
