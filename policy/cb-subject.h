/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Subject distinguished names in RFC 4514 string form ("CN=web.a.example.com,O=Tenant A").
 *
 * Accepted: attribute types CN, O, OU, L, ST, C (case-insensitive; stored upper case);
 * RDNs separated by ','; unescaped spaces around ',' and '=' and at the ends of values are
 * ignored; escapes per RFC 4514 ("\," "\+" "\"" "\\" "\<" "\>" "\;" "\=" "\#" "\ " and
 * "\XX" hex pairs, which must form valid UTF-8). Refused: other attribute types and OIDs,
 * multi-valued RDNs ('+'), '#'-hex values, unescaped special characters, NUL and control
 * characters, invalid UTF-8, empty values, more than one CN, more than CB_SUBJECT_RDNS_MAX
 * RDNs, inputs over CB_SUBJECT_MAX bytes. Value limits (X.520 upper bounds, which OpenSSL
 * enforces when it builds the CSR): CN, O, OU 64 bytes; L, ST 128 bytes; C exactly two
 * ASCII letters (stored upper case). The CN is a DNS name: cb_subject_check_cn() puts it
 * under the suffix guard and normalizes it (cb_policy_decide() does this).
 *
 * rdns[] keeps the order of the string. Per RFC 4514 the string lists the RDNs in reverse
 * order of the ASN.1 RDNSequence: the CSR encoder adds rdns[n_rdns - 1] first, rdns[0]
 * (usually the CN) last. */

#include <stddef.h>

#define CB_SUBJECT_MAX 1024U
#define CB_SUBJECT_RDNS_MAX 16U

typedef struct CbSubjectRdn {
        char *type;      /* "CN", "O", "OU", "L", "ST", "C" */
        char *value;     /* unescaped UTF-8; the CN normalized */
} CbSubjectRdn;

typedef struct CbSubject {
        CbSubjectRdn *rdns;
        size_t n_rdns;
        const char *cn;  /* points into rdns[], NULL when there is no CN */
} CbSubject;

/* Parses an RFC 4514 string. "" (or NULL) is refused here: the "CN=<names[0]>" default is
 * applied by cb_policy_decide(). Returns 0 and *ret, -EINVAL with *ret_reason (a static
 * string) when refused, -ENOMEM. */
int cb_subject_parse(const char *text, CbSubject **ret, const char **ret_reason);

/* Applies cb_name_normalize() (wildcards allowed syntactically: whether a wildcard CN is
 * permitted is the rule's question) to the CN, if there is one, and replaces it with its
 * normalized form. Returns 0, -EINVAL with the name guard's *ret_reason, or -ENOMEM; the
 * subject is unchanged on failure. */
int cb_subject_check_cn(CbSubject *subject, const char *suffix, const char **ret_reason);

/* Builds a one-RDN subject CN=<name>; name must already be normalized. */
int cb_subject_new_cn(const char *name, CbSubject **ret);

/* Formats the subject back to RFC 4514 text with the minimal escaping. */
int cb_subject_format(const CbSubject *subject, char **ret);

CbSubject *cb_subject_free(CbSubject *subject);
