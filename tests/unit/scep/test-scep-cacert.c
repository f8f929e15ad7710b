/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <openssl/x509v3.h>

#include "scep-cacert.h"
#include "scep-test-pki.h"

#define CT_CA "application/x-x509-ca-cert"
#define CT_RA "application/x-x509-ca-ra-cert"

static ScepCACerts *parse_chain(X509 *const *certs, size_t n, const char *ct, const uint8_t *fp) {
        ScepCACerts *c = NULL;
        ScepError e = {};
        size_t size;
        uint8_t *der = test_degenerate_pkcs7(certs, n, &size);
        int r = scep_cacert_parse(ct, der, size, fp, &c, &e);

        free(der);
        if (r != 0)
                print_error("scep_cacert_parse: %d %s\n", r, e.message);
        assert_int_equal(r, 0);
        assert_non_null(c);
        return c;
}

static void test_ndes_three_any_order(void **state) {
        X509 *set[3] = { test_pki.ra_sign, test_pki.ra_enc, test_pki.ca };
        static const int perms[6][3] = {
                { 0, 1, 2 }, { 0, 2, 1 }, { 1, 0, 2 }, { 1, 2, 0 }, { 2, 0, 1 }, { 2, 1, 0 },
        };

        for (size_t i = 0; i < 6; i++) {
                X509 *order[3] = { set[perms[i][0]], set[perms[i][1]], set[perms[i][2]] };
                ScepCACerts *c = parse_chain(order, 3, CT_RA, NULL);

                assert_int_equal(sk_X509_num(c->all), 3);
                /* Order kept as received. */
                for (int k = 0; k < 3; k++)
                        assert_int_equal(X509_cmp(sk_X509_value(c->all, k), order[k]), 0);
                assert_int_equal(X509_cmp(c->ca, test_pki.ca), 0);
                assert_int_equal(X509_cmp(c->ra_sign, test_pki.ra_sign), 0);
                assert_int_equal(X509_cmp(c->ra_encrypt, test_pki.ra_enc), 0);
                assert_ptr_equal(c->recipient, c->ra_encrypt);
                assert_ptr_equal(c->verifier, c->ra_sign);
                scep_cacerts_free(c);
        }
}

static void test_ca_only_der(void **state) {
        /* micromdm: GetCACert is the CA alone, as one DER certificate. */
        ScepCACerts *c = NULL;
        size_t size;
        uint8_t *der = test_cert_der(test_pki.ca, &size);
        uint8_t fp[32];
        unsigned len;

        assert_int_equal(scep_cacert_parse(CT_CA, der, size, NULL, &c, NULL), 0);
        assert_int_equal(X509_cmp(c->ca, test_pki.ca), 0);
        assert_null(c->ra_sign);
        assert_null(c->ra_encrypt);
        assert_ptr_equal(c->recipient, c->ca);
        assert_ptr_equal(c->verifier, c->ca);
        assert_true(X509_digest(test_pki.ca, EVP_sha256(), fp, &len));
        assert_memory_equal(c->ca_fingerprint, fp, 32);
        scep_cacerts_free(c);

        /* Content type lies or is absent: sniffed. */
        assert_int_equal(scep_cacert_parse(CT_RA, der, size, NULL, &c, NULL), 0);
        scep_cacerts_free(c);
        assert_int_equal(scep_cacert_parse(NULL, der, size, NULL, &c, NULL), 0);
        scep_cacerts_free(c);
        assert_int_equal(scep_cacert_parse("Application/X-X509-CA-Cert; charset=binary", der, size, NULL, &c, NULL), 0);
        scep_cacerts_free(c);
        free(der);
}

static void test_ca_only_pkcs7(void **state) {
        ScepCACerts *c = parse_chain(&test_pki.ca, 1, CT_CA, NULL);

        assert_ptr_equal(c->recipient, c->ca);
        assert_ptr_equal(c->verifier, c->ca);
        assert_null(c->ra_sign);
        scep_cacerts_free(c);
}

static void test_fingerprint(void **state) {
        uint8_t fp[32], other[32];
        unsigned len;
        char text[100];
        ScepCACerts *c = NULL;
        ScepError e = {};
        X509 *set[3] = { test_pki.ra_enc, test_pki.ca, test_pki.ra_sign };
        size_t size;
        uint8_t *der;

        assert_true(X509_digest(test_pki.ca, EVP_sha256(), fp, &len));
        c = parse_chain(set, 3, CT_RA, fp);
        scep_cacerts_free(c);
        c = NULL;

        /* The config form round-trips, with or without colons, any case. */
        scep_fingerprint_format(fp, text, sizeof text);
        assert_int_equal(strlen(text), 7 + 64);
        assert_int_equal(scep_fingerprint_parse(text, other), 0);
        assert_memory_equal(fp, other, 32);
        {
                char colons[200] = "SHA256:";
                for (int i = 0; i < 32; i++)
                        snprintf(colons + strlen(colons), sizeof colons - strlen(colons), "%s%02X",
                                 i ? ":" : "", fp[i]);
                assert_int_equal(scep_fingerprint_parse(colons, other), 0);
                assert_memory_equal(fp, other, 32);
        }
        assert_int_equal(scep_fingerprint_parse("sha1:00", other), -EINVAL);
        assert_int_equal(scep_fingerprint_parse("sha256:0011", other), -EINVAL);
        text[20] = 'g';
        assert_int_equal(scep_fingerprint_parse(text, other), -EINVAL);
        assert_int_equal(scep_fingerprint_parse("sha256:", other), -EINVAL);

        /* Mismatch: refused, both fingerprints named. */
        memcpy(other, fp, 32);
        other[31] ^= 1;
        der = test_degenerate_pkcs7(set, 3, &size);
        assert_int_equal(scep_cacert_parse(CT_RA, der, size, other, &c, &e), SCEP_RESULT_FINGERPRINT_MISMATCH);
        assert_null(c);
        assert_int_equal(e.result, SCEP_RESULT_FINGERPRINT_MISMATCH);
        assert_non_null(strstr(e.message, "CAFingerprint"));
        assert_non_null(strstr(e.message, "Test Issuing CA"));
        scep_fingerprint_format(fp, text, sizeof text);
        assert_non_null(strstr(e.message, text));
        free(der);
}

static void test_garbage(void **state) {
        ScepCACerts *c = NULL;
        ScepError e = {};
        static const uint8_t junk[] = { 0x30, 0x82, 0x01, 0x00, 0x02, 0x01 };
        size_t size;
        uint8_t *der = test_cert_der(test_pki.ca, &size);

        assert_int_equal(scep_cacert_parse(CT_RA, junk, sizeof junk, NULL, &c, &e), SCEP_RESULT_MALFORMED);
        assert_non_null(strstr(e.message, "neither a DER certificate nor"));
        assert_int_equal(scep_cacert_parse(CT_RA, "", 0, NULL, &c, &e), SCEP_RESULT_MALFORMED);
        assert_non_null(strstr(e.message, "empty"));
        /* Trailing bytes after the certificate. */
        uint8_t *longer = malloc(size + 1);
        memcpy(longer, der, size);
        longer[size] = 0;
        assert_int_equal(scep_cacert_parse(CT_CA, longer, size + 1, NULL, &c, &e), SCEP_RESULT_MALFORMED);
        /* Truncated. */
        assert_int_equal(scep_cacert_parse(CT_CA, der, size - 1, NULL, &c, &e), SCEP_RESULT_MALFORMED);
        assert_int_equal(scep_cacert_parse(CT_CA, der, SCEP_CACERT_MAX_SIZE + 1, NULL, &c, &e), SCEP_RESULT_TOO_LARGE);
        assert_int_equal(scep_cacert_parse(CT_CA, NULL, 5, NULL, &c, &e), -EINVAL);
        assert_null(c);
        free(longer);
        free(der);
}

static void test_no_ca(void **state) {
        ScepCACerts *c = NULL;
        ScepError e = {};
        X509 *set[2] = { test_pki.ra_sign, test_pki.ra_enc };
        size_t size;
        uint8_t *der = test_degenerate_pkcs7(set, 2, &size);

        assert_int_equal(scep_cacert_parse(CT_RA, der, size, NULL, &c, &e), SCEP_RESULT_NO_CA_CERT);
        assert_non_null(strstr(e.message, "basicConstraints"));
        assert_non_null(strstr(e.message, "Exchange Enrollment Agent"));
        free(der);

        der = test_degenerate_pkcs7(NULL, 0, &size);
        assert_int_equal(scep_cacert_parse(CT_RA, der, size, NULL, &c, &e), SCEP_RESULT_NO_CA_CERT);
        free(der);
}

static void test_foreign_ra_ignored(void **state) {
        /* An RA certificate the CA did not sign is never used as the recipient. */
        EVP_PKEY *k = test_rsa_key(3);
        X509 *other_ca = test_make_cert("Other CA", k, NULL, NULL, true, KU_KEY_CERT_SIGN, NULL);
        X509 *foreign = test_make_cert("Foreign RA", test_rsa_key(4), other_ca, k, false, KU_KEY_ENCIPHERMENT, NULL);
        X509 *set[2] = { foreign, test_pki.ca };
        ScepCACerts *c = parse_chain(set, 2, CT_RA, NULL);

        assert_int_equal(X509_cmp(c->ca, test_pki.ca), 0);
        assert_null(c->ra_encrypt);
        assert_ptr_equal(c->recipient, c->ca);
        scep_cacerts_free(c);
        X509_free(foreign);
        X509_free(other_ca);
}

static void test_chain_with_root(void **state) {
        /* Root + issuing CA + one RA with both usages: the issuing CA is "the CA". */
        EVP_PKEY *rk = test_rsa_key(3), *ik = test_rsa_key(4), *ak = test_rsa_key(5);
        X509 *root = test_make_cert("Root", rk, NULL, NULL, true, KU_KEY_CERT_SIGN, NULL);
        X509 *issuing = test_make_cert("Issuing", ik, root, rk, true, KU_KEY_CERT_SIGN, NULL);
        X509 *ra = test_make_cert("RA both", ak, issuing, ik, false,
                                  KU_DIGITAL_SIGNATURE | KU_KEY_ENCIPHERMENT, NULL);
        X509 *set1[3] = { root, ra, issuing };
        X509 *set2[2] = { issuing, root };
        ScepCACerts *c = parse_chain(set1, 3, CT_RA, NULL);

        assert_int_equal(X509_cmp(c->ca, issuing), 0);
        assert_ptr_equal(c->ra_sign, c->ra_encrypt);
        assert_int_equal(X509_cmp(c->ra_sign, ra), 0);
        scep_cacerts_free(c);

        c = parse_chain(set2, 2, CT_RA, NULL);
        assert_int_equal(X509_cmp(c->ca, issuing), 0);
        assert_null(c->ra_sign);
        scep_cacerts_free(c);

        X509_free(root);
        X509_free(issuing);
        X509_free(ra);
}

static void test_ra_without_key_usage(void **state) {
        /* No keyUsage extension: any usage. */
        X509 *ra = test_make_cert("RA any", test_rsa_key(5), test_pki.ca, test_pki.ca_key, false, 0, NULL);
        X509 *set[2] = { test_pki.ca, ra };
        ScepCACerts *c = parse_chain(set, 2, CT_RA, NULL);

        assert_int_equal(X509_cmp(c->ra_encrypt, ra), 0);
        assert_int_equal(X509_cmp(c->ra_sign, ra), 0);
        scep_cacerts_free(c);

        /* With a dedicated encryption certificate too, that one wins the recipient role. */
        X509 *set3[3] = { ra, test_pki.ca, test_pki.ra_enc };
        c = parse_chain(set3, 3, CT_RA, NULL);
        assert_int_equal(X509_cmp(c->ra_encrypt, test_pki.ra_enc), 0);
        assert_int_equal(X509_cmp(c->ra_sign, ra), 0);
        scep_cacerts_free(c);
        X509_free(ra);
}

static void test_ec_ca_only(void **state) {
        /* A CA-only server with an EC key cannot receive a key-transport envelope. */
        X509 *ec_ca = test_make_cert("EC CA", test_ec_key(), NULL, NULL, true, KU_KEY_CERT_SIGN, NULL);
        ScepCACerts *c = NULL;
        ScepError e = {};
        size_t size;
        uint8_t *der = test_cert_der(ec_ca, &size);

        assert_int_equal(scep_cacert_parse(CT_CA, der, size, NULL, &c, &e), SCEP_RESULT_NO_RECIPIENT);
        assert_non_null(strstr(e.message, "EC CA"));
        assert_non_null(strstr(e.message, "RSA"));
        free(der);
        X509_free(ec_ca);
}

static void test_too_many(void **state) {
        X509 *set[SCEP_CACERT_MAX_CERTS + 1];
        ScepCACerts *c = NULL;
        ScepError e = {};
        size_t size;
        uint8_t *der;

        for (size_t i = 0; i < (sizeof set / sizeof set[0]); i++)
                set[i] = test_pki.ca;
        der = test_degenerate_pkcs7(set, (sizeof set / sizeof set[0]), &size);
        assert_int_equal(scep_cacert_parse(CT_RA, der, size, NULL, &c, &e), SCEP_RESULT_TOO_LARGE);
        assert_null(c);
        free(der);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_ndes_three_any_order),
                cmocka_unit_test(test_ca_only_der),
                cmocka_unit_test(test_ca_only_pkcs7),
                cmocka_unit_test(test_fingerprint),
                cmocka_unit_test(test_garbage),
                cmocka_unit_test(test_no_ca),
                cmocka_unit_test(test_foreign_ra_ignored),
                cmocka_unit_test(test_chain_with_root),
                cmocka_unit_test(test_ra_without_key_usage),
                cmocka_unit_test(test_ec_ca_only),
                cmocka_unit_test(test_too_many),
        };
        return cmocka_run_group_tests(tests, test_pki_group_setup, test_pki_group_teardown);
}
