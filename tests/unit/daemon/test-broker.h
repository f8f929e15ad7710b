/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The bus layer's unit tests' broker: broker-fixture.h's, with CA "corp" not polled
 * (Challenge=none; its name does not resolve there). */

#include <pwd.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "broker-fixture.h"
#include "bus-util.h"
#include "caller.h"
#include "manager.h"
#include "test-dbus.h"
#include "test-helpers.h"

typedef BrokerDirs TestBroker;

static inline void test_broker_config(TestBroker *b, const char *prefix) {
        broker_dirs_new(b, prefix, BROKER_CA_BASE "Challenge=none\n");
}

static inline void test_broker_done(TestBroker *b) {
        broker_dirs_free(b);
}

/* Puts the manager m on the private bus d as the broker: a connection with the Manager's
 * objects and the caller registry attached, filter (with userdata) seeing every message, the
 * bus name owned, dispatched by m's event loop. Returns the connection. */
static inline sd_bus *test_broker_on_bus(Manager *m, TestDbus *d, sd_bus_message_handler_t filter, void *userdata) {
        sd_bus *bus = test_dbus_connect(d);

        assert_true(bus_manager_attach(m, bus) >= 0);
        assert_true(caller_registry_attach(m->callers, bus) >= 0);
        assert_true(sd_bus_add_filter(bus, NULL, filter, userdata) >= 0);
        assert_true(sd_bus_request_name(bus, CB_BUS_NAME, 0) >= 0);
        assert_true(sd_bus_attach_event(bus, m->event, 0) >= 0);
        return bus;
}
