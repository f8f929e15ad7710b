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
#include "test-helpers.h"

typedef BrokerDirs TestBroker;

static inline void test_broker_config(TestBroker *b, const char *prefix) {
        broker_dirs_new(b, prefix, BROKER_CA_BASE "Challenge=none\n");
}

static inline void test_broker_done(TestBroker *b) {
        broker_dirs_free(b);
}
