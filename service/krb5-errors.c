/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <krb5/krb5.h>

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

TransportOutcome krb5_error_classify(Krb5Step step, long code, const Krb5ErrorContext *ctx, char **ret_message) {
        static const Krb5ErrorContext empty = {};
        const char *realm, *principal, *keytab, *host, *detail, *kdcs;
        char *m = NULL, *setspn = NULL;
        const char *seed = NULL;        /* the seed step the failure indicates */
        TransportOutcome o = TRANSPORT_KERBEROS_FAILED;

        if (!ctx)
                ctx = &empty;
        realm = or(ctx->realm, "the realm");
        principal = or(ctx->principal, "the service user");
        keytab = or(ctx->keytab, "the keytab");
        host = or(ctx->host, "the SCEP server");
        detail = or(ctx->detail, "no details");
        kdcs = ctx->kdcs && *ctx->kdcs ? ctx->kdcs : NULL;

        /* Positive codes are errno values from opening the keytab ourselves. */
        if (code > 0 && step == KRB5_STEP_KEYTAB) {
                if (code == EACCES || code == EPERM)
                        m = message_printf("cannot read keytab %s (%s): the daemon must be able to read it (owner root, "
                                "mode 0600), or set Mode=gss-proxy in [Kerberos] so gss-proxy holds it",
                                keytab, strerror((int) code));
                else if (code == ENOENT)
                        m = message_printf("keytab %s does not exist: export the service user's key (%s) to it, or set "
                                "Keytab= in [Kerberos] of certbroker.conf", keytab, principal);
                else
                        m = message_printf("cannot read keytab %s: %s", keytab, strerror((int) code));
                goto done;
        }

        switch (code) {
        case KRB5_KDC_UNREACH:
        case KRB5_REALM_CANT_RESOLVE:
                m = message_printf("cannot contact any KDC for realm %s (%s; %s): check KDC= in [Kerberos] (\"Corresponding "
                        "Key Distribution Center (KDC) server\"), that the name resolves and that port 88 "
                        "(TCP) is open from this host",
                        realm, kdcs ? kdcs : "KDC from the system krb5 configuration", detail);
                seed = SEED_KRB_KDC;
                break;
        case KRB5_REALM_UNKNOWN:
        case KRB5_CONFIG_NODEFREALM:
                m = message_printf("no KDC is known for realm %s (%s): set KDC= in [Kerberos] of certbroker.conf, or fix "
                        "Realm= (the Active Directory Kerberos realm, in upper case)", realm, detail);
                seed = SEED_KRB_REALM;
                break;
        case KRB5KRB_AP_ERR_SKEW:
                m = message_printf("the clock of this host and the KDC for %s differ by more than the allowed skew "
                        "(5 minutes by default) (%s): synchronize this host's time with the domain controllers "
                        "(chrony or systemd-timesyncd)", realm, detail);
                seed = SEED_NONE_CLOCK;
                break;
        case KRB5_KT_NOTFOUND:
        case KRB5_KT_KVNONOTFOUND:
        case KRB5_KT_END:
                if (ctx->keytab_principal && *ctx->keytab_principal && code != KRB5_KT_KVNONOTFOUND) {
                        const char *at = strrchr(ctx->keytab_principal, '@');
                        m = message_printf("keytab %s holds keys for %s, not for %s: Realm=%s does not match the realm "
                                "the keytab was made for (%s); set Realm= (\"Active Directory's Kerberos Realm\") "
                                "and Principal= to the realm of the service account, or export the account's key "
                                "for realm %s to the keytab",
                                keytab, ctx->keytab_principal, principal, realm, at ? at + 1 : "?", realm);
                        seed = SEED_KRB_REALM;
                        break;
                }
                m = message_printf("keytab %s holds no key for %s (%s): check Principal= in [Kerberos] (\"Service user "
                        "credentials\", user@REALM) and export that account's key to the keytab again",
                        keytab, principal, detail);
                seed = SEED_KRB_USER;
                break;
        case KRB5_KT_BADNAME:
        case KRB5_KT_UNKNOWN_TYPE:
        case KRB5_KT_FORMAT:
        case KRB5_KEYTAB_BADVNO:
                m = message_printf("keytab %s is not a usable keytab (%s): export the service user's key again",
                        keytab, detail);
                seed = SEED_KRB_USER;
                break;
        case KRB5KDC_ERR_PREAUTH_FAILED:
        case KRB5_PREAUTH_FAILED:
        case KRB5KRB_AP_ERR_BAD_INTEGRITY:
        case KRB5KRB_AP_ERR_MODIFIED:
                m = message_printf("the KDC for %s did not accept the key of %s from keytab %s (%s): the keytab is stale "
                        "(the service account's password or key version changed after it was made); create "
                        "a new keytab for the service account and replace %s",
                        realm, principal, keytab, detail, keytab);
                seed = SEED_KRB_USER;
                break;
        case KRB5KDC_ERR_C_PRINCIPAL_UNKNOWN:
                m = message_printf("the KDC for %s does not know the service user %s (%s): check Principal= in "
                        "[Kerberos] (\"Service user credentials\", user@REALM, realm in upper case)",
                        realm, principal, detail);
                seed = SEED_KRB_USER;
                break;
        case KRB5KDC_ERR_CLIENT_REVOKED:
                m = message_printf("the KDC refuses the service user %s: the account is disabled or locked out (%s): "
                        "enable it in Active Directory Users and Computers", principal, detail);
                seed = SEED_PRE_ACCOUNT;
                break;
        case KRB5KDC_ERR_KEY_EXP:
                m = message_printf("the password of the service user %s has expired (%s): set a new one, mark it "
                        "\"Password never expires\" and create a new keytab", principal, detail);
                seed = SEED_PRE_ACCOUNT;
                break;
        case KRB5KDC_ERR_ETYPE_NOSUPP:
                m = message_printf("the KDC for %s and this host share no encryption type for %s (%s): enable AES for "
                        "the account (msDS-SupportedEncryptionTypes) and create a new keytab",
                        realm, step == KRB5_STEP_SERVICE_TICKET ? host : principal, detail);
                seed = SEED_PRE_ACCOUNT;
                break;
        case KRB5KDC_ERR_S_PRINCIPAL_UNKNOWN:
                if (step == KRB5_STEP_SERVICE_TICKET) {
                        o = TRANSPORT_SERVICE_PRINCIPAL_UNKNOWN;
                        setspn = krb5_error_setspn_command(host, ctx->principal);
                        m = message_printf("the KDC for %s has no service principal HTTP/%s (KDC_ERR_S_PRINCIPAL_UNKNOWN: %s): "
                                "run `%s` on a domain controller (the SCEP server's FQDN exactly as in URL= "
                                "and AdminURL=, and the account the SCEP application pool runs as)",
                                realm, host, detail, setspn ? setspn : "setspn -s http/<host> <domain>\\<account>");
                        seed = SEED_WIN_SETSPN;
                } else {
                        m = message_printf("the KDC for %s does not know krbtgt/%s (%s): check Realm= in [Kerberos]",
                                realm, realm, detail);
                        seed = SEED_KRB_REALM;
                }
                break;
        case KRB5KDC_ERR_BADOPTION:
        case KRB5KDC_ERR_POLICY:
                m = message_printf("the KDC for %s refused the ticket request for %s by policy (%s): check the service "
                        "account's Delegation tab (\"Use Kerberos only\", HTTP service of the SCEP server)",
                        realm, step == KRB5_STEP_SERVICE_TICKET ? host : principal, detail);
                seed = SEED_WIN_DELEGATION;
                break;
        case KRB5KRB_AP_ERR_TKT_EXPIRED:
                m = message_printf("the Kerberos ticket of %s expired (%s): it is being renewed; if this repeats, "
                        "check the clock of this host", principal, detail);
                seed = SEED_NONE_CLOCK;
                break;
        default:
                if (ctx->gss_proxy)
                        m = message_printf("gss-proxy could not provide credentials for %s at step %s (%s): check that "
                                "gssproxy runs, that its service section for this daemon's uid names the keytab "
                                "and krb5_principal = %s, and that GSSPROXY_SOCKET points at it",
                                principal,
                                step == KRB5_STEP_SERVICE_TICKET ? "service ticket" : "ticket-granting ticket",
                                detail, principal);
                else if (step == KRB5_STEP_SERVICE_TICKET)
                        m = message_printf("cannot get a Kerberos ticket for HTTP/%s as %s: %s", host, principal, detail);
                else
                        m = message_printf("cannot get a ticket-granting ticket for %s from keytab %s: %s",
                                principal, keytab, detail);
        }
        if (m && seed) {
                char *t = message_printf("%s. %s", m, seed);
                free(m);
                m = t;
        }
done:
        free(setspn);
        if (ret_message)
                *ret_message = m;
        else
                free(m);
        return o;
}
