/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * At-rest encryption of private keys held for requests.
 *
 * Master key: 32 random bytes, from
 *   1. $CREDENTIALS_DIRECTORY/certbroker-store-key when the daemon runs under systemd
 *      with LoadCredential=/LoadCredentialEncrypted= (raw 32 bytes, or 64 hex digits with
 *      an optional trailing newline), else
 *   2. STATE_DIR/store.key, created on first start with O_CREAT|O_EXCL|O_NOFOLLOW, mode
 *      0600, 32 bytes from randombytes_buf() and fsync()ed (file and directory). On every
 *      open it must be a regular file owned by the daemon's euid with no group/other
 *      permission bits, or it is refused.
 * The key lives in guarded memory kept PROT_NONE except while sealing/opening.
 *
 * Blobs: crypto_aead_xchacha20poly1305_ietf (XChaCha20-Poly1305), a fresh random 192-bit
 * nonce per blob, associated data "certbroker-key-v1:" + request id, so a blob copied onto
 * another request's row does not open. Layout: version byte 0x01 | nonce (24) | ciphertext
 * | tag (16).
 */

#include <stddef.h>
#include <stdint.h>

#include "secret-memory.h"

#define STORE_MASTER_KEY_SIZE 32U
#define STORE_CREDENTIAL_NAME "certbroker-store-key"
#define STORE_KEY_FILE_NAME "store.key"

typedef struct StoreCipher StoreCipher;

/* Make sure dir is a directory owned by the euid with no group/other permission bits,
 * creating it (mode 0700, parents must exist) when missing. A looser existing mode is
 * refused, not fixed: -EPERM with a message saying "chmod 0700 DIR". */
int store_state_dir_prepare(const char *dir, char **ret_message);

/* Load the master key as described above. credentials_dir may be NULL (no systemd
 * credentials: use the state directory's file). On failure returns -errno and, if
 * ret_message is given, a malloc()ed human message naming the file and the fix
 * (no secret in it). Errors: -EPERM key file or state dir has group/other bits or wrong
 * owner, -EBADMSG wrong size/format, -ENOENT credential directory without the credential,
 * other -errno from the file system. */
int store_cipher_load(const char *state_dir, const char *credentials_dir, StoreCipher **ret, char **ret_message);

/* A cipher from a caller-provided key (tests). */
int store_cipher_new_from_key(const uint8_t key[STORE_MASTER_KEY_SIZE], StoreCipher **ret);

/* Wipes the key. Accepts NULL, returns NULL. */
StoreCipher *store_cipher_free(StoreCipher *c);

/* Where the key came from: "credential" or "file" (for the startup log line). */
const char *store_cipher_source(const StoreCipher *c);

/* Encrypt plaintext bound to request id. *ret is malloc()ed (ciphertext is not secret). */
int store_cipher_seal(StoreCipher *c, const char *id, const CbSecret *plaintext, uint8_t **ret, size_t *ret_size);

/* Decrypt; -EBADMSG when the blob was tampered with, belongs to another id, or was sealed
 * under another master key. */
int store_cipher_open(StoreCipher *c, const char *id, const uint8_t *blob, size_t size, CbSecret **ret);

static inline void store_cipher_freep(StoreCipher **c) {
        if (c)
                *c = store_cipher_free(*c);
}
