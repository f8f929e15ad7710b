/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The pkiMessage we send (PKCSReq, CertPoll), its GET encoding, and the HTTP decisions around
 * PKIOperation. Pure: no I/O.
 *
 * pkiMessage = CMS SignedData (eContentType id-data, signer = the self-signed signer
 * certificate, which is included in `certificates`, identified by issuerAndSerialNumber)
 * over CMS EnvelopedData (key transport, PKCS#1 v1.5, to exactly one recipient: the RA
 * encryption certificate, or the CA when there is no RA) over the DER PKCS#10 (PKCSReq) or
 * IssuerAndSubject (CertPoll). Signed attributes: transactionID, messageType, senderNonce,
 * plus contentType, messageDigest and signingTime as OpenSSL adds them. */

#include <openssl/evp.h>
#include <openssl/x509.h>
#include <stdint.h>

#include "scep-caps.h"
#include "scep-result.h"

#define SCEP_NONCE_SIZE          16u
#define SCEP_TRANSACTION_ID_SIZE 65u    /* 64 hex digits + NUL */

typedef enum ScepMessageType {
        SCEP_MESSAGE_CERT_REP    = 3,
        SCEP_MESSAGE_RENEWAL_REQ = 17,
        SCEP_MESSAGE_PKCS_REQ    = 19,
        SCEP_MESSAGE_CERT_POLL   = 20,
        SCEP_MESSAGE_GET_CERT    = 21,
        SCEP_MESSAGE_GET_CRL     = 22,
} ScepMessageType;

typedef struct ScepRequestParams {
        X509_REQ *csr;          /* PKCSReq: the enveloped content. CertPoll: its subject */
        X509 *signer_cert;      /* scep_signer_cert_build(); RenewalReq: the certificate renewed */
        EVP_PKEY *signer_key;   /* the key of signer_cert */
        X509 *recipient;        /* ScepCACerts.recipient: the only recipient */
        X509 *ca;               /* ScepCACerts.ca: CertPoll's issuer name */
        ScepCipher cipher;      /* from scep_caps_choose() */
        ScepDigest digest;
} ScepRequestParams;

typedef struct ScepMessage {
        ScepMessageType type;
        uint8_t *der;           /* the pkiMessage: POST body, or GET message= before encoding */
        size_t size;
        char transaction_id[SCEP_TRANSACTION_ID_SIZE];  /* keep for the CertRep and for polls */
        uint8_t sender_nonce[SCEP_NONCE_SIZE];          /* fresh per message; keep for the CertRep */
} ScepMessage;

/* transactionID: lower-case hex SHA-256 of the DER SubjectPublicKeyInfo of the CSR's key, so
 * it is stable across polls and restarts. 0, or -EINVAL / -ENOMEM / -EIO. */
int scep_transaction_id(X509_REQ *csr, char ret[SCEP_TRANSACTION_ID_SIZE]);
/* The same from the request's key, before its CSR exists. */
int scep_transaction_id_for_key(EVP_PKEY *key, char ret[SCEP_TRANSACTION_ID_SIZE]);

/* Build a PKCSReq (type 19), RenewalReq (type 17) or CertPoll (type 20). Other types:
 * -EOPNOTSUPP. A RenewalReq is a PKCSReq signed by the certificate being renewed and its key
 * (signer_cert, signer_key: RFC 8894 3.3.1.2), with the new key in the CSR and no challenge;
 * the CA encrypts its CertRep to that certificate. A recipient without an RSA key:
 * SCEP_RESULT_NO_RECIPIENT. */
int scep_message_build(ScepMessageType type, const ScepRequestParams *p, ScepMessage **ret,
                       ScepError *ret_error);

ScepMessage *scep_message_free(ScepMessage *m);

/* The value of GET's message= parameter: standard base64 (RFC 4648 section 4, with '+', '/'
 * and '=' padding, no line breaks), percent-escaped ("+" → %2B, "/" → %2F, "=" → %3D).
 * *ret is a NUL-terminated malloc()ed string. */
int scep_message_encode_get(const uint8_t *der, size_t size, char **ret);

/* What to do with the HTTP answer to a PKIOperation. */
typedef enum ScepHttpNext {
        SCEP_HTTP_PARSE,        /* give the body to scep_certrep_parse() */
        SCEP_HTTP_RETRY_GET,    /* POST answered by an empty 200 (Windows 2012 NDES): send the
                                 * same message again with GET, and keep using GET for this CA */
} ScepHttpNext;

/* Decide from the transport used, the HTTP status and body size. url_size is the length of
 * the GET URL sent (for the 414 message; 0 for POST). Returns 0 and *ret_next, or
 * SCEP_RESULT_URI_TOO_LONG (HTTP 414 on GET; the message says the IIS limit to raise),
 * SCEP_RESULT_HTTP_STATUS (any other non-200 status, or an empty 200 answer to a GET). */
int scep_pkioperation_http_next(ScepTransport used, long http_status, size_t body_size,
                                size_t url_size, ScepHttpNext *ret_next, ScepError *ret_error);
