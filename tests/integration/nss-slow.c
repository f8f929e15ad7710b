/* An NSS module that stands for a slow directory service (sssd waiting on a distant domain
 * controller): every look-up first sleeps for the number of milliseconds written in the file
 * named by $CB_NSS_SLOW_FILE (no file, no sleep), then answers NSS_STATUS_NOTFOUND, so the next
 * source ("files") answers. Used by tests/integration/daemon-nss.sh through an nsswitch.conf
 * ("passwd: slow files") bind-mounted in certbrokerd's own mount namespace; found through
 * LD_LIBRARY_PATH. Never installed. */
#include <errno.h>
#include <grp.h>
#include <nss.h>
#include <pwd.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/types.h>
#include <time.h>

static void slow(void) {
        const char *path = getenv("CB_NSS_SLOW_FILE");
        FILE *f;
        long ms = 0;

        if (!path || !(f = fopen(path, "re")))
                return;
        if (fscanf(f, "%ld", &ms) != 1)
                ms = 0;
        fclose(f);
        if (ms > 0) {
                struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L };
                while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
                        ;
        }
}

#define SLOW_NOTFOUND(errnop)                   \
        do {                                    \
                slow();                         \
                *(errnop) = ENOENT;             \
                return NSS_STATUS_NOTFOUND;     \
        } while (0)

enum nss_status _nss_slow_getpwuid_r(uid_t uid, struct passwd *pw, char *buf, size_t size, int *errnop);
enum nss_status _nss_slow_getpwnam_r(const char *name, struct passwd *pw, char *buf, size_t size, int *errnop);
enum nss_status _nss_slow_getgrgid_r(gid_t gid, struct group *gr, char *buf, size_t size, int *errnop);
enum nss_status _nss_slow_getgrnam_r(const char *name, struct group *gr, char *buf, size_t size, int *errnop);
enum nss_status _nss_slow_initgroups_dyn(const char *user, gid_t group, long *start, long *size,
                                         gid_t **groups, long limit, int *errnop);

enum nss_status _nss_slow_getpwuid_r(uid_t uid, struct passwd *pw, char *buf, size_t size, int *errnop) {
        (void) uid, (void) pw, (void) buf, (void) size;
        SLOW_NOTFOUND(errnop);
}

enum nss_status _nss_slow_getpwnam_r(const char *name, struct passwd *pw, char *buf, size_t size, int *errnop) {
        (void) name, (void) pw, (void) buf, (void) size;
        SLOW_NOTFOUND(errnop);
}

enum nss_status _nss_slow_getgrgid_r(gid_t gid, struct group *gr, char *buf, size_t size, int *errnop) {
        (void) gid, (void) gr, (void) buf, (void) size;
        SLOW_NOTFOUND(errnop);
}

enum nss_status _nss_slow_getgrnam_r(const char *name, struct group *gr, char *buf, size_t size, int *errnop) {
        (void) name, (void) gr, (void) buf, (void) size;
        SLOW_NOTFOUND(errnop);
}

enum nss_status _nss_slow_initgroups_dyn(const char *user, gid_t group, long *start, long *size,
                                         gid_t **groups, long limit, int *errnop) {
        (void) user, (void) group, (void) start, (void) size, (void) groups, (void) limit;
        SLOW_NOTFOUND(errnop);
}
