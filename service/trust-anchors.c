/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The CA certificates the broker can vouch for, for the system trust store. */
#include <errno.h>
#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "basic.h"
#include "engine-internal.h"
#include "file-util.h"
#include "scep-cacert.h"
#include "scep-certrep.h"
#include "scep-util.h"
#include "trust-anchors.h"
#include "trust-chain.h"

void trust_anchors_free(TrustAnchor *a, size_t n) {
        for (size_t i = 0; a && i < n; i++)
                free(a[i].pem);
        free(a);
}

/* The CA's certificates as GetCACert last gave them: one CA behind all of its NDES servers, so
 * the first server that has answered (URL= order) speaks for it. */
static ScepCACerts *ca_certs(CaState *ca) {
        if (!ca || !ca_engine(ca))
                return NULL;
        for (size_t i = 0; i < CB_CA_SERVERS_MAX; i++)
                if (ca_engine(ca)->meta[i].certs)
                        return ca_engine(ca)->meta[i].certs;
        return NULL;
}

/* Anchors being collected, freed on an early return. */
typedef struct AnchorList {
        TrustAnchor *a;
        size_t n;
} AnchorList;

static void anchor_list_done(AnchorList *l) {
        trust_anchors_free(l->a, l->n);
}

int trust_anchors_collect(CaState *ca, TrustAnchor **ret, size_t *ret_n, char **ret_note) {
        const CbCa *c = cb_config_find_ca(ca->manager->config, ca->name);
        ScepCACerts *certs = ca_certs(ca);
        _cleanup_(anchor_list_done) AnchorList l = {};
        char *note = NULL;
        bool authenticated;
        int r;

        if (!c || !certs || !certs->ca)
                return -ENODATA;
        authenticated = c->has_fingerprint ||
                        ca_trust_authenticates(ca, certs->ca_fingerprint);
        X509 *chain[SCEP_CACERT_MAX_CERTS];
        size_t n_chain = trust_chain(certs->all, certs->ca, chain, ELEMENTSOF(chain));
        l.a = calloc(n_chain, sizeof(TrustAnchor));
        if (!l.a)
                return -ENOMEM;
        for (size_t i = 0; i < n_chain; i++) {
                TrustAnchor *t = &l.a[l.n];
                uint8_t fp[SCEP_FINGERPRINT_SIZE];

                *t = (TrustAnchor) { .authenticated = authenticated };
                r = scep_cert_sha256(chain[i], fp);
                if (r < 0)
                        return r;
                r = scep_certs_to_pem(chain[i], NULL, &t->pem);
                if (r < 0)
                        return r;
                scep_fingerprint_format(fp, t->fingerprint, sizeof t->fingerprint);
                l.n++;
        }
        r = 0;
        if (authenticated)
                note = strdup("");
        else if (c->challenge == CB_CHALLENGE_MSCEP_ADMIN)
                r = asprintf(&note, "CA %s: its certificate %s from GetCACert is not authenticated yet: the broker "
                             "compares it with the thumbprint NDES's admin page %s shows at its next enrollment "
                             "from this CA; or pin it with CAFingerprint=%s in %s", ca->name, l.a[0].fingerprint,
                             c->admin_url ?: "", l.a[0].fingerprint, c->path);
        else
                r = asprintf(&note, "CA %s: its certificate %s from GetCACert cannot be authenticated (Challenge=%s "
                             "shows no admin page): pin it with CAFingerprint=%s in %s", ca->name, l.a[0].fingerprint,
                             cb_challenge_mode_to_string(c->challenge), l.a[0].fingerprint, c->path);
        if (r < 0 || !note)
                return -ENOMEM;
        *ret_n = l.n;
        *ret = TAKE_PTR(l.a);
        l.n = 0;
        *ret_note = note;
        return 0;
}

bool trust_anchors_fetching(CaState *ca) {
        if (!ca_engine(ca))
                return false;
        for (size_t i = 0; i < CB_CA_SERVERS_MAX; i++)
                if (ca_engine(ca)->meta[i].meta_http)
                        return true;
        return false;
}

void trust_anchors_stamp(Manager *m, bool force) {
        const char *dir = getenv("RUNTIME_DIRECTORY");
        _cleanup_free_ char *text = NULL, *path = NULL, *tmp = NULL, *old = NULL;
        size_t size = 0;
        FILE *f;

        if (!dir || !*dir || strchr(dir, ':'))  /* several directories: not ours to pick */
                return;
        f = open_memstream(&text, &size);
        if (!f)
                return;
        for (size_t i = 0; i < m->n_cas; i++) {
                CaState *ca = m->cas[i];
                const CbCa *c = ca ? cb_config_find_ca(m->config, ca->name) : NULL;
                ScepCACerts *certs = ca_certs(ca);
                char fp[72] = "-";
                bool auth = false;

                if (!c)
                        continue;
                if (certs && certs->ca) {
                        scep_fingerprint_format(certs->ca_fingerprint, fp, sizeof fp);
                        auth = c->has_fingerprint || ca_trust_authenticates(ca, certs->ca_fingerprint);
                }
                fprintf(f, "%s InstallTrust=%s %s %s\n", ca->name, c->install_trust ? "yes" : "no", fp,
                        auth ? "authenticated" : "unauthenticated");
        }
        if (fclose(f) != 0 || !text)
                return;
        if (asprintf(&path, "%s/trust-anchors", dir) < 0) {
                path = NULL;
                return;
        }
        if (asprintf(&tmp, "%s/.trust-anchors.tmp", dir) < 0) {
                tmp = NULL;
                return;
        }
        if (!force) {
                _cleanup_fclose_ FILE *o = fopen(path, "re");
                if (o) {
                        size_t osize = 0;
                        ssize_t k = getdelim(&old, &osize, 0, o);
                        if (k >= 0 && (size_t) k == size && memcmp(old, text, size) == 0)
                                return;
                } else if (size == 0)
                        return;
        }
        /* The shipped path unit watches this file: it changes only when its content does. */
        (void) write_file_atomic_at(AT_FDCWD, tmp, path, text, size, 0600, NULL);
}
