/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* test-deploy-formats' look into an NSS database, with NSS itself. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cmocka.h>

#include <cert.h>
#include <keyhi.h>
#include <nss.h>
#include <pk11pub.h>

int nss_count(const char *dir, const char *nickname, const unsigned char *expect, size_t expect_size,
              int *ret_keys);
void nss_make_db_with_password(const char *dir, const char *password);

/* A new database in dir whose key slot has a password (what certutil -N with one makes). */
void nss_make_db_with_password(const char *dir, const char *password) {
        NSSInitParameters params = { .length = sizeof params };
        char config[600];
        NSSInitContext *ctx;
        PK11SlotInfo *slot;

        snprintf(config, sizeof config, "sql:%s", dir);
        ctx = NSS_InitContext(config, "", "", "", &params, NSS_INIT_NOMODDB | NSS_INIT_NOROOTINIT);
        assert_non_null(ctx);
        slot = PK11_GetInternalKeySlot();
        assert_true(PK11_NeedUserInit(slot));
        assert_int_equal(PK11_InitPin(slot, "", password), SECSuccess);
        PK11_FreeSlot(slot);
        assert_int_equal(NSS_ShutdownContext(ctx), SECSuccess);
}

/* The certificates under nickname in the database dir, and how many private keys it holds. */
int nss_count(const char *dir, const char *nickname, const unsigned char *expect, size_t expect_size,
              int *ret_keys) {
        NSSInitParameters params = { .length = sizeof params };
        char config[600];
        NSSInitContext *ctx;
        PK11SlotInfo *slot;
        CERTCertList *list;
        SECKEYPrivateKeyList *keys;
        int n = 0, k = 0;

        snprintf(config, sizeof config, "sql:%s", dir);
        ctx = NSS_InitContext(config, "", "", "", &params, NSS_INIT_READONLY | NSS_INIT_NOMODDB | NSS_INIT_NOROOTINIT);
        assert_non_null(ctx);
        slot = PK11_GetInternalKeySlot();
        list = PK11_FindCertsFromNickname(nickname, NULL);
        for (CERTCertListNode *c = list ? CERT_LIST_HEAD(list) : NULL; c && !CERT_LIST_END(c, list);
             c = CERT_LIST_NEXT(c)) {
                SECKEYPrivateKey *key = PK11_FindKeyByAnyCert(c->cert, NULL);
                assert_non_null(key);           /* every certificate with its key */
                SECKEY_DestroyPrivateKey(key);
                if (expect) {
                        assert_int_equal(c->cert->derCert.len, expect_size);
                        assert_memory_equal(c->cert->derCert.data, expect, expect_size);
                }
                n++;
        }
        if (list)
                CERT_DestroyCertList(list);
        keys = PK11_ListPrivKeysInSlot(slot, NULL, NULL);
        for (SECKEYPrivateKeyListNode *p = keys ? PRIVKEY_LIST_HEAD(keys) : NULL; p && !PRIVKEY_LIST_END(p, keys);
             p = PRIVKEY_LIST_NEXT(p))
                k++;
        if (keys)
                SECKEY_DestroyPrivateKeyList(keys);
        PK11_FreeSlot(slot);
        assert_int_equal(NSS_ShutdownContext(ctx), SECSuccess);
        *ret_keys = k;
        return n;
}

