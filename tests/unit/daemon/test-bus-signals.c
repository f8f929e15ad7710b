/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A request's PropertiesChanged reaches its owner whoever's call the broker is answering when
 * the request changes. On a private dbus-daemon: the broker's bus layer (the real Request
 * objects, their access check), the owner's listener, and a second caller of another uid
 * (nobody, through busctl) whose Cancel() of its own request changes the owner's request on the
 * way, as the engine's cascades do (a challenge slot or a key given back lets a waiting request
 * go on inside the call that freed it): a filter on the broker's connection announces the
 * change while that call is the current message. The signal must arrive; the other caller
 * must still be refused the owner's request. */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <systemd/sd-bus.h>

#include "bus-util.h"
#include "caller.h"
#include "manager.h"
#include "request.h"
#include "test-broker.h"
#include "test-dbus.h"
#include "test-helpers.h"

#define OWNER_UID 2001
#define OTHER_UID 65534

typedef struct Fixture {
        TestBroker broker;
        TestDbus dbus;
        Manager *m;
        sd_bus *broker_bus, *listener;
        Request *mine, *theirs;
        char *mine_path, *theirs_path;
        unsigned signals;               /* PropertiesChanged of mine seen by the listener */
        unsigned cascades;              /* the filter announced mine inside the other's call */
        bool enrolled;
} Fixture;

static const char *user_name(void) {
        struct passwd *pw = getpwuid(getuid());
        assert_non_null(pw);
        return pw->pw_name;
}

static int on_properties_changed(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Fixture *f = userdata;

        if (strcmp(sd_bus_message_get_path(msg) ?: "", f->mine_path) == 0)
                f->signals++;
        return 0;
}

/* Stands for the engine's cascades: while the other caller's Cancel() is the current message,
 * the owner's request changes (request_notify(), as every commit does). */
static int broker_filter(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Fixture *f = userdata;

        if (f->mine && sd_bus_message_is_method_call(msg, CB_REQUEST_IFACE, "Cancel") &&
            strcmp(sd_bus_message_get_path(msg) ?: "", f->theirs_path ?: "") == 0) {
                assert_ptr_equal(sd_bus_get_current_message(f->broker_bus), msg);
                request_notify(f->mine);
                f->cascades++;
        }
        return 0;
}

static void on_enrolled(Request *r, int error, void *userdata) {
        Fixture *f = userdata;

        assert_int_equal(error, 0);
        f->enrolled = true;
}

static Request *enroll_for(Fixture *f, uid_t owner, const char *name) {
        const char *names[] = { name };
        CbCaller caller = { .uid = getuid(), .user_name = user_name() };
        CbRequestSpec spec = { .names = names, .n_names = 1, .key = "ec:p256" };
        CbDecision d = {};
        Request *r = NULL;

        assert_int_equal(cb_policy_decide(f->m->config, &caller, &spec, NULL, &d), 0);
        assert_true(d.allowed);
        f->enrolled = false;
        assert_int_equal(request_enroll(f->m, owner, "", &d, false, NULL, on_enrolled, f, &r), 0);
        cb_decision_done(&d);
        for (unsigned i = 0; i < 500 && !f->enrolled; i++)
                assert_true(sd_event_run(f->m->event, 10000) >= 0);
        assert_true(f->enrolled);
        return r;
}

static int setup(void **state) {
        Fixture *f = calloc(1, sizeof(*f));
        char match[256];

        assert_non_null(f);
        test_broker_config(&f->broker, "test-bus-signals");

        test_dbus_start(&f->dbus, "cb-signals");
        assert_int_equal(manager_new(f->broker.config_dir, f->broker.state_dir, &f->m), 0);
        f->m->stopping = true;          /* nothing is started: the requests change only as told */
        f->broker_bus = test_broker_on_bus(f->m, &f->dbus, broker_filter, f);

        f->mine = enroll_for(f, OWNER_UID, "mine.a.example.test");
        f->theirs = enroll_for(f, OTHER_UID, "theirs.a.example.test");
        assert_int_equal(bus_request_path(f->mine->rec->id, &f->mine_path), 0);
        assert_int_equal(bus_request_path(f->theirs->rec->id, &f->theirs_path), 0);

        f->listener = test_dbus_connect(&f->dbus);
        snprintf(match, sizeof match, "type='signal',interface='org.freedesktop.DBus.Properties',"
                 "member='PropertiesChanged',path='%s'", f->mine_path);
        assert_true(sd_bus_add_match(f->listener, NULL, match, on_properties_changed, f) >= 0);
        assert_true(sd_bus_attach_event(f->listener, f->m->event, 0) >= 0);
        *state = f;
        return 0;
}

static int teardown(void **state) {
        Fixture *f = *state;

        f->listener = sd_bus_flush_close_unref(f->listener);
        manager_free(f->m);             /* closes the broker's bus */
        f->broker_bus = sd_bus_unref(f->broker_bus);
        test_dbus_stop(&f->dbus);
        test_broker_done(&f->broker);
        free(f->mine_path);
        free(f->theirs_path);
        free(f);
        return 0;
}

/* busctl as OTHER_UID: METHOD on PATH; its exit status, the loop running meanwhile. */
static int other_calls(Fixture *f, const char *path, const char *method) {
        pid_t pid = fork();
        int status = 0;

        assert_true(pid >= 0);
        if (pid == 0) {
                int null = open("/dev/null", O_RDWR | O_CLOEXEC);
                if (null >= 0)
                        dup2(null, STDOUT_FILENO);
                if (setgroups(0, NULL) < 0 || setresgid(OTHER_UID, OTHER_UID, OTHER_UID) < 0 ||
                    setresuid(OTHER_UID, OTHER_UID, OTHER_UID) < 0)
                        _exit(126);
                execlp("busctl", "busctl", "--address", f->dbus.address, "call", CB_BUS_NAME, path, CB_REQUEST_IFACE,
                       method, (char *) NULL);
                _exit(127);
        }
        status = test_wait_child_running(f->m->event, pid);
        assert_true(WIFEXITED(status));
        return WEXITSTATUS(status);
}

/* Runs the loop for about ms milliseconds (the signal travels through dbus-daemon). */
static void run_for(Fixture *f, unsigned ms) {
        for (unsigned i = 0; i < ms / 10; i++)
                assert_true(sd_event_run(f->m->event, 10000) >= 0);
}

static void test_signal_reaches_owner(void **state) {
        Fixture *f = *state;

        if (getuid() != 0) {
                skip();         /* the other caller needs a uid of its own */
                return;
        }
        run_for(f, 200);
        f->signals = 0;

        /* The other caller cancels its own request; the owner's changes meanwhile. */
        assert_int_equal(other_calls(f, f->theirs_path, "Cancel"), 0);
        assert_int_equal(f->theirs->rec->state, REQUEST_CANCELLED);
        assert_int_equal(f->cascades, 1);
        for (unsigned i = 0; i < 200 && f->signals == 0; i++)
                run_for(f, 10);
        assert_true(f->signals >= 1);

        /* Access is still decided by the call: the other caller cannot touch the owner's request. */
        assert_int_not_equal(other_calls(f, f->mine_path, "Cancel"), 0);
        assert_int_not_equal(f->mine->rec->state, REQUEST_CANCELLED);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_signal_reaches_owner, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
