/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <openssl/x509.h>
#include <stddef.h>

/* x, then the certificate of all that issued it (by name and by signature; a certificate with
 * the issuer's name but another key is not it), then that one's issuer, ..., up to a
 * self-signed one or one whose issuer is not in all; never a certificate twice; at most max.
 * The pointers are borrowed from x and all. Returns how many are in ret. Pure. */
size_t trust_chain(STACK_OF(X509) *all, X509 *x, X509 **ret, size_t max);
