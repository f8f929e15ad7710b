/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* NDES emulator state: everything lives in files under one directory, because every
 * request is a separate CGI process (running as www-data) and requests are concurrent. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

typedef enum CapsProfile {
        CAPS_WIN2016,        /* POSTPKIOperation Renewal SHA-512 SHA-256 SHA-1 DES3 */
        CAPS_WIN2012,        /* same words, but a POST gets an empty 200; OAEP, SHA-1 replies */
        CAPS_AES,            /* win2016 plus AES */
        CAPS_SCEPSTANDARD,   /* plus AES and SCEPStandard */
        _CAPS_MAX,
} CapsProfile;

typedef enum AdminEncoding {
        ENC_UTF16LE_BOM,
        ENC_UTF16LE,
        ENC_UTF8,
        _ENC_MAX,
} AdminEncoding;

/* lang=: the language of the mscep_admin pages. */
typedef enum AdminLang {
        LANG_EN,
        LANG_DE,
        LANG_JA,
        _LANG_MAX,
} AdminLang;

typedef enum Tristate {
        TRI_AUTO,
        TRI_ON,
        TRI_OFF,
} Tristate;

#define RA_ORDER_LEN 3
typedef enum RaSlot {
        RA_SLOT_SIGN,
        RA_SLOT_ENC,
        RA_SLOT_CA,
} RaSlot;

typedef struct Config {
        CapsProfile caps;
        AdminEncoding admin_encoding;
        bool permission_denied;
        bool pending;
        bool certpoll_issued;          /* CertPoll also finds transactions issued at once */
        bool certpoll_unsupported;     /* CertPoll answered HTTP 500 (micromdm's scepserver) */
        bool undecryptable_no_certrep; /* an envelope it cannot decrypt gets no CertRep (NDES) */
        bool thumbprint_other;         /* the admin page shows another certificate's thumbprint */
        long reply_delay;
        bool unavailable;              /* every request answered 503 */
        long validity;                 /* seconds; 0: one year */              /* seconds before a PKIOperation's answer, after the work */
        int64_t clock_offset;          /* seconds added to the real clock */
        char reply_digest[16];         /* auto, request, sha1, sha256, sha512 */
        char reply_cipher[16];         /* auto, des3, aes128, aes256, des */
        Tristate reply_oaep;
        Tristate reply_certs;
        RaSlot ra_order[RA_ORDER_LEN];
        long max_get_url;              /* 0: unlimited */
        int cache_size;
        long challenge_ttl;
        bool caps_lf;                  /* LF instead of CRLF between caps */
        bool keep_requests;            /* save each PKIOperation body as last-request.der */
        AdminLang lang;                /* language of the mscep_admin pages */
        int password_length;           /* PasswordLength: bytes; challenges are twice as many hex digits */
        bool single_password;          /* UseSinglePassword: one password, reusable, never expires */
        bool admin_garbage;            /* admin_page=garbage: mscep_admin serves a page that is no NDES page */
        bool renewal_refused;          /* renewal=refuse: a RenewalReq gets FAILURE badRequest (unsupported) */
        bool caps_no_renewal;          /* caps_renewal=off: GetCACaps without Renewal */
} Config;

void config_defaults(Config *c);
/* Applies one KEY=VALUE; returns 0, or -EINVAL with *ret_error describing what was wrong. */
int config_apply(Config *c, const char *assignment, const char **ret_error);
/* Reads DIR/config (missing file: defaults). */
int config_load(const char *dir, Config *ret);
int config_save(const char *dir, const Config *c);
/* The config as KEY=VALUE lines, static buffer. */
const char *config_format(const Config *c);

const char *caps_profile_name(CapsProfile p);

time_t state_now(const Config *c);

/* Writes DIR/NAME atomically (temporary + rename), owned like DIR when we are root. */
int state_write(const char *dir, const char *name, const void *data, size_t size, int mode);
/* Reads DIR/NAME, at most max bytes. */
int state_read(const char *dir, const char *name, size_t max, unsigned char **ret, size_t *ret_size);
/* Appends one line to DIR/NAME (created 0640 owned like DIR). */
int state_append(const char *dir, const char *name, const char *line);
/* Exclusive flock on DIR/lock; returns the fd. */
int state_lock(const char *dir);

/* The longest challenge: password_length=64 bytes, in hex. */
#define CHALLENGE_LEN 128

typedef enum ChallengeResult {
        CHALLENGE_ISSUED,
        CHALLENGE_CACHE_FULL,
} ChallengeResult;

/* Under the lock: drops expired challenges, then adds a fresh one (2 * password_length uppercase
 * hex digits) unless the cache is full. With single_password, the one password instead (made
 * once, kept in DIR/single-password), never cached nor counted. 
 * *ret_outstanding: the unused, unexpired challenges in the cache afterwards (this one
 * included), counted under the same lock, so the maximum over the log is exact. */
int challenge_new(const char *dir, const Config *c, char ret[CHALLENGE_LEN + 1], ChallengeResult *ret_result,
                  size_t *ret_outstanding);
/* The same, recording who fetched the challenge (NULL: "-"; at most CHALLENGE_WHO_MAX bytes),
 * and, when the cache is full, who holds its unused challenges: "WHO:N,WHO:N" in holders (at
 * least 2 bytes), the holders in the order of their oldest challenge. */
#define CHALLENGE_WHO_MAX 32
int challenge_new_by(const char *dir, const Config *c, const char *who, char ret[CHALLENGE_LEN + 1],
                     ChallengeResult *ret_result, size_t *ret_outstanding, char *holders, size_t holders_size);
/* Under the lock: removes the challenge if present and unexpired. 0: valid and now consumed,
 * -EALREADY: consumed before, -ENOENT: unknown or expired. */
int challenge_consume(const char *dir, const Config *c, const char *challenge);
