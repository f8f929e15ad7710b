/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Error mapping: Kerberos codes and curl failures → the outcomes of org.certbroker.Broker1(5) ERRORS with the seed
 * document's hints; outcome names; the generated krb5 profile; the outstanding-challenge
 * counter. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <curl/curl.h>
#include <krb5/krb5.h>

#include "challenge-limit.h"
#include "http-client.h"
#include "http-outcome.h"
#include "krb5-errors.h"
#include "krb5-profile.h"
#include "seed-steps.h"

static const Krb5ErrorContext ctx = {
        .realm = "EXAMPLE.COM",
        .kdcs = "kdc1.example.com kdc2.example.com:88",
        .principal = "svc-scep@EXAMPLE.COM",
        .keytab = "/etc/certbroker/svc-scep.keytab",
        .host = "ndes.example.com",
        .detail = "library text",
};

static void expect(Krb5Step step, long code, TransportOutcome want, const char *const *needles) {
        char *m = NULL;

        assert_int_equal(krb5_error_classify(step, code, &ctx, &m), want);
        assert_non_null(m);
        for (; *needles; needles++)
                if (!strstr(m, *needles))
                        fail_msg("message for %ld lacks \"%s\": %s", code, *needles, m);
        free(m);
}

#define EXPECT(step, code, want, ...) expect(step, code, want, (const char *const[]) { __VA_ARGS__, NULL })

static void test_krb5(void **state) {
        EXPECT(KRB5_STEP_TGT, KRB5_KDC_UNREACH, TRANSPORT_KERBEROS_FAILED, "cannot contact any KDC", "EXAMPLE.COM",
               "kdc1.example.com kdc2.example.com:88", "KDC=", "port 88");
        EXPECT(KRB5_STEP_TGT, KRB5KRB_AP_ERR_SKEW, TRANSPORT_KERBEROS_FAILED, "clock", "skew", "synchronize");
        EXPECT(KRB5_STEP_SERVICE_TICKET, KRB5KRB_AP_ERR_SKEW, TRANSPORT_KERBEROS_FAILED, "clock");
        EXPECT(KRB5_STEP_KEYTAB, EACCES, TRANSPORT_KERBEROS_FAILED, "cannot read keytab",
               "/etc/certbroker/svc-scep.keytab", "Mode=gss-proxy");
        EXPECT(KRB5_STEP_KEYTAB, ENOENT, TRANSPORT_KERBEROS_FAILED, "does not exist");
        EXPECT(KRB5_STEP_KEYTAB, KRB5_KT_NOTFOUND, TRANSPORT_KERBEROS_FAILED, "holds no key for svc-scep@EXAMPLE.COM",
               "Service user credentials");
        EXPECT(KRB5_STEP_TGT, KRB5KDC_ERR_PREAUTH_FAILED, TRANSPORT_KERBEROS_FAILED, "stale", "new keytab");
        EXPECT(KRB5_STEP_TGT, KRB5KRB_AP_ERR_BAD_INTEGRITY, TRANSPORT_KERBEROS_FAILED, "stale");
        EXPECT(KRB5_STEP_TGT, KRB5KDC_ERR_C_PRINCIPAL_UNKNOWN, TRANSPORT_KERBEROS_FAILED, "does not know the service user");
        EXPECT(KRB5_STEP_TGT, KRB5KDC_ERR_CLIENT_REVOKED, TRANSPORT_KERBEROS_FAILED, "disabled");
        EXPECT(KRB5_STEP_SERVICE_TICKET, KRB5KDC_ERR_S_PRINCIPAL_UNKNOWN, TRANSPORT_SERVICE_PRINCIPAL_UNKNOWN,
               "HTTP/ndes.example.com", "KDC_ERR_S_PRINCIPAL_UNKNOWN",
               "setspn -s http/ndes.example.com EXAMPLE\\svc-scep", "library text");
        EXPECT(KRB5_STEP_TGT, KRB5KDC_ERR_S_PRINCIPAL_UNKNOWN, TRANSPORT_KERBEROS_FAILED, "krbtgt/EXAMPLE.COM");
        EXPECT(KRB5_STEP_SERVICE_TICKET, KRB5KDC_ERR_BADOPTION, TRANSPORT_KERBEROS_FAILED, "Delegation");
        EXPECT(KRB5_STEP_TGT, 12345, TRANSPORT_KERBEROS_FAILED, "library text");
}

/* Each failure ends with the seed step it indicates. */
static bool ends_with(const char *s, const char *suffix) {
        size_t n = strlen(s), k = strlen(suffix);

        return n >= k && strcmp(s + n - k, suffix) == 0;
}

/* Every code with a hint of its own: each value in its place (realm, user, keytab, server,
 * the library's text), nothing left unfilled, the seed step at the end. */
static void test_krb5_every_hint(void **state) {
        static const struct {
                long code;
                Krb5Step step;
                const char *seed;
                const char *needle;
        } table[] = {
                { KRB5_KDC_UNREACH, KRB5_STEP_TGT, SEED_KRB_KDC,
                  "any KDC for realm EXAMPLE.COM (kdc1.example.com kdc2.example.com:88; library text)" },
                { KRB5_REALM_CANT_RESOLVE, KRB5_STEP_TGT, SEED_KRB_KDC,
                  "any KDC for realm EXAMPLE.COM (kdc1.example.com kdc2.example.com:88; library text)" },
                { KRB5_REALM_UNKNOWN, KRB5_STEP_TGT, SEED_KRB_REALM, "known for realm EXAMPLE.COM (library text)" },
                { KRB5_CONFIG_NODEFREALM, KRB5_STEP_TGT, SEED_KRB_REALM, "known for realm EXAMPLE.COM (library text)" },
                { KRB5KRB_AP_ERR_SKEW, KRB5_STEP_SERVICE_TICKET, SEED_NONE_CLOCK,
                  "the KDC for EXAMPLE.COM differ by more than the allowed skew (5 minutes by default) (library text)" },
                { KRB5_KT_NOTFOUND, KRB5_STEP_KEYTAB, SEED_KRB_USER,
                  "keytab /etc/certbroker/svc-scep.keytab holds no key for svc-scep@EXAMPLE.COM (library text)" },
                { KRB5_KT_KVNONOTFOUND, KRB5_STEP_TGT, SEED_KRB_USER,
                  "keytab /etc/certbroker/svc-scep.keytab holds no key for svc-scep@EXAMPLE.COM (library text)" },
                { KRB5_KT_END, KRB5_STEP_KEYTAB, SEED_KRB_USER,
                  "keytab /etc/certbroker/svc-scep.keytab holds no key for svc-scep@EXAMPLE.COM (library text)" },
                { KRB5_KT_BADNAME, KRB5_STEP_KEYTAB, SEED_KRB_USER,
                  "keytab /etc/certbroker/svc-scep.keytab is not a usable keytab (library text)" },
                { KRB5_KT_UNKNOWN_TYPE, KRB5_STEP_KEYTAB, SEED_KRB_USER, "svc-scep.keytab is not a usable keytab" },
                { KRB5_KT_FORMAT, KRB5_STEP_KEYTAB, SEED_KRB_USER, "svc-scep.keytab is not a usable keytab" },
                { KRB5_KEYTAB_BADVNO, KRB5_STEP_KEYTAB, SEED_KRB_USER, "svc-scep.keytab is not a usable keytab" },
                { KRB5KDC_ERR_PREAUTH_FAILED, KRB5_STEP_TGT, SEED_KRB_USER,
                  "the KDC for EXAMPLE.COM did not accept the key of svc-scep@EXAMPLE.COM from keytab "
                  "/etc/certbroker/svc-scep.keytab (library text)" },
                { KRB5_PREAUTH_FAILED, KRB5_STEP_TGT, SEED_KRB_USER, "replace /etc/certbroker/svc-scep.keytab" },
                { KRB5KRB_AP_ERR_BAD_INTEGRITY, KRB5_STEP_TGT, SEED_KRB_USER, "replace /etc/certbroker/svc-scep.keytab" },
                { KRB5KRB_AP_ERR_MODIFIED, KRB5_STEP_TGT, SEED_KRB_USER, "replace /etc/certbroker/svc-scep.keytab" },
                { KRB5KDC_ERR_C_PRINCIPAL_UNKNOWN, KRB5_STEP_TGT, SEED_KRB_USER,
                  "the KDC for EXAMPLE.COM does not know the service user svc-scep@EXAMPLE.COM (library text)" },
                { KRB5KDC_ERR_CLIENT_REVOKED, KRB5_STEP_TGT, SEED_PRE_ACCOUNT,
                  "refuses the service user svc-scep@EXAMPLE.COM: the account is disabled or locked out (library text)" },
                { KRB5KDC_ERR_KEY_EXP, KRB5_STEP_TGT, SEED_PRE_ACCOUNT,
                  "the password of the service user svc-scep@EXAMPLE.COM has expired (library text)" },
                { KRB5KDC_ERR_ETYPE_NOSUPP, KRB5_STEP_TGT, SEED_PRE_ACCOUNT,
                  "the KDC for EXAMPLE.COM and this host share no encryption type for svc-scep@EXAMPLE.COM (library text)" },
                { KRB5KDC_ERR_ETYPE_NOSUPP, KRB5_STEP_SERVICE_TICKET, SEED_PRE_ACCOUNT,
                  "share no encryption type for ndes.example.com (library text)" },
                { KRB5KDC_ERR_S_PRINCIPAL_UNKNOWN, KRB5_STEP_TGT, SEED_KRB_REALM,
                  "the KDC for EXAMPLE.COM does not know krbtgt/EXAMPLE.COM (library text)" },
                { KRB5KDC_ERR_BADOPTION, KRB5_STEP_TGT, SEED_WIN_DELEGATION,
                  "the KDC for EXAMPLE.COM refused the ticket request for svc-scep@EXAMPLE.COM by policy (library text)" },
                { KRB5KDC_ERR_POLICY, KRB5_STEP_SERVICE_TICKET, SEED_WIN_DELEGATION,
                  "refused the ticket request for ndes.example.com by policy (library text)" },
                { KRB5KRB_AP_ERR_TKT_EXPIRED, KRB5_STEP_SERVICE_TICKET, SEED_NONE_CLOCK,
                  "the Kerberos ticket of svc-scep@EXAMPLE.COM expired (library text)" },
        };

        for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
                char *m = NULL;

                assert_int_equal(krb5_error_classify(table[i].step, table[i].code, &ctx, &m), TRANSPORT_KERBEROS_FAILED);
                assert_non_null(m);
                if (!strstr(m, table[i].needle) || strstr(m, "(null)") || !ends_with(m, table[i].seed))
                        fail_msg("message for %ld at step %d: \"%s\"; wanted \"%s\" and the seed \"%s\"", table[i].code,
                                 (int) table[i].step, m, table[i].needle, table[i].seed);
                free(m);
        }
        /* Without a realm, a user or a keytab, the hint names them in words. */
        for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
                char *m = NULL;

                assert_int_equal(krb5_error_classify(table[i].step, table[i].code, NULL, &m), TRANSPORT_KERBEROS_FAILED);
                assert_non_null(m);
                if (strstr(m, "(null)") || !strstr(m, "no details)") || !ends_with(m, table[i].seed))
                        fail_msg("message for %ld without context: \"%s\"", table[i].code, m);
                free(m);
        }
}

static void test_krb5_seed_steps(void **state) {
        EXPECT(KRB5_STEP_TGT, KRB5_KDC_UNREACH, TRANSPORT_KERBEROS_FAILED,
               "Seed: Configuring Kerberos settings (Corresponding Key Distribution Center (KDC) server");
        EXPECT(KRB5_STEP_TGT, KRB5_REALM_UNKNOWN, TRANSPORT_KERBEROS_FAILED,
               "Seed: Configuring Kerberos settings (Active Directory's Kerberos Realm");
        EXPECT(KRB5_STEP_TGT, KRB5KDC_ERR_PREAUTH_FAILED, TRANSPORT_KERBEROS_FAILED,
               "Seed: Configuring Kerberos settings (Service user credentials");
        EXPECT(KRB5_STEP_SERVICE_TICKET, KRB5KDC_ERR_S_PRINCIPAL_UNKNOWN, TRANSPORT_SERVICE_PRINCIPAL_UNKNOWN,
               "Seed: Configuring Windows servers, step 1 (setspn");
        EXPECT(KRB5_STEP_SERVICE_TICKET, KRB5KDC_ERR_BADOPTION, TRANSPORT_KERBEROS_FAILED,
               "Seed: Configuring Windows servers, step 2 (Delegation tab");
        EXPECT(KRB5_STEP_TGT, KRB5KDC_ERR_CLIENT_REVOKED, TRANSPORT_KERBEROS_FAILED,
               "Seed: Pre-configuration steps, step 1");

        char *s = krb5_error_rejected_hint("ndes.example.com", "https://ndes.example.com/certsrv/mscep_admin/");
        assert_non_null(s);
        assert_non_null(strstr(s, "Seed: Configuring Windows servers, step 3"));
        assert_non_null(strstr(s, "export the keytab of HTTP/ndes.example.com again"));
        free(s);
}

/* A keytab made for another realm than Realm=: both realms named. */
static void test_krb5_keytab_other_realm(void **state) {
        Krb5ErrorContext c = ctx;
        char *m = NULL;

        c.keytab_principal = "svc-scep@CORP.EXAMPLE.COM";
        assert_int_equal(krb5_error_classify(KRB5_STEP_KEYTAB, KRB5_KT_NOTFOUND, &c, &m), TRANSPORT_KERBEROS_FAILED);
        assert_non_null(m);
        assert_non_null(strstr(m, "holds keys for svc-scep@CORP.EXAMPLE.COM, not for svc-scep@EXAMPLE.COM"));
        assert_non_null(strstr(m, "Realm=EXAMPLE.COM does not match the realm the keytab was made for (CORP.EXAMPLE.COM)"));
        assert_non_null(strstr(m, "Seed: Configuring Kerberos settings (Active Directory's Kerberos Realm"));
        free(m);
}

static void test_krb5_no_context(void **state) {
        char *m = NULL;

        assert_int_equal(krb5_error_classify(KRB5_STEP_SERVICE_TICKET, KRB5KDC_ERR_S_PRINCIPAL_UNKNOWN, NULL, &m),
                         TRANSPORT_SERVICE_PRINCIPAL_UNKNOWN);
        assert_non_null(m);
        free(m);
        assert_int_equal(krb5_error_classify(KRB5_STEP_TGT, 0, NULL, NULL), TRANSPORT_KERBEROS_FAILED);
}

static void test_setspn(void **state) {
        char *s = krb5_error_setspn_command("ndes.corp.example.com", "svc-scep@CORP.EXAMPLE.COM");
        assert_string_equal(s, "setspn -s http/ndes.corp.example.com CORP\\svc-scep");
        free(s);
        s = krb5_error_setspn_command(NULL, NULL);
        assert_non_null(strstr(s, "setspn -s http/"));
        free(s);
}

static void test_rejected_hint(void **state) {
        char *s = krb5_error_rejected_hint("ndes.example.com", "https://ndes.example.com/certsrv/mscep_admin/");
        assert_non_null(strstr(s, "useAppPoolCredentials"));
        assert_non_null(strstr(s, "Kernel mode authentication"));
        assert_non_null(strstr(s, "Anonymous Authentication"));
        assert_non_null(strstr(s, "Negotiate"));
        assert_non_null(strstr(s, "HTTP/ndes.example.com"));
        free(s);
}

static void test_curl(void **state) {
        static const struct {
                int code;
                TransportOutcome want;
                const char *needle;
        } table[] = {
                { CURLE_COULDNT_RESOLVE_HOST, TRANSPORT_CA_UNREACHABLE, "cannot resolve ndes.example.com" },
                { CURLE_COULDNT_CONNECT, TRANSPORT_CA_UNREACHABLE, "cannot connect to ndes.example.com" },
                { CURLE_OPERATION_TIMEDOUT, TRANSPORT_TIMEOUT, "Timeout=" },
                { CURLE_PEER_FAILED_VERIFICATION, TRANSPORT_TLS_VERIFY_FAILED, "/etc/ssl/roots.pem" },
                { CURLE_SSL_CACERT_BADFILE, TRANSPORT_TLS_VERIFY_FAILED, "TrustAnchors=" },
                { CURLE_SSL_CONNECT_ERROR, TRANSPORT_TLS_VERIFY_FAILED, "TLS handshake" },
                { CURLE_GOT_NOTHING, TRANSPORT_CA_UNREACHABLE, "broke off" },
                { CURLE_FILESIZE_EXCEEDED, TRANSPORT_PROTOCOL_ERROR, "larger" },
                { CURLE_UNSUPPORTED_PROTOCOL, TRANSPORT_PROTOCOL_ERROR, "failed" },
        };
        for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
                char *m = NULL;
                assert_int_equal(http_classify_curl_error(table[i].code, "ndes.example.com", "https://ndes.example.com/x",
                                                          "", "/etc/ssl/roots.pem", &m), table[i].want);
                if (!strstr(m, table[i].needle))
                        fail_msg("curl %d: \"%s\" lacks \"%s\"", table[i].code, m, table[i].needle);
                free(m);
        }
}

/* Every failure with a message of its own: each value in its place, nothing left unfilled;
 * without TrustAnchors= the TLS hints name the system store or the setting. */
static void test_curl_every_failure(void **state) {
        static const struct {
                int code;
                TransportOutcome want;
                const char *needle, *needle_no_anchors;
        } table[] = {
                { CURLE_COULDNT_RESOLVE_HOST, TRANSPORT_CA_UNREACHABLE, "cannot resolve ndes.example.com (curl text)" },
                { CURLE_COULDNT_CONNECT, TRANSPORT_CA_UNREACHABLE,
                  "cannot connect to ndes.example.com for https://ndes.example.com/x (curl text)" },
                { CURLE_OPERATION_TIMEDOUT, TRANSPORT_TIMEOUT,
                  "no complete answer from ndes.example.com for https://ndes.example.com/x within the timeout (curl text)" },
                { CURLE_SSL_CACERT_BADFILE, TRANSPORT_TLS_VERIFY_FAILED,
                  "cannot use the trust anchors /etc/ssl/roots.pem (curl text)",
                  "cannot use the trust anchors (system store) (curl text)" },
                { CURLE_SSL_CONNECT_ERROR, TRANSPORT_TLS_VERIFY_FAILED,
                  "TLS handshake with ndes.example.com failed (curl text): check that https://ndes.example.com/x serves" },
                { CURLE_PEER_FAILED_VERIFICATION, TRANSPORT_TLS_VERIFY_FAILED,
                  "the TLS certificate of ndes.example.com is not trusted for that name (curl text): put the root of "
                  "the CA that issued the SCEP server's certificate into /etc/ssl/roots.pem, and make sure the "
                  "certificate names ndes.example.com. ",
                  "certificate into TrustAnchors= of the CA's configuration, and" },
                { CURLE_SSL_ISSUER_ERROR, TRANSPORT_TLS_VERIFY_FAILED, "into /etc/ssl/roots.pem, and",
                  "into TrustAnchors= of the CA's configuration, and" },
                { CURLE_SSL_PINNEDPUBKEYNOTMATCH, TRANSPORT_TLS_VERIFY_FAILED, "into /etc/ssl/roots.pem, and",
                  "into TrustAnchors= of the CA's configuration, and" },
                { CURLE_SSL_INVALIDCERTSTATUS, TRANSPORT_TLS_VERIFY_FAILED, "into /etc/ssl/roots.pem, and",
                  "into TrustAnchors= of the CA's configuration, and" },
                { CURLE_SSL_CERTPROBLEM, TRANSPORT_TLS_VERIFY_FAILED, "into /etc/ssl/roots.pem, and",
                  "into TrustAnchors= of the CA's configuration, and" },
                { CURLE_GOT_NOTHING, TRANSPORT_CA_UNREACHABLE,
                  "the connection to ndes.example.com broke off during https://ndes.example.com/x (curl text)" },
                { CURLE_RECV_ERROR, TRANSPORT_CA_UNREACHABLE, "ndes.example.com broke off during" },
                { CURLE_SEND_ERROR, TRANSPORT_CA_UNREACHABLE, "ndes.example.com broke off during" },
                { CURLE_PARTIAL_FILE, TRANSPORT_CA_UNREACHABLE, "ndes.example.com broke off during" },
                { CURLE_AUTH_ERROR, TRANSPORT_KERBEROS_FAILED,
                  "Kerberos authentication to ndes.example.com could not be started (curl text)" },
                { CURLE_FILESIZE_EXCEEDED, TRANSPORT_PROTOCOL_ERROR,
                  "the answer of ndes.example.com to https://ndes.example.com/x is larger than the broker accepts (curl text)" },
                { CURLE_OK, TRANSPORT_PROTOCOL_ERROR, "request to https://ndes.example.com/x failed: curl text" },
                { CURLE_UNSUPPORTED_PROTOCOL, TRANSPORT_PROTOCOL_ERROR, "request to https://ndes.example.com/x failed: curl text" },
        };

        for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
                const char *want_no_anchors = table[i].needle_no_anchors ? table[i].needle_no_anchors : table[i].needle;
                char *m = NULL;

                assert_int_equal(http_classify_curl_error(table[i].code, "ndes.example.com", "https://ndes.example.com/x",
                                                          "curl text", "/etc/ssl/roots.pem", &m), table[i].want);
                assert_non_null(m);
                if (!strstr(m, table[i].needle) || strstr(m, "(null)"))
                        fail_msg("curl %d: \"%s\" lacks \"%s\"", table[i].code, m, table[i].needle);
                free(m);
                m = NULL;
                assert_int_equal(http_classify_curl_error(table[i].code, "ndes.example.com", "https://ndes.example.com/x",
                                                          "curl text", NULL, &m), table[i].want);
                assert_non_null(m);
                if (!strstr(m, want_no_anchors) || strstr(m, "(null)"))
                        fail_msg("curl %d without TrustAnchors=: \"%s\" lacks \"%s\"", table[i].code, m, want_no_anchors);
                free(m);
        }
}

static void test_outcome_names(void **state) {
        static const char *const api[] = {
                "KerberosFailed", "ServicePrincipalUnknown", "AuthenticationRejected", "ChallengeUnavailable",
                "CAUnreachable", "TLSVerifyFailed", "CARejected", "ProtocolError", "Cancelled", "Timeout",
        };
        for (size_t i = 0; i < sizeof api / sizeof api[0]; i++) {
                int o = transport_outcome_from_string(api[i]);
                assert_true(o > 0);
                assert_string_equal(transport_outcome_to_string((TransportOutcome) o), api[i]);
        }
        assert_string_equal(transport_outcome_to_string(TRANSPORT_OK), "");
        assert_null(transport_outcome_to_string(_TRANSPORT_OUTCOME_MAX));
        assert_int_equal(transport_outcome_from_string("Nope"), -EINVAL);
        assert_true(transport_outcome_is_transient(TRANSPORT_CA_UNREACHABLE));
        assert_false(transport_outcome_is_transient(TRANSPORT_SERVICE_PRINCIPAL_UNKNOWN));
}

static void test_profile(void **state) {
        char *kdcs[] = { "kdc1.example.com", "10.0.0.5:88", "[2001:db8::1]:750", NULL };
        Krb5Settings s = {
                .realm = "EXAMPLE.COM",
                .kdcs = kdcs,
                .principal = "svc@EXAMPLE.COM",
                .domain_suffix = "example.com",
        };
        char *t = NULL, *m = NULL;

        assert_int_equal(krb5_profile_format(&s, &t, &m), 0);
        assert_non_null(strstr(t, "default_realm = EXAMPLE.COM\n"));
        assert_non_null(strstr(t, "dns_canonicalize_hostname = false\n"));
        assert_non_null(strstr(t, "rdns = false\n"));
        assert_non_null(strstr(t, "dns_lookup_kdc = false\n"));
        assert_non_null(strstr(t, "udp_preference_limit = 1\n"));
        assert_non_null(strstr(t, "default_ccache_name = MEMORY:"));
        assert_non_null(strstr(t, "kdc = kdc1.example.com\n"));
        assert_non_null(strstr(t, "kdc = 10.0.0.5:88\n"));
        assert_non_null(strstr(t, "kdc = [2001:db8::1]:750\n"));
        assert_non_null(strstr(t, ".example.com = EXAMPLE.COM\n"));
        free(t);

        /* No KDC: DNS lookup of KDCs left to the system configuration. */
        s.kdcs = NULL;
        assert_int_equal(krb5_profile_format(&s, &t, &m), 0);
        assert_null(strstr(t, "dns_lookup_kdc"));
        assert_null(strstr(t, "[realms]"));
        free(t);

        /* Profile injection is refused. */
        char *evil[] = { "kdc.example.com\n[libdefaults]", NULL };
        s.kdcs = evil;
        assert_int_equal(krb5_profile_format(&s, &t, &m), -EINVAL);
        assert_non_null(strstr(m, "KDC="));
        free(m);
        char *badport[] = { "kdc.example.com:99999", NULL };
        s.kdcs = badport;
        assert_int_equal(krb5_profile_format(&s, &t, &m), -EINVAL);
        free(m);
        s.kdcs = NULL;
        s.realm = "EXAMPLE.COM }";
        assert_int_equal(krb5_profile_format(&s, &t, &m), -EINVAL);
        assert_non_null(strstr(m, "Realm="));
        free(m);
}

static int wakes;
static void on_wake(void *userdata) {
        wakes++;
}

static void test_limit(void **state) {
        ChallengeLimit *l = NULL;

        assert_int_equal(challenge_limit_new(0, &l), -EINVAL);
        assert_int_equal(challenge_limit_new(2, &l), 0);
        challenge_limit_set_wake(l, on_wake, NULL);
        assert_true(challenge_limit_take(l));
        assert_true(challenge_limit_take(l));
        assert_false(challenge_limit_take(l));
        assert_int_equal(challenge_limit_get_used(l), 2);
        challenge_limit_put(l);
        assert_int_equal(wakes, 1);
        assert_true(challenge_limit_take(l));
        /* A reference outlives the owner's. */
        ChallengeLimit *ref = challenge_limit_ref(l);
        challenge_limit_set_wake(l, NULL, NULL);
        challenge_limit_unref(l);
        challenge_limit_put(ref);
        challenge_limit_put(ref);
        challenge_limit_put(ref);       /* never below zero */
        assert_int_equal(challenge_limit_get_used(ref), 0);
        assert_int_equal(wakes, 1);
        challenge_limit_unref(ref);
}

/* A challenge NDES never consumed keeps its slot until NDES forgets it; a Reload's new fetcher
 * keeps the count (one counter, two owners in turn). */
static void test_limit_holds(void **state) {
        ChallengeLimit *l = NULL;
        int before;

        assert_int_equal(challenge_limit_new(3, &l), 0);
        challenge_limit_set_wake(l, on_wake, &wakes);
        assert_true(challenge_limit_take(l));
        assert_true(challenge_limit_take(l));
        assert_true(challenge_limit_take(l));
        assert_int_equal(challenge_limit_next_expiry(l), 0);

        before = wakes;
        assert_int_equal(challenge_limit_hold(l, 2000), 0);    /* the owner is told (timer) */
        assert_int_equal(wakes, before + 1);
        assert_int_equal(challenge_limit_hold(l, 1000), 0);
        assert_int_equal(challenge_limit_get_held(l), 2);
        assert_int_equal(challenge_limit_get_used(l), 3);      /* holds are slots taken */
        assert_false(challenge_limit_take(l));
        assert_int_equal(challenge_limit_next_expiry(l), 1000);

        before = wakes;
        assert_int_equal(challenge_limit_expire(l, 999), 0);
        assert_int_equal(wakes, before);
        assert_int_equal(challenge_limit_expire(l, 1000), 1);
        assert_int_equal(wakes, before + 1);
        assert_int_equal(challenge_limit_get_used(l), 2);
        assert_int_equal(challenge_limit_next_expiry(l), 2000);
        assert_true(challenge_limit_take(l));
        assert_false(challenge_limit_take(l));

        /* Many holds (past the first allocation), all ending at once. */
        challenge_limit_set_max(l, 40);
        for (int i = 0; i < 36; i++) {
                assert_true(challenge_limit_take(l));
                assert_int_equal(challenge_limit_hold(l, 5000 + (uint64_t) i), 0);
        }
        assert_int_equal(challenge_limit_get_held(l), 37);
        assert_int_equal(challenge_limit_expire(l, 10000), 37);
        assert_int_equal(challenge_limit_get_held(l), 0);
        assert_int_equal(challenge_limit_get_used(l), 2);      /* the two never held */
        assert_int_equal(challenge_limit_next_expiry(l), 0);

        /* A new owner takes over: the old one's clear does not remove the new wake. */
        challenge_limit_set_wake(l, on_wake, NULL);
        challenge_limit_clear_wake(l, &wakes);
        before = wakes;
        challenge_limit_put(l);
        assert_int_equal(wakes, before + 1);
        challenge_limit_clear_wake(l, NULL);
        challenge_limit_put(l);
        assert_int_equal(wakes, before + 1);
        challenge_limit_unref(l);
}

/* NDES's cache was full: the limit holds at most half of what it held then (at least one),
 * and one more every period without another cache-full answer, back to its max. */
/* A restored hold whose challenge is proven consumed ends early: its slot is free again, once. */
static void test_limit_release_hold(void **state) {
        ChallengeLimit *l = NULL;
        int before;

        assert_int_equal(challenge_limit_new(2, &l), 0);
        challenge_limit_set_wake(l, on_wake, NULL);
        assert_int_equal(challenge_limit_add_hold(l, 5000), 0);
        assert_int_equal(challenge_limit_add_hold(l, 6000), 0);
        assert_false(challenge_limit_can_take(l));
        before = wakes;
        assert_false(challenge_limit_release_hold(l, 7000));    /* no hold ends then */
        assert_int_equal(challenge_limit_get_used(l), 2);
        assert_true(challenge_limit_release_hold(l, 5000));
        assert_true(wakes > before);                            /* queued fetches may start */
        assert_int_equal(challenge_limit_get_used(l), 1);
        assert_int_equal(challenge_limit_get_held(l), 1);
        assert_int_equal(challenge_limit_next_expiry(l), 6000);
        assert_false(challenge_limit_release_hold(l, 5000));    /* once */
        assert_true(challenge_limit_take(l));
        assert_false(challenge_limit_take(l));
        assert_int_equal(challenge_limit_expire(l, 6000), 1);
        assert_int_equal(challenge_limit_get_used(l), 1);
        challenge_limit_unref(l);
}

static void test_limit_ceiling(void **state) {
        ChallengeLimit *l = NULL;
        int before;

        assert_int_equal(challenge_limit_new(8, &l), 0);
        challenge_limit_set_wake(l, on_wake, NULL);
        for (int i = 0; i < 5; i++)
                assert_true(challenge_limit_take(l));
        /* The sixth fetch is answered "full" while 5 were held. */
        assert_true(challenge_limit_take(l));
        challenge_limit_back_off(l, 5, 1000, 100);
        challenge_limit_put(l);
        assert_int_equal(challenge_limit_get_ceiling(l), 2);
        assert_int_equal(challenge_limit_next_expiry(l), 1100);
        for (int i = 0; i < 4; i++)
                challenge_limit_put(l);
        assert_int_equal(challenge_limit_get_used(l), 1);
        assert_true(challenge_limit_can_take(l));
        assert_true(challenge_limit_take(l));
        assert_false(challenge_limit_can_take(l));             /* what CA.Check asks first */
        assert_false(challenge_limit_take(l));                 /* 2, not 8 */

        /* Another one lowers it further (never below one); raising needs a quiet period. */
        challenge_limit_back_off(l, 1, 1050, 100);
        assert_int_equal(challenge_limit_get_ceiling(l), 1);
        assert_int_equal(challenge_limit_next_expiry(l), 1150);
        before = wakes;
        assert_int_equal(challenge_limit_expire(l, 1149), 0);
        assert_int_equal(challenge_limit_get_ceiling(l), 1);
        assert_int_equal(wakes, before);
        assert_int_equal(challenge_limit_expire(l, 1150), 0);
        assert_int_equal(challenge_limit_get_ceiling(l), 2);
        assert_int_equal(wakes, before + 1);                   /* queued fetches may go on */
        assert_int_equal(challenge_limit_next_expiry(l), 1250);
        assert_false(challenge_limit_take(l));                 /* 2 used */
        challenge_limit_put(l);
        assert_true(challenge_limit_take(l));

        /* Long quiet: back to max at once, no ceiling left, no timer. */
        assert_int_equal(challenge_limit_expire(l, 100000), 0);
        assert_int_equal(challenge_limit_get_ceiling(l), 0);
        assert_int_equal(challenge_limit_next_expiry(l), 0);
        for (int i = 0; i < 6; i++)
                assert_true(challenge_limit_take(l));
        assert_false(challenge_limit_take(l));                 /* 8 */

        /* Holds (challenges left unused at NDES) neither use the ceiling up nor are limited by
         * it: a CA holding two never waits for them longer than without a ceiling. */
        for (int i = 0; i < 8; i++)
                challenge_limit_put(l);
        assert_int_equal(challenge_limit_get_used(l), 0);
        assert_true(challenge_limit_take(l));
        assert_int_equal(challenge_limit_hold(l, 300000), 0);
        assert_true(challenge_limit_take(l));
        assert_int_equal(challenge_limit_hold(l, 300000), 0);
        challenge_limit_back_off(l, 2, 200000, 100);
        assert_int_equal(challenge_limit_get_ceiling(l), 1);
        assert_true(challenge_limit_take(l));                  /* 2 held + 1 */
        assert_false(challenge_limit_take(l));
        challenge_limit_put(l);
        assert_int_equal(challenge_limit_expire(l, 300000), 2);
        assert_int_equal(challenge_limit_get_ceiling(l), 0);   /* quiet long enough: none */
        challenge_limit_set_wake(l, NULL, NULL);

        /* A broker whose max is 1 has nothing to learn. */
        challenge_limit_set_max(l, 1);
        challenge_limit_back_off(l, 0, 400000, 100);
        assert_int_equal(challenge_limit_get_ceiling(l), 0);
        challenge_limit_unref(l);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_krb5),
                cmocka_unit_test(test_krb5_every_hint),
                cmocka_unit_test(test_krb5_seed_steps),
                cmocka_unit_test(test_krb5_keytab_other_realm),
                cmocka_unit_test(test_krb5_no_context),
                cmocka_unit_test(test_setspn),
                cmocka_unit_test(test_rejected_hint),
                cmocka_unit_test(test_curl),
                cmocka_unit_test(test_curl_every_failure),
                cmocka_unit_test(test_outcome_names),
                cmocka_unit_test(test_profile),
                cmocka_unit_test(test_limit),
                cmocka_unit_test(test_limit_holds),
                cmocka_unit_test(test_limit_ceiling),
                cmocka_unit_test(test_limit_release_hold),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
