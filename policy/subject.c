/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "cb-names.h"
#include "cb-subject.h"
#include "util.h"

static const struct {
        const char *type;
        size_t max;
} attributes[] = {
        { "CN", 64 },
        { "O", 64 },
        { "OU", 64 },
        { "L", 128 },
        { "ST", 128 },
        { "C", 2 },
};

CbSubject *cb_subject_free(CbSubject *s) {
        if (!s)
                return NULL;
        for (size_t i = 0; i < s->n_rdns; i++) {
                free(s->rdns[i].type);
                free(s->rdns[i].value);
        }
        free(s->rdns);
        free(s);
        return NULL;
}

static void cb_subject_freep(CbSubject **s) {
        cb_subject_free(*s);
}

static int subject_add(CbSubject *s, const char *type, char *value) {
        if (s->n_rdns >= CB_SUBJECT_RDNS_MAX)
                return -E2BIG;
        char *t = strdup(type);
        if (!t)
                return -ENOMEM;
        CbSubjectRdn *n = realloc(s->rdns, (s->n_rdns + 1) * sizeof(CbSubjectRdn));
        if (!n) {
                free(t);
                return -ENOMEM;
        }
        s->rdns = n;
        s->rdns[s->n_rdns++] = (CbSubjectRdn) { .type = t, .value = value };
        if (strcmp(type, "CN") == 0)
                s->cn = value;
        return 0;
}

static int refuse(const char **ret_reason, const char *reason) {
        if (ret_reason)
                *ret_reason = reason;
        return -EINVAL;
}

int cb_subject_parse(const char *text, CbSubject **ret, const char **ret_reason) {
        _cleanup_(cb_subject_freep) CbSubject *s = NULL;
        int r;

        if (!text || !*text)
                return refuse(ret_reason, "is empty");
        size_t len = strlen(text);
        if (len > CB_SUBJECT_MAX)
                return refuse(ret_reason, "is longer than 1024 bytes");
        for (size_t i = 0; i < len; i++)
                if ((uint8_t) text[i] < 0x20 || text[i] == 0x7f)
                        return refuse(ret_reason, "contains a control character");
        if (!utf8_is_valid_n(text, len))
                return refuse(ret_reason, "is not valid UTF-8");

        s = calloc(1, sizeof(CbSubject));
        if (!s)
                return -ENOMEM;

        const char *p = text;
        for (;;) {
                while (*p == ' ')
                        p++;

                const char *type = p;
                while (ascii_isalpha(*p) || ascii_isdigit(*p) || *p == '.' || *p == '-')
                        p++;
                size_t type_len = p - type;
                if (type_len == 0)
                        return refuse(ret_reason, *p == 0 || *p == ',' ?
                                      "has an empty RDN (a leading, trailing or doubled ',')" :
                                      "has an RDN that does not start with an attribute type");
                while (*p == ' ')
                        p++;
                if (*p != '=')
                        return refuse(ret_reason, "has an RDN without '=' after the attribute type");
                p++;

                const char *canon = NULL;
                size_t max = 0;
                for (size_t i = 0; i < ELEMENTSOF(attributes); i++)
                        if (strlen(attributes[i].type) == type_len &&
                            strncasecmp(attributes[i].type, type, type_len) == 0) {
                                canon = attributes[i].type;
                                max = attributes[i].max;
                        }
                if (!canon)
                        return refuse(ret_reason,
                                      "has an attribute type other than CN, O, OU, L, ST and C");

                while (*p == ' ')
                        p++;
                if (*p == '#')
                        return refuse(ret_reason, "has a #hex value: give the value as text");

                /* The value, unescaped. It is never longer than the rest of the input. */
                _cleanup_free_ char *v = malloc(strlen(p) + 1);
                if (!v)
                        return -ENOMEM;
                size_t n = 0, keep = 0; /* keep: length without unescaped trailing spaces */
                for (;;) {
                        char c = *p;
                        if (c == 0 || c == ',')
                                break;
                        if (c == '\\') {
                                char e = p[1];
                                if (e && strchr("\"+,;<>\\#= ", e)) {
                                        v[n++] = e;
                                        p += 2;
                                } else if (ascii_isxdigit(e) && ascii_isxdigit(p[2])) {
                                        v[n++] = (char) (unhexchar(e) << 4 | unhexchar(p[2]));
                                        p += 3;
                                } else
                                        return refuse(ret_reason, "has an invalid escape ('\\' must be "
                                                      "followed by a special character or two hex digits)");
                                keep = n;
                                continue;
                        }
                        if (c == '+')
                                return refuse(ret_reason, "has a multi-valued RDN ('+'), which is not supported");
                        if (strchr("\";<>", c))
                                return refuse(ret_reason, "has an unescaped special character (one of \" ; < >)");
                        v[n++] = c;
                        p++;
                        if (c != ' ')
                                keep = n;
                }
                n = keep;
                v[n] = 0;

                if (n == 0)
                        return refuse(ret_reason, "has an empty attribute value");
                if (memchr(v, 0, n))
                        return refuse(ret_reason, "contains an escaped NUL byte");
                for (size_t i = 0; i < n; i++)
                        if ((uint8_t) v[i] < 0x20 || v[i] == 0x7f)
                                return refuse(ret_reason, "contains an escaped control character");
                if (!utf8_is_valid_n(v, n))
                        return refuse(ret_reason, "has escapes that do not form valid UTF-8");

                if (strcmp(canon, "C") == 0) {
                        if (n != 2 || !ascii_isalpha(v[0]) || !ascii_isalpha(v[1]))
                                return refuse(ret_reason, "has a C (country) that is not two letters (ISO 3166, e.g. C=DE)");
                        v[0] = ascii_toupper(v[0]);
                        v[1] = ascii_toupper(v[1]);
                } else if (n > max)
                        return refuse(ret_reason, strcmp(canon, "L") == 0 || strcmp(canon, "ST") == 0 ?
                                      "has an L or ST value longer than 128 bytes" :
                                      "has a CN, O or OU value longer than 64 bytes");

                if (strcmp(canon, "CN") == 0 && s->cn)
                        return refuse(ret_reason, "has more than one CN");

                r = subject_add(s, canon, v);
                if (r == -E2BIG)
                        return refuse(ret_reason, "has more than 16 RDNs");
                if (r < 0)
                        return r;
                TAKE_PTR(v);

                if (*p == 0)
                        break;
                p++;    /* ',' */
        }

        if (ret)
                *ret = TAKE_PTR(s);
        return 0;
}

int cb_subject_check_cn(CbSubject *s, const char *suffix, const char **ret_reason) {
        int r;

        if (!s || !s->cn)
                return 0;
        for (size_t i = 0; i < s->n_rdns; i++) {
                if (s->rdns[i].value != s->cn)
                        continue;
                char *n = NULL;
                r = cb_name_normalize(s->cn, strlen(s->cn), suffix, CB_NAME_ALLOW_WILDCARD, &n, ret_reason);
                if (r < 0)
                        return r;
                free(s->rdns[i].value);
                s->rdns[i].value = n;
                s->cn = n;
        }
        return 0;
}

int cb_subject_new_cn(const char *name, CbSubject **ret) {
        _cleanup_(cb_subject_freep) CbSubject *s = NULL;
        int r;

        if (!name)
                return -EINVAL;
        s = calloc(1, sizeof(CbSubject));
        if (!s)
                return -ENOMEM;
        char *v = strdup(name);
        if (!v)
                return -ENOMEM;
        r = subject_add(s, "CN", v);
        if (r < 0) {
                free(v);
                return r;
        }
        *ret = TAKE_PTR(s);
        return 0;
}

int cb_subject_format(const CbSubject *s, char **ret) {
        char *buf = NULL;
        size_t size = 0;

        if (!s)
                return -EINVAL;
        FILE *f = open_memstream(&buf, &size);
        if (!f)
                return -ENOMEM;
        for (size_t i = 0; i < s->n_rdns; i++) {
                const char *v = s->rdns[i].value;
                size_t n = strlen(v);
                fprintf(f, "%s%s=", i > 0 ? "," : "", s->rdns[i].type);
                for (size_t j = 0; j < n; j++) {
                        char c = v[j];
                        if (strchr("\"+,;<>\\", c) || (j == 0 && (c == '#' || c == ' ')) ||
                            (j == n - 1 && c == ' '))
                                fputc('\\', f);
                        fputc(c, f);
                }
        }
        if (fclose(f) != 0 || !buf) {
                free(buf);
                return -ENOMEM;
        }
        *ret = buf;
        return 0;
}
