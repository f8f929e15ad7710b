/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include "ndes-state.h"

#define CONFIG_MAX 8192
#define CHALLENGES_MAX (1024 * 256)

static const char *const caps_names[_CAPS_MAX] = {
        [CAPS_WIN2016] = "win2016",
        [CAPS_WIN2012] = "win2012",
        [CAPS_AES] = "aes",
        [CAPS_SCEPSTANDARD] = "scepstandard",
};

static const char *const enc_names[_ENC_MAX] = {
        [ENC_UTF16LE_BOM] = "utf16le-bom",
        [ENC_UTF16LE] = "utf16le",
        [ENC_UTF8] = "utf8",
};

static const char *const lang_names[_LANG_MAX] = {
        [LANG_EN] = "en",
        [LANG_DE] = "de",
        [LANG_JA] = "ja",
};

static const char *const slot_names[] = {
        [RA_SLOT_SIGN] = "sign",
        [RA_SLOT_ENC] = "enc",
        [RA_SLOT_CA] = "ca",
};

const char *caps_profile_name(CapsProfile p) {
        return p >= 0 && p < _CAPS_MAX ? caps_names[p] : "?";
}

void config_defaults(Config *c) {
        *c = (Config) {
                .caps = CAPS_WIN2016,
                .admin_encoding = ENC_UTF16LE_BOM,
                .reply_digest = "auto",
                .reply_cipher = "auto",
                .ra_order = { RA_SLOT_SIGN, RA_SLOT_ENC, RA_SLOT_CA },
                .cache_size = 5,
                .challenge_ttl = 3600,
                .password_length = 8,
                .undecryptable_no_certrep = true,
        };
}

static int parse_long(const char *s, long min, long max, long *ret) {
        char *end;
        errno = 0;
        long v = strtol(s, &end, 10);
        if (errno != 0 || end == s || *end != 0 || v < min || v > max)
                return -EINVAL;
        *ret = v;
        return 0;
}

static int parse_tristate(const char *s, Tristate *ret) {
        if (strcmp(s, "auto") == 0)
                *ret = TRI_AUTO;
        else if (strcmp(s, "on") == 0)
                *ret = TRI_ON;
        else if (strcmp(s, "off") == 0)
                *ret = TRI_OFF;
        else
                return -EINVAL;
        return 0;
}

static const char *tristate_name(Tristate t) {
        return t == TRI_ON ? "on" : t == TRI_OFF ? "off" : "auto";
}

static int parse_onoff(const char *s, bool *ret) {
        if (strcmp(s, "on") == 0)
                *ret = true;
        else if (strcmp(s, "off") == 0)
                *ret = false;
        else
                return -EINVAL;
        return 0;
}

static bool in_list(const char *s, const char *const *list) {
        for (; *list; list++)
                if (strcmp(s, *list) == 0)
                        return true;
        return false;
}

int config_apply(Config *c, const char *assignment, const char **ret_error) {
        static const char *const digests[] = { "auto", "request", "sha1", "sha256", "sha512", NULL };
        static const char *const ciphers[] = { "auto", "des3", "aes128", "aes256", "des", NULL };
        char key[64];
        const char *eq = strchr(assignment, '=');
        long v;

        if (!eq || eq == assignment || (size_t) (eq - assignment) >= sizeof key) {
                *ret_error = "expected KEY=VALUE";
                return -EINVAL;
        }
        memcpy(key, assignment, eq - assignment);
        key[eq - assignment] = 0;
        const char *val = eq + 1;

        if (strcmp(key, "caps") == 0) {
                for (int i = 0; i < _CAPS_MAX; i++)
                        if (strcmp(val, caps_names[i]) == 0) {
                                c->caps = i;
                                return 0;
                        }
                *ret_error = "caps must be win2016, win2012, aes or scepstandard";
        } else if (strcmp(key, "admin_encoding") == 0) {
                for (int i = 0; i < _ENC_MAX; i++)
                        if (strcmp(val, enc_names[i]) == 0) {
                                c->admin_encoding = i;
                                return 0;
                        }
                *ret_error = "admin_encoding must be utf16le-bom, utf16le or utf8";
        } else if (strcmp(key, "permission") == 0) {
                if (strcmp(val, "granted") == 0 || strcmp(val, "denied") == 0) {
                        c->permission_denied = strcmp(val, "denied") == 0;
                        return 0;
                }
                *ret_error = "permission must be granted or denied";
        } else if (strcmp(key, "pending") == 0) {
                if (parse_onoff(val, &c->pending) == 0)
                        return 0;
                *ret_error = "pending must be on or off";
        } else if (strcmp(key, "validity") == 0) {
                if (parse_long(val, 0, 10L * 365 * 86400, &v) == 0) {
                        c->validity = v;
                        return 0;
                }
                *ret_error = "validity must be a number of seconds (0: one year)";
        } else if (strcmp(key, "unavailable") == 0) {
                if (parse_onoff(val, &c->unavailable) == 0)
                        return 0;
                *ret_error = "unavailable must be on or off";
        } else if (strcmp(key, "reply_delay") == 0) {
                if (parse_long(val, 0, 60, &v) == 0) {
                        c->reply_delay = v;
                        return 0;
                }
                *ret_error = "reply_delay must be a number of seconds from 0 to 60";
        } else if (strcmp(key, "certpoll") == 0) {
                if (strcmp(val, "supported") == 0 || strcmp(val, "unsupported") == 0) {
                        c->certpoll_unsupported = strcmp(val, "unsupported") == 0;
                        return 0;
                }
                *ret_error = "certpoll must be supported or unsupported";
        } else if (strcmp(key, "thumbprint") == 0) {
                if (strcmp(val, "ca") == 0 || strcmp(val, "other") == 0) {
                        c->thumbprint_other = strcmp(val, "other") == 0;
                        return 0;
                }
                *ret_error = "thumbprint must be ca or other";
        } else if (strcmp(key, "undecryptable") == 0) {
                if (strcmp(val, "certrep") == 0 || strcmp(val, "none") == 0) {
                        c->undecryptable_no_certrep = strcmp(val, "none") == 0;
                        return 0;
                }
                *ret_error = "undecryptable must be certrep or none";
        } else if (strcmp(key, "certpoll_issued") == 0) {
                if (parse_onoff(val, &c->certpoll_issued) == 0)
                        return 0;
                *ret_error = "certpoll_issued must be on or off";
        } else if (strcmp(key, "clock_offset") == 0) {
                if (parse_long(val, -100L * 365 * 86400, 100L * 365 * 86400, &v) == 0) {
                        c->clock_offset = v;
                        return 0;
                }
                *ret_error = "clock_offset must be a number of seconds (may be negative), within 100 years";
        } else if (strcmp(key, "reply_digest") == 0) {
                if (in_list(val, digests)) {
                        snprintf(c->reply_digest, sizeof c->reply_digest, "%s", val);
                        return 0;
                }
                *ret_error = "reply_digest must be auto, request, sha1, sha256 or sha512";
        } else if (strcmp(key, "reply_cipher") == 0) {
                if (in_list(val, ciphers)) {
                        snprintf(c->reply_cipher, sizeof c->reply_cipher, "%s", val);
                        return 0;
                }
                *ret_error = "reply_cipher must be auto, des3, aes128, aes256 or des";
        } else if (strcmp(key, "reply_oaep") == 0) {
                if (parse_tristate(val, &c->reply_oaep) == 0)
                        return 0;
                *ret_error = "reply_oaep must be auto, on or off";
        } else if (strcmp(key, "reply_certs") == 0) {
                if (parse_tristate(val, &c->reply_certs) == 0)
                        return 0;
                *ret_error = "reply_certs must be auto, on or off";
        } else if (strcmp(key, "ra_order") == 0) {
                RaSlot order[RA_ORDER_LEN];
                unsigned seen = 0;
                int n = 0;
                char buf[64];
                if (strlen(val) < sizeof buf) {
                        strcpy(buf, val);
                        for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
                                int s = -1;
                                for (int i = 0; i < RA_ORDER_LEN; i++)
                                        if (strcmp(t, slot_names[i]) == 0)
                                                s = i;
                                if (s < 0 || n >= RA_ORDER_LEN || (seen & (1u << s))) {
                                        n = -1;
                                        break;
                                }
                                seen |= 1u << s;
                                order[n++] = s;
                        }
                }
                if (n == RA_ORDER_LEN) {
                        memcpy(c->ra_order, order, sizeof order);
                        return 0;
                }
                *ret_error = "ra_order must name sign, enc and ca once each, comma separated (e.g. ca,enc,sign)";
        } else if (strcmp(key, "max_get_url") == 0) {
                if (parse_long(val, 0, 1024L * 1024, &v) == 0) {
                        c->max_get_url = v;
                        return 0;
                }
                *ret_error = "max_get_url must be a length in bytes, 0 for unlimited";
        } else if (strcmp(key, "cache_size") == 0) {
                if (parse_long(val, 1, 1000, &v) == 0) {
                        c->cache_size = (int) v;
                        return 0;
                }
                *ret_error = "cache_size must be 1..1000";
        } else if (strcmp(key, "challenge_ttl") == 0) {
                if (parse_long(val, 1, 30L * 86400, &v) == 0) {
                        c->challenge_ttl = v;
                        return 0;
                }
                *ret_error = "challenge_ttl must be 1..2592000 seconds";
        } else if (strcmp(key, "caps_eol") == 0) {
                if (strcmp(val, "crlf") == 0 || strcmp(val, "lf") == 0) {
                        c->caps_lf = strcmp(val, "lf") == 0;
                        return 0;
                }
                *ret_error = "caps_eol must be crlf or lf";
        } else if (strcmp(key, "keep_requests") == 0) {
                if (parse_onoff(val, &c->keep_requests) == 0)
                        return 0;
                *ret_error = "keep_requests must be on or off";
        } else if (strcmp(key, "lang") == 0) {
                for (int i = 0; i < _LANG_MAX; i++)
                        if (strcmp(val, lang_names[i]) == 0) {
                                c->lang = i;
                                return 0;
                        }
                *ret_error = "lang must be en, de or ja";
        } else if (strcmp(key, "password_length") == 0) {
                if (parse_long(val, 1, CHALLENGE_LEN / 2, &v) == 0) {
                        c->password_length = (int) v;
                        return 0;
                }
                *ret_error = "password_length must be 1..64 bytes (the challenge has twice as many hex digits)";
        } else if (strcmp(key, "single_password") == 0) {
                if (parse_onoff(val, &c->single_password) == 0)
                        return 0;
                *ret_error = "single_password must be on or off";
        } else if (strcmp(key, "admin_page") == 0) {
                if (strcmp(val, "ndes") == 0 || strcmp(val, "garbage") == 0) {
                        c->admin_garbage = strcmp(val, "garbage") == 0;
                        return 0;
                }
                *ret_error = "admin_page must be ndes or garbage";
        } else if (strcmp(key, "renewal") == 0) {
                if (strcmp(val, "accept") == 0 || strcmp(val, "refuse") == 0) {
                        c->renewal_refused = strcmp(val, "refuse") == 0;
                        return 0;
                }
                *ret_error = "renewal must be accept or refuse";
        } else if (strcmp(key, "caps_renewal") == 0) {
                bool on;
                if (parse_onoff(val, &on) == 0) {
                        c->caps_no_renewal = !on;
                        return 0;
                }
                *ret_error = "caps_renewal must be on or off";
        } else
                *ret_error = "unknown key (see ndes-emulator help)";
        return -EINVAL;
}

const char *config_format(const Config *c) {
        static char buf[2048];
        snprintf(buf, sizeof buf,
                 "caps=%s\nadmin_encoding=%s\npermission=%s\npending=%s\nclock_offset=%" PRId64 "\n"
                 "reply_digest=%s\nreply_cipher=%s\nreply_oaep=%s\nreply_certs=%s\nra_order=%s,%s,%s\n"
                 "max_get_url=%ld\ncache_size=%d\nchallenge_ttl=%ld\ncaps_eol=%s\nkeep_requests=%s\n"
                 "certpoll_issued=%s\nreply_delay=%ld\nunavailable=%s\nvalidity=%ld\n",
                 caps_names[c->caps], enc_names[c->admin_encoding],
                 c->permission_denied ? "denied" : "granted", c->pending ? "on" : "off", c->clock_offset,
                 c->reply_digest, c->reply_cipher, tristate_name(c->reply_oaep), tristate_name(c->reply_certs),
                 slot_names[c->ra_order[0]], slot_names[c->ra_order[1]], slot_names[c->ra_order[2]],
                 c->max_get_url, c->cache_size, c->challenge_ttl, c->caps_lf ? "lf" : "crlf",
                 c->keep_requests ? "on" : "off", c->certpoll_issued ? "on" : "off",
                 c->reply_delay, c->unavailable ? "on" : "off", c->validity);
        size_t len = strlen(buf);
        snprintf(buf + len, sizeof buf - len, "certpoll=%s\nundecryptable=%s\nthumbprint=%s\n",
                 c->certpoll_unsupported ? "unsupported" : "supported",
                 c->undecryptable_no_certrep ? "none" : "certrep", c->thumbprint_other ? "other" : "ca");
        len = strlen(buf);
        snprintf(buf + len, sizeof buf - len, "lang=%s\npassword_length=%d\nsingle_password=%s\nadmin_page=%s\n",
                 lang_names[c->lang], c->password_length, c->single_password ? "on" : "off",
                 c->admin_garbage ? "garbage" : "ndes");
        len = strlen(buf);
        snprintf(buf + len, sizeof buf - len, "renewal=%s\ncaps_renewal=%s\n",
                 c->renewal_refused ? "refuse" : "accept", c->caps_no_renewal ? "off" : "on");
        return buf;
}

int config_load(const char *dir, Config *ret) {
        Config c;
        unsigned char *data = NULL;
        size_t size = 0;

        config_defaults(&c);
        int r = state_read(dir, "config", CONFIG_MAX, &data, &size);
        if (r == -ENOENT) {
                *ret = c;
                return 0;
        }
        if (r < 0)
                return r;
        char *save = NULL;
        for (char *line = strtok_r((char *) data, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
                const char *err;
                if (line[0] == '#' || line[0] == 0)
                        continue;
                if (config_apply(&c, line, &err) < 0) {
                        fprintf(stderr, "ndes-emulator: %s/config: \"%s\": %s\n", dir, line, err);
                        free(data);
                        return -EINVAL;
                }
        }
        free(data);
        *ret = c;
        return 0;
}

int config_save(const char *dir, const Config *c) {
        const char *s = config_format(c);
        return state_write(dir, "config", s, strlen(s), 0644);
}

time_t state_now(const Config *c) {
        return time(NULL) + (time_t) c->clock_offset;
}

static void own_like_dir(int dirfd, int fd) {
        struct stat st;
        if (geteuid() != 0 || fstat(dirfd, &st) < 0)
                return;
        (void) !fchown(fd, st.st_uid, st.st_gid);
}

int state_write(const char *dir, const char *name, const void *data, size_t size, int mode) {
        char tmp[256];
        int dfd, fd, r = 0;

        /* the temporary file sits beside the target: NAME may be "sub/file" */
        const char *slash = strrchr(name, '/');
        int dirlen = slash ? (int) (slash - name + 1) : 0;
        if (snprintf(tmp, sizeof tmp, "%.*s.%s.%ld.tmp", dirlen, name, name + dirlen, (long) getpid()) >=
            (int) sizeof tmp)
                return -ENAMETOOLONG;
        dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0)
                return -errno;
        fd = openat(dfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode);
        if (fd < 0) {
                r = -errno;
                close(dfd);
                return r;
        }
        own_like_dir(dfd, fd);
        (void) !fchmod(fd, mode);
        for (size_t done = 0; done < size;) {
                ssize_t n = write(fd, (const char *) data + done, size - done);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        r = -errno;
                        break;
                }
                done += n;
        }
        if (close(fd) < 0 && r == 0)
                r = -errno;
        if (r == 0 && renameat(dfd, tmp, dfd, name) < 0)
                r = -errno;
        if (r < 0)
                (void) unlinkat(dfd, tmp, 0);
        close(dfd);
        return r;
}

int state_read(const char *dir, const char *name, size_t max, unsigned char **ret, size_t *ret_size) {
        int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0)
                return -errno;
        int fd = openat(dfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        int r = fd < 0 ? -errno : 0;
        close(dfd);
        if (r < 0)
                return r;
        unsigned char *buf = malloc(max + 1);
        size_t size = 0;
        if (!buf) {
                close(fd);
                return -ENOMEM;
        }
        for (;;) {
                ssize_t n = read(fd, buf + size, max + 1 - size);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        r = -errno;
                        break;
                }
                if (n == 0)
                        break;
                size += n;
                if (size > max) {
                        r = -EFBIG;
                        break;
                }
        }
        close(fd);
        if (r < 0) {
                OPENSSL_cleanse(buf, max + 1);
                free(buf);
                return r;
        }
        buf[size] = 0;
        *ret = buf;
        *ret_size = size;
        return 0;
}

int state_append(const char *dir, const char *name, const char *line) {
        int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0)
                return -errno;
        int fd = openat(dfd, name, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0640);
        int r = 0;
        if (fd < 0) {
                r = -errno;
                close(dfd);
                return r;
        }
        own_like_dir(dfd, fd);
        size_t len = strlen(line);
        if (write(fd, line, len) != (ssize_t) len)
                r = -EIO;
        close(fd);
        close(dfd);
        return r;
}

int state_lock(const char *dir) {
        int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0)
                return -errno;
        int fd = openat(dfd, "lock", O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0640);
        int r = fd < 0 ? -errno : 0;
        if (fd >= 0)
                own_like_dir(dfd, fd);
        close(dfd);
        if (r < 0)
                return r;
        while (flock(fd, LOCK_EX) < 0)
                if (errno != EINTR) {
                        r = -errno;
                        close(fd);
                        return r;
                }
        return fd;
}

/* The challenge cache file "challenges": lines "<created epoch> <2..128 hex> [<who>]", mode 0600. */
typedef struct Entry {
        int64_t created;
        char value[CHALLENGE_LEN + 1];
        char who[CHALLENGE_WHO_MAX + 1];
} Entry;

static int challenges_load(const char *dir, const Config *c, Entry **ret, size_t *ret_n) {
        unsigned char *data = NULL;
        size_t size = 0, n = 0;
        Entry *e = NULL;
        time_t now = state_now(c);

        int r = state_read(dir, "challenges", CHALLENGES_MAX, &data, &size);
        if (r == -ENOENT) {
                *ret = NULL;
                *ret_n = 0;
                return 0;
        }
        if (r < 0)
                return r;
        e = calloc(size / 4 + 1, sizeof *e);    /* the shortest line: "0 AB\n" */
        if (!e) {
                OPENSSL_clear_free(data, size);
                return -ENOMEM;
        }
        char *save = NULL;
        for (char *line = strtok_r((char *) data, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
                long long created;
                char value[CHALLENGE_LEN + 1], who[CHALLENGE_WHO_MAX + 1] = "-";
                int k = sscanf(line, "%lld %128s %32s", &created, value, who);
                if (k < 2 || strlen(value) < 2)
                        continue;
                /* expired, or from the "future" when the clock was turned back: gone */
                if (now - created >= c->challenge_ttl || created - now > c->challenge_ttl)
                        continue;
                e[n].created = created;
                memcpy(e[n].value, value, sizeof value);
                memcpy(e[n].who, who, sizeof who);
                OPENSSL_cleanse(value, sizeof value);
                n++;
        }
        OPENSSL_clear_free(data, size);
        *ret = e;
        *ret_n = n;
        return 0;
}

static int challenges_save(const char *dir, const Entry *e, size_t n) {
        size_t size = n * (CHALLENGE_LEN + CHALLENGE_WHO_MAX + 32) + 1, len = 0;
        char *buf = malloc(size);
        if (!buf)
                return -ENOMEM;
        buf[0] = 0;
        for (size_t i = 0; i < n; i++)
                len += snprintf(buf + len, size - len, "%lld %s %s\n", (long long) e[i].created, e[i].value,
                                e[i].who[0] ? e[i].who : "-");
        int r = state_write(dir, "challenges", buf, len, 0600);
        OPENSSL_clear_free(buf, size);
        return r;
}

/* Random bytes as uppercase hex: bytes 1..CHALLENGE_LEN / 2, out 2 * bytes + 1. */
static int challenge_random(int bytes, char *out) {
        unsigned char raw[CHALLENGE_LEN / 2];

        if (bytes < 1 || bytes > (int) sizeof raw)
                return -EINVAL;
        if (RAND_bytes(raw, bytes) != 1)
                return -EIO;
        for (int i = 0; i < bytes; i++)
                snprintf(out + 2 * i, 3, "%02X", raw[i]);
        OPENSSL_cleanse(raw, sizeof raw);
        return 0;
}

/* The single password (UseSinglePassword): read from DIR/single-password, made once. Under the lock. */
static int single_password_get(const char *dir, const Config *c, char ret[CHALLENGE_LEN + 1]) {
        unsigned char *data = NULL;
        size_t size = 0;
        int r = state_read(dir, "single-password", CHALLENGE_LEN, &data, &size);

        if (r == 0 && size >= 2) {
                memcpy(ret, data, size);
                ret[size] = 0;
                OPENSSL_clear_free(data, size);
                return 0;
        }
        if (r == 0)
                OPENSSL_clear_free(data, size);
        else if (r != -ENOENT)
                return r;
        r = challenge_random(c->password_length, ret);
        if (r < 0)
                return r;
        return state_write(dir, "single-password", ret, strlen(ret), 0600);
}

/* "WHO:N,..." of the entries, in the order of each holder's oldest. */
static void holders_text(const Entry *e, size_t n, char *out, size_t size) {
        size_t len = 0;

        out[0] = 0;
        for (size_t i = 0; i < n; i++) {
                size_t count = 0;
                bool seen = false;
                for (size_t j = 0; j < i && !seen; j++)
                        seen = strcmp(e[j].who, e[i].who) == 0;
                if (seen)
                        continue;
                for (size_t j = i; j < n; j++)
                        count += strcmp(e[j].who, e[i].who) == 0;
                int k = snprintf(out + len, size - len, "%s%s:%zu", len ? "," : "", e[i].who, count);
                if (k < 0 || (size_t) k >= size - len) {
                        out[len] = 0;
                        return;
                }
                len += (size_t) k;
        }
}

int challenge_new(const char *dir, const Config *c, char ret[CHALLENGE_LEN + 1], ChallengeResult *ret_result,
                  size_t *ret_outstanding) {
        return challenge_new_by(dir, c, NULL, ret, ret_result, ret_outstanding, NULL, 0);
}

int challenge_new_by(const char *dir, const Config *c, const char *who, char ret[CHALLENGE_LEN + 1],
                     ChallengeResult *ret_result, size_t *ret_outstanding, char *holders, size_t holders_size) {
        Entry *e = NULL;
        size_t n = 0;
        int r, lock = state_lock(dir);
        if (lock < 0)
                return lock;

        r = challenges_load(dir, c, &e, &n);
        if (r < 0)
                goto finish;
        if (c->single_password) {
                /* The same password every time: nothing is added to the cache. */
                r = single_password_get(dir, c, ret);
                if (r >= 0) {
                        *ret_result = CHALLENGE_ISSUED;
                        *ret_outstanding = n;
                }
                goto finish;
        }
        if (n >= (size_t) c->cache_size) {
                /* still save: expired entries were dropped */
                r = challenges_save(dir, e, n);
                if (r >= 0 && holders && holders_size > 1)
                        holders_text(e, n, holders, holders_size);
                if (r >= 0) {
                        *ret_result = CHALLENGE_CACHE_FULL;
                        *ret_outstanding = n;
                }
                goto finish;
        }
        Entry *ne = realloc(e, (n + 1) * sizeof *e);
        if (!ne) {
                r = -ENOMEM;
                goto finish;
        }
        e = ne;
        r = challenge_random(c->password_length, e[n].value);
        if (r < 0)
                goto finish;
        e[n].created = state_now(c);
        snprintf(e[n].who, sizeof e[n].who, "%s", who && *who ? who : "-");
        n++;
        r = challenges_save(dir, e, n);
        if (r >= 0) {
                memcpy(ret, e[n - 1].value, CHALLENGE_LEN + 1);
                *ret_result = CHALLENGE_ISSUED;
                *ret_outstanding = n;
        }
finish:
        if (e)
                OPENSSL_clear_free(e, n * sizeof *e);
        close(lock);
        return r;
}

int challenge_consume(const char *dir, const Config *c, const char *challenge) {
        Entry *e = NULL;
        size_t n = 0, used_size = 0;
        unsigned char md[SHA256_DIGEST_LENGTH], *used = NULL;
        char line[2 * SHA256_DIGEST_LENGTH + 2];
        int r, lock = state_lock(dir);
        if (lock < 0)
                return lock;

        r = challenges_load(dir, c, &e, &n);
        if (r < 0)
                goto finish;
        size_t len = strlen(challenge);
        char single[CHALLENGE_LEN + 1];
        /* The single password (UseSinglePassword) is accepted any number of times. */
        if (c->single_password && single_password_get(dir, c, single) >= 0 && strlen(single) == len &&
            CRYPTO_memcmp(single, challenge, len) == 0) {
                OPENSSL_cleanse(single, sizeof single);
                r = 0;
                goto finish;
        }
        OPENSSL_cleanse(single, sizeof single);
        r = -ENOENT;
        if (len < 2 || len > CHALLENGE_LEN)
                goto finish;
        /* Consumed challenges are remembered by their SHA-256 in "challenges-used" (fixed-length
         * lines), so that a second use (NDES: 0x800B0110) is told from an unknown or expired
         * challenge (0x80070490). */
        SHA256((const unsigned char *) challenge, len, md);
        for (size_t i = 0; i < sizeof md; i++)
                snprintf(line + 2 * i, 3, "%02x", md[i]);
        strcpy(line + 2 * sizeof md, "\n");
        for (size_t i = 0; i < n; i++)
                if (strlen(e[i].value) == len && CRYPTO_memcmp(e[i].value, challenge, len) == 0) {
                        memmove(e + i, e + i + 1, (n - i - 1) * sizeof *e);
                        n--;
                        r = challenges_save(dir, e, n);
                        if (r >= 0)
                                (void) state_append(dir, "challenges-used", line);
                        break;
                }
        if (r == -ENOENT && state_read(dir, "challenges-used", 16 * 1024 * 1024, &used, &used_size) == 0 &&
            strstr((const char *) used, line))
                r = -EALREADY;
        free(used);
finish:
        if (e)
                OPENSSL_clear_free(e, (n + 1) * sizeof *e);
        close(lock);
        return r;
}
