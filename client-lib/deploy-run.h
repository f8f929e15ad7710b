/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* certbrokerctl deploy (certbrokerctl(1)): keeps the certificate of DIR (or of --config's
 * file) deployed in DIR/live, renewed, and runs the reload command after each one; returns
 * when --once is done or on a fatal failure. Its own connection to certbrokerd: it may first
 * drop privileges (User=), and reconnects when the daemon or the bus goes away. */

#include "cli-util.h"

/* Returns the exit code (CLI_EXIT_*), the failure already reported. */
int deploy_run(const CliArgs *args);
