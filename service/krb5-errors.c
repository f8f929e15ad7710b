/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <krb5/krb5.h>

#include "basic.h"
#include "message-util.h"
#include "krb5-errors.h"
#include "seed-steps.h"

static const char *or(const char *s, const char *dflt) {
        return s && *s ? s : dflt;
}

char *krb5_error_setspn_command(const char *host, const char *principal) {
        /* "svc-scep@EXAMPLE.COM" → account "svc-scep", domain "EXAMPLE" (the NetBIOS name is
         * usually the realm's first label; the admin knows the real one). */
        const char *p = or(principal, "<service account>@<DOMAIN>");
        const char *at = strrchr(p, '@');
        size_t account_len = at ? (size_t) (at - p) : strlen(p);
        const char *realm = at ? at + 1 : "<DOMAIN>";
        size_t domain_len = strcspn(realm, ".");

        return message_printf("setspn -s http/%s %.*s\\%.*s", or(host, "<SCEP-SERVER-FQDN>"),
                   (int) domain_len, realm, (int) account_len, p);
}

char *krb5_error_rejected_hint(const char *host, const char *url) {
        return message_printf("the server %s answered %s with 401 although this host obtained a valid Kerberos "
                   "ticket for HTTP/%s: IIS could not decrypt or would not accept it. On the IIS server: set "
                   "useAppPoolCredentials=True (Configuration Editor > system.webServer > security > "
                   "authentication > windowsAuthentication) on mscep_admin, check that the SCEP application "
                   "pool runs as the service account that holds the SPN, disable Kernel mode authentication, "
                   "make Negotiate the first provider, disable Anonymous Authentication on mscep_admin, and "
                   "restart IIS; also check that the clocks of this host and the SCEP server agree within "
                   "5 minutes. If the account that holds the SPN had its password or key changed, the server "
                   "must decrypt with the new key: restart the application pool (or, for a keytab on a "
                   "non-Windows front end, export the keytab of HTTP/%s again). " SEED_WIN_APP_POOL,
                   or(host, "?"), or(url, "the request"), or(host, "?"), or(host, "?"));
}

/* The values a hint's message names. */
typedef enum HintField {
        FIELD_NONE,
        FIELD_REALM,
        FIELD_KDCS,             /* KDC= of [Kerberos], or where the KDCs come from without it */
        FIELD_PRINCIPAL,
        FIELD_KEYTAB,
        FIELD_TARGET,           /* the SCEP server for a service ticket, else the service user */
        FIELD_DETAIL,
} HintField;

/* What the hints name: the context's values, or words for those it lacks. */
typedef struct HintValues {
        const char *realm, *kdcs, *principal, *keytab, *host, *detail;
        Krb5Step step;
} HintValues;

/* A failure whose hint depends on its code alone: the message (a format of %s conversions, filled
 * with fields in order) and the seed step it indicates. */
typedef struct Krb5Hint {
        long codes[4];          /* 0 ends the list */
        HintField fields[MESSAGE_STRINGS_MAX];
        const char *seed;
        const char *format;
} Krb5Hint;

static const Krb5Hint hints[] = {
        { { KRB5_KDC_UNREACH, KRB5_REALM_CANT_RESOLVE }, { FIELD_REALM, FIELD_KDCS, FIELD_DETAIL }, SEED_KRB_KDC,
          "cannot contact any KDC for realm %s (%s; %s): check KDC= in [Kerberos] (\"Corresponding "
          "Key Distribution Center (KDC) server\"), that the name resolves and that port 88 "
          "(TCP) is open from this host" },
        { { KRB5_REALM_UNKNOWN, KRB5_CONFIG_NODEFREALM }, { FIELD_REALM, FIELD_DETAIL }, SEED_KRB_REALM,
          "no KDC is known for realm %s (%s): set KDC= in [Kerberos] of certbroker.conf, or fix "
          "Realm= (the Active Directory Kerberos realm, in upper case)" },
        { { KRB5KRB_AP_ERR_SKEW }, { FIELD_REALM, FIELD_DETAIL }, SEED_NONE_CLOCK,
          "the clock of this host and the KDC for %s differ by more than the allowed skew "
          "(5 minutes by default) (%s): synchronize this host's time with the domain controllers "
          "(chrony or systemd-timesyncd)" },
        { { KRB5_KT_NOTFOUND, KRB5_KT_KVNONOTFOUND, KRB5_KT_END }, { FIELD_KEYTAB, FIELD_PRINCIPAL, FIELD_DETAIL },
          SEED_KRB_USER,
          "keytab %s holds no key for %s (%s): check Principal= in [Kerberos] (\"Service user "
          "credentials\", user@REALM) and export that account's key to the keytab again" },
        { { KRB5_KT_BADNAME, KRB5_KT_UNKNOWN_TYPE, KRB5_KT_FORMAT, KRB5_KEYTAB_BADVNO }, { FIELD_KEYTAB, FIELD_DETAIL },
          SEED_KRB_USER,
          "keytab %s is not a usable keytab (%s): export the service user's key again" },
        { { KRB5KDC_ERR_PREAUTH_FAILED, KRB5_PREAUTH_FAILED, KRB5KRB_AP_ERR_BAD_INTEGRITY, KRB5KRB_AP_ERR_MODIFIED },
          { FIELD_REALM, FIELD_PRINCIPAL, FIELD_KEYTAB, FIELD_DETAIL, FIELD_KEYTAB }, SEED_KRB_USER,
          "the KDC for %s did not accept the key of %s from keytab %s (%s): the keytab is stale "
          "(the service account's password or key version changed after it was made); create "
          "a new keytab for the service account and replace %s" },
        { { KRB5KDC_ERR_C_PRINCIPAL_UNKNOWN }, { FIELD_REALM, FIELD_PRINCIPAL, FIELD_DETAIL }, SEED_KRB_USER,
          "the KDC for %s does not know the service user %s (%s): check Principal= in "
          "[Kerberos] (\"Service user credentials\", user@REALM, realm in upper case)" },
        { { KRB5KDC_ERR_CLIENT_REVOKED }, { FIELD_PRINCIPAL, FIELD_DETAIL }, SEED_PRE_ACCOUNT,
          "the KDC refuses the service user %s: the account is disabled or locked out (%s): "
          "enable it in Active Directory Users and Computers" },
        { { KRB5KDC_ERR_KEY_EXP }, { FIELD_PRINCIPAL, FIELD_DETAIL }, SEED_PRE_ACCOUNT,
          "the password of the service user %s has expired (%s): set a new one, mark it "
          "\"Password never expires\" and create a new keytab" },
        { { KRB5KDC_ERR_ETYPE_NOSUPP }, { FIELD_REALM, FIELD_TARGET, FIELD_DETAIL }, SEED_PRE_ACCOUNT,
          "the KDC for %s and this host share no encryption type for %s (%s): enable AES for "
          "the account (msDS-SupportedEncryptionTypes) and create a new keytab" },
        /* For a service ticket, see service_principal_unknown(). */
        { { KRB5KDC_ERR_S_PRINCIPAL_UNKNOWN }, { FIELD_REALM, FIELD_REALM, FIELD_DETAIL }, SEED_KRB_REALM,
          "the KDC for %s does not know krbtgt/%s (%s): check Realm= in [Kerberos]" },
        { { KRB5KDC_ERR_BADOPTION, KRB5KDC_ERR_POLICY }, { FIELD_REALM, FIELD_TARGET, FIELD_DETAIL },
          SEED_WIN_DELEGATION,
          "the KDC for %s refused the ticket request for %s by policy (%s): check the service "
          "account's Delegation tab (\"Use Kerberos only\", HTTP service of the SCEP server)" },
        { { KRB5KRB_AP_ERR_TKT_EXPIRED }, { FIELD_PRINCIPAL, FIELD_DETAIL }, SEED_NONE_CLOCK,
          "the Kerberos ticket of %s expired (%s): it is being renewed; if this repeats, "
          "check the clock of this host" },
};

static const Krb5Hint *hint_find(long code) {
        for (size_t i = 0; i < ELEMENTSOF(hints); i++)
                for (size_t j = 0; j < ELEMENTSOF(hints[i].codes) && hints[i].codes[j] != 0; j++)
                        if (hints[i].codes[j] == code)
                                return &hints[i];
        return NULL;
}

static const char *hint_field(const HintValues *h, HintField field) {
        switch (field) {
        case FIELD_REALM:
                return h->realm;
        case FIELD_KDCS:
                return h->kdcs ? h->kdcs : "KDC from the system krb5 configuration";
        case FIELD_PRINCIPAL:
                return h->principal;
        case FIELD_KEYTAB:
                return h->keytab;
        case FIELD_TARGET:
                return h->step == KRB5_STEP_SERVICE_TICKET ? h->host : h->principal;
        case FIELD_DETAIL:
                return h->detail;
        default:
                return NULL;
        }
}

static char *hint_message(const Krb5Hint *hint, const HintValues *h) {
        const char *strings[MESSAGE_STRINGS_MAX];

        for (size_t i = 0; i < ELEMENTSOF(strings); i++)
                strings[i] = hint_field(h, hint->fields[i]);
        return message_printf_strings(hint->format, strings);
}

/* Positive codes are errno values from opening the keytab ourselves. */
static char *keytab_errno_message(long code, const HintValues *h) {
        if (code == EACCES || code == EPERM)
                return message_printf("cannot read keytab %s (%s): the daemon must be able to read it (owner root, "
                        "mode 0600), or set Mode=gss-proxy in [Kerberos] so gss-proxy holds it",
                        h->keytab, strerror((int) code));
        if (code == ENOENT)
                return message_printf("keytab %s does not exist: export the service user's key (%s) to it, or set "
                        "Keytab= in [Kerberos] of certbroker.conf", h->keytab, h->principal);
        return message_printf("cannot read keytab %s: %s", h->keytab, strerror((int) code));
}

/* The keytab has keys only for the principal's name in another realm. */
static char *keytab_other_realm_message(const char *keytab_principal, const HintValues *h) {
        const char *at = strrchr(keytab_principal, '@');

        return message_printf("keytab %s holds keys for %s, not for %s: Realm=%s does not match the realm "
                "the keytab was made for (%s); set Realm= (\"Active Directory's Kerberos Realm\") "
                "and Principal= to the realm of the service account, or export the account's key "
                "for realm %s to the keytab",
                h->keytab, keytab_principal, h->principal, h->realm, at ? at + 1 : "?", h->realm);
}

/* No service principal HTTP/<host>: the setspn command that registers it. */
static char *service_principal_unknown_message(const HintValues *h, const char *principal) {
        _cleanup_free_ char *setspn = krb5_error_setspn_command(h->host, principal);

        return message_printf("the KDC for %s has no service principal HTTP/%s (KDC_ERR_S_PRINCIPAL_UNKNOWN: %s): "
                "run `%s` on a domain controller (the SCEP server's FQDN exactly as in URL= "
                "and AdminURL=, and the account the SCEP application pool runs as)",
                h->realm, h->host, h->detail, setspn ? setspn : "setspn -s http/<host> <domain>\\<account>");
}

/* A code without a hint of its own: what failed, with the library's words. */
static char *generic_message(bool gss_proxy, const HintValues *h) {
        if (gss_proxy)
                return message_printf("gss-proxy could not provide credentials for %s at step %s (%s): check that "
                        "gssproxy runs, that its service section for this daemon's uid names the keytab "
                        "and krb5_principal = %s, and that GSSPROXY_SOCKET points at it",
                        h->principal,
                        h->step == KRB5_STEP_SERVICE_TICKET ? "service ticket" : "ticket-granting ticket",
                        h->detail, h->principal);
        if (h->step == KRB5_STEP_SERVICE_TICKET)
                return message_printf("cannot get a Kerberos ticket for HTTP/%s as %s: %s", h->host, h->principal,
                        h->detail);
        return message_printf("cannot get a ticket-granting ticket for %s from keytab %s: %s",
                h->principal, h->keytab, h->detail);
}

/* m, with the seed step it indicates appended (if any), to *ret_message or freed. */
static TransportOutcome classified(TransportOutcome o, char *m, const char *seed, char **ret_message) {
        _cleanup_free_ char *message = m;

        if (message && seed) {
                char *t = message_printf("%s. %s", message, seed);

                free(message);
                message = t;
        }
        if (ret_message)
                *ret_message = TAKE_PTR(message);
        return o;
}

TransportOutcome krb5_error_classify(Krb5Step step, long code, const Krb5ErrorContext *ctx, char **ret_message) {
        static const Krb5ErrorContext empty = {};
        const Krb5Hint *hint;
        HintValues h;

        if (!ctx)
                ctx = &empty;
        h = (HintValues) {
                .realm = or(ctx->realm, "the realm"),
                .kdcs = ctx->kdcs && *ctx->kdcs ? ctx->kdcs : NULL,
                .principal = or(ctx->principal, "the service user"),
                .keytab = or(ctx->keytab, "the keytab"),
                .host = or(ctx->host, "the SCEP server"),
                .detail = or(ctx->detail, "no details"),
                .step = step,
        };

        if (code > 0 && step == KRB5_STEP_KEYTAB)
                return classified(TRANSPORT_KERBEROS_FAILED, keytab_errno_message(code, &h), NULL, ret_message);
        if ((code == KRB5_KT_NOTFOUND || code == KRB5_KT_END) && ctx->keytab_principal && *ctx->keytab_principal)
                return classified(TRANSPORT_KERBEROS_FAILED, keytab_other_realm_message(ctx->keytab_principal, &h),
                                  SEED_KRB_REALM, ret_message);
        if (code == KRB5KDC_ERR_S_PRINCIPAL_UNKNOWN && step == KRB5_STEP_SERVICE_TICKET)
                return classified(TRANSPORT_SERVICE_PRINCIPAL_UNKNOWN,
                                  service_principal_unknown_message(&h, ctx->principal), SEED_WIN_SETSPN, ret_message);
        hint = hint_find(code);
        if (hint)
                return classified(TRANSPORT_KERBEROS_FAILED, hint_message(hint, &h), hint->seed, ret_message);
        return classified(TRANSPORT_KERBEROS_FAILED, generic_message(ctx->gss_proxy, &h), NULL, ret_message);
}
