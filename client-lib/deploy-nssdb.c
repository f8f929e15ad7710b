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

#include "basic.h"
#include "deploy-files.h"
#include "deploy-formats.h"

DEFINE_POINTER_CLEANUP(CERTCertificate, CERT_DestroyCertificate);
DEFINE_POINTER_CLEANUP(CERTCertList, CERT_DestroyCertList);

static void secitem_freep(SECItem **i) {
        if (*i)
                SECITEM_FreeItem(*i, PR_TRUE);
}

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
        _cleanup_free_ char *w = NULL;
        _cleanup_close_ int dfd = -1;
        int r;

        r = deploy_dir_open(dir, uid, &dfd, &w);
        if (r < 0)
                return deploy_why(ret_why, r, "the NSS database directory: %s", w ?: strerror(-r));
        for (size_t i = 0; i < ELEMENTSOF(files); i++) {
                struct stat st;
                if (fstatat(dfd, files[i], &st, AT_SYMLINK_NOFOLLOW) < 0) {
                        if (errno == ENOENT)
                                continue;
                        return deploy_why(ret_why, -errno, "cannot stat %s/%s: %s", dir, files[i], strerror(errno));
                }
                if (!S_ISREG(st.st_mode) || st.st_uid != uid || (st.st_mode & (S_IWGRP | S_IWOTH)))
                        return deploy_why(ret_why, -EPERM, "%s/%s is %s: refusing the NSS database (it must be a "
                                "regular file of the deploying user, uid %u, not writable by others)", dir,
                                files[i], S_ISLNK(st.st_mode) ? "a symbolic link" :
                                !S_ISREG(st.st_mode) ? "not a regular file" :
                                st.st_uid != uid ? "owned by another user" : "writable by its group or others",
                                (unsigned) uid);
        }
        return 0;
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
        _cleanup_free_ char *config = NULL;
        _cleanup_(db_close) Db db = {};
        int r;

        r = deploy_nssdb_check(dir, uid, ret_why);
        if (r < 0)
                return r;
        if (asprintf(&config, "sql:%s", dir) < 0) {
                config = NULL;
                return -ENOMEM;
        }
        /* Only the database's own token: no modules from pkcs11.txt, no root certificates. */
        db.ctx = NSS_InitContext(config, "", "", "", &params,
                                 NSS_INIT_NOMODDB | NSS_INIT_NOROOTINIT | NSS_INIT_OPTIMIZESPACE);
        if (!db.ctx)
                return deploy_why(ret_why, -EIO, "cannot open the NSS database sql:%s: %s", dir, nss_error());
        db.slot = PK11_GetInternalKeySlot();
        if (!db.slot)
                return deploy_why(ret_why, -EIO, "the NSS database sql:%s has no key slot: %s", dir, nss_error());
        if (PK11_NeedUserInit(db.slot) && PK11_InitPin(db.slot, "", "") != SECSuccess)
                return deploy_why(ret_why, -EIO, "cannot initialize the new NSS database sql:%s: %s", dir,
                                  nss_error());
        if (PK11_NeedLogin(db.slot) && !PK11_IsLoggedIn(db.slot, NULL) &&
            PK11_CheckUserPassword(db.slot, "") != SECSuccess)
                return deploy_why(ret_why, -EACCES, "the NSS database sql:%s is protected by a password: deploy "
                                  "writes only into a database without one (certutil -W -d sql:%s sets an empty "
                                  "one)", dir, dir);
        *ret = db;
        db = (Db) {};
        return 0;
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
                return deploy_why(ret_why, -EBADMSG, "NSS cannot read the certificate's public key: %s", nss_error());
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
                return deploy_why(ret_why, -EOPNOTSUPP, "the certificate's key type is neither RSA nor EC: not "
                           "imported into sql:%s", dir);
        }
        s = PK11_ImportDERPrivateKeyInfoAndReturnKey(db->slot, &pki, &nick, value, PR_TRUE, PR_TRUE, KU_ALL,
                                                     &priv, NULL);
        SECKEY_DestroyPublicKey(pub);
        if (s != SECSuccess)
                return deploy_why(ret_why, -EIO, "cannot import the key into the NSS database sql:%s: %s", dir, nss_error());
        SECKEY_DestroyPrivateKey(priv);
        return 0;
}

/* What importing and pruning start from: the generation's key, certificate and chain (der),
 * the open database, and the certificate as NSS reads it. */
typedef struct Generation {
        DeployPairDer der;
        Db db;
        CERTCertificate *cert;
} Generation;

static void generation_close(Generation *g) {
        if (g->cert)
                CERT_DestroyCertificate(g->cert);       /* before the database closes */
        g->cert = NULL;
        db_close(&g->db);
        deploy_pair_der_done(&g->der);
}

static int generation_open(const char *dir, uid_t uid, int gfd, Generation *g, char **ret_why) {
        int r;

        r = deploy_pair_der_load(gfd, &g->der, ret_why);
        if (r < 0)
                return r;
        r = db_open(dir, uid, &g->db, ret_why);
        if (r < 0)
                return r;
        g->cert = temp_cert(g->der.cert, g->der.cert_size);
        if (!g->cert)
                return deploy_why(ret_why, -EBADMSG, "NSS cannot read the certificate: %s", nss_error());
        return 0;
}

/* Certificate i of the chain into the database, unless it is there. 1: imported. */
static int import_chain_cert(Generation *g, const char *dir, size_t i, char **ret_why) {
        _cleanup_(CERT_DestroyCertificatep) CERTCertificate *ca = NULL;
        char *name;
        SECStatus s;

        ca = temp_cert(g->der.chain[i], g->der.chain_size[i]);
        if (!ca)
                return deploy_why(ret_why, -EBADMSG, "NSS cannot read certificate %zu of chain.pem: %s", i + 1,
                                  nss_error());
        if (slot_has_cert(g->db.slot, ca))
                return 0;
        name = CERT_MakeCANickname(ca);
        s = PK11_ImportCert(g->db.slot, ca, CK_INVALID_HANDLE, name, PR_FALSE);
        PORT_Free(name);
        if (s != SECSuccess)
                return deploy_why(ret_why, -EIO, "cannot import certificate %zu of chain.pem into sql:%s: %s", i + 1,
                                  dir, nss_error());
        return 1;
}

int deploy_nssdb_import(const char *dir, uid_t uid, int gfd, const char *nickname, bool *ret_imported,
                        char **ret_why) {
        _cleanup_(generation_close) Generation g = {};
        bool imported = false;
        int r;

        nickname = nickname ?: DEPLOY_NICKNAME_DEFAULT;
        r = generation_open(dir, uid, gfd, &g, ret_why);
        if (r < 0)
                return r;
        /* The key first: once the certificate is there, so is its key. */
        if (!slot_has_key_of(g.db.slot, g.cert)) {
                r = import_key(&g.db, dir, g.cert, &g.der, nickname, ret_why);
                if (r < 0)
                        return r;
                imported = true;
        }
        /* The chain (no trust given: what a server sends after its certificate). */
        for (size_t i = 0; i < g.der.n_chain; i++) {
                r = import_chain_cert(&g, dir, i, ret_why);
                if (r < 0)
                        return r;
                if (r > 0)
                        imported = true;
        }
        if (!slot_has_cert(g.db.slot, g.cert)) {
                if (PK11_ImportCert(g.db.slot, g.cert, CK_INVALID_HANDLE, nickname, PR_FALSE) != SECSuccess)
                        return deploy_why(ret_why, -EIO, "cannot import the certificate into the NSS database "
                                          "sql:%s as '%s': %s", dir, nickname, nss_error());
                imported = true;
        }
        if (!slot_has_key_of(g.db.slot, g.cert))
                return deploy_why(ret_why, -EIO, "the certificate in sql:%s has no key after the import: %s", dir,
                                  nss_error());
        if (ret_imported)
                *ret_imported = imported;
        return 0;
}

int deploy_nssdb_prune(const char *dir, uid_t uid, int gfd, const char *nickname, char **ret_why) {
        _cleanup_(generation_close) Generation g = {};
        _cleanup_(CERT_DestroyCertListp) CERTCertList *list = NULL;
        _cleanup_(secitem_freep) SECItem *keep_id = NULL;
        int r, removed = 0;

        nickname = nickname ?: DEPLOY_NICKNAME_DEFAULT;
        r = generation_open(dir, uid, gfd, &g, ret_why);
        if (r < 0)
                return r;
        if (!slot_has_cert(g.db.slot, g.cert) || !slot_has_key_of(g.db.slot, g.cert))
                return deploy_why(ret_why, -ENOENT, "the certificate to keep is not in sql:%s with its key: "
                                  "removing nothing", dir);
        keep_id = PK11_GetLowLevelKeyIDForCert(g.db.slot, g.cert, NULL);
        list = PK11_FindCertsFromNickname(nickname, NULL);
        for (CERTCertListNode *n = list ? CERT_LIST_HEAD(list) : NULL; n && !CERT_LIST_END(n, list);
             n = CERT_LIST_NEXT(n)) {
                _cleanup_(secitem_freep) SECItem *id = NULL;
                bool same_key;
                SECStatus s;

                if (SECITEM_ItemsAreEqual(&n->cert->derCert, &g.cert->derCert))
                        continue;
                id = PK11_GetLowLevelKeyIDForCert(g.db.slot, n->cert, NULL);
                same_key = id && keep_id && SECITEM_ItemsAreEqual(id, keep_id);
                /* A successor with the same key (never made by certbrokerd, but possible): only
                 * the old certificate goes. */
                s = same_key || !slot_has_key_of(g.db.slot, n->cert) ? SEC_DeletePermCertificate(n->cert) :
                                                                       PK11_DeleteTokenCertAndKey(n->cert, NULL);
                if (s != SECSuccess)
                        return deploy_why(ret_why, -EIO, "cannot remove the previous certificate '%s' from "
                                          "sql:%s: %s", nickname, dir, nss_error());
                removed++;
        }
        return removed;
}
