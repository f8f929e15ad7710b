/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* An NDES server inside the engine's unit test, answering the fake HTTP client (fake-http.h):
 * GetCACaps, GetCACert and PKIOperation with real SCEP messages, and mscep_admin with one-time
 * challenges, made by the NDES emulator's
 * certificate and message code (tests/ndes/ndes-pki.c, which shares nothing with service/).
 * Each PKIOperation is answered by the next step of a script (the last step repeats). */

#include <stdbool.h>
#include <stddef.h>

#include "fake-http.h"

typedef enum FakeNdesAnswer {
        FAKE_NDES_SUCCESS,              /* CertRep SUCCESS with the issued certificate */
        FAKE_NDES_PENDING,              /* CertRep PENDING */
        FAKE_NDES_FAILURE,              /* CertRep FAILURE with step.fail_info */
        FAKE_NDES_GARBLED,              /* 200 application/x-pki-message, bytes that are no CMS */
        FAKE_NDES_TRUNCATED,            /* 200, a SUCCESS CertRep cut in half */
        FAKE_NDES_WRONG_SIGNER,         /* a SUCCESS CertRep signed by a key the CA never showed */
        FAKE_NDES_HTML,                 /* 200 text/html: IIS's error page */
        FAKE_NDES_HTTP_500,             /* 500 Internal Server Error */
        FAKE_NDES_HTTP_403,             /* 403 Forbidden */
        FAKE_NDES_HTTP_404,             /* 404: how IIS request filtering refuses a URL too long (404.15) */
        FAKE_NDES_HTTP_414,             /* 414 URI Too Long */
        FAKE_NDES_EMPTY,                /* 200 with an empty body (Windows 2012 to a POST) */
        FAKE_NDES_TIMEOUT,              /* no answer within Timeout= */
        FAKE_NDES_UNREACHABLE,          /* connection refused */
        _FAKE_NDES_ANSWER_MAX,
} FakeNdesAnswer;

typedef struct FakeNdesStep {
        FakeNdesAnswer answer;
        int fail_info;                  /* FAKE_NDES_FAILURE: 0 badAlg .. 4 badCertId */
} FakeNdesStep;

/* What mscep_admin answers. */
typedef enum FakeNdesAdmin {
        FAKE_NDES_ADMIN_CHALLENGE,      /* the page with a one-time challenge */
        FAKE_NDES_ADMIN_CACHE_FULL,     /* "The password cache is full." */
        FAKE_NDES_ADMIN_PERMISSION,     /* "You do not have sufficient permission to enroll with SCEP." */
        FAKE_NDES_ADMIN_HTTP_500,
        FAKE_NDES_ADMIN_OTHER_THUMBPRINT, /* a challenge, with the thumbprint of another CA */
        _FAKE_NDES_ADMIN_MAX,
} FakeNdesAdmin;

typedef struct FakeNdes FakeNdes;

/* A CA, an RA signing and an RA encryption certificate, made once (RSA keys). */
FakeNdes *fake_ndes_new(void);
FakeNdes *fake_ndes_free(FakeNdes *n);

/* The answers to the next PKIOperations, in order; the last repeats. Copied. Resets the
 * counters, keeps the transactions seen (a restarted broker polls them). */
void fake_ndes_script(FakeNdes *n, const FakeNdesStep *steps, size_t n_steps);

/* What mscep_admin answers from now on (FAKE_NDES_ADMIN_CHALLENGE at first). */
void fake_ndes_admin(FakeNdes *n, FakeNdesAdmin a);
/* Whether GetCACaps offers POSTPKIOperation (at first it does); without it PKIOperations
 * travel by GET. */
void fake_ndes_offer_post(FakeNdes *n, bool post);
/* Every request to host (NULL: none) is refused, as a server that is down: connection
 * refused. The server answers at every other host name under example.test, each with its own
 * challenges (a challenge is valid only at the host whose mscep_admin handed it out). */
void fake_ndes_refuse_host(FakeNdes *n, const char *host);
/* The MD5 thumbprint the admin page shows for the CA, and the one it shows with
 * FAKE_NDES_ADMIN_OTHER_THUMBPRINT, as NDES writes them (upper-case hex in groups of 8). */
const char *fake_ndes_thumbprint(const FakeNdes *n, bool other);

/* Requests seen since the last fake_ndes_script(). */
typedef struct FakeNdesCounters {
        unsigned caps, cacert, pkcsreq, certpoll, renewalreq, other;
        unsigned get;                   /* PKIOperations sent with GET (the rest: POST) */
        unsigned admin;                 /* mscep_admin pages served (each a new challenge) */
        unsigned challenge_ok;          /* PKCSReqs with a challenge mscep_admin handed out */
        unsigned challenge_bad;         /* PKCSReqs with any other challenge */
        unsigned issued;                /* certificates issued */
        unsigned unverified;            /* PKIOperations whose signature or envelope failed */
        unsigned refused;               /* requests to the host fake_ndes_refuse_host() named */
        char admin_host[64];            /* the host of the last mscep_admin page served */
        char pkioperation_host[64];     /* the host of the last PKIOperation answered */
        /* The last RenewalReq's signer certificate: its serial (lower-case hex) and whether
         * this CA issued it. */
        char renewal_signer_serial[80];
        bool renewal_signer_ours;
} FakeNdesCounters;
const FakeNdesCounters *fake_ndes_counters(const FakeNdes *n);

/* The responder for fake_http_set_responder(), userdata the FakeNdes. */
void fake_ndes_respond(const FakeHttpExchange *x, FakeHttpAnswer *ret, void *userdata);
