/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The formats of 'certbrokerctl deploy' beyond PEM (deploy-files.h, DEPLOY_FORMAT_*): each is
 * made from the PEM files of a complete generation gen-<id>/ (key.pem, cert.pem, chain.pem),
 * never from anything else, after checking that key.pem is the key of cert.pem.
 *   pkcs12  gen-<id>/bundle.p12 (0600): the key, the certificate and the chain, the key and
 *           the certificates encrypted with PBES2 (PBKDF2-HMAC-SHA256, AES-256-CBC), the whole
 *           protected by an HMAC-SHA256 MAC; written like the PEM files (new file, fsync,
 *           rename), so live/bundle.p12 switches with live.
 *   nssdb   the key, then the certificate (and the chain's certificates, without trust) into
 *           an NSS database in sql: format under a nickname; once live points at the new
 *           generation, the certificates of that nickname other than the new one are removed
 *           with their keys. At every moment the certificates under the nickname each have
 *           their own key in the database.
 * No bus: unit-tested in tests/unit/client/test-deploy-formats.c. Functions return 0 or a
 * negative errno, with *ret_why (malloc()ed) saying what was refused and why; no message
 * ever quotes a passphrase or a key. */

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#define DEPLOY_PASSPHRASE_MAX 1023U
/* PBKDF2 iterations for the key, the certificates and the MAC: what keytool itself uses. */
#define DEPLOY_PKCS12_ITERATIONS 10000

/* Reads a passphrase from path: a regular file (not a symbolic link), owned by uid or root,
 * with no permission for group or others; its first line without the line end, at least one
 * character. *ret: free with deploy_passphrase_free(). */
int deploy_passphrase_read_file(const char *path, uid_t uid, char **ret, char **ret_why);

/* The same for the systemd credential name: $CREDENTIALS_DIRECTORY/name. */
int deploy_passphrase_read_credential(const char *name, uid_t uid, char **ret, char **ret_why);

/* explicit_bzero() and free(). */
void deploy_passphrase_free(char *p);

/* Writes gen-<id>/bundle.p12 (gfd) from the generation's PEM files, with friendly name
 * (the alias keytool shows) nickname. */
int deploy_pkcs12_write(int gfd, const char *passphrase, const char *nickname, char **ret_why);

/* Checks an NSS database directory for uid, as deploy_dir_open() checks DIR (a directory, not
 * a symbolic link, owned by uid, not writable by group or others, nor any directory above it
 * by others), and that each of its database files present (cert9.db, key4.db, pkcs11.txt) is a
 * regular file of uid, not a symbolic link, not writable by others. */
int deploy_nssdb_check(const char *dir, uid_t uid, char **ret_why);

/* Imports the generation's key, certificate and chain into the database in dir (created when
 * the directory is empty; a database with a password is refused) under nickname. Importing
 * again what is there is a no-op. *ret_imported (may be NULL): whether anything was added. */
int deploy_nssdb_import(const char *dir, uid_t uid, int gfd, const char *nickname, bool *ret_imported,
                        char **ret_why);

/* Removes from the database in dir every certificate under nickname but the generation's,
 * with its key (unless that is the generation's key too). Returns how many it removed. */
int deploy_nssdb_prune(const char *dir, uid_t uid, int gfd, const char *nickname, char **ret_why);

/* The generation's pair in DER, for deploy_nssdb_*() (internal; deploy-formats.c). */
typedef struct DeployPairDer {
        unsigned char *key;             /* PKCS#8 PrivateKeyInfo; wiped by deploy_pair_der_done() */
        size_t key_size;
        unsigned char *cert;
        size_t cert_size;
        unsigned char **chain;
        size_t *chain_size;
        size_t n_chain;
} DeployPairDer;
int deploy_pair_der_load(int gfd, DeployPairDer *ret, char **ret_why);
void deploy_pair_der_done(DeployPairDer *p);
