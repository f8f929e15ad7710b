/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* certbroker configuration (certbroker.conf(5) and certbroker.policy(5) are the contract): certbroker.conf, ca.d/NAME.conf and
 * policy.d/NAME.policy, parsed from buffers the daemon has read. Pure code: no I/O, no logging,
 * no global state.
 *
 * A configuration set is built completely or not at all: cb_config_parse() returns either a
 * complete CbConfig or an error naming the file, the line and what is wrong (so Reload can
 * keep the old configuration on any error).
 *
 * Syntax (on top of inih): '#' and ';' start a comment at the start of a line and, after a
 * space or tab, anywhere in a line ("Realm=X   # comment"); so a value cannot contain " #"
 * or " ;". Every line must be empty, a comment, "[Section]" or "Key=Value" (no "Key: Value",
 * no indented continuation lines, no keys before the first section). Keys and section names
 * are case-sensitive as written in the man pages (key names at most 64 bytes). A key may appear
 * at most once per section; lists are space- or tab-separated; values are not quoted (a value
 * in quotes is an error that shows the unquoted form). An empty value ("KeyPool=") means the
 * default. Lines are limited to CB_CONFIG_LINE_MAX bytes (longer than inih's own 200-byte
 * buffer: long values are handed around it), files to CB_CONFIG_FILE_MAX bytes; NUL bytes,
 * control characters other than tab, and invalid UTF-8 are refused; CRLF line ends and a
 * UTF-8 BOM are accepted. Booleans: yes/no, true/false, on/off, 1/0. Paths must be
 * absolute. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define CB_CONFIG_FILE_MAX (1024U * 1024U)
#define CB_CONFIG_LINE_MAX 8192U
#define CB_CONFIG_SOURCES_MAX 4096U
#define CB_CONFIG_LIST_MAX 1024U          /* values in one list key */
#define CB_CA_NAME_MAX 64U
#define CB_CA_SERVERS_MAX 16U           /* servers in one CA's URL= */
#define CB_DEFAULT_FAILBACK_SEC 600U
#define CB_LABEL_MAX_BYTES 128U           /* Enroll option "label" */

#define CB_DEFAULT_KEYTAB "/etc/certbroker/svc-scep.keytab"
#define CB_DEFAULT_STATE_DIRECTORY "/var/lib/certbroker"

#define CB_USEC_PER_SEC UINT64_C(1000000)

#define CB_DEFAULT_MAX_REQUESTS 100U                        /* DefaultMaxRequests=100/1h */
#define CB_DEFAULT_MAX_REQUESTS_WINDOW_SEC UINT64_C(3600)
#define CB_DEFAULT_RETAIN_FINISHED_SEC (UINT64_C(30) * 86400)  /* RetainFinished=30d */
#define CB_RETAIN_FINISHED_MAX_SEC (UINT64_C(3650) * 86400)
#define CB_DEFAULT_MAX_STORED_REQUESTS 1000U

/* Key types: the strings of Enroll's option "key" (org.certbroker.Broker1(5)). */
typedef enum CbKeyType {
        CB_KEY_RSA_2048,
        CB_KEY_RSA_3072,
        CB_KEY_RSA_4096,
        CB_KEY_EC_P256,
        CB_KEY_EC_P384,
        _CB_KEY_TYPE_MAX,
        _CB_KEY_TYPE_INVALID = -22, /* -EINVAL */
} CbKeyType;

/* Enroll option "usage". */
typedef enum CbUsage {
        CB_USAGE_SIGNATURE,
        CB_USAGE_ENCRYPTION,
        CB_USAGE_BOTH,
        _CB_USAGE_MAX,
        _CB_USAGE_INVALID = -22,
} CbUsage;

typedef enum CbKerberosMode {
        CB_KERBEROS_MODE_KEYTAB,
        CB_KERBEROS_MODE_GSS_PROXY,
        _CB_KERBEROS_MODE_MAX,
        _CB_KERBEROS_MODE_INVALID = -22,
} CbKerberosMode;

typedef enum CbAuthentication {
        CB_AUTHENTICATION_KERBEROS,
        CB_AUTHENTICATION_NONE,
        _CB_AUTHENTICATION_MAX,
        _CB_AUTHENTICATION_INVALID = -22,
} CbAuthentication;

typedef enum CbChallengeMode {
        CB_CHALLENGE_MSCEP_ADMIN,
        CB_CHALLENGE_STATIC,
        CB_CHALLENGE_NONE,
        _CB_CHALLENGE_MODE_MAX,
        _CB_CHALLENGE_MODE_INVALID = -22,
} CbChallengeMode;

/* Renewal=: how a successor of a tracked chain is enrolled. */
typedef enum CbRenewalMode {
        CB_RENEWAL_REENROLL,            /* a fresh enrollment with a challenge (default) */
        CB_RENEWAL_SCEP_RENEWAL,        /* RenewalReq signed by the certificate being renewed */
        CB_RENEWAL_AUTO,                /* RenewalReq; a FAILURE falls back to reenroll */
        _CB_RENEWAL_MODE_MAX,
        _CB_RENEWAL_MODE_INVALID = -22,
} CbRenewalMode;

/* to_string returns NULL for out-of-range values; from_string returns the _INVALID value
 * for NULL or unknown strings (exact, case-sensitive match). */
const char *cb_key_type_to_string(CbKeyType t);
CbKeyType cb_key_type_from_string(const char *s);
const char *cb_usage_to_string(CbUsage u);
CbUsage cb_usage_from_string(const char *s);
const char *cb_kerberos_mode_to_string(CbKerberosMode m);
CbKerberosMode cb_kerberos_mode_from_string(const char *s);
const char *cb_authentication_to_string(CbAuthentication a);
CbAuthentication cb_authentication_from_string(const char *s);
const char *cb_challenge_mode_to_string(CbChallengeMode c);
CbChallengeMode cb_challenge_mode_from_string(const char *s);
const char *cb_renewal_mode_to_string(CbRenewalMode m);
CbRenewalMode cb_renewal_mode_from_string(const char *s);

/* Validators for the Enroll options (the bus layer handles the a{sv} types and refuses
 * unknown option names with cb_enroll_option_is_known()). Each returns 0, or -EINVAL with a
 * static *ret_reason that says what is accepted. */
bool cb_enroll_option_is_known(const char *name);      /* "key", "usage", "label" (s); "renew" (b) */
int cb_key_type_validate(const char *s, CbKeyType *ret, const char **ret_reason);
int cb_usage_validate(const char *s, CbUsage *ret, const char **ret_reason);
/* label: at most CB_LABEL_MAX_BYTES bytes of valid UTF-8 without control characters. */
int cb_label_validate(const char *s, const char **ret_reason);

/* CA names: 1..CB_CA_NAME_MAX bytes of ASCII letters, digits, '-' and '_'. */
bool cb_ca_name_is_valid(const char *name);

/* KeyPool: "rsa:2048=4 ec:p256=8". */
typedef struct CbKeyPoolEntry {
        CbKeyType type;
        unsigned count;                 /* 1..1024 */
} CbKeyPoolEntry;

/* RenewBefore= / RenewJitter=: a time span or a share of the certificate's lifetime. */
typedef struct CbLead {
        bool percent;                   /* share: value is percent (0..100) */
        unsigned value;
        uint64_t usec;                  /* time span */
} CbLead;

/* The lead for a lifetime (usec): the span, or the share of the lifetime. */
uint64_t cb_lead_usec(const CbLead *l, uint64_t lifetime_usec);

typedef struct CbCa {
        char *name;                     /* from the file name ca.d/NAME.conf */
        char *path;                     /* the source path, for messages */
        char *url;                      /* as configured (checked by cb_url_check()) */
        char *url_host;                 /* normalized host of url: the SPN is HTTP/<url_host> */
        char *admin_url;                /* configured or derived; NULL when it cannot be derived
                                         * and Challenge is not mscep-admin */
        char *admin_url_host;           /* normalized host of admin_url, or NULL */
        bool admin_url_derived;
        CbAuthentication authentication;        /* default kerberos */
        CbChallengeMode challenge;              /* default mscep-admin */
        char *challenge_file;           /* absolute path; required iff Challenge=static */
        char *trust_anchors;            /* absolute path or NULL (system store) */
        bool has_fingerprint;
        uint8_t fingerprint[32];        /* CAFingerprint=sha256:<64 hex> (colons between pairs ok) */
        CbKeyType default_key;          /* default rsa:2048 */
        unsigned max_outstanding_challenges;    /* default 4, 1..64 */
        uint64_t timeout_usec;                  /* Timeout= seconds, default 30, 1..3600 */
        uint64_t poll_interval_usec;            /* PollInterval= seconds, default 60, 1..86400 */
        uint64_t pending_deadline_usec;         /* PendingDeadline= seconds, default 604800,
                                                 * 1..31536000 and >= PollInterval */
        bool allow_legacy_ciphers;              /* default no */
        bool install_trust;                     /* InstallTrust=, default no: certbrokerctl trust
                                                 * sync installs the CA's certificates */
        bool is_default;                        /* Default=yes, or the only CA configured */
        CbLead renew_before;                    /* RenewBefore=, default 33% */
        CbLead renew_jitter;                    /* RenewJitter=, default 5% */
        CbRenewalMode renewal;                  /* Renewal=, default reenroll */
        unsigned default_line;                  /* line of Default=yes, 0 if implicit */
        /* URL= (and AdminURL=) may name several NDES servers of this CA, space-separated, tried
         * in that order; url, url_host, admin_url and admin_url_host above are the first's. A
         * challenge is valid only on the server that issued it: an enrollment uses one server
         * for its challenge, PKCSReq and CertPolls. Entries of server_admin_urls (and _hosts)
         * are NULL when admin_url is NULL. Arrays of CB_CA_SERVERS_MAX. */
        size_t n_servers;                       /* 1..CB_CA_SERVERS_MAX */
        char **server_urls;
        char **server_url_hosts;
        char **server_admin_urls;
        char **server_admin_url_hosts;
        size_t n_admin_urls;                    /* how many AdminURL= named (0: derived) */
        uint64_t failback_usec;                 /* FailbackAfter= seconds, default 600: how long a
                                                 * server that failed is passed over */
        bool round_robin;                       /* ServerSelection=round-robin (default in-order) */
} CbCa;

/* The index of the server of ca whose URL= entry is url, or -ENOENT. */
int cb_ca_server_index(const CbCa *ca, const char *url);

/* One Subject= item of a rule: an attribute besides the CN that a subject may carry. */
typedef struct CbSubjectPattern {
        char *type;                     /* "O", "OU", "L", "ST" or "C" */
        char *value;                    /* unescaped UTF-8 (C in upper case), compared exactly;
                                         * NULL: any value ("OU=*") */
        char *text;                     /* the item as written, for messages */
} CbSubjectPattern;

typedef struct CbRule {
        char *name;
        char *path;                     /* source file and line, for audit messages */
        unsigned line;                  /* line of the [Rule] header */
        char **users;  size_t n_users;  /* user names or decimal uids (as written) */
        char **groups; size_t n_groups; /* group names or decimal gids */
        char **units;  size_t n_units;
        char **selinux_types; size_t n_selinux_types;
        char **cas;    size_t n_cas;    /* n_cas == 0: every CA */
        unsigned cas_line;              /* line of CAs=, 0 if unset */
        char **names;  size_t n_names;  /* normalized patterns; optional: a rule without
                                         * Names= allows no names (but still lets its callers
                                         * use CA.Check on its CAs) */
        bool keys_set;                  /* false: every key type */
        bool keys[_CB_KEY_TYPE_MAX];
        bool usages_set;                /* false: every usage */
        bool usages[_CB_USAGE_MAX];     /* Usages=signature encryption both */
        CbSubjectPattern *subject; size_t n_subject;   /* Subject=; none: CN-only subjects */
        bool wildcards;                 /* default no */
        unsigned max_requests;          /* 0: unlimited (MaxRequests=unlimited) */
        uint64_t max_requests_window_usec;
        bool max_requests_default;      /* MaxRequests= unset: [Broker] DefaultMaxRequests= applied
                                         * (max_requests 0 when that is unlimited) */
        unsigned max_active;            /* 0: unlimited */
        /* Identity=self: a certificate for the caller's own identity (certbroker.policy(5)). */
        bool identity_self;
        bool identity_upn;              /* IdentityNames=: the UPN otherName (default) */
        bool identity_email;            /*                 the rfc822Name */
        bool identity_any_account;      /* IdentityAccounts=any; default realm: local accounts
                                         * (in /etc/passwd) are refused */
        bool identity_uids_set;         /* IdentityUIDs=MIN-MAX */
        uint32_t identity_uid_min, identity_uid_max;
        CbUsage identity_usage;         /* IdentityUsage=, default signature: picks the template */
} CbRule;

typedef struct CbConfig {
        /* [Kerberos] */
        char *realm;                    /* required; stored as written (upper case expected) */
        char **kdcs; size_t n_kdcs;     /* "host" or "host:port" (IPv6 as "[addr]:port") */
        char *principal;                /* required, user@REALM (the realm must equal Realm) */
        char *keytab;                   /* default CB_DEFAULT_KEYTAB */
        CbKerberosMode mode;            /* default keytab */
        /* [Broker] */
        char *permitted_suffix;         /* normalized; default lower-cased Realm */
        bool root_bypasses_rules;       /* default yes */
        char *state_directory;          /* default CB_DEFAULT_STATE_DIRECTORY */
        CbKeyPoolEntry *key_pool; size_t n_key_pool;   /* default empty */
        unsigned default_max_requests;  /* DefaultMaxRequests=COUNT/WINDOW, default 100/1h; 0 with
                                         * DefaultMaxRequests=unlimited. Applied to every rule
                                         * without MaxRequests= (CbRule.max_requests_default). */
        uint64_t default_max_requests_window_usec;
        uint64_t retain_finished_usec;  /* RetainFinished= time span, default 30d, 60s..3650d */
        unsigned max_stored_requests;   /* MaxStoredRequests= per uid, default 1000, 1..1000000 */
        char *metrics_textfile_directory;       /* MetricsTextfileDirectory=, NULL: none */
        /* ca.d/ sorted by name */
        CbCa *cas; size_t n_cas;
        /* policy.d/ in the order given (the daemon sorts files by name), sections in order */
        CbRule *rules; size_t n_rules;
} CbConfig;

/* One file the daemon has read. Its kind comes from the path: a path ending in
 * "certbroker.conf" (basename), ".../ca.d/NAME.conf" or ".../policy.d/ANY.policy". The path
 * is used verbatim in error messages. contents need not be NUL-terminated. */
typedef struct CbConfigSource {
        const char *path;
        const char *contents;
        size_t length;
} CbConfigSource;

/* What went wrong: path and line (0 when the error concerns the whole file or set) and a
 * message that says what is wrong and the fix; cb_config_error_format() joins them as
 * "PATH:LINE: MESSAGE". */
typedef struct CbConfigError {
        char path[512];
        unsigned line;
        char message[512];
} CbConfigError;

/* Parses a whole configuration set: exactly one certbroker.conf, any number of CA files,
 * any number of policy files (sources in the daemon's order: sort policy.d/ by name first).
 * Returns 0 and *ret; or -EINVAL (configuration error) / -E2BIG (limits) with *ret_error
 * filled (if non-NULL); or -ENOMEM. *ret is untouched on failure.
 *
 * Set-level rules: more than one CA with Default=yes is an error (naming the second one);
 * with none, a single configured CA is the default, and with several there is no default
 * (Enroll with ca "" is then denied as UnknownCA). No CA at all is allowed. A rule's CAs=
 * naming a CA that is not configured is an error. Rule names are unique across all files. */
int cb_config_parse(const CbConfigSource *sources, size_t n_sources, CbConfig **ret,
                    CbConfigError *ret_error);

/* "PATH:LINE: MESSAGE" (or "PATH: MESSAGE" with line 0) into buf. Returns buf. */
char *cb_config_error_format(const CbConfigError *e, char *buf, size_t size);

CbConfig *cb_config_free(CbConfig *c);

/* Lookups. cb_config_find_ca(c, "") or NULL returns the default CA (NULL if none). */
const CbCa *cb_config_find_ca(const CbConfig *c, const char *name);
const CbCa *cb_config_default_ca(const CbConfig *c);
const CbRule *cb_config_find_rule(const CbConfig *c, const char *name);
