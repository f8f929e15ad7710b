/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* deploy's PKCS#12 bundle and passphrases (deploy-formats.h), with OpenSSL; the NSS side is
 * deploy-nssdb.c. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/pkcs12.h>
#include <openssl/x509.h>

#include "basic.h"
#include "deploy-files.h"
#include "deploy-formats.h"

DEFINE_POINTER_CLEANUP(BIO, BIO_free);
DEFINE_POINTER_CLEANUP(X509, X509_free);
DEFINE_POINTER_CLEANUP(PKCS12, PKCS12_free);
DEFINE_POINTER_CLEANUP(PKCS8_PRIV_KEY_INFO, PKCS8_PRIV_KEY_INFO_free);
DEFINE_POINTER_CLEANUP(char, deploy_passphrase_free);

static void openssl_freep(unsigned char **p) {
        OPENSSL_free(*p);
}

void deploy_passphrase_free(char *p) {
        if (!p)
                return;
        explicit_bzero(p, strlen(p));
        free(p);
}

/* Reads what fd holds, at most max bytes (more: -EFBIG), NUL-terminated. */
static int read_all(int fd, size_t max, char **ret, size_t *ret_size) {
        char *buf = malloc(max + 2);
        size_t n = 0;

        if (!buf)
                return -ENOMEM;
        while (n <= max) {
                ssize_t k = read(fd, buf + n, max + 1 - n);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        int r = -errno;
                        explicit_bzero(buf, max + 2);
                        free(buf);
                        return r;
                }
                if (k == 0)
                        break;
                n += (size_t) k;
        }
        if (n > max) {
                explicit_bzero(buf, max + 2);
                free(buf);
                return -EFBIG;
        }
        buf[n] = 0;
        *ret = buf;
        if (ret_size)
                *ret_size = n;
        return 0;
}

/* The passphrase in the file at dfd/name (dfd AT_FDCWD and an absolute name, or the
 * credentials directory); what names it in messages. */
static int passphrase_read_at(int dfd, const char *name, const char *what, uid_t uid, char **ret,
                              char **ret_why) {
        struct stat st;
        char *buf = NULL;
        size_t n;
        int fd, r;

        fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
        if (fd < 0) {
                r = -errno;
                if (r == -ELOOP)
                        return deploy_why(ret_why, r, "%s is a symbolic link: give the file itself", what);
                return deploy_why(ret_why, r, "cannot open %s: %s", what, strerror(-r));
        }
        if (fstat(fd, &st) < 0) {
                r = -errno;
                close(fd);
                return deploy_why(ret_why, r, "cannot stat %s: %s", what, strerror(-r));
        }
        if (!S_ISREG(st.st_mode)) {
                close(fd);
                return deploy_why(ret_why, -EPERM, "%s is not a regular file", what);
        }
        if (st.st_uid != uid && st.st_uid != 0) {
                close(fd);
                return deploy_why(ret_why, -EPERM, "%s is owned by uid %u, not by the deploying user (uid %u) or root",
                           what, (unsigned) st.st_uid, (unsigned) uid);
        }
        if (st.st_mode & 0077) {
                close(fd);
                return deploy_why(ret_why, -EPERM, "%s can be read or written by its group or others (mode %04o): "
                           "chmod 0600 it (and choose a new passphrase: it may be known)", what,
                           (unsigned) (st.st_mode & 07777));
        }
        r = read_all(fd, DEPLOY_PASSPHRASE_MAX, &buf, &n);
        close(fd);
        if (r == -EFBIG)
                return deploy_why(ret_why, r, "%s is longer than %u bytes: not a passphrase", what, DEPLOY_PASSPHRASE_MAX);
        if (r < 0)
                return deploy_why(ret_why, r, "cannot read %s: %s", what, strerror(-r));
        {
                /* Only the first line is the passphrase: the rest is wiped now, not at free. */
                const char *nl = memchr(buf, '\n', n);
                size_t first = nl ? (size_t) (nl - buf) : n;
                bool nul = memchr(buf, 0, first) != NULL;
                explicit_bzero(buf + first, n - first);
                n = first;
                if (n > 0 && buf[n - 1] == '\r')
                        buf[--n] = 0;
                if (nul) {
                        explicit_bzero(buf, first);
                        free(buf);
                        return deploy_why(ret_why, -EINVAL, "%s holds a NUL byte: not a passphrase", what);
                }
        }
        if (n == 0) {
                deploy_passphrase_free(buf);
                return deploy_why(ret_why, -EINVAL, "%s is empty: the passphrase is its first line", what);
        }
        *ret = buf;
        return 0;
}

int deploy_passphrase_read_file(const char *path, uid_t uid, char **ret, char **ret_why) {
        char what[PATH_MAX + 32];
        if (!path || path[0] != '/')
                return deploy_why(ret_why, -EINVAL, "the passphrase file '%s' is not an absolute path", path ?: "");
        snprintf(what, sizeof what, "the passphrase file %s", path);
        return passphrase_read_at(AT_FDCWD, path, what, uid, ret, ret_why);
}

int deploy_passphrase_read_credential(const char *name, uid_t uid, char **ret, char **ret_why) {
        const char *dir = getenv("CREDENTIALS_DIRECTORY");
        char what[PATH_MAX + 64];
        int dfd, r;

        if (!deploy_credential_name_is_valid(name))
                return deploy_why(ret_why, -EINVAL, "'%.60s' is not a credential name", name ?: "");
        if (!dir || dir[0] != '/')
                return deploy_why(ret_why, -ENOENT, "the passphrase credential %s: $CREDENTIALS_DIRECTORY is not set "
                           "(give the unit LoadCredential=%s:FILE or LoadCredentialEncrypted=, or use a "
                           "passphrase file)", name, name);
        snprintf(what, sizeof what, "the passphrase credential %s/%s", dir, name);
        dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0)
                return deploy_why(ret_why, -errno, "cannot open $CREDENTIALS_DIRECTORY %s: %s", dir, strerror(errno));
        r = passphrase_read_at(dfd, name, what, uid, ret, ret_why);
        close(dfd);
        return r;
}

/* ---- the generation's PEM files ---- */

static int read_pem(int gfd, const char *name, char **ret, char **ret_why) {
        _cleanup_close_ int fd = -1;
        struct stat st;
        int r;

        fd = openat(gfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
        if (fd < 0) {
                r = -errno;
                return deploy_why(ret_why, r, "cannot open %s of the generation: %s", name, strerror(-r));
        }
        if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
                return deploy_why(ret_why, -EBADMSG, "%s of the generation is not a regular file", name);
        r = read_all(fd, 1024U * 1024U, ret, NULL);
        if (r < 0)
                return deploy_why(ret_why, r, "cannot read %s of the generation: %s", name, strerror(-r));
        return 0;
}

typedef struct Pair {
        EVP_PKEY *key;
        X509 *cert;
        STACK_OF(X509) *chain;
} Pair;

static void pair_done(Pair *p) {
        EVP_PKEY_free(p->key);
        X509_free(p->cert);
        sk_X509_pop_free(p->chain, X509_free);
        *p = (Pair) {};
}

/* A BIO reading the NUL-terminated text s. */
static BIO *bio_of(const char *s) {
        return BIO_new_mem_buf(s, -1);
}

/* The certificates of chain.pem's text, in order. */
static int chain_parse(const char *text, STACK_OF(X509) **ret) {
        _cleanup_(BIO_freep) BIO *b = bio_of(text);
        STACK_OF(X509) *chain = sk_X509_new_null();

        if (!b || !chain) {
                sk_X509_free(chain);
                return -ENOMEM;
        }
        for (;;) {
                _cleanup_(X509_freep) X509 *x = PEM_read_bio_X509(b, NULL, NULL, NULL);

                if (!x)
                        break;
                if (!sk_X509_push(chain, x)) {
                        sk_X509_pop_free(chain, X509_free);
                        return -ENOMEM;
                }
                TAKE_PTR(x);
        }
        ERR_clear_error();      /* the end of chain.pem */
        *ret = chain;
        return 0;
}

/* key.pem, cert.pem and chain.pem of gfd; the key must be the certificate's. */
static int pair_load(int gfd, Pair *ret, char **ret_why) {
        _cleanup_(deploy_passphrase_freep) char *key = NULL;     /* wiped like a passphrase */
        _cleanup_free_ char *cert = NULL, *chain = NULL;
        _cleanup_(pair_done) Pair p = {};
        _cleanup_(BIO_freep) BIO *kb = NULL, *cb = NULL;
        int r;

        r = read_pem(gfd, "key.pem", &key, ret_why);
        if (r < 0)
                return r;
        r = read_pem(gfd, "cert.pem", &cert, ret_why);
        if (r < 0)
                return r;
        r = read_pem(gfd, "chain.pem", &chain, ret_why);
        if (r < 0)
                return r;
        kb = bio_of(key);
        if (!kb || !(p.key = PEM_read_bio_PrivateKey(kb, NULL, NULL, (void *) "")))
                return deploy_why(ret_why, -EBADMSG, "key.pem of the generation is not a private key in PEM");
        cb = bio_of(cert);
        if (!cb || !(p.cert = PEM_read_bio_X509(cb, NULL, NULL, NULL)))
                return deploy_why(ret_why, -EBADMSG, "cert.pem of the generation is not a certificate in PEM");
        r = chain_parse(chain, &p.chain);
        if (r < 0)
                return r;
        if (X509_check_private_key(p.cert, p.key) != 1) {
                ERR_clear_error();
                return deploy_why(ret_why, -EBADMSG, "key.pem of the generation is not the key of its cert.pem: "
                                  "refusing to write it in any format");
        }
        *ret = p;
        p = (Pair) {};
        return 0;
}

int deploy_pkcs12_write(int gfd, const char *passphrase, const char *nickname, char **ret_why) {
        _cleanup_(openssl_freep) unsigned char *der = NULL;
        _cleanup_(PKCS12_freep) PKCS12 *p12 = NULL;
        _cleanup_(pair_done) Pair p = {};
        int n, r;

        if (!passphrase || !*passphrase)
                return deploy_why(ret_why, -EINVAL, "no passphrase for the PKCS#12 bundle");
        r = pair_load(gfd, &p, ret_why);
        if (r < 0)
                return r;
        /* PBES2 with AES-256-CBC for the key and the certificates (PBKDF2 with HMAC-SHA256, the
         * default PRF of OpenSSL 3), and the MAC added after with SHA-256: not the legacy
         * RC2/3DES with a SHA-1 MAC. */
        p12 = PKCS12_create_ex(passphrase, nickname ?: DEPLOY_NICKNAME_DEFAULT, p.key, p.cert, p.chain,
                               NID_aes_256_cbc, NID_aes_256_cbc, DEPLOY_PKCS12_ITERATIONS, -1, 0, NULL, NULL);
        if (!p12 || PKCS12_set_mac(p12, passphrase, -1, NULL, 0, DEPLOY_PKCS12_ITERATIONS, EVP_sha256()) != 1) {
                ERR_clear_error();
                return deploy_why(ret_why, -EIO, "OpenSSL could not make the PKCS#12 bundle");
        }
        n = i2d_PKCS12(p12, &der);
        if (n <= 0) {
                ERR_clear_error();
                return deploy_why(ret_why, -EIO, "OpenSSL could not encode the PKCS#12 bundle");
        }
        r = deploy_write_data(gfd, DEPLOY_PKCS12_FILE, der, (size_t) n, 0600);
        if (r < 0)
                return deploy_why(ret_why, r, "cannot write %s: %s", DEPLOY_PKCS12_FILE, strerror(-r));
        return 0;
}

/* ---- the pair in DER, for NSS ---- */

void deploy_pair_der_done(DeployPairDer *p) {
        if (!p)
                return;
        if (p->key)
                OPENSSL_clear_free(p->key, p->key_size);
        OPENSSL_free(p->cert);
        for (size_t i = 0; i < p->n_chain; i++)
                OPENSSL_free(p->chain[i]);
        free(p->chain);
        free(p->chain_size);
        *p = (DeployPairDer) {};
}

/* The pair p in DER into d. */
static int pair_to_der(const Pair *p, DeployPairDer *d) {
        _cleanup_(PKCS8_PRIV_KEY_INFO_freep) PKCS8_PRIV_KEY_INFO *p8 = NULL;
        int n;

        p8 = EVP_PKEY2PKCS8(p->key);
        if (!p8 || (n = i2d_PKCS8_PRIV_KEY_INFO(p8, &d->key)) <= 0)
                return -ENOMEM;
        d->key_size = (size_t) n;
        n = i2d_X509(p->cert, &d->cert);
        if (n <= 0)
                return -ENOMEM;
        d->cert_size = (size_t) n;
        n = sk_X509_num(p->chain);
        d->chain = calloc((size_t) n + 1, sizeof(*d->chain));
        d->chain_size = calloc((size_t) n + 1, sizeof(*d->chain_size));
        if (!d->chain || !d->chain_size)
                return -ENOMEM;
        for (int i = 0; i < n; i++) {
                int k = i2d_X509(sk_X509_value(p->chain, i), &d->chain[d->n_chain]);
                if (k <= 0)
                        return -ENOMEM;
                d->chain_size[d->n_chain++] = (size_t) k;
        }
        return 0;
}

int deploy_pair_der_load(int gfd, DeployPairDer *ret, char **ret_why) {
        _cleanup_(deploy_pair_der_done) DeployPairDer d = {};
        _cleanup_(pair_done) Pair p = {};
        int r;

        r = pair_load(gfd, &p, ret_why);
        if (r < 0)
                return r;
        r = pair_to_der(&p, &d);
        if (r < 0) {
                ERR_clear_error();
                return deploy_why(ret_why, r, "cannot encode the generation's key and certificates in DER");
        }
        *ret = d;
        d = (DeployPairDer) {};
        return 0;
}
