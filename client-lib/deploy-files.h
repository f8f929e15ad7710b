/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The file side of 'certbrokerctl deploy': the deployment directory, its generations and the
 * live link, the state file, and the deploy.d configuration. No bus: unit-tested in
 * tests/unit/client/test-deploy-files.c.
 *
 * Layout of DIR (all relative to an O_DIRECTORY fd, never through a path again):
 *   .certbroker-request    the state: request=<id of the chain member followed>,
 *                          reloaded=<id whose reload command succeeded>,
 *                          intent=<token>: written (fsynced) before the first Enroll, whose
 *                          option token (and label) carries it, so that a run killed before
 *                          it recorded the request gets that request again from Enroll
 *                          instead of a second one,
 *                          seal=<id> <secret>: the receiver key of a sealed key hand-off
 *   gen-<id>/              one generation per issued request: key.pem (0600), cert.pem,
 *                          chain.pem, fullchain.pem (0644), each written to a new file
 *                          (O_CREAT|O_EXCL|O_NOFOLLOW), fsynced and renamed into place
 *   live -> gen-<id>       the current generation, replaced by one rename(2)
 *
 * Functions return 0 or a negative errno; where a message helps they set *ret_why
 * (malloc()ed) saying what was refused and why. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define DEPLOY_STATE_FILE       ".certbroker-request"
#define DEPLOY_LIVE             "live"
#define DEPLOY_GEN_PREFIX       "gen-"
#define DEPLOY_KEEP_GENERATIONS 2U

/* For the messages of deploy-*.c: sets *ret_why (when ret_why is not NULL; replacing what it
 * held) to the formatted text, and returns r. */
int deploy_why(char **ret_why, int r, const char *format, ...) __attribute__((format(printf, 3, 4)));

/* Opens DIR for deployment by uid: DIR must be a directory (not a symlink), owned by uid,
 * and not writable by group or others; every directory above it must be owned by root or
 * uid and not writable by group or others unless sticky. Returns the O_DIRECTORY fd. */
int deploy_dir_open(const char *path, uid_t uid, int *ret_fd, char **ret_why);

/* Writes data to dfd/name atomically: a new "name.tmp" (a stale one is unlinked first;
 * O_CREAT|O_EXCL|O_NOFOLLOW, so never through a symlink), fchmod(mode), written, fsynced,
 * renamed over name. The directory itself is not fsynced (deploy_fsync_dir()). */
int deploy_write_file(int dfd, const char *name, const char *data, mode_t mode);

/* The same for size bytes of binary data. */
int deploy_write_data(int dfd, const char *name, const void *data, size_t size, mode_t mode);

/* fsync(2) of a directory fd. */
int deploy_fsync_dir(int dfd);

#define DEPLOY_INTENT_LEN 32U       /* hex digits of the token (128 random bits) */
#define DEPLOY_SEAL_SECRET_LEN 64U  /* hex digits of an X25519 secret key */
typedef struct DeployState {
        char request[17];               /* "" when there is no state file */
        char reloaded[17];
        char intent[DEPLOY_INTENT_LEN + 1];     /* "" when none was written */
        /* The receiver's key of a TakeKeySealed() in progress (line "seal=<id> <secret>"):
         * written before the call, so a run killed before key.pem was on disk asks again with
         * the same public key and gets the same sealed copy; cleared after ConfirmKey(). */
        char seal_request[17];
        char seal_secret[DEPLOY_SEAL_SECRET_LEN + 1];
} DeployState;

/* Parses the state file's text (size bytes, at most DEPLOY_STATE_MAX; not NUL-terminated).
 * Malformed: -EBADMSG with *ret_why (which never quotes a seal= line). */
#define DEPLOY_STATE_MAX 1023U
int deploy_state_parse(const char *text, size_t size, DeployState *ret, char **ret_why);
/* Reads DIR/.certbroker-request (O_NOFOLLOW; a regular file owned by uid) and parses it. No
 * file: 0 with an empty state. Malformed: -EBADMSG with *ret_why. */
int deploy_state_read(int dfd, uid_t uid, DeployState *ret, char **ret_why);
/* Writes it with deploy_write_file() and fsyncs DIR. */
int deploy_state_write(int dfd, const DeployState *state);

/* A new receiver key for request id's TakeKeySealed() in state (seal_request, seal_secret). */
int deploy_seal_new(DeployState *state, const char *id);
/* The public key of state's receiver key (32 bytes): 0, or -EINVAL when there is none. */
int deploy_seal_public(const DeployState *state, uint8_t ret_public[static 32]);
/* Opens a sealed key with state's receiver key: *ret_pem (NUL-terminated, free with
 * explicit_bzero()+free()). -EBADMSG: it does not open (not sealed to this key), or is not PEM. */
int deploy_seal_open(const DeployState *state, const uint8_t *sealed, size_t size, char **ret_pem);
/* Forgets the receiver key (wiped). */
void deploy_seal_clear(DeployState *state);

/* True for 16 lowercase hex digits. */
bool deploy_id_is_valid(const char *id);

/* A new intent token: DEPLOY_INTENT_LEN lowercase hex digits from getrandom(2). */
int deploy_intent_new(char ret[static DEPLOY_INTENT_LEN + 1]);

/* The Enroll label that carries an intent token: "deploy:<token>", after the user's label
 * and a space when there is one. At most DEPLOY_LABEL_MAX bytes (Enroll's limit): a longer
 * user label is -E2BIG. */
#define DEPLOY_LABEL_MAX 128U
#define DEPLOY_LABEL_TAG "deploy:"
#define DEPLOY_USER_LABEL_MAX (DEPLOY_LABEL_MAX - 1U - (sizeof(DEPLOY_LABEL_TAG) - 1U) - DEPLOY_INTENT_LEN)
int deploy_intent_label(const char *user_label, const char *token, char **ret_label);

/* Parses a reload timeout: a number of seconds ("60", "2.5"), optionally with "s", "min"
 * or "h"; "0" or "infinity": none. Returns 0 and *ret_usec (0: none) or -EINVAL. */
int deploy_parse_timeout(const char *s, uint64_t *ret_usec);
#define DEPLOY_RELOAD_TIMEOUT_DEFAULT_USEC (60ULL * 1000000ULL)

/* The id of the generation DIR/live points to: 0 and *ret_id; -ENOENT when there is no
 * link; -EBADMSG with *ret_why when "live" is something else than our link to gen-<id>. */
int deploy_live_read(int dfd, char ret_id[static 17], char **ret_why);

/* Opens DIR/gen-<id> (O_NOFOLLOW), creating it (mode 0750) when create is set. *ret_created
 * (may be NULL): whether it was new. A "gen-<id>" that is not a directory of ours: -ENOTDIR
 * or -ELOOP with *ret_why. */
int deploy_generation_open(int dfd, uid_t uid, const char *id, bool create, int *ret_gfd,
                           bool *ret_created, char **ret_why);

/* Whether gfd holds a complete key.pem (only ever renamed into place once written). */
bool deploy_generation_has_key(int gfd);

/* Points DIR/live at gen-<id> with one rename(2) of a new symlink, and fsyncs DIR. */
int deploy_live_swap(int dfd, const char *id);

/* Removes the generations beyond keep (at least the live one and the newest others by
 * modification time). Returns how many it removed. */
int deploy_prune(int dfd, const char *live_id, unsigned keep);

/* The per-instance file of certbroker-deploy@.service (/etc/certbroker/deploy.d/NAME.conf):
 * KEY=VALUE lines, '#' comments. DNS= may repeat and holds names separated by spaces. */
#define DEPLOY_CONFIG_DNS_MAX 100U
typedef struct DeployConfig {
        char *user;
        char *dir;
        char *reload;
        char *ca;
        char *subject;
        char *key_type;
        char *usage;
        char *label;
        char *reload_timeout;           /* ReloadTimeout=, checked by deploy_parse_timeout() */
        char *identity;                 /* Identity=self: the caller's own identity, no DNS= */
        char *format;                   /* Format=, checked by deploy_outputs_check() */
        char *passphrase_file;          /* PassphraseFile= */
        char *passphrase_credential;    /* PassphraseCredential= */
        char *nssdb;                    /* NSSDB= */
        char *nickname;                 /* Nickname= */
        char **dns;                     /* NULL-terminated */
        size_t n_dns;
} DeployConfig;

/* Parses text. On a bad line: -EINVAL and *ret_why naming the line. Dir= is required, and
 * DNS= or Subject=, or Identity=self (then neither). */
int deploy_config_parse(const char *text, DeployConfig *ret, char **ret_why);
void deploy_config_done(DeployConfig *c);

/* The formats a deployment writes (Format=, --format): pem always (key.pem, cert.pem,
 * chain.pem and fullchain.pem are the generation, and every other format is made from them);
 * pkcs12: gen-<id>/bundle.p12 (key, certificate and chain, passphrase-protected), reached as
 * live/bundle.p12 like the PEM files; nssdb: the key and certificate imported into an NSS
 * database (sql:) under a nickname, the previous ones removed once the new ones are in. */
enum {
        DEPLOY_FORMAT_PEM    = 1U << 0,
        DEPLOY_FORMAT_PKCS12 = 1U << 1,
        DEPLOY_FORMAT_NSSDB  = 1U << 2,
};
#define DEPLOY_PKCS12_FILE "bundle.p12"
#define DEPLOY_NICKNAME_DEFAULT "certbroker"

/* Parses a list of format names ("pem", "pkcs12", "nssdb"; separated by spaces or commas)
 * into DEPLOY_FORMAT_* bits (DEPLOY_FORMAT_PEM always set). -EINVAL with *ret_why. */
int deploy_format_parse(const char *list, unsigned *ret_formats, char **ret_why);

typedef struct DeployOutputs {
        unsigned formats;
        const char *passphrase_file;            /* absolute path */
        const char *passphrase_credential;      /* a name in $CREDENTIALS_DIRECTORY */
        const char *nssdb;                      /* absolute path of the directory ("sql:" removed) */
        const char *nickname;                   /* NULL: DEPLOY_NICKNAME_DEFAULT */
} DeployOutputs;

/* Checks the output settings together: format (NULL: pem) is parsed into o->formats; pkcs12
 * needs exactly one of the passphrase settings, nssdb needs nssdb, each setting only with its
 * format; a "sql:" prefix of o->nssdb is skipped. Messages name the settings as a deploy.d file
 * does (Format=) when file is set, else as options (--format). -EINVAL with *ret_why. */
int deploy_outputs_check(const char *format, DeployOutputs *o, bool file, char **ret_why);

/* A file name without '/', not "." or "..": what $CREDENTIALS_DIRECTORY may hold. */
bool deploy_credential_name_is_valid(const char *name);
/* 1 to 64 printable ASCII characters without ':' (NSS reads "token:nickname"). */
bool deploy_nickname_is_valid(const char *name);
