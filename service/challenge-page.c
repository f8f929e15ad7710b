/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "challenge-page.h"

struct ChallengeSecret {
        char *data;             /* sodium_malloc()ed, size + 1 bytes, NUL-terminated */
        size_t size;
        void (*release)(void *userdata);
        void *release_userdata;
};

int challenge_secret_new(const char *data, size_t size, ChallengeSecret **ret) {
        ChallengeSecret *s;

        if (!data || size == 0 || size > CHALLENGE_SIZE_MAX || !ret)
                return -EINVAL;
        if (sodium_init() < 0)
                return -EIO;
        s = calloc(1, sizeof *s);
        if (!s)
                return -ENOMEM;
        s->data = sodium_malloc(size + 1);
        if (!s->data) {
                free(s);
                return -ENOMEM;
        }
        memcpy(s->data, data, size);
        s->data[size] = 0;
        s->size = size;
        (void) sodium_mprotect_readonly(s->data);
        *ret = s;
        return 0;
}

const char *challenge_secret_get(const ChallengeSecret *s, size_t *ret_size) {
        if (!s)
                return NULL;
        if (ret_size)
                *ret_size = s->size;
        return s->data;
}

void challenge_secret_set_release(ChallengeSecret *s, void (*release)(void *userdata), void *userdata) {
        if (!s)
                return;
        s->release = release;
        s->release_userdata = userdata;
}

ChallengeSecret *challenge_secret_free(ChallengeSecret *s) {
        if (!s)
                return NULL;
        if (s->release)
                s->release(s->release_userdata);
        sodium_free(s->data);   /* wipes, checks the canary, unmaps */
        free(s);
        return NULL;
}

void challenge_secret_wipe(ChallengeSecret *s) {
        if (!s)
                return;
        (void) sodium_mprotect_readwrite(s->data);     /* read-only since challenge_secret_new() */
        sodium_memzero(s->data, s->size);
        (void) sodium_mprotect_readonly(s->data);
}

void challenge_secret_freep(ChallengeSecret **s) {
        if (s)
                *s = challenge_secret_free(*s);
}

const char *challenge_page_result_to_string(ChallengePageResult r) {
        switch (r) {
        case CHALLENGE_PAGE_FOUND:
                return "a challenge password";
        case CHALLENGE_PAGE_CACHE_FULL:
                return "the password cache is full";
        case CHALLENGE_PAGE_NO_PERMISSION:
                return "no permission to enroll with SCEP";
        case CHALLENGE_PAGE_UNRECOGNIZED:
        default:
                return "a page without a challenge password";
        }
}

/* The decoded page: UTF-8, whitespace runs collapsed to one space, NUL-terminated. */
typedef struct Text {
        char *s;
        size_t len, cap;
        bool pending_space;
} Text;

static void text_wipe(Text *t) {
        if (t->s) {
                sodium_memzero(t->s, t->cap);
                free(t->s);
        }
        *t = (Text) {};
}

static bool is_space_cp(uint32_t cp) {
        return cp == ' ' || cp == '\t' || cp == '\r' || cp == '\n' || cp == '\f' || cp == '\v' ||
               cp == 0 || cp == 0xa0 || cp == 0xfeff;
}

/* cap is sized by the caller for the worst case (4 bytes per code unit), so no growth needed. */
static void text_put(Text *t, uint32_t cp) {
        if (is_space_cp(cp)) {
                if (t->len > 0)
                        t->pending_space = true;
                return;
        }
        if (t->pending_space) {
                t->s[t->len++] = ' ';
                t->pending_space = false;
        }
        if (cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
                cp = 0xfffd;
        if (cp < 0x80)
                t->s[t->len++] = (char) cp;
        else if (cp < 0x800) {
                t->s[t->len++] = (char) (0xc0 | (cp >> 6));
                t->s[t->len++] = (char) (0x80 | (cp & 0x3f));
        } else if (cp < 0x10000) {
                t->s[t->len++] = (char) (0xe0 | (cp >> 12));
                t->s[t->len++] = (char) (0x80 | ((cp >> 6) & 0x3f));
                t->s[t->len++] = (char) (0x80 | (cp & 0x3f));
        } else {
                t->s[t->len++] = (char) (0xf0 | (cp >> 18));
                t->s[t->len++] = (char) (0x80 | ((cp >> 12) & 0x3f));
                t->s[t->len++] = (char) (0x80 | ((cp >> 6) & 0x3f));
                t->s[t->len++] = (char) (0x80 | (cp & 0x3f));
        }
}

typedef enum Encoding {
        ENC_UTF8,
        ENC_UTF8_BOM,
        ENC_UTF16LE,
        ENC_UTF16LE_BOM,
        ENC_UTF16BE,
        ENC_UTF16BE_BOM,
} Encoding;

static const char *encoding_name(Encoding e) {
        static const char *const names[] = {
                [ENC_UTF8] = "utf-8",
                [ENC_UTF8_BOM] = "utf-8-bom",
                [ENC_UTF16LE] = "utf-16le",
                [ENC_UTF16LE_BOM] = "utf-16le-bom",
                [ENC_UTF16BE] = "utf-16be",
                [ENC_UTF16BE_BOM] = "utf-16be-bom",
        };
        return names[e];
}

static Encoding detect(const uint8_t *b, size_t n) {
        size_t pairs, le = 0, be = 0;

        if (n >= 3 && b[0] == 0xef && b[1] == 0xbb && b[2] == 0xbf)
                return ENC_UTF8_BOM;
        if (n >= 2 && b[0] == 0xff && b[1] == 0xfe)
                return ENC_UTF16LE_BOM;
        if (n >= 2 && b[0] == 0xfe && b[1] == 0xff)
                return ENC_UTF16BE_BOM;

        /* No BOM: HTML is mostly ASCII, which in UTF-16LE puts a NUL in every odd byte. */
        pairs = n / 2;
        if (pairs > 512)
                pairs = 512;
        if (pairs < 2)
                return ENC_UTF8;
        for (size_t i = 0; i < pairs; i++) {
                if (b[2 * i] != 0 && b[2 * i + 1] == 0)
                        le++;
                else if (b[2 * i] == 0 && b[2 * i + 1] != 0)
                        be++;
        }
        if (le * 4 >= pairs * 3)
                return ENC_UTF16LE;
        if (be * 4 >= pairs * 3)
                return ENC_UTF16BE;
        return ENC_UTF8;
}

static void decode_utf16(Text *t, const uint8_t *b, size_t n, bool le) {
        for (size_t i = 0; i + 1 < n; i += 2) {
                uint32_t u = le ? (uint32_t) (b[i] | (b[i + 1] << 8)) : (uint32_t) ((b[i] << 8) | b[i + 1]);

                if (u >= 0xd800 && u <= 0xdbff && i + 3 < n) {
                        uint32_t lo = le ? (uint32_t) (b[i + 2] | (b[i + 3] << 8)) : (uint32_t) ((b[i + 2] << 8) | b[i + 3]);
                        if (lo >= 0xdc00 && lo <= 0xdfff) {
                                text_put(t, 0x10000 + ((u - 0xd800) << 10) + (lo - 0xdc00));
                                i += 2;
                                continue;
                        }
                }
                text_put(t, u);   /* unpaired surrogates become U+FFFD */
        }
}

static void decode_utf8(Text *t, const uint8_t *b, size_t n) {
        /* Invalid sequences are passed byte by byte as U+FFFD; only ASCII matters for matching. */
        for (size_t i = 0; i < n; i++) {
                if (b[i] < 0x80)
                        text_put(t, b[i]);
                else if (b[i] == 0xc2 && i + 1 < n && b[i + 1] == 0xa0) {
                        text_put(t, 0xa0);
                        i++;
                } else
                        text_put(t, 0xfffd);
        }
}

static int decode(const uint8_t *b, size_t n, Text *ret, Encoding *ret_enc) {
        Encoding e = detect(b, n);
        Text t = {};

        /* Worst case: every input byte becomes a 3-byte U+FFFD (UTF-8), or every 2-byte unit
         * up to 4 bytes (UTF-16); plus pending spaces (at most one per output character). */
        t.cap = n * 4 + 2;
        t.s = malloc(t.cap);
        if (!t.s)
                return -ENOMEM;

        switch (e) {
        case ENC_UTF8:
                decode_utf8(&t, b, n);
                break;
        case ENC_UTF8_BOM:
                decode_utf8(&t, b + 3, n - 3);
                break;
        case ENC_UTF16LE:
                decode_utf16(&t, b, n, true);
                break;
        case ENC_UTF16LE_BOM:
                decode_utf16(&t, b + 2, n - 2, true);
                break;
        case ENC_UTF16BE:
                decode_utf16(&t, b, n, false);
                break;
        case ENC_UTF16BE_BOM:
                decode_utf16(&t, b + 2, n - 2, false);
                break;
        }
        t.s[t.len] = 0;
        *ret = t;
        *ret_enc = e;
        return 0;
}

static char lower(char c) {
        return c >= 'A' && c <= 'Z' ? (char) (c - 'A' + 'a') : c;
}

/* Case-insensitive search of an ASCII needle (lower case) in hay[from..len). */
static const char *ci_find(const char *hay, size_t len, size_t from, const char *needle) {
        size_t nl = strlen(needle);

        if (nl > len)
                return NULL;
        for (size_t i = from; i + nl <= len; i++) {
                size_t j = 0;
                while (j < nl && lower(hay[i + j]) == needle[j])
                        j++;
                if (j == nl)
                        return hay + i;
        }
        return NULL;
}

/* At p: a <B> start tag ("<b>", "<b ...>")? Returns the position after '>' or NULL. */
static const char *b_open_tag(const char *p, const char *end) {
        if (end - p < 3 || p[0] != '<' || lower(p[1]) != 'b')
                return NULL;
        if (p[2] == '>')
                return p + 3;
        if (p[2] != ' ')
                return NULL;
        for (const char *q = p + 3; q < end; q++) {
                if (*q == '>')
                        return q + 1;
                if (*q == '<')
                        return NULL;
        }
        return NULL;
}

/* The trimmed content of the <B> element whose content starts at p, up to "</b". False when
 * there is no "</b" after p (then no later element can have one either). */
static bool b_content(const char *text, size_t len, const char *p, const char **ret_start, size_t *ret_len) {
        const char *close;

        close = ci_find(text, len, (size_t) (p - text), "</b");
        if (!close)
                return false;
        while (p < close && *p == ' ')
                p++;
        while (close > p && close[-1] == ' ')
                close--;
        *ret_start = p;
        *ret_len = (size_t) (close - p);
        return true;
}

static bool valid_labelled(const char *s, size_t n) {
        if (n == 0 || n > CHALLENGE_SIZE_MAX)
                return false;
        for (size_t i = 0; i < n; i++)
                if ((unsigned char) s[i] < 0x21 || (unsigned char) s[i] > 0x7e || s[i] == '<' || s[i] == '>')
                        return false;
        return true;
}

static bool valid_fallback(const char *s, size_t n) {
        if (n < 8 || n > 64)
                return false;
        for (size_t i = 0; i < n; i++) {
                char c = lower(s[i]);
                if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
                        return false;
        }
        return true;
}

static bool find_labelled(const Text *t, const char **ret_start, size_t *ret_len) {
        static const char label[] = "the enrollment challenge password is:";
        size_t from = 0;
        const char *p;

        while ((p = ci_find(t->s, t->len, from, label))) {
                const char *q = p + strlen(label), *content;

                if (q < t->s + t->len && *q == ' ')
                        q++;
                content = b_open_tag(q, t->s + t->len);
                if (content) {
                        if (!b_content(t->s, t->len, content, ret_start, ret_len))
                                return false;   /* no closing tag anywhere after: stop scanning */
                        if (valid_labelled(*ret_start, *ret_len))
                                return true;
                }
                from = (size_t) (p - t->s) + 1;
        }
        return false;
}

static bool find_second_b(const Text *t, const char **ret_start, size_t *ret_len) {
        const char *end = t->s + t->len;
        unsigned seen = 0;

        for (const char *p = t->s; p < end; p++) {
                const char *content;

                if (*p != '<')
                        continue;
                content = b_open_tag(p, end);
                if (!content)
                        continue;
                if (++seen < 2)
                        continue;
                return b_content(t->s, t->len, content, ret_start, ret_len) && valid_fallback(*ret_start, *ret_len);
        }
        return false;
}

int challenge_page_parse(const uint8_t *body, size_t size, ChallengeSecret **ret_secret, const char **ret_encoding) {
        Text t = {};
        Encoding enc;
        const char *start;
        size_t len;
        int r;

        if (!body && size > 0)
                return -EINVAL;
        if (size > CHALLENGE_PAGE_SIZE_MAX)
                return CHALLENGE_PAGE_UNRECOGNIZED;

        r = decode(body ? body : (const uint8_t *) "", size, &t, &enc);
        if (r < 0)
                return r;
        if (ret_encoding)
                *ret_encoding = encoding_name(enc);

        if (find_labelled(&t, &start, &len))
                goto found;
        if (ci_find(t.s, t.len, 0, "the password cache is full")) {
                r = CHALLENGE_PAGE_CACHE_FULL;
                goto finish;
        }
        if (ci_find(t.s, t.len, 0, "you do not have sufficient permission to enroll with scep")) {
                r = CHALLENGE_PAGE_NO_PERMISSION;
                goto finish;
        }
        if (find_second_b(&t, &start, &len))
                goto found;
        r = CHALLENGE_PAGE_UNRECOGNIZED;
        goto finish;

found:
        if (ret_secret) {
                r = challenge_secret_new(start, len, ret_secret);
                if (r < 0)
                        goto finish;
        }
        r = CHALLENGE_PAGE_FOUND;
finish:
        text_wipe(&t);
        return r;
}
