/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "scep-caps.h"
#include "scep-util.h"

static const struct {
        const char *keyword;
        unsigned flag;
} caps_table[] = {
        { "AES",              SCEP_CAP_AES                },
        { "DES3",             SCEP_CAP_DES3               },
        { "SHA-1",            SCEP_CAP_SHA1               },
        { "SHA-256",          SCEP_CAP_SHA256             },
        { "SHA-512",          SCEP_CAP_SHA512             },
        { "POSTPKIOperation", SCEP_CAP_POST_PKI_OPERATION },
        { "Renewal",          SCEP_CAP_RENEWAL            },
        { "SCEPStandard",     SCEP_CAP_SCEP_STANDARD      },
        { "GetNextCACert",    SCEP_CAP_GET_NEXT_CA_CERT   },
        { "Update",           SCEP_CAP_UPDATE             },
};

static bool is_blank(char c) {
        return c == ' ' || c == '\t' || c == '\v' || c == '\f';
}

int scep_caps_parse(const void *data, size_t size, unsigned *ret_caps, ScepError *ret_error) {
        const char *p = data, *end;
        unsigned caps = 0;

        if (!ret_caps || (!data && size > 0))
                return -EINVAL;
        if (size > SCEP_CAPS_MAX_SIZE)
                return scep_error_set(ret_error, SCEP_RESULT_TOO_LARGE,
                                      "GetCACaps answer is %zu bytes, more than the %u we accept",
                                      size, SCEP_CAPS_MAX_SIZE);

        end = p ? p + size : p;
        while (p < end) {
                const char *line = p, *eol, *a, *b;

                while (p < end && *p != '\n' && *p != '\r')
                        p++;
                eol = p;
                /* Skip exactly one line ending (CRLF, LF or CR); blank lines cost a loop. */
                if (p < end && *p == '\r')
                        p++;
                if (p < end && *p == '\n')
                        p++;

                a = line;
                b = eol;
                while (a < b && is_blank(*a))
                        a++;
                while (b > a && is_blank(b[-1]))
                        b--;
                if (a == b)
                        continue;

                for (size_t i = 0; i < ELEMENTSOF(caps_table); i++) {
                        size_t n = strlen(caps_table[i].keyword);
                        if ((size_t) (b - a) == n && strncasecmp(a, caps_table[i].keyword, n) == 0 &&
                            !memchr(a, '\0', n)) {
                                caps |= caps_table[i].flag;
                                break;
                        }
                }
        }

        *ret_caps = caps;
        return 0;
}

size_t scep_caps_to_strv(unsigned caps, const char *ret[static 11]) {
        size_t n = 0;

        for (size_t i = 0; i < ELEMENTSOF(caps_table); i++)
                if (caps & caps_table[i].flag)
                        ret[n++] = caps_table[i].keyword;
        ret[n] = NULL;
        return n;
}

static void caps_format(unsigned caps, char *buf, size_t size) {
        const char *names[11];
        size_t n, len = 0;

        n = scep_caps_to_strv(caps, names);
        buf[0] = '\0';
        if (n == 0) {
                snprintf(buf, size, "(none)");
                return;
        }
        for (size_t i = 0; i < n && len < size; i++) {
                int k = snprintf(buf + len, size - len, "%s%s", i > 0 ? " " : "", names[i]);
                if (k < 0)
                        break;
                len += (size_t) k;
        }
}

int scep_caps_choose(unsigned caps, ScepFloor floor, ScepAlgorithms *ret, ScepError *ret_error) {
        bool standard = caps & SCEP_CAP_SCEP_STANDARD;
        bool aes = standard || (caps & SCEP_CAP_AES);
        bool sha256 = standard || (caps & SCEP_CAP_SHA256);
        ScepAlgorithms a;
        char list[160];

        if (!ret || floor < SCEP_FLOOR_DEFAULT || floor > SCEP_FLOOR_STRICT)
                return -EINVAL;

        caps_format(caps, list, sizeof list);

        if (aes)
                a.cipher = SCEP_CIPHER_AES128_CBC;
        else if (floor == SCEP_FLOOR_STRICT)
                return scep_error_set(ret_error, SCEP_RESULT_ALGORITHM_FLOOR,
                                      "the CA's GetCACaps (%s) does not offer AES, which this CA's "
                                      "configuration requires", list);
        else
                /* DES3 whether advertised or not: RFC 8894 makes it the fallback we may send,
                 * and we never send single DES. */
                a.cipher = SCEP_CIPHER_DES3;

        if (sha256)
                a.digest = SCEP_DIGEST_SHA256;
        else if (caps & SCEP_CAP_SHA512)
                a.digest = SCEP_DIGEST_SHA512;
        else if (floor == SCEP_FLOOR_LEGACY)
                a.digest = SCEP_DIGEST_SHA1;
        else
                return scep_error_set(ret_error, SCEP_RESULT_ALGORITHM_FLOOR,
                                      "the CA's GetCACaps (%s) offers no SHA-256 or SHA-512; "
                                      "set AllowLegacyCiphers=yes for this CA to allow SHA-1 "
                                      "(caps are unauthenticated: check that this is really the server)",
                                      list);

        a.transport = (standard || (caps & SCEP_CAP_POST_PKI_OPERATION)) ?
                SCEP_TRANSPORT_POST : SCEP_TRANSPORT_GET;

        *ret = a;
        return 0;
}

const char *scep_cipher_to_string(ScepCipher c) {
        switch (c) {
        case SCEP_CIPHER_DES3:
                return "DES3";
        case SCEP_CIPHER_AES128_CBC:
                return "AES-128-CBC";
        }
        return NULL;
}

const char *scep_digest_to_string(ScepDigest d) {
        switch (d) {
        case SCEP_DIGEST_SHA1:
                return "SHA-1";
        case SCEP_DIGEST_SHA256:
                return "SHA-256";
        case SCEP_DIGEST_SHA512:
                return "SHA-512";
        case SCEP_DIGEST_SHA384:
                return "SHA-384";
        }
        return NULL;
}

const char *scep_transport_to_string(ScepTransport t) {
        switch (t) {
        case SCEP_TRANSPORT_GET:
                return "GET";
        case SCEP_TRANSPORT_POST:
                return "POST";
        }
        return NULL;
}
