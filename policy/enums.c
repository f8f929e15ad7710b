/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "cb-config.h"
#include "util.h"

#define DEFINE_STRING_TABLE(name, type, max, invalid, ...)                      \
        static const char *const name##_table[max] = { __VA_ARGS__ };          \
        const char *name##_to_string(type v) {                                 \
                if ((int) v < 0 || (int) v >= (int) (max))                     \
                        return NULL;                                           \
                return name##_table[v];                                        \
        }                                                                      \
        type name##_from_string(const char *s) {                               \
                if (!s)                                                        \
                        return invalid;                                        \
                for (int i = 0; i < (int) (max); i++)                          \
                        if (strcmp(name##_table[i], s) == 0)                   \
                                return (type) i;                               \
                return invalid;                                                \
        }

DEFINE_STRING_TABLE(cb_key_type, CbKeyType, _CB_KEY_TYPE_MAX, _CB_KEY_TYPE_INVALID,
                    [CB_KEY_RSA_2048] = "rsa:2048",
                    [CB_KEY_RSA_3072] = "rsa:3072",
                    [CB_KEY_RSA_4096] = "rsa:4096",
                    [CB_KEY_EC_P256] = "ec:p256",
                    [CB_KEY_EC_P384] = "ec:p384")

DEFINE_STRING_TABLE(cb_usage, CbUsage, _CB_USAGE_MAX, _CB_USAGE_INVALID,
                    [CB_USAGE_SIGNATURE] = "signature",
                    [CB_USAGE_ENCRYPTION] = "encryption",
                    [CB_USAGE_BOTH] = "both")

DEFINE_STRING_TABLE(cb_kerberos_mode, CbKerberosMode, _CB_KERBEROS_MODE_MAX, _CB_KERBEROS_MODE_INVALID,
                    [CB_KERBEROS_MODE_KEYTAB] = "keytab",
                    [CB_KERBEROS_MODE_GSS_PROXY] = "gss-proxy")

DEFINE_STRING_TABLE(cb_authentication, CbAuthentication, _CB_AUTHENTICATION_MAX, _CB_AUTHENTICATION_INVALID,
                    [CB_AUTHENTICATION_KERBEROS] = "kerberos",
                    [CB_AUTHENTICATION_NONE] = "none")

DEFINE_STRING_TABLE(cb_challenge_mode, CbChallengeMode, _CB_CHALLENGE_MODE_MAX, _CB_CHALLENGE_MODE_INVALID,
                    [CB_CHALLENGE_MSCEP_ADMIN] = "mscep-admin",
                    [CB_CHALLENGE_STATIC] = "static",
                    [CB_CHALLENGE_NONE] = "none")

bool cb_enroll_option_is_known(const char *name) {
        return name && (strcmp(name, "key") == 0 || strcmp(name, "usage") == 0 ||
                        strcmp(name, "label") == 0 || strcmp(name, "renew") == 0 ||
                        strcmp(name, "token") == 0 || strcmp(name, "identity") == 0);
}

int cb_key_type_validate(const char *s, CbKeyType *ret, const char **ret_reason) {
        CbKeyType t = cb_key_type_from_string(s);
        if (t < 0) {
                if (ret_reason)
                        *ret_reason = "is not a key type: use rsa:2048, rsa:3072, rsa:4096, ec:p256 or ec:p384";
                return -EINVAL;
        }
        if (ret)
                *ret = t;
        return 0;
}

int cb_usage_validate(const char *s, CbUsage *ret, const char **ret_reason) {
        CbUsage u = cb_usage_from_string(s);
        if (u < 0) {
                if (ret_reason)
                        *ret_reason = "is not a usage: use signature, encryption or both";
                return -EINVAL;
        }
        if (ret)
                *ret = u;
        return 0;
}

int cb_label_validate(const char *s, const char **ret_reason) {
        const char *why = NULL;

        if (!s)
                why = "is missing";
        else if (strlen(s) > CB_LABEL_MAX_BYTES)
                why = "is longer than 128 bytes";
        else if (!utf8_is_valid_n(s, strlen(s)))
                why = "is not valid UTF-8";
        else
                for (const char *p = s; *p; p++)
                        if ((uint8_t) *p < 0x20 || *p == 0x7f) {
                                why = "contains a control character";
                                break;
                        }
        if (why) {
                if (ret_reason)
                        *ret_reason = why;
                return -EINVAL;
        }
        return 0;
}

bool cb_ca_name_is_valid(const char *name) {
        if (!name || !*name || strlen(name) > CB_CA_NAME_MAX)
                return false;
        for (const char *p = name; *p; p++)
                if (!ascii_isalpha(*p) && !ascii_isdigit(*p) && *p != '-' && *p != '_')
                        return false;
        return true;
}

DEFINE_STRING_TABLE(cb_renewal_mode, CbRenewalMode, _CB_RENEWAL_MODE_MAX, _CB_RENEWAL_MODE_INVALID,
                    [CB_RENEWAL_REENROLL] = "reenroll",
                    [CB_RENEWAL_SCEP_RENEWAL] = "scep-renewal",
                    [CB_RENEWAL_AUTO] = "auto")
