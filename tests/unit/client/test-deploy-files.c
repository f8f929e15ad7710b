/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* deploy's files (client-lib/deploy-files.c) in a scratch directory: the directory checks,
 * atomic writes that never follow a planted symlink, the state file, generations, the live
 * link swapped by one rename, pruning, and the deploy.d configuration. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <sodium.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "deploy-files.h"
#include "test-scratch.h"

#define ID1 "0123456789abcdef"
#define ID2 "1111111111111111"
#define ID3 "2222222222222222"

static char base[] = "/tmp/test-deploy-files.XXXXXX";

static int setup(void **state) {
        return test_scratch_make(base);
}

static int teardown(void **state) {
        return test_scratch_remove(base);
}

static int fresh_dir(const char *name, mode_t mode, char *path, size_t size) {
        snprintf(path, size, "%s/%s", base, name);
        test_mkdir_mode(path, mode);
        return 0;
}

static char *read_at(int dfd, const char *name) {
        static char buf[4096];
        int fd = openat(dfd, name, O_RDONLY | O_CLOEXEC);
        ssize_t n;
        if (fd < 0)
                return NULL;
        n = read(fd, buf, sizeof buf - 1);
        close(fd);
        buf[n < 0 ? 0 : n] = 0;
        return buf;
}

static void test_dir_open(void **state) {
        char p[256], l[256], *why = NULL;
        int fd = -1;

        fresh_dir("ok", 0750, p, sizeof p);
        assert_int_equal(deploy_dir_open(p, geteuid(), &fd, &why), 0);
        close(fd);
        /* writable by others */
        fresh_dir("open", 0770, p, sizeof p);
        assert_int_equal(deploy_dir_open(p, geteuid(), &fd, &why), -EPERM);
        assert_non_null(strstr(why, "writable by its group or others"));
        fresh_dir("world", 0757, p, sizeof p);
        assert_int_equal(deploy_dir_open(p, geteuid(), &fd, &why), -EPERM);
        /* another owner */
        fresh_dir("other", 0700, p, sizeof p);
        assert_int_equal(deploy_dir_open(p, geteuid() + 1, &fd, &why), -EPERM);
        assert_non_null(strstr(why, "owned by uid"));
        /* a symlink */
        snprintf(l, sizeof l, "%s/link", base);
        snprintf(p, sizeof p, "%s/ok", base);
        assert_int_equal(symlink(p, l), 0);
        assert_int_equal(deploy_dir_open(l, geteuid(), &fd, &why), -ELOOP);
        assert_non_null(strstr(why, "symbolic link"));
        /* below a directory writable by others (not sticky) */
        fresh_dir("shared", 0777, p, sizeof p);
        fresh_dir("shared/mine", 0700, p, sizeof p);
        assert_int_equal(deploy_dir_open(p, geteuid(), &fd, &why), -EPERM);
        assert_non_null(strstr(why, "others could replace"));
        /* ... but a sticky one is fine */
        fresh_dir("sticky", 01777, p, sizeof p);
        fresh_dir("sticky/mine", 0700, p, sizeof p);
        assert_int_equal(deploy_dir_open(p, geteuid(), &fd, &why), 0);
        close(fd);
        assert_int_equal(deploy_dir_open("relative", geteuid(), &fd, &why), -EINVAL);
        free(why);
}

static void test_write_file(void **state) {
        char p[256], victim[256];
        struct stat st;
        int dfd;

        fresh_dir("write", 0700, p, sizeof p);
        dfd = open(p, O_RDONLY | O_DIRECTORY);
        assert_int_equal(deploy_write_file(dfd, "key.pem", "secret\n", 0600), 0);
        assert_string_equal(read_at(dfd, "key.pem"), "secret\n");
        assert_int_equal(fstatat(dfd, "key.pem", &st, 0), 0);
        assert_int_equal(st.st_mode & 07777, 0600);
        assert_int_equal(fstatat(dfd, "key.pem.tmp", &st, 0), -1);
        /* a symlink planted as the temporary file is removed, not followed */
        snprintf(victim, sizeof victim, "%s/victim", base);
        assert_int_equal(close(open(victim, O_CREAT | O_WRONLY, 0644)), 0);
        assert_int_equal(symlinkat(victim, dfd, "cert.pem.tmp"), 0);
        assert_int_equal(deploy_write_file(dfd, "cert.pem", "cert\n", 0644), 0);
        assert_int_equal(stat(victim, &st), 0);
        assert_int_equal(st.st_size, 0);
        /* a symlink as the target is replaced, not written through */
        assert_int_equal(symlinkat(victim, dfd, "chain.pem"), 0);
        assert_int_equal(deploy_write_file(dfd, "chain.pem", "chain\n", 0644), 0);
        assert_int_equal(stat(victim, &st), 0);
        assert_int_equal(st.st_size, 0);
        assert_int_equal(fstatat(dfd, "chain.pem", &st, AT_SYMLINK_NOFOLLOW), 0);
        assert_true(S_ISREG(st.st_mode));
        /* replacing keeps the mode asked for, whatever the umask */
        mode_t old = umask(0);
        assert_int_equal(deploy_write_file(dfd, "key.pem", "new\n", 0600), 0);
        umask(old);
        assert_int_equal(fstatat(dfd, "key.pem", &st, 0), 0);
        assert_int_equal(st.st_mode & 07777, 0600);
        assert_string_equal(read_at(dfd, "key.pem"), "new\n");
        close(dfd);
}

static void test_state(void **state) {
        char p[256], *why = NULL;
        DeployState s = {}, t = {};
        int dfd;

        fresh_dir("state", 0700, p, sizeof p);
        dfd = open(p, O_RDONLY | O_DIRECTORY);
        assert_int_equal(deploy_state_read(dfd, geteuid(), &s, &why), 0);
        assert_string_equal(s.request, "");
        strcpy(s.request, ID1);
        assert_int_equal(deploy_state_write(dfd, &s), 0);
        assert_int_equal(deploy_state_read(dfd, geteuid(), &t, &why), 0);
        assert_string_equal(t.request, ID1);
        assert_string_equal(t.reloaded, "");
        strcpy(s.reloaded, ID1);
        assert_int_equal(deploy_state_write(dfd, &s), 0);
        assert_int_equal(deploy_state_read(dfd, geteuid(), &t, &why), 0);
        assert_string_equal(t.reloaded, ID1);
        assert_string_equal(t.intent, "");
        /* the intent alone (written before Enroll), then kept beside the request */
        memset(&s, 0, sizeof s);
        assert_int_equal(deploy_intent_new(s.intent), 0);
        assert_int_equal(strlen(s.intent), DEPLOY_INTENT_LEN);
        assert_int_equal(deploy_state_write(dfd, &s), 0);
        assert_int_equal(deploy_state_read(dfd, geteuid(), &t, &why), 0);
        assert_string_equal(t.intent, s.intent);
        assert_string_equal(t.request, "");
        strcpy(s.request, ID2);
        assert_int_equal(deploy_state_write(dfd, &s), 0);
        assert_int_equal(deploy_state_read(dfd, geteuid(), &t, &why), 0);
        assert_string_equal(t.request, ID2);
        assert_string_equal(t.intent, s.intent);
        assert_int_equal(deploy_write_file(dfd, DEPLOY_STATE_FILE, "intent=0123\n", 0600), 0);
        assert_int_equal(deploy_state_read(dfd, geteuid(), &t, &why), -EBADMSG);
        assert_non_null(strstr(why, "intent="));
        assert_int_equal(deploy_state_read(dfd, geteuid() + 1, &t, &why), -EBADMSG);
        /* malformed */
        assert_int_equal(deploy_write_file(dfd, DEPLOY_STATE_FILE, "request=xyz\n", 0600), 0);
        assert_int_equal(deploy_state_read(dfd, geteuid(), &t, &why), -EBADMSG);
        assert_non_null(strstr(why, "unexpected line"));
        /* a planted symlink */
        assert_int_equal(unlinkat(dfd, DEPLOY_STATE_FILE, 0), 0);
        assert_int_equal(symlinkat("/etc/passwd", dfd, DEPLOY_STATE_FILE), 0);
        assert_int_equal(deploy_state_read(dfd, geteuid(), &t, &why), -ELOOP);
        assert_non_null(strstr(why, "symbolic link"));
        free(why);
        close(dfd);
}

/* The receiver key of a sealed hand-off: kept in the state file across a restart, opens what
 * was sealed to its public half and nothing else, never quoted in a message, wiped on clear. */
static void test_seal(void **state) {
        static const char pem[] = "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49\n-----END PRIVATE KEY-----\n";
        char p[256], *why = NULL, *opened = NULL, line[128];
        DeployState s = {}, t = {}, other = {};
        uint8_t pub[32], pub2[32], box[sizeof pem - 1 + crypto_box_SEALBYTES];
        int dfd;

        assert_true(sodium_init() >= 0);
        assert_int_equal(deploy_seal_public(&s, pub), -EINVAL);         /* none yet */
        assert_int_equal(deploy_seal_new(&s, "xyz"), -EINVAL);
        assert_int_equal(deploy_seal_new(&s, ID1), 0);
        assert_string_equal(s.seal_request, ID1);
        assert_int_equal(strlen(s.seal_secret), DEPLOY_SEAL_SECRET_LEN);
        assert_int_equal(deploy_seal_public(&s, pub), 0);
        assert_int_equal(crypto_box_seal(box, (const unsigned char *) pem, sizeof pem - 1, pub), 0);

        /* survives the state file, beside the rest */
        fresh_dir("seal", 0700, p, sizeof p);
        dfd = open(p, O_RDONLY | O_DIRECTORY);
        strcpy(s.request, ID1);
        assert_int_equal(deploy_intent_new(s.intent), 0);
        assert_int_equal(deploy_state_write(dfd, &s), 0);
        assert_int_equal(deploy_state_read(dfd, geteuid(), &t, &why), 0);
        assert_string_equal(t.seal_request, ID1);
        assert_string_equal(t.seal_secret, s.seal_secret);
        assert_string_equal(t.intent, s.intent);
        assert_string_equal(t.request, ID1);
        assert_int_equal(deploy_seal_public(&t, pub2), 0);
        assert_memory_equal(pub, pub2, sizeof pub);
        assert_int_equal(deploy_seal_open(&t, box, sizeof box, &opened), 0);
        assert_string_equal(opened, pem);
        free(opened);
        opened = NULL;

        /* another receiver key, a damaged box, a box of something else: refused */
        assert_int_equal(deploy_seal_new(&other, ID2), 0);
        assert_int_equal(deploy_seal_open(&other, box, sizeof box, &opened), -EBADMSG);
        box[sizeof box - 1] ^= 1;
        assert_int_equal(deploy_seal_open(&t, box, sizeof box, &opened), -EBADMSG);
        assert_int_equal(deploy_seal_open(&t, box, crypto_box_SEALBYTES, &opened), -EBADMSG);
        assert_int_equal(crypto_box_seal(box, (const unsigned char *) "not a key, but sealed right.....",
                                         32, pub), 0);
        assert_int_equal(deploy_seal_open(&t, box, 32 + crypto_box_SEALBYTES, &opened), -EBADMSG);
        assert_null(opened);

        /* malformed seal= lines: refused without quoting the secret */
        snprintf(line, sizeof line, "seal=%s %.*s\n", ID1, 63, s.seal_secret);
        assert_int_equal(deploy_state_parse(line, strlen(line), &t, &why), -EBADMSG);
        assert_non_null(strstr(why, "malformed seal="));
        assert_null(strstr(why, s.seal_secret + 8));
        snprintf(line, sizeof line, "seal=xyz %s\n", s.seal_secret);
        assert_int_equal(deploy_state_parse(line, strlen(line), &t, &why), -EBADMSG);
        assert_null(strstr(why, s.seal_secret + 8));
        snprintf(line, sizeof line, "seal=%s\n", ID1);
        assert_int_equal(deploy_state_parse(line, strlen(line), &t, &why), -EBADMSG);
        /* a NUL byte, an oversized file */
        assert_int_equal(deploy_state_parse("request=\0", 9, &t, &why), -EBADMSG);
        {
                char big[DEPLOY_STATE_MAX + 2];
                memset(big, '#', sizeof big);
                assert_int_equal(deploy_state_parse(big, sizeof big, &t, &why), -EBADMSG);
                assert_non_null(strstr(why, "larger than"));
        }

        /* cleared: gone from the file too */
        deploy_seal_clear(&s);
        assert_string_equal(s.seal_request, "");
        for (size_t i = 0; i < sizeof s.seal_secret; i++)
                assert_int_equal(s.seal_secret[i], 0);
        assert_int_equal(deploy_state_write(dfd, &s), 0);
        assert_int_equal(deploy_state_read(dfd, geteuid(), &t, &why), 0);
        assert_string_equal(t.seal_request, "");
        assert_null(strstr(read_at(dfd, DEPLOY_STATE_FILE), "seal="));
        free(why);
        close(dfd);
}

static void test_generations(void **state) {
        char p[256], id[17], *why = NULL;
        bool created;
        int dfd, gfd;

        fresh_dir("gens", 0700, p, sizeof p);
        dfd = open(p, O_RDONLY | O_DIRECTORY);
        assert_int_equal(deploy_live_read(dfd, id, &why), -ENOENT);
        assert_int_equal(deploy_generation_open(dfd, geteuid(), ID1, false, &gfd, NULL, &why), -ENOENT);
        assert_int_equal(deploy_generation_open(dfd, geteuid(), ID1, true, &gfd, &created, &why), 0);
        assert_true(created);
        assert_false(deploy_generation_has_key(gfd));
        assert_int_equal(deploy_write_file(gfd, "key.pem", "k1\n", 0600), 0);
        assert_true(deploy_generation_has_key(gfd));
        close(gfd);
        assert_int_equal(deploy_generation_open(dfd, geteuid(), ID1, true, &gfd, &created, &why), 0);
        assert_false(created);
        close(gfd);
        assert_int_equal(deploy_live_swap(dfd, ID1), 0);
        assert_int_equal(deploy_live_read(dfd, id, &why), 0);
        assert_string_equal(id, ID1);
        assert_string_equal(read_at(dfd, "live/key.pem"), "k1\n");
        for (const char *const *g = (const char *const[]) { ID2, ID3, NULL }; *g; g++) {
                assert_int_equal(deploy_generation_open(dfd, geteuid(), *g, true, &gfd, NULL, &why), 0);
                assert_int_equal(deploy_write_file(gfd, "key.pem", *g, 0600), 0);
                close(gfd);
                assert_int_equal(deploy_live_swap(dfd, *g), 0);
                usleep(20000);
        }
        assert_string_equal(read_at(dfd, "live/key.pem"), ID3);
        /* keep 2: the live one and the newest other */
        assert_int_equal(deploy_prune(dfd, ID3, DEPLOY_KEEP_GENERATIONS), 1);
        assert_int_equal(faccessat(dfd, "gen-" ID1, F_OK, AT_SYMLINK_NOFOLLOW), -1);
        assert_int_equal(faccessat(dfd, "gen-" ID2, F_OK, AT_SYMLINK_NOFOLLOW), 0);
        assert_int_equal(faccessat(dfd, "gen-" ID3, F_OK, AT_SYMLINK_NOFOLLOW), 0);
        /* a symlink planted as a generation is refused */
        assert_int_equal(symlinkat("/etc", dfd, "gen-" ID1), 0);
        int r = deploy_generation_open(dfd, geteuid(), ID1, true, &gfd, NULL, &why);
        assert_true(r == -ELOOP || r == -ENOTDIR);
        assert_non_null(strstr(why, "refusing"));
        /* "live" that is not our link is refused */
        assert_int_equal(unlinkat(dfd, "live", 0), 0);
        assert_int_equal(symlinkat("/etc", dfd, "live"), 0);
        assert_int_equal(deploy_live_read(dfd, id, &why), -EBADMSG);
        assert_int_equal(unlinkat(dfd, "live", 0), 0);
        assert_int_equal(mkdirat(dfd, "live", 0700), 0);
        assert_int_equal(deploy_live_read(dfd, id, &why), -EBADMSG);
        free(why);
        close(dfd);
}

static void test_intent(void **state) {
        char a[DEPLOY_INTENT_LEN + 1], b[DEPLOY_INTENT_LEN + 1], *l = NULL, long_label[200];
        uint64_t usec = 1;

        assert_int_equal(deploy_intent_new(a), 0);
        assert_int_equal(deploy_intent_new(b), 0);
        assert_string_not_equal(a, b);
        assert_int_equal(deploy_intent_label(NULL, a, &l), 0);
        assert_int_equal(strncmp(l, "deploy:", 7), 0);
        assert_string_equal(l + 7, a);
        free(l);
        assert_int_equal(deploy_intent_label("web", a, &l), 0);
        assert_int_equal(strncmp(l, "web deploy:", 11), 0);
        assert_string_equal(l + 11, a);
        free(l);
        memset(long_label, 'x', DEPLOY_USER_LABEL_MAX);
        long_label[DEPLOY_USER_LABEL_MAX] = 0;
        assert_int_equal(deploy_intent_label(long_label, a, &l), 0);
        assert_int_equal(strlen(l), DEPLOY_LABEL_MAX);
        free(l);
        strcat(long_label, "x");
        assert_int_equal(deploy_intent_label(long_label, a, &l), -E2BIG);
        assert_int_equal(deploy_intent_label(NULL, "0123", &l), -EINVAL);

        assert_int_equal(deploy_parse_timeout("60", &usec), 0);
        assert_int_equal(usec, 60000000);
        assert_int_equal(deploy_parse_timeout("2.5s", &usec), 0);
        assert_int_equal(usec, 2500000);
        assert_int_equal(deploy_parse_timeout("5min", &usec), 0);
        assert_int_equal(usec, 300000000);
        assert_int_equal(deploy_parse_timeout("1h", &usec), 0);
        assert_int_equal(usec, 3600000000ULL);
        assert_int_equal(deploy_parse_timeout("0", &usec), 0);
        assert_int_equal(usec, 0);
        assert_int_equal(deploy_parse_timeout("infinity", &usec), 0);
        assert_int_equal(usec, 0);
        assert_int_equal(deploy_parse_timeout("", &usec), -EINVAL);
        assert_int_equal(deploy_parse_timeout("-1", &usec), -EINVAL);
        assert_int_equal(deploy_parse_timeout("10 s", &usec), -EINVAL);
        assert_int_equal(deploy_parse_timeout("5d", &usec), -EINVAL);
}

static void test_config(void **state) {
        DeployConfig c = {};
        char *why = NULL;

        assert_int_equal(deploy_config_parse(
                "# nginx of tenant A\n"
                "User=www-a\n"
                "Dir=/var/lib/certbroker-deploy/nginx-a\n"
                "Reload = /usr/sbin/nginx -s reload\n"
                "CA=corp\n"
                "DNS=web.a.example.test www.a.example.test\n"
                "DNS=api.a.example.test\n"
                "KeyType=ec:p256\n"
                "ReloadTimeout=90s\n"
                "Label=nginx-a\n", &c, &why), 0);
        assert_string_equal(c.reload_timeout, "90s");
        assert_string_equal(c.user, "www-a");
        assert_string_equal(c.dir, "/var/lib/certbroker-deploy/nginx-a");
        assert_string_equal(c.reload, "/usr/sbin/nginx -s reload");
        assert_int_equal(c.n_dns, 3);
        assert_string_equal(c.dns[2], "api.a.example.test");
        assert_null(c.dns[3]);
        assert_string_equal(c.key_type, "ec:p256");
        assert_null(c.subject);
        deploy_config_done(&c);

        assert_int_equal(deploy_config_parse("Dir=/x\nDNS=a\nBogus=1\n", &c, &why), -EINVAL);
        assert_non_null(strstr(why, "line 3: unknown key 'Bogus'"));
        assert_int_equal(deploy_config_parse("DNS=a\n", &c, &why), -EINVAL);
        assert_non_null(strstr(why, "Dir= is missing"));
        assert_int_equal(deploy_config_parse("Dir=rel\nDNS=a\n", &c, &why), -EINVAL);
        assert_non_null(strstr(why, "absolute"));
        assert_int_equal(deploy_config_parse("Dir=/x\n", &c, &why), -EINVAL);
        assert_non_null(strstr(why, "DNS="));
        assert_int_equal(deploy_config_parse("Dir=/x\nDir=/y\nDNS=a\n", &c, &why), -EINVAL);
        assert_non_null(strstr(why, "given twice"));
        assert_int_equal(deploy_config_parse("Dir=/x\nDNS=a\nReloadTimeout=soon\n", &c, &why), -EINVAL);
        assert_non_null(strstr(why, "ReloadTimeout=soon"));
        assert_int_equal(deploy_config_parse("Dir=/x\nno equals\n", &c, &why), -EINVAL);
        assert_non_null(strstr(why, "line 2"));
        /* Identity=self: no DNS= or Subject= */
        assert_int_equal(deploy_config_parse("Dir=/home/u/.local/share/certbroker/wifi\nIdentity=self\n", &c, &why), 0);
        assert_string_equal(c.identity, "self");
        assert_int_equal(c.n_dns, 0);
        deploy_config_done(&c);
        assert_int_equal(deploy_config_parse("Dir=/x\nIdentity=bob\n", &c, &why), -EINVAL);
        assert_non_null(strstr(why, "the only identity is self"));
        assert_int_equal(deploy_config_parse("Dir=/x\nIdentity=self\nDNS=a\n", &c, &why), -EINVAL);
        assert_non_null(strstr(why, "takes no DNS= or Subject="));
        free(why);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_dir_open),
                cmocka_unit_test(test_write_file),
                cmocka_unit_test(test_state),
                cmocka_unit_test(test_seal),
                cmocka_unit_test(test_generations),
                cmocka_unit_test(test_intent),
                cmocka_unit_test(test_config),
        };
        return cmocka_run_group_tests(tests, setup, teardown);
}
