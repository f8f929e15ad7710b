/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* deploy's formats (client-lib/deploy-formats.c, deploy-nssdb.c, and the Format= settings of
 * deploy-files.c) in a scratch directory: passphrase files and credentials (and the ones
 * refused), the PKCS#12 bundle read back by OpenSSL with its algorithms checked, the NSS
 * database read back by NSS through a renewal (import, then prune), and the NSS database
 * directories refused with nothing written. The keytool/certutil/TLS checks are in
 * tests/integration/client-deploy-formats.sh. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/pkcs12.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "cli-util.h"
#include "deploy-files.h"
#include "deploy-formats.h"
#include "test-scratch.h"

static char base[] = "/tmp/test-deploy-formats.XXXXXX";

static int setup(void **state) {
        return test_scratch_make(base);
}

static int teardown(void **state) {
        return test_scratch_remove(base);
}

static void write_file(const char *path, const char *text, mode_t mode) {
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
        assert_true(fd >= 0);
        assert_int_equal(write(fd, text, strlen(text)), (ssize_t) strlen(text));
        assert_int_equal(fchmod(fd, mode), 0);
        close(fd);
}

/* ---- the settings ---- */

static void test_settings(void **state) {
        DeployOutputs o;
        DeployConfig c = {};
        unsigned f = 0;
        char *why = NULL;

        assert_int_equal(deploy_format_parse("pkcs12", &f, NULL), 0);
        assert_int_equal(f, DEPLOY_FORMAT_PEM | DEPLOY_FORMAT_PKCS12);
        assert_int_equal(deploy_format_parse("pem, nssdb pkcs12", &f, NULL), 0);
        assert_int_equal(f, DEPLOY_FORMAT_PEM | DEPLOY_FORMAT_PKCS12 | DEPLOY_FORMAT_NSSDB);
        assert_int_equal(deploy_format_parse("jks", &f, &why), -EINVAL);
        assert_non_null(strstr(why, "'jks'"));
        assert_int_equal(deploy_format_parse(" , ", &f, &why), -EINVAL);

        o = (DeployOutputs) {};
        assert_int_equal(deploy_outputs_check(NULL, &o, true, NULL), 0);
        assert_int_equal(o.formats, DEPLOY_FORMAT_PEM);
        o = (DeployOutputs) {};
        assert_int_equal(deploy_outputs_check("pkcs12", &o, true, &why), -EINVAL);
        assert_non_null(strstr(why, "PassphraseFile="));
        o = (DeployOutputs) { .passphrase_file = "/p", .passphrase_credential = "p" };
        assert_int_equal(deploy_outputs_check("pkcs12", &o, false, &why), -EINVAL);
        assert_non_null(strstr(why, "--passphrase-file"));
        o = (DeployOutputs) { .passphrase_file = "/p" };
        assert_int_equal(deploy_outputs_check("pem", &o, true, &why), -EINVAL);
        assert_non_null(strstr(why, "only for format pkcs12"));
        o = (DeployOutputs) { .passphrase_file = "rel" };
        assert_int_equal(deploy_outputs_check("pkcs12", &o, true, &why), -EINVAL);
        o = (DeployOutputs) { .passphrase_credential = "../x" };
        assert_int_equal(deploy_outputs_check("pkcs12", &o, true, &why), -EINVAL);
        o = (DeployOutputs) {};
        assert_int_equal(deploy_outputs_check("nssdb", &o, true, &why), -EINVAL);
        assert_non_null(strstr(why, "NSSDB="));
        o = (DeployOutputs) { .nssdb = "sql:/home/a/.pki/nssdb", .nickname = "web" };
        assert_int_equal(deploy_outputs_check("nssdb", &o, true, NULL), 0);
        assert_string_equal(o.nssdb, "/home/a/.pki/nssdb");
        o = (DeployOutputs) { .nssdb = "/x", .nickname = "a:b" };
        assert_int_equal(deploy_outputs_check("nssdb", &o, true, &why), -EINVAL);
        assert_non_null(strstr(why, "Nickname="));
        o = (DeployOutputs) { .nickname = "web" };
        assert_int_equal(deploy_outputs_check(NULL, &o, true, &why), -EINVAL);

        assert_int_equal(deploy_config_parse("Dir=/d\nDNS=a\nFormat=pem pkcs12 nssdb\nPassphraseCredential=p12\n"
                                             "NSSDB=sql:/n\nNickname=web\n", &c, &why), 0);
        assert_string_equal(c.format, "pem pkcs12 nssdb");
        assert_string_equal(c.passphrase_credential, "p12");
        assert_string_equal(c.nssdb, "sql:/n");
        assert_string_equal(c.nickname, "web");
        deploy_config_done(&c);
        assert_int_equal(deploy_config_parse("Dir=/d\nDNS=a\nFormat=pkcs12\n", &c, &why), -EINVAL);
        assert_non_null(strstr(why, "passphrase"));
        assert_int_equal(deploy_config_parse("Dir=/d\nDNS=a\nFormat=p7b\n", &c, &why), -EINVAL);
        assert_non_null(strstr(why, "Format=p7b"));
        free(why);
}

static void test_cli(void **state) {
        char *argv_ok[] = { "certbrokerctl", "deploy", "--dir", "/d", "--dns", "a", "--format", "pkcs12,nssdb",
                            "--passphrase-file", "/p", "--nssdb", "/n", "--nickname", "web", NULL };
        char *argv_bad[] = { "certbrokerctl", "deploy", "--dir", "/d", "--dns", "a", "--format", "nssdb", NULL };
        char *argv_cfg[] = { "certbrokerctl", "deploy", "--config", "/c", "--format", "pem", NULL };
        CliArgs a = {};
        char *err = NULL;

        assert_int_equal(cli_parse_args(14, argv_ok, &a, &err), 0);
        assert_string_equal(a.format, "pkcs12,nssdb");
        assert_string_equal(a.passphrase_file, "/p");
        assert_string_equal(a.nssdb, "/n");
        assert_string_equal(a.nickname, "web");
        cli_args_done(&a);
        a = (CliArgs) {};
        assert_int_equal(cli_parse_args(8, argv_bad, &a, &err), -EINVAL);
        assert_non_null(strstr(err, "--nssdb"));
        free(err);
        err = NULL;
        cli_args_done(&a);
        a = (CliArgs) {};
        assert_int_equal(cli_parse_args(6, argv_cfg, &a, &err), -EINVAL);
        assert_non_null(strstr(err, "--config"));
        free(err);
        cli_args_done(&a);
}

/* ---- passphrases ---- */

static void test_passphrase(void **state) {
        char p[600], l[512], *pw = NULL, *why = NULL;
        uid_t uid = geteuid();

        snprintf(p, sizeof p, "%s/pass", base);
        write_file(p, "s3cret words\nsecond line\n", 0600);
        assert_int_equal(deploy_passphrase_read_file(p, uid, &pw, &why), 0);
        assert_string_equal(pw, "s3cret words");
        deploy_passphrase_free(pw);
        pw = NULL;

        /* Readable by its group or others: refused, named, and the message holds no secret. */
        assert_int_equal(chmod(p, 0640), 0);
        assert_int_equal(deploy_passphrase_read_file(p, uid, &pw, &why), -EPERM);
        assert_null(pw);
        assert_non_null(strstr(why, p));
        assert_non_null(strstr(why, "0640"));
        assert_null(strstr(why, "s3cret"));
        assert_int_equal(chmod(p, 0604), 0);
        assert_int_equal(deploy_passphrase_read_file(p, uid, &pw, &why), -EPERM);
        assert_int_equal(chmod(p, 0600), 0);
        /* Owned by someone else (as root the test can make one). */
        if (uid == 0) {
                assert_int_equal(chown(p, 12345, 12345), 0);
                assert_int_equal(deploy_passphrase_read_file(p, 12345, &pw, &why), 0);
                deploy_passphrase_free(pw);
                pw = NULL;
                assert_int_equal(deploy_passphrase_read_file(p, 23456, &pw, &why), -EPERM);
                assert_non_null(strstr(why, "uid 12345"));
                assert_int_equal(chown(p, 0, 0), 0);
        }
        /* A symbolic link, even to a good file. */
        snprintf(l, sizeof l, "%s/pass-link", base);
        assert_int_equal(symlink(p, l), 0);
        assert_int_equal(deploy_passphrase_read_file(l, uid, &pw, &why), -ELOOP);
        assert_non_null(strstr(why, "symbolic link"));
        /* A CRLF line end; a NUL byte. */
        snprintf(l, sizeof l, "%s/pass-crlf", base);
        write_file(l, "windows\r\nrest\n", 0600);
        assert_int_equal(deploy_passphrase_read_file(l, uid, &pw, &why), 0);
        assert_string_equal(pw, "windows");
        deploy_passphrase_free(pw);
        pw = NULL;
        snprintf(l, sizeof l, "%s/pass-nul", base);
        {
                int fd = open(l, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
                assert_true(fd >= 0);
                assert_int_equal(write(fd, "ab\0cd\n", 6), 6);
                close(fd);
        }
        assert_int_equal(deploy_passphrase_read_file(l, uid, &pw, &why), -EINVAL);
        assert_non_null(strstr(why, "NUL byte"));
        /* Empty. */
        snprintf(l, sizeof l, "%s/pass-empty", base);
        write_file(l, "\n", 0600);
        assert_int_equal(deploy_passphrase_read_file(l, uid, &pw, &why), -EINVAL);
        assert_int_equal(deploy_passphrase_read_file("relative", uid, &pw, &why), -EINVAL);

        /* A systemd credential. */
        snprintf(l, sizeof l, "%s/creds", base);
        test_mkdir_mode(l, 0700);
        snprintf(p, sizeof p, "%s/p12", l);
        write_file(p, "from-credential", 0400);
        unsetenv("CREDENTIALS_DIRECTORY");
        assert_int_equal(deploy_passphrase_read_credential("p12", uid, &pw, &why), -ENOENT);
        assert_non_null(strstr(why, "CREDENTIALS_DIRECTORY"));
        setenv("CREDENTIALS_DIRECTORY", l, 1);
        assert_int_equal(deploy_passphrase_read_credential("p12", uid, &pw, &why), 0);
        assert_string_equal(pw, "from-credential");
        deploy_passphrase_free(pw);
        pw = NULL;
        assert_int_equal(deploy_passphrase_read_credential("../pass", uid, &pw, &why), -EINVAL);
        assert_int_equal(deploy_passphrase_read_credential("nope", uid, &pw, &why), -ENOENT);
        unsetenv("CREDENTIALS_DIRECTORY");
        free(why);
}

/* ---- a CA and leaf pairs, made here ---- */

static EVP_PKEY *ca_key;
static X509 *ca_cert;

static X509 *make_cert(EVP_PKEY *key, const char *cn, X509 *issuer, EVP_PKEY *issuer_key, long serial) {
        X509 *x = X509_new();
        X509_NAME *n;

        assert_non_null(x);
        X509_set_version(x, 2);
        ASN1_INTEGER_set(X509_get_serialNumber(x), serial);
        X509_gmtime_adj(X509_getm_notBefore(x), -60);
        X509_gmtime_adj(X509_getm_notAfter(x), 3600);
        X509_set_pubkey(x, key);
        n = X509_get_subject_name(x);
        X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *) cn, -1, -1, 0);
        X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : n);
        if (!issuer) {
                X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, NULL, NID_basic_constraints, "critical,CA:TRUE");
                X509_add_ext(x, e, -1);
                X509_EXTENSION_free(e);
        }
        assert_true(X509_sign(x, issuer_key ?: key, EVP_sha256()) > 0);
        return x;
}

/* A memory BIO's bytes as a string (they end with no NUL: not strndup(), which may look one
 * byte past them). */
static char *bio_text(const char *data, long n) {
        char *s = n >= 0 ? malloc((size_t) n + 1) : NULL;
        if (s) {
                memcpy(s, data, (size_t) n);
                s[n] = 0;
        }
        return s;
}

static char *pem_of_cert(X509 *x) {
        BIO *b = BIO_new(BIO_s_mem());
        char *data, *s;
        long n;
        PEM_write_bio_X509(b, x);
        n = BIO_get_mem_data(b, &data);
        s = bio_text(data, n);
        BIO_free(b);
        return s;
}

static char *pem_of_key(EVP_PKEY *k) {
        BIO *b = BIO_new(BIO_s_mem());
        char *data, *s;
        long n;
        PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL);
        n = BIO_get_mem_data(b, &data);
        s = bio_text(data, n);
        BIO_free(b);
        return s;
}

/* A generation directory dir with a new key (RSA or EC) and its certificate for cn; *ret_der
 * the certificate's DER (for comparisons). */
static int make_generation(const char *dir, const char *cn, bool rsa, long serial, X509 **ret_cert) {
        EVP_PKEY *k = rsa ? EVP_RSA_gen(2048) : EVP_EC_gen("P-256");
        X509 *x;
        char *s;
        int gfd;

        assert_non_null(k);
        if (!ca_key) {
                ca_key = EVP_EC_gen("P-256");
                ca_cert = make_cert(ca_key, "Test Deploy CA", NULL, NULL, 1);
        }
        x = make_cert(k, cn, ca_cert, ca_key, serial);
        test_mkdir_mode(dir, 0750);
        gfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        assert_true(gfd >= 0);
        s = pem_of_key(k);
        assert_int_equal(deploy_write_file(gfd, "key.pem", s, 0600), 0);
        free(s);
        s = pem_of_cert(x);
        assert_int_equal(deploy_write_file(gfd, "cert.pem", s, 0644), 0);
        free(s);
        s = pem_of_cert(ca_cert);
        assert_int_equal(deploy_write_file(gfd, "chain.pem", s, 0644), 0);
        free(s);
        EVP_PKEY_free(k);
        if (ret_cert)
                *ret_cert = x;
        else
                X509_free(x);
        return gfd;
}

/* ---- PKCS#12 ---- */

static void test_pkcs12(void **state) {
        char g[512], g2[512], *why = NULL;
        unsigned char buf[16384];
        const unsigned char *q = buf;
        const X509_ALGOR *mac_alg = NULL;
        const ASN1_OBJECT *obj;
        STACK_OF(PKCS7) *safes;
        EVP_PKEY *pk = NULL;
        X509 *cert = NULL, *want = NULL;
        STACK_OF(X509) *ca = NULL;
        PKCS12 *p12;
        ssize_t n;
        int gfd, fd;
        struct stat st;

        snprintf(g, sizeof g, "%s/gen-p12", base);
        gfd = make_generation(g, "p12.example.com", true, 10, &want);
        assert_int_equal(deploy_pkcs12_write(gfd, "correct horse", "web", &why), 0);
        assert_int_equal(fstatat(gfd, DEPLOY_PKCS12_FILE, &st, AT_SYMLINK_NOFOLLOW), 0);
        assert_int_equal(st.st_mode & 07777, 0600);
        fd = openat(gfd, DEPLOY_PKCS12_FILE, O_RDONLY | O_CLOEXEC);
        n = read(fd, buf, sizeof buf);
        close(fd);
        assert_true(n > 0);
        p12 = d2i_PKCS12(NULL, &q, n);
        assert_non_null(p12);

        /* The MAC: SHA-256, and verified only by the right passphrase. */
        PKCS12_get0_mac(NULL, &mac_alg, NULL, NULL, p12);
        X509_ALGOR_get0(&obj, NULL, NULL, mac_alg);
        assert_int_equal(OBJ_obj2nid(obj), NID_sha256);
        assert_int_equal(PKCS12_verify_mac(p12, "correct horse", -1), 1);
        assert_int_equal(PKCS12_verify_mac(p12, "wrong", -1), 0);
        /* Every bag encrypted with PBES2 (PBKDF2-HMAC-SHA256, AES-256-CBC). */
        safes = PKCS12_unpack_authsafes(p12);
        assert_non_null(safes);
        for (int i = 0; i < sk_PKCS7_num(safes); i++) {
                PKCS7 *p7 = sk_PKCS7_value(safes, i);
                STACK_OF(PKCS12_SAFEBAG) *bags;
                const X509_ALGOR *alg = NULL;
                if (PKCS7_type_is_encrypted(p7)) {
                        alg = p7->d.encrypted->enc_data->algorithm;
                        bags = PKCS12_unpack_p7encdata(p7, "correct horse", -1);
                } else {
                        assert_true(PKCS7_type_is_data(p7));
                        bags = PKCS12_unpack_p7data(p7);
                }
                assert_non_null(bags);
                for (int j = 0; j < sk_PKCS12_SAFEBAG_num(bags); j++) {
                        PKCS12_SAFEBAG *bag = sk_PKCS12_SAFEBAG_value(bags, j);
                        if (PKCS12_SAFEBAG_get_nid(bag) == NID_pkcs8ShroudedKeyBag) {
                                const X509_SIG *sig = PKCS12_SAFEBAG_get0_pkcs8(bag);
                                X509_SIG_get0(sig, &alg, NULL);
                        } else
                                assert_true(PKCS7_type_is_encrypted(p7));       /* certificates: encrypted too */
                }
                assert_non_null(alg);
                X509_ALGOR_get0(&obj, NULL, NULL, alg);
                assert_int_equal(OBJ_obj2nid(obj), NID_pbes2);
                {
                        const ASN1_STRING *params;
                        const void *pv;
                        int ptype;
                        PBE2PARAM *pbe2;
                        PBKDF2PARAM *kdf;
                        X509_ALGOR_get0(NULL, &ptype, &pv, alg);
                        params = pv;
                        pbe2 = ASN1_item_unpack(params, ASN1_ITEM_rptr(PBE2PARAM));
                        assert_non_null(pbe2);
                        X509_ALGOR_get0(&obj, NULL, NULL, pbe2->encryption);
                        assert_int_equal(OBJ_obj2nid(obj), NID_aes_256_cbc);
                        X509_ALGOR_get0(&obj, NULL, NULL, pbe2->keyfunc);
                        assert_int_equal(OBJ_obj2nid(obj), NID_id_pbkdf2);
                        X509_ALGOR_get0(NULL, &ptype, &pv, pbe2->keyfunc);
                        kdf = ASN1_item_unpack(pv, ASN1_ITEM_rptr(PBKDF2PARAM));
                        assert_non_null(kdf);
                        assert_non_null(kdf->prf);
                        X509_ALGOR_get0(&obj, NULL, NULL, kdf->prf);
                        assert_int_equal(OBJ_obj2nid(obj), NID_hmacWithSHA256);
                        assert_int_equal(ASN1_INTEGER_get(kdf->iter), DEPLOY_PKCS12_ITERATIONS);
                        PBKDF2PARAM_free(kdf);
                        PBE2PARAM_free(pbe2);
                }
                sk_PKCS12_SAFEBAG_pop_free(bags, PKCS12_SAFEBAG_free);
        }
        sk_PKCS7_pop_free(safes, PKCS7_free);

        /* Read back: the key of this certificate, the chain, the friendly name. */
        assert_int_equal(PKCS12_parse(p12, "correct horse", &pk, &cert, &ca), 1);
        assert_int_equal(X509_cmp(cert, want), 0);
        assert_int_equal(X509_check_private_key(cert, pk), 1);
        assert_int_equal(sk_X509_num(ca), 1);
        assert_int_equal(X509_cmp(sk_X509_value(ca, 0), ca_cert), 0);
        {
                int len = 0;
                unsigned char *alias = X509_alias_get0(cert, &len);
                assert_non_null(alias);
                assert_int_equal(len, 3);
                assert_memory_equal(alias, "web", 3);
        }
        EVP_PKEY_free(pk);
        X509_free(cert);
        sk_X509_pop_free(ca, X509_free);
        PKCS12_free(p12);
        X509_free(want);

        /* A key that is not the certificate's: refused, and bundle.p12 not replaced. */
        snprintf(g2, sizeof g2, "%s/gen-other", base);
        fd = make_generation(g2, "other.example.com", false, 11, NULL);
        {
                char *k = NULL;
                int kfd = openat(fd, "key.pem", O_RDONLY | O_CLOEXEC);
                char kb[8192];
                ssize_t kn = read(kfd, kb, sizeof kb - 1);
                close(kfd);
                kb[kn] = 0;
                k = kb;
                assert_int_equal(deploy_write_file(gfd, "key.pem", k, 0600), 0);
        }
        assert_int_equal(fstatat(gfd, DEPLOY_PKCS12_FILE, &st, 0), 0);
        {
                struct stat before = st;
                assert_int_equal(deploy_pkcs12_write(gfd, "correct horse", "web", &why), -EBADMSG);
                assert_non_null(strstr(why, "not the key of its cert.pem"));
                assert_int_equal(fstatat(gfd, DEPLOY_PKCS12_FILE, &st, 0), 0);
                assert_int_equal(st.st_ino, before.st_ino);
        }
        close(fd);
        close(gfd);
        free(why);
}

/* ---- NSS ---- */

/* In test-deploy-formats-nss.c (NSS's headers and OpenSSL's x509v3.h do not mix). */
int nss_count(const char *dir, const char *nickname, const unsigned char *expect, size_t expect_size,
              int *ret_keys);
void nss_make_db_with_password(const char *dir, const char *password);

static int count_in(const char *dir, X509 *expect, int *ret_keys) {
        unsigned char *der = NULL;
        int len = expect ? i2d_X509(expect, &der) : 0, n;
        n = nss_count(dir, "web", der, (size_t) len, ret_keys);
        OPENSSL_free(der);
        return n;
}

static void test_nssdb(void **state) {
        char db[512], g1[512], g2[512], *why = NULL;
        X509 *c1 = NULL, *c2 = NULL;
        uid_t uid = geteuid();
        bool imported = false;
        int gfd1, gfd2, keys = 0;
        struct stat st;

        snprintf(db, sizeof db, "%s/nssdb", base);
        test_mkdir_mode(db, 0700);
        snprintf(g1, sizeof g1, "%s/gen-n1", base);
        snprintf(g2, sizeof g2, "%s/gen-n2", base);
        gfd1 = make_generation(g1, "nss.example.com", true, 20, &c1);
        gfd2 = make_generation(g2, "nss.example.com", false, 21, &c2);

        /* An empty directory becomes a database without a password. */
        assert_int_equal(deploy_nssdb_import(db, uid, gfd1, "web", &imported, &why), 0);
        assert_true(imported);
        assert_int_equal(count_in(db, c1, &keys), 1);
        assert_int_equal(keys, 1);
        /* Again: nothing to do. */
        assert_int_equal(deploy_nssdb_import(db, uid, gfd1, "web", &imported, &why), 0);
        assert_false(imported);
        assert_int_equal(deploy_nssdb_prune(db, uid, gfd1, "web", &why), 0);

        /* The successor: both pairs, each with its key, until the prune; then only the new. */
        assert_int_equal(deploy_nssdb_import(db, uid, gfd2, "web", &imported, &why), 0);
        assert_true(imported);
        assert_int_equal(count_in(db, NULL, &keys), 2);
        assert_int_equal(keys, 2);
        assert_int_equal(deploy_nssdb_prune(db, uid, gfd2, "web", &why), 1);
        assert_int_equal(count_in(db, c2, &keys), 1);
        assert_int_equal(keys, 1);
        /* The prune never takes what it keeps: asked for a generation not imported, nothing. */
        assert_int_equal(deploy_nssdb_prune(db, uid, gfd1, "web", &why), -ENOENT);
        assert_int_equal(count_in(db, c2, &keys), 1);

        /* A directory others can write, a symbolic link, a planted database file: refused,
         * named, and nothing written into it. */
        assert_int_equal(chmod(db, 0777), 0);
        assert_int_equal(stat(db, &st), 0);
        assert_int_equal(deploy_nssdb_import(db, uid, gfd1, "web", &imported, &why), -EPERM);
        assert_non_null(strstr(why, db));
        assert_non_null(strstr(why, "writable by its group or others"));
        assert_int_equal(chmod(db, 0700), 0);
        assert_int_equal(count_in(db, c2, &keys), 1);
        {
                char l[600], e[600], f[700];
                snprintf(l, sizeof l, "%s/nssdb-link", base);
                assert_int_equal(symlink(db, l), 0);
                assert_int_equal(deploy_nssdb_check(l, uid, &why), -ELOOP);
                assert_non_null(strstr(why, "symbolic link"));
                snprintf(e, sizeof e, "%s/nssdb-planted", base);
                test_mkdir_mode(e, 0700);
                snprintf(f, sizeof f, "%s/cert9.db", e);
                assert_int_equal(symlink("/etc/passwd", f), 0);
                assert_int_equal(deploy_nssdb_import(e, uid, gfd1, "web", &imported, &why), -EPERM);
                assert_non_null(strstr(why, "cert9.db is a symbolic link"));
                snprintf(f, sizeof f, "%s/key4.db", e);
                assert_int_equal(faccessat(AT_FDCWD, f, F_OK, AT_SYMLINK_NOFOLLOW), -1);
                snprintf(e, sizeof e, "%s/nssdb-open", base);
                test_mkdir_mode(e, 0757);
                assert_int_equal(deploy_nssdb_import(e, uid, gfd1, "web", &imported, &why), -EPERM);
                snprintf(f, sizeof f, "%s/cert9.db", e);
                assert_int_equal(faccessat(AT_FDCWD, f, F_OK, AT_SYMLINK_NOFOLLOW), -1);
                /* A database with a password: refused, named, nothing imported. */
                snprintf(e, sizeof e, "%s/nssdb-password", base);
                test_mkdir_mode(e, 0700);
                nss_make_db_with_password(e, "db-secret");
                assert_int_equal(deploy_nssdb_import(e, uid, gfd1, "web", &imported, &why), -EACCES);
                assert_non_null(strstr(why, "protected by a password"));
                assert_non_null(strstr(why, e));
                assert_null(strstr(why, "db-secret"));
                assert_int_equal(nss_count(e, "web", NULL, 0, &keys), 0);
                if (uid == 0) {
                        snprintf(e, sizeof e, "%s/nssdb-theirs", base);
                        test_mkdir_mode(e, 0700);
                        assert_int_equal(chown(e, 12345, 12345), 0);
                        assert_int_equal(deploy_nssdb_check(e, 0, &why), -EPERM);
                        assert_non_null(strstr(why, "uid 12345"));
                }
        }
        X509_free(c1);
        X509_free(c2);
        close(gfd1);
        close(gfd2);
        free(why);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_settings),
                cmocka_unit_test(test_cli),
                cmocka_unit_test(test_passphrase),
                cmocka_unit_test(test_pkcs12),
                cmocka_unit_test(test_nssdb),
        };
        int r = cmocka_run_group_tests(tests, setup, teardown);
        EVP_PKEY_free(ca_key);
        X509_free(ca_cert);
        return r;
}
