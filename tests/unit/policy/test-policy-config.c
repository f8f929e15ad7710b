/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Configuration parsing: every key with its default, every error with file and line. */

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "cb-config.h"

#define MAIN_PATH "/etc/certbroker/certbroker.conf"
#define CA_PATH "/etc/certbroker/ca.d/corp.conf"
#define CA2_PATH "/etc/certbroker/ca.d/lab.conf"
#define POL_PATH "/etc/certbroker/policy.d/10-a.policy"
#define POL2_PATH "/etc/certbroker/policy.d/20-b.policy"

#define MAIN "[Kerberos]\nRealm=EXAMPLE.COM\nPrincipal=svc-scep@EXAMPLE.COM\n"
#define CA "[CA]\nURL=https://ndes.example.com/certsrv/mscep/mscep.dll\n"
#define POL "[Rule]\nName=r\nUsers=alice\nNames=a.example.com\n"
#define FP "sha256:00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"

typedef struct Files {
        const char *main, *ca, *ca2, *pol, *pol2;
} Files;

static int parse(const Files *f, CbConfig **ret, CbConfigError *e) {
        CbConfigSource s[5];
        size_t n = 0;
        if (f->main)
                s[n++] = (CbConfigSource) { MAIN_PATH, f->main, strlen(f->main) };
        if (f->ca)
                s[n++] = (CbConfigSource) { CA_PATH, f->ca, strlen(f->ca) };
        if (f->ca2)
                s[n++] = (CbConfigSource) { CA2_PATH, f->ca2, strlen(f->ca2) };
        if (f->pol)
                s[n++] = (CbConfigSource) { POL_PATH, f->pol, strlen(f->pol) };
        if (f->pol2)
                s[n++] = (CbConfigSource) { POL2_PATH, f->pol2, strlen(f->pol2) };
        return cb_config_parse(s, n, ret, e);
}

static CbConfig *parse_ok(const Files *f) {
        CbConfig *c = NULL;
        CbConfigError e = {};
        char buf[1200];
        int r = parse(f, &c, &e);
        if (r != 0)
                fail_msg("parse failed (%d): %s", r, cb_config_error_format(&e, buf, sizeof buf));
        return c;
}

typedef struct ErrorCase {
        Files files;
        const char *path;       /* expected path */
        unsigned line;          /* expected line */
        const char *message;    /* substring of the message */
} ErrorCase;

#define M(x) { .main = (x), .ca = CA, .pol = POL }
#define C(x) { .main = MAIN, .ca = (x), .pol = POL }
#define P(x) { .main = MAIN, .ca = CA, .pol = (x) }

static const ErrorCase error_cases[] = {
        /* certbroker.conf: structure */
        { { .main = "" }, MAIN_PATH, 0, "no [Kerberos] section" },
        { M("[Kerberos]\nRealm=EXAMPLE.COM\n"), MAIN_PATH, 1, "no Principal=" },
        { M("[Kerberos]\nPrincipal=svc@EXAMPLE.COM\n"), MAIN_PATH, 1, "no Realm=" },
        { M("[Kerberos]\nRealm=EXAMPLE.COM\nRealm=OTHER.COM\nPrincipal=svc@EXAMPLE.COM\n"), MAIN_PATH, 3,
          "Realm= is set twice in this [Kerberos] section (first on line 2)" },
        { M(MAIN "Foo=1\n"), MAIN_PATH, 4, "unknown key Foo= in [Kerberos]" },
        { M(MAIN "realm=x\n"), MAIN_PATH, 4, "unknown key realm=" },
        { M(MAIN "[Brokr]\n"), MAIN_PATH, 4, "unknown section [Brokr]" },
        { M(MAIN "[Rule]\n"), MAIN_PATH, 4, "unknown section [Rule]" },
        { M(MAIN "[Kerberos]\n"), MAIN_PATH, 4, "section [Kerberos] appears twice (first on line 1)" },
        { M("Realm=EXAMPLE.COM\n" MAIN), MAIN_PATH, 1, "before the first section" },
        { M(MAIN "Realm EXAMPLE.COM\n"), MAIN_PATH, 4, "expected Key=Value" },
        { M(MAIN "Mode: keytab\n"), MAIN_PATH, 4, "expected Key=Value" },
        { M(MAIN "Mo de=keytab\n"), MAIN_PATH, 4, "is not a key name" },
        { M(MAIN "=keytab\n"), MAIN_PATH, 4, "the key is missing" },
        /* a key longer than inih's line buffer (found by fuzzing: it must not reach inih) */
        { M(MAIN "RRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRR"
                 "RRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRR"
                 "RRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRR=x\n"),
          MAIN_PATH, 4, "is not a key name (longer than 64 bytes)" },
        { M(MAIN "RRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRR=x\n"),
          MAIN_PATH, 4, "longer than 64 bytes" },
        { M(MAIN "[Broker\n"), MAIN_PATH, 4, "malformed section header" },
        { M(MAIN "[]\n"), MAIN_PATH, 4, "malformed section header" },
        { M(MAIN "[Bro]ker]\n"), MAIN_PATH, 4, "malformed section header" },
        { M(MAIN "   continued\n"), MAIN_PATH, 4, "expected Key=Value" },
        { M(MAIN "Mode=keytab\x01\n"), MAIN_PATH, 4, "control character" },
        { M(MAIN "Mode=key\xff" "tab\n"), MAIN_PATH, 4, "not valid UTF-8" },
        /* [Kerberos] values */
        { M("[Kerberos]\nRealm=EXAMPLE COM\nPrincipal=svc@EXAMPLE.COM\n"), MAIN_PATH, 2, "is not a Kerberos realm" },
        { M("[Kerberos]\nRealm=EXAMPLE.COM;x\nPrincipal=svc@EXAMPLE.COM\n"), MAIN_PATH, 2, "is not a Kerberos realm" },
        { M("[Kerberos]\nRealm=EXAMPLE..COM\nPrincipal=svc@EXAMPLE..COM\n"), MAIN_PATH, 2, "cannot be the default PermittedSuffix" },
        { M("[Kerberos]\nRealm=EXAMPLE.COM\nPrincipal=svc-scep\n"), MAIN_PATH, 3, "is not user@REALM" },
        { M("[Kerberos]\nRealm=EXAMPLE.COM\nPrincipal=@EXAMPLE.COM\n"), MAIN_PATH, 3, "is not user@REALM" },
        { M("[Kerberos]\nRealm=EXAMPLE.COM\nPrincipal=svc@OTHER.COM\n"), MAIN_PATH, 3, "is not in Realm=EXAMPLE.COM" },
        { M("[Kerberos]\nRealm=EXAMPLE.COM\nPrincipal=a@b@EXAMPLE.COM\n"), MAIN_PATH, 3, "more than one '@'" },
        { M(MAIN "Keytab=svc.keytab\n"), MAIN_PATH, 4, "Keytab=svc.keytab is not an absolute path" },
        { M(MAIN "Mode=kerberos\n"), MAIN_PATH, 4, "Mode=kerberos is not a mode: use keytab or gss-proxy" },
        { M(MAIN "KDC=kdc.example.com:99999\n"), MAIN_PATH, 4, "the port is not a number" },
        { M(MAIN "KDC=kdc.example.com:\n"), MAIN_PATH, 4, "the port is not a number" },
        { M(MAIN "KDC=kdc_1.example.com\n"), MAIN_PATH, 4, "KDC=kdc_1.example.com: the host" },
        { M(MAIN "KDC=[::1\n"), MAIN_PATH, 4, "closing ']'" },
        { M(MAIN "KDC=[nope]:88\n"), MAIN_PATH, 4, "not a valid IPv6 address" },
        /* KDC= names under the suffix (after [Broker], which may come later), IP literals allowed */
        { M(MAIN "KDC=kdc.example.com dc.evil.net:88\n"), MAIN_PATH, 4,
          "KDC=dc.evil.net:88: the host dc.evil.net is not under PermittedSuffix=example.com: every configured host must "
          "be; give the domain controller's name in the domain (or its IP address), or widen PermittedSuffix= in [Broker]" },
        { M(MAIN "KDC=evilexample.com\n"), MAIN_PATH, 4, "the host evilexample.com is not under PermittedSuffix=example.com" },
        { M(MAIN "KDC=kdc.example.com\n[Broker]\nPermittedSuffix=ad.example.com\n"), MAIN_PATH, 4,
          "the host kdc.example.com is not under PermittedSuffix=ad.example.com" },
        /* [Broker] values */
        { M(MAIN "[Broker]\nPermittedSuffix=example..com\n"), MAIN_PATH, 5, "PermittedSuffix=example..com has an empty label" },
        { M(MAIN "[Broker]\nPermittedSuffix=*.example.com\n"), MAIN_PATH, 5, "PermittedSuffix=*.example.com is a wildcard" },
        { M(MAIN "[Broker]\nPermittedSuffix=10.0.0.1\n"), MAIN_PATH, 5, "IPv4" },
        { M(MAIN "[Broker]\nRootBypassesRules=maybe\n"), MAIN_PATH, 5, "RootBypassesRules=maybe is not a boolean" },
        { M(MAIN "[Broker]\nStateDirectory=var/lib/certbroker\n"), MAIN_PATH, 5, "not an absolute path" },
        { M(MAIN "[Broker]\nKeyPool=rsa:1024=4\n"), MAIN_PATH, 5, "'rsa:1024' is not a key type" },
        { M(MAIN "[Broker]\nKeyPool=rsa:2048\n"), MAIN_PATH, 5, "is not TYPE=COUNT" },
        { M(MAIN "[Broker]\nKeyPool=rsa:2048=0\n"), MAIN_PATH, 5, "the count is not a number from 1 to 1024" },
        { M(MAIN "[Broker]\nKeyPool=rsa:2048=1025\n"), MAIN_PATH, 5, "the count is not a number from 1 to 1024" },
        { M(MAIN "[Broker]\nKeyPool=rsa:2048=x\n"), MAIN_PATH, 5, "the count is not a number" },
        { M(MAIN "[Broker]\nKeyPool=rsa:2048=1 rsa:2048=2\n"), MAIN_PATH, 5, "names rsa:2048 twice" },
        { M(MAIN "[Broker]\nKeyPool=rsa:2048=1\nKeyPool=ec:p256=1\n"), MAIN_PATH, 6, "set twice" },
        { M(MAIN "[Broker]\nKeyPool=\"rsa:2048=4 ec:p256=8\"\n"), MAIN_PATH, 5,
          "KeyPool= has a quoted value: values are not quoted, write KeyPool=rsa:2048=4 ec:p256=8" },
        { M(MAIN "[Broker]\nStateDirectory='/srv'\n"), MAIN_PATH, 5, "write StateDirectory=/srv" },
        { M(MAIN "[Broker]\n[Broker]\n"), MAIN_PATH, 5, "section [Broker] appears twice (first on line 4)" },
        { M(MAIN "[Broker]\nURL=https://ndes.example.com/\n"), MAIN_PATH, 5, "unknown key URL= in [Broker]" },
        { M(MAIN "[Broker]\nRetainFinished=59s\n"), MAIN_PATH, 5,
          "RetainFinished=59s is not a time span from 60s to 3650d: give seconds or a number with s, m, h or d" },
        { M(MAIN "[Broker]\nRetainFinished=59\n"), MAIN_PATH, 5, "RetainFinished=59 is not a time span" },
        { M(MAIN "[Broker]\nRetainFinished=3651d\n"), MAIN_PATH, 5, "RetainFinished=3651d is not a time span" },
        { M(MAIN "[Broker]\nRetainFinished=30w\n"), MAIN_PATH, 5, "RetainFinished=30w is not a time span" },
        { M(MAIN "[Broker]\nRetainFinished=d\n"), MAIN_PATH, 5, "RetainFinished=d is not a time span" },
        { M(MAIN "[Broker]\nRetainFinished=-1d\n"), MAIN_PATH, 5, "RetainFinished=-1d is not a time span" },
        { M(MAIN "[Broker]\nRetainFinished=99999999999999999999d\n"), MAIN_PATH, 5, "is not a time span" },
        { M(MAIN "[Broker]\nMaxStoredRequests=0\n"), MAIN_PATH, 5,
          "MaxStoredRequests=0 is not a whole number from 1 to 1000000" },
        { M(MAIN "[Broker]\nMaxStoredRequests=1000001\n"), MAIN_PATH, 5, "MaxStoredRequests=1000001 is not a whole number" },
        /* ca.d/ */
        { C(""), CA_PATH, 0, "no [CA] section" },
        { C("[CA]\nTimeout=30\n"), CA_PATH, 1, "[CA] has no URL=" },
        { C(CA "[CA]\n"), CA_PATH, 3, "section [CA] appears twice" },
        { C(CA "[Rule]\n"), CA_PATH, 3, "unknown section [Rule]: this file may contain [CA] only" },
        { C(CA "Url=x\n"), CA_PATH, 3, "unknown key Url= in [CA]" },
        { C(CA "URL=https://ndes.example.com/x\n"), CA_PATH, 3, "URL= is set twice" },
        { C("[CA]\nURL=https://ndes.evilexample.com/certsrv/mscep/mscep.dll\n"), CA_PATH, 2,
          "has a host that is not under the permitted suffix; give an https:// (or http://) URL whose host is a DNS name "
          "under PermittedSuffix=example.com" },
        { C("[CA]\nURL=https://10.0.0.1/certsrv/mscep/mscep.dll\n"), CA_PATH, 2, "IPv4" },
        { C("[CA]\nURL=https://[::1]/certsrv/mscep/mscep.dll\n"), CA_PATH, 2, "IPv6" },
        { C("[CA]\nURL=https://u:p@ndes.example.com/certsrv/mscep/mscep.dll\n"), CA_PATH, 2, "userinfo" },
        { C("[CA]\nURL=ldap://ndes.example.com/\n"), CA_PATH, 2, "https://" },
        { C("[CA]\nURL=https://ndes.example.com/certsrv/mscep/mscep.dll?x=1\n"), CA_PATH, 2, "query" },
        { C("[CA]\nURL=https://ndes.example.com/scep\n"), CA_PATH, 2, "AdminURL= cannot be derived from URL=" },
        { C(CA "AdminURL=https://evil.net/certsrv/mscep_admin/\n"), CA_PATH, 3, "AdminURL=https://evil.net/certsrv/mscep_admin/ has a host" },
        /* cleartext: a Kerberos challenge fetch never, an SCEP URL only with a pinned CA */
        { C("[CA]\nURL=http://ndes.example.com/certsrv/mscep/mscep.dll\nCAFingerprint=" FP "\n"), CA_PATH, 2,
          "AdminURL=http://ndes.example.com/certsrv/mscep_admin/ (derived from URL=) is http:// and Authentication=kerberos: "
          "a Kerberos-authenticated challenge fetch over cleartext hands the challenge to anyone on the path; use https://" },
        { C("[CA]\nURL=http://ndes.example.com/certsrv/mscep/mscep.dll\n"), CA_PATH, 2, "is http:// and Authentication=kerberos" },
        { C(CA "AdminURL=http://ndes.example.com/certsrv/mscep_admin/\n"), CA_PATH, 3,
          "AdminURL=http://ndes.example.com/certsrv/mscep_admin/ is http:// and Authentication=kerberos" },
        { C(CA "AdminURL=HTTP://ndes.example.com/certsrv/mscep_admin/\nChallenge=none\n"), CA_PATH, 3,
          "is http:// and Authentication=kerberos" },
        { C("[CA]\nURL=http://ndes.example.com/certsrv/mscep/mscep.dll\nAuthentication=none\n"), CA_PATH, 2,
          "URL=http://ndes.example.com/certsrv/mscep/mscep.dll is http:// without CAFingerprint=: over cleartext anyone "
          "on the path could answer GetCACert with their own CA; use https://, or pin the CA with CAFingerprint=sha256:" },
        { C("[CA]\nChallenge=static\nChallengeFile=/x\nURL=http://ndes.example.com/scep\n"), CA_PATH, 4,
          "is http:// without CAFingerprint=" },
        { C(CA "Authentication=ntlm\n"), CA_PATH, 3, "Authentication=ntlm: use kerberos or none" },
        { C(CA "Challenge=password\n"), CA_PATH, 3, "Challenge=password: use mscep-admin, static or none" },
        { C(CA "Renewal=yes\n"), CA_PATH, 3, "Renewal=yes: use reenroll, scep-renewal or auto" },
        { C(CA "Renewal=Auto\n"), CA_PATH, 3, "Renewal=Auto: use reenroll, scep-renewal or auto" },
        { C(CA "Challenge=static\n"), CA_PATH, 1, "Challenge=static needs ChallengeFile=" },
        { C(CA "ChallengeFile=/etc/certbroker/corp.challenge\n"), CA_PATH, 1, "only used with Challenge=static" },
        { C(CA "Challenge=static\nChallengeFile=corp.challenge\n"), CA_PATH, 4, "not an absolute path" },
        { C(CA "TrustAnchors=roots.pem\n"), CA_PATH, 3, "TrustAnchors=roots.pem is not an absolute path" },
        { C(CA "CAFingerprint=0123\n"), CA_PATH, 3, "is not sha256:<64 hex digits>" },
        { C(CA "CAFingerprint=sha1:0123456789012345678901234567890123456789\n"), CA_PATH, 3, "is not sha256:" },
        { C(CA "CAFingerprint=sha256:012345678901234567890123456789012345678901234567890123456789012\n"), CA_PATH, 3, "is not sha256:" },
        { C(CA "CAFingerprint=sha256:g123456789012345678901234567890123456789012345678901234567890123\n"), CA_PATH, 3, "is not sha256:" },
        { C(CA "CAFingerprint=sha256:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD-EF\n"),
          CA_PATH, 3, "is not sha256:" },
        { C(CA "DefaultKey=rsa:1024\n"), CA_PATH, 3, "DefaultKey=rsa:1024: use rsa:2048" },
        { C(CA "MaxOutstandingChallenges=0\n"), CA_PATH, 3, "MaxOutstandingChallenges=0 is not a whole number from 1 to 64" },
        { C(CA "MaxOutstandingChallenges=65\n"), CA_PATH, 3, "from 1 to 64" },
        { C(CA "Timeout=0\n"), CA_PATH, 3, "Timeout=0 is not a number of seconds from 1 to 3600" },
        { C(CA "Timeout=30s\n"), CA_PATH, 3, "Timeout=30s is not a number of seconds" },
        { C(CA "Timeout=-1\n"), CA_PATH, 3, "Timeout=-1 is not a number of seconds" },
        { C(CA "Timeout=99999999999999999999999\n"), CA_PATH, 3, "is not a number of seconds" },
        { C(CA "PollInterval=86401\n"), CA_PATH, 3, "PollInterval=86401" },
        { C(CA "PendingDeadline=0\n"), CA_PATH, 3, "PendingDeadline=0" },
        { C(CA "RenewBefore=0%\n"), CA_PATH, 3, "RenewBefore=0% is neither a share of the certificate's lifetime (1% to 100%" },
        { C(CA "RenewBefore=101%\n"), CA_PATH, 3, "RenewBefore=101% is neither" },
        { C(CA "RenewBefore=0\n"), CA_PATH, 3, "RenewBefore=0 is neither" },
        { C(CA "RenewBefore=soon\n"), CA_PATH, 3, "RenewBefore=soon is neither" },
        { C(CA "RenewJitter=-1%\n"), CA_PATH, 3, "RenewJitter=-1% is neither" },
        { C(CA "RenewJitter=3651d\n"), CA_PATH, 3, "RenewJitter=3651d is neither" },
        { C(CA "PollInterval=600\nPendingDeadline=60\n"), CA_PATH, 1, "PendingDeadline= is shorter than PollInterval=" },
        { C(CA "AllowLegacyCiphers=sometimes\n"), CA_PATH, 3, "AllowLegacyCiphers=sometimes is not a boolean" },
        { C(CA "Default=2\n"), CA_PATH, 3, "Default=2 is not a boolean" },
        { { .main = MAIN, .ca = CA "Default=yes\n", .ca2 = CA "Default=yes\n" }, CA2_PATH, 3,
          "Default=yes is also set for CA 'corp' (" CA_PATH ":3): only one CA may be the default" },
        /* policy.d/ */
        { P("[Rule]\nUsers=alice\n"), POL_PATH, 1, "[Rule] has no Name=" },
        { P(POL "[Rule]\nUsers=bob\n"), POL_PATH, 5, "[Rule] has no Name=" },
        { P(POL "[Rule]\nName=r\nUsers=bob\n"), POL_PATH, 5,
          "rule name 'r' is already used by the rule at " POL_PATH ":1" },
        { { .main = MAIN, .ca = CA, .pol = POL, .pol2 = "# b\n[Rule]\nName=r\n" }, POL2_PATH, 2,
          "rule name 'r' is already used by the rule at " POL_PATH ":1: rule names must be unique across all policy files" },
        { P("[Rule]\nName=bad name\n"), POL_PATH, 2, "Name=bad name: rule names may contain" },
        { P("[Rule]\nName=a/b\n"), POL_PATH, 2, "rule names may contain" },
        { P("[Rule]\nName=r\nNames=a.example.org\n"), POL_PATH, 3,
          "Names=: pattern 'a.example.org' is outside PermittedSuffix=example.com" },
        { P("[Rule]\nName=r\nNames=a.example.com evilexample.com\n"), POL_PATH, 3, "pattern 'evilexample.com' is outside" },
        { P("[Rule]\nName=r\nNames=**.com\n"), POL_PATH, 3, "pattern '**.com' is outside" },
        { P("[Rule]\nName=r\nNames=*\n"), POL_PATH, 3, "pattern '*' has '*'" },
        { P("[Rule]\nName=r\nNames=a.*.example.com\n"), POL_PATH, 3, "pattern 'a.*.example.com' has '*'" },
        { P("[Rule]\nName=r\nNames=192.168.1.1\n"), POL_PATH, 3, "IPv4" },
        { P("[Rule]\nName=r\nNames=b\xc3\xbc" "cher.example.com\n"), POL_PATH, 3, "A-labels" },
        { P("[Rule]\nName=r\nNames=a.example.com\nNames=b.example.com\n"), POL_PATH, 4,
          "Names= is set twice in this [Rule] section (first on line 3)" },
        { P("[Rule]\nName=r\nUsers=-alice\n"), POL_PATH, 3, "'-alice' is not a valid user name" },
        { P("[Rule]\nName=r\nUsers=99999999999\n"), POL_PATH, 3, "is not a valid uid" },
        { P("[Rule]\nName=r\nGroups=4294967295\n"), POL_PATH, 3, "is not a valid gid" },
        { P("[Rule]\nName=r\nUnits=nginx\n"), POL_PATH, 3, "'nginx' is not a systemd unit name" },
        { P("[Rule]\nName=r\nUnits=ngi/nx.service\n"), POL_PATH, 3, "is not a systemd unit name" },
        { P("[Rule]\nName=r\nSELinuxTypes=system_u:system_r:httpd_t:s0\n"), POL_PATH, 3, "give the type, not the whole label" },
        { P("[Rule]\nName=r\nCAs=nope\n"), POL_PATH, 3, "rule 'r': CAs= names 'nope', but there is no ca.d/nope.conf" },
        { P("[Rule]\nName=r\nCAs=corp x/y\n"), POL_PATH, 3, "'x/y' is not a CA name" },
        { P("[Rule]\nName=r\nKeys=rsa:1024\n"), POL_PATH, 3, "Keys=: 'rsa:1024' is not a key type" },
        { P("[Rule]\nName=r\nKeys=RSA:2048\n"), POL_PATH, 3, "is not a key type" },
        { P("[Rule]\nName=r\nWildcards=perhaps\n"), POL_PATH, 3, "Wildcards=perhaps is not a boolean" },
        { P("[Rule]\nName=r\nSubject=O=Tenant A\n"), POL_PATH, 3,
          "Subject=: 'A' is not TYPE=VALUE: list attributes as O=VALUE, OU=, L=, ST= or C=, separated by spaces, with a "
          "space inside a value written as '\\ ' or '\\20' (e.g. Subject=O=Tenant\\ A OU=*)" },
        { P("[Rule]\nName=r\nSubject=CN=*\n"), POL_PATH, 3, "Subject=: 'CN=*': the CN is not listed in Subject=, Names= decides it" },
        { P("[Rule]\nName=r\nSubject=cn=a.example.com\n"), POL_PATH, 3, "the CN is not listed in Subject=" },
        { P("[Rule]\nName=r\nSubject=E=x@example.com\n"), POL_PATH, 3,
          "Subject=: 'E=x@example.com' has an attribute type other than CN, O, OU, L, ST and C; give TYPE=VALUE" },
        { P("[Rule]\nName=r\nSubject=E=*\n"), POL_PATH, 3, "'E=*' has an attribute type other than O, OU, L, ST and C" },
        { P("[Rule]\nName=r\nSubject=O=a,OU=b\n"), POL_PATH, 3, "'O=a,OU=b' has more than one attribute" },
        { P("[Rule]\nName=r\nSubject=O=\n"), POL_PATH, 3, "'O=' has an empty attribute value" },
        { P("[Rule]\nName=r\nSubject=O\n"), POL_PATH, 3, "'O' is not TYPE=VALUE" },
        { P("[Rule]\nName=r\nSubject==x\n"), POL_PATH, 3, "'=x' is not TYPE=VALUE" },
        { P("[Rule]\nName=r\nSubject=O=x\\\n"), POL_PATH, 3, "has an invalid escape" },
        { P("[Rule]\nName=r\nSubject=O=\\*\n"), POL_PATH, 3, "has an invalid escape" },
        { P("[Rule]\nName=r\nSubject=C=Germany\n"), POL_PATH, 3, "C (country) that is not two letters" },
        { P("[Rule]\nName=r\nSubject=O=a+OU=b\n"), POL_PATH, 3, "multi-valued RDN" },
        { P("[Rule]\nName=r\nUsages=sign\n"), POL_PATH, 3,
          "Usages=: 'sign' is not a usage: use signature, encryption or both" },
        { P("[Rule]\nName=r\nUsages=signature Both\n"), POL_PATH, 3, "'Both' is not a usage" },
        { P("[Rule]\nName=r\nMaxRequests=20\n"), POL_PATH, 3, "MaxRequests=20 is not COUNT/WINDOW" },
        { P("[Rule]\nName=r\nMaxRequests=0/1h\n"), POL_PATH, 3, "is not COUNT/WINDOW" },
        { P("[Rule]\nName=r\nMaxRequests=20/1w\n"), POL_PATH, 3, "is not COUNT/WINDOW" },
        { P("[Rule]\nName=r\nMaxRequests=20/400d\n"), POL_PATH, 3, "is not COUNT/WINDOW" },
        { P("[Rule]\nName=r\nMaxRequests=20/0h\n"), POL_PATH, 3, "is not COUNT/WINDOW" },
        { P("[Rule]\nName=r\nMaxRequests=20/\n"), POL_PATH, 3, "is not COUNT/WINDOW" },
        { P("[Rule]\nName=r\nMaxRequests=/1h\n"), POL_PATH, 3, "is not COUNT/WINDOW" },
        { P("[Rule]\nName=r\nMaxRequests=x/1h\n"), POL_PATH, 3, "is not COUNT/WINDOW" },
        { P("[Rule]\nName=r\nMaxRequests=none\n"), POL_PATH, 3, "or MaxRequests=unlimited" },
        { M(MAIN "[Broker]\nDefaultMaxRequests=100\n"), MAIN_PATH, 5,
          "DefaultMaxRequests=100 is not COUNT/WINDOW: COUNT 1..1000000, WINDOW a number with s, m, h or d, at most 366 "
          "days (e.g. DefaultMaxRequests=20/1h), or DefaultMaxRequests=unlimited" },
        { M(MAIN "[Broker]\nDefaultMaxRequests=0/1h\n"), MAIN_PATH, 5, "DefaultMaxRequests=0/1h is not COUNT/WINDOW" },
        { M(MAIN "[Broker]\nDefaultMaxRequests=5/367d\n"), MAIN_PATH, 5, "is not COUNT/WINDOW" },
        { P("[Rule]\nName=r\nMaxActive=0\n"), POL_PATH, 3, "MaxActive=0 is not a whole number from 1" },
        { P("[Rule]\nName=r\nMaxActive=many\n"), POL_PATH, 3, "MaxActive=many" },
        { P("[Rule]\nName=r\nRealm=EXAMPLE.COM\n"), POL_PATH, 3, "unknown key Realm= in [Rule]" },
        { P("[CA]\nURL=https://ndes.example.com/\n"), POL_PATH, 1, "unknown section [CA]: this file may contain [Rule] only" },
        { P("Name=r\n[Rule]\n"), POL_PATH, 1, "Name= appears before the first section: put it under [Rule]" },
};

static void test_errors(void **state) {
        for (size_t i = 0; i < sizeof(error_cases) / sizeof(error_cases[0]); i++) {
                const ErrorCase *c = &error_cases[i];
                CbConfig *conf = NULL;
                CbConfigError e = {};
                char buf[1200];
                int r = parse(&c->files, &conf, &e);
                if (r >= 0)
                        fail_msg("case %zu: accepted, expected %s:%u: %s", i, c->path, c->line, c->message);
                assert_null(conf);
                cb_config_error_format(&e, buf, sizeof buf);
                if (strcmp(e.path, c->path) != 0 || e.line != c->line || !strstr(e.message, c->message))
                        fail_msg("case %zu: got '%s', expected %s:%u: ...%s...", i, buf, c->path, c->line, c->message);
                /* the formatted message leads with file and line */
                char prefix[600];
                if (c->line)
                        snprintf(prefix, sizeof prefix, "%s:%u: ", c->path, c->line);
                else
                        snprintf(prefix, sizeof prefix, "%s: ", c->path);
                assert_int_equal(strncmp(buf, prefix, strlen(prefix)), 0);
        }
}

/* A NUL in the middle of a file (the table above uses strlen(), so this is done by hand). */
static void test_nul_in_file(void **state) {
        static const char pol[] = "[Rule]\nName=r\nNames=a.example.com\0.evil.net\n";
        CbConfigSource s[] = {
                { MAIN_PATH, MAIN, strlen(MAIN) },
                { POL_PATH, pol, sizeof pol - 1 },
        };
        CbConfig *c = NULL;
        CbConfigError e = {};
        assert_int_equal(cb_config_parse(s, 2, &c, &e), -EINVAL);
        assert_string_equal(e.path, POL_PATH);
        assert_int_equal(e.line, 3);
        assert_non_null(strstr(e.message, "NUL byte"));
}

static void test_defaults(void **state) {
        Files f = { .main = MAIN, .ca = CA };
        CbConfig *c = parse_ok(&f);

        assert_string_equal(c->realm, "EXAMPLE.COM");
        assert_int_equal(c->n_kdcs, 0);
        assert_string_equal(c->principal, "svc-scep@EXAMPLE.COM");
        assert_string_equal(c->keytab, "/etc/certbroker/svc-scep.keytab");
        assert_int_equal(c->mode, CB_KERBEROS_MODE_KEYTAB);
        assert_string_equal(c->permitted_suffix, "example.com");       /* lower-cased Realm */
        assert_true(c->root_bypasses_rules);
        assert_string_equal(c->state_directory, "/var/lib/certbroker");
        assert_int_equal(c->n_key_pool, 0);
        assert_int_equal(c->retain_finished_usec, 30 * 86400 * CB_USEC_PER_SEC);
        assert_int_equal(c->max_stored_requests, 1000);
        assert_int_equal(c->n_rules, 0);

        assert_int_equal(c->n_cas, 1);
        const CbCa *ca = &c->cas[0];
        assert_string_equal(ca->name, "corp");
        assert_string_equal(ca->path, CA_PATH);
        assert_string_equal(ca->url, "https://ndes.example.com/certsrv/mscep/mscep.dll");
        assert_string_equal(ca->url_host, "ndes.example.com");
        assert_string_equal(ca->admin_url, "https://ndes.example.com/certsrv/mscep_admin/");
        assert_string_equal(ca->admin_url_host, "ndes.example.com");
        assert_true(ca->admin_url_derived);
        assert_int_equal(ca->authentication, CB_AUTHENTICATION_KERBEROS);
        assert_int_equal(ca->challenge, CB_CHALLENGE_MSCEP_ADMIN);
        assert_null(ca->challenge_file);
        assert_null(ca->trust_anchors);
        assert_false(ca->has_fingerprint);
        assert_int_equal(ca->default_key, CB_KEY_RSA_2048);
        assert_int_equal(ca->max_outstanding_challenges, 4);
        assert_int_equal(ca->timeout_usec, 30 * CB_USEC_PER_SEC);
        assert_int_equal(ca->poll_interval_usec, 60 * CB_USEC_PER_SEC);
        assert_int_equal(ca->pending_deadline_usec, 604800 * CB_USEC_PER_SEC);
        assert_false(ca->allow_legacy_ciphers);
        assert_true(ca->is_default);            /* the only CA */
        assert_ptr_equal(cb_config_default_ca(c), ca);
        assert_ptr_equal(cb_config_find_ca(c, ""), ca);
        assert_ptr_equal(cb_config_find_ca(c, NULL), ca);
        assert_ptr_equal(cb_config_find_ca(c, "corp"), ca);
        assert_null(cb_config_find_ca(c, "nope"));
        cb_config_free(c);
}

/* The configuration contract's examples verbatim (those of certbroker.conf(5)), with their inline comments. */
static const char config_md_main[] =
        "[Kerberos]\n"
        "Realm=EXAMPLE.COM                    # required: the Active Directory Kerberos realm\n"
        "KDC=kdc.example.com                  # optional, one or more host[:port]; else the system krb5 configuration\n"
        "Principal=svc-scep@EXAMPLE.COM       # required: the service user, user@REALM\n"
        "Keytab=/etc/certbroker/svc-scep.keytab   # default; readable by the daemon only\n"
        "Mode=keytab                          # keytab | gss-proxy (the daemon never opens the keytab; gss-proxy holds it)\n"
        "\n"
        "[Broker]\n"
        "PermittedSuffix=example.com          # default: Realm in lower case\n"
        "RootBypassesRules=yes                # root may request any name under the suffix without a rule\n"
        "StateDirectory=/var/lib/certbroker\n"
        "KeyPool=                             # e.g. \"rsa:2048=4 ec:p256=8\": keys kept pre-generated\n";
static const char config_md_ca[] =
        "[CA]\n"
        "URL=https://ndes.example.com/certsrv/mscep/mscep.dll       # required\n"
        "AdminURL=https://ndes.example.com/certsrv/mscep_admin/     # default: derived from URL\n"
        "Authentication=kerberos            # kerberos (\"Prefer Kerberos authentication\") | none\n"
        "Challenge=mscep-admin              # mscep-admin | static | none\n"
        "ChallengeFile=                     # for static: a root-only file holding the password\n"
        "TrustAnchors=                      # PEM file of TLS roots for https (default: system store)\n"
        "CAFingerprint=                     # sha256:<hex> of the SCEP CA certificate, checked on GetCACert\n"
        "DefaultKey=rsa:2048\n"
        "MaxOutstandingChallenges=4         # NDES keeps only a few unused challenges\n"
        "Timeout=30                         # seconds per HTTP exchange\n"
        "PollInterval=60                    # first poll of a PENDING request; backs off from there\n"
        "PendingDeadline=604800             # give up polling after this many seconds\n"
        "AllowLegacyCiphers=no              # accept single-DES / SHA-1 replies from old servers\n"
        "Default=no                         # the CA used when Enroll names \"\"\n"
        "RenewBefore=33%                    # renewal lead: a time span (30d, 12h, 90s, or seconds) or a share of the lifetime\n"
        "RenewJitter=5%                     # up to this much earlier at random per request (a time span, or a share of the lifetime), so a fleet does not renew at once\n";
static const char config_md_policy[] =
        "[Rule]\n"
        "Name=tenant-a-web                  # required, unique across all files\n"
        "Users=alice 1001                   # selectors: user names or uids\n"
        "Groups=tenant-a                    # group names or gids (primary or supplementary)\n"
        "Units=nginx-a.service              # systemd unit of the caller, where known\n"
        "SELinuxTypes=httpd_t               # type of the caller's SELinux label, where the bus provides it\n"
        "CAs=corp                           # default: every CA\n"
        "Names=*.a.example.com a.example.com\n"
        "Keys=rsa:2048 ec:p256              # default: every key type\n"
        "Wildcards=no                       # may names themselves be wildcards (*.a.example.com)\n"
        "MaxRequests=20/1h                  # rate per caller uid; default unlimited\n"
        "MaxActive=5                        # non-terminal requests per caller uid at once\n";

static void test_config_md_examples(void **state) {
        Files f = { .main = config_md_main, .ca = config_md_ca, .pol = config_md_policy };
        CbConfig *c = parse_ok(&f);

        assert_string_equal(c->realm, "EXAMPLE.COM");
        assert_int_equal(c->n_kdcs, 1);
        assert_string_equal(c->kdcs[0], "kdc.example.com");
        assert_string_equal(c->principal, "svc-scep@EXAMPLE.COM");
        assert_string_equal(c->keytab, "/etc/certbroker/svc-scep.keytab");
        assert_string_equal(c->permitted_suffix, "example.com");
        assert_true(c->root_bypasses_rules);
        assert_int_equal(c->n_key_pool, 0);

        const CbCa *ca = &c->cas[0];
        assert_string_equal(ca->admin_url, "https://ndes.example.com/certsrv/mscep_admin/");
        assert_false(ca->admin_url_derived);
        assert_false(ca->has_fingerprint);
        assert_true(ca->is_default);            /* Default=no, but it is the only CA */
        assert_int_equal(ca->default_line, 0);

        assert_int_equal(c->n_rules, 1);
        const CbRule *r = &c->rules[0];
        assert_string_equal(r->name, "tenant-a-web");
        assert_string_equal(r->path, POL_PATH);
        assert_int_equal(r->line, 1);
        assert_int_equal(r->n_users, 2);
        assert_string_equal(r->users[0], "alice");
        assert_string_equal(r->users[1], "1001");
        assert_int_equal(r->n_groups, 1);
        assert_string_equal(r->groups[0], "tenant-a");
        assert_int_equal(r->n_units, 1);
        assert_string_equal(r->units[0], "nginx-a.service");
        assert_int_equal(r->n_selinux_types, 1);
        assert_string_equal(r->selinux_types[0], "httpd_t");
        assert_int_equal(r->n_cas, 1);
        assert_string_equal(r->cas[0], "corp");
        assert_int_equal(r->cas_line, 7);
        assert_int_equal(r->n_names, 2);
        assert_string_equal(r->names[0], "*.a.example.com");
        assert_string_equal(r->names[1], "a.example.com");
        assert_true(r->keys_set);
        assert_true(r->keys[CB_KEY_RSA_2048]);
        assert_true(r->keys[CB_KEY_EC_P256]);
        assert_false(r->keys[CB_KEY_RSA_4096]);
        assert_false(r->wildcards);
        assert_int_equal(r->max_requests, 20);
        assert_int_equal(r->max_requests_window_usec, 3600 * CB_USEC_PER_SEC);
        assert_int_equal(r->max_active, 5);
        assert_ptr_equal(cb_config_find_rule(c, "tenant-a-web"), r);
        assert_null(cb_config_find_rule(c, "x"));
        cb_config_free(c);
}

static void test_every_key_set(void **state) {
        Files f = {
                .main = "\xef\xbb\xbf[Kerberos]\r\n"
                        "Realm = AD.EXAMPLE.COM\r\n"
                        "  KDC=DC1.ad.example.com:88 dc2.ad.example.com 10.0.0.5:750 [2001:db8::1]:88 [::1]\r\n"
                        "Principal=svc-scep@AD.EXAMPLE.COM ; comment\r\n"
                        "Keytab=/etc/krb5/svc#1.keytab\r\n"
                        "Mode=gss-proxy\r\n"
                        "; a comment line\r\n"
                        "# another\r\n"
                        "[Broker]\r\n"
                        "PermittedSuffix=Example.COM.\r\n"
                        "RootBypassesRules=no\r\n"
                        "StateDirectory=/srv/certbroker\r\n"
                        "KeyPool=rsa:2048=4 ec:p256=8\trsa:4096=1\r\n"
                        "RetainFinished=12h\r\n"
                        "MaxStoredRequests=1000000\r\n",
                .ca = "[CA]\n"
                      "URL=http://NDES.example.com:8080/scep/pkiclient.exe\n"
                      "AdminURL=https://admin.example.com/certsrv/mscep_admin/\n"
                      "Authentication=none\n"
                      "Challenge=static\n"
                      "ChallengeFile=/etc/certbroker/corp.challenge\n"
                      "TrustAnchors=/etc/certbroker/roots.pem\n"
                      "CAFingerprint=SHA256:00:11:22:33:44:55:66:77:88:99:aa:bb:cc:dd:ee:ff:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF\n"
                      "DefaultKey=ec:p384\n"
                      "MaxOutstandingChallenges=8\n"
                      "Timeout=10\n"
                      "PollInterval=120\n"
                      "PendingDeadline=86400\n"
                      "AllowLegacyCiphers=yes\n"
                      "Default=yes\n",
                .ca2 = "[CA]\nURL=https://lab.example.com/certsrv/mscep/mscep.dll\nChallenge=none\n"
                       "CAFingerprint=sha256:00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n",
                .pol = "[Rule]\nName=a\nGroups=2000 wheel\nNames=**.example.com\nWildcards=yes\nMaxRequests=5/30m\n"
                       "[Rule]\nName=b\nSELinuxTypes=httpd_t unconfined_t\nMaxRequests=100/d\n"
                       "[Rule]\nName=c\nUnits=a@b.service x.socket\nMaxRequests=3/10s\nKeys=\nCAs=\n"
                       "[Rule]\nName=d\nUsers=1001\nMaxRequests=7/h\nUsages=signature both\n",
        };
        CbConfig *c = parse_ok(&f);

        assert_string_equal(c->realm, "AD.EXAMPLE.COM");
        assert_int_equal(c->n_kdcs, 5);
        assert_string_equal(c->kdcs[0], "dc1.ad.example.com:88");
        assert_string_equal(c->kdcs[1], "dc2.ad.example.com");
        assert_string_equal(c->kdcs[2], "10.0.0.5:750");
        assert_string_equal(c->kdcs[3], "[2001:db8::1]:88");
        assert_string_equal(c->kdcs[4], "[::1]");
        assert_string_equal(c->principal, "svc-scep@AD.EXAMPLE.COM");
        assert_string_equal(c->keytab, "/etc/krb5/svc#1.keytab");      /* '#' not after a blank */
        assert_int_equal(c->mode, CB_KERBEROS_MODE_GSS_PROXY);
        assert_string_equal(c->permitted_suffix, "example.com");
        assert_false(c->root_bypasses_rules);
        assert_string_equal(c->state_directory, "/srv/certbroker");
        assert_int_equal(c->n_key_pool, 3);
        assert_int_equal(c->key_pool[0].type, CB_KEY_RSA_2048);
        assert_int_equal(c->key_pool[0].count, 4);
        assert_int_equal(c->key_pool[1].type, CB_KEY_EC_P256);
        assert_int_equal(c->key_pool[1].count, 8);
        assert_int_equal(c->key_pool[2].type, CB_KEY_RSA_4096);
        assert_int_equal(c->key_pool[2].count, 1);
        assert_int_equal(c->retain_finished_usec, 12 * 3600 * CB_USEC_PER_SEC);
        assert_int_equal(c->max_stored_requests, 1000000);

        assert_int_equal(c->n_cas, 2);
        const CbCa *ca = cb_config_find_ca(c, "corp"), *lab = cb_config_find_ca(c, "lab");
        assert_ptr_equal(ca, &c->cas[0]);       /* sorted by name */
        assert_string_equal(ca->url_host, "ndes.example.com");
        assert_string_equal(ca->admin_url, "https://admin.example.com/certsrv/mscep_admin/");
        assert_string_equal(ca->admin_url_host, "admin.example.com");
        assert_int_equal(ca->authentication, CB_AUTHENTICATION_NONE);
        assert_int_equal(ca->challenge, CB_CHALLENGE_STATIC);
        assert_string_equal(ca->challenge_file, "/etc/certbroker/corp.challenge");
        assert_string_equal(ca->trust_anchors, "/etc/certbroker/roots.pem");
        assert_true(ca->has_fingerprint);
        static const uint8_t fp[32] = { 0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff,
                                        0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff };
        assert_memory_equal(ca->fingerprint, fp, 32);
        assert_memory_equal(lab->fingerprint, fp, 32);
        assert_int_equal(ca->default_key, CB_KEY_EC_P384);
        assert_int_equal(ca->max_outstanding_challenges, 8);
        assert_int_equal(ca->timeout_usec, 10 * CB_USEC_PER_SEC);
        assert_int_equal(ca->poll_interval_usec, 120 * CB_USEC_PER_SEC);
        assert_int_equal(ca->pending_deadline_usec, 86400 * CB_USEC_PER_SEC);
        assert_true(ca->allow_legacy_ciphers);
        assert_true(ca->is_default);
        assert_int_equal(ca->default_line, 15);
        assert_false(lab->is_default);
        assert_ptr_equal(cb_config_default_ca(c), ca);
        assert_int_equal(lab->challenge, CB_CHALLENGE_NONE);
        assert_string_equal(lab->admin_url, "https://lab.example.com/certsrv/mscep_admin/");

        assert_int_equal(c->n_rules, 4);
        assert_int_equal(c->rules[0].n_groups, 2);
        assert_string_equal(c->rules[0].names[0], "**.example.com");
        assert_true(c->rules[0].wildcards);
        assert_int_equal(c->rules[0].max_requests, 5);
        assert_int_equal(c->rules[0].max_requests_window_usec, 1800 * CB_USEC_PER_SEC);
        assert_int_equal(c->rules[1].line, 7);
        assert_int_equal(c->rules[1].n_selinux_types, 2);
        assert_int_equal(c->rules[1].n_names, 0);
        assert_int_equal(c->rules[1].max_requests_window_usec, 86400 * CB_USEC_PER_SEC);
        assert_int_equal(c->rules[2].n_units, 2);
        assert_false(c->rules[2].keys_set);     /* Keys= empty: every key type */
        assert_int_equal(c->rules[2].n_cas, 0);
        assert_int_equal(c->rules[2].max_requests_window_usec, 10 * CB_USEC_PER_SEC);
        assert_int_equal(c->rules[3].max_requests, 7);
        assert_int_equal(c->rules[3].max_requests_window_usec, 3600 * CB_USEC_PER_SEC);
        assert_int_equal(c->rules[3].max_active, 0);
        assert_false(c->rules[2].usages_set);   /* every usage */
        assert_true(c->rules[3].usages_set);
        assert_true(c->rules[3].usages[CB_USAGE_SIGNATURE]);
        assert_false(c->rules[3].usages[CB_USAGE_ENCRYPTION]);
        assert_true(c->rules[3].usages[CB_USAGE_BOTH]);
        cb_config_free(c);
}

static void test_default_max_requests(void **state) {
        static const char pol[] =
                "[Rule]\nName=own\nUsers=alice\nMaxRequests=20/1d\n"
                "[Rule]\nName=unset\nUsers=bob\n"
                "[Rule]\nName=empty\nUsers=carol\nMaxRequests=\n"
                "[Rule]\nName=off\nUsers=dave\nMaxRequests=unlimited\n";
        Files f = { .main = MAIN, .pol = pol };
        CbConfig *c = parse_ok(&f);

        assert_int_equal(c->default_max_requests, 100);
        assert_int_equal(c->default_max_requests_window_usec, 3600 * CB_USEC_PER_SEC);
        const CbRule *own = cb_config_find_rule(c, "own"), *unset = cb_config_find_rule(c, "unset"),
                     *empty = cb_config_find_rule(c, "empty"), *off = cb_config_find_rule(c, "off");
        assert_false(own->max_requests_default);
        assert_int_equal(own->max_requests, 20);
        assert_int_equal(own->max_requests_window_usec, 86400 * CB_USEC_PER_SEC);
        assert_true(unset->max_requests_default);
        assert_int_equal(unset->max_requests, 100);
        assert_int_equal(unset->max_requests_window_usec, 3600 * CB_USEC_PER_SEC);
        assert_true(empty->max_requests_default);       /* an empty value means the default */
        assert_int_equal(empty->max_requests, 100);
        assert_false(off->max_requests_default);        /* a rule may switch its limit off */
        assert_int_equal(off->max_requests, 0);
        cb_config_free(c);

        /* policy files need not come after certbroker.conf in the list */
        CbConfigSource s[] = {
                { POL_PATH, pol, strlen(pol) },
                { MAIN_PATH, MAIN "[Broker]\nDefaultMaxRequests=7/30m\n", strlen(MAIN "[Broker]\nDefaultMaxRequests=7/30m\n") },
        };
        assert_int_equal(cb_config_parse(s, 2, &c, NULL), 0);
        unset = cb_config_find_rule(c, "unset");
        assert_int_equal(c->default_max_requests, 7);
        assert_int_equal(unset->max_requests, 7);
        assert_int_equal(unset->max_requests_window_usec, 1800 * CB_USEC_PER_SEC);
        assert_int_equal(cb_config_find_rule(c, "own")->max_requests, 20);
        c = cb_config_free(c);

        Files g = { .main = MAIN "[Broker]\nDefaultMaxRequests=unlimited\n", .pol = pol };
        c = parse_ok(&g);
        assert_int_equal(c->default_max_requests, 0);
        assert_true(cb_config_find_rule(c, "unset")->max_requests_default);
        assert_int_equal(cb_config_find_rule(c, "unset")->max_requests, 0);
        assert_int_equal(cb_config_find_rule(c, "own")->max_requests, 20);
        cb_config_free(c);
}

static void test_subject_patterns(void **state) {
        Files f = { .main = MAIN, .pol = "[Rule]\nName=r\nUsers=alice\n"
                                      "Subject=O=Tenant\\ A\tou=* O=Tenant\\2C\\20B c=de L=\\2A O=\\ x\\ \\ y\n"
                                      "[Rule]\nName=none\nUsers=bob\nSubject=\n" };
        CbConfig *c = parse_ok(&f);
        const CbRule *r = &c->rules[0];
        static const struct {
                const char *type, *value, *text;
        } want[] = {
                { "O", "Tenant A", "O=Tenant\\ A" },
                { "OU", NULL, "ou=*" },
                { "O", "Tenant, B", "O=Tenant\\2C\\20B" },
                { "C", "DE", "c=de" },
                { "L", "*", "L=\\2A" },                      /* a literal '*' */
                { "O", " x  y", "O=\\ x\\ \\ y" },
        };
        assert_int_equal(r->n_subject, sizeof(want) / sizeof(want[0]));
        for (size_t i = 0; i < r->n_subject; i++) {
                assert_string_equal(r->subject[i].type, want[i].type);
                if (want[i].value)
                        assert_string_equal(r->subject[i].value, want[i].value);
                else
                        assert_null(r->subject[i].value);
                assert_string_equal(r->subject[i].text, want[i].text);
        }
        assert_int_equal(c->rules[1].n_subject, 0);     /* empty: the default, CN only */
        cb_config_free(c);
}

static void test_kdc_hosts(void **state) {
        Files f = { .main = MAIN "KDC=KDC.Example.COM.:88 10.0.0.5 127.0.0.1:8888 [::1]:88 [2001:db8::5] example.com\n" };
        CbConfig *c = parse_ok(&f);
        assert_int_equal(c->n_kdcs, 6);
        cb_config_free(c);

        /* the suffix may be set after [Kerberos] */
        Files g = { .main = MAIN "KDC=dc1.corp.example.org\n[Broker]\nPermittedSuffix=corp.example.org\n" };
        c = parse_ok(&g);
        assert_string_equal(c->kdcs[0], "dc1.corp.example.org");
        cb_config_free(c);
}

static void test_cleartext_cas(void **state) {
        static const char *const ok[] = {
                /* pinned CA, no Kerberos */
                "[CA]\nURL=http://ndes.example.com/certsrv/mscep/mscep.dll\nCAFingerprint=" FP "\nAuthentication=none\n",
                /* pinned CA, Kerberos on an https:// admin page */
                "[CA]\nURL=http://ndes.example.com/certsrv/mscep/mscep.dll\nCAFingerprint=" FP "\n"
                "AdminURL=https://ndes.example.com/certsrv/mscep_admin/\n",
                /* a derived admin page that is never fetched (static challenge) */
                "[CA]\nURL=http://ndes.example.com/certsrv/mscep/mscep.dll\nCAFingerprint=" FP "\n"
                "Challenge=static\nChallengeFile=/etc/certbroker/corp.challenge\n",
                /* a cleartext admin page without Kerberos */
                CA "AdminURL=http://ndes.example.com/certsrv/mscep_admin/\nAuthentication=none\n",
        };
        for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
                Files f = { .main = MAIN, .ca = ok[i] };
                cb_config_free(parse_ok(&f));
        }
}

static void test_retain_finished_spans(void **state) {
        static const struct {
                const char *value;
                uint64_t sec;
        } spans[] = {
                { "60", 60 }, { "90", 90 }, { "90s", 90 }, { "60s", 60 }, { "2m", 120 }, { "12h", 43200 },
                { "30d", 2592000 }, { "3650d", UINT64_C(315360000) }, { "0001m", 60 },
        };
        for (size_t i = 0; i < sizeof(spans) / sizeof(spans[0]); i++) {
                char m[256];
                snprintf(m, sizeof m, MAIN "[Broker]\nRetainFinished=%s\nMaxStoredRequests=1\n", spans[i].value);
                Files f = { .main = m };
                CbConfig *c = parse_ok(&f);
                if (c->retain_finished_usec != spans[i].sec * CB_USEC_PER_SEC)
                        fail_msg("RetainFinished=%s: %llu usec, expected %llu s", spans[i].value,
                                 (unsigned long long) c->retain_finished_usec, (unsigned long long) spans[i].sec);
                assert_int_equal(c->max_stored_requests, 1);
                cb_config_free(c);
        }
}

static void test_renewal_mode(void **state) {
        static const struct {
                const char *value;
                CbRenewalMode mode;
        } t[] = {
                { "reenroll", CB_RENEWAL_REENROLL },
                { "scep-renewal", CB_RENEWAL_SCEP_RENEWAL },
                { "auto", CB_RENEWAL_AUTO },
        };
        for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
                char ca[512];
                snprintf(ca, sizeof ca, CA "Renewal=%s\n", t[i].value);
                Files f = { .main = MAIN, .ca = ca };
                CbConfig *c = parse_ok(&f);
                assert_int_equal(c->cas[0].renewal, t[i].mode);
                assert_string_equal(cb_renewal_mode_to_string(c->cas[0].renewal), t[i].value);
                cb_config_free(c);
        }
        /* Default: reenroll (a fresh enrollment with a challenge). */
        Files f = { .main = MAIN, .ca = CA };
        CbConfig *c = parse_ok(&f);
        assert_int_equal(c->cas[0].renewal, CB_RENEWAL_REENROLL);
        cb_config_free(c);
}

static void test_renew_leads(void **state) {
        static const struct {
                const char *before, *jitter;
                bool before_percent, jitter_percent;
                uint64_t before_value, jitter_value;    /* percent, or seconds */
        } t[] = {
                { "33%", "5%", true, true, 33, 5 },
                { "30d", "0", false, false, 2592000, 0 },
                { "90", "12h", false, false, 90, 43200 },
                { "100%", "0%", true, true, 100, 0 },
        };
        for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
                char ca[512];
                snprintf(ca, sizeof ca, CA "RenewBefore=%s\nRenewJitter=%s\n", t[i].before, t[i].jitter);
                Files f = { .main = MAIN, .ca = ca };
                CbConfig *c = parse_ok(&f);
                const CbCa *x = &c->cas[0];
                assert_int_equal(x->renew_before.percent, t[i].before_percent);
                assert_int_equal(x->renew_jitter.percent, t[i].jitter_percent);
                if (t[i].before_percent)
                        assert_int_equal(x->renew_before.value, t[i].before_value);
                else
                        assert_int_equal(x->renew_before.usec, t[i].before_value * CB_USEC_PER_SEC);
                if (t[i].jitter_percent)
                        assert_int_equal(x->renew_jitter.value, t[i].jitter_value);
                else
                        assert_int_equal(x->renew_jitter.usec, t[i].jitter_value * CB_USEC_PER_SEC);
                cb_config_free(c);
        }
        /* Defaults: 33% and 5%; a share of a lifetime, and a span whatever the lifetime. */
        Files f = { .main = MAIN, .ca = CA };
        CbConfig *c = parse_ok(&f);
        assert_true(c->cas[0].renew_before.percent && c->cas[0].renew_before.value == 33);
        assert_true(c->cas[0].renew_jitter.percent && c->cas[0].renew_jitter.value == 5);
        assert_int_equal(cb_lead_usec(&c->cas[0].renew_before, 300ULL * CB_USEC_PER_SEC), 99ULL * CB_USEC_PER_SEC);
        CbLead span = { .usec = 7 };
        assert_int_equal(cb_lead_usec(&span, 1000), 7);
        cb_config_free(c);
}

static void test_default_ca_choice(void **state) {
        /* two CAs, none marked: no default */
        Files f = { .main = MAIN, .ca = CA, .ca2 = CA };
        CbConfig *c = parse_ok(&f);
        assert_int_equal(c->n_cas, 2);
        assert_null(cb_config_default_ca(c));
        assert_null(cb_config_find_ca(c, ""));
        assert_non_null(cb_config_find_ca(c, "lab"));
        cb_config_free(c);

        /* two CAs, one marked */
        f.ca2 = CA "Default=true\n";
        c = parse_ok(&f);
        assert_ptr_equal(cb_config_default_ca(c), cb_config_find_ca(c, "lab"));
        cb_config_free(c);

        /* no CA at all is allowed */
        Files g = { .main = MAIN };
        c = parse_ok(&g);
        assert_int_equal(c->n_cas, 0);
        assert_null(cb_config_default_ca(c));
        cb_config_free(c);
}

static void test_comments_and_long_lines(void **state) {
        char pol[12000];
        /* a Names= line far longer than inih's 200-byte buffer */
        strcpy(pol, "[Rule]\nName=r\nUsers=alice   # tenant a\nNames=");
        for (int i = 0; i < 100; i++) {
                char n[40];
                snprintf(n, sizeof n, "host%03d.a.example.com ", i);
                strcat(pol, n);
        }
        strcat(pol, "   ; the last comment\nWildcards=yes;no\n");
        Files f = { .main = MAIN, .pol = pol };
        CbConfig *c = NULL;
        CbConfigError e = {};
        /* "yes;no": ';' not after a blank is part of the value, so it is not a boolean */
        assert_int_equal(parse(&f, &c, &e), -EINVAL);
        assert_int_equal(e.line, 5);
        assert_non_null(strstr(e.message, "Wildcards=yes;no is not a boolean"));

        char *w = strstr(pol, "Wildcards=yes;no");
        strcpy(w, "Wildcards=yes ;no\n");
        c = parse_ok(&f);
        assert_int_equal(c->rules[0].n_names, 100);
        assert_string_equal(c->rules[0].names[99], "host099.a.example.com");
        assert_true(c->rules[0].wildcards);
        assert_int_equal(c->rules[0].n_users, 1);
        cb_config_free(c);

        /* a line over the limit */
        char *big = malloc(CB_CONFIG_LINE_MAX + 100);
        assert_non_null(big);
        strcpy(big, "[Rule]\nName=r\nNames=");
        size_t l = strlen(big);
        memset(big + l, 'a', CB_CONFIG_LINE_MAX);
        strcpy(big + l + CB_CONFIG_LINE_MAX, "\n");
        f.pol = big;
        assert_int_equal(parse(&f, &c, &e), -E2BIG);
        assert_int_equal(e.line, 3);
        assert_non_null(strstr(e.message, "longer than 8192 bytes"));
        free(big);

        /* a file over the limit */
        size_t n = CB_CONFIG_FILE_MAX + 1;
        big = malloc(n + 1);
        assert_non_null(big);
        memset(big, '\n', n);
        big[n] = 0;
        f.pol = big;
        assert_int_equal(parse(&f, &c, &e), -E2BIG);
        assert_string_equal(e.path, POL_PATH);
        assert_int_equal(e.line, 0);
        free(big);

        /* a last line without newline, and an empty value meaning the default */
        Files g = { .main = MAIN "[Broker]\nRootBypassesRules=", .pol = "[Rule]\nName=r" };
        c = parse_ok(&g);
        assert_true(c->root_bypasses_rules);
        assert_string_equal(c->rules[0].name, "r");
        cb_config_free(c);
}

static void test_sources(void **state) {
        CbConfig *c = NULL;
        CbConfigError e = {};

        /* no certbroker.conf */
        CbConfigSource only_ca[] = { { CA_PATH, CA, strlen(CA) } };
        assert_int_equal(cb_config_parse(only_ca, 1, &c, &e), -EINVAL);
        assert_non_null(strstr(e.message, "certbroker.conf"));

        /* two certbroker.conf */
        CbConfigSource two[] = { { MAIN_PATH, MAIN, strlen(MAIN) }, { "/tmp/x/certbroker.conf", MAIN, strlen(MAIN) } };
        assert_int_equal(cb_config_parse(two, 2, &c, &e), -EINVAL);
        assert_string_equal(e.path, "/tmp/x/certbroker.conf");
        assert_non_null(strstr(e.message, "a second certbroker.conf"));

        /* unknown kinds and bad CA names */
        static const struct {
                const char *path, *message;
        } bad[] = {
                { "/etc/certbroker/ca.d/bad name.conf", "'bad name.conf' is not a valid CA name" },
                { "/etc/certbroker/ca.d/bad.name.conf", "is not a valid CA name" },
                { "/etc/certbroker/ca.d/x\xc3\xa9.conf", "is not a valid CA name" },
                { "/etc/certbroker/ca.d/.conf", "not a configuration file certbroker knows" },
                { "/etc/certbroker/ca.d/corp.cfg", "not a configuration file certbroker knows" },
                { "/etc/certbroker/policy.d/a.conf", "not a configuration file certbroker knows" },
                { "/etc/certbroker/other.conf", "not a configuration file certbroker knows" },
                { "/etc/certbroker/ca.d/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.conf", "at most 64 bytes" },
        };
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                CbConfigSource s[] = { { MAIN_PATH, MAIN, strlen(MAIN) }, { bad[i].path, CA, strlen(CA) } };
                memset(&e, 0, sizeof e);
                assert_int_equal(cb_config_parse(s, 2, &c, &e), -EINVAL);
                assert_string_equal(e.path, bad[i].path);
                if (!strstr(e.message, bad[i].message))
                        fail_msg("%s: '%s' lacks '%s'", bad[i].path, e.message, bad[i].message);
        }

        /* the same CA twice, relative paths work too */
        CbConfigSource dup[] = { { "certbroker.conf", MAIN, strlen(MAIN) }, { "ca.d/corp.conf", CA, strlen(CA) },
                                 { "other/ca.d/corp.conf", CA, strlen(CA) } };
        assert_int_equal(cb_config_parse(dup, 3, &c, &e), -EINVAL);
        assert_string_equal(e.path, "other/ca.d/corp.conf");
        assert_non_null(strstr(e.message, "CA 'corp' is configured twice (also in ca.d/corp.conf)"));

        CbConfigSource good[] = { { "certbroker.conf", MAIN, strlen(MAIN) }, { "ca.d/a_b-C9.conf", CA, strlen(CA) } };
        assert_int_equal(cb_config_parse(good, 2, &c, NULL), 0);
        assert_string_equal(c->cas[0].name, "a_b-C9");
        c = cb_config_free(c);

        /* errors do not need an error struct, and leave *ret alone */
        c = (CbConfig *) 0x1;
        assert_int_equal(cb_config_parse(only_ca, 1, &c, NULL), -EINVAL);
        assert_ptr_equal(c, (CbConfig *) 0x1);
        assert_null(cb_config_free(NULL));

        char buf[64];
        assert_string_equal(cb_config_error_format(NULL, buf, sizeof buf), "unknown configuration error");
}

/* InstallTrust= (a CA) and MetricsTextfileDirectory= ([Broker]): defaults, values, errors. */
static void test_trust_and_metrics_keys(void **state) {
        Files f = { .main = MAIN, .ca = CA };
        CbConfig *c = parse_ok(&f);

        assert_false(c->cas[0].install_trust);
        assert_null(c->metrics_textfile_directory);
        cb_config_free(c);

        f = (Files) { .main = MAIN "[Broker]\nMetricsTextfileDirectory=/var/lib/prometheus/node-exporter\n",
                      .ca = CA "InstallTrust=yes\n" };
        c = parse_ok(&f);
        assert_true(c->cas[0].install_trust);
        assert_string_equal(c->metrics_textfile_directory, "/var/lib/prometheus/node-exporter");
        cb_config_free(c);

        static const ErrorCase bad[] = {
                { { .main = MAIN, .ca = CA "InstallTrust=maybe\n" }, CA_PATH, 3, "InstallTrust=maybe is not a boolean" },
                { { .main = MAIN "[Broker]\nMetricsTextfileDirectory=textfile\n", .ca = CA }, MAIN_PATH, 5,
                  "MetricsTextfileDirectory=textfile is not an absolute path" },
                { { .main = MAIN "[Broker]\nMetricsTextfileDirectory=/a\nMetricsTextfileDirectory=/b\n", .ca = CA },
                  MAIN_PATH, 6, "MetricsTextfileDirectory" },
                { { .main = MAIN, .ca = CA "MetricsTextfileDirectory=/a\n" }, CA_PATH, 3, "MetricsTextfileDirectory" },
                { { .main = MAIN "[Broker]\nInstallTrust=yes\n", .ca = CA }, MAIN_PATH, 5, "InstallTrust" },
        };
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
                CbConfigError e = {};
                CbConfig *conf = NULL;
                if (parse(&bad[i].files, &conf, &e) >= 0)
                        fail_msg("case %zu accepted", i);
                assert_null(conf);
                if (strcmp(e.path, bad[i].path) != 0 || e.line != bad[i].line || !strstr(e.message, bad[i].message))
                        fail_msg("case %zu: got %s:%u: %s", i, e.path, e.line, e.message);
        }
}

static void test_enums(void **state) {
        static const char *const keys[] = { "rsa:2048", "rsa:3072", "rsa:4096", "ec:p256", "ec:p384" };
        for (int i = 0; i < _CB_KEY_TYPE_MAX; i++) {
                assert_string_equal(cb_key_type_to_string(i), keys[i]);
                assert_int_equal(cb_key_type_from_string(keys[i]), i);
        }
        assert_null(cb_key_type_to_string(_CB_KEY_TYPE_MAX));
        assert_null(cb_key_type_to_string(-1));
        assert_int_equal(cb_key_type_from_string("rsa:1024"), _CB_KEY_TYPE_INVALID);
        assert_int_equal(cb_key_type_from_string(NULL), _CB_KEY_TYPE_INVALID);
        assert_int_equal(cb_usage_from_string("both"), CB_USAGE_BOTH);
        assert_int_equal(cb_usage_from_string("signature"), CB_USAGE_SIGNATURE);
        assert_int_equal(cb_usage_from_string("encryption"), CB_USAGE_ENCRYPTION);
        assert_int_equal(cb_usage_from_string("Both"), _CB_USAGE_INVALID);
        assert_string_equal(cb_kerberos_mode_to_string(CB_KERBEROS_MODE_GSS_PROXY), "gss-proxy");
        assert_string_equal(cb_authentication_to_string(CB_AUTHENTICATION_NONE), "none");
        assert_string_equal(cb_challenge_mode_to_string(CB_CHALLENGE_MSCEP_ADMIN), "mscep-admin");

        const char *why = NULL;
        CbKeyType k;
        CbUsage u;
        assert_int_equal(cb_key_type_validate("ec:p256", &k, &why), 0);
        assert_int_equal(k, CB_KEY_EC_P256);
        assert_int_equal(cb_key_type_validate("ed25519", &k, &why), -EINVAL);
        assert_non_null(strstr(why, "rsa:2048"));
        assert_int_equal(cb_usage_validate("signature", &u, &why), 0);
        assert_int_equal(u, CB_USAGE_SIGNATURE);
        assert_int_equal(cb_usage_validate("sign", &u, &why), -EINVAL);
        assert_non_null(strstr(why, "signature, encryption or both"));

        char label[200];
        memset(label, 'x', 128);
        label[128] = 0;
        assert_int_equal(cb_label_validate(label, &why), 0);
        label[128] = 'x';
        label[129] = 0;
        assert_int_equal(cb_label_validate(label, &why), -EINVAL);
        assert_non_null(strstr(why, "128 bytes"));
        assert_int_equal(cb_label_validate("", &why), 0);
        assert_int_equal(cb_label_validate("Web server \xc3\xa9", &why), 0);
        assert_int_equal(cb_label_validate("a\nb", &why), -EINVAL);
        assert_non_null(strstr(why, "control"));
        assert_int_equal(cb_label_validate("\xc3", &why), -EINVAL);
        assert_non_null(strstr(why, "UTF-8"));
        assert_int_equal(cb_label_validate(NULL, &why), -EINVAL);

        assert_true(cb_enroll_option_is_known("key"));
        assert_true(cb_enroll_option_is_known("usage"));
        assert_true(cb_enroll_option_is_known("label"));
        assert_false(cb_enroll_option_is_known("Key"));
        assert_false(cb_enroll_option_is_known("challenge"));
        assert_false(cb_enroll_option_is_known(NULL));

        assert_true(cb_ca_name_is_valid("corp"));
        assert_true(cb_ca_name_is_valid("Corp_2-b"));
        assert_false(cb_ca_name_is_valid(""));
        assert_false(cb_ca_name_is_valid("a.b"));
        assert_false(cb_ca_name_is_valid("a/b"));
        assert_false(cb_ca_name_is_valid(NULL));
}

/* URL= and AdminURL= with several NDES servers of one CA, in order; the first also under the
 * single-server names. */
static void test_several_servers(void **state) {
        Files f = { .main = MAIN, .ca = "[CA]\nURL=https://ndes1.example.com/certsrv/mscep/mscep.dll "
                                          "https://NDES2.example.com/certsrv/mscep/mscep.dll\n" };
        CbConfig *c = parse_ok(&f);
        const CbCa *ca = &c->cas[0];

        assert_int_equal(ca->n_servers, 2);
        assert_string_equal(ca->server_urls[0], "https://ndes1.example.com/certsrv/mscep/mscep.dll");
        assert_string_equal(ca->server_urls[1], "https://NDES2.example.com/certsrv/mscep/mscep.dll");
        assert_string_equal(ca->server_url_hosts[1], "ndes2.example.com");
        assert_string_equal(ca->server_admin_urls[0], "https://ndes1.example.com/certsrv/mscep_admin/");
        assert_string_equal(ca->server_admin_urls[1], "https://NDES2.example.com/certsrv/mscep_admin/");
        assert_string_equal(ca->server_admin_url_hosts[1], "ndes2.example.com");
        assert_true(ca->admin_url_derived);
        assert_string_equal(ca->url, ca->server_urls[0]);
        assert_string_equal(ca->url_host, "ndes1.example.com");
        assert_string_equal(ca->admin_url, ca->server_admin_urls[0]);
        assert_int_equal(ca->failback_usec, 600 * CB_USEC_PER_SEC);
        assert_false(ca->round_robin);
        assert_int_equal(cb_ca_server_index(ca, "https://NDES2.example.com/certsrv/mscep/mscep.dll"), 1);
        assert_int_equal(cb_ca_server_index(ca, "https://ndes3.example.com/certsrv/mscep/mscep.dll"), -ENOENT);
        cb_config_free(c);

        /* AdminURL= paired by position; tabs separate too; FailbackAfter= */
        f.ca = "[CA]\nURL=https://a.example.com/scep\thttps://b.example.com/scep\n"
               "AdminURL=https://a.example.com/admin/ https://b.example.com/admin/\nFailbackAfter=90\n"
               "ServerSelection=round-robin\n";
        c = parse_ok(&f);
        ca = &c->cas[0];
        assert_int_equal(ca->n_servers, 2);
        assert_false(ca->admin_url_derived);
        assert_string_equal(ca->server_admin_urls[1], "https://b.example.com/admin/");
        assert_string_equal(ca->server_admin_url_hosts[1], "b.example.com");
        assert_string_equal(ca->admin_url, "https://a.example.com/admin/");
        assert_int_equal(ca->failback_usec, 90 * CB_USEC_PER_SEC);
        assert_true(ca->round_robin);
        cb_config_free(c);

        /* One server: as before, a list of one. */
        f.ca = CA;
        c = parse_ok(&f);
        assert_int_equal(c->cas[0].n_servers, 1);
        assert_string_equal(c->cas[0].server_urls[0], c->cas[0].url);
        cb_config_free(c);

        /* No mscep_admin: underivable admin pages are not needed for any server. */
        f.ca = "[CA]\nURL=https://a.example.com/certsrv/mscep/mscep.dll https://b.example.com/scep\nChallenge=none\n";
        c = parse_ok(&f);
        assert_null(c->cas[0].admin_url);
        assert_null(c->cas[0].server_admin_urls[0]);
        assert_null(c->cas[0].server_admin_urls[1]);
        cb_config_free(c);

        static const struct {
                const char *ca;
                unsigned line;
                const char *message;
        } bad[] = {
                { "[CA]\nURL=https://ndes1.example.com/certsrv/mscep/mscep.dll "
                  "https://ndes2.evil.net/certsrv/mscep/mscep.dll\n", 2,
                  "URL=https://ndes2.evil.net/certsrv/mscep/mscep.dll has a host" },
                { "[CA]\nURL=https://a.example.com/certsrv/mscep/mscep.dll https://a.example.com/certsrv/mscep/mscep.dll\n",
                  2, "URL= names https://a.example.com/certsrv/mscep/mscep.dll twice" },
                { "[CA]\nURL=https://a.example.com/certsrv/mscep/mscep.dll https://b.example.com/certsrv/mscep/mscep.dll\n"
                  "AdminURL=https://a.example.com/certsrv/mscep_admin/\n", 3, "AdminURL= names 1 server and URL= 2" },
                { "[CA]\nURL=https://a.example.com/certsrv/mscep/mscep.dll https://b.example.com/scep\n", 2,
                  "AdminURL= cannot be derived from URL=https://b.example.com/scep" },
                { "[CA]\nURL=https://a.example.com/certsrv/mscep/mscep.dll http://b.example.com/certsrv/mscep/mscep.dll\n"
                  "Authentication=none\n", 2, "URL=http://b.example.com/certsrv/mscep/mscep.dll is http:// without" },
                { "[CA]\nURL=https://a.example.com/certsrv/mscep/mscep.dll\nFailbackAfter=0\n", 3, "FailbackAfter=" },
                { "[CA]\nURL=https://a.example.com/certsrv/mscep/mscep.dll\nServerSelection=random\n", 3,
                  "ServerSelection=random: use in-order or round-robin" },
                { "[CA]\nURL=https://s1.example.com/x https://s2.example.com/x https://s3.example.com/x "
                  "https://s4.example.com/x https://s5.example.com/x https://s6.example.com/x https://s7.example.com/x "
                  "https://s8.example.com/x https://s9.example.com/x https://s10.example.com/x https://s11.example.com/x "
                  "https://s12.example.com/x https://s13.example.com/x https://s14.example.com/x https://s15.example.com/x "
                  "https://s16.example.com/x https://s17.example.com/x\nChallenge=none\n", 2, "more than 16 servers" },
        };
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                CbConfigError e = {};
                char buf[1200];
                Files g = { .main = MAIN, .ca = bad[i].ca };
                c = NULL;
                assert_int_equal(parse(&g, &c, &e), -EINVAL);
                assert_null(c);
                cb_config_error_format(&e, buf, sizeof buf);
                if (!strstr(e.message, bad[i].message) || e.line != bad[i].line || strcmp(e.path, CA_PATH) != 0)
                        fail_msg("case %zu: want line %u \"%s\", got %s", i, bad[i].line, bad[i].message, buf);
        }
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_errors),
                cmocka_unit_test(test_nul_in_file),
                cmocka_unit_test(test_defaults),
                cmocka_unit_test(test_config_md_examples),
                cmocka_unit_test(test_every_key_set),
                cmocka_unit_test(test_default_max_requests),
                cmocka_unit_test(test_subject_patterns),
                cmocka_unit_test(test_kdc_hosts),
                cmocka_unit_test(test_cleartext_cas),
                cmocka_unit_test(test_several_servers),
                cmocka_unit_test(test_retain_finished_spans),
                cmocka_unit_test(test_renew_leads),
                cmocka_unit_test(test_renewal_mode),
                cmocka_unit_test(test_default_ca_choice),
                cmocka_unit_test(test_comments_and_long_lines),
                cmocka_unit_test(test_sources),
                cmocka_unit_test(test_enums),
                cmocka_unit_test(test_trust_and_metrics_keys),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
