/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ndes-faults.h"
#include "ndes-state.h"

static const char *const step_names[_FAULT_STEP_MAX] = {
        [FAULT_STEP_CAPS] = "caps",
        [FAULT_STEP_CACERT] = "cacert",
        [FAULT_STEP_ADMIN] = "admin",
        [FAULT_STEP_PKCSREQ] = "pkcsreq",
        [FAULT_STEP_CERTPOLL] = "certpoll",
};

bool fault_spec_from_path(const char *path, char spec[FAULT_SPEC_MAX]) {
        const char *p, *end;

        if (!path || strncmp(path, "/f/", 3) != 0)
                return false;
        p = path + 3;
        end = strchr(p, '/');
        if (!end || end == p || (size_t) (end - p) >= FAULT_SPEC_MAX)
                return false;
        memcpy(spec, p, (size_t) (end - p));
        spec[end - p] = 0;
        return true;
}

bool fault_spec_tag(const char *spec, char *out, size_t size) {
        for (const char *s = spec; s && *s;) {
                size_t len = strcspn(s, ",");
                if (len > 4 && strncmp(s, "tag.", 4) == 0 && len - 4 < size) {
                        size_t n = 0;
                        for (const char *c = s + 4; c < s + len; c++) {
                                if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_", *c))
                                        return false;
                                out[n++] = *c;
                        }
                        out[n] = 0;
                        return true;
                }
                s += len;
                if (*s == ',')
                        s++;
        }
        return false;
}

/* One item "STEP.CLASS[.COUNT]" at s (up to a comma or the end): its parts. */
static int item_parse(const char *s, size_t len, FaultStep *ret_step, FaultClass *ret_class, int *ret_arg,
                      long *ret_count) {
        char buf[64], *dot1, *dot2, *cls;
        long count = -1;
        int arg = 0;
        FaultClass c;
        int step = -1;

        if (len == 0 || len >= sizeof buf)
                return -EINVAL;
        if (len > 4 && strncmp(s, "tag.", 4) == 0)
                return 1;       /* only makes the spec (and so its counters) distinct */
        memcpy(buf, s, len);
        buf[len] = 0;
        dot1 = strchr(buf, '.');
        if (!dot1)
                return -EINVAL;
        *dot1 = 0;
        cls = dot1 + 1;
        dot2 = strchr(cls, '.');
        if (dot2) {
                char *end;
                *dot2 = 0;
                errno = 0;
                count = strtol(dot2 + 1, &end, 10);
                if (errno || *end || count < 1 || count > 1000000)
                        return -EINVAL;
        }
        for (int i = 0; i < _FAULT_STEP_MAX; i++)
                if (strcmp(buf, step_names[i]) == 0)
                        step = i;
        if (step < 0)
                return -EINVAL;

        if (strcmp(cls, "html") == 0)
                c = FAULT_HTML;
        else if (strcmp(cls, "302") == 0)
                c = FAULT_REDIRECT;
        else if (strcmp(cls, "400") == 0)
                c = FAULT_400;
        else if (strcmp(cls, "403") == 0)
                c = FAULT_403;
        else if (strcmp(cls, "404") == 0)
                c = FAULT_404;
        else if (strcmp(cls, "500") == 0)
                c = FAULT_500;
        else if (strcmp(cls, "503") == 0)
                c = FAULT_503;
        else if (strcmp(cls, "timeout") == 0)
                c = FAULT_TIMEOUT;
        else if (strcmp(cls, "pending") == 0)
                c = FAULT_PENDING;
        else if (strcmp(cls, "undecryptable") == 0)
                c = FAULT_UNDECRYPTABLE;
        else if (strcmp(cls, "unknownpw") == 0)
                c = FAULT_UNKNOWN_CHALLENGE;
        else if (strcmp(cls, "hold") == 0)
                c = FAULT_HOLD;
        else if (strncmp(cls, "fail", 4) == 0 && cls[4] >= '0' && cls[4] <= '4' && !cls[5]) {
                c = FAULT_FAILINFO;
                arg = cls[4] - '0';
        } else if (strncmp(cls, "delay", 5) == 0 && cls[5] >= '1' && cls[5] <= '9') {
                char *end;
                long n = strtol(cls + 5, &end, 10);
                if (*end || n < 1 || n > 60)
                        return -EINVAL;
                c = FAULT_DELAY;
                arg = (int) n;
        } else
                return -EINVAL;
        if ((c == FAULT_FAILINFO || c == FAULT_PENDING) && step != FAULT_STEP_PKCSREQ && step != FAULT_STEP_CERTPOLL)
                return -EINVAL;
        if ((c == FAULT_UNKNOWN_CHALLENGE || c == FAULT_HOLD) && step != FAULT_STEP_PKCSREQ)
                return -EINVAL;
        if ((c == FAULT_UNDECRYPTABLE || c == FAULT_DELAY) && step != FAULT_STEP_PKCSREQ &&
            step != FAULT_STEP_CERTPOLL)
                return -EINVAL;
        *ret_step = (FaultStep) step;
        *ret_class = c;
        *ret_arg = arg;
        *ret_count = count;
        return 0;
}

/* The items of spec, one at a time: *p is the cursor (start with spec), 1 with the item's
 * parts (tags are skipped), 0 at the end, negative for an item that is not one. */
typedef struct Item {
        FaultStep step;
        FaultClass class;
        int arg;
        long count;
} Item;

static int item_next(const char **p, Item *ret) {
        while (*p && **p) {
                const char *comma = strchr(*p, ',');
                size_t len = comma ? (size_t) (comma - *p) : strlen(*p);
                int r = item_parse(*p, len, &ret->step, &ret->class, &ret->arg, &ret->count);

                *p = comma ? comma + 1 : NULL;
                if (r < 0)
                        return r;
                if (r == 0)
                        return 1;
        }
        return 0;
}

const char *fault_spec_check(const char *spec) {
        Item it;
        int r;

        for (const char *p = spec; (r = item_next(&p, &it)) != 0;)
                if (r < 0)
                        return "fault items are STEP.CLASS[.COUNT] (see ndes-faults.h)";
        return NULL;
}

/* FNV-1a of the spec and the step: the counter file's name. */
static void counter_name(const char *spec, FaultStep step, char *out, size_t size) {
        uint64_t h = 1469598103934665603ULL;
        for (const char *p = spec; *p; p++)
                h = (h ^ (unsigned char) *p) * 1099511628211ULL;
        h = (h ^ (unsigned) step) * 1099511628211ULL;
        snprintf(out, size, "fault-%016llx", (unsigned long long) h);
}

/* Counts one firing; true while the count allows it. */
static bool counter_take(const char *dir, const char *spec, FaultStep step, long count) {
        char name[64], buf[32];
        unsigned char *data = NULL;
        size_t size = 0;
        long fired = 0;
        bool fire;
        int lock;

        counter_name(spec, step, name, sizeof name);
        lock = state_lock(dir);
        if (lock < 0)
                return true;    /* cannot count: fail safe towards the fault */
        if (state_read(dir, name, 31, &data, &size) == 0) {
                char tmp[32];
                memcpy(tmp, data, size < 31 ? size : 31);
                tmp[size < 31 ? size : 31] = 0;
                fired = strtol(tmp, NULL, 10);
        }
        free(data);
        fire = fired < count;
        if (fire) {
                int n = snprintf(buf, sizeof buf, "%ld\n", fired + 1);
                (void) state_write(dir, name, buf, (size_t) n, 0644);
        }
        close(lock);
        return fire;
}

FaultClass fault_fire(const char *state_dir, const char *spec, FaultStep step, int *ret_arg) {
        Item it;
        int r;

        for (const char *p = spec; (r = item_next(&p, &it)) != 0;)
                if (r > 0 && it.step == step && (it.count < 0 || counter_take(state_dir, spec, step, it.count))) {
                        *ret_arg = it.arg;
                        return it.class;
                }
        return FAULT_NONE;
}

void fault_hold(const char *state_dir) {
        char path[4096];

        snprintf(path, sizeof path, "%s/release", state_dir);
        for (int i = 0; i < 2500 && access(path, F_OK) < 0; i++)
                usleep(100 * 1000);
}

static void reply(int status, const char *reason, const char *ctype, const char *extra_header, const char *body) {
        printf("Status: %d %s\r\n", status, reason);
        if (extra_header)
                printf("%s\r\n", extra_header);
        printf("Content-Type: %s\r\nContent-Length: %zu\r\n\r\n%s", ctype, strlen(body), body);
        fflush(stdout);
}

bool fault_answer_http(FaultClass f) {
        switch (f) {
        case FAULT_HTML:
                reply(200, "OK", "text/html", NULL,
                      "<html><head><title>Service maintenance</title></head><body><h1>Service maintenance</h1>"
                      "<p>This site is being updated. Please come back later.</p></body></html>");
                return true;
        case FAULT_REDIRECT:
                reply(302, "Found", "text/html", "Location: https://ndes.example.test/elsewhere/",
                      "<html><body>Object moved</body></html>");
                return true;
        case FAULT_400:
                reply(400, "Bad Request", "text/html", NULL, "<html><body>Bad Request</body></html>");
                return true;
        case FAULT_403:
                reply(403, "Forbidden", "text/html", NULL, "<html><body>403 - Forbidden: Access is denied.</body></html>");
                return true;
        case FAULT_404:
                /* IIS request filtering (maxQueryString): 404 with substatus 15 in the page. */
                reply(404, "Not Found", "text/html", NULL,
                      "<html><head><title>IIS 10.0 Detailed Error - 404.15 - Not Found</title></head><body>"
                      "<h3>HTTP Error 404.15 - Not Found</h3><h4>The request filtering module is configured "
                      "to deny a request where the query string is too long.</h4></body></html>");
                return true;
        case FAULT_500:
                reply(500, "Internal Server Error", "text/html", NULL,
                      "<html><body>500 - Internal server error.</body></html>");
                return true;
        case FAULT_503:
                reply(503, "Service Unavailable", "text/html", NULL,
                      "<html><body><h2>Service Unavailable</h2></body></html>");
                return true;
        case FAULT_TIMEOUT:
                /* Longer than the tests' Timeout=, shorter than Apache's own Timeout. */
                sleep(20);
                reply(504, "Gateway Timeout", "text/plain", NULL, "too late\n");
                return true;
        default:
                return false;
        }
}
