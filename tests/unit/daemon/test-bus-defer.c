/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A call that waits (for NSS, for polkit) is answered: the broker's bus layer on a private
 * dbus-daemon, its NSS look-ups through the cache's worker threads (a test NSS that counts the
 * look-ups and can be slowed down), and a caller in a child process that makes CA.Check() with
 * a 30 s timeout and reports what it got. Each case asserts that the call was deferred (the
 * broker's filter sees it dispatched again) and that it was answered with no time-out:
 *   - the first Check (nothing cached): deferred for NSS, then answered;
 *   - a Check right after one that was answered, once the cached names have gone stale: asked
 *     again, deferred again, answered;
 *   - a slow NSS (each look-up 300 ms);
 *   - a caller no rule lets use the CA: deferred for polkit (none on this bus: it is told so),
 *     answered AccessDenied. */
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <systemd/sd-bus.h>

#include "bus-util.h"
#include "caller.h"
#include "manager.h"
#include "nss-cache.h"
#include "test-broker.h"
#include "test-dbus.h"
#include "test-helpers.h"

#define OTHER_UID 65534
#define CALL_TIMEOUT_USEC (30ULL * 1000000ULL)

typedef struct Fixture {
        TestBroker broker;
        TestDbus dbus;
        Manager *m;
        sd_bus *broker_bus;
        unsigned check_dispatches;      /* Check() calls the broker's filter saw (again included) */
} Fixture;

static atomic_uint nss_lookups;
static atomic_uint nss_delay_ms;

static void nss_delay(void) {
        unsigned ms = atomic_load(&nss_delay_ms);

        atomic_fetch_add(&nss_lookups, 1);
        if (ms > 0) {
                struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long) (ms % 1000) * 1000000L };
                while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
                        ;
        }
}

static int slow_getpwuid_r(uid_t uid, struct passwd *pw, char *buf, size_t size, struct passwd **ret) {
        nss_delay();
        return getpwuid_r(uid, pw, buf, size, ret);
}

static int slow_getgrgid_r(gid_t gid, struct group *gr, char *buf, size_t size, struct group **ret) {
        nss_delay();
        return getgrgid_r(gid, gr, buf, size, ret);
}

static const CallerNss slow_nss = {
        .getpwuid_r = slow_getpwuid_r,
        .getgrgid_r = slow_getgrgid_r,
        .getgrouplist = getgrouplist,
};

static int broker_filter(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Fixture *f = userdata;

        if (sd_bus_message_is_method_call(msg, CB_CA_IFACE, "Check"))
                f->check_dispatches++;
        return 0;
}

static int setup(void **state) {
        Fixture *f = calloc(1, sizeof(*f));

        assert_non_null(f);
        test_broker_config(&f->broker, "test-bus-defer");

        atomic_store(&nss_lookups, 0);
        atomic_store(&nss_delay_ms, 0);
        caller_set_nss(&slow_nss);
        test_dbus_start(&f->dbus, "cb-defer");
        assert_int_equal(manager_new(f->broker.config_dir, f->broker.state_dir, &f->m), 0);
        assert_non_null(f->m->nss);
        f->m->stopping = true;          /* no request work starts */
        f->broker_bus = test_broker_on_bus(f->m, &f->dbus, broker_filter, f);
        *state = f;
        return 0;
}

static int teardown(void **state) {
        Fixture *f = *state;

        manager_free(f->m);             /* closes the broker's bus */
        f->broker_bus = sd_bus_unref(f->broker_bus);
        caller_set_nss(NULL);
        test_dbus_stop(&f->dbus);
        test_broker_done(&f->broker);
        free(f);
        return 0;
}

/* CA.Check(challenge=false) on corp from a child process (as uid, when that is not ours),
 * with CALL_TIMEOUT_USEC; the broker's loop runs meanwhile. Returns what the caller got: "ok
 * N" (N steps) or "error NAME: MESSAGE" (malloc()ed). */
static char *check_from_child(Fixture *f, uid_t uid) {
        char buf[4096];
        int fds[2], status = 0;
        ssize_t n;
        pid_t pid;

        assert_int_equal(pipe2(fds, O_CLOEXEC), 0);
        pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                sd_bus_error error = SD_BUS_ERROR_NULL;
                sd_bus_message *call = NULL, *reply = NULL;
                sd_bus *bus = NULL;
                FILE *out = fdopen(fds[1], "w");
                int r;

                close(fds[0]);
                if (!out)
                        _exit(125);
                if (uid != getuid() && (setgroups(0, NULL) < 0 || setresgid(uid, uid, uid) < 0 ||
                                        setresuid(uid, uid, uid) < 0))
                        _exit(126);
                if (sd_bus_new(&bus) < 0 || sd_bus_set_address(bus, f->dbus.address) < 0 ||
                    sd_bus_set_bus_client(bus, 1) < 0 || sd_bus_start(bus) < 0)
                        _exit(124);
                r = sd_bus_message_new_method_call(bus, &call, CB_BUS_NAME, CB_CA_PREFIX "/corp", CB_CA_IFACE,
                                                   "Check");
                if (r >= 0)
                        r = sd_bus_message_append(call, "a{sv}", 0);
                if (r < 0)
                        _exit(123);
                r = sd_bus_call(bus, call, CALL_TIMEOUT_USEC, &error, &reply);
                if (r < 0)
                        fprintf(out, "error %s: %s", error.name ?: "?", error.message ?: strerror(-r));
                else {
                        unsigned steps = 0;
                        const char *step, *result, *detail;
                        r = sd_bus_message_enter_container(reply, 'a', "(sss)");
                        while (r > 0 && (r = sd_bus_message_read(reply, "(sss)", &step, &result, &detail)) > 0)
                                steps++;
                        fprintf(out, "ok %u", steps);
                }
                fclose(out);
                _exit(0);
        }
        close(fds[1]);
        status = test_wait_child_running(f->m->event, pid);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
        n = read(fds[0], buf, sizeof buf - 1);
        close(fds[0]);
        assert_true(n > 0);
        buf[n] = 0;
        return strdup(buf);
}

/* Runs the loop for about ms milliseconds. */
static void run_for(Fixture *f, unsigned ms) {
        uint64_t end = monotonic_usec() + ms * 1000ULL;

        while (monotonic_usec() < end)
                assert_true(sd_event_run(f->m->event, 10000) >= 0);
}

static void assert_answered(const char *got, const char *what) {
        if (strncmp(got, "ok ", 3) != 0 || strcmp(got, "ok 0") == 0)
                fail_msg("%s: expected Check()'s steps, got: %s", what, got);
}

static void test_check_deferred_for_nss(void **state) {
        Fixture *f = *state;
        char *got;

        got = check_from_child(f, getuid());
        assert_answered(got, "the first Check");
        free(got);
        assert_true(atomic_load(&nss_lookups) >= 1);
        assert_true(f->check_dispatches >= 2);          /* deferred, then dispatched again */
        assert_int_equal(f->m->n_deferred[BUS_DEFER_NSS], 0);
}

static void test_check_after_stale_names(void **state) {
        Fixture *f = *state;
        unsigned lookups, dispatches;
        char *got;

        nss_cache_set_times(f->m->nss, 2000000ULL, 1000000ULL, NSS_CACHE_TIMEOUT_USEC);
        got = check_from_child(f, getuid());
        assert_answered(got, "the first Check");
        free(got);

        /* An identical Check at once: the names are fresh, answered without waiting. */
        lookups = atomic_load(&nss_lookups);
        dispatches = f->check_dispatches;
        got = check_from_child(f, getuid());
        assert_answered(got, "the second Check");
        free(got);
        assert_int_equal(atomic_load(&nss_lookups), lookups);
        assert_int_equal(f->check_dispatches, dispatches + 1);

        /* Once they are stale, an identical Check asks NSS again, waits, and is answered. */
        run_for(f, 2500);
        for (unsigned round = 0; round < 5; round++) {
                lookups = atomic_load(&nss_lookups);
                dispatches = f->check_dispatches;
                got = check_from_child(f, getuid());
                assert_answered(got, "a Check after the names went stale");
                free(got);
                assert_true(atomic_load(&nss_lookups) > lookups);
                assert_true(f->check_dispatches >= dispatches + 2);
                assert_int_equal(f->m->n_deferred[BUS_DEFER_NSS], 0);
                run_for(f, 2100);
        }
}

static void test_check_slow_nss(void **state) {
        Fixture *f = *state;
        char *got;

        atomic_store(&nss_delay_ms, 300);
        got = check_from_child(f, getuid());
        assert_answered(got, "a Check through a slow NSS");
        free(got);
        assert_true(f->check_dispatches >= 2);
}

static void test_check_deferred_for_polkit(void **state) {
        Fixture *f = *state;
        char *got;

        if (getuid() != 0) {
                skip();         /* the caller no rule allows needs a uid of its own */
                return;
        }
        got = check_from_child(f, OTHER_UID);
        const char *denied = "error " BROKER_ERROR_PREFIX "AccessDenied: ";
        if (strncmp(got, denied, strlen(denied)) != 0 ||
            !strstr(got, "polkit did not answer"))
                fail_msg("nobody's Check: expected AccessDenied naming polkit, got: %s", got);
        free(got);
        assert_true(f->check_dispatches >= 2);
        assert_int_equal(f->m->n_deferred[BUS_DEFER_POLKIT], 0);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_check_deferred_for_nss, setup, teardown),
                cmocka_unit_test_setup_teardown(test_check_after_stale_names, setup, teardown),
                cmocka_unit_test_setup_teardown(test_check_slow_nss, setup, teardown),
                cmocka_unit_test_setup_teardown(test_check_deferred_for_polkit, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
