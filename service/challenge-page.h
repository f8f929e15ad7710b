/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The NDES mscep_admin page: find the one-time enrollment challenge, or recognise the error
 * pages, in any language. Pure code (buffers in, results out, no I/O, no logging); fuzzed as
 * tests/fuzz/transport/fuzz-transport-adminpage.c.
 *
 * Encodings: UTF-16LE with a BOM (FF FE), UTF-16LE without one (recognised by the NUL byte in
 * every odd position of ASCII text), UTF-16BE with a BOM, UTF-8 with or without a BOM.
 *
 * What a Windows Server 2022 NDES serves (English): one line of HTML with Microsoft's
 * localization markup (<LocID ID=locMSCertSrv>, ID=locPageTitle, ID=locPageDesc). The challenge
 * page has exactly two <B> elements, the CA thumbprint (the MD5 of the CA certificate, 4 groups
 * of 8 hex digits: <B> 0123ABCD 0123ABCD 0123ABCD 0123ABCD </B>) and then the challenge
 * (<B> 1ED0DD50F7459D6E </B>: PasswordLength bytes in hex, 8 by default; 1..64 bytes are
 * accepted, so 2..128 hex digits, an even count). The cache-full page has no <B> and a <UL> of
 * three <LI>; the permission page has neither. Localized pages translate the sentences and may
 * carry more markup (the localized Web Enrollment pages put <B><I>Microsoft</I></B> in their
 * banner), so after the English sentences the page is read by its structure:
 *
 *   1. "The enrollment challenge password is: <B> XXXX </B>" (case-insensitive, any
 *      whitespace): the challenge is the trimmed content of that <B> element.
 *   2. "The password cache is full."               → CHALLENGE_PAGE_CACHE_FULL
 *      "You do not have sufficient permission to enroll with SCEP."
 *                                                   → CHALLENGE_PAGE_NO_PERMISSION
 *   3. By structure, whatever other <B> elements the page carries. A <B> element's text is
 *      its content up to "</B>" with nested tags (<B><I>x</I></B>) dropped, trimmed. The
 *      anchor is the first <B> whose text is a thumbprint (4 groups of 8 hex digits); the
 *      challenge is the first <B> after it whose text is only hex digits, 2..128 of them, an
 *      even count. Without an anchor (or nothing after it), a <B> of 8..128 hex digits (even)
 *      is taken only when it is the only one; two or more are ambiguous.
 *   4. A page with NDES's markup (all of <LocID ...>, ID=locMSCertSrv, ID=locPageTitle,
 *      ID=locPageDesc) and no <B> holding text of its own (a banner like <B><I>Microsoft</I></B>
 *      holds only another element): with a <UL> of three <LI> → CHALLENGE_PAGE_CACHE_FULL,
 *      without a <UL> → CHALLENGE_PAGE_NO_PERMISSION. Pages without that markup never are.
 *   5. Otherwise CHALLENGE_PAGE_UNRECOGNIZED.
 *
 * challenge_page_parse_info() also reports the thumbprint, the single-password mode ("This
 * password can be used multiple times and will not expire.", Windows 2008 R2 with
 * UseSinglePassword, certnanny/sscep#46), the validity the English page states, and, for an
 * unrecognised page, its visible text for the error message.
 *
 * The challenge is copied into libsodium guarded memory; every intermediate copy (the decoded
 * page, the element texts) is wiped before returning. The caller should wipe the raw body it
 * passed in. The visible text never holds a challenge: hex-digit words of 8 or more digits, and
 * of 2 or more inside a <B>, are replaced by "[hex]".
 */

#include <stdbool.h>
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

/* Longest visible text reported for an unrecognised page, in bytes, "..." included. */
#define CHALLENGE_PAGE_TEXT_MAX 200

/* What else the page says. */
typedef struct ChallengePageInfo {
        /* Static name of the detected encoding ("utf-16le-bom", "utf-16le", "utf-16be-bom",
         * "utf-8-bom", "utf-8"); NULL for a page larger than CHALLENGE_PAGE_SIZE_MAX. */
        const char *encoding;
        /* The result came from the page's structure (rules 3 and 4), not its English words. */
        bool by_structure;
        /* challenge_classify_page() only: the page was NDES's "The password cache is full.". */
        bool cache_full;
        /* The CA thumbprint (MD5 of the CA certificate) as 32 lowercase hex digits; "" when the
         * page shows none. */
        char thumbprint[33];
        /* "This password can be used multiple times and will not expire." (English pages). */
        bool multi_use;
        /* "will expire within N minutes" (English pages); 0 when the page does not say. */
        unsigned validity_minutes;
        /* CHALLENGE_PAGE_UNRECOGNIZED only (else ""): the page's visible text, tags and <head>
         * dropped, whitespace collapsed, hex words that could be a challenge replaced by "[hex]",
         * bytes that are not printable valid UTF-8, and backslashes, escaped as \xNN; valid UTF-8, cut on
         * a character boundary to at most CHALLENGE_PAGE_TEXT_MAX bytes, ending in "..." when cut. */
        char text[CHALLENGE_PAGE_TEXT_MAX + 1];
} ChallengePageInfo;

/* Parses the page. Returns CHALLENGE_PAGE_FOUND with *ret_secret set (when ret_secret is not
 * NULL), another (positive) ChallengePageResult with *ret_secret untouched, or -ENOMEM / -EINVAL
 * (NULL body with a size). *ret_info (optional) is filled for every result >= 0. */
int challenge_page_parse_info(const uint8_t *body, size_t size, ChallengeSecret **ret_secret,
                              ChallengePageInfo *ret_info);

/* Parses the page. Returns CHALLENGE_PAGE_FOUND with *ret_secret set, another (positive)
 * ChallengePageResult with *ret_secret untouched, or -ENOMEM. ret_encoding (optional) gets a
 * static name of the detected encoding ("utf-16le-bom", "utf-16le", "utf-16be-bom",
 * "utf-8-bom", "utf-8"). The same as challenge_page_parse_info() without the details. */
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

/* NDES is known to have consumed the challenge (a CertRep answered the PKIOperation that
 * carried it): freeing it then gives its outstanding slot back at once, where one not consumed
 * keeps counting until NDES forgets it. challenge_secret_is_consumed() tells the release hook. */
void challenge_secret_set_consumed(ChallengeSecret *s);
bool challenge_secret_is_consumed(const ChallengeSecret *s);

/* A function run once when the secret is freed (used to count outstanding challenges). */
void challenge_secret_set_release(ChallengeSecret *s, void (*release)(void *userdata), void *userdata);
/* The userdata set with release, NULL when another hook (or none) is set. */
void *challenge_secret_get_release(const ChallengeSecret *s, void (*release)(void *userdata));
