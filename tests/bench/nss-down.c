/* An NSS module that stands for a directory service whose daemon is down (sssd or winbind
 * stopped, its socket refusing connections): every look-up answers NSS_STATUS_UNAVAIL with
 * ECONNREFUSED, so getpwuid_r() and getgrgid_r() return that error instead of "not found".
 *
 * Used by tests/bench/soak.sh, which names it ("passwd: down", "group: down") in an
 * nsswitch.conf bind-mounted over /etc/nsswitch.conf in certbrokerd's own mount namespace
 * for a while; the module is found through LD_LIBRARY_PATH. Never installed. */
#include <errno.h>
#include <grp.h>
#include <nss.h>
#include <pwd.h>
#include <stddef.h>
#include <sys/types.h>

#define DOWN(errnop)                            \
        do {                                    \
                *(errnop) = ECONNREFUSED;       \
                return NSS_STATUS_UNAVAIL;      \
        } while (0)

enum nss_status _nss_down_getpwuid_r(uid_t uid, struct passwd *pw, char *buf, size_t size, int *errnop);
enum nss_status _nss_down_getpwnam_r(const char *name, struct passwd *pw, char *buf, size_t size, int *errnop);
enum nss_status _nss_down_getgrgid_r(gid_t gid, struct group *gr, char *buf, size_t size, int *errnop);
enum nss_status _nss_down_getgrnam_r(const char *name, struct group *gr, char *buf, size_t size, int *errnop);
enum nss_status _nss_down_initgroups_dyn(const char *user, gid_t group, long *start, long *size,
                                         gid_t **groups, long limit, int *errnop);

enum nss_status _nss_down_getpwuid_r(uid_t uid, struct passwd *pw, char *buf, size_t size, int *errnop) {
        (void) uid, (void) pw, (void) buf, (void) size;
        DOWN(errnop);
}

enum nss_status _nss_down_getpwnam_r(const char *name, struct passwd *pw, char *buf, size_t size, int *errnop) {
        (void) name, (void) pw, (void) buf, (void) size;
        DOWN(errnop);
}

enum nss_status _nss_down_getgrgid_r(gid_t gid, struct group *gr, char *buf, size_t size, int *errnop) {
        (void) gid, (void) gr, (void) buf, (void) size;
        DOWN(errnop);
}

enum nss_status _nss_down_getgrnam_r(const char *name, struct group *gr, char *buf, size_t size, int *errnop) {
        (void) name, (void) gr, (void) buf, (void) size;
        DOWN(errnop);
}

enum nss_status _nss_down_initgroups_dyn(const char *user, gid_t group, long *start, long *size,
                                         gid_t **groups, long limit, int *errnop) {
        (void) user, (void) group, (void) start, (void) size, (void) groups, (void) limit;
        DOWN(errnop);
}
