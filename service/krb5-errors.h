/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Kerberos failures → D-Bus outcomes (org.certbroker.Broker1(5) ERRORS) with a hint in the words of the Windows-side setup
 * (the seed document: realm, KDC, service user, setspn, delegation, useAppPoolCredentials,
 * kernel-mode authentication, anonymous authentication). Pure code.
 */

#include "http-outcome.h"

typedef enum Krb5Step {
        KRB5_STEP_KEYTAB,               /* opening / reading the keytab */
        KRB5_STEP_TGT,                  /* AS exchange: the ticket-granting ticket */
        KRB5_STEP_SERVICE_TICKET,       /* TGS exchange: the ticket for HTTP/<host> */
        _KRB5_STEP_MAX,
} Krb5Step;

typedef struct Krb5ErrorContext {
        const char *realm;      /* EXAMPLE.COM */
        const char *kdcs;       /* "kdc1.example.com kdc2.example.com:88", or NULL: system configuration */
        const char *principal;  /* svc-scep@EXAMPLE.COM */
        const char *keytab;     /* path, or NULL in gss-proxy mode */
        const char *host;       /* for KRB5_STEP_SERVICE_TICKET: the URL host */
        const char *detail;     /* the library's own message (krb5_get_error_message / gss_display_status), or NULL */
        bool gss_proxy;         /* Mode=gss-proxy */
        const char *keytab_principal;   /* for "no key": the keytab's entry with the principal's name
                                         * in another realm (svc-scep@OTHER.COM), or NULL */
} Krb5ErrorContext;

/* Classifies `code` (a krb5_error_code, a GSS minor status of the krb5 mechanism, or a
 * positive errno from opening the keytab) at `step`. Returns the outcome and, in *ret_message
 * (malloc'd; NULL on allocation failure), what went wrong and what to fix. */
TransportOutcome krb5_error_classify(Krb5Step step, long code, const Krb5ErrorContext *ctx, char **ret_message);

/* The hint for a 401 answered to a valid Kerberos ticket for HTTP/<host> (malloc'd). */
char *krb5_error_rejected_hint(const char *host, const char *url);

/* "setspn -s http/<host> <DOMAIN>\<account>", derived from the principal (malloc'd). */
char *krb5_error_setspn_command(const char *host, const char *principal);
