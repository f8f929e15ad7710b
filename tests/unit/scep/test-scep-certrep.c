/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <openssl/provider.h>
#include <openssl/x509v3.h>

#include "scep-cacert.h"
#include "scep-certrep.h"
#include "scep-csr.h"
#include "scep-message.h"
#include "scep-test-ndes.h"
#include "scep.h"

static TestPki pki;
static ScepCACerts *ndes_certs;         /* RA signing + RA encryption + CA */
static ScepCACerts *ca_only_certs;      /* micromdm: the CA alone */

static int setup(void **state) {
        X509 *order[3];
        size_t size;
        uint8_t *der;

        test_pki_init(&pki);
        order[0] = pki.ca;
        order[1] = pki.ra_enc;
        order[2] = pki.ra_sign;
        der = test_degenerate_pkcs7(order, 3, &size);
        assert_int_equal(scep_cacert_parse("application/x-x509-ca-ra-cert", der, size, NULL, &ndes_certs, NULL), 0);
        free(der);
        der = test_cert_der(pki.ca, &size);
        assert_int_equal(scep_cacert_parse("application/x-x509-ca-cert", der, size, NULL, &ca_only_certs, NULL), 0);
        free(der);
        return 0;
}

static int teardown(void **state) {
        scep_cacerts_free(ndes_certs);
        scep_cacerts_free(ca_only_certs);
        test_pki_done(&pki);
        return 0;
}

static const ScepRdn subject_web[] = { { "CN", "web.a.example.com" } };
static const char *const names_web[] = { "web.a.example.com" };

typedef struct Enrollment {
        EVP_PKEY *key, *signer_key;
        X509_REQ *csr;
        X509 *signer;
        const ScepCACerts *certs;
        ScepMessage *msg;
        TestNdesRequest req;            /* what the fake NDES read */
} Enrollment;

static void enroll_send(Enrollment *en, ScepMessageType type) {
        ScepRequestParams p = {
                .csr = en->csr, .signer_cert = en->signer, .signer_key = en->signer_key,
                .recipient = en->certs->recipient, .ca = en->certs->ca,
                .cipher = SCEP_CIPHER_AES128_CBC, .digest = SCEP_DIGEST_SHA256,
        };
        EVP_PKEY *rkey = en->certs->ra_encrypt ? pki.ra_enc_key : pki.ca_key;

        scep_message_free(en->msg);
        en->msg = NULL;
        test_ndes_request_done(&en->req);
        assert_int_equal(scep_message_build(type, &p, &en->msg, NULL), 0);
        test_ndes_parse_request(en->msg->der, en->msg->size, en->certs->recipient, rkey, &en->req);
        assert_true(en->req.recipient_matches);
}

static void enroll_start(Enrollment *en, EVP_PKEY *key, EVP_PKEY *transport_key, const ScepCACerts *certs) {
        ScepCsrParams p = {
                .subject = subject_web, .n_subject = 1, .dns_names = names_web, .n_dns_names = 1,
                .usage = SCEP_USAGE_BOTH, .challenge = "1ED0DD50F7459D6E", .digest = SCEP_DIGEST_SHA256,
        };

        memset(en, 0, sizeof *en);
        en->key = key;
        en->signer_key = transport_key ?: key;
        en->certs = certs;
        assert_int_equal(scep_csr_build(&p, key, &en->csr, NULL), 0);
        assert_int_equal(scep_signer_cert_build(en->csr, en->signer_key, SCEP_DIGEST_SHA256, &en->signer, NULL), 0);
        enroll_send(en, SCEP_MESSAGE_PKCS_REQ);
}

static void enroll_done(Enrollment *en) {
        X509_REQ_free(en->csr);
        X509_free(en->signer);
        scep_message_free(en->msg);
        test_ndes_request_done(&en->req);
}

static int parse_der(Enrollment *en, const uint8_t *der, size_t size, bool legacy, ScepCertRep **ret, ScepError *e) {
        ScepCertRepParams p = {
                .request = en->msg, .ca_certs = en->certs, .signer_cert = en->signer,
                .signer_key = en->signer_key, .csr = en->csr, .allow_legacy = legacy,
        };
        *ret = NULL;
        return scep_certrep_parse(&p, der, size, ret, e);
}

static int reply(Enrollment *en, const TestCertRepOptions *o, bool legacy, ScepCertRep **ret, ScepError *e) {
        size_t size;
        uint8_t *der = test_ndes_certrep(&pki, &en->req, en->key, o, &size);
        int r = parse_der(en, der, size, legacy, ret, e);

        free(der);
        if (r != 0 && e)
                print_message("certrep: %s: %s\n", scep_result_to_string(e->result) ?: "?", e->message);
        return r;
}

static void assert_issued(Enrollment *en, ScepCertRep *rep) {
        assert_int_equal(rep->status, SCEP_STATUS_SUCCESS);
        assert_non_null(rep->certificate);
        assert_int_equal(EVP_PKEY_eq(X509_get0_pubkey(rep->certificate), en->key), 1);
        assert_int_equal(X509_NAME_cmp(X509_get_subject_name(rep->certificate),
                                       X509_REQ_get_subject_name(en->csr)), 0);
        assert_int_equal(sk_X509_num(rep->chain), 1);
        assert_int_equal(X509_cmp(sk_X509_value(rep->chain, 0), pki.ca), 0);
        assert_int_equal(rep->fail_info, SCEP_FAIL_NONE);
}

/* ---- SUCCESS in every cipher ----------------------------------------------------------- */

static void test_success_aes(void **state) {
        Enrollment en;
        TestCertRepOptions o = { .status = 0 };
        ScepCertRep *rep;
        ScepError e = {};

        enroll_start(&en, test_rsa_key(3), NULL, ndes_certs);
        assert_int_equal(reply(&en, &o, false, &rep, &e), 0);
        assert_issued(&en, rep);
        assert_int_equal(rep->digest, SCEP_DIGEST_SHA256);
        assert_false(rep->legacy_cipher);
        assert_string_equal(rep->ms_hresult, "");
        scep_certrep_free(rep);

        /* SHA-384/512 replies are fine; MD5 never, not even with AllowLegacyCiphers. */
        o.md = EVP_sha512();
        assert_int_equal(reply(&en, &o, false, &rep, &e), 0);
        assert_int_equal(rep->digest, SCEP_DIGEST_SHA512);
        assert_string_equal(scep_digest_to_string(rep->digest), "SHA-512");
        scep_certrep_free(rep);
        o.md = EVP_sha384();
        assert_int_equal(reply(&en, &o, false, &rep, &e), 0);
        assert_int_equal(rep->digest, SCEP_DIGEST_SHA384);
        scep_certrep_free(rep);
        o.md = EVP_md5();
        assert_int_equal(reply(&en, &o, true, &rep, &e), SCEP_RESULT_LEGACY_ALGORITHM);
        assert_non_null(strstr(e.message, "MD5"));
        enroll_done(&en);
}

static void test_success_des3(void **state) {
        Enrollment en;
        TestCertRepOptions o = { .status = 0, .cipher = "DES-EDE3-CBC" };
        ScepCertRep *rep;

        enroll_start(&en, test_rsa_key(3), NULL, ndes_certs);
        assert_int_equal(reply(&en, &o, false, &rep, NULL), 0);
        assert_issued(&en, rep);
        assert_false(rep->legacy_cipher);
        scep_certrep_free(rep);
        enroll_done(&en);
}

static void test_success_oaep(void **state) {
        Enrollment en;
        TestCertRepOptions o = { .status = 0, .oaep = true };
        ScepCertRep *rep;
        ScepError e = {};

        enroll_start(&en, test_rsa_key(3), NULL, ndes_certs);
        assert_int_equal(reply(&en, &o, false, &rep, &e), 0);
        assert_issued(&en, rep);
        scep_certrep_free(rep);
        /* OAEP with DES3 too (Windows 2012 emulation). */
        o.cipher = "DES-EDE3-CBC";
        assert_int_equal(reply(&en, &o, false, &rep, &e), 0);
        assert_issued(&en, rep);
        scep_certrep_free(rep);
        enroll_done(&en);
}

static void test_single_des(void **state) {
        Enrollment en;
        TestCertRepOptions o = { .status = 0, .cipher = "DES-CBC" };
        ScepCertRep *rep = NULL;
        ScepError e = {};

        enroll_start(&en, test_rsa_key(3), NULL, ndes_certs);
        /* Refused without AllowLegacyCiphers, with the fix named. */
        assert_int_equal(reply(&en, &o, false, &rep, &e), SCEP_RESULT_LEGACY_ALGORITHM);
        assert_null(rep);
        assert_int_equal(e.result, SCEP_RESULT_LEGACY_ALGORITHM);
        assert_non_null(strstr(e.message, "single DES"));
        assert_non_null(strstr(e.message, "AllowLegacyCiphers=yes"));
        /* Read through a private library context with it. */
        assert_int_equal(reply(&en, &o, true, &rep, &e), 0);
        assert_issued(&en, rep);
        assert_true(rep->legacy_cipher);
        scep_certrep_free(rep);
        /* The process's default library context never got the legacy provider. */
        assert_int_equal(OSSL_PROVIDER_available(NULL, "legacy"), 0);
        enroll_done(&en);
}

static void test_micromdm(void **state) {
        /* CA only, reply signed by the CA with SHA-1 and encrypted with single DES. */
        Enrollment en;
        TestCertRepOptions o = { .status = 0, .cipher = "DES-CBC", .md = EVP_sha1(),
                                 .signer = pki.ca, .signer_key = pki.ca_key };
        ScepCertRep *rep;
        ScepError e = {};

        enroll_start(&en, test_rsa_key(3), NULL, ca_only_certs);
        /* Without AllowLegacyCiphers the single-DES envelope is refused (the SHA-1 signature by
         * the pinned CA is not what stops it). */
        assert_int_equal(reply(&en, &o, false, &rep, &e), SCEP_RESULT_LEGACY_ALGORITHM);
        assert_non_null(strstr(e.message, "single DES"));
        assert_non_null(strstr(e.message, "AllowLegacyCiphers=yes"));
        assert_int_equal(reply(&en, &o, true, &rep, &e), 0);
        assert_issued(&en, rep);
        assert_int_equal(rep->digest, SCEP_DIGEST_SHA1);
        assert_true(rep->legacy_cipher);
        scep_certrep_free(rep);
        /* The same SHA-1 signature by the CA over an AES envelope: accepted by default. */
        o.cipher = NULL;
        assert_int_equal(reply(&en, &o, false, &rep, &e), 0);
        assert_issued(&en, rep);
        assert_int_equal(rep->digest, SCEP_DIGEST_SHA1);
        assert_false(rep->legacy_cipher);
        scep_certrep_free(rep);
        enroll_done(&en);
}

static void test_ec_key_with_transport_key(void **state) {
        /* An EC CSR key; the signer certificate carries a transient RSA key. */
        Enrollment en;
        TestCertRepOptions o = { .status = 0 };
        ScepCertRep *rep;
        ScepError e = {};
        char tid[SCEP_TRANSACTION_ID_SIZE];

        enroll_start(&en, test_ec_key(), test_rsa_key(5), ndes_certs);
        assert_int_equal(scep_transaction_id(en.csr, tid), 0);
        assert_string_equal(en.msg->transaction_id, tid);
        assert_int_equal(EVP_PKEY_eq(X509_get0_pubkey(en.req.signer), test_rsa_key(5)), 1);
        assert_int_equal(EVP_PKEY_eq(X509_REQ_get0_pubkey(en.req.csr), test_ec_key()), 1);
        assert_int_equal(reply(&en, &o, false, &rep, &e), 0);
        assert_issued(&en, rep);
        scep_certrep_free(rep);
        enroll_done(&en);
}

/* ---- Windows 2012 ---------------------------------------------------------------------- */

static void test_windows_2012_failure(void **state) {
        /* No certificates field, SHA-1, signer by issuerAndSerialNumber, Microsoft HRESULT,
         * FAILURE badMessageCheck with a single 0x00 byte of content. */
        Enrollment en;
        TestCertRepOptions o = { .status = 2, .fail_info = 1, .md = EVP_sha1(),
                                 .no_certs = true, .ms_hresult = "-2146875374" };
        ScepCertRep *rep;
        ScepError e = {};
        char text[400];

        enroll_start(&en, test_rsa_key(3), NULL, ndes_certs);
        assert_int_equal(reply(&en, &o, true, &rep, &e), 0);
        assert_int_equal(rep->status, SCEP_STATUS_FAILURE);
        assert_int_equal(rep->fail_info, SCEP_FAIL_BAD_MESSAGE_CHECK);
        assert_string_equal(scep_fail_info_to_string(rep->fail_info), "badMessageCheck");
        assert_string_equal(rep->ms_hresult, "-2146875374");
        assert_int_equal(rep->digest, SCEP_DIGEST_SHA1);
        assert_null(rep->certificate);
        scep_certrep_describe_failure(rep, text, sizeof text);
        assert_non_null(strstr(text, "badMessageCheck"));
        assert_non_null(strstr(text, "challenge"));
        assert_non_null(strstr(text, "0x80094812"));
        assert_non_null(strstr(text, "-2146875374"));
        scep_certrep_free(rep);
        /* The same reply without AllowLegacyCiphers: the same answer. NDES signs every CertRep
         * with SHA-1; it is accepted from the RA signing certificate of GetCACert. */
        assert_int_equal(reply(&en, &o, false, &rep, &e), 0);
        assert_int_equal(rep->status, SCEP_STATUS_FAILURE);
        assert_int_equal(rep->fail_info, SCEP_FAIL_BAD_MESSAGE_CHECK);
        assert_string_equal(rep->ms_hresult, "-2146875374");
        assert_int_equal(rep->digest, SCEP_DIGEST_SHA1);
        scep_certrep_free(rep);
        enroll_done(&en);
}

static void test_windows_2012_success(void **state) {
        Enrollment en;
        TestCertRepOptions o = { .status = 0, .md = EVP_sha1(), .no_certs = true,
                                 .oaep = true, .cipher = "DES-EDE3-CBC" };
        ScepCertRep *rep;
        ScepError e = {};

        enroll_start(&en, test_rsa_key(3), NULL, ndes_certs);
        assert_int_equal(reply(&en, &o, true, &rep, &e), 0);
        assert_issued(&en, rep);
        scep_certrep_free(rep);
        /* And without AllowLegacyCiphers (DES3, OAEP and SHA-1 are what Windows 2012 uses). */
        assert_int_equal(reply(&en, &o, false, &rep, &e), 0);
        assert_issued(&en, rep);
        assert_int_equal(rep->digest, SCEP_DIGEST_SHA1);
        scep_certrep_free(rep);
        /* Signer identified by subjectKeyIdentifier works as well. */
        o.use_keyid = true;
        o.md = NULL;
        assert_int_equal(reply(&en, &o, false, &rep, &e), 0);
        assert_issued(&en, rep);
        scep_certrep_free(rep);
        enroll_done(&en);
}

/* ---- SHA-1, the digest NDES signs with ---------------------------------------------------- */

static void test_sha1_reply_default(void **state) {
        /* NDES signs its CertReps with SHA-1 (certnanny/sscep#59, #157): a SHA-1 signature by
         * the RA signing certificate from GetCACert is accepted without AllowLegacyCiphers;
         * SHA-1 by anybody else is not, nor is MD5 by anybody. */
        Enrollment en;
        EVP_PKEY *rogue_key = test_rsa_key(6);
        X509 *rogue = test_make_cert("Exchange Enrollment Agent (Offline request)", rogue_key, NULL, NULL,
                                     false, KU_DIGITAL_SIGNATURE, NULL);
        TestCertRepOptions o = { .status = 0, .md = EVP_sha1() };
        ScepCertRep *rep;
        ScepError e = {};

        enroll_start(&en, test_rsa_key(3), NULL, ndes_certs);
        /* SUCCESS, AES and DES3 envelopes, signer in `certificates` or not. */
        assert_int_equal(reply(&en, &o, false, &rep, &e), 0);
        assert_issued(&en, rep);
        assert_int_equal(rep->digest, SCEP_DIGEST_SHA1);
        assert_string_equal(scep_digest_to_string(rep->digest), "SHA-1");
        scep_certrep_free(rep);
        o.cipher = "DES-EDE3-CBC";
        o.no_certs = true;
        assert_int_equal(reply(&en, &o, false, &rep, &e), 0);
        assert_issued(&en, rep);
        scep_certrep_free(rep);
        /* PENDING and FAILURE. */
        o.status = 3;
        assert_int_equal(reply(&en, &o, false, &rep, &e), 0);
        assert_int_equal(rep->status, SCEP_STATUS_PENDING);
        scep_certrep_free(rep);
        o.status = 2;
        o.fail_info = 2;
        assert_int_equal(reply(&en, &o, false, &rep, &e), 0);
        assert_int_equal(rep->status, SCEP_STATUS_FAILURE);
        assert_int_equal(rep->fail_info, SCEP_FAIL_BAD_REQUEST);
        scep_certrep_free(rep);

        /* SHA-1 from a signer that is not the pinned RA: refused, with or without
         * AllowLegacyCiphers, whether the signer ships its certificate or not. */
        o.status = 0;
        o.no_certs = false;
        o.signer = rogue;
        o.signer_key = rogue_key;
        for (int legacy = 0; legacy <= 1; legacy++) {
                rep = (void *) 1;
                assert_int_equal(reply(&en, &o, legacy, &rep, &e), SCEP_RESULT_BAD_SIGNATURE);
                assert_null(rep);
                assert_non_null(strstr(e.message, "RA signing"));
        }
        o.signer = pki.ca;                      /* the CA, when GetCACert has an RA */
        o.signer_key = pki.ca_key;
        assert_int_equal(reply(&en, &o, false, &rep, &e), SCEP_RESULT_BAD_SIGNATURE);
        o.signer = pki.ra_enc;                  /* the RA encryption certificate */
        o.signer_key = pki.ra_enc_key;
        assert_int_equal(reply(&en, &o, false, &rep, &e), SCEP_RESULT_BAD_SIGNATURE);
        {
                /* Naming the RA (same issuer and serial) but signed with another key. */
                X509 *forged = X509_dup(pki.ra_sign);
                assert_true(X509_set_pubkey(forged, rogue_key));
                assert_true(X509_sign(forged, rogue_key, EVP_sha256()));
                o.signer = forged;
                o.signer_key = rogue_key;
                assert_int_equal(reply(&en, &o, false, &rep, &e), SCEP_RESULT_BAD_SIGNATURE);
                assert_non_null(strstr(e.message, "does not verify"));
                o.no_certs = true;
                o.use_keyid = true;
                assert_int_equal(reply(&en, &o, false, &rep, &e), SCEP_RESULT_BAD_SIGNATURE);
                X509_free(forged);
        }
        /* The RA's own SHA-1 signature, corrupted. */
        o = (TestCertRepOptions) { .status = 0, .md = EVP_sha1(), .flip_signature = true };
        assert_int_equal(reply(&en, &o, false, &rep, &e), SCEP_RESULT_BAD_SIGNATURE);

        /* MD5, even by the RA: never. */
        o = (TestCertRepOptions) { .status = 2, .fail_info = 1, .md = EVP_md5() };
        assert_int_equal(reply(&en, &o, false, &rep, &e), SCEP_RESULT_LEGACY_ALGORITHM);
        assert_non_null(strstr(e.message, "MD5"));
        assert_non_null(strstr(e.message, "never"));
        X509_free(rogue);
        enroll_done(&en);
}

/* ---- a real Windows 2012 FAILURE (certnanny/sscep#59) -------------------------------------- */

static uint8_t *read_data(const char *name, size_t *ret_size) {
        char path[512];
        FILE *f;
        uint8_t *d = malloc(64 * 1024);
        size_t n;

        assert_non_null(d);
        snprintf(path, sizeof path, "%s/%s", SCEP_TEST_DATA_DIR, name);
        f = fopen(path, "rbe");
        assert_non_null(f);
        n = fread(d, 1, 64 * 1024, f);
        assert_true(feof(f));
        fclose(f);
        *ret_size = n;
        return d;
}

static void test_ndes2012_capture(void **state) {
        /* Its RA certificate was not posted: the signature cannot be checked, so the reply can
         * only be read unverified, and scep_certrep_parse() refuses it while saying what it
         * claims. */
        ScepCertRepClaim c, untouched;
        Enrollment en;
        ScepCertRep *rep = (void *) 1;
        ScepError e = {};
        char text[600];
        size_t size;
        uint8_t *der = read_data("ndes2012-certrep-failure.der", &size);

        assert_int_equal(size, 670);
        assert_int_equal(scep_certrep_read_unverified(der, size, &c, &e), 0);
        assert_int_equal(c.message_type, 3);
        assert_int_equal(c.status, SCEP_STATUS_FAILURE);
        assert_int_equal(c.fail_info, SCEP_FAIL_BAD_REQUEST);
        assert_string_equal(c.ms_hresult, "-2147024809");
        assert_int_equal(c.digest_nid, NID_sha1);
        scep_certrep_claim_describe(&c, text, sizeof text);
        print_message("claim: %s\n", text);
        assert_ptr_equal(strstr(text, "unverified"), text);
        assert_non_null(strstr(text, "FAILURE"));
        assert_non_null(strstr(text, "badRequest (2)"));
        assert_non_null(strstr(text, "0x80070057 (-2147024809)"));
        assert_non_null(strstr(text, "unsupported or malformed"));

        /* Against our RA (NDES) and our CA (CA only), with and without AllowLegacyCiphers: the
         * signer is not ours. The message names the capture's signer and what it claims,
         * labelled unverified; there is no ScepCertRep to act on. */
        for (int i = 0; i < 4; i++) {
                enroll_start(&en, test_rsa_key(3), NULL, i < 2 ? ndes_certs : ca_only_certs);
                memset(&e, 0, sizeof e);
                rep = (void *) 1;
                assert_int_equal(parse_der(&en, der, size, i % 2, &rep, &e), SCEP_RESULT_BAD_SIGNATURE);
                assert_null(rep);
                print_message("parse: %s\n", e.message);
                assert_non_null(strstr(e.message, "SRV2012-CA"));
                assert_non_null(strstr(e.message, "(unverified: the reply claims pkiStatus FAILURE, "
                                                  "failInfo badRequest (2), Microsoft HRESULT 0x80070057"));
                enroll_done(&en);
        }

        /* Not a CertRep at all: an error, *ret untouched. */
        memset(&untouched, 0x5a, sizeof untouched);
        c = untouched;
        assert_int_equal(scep_certrep_read_unverified(der, size - 1, &c, &e), SCEP_RESULT_MALFORMED);
        assert_int_equal(scep_certrep_read_unverified(der, 0, &c, &e), SCEP_RESULT_MALFORMED);
        assert_int_equal(scep_certrep_read_unverified("\x30\x03\x02\x01", 4, &c, &e), SCEP_RESULT_MALFORMED);
        assert_int_equal(scep_certrep_read_unverified(der, SCEP_CERTREP_MAX_SIZE + 1, &c, &e),
                         SCEP_RESULT_TOO_LARGE);
        assert_memory_equal(&c, &untouched, sizeof c);
        assert_int_equal(scep_certrep_read_unverified(NULL, 1, &c, &e), -EINVAL);
        assert_int_equal(scep_certrep_read_unverified(der, size, NULL, &e), -EINVAL);
        free(der);
}

static void test_unverified_claims(void **state) {
        /* A forged SUCCESS or PENDING is refused; what it claims shows only in the error text,
         * labelled unverified. */
        Enrollment en;
        EVP_PKEY *rogue_key = test_rsa_key(6);
        X509 *rogue = test_make_cert("Exchange Enrollment Agent (Offline request)", rogue_key, NULL, NULL,
                                     false, KU_DIGITAL_SIGNATURE, NULL);
        TestCertRepOptions o = { .status = 0, .signer = rogue, .signer_key = rogue_key };
        ScepCertRepClaim c;
        ScepCertRep *rep;
        ScepError e = {};
        char text[600];
        size_t size;
        uint8_t *der;

        enroll_start(&en, test_rsa_key(3), NULL, ndes_certs);
        assert_int_equal(reply(&en, &o, false, &rep, &e), SCEP_RESULT_BAD_SIGNATURE);
        assert_non_null(strstr(e.message, "(unverified: the reply claims pkiStatus SUCCESS)"));
        o.status = 3;
        assert_int_equal(reply(&en, &o, false, &rep, &e), SCEP_RESULT_BAD_SIGNATURE);
        assert_non_null(strstr(e.message, "(unverified: the reply claims pkiStatus PENDING)"));
        /* A corrupted signature by the RA itself, and MD5: described the same way. */
        o = (TestCertRepOptions) { .status = 2, .fail_info = 1, .ms_hresult = "-2146762480",
                                   .flip_signature = true };
        assert_int_equal(reply(&en, &o, false, &rep, &e), SCEP_RESULT_BAD_SIGNATURE);
        assert_non_null(strstr(e.message, "unverified: the reply claims pkiStatus FAILURE, failInfo "
                                          "badMessageCheck (1), Microsoft HRESULT 0x800B0110"));
        o.flip_signature = false;
        o.md = EVP_md5();
        assert_int_equal(reply(&en, &o, false, &rep, &e), SCEP_RESULT_LEGACY_ALGORITHM);
        assert_non_null(strstr(e.message, "unverified: the reply claims pkiStatus FAILURE"));

        /* Odd attributes read as what they are, never as a status we know. */
        o = (TestCertRepOptions) { .status = 0, .pki_status_text = "SUCCESS", .message_type = "19",
                                   .fail_info_text = "77" };
        der = test_ndes_certrep(&pki, &en.req, en.key, &o, &size);
        assert_int_equal(scep_certrep_read_unverified(der, size, &c, &e), 0);
        assert_int_equal(c.status, -1);
        assert_int_equal(c.message_type, 19);
        scep_certrep_claim_describe(&c, text, sizeof text);
        assert_non_null(strstr(text, "unverified: the reply claims no readable pkiStatus, messageType 19 (not a CertRep)"));
        free(der);
        o = (TestCertRepOptions) { .status = 2, .pki_status_text = "7", .omit_message_type = true,
                                   .fail_info_text = "9" };
        der = test_ndes_certrep(&pki, &en.req, en.key, &o, &size);
        assert_int_equal(scep_certrep_read_unverified(der, size, &c, &e), 0);
        scep_certrep_claim_describe(&c, text, sizeof text);
        assert_string_equal(text, "unverified: the reply claims pkiStatus 7, no readable messageType, failInfo 9");
        free(der);
        scep_certrep_claim_describe(NULL, text, sizeof text);
        assert_ptr_equal(strstr(text, "unverified"), text);
        scep_certrep_claim_describe(&c, text, 1);
        assert_string_equal(text, "");
        X509_free(rogue);
        enroll_done(&en);
}

/* ---- Microsoft's HRESULTs ---------------------------------------------------------------- */

static void test_hresult_hints(void **state) {
        /* Sleepw4lker's PSCertificateEnrollment Get-NDESCertificate.ps1 */
        static const struct {
                const char *decimal, *hex, *words;
                bool challenge_unknown;
        } cases[] = {
                { "-2146762480", "0x800B0110", "already used", true },
                { "-2146869244", "0x80096004", "carried none", false },
                { "-2147023728", "0x80070490", "unknown to NDES", true },
                { "-2146877439", "0x80094001", "refused the request's subject", false },
                { "-2147023174", "0x800706BA", "cannot reach the CA", false },
                { "-2147024809", "0x80070057", "unsupported or malformed", false },
        };
        Enrollment en;
        ScepCertRep *rep;
        ScepError e = {};
        char text[512];

        enroll_start(&en, test_rsa_key(3), NULL, ndes_certs);
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
                /* As NDES answers: FAILURE badMessageCheck, SHA-1, no certificates. */
                TestCertRepOptions o = { .status = 2, .fail_info = 1, .md = EVP_sha1(), .no_certs = true,
                                         .ms_hresult = cases[i].decimal };
                assert_int_equal(reply(&en, &o, false, &rep, &e), 0);
                assert_string_equal(rep->ms_hresult, cases[i].decimal);
                scep_certrep_describe_failure(rep, text, sizeof text);
                print_message("%s: %s\n", cases[i].hex, text);
                assert_non_null(strstr(text, "badMessageCheck (1)"));
                assert_non_null(strstr(text, cases[i].hex));
                assert_non_null(strstr(text, cases[i].decimal));
                assert_non_null(strstr(text, cases[i].words));
                /* The HRESULT's hint replaces the generic one of the failInfo. */
                assert_null(strstr(text, "usually means"));
                assert_int_equal(scep_certrep_challenge_unknown(rep), cases[i].challenge_unknown);
                scep_certrep_free(rep);
        }
        /* The hint also reaches the end of the engine's ErrorMessage buffer. */
        {
                ScepCertRep r = { .status = SCEP_STATUS_FAILURE, .fail_info = SCEP_FAIL_BAD_MESSAGE_CHECK,
                                  .ms_hresult = "-2147023728" };
                char small[512];
                scep_certrep_describe_failure(&r, small, sizeof small);
                assert_true(strlen(small) < sizeof small - 1);
                assert_non_null(strstr(small, "another NDES server behind the same name"));
                /* Unsigned decimal is the same HRESULT. */
                strcpy(r.ms_hresult, "2147943568");
                assert_true(scep_certrep_challenge_unknown(&r));
                scep_certrep_describe_failure(&r, small, sizeof small);
                assert_non_null(strstr(small, "0x80070490"));
                /* Not a FAILURE, or not one of the two: false. */
                r.status = SCEP_STATUS_PENDING;
                assert_false(scep_certrep_challenge_unknown(&r));
                r.status = SCEP_STATUS_SUCCESS;
                assert_false(scep_certrep_challenge_unknown(&r));
                r.status = SCEP_STATUS_FAILURE;
                strcpy(r.ms_hresult, "");
                assert_false(scep_certrep_challenge_unknown(&r));
                strcpy(r.ms_hresult, "-2147024810");           /* 0x80070056, no hint */
                assert_false(scep_certrep_challenge_unknown(&r));
                scep_certrep_describe_failure(&r, small, sizeof small);
                assert_non_null(strstr(small, "0x80070056"));
                assert_non_null(strstr(small, "usually means"));
                strcpy(r.ms_hresult, "99999999999");            /* out of range: shown as sent */
                assert_false(scep_certrep_challenge_unknown(&r));
                scep_certrep_describe_failure(&r, small, sizeof small);
                assert_non_null(strstr(small, "Microsoft HRESULT 99999999999"));
                assert_false(scep_certrep_challenge_unknown(NULL));
                /* Without a failInfo the HRESULT and its hint still show. */
                r.fail_info = SCEP_FAIL_NONE;
                strcpy(r.ms_hresult, "-2146762480");
                scep_certrep_describe_failure(&r, small, sizeof small);
                assert_non_null(strstr(small, "without a failInfo; Microsoft HRESULT 0x800B0110"));
                /* 0x80070490 with badCertId answers a CertPoll: an unknown transaction, not an
                 * unknown challenge. */
                {
                        ScepCertRep poll = { .status = SCEP_STATUS_FAILURE, .fail_info = SCEP_FAIL_BAD_CERT_ID,
                                             .ms_hresult = "-2147023728" };
                        char t[512];
                        scep_certrep_describe_failure(&poll, t, sizeof t);
                        print_message("badCertId: %s\n", t);
                        assert_non_null(strstr(t, "badCertId (4)"));
                        assert_non_null(strstr(t, "0x80070490"));
                        assert_non_null(strstr(t, "does not know the transaction"));
                        assert_null(strstr(t, "challenge"));
                        assert_false(scep_certrep_challenge_unknown(&poll));
                }
                assert_non_null(strstr(small, "already used"));
                assert_true(scep_certrep_challenge_unknown(&r));
        }
        enroll_done(&en);
}

/* ---- FAILURE and PENDING --------------------------------------------------------------- */

static void test_failure_contents(void **state) {
        /* FAILURE with one 0x00 byte, with no bytes, with the content absent. */
        Enrollment en;
        ScepCertRep *rep;
        ScepError e = {};

        enroll_start(&en, test_rsa_key(3), NULL, ndes_certs);
        for (int content = 0; content <= 2; content++) {
                TestCertRepOptions o = { .status = 2, .fail_info = 2, .content = content };
                assert_int_equal(reply(&en, &o, false, &rep, &e), 0);
                assert_int_equal(rep->status, SCEP_STATUS_FAILURE);
                assert_int_equal(rep->fail_info, SCEP_FAIL_BAD_REQUEST);
                assert_null(rep->certificate);
                scep_certrep_free(rep);
        }
        enroll_done(&en);
}

static void test_fail_infos(void **state) {
        static const char *const names[] = { "badAlg", "badMessageCheck", "badRequest", "badTime", "badCertId" };
        Enrollment en;
        ScepCertRep *rep;
        ScepError e = {};
        char text[400];

        enroll_start(&en, test_rsa_key(3), NULL, ndes_certs);
        for (int fi = 0; fi <= 4; fi++) {
                TestCertRepOptions o = { .status = 2, .fail_info = fi };
                assert_int_equal(reply(&en, &o, false, &rep, &e), 0);
                assert_int_equal(rep->fail_info, fi);
                assert_string_equal(scep_fail_info_to_string(rep->fail_info), names[fi]);
                scep_certrep_describe_failure(rep, text, sizeof text);
                assert_non_null(strstr(text, names[fi]));
                if (fi == SCEP_FAIL_BAD_TIME)
                        assert_non_null(strstr(text, "clock"));
                scep_certrep_free(rep);
        }
        /* No failInfo at all. */
        {
                TestCertRepOptions o = { .status = 2, .omit_fail_info = true };
                assert_int_equal(reply(&en, &o, false, &rep, &e), 0);
                assert_int_equal(rep->fail_info, SCEP_FAIL_NONE);
                assert_string_equal(scep_fail_info_to_string(rep->fail_info), "");
                scep_certrep_describe_failure(rep, text, sizeof text);
                assert_non_null(strstr(text, "without a failInfo"));
                scep_certrep_free(rep);
        }
        /* Out of range / not a number. */
        {
                TestCertRepOptions o = { .status = 2, .fail_info_text = "5" };
                assert_int_equal(reply(&en, &o, false, &rep, &e), SCEP_RESULT_BAD_ATTRIBUTE);
                assert_non_null(strstr(e.message, "failInfo"));
                o.fail_info_text = "x1";
                assert_int_equal(reply(&en, &o, false, &rep, &e), SCEP_RESULT_BAD_ATTRIBUTE);
                o.fail_info_text = "";
                assert_int_equal(reply(&en, &o, false, &rep, &e), SCEP_RESULT_BAD_ATTRIBUTE);
        }
        assert_null(scep_fail_info_to_string(9));
        enroll_done(&en);
}

static void test_pending_then_poll(void **state) {
        Enrollment en;
        TestCertRepOptions pending = { .status = 3 };
        TestCertRepOptions ok = { .status = 0 };
        ScepCertRep *rep;
        ScepError e = {};
        char tid[SCEP_TRANSACTION_ID_SIZE];
        uint8_t first_nonce[SCEP_NONCE_SIZE];

        enroll_start(&en, test_rsa_key(3), NULL, ndes_certs);
        memcpy(tid, en.msg->transaction_id, sizeof tid);
        memcpy(first_nonce, en.msg->sender_nonce, sizeof first_nonce);
        assert_int_equal(reply(&en, &pending, false, &rep, &e), 0);
        assert_int_equal(rep->status, SCEP_STATUS_PENDING);
        assert_null(rep->certificate);
        scep_certrep_free(rep);

        /* Poll: same transaction, fresh nonce; still pending, then issued. */
        enroll_send(&en, SCEP_MESSAGE_CERT_POLL);
        assert_int_equal(en.req.message_type, 20);
        assert_string_equal(en.msg->transaction_id, tid);
        assert_memory_not_equal(en.msg->sender_nonce, first_nonce, SCEP_NONCE_SIZE);
        assert_int_equal(reply(&en, &pending, false, &rep, &e), 0);
        assert_int_equal(rep->status, SCEP_STATUS_PENDING);
        scep_certrep_free(rep);
        enroll_send(&en, SCEP_MESSAGE_CERT_POLL);
        assert_int_equal(reply(&en, &ok, false, &rep, &e), 0);
        assert_issued(&en, rep);
        scep_certrep_free(rep);
        enroll_done(&en);
}

/* ---- binding to our request ------------------------------------------------------------ */

static void test_nonce_mismatch(void **state) {
        Enrollment en;
        TestCertRepOptions o = { .status = 0, .wrong_nonce = true };
        ScepCertRep *rep = (void *) 1;
        ScepError e = {};

        enroll_start(&en, test_rsa_key(3), NULL, ndes_certs);
        assert_int_equal(reply(&en, &o, false, &rep, &e), SCEP_RESULT_NONCE_MISMATCH);
        assert_null(rep);
        assert_int_equal(e.result, SCEP_RESULT_NONCE_MISMATCH);
        assert_non_null(strstr(e.message, "recipientNonce"));
        o.wrong_nonce = false;
        o.omit_recipient_nonce = true;
        assert_int_equal(reply(&en, &o, false, &rep, &e), SCEP_RESULT_NONCE_MISMATCH);
        assert_non_null(strstr(e.message, "no recipientNonce"));
        /* A FAILURE with a wrong nonce is just as unbound: refused too. */
        o.omit_recipient_nonce = false;
        o.wrong_nonce = true;
        o.status = 2;
        o.fail_info = 1;
        assert_int_equal(reply(&en, &o, false, &rep, &e), SCEP_RESULT_NONCE_MISMATCH);
        /* A reply to our previous message (old nonce) after a new poll: refused. */
        {
                TestNdesRequest old = en.req;
                TestCertRepOptions ok = { .status = 0 };
                size_t size;
                uint8_t *der;

                old.signer = X509_dup(en.req.signer);
                old.csr = X509_REQ_dup(en.req.csr);
                old.poll_issuer = old.poll_subject = NULL;
                der = test_ndes_certrep(&pki, &old, en.key, &ok, &size);
                enroll_send(&en, SCEP_MESSAGE_CERT_POLL);
                assert_int_equal(parse_der(&en, der, size, false, &rep, &e), SCEP_RESULT_NONCE_MISMATCH);
                free(der);
                test_ndes_request_done(&old);
        }
        enroll_done(&en);
}

static void test_transaction_mismatch(void **state) {
        Enrollment en;
        TestCertRepOptions o = { .status = 0,
                                 .transaction_id = "0000000000000000000000000000000000000000000000000000000000000000" };
        ScepCertRep *rep;
        ScepError e = {};

        enroll_start(&en, test_rsa_key(3), NULL, ndes_certs);
        assert_int_equal(reply(&en, &o, false, &rep, &e), SCEP_RESULT_TRANSACTION_MISMATCH);
        assert_non_null(strstr(e.message, en.msg->transaction_id));
        assert_non_null(strstr(e.message, "another request"));
        o.transaction_id = NULL;
        o.omit_transaction_id = true;
        assert_int_equal(reply(&en, &o, false, &rep, &e), SCEP_RESULT_TRANSACTION_MISMATCH);
        assert_non_null(strstr(e.message, "no transactionID"));
        enroll_done(&en);
}

static void test_message_type_and_status(void **state) {
        Enrollment en;
        TestCertRepOptions o = { .status = 3, .message_type = "19" };
        ScepCertRep *rep;
        ScepError e = {};

        enroll_start(&en, test_rsa_key(3), NULL, ndes_certs);
        assert_int_equal(reply(&en, &o, false, &rep, &e), SCEP_RESULT_BAD_MESSAGE_TYPE);
        assert_non_null(strstr(e.message, "19"));
        o.message_type = NULL;
        o.omit_message_type = true;
        assert_int_equal(reply(&en, &o, false, &rep, &e), SCEP_RESULT_BAD_MESSAGE_TYPE);
        o.omit_message_type = false;
        o.pki_status_text = "1";
        assert_int_equal(reply(&en, &o, false, &rep, &e), SCEP_RESULT_BAD_ATTRIBUTE);
        assert_non_null(strstr(e.message, "pkiStatus 1"));
        o.pki_status_text = "SUCCESS";
        assert_int_equal(reply(&en, &o, false, &rep, &e), SCEP_RESULT_BAD_ATTRIBUTE);
        enroll_done(&en);
}

/* ---- signatures and trust -------------------------------------------------------------- */

static void test_wrong_signer(void **state) {
        Enrollment en;
        EVP_PKEY *rogue_key = test_rsa_key(6);
        X509 *rogue = test_make_cert("Exchange Enrollment Agent (Offline request)", rogue_key, NULL, NULL,
                                     false, KU_DIGITAL_SIGNATURE, NULL);
        TestCertRepOptions o = { .status = 2, .fail_info = 1,
                                 .signer = rogue, .signer_key = rogue_key };
        ScepCertRep *rep;
        ScepError e = {};

        enroll_start(&en, test_rsa_key(3), NULL, ndes_certs);
        /* A self-made signer, even one shipped in `certificates`: refused. */
        assert_int_equal(reply(&en, &o, false, &rep, &e), SCEP_RESULT_BAD_SIGNATURE);
        assert_non_null(strstr(e.message, "RA signing"));
        /* With an RA, the CA itself is not the reply signer NDES uses. */
        o.signer = pki.ca;
        o.signer_key = pki.ca_key;
        assert_int_equal(reply(&en, &o, false, &rep, &e), SCEP_RESULT_BAD_SIGNATURE);
        /* The RA encryption certificate signing: refused too. */
        o.signer = pki.ra_enc;
        o.signer_key = pki.ra_enc_key;
        assert_int_equal(reply(&en, &o, false, &rep, &e), SCEP_RESULT_BAD_SIGNATURE);
        /* A forgery naming the RA signing certificate (same issuer and serial) but signed
         * with another key: the signature does not verify. */
        {
                X509 *forged = X509_dup(pki.ra_sign);
                assert_true(X509_set_pubkey(forged, rogue_key));
                assert_true(X509_sign(forged, rogue_key, EVP_sha256()));
                o.signer = forged;
                o.signer_key = rogue_key;
                assert_int_equal(reply(&en, &o, false, &rep, &e), SCEP_RESULT_BAD_SIGNATURE);
                assert_non_null(strstr(e.message, "does not verify"));
                o.no_certs = true;
                assert_int_equal(reply(&en, &o, false, &rep, &e), SCEP_RESULT_BAD_SIGNATURE);
                o.no_certs = false;
                X509_free(forged);
        }
        /* Corrupted signature bytes. */
        o.signer_key = NULL;
        o.signer = NULL;
        o.flip_signature = true;
        assert_int_equal(reply(&en, &o, false, &rep, &e), SCEP_RESULT_BAD_SIGNATURE);
        X509_free(rogue);
        enroll_done(&en);
}

static void test_expired_ra(void **state) {
        /* An RA signing certificate outside its validity: the chain check fails. */
        X509 *old = test_make_cert("Old RA", test_rsa_key(6), pki.ca, pki.ca_key, false, KU_DIGITAL_SIGNATURE, NULL);
        X509 *set[3];
        ScepCACerts *certs = NULL;
        TestCertRepOptions o = { .status = 3, .signer = old, .signer_key = test_rsa_key(6) };
        Enrollment en;
        ScepCertRep *rep;
        ScepError e = {};
        size_t size;
        uint8_t *der;

        X509_gmtime_adj(X509_getm_notAfter(old), -60);
        X509_gmtime_adj(X509_getm_notBefore(old), -7200);
        assert_true(X509_sign(old, pki.ca_key, EVP_sha256()));
        set[0] = pki.ca;
        set[1] = old;
        set[2] = pki.ra_enc;
        der = test_degenerate_pkcs7(set, 3, &size);
        assert_int_equal(scep_cacert_parse(NULL, der, size, NULL, &certs, NULL), 0);
        free(der);
        assert_int_equal(X509_cmp(certs->verifier, old), 0);

        enroll_start(&en, test_rsa_key(3), NULL, certs);
        assert_int_equal(reply(&en, &o, false, &rep, &e), SCEP_RESULT_UNTRUSTED);
        assert_non_null(strstr(e.message, "Old RA"));
        assert_non_null(strstr(e.message, "expired"));
        enroll_done(&en);
        scep_cacerts_free(certs);
        X509_free(old);
}

static void test_issued_cert_checks(void **state) {
        Enrollment en;
        TestCertRepOptions o = { .status = 0, .issue_key = test_rsa_key(7) };
        ScepCertRep *rep;
        ScepError e = {};
        X509 *other_ca;

        enroll_start(&en, test_rsa_key(3), NULL, ndes_certs);
        /* A certificate for another key. */
        assert_int_equal(reply(&en, &o, false, &rep, &e), SCEP_RESULT_NO_ISSUED_CERT);
        assert_non_null(strstr(e.message, "public key"));
        /* Our key, but not signed by the CA. */
        other_ca = test_make_cert("Test Issuing CA", test_rsa_key(6), NULL, NULL, true, KU_KEY_CERT_SIGN, NULL);
        o.issue_key = NULL;
        o.issuer = other_ca;
        o.issuer_key = test_rsa_key(6);
        assert_int_equal(reply(&en, &o, false, &rep, &e), SCEP_RESULT_UNTRUSTED);
        assert_non_null(strstr(e.message, "not signed by the CA"));
        X509_free(other_ca);
        /* Encrypted to somebody else: we cannot decrypt. */
        o.issuer = NULL;
        o.issuer_key = NULL;
        o.encrypt_to = pki.ra_enc;
        assert_int_equal(reply(&en, &o, false, &rep, &e), SCEP_RESULT_DECRYPT_FAILED);
        assert_non_null(strstr(e.message, "web.a.example.com"));
        enroll_done(&en);
}

static void test_garbage(void **state) {
        Enrollment en;
        TestCertRepOptions o = { .status = 0 };
        ScepCertRep *rep;
        ScepError e = {};
        size_t size;
        uint8_t *der;

        enroll_start(&en, test_rsa_key(3), NULL, ndes_certs);
        assert_int_equal(parse_der(&en, (const uint8_t *) "", 0, false, &rep, &e), SCEP_RESULT_MALFORMED);
        assert_int_equal(parse_der(&en, (const uint8_t *) "\x30\x03\x02\x01", 4, false, &rep, &e), SCEP_RESULT_MALFORMED);
        der = test_ndes_certrep(&pki, &en.req, en.key, &o, &size);
        assert_int_equal(parse_der(&en, der, size - 1, false, &rep, &e), SCEP_RESULT_MALFORMED);
        assert_int_equal(parse_der(&en, der, SCEP_CERTREP_MAX_SIZE + 1, false, &rep, &e), SCEP_RESULT_TOO_LARGE);
        /* Our own request is not a CertRep: it is signed by us, not the RA. */
        assert_int_equal(parse_der(&en, en.msg->der, en.msg->size, false, &rep, &e), SCEP_RESULT_BAD_SIGNATURE);
        /* A degenerate certificate list is no CertRep either. */
        {
                size_t n;
                uint8_t *chain = test_degenerate_pkcs7(&pki.ca, 1, &n);
                assert_int_equal(parse_der(&en, chain, n, false, &rep, &e), SCEP_RESULT_MALFORMED);
                free(chain);
        }
        free(der);
        enroll_done(&en);
}

/* ---- concurrency ----------------------------------------------------------------------- */

#define N_THREADS 4

typedef struct Worker {
        unsigned idx;
        Enrollment en;
        uint8_t *reply;
        size_t reply_size;
        int result;
        ScepCertRep *rep;
} Worker;

static void *worker_run(void *arg) {
        Worker *w = arg;
        ScepCertRepParams p = {
                .request = w->en.msg, .ca_certs = w->en.certs, .signer_cert = w->en.signer,
                .signer_key = w->en.signer_key, .csr = w->en.csr, .allow_legacy = w->idx % 2 == 1,
        };

        for (int i = 0; i < 20; i++) {
                ScepCertRep *rep = NULL;
                w->result = scep_certrep_parse(&p, w->reply, w->reply_size, &rep, NULL);
                if (w->result != 0)
                        return NULL;
                if (i < 19)
                        scep_certrep_free(rep);
                else
                        w->rep = rep;
        }
        return NULL;
}

static void test_concurrent_enrollments(void **state) {
        /* Several enrollments in flight at once: each has its own transaction and nonce, a
         * reply to one is refused by the others, and parsing runs in parallel threads (half of
         * them through the private legacy library context). */
        Worker w[N_THREADS];
        pthread_t th[N_THREADS];

        for (unsigned i = 0; i < N_THREADS; i++) {
                TestCertRepOptions o = { .status = 0,
                                         .cipher = i % 2 ? "DES-CBC" : "AES-128-CBC" };
                memset(&w[i], 0, sizeof w[i]);
                w[i].idx = i;
                enroll_start(&w[i].en, test_rsa_key(8 + i), NULL, ndes_certs);
                w[i].reply = test_ndes_certrep(&pki, &w[i].en.req, w[i].en.key, &o, &w[i].reply_size);
        }
        for (unsigned i = 0; i < N_THREADS; i++)
                for (unsigned j = i + 1; j < N_THREADS; j++) {
                        assert_string_not_equal(w[i].en.msg->transaction_id, w[j].en.msg->transaction_id);
                        assert_memory_not_equal(w[i].en.msg->sender_nonce, w[j].en.msg->sender_nonce, SCEP_NONCE_SIZE);
                }
        /* Crossed replies are refused. */
        for (unsigned i = 0; i < N_THREADS; i++) {
                ScepCertRep *rep;
                ScepError e = {};
                unsigned j = (i + 1) % N_THREADS;
                assert_int_equal(parse_der(&w[i].en, w[j].reply, w[j].reply_size, true, &rep, &e),
                                 SCEP_RESULT_TRANSACTION_MISMATCH);
        }
        for (unsigned i = 0; i < N_THREADS; i++)
                assert_int_equal(pthread_create(&th[i], NULL, worker_run, &w[i]), 0);
        for (unsigned i = 0; i < N_THREADS; i++)
                assert_int_equal(pthread_join(th[i], NULL), 0);
        for (unsigned i = 0; i < N_THREADS; i++) {
                assert_int_equal(w[i].result, 0);
                assert_issued(&w[i].en, w[i].rep);
                scep_certrep_free(w[i].rep);
                free(w[i].reply);
                enroll_done(&w[i].en);
        }
        assert_int_equal(OSSL_PROVIDER_available(NULL, "legacy"), 0);
}

static void test_invalid_args(void **state) {
        Enrollment en;
        ScepCertRepParams p = {};
        ScepCertRep *rep = NULL;

        enroll_start(&en, test_rsa_key(3), NULL, ndes_certs);
        assert_int_equal(scep_certrep_parse(NULL, "x", 1, &rep, NULL), -EINVAL);
        assert_int_equal(scep_certrep_parse(&p, "x", 1, &rep, NULL), -EINVAL);
        p.request = en.msg;
        p.ca_certs = en.certs;
        p.signer_cert = en.signer;
        p.signer_key = en.key;
        p.csr = en.csr;
        assert_int_equal(scep_certrep_parse(&p, NULL, 1, &rep, NULL), -EINVAL);
        assert_int_equal(scep_certrep_parse(&p, "x", 1, NULL, NULL), -EINVAL);
        assert_null(rep);
        enroll_done(&en);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_success_aes),
                cmocka_unit_test(test_success_des3),
                cmocka_unit_test(test_success_oaep),
                cmocka_unit_test(test_single_des),
                cmocka_unit_test(test_micromdm),
                cmocka_unit_test(test_ec_key_with_transport_key),
                cmocka_unit_test(test_windows_2012_failure),
                cmocka_unit_test(test_windows_2012_success),
                cmocka_unit_test(test_sha1_reply_default),
                cmocka_unit_test(test_ndes2012_capture),
                cmocka_unit_test(test_unverified_claims),
                cmocka_unit_test(test_hresult_hints),
                cmocka_unit_test(test_failure_contents),
                cmocka_unit_test(test_fail_infos),
                cmocka_unit_test(test_pending_then_poll),
                cmocka_unit_test(test_nonce_mismatch),
                cmocka_unit_test(test_transaction_mismatch),
                cmocka_unit_test(test_message_type_and_status),
                cmocka_unit_test(test_wrong_signer),
                cmocka_unit_test(test_expired_ra),
                cmocka_unit_test(test_issued_cert_checks),
                cmocka_unit_test(test_garbage),
                cmocka_unit_test(test_concurrent_enrollments),
                cmocka_unit_test(test_invalid_args),
        };
        return cmocka_run_group_tests(tests, setup, teardown);
}
