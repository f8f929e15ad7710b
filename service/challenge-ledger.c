/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "challenge-ledger.h"

#define LEDGER_ENTRIES_MAX 4096U        /* a line a challenge held at NDES: far more than any cache */
#define LEDGER_CA_MAX 128U
#define LEDGER_FILE_MAX ((size_t) LEDGER_ENTRIES_MAX * (LEDGER_CA_MAX + 48))

typedef struct Entry {
        char ca[LEDGER_CA_MAX + 1];
        uint64_t expires;
        uint64_t id;
} Entry;

struct ChallengeLedger {
        char *path;
        Entry *entries;
        size_t n;
        int last_error;
};

static bool ca_name_ok(const char *s) {
        size_t n = s ? strlen(s) : 0;

        if (n == 0 || n > LEDGER_CA_MAX)
                return false;
        for (size_t i = 0; i < n; i++)
                if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= '0' && s[i] <= '9') ||
                      s[i] == '-' || s[i] == '_' || s[i] == '.'))
                        return false;
        return true;
}

static void drop_expired(ChallengeLedger *l, uint64_t now) {
        size_t j = 0;

        for (size_t i = 0; i < l->n; i++)
                if (l->entries[i].expires > now)
                        l->entries[j++] = l->entries[i];
        l->n = j;
}

/* One line "CA EXPIRY ID"; false when it is not one. */
static bool parse_line(char *line, Entry *ret) {
        char *ca = strtok(line, " "), *exp = strtok(NULL, " "), *id = strtok(NULL, " "), *end;
        Entry e = {};

        if (!ca || !exp || !id || strtok(NULL, " ") || !ca_name_ok(ca))
                return false;
        errno = 0;
        e.expires = strtoull(exp, &end, 10);
        if (errno || *end || exp[0] == '-')
                return false;
        e.id = strtoull(id, &end, 10);
        if (errno || *end || id[0] == '-' || e.id == 0)
                return false;
        memcpy(e.ca, ca, strlen(ca) + 1);
        *ret = e;
        return true;
}

static int load(ChallengeLedger *l, uint64_t now) {
        char *buf = NULL;
        ssize_t n;
        int fd, r = 0;
        struct stat st;

        fd = open(l->path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
        if (fd < 0)
                return errno == ENOENT ? 0 : -errno;
        if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
                close(fd);
                return -EBADF;
        }
        buf = malloc(LEDGER_FILE_MAX + 1);
        if (!buf) {
                close(fd);
                return -ENOMEM;
        }
        n = read(fd, buf, LEDGER_FILE_MAX);
        close(fd);
        if (n < 0) {
                free(buf);
                return -errno;
        }
        buf[n] = 0;
        for (char *save = NULL, *line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
                Entry e;
                if (l->n >= LEDGER_ENTRIES_MAX)
                        break;
                if (!parse_line(line, &e)) {
                        r = -EBADMSG;   /* a line that is not ours: the rest is still used */
                        continue;
                }
                if (e.expires > now)
                        l->entries[l->n++] = e;
        }
        free(buf);
        return r;
}

static void save(ChallengeLedger *l, uint64_t now) {
        char tmp[4200];
        FILE *f;
        int fd;

        drop_expired(l, now);
        if (snprintf(tmp, sizeof tmp, "%s.tmp", l->path) >= (int) sizeof tmp) {
                l->last_error = -ENAMETOOLONG;
                return;
        }
        (void) unlink(tmp);
        fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0) {
                l->last_error = -errno;
                return;
        }
        f = fdopen(fd, "w");
        if (!f) {
                l->last_error = -errno;
                close(fd);
                (void) unlink(tmp);
                return;
        }
        for (size_t i = 0; i < l->n; i++)
                fprintf(f, "%s %" PRIu64 " %" PRIu64 "\n", l->entries[i].ca, l->entries[i].expires, l->entries[i].id);
        if (fflush(f) != 0 || ferror(f)) {
                l->last_error = -errno ?: -EIO;
                fclose(f);
                (void) unlink(tmp);
                return;
        }
        if (fclose(f) != 0) {
                l->last_error = -errno ?: -EIO;
                (void) unlink(tmp);
                return;
        }
        if (rename(tmp, l->path) < 0) {
                l->last_error = -errno;
                (void) unlink(tmp);
                return;
        }
        l->last_error = 0;
}

int challenge_ledger_open(const char *path, uint64_t now_real, ChallengeLedger **ret) {
        ChallengeLedger *l;
        int r;

        if (!path || !ret)
                return -EINVAL;
        l = calloc(1, sizeof *l);
        if (!l)
                return -ENOMEM;
        l->path = strdup(path);
        l->entries = calloc(LEDGER_ENTRIES_MAX, sizeof(Entry));
        if (!l->path || !l->entries) {
                challenge_ledger_free(l);
                return -ENOMEM;
        }
        r = load(l, now_real);
        *ret = l;
        return r;
}

ChallengeLedger *challenge_ledger_free(ChallengeLedger *l) {
        if (!l)
                return NULL;
        free(l->path);
        free(l->entries);
        free(l);
        return NULL;
}

uint64_t challenge_ledger_add(ChallengeLedger *l, const char *ca, uint64_t now_real, uint64_t expires_real) {
        uint64_t id;

        if (!l || !ca_name_ok(ca))
                return 0;
        drop_expired(l, now_real);
        if (l->n >= LEDGER_ENTRIES_MAX) {
                /* Not remembered: the oldest-ending entry makes room (it is the first to expire). */
                size_t oldest = 0;
                for (size_t i = 1; i < l->n; i++)
                        if (l->entries[i].expires < l->entries[oldest].expires)
                                oldest = i;
                l->entries[oldest] = l->entries[--l->n];
        }
        do
                randombytes_buf(&id, sizeof id);
        while (id == 0);
        Entry *e = &l->entries[l->n++];
        *e = (Entry) { .expires = expires_real, .id = id };
        memcpy(e->ca, ca, strlen(ca) + 1);
        save(l, now_real);
        return id;
}

void challenge_ledger_remove(ChallengeLedger *l, uint64_t id, uint64_t now_real) {
        if (!l || id == 0)
                return;
        for (size_t i = 0; i < l->n; i++)
                if (l->entries[i].id == id) {
                        l->entries[i] = l->entries[--l->n];
                        save(l, now_real);
                        return;
                }
}

size_t challenge_ledger_pending(const ChallengeLedger *l, const char *ca, uint64_t now_real, uint64_t *ret,
                                size_t max) {
        size_t n = 0;

        if (!l || !ca)
                return 0;
        for (size_t i = 0; i < l->n && (!ret || n < max); i++)
                if (l->entries[i].expires > now_real && strcmp(l->entries[i].ca, ca) == 0) {
                        if (ret)
                                ret[n] = l->entries[i].expires;
                        n++;
                }
        return n;
}

int challenge_ledger_last_error(const ChallengeLedger *l) {
        return l ? l->last_error : -EINVAL;
}
