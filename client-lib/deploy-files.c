/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The files of 'certbrokerctl deploy' (deploy-files.h): everything relative to directory
 * fds, O_NOFOLLOW everywhere, new files with O_EXCL, fsync before every rename. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "basic.h"
#include "cli-util.h"
#include "deploy-files.h"

int deploy_why(char **ret_why, int r, const char *format, ...) {
        va_list ap;

        if (!ret_why)
                return r;
        free(*ret_why);
        va_start(ap, format);
        *ret_why = cli_vformat(format, ap);
        va_end(ap);
        return r;
}

static bool is_hex_lower(const char *s, size_t len) {
        if (!s || strlen(s) != len)
                return false;
        for (size_t i = 0; i < len; i++)
                if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
                        return false;
        return true;
}

bool deploy_id_is_valid(const char *id) {
        return is_hex_lower(id, 16);
}

int deploy_intent_new(char ret[static DEPLOY_INTENT_LEN + 1]) {
        unsigned char raw[DEPLOY_INTENT_LEN / 2];
        size_t done = 0;

        while (done < sizeof raw) {
                ssize_t n = getrandom(raw + done, sizeof raw - done, 0);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                done += (size_t) n;
        }
        for (size_t i = 0; i < sizeof raw; i++)
                snprintf(ret + 2 * i, 3, "%02x", raw[i]);
        ret[DEPLOY_INTENT_LEN] = 0;
        return 0;
}

int deploy_intent_label(const char *user_label, const char *token, char **ret_label) {
        char *s;

        if (!is_hex_lower(token, DEPLOY_INTENT_LEN))
                return -EINVAL;
        if (user_label && *user_label) {
                if (strlen(user_label) > DEPLOY_USER_LABEL_MAX)
                        return -E2BIG;
                if (asprintf(&s, "%s " DEPLOY_LABEL_TAG "%s", user_label, token) < 0)
                        return -ENOMEM;
        } else if (asprintf(&s, DEPLOY_LABEL_TAG "%s", token) < 0)
                return -ENOMEM;
        *ret_label = s;
        return 0;
}

int deploy_parse_timeout(const char *s, uint64_t *ret_usec) {
        static const struct {
                const char *suffix;
                uint64_t factor;
        } units[] = { { "", 1 }, { "s", 1 }, { "min", 60 }, { "h", 3600 } };
        char num[32];
        uint64_t usec;
        size_t n;

        if (!s || !*s)
                return -EINVAL;
        if (strcmp(s, "infinity") == 0) {
                *ret_usec = 0;
                return 0;
        }
        /* The number as --timeout takes it (cli_parse_seconds()), then a unit. */
        n = strspn(s, "0123456789.");
        if (n == 0 || n >= sizeof num)
                return -EINVAL;
        memcpy(num, s, n);
        num[n] = 0;
        for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
                if (strcmp(s + n, units[i].suffix) != 0)
                        continue;
                if (cli_parse_seconds(num, &usec) < 0 || usec > 1000000000ULL * 1000000ULL)
                        return -EINVAL;         /* over 31 years: surely a mistake */
                *ret_usec = usec * units[i].factor;
                return 0;
        }
        return -EINVAL;
}

/* ---- the directory ---- */

static bool writable_by_others(const struct stat *st) {
        return (st->st_mode & (S_IWGRP | S_IWOTH)) != 0;
}

int deploy_dir_open(const char *path, uid_t uid, int *ret_fd, char **ret_why) {
        _cleanup_free_ char *copy = NULL;
        _cleanup_close_ int fd = -1;
        struct stat st;
        int r;

        if (!path || path[0] != '/')
                return deploy_why(ret_why, -EINVAL, "the directory '%s' is not an absolute path", path ?: "");
        fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0) {
                r = -errno;
                if (r == -ELOOP || r == -ENOTDIR) {
                        if (lstat(path, &st) == 0 && S_ISLNK(st.st_mode))
                                return deploy_why(ret_why, -ELOOP, "'%s' is a symbolic link: give the real directory", path);
                        return deploy_why(ret_why, -ENOTDIR, "'%s' is not a directory", path);
                }
                return deploy_why(ret_why, r, "cannot open the directory '%s': %s", path, strerror(-r));
        }
        if (fstat(fd, &st) < 0) {
                r = -errno;
                return deploy_why(ret_why, r, "cannot stat '%s': %s", path, strerror(-r));
        }
        if (st.st_uid != uid)
                return deploy_why(ret_why, -EPERM, "'%s' is owned by uid %u, not by the deploying user (uid %u): "
                           "chown it to that user", path, (unsigned) st.st_uid, (unsigned) uid);
        if (writable_by_others(&st))
                return deploy_why(ret_why, -EPERM, "'%s' is writable by its group or others (mode %04o): "
                           "chmod go-w it, so that nobody else can plant files in it", path,
                           (unsigned) (st.st_mode & 07777));
        /* Whoever can write a directory above can rename DIR away and put another in its place. */
        copy = strdup(path);
        if (!copy)
                return -ENOMEM;
        for (char *slash = strrchr(copy, '/'); slash; slash = strrchr(copy, '/')) {
                *slash = 0;
                const char *up = *copy ? copy : "/";
                if (stat(up, &st) < 0) {
                        r = -errno;
                        return deploy_why(ret_why, r, "cannot stat '%s': %s", up, strerror(-r));
                }
                if ((st.st_uid != 0 && st.st_uid != uid) ||
                    (writable_by_others(&st) && !(st.st_mode & S_ISVTX)))
                        return deploy_why(ret_why, -EPERM, "'%s', above '%s', is owned by uid %u or writable by "
                                          "others (mode %04o): others could replace the deployment directory",
                                          up, path, (unsigned) st.st_uid, (unsigned) (st.st_mode & 07777));
                if (!*copy)
                        break;
        }
        *ret_fd = TAKE_FD(fd);
        return 0;
}

int deploy_fsync_dir(int dfd) {
        return fsync(dfd) < 0 ? -errno : 0;
}

int deploy_write_file(int dfd, const char *name, const char *data, mode_t mode) {
        return deploy_write_data(dfd, name, data, strlen(data), mode);
}

int deploy_write_data(int dfd, const char *name, const void *data, size_t n, mode_t mode) {
        char tmp[256];
        size_t done = 0;
        int fd, r = 0;

        if ((size_t) snprintf(tmp, sizeof tmp, "%s.tmp", name) >= sizeof tmp)
                return -ENAMETOOLONG;
        /* A leftover of a crash, or something planted: unlinkat() removes a symlink itself. */
        if (unlinkat(dfd, tmp, 0) < 0 && errno != ENOENT)
                return -errno;
        fd = openat(dfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
        if (fd < 0)
                return -errno;
        if (fchmod(fd, mode) < 0)
                r = -errno;
        while (r == 0 && done < n) {
                ssize_t k = write(fd, (const char *) data + done, n - done);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        r = -errno;
                } else
                        done += (size_t) k;
        }
        if (r == 0 && fsync(fd) < 0)
                r = -errno;
        if (close(fd) < 0 && r == 0)
                r = -errno;
        if (r == 0 && renameat(dfd, tmp, dfd, name) < 0)
                r = -errno;
        if (r < 0)
                (void) unlinkat(dfd, tmp, 0);
        return r;
}

/* ---- the state file ---- */

/* The state file's text (it may hold a seal= secret), wiped when it leaves scope. */
typedef char StateText[DEPLOY_STATE_MAX + 1];

static void state_text_erase(StateText *t) {
        explicit_bzero(*t, sizeof *t);
}

static void deploy_state_erase(DeployState *s) {
        explicit_bzero(s, sizeof *s);
}

int deploy_state_parse(const char *text, size_t size, DeployState *ret, char **ret_why) {
        _cleanup_(deploy_state_erase) DeployState s = {};
        _cleanup_(state_text_erase) StateText buf;

        if (size > DEPLOY_STATE_MAX)
                return deploy_why(ret_why, -EBADMSG, "%s is larger than %u bytes: not ours", DEPLOY_STATE_FILE,
                           DEPLOY_STATE_MAX);
        if (memchr(text, 0, size))
                return deploy_why(ret_why, -EBADMSG, "%s holds a NUL byte: not ours", DEPLOY_STATE_FILE);
        memcpy(buf, text, size);
        buf[size] = 0;
        for (char *line = buf, *next; line && *line; line = next) {
                next = strchr(line, '\n');
                if (next)
                        *next++ = 0;
                char *slot = NULL;
                const char *v = NULL;
                if (strncmp(line, "request=", 8) == 0)
                        slot = s.request, v = line + 8;
                else if (strncmp(line, "reloaded=", 9) == 0)
                        slot = s.reloaded, v = line + 9;
                else if (strncmp(line, "intent=", 7) == 0) {
                        v = line + 7;
                        if (*v && !is_hex_lower(v, DEPLOY_INTENT_LEN))
                                return deploy_why(ret_why, -EBADMSG, "%s: unexpected line '%.60s' (intent= is %u "
                                        "hex digits)", DEPLOY_STATE_FILE, line, DEPLOY_INTENT_LEN);
                        strcpy(s.intent, v);
                        continue;
                } else if (strncmp(line, "seal=", 5) == 0) {
                        /* Not quoted in the message: the line holds a secret. */
                        char *id = line + 5, *sp = strchr(id, ' ');
                        if (sp)
                                *sp = 0;
                        if (!sp || !deploy_id_is_valid(id) || !is_hex_lower(sp + 1, DEPLOY_SEAL_SECRET_LEN))
                                return deploy_why(ret_why, -EBADMSG, "%s: malformed seal= line (seal=ID and %u hex "
                                        "digits)", DEPLOY_STATE_FILE, DEPLOY_SEAL_SECRET_LEN);
                        strcpy(s.seal_request, id);
                        strcpy(s.seal_secret, sp + 1);
                        continue;
                } else if (*line == 0 || *line == '#')
                        continue;
                if (!slot || (*v && !deploy_id_is_valid(v)))
                        return deploy_why(ret_why, -EBADMSG, "%s: unexpected line '%.60s' (expected request=ID and "
                                "reloaded=ID)", DEPLOY_STATE_FILE, line);
                strcpy(slot, v);
        }
        if (!*s.request && *s.reloaded)
                return deploy_why(ret_why, -EBADMSG, "%s names no request", DEPLOY_STATE_FILE);
        *ret = s;
        return 0;
}

int deploy_state_read(int dfd, uid_t uid, DeployState *ret, char **ret_why) {
        _cleanup_(state_text_erase) StateText buf;
        _cleanup_close_ int fd = -1;
        struct stat st;
        ssize_t n;
        int r;

        fd = openat(dfd, DEPLOY_STATE_FILE, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
        if (fd < 0) {
                if (errno == ENOENT) {
                        *ret = (DeployState) {};
                        return 0;
                }
                r = -errno;
                if (r == -ELOOP)
                        return deploy_why(ret_why, r, "%s is a symbolic link: refusing it (remove it)", DEPLOY_STATE_FILE);
                return deploy_why(ret_why, r, "cannot open %s: %s", DEPLOY_STATE_FILE, strerror(-r));
        }
        if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_uid != uid)
                return deploy_why(ret_why, -EBADMSG, "%s is not a regular file of the deploying user: refusing it",
                           DEPLOY_STATE_FILE);
        n = read(fd, buf, sizeof buf);
        if (n < 0) {
                r = -errno;
                return deploy_why(ret_why, r, "cannot read %s: %s", DEPLOY_STATE_FILE, strerror(-r));
        }
        return deploy_state_parse(buf, (size_t) n, ret, ret_why);
}

int deploy_state_write(int dfd, const DeployState *state) {
        char buf[512];
        int r;

        snprintf(buf, sizeof buf,
                 "# written by certbrokerctl deploy: the renewal chain this directory follows\n"
                 "request=%s\nreloaded=%s\n%s%s%s%s%s%s%s", state->request, state->reloaded,
                 *state->intent ? "intent=" : "", state->intent, *state->intent ? "\n" : "",
                 *state->seal_request ? "seal=" : "", state->seal_request, *state->seal_request ? " " : "",
                 *state->seal_request ? state->seal_secret : "");
        if (*state->seal_request)
                strcat(buf, "\n");
        r = deploy_write_file(dfd, DEPLOY_STATE_FILE, buf, 0600);
        explicit_bzero(buf, sizeof buf);
        if (r < 0)
                return r;
        return deploy_fsync_dir(dfd);
}

/* ---- the receiver key of a sealed key hand-off ---- */

int deploy_seal_new(DeployState *state, const char *id) {
        unsigned char pk[crypto_box_PUBLICKEYBYTES], sk[crypto_box_SECRETKEYBYTES];

        if (!deploy_id_is_valid(id))
                return -EINVAL;
        if (sodium_init() < 0)
                return -EIO;
        crypto_box_keypair(pk, sk);
        sodium_bin2hex(state->seal_secret, sizeof state->seal_secret, sk, sizeof sk);
        sodium_memzero(sk, sizeof sk);
        snprintf(state->seal_request, sizeof state->seal_request, "%s", id);
        return 0;
}

static int seal_secret(const DeployState *state, unsigned char sk[static crypto_box_SECRETKEYBYTES]) {
        size_t n = 0;

        if (!*state->seal_request ||
            sodium_hex2bin(sk, crypto_box_SECRETKEYBYTES, state->seal_secret, strlen(state->seal_secret), NULL,
                           &n, NULL) != 0 || n != crypto_box_SECRETKEYBYTES)
                return -EINVAL;
        return 0;
}

int deploy_seal_public(const DeployState *state, uint8_t ret_public[static 32]) {
        unsigned char sk[crypto_box_SECRETKEYBYTES];
        int r;

        if (sodium_init() < 0)
                return -EIO;
        r = seal_secret(state, sk);
        if (r >= 0 && crypto_scalarmult_base(ret_public, sk) != 0)
                r = -EINVAL;
        sodium_memzero(sk, sizeof sk);
        return r;
}

int deploy_seal_open(const DeployState *state, const uint8_t *sealed, size_t size, char **ret_pem) {
        unsigned char sk[crypto_box_SECRETKEYBYTES], pk[crypto_box_PUBLICKEYBYTES];
        char *pem;
        size_t n;
        int r;

        if (sodium_init() < 0)
                return -EIO;
        if (size <= crypto_box_SEALBYTES || size > 64U * 1024U)
                return -EBADMSG;
        r = seal_secret(state, sk);
        if (r < 0)
                return r;
        crypto_scalarmult_base(pk, sk);
        n = size - crypto_box_SEALBYTES;
        pem = malloc(n + 1);
        if (!pem) {
                sodium_memzero(sk, sizeof sk);
                return -ENOMEM;
        }
        r = crypto_box_seal_open((unsigned char *) pem, sealed, size, pk, sk) == 0 ? 0 : -EBADMSG;
        sodium_memzero(sk, sizeof sk);
        pem[n] = 0;
        if (r == 0 && (memchr(pem, 0, n) || strncmp(pem, "-----BEGIN ", 11) != 0))
                r = -EBADMSG;
        if (r < 0) {
                explicit_bzero(pem, n + 1);
                free(pem);
                return r;
        }
        *ret_pem = pem;
        return 0;
}

void deploy_seal_clear(DeployState *state) {
        sodium_memzero(state->seal_secret, sizeof state->seal_secret);
        state->seal_request[0] = 0;
}

/* ---- generations and the live link ---- */

int deploy_live_read(int dfd, char ret_id[static 17], char **ret_why) {
        char target[64];
        struct stat st;
        ssize_t n;

        if (fstatat(dfd, DEPLOY_LIVE, &st, AT_SYMLINK_NOFOLLOW) < 0)
                return -errno;
        if (!S_ISLNK(st.st_mode))
                return deploy_why(ret_why, -EBADMSG, "'%s' in the directory is not the symbolic link deploy makes: "
                           "refusing to replace it (remove it)", DEPLOY_LIVE);
        n = readlinkat(dfd, DEPLOY_LIVE, target, sizeof target - 1);
        if (n < 0)
                return -errno;
        target[n] = 0;
        if (strncmp(target, DEPLOY_GEN_PREFIX, strlen(DEPLOY_GEN_PREFIX)) != 0 ||
            !deploy_id_is_valid(target + strlen(DEPLOY_GEN_PREFIX)))
                return deploy_why(ret_why, -EBADMSG, "'%s' points to '%.60s', not to a generation gen-<id> of this "
                           "directory: refusing to replace it (remove it)", DEPLOY_LIVE, target);
        strcpy(ret_id, target + strlen(DEPLOY_GEN_PREFIX));
        return 0;
}

int deploy_generation_open(int dfd, uid_t uid, const char *id, bool create, int *ret_gfd,
                           bool *ret_created, char **ret_why) {
        _cleanup_close_ int fd = -1;
        char name[64];
        struct stat st;
        bool created = false;
        int r;

        if (!deploy_id_is_valid(id))
                return -EINVAL;
        snprintf(name, sizeof name, DEPLOY_GEN_PREFIX "%s", id);
        if (create) {
                if (mkdirat(dfd, name, 0750) == 0)
                        created = true;
                else if (errno != EEXIST)
                        return deploy_why(ret_why, -errno, "cannot create %s: %s", name, strerror(errno));
        }
        fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0) {
                r = -errno;
                if (r == -ELOOP || r == -ENOTDIR)
                        return deploy_why(ret_why, r, "%s in the directory is not a directory (a symbolic link or "
                                   "a file someone put there): refusing it", name);
                return r == -ENOENT ? r : deploy_why(ret_why, r, "cannot open %s: %s", name, strerror(-r));
        }
        if (fstat(fd, &st) < 0 || st.st_uid != uid || writable_by_others(&st))
                return deploy_why(ret_why, -EPERM, "%s is not a directory of the deploying user, or is writable by "
                           "others: refusing it", name);
        if (created && fchmod(fd, 0750) < 0)
                return -errno;
        *ret_gfd = TAKE_FD(fd);
        if (ret_created)
                *ret_created = created;
        return 0;
}

bool deploy_generation_has_key(int gfd) {
        struct stat st;
        return fstatat(gfd, "key.pem", &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode) && st.st_size > 0;
}

int deploy_live_swap(int dfd, const char *id) {
        char target[64], tmp[] = DEPLOY_LIVE ".tmp";

        if (!deploy_id_is_valid(id))
                return -EINVAL;
        snprintf(target, sizeof target, DEPLOY_GEN_PREFIX "%s", id);
        if (unlinkat(dfd, tmp, 0) < 0 && errno != ENOENT)
                return -errno;
        if (symlinkat(target, dfd, tmp) < 0)
                return -errno;
        if (renameat(dfd, tmp, dfd, DEPLOY_LIVE) < 0) {
                int r = -errno;
                (void) unlinkat(dfd, tmp, 0);
                return r;
        }
        return deploy_fsync_dir(dfd);
}

DEFINE_POINTER_CLEANUP(DIR, closedir);

/* dfd/name as a directory stream (never through a symbolic link). */
static int opendir_at(int dfd, const char *name, DIR **ret) {
        _cleanup_close_ int fd = -1;
        DIR *d;

        fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        d = fdopendir(fd);
        if (!d)
                return -errno;
        TAKE_FD(fd);    /* the stream's now */
        *ret = d;
        return 0;
}

static int remove_generation(int dfd, const char *name) {
        _cleanup_(closedirp) DIR *d = NULL;
        struct dirent *de;
        int r;

        r = opendir_at(dfd, name, &d);
        if (r < 0)
                return r;
        while ((de = readdir(d)))
                if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
                        (void) unlinkat(dirfd(d), de->d_name, 0);
        closedir(TAKE_PTR(d));
        return unlinkat(dfd, name, AT_REMOVEDIR) < 0 ? -errno : 0;
}

typedef struct Generation {
        char name[256];
        struct timespec mtime;
} Generation;

static int generation_newer_first(const void *a, const void *b) {
        const Generation *x = a, *y = b;
        if (x->mtime.tv_sec != y->mtime.tv_sec)
                return x->mtime.tv_sec < y->mtime.tv_sec ? 1 : -1;
        if (x->mtime.tv_nsec != y->mtime.tv_nsec)
                return x->mtime.tv_nsec < y->mtime.tv_nsec ? 1 : -1;
        return strcmp(x->name, y->name);
}

int deploy_prune(int dfd, const char *live_id, unsigned keep) {
        _cleanup_free_ Generation *l = NULL;
        _cleanup_(closedirp) DIR *d = NULL;
        size_t n = 0;
        char live[64];
        struct dirent *de;
        int r, removed = 0;

        snprintf(live, sizeof live, DEPLOY_GEN_PREFIX "%s", live_id ?: "");
        r = opendir_at(dfd, ".", &d);
        if (r < 0)
                return r;
        while ((de = readdir(d))) {
                struct stat st;
                Generation *a;

                if (strncmp(de->d_name, DEPLOY_GEN_PREFIX, strlen(DEPLOY_GEN_PREFIX)) != 0 ||
                    !deploy_id_is_valid(de->d_name + strlen(DEPLOY_GEN_PREFIX)) ||
                    strcmp(de->d_name, live) == 0)
                        continue;
                if (fstatat(dfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISDIR(st.st_mode))
                        continue;
                a = realloc(l, (n + 1) * sizeof(*l));
                if (!a)
                        break;
                l = a;
                snprintf(l[n].name, sizeof l[n].name, "%s", de->d_name);
                l[n].mtime = st.st_mtim;
                n++;
        }
        closedir(TAKE_PTR(d));
        if (n > 1)
                qsort(l, n, sizeof(*l), generation_newer_first);
        /* The live one counts as one of those kept. */
        for (size_t k = keep > 0 ? keep - 1 : 0; k < n; k++)
                if (remove_generation(dfd, l[k].name) == 0)
                        removed++;
        return removed;
}

/* ---- deploy.d configuration ---- */

void deploy_config_done(DeployConfig *c) {
        if (!c)
                return;
        free(c->user);
        free(c->dir);
        free(c->reload);
        free(c->ca);
        free(c->subject);
        free(c->key_type);
        free(c->usage);
        free(c->label);
        free(c->reload_timeout);
        free(c->identity);
        free(c->format);
        free(c->passphrase_file);
        free(c->passphrase_credential);
        free(c->nssdb);
        free(c->nickname);
        for (size_t i = 0; i < c->n_dns; i++)
                free(c->dns[i]);
        free(c->dns);
        *c = (DeployConfig) {};
}

static char *strip(char *s) {
        char *e;
        while (*s == ' ' || *s == '\t')
                s++;
        e = s + strlen(s);
        while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r'))
                *--e = 0;
        return s;
}

int deploy_config_parse(const char *text, DeployConfig *ret, char **ret_why) {
        static const struct {
                const char *key;
                size_t offset;
        } keys[] = {
                { "User",    offsetof(DeployConfig, user) },
                { "Dir",     offsetof(DeployConfig, dir) },
                { "Reload",  offsetof(DeployConfig, reload) },
                { "CA",      offsetof(DeployConfig, ca) },
                { "Subject", offsetof(DeployConfig, subject) },
                { "KeyType", offsetof(DeployConfig, key_type) },
                { "Usage",   offsetof(DeployConfig, usage) },
                { "Label",   offsetof(DeployConfig, label) },
                { "ReloadTimeout", offsetof(DeployConfig, reload_timeout) },
                { "Identity", offsetof(DeployConfig, identity) },
                { "Format",  offsetof(DeployConfig, format) },
                { "PassphraseFile", offsetof(DeployConfig, passphrase_file) },
                { "PassphraseCredential", offsetof(DeployConfig, passphrase_credential) },
                { "NSSDB",   offsetof(DeployConfig, nssdb) },
                { "Nickname", offsetof(DeployConfig, nickname) },
        };
        DeployConfig c = {};
        char *copy, *line, *next;
        unsigned lineno = 0;
        int r = 0;

        copy = strdup(text ?: "");
        c.dns = calloc(1, sizeof(char *));
        if (!copy || !c.dns) {
                free(copy);
                free(c.dns);
                return -ENOMEM;
        }
        for (line = copy; line && r == 0; line = next) {
                char *eq, *key, *value;
                bool known = false;

                lineno++;
                next = strchr(line, '\n');
                if (next)
                        *next++ = 0;
                line = strip(line);
                if (*line == 0 || *line == '#' || *line == ';')
                        continue;
                eq = strchr(line, '=');
                if (!eq) {
                        r = deploy_why(ret_why, -EINVAL, "line %u: expected KEY=VALUE, got '%.60s'", lineno, line);
                        break;
                }
                *eq = 0;
                key = strip(line);
                value = strip(eq + 1);
                if (strcmp(key, "DNS") == 0) {
                        known = true;
                        for (char *tok = strtok(value, " \t"); tok; tok = strtok(NULL, " \t")) {
                                char **a;
                                if (c.n_dns >= DEPLOY_CONFIG_DNS_MAX) {
                                        r = deploy_why(ret_why, -EINVAL, "line %u: more than %u DNS names", lineno,
                                                DEPLOY_CONFIG_DNS_MAX);
                                        break;
                                }
                                a = realloc(c.dns, (c.n_dns + 2) * sizeof(char *));
                                if (!a) {
                                        r = -ENOMEM;
                                        break;
                                }
                                c.dns = a;
                                c.dns[c.n_dns] = strdup(tok);
                                if (!c.dns[c.n_dns]) {
                                        r = -ENOMEM;
                                        break;
                                }
                                c.dns[++c.n_dns] = NULL;
                        }
                        continue;
                }
                for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++)
                        if (strcmp(key, keys[k].key) == 0) {
                                char **slot = (char **) ((char *) &c + keys[k].offset);
                                known = true;
                                if (*slot) {
                                        r = deploy_why(ret_why, -EINVAL, "line %u: %s= given twice", lineno, key);
                                        break;
                                }
                                if (!*value) {
                                        r = deploy_why(ret_why, -EINVAL, "line %u: %s= is empty", lineno, key);
                                        break;
                                }
                                *slot = strdup(value);
                                if (!*slot)
                                        r = -ENOMEM;
                                break;
                        }
                if (r == 0 && !known)
                        r = deploy_why(ret_why, -EINVAL, "line %u: unknown key '%.40s' (known: User Dir Reload "
                                "ReloadTimeout CA DNS Subject KeyType Usage Label Identity Format PassphraseFile "
                                "PassphraseCredential NSSDB Nickname)", lineno, key);
        }
        free(copy);
        if (r == 0 && !c.dir)
                r = deploy_why(ret_why, -EINVAL, "Dir= is missing: the directory to deploy into");
        if (r == 0 && c.dir[0] != '/')
                r = deploy_why(ret_why, -EINVAL, "Dir=%s is not an absolute path", c.dir);
        if (r == 0 && c.reload_timeout) {
                uint64_t usec;
                if (deploy_parse_timeout(c.reload_timeout, &usec) < 0)
                        r = deploy_why(ret_why, -EINVAL, "ReloadTimeout=%.40s: expected seconds (60, 2.5, 90s, 5min, "
                                "1h; 0 or infinity: none)", c.reload_timeout);
        }
        if (r == 0 && c.label && strlen(c.label) > DEPLOY_USER_LABEL_MAX)
                r = deploy_why(ret_why, -EINVAL, "Label= is longer than %u bytes (the rest of Enroll's 128 carries "
                        "the deployment's token)", (unsigned) DEPLOY_USER_LABEL_MAX);
        if (r == 0 && c.identity && strcmp(c.identity, "self") != 0)
                r = deploy_why(ret_why, -EINVAL, "Identity=%.40s: the only identity is self (the user's own)", c.identity);
        if (r == 0 && c.identity && (c.n_dns > 0 || c.subject))
                r = deploy_why(ret_why, -EINVAL, "Identity=self takes no DNS= or Subject=: the broker derives the "
                        "subject and the UPN from the user's account");
        if (r == 0 && c.n_dns == 0 && !c.subject && !c.identity)
                r = deploy_why(ret_why, -EINVAL, "DNS= (or Subject=, or Identity=self) is missing: the names of the "
                        "certificate");
        if (r == 0) {
                DeployOutputs o = {
                        .passphrase_file = c.passphrase_file, .passphrase_credential = c.passphrase_credential,
                        .nssdb = c.nssdb, .nickname = c.nickname,
                };
                r = deploy_outputs_check(c.format, &o, true, ret_why);
        }
        if (r < 0) {
                deploy_config_done(&c);
                return r;
        }
        *ret = c;
        return 0;
}

/* ---- output formats ---- */

int deploy_format_parse(const char *list, unsigned *ret_formats, char **ret_why) {
        static const struct {
                const char *name;
                unsigned bit;
        } names[] = {
                { "pem", DEPLOY_FORMAT_PEM },
                { "pkcs12", DEPLOY_FORMAT_PKCS12 },
                { "nssdb", DEPLOY_FORMAT_NSSDB },
        };
        unsigned formats = 0;
        const char *p = list;

        if (!list)
                return deploy_why(ret_why, -EINVAL, "no format given (known: pem pkcs12 nssdb)");
        for (;;) {
                size_t n;
                bool known = false;

                p += strspn(p, " \t,");
                if (!*p)
                        break;
                n = strcspn(p, " \t,");
                for (size_t k = 0; k < sizeof names / sizeof names[0]; k++)
                        if (strlen(names[k].name) == n && strncmp(p, names[k].name, n) == 0) {
                                formats |= names[k].bit;
                                known = true;
                        }
                if (!known)
                        return deploy_why(ret_why, -EINVAL, "unknown format '%.*s' (known: pem pkcs12 nssdb)",
                                   (int) (n > 40 ? 40 : n), p);
                p += n;
        }
        if (formats == 0)
                return deploy_why(ret_why, -EINVAL, "no format given (known: pem pkcs12 nssdb)");
        /* The PEM files are the generation itself: every other format is made from them. */
        *ret_formats = formats | DEPLOY_FORMAT_PEM;
        return 0;
}

bool deploy_credential_name_is_valid(const char *name) {
        if (!name || !*name || strlen(name) > 255 || strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
                return false;
        for (const char *p = name; *p; p++)
                if (*p == '/' || (unsigned char) *p < 0x20 || *p == 0x7f)
                        return false;
        return true;
}

bool deploy_nickname_is_valid(const char *name) {
        if (!name || !*name || strlen(name) > 64)
                return false;
        /* certutil -n, keytool -alias and a PKCS#12 friendly name: printable ASCII, no ':'
         * (NSS reads "token:nickname"). */
        for (const char *p = name; *p; p++)
                if (*p < 0x20 || *p > 0x7e || *p == ':')
                        return false;
        return true;
}

int deploy_outputs_check(const char *format, DeployOutputs *o, bool file, char **ret_why) {
        const char *n_format = file ? "Format=" : "--format ";
        const char *n_pfile = file ? "PassphraseFile=" : "--passphrase-file ";
        const char *n_pcred = file ? "PassphraseCredential=" : "--passphrase-credential ";
        const char *n_nssdb = file ? "NSSDB=" : "--nssdb ";
        const char *n_nick = file ? "Nickname=" : "--nickname ";
        char *w = NULL;
        int r;

        o->formats = DEPLOY_FORMAT_PEM;
        if (format) {
                r = deploy_format_parse(format, &o->formats, &w);
                if (r < 0) {
                        r = deploy_why(ret_why, r, "%s%s: %s", n_format, format, w ?: "invalid");
                        free(w);
                        return r;
                }
        }
        if (o->formats & DEPLOY_FORMAT_PKCS12) {
                if (!o->passphrase_file == !o->passphrase_credential)
                        return deploy_why(ret_why, -EINVAL, "format pkcs12 needs its passphrase: %s(a file only you "
                                   "can read) or %s(a systemd credential), one of them", n_pfile, n_pcred);
        } else if (o->passphrase_file || o->passphrase_credential)
                return deploy_why(ret_why, -EINVAL, "%s is only for format pkcs12 (%spkcs12)",
                           o->passphrase_file ? n_pfile : n_pcred, n_format);
        if (o->passphrase_file && o->passphrase_file[0] != '/')
                return deploy_why(ret_why, -EINVAL, "%s%s is not an absolute path", n_pfile, o->passphrase_file);
        if (o->passphrase_credential && !deploy_credential_name_is_valid(o->passphrase_credential))
                return deploy_why(ret_why, -EINVAL, "%s%.60s is not a credential name (a file name in "
                           "$CREDENTIALS_DIRECTORY: no '/')", n_pcred, o->passphrase_credential);
        if (o->formats & DEPLOY_FORMAT_NSSDB) {
                if (!o->nssdb)
                        return deploy_why(ret_why, -EINVAL, "format nssdb needs %sDIR: the NSS database directory "
                                   "(sql: format, e.g. ~/.pki/nssdb)", n_nssdb);
        } else if (o->nssdb)
                return deploy_why(ret_why, -EINVAL, "%s is only for format nssdb (%snssdb)", n_nssdb, n_format);
        if (o->nssdb) {
                if (strncmp(o->nssdb, "sql:", 4) == 0)
                        o->nssdb += 4;
                if (o->nssdb[0] != '/')
                        return deploy_why(ret_why, -EINVAL, "%s%s is not an absolute path", n_nssdb, o->nssdb);
        }
        if (o->nickname && !(o->formats & (DEPLOY_FORMAT_NSSDB | DEPLOY_FORMAT_PKCS12)))
                return deploy_why(ret_why, -EINVAL, "%s is only for formats pkcs12 and nssdb", n_nick);
        if (o->nickname && !deploy_nickname_is_valid(o->nickname))
                return deploy_why(ret_why, -EINVAL, "%s'%.60s': expected 1 to 64 printable ASCII characters, "
                           "no ':'", n_nick, o->nickname);
        return 0;
}
