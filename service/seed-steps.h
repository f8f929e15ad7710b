/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The steps of the Windows-side setup as the vendor page users follow names them
 * ("Enable Kerberos Authentication between and SCEP server", ../shared/seed/): each failure
 * message ends with the step it indicates, and every CA.Check() step's detail names the step
 * it verifies, so an administrator can go through the page in order. String literals, to be
 * pasted into format strings. The page says IIS_USRS; the group is IIS_IUSRS.
 */

#define SEED_PRE_ACCOUNT \
        "Seed: Pre-configuration steps, step 1 (check which service account is in use for the SCEP service)"
#define SEED_PRE_IIS_USRS \
        "Seed: Pre-configuration steps, step 2 (the service account is a member of the SCEP server's local " \
        "IIS_USRS group)"
#define SEED_PRE_ENROLL \
        "Seed: Pre-configuration steps, step 3 (the service account has enroll permission on the certificate " \
        "template that is being provisioned)"
#define SEED_WIN_SETSPN \
        "Seed: Configuring Windows servers, step 1 (setspn -s http/<SCEP-SERVER-FQDN> <domain>\\<service account>)"
#define SEED_WIN_DELEGATION \
        "Seed: Configuring Windows servers, step 2 (Delegation tab of the service account: Trust this user for " \
        "delegation to specified services only, Use Kerberos only, the HTTP service of the SCEP server)"
#define SEED_WIN_APP_POOL \
        "Seed: Configuring Windows servers, step 3 (the SCEP Application Pool runs under the service account; " \
        "useAppPoolCredentials=True) and steps 5 to 7 (Kernel mode authentication disabled, Negotiate the first " \
        "provider, restart IIS)"
#define SEED_WIN_ANONYMOUS \
        "Seed: Configuring Windows servers, step 4 (Disable Anonymous Authentication on the Microsoft SCEP Admin " \
        "webpage (mscep_admin): Authentication > Anonymous Authentication > Disable)"
#define SEED_WIN_NEGOTIATE \
        "Seed: Configuring Windows servers, steps 4 to 7 (Anonymous Authentication disabled on mscep_admin, " \
        "Kernel mode authentication disabled, Negotiate the first provider, restart IIS)"
#define SEED_KRB_SETTINGS \
        "Seed: Configuring Kerberos settings (Active Directory's Kerberos Realm, Corresponding Key Distribution " \
        "Center (KDC) server, Service user credentials, Domains for outbound communication)"
#define SEED_KRB_REALM \
        "Seed: Configuring Kerberos settings (Active Directory's Kerberos Realm: Realm=)"
#define SEED_KRB_KDC \
        "Seed: Configuring Kerberos settings (Corresponding Key Distribution Center (KDC) server: KDC=)"
#define SEED_KRB_USER \
        "Seed: Configuring Kerberos settings (Service user credentials, user@realm: Principal= and its keytab)"
#define SEED_KRB_DOMAINS \
        "Seed: Configuring Kerberos settings (Domains for outbound communication: host names must end with " \
        "the realm's suffix: PermittedSuffix=)"
#define SEED_CA_KERBEROS \
        "Seed: Enabling Kerberos authentication on the certificate authority (Prefer Kerberos authentication: " \
        "Authentication=kerberos)"
#define SEED_CA_FIELDS \
        "Seed: Enabling Kerberos authentication on the certificate authority (Fill in all the required fields: " \
        "URL=, AdminURL=)"
#define SEED_NONE_TLS \
        "Not a seed step: the SCEP server's TLS certificate (TrustAnchors=)"
#define SEED_NONE_CACHE \
        "Not a seed step: NDES's password cache (MaxOutstandingChallenges=)"
#define SEED_NONE_CLOCK \
        "Not a seed step: the clocks of this host and the domain controllers"
