/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <errno.h>
#include <openssl/err.h>
#include <stdio.h>
#include <string.h>

#include "scep-util.h"

static const char *const result_names[_SCEP_RESULT_MAX] = {
        [SCEP_RESULT_OK]                   = "ok",
        [SCEP_RESULT_MALFORMED]            = "malformed",
        [SCEP_RESULT_TOO_LARGE]            = "too-large",
        [SCEP_RESULT_ALGORITHM_FLOOR]      = "algorithm-floor",
        [SCEP_RESULT_NO_CA_CERT]           = "no-ca-cert",
        [SCEP_RESULT_NO_RECIPIENT]         = "no-recipient",
        [SCEP_RESULT_FINGERPRINT_MISMATCH] = "fingerprint-mismatch",
        [SCEP_RESULT_BAD_SIGNATURE]        = "bad-signature",
        [SCEP_RESULT_UNTRUSTED]            = "untrusted",
        [SCEP_RESULT_BAD_MESSAGE_TYPE]     = "bad-message-type",
        [SCEP_RESULT_TRANSACTION_MISMATCH] = "transaction-mismatch",
        [SCEP_RESULT_NONCE_MISMATCH]       = "nonce-mismatch",
        [SCEP_RESULT_BAD_ATTRIBUTE]        = "bad-attribute",
        [SCEP_RESULT_LEGACY_ALGORITHM]     = "legacy-algorithm",
        [SCEP_RESULT_DECRYPT_FAILED]       = "decrypt-failed",
        [SCEP_RESULT_NO_ISSUED_CERT]       = "no-issued-cert",
        [SCEP_RESULT_HTTP_STATUS]          = "http-status",
        [SCEP_RESULT_URI_TOO_LONG]         = "uri-too-long",
};

const char *scep_result_to_string(ScepResult r) {
        if ((unsigned) r >= _SCEP_RESULT_MAX)
                return NULL;
        return result_names[r];
}

static int error_vset(ScepError *e, ScepResult r, const char *suffix, const char *fmt, va_list ap) _printf_(4, 0);

static int error_vset(ScepError *e, ScepResult r, const char *suffix, const char *fmt, va_list ap) {
        if (e) {
                int n;

                e->result = r;
                n = vsnprintf(e->message, sizeof e->message, fmt, ap);
                if (suffix && n >= 0 && (size_t) n < sizeof e->message)
                        snprintf(e->message + n, sizeof e->message - n, " (OpenSSL: %s)", suffix);
        }
        return (int) r;
}

int scep_error_set(ScepError *e, ScepResult r, const char *fmt, ...) {
        va_list ap;

        va_start(ap, fmt);
        error_vset(e, r, NULL, fmt, ap);
        va_end(ap);
        return (int) r;
}

int scep_error_set_openssl(ScepError *e, ScepResult r, const char *fmt, ...) {
        unsigned long code = ERR_peek_last_error();
        const char *reason = code ? ERR_reason_error_string(code) : NULL;
        char buf[128];
        va_list ap;

        if (code && !reason) {
                snprintf(buf, sizeof buf, "error %lx", code);
                reason = buf;
        }
        va_start(ap, fmt);
        error_vset(e, r, reason, fmt, ap);
        va_end(ap);
        ERR_clear_error();
        return (int) r;
}

char *scep_bio_to_string(BIO *b) {
        char *data = NULL, *s;
        long n = BIO_get_mem_data(b, &data);

        if (n < 0)
                return NULL;
        s = malloc((size_t) n + 1);
        if (!s)
                return NULL;
        if (n > 0)
                memcpy(s, data, (size_t) n);
        s[n] = 0;
        return s;
}

int scep_openssl_errno(void) {
        unsigned long code = ERR_peek_last_error();

        ERR_clear_error();
        if (code != 0 && ERR_GET_REASON(code) == ERR_R_MALLOC_FAILURE)
                return -ENOMEM;
        return -EIO;
}

void scep_name_format(const X509_NAME *name, char *buf, size_t size) {
        BIO *b;
        int n;

        if (size == 0)
                return;
        buf[0] = '\0';
        if (!name)
                return;
        b = BIO_new(BIO_s_mem());
        if (!b)
                return;
        if (X509_NAME_print_ex(b, name, 0, XN_FLAG_RFC2253) >= 0) {
                n = BIO_read(b, buf, (int) (size - 1));
                buf[n > 0 ? n : 0] = '\0';
        }
        BIO_free(b);
        /* A name is attacker-controlled: keep the message printable. */
        for (char *p = buf; *p; p++)
                if ((unsigned char) *p < 0x20 || (unsigned char) *p == 0x7f)
                        *p = '?';
}

void scep_cert_describe(X509 *cert, char *buf, size_t size) {
        char name[200] = "", serial[80] = "?";
        const ASN1_INTEGER *sn;
        BIGNUM *bn;

        if (!cert) {
                snprintf(buf, size, "(no certificate)");
                return;
        }
        scep_name_format(X509_get_subject_name(cert), name, sizeof name);
        sn = X509_get0_serialNumber(cert);
        bn = sn ? ASN1_INTEGER_to_BN(sn, NULL) : NULL;
        if (bn) {
                char *hex = BN_bn2hex(bn);
                if (hex) {
                        snprintf(serial, sizeof serial, "%.64s", hex);
                        OPENSSL_free(hex);
                }
                BN_free(bn);
        }
        snprintf(buf, size, "\"%s\" (serial %s)", name, serial);
}

void scep_hex(const uint8_t *data, size_t n, char *buf) {
        static const char digits[] = "0123456789abcdef";

        for (size_t i = 0; i < n; i++) {
                buf[2 * i] = digits[data[i] >> 4];
                buf[2 * i + 1] = digits[data[i] & 0xf];
        }
        buf[2 * n] = '\0';
}

int scep_cert_sha256(X509 *cert, uint8_t ret[32]) {
        unsigned len = 0;

        if (!X509_digest(cert, EVP_sha256(), ret, &len) || len != 32)
                return scep_openssl_errno();
        return 0;
}

bool scep_cert_has_rsa_key(X509 *cert) {
        EVP_PKEY *k = cert ? X509_get0_pubkey(cert) : NULL;     /* NULL: unparseable key */
        bool rsa = k && EVP_PKEY_get_base_id(k) == EVP_PKEY_RSA;

        ERR_clear_error();
        return rsa;
}
