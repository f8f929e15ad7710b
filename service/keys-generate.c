/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <errno.h>
#include <limits.h>
#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <string.h>

#include "basic.h"
#include "keys-generate.h"

DEFINE_POINTER_CLEANUP(EVP_PKEY_CTX, EVP_PKEY_CTX_free)
DEFINE_POINTER_CLEANUP(BIO, BIO_free)

/* Returns r after clearing the calling thread's OpenSSL error queue: a failure leaves nothing
 * there for the next user of the thread. */
static int openssl_fail(int r) {
        ERR_clear_error();
        return r;
}

static const struct {
        const char *name;
        bool rsa;
        unsigned bits;          /* RSA modulus size */
        const char *group;      /* EC group */
} key_types[_KEY_TYPE_MAX] = {
        [KEY_TYPE_RSA_2048] = { "rsa:2048", true,  2048, NULL    },
        [KEY_TYPE_RSA_3072] = { "rsa:3072", true,  3072, NULL    },
        [KEY_TYPE_RSA_4096] = { "rsa:4096", true,  4096, NULL    },
        [KEY_TYPE_EC_P256]  = { "ec:p256",  false, 256,  "P-256" },
        [KEY_TYPE_EC_P384]  = { "ec:p384",  false, 384,  "P-384" },
};

const char *key_type_to_string(KeyType t) {
        if (t < 0 || t >= _KEY_TYPE_MAX)
                return NULL;
        return key_types[t].name;
}

KeyType key_type_from_string(const char *s) {
        if (!s)
                return _KEY_TYPE_INVALID;
        for (KeyType t = 0; t < _KEY_TYPE_MAX; t++)
                if (strcmp(s, key_types[t].name) == 0)
                        return t;
        return _KEY_TYPE_INVALID;
}

int key_generate(KeyType t, EVP_PKEY **ret) {
        _cleanup_(EVP_PKEY_CTX_freep) EVP_PKEY_CTX *ctx = NULL;
        _cleanup_(key_freep) EVP_PKEY *key = NULL;

        if (t < 0 || t >= _KEY_TYPE_MAX || !ret)
                return -EINVAL;

        ctx = EVP_PKEY_CTX_new_from_name(NULL, key_types[t].rsa ? "RSA" : "EC", NULL);
        if (!ctx)
                return openssl_fail(-ENOMEM);
        if (EVP_PKEY_keygen_init(ctx) <= 0)
                return openssl_fail(-EIO);

        if (key_types[t].rsa) {
                if (EVP_PKEY_CTX_set_rsa_keygen_bits(ctx, (int) key_types[t].bits) <= 0)
                        return openssl_fail(-EIO);
                /* e = 65537 is OpenSSL's default; nothing to set. */
        } else {
                if (EVP_PKEY_CTX_set_group_name(ctx, key_types[t].group) <= 0)
                        return openssl_fail(-EIO);
        }

        if (EVP_PKEY_generate(ctx, &key) <= 0 || !key)
                return openssl_fail(-EIO);

        *ret = TAKE_PTR(key);
        return 0;
}

int key_get_type(EVP_PKEY *key, KeyType *ret) {
        if (!key || !ret)
                return -EINVAL;

        switch (EVP_PKEY_get_base_id(key)) {

        case EVP_PKEY_RSA: {
                int bits = EVP_PKEY_get_bits(key);

                for (KeyType t = 0; t < _KEY_TYPE_MAX; t++)
                        if (key_types[t].rsa && (int) key_types[t].bits == bits) {
                                *ret = t;
                                return 0;
                        }
                return -EOPNOTSUPP;
        }

        case EVP_PKEY_EC: {
                char group[64];
                size_t len = 0;
                int nid;

                if (EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME,
                                                   group, sizeof(group), &len) != 1) {
                        ERR_clear_error();
                        return -EOPNOTSUPP;
                }

                /* OpenSSL reports the short name ("prime256v1"); accept the NIST name too. */
                nid = OBJ_sn2nid(group);
                if (nid == NID_undef)
                        nid = EC_curve_nist2nid(group);

                if (nid == NID_X9_62_prime256v1)
                        *ret = KEY_TYPE_EC_P256;
                else if (nid == NID_secp384r1)
                        *ret = KEY_TYPE_EC_P384;
                else
                        return -EOPNOTSUPP;
                return 0;
        }

        default:
                return -EOPNOTSUPP;
        }
}

int key_export_pkcs8_pem(EVP_PKEY *key, CbSecret **ret) {
        _cleanup_(BIO_freep) BIO *bio = NULL;
        CbSecret *pem = NULL;
        char *data = NULL;
        long len;
        int r;

        if (!key || !ret)
                return -EINVAL;

        /* A secure-memory BIO: its buffer comes from OpenSSL's secure heap when one is set up,
         * and is cleansed on growth and on free either way. */
        bio = BIO_new(BIO_s_secmem());
        if (!bio)
                return -ENOMEM;

        if (PEM_write_bio_PKCS8PrivateKey(bio, key, NULL, NULL, 0, NULL, NULL) != 1)
                return openssl_fail(-EIO);

        len = BIO_get_mem_data(bio, &data);
        if (len <= 0 || !data)
                return openssl_fail(-EIO);

        r = secret_new_copy(data, (size_t) len, &pem);
        if (r < 0)
                return openssl_fail(r);

        *ret = pem;
        return 0;
}

static int no_password_cb(char *buf, int size, int rwflag, void *userdata) {
        /* Never prompt on a terminal: our keys are never passphrase-protected. */
        return -1;
}

int key_import_pkcs8_pem(const CbSecret *pem, EVP_PKEY **ret) {
        static const char header[] = "-----BEGIN PRIVATE KEY-----";
        _cleanup_(BIO_freep) BIO *bio = NULL;
        _cleanup_(key_freep) EVP_PKEY *key = NULL;
        KeyType t;

        if (!pem || !ret)
                return -EINVAL;
        if (pem->size < sizeof(header) - 1 || pem->size > INT_MAX ||
            memcmp(pem->data, header, sizeof(header) - 1) != 0)
                return -EBADMSG;

        /* Reads the guarded buffer in place, no copy. */
        bio = BIO_new_mem_buf(pem->data, (int) pem->size);
        if (!bio)
                return -ENOMEM;

        key = PEM_read_bio_PrivateKey(bio, NULL, no_password_cb, NULL);
        if (!key) {
                ERR_clear_error();
                return -EBADMSG;
        }

        if (key_get_type(key, &t) < 0)
                return -EBADMSG;

        *ret = TAKE_PTR(key);
        return 0;
}

bool key_public_equal(EVP_PKEY *a, EVP_PKEY *b) {
        int r;

        if (!a || !b)
                return false;
        r = EVP_PKEY_eq(a, b);
        ERR_clear_error();
        return r == 1;
}
