/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <stdlib.h>
#include <string.h>

#include "basic.h"
#include "crypto-jobs.h"
#include "secret-memory.h"

ScepBuildJob *scep_build_job_new(void) {
        return calloc(1, sizeof(ScepBuildJob));
}

int scep_build_job_set_subject(ScepBuildJob *j, const ScepRdn *rdns, size_t n, const char *const *names) {
        size_t n_names = 0;

        j->subject = calloc(n ? n : 1, sizeof(*j->subject));
        if (!j->subject)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                j->n_subject = i + 1;
                j->subject[i].type = strdup(rdns[i].type);
                j->subject[i].value = strdup(rdns[i].value);
                if (!j->subject[i].type || !j->subject[i].value)
                        return -ENOMEM;
        }
        while (names && names[n_names])
                n_names++;
        j->names = calloc(n_names + 1, sizeof(*j->names));
        if (!j->names)
                return -ENOMEM;
        for (size_t i = 0; i < n_names; i++) {
                j->names[i] = strdup(names[i]);
                if (!j->names[i])
                        return -ENOMEM;
                j->n_names = i + 1;
        }
        return 0;
}

int scep_build_job_set_challenge(ScepBuildJob *j, const char *challenge) {
        if (!challenge)
                return 0;
        return secret_new_copy(challenge, strlen(challenge), &j->challenge);
}

/* The build steps still to do, in order; stops at the first that fails. 0, < 0 errno, > 0
 * ScepResult (j->err says more). */
static int scep_build_job_steps(ScepBuildJob *j) {
        int r;

        if (j->signer_only)
                return scep_signer_cert_build_for_subject(j->subject, j->n_subject, j->signer_key, j->digest,
                                                          &j->signer_cert, &j->err);
        if (!j->csr) {
                ScepCsrParams p = {
                        .subject = j->subject,
                        .n_subject = j->n_subject,
                        .dns_names = (const char *const *) j->names,
                        .n_dns_names = j->n_names,
                        .usage = j->usage,
                        .challenge = j->challenge ? (const char *) j->challenge->data : NULL,
                        .digest = j->digest,
                };
                r = scep_csr_build(&p, j->key, &j->csr, &j->err);
                if (r != 0) {
                        j->csr_failed = true;
                        return r;
                }
        }
        if (!j->signer_cert) {
                r = scep_signer_cert_build(j->csr, j->signer_key, j->digest, &j->signer_cert, &j->err);
                if (r != 0)
                        return r;
        }

        ScepRequestParams rp = {
                .csr = j->csr,
                .signer_cert = j->signer_cert,
                .signer_key = j->signer_key,
                .recipient = j->certs->recipient,
                .ca = j->certs->ca,
                .cipher = j->cipher,
                .digest = j->digest,
        };
        r = scep_message_build(j->type, &rp, &j->msg, &j->err);
        if (r != 0)
                return r;

        if (!j->strip_challenge)
                return 0;
        r = scep_csr_strip_challenge(j->csr, NULL);
        if (r < 0)
                return r;
        return 0;
}

void scep_build_job_run(void *userdata) {
        ScepBuildJob *j = userdata;

        j->result = scep_build_job_steps(j);
        /* The error queue is per thread: leave nothing behind on the worker. */
        ERR_clear_error();
}

void scep_build_job_free(void *userdata) {
        ScepBuildJob *j = userdata;

        if (!j)
                return;
        for (size_t i = 0; i < j->n_subject; i++) {
                free((char *) j->subject[i].type);
                free((char *) j->subject[i].value);
        }
        free(j->subject);
        for (size_t i = 0; j->names && i < j->n_names; i++)
                free(j->names[i]);
        free(j->names);
        secret_free(j->challenge);
        scep_csr_free(j->csr);          /* wipes the challenge if it is still in there */
        X509_free(j->signer_cert);
        EVP_PKEY_free(j->signer_key);
        EVP_PKEY_free(j->key);
        scep_cacerts_free(j->certs);
        scep_message_free(j->msg);
        free(j);
}

ScepParseJob *scep_parse_job_new(const void *body, size_t size) {
        _cleanup_free_ ScepParseJob *j = calloc(1, sizeof(*j));

        if (!j)
                return NULL;
        j->body = malloc(size ? size : 1);
        if (!j->body)
                return NULL;
        if (size)
                memcpy(j->body, body, size);
        j->size = size;
        return TAKE_PTR(j);
}

void scep_parse_job_run(void *userdata) {
        ScepParseJob *j = userdata;
        ScepCertRepParams p = {
                .request = &j->request,
                .ca_certs = j->certs,
                .signer_cert = j->signer_cert,
                .signer_key = j->signer_key,
                .request_key = j->request_key,
                .allow_legacy = j->allow_legacy,
        };

        j->result = scep_certrep_parse(&p, j->body, j->size, &j->rep, &j->err);
        ERR_clear_error();
}

void scep_parse_job_free(void *userdata) {
        ScepParseJob *j = userdata;

        if (!j)
                return;
        free(j->body);
        scep_cacerts_free(j->certs);
        X509_free(j->signer_cert);
        EVP_PKEY_free(j->signer_key);
        EVP_PKEY_free(j->request_key);
        scep_certrep_free(j->rep);
        free(j->host);
        free(j);
}
