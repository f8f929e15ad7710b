/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Fuzzes cb_subject_parse(): accepted subjects must format and parse back to the same thing,
 * and a CN that passes the guard must be under the suffix. */

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cb-names.h"
#include "cb-subject.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        if (size > 4096)
                return 0;
        char *s = malloc(size + 1);
        if (!s)
                return 0;
        memcpy(s, data, size);
        s[size] = 0;

        CbSubject *a = NULL, *b = NULL;
        char *t1 = NULL, *t2 = NULL;
        const char *why = NULL;
        int r = cb_subject_parse(s, &a, &why);
        if (r < 0) {
                if (r != -EINVAL || !why || a)
                        abort();
                goto finish;
        }
        if (a->n_rdns == 0 || a->n_rdns > CB_SUBJECT_RDNS_MAX)
                abort();
        if (cb_subject_format(a, &t1) < 0)
                goto finish;
        if (cb_subject_parse(t1, &b, &why) != 0)
                abort();
        if (cb_subject_format(b, &t2) < 0)
                goto finish;
        if (strcmp(t1, t2) != 0 || a->n_rdns != b->n_rdns)
                abort();
        for (size_t i = 0; i < a->n_rdns; i++)
                if (strcmp(a->rdns[i].type, b->rdns[i].type) != 0 || strcmp(a->rdns[i].value, b->rdns[i].value) != 0)
                        abort();
        if (cb_subject_check_cn(a, "example.com", &why) == 0 && a->cn && !cb_name_is_under_suffix(a->cn, "example.com"))
                abort();
finish:
        free(t1);
        free(t2);
        cb_subject_free(a);
        cb_subject_free(b);
        free(s);
        return 0;
}
