/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "manager.h"

/* What CA.GetTrustAnchors() offers for the system trust store (certbrokerctl trust). */
typedef struct TrustAnchor {
        char fingerprint[72];           /* "sha256:" + 64 lower-case hex digits */
        bool authenticated;
        char *pem;
} TrustAnchor;

/* The CA's certificates from its last GetCACert answer: the CA certificate, then the ones of
 * that answer that issued it (by signature), up to a self-signed one. authenticated: pinned by
 * CAFingerprint= (GetCACert refuses any other), or matched by the thumbprint of the
 * Kerberos-authenticated admin page; an issuer is authenticated with the certificate it signed.
 * *ret_note: when the CA certificate is not authenticated, why and what to do; else "".
 * -ENODATA when the broker has no certificates of the CA (its LastError says why). */
int trust_anchors_collect(CaState *ca, TrustAnchor **ret, size_t *ret_n, char **ret_note);
void trust_anchors_free(TrustAnchor *a, size_t n);

/* GetCACaps/GetCACert of the CA are under way. */
bool trust_anchors_fetching(CaState *ca);

/* Writes $RUNTIME_DIRECTORY/trust-anchors (when the broker runs under systemd, which sets it)
 * when what it says changed, or always with force (start-up): one line per configured CA, its
 * name, InstallTrust=, and the SHA-256 of its CA certificate with whether it is authenticated
 * ("-" when none is fetched). certbroker-trust.path starts `certbrokerctl trust sync` on a
 * change: a CA renewed, authenticated, added or removed. */
void trust_anchors_stamp(Manager *m, bool force);
