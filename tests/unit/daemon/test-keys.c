/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* keys-generate and secret-memory: every key type generates, exports as PKCS#8 PEM in
 * guarded memory, re-imports as the same key and type. */

#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/err.h>
#include <openssl/x509.h>
#include <sodium.h>

#include "keys-generate.h"
#include "secret-memory.h"

static int setup(void **state) {
        return secret_init() < 0 ? -1 : 0;
}

static void test_type_strings(void **state) {
        static const char *const names[] = { "rsa:2048", "rsa:3072", "rsa:4096", "ec:p256", "ec:p384" };

        for (KeyType t = 0; t < _KEY_TYPE_MAX; t++) {
                assert_string_equal(key_type_to_string(t), names[t]);
                assert_int_equal(key_type_from_string(names[t]), t);
        }
        assert_int_equal(key_type_from_string("rsa:1024"), -EINVAL);
        assert_int_equal(key_type_from_string("RSA:2048"), -EINVAL);
        assert_int_equal(key_type_from_string("ec:p521"), -EINVAL);
        assert_int_equal(key_type_from_string(""), -EINVAL);
        assert_int_equal(key_type_from_string(NULL), -EINVAL);
        assert_null(key_type_to_string(_KEY_TYPE_MAX));
        assert_null(key_type_to_string(-1));
}

static void check_type(KeyType t) {
        EVP_PKEY *key = NULL, *back = NULL, *other = NULL;
        CbSecret *pem = NULL;
        KeyType got;

        assert_int_equal(key_generate(t, &key), 0);
        assert_non_null(key);
        assert_int_equal(key_get_type(key, &got), 0);
        assert_int_equal(got, t);

        assert_int_equal(key_export_pkcs8_pem(key, &pem), 0);
        assert_non_null(pem);
        assert_true(pem->size > 100);
        assert_int_equal(pem->data[pem->size], 0);
        assert_memory_equal(pem->data, "-----BEGIN PRIVATE KEY-----\n", 28);
        assert_non_null(strstr((char *) pem->data, "-----END PRIVATE KEY-----\n"));
        assert_int_equal(strlen((char *) pem->data), pem->size);

        assert_int_equal(key_import_pkcs8_pem(pem, &back), 0);
        assert_true(key_public_equal(key, back));
        assert_int_equal(key_get_type(back, &got), 0);
        assert_int_equal(got, t);
        assert_int_equal(EVP_PKEY_get_bits(back), EVP_PKEY_get_bits(key));

        /* A different key of the same type does not match. */
        assert_int_equal(key_generate(t, &other), 0);
        assert_false(key_public_equal(key, other));

        EVP_PKEY_free(other);
        EVP_PKEY_free(back);
        EVP_PKEY_free(key);
        secret_free(pem);
}

static void test_rsa2048(void **state) { check_type(KEY_TYPE_RSA_2048); }
static void test_rsa3072(void **state) { check_type(KEY_TYPE_RSA_3072); }
static void test_rsa4096(void **state) { check_type(KEY_TYPE_RSA_4096); }
static void test_ec_p256(void **state) { check_type(KEY_TYPE_EC_P256); }
static void test_ec_p384(void **state) { check_type(KEY_TYPE_EC_P384); }

static void test_generate_invalid(void **state) {
        EVP_PKEY *key = NULL;

        assert_int_equal(key_generate(_KEY_TYPE_MAX, &key), -EINVAL);
        assert_int_equal(key_generate(-1, &key), -EINVAL);
        assert_null(key);
}

/* A key without its private half cannot be exported: -EIO, nothing handed out, and the
 * thread's OpenSSL error queue left empty. */
static void test_export_public_only(void **state) {
        EVP_PKEY *key = NULL, *pub = NULL;
        CbSecret *pem = NULL;
        unsigned char *der = NULL;
        const unsigned char *p;
        int len;

        assert_int_equal(key_generate(KEY_TYPE_EC_P256, &key), 0);
        len = i2d_PUBKEY(key, &der);
        assert_true(len > 0);
        p = der;
        pub = d2i_PUBKEY(NULL, &p, len);
        assert_non_null(pub);
        assert_true(key_public_equal(key, pub));

        ERR_clear_error();
        assert_int_equal(key_export_pkcs8_pem(pub, &pem), -EIO);
        assert_null(pem);
        assert_int_equal(ERR_peek_error(), 0);

        OPENSSL_free(der);
        EVP_PKEY_free(pub);
        EVP_PKEY_free(key);
}

static void test_import_rejects(void **state) {
        static const char garbage[] = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";
        static const char rsa_traditional[] = "-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----\n";
        EVP_PKEY *key = NULL, *ed = NULL;
        CbSecret *s = NULL, *pem = NULL;
        EVP_PKEY_CTX *ctx;

        assert_int_equal(secret_new_copy(garbage, strlen(garbage), &s), 0);
        assert_int_equal(key_import_pkcs8_pem(s, &key), -EBADMSG);
        s = secret_free(s);

        assert_int_equal(secret_new_copy(rsa_traditional, strlen(rsa_traditional), &s), 0);
        assert_int_equal(key_import_pkcs8_pem(s, &key), -EBADMSG);
        s = secret_free(s);

        assert_int_equal(secret_new(0, &s), 0);
        assert_int_equal(key_import_pkcs8_pem(s, &key), -EBADMSG);
        s = secret_free(s);
        assert_null(key);

        /* A valid PKCS#8 key of a type we do not offer (Ed25519) is refused. */
        ctx = EVP_PKEY_CTX_new_from_name(NULL, "ED25519", NULL);
        assert_non_null(ctx);
        assert_int_equal(EVP_PKEY_keygen_init(ctx), 1);
        assert_int_equal(EVP_PKEY_generate(ctx, &ed), 1);
        EVP_PKEY_CTX_free(ctx);
        KeyType t;
        assert_int_equal(key_get_type(ed, &t), -EOPNOTSUPP);
        assert_int_equal(key_export_pkcs8_pem(ed, &pem), 0);
        assert_int_equal(key_import_pkcs8_pem(pem, &key), -EBADMSG);
        assert_null(key);
        secret_free(pem);
        EVP_PKEY_free(ed);
}

static void test_secret_basics(void **state) {
        CbSecret *a = NULL, *b = NULL, *c = NULL;

        assert_int_equal(secret_new_copy("hunter2", 7, &a), 0);
        assert_int_equal(a->size, 7);
        assert_string_equal((char *) a->data, "hunter2");
        assert_int_equal(secret_new_copy("hunter2", 7, &b), 0);
        assert_int_equal(secret_new_copy("hunter3", 7, &c), 0);
        assert_true(secret_equal(a, b));
        assert_false(secret_equal(a, c));

        assert_int_equal(secret_protect_readonly(a), 0);
        assert_string_equal((char *) a->data, "hunter2");
        assert_int_equal(secret_protect_noaccess(a), 0);
        /* Freeing a PROT_NONE secret must work (it is made writable to be wiped). */
        a = secret_free(a);
        assert_null(a);
        assert_null(secret_free(NULL));

        assert_int_equal(secret_new(SECRET_SIZE_MAX + 1, &a), -EINVAL);
        secret_free(b);
        secret_free(c);

        char *s = strdup("challenge-password");
        assert_non_null(s);
        s = secret_erase_and_free_string(s);
        assert_null(s);
}

/* A noaccess secret really faults when touched: checked in a child. */
static void test_secret_noaccess_faults(void **state) {
        CbSecret *a = NULL;
        int status;
        pid_t pid;

        assert_int_equal(secret_new_copy("x", 1, &a), 0);
        assert_int_equal(secret_protect_noaccess(a), 0);

        pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                /* Default action, also under ASan (which would otherwise report and exit 1). */
                signal(SIGSEGV, SIG_DFL);
                signal(SIGBUS, SIG_DFL);
                volatile uint8_t v = a->data[0];
                (void) v;
                _exit(0);
        }
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFSIGNALED(status));
        assert_true(WTERMSIG(status) == SIGSEGV || WTERMSIG(status) == SIGBUS);
        secret_free(a);
}

/* Blocks are reused, wiped, still end on the guard page, and a secret written past its end
 * faults there; a block left PROT_NONE comes back writable; large secrets bypass the pool. */
static void test_secret_pool(void **state) {
        size_t bsize = secret_pool_block_size(), page = (size_t) sysconf(_SC_PAGESIZE);
        CbSecret *a = NULL, *b = NULL;
        void *block;
        int status;
        pid_t pid;

        assert_int_equal(secret_new_copy("correct horse", 13, &a), 0);
        assert_true(a->pooled);
        /* The NUL after the bytes is the last byte before the trailing guard page. */
        assert_int_equal(((uintptr_t) (a->data + a->size + 1)) % page, 0);
        block = a->block;
        assert_int_equal(secret_protect_noaccess(a), 0);
        size_t before = secret_pool_count();
        a = secret_free(a);
        assert_int_equal(secret_pool_count(), before + 1);

        /* The same block again (last in, first out), all zero where the old bytes were. */
        assert_int_equal(secret_new(100, &b), 0);
        assert_ptr_equal(b->block, block);
        assert_int_equal(secret_pool_count(), before);
        assert_true(sodium_is_zero(b->block, bsize));
        memset(b->data, 'x', b->size);          /* writable again after the noaccess */
        assert_int_equal(b->data[b->size], 0);

        /* One byte past the NUL is the guard page: a write there faults. */
        pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                signal(SIGSEGV, SIG_DFL);
                signal(SIGBUS, SIG_DFL);
                ((volatile uint8_t *) b->data)[b->size + 1] = 1;
                _exit(0);
        }
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFSIGNALED(status));
        assert_true(WTERMSIG(status) == SIGSEGV || WTERMSIG(status) == SIGBUS);

        /* A write below the secret's start (inside its block) is caught when it is freed. */
        pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                signal(SIGABRT, SIG_DFL);
                b->data[-1] = 1;
                secret_free(b);
                _exit(0);
        }
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFSIGNALED(status));
        assert_int_equal(WTERMSIG(status), SIGABRT);
        b = secret_free(b);

        /* Too large for a block: its own sodium_malloc() region, not from the pool. */
        before = secret_pool_count();
        assert_int_equal(secret_new(bsize, &a), 0);
        assert_false(a->pooled);
        assert_true(sodium_is_zero(a->data, a->size + 1));
        a = secret_free(a);
        assert_int_equal(secret_pool_count(), before);

        /* The pool keeps at most SECRET_POOL_MAX blocks. */
        CbSecret *many[SECRET_POOL_MAX + 4];
        for (size_t i = 0; i < SECRET_POOL_MAX + 4; i++)
                assert_int_equal(secret_new_copy("k", 1, &many[i]), 0);
        for (size_t i = 0; i < SECRET_POOL_MAX + 4; i++)
                secret_free(many[i]);
        assert_int_equal(secret_pool_count(), SECRET_POOL_MAX);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_type_strings),
                cmocka_unit_test(test_rsa2048),
                cmocka_unit_test(test_rsa3072),
                cmocka_unit_test(test_rsa4096),
                cmocka_unit_test(test_ec_p256),
                cmocka_unit_test(test_ec_p384),
                cmocka_unit_test(test_generate_invalid),
                cmocka_unit_test(test_export_public_only),
                cmocka_unit_test(test_import_rejects),
                cmocka_unit_test(test_secret_basics),
                cmocka_unit_test(test_secret_noaccess_faults),
                cmocka_unit_test(test_secret_pool),
        };

        return cmocka_run_group_tests(tests, setup, NULL);
}
