/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The broker's own Kerberos profile, built from [Kerberos] of certbroker.conf.
 *
 * Why a file and KRB5_CONFIG rather than krb5_init_context_profile(): libcurl reaches MIT krb5
 * through GSS-API, and the krb5 mechanism creates its own contexts with krb5_init_context(),
 * which reads the profile named by KRB5_CONFIG (secure_getenv) and nothing else we can pass.
 * So krb5_creds_new() writes this text to <runtime dir>/krb5.conf (0600, atomically) and sets
 * KRB5_CONFIG to it before any krb5 or GSS call and before any thread exists. When no KDC is
 * configured, KRB5_CONFIG is "<ours>:/etc/krb5.conf": our [libdefaults] win (MIT takes the
 * first file that has a relation), the system file supplies the realm's KDCs.
 */

#include <stdbool.h>

typedef enum Krb5Mode {
        KRB5_MODE_KEYTAB,       /* the broker reads the keytab itself */
        KRB5_MODE_GSS_PROXY,    /* gss-proxy holds the keytab; the broker never opens it */
} Krb5Mode;

typedef struct Krb5Settings {
        const char *realm;              /* required: EXAMPLE.COM */
        char *const *kdcs;              /* NULL-terminated host[:port] list; NULL/empty: system krb5 configuration */
        const char *principal;          /* required: svc-scep@EXAMPLE.COM */
        const char *keytab;             /* keytab mode: path (default /etc/certbroker/svc-scep.keytab) */
        Krb5Mode mode;
        const char *domain_suffix;      /* optional: DNS suffix mapped to the realm ([domain_realm]) */
        const char *runtime_dir;        /* required: private directory for the profile file */
} Krb5Settings;

/* The default ccache of the profile: in-process memory, never a file. */
#define KRB5_PROFILE_CCACHE "MEMORY:certbroker"

/* Formats the profile. -EINVAL with *ret_message (malloc'd) naming the bad setting, -ENOMEM. */
int krb5_profile_format(const Krb5Settings *s, char **ret_text, char **ret_message);

/* Writes the profile to <runtime_dir>/krb5.conf (mode 0600, via a temporary file and rename)
 * and returns the value for KRB5_CONFIG in *ret_config (malloc'd). Does not set the
 * environment. Negative errno with *ret_message on failure. */
int krb5_profile_write(const Krb5Settings *s, char **ret_config, char **ret_message);
