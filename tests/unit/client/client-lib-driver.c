/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Drives every libcertbroker call against a running certbrokerd; run by
 * tests/integration/client-lib.sh as the lab tenant alice (policy: *.a.example.test on CA
 * corp) with bob's request id as argument. Prints "ok - ..." per step, exits non-zero on
 * the first wrong answer. */
#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "certbroker.h"

#define CHECK(cond, ...)                                                        \
        do {                                                                    \
                if (!(cond)) {                                                  \
                        fprintf(stderr, "not ok - %s:%d: %s: ", __FILE__, __LINE__, #cond); \
                        fprintf(stderr, __VA_ARGS__);                           \
                        fputc('\n', stderr);                                    \
                        exit(1);                                                \
                }                                                               \
        } while (0)

static unsigned n_progress;
static char last_progress[64];

static int on_progress(const CertbrokerProgress *p, void *userdata) {
        n_progress++;
        snprintf(last_progress, sizeof last_progress, "%s", p->state);
        CHECK(strlen(p->id) == 16, "progress id '%s'", p->id);
        return *(int *) userdata;
}

/* With NDES answering PENDING: a progress callback stops the wait, timeouts, Cancel. */
static int run_pending(CertbrokerClient *c) {
        CertbrokerError e = CERTBROKER_ERROR_NULL;
        const char *names[] = { "pending.a.example.test", NULL };
        CertbrokerRequestSpec spec = { .names = names };
        char *id = NULL, *state = NULL;
        int go_on = -ECANCELED, r;

        CHECK(certbroker_enroll(c, &spec, &id, &e) == 0, "%s", e.message);
        n_progress = 0;
        r = certbroker_wait(c, id, CERTBROKER_WAIT_INFINITY, on_progress, &go_on, NULL, &e);
        CHECK(r == -ECANCELED && n_progress == 1 && e.message, "stopped wait: %d", r);
        certbroker_error_clear(&e);
        printf("ok - a progress callback returning -ECANCELED stops the wait\n");

        go_on = 0;
        unsigned tries = 0;
        do {
                CHECK(++tries <= 120, "request %s not pending after 60 s (state %s)", id, state);
                free(state);
                state = NULL;
                r = certbroker_wait(c, id, 500000, on_progress, &go_on, &state, &e);
                CHECK(r == 0, "wait 0.5 s on a pending request: %d %s", r, e.message ?: "");
        } while (strcmp(state, "pending") != 0);
        free(state);
        state = NULL;
        CHECK(certbroker_wait(c, id, 0, NULL, NULL, &state, &e) == 0 && strcmp(state, "pending") == 0, "Wait(0)");
        free(state);
        state = NULL;
        printf("ok - waits with a timeout return 0 (timed out) with state pending\n");

        r = certbroker_remove(c, id, &e);
        CHECK(r == -EBUSY && certbroker_error_has_name(&e, CERTBROKER_ERROR_NOT_READY), "remove pending: %d", r);
        certbroker_error_clear(&e);
        {
                uint8_t recipient[32], *box = NULL;
                size_t size = 0;

                CHECK(sodium_init() >= 0, "sodium_init");
                randombytes_buf(recipient, sizeof recipient);
                r = certbroker_take_key_sealed(c, id, recipient, sizeof recipient, &box, &size, &e);
                CHECK(r == -EBUSY && certbroker_error_has_name(&e, CERTBROKER_ERROR_NOT_READY) && !box,
                      "TakeKeySealed of a pending request: %d %s", r, e.message ?: "");
                certbroker_error_clear(&e);
                r = certbroker_confirm_key(c, id, &e);
                CHECK(r == -EBUSY && certbroker_error_has_name(&e, CERTBROKER_ERROR_NOT_READY) && e.message &&
                      strstr(e.message, "is pending"), "ConfirmKey of a pending request: %d %s", r, e.message ?: "");
                certbroker_error_clear(&e);
        }
        CHECK(certbroker_cancel(c, id, &e) == 0, "%s", e.message);
        CHECK(certbroker_wait(c, id, 0, NULL, NULL, &state, &e) == 1 && strcmp(state, "cancelled") == 0, "cancelled");
        free(state);
        CHECK(certbroker_remove(c, id, &e) == 0, "%s", e.message);
        printf("ok - Remove, TakeKeySealed and ConfirmKey of a pending request: NotReady (-EBUSY); Cancel; Remove\n");
        free(id);
        return 0;
}

int main(int argc, char *argv[]) {
        CertbrokerError e = CERTBROKER_ERROR_NULL;
        CertbrokerClient *c = NULL;
        const char *other = argc > 1 ? argv[1] : "0000000000000000";
        int r;

        CHECK(certbroker_open(&c, &e) == 0, "%s", e.message);
        if (strcmp(other, "--pending") == 0) {
                r = run_pending(c);
                certbroker_close(c);
                return r;
        }

        char *version = NULL;
        CHECK(certbroker_get_version(c, &version, &e) == 0, "%s", e.message);
        CHECK(*version, "empty version");
        printf("ok - Version %s\n", version);
        free(version);

        /* CAs */
        char **cas = NULL;
        CHECK(certbroker_list_cas(c, &cas, &e) == 0, "%s", e.message);
        CHECK(cas[0] && strcmp(cas[0], "corp") == 0 && !cas[1], "CAs");
        certbroker_strv_free(cas);
        CertbrokerCAInfo *ca = NULL;
        CHECK(certbroker_ca_get(c, "corp", &ca, &e) == 0, "%s", e.message);
        CHECK(strcmp(ca->authentication, "kerberos") == 0 && strstr(ca->url, "mscep.dll"), "CA corp");
        certbroker_ca_info_free(ca);
        r = certbroker_ca_get(c, "nope", &ca, &e);
        CHECK(r == -ENXIO && certbroker_error_has_name(&e, CERTBROKER_ERROR_UNKNOWN_CA), "ca_get nope: %d", r);
        certbroker_error_clear(&e);
        CertbrokerCheckStep *steps = NULL;
        size_t n_steps = 0;
        r = certbroker_ca_check(c, "corp", false, &steps, &n_steps, &e);
        CHECK(r == 0 && n_steps >= 7, "ca_check: %d, %zu steps: %s", r, n_steps, e.message ?: "");
        CHECK(strcmp(steps[0].step, "configuration") == 0 && strcmp(steps[0].result, "ok") == 0, "first step");
        certbroker_check_steps_free(steps, n_steps);
        printf("ok - ListCAs, CA properties, Check (%zu steps), UnknownCA\n", n_steps);

        /* CheckAccess */
        const char *mine[] = { "lib.a.example.test", NULL };
        const char *theirs[] = { "lib.b.example.test", NULL };
        CertbrokerRequestSpec spec = { .ca = "corp", .names = mine, .key_type = "ec:p256",
                                       .usage = "signature", .label = "lib \"driver\"" };
        char *rule = NULL, *reason = NULL;
        CHECK(certbroker_check_access(c, &spec, &rule, &reason, &e) == 1, "%s", e.message ?: reason);
        CHECK(strcmp(rule, "tenant-a") == 0, "rule '%s'", rule);
        free(rule);
        free(reason);
        CertbrokerRequestSpec denied = { .names = theirs };
        CHECK(certbroker_check_access(c, &denied, NULL, &reason, &e) == 0, "denied access");
        CHECK(*reason, "no reason");
        free(reason);
        printf("ok - CheckAccess allowed by tenant-a, denied with a reason\n");

        /* Enroll refused */
        char *id = NULL;
        spec.names = theirs;
        r = certbroker_enroll(c, &spec, &id, &e);
        CHECK(r == -EPERM && certbroker_error_has_name(&e, CERTBROKER_ERROR_NAME_NOT_PERMITTED) &&
              strstr(e.message, "lib.b.example.test") && e.error == r, "enroll refused: %d %s", r, e.message);
        certbroker_error_clear(&e);
        printf("ok - Enroll of another tenant's name: NameNotPermitted (-EPERM) naming it\n");

        /* Enroll, wait with progress */
        spec.names = mine;
        CHECK(certbroker_enroll(c, &spec, &id, &e) == 0, "%s", e.message);
        int go_on = 0;
        char *state = NULL;
        r = certbroker_wait(c, id, 60 * 1000000ULL, on_progress, &go_on, &state, &e);
        CHECK(r == 1 && strcmp(state, "issued") == 0, "wait: %d %s %s", r, state ?: "", e.message ?: "");
        CHECK(n_progress >= 1 && strcmp(last_progress, "issued") == 0, "progress %u '%s'", n_progress, last_progress);
        free(state);
        CHECK(certbroker_request_state(c, id, &state, &e) == 0 && strcmp(state, "issued") == 0, "state");
        free(state);
        printf("ok - Enroll and wait: issued, %u progress calls ending in 'issued'\n", n_progress);

        CertbrokerRequestInfo *info = NULL;
        CHECK(certbroker_request_get(c, id, &info, &e) == 0, "%s", e.message);
        CHECK(strcmp(info->id, id) == 0 && strcmp(info->label, "lib \"driver\"") == 0 &&
              strcmp(info->key_type, "ec:p256") == 0 && strcmp(info->usage, "signature") == 0 &&
              info->names[0] && strcmp(info->names[0], "lib.a.example.test") == 0 && !info->names[1] &&
              info->key_available && *info->serial && info->not_after > info->not_before &&
              info->created > 0 && strcmp(info->error_name, "") == 0, "request properties");
        certbroker_request_info_free(info);
        char *cert = NULL, *chain = NULL;
        CHECK(certbroker_request_certificate(c, id, &cert, &chain, &e) == 0, "%s", e.message);
        CHECK(strstr(cert, "BEGIN CERTIFICATE") && strstr(chain, "BEGIN CERTIFICATE"), "certificate, chain");
        free(cert);
        free(chain);
        printf("ok - every request property, certificate and chain\n");

        /* TakeKey once; a path works as well as an id */
        char *key = NULL, path[128];
        snprintf(path, sizeof path, "/org/certbroker/Broker1/request/%s", id);
        CHECK(certbroker_take_key(c, path, &key, &e) == 0, "%s", e.message);
        CHECK(strstr(key, "BEGIN PRIVATE KEY"), "PKCS#8");
        key = certbroker_secret_free(key);
        r = certbroker_take_key(c, id, &key, &e);
        CHECK(r == -ENOKEY && certbroker_error_has_name(&e, CERTBROKER_ERROR_KEY_ALREADY_TAKEN) && !key,
              "second TakeKey: %d %s", r, e.message);
        certbroker_error_clear(&e);
        printf("ok - TakeKey once (by path), then KeyAlreadyTaken (-ENOKEY)\n");

        /* Enroll's token: the same request again; other parameters refused naming them. */
        {
                const char *tnames[] = { "token.a.example.test", NULL }, *other_names[] = { "token2.a.example.test", NULL };
                CertbrokerRequestSpec ts = { .names = tnames, .key_type = "ec:p256" };
                char *t1 = NULL, *t2 = NULL, longtok[130];

                CHECK(certbroker_enroll_token(c, &ts, 0, "drv-token-1", &t1, &e) == 0, "%s", e.message);
                CHECK(certbroker_enroll_token(c, &ts, 0, "drv-token-1", &t2, &e) == 0, "%s", e.message);
                CHECK(strcmp(t1, t2) == 0, "same token, two requests: %s %s", t1, t2);
                free(t2);
                t2 = NULL;
                ts.names = other_names;
                r = certbroker_enroll_token(c, &ts, 0, "drv-token-1", &t2, &e);
                CHECK(r == -EINVAL && certbroker_error_has_name(&e, CERTBROKER_ERROR_INVALID_ARGUMENT) &&
                      strstr(e.message, "another names") && strstr(e.message, t1), "same token, other names: %d %s",
                      r, e.message ?: "");
                certbroker_error_clear(&e);
                ts.names = tnames;
                ts.key_type = "rsa:2048";
                r = certbroker_enroll_token(c, &ts, 0, "drv-token-1", &t2, &e);
                CHECK(r == -EINVAL && strstr(e.message, "another key"), "same token, other key: %d %s", r, e.message ?: "");
                certbroker_error_clear(&e);
                r = certbroker_enroll_token(c, &ts, 0, "has space", &t2, &e);
                CHECK(r == -EINVAL && strstr(e.message, "0x20 at offset 3"), "token with a space: %d %s", r, e.message ?: "");
                certbroker_error_clear(&e);
                memset(longtok, 'x', 129);
                longtok[129] = 0;
                r = certbroker_enroll_token(c, &ts, 0, longtok, &t2, &e);
                CHECK(r == -EINVAL && strstr(e.message, "129 bytes"), "long token: %d %s", r, e.message ?: "");
                certbroker_error_clear(&e);
                printf("ok - Enroll with a token twice: one request (%s); the token with other names or key: "
                       "InvalidArgument naming them; a malformed token refused\n", t1);

                /* TakeKeySealed: sealed to one receiver, the same copy again, nobody else; ConfirmKey. */
                unsigned char pa[crypto_box_PUBLICKEYBYTES], sa[crypto_box_SECRETKEYBYTES];
                unsigned char pb[crypto_box_PUBLICKEYBYTES], sb[crypto_box_SECRETKEYBYTES];
                uint8_t *box = NULL, *box2 = NULL;
                size_t size = 0, size2 = 0;
                char *plain;

                CHECK(sodium_init() >= 0, "sodium_init");
                crypto_box_keypair(pa, sa);
                crypto_box_keypair(pb, sb);
                state = NULL;
                CHECK(certbroker_wait(c, t1, 60 * 1000000ULL, NULL, NULL, &state, &e) == 1 &&
                      strcmp(state, "issued") == 0, "token request: %s", state ?: e.message);
                free(state);
                r = certbroker_confirm_key(c, t1, &e);
                CHECK(r == -EBUSY && certbroker_error_has_name(&e, CERTBROKER_ERROR_NOT_READY) &&
                      strstr(e.message, "not been taken"), "ConfirmKey before the key was taken: %d %s", r,
                      e.message ?: "");
                certbroker_error_clear(&e);
                r = certbroker_take_key_sealed(c, t1, pa, 31, &box, &size, &e);
                CHECK(r == -EINVAL && strstr(e.message, "31 bytes"), "31-byte recipient: %d %s", r, e.message ?: "");
                certbroker_error_clear(&e);
                CHECK(certbroker_take_key_sealed(c, t1, pa, sizeof pa, &box, &size, &e) == 0, "%s", e.message);
                CHECK(size > crypto_box_SEALBYTES, "sealed size %zu", size);
                plain = calloc(1, size - crypto_box_SEALBYTES + 1);
                CHECK(plain && crypto_box_seal_open((unsigned char *) plain, box, size, pa, sa) == 0,
                      "the sealed key does not open with the receiver's key");
                CHECK(strncmp(plain, "-----BEGIN PRIVATE KEY-----", 27) == 0, "sealed PEM: %.30s", plain);
                CHECK(crypto_box_seal_open((unsigned char *) plain, box, size, pb, sb) != 0, "opens with another key");
                sodium_memzero(plain, size - crypto_box_SEALBYTES);
                free(plain);
                CHECK(certbroker_take_key_sealed(c, t1, pa, sizeof pa, &box2, &size2, &e) == 0, "%s", e.message);
                CHECK(size2 == size && memcmp(box, box2, size) == 0, "asked again: another sealed copy");
                free(box2);
                box2 = NULL;
                r = certbroker_take_key_sealed(c, t1, pb, sizeof pb, &box2, &size2, &e);
                CHECK(r == -ENOKEY && certbroker_error_has_name(&e, CERTBROKER_ERROR_KEY_ALREADY_TAKEN) &&
                      strstr(e.message, "another recipient") && !box2, "another recipient: %d %s", r, e.message ?: "");
                certbroker_error_clear(&e);
                r = certbroker_take_key(c, t1, &key, &e);
                CHECK(r == -ENOKEY && strstr(e.message, "sealed to a receiver") && !key, "TakeKey after sealing: %d %s",
                      r, e.message ?: "");
                certbroker_error_clear(&e);
                CHECK(certbroker_request_get(c, t1, &info, &e) == 0 && !info->key_available, "KeyAvailable after sealing");
                info = certbroker_request_info_free(info);
                bool sealed = false;
                CHECK(certbroker_request_key_sealed(c, t1, &sealed, &e) == 0 && sealed, "KeySealed after sealing");
                CHECK(certbroker_confirm_key(c, t1, &e) == 0, "%s", e.message);
                CHECK(certbroker_request_key_sealed(c, t1, &sealed, &e) == 0 && !sealed, "KeySealed after ConfirmKey");
                r = certbroker_take_key_sealed(c, t1, pa, sizeof pa, &box2, &size2, &e);
                CHECK(r == -ENOKEY && certbroker_error_has_name(&e, CERTBROKER_ERROR_KEY_ALREADY_TAKEN),
                      "sealed copy after ConfirmKey: %d %s", r, e.message ?: "");
                certbroker_error_clear(&e);
                CHECK(certbroker_confirm_key(c, t1, &e) == 0, "second ConfirmKey: %s", e.message);
                free(box);
                sodium_memzero(sa, sizeof sa);
                sodium_memzero(sb, sizeof sb);
                printf("ok - TakeKeySealed: opens with the receiver's key only, the same copy when asked again, "
                       "another recipient and TakeKey get KeyAlreadyTaken, KeySealed until ConfirmKey erases the copy\n");
                CHECK(certbroker_remove(c, t1, &e) == 0, "%s", e.message);
                free(t1);
        }

        /* List, Cancel of an ended request, Remove */
        CertbrokerRequestEntry *l = NULL;
        size_t n = 0;
        bool found = false;
        CHECK(certbroker_list_requests(c, &l, &n, &e) == 0, "%s", e.message);
        for (size_t i = 0; i < n; i++)
                if (strcmp(l[i].id, id) == 0)
                        found = strcmp(l[i].state, "issued") == 0 && strstr(l[i].path, id);
        certbroker_request_entries_free(l, n);
        CHECK(found, "request not in the list");
        r = certbroker_cancel(c, id, &e);
        CHECK(r == -EBUSY && certbroker_error_has_name(&e, CERTBROKER_ERROR_NOT_READY), "cancel issued: %d", r);
        certbroker_error_clear(&e);
        CHECK(certbroker_remove(c, id, &e) == 0, "%s", e.message);
        r = certbroker_request_get(c, id, &info, &e);
        CHECK(r == -ENOENT && certbroker_error_has_name(&e, CERTBROKER_ERROR_NO_SUCH_REQUEST), "after remove: %d", r);
        certbroker_error_clear(&e);
        free(id);
        printf("ok - ListRequests, Cancel of an issued request refused, Remove, then NoSuchRequest\n");

        /* Someone else's request; malformed ids */
        r = certbroker_request_get(c, other, &info, &e);
        CHECK(r == -EACCES && certbroker_error_has_name(&e, CERTBROKER_ERROR_ACCESS_DENIED), "other's request: %d", r);
        certbroker_error_clear(&e);
        r = certbroker_request_state(c, "0123", &state, &e);
        CHECK(r == -EINVAL && !e.name && strstr(e.message, "16 lowercase hex"), "bad id: %d", r);
        certbroker_error_clear(&e);
        r = certbroker_remove(c, "/org/certbroker/Broker1/ca/corp", &e);
        CHECK(r == -EINVAL && strstr(e.message, "not a request object path"), "bad path: %d", r);
        certbroker_error_clear(&e);
        printf("ok - another user's request: AccessDenied (-EACCES); malformed ids refused locally\n");

        certbroker_close(c);
        return 0;
}
