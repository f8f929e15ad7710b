/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Guarded memory for secrets (challenge passwords, private key PEM, the store's
 * master key), over libsodium.
 *
 * A CbSecret's bytes live in sodium_malloc() memory: guard pages on both sides,
 * a canary, mlock()ed where the RLIMIT_MEMLOCK allows, excluded from core dumps
 * (MADV_DONTDUMP), and wiped by sodium_free(). The bytes are always followed by
 * one NUL byte (not counted in size) so PEM text can be handed to C string APIs
 * without a copy.
 *
 * Secrets that fit in one page (every PEM key up to RSA-4096, every challenge password) take
 * a block of a small reuse pool instead: a one-page sodium_malloc() region allocated once and
 * kept (still between guard pages, mlock()ed, out of core dumps), the secret's bytes placed at
 * its end so that they still touch the trailing guard page. Freeing wipes the bytes and
 * returns the block to the pool (at most SECRET_POOL_MAX blocks; more are given back to
 * libsodium), so the hot path does no mmap/mprotect/mlock/munmap per secret. The bytes before
 * the secret in its block stay zero; a secret freed with a non-zero byte there (a write
 * below its start) aborts, as sodium_free() does on a broken canary.
 *
 * secret_init() must run once before any other function here, and before any
 * thread is started: certbrokerd's main() calls it first thing; every unit test
 * that uses these modules calls it in its setup. It is idempotent.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "basic.h"

typedef struct CbSecret {
        uint8_t *data;  /* guarded, size + 1 bytes, data[size] == 0 */
        size_t size;
        void *block;    /* the sodium_malloc() pointer data lives in (data itself, or a pool block) */
        bool pooled;    /* block is a pool block of secret_pool_block_size() bytes */
        bool protected; /* protection changed from read-write since allocation */
} CbSecret;

/* Most blocks kept for reuse. */
#define SECRET_POOL_MAX 32

/* Largest secret we allocate: PEM of an RSA-4096 key is ~3.3 KiB; leave room. */
#define SECRET_SIZE_MAX ((size_t) 1024 * 1024)

/* Calls sodium_init() once. 0 on success, -EIO if libsodium cannot initialise. */
int secret_init(void);

/* A zero-filled secret of size bytes (size may be 0). -EINVAL if size > SECRET_SIZE_MAX,
 * -ENOMEM. */
int secret_new(size_t size, CbSecret **ret);

/* A secret holding a copy of data[0..size). The source is not wiped: do that yourself
 * (secret_erase()) if it was sensitive. */
int secret_new_copy(const void *data, size_t size, CbSecret **ret);

/* Wipes and frees. Accepts NULL, returns NULL. */
CbSecret *secret_free(CbSecret *s);
void secret_freep(CbSecret **s);

/* Page protection of the secret's bytes: after noaccess any touch faults (SIGSEGV), after
 * readonly writes fault. Returns 0 or -errno. */
int secret_protect_noaccess(CbSecret *s);
int secret_protect_readonly(CbSecret *s);
int secret_protect_readwrite(CbSecret *s);

/* Usable bytes of a pool block (the page size less libsodium's canary and some room); secrets
 * with size + 1 up to this come from the pool. */
size_t secret_pool_block_size(void);
/* Blocks in the pool now (for tests). */
size_t secret_pool_count(void);

/* Constant-time comparison of contents (sizes compared first, not secret). */
bool secret_equal(const CbSecret *a, const CbSecret *b);

/* Wipe ordinary memory that held a secret (sodium_memzero: never optimised away). */
void secret_erase(void *p, size_t size);

/* Wipe and free(3) a NUL-terminated string from the ordinary heap. Accepts NULL. */
char *secret_erase_and_free_string(char *s);
void secret_erase_and_free_stringp(char **s);
