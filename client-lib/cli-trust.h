/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>

/* certbrokerctl trust ... and certbrokerctl metrics (cli-trust.c): their own arguments. */
bool cli_extra_handles(int argc, char *argv[]);
int cli_extra_main(int argc, char *argv[]);
