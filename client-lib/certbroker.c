/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* libcertbroker: the D-Bus API of certbrokerd (org.certbroker.Broker1) as C calls on sd-bus.
 * Library code: it never logs; every failure goes back as a negative errno plus a
 * CertbrokerError naming what was wrong. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <systemd/sd-bus.h>

#include "basic.h"
#include "certbroker.h"
#include "certbroker-cleanup.h"

#define _public_ __attribute__((visibility("default")))

#define MANAGER_IFACE   "org.certbroker.Broker1.Manager"
#define REQUEST_IFACE   "org.certbroker.Broker1.Request"
#define CA_IFACE        "org.certbroker.Broker1.CA"
#define REQUEST_PREFIX  "/org/certbroker/Broker1/request"
#define CA_PREFIX       "/org/certbroker/Broker1/ca"
#define PROPERTIES_IFACE "org.freedesktop.DBus.Properties"
#define REQUEST_ID_LEN  16

/* certbroker_wait() follows the request's PropertiesChanged signals; it also waits in
 * Request.Wait() slices of at most this long and re-reads the request after each, so that
 * progress is still reported (late) when signals do not arrive. The margin: how much longer
 * than the slice the bus call may take before it counts as unanswered. */
#define WAIT_SLICE_USEC         (5ULL * 1000000ULL)
#define WAIT_CALL_MARGIN_USEC   (15ULL * 1000000ULL)
/* Calls that do network work in the daemon (CA.Check) may take several HTTP timeouts. */
#define CHECK_CALL_TIMEOUT_USEC (300ULL * 1000000ULL)

struct CertbrokerClient {
        sd_bus *bus;
};

/* ---- errors ---- */

static const struct {
        const char *name;
        int errnum;
} error_map[] = {
        { CERTBROKER_ERROR_ACCESS_DENIED,         EACCES },
        { CERTBROKER_ERROR_NAME_NOT_PERMITTED,    EPERM },
        { CERTBROKER_ERROR_UNKNOWN_CA,            ENXIO },
        { CERTBROKER_ERROR_INVALID_ARGUMENT,      EINVAL },
        { CERTBROKER_ERROR_KEY_NOT_PERMITTED,     EPERM },
        { CERTBROKER_ERROR_QUOTA_EXCEEDED,        EDQUOT },
        { CERTBROKER_ERROR_NO_SUCH_REQUEST,       ENOENT },
        { CERTBROKER_ERROR_NOT_READY,             EBUSY },
        { CERTBROKER_ERROR_KEY_ALREADY_TAKEN,     ENOKEY },
        { CERTBROKER_ERROR_INVALID_CONFIGURATION, EBADMSG },
};

_public_ void certbroker_error_clear(CertbrokerError *error) {
        if (!error)
                return;
        free(error->name);
        free(error->message);
        *error = CERTBROKER_ERROR_NULL;
}

_public_ bool certbroker_error_has_name(const CertbrokerError *error, const char *name) {
        return error && error->name && name && strcmp(error->name, name) == 0;
}

/* Fills *error (when given and still empty) with name (may be NULL) and a formatted
 * message; returns r (negative). */
static int error_setf(CertbrokerError *error, int r, const char *name, const char *format, ...)
        __attribute__((format(printf, 4, 5)));
static int error_setf(CertbrokerError *error, int r, const char *name, const char *format, ...) {
        va_list ap;
        char *msg = NULL;

        if (r >= 0)
                r = -EIO;
        if (!error || error->error != 0 || error->message)
                return r;
        va_start(ap, format);
        if (vasprintf(&msg, format, ap) < 0)
                msg = NULL;
        va_end(ap);
        error->name = name ? strdup(name) : NULL;
        error->message = msg;
        error->error = r;
        return r;
}

static int error_oom(CertbrokerError *error) {
        return error_setf(error, -ENOMEM, NULL, "Out of memory.");
}

/* A failed bus call: the daemon's (or the bus's) error name and message. */
static int error_from_bus(CertbrokerError *error, const sd_bus_error *e, int r, const char *what) {
        if (!sd_bus_error_is_set(e)) {
                if (r >= 0)
                        r = -EIO;
                return error_setf(error, r, NULL, "%s: %s", what, strerror(-r));
        }

        for (size_t i = 0; i < ELEMENTSOF(error_map); i++)
                if (strcmp(e->name, error_map[i].name) == 0) {
                        r = -error_map[i].errnum;
                        break;
                }
        if (r >= 0 || r == -EIO) {
                int k = sd_bus_error_get_errno(e);
                if (k > 0)
                        r = -k;
        }
        if (sd_bus_error_has_names(e, SD_BUS_ERROR_SERVICE_UNKNOWN, SD_BUS_ERROR_NAME_HAS_NO_OWNER))
                return error_setf(error, r, e->name,
                                  "certbrokerd is not running: %s is not on the system bus (%s). "
                                  "Start it with 'systemctl start certbrokerd'.",
                                  CERTBROKER_BUS_NAME, e->message ?: e->name);
        return error_setf(error, r, e->name, "%s", e->message ?: e->name);
}

/* A call on a CA object that failed because there is no such object: the daemon has no CA of
 * that name. Any other failure stays as it is. */
static int error_unknown_ca(CertbrokerError *error, int r, const char *ca, const char *other_name) {
        if (!certbroker_error_has_name(error, SD_BUS_ERROR_UNKNOWN_OBJECT) &&
            !certbroker_error_has_name(error, other_name))
                return r;
        certbroker_error_clear(error);
        return error_setf(error, -ENXIO, CERTBROKER_ERROR_UNKNOWN_CA,
                          "No CA '%.100s' is configured (see 'certbrokerctl cas').", ca);
}

/* ---- paths ---- */

static bool request_id_is_valid(const char *id, size_t len) {
        if (len != REQUEST_ID_LEN)
                return false;
        for (size_t i = 0; i < len; i++)
                if (!((id[i] >= '0' && id[i] <= '9') || (id[i] >= 'a' && id[i] <= 'f')))
                        return false;
        return true;
}

/* The object path of a request given as an id or a path. */
static int request_path(const char *request, char **ret, CertbrokerError *error) {
        const char *id = request;
        char *p;

        if (!request)
                return error_setf(error, -EINVAL, NULL, "No request id given.");
        if (request[0] == '/') {
                size_t n = strlen(REQUEST_PREFIX);
                if (strncmp(request, REQUEST_PREFIX, n) != 0 || request[n] != '/')
                        return error_setf(error, -EINVAL, NULL,
                                          "'%.300s' is not a request object path (%s/<id>).",
                                          request, REQUEST_PREFIX);
                id = request + n + 1;
        }
        if (!request_id_is_valid(id, strlen(id)))
                return error_setf(error, -EINVAL, NULL,
                                  "'%.300s' is not a request id: ids are 16 lowercase hex digits "
                                  "(see 'certbrokerctl list').", request);
        if (asprintf(&p, REQUEST_PREFIX "/%s", id) < 0)
                return error_oom(error);
        *ret = p;
        return 0;
}

/* The id at the end of a path request_path() made. */
static const char *request_path_id(const char *path) {
        return path + strlen(REQUEST_PREFIX) + 1;
}

static int ca_path(const char *ca, char **ret, CertbrokerError *error) {
        int r;

        if (!ca || !*ca)
                return error_setf(error, -EINVAL, NULL, "No CA name given (see 'certbrokerctl cas').");
        r = sd_bus_path_encode(CA_PREFIX, ca, ret);
        if (r < 0)
                return error_setf(error, r, NULL, "Cannot build the object path of CA '%.100s': %s",
                                  ca, strerror(-r));
        return 0;
}

/* ---- connection ---- */

_public_ int certbroker_open(CertbrokerClient **ret, CertbrokerError *error) {
        _cleanup_(certbroker_closep) CertbrokerClient *c = NULL;
        int r;

        if (!ret)
                return error_setf(error, -EINVAL, NULL, "certbroker_open: ret is NULL.");
        c = calloc(1, sizeof(*c));
        if (!c)
                return error_oom(error);
        r = sd_bus_open_system(&c->bus);
        if (r < 0) {
                const char *addr = getenv("DBUS_SYSTEM_BUS_ADDRESS");
                return error_setf(error, r, NULL,
                                  "Cannot connect to the system bus (%s): %s. Is dbus running?",
                                  addr ?: "unix:path=/run/dbus/system_bus_socket", strerror(-r));
        }
        /* From a terminal, a method polkit authorizes (Reload, another user's request) may ask
         * for a password through the session's polkit agent. */
        if (isatty(STDIN_FILENO))
                (void) sd_bus_set_allow_interactive_authorization(c->bus, true);
        *ret = TAKE_PTR(c);
        return 0;
}

_public_ CertbrokerClient *certbroker_close(CertbrokerClient *client) {
        if (!client)
                return NULL;
        sd_bus_flush_close_unref(client->bus);
        free(client);
        return NULL;
}

/* ---- small helpers ---- */

static int strdup_out(const char *s, char **ret) {
        char *d = strdup(s ?: "");
        if (!d)
                return -ENOMEM;
        *ret = d;
        return 0;
}

/* Makes room for n + 1 elements of size bytes in *array (which has room for n). */
static int array_grow(void *array, size_t n, size_t size) {
        void **p = array, *a;

        if (n >= SIZE_MAX / size - 1)
                return -ENOMEM;
        a = realloc(*p, (n + 1) * size);
        if (!a)
                return -ENOMEM;
        *p = a;
        return 0;
}

_public_ char **certbroker_strv_free(char **strv) {
        if (!strv)
                return NULL;
        for (char **s = strv; *s; s++)
                free(*s);
        free(strv);
        return NULL;
}

/* Reads an array of string-like values (signature "s" or "(so)": the first member is taken)
 * into a NULL-terminated array. */
static int read_strv_of(sd_bus_message *m, const char *element, char ***ret) {
        _cleanup_(certbroker_strv_freep) char **l = NULL;
        size_t n = 0;
        int r;

        r = sd_bus_message_enter_container(m, 'a', element);
        if (r < 0)
                return r;
        l = calloc(1, sizeof(char *));
        if (!l)
                return -ENOMEM;
        for (;;) {
                const char *s, *ignored;

                r = element[0] == '(' ? sd_bus_message_read(m, element, &s, &ignored) :
                                        sd_bus_message_read(m, element, &s);
                if (r < 0)
                        return r;
                if (r == 0)
                        break;
                r = array_grow(&l, n + 1, sizeof(char *));
                if (r < 0)
                        return r;
                l[n + 1] = NULL;
                l[n] = strdup(s);
                if (!l[n])
                        return -ENOMEM;
                n++;
        }
        r = sd_bus_message_exit_container(m);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(l);
        return 0;
}

static int get_property_string(CertbrokerClient *c, const char *path, const char *iface,
                               const char *property, char **ret, CertbrokerError *error) {
        _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
        int r;

        r = sd_bus_get_property_string(c->bus, CERTBROKER_BUS_NAME, path, iface, property, &e, ret);
        if (r < 0)
                return error_from_bus(error, &e, r, "Cannot read a property");
        return 0;
}

/* Sends the call m and waits for the reply; a D-Bus error becomes *error named after
 * member. *ret_reply may be NULL. */
static int call_message(CertbrokerClient *c, sd_bus_message *m, const char *member, uint64_t timeout_usec,
                        sd_bus_message **ret_reply, CertbrokerError *error) {
        _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        int r;

        r = sd_bus_call(c->bus, m, timeout_usec, &e, &reply);
        if (r < 0)
                return error_from_bus(error, &e, r, member);
        if (ret_reply)
                *ret_reply = TAKE_PTR(reply);
        return 0;
}

/* A new method call on path's iface; a failure becomes *error. */
static int new_method_call(CertbrokerClient *c, const char *path, const char *iface, const char *member,
                           sd_bus_message **ret, CertbrokerError *error) {
        int r;

        r = sd_bus_message_new_method_call(c->bus, ret, CERTBROKER_BUS_NAME, path, iface, member);
        if (r < 0)
                return error_setf(error, r, NULL, "Cannot build the %s() call: %s", member, strerror(-r));
        return 0;
}

static int call_method(CertbrokerClient *c, const char *path, const char *iface, const char *member,
                       uint64_t timeout_usec, sd_bus_message **ret_reply, CertbrokerError *error,
                       const char *types, ...) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        va_list ap;
        int r;

        r = new_method_call(c, path, iface, member, &m, error);
        if (r < 0)
                return r;
        if (types) {
                va_start(ap, types);
                r = sd_bus_message_appendv(m, types, ap);
                va_end(ap);
                if (r < 0)
                        return error_setf(error, r, NULL, "Cannot build the %s() call: %s",
                                          member, strerror(-r));
        }
        return call_message(c, m, member, timeout_usec, ret_reply, error);
}

/* A call without arguments on a request (given as an id or a path). */
static int request_call(CertbrokerClient *client, const char *request, const char *member,
                        sd_bus_message **ret_reply, CertbrokerError *error) {
        _cleanup_free_ char *path = NULL;
        int r;

        if (!client)
                return error_setf(error, -EINVAL, NULL, "%s: NULL client.", member);
        r = request_path(request, &path, error);
        if (r < 0)
                return r;
        return call_method(client, path, REQUEST_IFACE, member, 0, ret_reply, error, NULL);
}

_public_ int certbroker_get_version(CertbrokerClient *client, char **ret_version, CertbrokerError *error) {
        if (!client || !ret_version)
                return error_setf(error, -EINVAL, NULL, "certbroker_get_version: NULL argument.");
        return get_property_string(client, CERTBROKER_MANAGER_PATH, MANAGER_IFACE, "Version",
                                   ret_version, error);
}

/* ---- Enroll / CheckAccess ---- */

static int append_spec(sd_bus_message *m, const CertbrokerRequestSpec *spec, uint64_t flags, const char *token) {
        const char *opt_names[] = { "key", "usage", "label" };
        const char *opt_values[] = { spec->key_type, spec->usage, spec->label };
        int r;

        r = sd_bus_message_append(m, "ss", spec->ca ?: "", spec->subject ?: "");
        if (r < 0)
                return r;
        r = sd_bus_message_append_strv(m, (char **) spec->names);
        if (r < 0)
                return r;
        r = sd_bus_message_open_container(m, 'a', "{sv}");
        if (r < 0)
                return r;
        for (size_t i = 0; i < ELEMENTSOF(opt_names); i++)
                if (opt_values[i]) {
                        r = sd_bus_message_append(m, "{sv}", opt_names[i], "s", opt_values[i]);
                        if (r < 0)
                                return r;
                }
        if (flags & CERTBROKER_ENROLL_RENEW) {
                r = sd_bus_message_append(m, "{sv}", "renew", "b", 1);
                if (r < 0)
                        return r;
        }
        if (flags & CERTBROKER_ENROLL_IDENTITY_SELF) {
                r = sd_bus_message_append(m, "{sv}", "identity", "s", "self");
                if (r < 0)
                        return r;
        }
        if (token) {
                r = sd_bus_message_append(m, "{sv}", "token", "s", token);
                if (r < 0)
                        return r;
        }
        return sd_bus_message_close_container(m);
}

/* Calls member (Enroll, CheckAccess) with the request's parameters. */
static int call_spec(CertbrokerClient *c, const char *member, const CertbrokerRequestSpec *spec,
                     uint64_t flags, const char *token, sd_bus_message **ret_reply, CertbrokerError *error) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        int r;

        r = new_method_call(c, CERTBROKER_MANAGER_PATH, MANAGER_IFACE, member, &m, error);
        if (r < 0)
                return r;
        r = append_spec(m, spec, flags, token);
        if (r < 0)
                return error_setf(error, r, NULL, "Cannot build the %s() call: %s (names and options "
                                  "must be valid UTF-8)", member, strerror(-r));
        return call_message(c, m, member, 0, ret_reply, error);
}

_public_ int certbroker_enroll(CertbrokerClient *client, const CertbrokerRequestSpec *spec,
                               char **ret_id, CertbrokerError *error) {
        return certbroker_enroll_flags(client, spec, 0, ret_id, error);
}

_public_ int certbroker_enroll_flags(CertbrokerClient *client, const CertbrokerRequestSpec *spec,
                                     uint64_t flags, char **ret_id, CertbrokerError *error) {
        return certbroker_enroll_token(client, spec, flags, NULL, ret_id, error);
}

/* An object path property or reply naming a request into its id; "/" (none) into "" when
 * none_ok. */
static int request_id_from_path(const char *p, bool none_ok, char **ret) {
        _cleanup_free_ char *id = NULL;
        int r;

        if (none_ok && strcmp(p, "/") == 0)
                return strdup_out("", ret);
        r = sd_bus_path_decode(p, REQUEST_PREFIX, &id);
        if (r < 0)
                return r;
        if (r == 0 || !request_id_is_valid(id, strlen(id)))
                return -EBADMSG;
        *ret = TAKE_PTR(id);
        return 0;
}

_public_ int certbroker_enroll_token(CertbrokerClient *client, const CertbrokerRequestSpec *spec,
                                     uint64_t flags, const char *token, char **ret_id, CertbrokerError *error) {
        const uint64_t known = CERTBROKER_ENROLL_RENEW | CERTBROKER_ENROLL_IDENTITY_SELF;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        const char *path;
        int r;

        if (!client || !spec || !ret_id)
                return error_setf(error, -EINVAL, NULL, "certbroker_enroll: NULL argument.");
        if (flags & ~known)
                return error_setf(error, -EINVAL, NULL, "certbroker_enroll_flags: unknown flags 0x%llx.",
                                  (unsigned long long) (flags & ~known));
        r = call_spec(client, "Enroll", spec, flags, token, &reply, error);
        if (r < 0)
                return r;
        r = sd_bus_message_read(reply, "o", &path);
        if (r < 0)
                return error_setf(error, r, NULL, "Enroll() returned an unexpected reply: %s", strerror(-r));
        r = request_id_from_path(path, false, ret_id);
        if (r < 0)
                return error_setf(error, r, NULL, "Enroll() returned an unexpected request path '%.300s': %s",
                                  path, strerror(-r));
        return 0;
}

_public_ int certbroker_check_access(CertbrokerClient *client, const CertbrokerRequestSpec *spec,
                                     char **ret_rule, char **ret_reason, CertbrokerError *error) {
        return certbroker_check_access_flags(client, spec, 0, ret_rule, ret_reason, error);
}

_public_ int certbroker_check_access_flags(CertbrokerClient *client, const CertbrokerRequestSpec *spec,
                                           uint64_t flags, char **ret_rule, char **ret_reason,
                                           CertbrokerError *error) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_free_ char *rule_copy = NULL, *reason_copy = NULL;
        const char *rule, *reason;
        int allowed, r;

        if (!client || !spec)
                return error_setf(error, -EINVAL, NULL, "certbroker_check_access: NULL argument.");
        /* CheckAccess takes Enroll's options but decides only: renew changes no decision. */
        if (flags & ~CERTBROKER_ENROLL_IDENTITY_SELF)
                return error_setf(error, -EINVAL, NULL, "certbroker_check_access_flags: unknown flags 0x%llx.",
                                  (unsigned long long) (flags & ~CERTBROKER_ENROLL_IDENTITY_SELF));
        r = call_spec(client, "CheckAccess", spec, flags, NULL, &reply, error);
        if (r < 0)
                return r;
        r = sd_bus_message_read(reply, "bss", &allowed, &rule, &reason);
        if (r < 0)
                return error_setf(error, r, NULL, "CheckAccess() returned an unexpected reply: %s",
                                  strerror(-r));
        if ((ret_rule && strdup_out(rule, &rule_copy) < 0) ||
            (ret_reason && strdup_out(reason, &reason_copy) < 0))
                return error_oom(error);
        if (ret_rule)
                *ret_rule = TAKE_PTR(rule_copy);
        if (ret_reason)
                *ret_reason = TAKE_PTR(reason_copy);
        return allowed ? 1 : 0;
}

/* ---- properties ---- */

/* How a property's variant is stored in an info struct. */
typedef enum PropertyType {
        PROPERTY_STRING,        /* "s" into a char *; "" when the daemon does not have it */
        PROPERTY_STRV,          /* "as" into a NULL-terminated char **; empty when absent */
        PROPERTY_REQUEST,       /* "o" of a request (or "/") into its id (or ""); "" when absent */
        PROPERTY_UINT64,        /* "t" into a uint64_t */
        PROPERTY_UINT32,        /* "u" into a uint32_t */
        PROPERTY_BOOL,          /* "b" into a bool */
} PropertyType;

typedef struct Property {
        const char *name;
        PropertyType type;
        size_t offset;          /* of the field in the info struct */
} Property;

static const Property request_properties[] = {
        { "Id",            PROPERTY_STRING, offsetof(CertbrokerRequestInfo, id) },
        { "CA",            PROPERTY_STRING, offsetof(CertbrokerRequestInfo, ca) },
        { "Label",         PROPERTY_STRING, offsetof(CertbrokerRequestInfo, label) },
        { "Subject",       PROPERTY_STRING, offsetof(CertbrokerRequestInfo, subject) },
        { "Key",           PROPERTY_STRING, offsetof(CertbrokerRequestInfo, key_type) },
        { "Usage",         PROPERTY_STRING, offsetof(CertbrokerRequestInfo, usage) },
        { "Names",         PROPERTY_STRV,   offsetof(CertbrokerRequestInfo, names) },
        { "Owner",         PROPERTY_UINT32, offsetof(CertbrokerRequestInfo, owner) },
        { "State",         PROPERTY_STRING, offsetof(CertbrokerRequestInfo, state) },
        { "Error",         PROPERTY_STRING, offsetof(CertbrokerRequestInfo, error_name) },
        { "ErrorMessage",  PROPERTY_STRING, offsetof(CertbrokerRequestInfo, error_message) },
        { "FailInfo",      PROPERTY_STRING, offsetof(CertbrokerRequestInfo, fail_info) },
        { "TransactionId", PROPERTY_STRING, offsetof(CertbrokerRequestInfo, transaction_id) },
        { "Certificate",   PROPERTY_STRING, offsetof(CertbrokerRequestInfo, certificate) },
        { "Chain",         PROPERTY_STRING, offsetof(CertbrokerRequestInfo, chain) },
        { "Serial",        PROPERTY_STRING, offsetof(CertbrokerRequestInfo, serial) },
        { "NotBefore",     PROPERTY_UINT64, offsetof(CertbrokerRequestInfo, not_before) },
        { "NotAfter",      PROPERTY_UINT64, offsetof(CertbrokerRequestInfo, not_after) },
        { "Created",       PROPERTY_UINT64, offsetof(CertbrokerRequestInfo, created) },
        { "Updated",       PROPERTY_UINT64, offsetof(CertbrokerRequestInfo, updated) },
        { "NextAttempt",   PROPERTY_UINT64, offsetof(CertbrokerRequestInfo, next_attempt) },
        { "Attempts",      PROPERTY_UINT32, offsetof(CertbrokerRequestInfo, attempts) },
        { "KeyAvailable",  PROPERTY_BOOL,   offsetof(CertbrokerRequestInfo, key_available) },
};

/* The certificates are read by certbrokerctl trust, not here. */
static const Property ca_properties[] = {
        { "Name",           PROPERTY_STRING, offsetof(CertbrokerCAInfo, name) },
        { "URL",            PROPERTY_STRING, offsetof(CertbrokerCAInfo, url) },
        { "AdminURL",       PROPERTY_STRING, offsetof(CertbrokerCAInfo, admin_url) },
        { "Authentication", PROPERTY_STRING, offsetof(CertbrokerCAInfo, authentication) },
        { "Challenge",      PROPERTY_STRING, offsetof(CertbrokerCAInfo, challenge) },
        { "Capabilities",   PROPERTY_STRV,   offsetof(CertbrokerCAInfo, capabilities) },
        { "LastContact",    PROPERTY_UINT64, offsetof(CertbrokerCAInfo, last_contact) },
        { "LastError",      PROPERTY_STRING, offsetof(CertbrokerCAInfo, last_error) },
};

/* A daemon without renewal has none of these but State: the others read as "not renewed". */
static const Property renewal_properties[] = {
        { "Renew",       PROPERTY_BOOL,    offsetof(CertbrokerRenewal, renew) },
        { "RenewAt",     PROPERTY_UINT64,  offsetof(CertbrokerRenewal, renew_at) },
        { "NotAfter",    PROPERTY_UINT64,  offsetof(CertbrokerRenewal, not_after) },
        { "State",       PROPERTY_STRING,  offsetof(CertbrokerRenewal, state) },
        { "Successor",   PROPERTY_REQUEST, offsetof(CertbrokerRenewal, successor) },
        { "Predecessor", PROPERTY_REQUEST, offsetof(CertbrokerRenewal, predecessor) },
};

/* An info struct: its size and its properties. */
typedef struct PropertySet {
        const Property *table;
        size_t n;
        size_t size;
} PropertySet;

static const PropertySet request_info_set = {
        request_properties, ELEMENTSOF(request_properties), sizeof(CertbrokerRequestInfo) };
static const PropertySet ca_info_set = {
        ca_properties, ELEMENTSOF(ca_properties), sizeof(CertbrokerCAInfo) };
static const PropertySet renewal_set = {
        renewal_properties, ELEMENTSOF(renewal_properties), sizeof(CertbrokerRenewal) };

static void *property_field(void *info, const Property *p) {
        return (uint8_t *) info + p->offset;
}

/* Reads the variant of property p into its field (replacing what was there). */
static int read_property(sd_bus_message *m, const Property *p, void *info) {
        void *field = property_field(info, p);
        const char *s;
        int b, r;

        switch (p->type) {
        case PROPERTY_STRING:
        case PROPERTY_REQUEST: {
                char *v = NULL;

                r = sd_bus_message_read(m, "v", p->type == PROPERTY_STRING ? "s" : "o", &s);
                if (r < 0)
                        return r;
                r = p->type == PROPERTY_STRING ? strdup_out(s, &v) : request_id_from_path(s, true, &v);
                if (r < 0)
                        return r;
                free(*(char **) field);
                *(char **) field = v;
                return 0;
        }
        case PROPERTY_STRV: {
                char **l = NULL;

                r = sd_bus_message_enter_container(m, 'v', "as");
                if (r < 0)
                        return r;
                r = read_strv_of(m, "s", &l);
                if (r < 0)
                        return r;
                certbroker_strv_free(*(char ***) field);
                *(char ***) field = l;
                return sd_bus_message_exit_container(m);
        }
        case PROPERTY_UINT64:
                return sd_bus_message_read(m, "v", "t", (uint64_t *) field);
        case PROPERTY_UINT32:
                return sd_bus_message_read(m, "v", "u", (uint32_t *) field);
        case PROPERTY_BOOL:
                r = sd_bus_message_read(m, "v", "b", &b);
                if (r < 0)
                        return r;
                *(bool *) field = b;
                return 0;
        }
        return -EINVAL;
}

static const Property *property_find(const Property *table, size_t n, const char *name) {
        for (size_t k = 0; k < n; k++)
                if (strcmp(name, table[k].name) == 0)
                        return &table[k];
        return NULL;
}

/* One entry of a GetAll reply's a{sv}: into its field when the table has it, else skipped (a
 * newer daemon's property). 0 at the end of the array. */
static int read_properties_entry(sd_bus_message *reply, const Property *table, size_t n, void *info) {
        const Property *prop;
        const char *name;
        int r;

        r = sd_bus_message_enter_container(reply, 'e', "sv");
        if (r <= 0)
                return r;
        r = sd_bus_message_read(reply, "s", &name);
        if (r < 0)
                return r;
        prop = property_find(table, n, name);
        r = prop ? read_property(reply, prop, info) : sd_bus_message_skip(reply, "v");
        if (r < 0)
                return r;
        r = sd_bus_message_exit_container(reply);
        return r < 0 ? r : 1;
}

/* Frees an info struct: its strings and string lists, then itself. Accepts NULL. */
static void *info_free(void *info, const PropertySet *set) {
        if (!info)
                return NULL;
        for (size_t k = 0; k < set->n; k++) {
                void *field = property_field(info, &set->table[k]);

                if (set->table[k].type == PROPERTY_STRV)
                        certbroker_strv_free(*(char ***) field);
                else if (set->table[k].type == PROPERTY_STRING || set->table[k].type == PROPERTY_REQUEST)
                        free(*(char **) field);
        }
        free(info);
        return NULL;
}

_public_ CertbrokerRequestInfo *certbroker_request_info_free(CertbrokerRequestInfo *i) {
        return info_free(i, &request_info_set);
}

_public_ CertbrokerCAInfo *certbroker_ca_info_free(CertbrokerCAInfo *i) {
        return info_free(i, &ca_info_set);
}

_public_ CertbrokerRenewal *certbroker_renewal_free(CertbrokerRenewal *r) {
        return info_free(r, &renewal_set);
}

/* The set's strings still NULL become "" and its string lists empty ones, so callers never
 * see NULL. */
static int fill_empty(void *info, const PropertySet *set) {
        for (size_t k = 0; k < set->n; k++) {
                void *field = property_field(info, &set->table[k]);

                if ((set->table[k].type == PROPERTY_STRING || set->table[k].type == PROPERTY_REQUEST) &&
                    !*(char **) field && strdup_out("", (char **) field) < 0)
                        return -ENOMEM;
                if (set->table[k].type == PROPERTY_STRV && !*(char ***) field &&
                    !(*(char ***) field = calloc(1, sizeof(char *))))
                        return -ENOMEM;
        }
        return 0;
}

/* The rest of a GetAll reply's a{sv} (entered) into info, leaving the array; NULLs filled. */
static int read_properties(sd_bus_message *reply, const PropertySet *set, void *info) {
        int r;

        do
                r = read_properties_entry(reply, set->table, set->n, info);
        while (r > 0);
        if (r < 0)
                return r;
        r = sd_bus_message_exit_container(reply);
        if (r < 0)
                return r;
        return fill_empty(info, set);
}

/* GetAll of path's iface into a new info struct of the set. A failed call is in *error; a
 * reply that does not read is returned as a negative errno only, for the caller to name. */
static int get_info(CertbrokerClient *c, const char *path, const char *iface, const PropertySet *set,
                    void **ret, CertbrokerError *error) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        void *info;
        int r;

        r = call_method(c, path, PROPERTIES_IFACE, "GetAll", 0, &reply, error, "s", iface);
        if (r < 0)
                return r;
        r = sd_bus_message_enter_container(reply, 'a', "{sv}");
        if (r < 0)
                return r;
        info = calloc(1, set->size);
        if (!info)
                return -ENOMEM;
        r = read_properties(reply, set, info);
        if (r < 0) {
                info_free(info, set);
                return r;
        }
        *ret = info;
        return 0;
}

/* A request's properties (by set); what names them in a failure. */
static int request_get_info(CertbrokerClient *client, const char *request, const PropertySet *set,
                            const char *what, void **ret, CertbrokerError *error) {
        _cleanup_free_ char *path = NULL;
        int r;

        r = request_path(request, &path, error);
        if (r < 0)
                return r;
        r = get_info(client, path, REQUEST_IFACE, set, ret, error);
        if (r < 0)
                return error_setf(error, r, NULL, "Cannot read the %s of request %s: %s",
                                  what, request, strerror(-r));
        return 0;
}

_public_ int certbroker_request_get(CertbrokerClient *client, const char *request,
                                   CertbrokerRequestInfo **ret, CertbrokerError *error) {
        if (!client || !ret)
                return error_setf(error, -EINVAL, NULL, "certbroker_request_get: NULL argument.");
        return request_get_info(client, request, &request_info_set, "properties", (void **) ret, error);
}

_public_ int certbroker_request_renewal(CertbrokerClient *client, const char *request,
                                        CertbrokerRenewal **ret, CertbrokerError *error) {
        if (!client || !ret)
                return error_setf(error, -EINVAL, NULL, "certbroker_request_renewal: NULL argument.");
        return request_get_info(client, request, &renewal_set, "renewal properties", (void **) ret, error);
}

_public_ int certbroker_ca_get(CertbrokerClient *client, const char *ca, CertbrokerCAInfo **ret,
                               CertbrokerError *error) {
        _cleanup_free_ char *path = NULL;
        int r;

        if (!client || !ret)
                return error_setf(error, -EINVAL, NULL, "certbroker_ca_get: NULL argument.");
        r = ca_path(ca, &path, error);
        if (r < 0)
                return r;
        r = get_info(client, path, CA_IFACE, &ca_info_set, (void **) ret, error);
        if (r < 0) {
                r = error_unknown_ca(error, r, ca, SD_BUS_ERROR_UNKNOWN_INTERFACE);
                return error_setf(error, r, NULL, "Cannot read the properties of CA '%s': %s", ca, strerror(-r));
        }
        return 0;
}

/* One property of a request (a string, or a trivial type), at path. */
static int request_get_property(CertbrokerClient *client, const char *path, const char *property,
                                char type, void *ret, sd_bus_error *e) {
        if (type == 's')
                return sd_bus_get_property_string(client->bus, CERTBROKER_BUS_NAME, path, REQUEST_IFACE,
                                                  property, e, ret);
        return sd_bus_get_property_trivial(client->bus, CERTBROKER_BUS_NAME, path, REQUEST_IFACE, property,
                                           e, type, ret);
}

/* A request's string property, a failure named in *error. */
static int request_get_string(CertbrokerClient *client, const char *path, const char *property,
                              char **ret, CertbrokerError *error) {
        _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
        int r;

        r = request_get_property(client, path, property, 's', ret, &e);
        if (r < 0)
                return error_from_bus(error, &e, r, "Cannot read a property");
        return 0;
}

_public_ int certbroker_request_state(CertbrokerClient *client, const char *request,
                                     char **ret_state, CertbrokerError *error) {
        _cleanup_free_ char *path = NULL;
        int r;

        if (!client || !ret_state)
                return error_setf(error, -EINVAL, NULL, "certbroker_request_state: NULL argument.");
        r = request_path(request, &path, error);
        if (r < 0)
                return r;
        return request_get_string(client, path, "State", ret_state, error);
}

_public_ bool certbroker_state_is_terminal(const char *state) {
        static const char *const terminal[] = { "issued", "rejected", "failed", "cancelled" };
        if (!state)
                return false;
        for (size_t i = 0; i < ELEMENTSOF(terminal); i++)
                if (strcmp(state, terminal[i]) == 0)
                        return true;
        return false;
}

_public_ int certbroker_request_certificate(CertbrokerClient *client, const char *request,
                                           char **ret_certificate, char **ret_chain,
                                           CertbrokerError *error) {
        _cleanup_free_ char *path = NULL, *cert = NULL, *chain = NULL;
        int r;

        if (!client)
                return error_setf(error, -EINVAL, NULL, "certbroker_request_certificate: NULL argument.");
        r = request_path(request, &path, error);
        if (r < 0)
                return r;
        if (ret_certificate) {
                r = request_get_string(client, path, "Certificate", &cert, error);
                if (r < 0)
                        return r;
        }
        if (ret_chain) {
                r = request_get_string(client, path, "Chain", &chain, error);
                if (r < 0)
                        return r;
        }
        if (ret_certificate)
                *ret_certificate = TAKE_PTR(cert);
        if (ret_chain)
                *ret_chain = TAKE_PTR(chain);
        return 0;
}

/* ---- Wait ---- */

typedef struct WaitContext {
        bool changed;           /* a PropertiesChanged signal arrived */
        bool replied;           /* the outstanding Wait() call answered */
        int reply_r;
        sd_bus_error reply_error;
} WaitContext;

static void wait_context_done(WaitContext *w) {
        sd_bus_error_free(&w->reply_error);
}

static int on_properties_changed(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        WaitContext *w = userdata;
        w->changed = true;
        return 0;
}

static int on_wait_reply(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        WaitContext *w = userdata;
        const sd_bus_error *e = sd_bus_message_get_error(m);
        const char *state;
        int r;

        w->replied = true;
        if (e) {
                sd_bus_error_copy(&w->reply_error, e);
                w->reply_r = -(sd_bus_error_get_errno(e) ?: EIO);
                return 0;
        }
        r = sd_bus_message_read(m, "s", &state);
        w->reply_r = r < 0 ? r : 0;
        return 0;
}

/* Subscribes w to the PropertiesChanged signals of the request at path. Done before the first
 * read, so no change falls between the two. */
static int subscribe_changes(CertbrokerClient *c, const char *path, WaitContext *w, sd_bus_slot **ret,
                             CertbrokerError *error) {
        _cleanup_free_ char *match_rule = NULL;
        int r;

        if (asprintf(&match_rule, "type='signal',sender='%s',path='%s',interface='%s',"
                     "member='PropertiesChanged',arg0='%s'",
                     CERTBROKER_BUS_NAME, path, PROPERTIES_IFACE, REQUEST_IFACE) < 0) {
                match_rule = NULL;
                return error_oom(error);
        }
        r = sd_bus_add_match(c->bus, ret, match_rule, on_properties_changed, w);
        if (r < 0)
                return error_setf(error, r, NULL, "Cannot subscribe to the changes of request %s: %s",
                                  request_path_id(path), strerror(-r));
        return 0;
}

/* The monotonic time timeout_usec from now (CERTBROKER_WAIT_INFINITY: never). */
static uint64_t deadline_after(uint64_t timeout_usec) {
        uint64_t now = monotonic_usec();

        if (timeout_usec == CERTBROKER_WAIT_INFINITY || timeout_usec > UINT64_MAX - now)
                return UINT64_MAX;
        return now + timeout_usec;
}

/* What certbroker_wait() last reported. */
typedef struct WaitProgress {
        const char *id;
        char *state;
        CertbrokerProgress last;
        CertbrokerProgressFn fn;
        void *userdata;
} WaitProgress;

static void wait_progress_done(WaitProgress *p) {
        free(p->state);
        p->state = NULL;
}

/* Reads State, Attempts and NextAttempt and reports them when they changed. */
static int wait_report(CertbrokerClient *c, const char *path, WaitProgress *p, CertbrokerError *error) {
        _cleanup_(certbroker_request_info_freep) CertbrokerRequestInfo *i = NULL;
        int r;

        r = certbroker_request_get(c, path, &i, error);
        if (r < 0)
                return r;
        if (p->state && strcmp(p->state, i->state) == 0 &&
            p->last.attempts == i->attempts && p->last.next_attempt == i->next_attempt)
                return 0;
        free(p->state);
        p->state = TAKE_PTR(i->state);
        p->last = (CertbrokerProgress) {
                .id = p->id,
                .state = p->state,
                .attempts = i->attempts,
                .next_attempt = i->next_attempt,
        };
        if (!p->fn)
                return 0;
        r = p->fn(&p->last, p->userdata);
        if (r < 0)
                return error_setf(error, r, NULL, "Waiting for request %s was stopped.", p->id);
        return 0;
}

/* One Request.Wait() call of at most slice, reporting what the signals tell meanwhile. */
static int wait_slice(CertbrokerClient *c, const char *path, WaitContext *w, uint64_t slice, WaitProgress *p,
                      CertbrokerError *error) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        _cleanup_(sd_bus_slot_unrefp) sd_bus_slot *call = NULL;
        int r;

        w->replied = false;
        w->changed = false;
        r = new_method_call(c, path, REQUEST_IFACE, "Wait", &m, error);
        if (r < 0)
                return r;
        r = sd_bus_message_append(m, "t", slice);
        if (r < 0)
                return error_setf(error, r, NULL, "Cannot build the Wait() call: %s", strerror(-r));
        /* The call's own timeout: the slice plus a margin for a busy daemon. */
        r = sd_bus_call_async(c->bus, &call, m, on_wait_reply, w, slice + WAIT_CALL_MARGIN_USEC);
        if (r < 0)
                return error_setf(error, r, NULL, "Cannot call Wait() on request %s: %s", p->id, strerror(-r));
        while (!w->replied) {
                r = sd_bus_process(c->bus, NULL);
                if (r < 0)
                        break;
                if (r > 0)
                        continue;
                if (w->changed) {
                        w->changed = false;
                        r = wait_report(c, path, p, error);
                        if (r < 0)
                                return r;
                        continue;
                }
                /* sd-bus times the call out itself (an error reply). */
                r = sd_bus_wait(c->bus, UINT64_MAX);
                if (r < 0)
                        break;
        }
        if (r < 0)
                return error_setf(error, r, NULL, "Lost the connection to certbrokerd while waiting "
                                  "for request %s: %s", p->id, strerror(-r));
        if (w->reply_r < 0)
                return error_from_bus(error, &w->reply_error, w->reply_r, "Wait");
        return 0;
}

_public_ int certbroker_wait(CertbrokerClient *client, const char *request, uint64_t timeout_usec,
                             CertbrokerProgressFn progress, void *userdata,
                             char **ret_state, CertbrokerError *error) {
        _cleanup_(wait_context_done) WaitContext w = { .reply_error = SD_BUS_ERROR_NULL };
        _cleanup_(sd_bus_slot_unrefp) sd_bus_slot *match = NULL;
        _cleanup_free_ char *path = NULL;
        _cleanup_(wait_progress_done) WaitProgress p = { .fn = progress, .userdata = userdata };
        uint64_t deadline;
        int r;

        if (!client)
                return error_setf(error, -EINVAL, NULL, "certbroker_wait: NULL argument.");
        r = request_path(request, &path, error);
        if (r < 0)
                return r;
        p.id = request_path_id(path);
        r = subscribe_changes(client, path, &w, &match, error);
        if (r < 0)
                return r;

        deadline = deadline_after(timeout_usec);
        r = wait_report(client, path, &p, error);
        if (r < 0)
                return r;
        while (!certbroker_state_is_terminal(p.state)) {
                uint64_t now = monotonic_usec();

                if (now >= deadline)
                        break;
                r = wait_slice(client, path, &w, deadline - now < WAIT_SLICE_USEC ? deadline - now : WAIT_SLICE_USEC,
                               &p, error);
                if (r < 0)
                        return r;
                /* Report whatever the last slice changed (the signal may still be queued). */
                r = wait_report(client, path, &p, error);
                if (r < 0)
                        return r;
        }
        r = certbroker_state_is_terminal(p.state) ? 1 : 0;
        if (ret_state)
                *ret_state = TAKE_PTR(p.state);
        return r;
}

/* ---- TakeKey, Cancel, Remove ---- */

_public_ char *certbroker_secret_free(char *secret) {
        if (!secret)
                return NULL;
        explicit_bzero(secret, strlen(secret));
        free(secret);
        return NULL;
}

_public_ int certbroker_take_key(CertbrokerClient *client, const char *request,
                                 char **ret_key_pem, CertbrokerError *error) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        const char *pem;
        char *copy;
        int r;

        if (!client || !ret_key_pem)
                return error_setf(error, -EINVAL, NULL, "certbroker_take_key: NULL argument.");
        r = request_call(client, request, "TakeKey", &reply, error);
        if (r < 0)
                return r;
        /* Wipe the received message's buffers when it is freed. */
        (void) sd_bus_message_sensitive(reply);
        r = sd_bus_message_read(reply, "s", &pem);
        if (r < 0)
                return error_setf(error, r, NULL, "TakeKey() returned an unexpected reply: %s", strerror(-r));
        copy = strdup(pem);
        if (!copy)
                return error_oom(error);
        *ret_key_pem = copy;
        return 0;
}

_public_ int certbroker_take_key_sealed(CertbrokerClient *client, const char *request, const uint8_t *recipient,
                                       size_t recipient_size, uint8_t **ret_sealed, size_t *ret_size,
                                       CertbrokerError *error) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *call = NULL, *reply = NULL;
        _cleanup_free_ char *path = NULL;
        const void *data = NULL;
        uint8_t *copy;
        size_t n = 0;
        int r;

        if (!client || !recipient || !ret_sealed || !ret_size)
                return error_setf(error, -EINVAL, NULL, "certbroker_take_key_sealed: NULL argument.");
        r = request_path(request, &path, error);
        if (r < 0)
                return r;
        r = new_method_call(client, path, REQUEST_IFACE, "TakeKeySealed", &call, error);
        if (r < 0)
                return r;
        r = sd_bus_message_append_array(call, 'y', recipient, recipient_size);
        if (r < 0)
                return error_setf(error, r, NULL, "Cannot build the TakeKeySealed() call: %s", strerror(-r));
        r = call_message(client, call, "TakeKeySealed", 0, &reply, error);
        if (r < 0)
                return r;
        r = sd_bus_message_read_array(reply, 'y', &data, &n);
        if (r < 0)
                return error_setf(error, r, NULL, "TakeKeySealed() returned an unexpected reply: %s",
                                  strerror(-r));
        if (n == 0)
                return error_setf(error, -EBADMSG, NULL, "TakeKeySealed() returned an empty sealed key.");
        copy = malloc(n);
        if (!copy)
                return error_oom(error);
        memcpy(copy, data, n);
        *ret_sealed = copy;
        *ret_size = n;
        return 0;
}

_public_ int certbroker_cancel(CertbrokerClient *client, const char *request, CertbrokerError *error) {
        return request_call(client, request, "Cancel", NULL, error);
}

_public_ int certbroker_request_key_sealed(CertbrokerClient *client, const char *request, bool *ret_sealed,
                                          CertbrokerError *error) {
        _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
        _cleanup_free_ char *path = NULL;
        int b = 0, r;

        if (!client || !ret_sealed)
                return error_setf(error, -EINVAL, NULL, "certbroker_request_key_sealed: NULL argument.");
        r = request_path(request, &path, error);
        if (r < 0)
                return r;
        r = request_get_property(client, path, "KeySealed", 'b', &b, &e);
        if (r < 0 && sd_bus_error_has_names(&e, SD_BUS_ERROR_UNKNOWN_PROPERTY, SD_BUS_ERROR_INVALID_ARGS)) {
                *ret_sealed = false;    /* a certbrokerd before the sealed hand-off: nothing sealed */
                return 0;
        }
        if (r < 0)
                return error_from_bus(error, &e, r, "Cannot read a property");
        *ret_sealed = b;
        return 0;
}

_public_ int certbroker_confirm_key(CertbrokerClient *client, const char *request, CertbrokerError *error) {
        return request_call(client, request, "ConfirmKey", NULL, error);
}

_public_ int certbroker_remove(CertbrokerClient *client, const char *request, CertbrokerError *error) {
        return request_call(client, request, "Remove", NULL, error);
}

/* ---- lists ---- */

/* The three char * fields of a list entry (CertbrokerRequestEntry, CertbrokerCheckStep). */
typedef struct TripleLayout {
        size_t size;
        size_t offsets[3];
} TripleLayout;

static const TripleLayout request_entry_layout = {
        sizeof(CertbrokerRequestEntry),
        { offsetof(CertbrokerRequestEntry, id), offsetof(CertbrokerRequestEntry, state),
          offsetof(CertbrokerRequestEntry, path) },
};

static const TripleLayout check_step_layout = {
        sizeof(CertbrokerCheckStep),
        { offsetof(CertbrokerCheckStep, step), offsetof(CertbrokerCheckStep, result),
          offsetof(CertbrokerCheckStep, detail) },
};

static char **triple_field(void *array, const TripleLayout *layout, size_t i, size_t k) {
        return (char **) ((uint8_t *) array + i * layout->size + layout->offsets[k]);
}

static void *triples_free(void *array, size_t n, const TripleLayout *layout) {
        if (!array)
                return NULL;
        for (size_t i = 0; i < n; i++)
                for (size_t k = 0; k < 3; k++)
                        free(*triple_field(array, layout, i, k));
        free(array);
        return NULL;
}

_public_ CertbrokerRequestEntry *certbroker_request_entries_free(CertbrokerRequestEntry *entries, size_t n) {
        return triples_free(entries, n, &request_entry_layout);
}

_public_ CertbrokerCheckStep *certbroker_check_steps_free(CertbrokerCheckStep *steps, size_t n) {
        return triples_free(steps, n, &check_step_layout);
}

/* The entries of an array of structs of three strings (entered) appended to *array (*n of
 * them, counting each as soon as it is there, so that the caller can free a partial array),
 * leaving the array. */
static int read_triples_entries(sd_bus_message *m, const char *element, const TripleLayout *layout,
                                void **array, size_t *n) {
        int r;

        for (;;) {
                const char *v[3];

                r = sd_bus_message_read(m, element, &v[0], &v[1], &v[2]);
                if (r < 0)
                        return r;
                if (r == 0)
                        return sd_bus_message_exit_container(m);
                r = array_grow(array, *n, layout->size);
                if (r < 0)
                        return r;
                memset((uint8_t *) *array + *n * layout->size, 0, layout->size);
                (*n)++;
                for (size_t k = 0; k < 3; k++) {
                        r = strdup_out(v[k], triple_field(*array, layout, *n - 1, k));
                        if (r < 0)
                                return r;
                }
        }
}

/* Reads an array of structs of three strings (element "(sss)", "(sso)") into an array of
 * entries laid out as layout says. */
static int read_triples(sd_bus_message *m, const char *element, const TripleLayout *layout, void **ret,
                        size_t *ret_n) {
        void *l = NULL;
        size_t n = 0;
        int r;

        r = sd_bus_message_enter_container(m, 'a', element);
        if (r < 0)
                return r;
        r = read_triples_entries(m, element, layout, &l, &n);
        if (r < 0) {
                triples_free(l, n, layout);
                return r;
        }
        *ret = l;
        *ret_n = n;
        return 0;
}

_public_ int certbroker_list_requests(CertbrokerClient *client, CertbrokerRequestEntry **ret,
                                      size_t *ret_n, CertbrokerError *error) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        int r;

        if (!client || !ret || !ret_n)
                return error_setf(error, -EINVAL, NULL, "certbroker_list_requests: NULL argument.");
        r = call_method(client, CERTBROKER_MANAGER_PATH, MANAGER_IFACE, "ListRequests", 0, &reply, error, NULL);
        if (r < 0)
                return r;
        r = read_triples(reply, "(sso)", &request_entry_layout, (void **) ret, ret_n);
        if (r < 0)
                return error_setf(error, r, NULL, "ListRequests() returned an unexpected reply: %s",
                                  strerror(-r));
        return 0;
}

_public_ int certbroker_list_cas(CertbrokerClient *client, char ***ret_names, CertbrokerError *error) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        int r;

        if (!client || !ret_names)
                return error_setf(error, -EINVAL, NULL, "certbroker_list_cas: NULL argument.");
        r = call_method(client, CERTBROKER_MANAGER_PATH, MANAGER_IFACE, "ListCAs", 0, &reply, error, NULL);
        if (r < 0)
                return r;
        r = read_strv_of(reply, "(so)", ret_names);
        if (r < 0)
                return error_setf(error, r, NULL, "ListCAs() returned an unexpected reply: %s", strerror(-r));
        return 0;
}

/* ---- CAs ---- */

_public_ int certbroker_ca_check(CertbrokerClient *client, const char *ca, bool with_challenge,
                                 CertbrokerCheckStep **ret_steps, size_t *ret_n, CertbrokerError *error) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_free_ char *path = NULL;
        CertbrokerCheckStep *l;
        size_t n;
        int r, failed = 0;

        if (!client || !ret_steps || !ret_n)
                return error_setf(error, -EINVAL, NULL, "certbroker_ca_check: NULL argument.");
        r = ca_path(ca, &path, error);
        if (r < 0)
                return r;
        if (with_challenge)
                r = call_method(client, path, CA_IFACE, "Check", CHECK_CALL_TIMEOUT_USEC, &reply, error,
                                "a{sv}", 1, "challenge", "b", 1);
        else
                r = call_method(client, path, CA_IFACE, "Check", CHECK_CALL_TIMEOUT_USEC, &reply, error,
                                "a{sv}", 0);
        if (r < 0)
                return error_unknown_ca(error, r, ca, SD_BUS_ERROR_UNKNOWN_METHOD);
        r = read_triples(reply, "(sss)", &check_step_layout, (void **) &l, &n);
        if (r < 0)
                return error_setf(error, r, NULL, "Check() returned an unexpected reply: %s", strerror(-r));
        for (size_t i = 0; i < n; i++)
                if (strcmp(l[i].result, "fail") == 0)
                        failed++;
        *ret_steps = l;
        *ret_n = n;
        return failed;
}

/* ---- renewal: following a chain (LIBCERTBROKER_1.1) ---- */

/* certbroker_wait_successor() follows the request's PropertiesChanged signals and also re-reads
 * the request at least this often, and at RenewAt, so that a lost signal (certbrokerd restarted
 * in between) only delays it. */
#define SUCCESSOR_POLL_USEC     (30ULL * 1000000ULL)
/* certbroker_chain_latest(): how many links it follows at most. */
#define CHAIN_LINKS_MAX         100000U

_public_ int certbroker_stop_renewal(CertbrokerClient *client, const char *request, CertbrokerError *error) {
        return request_call(client, request, "StopRenewal", NULL, error);
}

/* No successor will ever come: renewal stopped (or never asked for), or the request ended
 * without a certificate. */
static bool renewal_ended(const CertbrokerRenewal *i) {
        if (*i->successor)
                return false;
        if (!i->renew)
                return true;
        return certbroker_state_is_terminal(i->state) && strcmp(i->state, "issued") != 0;
}

/* The next read: the poll interval, RenewAt (plus a second for the daemon to make the
 * successor), or the deadline, whichever comes first (monotonic). */
static uint64_t successor_next_read(const CertbrokerRenewal *i, uint64_t now, uint64_t deadline) {
        uint64_t next = now + SUCCESSOR_POLL_USEC;

        if (i->renew_at > 0) {
                uint64_t real = now_usec();
                uint64_t at = (i->renew_at > real ? now + (i->renew_at - real) : now) + 1000000ULL;
                if (at < next)
                        next = at;
        }
        return next < deadline ? next : deadline;
}

/* Processes the bus until a PropertiesChanged signal or until (monotonic). */
static int wait_change(CertbrokerClient *c, WaitContext *w, uint64_t until) {
        int r;

        while (!w->changed) {
                uint64_t now = monotonic_usec();

                if (now >= until)
                        return 0;
                r = sd_bus_process(c->bus, NULL);
                if (r < 0)
                        return r;
                if (r > 0)
                        continue;
                r = sd_bus_wait(c->bus, until - now);
                if (r < 0)
                        return r;
        }
        return 0;
}

_public_ int certbroker_wait_successor(CertbrokerClient *client, const char *request, uint64_t timeout_usec,
                                       char **ret_successor, CertbrokerError *error) {
        _cleanup_(wait_context_done) WaitContext w = { .reply_error = SD_BUS_ERROR_NULL };
        _cleanup_(sd_bus_slot_unrefp) sd_bus_slot *match = NULL;
        _cleanup_free_ char *path = NULL;
        uint64_t deadline;
        int r;

        if (!client)
                return error_setf(error, -EINVAL, NULL, "certbroker_wait_successor: NULL argument.");
        r = request_path(request, &path, error);
        if (r < 0)
                return r;
        r = subscribe_changes(client, path, &w, &match, error);
        if (r < 0)
                return r;

        deadline = deadline_after(timeout_usec);
        for (;;) {
                _cleanup_(certbroker_renewal_freep) CertbrokerRenewal *i = NULL;
                uint64_t now;

                w.changed = false;
                r = certbroker_request_renewal(client, path, &i, error);
                if (r < 0)
                        return r;
                if (*i->successor) {
                        if (ret_successor)
                                *ret_successor = TAKE_PTR(i->successor);
                        return 1;
                }
                if (renewal_ended(i))
                        return CERTBROKER_CHAIN_ENDED;
                now = monotonic_usec();
                if (now >= deadline)
                        return 0;
                r = wait_change(client, &w, successor_next_read(i, now, deadline));
                if (r < 0)
                        return error_setf(error, r, NULL, "Lost the connection to certbrokerd while waiting "
                                          "for the successor of request %s: %s", request_path_id(path),
                                          strerror(-r));
        }
}

_public_ int certbroker_chain_latest(CertbrokerClient *client, const char *request, char **ret_id,
                                     CertbrokerError *error) {
        _cleanup_free_ char *path = NULL, *cur = NULL;
        int r;

        if (!client || !ret_id)
                return error_setf(error, -EINVAL, NULL, "certbroker_chain_latest: NULL argument.");
        r = request_path(request, &path, error);
        if (r < 0)
                return r;
        cur = strdup(request_path_id(path));
        if (!cur)
                return error_oom(error);
        for (unsigned k = 0; k < CHAIN_LINKS_MAX; k++) {
                _cleanup_(certbroker_renewal_freep) CertbrokerRenewal *i = NULL;

                r = certbroker_request_renewal(client, cur, &i, error);
                if (r < 0)
                        return r;
                if (!*i->successor) {
                        *ret_id = TAKE_PTR(cur);
                        return 0;
                }
                free(cur);
                cur = TAKE_PTR(i->successor);
        }
        return error_setf(error, -ELOOP, NULL, "The chain of request %s has more than %u links.",
                          request, CHAIN_LINKS_MAX);
}
