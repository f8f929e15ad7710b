/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* SCEP signed attributes (RFC 8894 section 3.2.1), under 2.16.840.1.113733.1.9. */
#define SCEP_OID_MESSAGE_TYPE    "2.16.840.1.113733.1.9.2"
#define SCEP_OID_PKI_STATUS      "2.16.840.1.113733.1.9.3"
#define SCEP_OID_FAIL_INFO       "2.16.840.1.113733.1.9.4"
#define SCEP_OID_SENDER_NONCE    "2.16.840.1.113733.1.9.5"
#define SCEP_OID_RECIPIENT_NONCE "2.16.840.1.113733.1.9.6"
#define SCEP_OID_TRANSACTION_ID  "2.16.840.1.113733.1.9.7"

/* Microsoft NDES: an HRESULT as decimal text, on failures. */
#define SCEP_OID_MS_HRESULT      "1.3.6.1.4.1.311.21.33"
