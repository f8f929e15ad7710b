/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <errno.h>
#include <pthread.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "secret-memory.h"

/* The reuse pool (secret-memory.h): zeroed one-page blocks, shared by every thread. */
static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;
static void *pool[SECRET_POOL_MAX];
static size_t pool_n;

size_t secret_pool_block_size(void) {
        long page = sysconf(_SC_PAGESIZE);

        /* libsodium puts a 16-byte canary before the bytes; 64 leaves room for a larger one. */
        return (page > 0 ? (size_t) page : 4096) - 64;
}

size_t secret_pool_count(void) {
        size_t n;

        pthread_mutex_lock(&pool_lock);
        n = pool_n;
        pthread_mutex_unlock(&pool_lock);
        return n;
}

static void *pool_get(void) {
        void *b = NULL;

        pthread_mutex_lock(&pool_lock);
        if (pool_n > 0)
                b = pool[--pool_n];
        pthread_mutex_unlock(&pool_lock);
        if (b)
                return b;
        b = sodium_malloc(secret_pool_block_size());
        if (b)
                sodium_memzero(b, secret_pool_block_size());     /* sodium_malloc() fills with 0xdb */
        return b;
}

/* b is all zero and read-write. */
static void pool_put(void *b) {
        pthread_mutex_lock(&pool_lock);
        if (pool_n < SECRET_POOL_MAX) {
                pool[pool_n++] = b;
                b = NULL;
        }
        pthread_mutex_unlock(&pool_lock);
        sodium_free(b);         /* accepts NULL */
}

int secret_init(void) {
        /* 0: initialised now, 1: already initialised, -1: failure. */
        if (sodium_init() < 0)
                return -EIO;
        return 0;
}

int secret_new(size_t size, CbSecret **ret) {
        size_t bsize = secret_pool_block_size();
        CbSecret *s;

        if (!ret)
                return -EINVAL;
        if (size > SECRET_SIZE_MAX)
                return -EINVAL;

        s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;

        if (size + 1 <= bsize) {
                s->block = pool_get();
                s->pooled = true;
                /* At the block's end, against its trailing guard page, as sodium_malloc() does. */
                if (s->block)
                        s->data = (uint8_t *) s->block + (bsize - (size + 1));
        } else {
                s->block = sodium_malloc(size + 1);
                if (s->block)
                        sodium_memzero(s->block, size + 1);
                s->data = s->block;
        }
        if (!s->block) {
                free(s);
                return -ENOMEM;
        }
        s->size = size;

        *ret = s;
        return 0;
}

int secret_new_copy(const void *data, size_t size, CbSecret **ret) {
        CbSecret *s;
        int r;

        if (!data && size > 0)
                return -EINVAL;

        r = secret_new(size, &s);
        if (r < 0)
                return r;
        if (size > 0)
                memcpy(s->data, data, size);

        *ret = s;
        return 0;
}

CbSecret *secret_free(CbSecret *s) {
        if (!s)
                return NULL;

        if (s->block) {
                /* It may have been left PROT_NONE or read-only: the wipe and sodium_free()
                 * write to it. */
                if (s->protected)
                        (void) sodium_mprotect_readwrite(s->block);
                if (s->pooled) {
                        size_t below = (size_t) (s->data - (uint8_t *) s->block);

                        sodium_memzero(s->data, s->size + 1);
                        /* A write below the secret's start: a broken canary. */
                        if (!sodium_is_zero(s->block, below))
                                abort();
                        pool_put(s->block);
                } else
                        sodium_free(s->block);          /* wipes, checks the canary, unmaps */
        }
        free(s);
        return NULL;
}

void secret_freep(CbSecret **s) {
        if (s)
                *s = secret_free(*s);
}

int secret_protect_noaccess(CbSecret *s) {
        if (!s || !s->block)
                return -EINVAL;
        if (sodium_mprotect_noaccess(s->block) < 0)
                return -errno;
        s->protected = true;
        return 0;
}

int secret_protect_readonly(CbSecret *s) {
        if (!s || !s->block)
                return -EINVAL;
        if (sodium_mprotect_readonly(s->block) < 0)
                return -errno;
        s->protected = true;
        return 0;
}

int secret_protect_readwrite(CbSecret *s) {
        if (!s || !s->block)
                return -EINVAL;
        if (sodium_mprotect_readwrite(s->block) < 0)
                return -errno;
        s->protected = true;
        return 0;
}

bool secret_equal(const CbSecret *a, const CbSecret *b) {
        if (a == b)
                return true;
        if (!a || !b)
                return false;
        if (a->size != b->size)
                return false;
        if (a->size == 0)
                return true;
        return sodium_memcmp(a->data, b->data, a->size) == 0;
}

void secret_erase(void *p, size_t size) {
        if (p && size > 0)
                sodium_memzero(p, size);
}

char *secret_erase_and_free_string(char *s) {
        if (!s)
                return NULL;
        sodium_memzero(s, strlen(s));
        free(s);
        return NULL;
}

void secret_erase_and_free_stringp(char **s) {
        if (s)
                *s = secret_erase_and_free_string(*s);
}
