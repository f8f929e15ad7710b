/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* A private dbus-daemon of the system type for the bus layer's unit tests: every uid may
 * connect (the socket's directory is 0755), own and call anything. */

#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <systemd/sd-bus.h>

#include "test-helpers.h"

typedef struct TestDbus {
        char dir[64], socket[96], address[128];
        pid_t pid;
} TestDbus;

/* Waits for the child pid while running the event loop e (the child calls a server on it);
 * returns the child's wait status. */
static inline int test_wait_child_running(sd_event *e, pid_t pid) {
        int status;

        for (;;) {
                pid_t q = waitpid(pid, &status, WNOHANG);
                assert_true(q >= 0);
                if (q == pid)
                        return status;
                assert_true(sd_event_run(e, 10000) >= 0);
        }
}

static inline void test_dbus_start(TestDbus *d, const char *prefix) {
        char conf[128], *text = NULL;
        FILE *f;

        snprintf(d->dir, sizeof d->dir, "/tmp/%s-XXXXXX", prefix);
        assert_non_null(mkdtemp(d->dir));
        assert_int_equal(chmod(d->dir, 0755), 0);
        snprintf(d->socket, sizeof d->socket, "%s/bus", d->dir);
        snprintf(d->address, sizeof d->address, "unix:path=%s", d->socket);
        snprintf(conf, sizeof conf, "%s/bus.conf", d->dir);
        assert_true(asprintf(&text,
                             "<!DOCTYPE busconfig PUBLIC \"-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN\"\n"
                             " \"http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd\">\n"
                             "<busconfig><type>system</type><listen>%s</listen><auth>EXTERNAL</auth>\n"
                             "<policy context=\"default\"><allow user=\"*\"/><allow own=\"*\"/>\n"
                             "<allow send_destination=\"*\" eavesdrop=\"false\"/><allow receive_sender=\"*\"/>\n"
                             "</policy></busconfig>\n", d->address) > 0);
        f = fopen(conf, "we");
        assert_non_null(f);
        assert_true(fputs(text, f) >= 0);
        assert_int_equal(fclose(f), 0);
        free(text);
        d->pid = fork();
        assert_true(d->pid >= 0);
        if (d->pid == 0) {
                int null = open("/dev/null", O_RDWR | O_CLOEXEC);
                sigset_t none;
                /* A Manager blocks the signals it handles: SIGTERM must stop this one. */
                sigemptyset(&none);
                (void) sigprocmask(SIG_SETMASK, &none, NULL);
                (void) prctl(PR_SET_PDEATHSIG, SIGTERM);        /* also when the test fails */
                if (null >= 0) {
                        dup2(null, STDIN_FILENO);
                        dup2(null, STDOUT_FILENO);
                        dup2(null, STDERR_FILENO);
                }
                execlp("dbus-daemon", "dbus-daemon", "--nofork", "--nopidfile", "--config-file", conf,
                       (char *) NULL);
                _exit(127);
        }
        for (unsigned i = 0; i < 500 && access(d->socket, F_OK) < 0; i++)
                usleep(10000);
        assert_int_equal(access(d->socket, F_OK), 0);
}

static inline void test_dbus_stop(TestDbus *d) {
        if (d->pid > 0) {
                kill(d->pid, SIGTERM);
                (void) waitpid(d->pid, NULL, 0);
                d->pid = 0;
        }
        if (d->dir[0])
                test_rm_rf(d->dir);
}

/* A client connection to it (started, Hello done). */
static inline sd_bus *test_dbus_connect(const TestDbus *d) {
        sd_bus *bus = NULL;

        assert_int_equal(sd_bus_new(&bus), 0);
        assert_true(sd_bus_set_address(bus, d->address) >= 0);
        assert_true(sd_bus_set_bus_client(bus, 1) >= 0);
        assert_true(sd_bus_start(bus) >= 0);
        return bus;
}
