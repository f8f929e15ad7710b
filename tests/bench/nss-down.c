/* An NSS module that stands for a directory service whose daemon is down (sssd or winbind
 * stopped, its socket refusing connections): every look-up answers NSS_STATUS_UNAVAIL with
 * ECONNREFUSED, so getpwuid_r() and getgrgid_r() return that error instead of "not found".
 *
 * Used by tests/bench/soak.sh, which names it ("passwd: down", "group: down") in an
 * nsswitch.conf bind-mounted over /etc/nsswitch.conf in certbrokerd's own mount namespace
 * for a while; the module is found through LD_LIBRARY_PATH. Never installed. With $CB_NSS_LOG
 * each look-up is logged (tests/nss-module-log.h); a line it cannot write makes the answer's
 * error that write's instead of ECONNREFUSED. */
#include <errno.h>
#include <grp.h>
#include <nss.h>
#include <pwd.h>
#include <stddef.h>
#include <string.h>
#include <sys/types.h>

#include "../nss-module-log.h"

/* Logs the look-up, then answers as a daemon that is down. */
static enum nss_status down(const char *entry, const char *key, int *errnop) {
        int r = nss_log("down", entry, key);

        *errnop = r < 0 ? -r : ECONNREFUSED;
        return NSS_STATUS_UNAVAIL;
}

enum nss_status _nss_down_getpwuid_r(uid_t uid, struct passwd *pw, char *buf, size_t size, int *errnop);
enum nss_status _nss_down_getpwnam_r(const char *name, struct passwd *pw, char *buf, size_t size, int *errnop);
enum nss_status _nss_down_getgrgid_r(gid_t gid, struct group *gr, char *buf, size_t size, int *errnop);
enum nss_status _nss_down_getgrnam_r(const char *name, struct group *gr, char *buf, size_t size, int *errnop);
enum nss_status _nss_down_initgroups_dyn(const char *user, gid_t group, long *start, long *size,
                                         gid_t **groups, long limit, int *errnop);

enum nss_status _nss_down_getpwuid_r(uid_t uid, struct passwd *pw, char *buf, size_t size, int *errnop) {
        char id[24];
        (void) pw, (void) buf, (void) size;
        return down("getpwuid_r", nss_log_id(uid, id), errnop);
}

enum nss_status _nss_down_getpwnam_r(const char *name, struct passwd *pw, char *buf, size_t size, int *errnop) {
        (void) pw, (void) buf, (void) size;
        return down("getpwnam_r", name, errnop);
}

enum nss_status _nss_down_getgrgid_r(gid_t gid, struct group *gr, char *buf, size_t size, int *errnop) {
        char id[24];
        (void) gr, (void) buf, (void) size;
        return down("getgrgid_r", nss_log_id(gid, id), errnop);
}

enum nss_status _nss_down_getgrnam_r(const char *name, struct group *gr, char *buf, size_t size, int *errnop) {
        (void) gr, (void) buf, (void) size;
        return down("getgrnam_r", name, errnop);
}

enum nss_status _nss_down_initgroups_dyn(const char *user, gid_t group, long *start, long *size,
                                         gid_t **groups, long limit, int *errnop) {
        (void) group, (void) start, (void) size, (void) groups, (void) limit;
        return down("initgroups_dyn", user, errnop);
}
