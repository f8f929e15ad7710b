/* An NSS module that stands for a slow directory service (sssd waiting on a distant domain
 * controller): every look-up first sleeps for the number of milliseconds written in the file
 * named by $CB_NSS_SLOW_FILE (no file, no sleep), then answers NSS_STATUS_NOTFOUND, so the next
 * source ("files") answers. Used by tests/integration/daemon-nss.sh through an nsswitch.conf
 * ("passwd: slow files") bind-mounted in certbrokerd's own mount namespace; found through
 * LD_LIBRARY_PATH. Never installed.
 * It checks what it is told and what it did, so that a test cannot pass on a delay that never
 * happened: a control file that holds anything but a number of milliseconds (0 to 600000), one
 * it cannot read, or a sleep that ended early makes the look-up answer UNAVAIL with the error
 * (EINVAL, the read's, EINTR) and say why on stderr. With $CB_NSS_LOG each look-up is logged
 * (tests/nss-module-log.h). */
#include <errno.h>
#include <grp.h>
#include <nss.h>
#include <pwd.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/types.h>
#include <string.h>
#include <time.h>

#include "../nss-module-log.h"

#define SLOW_MS_MAX 600000L

/* Milliseconds on CLOCK_MONOTONIC, or -errno. */
static long monotonic_ms(void) {
        struct timespec ts;

        if (clock_gettime(CLOCK_MONOTONIC, &ts) < 0)
                return -errno;
        return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

/* The milliseconds the control file asks for (0 without $CB_NSS_SLOW_FILE or without the
 * file), or -errno: EINVAL for anything but a number in 0..SLOW_MS_MAX. */
static long slow_ms(void) {
        const char *path = getenv("CB_NSS_SLOW_FILE");
        char text[64], *end;
        FILE *f;
        size_t n;
        long ms;

        if (!path || !*path)
                return 0;
        f = fopen(path, "re");
        if (!f) {
                if (errno == ENOENT)
                        return 0;
                fprintf(stderr, "nss-slow: cannot read %s: %s\n", path, strerror(errno));
                return -errno;
        }
        errno = 0;
        n = fread(text, 1, sizeof text - 1, f);
        if (ferror(f)) {
                int e = errno ?: EIO;

                fclose(f);
                fprintf(stderr, "nss-slow: cannot read %s: %s\n", path, strerror(e));
                return -e;
        }
        fclose(f);
        text[n] = 0;
        errno = 0;
        ms = strtol(text, &end, 10);
        while (*end == '\n' || *end == ' ')
                end++;
        if (end == text || *end || errno || ms < 0 || ms > SLOW_MS_MAX) {
                fprintf(stderr, "nss-slow: %s holds no number of milliseconds from 0 to %ld\n", path, SLOW_MS_MAX);
                return -EINVAL;
        }
        return ms;
}

/* Logs the look-up, sleeps as asked and checks it did; then leaves the answer to the next
 * source (NOTFOUND), or answers UNAVAIL with what went wrong. */
static enum nss_status slow(const char *entry, const char *key, int *errnop) {
        long ms, t0;
        int r;

        r = nss_log("slow", entry, key);
        if (r < 0) {
                *errnop = -r;
                return NSS_STATUS_UNAVAIL;
        }
        ms = slow_ms();
        if (ms < 0) {
                *errnop = (int) -ms;
                return NSS_STATUS_UNAVAIL;
        }
        t0 = monotonic_ms();
        if (t0 < 0) {
                fprintf(stderr, "nss-slow: clock_gettime: %s\n", strerror((int) -t0));
                *errnop = (int) -t0;
                return NSS_STATUS_UNAVAIL;
        }
        if (ms > 0) {
                struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L };
                while (nanosleep(&ts, &ts) < 0)
                        if (errno != EINTR) {
                                *errnop = errno;
                                fprintf(stderr, "nss-slow: nanosleep: %s\n", strerror(errno));
                                return NSS_STATUS_UNAVAIL;
                        }
        }
        long t1 = monotonic_ms();
        if (t1 < 0) {
                fprintf(stderr, "nss-slow: clock_gettime: %s\n", strerror((int) -t1));
                *errnop = (int) -t1;
                return NSS_STATUS_UNAVAIL;
        }
        if (t1 - t0 < ms) {
                fprintf(stderr, "nss-slow: slept less than the %ld ms asked\n", ms);
                *errnop = EINTR;
                return NSS_STATUS_UNAVAIL;
        }
        *errnop = ENOENT;
        return NSS_STATUS_NOTFOUND;
}

enum nss_status _nss_slow_getpwuid_r(uid_t uid, struct passwd *pw, char *buf, size_t size, int *errnop);
enum nss_status _nss_slow_getpwnam_r(const char *name, struct passwd *pw, char *buf, size_t size, int *errnop);
enum nss_status _nss_slow_getgrgid_r(gid_t gid, struct group *gr, char *buf, size_t size, int *errnop);
enum nss_status _nss_slow_getgrnam_r(const char *name, struct group *gr, char *buf, size_t size, int *errnop);
enum nss_status _nss_slow_initgroups_dyn(const char *user, gid_t group, long *start, long *size,
                                         gid_t **groups, long limit, int *errnop);

enum nss_status _nss_slow_getpwuid_r(uid_t uid, struct passwd *pw, char *buf, size_t size, int *errnop) {
        char id[24];
        (void) pw, (void) buf, (void) size;
        return slow("getpwuid_r", nss_log_id(uid, id), errnop);
}

enum nss_status _nss_slow_getpwnam_r(const char *name, struct passwd *pw, char *buf, size_t size, int *errnop) {
        (void) pw, (void) buf, (void) size;
        return slow("getpwnam_r", name, errnop);
}

enum nss_status _nss_slow_getgrgid_r(gid_t gid, struct group *gr, char *buf, size_t size, int *errnop) {
        char id[24];
        (void) gr, (void) buf, (void) size;
        return slow("getgrgid_r", nss_log_id(gid, id), errnop);
}

enum nss_status _nss_slow_getgrnam_r(const char *name, struct group *gr, char *buf, size_t size, int *errnop) {
        (void) gr, (void) buf, (void) size;
        return slow("getgrnam_r", name, errnop);
}

enum nss_status _nss_slow_initgroups_dyn(const char *user, gid_t group, long *start, long *size,
                                         gid_t **groups, long limit, int *errnop) {
        (void) group, (void) start, (void) size, (void) groups, (void) limit;
        return slow("initgroups_dyn", user, errnop);
}
