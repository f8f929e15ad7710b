/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdarg.h>
#include <systemd/sd-bus.h>

#include "manager.h"

#ifndef TAKE_PTR
#define TAKE_PTR(p) ({ __typeof__(p) _p_ = (p); (p) = NULL; _p_; })
#endif

/* Set error to org.certbroker.Broker1.Error.<short_name> with a formatted message. Returns the
 * negative errno sd-bus maps the error to. */
int bus_error_setf_named(sd_bus_error *error, const char *short_name, const char *format, ...)
        __attribute__((format(printf, 3, 4)));

/* /org/certbroker/Broker1/request/<id> */
int bus_request_path(const char *id, char **ret);

int bus_request_register(Manager *m);
int bus_ca_register(Manager *m);
int bus_ca_emit_changed(CaState *ca);
