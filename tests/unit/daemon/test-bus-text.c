/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* bus-text: what is valid on the bus is what sd-bus itself accepts in a message (checked
 * against sd-bus, exhaustively for short strings); echoes are cut on character boundaries and
 * escape what is not text; escaping makes any bytes valid and leaves valid text alone. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>
#include <systemd/sd-bus.h>

#include "bus-text.h"

static sd_bus *bus;
static int peer = -1;

/* A bus object on one end of a socket pair, started (nobody answers: messages are only built). */
static int setup(void **state) {
        int fds[2];

        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, fds) < 0)
                return -1;
        peer = fds[1];
        if (sd_bus_new(&bus) < 0 || sd_bus_set_fd(bus, fds[0], fds[0]) < 0 || sd_bus_start(bus) < 0)
                return -1;
        return 0;
}

static int teardown(void **state) {
        sd_bus_close_unref(bus);
        close(peer);
        return 0;
}

/* Whether sd-bus lets s into a message as a string. */
static bool sd_bus_accepts(const char *s) {
        sd_bus_message *m = NULL;
        int r;

        assert_int_equal(sd_bus_message_new_method_call(bus, &m, NULL, "/a", "a.b", "C"), 0);
        r = sd_bus_message_append(m, "s", s);
        sd_bus_message_unref(m);
        return r >= 0;
}

static void check_agrees(const char *s) {
        bool ours = bus_text_is_valid(s), theirs = sd_bus_accepts(s);

        if (ours != theirs) {
                char hex[64] = "";
                for (size_t i = 0; s[i] && i < 16; i++)
                        snprintf(hex + strlen(hex), sizeof hex - strlen(hex), "%02x", (unsigned char) s[i]);
                fail_msg("bytes %s: bus_text_is_valid() says %d, sd-bus says %d", hex, ours, theirs);
        }
}

static void test_known_cases(void **state) {
        static const struct { const char *s; bool valid; } cases[] = {
                { "", true },
                { "web.a.example.com", true },
                { "caf\xc3\xa9", true },                       /* é */
                { "\xe2\x82\xac", true },                       /* € */
                { "\xf0\x9d\x84\x9e", true },                   /* U+1D11E */
                { "\xef\xbf\xbd", true },                       /* U+FFFD */
                { "tab\tnewline\n", true },
                { "\xc3", false },                              /* half of é */
                { "x\xc3y", false },
                { "\xc0\x80", false },                          /* overlong NUL */
                { "\xe0\x80\xaf", false },                      /* overlong '/' */
                { "\xed\xa0\x80", false },                      /* a surrogate */
                { "\xf4\x90\x80\x80", false },                  /* above U+10FFFF */
                { "\xef\xbf\xbe", false },                      /* U+FFFE */
                { "\xef\xb7\x90", false },                      /* U+FDD0 */
                { "\xf0\x9f\xbf\xbf", false },                  /* U+1FFFF */
                { "\xff", false },
                { "\xf8\x88\x80\x80\x80", false },              /* 5 bytes */
                { "\xe2\x82", false },                          /* € cut */
        };
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
                assert_int_equal(bus_text_is_valid(cases[i].s), cases[i].valid);
                check_agrees(cases[i].s);
        }
}

/* Every string of one and two bytes, every three-byte string led by 0xe0..0xf4 (and 0xc0..0xdf
 * followed by anything), and a sample of four-byte ones: we and sd-bus agree on each. */
static void test_agrees_with_sd_bus(void **state) {
        char s[5] = {};
        uint32_t x = 2463534242u;

        for (unsigned a = 1; a < 256; a++) {
                s[0] = (char) a;
                s[1] = 0;
                check_agrees(s);
                for (unsigned b = 1; b < 256; b++) {
                        s[1] = (char) b;
                        s[2] = 0;
                        check_agrees(s);
                }
        }
        for (unsigned a = 0xc0; a <= 0xf4; a++)
                for (unsigned b = 0x70; b < 0xd0; b++)
                        for (unsigned c = 0x70; c < 0xd0; c++) {
                                s[0] = (char) a;
                                s[1] = (char) b;
                                s[2] = (char) c;
                                s[3] = 0;
                                check_agrees(s);
                        }
        for (unsigned i = 0; i < 200000; i++) {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                s[0] = (char) (0xf0 + (x & 7));
                s[1] = (char) (0x80 + ((x >> 3) & 0x3f));
                s[2] = (char) (0x80 + ((x >> 9) & 0x3f));
                s[3] = (char) ((x >> 15) & 1 ? 0x80 + ((x >> 16) & 0x3f) : 1 + ((x >> 16) & 0xfe));
                s[4] = 0;
                check_agrees(s);
        }
}

static void test_echo_cut_on_characters(void **state) {
        char buf[BUS_TEXT_ECHO_SIZE(64)], in[128];

        /* 63 ASCII bytes, then a two-byte character that would end past 64: cut before it. */
        memset(in, 'o', 63);
        strcpy(in + 63, "\xc3\xa9pppppp");
        bus_text_echo(in, 64, buf, sizeof buf);
        assert_int_equal(strlen(buf), 66);
        assert_memory_equal(buf, in, 63);
        assert_string_equal(buf + 63, "...");
        assert_true(sd_bus_accepts(buf));

        /* Exactly 64 bytes of whole characters: no cut. */
        memset(in, 'o', 62);
        strcpy(in + 62, "\xc3\xa9");
        bus_text_echo(in, 64, buf, sizeof buf);
        assert_string_equal(buf, in);

        /* Short text as it is; NULL as "". */
        assert_string_equal(bus_text_echo("corp", 64, buf, sizeof buf), "corp");
        assert_string_equal(bus_text_echo(NULL, 64, buf, sizeof buf), "");
}

static void test_echo_escapes(void **state) {
        char buf[BUS_TEXT_ECHO_SIZE(32)];

        assert_string_equal(bus_text_echo("\xc3", 32, buf, sizeof buf), "\\xc3");
        assert_string_equal(bus_text_echo("\xc3\xa9\xff", 32, buf, sizeof buf), "\xc3\xa9\\xff");
        assert_string_equal(bus_text_echo("a\nb\\c\x7f", 32, buf, sizeof buf), "a\\x0ab\\x5cc\\x7f");
        /* An escape is never cut: 30 bytes, then one that needs 4 more than the 2 left. */
        char in[40];
        memset(in, 'x', 30);
        strcpy(in + 30, "\xff");
        bus_text_echo(in, 32, buf, sizeof buf);
        assert_memory_equal(buf, in, 30);
        assert_string_equal(buf + 30, "...");
        /* A buffer smaller than max + 4: max shrinks to fit. */
        char small[8];
        bus_text_echo("abcdefghijkl", 64, small, sizeof small);
        assert_string_equal(small, "abcd...");
}

static void test_escape(void **state) {
        static const char *const in[] = { "", "plain", "caf\xc3\xa9\n\\", "\xc3", "a\xff\xfe" "b\xed\xa0\x80",
                                          "\xef\xbf\xbe\xe2\x82" };
        static const char *const want[] = { "", "plain", "caf\xc3\xa9\n\\", "\\xc3", "a\\xff\\xfe" "b\\xed\\xa0\\x80",
                                            "\\xef\\xbf\\xbe\\xe2\\x82" };

        for (size_t i = 0; i < sizeof in / sizeof in[0]; i++) {
                size_t size = bus_text_escaped_size(in[i]);
                char *buf = malloc(size);
                assert_non_null(buf);
                assert_string_equal(bus_text_escape(in[i], buf, size), want[i]);
                assert_int_equal(strlen(buf) + 1, size);
                assert_true(sd_bus_accepts(buf));
                free(buf);
        }
}

/* Any bytes at all, escaped or echoed, are accepted by sd-bus. */
static void test_anything_becomes_valid(void **state) {
        uint32_t x = 88172645u;
        char in[48], esc[4 * 48 + 1], echo[BUS_TEXT_ECHO_SIZE(20)];

        for (unsigned i = 0; i < 100000; i++) {
                size_t n = 1 + i % 47;
                for (size_t j = 0; j < n; j++) {
                        x ^= x << 13;
                        x ^= x >> 17;
                        x ^= x << 5;
                        in[j] = (char) (1 + x % 255);
                }
                in[n] = 0;
                assert_true(bus_text_escaped_size(in) <= sizeof esc);
                bus_text_escape(in, esc, sizeof esc);
                if (!sd_bus_accepts(esc))
                        fail_msg("escaped text refused by sd-bus");
                if (bus_text_is_valid(in))
                        assert_string_equal(esc, in);
                bus_text_echo(in, 20, echo, sizeof echo);
                assert_true(strlen(echo) <= 23);
                if (!sd_bus_accepts(echo))
                        fail_msg("echoed text refused by sd-bus");
        }
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_known_cases),
                cmocka_unit_test(test_agrees_with_sd_bus),
                cmocka_unit_test(test_echo_cut_on_characters),
                cmocka_unit_test(test_echo_escapes),
                cmocka_unit_test(test_escape),
                cmocka_unit_test(test_anything_becomes_valid),
        };
        return cmocka_run_group_tests(tests, setup, teardown);
}
