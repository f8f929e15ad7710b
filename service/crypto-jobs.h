/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The two pieces of an enrollment's SCEP work that run on a crypto worker (crypto-work.h):
 * building the request (its CSR, the signer certificate, the pkiMessage) and reading the
 * CertRep (verification, decryption, the issued certificate). Each job owns its inputs
 * (copies, or references taken on the loop) so that the request it belongs to may end while
 * the worker runs; scep_*_job_run() touches nothing else.
 */

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "scep-cacert.h"
#include "secret-memory.h"
#include "scep-caps.h"
#include "scep-certrep.h"
#include "scep-csr.h"
#include "scep-message.h"

typedef struct ScepBuildJob {
        /* In. A CSR given (a CertPoll's, from the journal) is used as it is; else one is built
         * from the subject, names, usage, challenge and key. */
        X509_REQ *csr;
        ScepRdn *subject;               /* deep copies */
        size_t n_subject;
        char **names;
        size_t n_names;
        ScepUsage usage;
        CbSecret *challenge;            /* guarded memory (secret-memory.h), NUL-terminated */
        EVP_PKEY *key;                  /* the request's key (a reference) */
        X509 *signer_cert;              /* a reference, or NULL: built from the CSR */
        EVP_PKEY *signer_key;           /* a reference */
        ScepCACerts *certs;             /* a reference taken and dropped on the loop */
        ScepCipher cipher;
        ScepDigest digest;
        ScepMessageType type;
        bool strip_challenge;           /* a PKCSReq: the kept CSR loses the challenge once built */
        bool signer_only;               /* only the signer certificate, for the subject */
        void *userdata;                 /* the caller's (the request) */
        /* Out. */
        int result;                     /* 0, < 0 errno, > 0 ScepResult (err says more) */
        bool csr_failed;                /* the CSR could not be built */
        ScepError err;
        ScepMessage *msg;
} ScepBuildJob;

ScepBuildJob *scep_build_job_new(void);
/* Deep copies into the job; -ENOMEM. */
int scep_build_job_set_subject(ScepBuildJob *j, const ScepRdn *rdns, size_t n, const char *const *names);
int scep_build_job_set_challenge(ScepBuildJob *j, const char *challenge);
void scep_build_job_run(void *job);
/* Frees the job and everything it still owns (csr, signer_cert, msg: take them out first). */
void scep_build_job_free(void *job);

typedef struct ScepParseJob {
        /* In. */
        uint8_t *body;
        size_t size;
        ScepMessage request;            /* transaction id and sender nonce of ours (no DER) */
        ScepCACerts *certs;             /* a reference taken and dropped on the loop */
        X509 *signer_cert;              /* references */
        EVP_PKEY *signer_key;
        EVP_PKEY *request_key;          /* the CSR's public key */
        bool allow_legacy;
        char *host;
        void *userdata;
        /* Out. */
        int result;
        ScepError err;
        ScepCertRep *rep;
} ScepParseJob;

ScepParseJob *scep_parse_job_new(const void *body, size_t size);
void scep_parse_job_run(void *job);
void scep_parse_job_free(void *job);
