/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* GetCACaps parsing and the choice of algorithms and transport. Pure: bytes in, flags out.
 *
 * Algorithm floor (caps are unauthenticated, so a man in the middle of plain http, or a
 * misconfigured server, could advertise only weak algorithms to downgrade us):
 *
 *   SCEP_FLOOR_DEFAULT  (AllowLegacyCiphers=no)  cipher >= DES3, digest >= SHA-256.
 *                       DES3 stays allowed because Windows NDES 2016-2022 advertises
 *                       "SHA-512 SHA-256 SHA-1 DES3" and no AES; every NDES offers SHA-256.
 *                       Empty caps (or caps with SHA-1 only) are refused with a message
 *                       naming AllowLegacyCiphers=yes.
 *   SCEP_FLOOR_LEGACY   (AllowLegacyCiphers=yes) cipher >= DES3, digest >= SHA-1: SHA-1 is
 *                       used only when the caps offer nothing better (RFC 8894 says a
 *                       server without caps supports DES/MD5 at least; we never send
 *                       single DES or MD5, so such a server gets DES3 + SHA-1).
 *   SCEP_FLOOR_STRICT   cipher AES-128-CBC, digest >= SHA-256 (for a CA known to do AES,
 *                       e.g. SCEPStandard servers; no configuration key selects it yet).
 *
 * Preference above the floor: AES-128-CBC > DES3; SHA-256 > SHA-512 > SHA-1 (SHA-256 is
 * what every server verifies; SHA-512 only when SHA-256 is not advertised). SCEPStandard
 * implies AES, POSTPKIOperation and SHA-256. Transport: POST when POSTPKIOperation or
 * SCEPStandard is advertised, else GET. Never single DES or MD5 in what we send. */

#include "scep-result.h"

typedef enum ScepCaps {
        SCEP_CAP_AES                = 1u << 0,
        SCEP_CAP_DES3               = 1u << 1,
        SCEP_CAP_SHA1               = 1u << 2,
        SCEP_CAP_SHA256             = 1u << 3,
        SCEP_CAP_SHA512             = 1u << 4,
        SCEP_CAP_POST_PKI_OPERATION = 1u << 5,
        SCEP_CAP_RENEWAL            = 1u << 6,
        SCEP_CAP_SCEP_STANDARD      = 1u << 7,
        SCEP_CAP_GET_NEXT_CA_CERT   = 1u << 8,
        SCEP_CAP_UPDATE             = 1u << 9,
} ScepCaps;

typedef enum ScepCipher {
        SCEP_CIPHER_DES3,           /* des-ede3-cbc */
        SCEP_CIPHER_AES128_CBC,
} ScepCipher;

typedef enum ScepDigest {
        SCEP_DIGEST_SHA1,
        SCEP_DIGEST_SHA256,
        SCEP_DIGEST_SHA512,
        SCEP_DIGEST_SHA384,         /* only ever seen in replies; never chosen from caps */
} ScepDigest;

typedef enum ScepTransport {
        SCEP_TRANSPORT_GET,
        SCEP_TRANSPORT_POST,
} ScepTransport;

typedef enum ScepFloor {
        SCEP_FLOOR_DEFAULT,
        SCEP_FLOOR_LEGACY,
        SCEP_FLOOR_STRICT,
} ScepFloor;

typedef struct ScepAlgorithms {
        ScepCipher cipher;
        ScepDigest digest;
        ScepTransport transport;
} ScepAlgorithms;

/* Largest GetCACaps body we look at; longer bodies are SCEP_RESULT_TOO_LARGE. */
#define SCEP_CAPS_MAX_SIZE (64u * 1024u)

/* Parse a GetCACaps body: keywords one per line, CRLF or LF (or CR), case-insensitive,
 * surrounding blanks ignored, unknown keywords ignored; empty body = no capabilities.
 * NUL bytes end nothing: a line holding one is simply not a keyword.
 * Returns 0 and sets *ret_caps, or SCEP_RESULT_TOO_LARGE / -EINVAL. */
int scep_caps_parse(const void *data, size_t size, unsigned *ret_caps, ScepError *ret_error);

/* Canonical keyword list of the flags ("POSTPKIOperation", "SHA-256", ...) as a NULL-
 * terminated array of static strings, for the CA's Capabilities property. ret must have
 * room for 11 entries. Returns the number of names. */
size_t scep_caps_to_strv(unsigned caps, const char *ret[static 11]);

/* Choose cipher, digest and transport for our requests. Returns 0, or
 * SCEP_RESULT_ALGORITHM_FLOOR with a message naming the caps and the fix. */
int scep_caps_choose(unsigned caps, ScepFloor floor, ScepAlgorithms *ret, ScepError *ret_error);

const char *scep_cipher_to_string(ScepCipher c);   /* "AES-128-CBC", "DES3" */
const char *scep_digest_to_string(ScepDigest d);   /* "SHA-1", "SHA-256", "SHA-384", "SHA-512" */
const char *scep_transport_to_string(ScepTransport t); /* "GET", "POST" */
