/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * scep-cpu: the CPU time of each SCEP step the broker does per enrollment, in process, without
 * a lab: what the event loop spent on an enrollment before crypto-work moved it to workers, step
 * by step, so that a change to service/scep-*.c or keys-* can be measured on its own (the
 * enrollment benchmark measures the whole broker).
 *
 *   scep-cpu [N]     N enrollments (default 40), each with a fresh RSA-2048 key as the pool
 *                    hands out (made before timing, like the pool's refill)
 *
 * Per enrollment, timed with the thread's CPU clock: the PKCS#8 export of the key (the journal
 * keeps it encrypted), the transaction id, the CSR with the challenge, the signer certificate,
 * the PKCSReq, the challenge stripped from the kept CSR, the CertRep parsed and decrypted (a
 * SUCCESS built by the unit tests' fake NDES, tests/unit/scep/scep-test-ndes.c, untimed), the
 * issued certificate and chain to PEM. Prints each step's median and mean in µs, and the sum
 * of the means.
 */
#include <openssl/evp.h>
#include <setjmp.h>
#include <sodium.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include "keys-generate.h"
#include "scep-cacert.h"
#include "scep-certrep.h"
#include "scep-csr.h"
#include "scep-message.h"
#include "scep-test-ndes.h"
#include "secret-memory.h"

enum {
        STEP_EXPORT,
        STEP_TXID,
        STEP_CSR,
        STEP_SIGNER,
        STEP_PKCSREQ,
        STEP_STRIP,
        STEP_CERTREP,
        STEP_PEM,
        _STEP_MAX,
};

static const char *const step_names[_STEP_MAX] = {
        [STEP_EXPORT] = "key PKCS#8 export (journal)",
        [STEP_TXID] = "transaction id",
        [STEP_CSR] = "CSR with challenge",
        [STEP_SIGNER] = "signer certificate",
        [STEP_PKCSREQ] = "PKCSReq (SignedData over EnvelopedData)",
        [STEP_STRIP] = "challenge stripped from the kept CSR",
        [STEP_CERTREP] = "CertRep verified and decrypted",
        [STEP_PEM] = "certificate and chain to PEM",
};

static double cpu_us(void) {
        struct timespec ts;
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
        return (double) ts.tv_sec * 1e6 + (double) ts.tv_nsec / 1e3;
}

static int cmp_double(const void *a, const void *b) {
        double x = *(const double *) a, y = *(const double *) b;
        return (x > y) - (x < y);
}

#define CHECK(expr)                                                             \
        do {                                                                    \
                if (!(expr)) {                                                  \
                        fprintf(stderr, "scep-cpu: %s failed (line %d)\n", #expr, __LINE__); \
                        exit(1);                                                \
                }                                                               \
        } while (0)

int main(int argc, char *argv[]) {
        size_t n = argc > 1 ? strtoul(argv[1], NULL, 10) : 40;
        static const ScepRdn subject[] = { { "CN", "bench.a.example.test" } };
        static const char *const names[] = { "bench.a.example.test" };
        TestPki pki;
        ScepCACerts *certs = NULL;
        X509 *order[3];
        uint8_t *der;
        size_t size;

        if (n == 0 || n > 10000)
                return 2;
        CHECK(sodium_init() >= 0);
        test_pki_init(&pki);
        order[0] = pki.ca;
        order[1] = pki.ra_enc;
        order[2] = pki.ra_sign;
        der = test_degenerate_pkcs7(order, 3, &size);
        CHECK(scep_cacert_parse("application/x-x509-ca-ra-cert", der, size, NULL, &certs, NULL) == 0);
        free(der);

        double *t[_STEP_MAX];
        for (unsigned s = 0; s < _STEP_MAX; s++)
                CHECK((t[s] = calloc(n, sizeof(double))));

        for (size_t i = 0; i < n; i++) {
                EVP_PKEY *key = EVP_RSA_gen(2048);      /* the pool's refill, untimed */
                CbSecret *pem = NULL;
                X509_REQ *csr = NULL;
                X509 *signer = NULL;
                ScepMessage *msg = NULL;
                ScepCertRep *rep = NULL;
                char txid[SCEP_TRANSACTION_ID_SIZE], *cert_pem = NULL, *chain_pem = NULL;
                TestNdesRequest req;
                double c0;

                CHECK(key);
                c0 = cpu_us();
                CHECK(key_export_pkcs8_pem(key, &pem) == 0);
                t[STEP_EXPORT][i] = cpu_us() - c0;
                secret_free(pem);

                c0 = cpu_us();
                CHECK(scep_transaction_id_for_key(key, txid) == 0);
                t[STEP_TXID][i] = cpu_us() - c0;

                ScepCsrParams p = {
                        .subject = subject, .n_subject = 1, .dns_names = names, .n_dns_names = 1,
                        .usage = SCEP_USAGE_BOTH, .challenge = "0123456789ABCDEF", .digest = SCEP_DIGEST_SHA256,
                };
                c0 = cpu_us();
                CHECK(scep_csr_build(&p, key, &csr, NULL) == 0);
                t[STEP_CSR][i] = cpu_us() - c0;

                c0 = cpu_us();
                CHECK(scep_signer_cert_build_for_subject(subject, 1, key, SCEP_DIGEST_SHA256, &signer, NULL) == 0);
                t[STEP_SIGNER][i] = cpu_us() - c0;

                ScepRequestParams rp = {
                        .csr = csr, .signer_cert = signer, .signer_key = key,
                        .recipient = certs->recipient, .ca = certs->ca,
                        .cipher = SCEP_CIPHER_AES128_CBC, .digest = SCEP_DIGEST_SHA256,
                };
                c0 = cpu_us();
                CHECK(scep_message_build(SCEP_MESSAGE_PKCS_REQ, &rp, &msg, NULL) == 0);
                t[STEP_PKCSREQ][i] = cpu_us() - c0;

                /* The server's side, untimed. */
                test_ndes_parse_request(msg->der, msg->size, certs->recipient, pki.ra_enc_key, &req);
                TestCertRepOptions o = { .status = 0 };
                uint8_t *rep_der = test_ndes_certrep(&pki, &req, key, &o, &size);

                c0 = cpu_us();
                CHECK(scep_csr_strip_challenge(csr, NULL) == 1);
                t[STEP_STRIP][i] = cpu_us() - c0;

                ScepCertRepParams cp = {
                        .request = msg, .ca_certs = certs, .signer_cert = signer, .signer_key = key, .csr = csr,
                };
                c0 = cpu_us();
                CHECK(scep_certrep_parse(&cp, rep_der, size, &rep, NULL) == 0);
                t[STEP_CERTREP][i] = cpu_us() - c0;
                CHECK(rep->status == SCEP_STATUS_SUCCESS && rep->certificate);

                c0 = cpu_us();
                CHECK(scep_certs_to_pem(rep->certificate, NULL, &cert_pem) == 0);
                CHECK(scep_certs_to_pem(NULL, rep->chain, &chain_pem) == 0);
                t[STEP_PEM][i] = cpu_us() - c0;

                free(cert_pem);
                free(chain_pem);
                free(rep_der);
                scep_certrep_free(rep);
                test_ndes_request_done(&req);
                scep_message_free(msg);
                X509_free(signer);
                scep_csr_free(csr);
                EVP_PKEY_free(key);
        }

        double total = 0;
        printf("# scep-cpu: %zu enrollments, RSA-2048, SHA-256, AES-128; thread CPU time per step (µs)\n", n);
        printf("%-44s %9s %9s\n", "step", "median", "mean");
        for (unsigned s = 0; s < _STEP_MAX; s++) {
                double sum = 0;
                for (size_t i = 0; i < n; i++)
                        sum += t[s][i];
                qsort(t[s], n, sizeof(double), cmp_double);
                printf("%-44s %9.0f %9.0f\n", step_names[s], t[s][n / 2], sum / (double) n);
                total += sum / (double) n;
                free(t[s]);
        }
        printf("%-44s %9s %9.0f\n", "total (sum of the means)", "", total);
        scep_cacerts_free(certs);
        test_pki_done(&pki);
        return 0;
}
