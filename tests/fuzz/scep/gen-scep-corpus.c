/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* Writes the seed corpora of the SCEP fuzzers: gen-scep-corpus DIR (DIR = tests/fuzz/corpus).
 * CertRep seeds answer the fixed request of fuzz-scep-fixture.h, produced by the unit tests'
 * fake NDES, so they verify and decrypt in the fuzzer. */

#include <errno.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "scep-fuzz-fixture.h"
#include "scep-test-ndes.h"

static const char *root;

static void put(const char *dir, const char *name, const void *data, size_t size) {
        char path[4096];
        FILE *f;

        snprintf(path, sizeof path, "%s/%s", root, dir);
        if (mkdir(path, 0755) < 0 && errno != EEXIST) {
                perror(path);
                exit(EXIT_FAILURE);
        }
        snprintf(path, sizeof path, "%s/%s/%s", root, dir, name);
        f = fopen(path, "wbe");
        if (!f || fwrite(data, 1, size, f) != size || fclose(f) != 0) {
                perror(path);
                exit(EXIT_FAILURE);
        }
}

static void put_str(const char *dir, const char *name, const char *s) {
        put(dir, name, s, strlen(s));
}

static void caps_seeds(void) {
        put_str("scep-caps", "windows-2016", "POSTPKIOperation\r\nRenewal\r\nSHA-512\r\nSHA-256\r\nSHA-1\r\nDES3\r\n");
        put_str("scep-caps", "micromdm", "Renewal\nSHA-1\nSHA-256\nAES\nDES3\nSCEPStandard\nPOSTPKIOperation");
        put_str("scep-caps", "scep-standard", "SCEPStandard\n");
        put_str("scep-caps", "odd", "  sha-256 \r\n\r\n\nFrobnicate\rmd5\nDES\nSHA-256x\n\tpostpkioperation\t\nGetNextCACert\nUpdate\n");
        put("scep-caps", "nul", "AES\0\nSHA-256\nDE\0S3\n", 20);
        put_str("scep-caps", "empty", "");
        put_str("scep-caps", "sha1-only", "SHA-1\nDES3\n");
}

static void put_der_chain(const char *name, X509 *const *certs, size_t n) {
        size_t size;
        uint8_t *der = test_degenerate_pkcs7(certs, n, &size);

        put("scep-cacert", name, der, size);
        free(der);
}

static void cacert_seeds(const ScepFuzzFixture *f) {
        X509 *ndes1[3] = { f->rasign, f->raenc, f->ca };
        X509 *ndes2[3] = { f->ca, f->raenc, f->rasign };
        X509 *ca_only[1] = { f->ca };
        X509 *ra_only[2] = { f->rasign, f->raenc };
        size_t size;
        uint8_t *der;

        put_der_chain("ndes-ra-first", ndes1, 3);
        put_der_chain("ndes-ca-first", ndes2, 3);
        put_der_chain("ca-only-pkcs7", ca_only, 1);
        put_der_chain("ra-only", ra_only, 2);
        put_der_chain("empty-pkcs7", NULL, 0);
        der = test_cert_der(f->ca, &size);
        put("scep-cacert", "ca-only-der", der, size);
        free(der);
}

static void certrep_seed(const char *name, const TestPki *pki, const TestNdesRequest *req,
                         const ScepFuzzFixture *f, const TestCertRepOptions *o) {
        size_t size;
        uint8_t *der = test_ndes_certrep(pki, req, f->client_key, o, &size);

        put("scep-certrep", name, der, size);
        free(der);
}

static void certrep_seeds(const ScepFuzzFixture *f) {
        TestPki pki = {
                .ca_key = f->ca_key, .ra_sign_key = f->rasign_key, .ra_enc_key = f->raenc_key,
                .ca = f->ca, .ra_sign = f->rasign, .ra_enc = f->raenc,
        };
        TestNdesRequest req = { .message_type = 19, .sender_nonce_size = SCEP_NONCE_SIZE };

        memcpy(req.transaction_id, f->request.transaction_id, sizeof f->request.transaction_id);
        memcpy(req.sender_nonce, f->request.sender_nonce, SCEP_NONCE_SIZE);
        req.signer = f->signer;
        req.csr = f->csr;

        certrep_seed("success-aes", &pki, &req, f, &(TestCertRepOptions) { .status = 0 });
        certrep_seed("success-des3", &pki, &req, f, &(TestCertRepOptions) { .status = 0, .cipher = "DES-EDE3-CBC" });
        certrep_seed("success-oaep", &pki, &req, f, &(TestCertRepOptions) { .status = 0, .oaep = true });
        certrep_seed("success-des", &pki, &req, f, &(TestCertRepOptions) { .status = 0, .cipher = "DES-CBC" });
        certrep_seed("micromdm", &pki, &req, f, &(TestCertRepOptions) {
                .status = 0, .cipher = "DES-CBC", .md = EVP_sha1(), .signer = f->ca, .signer_key = f->ca_key });
        certrep_seed("windows-2012-failure", &pki, &req, f, &(TestCertRepOptions) {
                .status = 2, .fail_info = 1, .md = EVP_sha1(), .no_certs = true, .ms_hresult = "-2146875374" });
        certrep_seed("windows-2012-success", &pki, &req, f, &(TestCertRepOptions) {
                .status = 0, .md = EVP_sha1(), .no_certs = true, .oaep = true, .cipher = "DES-EDE3-CBC" });
        certrep_seed("failure-empty", &pki, &req, f, &(TestCertRepOptions) { .status = 2, .fail_info = 3, .content = 1 });
        certrep_seed("failure-absent", &pki, &req, f, &(TestCertRepOptions) { .status = 2, .omit_fail_info = true, .content = 2 });
        certrep_seed("pending", &pki, &req, f, &(TestCertRepOptions) { .status = 3 });
        certrep_seed("keyid", &pki, &req, f, &(TestCertRepOptions) { .status = 3, .use_keyid = true });
        certrep_seed("wrong-nonce", &pki, &req, f, &(TestCertRepOptions) { .status = 3, .wrong_nonce = true });
        certrep_seed("bad-failinfo", &pki, &req, f, &(TestCertRepOptions) { .status = 2, .fail_info_text = "7" });
        certrep_seed("wrong-key", &pki, &req, f, &(TestCertRepOptions) { .status = 0, .issue_key = f->ca_key });
}

int main(int argc, char **argv) {
        const ScepFuzzFixture *f;

        if (argc != 2) {
                fprintf(stderr, "usage: %s CORPUS-ROOT\n", argv[0]);
                return EXIT_FAILURE;
        }
        root = argv[1];
        f = scep_fuzz_fixture();
        caps_seeds();
        cacert_seeds(f);
        certrep_seeds(f);
        return EXIT_SUCCESS;
}
