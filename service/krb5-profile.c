/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "basic.h"
#include "file-util.h"
#include "krb5-profile.h"

static void set_message(char **ret, const char *f, ...) __attribute__((format(printf, 2, 3)));
static void set_message(char **ret, const char *f, ...) {
        va_list ap;
        char *m;

        if (!ret)
                return;
        va_start(ap, f);
        if (vasprintf(&m, f, ap) < 0)
                m = NULL;
        va_end(ap);
        *ret = m;
}

/* Realm: printable ASCII without whitespace or profile syntax ({ } = [ ] # ;). */
static bool valid_realm(const char *s) {
        if (!s || !*s || strlen(s) > 255)
                return false;
        for (; *s; s++)
                if (*s <= ' ' || *s > '~' || strchr("{}=[]#;\"\\", *s))
                        return false;
        return true;
}

/* KDC: host name, IPv4 or [IPv6], optional :port. */
static bool valid_kdc(const char *s) {
        const char *colon;
        size_t n;

        if (!s || !*s || strlen(s) > 300)
                return false;
        if (*s == '[') {
                const char *e = strchr(s, ']');
                if (!e)
                        return false;
                for (const char *p = s + 1; p < e; p++)
                        if (!strchr("0123456789abcdefABCDEF:.", *p))
                                return false;
                colon = e[1] == ':' ? e + 1 : NULL;
                if (!colon && e[1])
                        return false;
                n = 0;
        } else {
                colon = strchr(s, ':');
                n = colon ? (size_t) (colon - s) : strlen(s);
                if (n == 0)
                        return false;
                for (size_t i = 0; i < n; i++)
                        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
                              (s[i] >= '0' && s[i] <= '9') || s[i] == '-' || s[i] == '.'))
                                return false;
        }
        if (colon) {
                const char *p = colon + 1;
                long port = 0;
                if (!*p || strlen(p) > 5)
                        return false;
                for (; *p; p++) {
                        if (*p < '0' || *p > '9')
                                return false;
                        port = port * 10 + (*p - '0');
                }
                if (port < 1 || port > 65535)
                        return false;
        }
        return true;
}

static bool valid_suffix(const char *s) {
        if (!s || !*s || strlen(s) > 253)
                return false;
        for (; *s; s++)
                if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
                      *s == '-' || *s == '.'))
                        return false;
        return true;
}

int krb5_profile_format(const Krb5Settings *s, char **ret_text, char **ret_message) {
        char *text = NULL;
        size_t size = 0;
        FILE *f;
        bool have_kdc = s && s->kdcs && s->kdcs[0];

        if (!s || !ret_text)
                return -EINVAL;
        if (!valid_realm(s->realm)) {
                set_message(ret_message, "Realm=%s in [Kerberos] is not a valid Kerberos realm name",
                            s->realm ? s->realm : "");
                return -EINVAL;
        }
        if (have_kdc)
                for (char *const *k = s->kdcs; *k; k++)
                        if (!valid_kdc(*k)) {
                                set_message(ret_message, "KDC=%s in [Kerberos] is not host[:port]", *k);
                                return -EINVAL;
                        }
        if (s->domain_suffix && !valid_suffix(s->domain_suffix)) {
                set_message(ret_message, "'%s' is not a DNS suffix", s->domain_suffix);
                return -EINVAL;
        }

        f = open_memstream(&text, &size);
        if (!f)
                return -ENOMEM;
        /* forwardable: IIS may need a forwardable service ticket as evidence for constrained
         * delegation ("Use Kerberos only"); libcurl never forwards the TGT (delegation off). */
        fprintf(f,
                "# Written by certbrokerd from [Kerberos] of certbroker.conf; rewritten at every start.\n"
                "[libdefaults]\n"
                "\tdefault_realm = %s\n"
                "\tdefault_ccache_name = " KRB5_PROFILE_CCACHE "\n"
                "\tdns_canonicalize_hostname = false\n"
                "\trdns = false\n"
                "\tdns_lookup_realm = false\n"
                "%s"
                "\tudp_preference_limit = 1\n"
                "\tforwardable = true\n"
                "\tproxiable = false\n"
                "\tnoaddresses = true\n",
                s->realm,
                have_kdc ? "\tdns_lookup_kdc = false\n" : "");
        if (have_kdc) {
                fprintf(f, "[realms]\n\t%s = {\n", s->realm);
                for (char *const *k = s->kdcs; *k; k++)
                        fprintf(f, "\t\tkdc = %s\n", *k);
                fprintf(f, "\t}\n");
        }
        if (s->domain_suffix) {
                const char *d = s->domain_suffix[0] == '.' ? s->domain_suffix + 1 : s->domain_suffix;
                fprintf(f, "[domain_realm]\n\t.%s = %s\n\t%s = %s\n", d, s->realm, d, s->realm);
        }
        if (fclose(f) != 0) {
                free(text);
                return -ENOMEM;
        }
        *ret_text = text;
        return 0;
}

int krb5_profile_write(const Krb5Settings *s, char **ret_config, char **ret_message) {
        _cleanup_free_ char *text = NULL, *path = NULL, *tmp = NULL, *config = NULL;
        const char *step;
        int r;

        if (!s || !s->runtime_dir || !ret_config)
                return -EINVAL;
        r = krb5_profile_format(s, &text, ret_message);
        if (r < 0)
                return r;
        if (asprintf(&path, "%s/krb5.conf", s->runtime_dir) < 0) {
                path = NULL;
                return -ENOMEM;
        }
        if (asprintf(&tmp, "%s/.krb5.conf.tmp", s->runtime_dir) < 0) {
                tmp = NULL;
                return -ENOMEM;
        }
        /* Mode 0600: the broker's own; the directory is private to it. */
        r = write_file_atomic_at(AT_FDCWD, tmp, path, text, strlen(text), 0600, &step);
        if (r < 0) {
                set_message(ret_message, "cannot %s %s: %s", step, path, strerror(-r));
                return r;
        }
        if (s->kdcs && s->kdcs[0])
                config = strdup(path);
        else if (asprintf(&config, "%s:/etc/krb5.conf", path) < 0)
                config = NULL;
        if (!config)
                return -ENOMEM;
        *ret_config = TAKE_PTR(config);
        return 0;
}
