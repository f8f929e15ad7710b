/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "bus-util.h"

int bus_error_set(sd_bus_error *error, BrokerError e, const char *format, ...) {
        va_list ap;
        int r;

        va_start(ap, format);
        r = sd_bus_error_setfv(error, broker_error_name(e), format, ap);
        va_end(ap);
        return r;
}

int bus_request_path(const char *id, char **ret) {
        /* Ids are 16 lowercase hex digits: valid path elements as they are. */
        if (asprintf(ret, CB_REQUEST_PREFIX "/%s", id) < 0)
                return -ENOMEM;
        return 0;
}
