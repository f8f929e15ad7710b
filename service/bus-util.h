/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdarg.h>
#include <systemd/sd-bus.h>

#include "broker-error.h"
#include "manager.h"

#define CB_MANAGER_PATH    "/org/certbroker/Broker1"
#define CB_REQUEST_PREFIX  "/org/certbroker/Broker1/request"
#define CB_CA_PREFIX       "/org/certbroker/Broker1/ca"
#define CB_MANAGER_IFACE   "org.certbroker.Broker1.Manager"
#define CB_REQUEST_IFACE   "org.certbroker.Broker1.Request"
#define CB_CA_IFACE        "org.certbroker.Broker1.CA"

#include "basic.h"

/* Set error to the D-Bus name of e (broker-error.h) with a formatted message. Returns the
 * negative errno sd-bus maps the error to. */
int bus_error_set(sd_bus_error *error, BrokerError e, const char *format, ...)
        __attribute__((format(printf, 3, 4)));

/* /org/certbroker/Broker1/request/<id> */
int bus_request_path(const char *id, char **ret);

/* Connects to the system bus, registers the objects, installs the hooks (manager.h) and owns
 * the name. */
int bus_manager_connect(Manager *m);

int bus_request_register(Manager *m);
int bus_ca_register(Manager *m);

/* The hooks (bus-manager.c installs them). PropertiesChanged with invalidations only: no
 * values reach other tenants. No ObjectManager either, for the same reason (InterfacesAdded
 * would carry values). A request that ended answers its Wait() calls. */
void bus_request_changed(Request *r);
void bus_request_gone(Request *r);
void bus_ca_changed(CaState *ca);
/* The connection unique_name left the bus: its Wait() calls are dropped (nobody to reply to). */
void bus_request_caller_gone(const char *unique_name, void *userdata);
