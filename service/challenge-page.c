/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "challenge-page.h"
#include "secret-memory.h"

struct ChallengeSecret {
        CbSecret *secret;       /* guarded (secret-memory.h), read-only, NUL-terminated */
        void (*release)(void *userdata);
        void *release_userdata;
        bool consumed;
};

int challenge_secret_new(const char *data, size_t size, ChallengeSecret **ret) {
        ChallengeSecret *s;

        if (!data || size == 0 || size > CHALLENGE_SIZE_MAX || !ret)
                return -EINVAL;
        if (secret_init() < 0)
                return -EIO;
        s = calloc(1, sizeof *s);
        if (!s)
                return -ENOMEM;
        if (secret_new_copy(data, size, &s->secret) < 0) {
                free(s);
                return -ENOMEM;
        }
        (void) secret_protect_readonly(s->secret);
        *ret = s;
        return 0;
}

const char *challenge_secret_get(const ChallengeSecret *s, size_t *ret_size) {
        if (!s)
                return NULL;
        if (ret_size)
                *ret_size = s->secret->size;
        return (const char *) s->secret->data;
}

void challenge_secret_set_consumed(ChallengeSecret *s) {
        if (s)
                s->consumed = true;
}

bool challenge_secret_is_consumed(const ChallengeSecret *s) {
        return s && s->consumed;
}

void challenge_secret_set_release(ChallengeSecret *s, void (*release)(void *userdata), void *userdata) {
        if (!s)
                return;
        s->release = release;
        s->release_userdata = userdata;
}

void *challenge_secret_get_release(const ChallengeSecret *s, void (*release)(void *userdata)) {
        return s && release && s->release == release ? s->release_userdata : NULL;
}

ChallengeSecret *challenge_secret_free(ChallengeSecret *s) {
        if (!s)
                return NULL;
        if (s->release)
                s->release(s->release_userdata);
        secret_free(s->secret);         /* wipes */
        free(s);
        return NULL;
}

void challenge_secret_wipe(ChallengeSecret *s) {
        if (!s)
                return;
        (void) secret_protect_readwrite(s->secret);    /* read-only since challenge_secret_new() */
        sodium_memzero(s->secret->data, s->secret->size);
        (void) secret_protect_readonly(s->secret);
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

/* The decoded page: UTF-8, whitespace runs collapsed to one space, NUL-terminated. A byte that
 * is not valid UTF-8 in a UTF-8 page is kept as it is: matching only looks at ASCII, and the
 * visible text escapes it. */
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

static void text_flush_space(Text *t) {
        if (t->pending_space) {
                t->s[t->len++] = ' ';
                t->pending_space = false;
        }
}

/* cap is sized by the caller for the worst case (4 bytes per code unit), so no growth needed. */
static void text_put(Text *t, uint32_t cp) {
        if (is_space_cp(cp)) {
                if (t->len > 0)
                        t->pending_space = true;
                return;
        }
        text_flush_space(t);
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

/* A byte (0x80..0xff) that does not start a valid UTF-8 sequence. */
static void text_put_raw(Text *t, uint8_t b) {
        text_flush_space(t);
        t->s[t->len++] = (char) b;
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

/* The length (1..4) of the valid UTF-8 sequence at b[0..n), with its code point; 0 if none
 * (overlong forms, surrogates and values above U+10FFFF are not valid). */
static size_t utf8_sequence(const uint8_t *b, size_t n, uint32_t *ret_cp) {
        uint32_t cp;
        size_t len;

        if (n == 0)
                return 0;
        if (b[0] < 0x80) {
                *ret_cp = b[0];
                return 1;
        }
        if (b[0] >= 0xc2 && b[0] <= 0xdf) {
                len = 2;
                cp = b[0] & 0x1f;
        } else if (b[0] >= 0xe0 && b[0] <= 0xef) {
                len = 3;
                cp = b[0] & 0x0f;
        } else if (b[0] >= 0xf0 && b[0] <= 0xf4) {
                len = 4;
                cp = b[0] & 0x07;
        } else
                return 0;
        if (n < len)
                return 0;
        for (size_t i = 1; i < len; i++) {
                if ((b[i] & 0xc0) != 0x80)
                        return 0;
                cp = (cp << 6) | (b[i] & 0x3f);
        }
        if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
            (cp >= 0xd800 && cp <= 0xdfff))
                return 0;
        *ret_cp = cp;
        return len;
}

static void decode_utf8(Text *t, const uint8_t *b, size_t n) {
        for (size_t i = 0; i < n;) {
                uint32_t cp;
                size_t k = utf8_sequence(b + i, n - i, &cp);

                if (k == 0) {
                        text_put_raw(t, b[i]);
                        i++;
                } else {
                        text_put(t, cp);
                        i += k;
                }
        }
}

static int decode(const uint8_t *b, size_t n, Text *ret, Encoding *ret_enc) {
        Encoding e = detect(b, n);
        Text t = {};

        /* Worst case: every 2-byte UTF-16 unit becomes up to 4 bytes, every UTF-8 byte stays one
         * byte; plus pending spaces (at most one per output character). */
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

static bool is_alpha(char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool is_alnum(char c) {
        return is_alpha(c) || (c >= '0' && c <= '9');
}

static bool is_hex(char c) {
        c = lower(c);
        return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
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

/* ---- the page's structure ---- */

/* At p: the tag "<NAME" or "</NAME" (NAME lower case) followed by '>', ' ' or '/'? */
static bool tag_is(const char *p, const char *end, const char *name, bool closing) {
        size_t nl = strlen(name);

        if (end - p < 2 || p[0] != '<')
                return false;
        p++;
        if (closing) {
                if (*p != '/')
                        return false;
                p++;
        }
        if ((size_t) (end - p) <= nl)
                return false;
        for (size_t i = 0; i < nl; i++)
                if (lower(p[i]) != name[i])
                        return false;
        return p[nl] == '>' || p[nl] == ' ' || p[nl] == '/';
}

/* The first tag <NAME or </NAME in t->s[from..), or NULL. */
static const char *find_tag(const Text *t, const char *from, const char *name, bool closing) {
        const char *end = t->s + t->len;

        for (const char *p = from; p < end; p++) {
                p = memchr(p, '<', (size_t) (end - p));
                if (!p)
                        return NULL;
                if (tag_is(p, end, name, closing))
                        return p;
        }
        return NULL;
}

#define B_CONTENT_MAX 512       /* raw bytes of a <B> element examined for its text */
#define B_TEXT_MAX 160          /* longest element text kept: a challenge has at most 128 digits */

typedef struct BElement {
        const char *open;       /* the '<' of its start tag */
        const char *content;    /* after the start tag */
        const char *end;        /* the '<' of its end tag "</B>" */
} BElement;

/* Walks the <B> elements in order of their start tags, nested ones too. */
typedef struct BScan {
        const Text *t;
        const char *p;          /* where to look for the next start tag */
        const char *close;      /* the first end tag at or after the last content searched */
        bool searched;
        bool unterminated;      /* a start tag without an end tag after it */
} BScan;

static bool b_next(BScan *sc, BElement *ret) {
        const char *end = sc->t->s + sc->t->len;

        for (; sc->p < end; sc->p++) {
                const char *content;

                if (*sc->p != '<')
                        continue;
                content = b_open_tag(sc->p, end);
                if (!content)
                        continue;
                /* The end tag first found after an earlier content is also the first after this
                 * one unless it lies before it: searched again only then (linear in the page). */
                if (!sc->searched || (sc->close && sc->close < content)) {
                        sc->close = find_tag(sc->t, content, "b", true);
                        sc->searched = true;
                }
                if (!sc->close) {
                        sc->unterminated = true;
                        sc->p = end;
                        return false;
                }
                *ret = (BElement) { .open = sc->p, .content = content, .end = sc->close };
                sc->p = content;
                return true;
        }
        return false;
}

static bool is_void_element(const char *name, size_t n) {
        static const char *const voids[] = { "br", "img", "hr", "wbr", "input", "meta", "link", "col", "area", "base" };

        for (size_t i = 0; i < sizeof voids / sizeof voids[0]; i++)
                if (strlen(voids[i]) == n && ci_find(name, n, 0, voids[i]) == name)
                        return true;
        return false;
}

/* The element's text: its content with the tags of nested elements dropped, spaces collapsed and
 * trimmed, into buf (the caller wipes it). Returns its length, or -1 when the element is too long
 * to hold a thumbprint or a challenge. *ret_direct: it has text of its own, outside nested
 * elements (a banner like <B><I>Microsoft</I></B> has not). */
static int b_text(const BElement *e, char buf[static B_TEXT_MAX], bool *ret_direct) {
        const char *p = e->content;
        unsigned depth = 0;
        bool direct = false, too_long = false;
        size_t n = 0;

        if (e->end - e->content > B_CONTENT_MAX) {
                *ret_direct = true;     /* not looked at: counts as text */
                return -1;
        }
        while (p < e->end) {
                if (*p == '<' && p + 1 < e->end && (is_alpha(p[1]) || p[1] == '/' || p[1] == '!')) {
                        const char *gt = memchr(p, '>', (size_t) (e->end - p)), *name;
                        bool closing = p[1] == '/';
                        size_t nl = 0;

                        if (!gt)
                                break;  /* the rest is an unterminated tag */
                        name = p + (closing ? 2 : 1);
                        while (name + nl < gt && is_alnum(name[nl]))
                                nl++;
                        if (closing) {
                                if (depth > 0)
                                        depth--;
                        } else if (p[1] != '!' && gt[-1] != '/' && !is_void_element(name, nl))
                                depth++;
                        if (n > 0 && buf[n - 1] != ' ' && n < B_TEXT_MAX)
                                buf[n++] = ' ';         /* a tag separates words */
                        p = gt + 1;
                        continue;
                }
                if (*p != ' ' && depth == 0)
                        direct = true;
                if (*p == ' ' && (n == 0 || buf[n - 1] == ' ')) {
                        p++;
                        continue;
                }
                if (n >= B_TEXT_MAX)
                        too_long = true;
                else
                        buf[n++] = *p;
                p++;
        }
        while (n > 0 && buf[n - 1] == ' ')
                n--;
        *ret_direct = direct;
        return too_long ? -1 : (int) n;
}

/* NDES's thumbprint: "0123ABCD 0123ABCD 0123ABCD 0123ABCD". */
static bool is_thumbprint(const char *s, size_t n) {
        if (n != 35)
                return false;
        for (size_t i = 0; i < n; i++)
                if (i % 9 == 8 ? s[i] != ' ' : !is_hex(s[i]))
                        return false;
        return true;
}

/* PasswordLength (1..64 bytes) in hex: 2..128 hex digits, an even count. */
static bool is_challenge_hex(const char *s, size_t n) {
        if (n < 2 || n > 128 || n % 2 != 0)
                return false;
        for (size_t i = 0; i < n; i++)
                if (!is_hex(s[i]))
                        return false;
        return true;
}

typedef struct Structure {
        bool has_anchor, has_after, any_direct_text, unterminated;
        BElement after;                 /* the first hex element after the anchor */
        BElement sole;                  /* the first hex element of 8 or more digits */
        unsigned n_long;                /* hex elements of 8 or more digits, the anchor excluded */
        char thumbprint[33];
} Structure;

static void structure_scan(const Text *t, Structure *ret) {
        Structure st = {};
        BScan sc = { .t = t, .p = t->s };
        BElement e;
        char buf[B_TEXT_MAX];

        while (b_next(&sc, &e)) {
                bool direct;
                int n = b_text(&e, buf, &direct);

                st.any_direct_text = st.any_direct_text || direct;
                if (n < 0)
                        continue;
                if (is_thumbprint(buf, (size_t) n)) {
                        if (!st.has_anchor) {
                                size_t j = 0;
                                for (int i = 0; i < n; i++)
                                        if (buf[i] != ' ')
                                                st.thumbprint[j++] = lower(buf[i]);
                                st.thumbprint[j] = 0;
                                st.has_anchor = true;
                        }
                        continue;
                }
                if (!is_challenge_hex(buf, (size_t) n))
                        continue;
                if (st.has_anchor && !st.has_after) {
                        st.after = e;
                        st.has_after = true;
                }
                if (n >= 8 && st.n_long++ == 0)
                        st.sole = e;
        }
        sodium_memzero(buf, sizeof buf);
        st.unterminated = sc.unterminated;
        *ret = st;
}

/* The <B> holding the challenge, by structure: the first hex element after the thumbprint;
 * else the only hex element of 8 or more digits. */
static const BElement *structure_challenge(const Structure *st) {
        if (st->has_after)
                return &st->after;
        if (st->n_long == 1)
                return &st->sole;
        return NULL;
}

/* An attribute ID=NAME (NAME lower case; quoted or not) anywhere in the page. */
static bool has_id(const Text *t, const char *name) {
        const char *end = t->s + t->len, *p;
        size_t nl = strlen(name), from = 0;

        while ((p = ci_find(t->s, t->len, from, "id="))) {
                const char *q = p + 3;

                from = (size_t) (p - t->s) + 1;
                if (p == t->s || (p[-1] != ' ' && p[-1] != '"' && p[-1] != '\''))
                        continue;
                if (q < end && (*q == '"' || *q == '\''))
                        q++;
                if ((size_t) (end - q) >= nl && ci_find(q, nl, 0, name) == q && (q + nl == end || !is_alnum(q[nl])))
                        return true;
        }
        return false;
}

/* Microsoft's localization markup, as on every mscep_admin page. */
static bool has_ndes_markup(const Text *t) {
        return find_tag(t, t->s, "locid", false) && has_id(t, "locmscertsrv") && has_id(t, "locpagetitle") &&
               has_id(t, "locpagedesc");
}

/* The number of <LI> in the first <UL> (to its </UL>, or the page's end); -1 without a <UL>. */
static int first_list_items(const Text *t) {
        const char *ul = find_tag(t, t->s, "ul", false), *close, *end;
        int n = 0;

        if (!ul)
                return -1;
        close = find_tag(t, ul + 1, "ul", true);
        end = close ? close : t->s + t->len;
        for (const char *p = ul + 1; (p = find_tag(t, p, "li", false)) && p < end; p++)
                n++;
        return n;
}

/* ---- what the page says besides the challenge ---- */

/* "will expire within N minutes": N, or 0. */
static unsigned find_validity(const Text *t) {
        static const char phrase[] = "will expire within ";
        const char *p = ci_find(t->s, t->len, 0, phrase), *end = t->s + t->len;
        unsigned v = 0, digits = 0;

        if (!p)
                return 0;
        for (p += strlen(phrase); p < end && *p >= '0' && *p <= '9'; p++) {
                if (++digits > 6)
                        return 0;
                v = v * 10 + (unsigned) (*p - '0');
        }
        if (digits == 0)
                return 0;
        if (p < end && *p == ' ')
                p++;
        return ci_find(p, (size_t) (end - p), 0, "minute") == p ? v : 0;
}

/* ---- the visible text of a page that is not recognised ---- */

typedef struct Visible {
        char *buf;              /* CHALLENGE_PAGE_TEXT_MAX + 1 bytes */
        size_t len, safe;       /* safe: the last unit boundary that leaves room for "..." */
        bool pending_space, cut;
} Visible;

/* Appends one unit (a character, an escape, "[hex]"), never split; cuts with "..." once full. */
static void visible_unit(Visible *v, const char *u, size_t n) {
        size_t need = (v->pending_space ? 1 : 0) + n;

        if (v->cut)
                return;
        if (v->len + need > CHALLENGE_PAGE_TEXT_MAX) {
                v->len = v->safe;
                memcpy(v->buf + v->len, "...", 3);
                v->len += 3;
                v->cut = true;
                return;
        }
        if (v->pending_space)
                v->buf[v->len++] = ' ';
        v->pending_space = false;
        memcpy(v->buf + v->len, u, n);
        v->len += n;
        if (v->len + 3 <= CHALLENGE_PAGE_TEXT_MAX)
                v->safe = v->len;
}

static void visible_escaped(Visible *v, const char *s, size_t n) {
        static const char hexd[] = "0123456789abcdef";
        char u[16];
        size_t k = 0;

        for (size_t i = 0; i < n && k + 4 <= sizeof u; i++) {
                unsigned char c = (unsigned char) s[i];
                u[k++] = '\\';
                u[k++] = 'x';
                u[k++] = hexd[c >> 4];
                u[k++] = hexd[c & 15];
        }
        visible_unit(v, u, k);
}

/* Characters shown as they are: not C0/C1 controls, DEL, line separators, zero-width or bidi
 * formatting characters (which would let a page rearrange the log line). */
static bool is_printable_cp(uint32_t cp) {
        if (cp < 0x20 || (cp >= 0x7f && cp < 0xa0))
                return false;
        if ((cp >= 0x200b && cp <= 0x200f) || (cp >= 0x2028 && cp <= 0x202e) || (cp >= 0x2060 && cp <= 0x206f) ||
            cp == 0xfeff || (cp >= 0xfff9 && cp <= 0xfffb))
                return false;
        return true;
}

static void visible_text(const Text *t, char out[static CHALLENGE_PAGE_TEXT_MAX + 1]) {
        Visible v = { .buf = out };
        const char *s = t->s, *end = t->s + t->len;
        bool in_head = false, in_script = false, in_b = false;

        while (s < end) {
                if (*s == '<' && s + 1 < end && (is_alpha(s[1]) || s[1] == '/' || s[1] == '!' || s[1] == '?')) {
                        const char *gt = memchr(s, '>', (size_t) (end - s));
                        bool closing = s[1] == '/';

                        if (!gt)
                                break;          /* an unterminated tag: nothing visible after it */
                        if (tag_is(s, end, "head", closing))
                                in_head = !closing;
                        else if (tag_is(s, end, "script", closing) || tag_is(s, end, "style", closing))
                                in_script = !closing;
                        else if (tag_is(s, end, "b", closing))
                                in_b = !closing;
                        if (v.len > 0)
                                v.pending_space = true;         /* a tag separates words */
                        s = gt + 1;
                        continue;
                }
                if (in_head || in_script) {
                        s++;
                        continue;
                }
                if (*s == ' ') {
                        if (v.len > 0)
                                v.pending_space = true;
                        s++;
                        continue;
                }
                if (is_alnum(*s)) {
                        /* A word: one that could be a challenge (or the thumbprint) is not shown. */
                        const char *w = s;
                        bool hex = true;

                        while (s < end && is_alnum(*s)) {
                                hex = hex && is_hex(*s);
                                s++;
                        }
                        if (hex && (s - w >= 8 || (in_b && s - w >= 2)))
                                visible_unit(&v, "[hex]", 5);
                        else
                                for (const char *c = w; c < s; c++)
                                        visible_unit(&v, c, 1);
                        continue;
                }
                {
                        uint32_t cp;
                        size_t k = utf8_sequence((const uint8_t *) s, (size_t) (end - s), &cp);

                        if (k == 0)
                                visible_escaped(&v, s, 1);
                        else if (cp == '\\' || !is_printable_cp(cp))
                                visible_escaped(&v, s, k);
                        else
                                visible_unit(&v, s, k);
                        s += k == 0 ? 1 : k;
                }
        }
        out[v.len] = 0;
}

/* ---- parsing ---- */

/* What the decoded page t (its structure st) is: CHALLENGE_PAGE_FOUND with the challenge's text
 * in *ret_start and *ret_len (in t, or copied into buf), or the page's other kinds; info gets what
 * the page says beside it. */
static int classify(const Text *t, const Structure *st, ChallengePageInfo *info, char buf[static B_TEXT_MAX],
                    const char **ret_start, size_t *ret_len) {
        const BElement *e;

        /* NDES's English sentences first. */
        if (find_labelled(t, ret_start, ret_len))
                return CHALLENGE_PAGE_FOUND;
        if (ci_find(t->s, t->len, 0, "the password cache is full"))
                return CHALLENGE_PAGE_CACHE_FULL;
        if (ci_find(t->s, t->len, 0, "you do not have sufficient permission to enroll with scep"))
                return CHALLENGE_PAGE_NO_PERMISSION;

        /* Then the structure, in any language. */
        e = structure_challenge(st);
        if (e) {
                bool direct;
                int n = b_text(e, buf, &direct);

                /* structure_scan() took the same text */
                info->by_structure = true;
                *ret_start = buf;
                *ret_len = n > 0 ? (size_t) n : 0;
                return CHALLENGE_PAGE_FOUND;
        }
        if (has_ndes_markup(t) && !st->any_direct_text && !st->unterminated) {
                int items = first_list_items(t);

                if (items == 3) {
                        info->by_structure = true;
                        return CHALLENGE_PAGE_CACHE_FULL;
                }
                if (items < 0) {
                        info->by_structure = true;
                        return CHALLENGE_PAGE_NO_PERMISSION;
                }
        }
        visible_text(t, info->text);
        return CHALLENGE_PAGE_UNRECOGNIZED;
}

int challenge_page_parse_info(const uint8_t *body, size_t size, ChallengeSecret **ret_secret,
                              ChallengePageInfo *ret_info) {
        ChallengePageInfo info = {};
        Structure st;
        Text t = {};
        Encoding enc;
        const char *start = NULL;
        char buf[B_TEXT_MAX];
        size_t len = 0;
        int r;

        if (!body && size > 0)
                return -EINVAL;
        if (size > CHALLENGE_PAGE_SIZE_MAX) {
                if (ret_info)
                        *ret_info = info;
                return CHALLENGE_PAGE_UNRECOGNIZED;
        }

        r = decode(body ? body : (const uint8_t *) "", size, &t, &enc);
        if (r < 0)
                return r;
        info.encoding = encoding_name(enc);
        structure_scan(&t, &st);
        memcpy(info.thumbprint, st.thumbprint, sizeof info.thumbprint);
        info.multi_use = ci_find(t.s, t.len, 0, "this password can be used multiple times") != NULL;
        info.validity_minutes = find_validity(&t);

        r = classify(&t, &st, &info, buf, &start, &len);
        if (r == CHALLENGE_PAGE_FOUND && ret_secret) {
                int k = challenge_secret_new(start, len, ret_secret);
                if (k < 0)
                        r = k;
        }
        /* The challenge's text never outlives the parse but in the secret. */
        sodium_memzero(buf, sizeof buf);
        text_wipe(&t);
        if (r >= 0 && ret_info)
                *ret_info = info;
        return r;
}

int challenge_page_parse(const uint8_t *body, size_t size, ChallengeSecret **ret_secret, const char **ret_encoding) {
        ChallengePageInfo info;
        int r;

        r = challenge_page_parse_info(body, size, ret_secret, &info);
        if (r >= 0 && ret_encoding && info.encoding)
                *ret_encoding = info.encoding;
        return r;
}
