/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "basic.h"
#include "store-crypto.h"

#define BLOB_VERSION 0x01
#define BLOB_AD_PREFIX "certbroker-key-v1:"
#define BLOB_ID_MAX 64U

struct StoreCipher {
        uint8_t *key;           /* sodium_malloc()ed, PROT_NONE except while used */
        const char *source;
};

_Static_assert(STORE_MASTER_KEY_SIZE == crypto_aead_xchacha20poly1305_ietf_KEYBYTES, "key size");

static void set_message(char **ret_message, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void set_message(char **ret_message, const char *fmt, ...) {
        va_list ap;

        if (!ret_message)
                return;
        va_start(ap, fmt);
        if (vasprintf(ret_message, fmt, ap) < 0)
                *ret_message = NULL;
        va_end(ap);
}

static int check_private(const struct stat *st, const char *path, bool dir, char **ret_message) {
        if (dir ? !S_ISDIR(st->st_mode) : !S_ISREG(st->st_mode)) {
                set_message(ret_message, "%s is not a %s", path, dir ? "directory" : "regular file");
                return dir ? -ENOTDIR : -EINVAL;
        }
        if (st->st_uid != geteuid()) {
                set_message(ret_message,
                            "%s is owned by uid %u, not by the daemon's uid %u: fix with chown %u %s",
                            path, (unsigned) st->st_uid, (unsigned) geteuid(), (unsigned) geteuid(), path);
                return -EPERM;
        }
        if ((st->st_mode & 077) != 0) {
                set_message(ret_message,
                            "%s has mode %04o: it must not be accessible to group or others "
                            "(it protects stored private keys); fix with chmod %s %s",
                            path, (unsigned) (st->st_mode & 07777), dir ? "0700" : "0600", path);
                return -EPERM;
        }
        return 0;
}

int store_state_dir_prepare(const char *dir, char **ret_message) {
        struct stat st;

        if (!dir || !*dir)
                return -EINVAL;

        if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
                int r = -errno;
                set_message(ret_message, "cannot create state directory %s: %s", dir, strerror(-r));
                return r;
        }
        if (stat(dir, &st) < 0) {
                int r = -errno;
                set_message(ret_message, "cannot stat state directory %s: %s", dir, strerror(-r));
                return r;
        }
        return check_private(&st, dir, true, ret_message);
}

static int cipher_new(StoreCipher **ret) {
        _cleanup_(store_cipher_freep) StoreCipher *c = NULL;

        c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        c->key = sodium_malloc(STORE_MASTER_KEY_SIZE);
        if (!c->key)
                return -ENOMEM;
        *ret = TAKE_PTR(c);
        return 0;
}

/* What a key file may hold, wiped when it leaves scope. */
typedef uint8_t KeyFileBuffer[2 * STORE_MASTER_KEY_SIZE + 2];

static void key_file_buffer_erase(KeyFileBuffer *b) {
        sodium_memzero(*b, sizeof(*b));
}

/* Everything fd holds, up to a full buf: -EBADMSG when it holds more. */
static int read_all(int fd, uint8_t *buf, size_t size, size_t *ret_n) {
        size_t n = 0;

        for (;;) {
                ssize_t k;

                if (n == size)
                        return -EBADMSG;        /* too long */
                k = read(fd, buf + n, size - n);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (k == 0)
                        break;
                n += (size_t) k;
        }
        *ret_n = n;
        return 0;
}

/* Read a key file: 32 raw bytes, or 64 hex digits with one optional trailing newline. */
static int read_key_fd(int fd, uint8_t key[STORE_MASTER_KEY_SIZE]) {
        _cleanup_(key_file_buffer_erase) KeyFileBuffer buf;
        size_t n = 0;
        int r;

        r = read_all(fd, buf, sizeof(buf), &n);
        if (r < 0)
                return r;
        if (n == STORE_MASTER_KEY_SIZE) {
                memcpy(key, buf, n);
                return 0;
        }

        if (n == 2 * STORE_MASTER_KEY_SIZE + 1 && buf[n - 1] == '\n')
                n--;
        if (n != 2 * STORE_MASTER_KEY_SIZE)
                return -EBADMSG;
        for (size_t i = 0; i < STORE_MASTER_KEY_SIZE; i++) {
                int hi = unhexchar((char) buf[2 * i]), lo = unhexchar((char) buf[2 * i + 1]);

                if (hi < 0 || lo < 0)
                        return -EBADMSG;
                key[i] = (uint8_t) (hi << 4 | lo);
        }
        return 0;
}

static int write_all(int fd, const uint8_t *p, size_t n) {
        while (n > 0) {
                ssize_t k = write(fd, p, n);

                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                p += k;
                n -= (size_t) k;
        }
        return 0;
}

static int fsync_dir(const char *dir) {
        _cleanup_close_ int fd = -EBADF;

        fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        if (fsync(fd) < 0)
                return -errno;
        return 0;
}

static void sodium_freep(uint8_t **p) {
        if (*p)
                sodium_free(*p);
}

/* A new random key in the new file tmp, on disk when this returns. */
static int write_new_key(const char *tmp, char **ret_message) {
        _cleanup_(sodium_freep) uint8_t *key = NULL;
        _cleanup_close_ int fd = -EBADF;
        int r;

        fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY, 0600);
        if (fd < 0) {
                r = -errno;
                set_message(ret_message, "cannot create %s: %s", tmp, strerror(-r));
                return r;
        }

        key = sodium_malloc(STORE_MASTER_KEY_SIZE);
        if (!key)
                return -ENOMEM;
        randombytes_buf(key, STORE_MASTER_KEY_SIZE);

        r = write_all(fd, key, STORE_MASTER_KEY_SIZE);
        if (r < 0) {
                set_message(ret_message, "cannot write %s: %s", tmp, strerror(-r));
                return r;
        }
        if (fsync(fd) < 0) {
                r = -errno;
                set_message(ret_message, "cannot fsync %s: %s", tmp, strerror(-r));
                return r;
        }
        return 0;
}

/* Create STATE_DIR/store.key atomically: write a new file, fsync, then link() it into place
 * (link never replaces: if another start won the race, its key is the one used). */
static int create_key_file(const char *dir, const char *path, char **ret_message) {
        _cleanup_free_ char *tmp = NULL;
        int r;

        if (asprintf(&tmp, "%s/" STORE_KEY_FILE_NAME ".new", dir) < 0)
                return -ENOMEM;

        /* A leftover from a start that crashed before link(): never used, safe to drop. */
        (void) unlink(tmp);

        r = write_new_key(tmp, ret_message);
        if (r >= 0 && link(tmp, path) < 0 && errno != EEXIST) {
                r = -errno;
                set_message(ret_message, "cannot link %s to %s: %s", tmp, path, strerror(-r));
        }
        (void) unlink(tmp);
        if (r < 0)
                return r;

        r = fsync_dir(dir);
        if (r < 0) {
                set_message(ret_message, "cannot fsync %s: %s", dir, strerror(-r));
                return r;
        }
        return 0;
}

static int load_from_file(const char *path, bool check_mode, StoreCipher *c, char **ret_message) {
        _cleanup_close_ int fd = -EBADF;
        struct stat st;
        int r;

        fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return -errno;

        if (fstat(fd, &st) < 0) {
                r = -errno;
                set_message(ret_message, "cannot stat %s: %s", path, strerror(-r));
                return r;
        }
        if (check_mode) {
                r = check_private(&st, path, false, ret_message);
                if (r < 0)
                        return r;
        } else if (!S_ISREG(st.st_mode)) {
                set_message(ret_message, "%s is not a regular file", path);
                return -EINVAL;
        }

        r = read_key_fd(fd, c->key);
        if (r == -EBADMSG)
                set_message(ret_message,
                            "%s must hold exactly %u random bytes (or %u hex digits); "
                            "make one with: head -c %u /dev/urandom >FILE",
                            path, STORE_MASTER_KEY_SIZE, 2 * STORE_MASTER_KEY_SIZE, STORE_MASTER_KEY_SIZE);
        else if (r < 0)
                set_message(ret_message, "cannot read %s: %s", path, strerror(-r));
        return r;
}

/* The key from the unit's credential: 0 loaded, -ENOENT when there is none. */
static int load_from_credential(const char *credentials_dir, StoreCipher *c, char **ret_message) {
        _cleanup_free_ char *path = NULL;
        int r;

        if (asprintf(&path, "%s/" STORE_CREDENTIAL_NAME, credentials_dir) < 0)
                return -ENOMEM;
        /* systemd made this directory and file private to the unit; the credential's mode is
         * systemd's business, not checked here. */
        r = load_from_file(path, false, c, ret_message);
        if (r < 0 && r != -ENOENT && ret_message && !*ret_message)
                set_message(ret_message, "cannot open credential %s: %s", path, strerror(-r));
        return r;
}

/* The key from STATE_DIR/store.key, made first if there is none. */
static int load_from_state_dir(const char *state_dir, StoreCipher *c, char **ret_message) {
        _cleanup_free_ char *path = NULL;
        int r;

        r = store_state_dir_prepare(state_dir, ret_message);
        if (r < 0)
                return r;
        if (asprintf(&path, "%s/" STORE_KEY_FILE_NAME, state_dir) < 0)
                return -ENOMEM;

        r = load_from_file(path, true, c, ret_message);
        if (r == -ENOENT) {
                r = create_key_file(state_dir, path, ret_message);
                if (r < 0)
                        return r;
                return load_from_file(path, true, c, ret_message);
        }
        if (r < 0 && ret_message && !*ret_message)
                set_message(ret_message, "cannot open %s: %s", path, strerror(-r));
        return r;
}

int store_cipher_load(const char *state_dir, const char *credentials_dir, StoreCipher **ret, char **ret_message) {
        _cleanup_(store_cipher_freep) StoreCipher *c = NULL;
        int r;

        if (!state_dir || !ret)
                return -EINVAL;

        r = cipher_new(&c);
        if (r < 0)
                return r;

        r = -ENOENT;
        if (credentials_dir && *credentials_dir)
                r = load_from_credential(credentials_dir, c, ret_message);
        if (r >= 0)
                c->source = "credential";
        else if (r == -ENOENT) {
                /* Other credentials but not ours (or none): the state directory's key file. */
                r = load_from_state_dir(state_dir, c, ret_message);
                if (r < 0)
                        return r;
                c->source = "file";
        } else
                return r;

        (void) sodium_mprotect_noaccess(c->key);
        *ret = TAKE_PTR(c);
        return 0;
}

int store_cipher_new_from_key(const uint8_t key[STORE_MASTER_KEY_SIZE], StoreCipher **ret) {
        StoreCipher *c;
        int r;

        if (!key || !ret)
                return -EINVAL;
        r = cipher_new(&c);
        if (r < 0)
                return r;
        memcpy(c->key, key, STORE_MASTER_KEY_SIZE);
        c->source = "caller";
        (void) sodium_mprotect_noaccess(c->key);
        *ret = c;
        return 0;
}

StoreCipher *store_cipher_free(StoreCipher *c) {
        if (!c)
                return NULL;
        if (c->key) {
                (void) sodium_mprotect_readwrite(c->key);
                sodium_free(c->key);
        }
        free(c);
        return NULL;
}

const char *store_cipher_source(const StoreCipher *c) {
        return c ? c->source : NULL;
}

static int make_ad(const char *id, uint8_t ad[sizeof(BLOB_AD_PREFIX) - 1 + BLOB_ID_MAX], size_t *ret_len) {
        size_t n;

        if (!id)
                return -EINVAL;
        n = strlen(id);
        if (n == 0 || n > BLOB_ID_MAX)
                return -EINVAL;
        memcpy(ad, BLOB_AD_PREFIX, sizeof(BLOB_AD_PREFIX) - 1);
        memcpy(ad + sizeof(BLOB_AD_PREFIX) - 1, id, n);
        *ret_len = sizeof(BLOB_AD_PREFIX) - 1 + n;
        return 0;
}

int store_cipher_seal(StoreCipher *c, const char *id, const CbSecret *plaintext, uint8_t **ret, size_t *ret_size) {
        uint8_t ad[sizeof(BLOB_AD_PREFIX) - 1 + BLOB_ID_MAX];
        const size_t header = 1 + crypto_aead_xchacha20poly1305_ietf_NPUBBYTES;
        _cleanup_free_ uint8_t *blob = NULL;
        unsigned long long clen = 0;
        size_t ad_len, size;
        int r;

        if (!c || !plaintext || !ret || !ret_size)
                return -EINVAL;
        r = make_ad(id, ad, &ad_len);
        if (r < 0)
                return r;
        if (plaintext->size > SECRET_SIZE_MAX)
                return -E2BIG;

        size = header + plaintext->size + crypto_aead_xchacha20poly1305_ietf_ABYTES;
        blob = malloc(size);
        if (!blob)
                return -ENOMEM;

        blob[0] = BLOB_VERSION;
        randombytes_buf(blob + 1, crypto_aead_xchacha20poly1305_ietf_NPUBBYTES);

        (void) sodium_mprotect_readonly(c->key);
        r = crypto_aead_xchacha20poly1305_ietf_encrypt(blob + header, &clen,
                                                       plaintext->data, plaintext->size,
                                                       ad, ad_len, NULL, blob + 1, c->key);
        (void) sodium_mprotect_noaccess(c->key);
        if (r != 0 || clen != plaintext->size + crypto_aead_xchacha20poly1305_ietf_ABYTES)
                return -EIO;

        *ret = TAKE_PTR(blob);
        *ret_size = size;
        return 0;
}

int store_cipher_open(StoreCipher *c, const char *id, const uint8_t *blob, size_t size, CbSecret **ret) {
        uint8_t ad[sizeof(BLOB_AD_PREFIX) - 1 + BLOB_ID_MAX];
        const size_t header = 1 + crypto_aead_xchacha20poly1305_ietf_NPUBBYTES;
        _cleanup_(secret_freep) CbSecret *plain = NULL;
        unsigned long long mlen = 0;
        size_t ad_len;
        int r;

        if (!c || !ret || (!blob && size > 0))
                return -EINVAL;
        r = make_ad(id, ad, &ad_len);
        if (r < 0)
                return r;
        if (size < header + crypto_aead_xchacha20poly1305_ietf_ABYTES || blob[0] != BLOB_VERSION)
                return -EBADMSG;

        r = secret_new(size - header - crypto_aead_xchacha20poly1305_ietf_ABYTES, &plain);
        if (r < 0)
                return r;

        (void) sodium_mprotect_readonly(c->key);
        r = crypto_aead_xchacha20poly1305_ietf_decrypt(plain->data, &mlen, NULL,
                                                       blob + header, size - header,
                                                       ad, ad_len, blob + 1, c->key);
        (void) sodium_mprotect_noaccess(c->key);
        if (r != 0 || mlen != plain->size)
                return -EBADMSG;

        *ret = TAKE_PTR(plain);
        return 0;
}
