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

/* Requests seen since the last fake_ndes_script(). */
typedef struct FakeNdesCounters {
        unsigned caps, cacert, pkcsreq, certpoll, other;
        unsigned get;                   /* PKIOperations sent with GET (the rest: POST) */
        unsigned admin;                 /* mscep_admin pages served (each a new challenge) */
        unsigned challenge_ok;          /* PKCSReqs with a challenge mscep_admin handed out */
        unsigned challenge_bad;         /* PKCSReqs with any other challenge */
        unsigned issued;                /* certificates issued */
        unsigned unverified;            /* PKIOperations whose signature or envelope failed */
} FakeNdesCounters;
const FakeNdesCounters *fake_ndes_counters(const FakeNdes *n);

/* The responder for fake_http_set_responder(), userdata the FakeNdes. */
void fake_ndes_respond(const FakeHttpExchange *x, FakeHttpAnswer *ret, void *userdata);
