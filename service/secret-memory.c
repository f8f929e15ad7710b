/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <errno.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "secret-memory.h"

int secret_init(void) {
        /* 0: initialised now, 1: already initialised, -1: failure. */
        if (sodium_init() < 0)
                return -EIO;
        return 0;
}

int secret_new(size_t size, CbSecret **ret) {
        CbSecret *s;

        if (!ret)
                return -EINVAL;
        if (size > SECRET_SIZE_MAX)
                return -EINVAL;

        s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;

        s->data = sodium_malloc(size + 1);
        if (!s->data) {
                free(s);
                return -ENOMEM;
        }
        sodium_memzero(s->data, size + 1);
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

        if (s->data) {
                /* It may have been left PROT_NONE or read-only: sodium_free() needs to
                 * write the canary area and wipes the region itself. */
                (void) sodium_mprotect_readwrite(s->data);
                sodium_free(s->data);
        }
        free(s);
        return NULL;
}

void secret_freep(CbSecret **s) {
        if (s)
                *s = secret_free(*s);
}

int secret_protect_noaccess(CbSecret *s) {
        if (!s || !s->data)
                return -EINVAL;
        return sodium_mprotect_noaccess(s->data) < 0 ? -errno : 0;
}

int secret_protect_readonly(CbSecret *s) {
        if (!s || !s->data)
                return -EINVAL;
        return sodium_mprotect_readonly(s->data) < 0 ? -errno : 0;
}

int secret_protect_readwrite(CbSecret *s) {
        if (!s || !s->data)
                return -EINVAL;
        return sodium_mprotect_readwrite(s->data) < 0 ? -errno : 0;
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
