/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The fixed PKI and request of fuzz-scep-fixture.h, loaded once per process. */

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "scep-cacert.h"
#include "scep-message.h"

typedef struct ScepFuzzFixture {
        EVP_PKEY *ca_key, *rasign_key, *raenc_key, *client_key;
        X509 *ca, *rasign, *raenc, *signer;
        X509_REQ *csr;
        ScepCACerts *ndes;          /* RA signing + RA encryption + CA */
        ScepCACerts *ca_only;       /* the CA alone (micromdm) */
        ScepMessage request;        /* transaction_id + sender_nonce the seeds answer */
} ScepFuzzFixture;

const ScepFuzzFixture *scep_fuzz_fixture(void);
