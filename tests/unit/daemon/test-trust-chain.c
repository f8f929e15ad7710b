/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* trust_chain(): which certificates of a GetCACert answer go into the trust store with the CA
 * certificate (its issuers, by name and signature, up to a self-signed one). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "scep-test-pki.h"
#include "trust-chain.h"

typedef struct Pki {
        X509 *root, *inter, *ca, *ra, *fake_root, *other_root;
} Pki;

static Pki pki;

static int setup(void **state) {
        pki.root = test_make_cert("Test Root", test_rsa_key(0), NULL, NULL, true, 0, NULL);
        pki.inter = test_make_cert("Test Intermediate", test_rsa_key(1), pki.root, test_rsa_key(0), true, 0, NULL);
        pki.ca = test_make_cert("Test Issuing CA", test_rsa_key(2), pki.inter, test_rsa_key(1), true, 0, NULL);
        pki.ra = test_make_cert("NDES-MSCEP-RA", test_rsa_key(3), pki.ca, test_rsa_key(2), false, 0, NULL);
        /* The root's name, another key: what a substituted root would look like. */
        pki.fake_root = test_make_cert("Test Root", test_rsa_key(4), NULL, NULL, true, 0, NULL);
        pki.other_root = test_make_cert("Other Root", test_rsa_key(5), NULL, NULL, true, 0, NULL);
        return pki.root && pki.inter && pki.ca && pki.ra && pki.fake_root && pki.other_root ? 0 : -1;
}

static int teardown(void **state) {
        X509_free(pki.root);
        X509_free(pki.inter);
        X509_free(pki.ca);
        X509_free(pki.ra);
        X509_free(pki.fake_root);
        X509_free(pki.other_root);
        return 0;
}

static STACK_OF(X509) *stack(X509 *const *certs, size_t n) {
        STACK_OF(X509) *s = sk_X509_new_null();
        assert_non_null(s);
        for (size_t i = 0; i < n; i++)
                assert_true(sk_X509_push(s, certs[i]) > 0);
        return s;
}

static void test_self_signed(void **state) {
        X509 *all[] = { pki.ra, pki.other_root };
        STACK_OF(X509) *s = stack(all, 2);
        X509 *chain[16];

        assert_int_equal(trust_chain(s, pki.other_root, chain, 16), 1);
        assert_ptr_equal(chain[0], pki.other_root);
        sk_X509_free(s);
}

static void test_full_chain_any_order(void **state) {
        X509 *all[] = { pki.root, pki.ra, pki.other_root, pki.ca, pki.inter };
        STACK_OF(X509) *s = stack(all, 5);
        X509 *chain[16];

        assert_int_equal(trust_chain(s, pki.ca, chain, 16), 3);
        assert_ptr_equal(chain[0], pki.ca);
        assert_ptr_equal(chain[1], pki.inter);
        assert_ptr_equal(chain[2], pki.root);
        /* at most max */
        assert_int_equal(trust_chain(s, pki.ca, chain, 2), 2);
        sk_X509_free(s);
}

static void test_missing_issuer(void **state) {
        X509 *all[] = { pki.ra, pki.ca, pki.inter };
        STACK_OF(X509) *s = stack(all, 3);
        X509 *chain[16];

        /* the root is not in the answer: the chain ends at the intermediate */
        assert_int_equal(trust_chain(s, pki.ca, chain, 16), 2);
        assert_ptr_equal(chain[1], pki.inter);
        assert_int_equal(trust_chain(NULL, pki.ca, chain, 16), 1);
        sk_X509_free(s);
}

static void test_same_name_other_key(void **state) {
        X509 *with_fake[] = { pki.fake_root, pki.ca, pki.inter };
        X509 *both[] = { pki.fake_root, pki.ca, pki.inter, pki.root };
        STACK_OF(X509) *s = stack(with_fake, 3);
        X509 *chain[16];

        /* a certificate with the root's name did not sign the intermediate: not taken */
        assert_int_equal(trust_chain(s, pki.ca, chain, 16), 2);
        assert_ptr_equal(chain[1], pki.inter);
        sk_X509_free(s);
        s = stack(both, 4);
        assert_int_equal(trust_chain(s, pki.ca, chain, 16), 3);
        assert_ptr_equal(chain[2], pki.root);
        sk_X509_free(s);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_self_signed),
                cmocka_unit_test(test_full_chain_any_order),
                cmocka_unit_test(test_missing_issuer),
                cmocka_unit_test(test_same_name_other_key),
        };
        return cmocka_run_group_tests(tests, setup, teardown);
}
