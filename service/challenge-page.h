/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The NDES mscep_admin page: find the one-time enrollment challenge, or recognise the error
 * pages. Pure code (buffers in, results out, no I/O, no logging); fuzzed as
 * tests/fuzz/transport/fuzz-transport-adminpage.c.
 *
 * Encodings: UTF-16LE with a BOM (FF FE), UTF-16LE without one (recognised by the NUL byte in
 * every odd position of ASCII text), UTF-16BE with a BOM, UTF-8 with or without a BOM.
 *
 * Order of recognition:
 *   1. "The enrollment challenge password is: <B> XXXX </B>" (case-insensitive, any
 *      whitespace): the challenge is the trimmed content of that <B> element.
 *   2. "The password cache is full."               → CHALLENGE_PAGE_CACHE_FULL
 *      "You do not have sufficient permission to enroll with SCEP."
 *                                                   → CHALLENGE_PAGE_NO_PERMISSION
 *   3. A localized page: the content of the second <B> element, accepted only if it looks like
 *      an NDES challenge (8..64 hex digits), so prose in a localized error page is never taken
 *      for a password.
 *   4. Otherwise CHALLENGE_PAGE_UNRECOGNIZED.
 *
 * The challenge is copied into libsodium guarded memory; every intermediate copy (the decoded
 * page) is wiped before returning. The caller should wipe the raw body it passed in.
 */

#include <stddef.h>
#include <stdint.h>

/* Largest page examined; NDES pages are about 2 KiB. Larger input: CHALLENGE_PAGE_UNRECOGNIZED. */
#define CHALLENGE_PAGE_SIZE_MAX ((size_t) 256 * 1024)

/* Longest challenge accepted from the labelled sentence. */
#define CHALLENGE_SIZE_MAX 128

typedef enum ChallengePageResult {
        CHALLENGE_PAGE_FOUND = 0,
        CHALLENGE_PAGE_CACHE_FULL = 1,
        CHALLENGE_PAGE_NO_PERMISSION = 2,
        CHALLENGE_PAGE_UNRECOGNIZED = 3,
} ChallengePageResult;

/* A challenge password in guarded memory. Opaque; never log its contents. */
typedef struct ChallengeSecret ChallengeSecret;

/* Parses the page. Returns CHALLENGE_PAGE_FOUND with *ret_secret set, another (positive)
 * ChallengePageResult with *ret_secret untouched, or -ENOMEM. ret_encoding (optional) gets a
 * static name of the detected encoding ("utf-16le-bom", "utf-16le", "utf-16be-bom",
 * "utf-8-bom", "utf-8"). */
int challenge_page_parse(const uint8_t *body, size_t size, ChallengeSecret **ret_secret, const char **ret_encoding);

/* Static human description of a result, for messages ("the password cache is full"). */
const char *challenge_page_result_to_string(ChallengePageResult r);

/* A secret holding a copy of data[0..size) (size 1..CHALLENGE_SIZE_MAX). -EINVAL, -ENOMEM. */
int challenge_secret_new(const char *data, size_t size, ChallengeSecret **ret);

/* The NUL-terminated password, valid until challenge_secret_free(). */
const char *challenge_secret_get(const ChallengeSecret *s, size_t *ret_size);

/* Overwrites the password with zeros (it reads as "" afterwards) but keeps the secret, and so
 * the CA's outstanding slot its release hook gives back, until challenge_secret_free().
 * Accepts NULL. */
void challenge_secret_wipe(ChallengeSecret *s);

/* Wipes and frees; accepts NULL, returns NULL. Runs the release hook, if set. */
ChallengeSecret *challenge_secret_free(ChallengeSecret *s);
void challenge_secret_freep(ChallengeSecret **s);

/* A function run once when the secret is freed (used to count outstanding challenges). */
void challenge_secret_set_release(ChallengeSecret *s, void (*release)(void *userdata), void *userdata);
