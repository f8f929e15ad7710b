/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Faults the NDES emulator injects per request path, so that one lab can give every CA of a
 * broker its own misbehaving server: a CA whose URL is
 *
 *     https://ndes.example.test/f/SPEC/certsrv/mscep/mscep.dll      (AdminURL likewise)
 *
 * meets the faults SPEC names, and only those. SPEC is a comma-separated list of
 * STEP.CLASS[.COUNT] items:
 *
 *   STEP   caps, cacert, admin, pkcsreq, certpoll
 *   CLASS  html      200 text/html page (IIS error page, not the answer asked for)
 *          302       a redirect
 *          400, 403  client errors
 *          404       IIS request filtering's 404.15 ("query string too long")
 *          500, 503  server errors (503: application pool stopped)
 *          timeout   no answer for 20 s (longer than the broker's Timeout= in the tests)
 *          fail0..fail4   CertRep FAILURE with that failInfo (pkcsreq, certpoll)
 *          pending   CertRep PENDING (pkcsreq: held for approval as with pending=on, so
 *                    CertPoll finds it and `approve` issues it; certpoll: PENDING whatever)
 *          undecryptable  NDES cannot decrypt the envelope: no CertRep, HTTP 500, and the
 *                    challenge inside stays unused in the password cache (pkcsreq)
 *          delayN    the answer (work done, challenge consumed) comes N seconds late
 *          unknownpw CertRep FAILURE badMessageCheck with HRESULT 0x80070490, NDES's answer to a
 *                    challenge it does not know (after an IIS restart) (pkcsreq)
 *          hold      the answer (work done) waits until `ndes-emulator release` (or 250 s): a
 *                    client can be killed while its PKIOperation is surely at the CA (pkcsreq)
 *   COUNT  the fault fires this many times, then the server behaves; none: for ever
 *
 * An item tag.WORD does nothing but make the SPEC, and so its counters, distinct.
 *
 * Counting is per SPEC and step, under the state directory's lock (faults/). */
#pragma once

#include <stdbool.h>
#include <stddef.h>

typedef enum FaultStep {
        FAULT_STEP_CAPS,
        FAULT_STEP_CACERT,
        FAULT_STEP_ADMIN,
        FAULT_STEP_PKCSREQ,
        FAULT_STEP_CERTPOLL,
        _FAULT_STEP_MAX,
} FaultStep;

typedef enum FaultClass {
        FAULT_NONE = 0,
        FAULT_HTML,
        FAULT_REDIRECT,
        FAULT_400,
        FAULT_403,
        FAULT_404,
        FAULT_500,
        FAULT_503,
        FAULT_TIMEOUT,
        FAULT_FAILINFO,         /* arg: failInfo 0..4 */
        FAULT_PENDING,
        FAULT_UNDECRYPTABLE,
        FAULT_DELAY,            /* arg: seconds */
        FAULT_UNKNOWN_CHALLENGE,
        FAULT_HOLD,
} FaultClass;

#define FAULT_SPEC_MAX 256

/* The SPEC of a path "/f/SPEC/..." (copied to spec), or false when the path has none. */
bool fault_spec_from_path(const char *path, char spec[FAULT_SPEC_MAX]);

/* The WORD of SPEC's first tag.WORD item (at most size - 1 bytes of letters, digits, '-' and
 * '_'), copied to out: who the requester is, for the challenge log. False when SPEC has none. */
bool fault_spec_tag(const char *spec, char *out, size_t size);

/* Validates SPEC; NULL when good, else what is wrong (static text). */
const char *fault_spec_check(const char *spec);

/* Whether SPEC has a fault for step that fires now (its count taken under the lock of
 * state_dir). Returns its class (FAULT_NONE: none), *ret_arg its argument. */
FaultClass fault_fire(const char *state_dir, const char *spec, FaultStep step, int *ret_arg);

/* FAULT_HOLD: waits until the state directory has a file "release" (ndes-emulator release),
 * at most 250 s. */
void fault_hold(const char *state_dir);

/* Answers the request with an HTTP-level fault (html, 302, 4xx, 5xx, timeout). False when
 * the class is not one of those (the caller handles it). */
bool fault_answer_http(FaultClass f);
