/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Cleanup functions for libcertbroker's types, for _cleanup_() (basic.h): shared by the library
 * and certbrokerctl, not installed. */

#include "basic.h"
#include "certbroker.h"

DEFINE_POINTER_CLEANUP(CertbrokerClient, certbroker_close);
DEFINE_POINTER_CLEANUP(char *, certbroker_strv_free);
DEFINE_POINTER_CLEANUP(char, certbroker_secret_free);
DEFINE_POINTER_CLEANUP(CertbrokerRequestInfo, certbroker_request_info_free);
DEFINE_POINTER_CLEANUP(CertbrokerCAInfo, certbroker_ca_info_free);
DEFINE_POINTER_CLEANUP(CertbrokerRenewal, certbroker_renewal_free);
