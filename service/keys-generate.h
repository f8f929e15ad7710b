/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Private keys: the key types of Enroll's option "key", generation with OpenSSL 3, and PKCS#8 PEM
 * export/import through guarded memory (secret-memory.h). Pure: no logging, no
 * global state; safe to call from any thread (the key pool's worker calls
 * key_generate()).
 */

#include <errno.h>
#include <openssl/evp.h>
#include <stdbool.h>

#include "secret-memory.h"

typedef enum KeyType {
        KEY_TYPE_RSA_2048,
        KEY_TYPE_RSA_3072,
        KEY_TYPE_RSA_4096,
        KEY_TYPE_EC_P256,
        KEY_TYPE_EC_P384,
        _KEY_TYPE_MAX,
        _KEY_TYPE_INVALID = -EINVAL,
} KeyType;

/* "rsa:2048" "rsa:3072" "rsa:4096" "ec:p256" "ec:p384" (exactly the strings of org.certbroker.Broker1(5)). */
const char *key_type_to_string(KeyType t);          /* NULL for an invalid type */
KeyType key_type_from_string(const char *s);        /* _KEY_TYPE_INVALID (-EINVAL) if unknown or NULL */

/* Generate a fresh key. 0, -EINVAL (bad type), -ENOMEM or -EIO (OpenSSL failure; the
 * OpenSSL error queue of the calling thread is cleared). RSA uses e = 65537. */
int key_generate(KeyType t, EVP_PKEY **ret);

/* The KeyType of a key, or -EINVAL/-EOPNOTSUPP when it is none of ours. */
int key_get_type(EVP_PKEY *key, KeyType *ret);

/* Unencrypted PKCS#8 PEM ("-----BEGIN PRIVATE KEY-----") into a guarded secret. The
 * memory BIO used on the way is wiped before it is freed. 0, -ENOMEM, -EIO. */
int key_export_pkcs8_pem(EVP_PKEY *key, CbSecret **ret);

/* Parse PKCS#8 PEM (as produced above) back. -EBADMSG if it is not a private key of one
 * of our types. */
int key_import_pkcs8_pem(const CbSecret *pem, EVP_PKEY **ret);

/* True when both hold the same public key (a private key matches its certificate). */
bool key_public_equal(EVP_PKEY *a, EVP_PKEY *b);

static inline void key_freep(EVP_PKEY **k) {
        if (*k)
                EVP_PKEY_free(*k);
        *k = NULL;
}
