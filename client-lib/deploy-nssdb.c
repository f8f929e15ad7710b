/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* deploy's NSS database (deploy-formats.h), with the NSS library: no certutil/pk12util, so
 * the key goes from memory into the database and never through a file or a command line. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cert.h>
#include <certdb.h>
#include <keyhi.h>
#include <nss.h>
#include <pk11pub.h>
#include <prerror.h>
#include <secerr.h>

#include "deploy-files.h"
#include "deploy-formats.h"

#define why deploy_formats_why

static const char *nss_error(void) {
        PRErrorCode e = PORT_GetError();
        const char *s = PR_ErrorToString(e, PR_LANGUAGE_I_DEFAULT);
        const char *n = PR_ErrorToName(e);
        static __thread char buf[256];

        snprintf(buf, sizeof buf, "%s%s%s%s", s && *s ? s : "unknown error", n ? " (" : "", n ?: "", n ? ")" : "");
        return buf;
}

int deploy_nssdb_check(const char *dir, uid_t uid, char **ret_why) {
        static const char *const files[] = { "cert9.db", "key4.db", "pkcs11.txt" };
        char *w = NULL;
        int dfd, r;

        r = deploy_dir_open(dir, uid, &dfd, &w);
        if (r < 0) {
                r = why(ret_why, r, "the NSS database directory: %s", w ?: strerror(-r));
                free(w);
                return r;
        }
        for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
                struct stat st;
                if (fstatat(dfd, files[i], &st, AT_SYMLINK_NOFOLLOW) < 0) {
                        if (errno == ENOENT)
                                continue;
                        r = why(ret_why, -errno, "cannot stat %s/%s: %s", dir, files[i], strerror(errno));
                        break;
                }
                if (!S_ISREG(st.st_mode) || st.st_uid != uid || (st.st_mode & (S_IWGRP | S_IWOTH))) {
                        r = why(ret_why, -EPERM, "%s/%s is %s: refusing the NSS database (it must be a "
                                "regular file of the deploying user, uid %u, not writable by others)", dir,
                                files[i], S_ISLNK(st.st_mode) ? "a symbolic link" :
                                !S_ISREG(st.st_mode) ? "not a regular file" :
                                st.st_uid != uid ? "owned by another user" : "writable by its group or others",
                                (unsigned) uid);
                        break;
                }
        }
        close(dfd);
        return r;
}

typedef struct Db {
        NSSInitContext *ctx;
        PK11SlotInfo *slot;
} Db;

static void db_close(Db *db) {
        if (db->slot)
                PK11_FreeSlot(db->slot);
        if (db->ctx)
                (void) NSS_ShutdownContext(db->ctx);
        *db = (Db) {};
}

/* Checks dir, opens its database read-write (creating it without a password in an empty
 * directory) and logs into the internal key slot. */
static int db_open(const char *dir, uid_t uid, Db *ret, char **ret_why) {
        NSSInitParameters params = { .length = sizeof params };
        char *config = NULL;
        Db db = {};
        int r;

        r = deploy_nssdb_check(dir, uid, ret_why);
        if (r < 0)
                return r;
        if (asprintf(&config, "sql:%s", dir) < 0)
                return -ENOMEM;
        /* Only the database's own token: no modules from pkcs11.txt, no root certificates. */
        db.ctx = NSS_InitContext(config, "", "", "", &params,
                                 NSS_INIT_NOMODDB | NSS_INIT_NOROOTINIT | NSS_INIT_OPTIMIZESPACE);
        free(config);
        if (!db.ctx)
                return why(ret_why, -EIO, "cannot open the NSS database sql:%s: %s", dir, nss_error());
        db.slot = PK11_GetInternalKeySlot();
        if (!db.slot) {
                r = why(ret_why, -EIO, "the NSS database sql:%s has no key slot: %s", dir, nss_error());
                goto fail;
        }
        if (PK11_NeedUserInit(db.slot) && PK11_InitPin(db.slot, "", "") != SECSuccess) {
                r = why(ret_why, -EIO, "cannot initialize the new NSS database sql:%s: %s", dir, nss_error());
                goto fail;
        }
        if (PK11_NeedLogin(db.slot) && !PK11_IsLoggedIn(db.slot, NULL) &&
            PK11_CheckUserPassword(db.slot, "") != SECSuccess) {
                r = why(ret_why, -EACCES, "the NSS database sql:%s is protected by a password: deploy writes "
                        "only into a database without one (certutil -W -d sql:%s sets an empty one)", dir, dir);
                goto fail;
        }
        *ret = db;
        return 0;
fail:
        db_close(&db);
        return r;
}

static CERTCertificate *temp_cert(unsigned char *der, size_t size) {
        SECItem item = { siBuffer, der, (unsigned) size };
        return CERT_NewTempCertificate(CERT_GetDefaultCertDB(), &item, NULL, PR_FALSE, PR_TRUE);
}

/* Whether slot holds cert (the same DER). */
static bool slot_has_cert(PK11SlotInfo *slot, CERTCertificate *cert) {
        return PK11_FindCertInSlot(slot, cert, NULL) != CK_INVALID_HANDLE;
}

static bool slot_has_key_of(PK11SlotInfo *slot, CERTCertificate *cert) {
        SECKEYPrivateKey *k = PK11_FindKeyByDERCert(slot, cert, NULL);
        if (!k)
                return false;
        SECKEY_DestroyPrivateKey(k);
        return true;
}

static int import_key(Db *db, const char *dir, CERTCertificate *cert, DeployPairDer *der, const char *nickname,
                      char **ret_why) {
        SECItem pki = { siBuffer, der->key, (unsigned) der->key_size };
        SECItem nick = { siBuffer, (unsigned char *) nickname, (unsigned) strlen(nickname) };
        SECKEYPublicKey *pub;
        SECKEYPrivateKey *priv = NULL;
        SECItem *value;
        SECStatus s;

        pub = CERT_ExtractPublicKey(cert);
        if (!pub)
                return why(ret_why, -EBADMSG, "NSS cannot read the certificate's public key: %s", nss_error());
        /* What NSS derives the key's CKA_ID from, as for the certificate: so that they pair. */
        switch (SECKEY_GetPublicKeyType(pub)) {
        case rsaKey:
                value = &pub->u.rsa.modulus;
                break;
        case ecKey:
                value = &pub->u.ec.publicValue;
                break;
        default:
                SECKEY_DestroyPublicKey(pub);
                return why(ret_why, -EOPNOTSUPP, "the certificate's key type is neither RSA nor EC: not "
                           "imported into sql:%s", dir);
        }
        s = PK11_ImportDERPrivateKeyInfoAndReturnKey(db->slot, &pki, &nick, value, PR_TRUE, PR_TRUE, KU_ALL,
                                                     &priv, NULL);
        SECKEY_DestroyPublicKey(pub);
        if (s != SECSuccess)
                return why(ret_why, -EIO, "cannot import the key into the NSS database sql:%s: %s", dir, nss_error());
        SECKEY_DestroyPrivateKey(priv);
        return 0;
}

int deploy_nssdb_import(const char *dir, uid_t uid, int gfd, const char *nickname, bool *ret_imported,
                        char **ret_why) {
        DeployPairDer der = {};
        CERTCertificate *cert = NULL;
        bool imported = false;
        Db db = {};
        int r;

        nickname = nickname ?: DEPLOY_NICKNAME_DEFAULT;
        r = deploy_pair_der_load(gfd, &der, ret_why);
        if (r < 0)
                return r;
        r = db_open(dir, uid, &db, ret_why);
        if (r < 0)
                goto finish;
        cert = temp_cert(der.cert, der.cert_size);
        if (!cert) {
                r = why(ret_why, -EBADMSG, "NSS cannot read the certificate: %s", nss_error());
                goto finish;
        }
        /* The key first: once the certificate is there, so is its key. */
        if (!slot_has_key_of(db.slot, cert)) {
                r = import_key(&db, dir, cert, &der, nickname, ret_why);
                if (r < 0)
                        goto finish;
                imported = true;
        }
        /* The chain (no trust given: what a server sends after its certificate). */
        for (size_t i = 0; i < der.n_chain; i++) {
                CERTCertificate *ca = temp_cert(der.chain[i], der.chain_size[i]);
                char *name;
                SECStatus s;

                if (!ca) {
                        r = why(ret_why, -EBADMSG, "NSS cannot read certificate %zu of chain.pem: %s", i + 1,
                                nss_error());
                        goto finish;
                }
                if (slot_has_cert(db.slot, ca)) {
                        CERT_DestroyCertificate(ca);
                        continue;
                }
                name = CERT_MakeCANickname(ca);
                s = PK11_ImportCert(db.slot, ca, CK_INVALID_HANDLE, name, PR_FALSE);
                PORT_Free(name);
                CERT_DestroyCertificate(ca);
                if (s != SECSuccess) {
                        r = why(ret_why, -EIO, "cannot import certificate %zu of chain.pem into sql:%s: %s", i + 1,
                                dir, nss_error());
                        goto finish;
                }
                imported = true;
        }
        if (!slot_has_cert(db.slot, cert)) {
                if (PK11_ImportCert(db.slot, cert, CK_INVALID_HANDLE, nickname, PR_FALSE) != SECSuccess) {
                        r = why(ret_why, -EIO, "cannot import the certificate into the NSS database sql:%s as "
                                "'%s': %s", dir, nickname, nss_error());
                        goto finish;
                }
                imported = true;
        }
        if (!slot_has_key_of(db.slot, cert)) {
                r = why(ret_why, -EIO, "the certificate in sql:%s has no key after the import: %s", dir,
                        nss_error());
                goto finish;
        }
        if (ret_imported)
                *ret_imported = imported;
        r = 0;
finish:
        if (cert)
                CERT_DestroyCertificate(cert);
        db_close(&db);
        deploy_pair_der_done(&der);
        return r;
}

int deploy_nssdb_prune(const char *dir, uid_t uid, int gfd, const char *nickname, char **ret_why) {
        DeployPairDer der = {};
        CERTCertificate *cert = NULL;
        CERTCertList *list = NULL;
        SECItem *keep_id = NULL;
        int r, removed = 0;
        Db db = {};

        nickname = nickname ?: DEPLOY_NICKNAME_DEFAULT;
        r = deploy_pair_der_load(gfd, &der, ret_why);
        if (r < 0)
                return r;
        r = db_open(dir, uid, &db, ret_why);
        if (r < 0)
                goto finish;
        cert = temp_cert(der.cert, der.cert_size);
        if (!cert) {
                r = why(ret_why, -EBADMSG, "NSS cannot read the certificate: %s", nss_error());
                goto finish;
        }
        if (!slot_has_cert(db.slot, cert) || !slot_has_key_of(db.slot, cert)) {
                r = why(ret_why, -ENOENT, "the certificate to keep is not in sql:%s with its key: removing "
                        "nothing", dir);
                goto finish;
        }
        keep_id = PK11_GetLowLevelKeyIDForCert(db.slot, cert, NULL);
        list = PK11_FindCertsFromNickname(nickname, NULL);
        for (CERTCertListNode *n = list ? CERT_LIST_HEAD(list) : NULL; n && !CERT_LIST_END(n, list);
             n = CERT_LIST_NEXT(n)) {
                SECItem *id;
                bool same_key;
                SECStatus s;

                if (SECITEM_ItemsAreEqual(&n->cert->derCert, &cert->derCert))
                        continue;
                id = PK11_GetLowLevelKeyIDForCert(db.slot, n->cert, NULL);
                same_key = id && keep_id && SECITEM_ItemsAreEqual(id, keep_id);
                if (id)
                        SECITEM_FreeItem(id, PR_TRUE);
                /* A successor with the same key (never made by certbrokerd, but possible): only
                 * the old certificate goes. */
                s = same_key || !slot_has_key_of(db.slot, n->cert) ? SEC_DeletePermCertificate(n->cert) :
                                                                     PK11_DeleteTokenCertAndKey(n->cert, NULL);
                if (s != SECSuccess) {
                        r = why(ret_why, -EIO, "cannot remove the previous certificate '%s' from sql:%s: %s",
                                nickname, dir, nss_error());
                        goto finish;
                }
                removed++;
        }
        r = removed;
finish:
        if (keep_id)
                SECITEM_FreeItem(keep_id, PR_TRUE);
        if (list)
                CERT_DestroyCertList(list);
        if (cert)
                CERT_DestroyCertificate(cert);
        db_close(&db);
        deploy_pair_der_done(&der);
        return r;
}
