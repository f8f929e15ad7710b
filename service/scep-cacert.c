/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <errno.h>
#include <openssl/cms.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "scep-cacert.h"
#include "scep-util.h"

ScepCACerts *scep_cacerts_ref(ScepCACerts *c) {
        if (c)
                c->n_ref++;
        return c;
}

ScepCACerts *scep_cacerts_free(ScepCACerts *c) {
        if (!c || --c->n_ref > 0)
                return NULL;
        sk_X509_pop_free(c->all, X509_free);
        free(c);
        return NULL;
}

static void scep_cacerts_freep(ScepCACerts **c) {
        scep_cacerts_free(*c);
}

int scep_fingerprint_parse(const char *s, uint8_t ret[SCEP_FINGERPRINT_SIZE]) {
        uint8_t fp[SCEP_FINGERPRINT_SIZE];
        size_t n = 0;

        if (!s || !ret)
                return -EINVAL;
        if (strncasecmp(s, "sha256:", 7) != 0)
                return -EINVAL;
        s += 7;
        while (*s) {
                int hi, lo;

                if (*s == ':' && n > 0) {
                        s++;
                        continue;
                }
                if (n >= SCEP_FINGERPRINT_SIZE)
                        return -EINVAL;
                hi = unhexchar(s[0]);
                if (hi < 0)
                        return -EINVAL;
                lo = unhexchar(s[1]);
                if (lo < 0)
                        return -EINVAL;
                fp[n++] = (uint8_t) (hi << 4 | lo);
                s += 2;
        }
        if (n != SCEP_FINGERPRINT_SIZE)
                return -EINVAL;
        memcpy(ret, fp, sizeof fp);
        return 0;
}

void scep_fingerprint_format(const uint8_t fp[SCEP_FINGERPRINT_SIZE], char *buf, size_t size) {
        char hex[2 * SCEP_FINGERPRINT_SIZE + 1];

        scep_hex(fp, SCEP_FINGERPRINT_SIZE, hex);
        snprintf(buf, size, "sha256:%s", hex);
}

static bool content_type_is(const char *ct, const char *want) {
        size_t n = strlen(want);

        if (!ct)
                return false;
        while (*ct == ' ' || *ct == '\t')
                ct++;
        if (strncasecmp(ct, want, n) != 0)
                return false;
        ct += n;
        while (*ct == ' ' || *ct == '\t')
                ct++;
        return *ct == '\0' || *ct == ';';
}

static int parse_single(const uint8_t *data, size_t size, STACK_OF(X509) **ret) {
        _cleanup_(sk_X509_pop_freep) STACK_OF(X509) *certs = NULL;
        const unsigned char *p = data;
        X509 *x;

        x = d2i_X509(NULL, &p, (long) size);
        if (!x || p != data + size) {
                X509_free(x);
                ERR_clear_error();
                return 0;
        }
        certs = sk_X509_new_null();
        if (!certs || !sk_X509_push(certs, x)) {
                X509_free(x);
                return -ENOMEM;
        }
        *ret = TAKE_PTR(certs);
        return 1;
}

static int parse_pkcs7(const uint8_t *data, size_t size, STACK_OF(X509) **ret) {
        const unsigned char *p = data;
        CMS_ContentInfo *cms;
        STACK_OF(X509) *certs;

        cms = d2i_CMS_ContentInfo(NULL, &p, (long) size);
        if (!cms || p != data + size || OBJ_obj2nid(CMS_get0_type(cms)) != NID_pkcs7_signed) {
                CMS_ContentInfo_free(cms);
                ERR_clear_error();
                return 0;
        }
        certs = CMS_get1_certs(cms);     /* NULL also when there are no certificates */
        CMS_ContentInfo_free(cms);
        ERR_clear_error();
        if (!certs) {
                certs = sk_X509_new_null();
                if (!certs)
                        return -ENOMEM;
        }
        *ret = certs;
        return 1;
}

static bool cert_is_ca(X509 *x) {
        /* X509_check_ca() also counts v1 self-signed certificates and keyCertSign; SCEP CAs
         * must say so with basicConstraints. */
        return (X509_get_extension_flags(x) & EXFLAG_CA) != 0;
}

static bool cert_has_usage(X509 *x, uint32_t ku) {
        if (!(X509_get_extension_flags(x) & EXFLAG_KUSAGE))
                return true;
        return (X509_get_key_usage(x) & ku) != 0;
}

/* Did ca issue x, with a valid signature? */
static bool cert_issued_by(X509 *x, X509 *ca) {
        EVP_PKEY *k;
        bool ok;

        if (X509_check_issued(ca, x) != X509_V_OK)
                return false;
        k = X509_get0_pubkey(ca);
        ok = k && X509_verify(x, k) == 1;
        ERR_clear_error();
        return ok;
}

static int cacerts_classify(ScepCACerts *c, ScepError *e) {
        int n = sk_X509_num(c->all);
        X509 *ca = NULL;

        /* 1. A CA that signed some non-CA certificate in the set (the NDES case). */
        for (int i = 0; i < n && !ca; i++) {
                X509 *cand = sk_X509_value(c->all, i);
                if (!cert_is_ca(cand))
                        continue;
                for (int j = 0; j < n; j++) {
                        X509 *x = sk_X509_value(c->all, j);
                        if (!cert_is_ca(x) && cert_issued_by(x, cand)) {
                                ca = cand;
                                break;
                        }
                }
        }
        /* 2. Else the CA that issued no other CA in the set (the issuing CA of a chain). */
        for (int i = 0; i < n && !ca; i++) {
                X509 *cand = sk_X509_value(c->all, i);
                bool issued_other = false;
                if (!cert_is_ca(cand))
                        continue;
                for (int j = 0; j < n && !issued_other; j++) {
                        X509 *x = sk_X509_value(c->all, j);
                        if (x != cand && cert_is_ca(x) && cert_issued_by(x, cand))
                                issued_other = true;
                }
                if (!issued_other)
                        ca = cand;
        }
        if (!ca) {
                char d[300] = "";
                if (n > 0)
                        scep_cert_describe(sk_X509_value(c->all, 0), d, sizeof d);
                return scep_error_set(e, SCEP_RESULT_NO_CA_CERT,
                                      "GetCACert returned %d certificate(s) and none is a CA "
                                      "(basicConstraints cA=TRUE)%s%s", n,
                                      n > 0 ? "; first: " : "", d);
        }
        c->ca = ca;

        /* RA certificates: non-CA, signed by the CA. Prefer a single-purpose certificate for
         * each role (NDES has one of each); the first in order wins among equals. */
        for (int pass = 0; pass < 2; pass++)
                for (int i = 0; i < n; i++) {
                        X509 *x = sk_X509_value(c->all, i);
                        bool sign, enc;

                        if (cert_is_ca(x) || !cert_issued_by(x, ca))
                                continue;
                        sign = cert_has_usage(x, KU_DIGITAL_SIGNATURE);
                        enc = cert_has_usage(x, KU_KEY_ENCIPHERMENT);
                        if (pass == 0) {
                                if (sign && !enc && !c->ra_sign)
                                        c->ra_sign = x;
                                if (enc && !sign && !c->ra_encrypt)
                                        c->ra_encrypt = x;
                        } else {
                                if (sign && !c->ra_sign)
                                        c->ra_sign = x;
                                if (enc && !c->ra_encrypt)
                                        c->ra_encrypt = x;
                        }
                }

        c->recipient = c->ra_encrypt ?: ca;
        c->verifier = c->ra_sign ?: ca;

        if (!scep_cert_has_rsa_key(c->recipient)) {
                char d[300];
                scep_cert_describe(c->recipient, d, sizeof d);
                ERR_clear_error();
                return scep_error_set(e, SCEP_RESULT_NO_RECIPIENT,
                                      "the %s certificate %s has no RSA key; SCEP needs RSA key "
                                      "transport to encrypt the request",
                                      c->ra_encrypt ? "RA encryption" : "CA", d);
        }
        return 0;
}

int scep_cacert_parse(const char *content_type, const void *data, size_t size,
                      const uint8_t *fingerprint, ScepCACerts **ret, ScepError *ret_error) {
        _cleanup_(scep_cacerts_freep) ScepCACerts *c = NULL;
        STACK_OF(X509) *certs = NULL;
        int r;

        if (!ret || (!data && size > 0))
                return -EINVAL;
        if (size > SCEP_CACERT_MAX_SIZE)
                return scep_error_set(ret_error, SCEP_RESULT_TOO_LARGE,
                                      "GetCACert answer is %zu bytes, more than the %u we accept",
                                      size, SCEP_CACERT_MAX_SIZE);
        if (size == 0)
                return scep_error_set(ret_error, SCEP_RESULT_MALFORMED,
                                      "GetCACert answer is empty (content type %s)",
                                      content_type ?: "(none)");

        /* Try the form the content type names first, then the other one. */
        if (content_type_is(content_type, "application/x-x509-ca-cert")) {
                r = parse_single(data, size, &certs);
                if (r == 0)
                        r = parse_pkcs7(data, size, &certs);
        } else {
                r = parse_pkcs7(data, size, &certs);
                if (r == 0)
                        r = parse_single(data, size, &certs);
        }
        if (r < 0)
                return r;
        if (r == 0)
                return scep_error_set(ret_error, SCEP_RESULT_MALFORMED,
                                      "GetCACert answer (%zu bytes, content type %s) is neither a DER "
                                      "certificate nor a degenerate PKCS#7 certificate chain",
                                      size, content_type ?: "(none)");

        c = calloc(1, sizeof *c);
        if (c)
                c->n_ref = 1;
        if (!c) {
                sk_X509_pop_free(certs, X509_free);
                return -ENOMEM;
        }
        c->all = certs;

        if (sk_X509_num(c->all) <= 0)
                return scep_error_set(ret_error, SCEP_RESULT_NO_CA_CERT,
                                      "GetCACert answer holds no certificate");
        if ((unsigned) sk_X509_num(c->all) > SCEP_CACERT_MAX_CERTS)
                return scep_error_set(ret_error, SCEP_RESULT_TOO_LARGE,
                                      "GetCACert answer holds %d certificates, more than the %u we accept",
                                      sk_X509_num(c->all), SCEP_CACERT_MAX_CERTS);

        r = cacerts_classify(c, ret_error);
        if (r != 0)
                return r;

        r = scep_cert_sha256(c->ca, c->ca_fingerprint);
        if (r < 0)
                return r;
        if (fingerprint && CRYPTO_memcmp(fingerprint, c->ca_fingerprint, SCEP_FINGERPRINT_SIZE) != 0) {
                char want[80], got[80], d[300];

                scep_fingerprint_format(fingerprint, want, sizeof want);
                scep_fingerprint_format(c->ca_fingerprint, got, sizeof got);
                scep_cert_describe(c->ca, d, sizeof d);
                return scep_error_set(ret_error, SCEP_RESULT_FINGERPRINT_MISMATCH,
                                      "the CA certificate %s from GetCACert has fingerprint %s, but "
                                      "CAFingerprint= is %s: the server is not the configured CA, or "
                                      "the CA was renewed (then update CAFingerprint=)", d, got, want);
        }

        *ret = TAKE_PTR(c);
        return 0;
}
