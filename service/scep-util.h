/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Internal helpers shared by the scep-*.c files. Not for the engine. */

#include <openssl/bio.h>
#include <openssl/cms.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

#include "basic.h"
#include "scep-result.h"

#define _printf_(a, b) __attribute__((__format__(printf, a, b)))

DEFINE_POINTER_CLEANUP(BIO, BIO_free_all)
DEFINE_POINTER_CLEANUP(X509, X509_free)
DEFINE_POINTER_CLEANUP(X509_REQ, X509_REQ_free)
DEFINE_POINTER_CLEANUP(X509_NAME, X509_NAME_free)
DEFINE_POINTER_CLEANUP(EVP_PKEY, EVP_PKEY_free)
DEFINE_POINTER_CLEANUP(ASN1_OBJECT, ASN1_OBJECT_free)
DEFINE_POINTER_CLEANUP(X509_STORE, X509_STORE_free)
DEFINE_POINTER_CLEANUP(X509_STORE_CTX, X509_STORE_CTX_free)
DEFINE_POINTER_CLEANUP(CMS_ContentInfo, CMS_ContentInfo_free)

static inline void sk_X509_pop_freep(STACK_OF(X509) **p) {
        if (*p)
                sk_X509_pop_free(*p, X509_free);
}

static inline void sk_X509_freep(STACK_OF(X509) **p) {
        if (*p)
                sk_X509_free(*p);
}

/* A memory BIO's contents as a malloc()ed C string (BIO memory is not NUL-terminated); NULL
 * when out of memory. */
char *scep_bio_to_string(BIO *b);

/* Fill *e (when non-NULL) and return r (a positive ScepResult). */
int scep_error_set(ScepError *e, ScepResult r, const char *fmt, ...) _printf_(3, 4);

/* Same, appending the reason of the newest OpenSSL error (and clearing the queue). */
int scep_error_set_openssl(ScepError *e, ScepResult r, const char *fmt, ...) _printf_(3, 4);

/* Clear the thread's OpenSSL error queue and return -ENOMEM or -EIO. */
int scep_openssl_errno(void);

/* "CN=foo,O=bar" of a certificate's subject, for messages; never NULL. */
void scep_name_format(const X509_NAME *name, char *buf, size_t size);

/* "subject CN=x (serial 0A1B)" description of a certificate for messages. */
void scep_cert_describe(X509 *cert, char *buf, size_t size);

/* Lower-case hex of data into buf (size >= 2*n+1). */
void scep_hex(const uint8_t *data, size_t n, char *buf);

/* SHA-256 of a certificate's DER. */
int scep_cert_sha256(X509 *cert, uint8_t ret[32]);

/* Does the certificate carry a (parseable) RSA public key? */
bool scep_cert_has_rsa_key(X509 *cert);
