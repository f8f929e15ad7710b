/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A CA certificate's issuers among the certificates of one GetCACert answer. */
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <stdbool.h>

#include "trust-chain.h"

static bool listed(X509 *const *list, size_t n, X509 *x) {
        for (size_t i = 0; i < n; i++)
                if (X509_cmp(list[i], x) == 0)
                        return true;
        return false;
}

/* The certificate of all that issued x (name and signature), not one listed already. */
static X509 *find_issuer(STACK_OF(X509) *all, X509 *x, X509 *const *list, size_t n) {
        for (int i = 0; i < sk_X509_num(all); i++) {
                X509 *c = sk_X509_value(all, i);
                if (listed(list, n, c) || X509_check_issued(c, x) != X509_V_OK)
                        continue;
                EVP_PKEY *k = X509_get0_pubkey(c);
                if (k && X509_verify(x, k) == 1)
                        return c;
                ERR_clear_error();
        }
        return NULL;
}

size_t trust_chain(STACK_OF(X509) *all, X509 *x, X509 **ret, size_t max) {
        size_t n = 0;

        while (x && n < max) {
                ret[n++] = x;
                if (X509_check_issued(x, x) == X509_V_OK)
                        break;          /* self-signed: the root */
                x = all ? find_issuer(all, x, ret, n) : NULL;
        }
        ERR_clear_error();
        return n;
}
