/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <errno.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>
#include <string.h>

#include "scep-csr.h"
#include "scep-util.h"

const EVP_MD *scep_digest_md(ScepDigest d) {
        switch (d) {
        case SCEP_DIGEST_SHA1:
                return EVP_sha1();
        case SCEP_DIGEST_SHA256:
                return EVP_sha256();
        case SCEP_DIGEST_SHA512:
                return EVP_sha512();
        case SCEP_DIGEST_SHA384:
                return EVP_sha384();
        }
        return NULL;
}

static void extensions_freep(STACK_OF(X509_EXTENSION) **p) {
        if (*p)
                sk_X509_EXTENSION_pop_free(*p, X509_EXTENSION_free);
}

static void general_names_freep(GENERAL_NAMES **p) {
        if (*p)
                GENERAL_NAMES_free(*p);
}

static void bit_string_freep(ASN1_BIT_STRING **p) {
        if (*p)
                ASN1_BIT_STRING_free(*p);
}

static int push_ext(STACK_OF(X509_EXTENSION) *exts, int nid, int crit, void *value) {
        X509_EXTENSION *ext = X509V3_EXT_i2d(nid, crit, value);

        if (!ext)
                return scep_openssl_errno();
        if (!sk_X509_EXTENSION_push(exts, ext)) {
                X509_EXTENSION_free(ext);
                return -ENOMEM;
        }
        return 0;
}

static bool text_ok(const char *s, size_t max) {
        size_t n;

        if (!s)
                return false;
        n = strnlen(s, max + 1);
        if (n == 0 || n > max)
                return false;
        for (size_t i = 0; i < n; i++)
                if ((unsigned char) s[i] < 0x20 || s[i] == 0x7f)
                        return false;
        return true;
}

static void attribute_wipe(X509_ATTRIBUTE *attr) {
        for (int j = 0; j < X509_ATTRIBUTE_count(attr); j++) {
                ASN1_TYPE *t = X509_ATTRIBUTE_get0_type(attr, j);

                if (!t || t->type == V_ASN1_BOOLEAN || t->type == V_ASN1_NULL || t->type == V_ASN1_OBJECT ||
                    !t->value.asn1_string)
                        continue;
                /* Every DirectoryString choice is an ASN1_STRING. */
                ASN1_STRING *v = t->value.asn1_string;
                if (ASN1_STRING_length(v) > 0)
                        OPENSSL_cleanse((void *) ASN1_STRING_get0_data(v), (size_t) ASN1_STRING_length(v));
        }
}

void scep_csr_wipe_challenge(X509_REQ *req) {
        if (!req)
                return;
        for (int i = -1; (i = X509_REQ_get_attr_by_NID(req, NID_pkcs9_challengePassword, i)) >= 0;)
                attribute_wipe(X509_REQ_get_attr(req, i));
}

int scep_csr_strip_challenge(X509_REQ *req, EVP_PKEY *key) {
        int i, r, found = 0;

        if (!req)
                return -EINVAL;
        while ((i = X509_REQ_get_attr_by_NID(req, NID_pkcs9_challengePassword, -1)) >= 0) {
                X509_ATTRIBUTE *attr = X509_REQ_delete_attr(req, i);
                if (!attr)
                        return scep_openssl_errno();
                attribute_wipe(attr);
                X509_ATTRIBUTE_free(attr);
                found = 1;
        }
        if (!found || !key)
                return found;
        r = scep_csr_resign(req, key);
        return r < 0 ? r : 1;
}

int scep_csr_resign(X509_REQ *req, EVP_PKEY *key) {
        const EVP_MD *md = NULL;
        int md_nid = NID_undef;

        if (!req || !key)
                return -EINVAL;
        /* The same hash as before (NID_undef for EdDSA: X509_REQ_sign() takes NULL). */
        if (OBJ_find_sigid_algs(X509_REQ_get_signature_nid(req), &md_nid, NULL) && md_nid != NID_undef) {
                md = EVP_get_digestbynid(md_nid);
                if (!md)
                        return -EINVAL;
        }
        if (X509_REQ_sign(req, key, md) <= 0)
                return scep_openssl_errno();
        return 0;
}

X509_REQ *scep_csr_free(X509_REQ *req) {
        scep_csr_wipe_challenge(req);
        X509_REQ_free(req);
        return NULL;
}

void scep_csr_freep(X509_REQ **req) {
        *req = scep_csr_free(*req);
}

/* The subject of RDNs in RFC 4514 order (encoded reversed), exactly as the CSR and the
 * signer certificate both carry it. */
static int build_name(const ScepRdn *subject, size_t n_subject, X509_NAME **ret, ScepError *ret_error) {
        _cleanup_(X509_NAME_freep) X509_NAME *name = NULL;

        if (n_subject > SCEP_CSR_MAX_RDNS || (n_subject > 0 && !subject))
                return -EINVAL;
        name = X509_NAME_new();
        if (!name)
                return -ENOMEM;

        /* RFC 4514 order is the reverse of the encoding order. */
        for (size_t i = n_subject; i > 0; i--) {
                const ScepRdn *rdn = &subject[i - 1];

                if (!text_ok(rdn->type, 64) || !text_ok(rdn->value, 1024))
                        return -EINVAL;
                if (!X509_NAME_add_entry_by_txt(name, rdn->type, MBSTRING_UTF8,
                                                (const unsigned char *) rdn->value, -1, -1, 0)) {
                        ERR_clear_error();
                        scep_error_set(ret_error, SCEP_RESULT_OK,
                                       "subject attribute %s=%s is not valid (unknown type or value "
                                       "too long)", rdn->type, rdn->value);
                        return -EINVAL;
                }
        }
        *ret = TAKE_PTR(name);
        return 0;
}

/* subjectAltName entries besides dNSName (scep-csr.h): an rfc822Name, and the Microsoft UPN
 * otherName (1.3.6.1.4.1.311.20.2.3, a UTF8String, as Active Directory's user templates
 * issue it). */
static int push_ia5(GENERAL_NAMES *sans, int type, const char *value) {
        GENERAL_NAME *gn;
        ASN1_IA5STRING *ia5;

        if (!*value)
                return -EINVAL;
        gn = GENERAL_NAME_new();
        ia5 = ASN1_IA5STRING_new();
        if (!gn || !ia5 || !ASN1_STRING_set(ia5, value, -1)) {
                GENERAL_NAME_free(gn);
                ASN1_IA5STRING_free(ia5);
                return -ENOMEM;
        }
        GENERAL_NAME_set0_value(gn, type, ia5);
        if (!sk_GENERAL_NAME_push(sans, gn)) {
                GENERAL_NAME_free(gn);
                return -ENOMEM;
        }
        return 0;
}

static int push_upn(GENERAL_NAMES *sans, const char *upn) {
        GENERAL_NAME *gn;
        ASN1_TYPE *v;
        ASN1_UTF8STRING *u;
        ASN1_OBJECT *oid;

        if (!*upn)
                return -EINVAL;
        gn = GENERAL_NAME_new();
        v = ASN1_TYPE_new();
        u = ASN1_UTF8STRING_new();
        oid = OBJ_txt2obj(SCEP_OID_MS_UPN, 1);
        if (!gn || !v || !u || !oid || !ASN1_STRING_set(u, upn, -1)) {
                GENERAL_NAME_free(gn);
                ASN1_TYPE_free(v);
                ASN1_UTF8STRING_free(u);
                ASN1_OBJECT_free(oid);
                ERR_clear_error();
                return -ENOMEM;
        }
        ASN1_TYPE_set(v, V_ASN1_UTF8STRING, u);
        if (!GENERAL_NAME_set0_othername(gn, oid, v)) {
                GENERAL_NAME_free(gn);
                ASN1_TYPE_free(v);
                ASN1_OBJECT_free(oid);
                return -ENOMEM;
        }
        if (!sk_GENERAL_NAME_push(sans, gn)) {
                GENERAL_NAME_free(gn);
                return -ENOMEM;
        }
        return 0;
}

int scep_csr_build(const ScepCsrParams *p, EVP_PKEY *key, X509_REQ **ret, ScepError *ret_error) {
        _cleanup_(scep_csr_freep) X509_REQ *req = NULL;
        _cleanup_(X509_NAME_freep) X509_NAME *name = NULL;
        _cleanup_(extensions_freep) STACK_OF(X509_EXTENSION) *exts = NULL;
        _cleanup_(general_names_freep) GENERAL_NAMES *sans = NULL;
        _cleanup_(bit_string_freep) ASN1_BIT_STRING *ku = NULL;
        const EVP_MD *md;
        int r;

        if (!p || !key || !ret)
                return -EINVAL;
        md = scep_digest_md(p->digest);
        if (!md)
                return -EINVAL;
        if (p->usage < SCEP_USAGE_SIGNATURE || p->usage > SCEP_USAGE_BOTH)
                return -EINVAL;
        if (p->n_subject > SCEP_CSR_MAX_RDNS || p->n_dns_names > SCEP_CSR_MAX_DNS_NAMES)
                return -EINVAL;
        if (p->n_subject == 0 && p->n_dns_names == 0)
                return -EINVAL;
        if ((p->n_subject > 0 && !p->subject) || (p->n_dns_names > 0 && !p->dns_names))
                return -EINVAL;

        req = X509_REQ_new();
        exts = sk_X509_EXTENSION_new_null();
        if (!req || !exts)
                return -ENOMEM;

        if (!X509_REQ_set_version(req, 0))
                return scep_openssl_errno();

        r = build_name(p->subject, p->n_subject, &name, ret_error);
        if (r < 0)
                return r;
        if (!X509_REQ_set_subject_name(req, name))
                return scep_openssl_errno();
        if (!X509_REQ_set_pubkey(req, key))
                return scep_openssl_errno();

        if (p->n_dns_names > 0) {
                sans = GENERAL_NAMES_new();
                if (!sans)
                        return -ENOMEM;
                for (size_t i = 0; i < p->n_dns_names; i++) {
                        GENERAL_NAME *gn;
                        ASN1_IA5STRING *ia5;

                        if (!text_ok(p->dns_names[i], 253 + strlen(SCEP_SAN_EMAIL_PREFIX)))
                                return -EINVAL;
                        if (strncmp(p->dns_names[i], SCEP_SAN_UPN_PREFIX, strlen(SCEP_SAN_UPN_PREFIX)) == 0) {
                                r = push_upn(sans, p->dns_names[i] + strlen(SCEP_SAN_UPN_PREFIX));
                                if (r < 0)
                                        return r;
                                continue;
                        }
                        if (strncmp(p->dns_names[i], SCEP_SAN_EMAIL_PREFIX, strlen(SCEP_SAN_EMAIL_PREFIX)) == 0) {
                                r = push_ia5(sans, GEN_EMAIL, p->dns_names[i] + strlen(SCEP_SAN_EMAIL_PREFIX));
                                if (r < 0)
                                        return r;
                                continue;
                        }
                        if (strlen(p->dns_names[i]) > 253)
                                return -EINVAL;
                        gn = GENERAL_NAME_new();
                        ia5 = ASN1_IA5STRING_new();
                        if (!gn || !ia5 || !ASN1_STRING_set(ia5, p->dns_names[i], -1)) {
                                GENERAL_NAME_free(gn);
                                ASN1_IA5STRING_free(ia5);
                                return -ENOMEM;
                        }
                        GENERAL_NAME_set0_value(gn, GEN_DNS, ia5);
                        if (!sk_GENERAL_NAME_push(sans, gn)) {
                                GENERAL_NAME_free(gn);
                                return -ENOMEM;
                        }
                }
                r = push_ext(exts, NID_subject_alt_name, 0, sans);
                if (r < 0)
                        return r;
        }

        ku = ASN1_BIT_STRING_new();
        if (!ku)
                return -ENOMEM;
        /* Bit 0 digitalSignature, bit 2 keyEncipherment. */
        if ((p->usage & SCEP_USAGE_SIGNATURE) && !ASN1_BIT_STRING_set_bit(ku, 0, 1))
                return -ENOMEM;
        if ((p->usage & SCEP_USAGE_ENCRYPTION) && !ASN1_BIT_STRING_set_bit(ku, 2, 1))
                return -ENOMEM;
        r = push_ext(exts, NID_key_usage, 1, ku);
        if (r < 0)
                return r;

        if (!X509_REQ_add_extensions(req, exts))
                return scep_openssl_errno();

        if (p->challenge) {
                size_t n = strnlen(p->challenge, 256);
                bool printable = n > 0 && n <= 255;

                for (size_t i = 0; printable && i < n; i++)
                        printable = (unsigned char) p->challenge[i] >= 0x20 && p->challenge[i] != 0x7f;
                if (!printable)
                        return -EINVAL;
                /* DirectoryString: PrintableString when it fits (NDES's hex challenges do),
                 * else UTF8String. */
                if (!X509_REQ_add1_attr_by_NID(req, NID_pkcs9_challengePassword,
                                               ASN1_PRINTABLE_type((const unsigned char *) p->challenge, (int) n) ==
                                               V_ASN1_PRINTABLESTRING ? V_ASN1_PRINTABLESTRING : MBSTRING_UTF8,
                                               (const unsigned char *) p->challenge, (int) n))
                        return scep_openssl_errno();
        }

        if (X509_REQ_sign(req, key, md) <= 0)
                return scep_openssl_errno();

        *ret = TAKE_PTR(req);
        return 0;
}

static int signer_cert_for_name(const X509_NAME *subject, EVP_PKEY *signer_key, ScepDigest digest, X509 **ret,
                                ScepError *ret_error) {
        _cleanup_(X509_freep) X509 *x = NULL;
        _cleanup_(bit_string_freep) ASN1_BIT_STRING *ku = NULL;
        const EVP_MD *md;
        uint8_t serial[16];
        BIGNUM *bn;
        ASN1_INTEGER *sn;
        int r;

        if (!subject || !signer_key || !ret)
                return -EINVAL;
        md = scep_digest_md(digest);
        if (!md)
                return -EINVAL;
        if (EVP_PKEY_get_base_id(signer_key) != EVP_PKEY_RSA) {
                scep_error_set(ret_error, SCEP_RESULT_OK,
                               "the SCEP signer key must be RSA: the CA encrypts its reply to it "
                               "(use a transient RSA transport key with EC keys)");
                return -EINVAL;
        }

        x = X509_new();
        if (!x)
                return -ENOMEM;
        if (!X509_set_version(x, 2))
                return scep_openssl_errno();

        if (RAND_bytes(serial, sizeof serial) != 1)
                return scep_openssl_errno();
        serial[0] &= 0x7f;              /* positive */
        serial[0] |= 0x40;              /* and exactly 16 bytes */
        bn = BN_bin2bn(serial, sizeof serial, NULL);
        if (!bn)
                return -ENOMEM;
        sn = BN_to_ASN1_INTEGER(bn, NULL);
        BN_free(bn);
        if (!sn)
                return -ENOMEM;
        r = X509_set_serialNumber(x, sn);
        ASN1_INTEGER_free(sn);
        if (!r)
                return scep_openssl_errno();

        if (!X509_set_subject_name(x, subject) || !X509_set_issuer_name(x, subject))
                return scep_openssl_errno();
        if (!X509_gmtime_adj(X509_getm_notBefore(x), -3600) ||
            !X509_gmtime_adj(X509_getm_notAfter(x), 30L * 86400))
                return scep_openssl_errno();
        if (!X509_set_pubkey(x, signer_key))
                return scep_openssl_errno();

        ku = ASN1_BIT_STRING_new();
        if (!ku || !ASN1_BIT_STRING_set_bit(ku, 0, 1) || !ASN1_BIT_STRING_set_bit(ku, 2, 1))
                return -ENOMEM;
        if (!X509_add1_ext_i2d(x, NID_key_usage, ku, 1, X509V3_ADD_DEFAULT))
                return scep_openssl_errno();

        if (X509_sign(x, signer_key, md) <= 0)
                return scep_openssl_errno();

        *ret = TAKE_PTR(x);
        return 0;
}

int scep_csr_to_pem(X509_REQ *req, char **ret) {
        _cleanup_(BIO_free_allp) BIO *b = BIO_new(BIO_s_mem());

        if (!b || !PEM_write_bio_X509_REQ(b, req))
                return -ENOMEM;
        *ret = scep_bio_to_string(b);
        return *ret ? 0 : -ENOMEM;
}

int scep_csr_from_pem(const char *pem, X509_REQ **ret) {
        _cleanup_(BIO_free_allp) BIO *b = BIO_new_mem_buf(pem, -1);
        X509_REQ *req;

        if (!b)
                return -ENOMEM;
        req = PEM_read_bio_X509_REQ(b, NULL, NULL, NULL);
        if (!req) {
                ERR_clear_error();
                return -EINVAL;
        }
        *ret = req;
        return 0;
}

int scep_signer_cert_build(X509_REQ *csr, EVP_PKEY *signer_key, ScepDigest digest, X509 **ret,
                           ScepError *ret_error) {
        if (!csr)
                return -EINVAL;
        return signer_cert_for_name(X509_REQ_get_subject_name(csr), signer_key, digest, ret, ret_error);
}

int scep_signer_cert_build_for_subject(const ScepRdn *subject, size_t n_subject, EVP_PKEY *signer_key,
                                       ScepDigest digest, X509 **ret, ScepError *ret_error) {
        _cleanup_(X509_NAME_freep) X509_NAME *name = NULL;
        int r;

        r = build_name(subject, n_subject, &name, ret_error);
        if (r < 0)
                return r;
        return signer_cert_for_name(name, signer_key, digest, ret, ret_error);
}
