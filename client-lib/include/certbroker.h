/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * libcertbroker: a small C API over certbroker's D-Bus interface (org.certbroker.Broker1,
 * see org.certbroker.Broker1(5)). It talks to certbrokerd on the system bus; sd-bus
 * honours $DBUS_SYSTEM_BUS_ADDRESS.
 *
 * Conventions
 *   - Functions return a negative errno on failure. Where a call has an expected
 *     non-failure outcome (a policy denial in certbroker_check_access(), a timeout in
 *     certbroker_wait()) it is a documented non-negative value.
 *   - On failure, when `error` is not NULL, it is filled with the D-Bus error name (for
 *     the daemon's errors "org.certbroker.Broker1.Error.<Name>", see the
 *     CERTBROKER_ERROR_* macros; for the bus's own errors "org.freedesktop.DBus.Error.*",
 *     e.g. ServiceUnknown when certbrokerd is not running) and a human message naming what
 *     was wrong. Errors found by the library itself (a malformed request id, no bus, ...)
 *     have name NULL. A CA that does not exist is reported as UnknownCA. Release it with
 *     certbroker_error_clear(). `error` must be zeroed (CERTBROKER_ERROR_NULL) before the
 *     first use; an error already set is kept (the first failure wins).
 *   - The returned errno for the daemon's errors: AccessDenied -EACCES, NameNotPermitted
 *     and KeyNotPermitted -EPERM, UnknownCA -ENXIO, InvalidArgument -EINVAL,
 *     QuotaExceeded -EDQUOT, NoSuchRequest -ENOENT, NotReady -EBUSY, KeyAlreadyTaken
 *     -ENOKEY, InvalidConfiguration -EBADMSG; others as sd_bus_error_get_errno().
 *   - `ret_` outputs are only written on success. Strings returned are malloc()ed and
 *     owned by the caller (free()); the private key is the exception: release it with
 *     certbroker_secret_free(), which wipes it.
 *   - A request is named by its id (16 lowercase hex digits) or its object path.
 *   - Times are microseconds since the epoch, 0 = unset.
 *   - A CertbrokerClient is not thread-safe: use one per thread.
 *   - The library never logs and never prints.
 *
 * Link with `pkg-config --cflags --libs libcertbroker`.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define CERTBROKER_BUS_NAME             "org.certbroker.Broker1"
#define CERTBROKER_MANAGER_PATH         "/org/certbroker/Broker1"

/* D-Bus error names of the daemon (org.certbroker.Broker1(5) ERRORS). Method errors: */
#define CERTBROKER_ERROR_PREFIX                 "org.certbroker.Broker1.Error."
#define CERTBROKER_ERROR_ACCESS_DENIED          CERTBROKER_ERROR_PREFIX "AccessDenied"
#define CERTBROKER_ERROR_NAME_NOT_PERMITTED     CERTBROKER_ERROR_PREFIX "NameNotPermitted"
#define CERTBROKER_ERROR_UNKNOWN_CA             CERTBROKER_ERROR_PREFIX "UnknownCA"
#define CERTBROKER_ERROR_INVALID_ARGUMENT       CERTBROKER_ERROR_PREFIX "InvalidArgument"
#define CERTBROKER_ERROR_KEY_NOT_PERMITTED      CERTBROKER_ERROR_PREFIX "KeyNotPermitted"
#define CERTBROKER_ERROR_QUOTA_EXCEEDED         CERTBROKER_ERROR_PREFIX "QuotaExceeded"
#define CERTBROKER_ERROR_NO_SUCH_REQUEST        CERTBROKER_ERROR_PREFIX "NoSuchRequest"
#define CERTBROKER_ERROR_NOT_READY              CERTBROKER_ERROR_PREFIX "NotReady"
#define CERTBROKER_ERROR_KEY_ALREADY_TAKEN      CERTBROKER_ERROR_PREFIX "KeyAlreadyTaken"
#define CERTBROKER_ERROR_INVALID_CONFIGURATION  CERTBROKER_ERROR_PREFIX "InvalidConfiguration"
/* Request outcomes (CertbrokerRequestInfo.error_name): */
#define CERTBROKER_ERROR_KERBEROS_FAILED        CERTBROKER_ERROR_PREFIX "KerberosFailed"
#define CERTBROKER_ERROR_SERVICE_PRINCIPAL_UNKNOWN CERTBROKER_ERROR_PREFIX "ServicePrincipalUnknown"
#define CERTBROKER_ERROR_AUTHENTICATION_REJECTED CERTBROKER_ERROR_PREFIX "AuthenticationRejected"
#define CERTBROKER_ERROR_CHALLENGE_UNAVAILABLE  CERTBROKER_ERROR_PREFIX "ChallengeUnavailable"
#define CERTBROKER_ERROR_CA_UNREACHABLE         CERTBROKER_ERROR_PREFIX "CAUnreachable"
#define CERTBROKER_ERROR_TLS_VERIFY_FAILED      CERTBROKER_ERROR_PREFIX "TLSVerifyFailed"
#define CERTBROKER_ERROR_CA_REJECTED            CERTBROKER_ERROR_PREFIX "CARejected"
#define CERTBROKER_ERROR_PROTOCOL_ERROR         CERTBROKER_ERROR_PREFIX "ProtocolError"
#define CERTBROKER_ERROR_CANCELLED              CERTBROKER_ERROR_PREFIX "Cancelled"
#define CERTBROKER_ERROR_TIMEOUT                CERTBROKER_ERROR_PREFIX "Timeout"

/* ---- errors ---- */

typedef struct CertbrokerError {
        char *name;             /* D-Bus error name, or NULL for the library's own errors */
        char *message;          /* human message: what was wrong, and the fix where there is one */
        int error;              /* the negative errno the failing call returned */
} CertbrokerError;

#define CERTBROKER_ERROR_NULL ((CertbrokerError) { NULL, NULL, 0 })

/* Frees name and message and zeroes the struct. Accepts NULL. */
void certbroker_error_clear(CertbrokerError *error);

/* True when error->name is the given full D-Bus error name. */
bool certbroker_error_has_name(const CertbrokerError *error, const char *name);

/* ---- connection ---- */

typedef struct CertbrokerClient CertbrokerClient;

/* Connects to the system bus ($DBUS_SYSTEM_BUS_ADDRESS when set). Does not check that
 * certbrokerd is running: the first call does. */
int certbroker_open(CertbrokerClient **ret, CertbrokerError *error);

/* Closes the connection and frees the client. Accepts NULL; returns NULL. */
CertbrokerClient *certbroker_close(CertbrokerClient *client);

/* The daemon's Version property. */
int certbroker_get_version(CertbrokerClient *client, char **ret_version, CertbrokerError *error);

/* ---- requests ---- */

/* What to ask for: the arguments of Enroll() and CheckAccess(). NULL strings mean the
 * daemon's default ("" for ca and subject; the option left out otherwise). */
typedef struct CertbrokerRequestSpec {
        const char *ca;                 /* CA name; NULL or "": the default CA */
        const char *subject;            /* RFC 4514 DN; NULL or "": CN=<names[0]> */
        const char *const *names;       /* DNS subjectAltNames, NULL-terminated */
        const char *key_type;           /* rsa:2048 rsa:3072 rsa:4096 ec:p256 ec:p384 */
        const char *usage;              /* signature encryption both */
        const char *label;              /* free text, at most 128 bytes */
} CertbrokerRequestSpec;

/* Starts an enrollment. *ret_id: the new request's id (free()). The policy decision is
 * made before the daemon answers: a denial fails with its error name (NameNotPermitted,
 * KeyNotPermitted, QuotaExceeded, UnknownCA, InvalidArgument) and a message naming the
 * name or rule. */
int certbroker_enroll(CertbrokerClient *client, const CertbrokerRequestSpec *spec,
                      char **ret_id, CertbrokerError *error);

/* The policy dry run. Returns 1 when allowed, 0 when denied, negative on failure.
 * ret_rule: the deciding rule ("" when none); ret_reason: why. Either may be NULL. */
int certbroker_check_access(CertbrokerClient *client, const CertbrokerRequestSpec *spec,
                            char **ret_rule, char **ret_reason, CertbrokerError *error);

/* Every property of a request. */
typedef struct CertbrokerRequestInfo {
        char *id;
        char *ca;
        char *label;
        char *subject;
        char *key_type;
        char *usage;
        char **names;                   /* NULL-terminated */
        uint32_t owner;
        char *state;                    /* queued submitting pending retrying issued rejected failed cancelled */
        char *error_name;               /* "" when none */
        char *error_message;
        char *fail_info;
        char *transaction_id;
        char *certificate;              /* PEM, "" until issued */
        char *chain;                    /* PEM */
        char *serial;
        uint64_t not_before;
        uint64_t not_after;
        uint64_t created;
        uint64_t updated;
        uint64_t next_attempt;
        uint32_t attempts;
        bool key_available;
} CertbrokerRequestInfo;

int certbroker_request_get(CertbrokerClient *client, const char *request,
                           CertbrokerRequestInfo **ret, CertbrokerError *error);
/* Accepts NULL; returns NULL. */
CertbrokerRequestInfo *certbroker_request_info_free(CertbrokerRequestInfo *info);

/* The State property. */
int certbroker_request_state(CertbrokerClient *client, const char *request,
                             char **ret_state, CertbrokerError *error);

/* True for issued, rejected, failed and cancelled. */
bool certbroker_state_is_terminal(const char *state);

/* The issued certificate and the CA chain (PEM; "" before issuance). Either output may be
 * NULL. */
int certbroker_request_certificate(CertbrokerClient *client, const char *request,
                                   char **ret_certificate, char **ret_chain,
                                   CertbrokerError *error);

/* Progress of certbroker_wait(): called once at the start and then whenever the state,
 * the attempt count or the next attempt time changes. Return 0 to go on, a negative
 * errno to stop waiting (certbroker_wait() then returns it). */
typedef struct CertbrokerProgress {
        const char *id;
        const char *state;
        uint32_t attempts;
        uint64_t next_attempt;          /* µs since the epoch, 0 = none scheduled */
} CertbrokerProgress;
typedef int (*CertbrokerProgressFn)(const CertbrokerProgress *progress, void *userdata);

#define CERTBROKER_WAIT_INFINITY UINT64_MAX

/* Waits until the request is terminal or timeout_usec has passed (CERTBROKER_WAIT_INFINITY:
 * no limit). Follows the request's PropertiesChanged signals while a Request.Wait() call
 * is outstanding, so progress is reported as it happens; the Wait() calls last at most 5 s
 * each, after which the request is re-read too. Returns 1 when the request is terminal, 0
 * on timeout; *ret_state (may be NULL): the last state. */
int certbroker_wait(CertbrokerClient *client, const char *request, uint64_t timeout_usec,
                    CertbrokerProgressFn progress, void *userdata,
                    char **ret_state, CertbrokerError *error);

/* Takes the private key (PKCS#8 PEM) once the request is issued; the broker then erases
 * its copy, so this succeeds once (later: KeyAlreadyTaken). Free *ret_key_pem with
 * certbroker_secret_free(). The D-Bus message that carried it is wiped when freed. */
int certbroker_take_key(CertbrokerClient *client, const char *request,
                        char **ret_key_pem, CertbrokerError *error);

/* Wipes a NUL-terminated secret and frees it. Accepts NULL; returns NULL. */
char *certbroker_secret_free(char *secret);

/* A request in progress becomes cancelled. */
int certbroker_cancel(CertbrokerClient *client, const char *request, CertbrokerError *error);

/* A terminal request is forgotten and its key erased. */
int certbroker_remove(CertbrokerClient *client, const char *request, CertbrokerError *error);

typedef struct CertbrokerRequestEntry {
        char *id;
        char *state;
        char *path;
} CertbrokerRequestEntry;

/* The caller's requests (root: all). *ret is an array of *ret_n entries. */
int certbroker_list_requests(CertbrokerClient *client, CertbrokerRequestEntry **ret,
                             size_t *ret_n, CertbrokerError *error);
/* Accepts NULL; returns NULL. */
CertbrokerRequestEntry *certbroker_request_entries_free(CertbrokerRequestEntry *entries, size_t n);

/* ---- CAs ---- */

typedef struct CertbrokerCAInfo {
        char *name;
        char *url;
        char *admin_url;
        char *authentication;           /* kerberos none */
        char *challenge;                /* mscep-admin static none */
        char **capabilities;            /* NULL-terminated */
        uint64_t last_contact;
        char *last_error;
} CertbrokerCAInfo;

/* Names of the configured CAs, a NULL-terminated array; free with certbroker_strv_free(). */
int certbroker_list_cas(CertbrokerClient *client, char ***ret_names, CertbrokerError *error);
char **certbroker_strv_free(char **strv);

int certbroker_ca_get(CertbrokerClient *client, const char *ca, CertbrokerCAInfo **ret,
                      CertbrokerError *error);
CertbrokerCAInfo *certbroker_ca_info_free(CertbrokerCAInfo *info);

typedef struct CertbrokerCheckStep {
        char *step;                     /* configuration keytab ticket-granting-ticket ... */
        char *result;                   /* ok fail skip */
        char *detail;                   /* for a failure: what to fix */
} CertbrokerCheckStep;

/* CA.Check(): the diagnostic steps in order. With_challenge also fetches one mscep_admin
 * challenge (it uses one of NDES's few challenge slots). Returns the number of failed
 * steps (0: all well), negative on failure. */
int certbroker_ca_check(CertbrokerClient *client, const char *ca, bool with_challenge,
                        CertbrokerCheckStep **ret_steps, size_t *ret_n, CertbrokerError *error);
CertbrokerCheckStep *certbroker_check_steps_free(CertbrokerCheckStep *steps, size_t n);

/* ---- renewal: chains of requests (since LIBCERTBROKER_1.1) ----
 *
 * A request enrolled with CERTBROKER_ENROLL_RENEW is kept valid by certbrokerd: at its
 * RenewAt the broker makes a successor (a new request, new id, same owner and parameters,
 * a fresh key) whose certificate and key are fetched like any other request's
 * (certbroker_wait(), certbroker_take_key(), certbroker_request_certificate()). The
 * requests linked by Successor/Predecessor form a chain. */

/* Flags of certbroker_enroll_flags(). */
#define CERTBROKER_ENROLL_RENEW         (UINT64_C(1) << 0)      /* Enroll option renew=true */
/* Enroll option identity=self: a certificate for the caller's own identity (a policy rule
 * with Identity=self); spec's subject and names stay NULL: the broker derives CN=<user> and
 * the UPN/e-mail names from the caller's account. */
#define CERTBROKER_ENROLL_IDENTITY_SELF (UINT64_C(1) << 1)

/* certbroker_enroll() with flags (CERTBROKER_ENROLL_*; unknown bits: -EINVAL). */
int certbroker_enroll_flags(CertbrokerClient *client, const CertbrokerRequestSpec *spec,
                            uint64_t flags, char **ret_id, CertbrokerError *error);

/* certbroker_check_access() with flags: CERTBROKER_ENROLL_IDENTITY_SELF asks whether an
 * Enroll for the caller's own identity would be allowed (other bits: -EINVAL). */
int certbroker_check_access_flags(CertbrokerClient *client, const CertbrokerRequestSpec *spec,
                                  uint64_t flags, char **ret_rule, char **ret_reason,
                                  CertbrokerError *error);

/* certbroker_enroll_flags() with Enroll's option token (NULL: none): an idempotency key the
 * caller chooses (1-128 bytes of printable ASCII, no spaces) and keeps durably before the
 * call. Enroll with a token this uid used before returns that request (the oldest kept member
 * of its chain: successors keep the token) instead of making another, so a caller that died
 * or lost its connection before it saw the reply calls again and gets the same request; the
 * same token with other parameters fails with InvalidArgument naming the first that differs. */
int certbroker_enroll_token(CertbrokerClient *client, const CertbrokerRequestSpec *spec, uint64_t flags,
                            const char *token, char **ret_id, CertbrokerError *error);

/* Request.TakeKeySealed(): the private key sealed to recipient, an X25519 public key of 32
 * bytes (libsodium crypto_box_keypair()); *ret_sealed (free(), *ret_size bytes) opens with
 * crypto_box_seal_open() and the recipient's secret key into the PKCS#8 PEM (not
 * NUL-terminated). The broker erases the key and keeps only the sealed copy, which it cannot
 * open itself, until certbroker_confirm_key() or the certificate's expiry: a receiver killed
 * before it stored the key calls again with the same recipient and gets the same copy; any
 * other recipient, and TakeKey, get KeyAlreadyTaken. Keep the recipient's secret key durably
 * (where only you can read it) before the call, and destroy it after ConfirmKey. */
int certbroker_take_key_sealed(CertbrokerClient *client, const char *request, const uint8_t *recipient,
                               size_t recipient_size, uint8_t **ret_sealed, size_t *ret_size,
                               CertbrokerError *error);
/* The KeySealed property: the key was sealed to a receiver and the sealed copy awaits
 * ConfirmKey (false from a certbrokerd that has no such property). */
int certbroker_request_key_sealed(CertbrokerClient *client, const char *request, bool *ret_sealed,
                                  CertbrokerError *error);
/* Request.ConfirmKey(): the receiver has stored the key; the broker erases the sealed copy. */
int certbroker_confirm_key(CertbrokerClient *client, const char *request, CertbrokerError *error);

/* A request's place in its chain. */
typedef struct CertbrokerRenewal {
        bool renew;                     /* Renew: kept valid by successors */
        uint64_t renew_at;              /* RenewAt, µs since the epoch; 0: not tracked, not issued, or stopped */
        uint64_t not_after;             /* NotAfter of its certificate, 0 before issuance */
        char *state;                    /* State */
        char *successor;                /* id of the request that renews this one, "" until it exists */
        char *predecessor;              /* id of the request this one renews, "" for a first enrollment */
} CertbrokerRenewal;

/* Reads Renew, RenewAt, NotAfter, State, Successor and Predecessor in one call. */
int certbroker_request_renewal(CertbrokerClient *client, const char *request,
                               CertbrokerRenewal **ret, CertbrokerError *error);
/* Accepts NULL; returns NULL. */
CertbrokerRenewal *certbroker_renewal_free(CertbrokerRenewal *renewal);

/* Request.StopRenewal(): no successor will be made (owner or root). */
int certbroker_stop_renewal(CertbrokerClient *client, const char *request, CertbrokerError *error);

/* certbroker_wait_successor(): the chain ends here, no successor will come (renewal was
 * stopped or never asked for, or the request ended without a certificate). */
#define CERTBROKER_CHAIN_ENDED 2

/* Waits until the request has a successor, or timeout_usec has passed
 * (CERTBROKER_WAIT_INFINITY: no limit). Follows the request's PropertiesChanged signals and
 * also re-reads it at RenewAt and at least every 30 s, so a signal lost to a restart of
 * certbrokerd only delays it. Returns 1 and *ret_successor (the successor's id; may be
 * NULL) when there is one, 0 on timeout, CERTBROKER_CHAIN_ENDED when none will come, and
 * a negative errno on failure (a D-Bus error when certbrokerd is restarting: retry).
 * Waiting for the successor to be issued is then certbroker_wait() on it. */
int certbroker_wait_successor(CertbrokerClient *client, const char *request, uint64_t timeout_usec,
                              char **ret_successor, CertbrokerError *error);

/* Follows the Successor links from request to the chain's latest member (the one without a
 * successor yet; request itself when it has none). *ret_id: its id. */
int certbroker_chain_latest(CertbrokerClient *client, const char *request, char **ret_id,
                            CertbrokerError *error);

#ifdef __cplusplus
}
#endif
