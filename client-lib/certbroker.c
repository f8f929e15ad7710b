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

#include "certbroker.h"

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

/* A failed bus call: the daemon's (or the bus's) error name and message. */
static int error_from_bus(CertbrokerError *error, const sd_bus_error *e, int r, const char *what) {
        if (sd_bus_error_is_set(e)) {
                for (size_t i = 0; i < sizeof(error_map) / sizeof(error_map[0]); i++)
                        if (strcmp(e->name, error_map[i].name) == 0) {
                                r = -error_map[i].errnum;
                                break;
                        }
                if (r >= 0 || r == -EIO) {
                        int k = sd_bus_error_get_errno(e);
                        if (k > 0)
                                r = -k;
                }
                if (sd_bus_error_has_names(e, SD_BUS_ERROR_SERVICE_UNKNOWN,
                                           SD_BUS_ERROR_NAME_HAS_NO_OWNER))
                        return error_setf(error, r, e->name,
                                          "certbrokerd is not running: %s is not on the system bus (%s). "
                                          "Start it with 'systemctl start certbrokerd'.",
                                          CERTBROKER_BUS_NAME, e->message ?: e->name);
                return error_setf(error, r, e->name, "%s", e->message ?: e->name);
        }
        if (r >= 0)
                r = -EIO;
        return error_setf(error, r, NULL, "%s: %s", what, strerror(-r));
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
                return error_setf(error, -ENOMEM, NULL, "Out of memory.");
        *ret = p;
        return 0;
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
        CertbrokerClient *c;
        int r;

        if (!ret)
                return error_setf(error, -EINVAL, NULL, "certbroker_open: ret is NULL.");
        c = calloc(1, sizeof(*c));
        if (!c)
                return error_setf(error, -ENOMEM, NULL, "Out of memory.");
        r = sd_bus_open_system(&c->bus);
        if (r < 0) {
                const char *addr = getenv("DBUS_SYSTEM_BUS_ADDRESS");
                free(c);
                return error_setf(error, r, NULL,
                                  "Cannot connect to the system bus (%s): %s. Is dbus running?",
                                  addr ?: "unix:path=/run/dbus/system_bus_socket", strerror(-r));
        }
        /* From a terminal, a method polkit authorizes (Reload, another user's request) may ask
         * for a password through the session's polkit agent. */
        if (isatty(STDIN_FILENO))
                (void) sd_bus_set_allow_interactive_authorization(c->bus, true);
        *ret = c;
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

_public_ char **certbroker_strv_free(char **strv) {
        if (!strv)
                return NULL;
        for (char **s = strv; *s; s++)
                free(*s);
        free(strv);
        return NULL;
}

/* Reads an "as" into a NULL-terminated array. */
static int read_strv(sd_bus_message *m, char ***ret) {
        char **l = NULL;
        size_t n = 0;
        int r;

        r = sd_bus_message_enter_container(m, 'a', "s");
        if (r < 0)
                return r;
        l = calloc(1, sizeof(char *));
        if (!l)
                return -ENOMEM;
        for (;;) {
                const char *s;
                char **a;

                r = sd_bus_message_read(m, "s", &s);
                if (r < 0)
                        goto fail;
                if (r == 0)
                        break;
                a = realloc(l, (n + 2) * sizeof(char *));
                if (!a) {
                        r = -ENOMEM;
                        goto fail;
                }
                l = a;
                l[n] = strdup(s);
                if (!l[n]) {
                        r = -ENOMEM;
                        goto fail;
                }
                l[++n] = NULL;
        }
        r = sd_bus_message_exit_container(m);
        if (r < 0)
                goto fail;
        *ret = l;
        return 0;
fail:
        certbroker_strv_free(l);
        return r;
}

static int get_property_string(CertbrokerClient *c, const char *path, const char *iface,
                               const char *property, char **ret, CertbrokerError *error) {
        sd_bus_error e = SD_BUS_ERROR_NULL;
        char *s = NULL;
        int r;

        r = sd_bus_get_property_string(c->bus, CERTBROKER_BUS_NAME, path, iface, property, &e, &s);
        if (r < 0) {
                r = error_from_bus(error, &e, r, "Cannot read a property");
                sd_bus_error_free(&e);
                return r;
        }
        *ret = s;
        return 0;
}

/* Sends the call m (taken: unreferenced here) and waits for the reply; a D-Bus error becomes
 * *error named after member. *ret_reply may be NULL. */
static int call_message(CertbrokerClient *c, sd_bus_message *m, const char *member, uint64_t timeout_usec,
                        sd_bus_message **ret_reply, CertbrokerError *error) {
        sd_bus_message *reply = NULL;
        sd_bus_error e = SD_BUS_ERROR_NULL;
        int r;

        r = sd_bus_call(c->bus, m, timeout_usec, &e, &reply);
        sd_bus_message_unref(m);
        if (r < 0) {
                r = error_from_bus(error, &e, r, member);
                sd_bus_error_free(&e);
                return r;
        }
        if (ret_reply)
                *ret_reply = reply;
        else
                sd_bus_message_unref(reply);
        return 0;
}

static int call_method(CertbrokerClient *c, const char *path, const char *iface, const char *member,
                       uint64_t timeout_usec, sd_bus_message **ret_reply, CertbrokerError *error,
                       const char *types, ...) {
        sd_bus_message *m = NULL;
        sd_bus_error e = SD_BUS_ERROR_NULL;
        va_list ap;
        int r;

        r = sd_bus_message_new_method_call(c->bus, &m, CERTBROKER_BUS_NAME, path, iface, member);
        if (r < 0)
                return error_from_bus(error, &e, r, "Cannot build a D-Bus call");
        if (types) {
                va_start(ap, types);
                r = sd_bus_message_appendv(m, types, ap);
                va_end(ap);
                if (r < 0) {
                        sd_bus_message_unref(m);
                        return error_setf(error, r, NULL, "Cannot build the %s() call: %s",
                                          member, strerror(-r));
                }
        }
        return call_message(c, m, member, timeout_usec, ret_reply, error);
}

_public_ int certbroker_get_version(CertbrokerClient *client, char **ret_version, CertbrokerError *error) {
        if (!client || !ret_version)
                return error_setf(error, -EINVAL, NULL, "certbroker_get_version: NULL argument.");
        return get_property_string(client, CERTBROKER_MANAGER_PATH, MANAGER_IFACE, "Version",
                                   ret_version, error);
}

/* ---- Enroll / CheckAccess ---- */

static int new_spec_call(CertbrokerClient *c, const char *member, const CertbrokerRequestSpec *spec,
                         uint64_t flags, const char *token, sd_bus_message **ret, CertbrokerError *error) {
        sd_bus_message *m = NULL;
        const char *opt_names[] = { "key", "usage", "label" };
        const char *opt_values[] = { spec->key_type, spec->usage, spec->label };
        int r;

        r = sd_bus_message_new_method_call(c->bus, &m, CERTBROKER_BUS_NAME, CERTBROKER_MANAGER_PATH,
                                           MANAGER_IFACE, member);
        if (r >= 0)
                r = sd_bus_message_append(m, "ss", spec->ca ?: "", spec->subject ?: "");
        if (r >= 0)
                r = sd_bus_message_append_strv(m, (char **) spec->names);
        if (r >= 0)
                r = sd_bus_message_open_container(m, 'a', "{sv}");
        for (size_t i = 0; r >= 0 && i < 3; i++)
                if (opt_values[i])
                        r = sd_bus_message_append(m, "{sv}", opt_names[i], "s", opt_values[i]);
        if (r >= 0 && (flags & CERTBROKER_ENROLL_RENEW))
                r = sd_bus_message_append(m, "{sv}", "renew", "b", 1);
        if (r >= 0 && (flags & CERTBROKER_ENROLL_IDENTITY_SELF))
                r = sd_bus_message_append(m, "{sv}", "identity", "s", "self");
        if (r >= 0 && token)
                r = sd_bus_message_append(m, "{sv}", "token", "s", token);
        if (r >= 0)
                r = sd_bus_message_close_container(m);
        if (r < 0) {
                sd_bus_message_unref(m);
                return error_setf(error, r, NULL, "Cannot build the %s() call: %s (names and options "
                                  "must be valid UTF-8)", member, strerror(-r));
        }
        *ret = m;
        return 0;
}

_public_ int certbroker_enroll(CertbrokerClient *client, const CertbrokerRequestSpec *spec,
                               char **ret_id, CertbrokerError *error) {
        return certbroker_enroll_flags(client, spec, 0, ret_id, error);
}

_public_ int certbroker_enroll_flags(CertbrokerClient *client, const CertbrokerRequestSpec *spec,
                                     uint64_t flags, char **ret_id, CertbrokerError *error) {
        return certbroker_enroll_token(client, spec, flags, NULL, ret_id, error);
}

_public_ int certbroker_enroll_token(CertbrokerClient *client, const CertbrokerRequestSpec *spec,
                                     uint64_t flags, const char *token, char **ret_id, CertbrokerError *error) {
        sd_bus_message *m = NULL, *reply = NULL;
        const char *path;
        char *id = NULL;
        int r;

        if (!client || !spec || !ret_id)
                return error_setf(error, -EINVAL, NULL, "certbroker_enroll: NULL argument.");
        if (flags & ~(uint64_t) (CERTBROKER_ENROLL_RENEW | CERTBROKER_ENROLL_IDENTITY_SELF))
                return error_setf(error, -EINVAL, NULL, "certbroker_enroll_flags: unknown flags 0x%llx.",
                                  (unsigned long long) (flags & ~(uint64_t) (CERTBROKER_ENROLL_RENEW |
                                                                             CERTBROKER_ENROLL_IDENTITY_SELF)));
        r = new_spec_call(client, "Enroll", spec, flags, token, &m, error);
        if (r < 0)
                return r;
        r = call_message(client, m, "Enroll", 0, &reply, error);
        if (r < 0)
                return r;
        r = sd_bus_message_read(reply, "o", &path);
        if (r >= 0) {
                r = sd_bus_path_decode(path, REQUEST_PREFIX, &id);
                if (r == 0 || (r > 0 && !request_id_is_valid(id, strlen(id))))
                        r = -EBADMSG;
        }
        sd_bus_message_unref(reply);
        if (r < 0) {
                free(id);
                return error_setf(error, r, NULL, "Enroll() returned an unexpected reply: %s", strerror(-r));
        }
        *ret_id = id;
        return 0;
}

_public_ int certbroker_check_access(CertbrokerClient *client, const CertbrokerRequestSpec *spec,
                                     char **ret_rule, char **ret_reason, CertbrokerError *error) {
        sd_bus_message *m = NULL, *reply = NULL;
        const char *rule, *reason;
        char *rule_copy = NULL, *reason_copy = NULL;
        int allowed, r;

        if (!client || !spec)
                return error_setf(error, -EINVAL, NULL, "certbroker_check_access: NULL argument.");
        r = new_spec_call(client, "CheckAccess", spec, 0, NULL, &m, error);
        if (r < 0)
                return r;
        r = call_message(client, m, "CheckAccess", 0, &reply, error);
        if (r < 0)
                return r;
        r = sd_bus_message_read(reply, "bss", &allowed, &rule, &reason);
        if (r >= 0 && ret_rule)
                r = strdup_out(rule, &rule_copy);
        if (r >= 0 && ret_reason)
                r = strdup_out(reason, &reason_copy);
        sd_bus_message_unref(reply);
        if (r < 0) {
                free(rule_copy);
                free(reason_copy);
                return error_setf(error, r, NULL, "CheckAccess() returned an unexpected reply: %s",
                                  strerror(-r));
        }
        if (ret_rule)
                *ret_rule = rule_copy;
        if (ret_reason)
                *ret_reason = reason_copy;
        return allowed ? 1 : 0;
}

/* ---- Request properties ---- */

_public_ CertbrokerRequestInfo *certbroker_request_info_free(CertbrokerRequestInfo *i) {
        if (!i)
                return NULL;
        free(i->id);
        free(i->ca);
        free(i->label);
        free(i->subject);
        free(i->key_type);
        free(i->usage);
        certbroker_strv_free(i->names);
        free(i->state);
        free(i->error_name);
        free(i->error_message);
        free(i->fail_info);
        free(i->transaction_id);
        free(i->certificate);
        free(i->chain);
        free(i->serial);
        free(i);
        return NULL;
}

/* ---- reading GetAll replies ---- */

typedef struct StringProperty {
        const char *name;
        size_t offset;          /* of a char * in the info struct */
} StringProperty;

/* If name is one of the table's string properties, reads its variant into the slot:
 * 1 when it was, 0 when name is not in the table, negative errno on failure. */
static int read_string_property(sd_bus_message *m, const char *name, const StringProperty *table, size_t n,
                                void *info) {
        for (size_t k = 0; k < n; k++)
                if (strcmp(name, table[k].name) == 0) {
                        char **slot = (char **) ((uint8_t *) info + table[k].offset);
                        const char *s;
                        int r = sd_bus_message_read(m, "v", "s", &s);
                        if (r < 0)
                                return r;
                        free(*slot);
                        *slot = NULL;
                        r = strdup_out(s, slot);
                        return r < 0 ? r : 1;
                }
        return 0;
}

/* An "as" variant into *slot (replacing what was there). */
static int read_strv_property(sd_bus_message *m, char ***slot) {
        char **l = NULL;
        int r;

        r = sd_bus_message_enter_container(m, 'v', "as");
        if (r < 0)
                return r;
        r = read_strv(m, &l);
        if (r < 0)
                return r;
        certbroker_strv_free(*slot);
        *slot = l;
        return sd_bus_message_exit_container(m);
}

/* Walks a GetAll reply's a{sv}, handing each property to read(). */
static int read_properties(sd_bus_message *reply, int (*read)(sd_bus_message *m, const char *name, void *info),
                           void *info) {
        int r = sd_bus_message_enter_container(reply, 'a', "{sv}");

        while (r >= 0) {
                const char *name;
                r = sd_bus_message_enter_container(reply, 'e', "sv");
                if (r <= 0)
                        break;
                r = sd_bus_message_read(reply, "s", &name);
                if (r >= 0)
                        r = read(reply, name, info);
                if (r >= 0)
                        r = sd_bus_message_exit_container(reply);
        }
        if (r >= 0)
                r = sd_bus_message_exit_container(reply);
        return r;
}

/* The table's strings still NULL become "" and the string list an empty one, so callers never
 * see NULL. */
static int fill_empty(void *info, const StringProperty *table, size_t n, char ***strv) {
        for (size_t k = 0; k < n; k++) {
                char **slot = (char **) ((uint8_t *) info + table[k].offset);
                if (!*slot && strdup_out("", slot) < 0)
                        return -ENOMEM;
        }
        if (strv && !*strv && !(*strv = calloc(1, sizeof(char *))))
                return -ENOMEM;
        return 0;
}

static const StringProperty request_strings[] = {
        { "Id",            offsetof(CertbrokerRequestInfo, id) },
        { "CA",            offsetof(CertbrokerRequestInfo, ca) },
        { "Label",         offsetof(CertbrokerRequestInfo, label) },
        { "Subject",       offsetof(CertbrokerRequestInfo, subject) },
        { "Key",           offsetof(CertbrokerRequestInfo, key_type) },
        { "Usage",         offsetof(CertbrokerRequestInfo, usage) },
        { "State",         offsetof(CertbrokerRequestInfo, state) },
        { "Error",         offsetof(CertbrokerRequestInfo, error_name) },
        { "ErrorMessage",  offsetof(CertbrokerRequestInfo, error_message) },
        { "FailInfo",      offsetof(CertbrokerRequestInfo, fail_info) },
        { "TransactionId", offsetof(CertbrokerRequestInfo, transaction_id) },
        { "Certificate",   offsetof(CertbrokerRequestInfo, certificate) },
        { "Chain",         offsetof(CertbrokerRequestInfo, chain) },
        { "Serial",        offsetof(CertbrokerRequestInfo, serial) },
};

static const StringProperty ca_strings[] = {
        { "Name",           offsetof(CertbrokerCAInfo, name) },
        { "URL",            offsetof(CertbrokerCAInfo, url) },
        { "AdminURL",       offsetof(CertbrokerCAInfo, admin_url) },
        { "Authentication", offsetof(CertbrokerCAInfo, authentication) },
        { "Challenge",      offsetof(CertbrokerCAInfo, challenge) },
        { "LastError",      offsetof(CertbrokerCAInfo, last_error) },
};

#define ELEMENTSOF(a) (sizeof(a) / sizeof((a)[0]))

static int read_request_property(sd_bus_message *m, const char *name, void *info) {
        static const StringProperty times[] = {
                { "NotBefore",     offsetof(CertbrokerRequestInfo, not_before) },
                { "NotAfter",      offsetof(CertbrokerRequestInfo, not_after) },
                { "Created",       offsetof(CertbrokerRequestInfo, created) },
                { "Updated",       offsetof(CertbrokerRequestInfo, updated) },
                { "NextAttempt",   offsetof(CertbrokerRequestInfo, next_attempt) },
        };
        CertbrokerRequestInfo *i = info;
        int r;

        r = read_string_property(m, name, request_strings, ELEMENTSOF(request_strings), i);
        if (r != 0)
                return r;
        for (size_t k = 0; k < ELEMENTSOF(times); k++)
                if (strcmp(name, times[k].name) == 0)
                        return sd_bus_message_read(m, "v", "t", (uint64_t *) ((uint8_t *) i + times[k].offset));
        if (strcmp(name, "Names") == 0)
                return read_strv_property(m, &i->names);
        if (strcmp(name, "Owner") == 0)
                return sd_bus_message_read(m, "v", "u", &i->owner);
        if (strcmp(name, "Attempts") == 0)
                return sd_bus_message_read(m, "v", "u", &i->attempts);
        if (strcmp(name, "KeyAvailable") == 0) {
                int b;
                r = sd_bus_message_read(m, "v", "b", &b);
                if (r >= 0)
                        i->key_available = b;
                return r;
        }
        return sd_bus_message_skip(m, "v");       /* a newer daemon's property */
}

static int get_all(CertbrokerClient *c, const char *path, const char *iface, sd_bus_message **ret,
                   CertbrokerError *error) {
        return call_method(c, path, PROPERTIES_IFACE, "GetAll", 0, ret, error, "s", iface);
}

/* GetAll of a request's interface, by id. */
static int request_get_all(CertbrokerClient *client, const char *request, sd_bus_message **ret,
                           CertbrokerError *error) {
        char *path = NULL;
        int r;

        r = request_path(request, &path, error);
        if (r < 0)
                return r;
        r = get_all(client, path, REQUEST_IFACE, ret, error);
        free(path);
        return r;
}

_public_ int certbroker_request_get(CertbrokerClient *client, const char *request,
                                   CertbrokerRequestInfo **ret, CertbrokerError *error) {
        sd_bus_message *reply = NULL;
        CertbrokerRequestInfo *i = NULL;
        int r;

        if (!client || !ret)
                return error_setf(error, -EINVAL, NULL, "certbroker_request_get: NULL argument.");
        r = request_get_all(client, request, &reply, error);
        if (r < 0)
                return r;
        i = calloc(1, sizeof(*i));
        r = i ? read_properties(reply, read_request_property, i) : -ENOMEM;
        if (r >= 0)
                r = fill_empty(i, request_strings, ELEMENTSOF(request_strings), &i->names);
        sd_bus_message_unref(reply);
        if (r < 0) {
                certbroker_request_info_free(i);
                return error_setf(error, r, NULL, "Cannot read the properties of request %s: %s",
                                  request, strerror(-r));
        }
        *ret = i;
        return 0;
}

_public_ int certbroker_request_state(CertbrokerClient *client, const char *request,
                                     char **ret_state, CertbrokerError *error) {
        char *path = NULL;
        int r;

        if (!client || !ret_state)
                return error_setf(error, -EINVAL, NULL, "certbroker_request_state: NULL argument.");
        r = request_path(request, &path, error);
        if (r < 0)
                return r;
        r = get_property_string(client, path, REQUEST_IFACE, "State", ret_state, error);
        free(path);
        return r;
}

_public_ bool certbroker_state_is_terminal(const char *state) {
        static const char *const terminal[] = { "issued", "rejected", "failed", "cancelled" };
        if (!state)
                return false;
        for (size_t i = 0; i < sizeof(terminal) / sizeof(terminal[0]); i++)
                if (strcmp(state, terminal[i]) == 0)
                        return true;
        return false;
}

_public_ int certbroker_request_certificate(CertbrokerClient *client, const char *request,
                                           char **ret_certificate, char **ret_chain,
                                           CertbrokerError *error) {
        char *path = NULL, *cert = NULL, *chain = NULL;
        int r;

        if (!client)
                return error_setf(error, -EINVAL, NULL, "certbroker_request_certificate: NULL argument.");
        r = request_path(request, &path, error);
        if (r < 0)
                return r;
        if (ret_certificate)
                r = get_property_string(client, path, REQUEST_IFACE, "Certificate", &cert, error);
        if (r >= 0 && ret_chain)
                r = get_property_string(client, path, REQUEST_IFACE, "Chain", &chain, error);
        free(path);
        if (r < 0) {
                free(cert);
                free(chain);
                return r;
        }
        if (ret_certificate)
                *ret_certificate = cert;
        if (ret_chain)
                *ret_chain = chain;
        return 0;
}

/* ---- Wait ---- */

typedef struct WaitContext {
        bool changed;           /* a PropertiesChanged signal arrived */
        bool replied;           /* the outstanding Wait() call answered */
        int reply_r;
        sd_bus_error reply_error;
        char *reply_state;
} WaitContext;

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
        if (r >= 0)
                r = strdup_out(state, &w->reply_state);
        w->reply_r = r < 0 ? r : 0;
        return 0;
}

static uint64_t now_monotonic(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000ULL + (uint64_t) ts.tv_nsec / 1000ULL;
}

/* Reads State, Attempts and NextAttempt and reports them when they changed. */
static int wait_report(CertbrokerClient *c, const char *request, const char *id,
                       CertbrokerProgress *last, char **last_state,
                       CertbrokerProgressFn progress, void *userdata, CertbrokerError *error) {
        CertbrokerRequestInfo *i = NULL;
        int r;

        r = certbroker_request_get(c, request, &i, error);
        if (r < 0)
                return r;
        if (!*last_state || strcmp(*last_state, i->state) != 0 ||
            last->attempts != i->attempts || last->next_attempt != i->next_attempt) {
                free(*last_state);
                *last_state = i->state;
                i->state = NULL;
                *last = (CertbrokerProgress) {
                        .id = id,
                        .state = *last_state,
                        .attempts = i->attempts,
                        .next_attempt = i->next_attempt,
                };
                if (progress) {
                        r = progress(last, userdata);
                        if (r < 0) {
                                certbroker_request_info_free(i);
                                return error_setf(error, r, NULL, "Waiting for request %s was stopped.", id);
                        }
                }
        }
        certbroker_request_info_free(i);
        return 0;
}

_public_ int certbroker_wait(CertbrokerClient *client, const char *request, uint64_t timeout_usec,
                             CertbrokerProgressFn progress, void *userdata,
                             char **ret_state, CertbrokerError *error) {
        sd_bus_slot *match = NULL;
        char *path = NULL, *match_rule = NULL, *state = NULL;
        CertbrokerProgress last = {};
        const char *id;
        uint64_t deadline, now;
        int r, terminal = 0;

        if (!client)
                return error_setf(error, -EINVAL, NULL, "certbroker_wait: NULL argument.");
        r = request_path(request, &path, error);
        if (r < 0)
                return r;
        id = path + strlen(REQUEST_PREFIX) + 1;

        /* Subscribe before the first read, so no change falls between the two. */
        if (asprintf(&match_rule, "type='signal',sender='%s',path='%s',interface='%s',"
                     "member='PropertiesChanged',arg0='%s'",
                     CERTBROKER_BUS_NAME, path, PROPERTIES_IFACE, REQUEST_IFACE) < 0) {
                r = error_setf(error, -ENOMEM, NULL, "Out of memory.");
                goto finish;
        }
        WaitContext w = { .reply_error = SD_BUS_ERROR_NULL };
        r = sd_bus_add_match(client->bus, &match, match_rule, on_properties_changed, &w);
        if (r < 0) {
                r = error_setf(error, r, NULL, "Cannot subscribe to the changes of request %s: %s",
                               id, strerror(-r));
                goto finish;
        }

        now = now_monotonic();
        deadline = timeout_usec == CERTBROKER_WAIT_INFINITY || timeout_usec > UINT64_MAX - now ?
                   UINT64_MAX : now + timeout_usec;
        r = wait_report(client, path, id, &last, &state, progress, userdata, error);
        if (r < 0)
                goto finish;

        while (!certbroker_state_is_terminal(state)) {
                sd_bus_slot *call = NULL;
                uint64_t slice;

                now = now_monotonic();
                if (now >= deadline)
                        break;
                slice = deadline - now;
                if (slice > WAIT_SLICE_USEC)
                        slice = WAIT_SLICE_USEC;

                w.replied = false;
                w.changed = false;
                sd_bus_message *m = NULL;
                r = sd_bus_message_new_method_call(client->bus, &m, CERTBROKER_BUS_NAME, path,
                                                   REQUEST_IFACE, "Wait");
                if (r >= 0)
                        r = sd_bus_message_append(m, "t", slice);
                /* The call's own timeout: the slice plus a margin for a busy daemon. */
                if (r >= 0)
                        r = sd_bus_call_async(client->bus, &call, m, on_wait_reply, &w,
                                              slice + WAIT_CALL_MARGIN_USEC);
                sd_bus_message_unref(m);
                if (r < 0) {
                        r = error_setf(error, r, NULL, "Cannot call Wait() on request %s: %s", id, strerror(-r));
                        goto finish;
                }
                while (!w.replied) {
                        r = sd_bus_process(client->bus, NULL);
                        if (r < 0)
                                break;
                        if (r > 0)
                                continue;
                        if (w.changed) {
                                w.changed = false;
                                r = wait_report(client, path, id, &last, &state, progress, userdata, error);
                                if (r < 0)
                                        break;
                                continue;
                        }
                        /* sd-bus times the call out itself (an error reply). */
                        r = sd_bus_wait(client->bus, UINT64_MAX);
                        if (r < 0)
                                break;
                }
                sd_bus_slot_unref(call);
                if (r < 0) {
                        r = error_setf(error, r, NULL, "Lost the connection to certbrokerd while waiting "
                                       "for request %s: %s", id, strerror(-r));
                        goto finish;
                }
                if (w.reply_r < 0) {
                        r = error_from_bus(error, &w.reply_error, w.reply_r, "Wait");
                        sd_bus_error_free(&w.reply_error);
                        goto finish;
                }
                free(w.reply_state);
                w.reply_state = NULL;
                /* Report whatever the last slice changed (the signal may still be queued). */
                r = wait_report(client, path, id, &last, &state, progress, userdata, error);
                if (r < 0)
                        goto finish;
        }
        terminal = certbroker_state_is_terminal(state);
        if (ret_state) {
                *ret_state = state;
                state = NULL;
        }
        r = terminal ? 1 : 0;
finish:
        sd_bus_slot_unref(match);
        free(match_rule);
        free(state);
        free(path);
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
        sd_bus_message *reply = NULL;
        const char *pem;
        char *path = NULL, *copy = NULL;
        size_t n;
        int r;

        if (!client || !ret_key_pem)
                return error_setf(error, -EINVAL, NULL, "certbroker_take_key: NULL argument.");
        r = request_path(request, &path, error);
        if (r < 0)
                return r;
        r = call_method(client, path, REQUEST_IFACE, "TakeKey", 0, &reply, error, NULL);
        free(path);
        if (r < 0)
                return r;
        /* Wipe the received message's buffers when it is freed. */
        (void) sd_bus_message_sensitive(reply);
        r = sd_bus_message_read(reply, "s", &pem);
        if (r >= 0) {
                n = strlen(pem);
                copy = malloc(n + 1);
                if (!copy)
                        r = -ENOMEM;
                else
                        memcpy(copy, pem, n + 1);
        }
        sd_bus_message_unref(reply);
        if (r < 0)
                return error_setf(error, r, NULL, "TakeKey() returned an unexpected reply: %s", strerror(-r));
        *ret_key_pem = copy;
        return 0;
}

_public_ int certbroker_take_key_sealed(CertbrokerClient *client, const char *request, const uint8_t *recipient,
                                       size_t recipient_size, uint8_t **ret_sealed, size_t *ret_size,
                                       CertbrokerError *error) {
        sd_bus_message *call = NULL, *reply = NULL;
        const void *data = NULL;
        uint8_t *copy = NULL;
        char *path = NULL;
        size_t n = 0;
        int r;

        if (!client || !recipient || !ret_sealed || !ret_size)
                return error_setf(error, -EINVAL, NULL, "certbroker_take_key_sealed: NULL argument.");
        r = request_path(request, &path, error);
        if (r < 0)
                return r;
        r = sd_bus_message_new_method_call(client->bus, &call, CERTBROKER_BUS_NAME, path, REQUEST_IFACE,
                                           "TakeKeySealed");
        free(path);
        if (r >= 0)
                r = sd_bus_message_append_array(call, 'y', recipient, recipient_size);
        if (r < 0) {
                sd_bus_message_unref(call);
                return error_setf(error, r, NULL, "Cannot build the TakeKeySealed() call: %s", strerror(-r));
        }
        r = call_message(client, call, "TakeKeySealed", 0, &reply, error);
        if (r < 0)
                return r;
        r = sd_bus_message_read_array(reply, 'y', &data, &n);
        if (r >= 0 && n == 0)
                r = -EBADMSG;
        if (r >= 0) {
                copy = malloc(n);
                if (!copy)
                        r = -ENOMEM;
                else
                        memcpy(copy, data, n);
        }
        sd_bus_message_unref(reply);
        if (r < 0)
                return error_setf(error, r, NULL, "TakeKeySealed() returned an unexpected reply: %s", strerror(-r));
        *ret_sealed = copy;
        *ret_size = n;
        return 0;
}

static int request_call(CertbrokerClient *client, const char *request, const char *member,
                        CertbrokerError *error) {
        char *path = NULL;
        int r;

        if (!client)
                return error_setf(error, -EINVAL, NULL, "%s: NULL client.", member);
        r = request_path(request, &path, error);
        if (r < 0)
                return r;
        r = call_method(client, path, REQUEST_IFACE, member, 0, NULL, error, NULL);
        free(path);
        return r;
}

_public_ int certbroker_cancel(CertbrokerClient *client, const char *request, CertbrokerError *error) {
        return request_call(client, request, "Cancel", error);
}

_public_ int certbroker_request_key_sealed(CertbrokerClient *client, const char *request, bool *ret_sealed,
                                          CertbrokerError *error) {
        sd_bus_error e = SD_BUS_ERROR_NULL;
        char *path = NULL;
        int b = 0, r;

        if (!client || !ret_sealed)
                return error_setf(error, -EINVAL, NULL, "certbroker_request_key_sealed: NULL argument.");
        r = request_path(request, &path, error);
        if (r < 0)
                return r;
        r = sd_bus_get_property_trivial(client->bus, CERTBROKER_BUS_NAME, path, REQUEST_IFACE, "KeySealed", &e,
                                        'b', &b);
        free(path);
        if (r < 0 && sd_bus_error_has_names(&e, SD_BUS_ERROR_UNKNOWN_PROPERTY, SD_BUS_ERROR_INVALID_ARGS)) {
                sd_bus_error_free(&e);  /* a certbrokerd before the sealed hand-off: nothing sealed */
                *ret_sealed = false;
                return 0;
        }
        if (r < 0) {
                r = error_from_bus(error, &e, r, "Cannot read a property");
                sd_bus_error_free(&e);
                return r;
        }
        *ret_sealed = b;
        return 0;
}

_public_ int certbroker_confirm_key(CertbrokerClient *client, const char *request, CertbrokerError *error) {
        return request_call(client, request, "ConfirmKey", error);
}

_public_ int certbroker_remove(CertbrokerClient *client, const char *request, CertbrokerError *error) {
        return request_call(client, request, "Remove", error);
}

/* ---- lists ---- */

_public_ CertbrokerRequestEntry *certbroker_request_entries_free(CertbrokerRequestEntry *entries, size_t n) {
        if (!entries)
                return NULL;
        for (size_t i = 0; i < n; i++) {
                free(entries[i].id);
                free(entries[i].state);
                free(entries[i].path);
        }
        free(entries);
        return NULL;
}

_public_ int certbroker_list_requests(CertbrokerClient *client, CertbrokerRequestEntry **ret,
                                      size_t *ret_n, CertbrokerError *error) {
        sd_bus_message *reply = NULL;
        CertbrokerRequestEntry *l = NULL;
        size_t n = 0;
        int r;

        if (!client || !ret || !ret_n)
                return error_setf(error, -EINVAL, NULL, "certbroker_list_requests: NULL argument.");
        r = call_method(client, CERTBROKER_MANAGER_PATH, MANAGER_IFACE, "ListRequests", 0, &reply, error, NULL);
        if (r < 0)
                return r;
        r = sd_bus_message_enter_container(reply, 'a', "(sso)");
        while (r >= 0) {
                const char *id, *state, *path;
                CertbrokerRequestEntry *a;

                r = sd_bus_message_read(reply, "(sso)", &id, &state, &path);
                if (r <= 0)
                        break;
                a = realloc(l, (n + 1) * sizeof(*l));
                if (!a) {
                        r = -ENOMEM;
                        break;
                }
                l = a;
                l[n] = (CertbrokerRequestEntry) { strdup(id), strdup(state), strdup(path) };
                n++;
                if (!l[n - 1].id || !l[n - 1].state || !l[n - 1].path)
                        r = -ENOMEM;
        }
        if (r >= 0)
                r = sd_bus_message_exit_container(reply);
        sd_bus_message_unref(reply);
        if (r < 0) {
                certbroker_request_entries_free(l, n);
                return error_setf(error, r, NULL, "ListRequests() returned an unexpected reply: %s",
                                  strerror(-r));
        }
        *ret = l;
        *ret_n = n;
        return 0;
}

_public_ int certbroker_list_cas(CertbrokerClient *client, char ***ret_names, CertbrokerError *error) {
        sd_bus_message *reply = NULL;
        char **l = NULL;
        size_t n = 0;
        int r;

        if (!client || !ret_names)
                return error_setf(error, -EINVAL, NULL, "certbroker_list_cas: NULL argument.");
        r = call_method(client, CERTBROKER_MANAGER_PATH, MANAGER_IFACE, "ListCAs", 0, &reply, error, NULL);
        if (r < 0)
                return r;
        l = calloc(1, sizeof(char *));
        r = l ? sd_bus_message_enter_container(reply, 'a', "(so)") : -ENOMEM;
        while (r >= 0) {
                const char *name, *path;
                char **a;

                r = sd_bus_message_read(reply, "(so)", &name, &path);
                if (r <= 0)
                        break;
                a = realloc(l, (n + 2) * sizeof(char *));
                if (!a) {
                        r = -ENOMEM;
                        break;
                }
                l = a;
                l[n] = strdup(name);
                l[n + 1] = NULL;
                if (!l[n]) {
                        r = -ENOMEM;
                        break;
                }
                n++;
        }
        if (r >= 0)
                r = sd_bus_message_exit_container(reply);
        sd_bus_message_unref(reply);
        if (r < 0) {
                certbroker_strv_free(l);
                return error_setf(error, r, NULL, "ListCAs() returned an unexpected reply: %s", strerror(-r));
        }
        *ret_names = l;
        return 0;
}

/* ---- CAs ---- */

_public_ CertbrokerCAInfo *certbroker_ca_info_free(CertbrokerCAInfo *i) {
        if (!i)
                return NULL;
        free(i->name);
        free(i->url);
        free(i->admin_url);
        free(i->authentication);
        free(i->challenge);
        certbroker_strv_free(i->capabilities);
        free(i->last_error);
        free(i);
        return NULL;
}

static int read_ca_property(sd_bus_message *m, const char *name, void *info) {
        CertbrokerCAInfo *i = info;
        int r;

        r = read_string_property(m, name, ca_strings, ELEMENTSOF(ca_strings), i);
        if (r != 0)
                return r;
        if (strcmp(name, "LastContact") == 0)
                return sd_bus_message_read(m, "v", "t", &i->last_contact);
        if (strcmp(name, "Capabilities") == 0)
                return read_strv_property(m, &i->capabilities);
        return sd_bus_message_skip(m, "v");       /* certificates, and newer properties */
}

_public_ int certbroker_ca_get(CertbrokerClient *client, const char *ca, CertbrokerCAInfo **ret,
                               CertbrokerError *error) {
        sd_bus_message *reply = NULL;
        CertbrokerCAInfo *i = NULL;
        char *path = NULL;
        int r;

        if (!client || !ret)
                return error_setf(error, -EINVAL, NULL, "certbroker_ca_get: NULL argument.");
        r = ca_path(ca, &path, error);
        if (r < 0)
                return r;
        r = get_all(client, path, CA_IFACE, &reply, error);
        free(path);
        if (r < 0) {
                if (certbroker_error_has_name(error, SD_BUS_ERROR_UNKNOWN_OBJECT) ||
                    certbroker_error_has_name(error, SD_BUS_ERROR_UNKNOWN_INTERFACE)) {
                        certbroker_error_clear(error);
                        return error_setf(error, -ENXIO, CERTBROKER_ERROR_UNKNOWN_CA,
                                          "No CA '%.100s' is configured (see 'certbrokerctl cas').", ca);
                }
                return r;
        }
        i = calloc(1, sizeof(*i));
        r = i ? read_properties(reply, read_ca_property, i) : -ENOMEM;
        if (r >= 0)
                r = fill_empty(i, ca_strings, ELEMENTSOF(ca_strings), &i->capabilities);
        sd_bus_message_unref(reply);
        if (r < 0) {
                certbroker_ca_info_free(i);
                return error_setf(error, r, NULL, "Cannot read the properties of CA '%s': %s",
                                  ca, strerror(-r));
        }
        *ret = i;
        return 0;
}

_public_ CertbrokerCheckStep *certbroker_check_steps_free(CertbrokerCheckStep *steps, size_t n) {
        if (!steps)
                return NULL;
        for (size_t i = 0; i < n; i++) {
                free(steps[i].step);
                free(steps[i].result);
                free(steps[i].detail);
        }
        free(steps);
        return NULL;
}

_public_ int certbroker_ca_check(CertbrokerClient *client, const char *ca, bool with_challenge,
                                 CertbrokerCheckStep **ret_steps, size_t *ret_n, CertbrokerError *error) {
        sd_bus_message *reply = NULL;
        CertbrokerCheckStep *l = NULL;
        char *path = NULL;
        size_t n = 0;
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
        free(path);
        if (r < 0) {
                if (certbroker_error_has_name(error, SD_BUS_ERROR_UNKNOWN_OBJECT) ||
                    certbroker_error_has_name(error, SD_BUS_ERROR_UNKNOWN_METHOD)) {
                        certbroker_error_clear(error);
                        return error_setf(error, -ENXIO, CERTBROKER_ERROR_UNKNOWN_CA,
                                          "No CA '%.100s' is configured (see 'certbrokerctl cas').", ca);
                }
                return r;
        }
        r = sd_bus_message_enter_container(reply, 'a', "(sss)");
        while (r >= 0) {
                const char *step, *result, *detail;
                CertbrokerCheckStep *a;

                r = sd_bus_message_read(reply, "(sss)", &step, &result, &detail);
                if (r <= 0)
                        break;
                a = realloc(l, (n + 1) * sizeof(*l));
                if (!a) {
                        r = -ENOMEM;
                        break;
                }
                l = a;
                l[n] = (CertbrokerCheckStep) { strdup(step), strdup(result), strdup(detail) };
                n++;
                if (!l[n - 1].step || !l[n - 1].result || !l[n - 1].detail)
                        r = -ENOMEM;
                else if (strcmp(result, "fail") == 0)
                        failed++;
        }
        if (r >= 0)
                r = sd_bus_message_exit_container(reply);
        sd_bus_message_unref(reply);
        if (r < 0) {
                certbroker_check_steps_free(l, n);
                return error_setf(error, r, NULL, "Check() returned an unexpected reply: %s", strerror(-r));
        }
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

_public_ CertbrokerRenewal *certbroker_renewal_free(CertbrokerRenewal *r) {
        if (!r)
                return NULL;
        free(r->state);
        free(r->successor);
        free(r->predecessor);
        free(r);
        return NULL;
}

/* An object path property holding a request path (or "/") into an id ("" for "/"). */
static int read_request_link(sd_bus_message *m, char **slot) {
        const char *p;
        char *id = NULL;
        int r;

        r = sd_bus_message_read(m, "v", "o", &p);
        if (r < 0)
                return r;
        if (strcmp(p, "/") != 0) {
                r = sd_bus_path_decode(p, REQUEST_PREFIX, &id);
                if (r < 0)
                        return r;
                if (r == 0 || !request_id_is_valid(id, strlen(id))) {
                        free(id);
                        return -EBADMSG;
                }
        } else if (strdup_out("", &id) < 0)
                return -ENOMEM;
        free(*slot);
        *slot = id;
        return 0;
}

static int read_renewal_property(sd_bus_message *m, const char *name, void *info) {
        CertbrokerRenewal *i = info;
        int r;

        if (strcmp(name, "Renew") == 0) {
                int b;
                r = sd_bus_message_read(m, "v", "b", &b);
                if (r >= 0)
                        i->renew = b;
                return r;
        }
        if (strcmp(name, "RenewAt") == 0)
                return sd_bus_message_read(m, "v", "t", &i->renew_at);
        if (strcmp(name, "NotAfter") == 0)
                return sd_bus_message_read(m, "v", "t", &i->not_after);
        if (strcmp(name, "Successor") == 0)
                return read_request_link(m, &i->successor);
        if (strcmp(name, "Predecessor") == 0)
                return read_request_link(m, &i->predecessor);
        if (strcmp(name, "State") == 0) {
                const char *s;
                r = sd_bus_message_read(m, "v", "s", &s);
                if (r >= 0) {
                        free(i->state);
                        i->state = NULL;
                        r = strdup_out(s, &i->state);
                }
                return r;
        }
        return sd_bus_message_skip(m, "v");
}

static const StringProperty renewal_strings[] = {
        { "State",       offsetof(CertbrokerRenewal, state) },
        { "Successor",   offsetof(CertbrokerRenewal, successor) },
        { "Predecessor", offsetof(CertbrokerRenewal, predecessor) },
};

_public_ int certbroker_request_renewal(CertbrokerClient *client, const char *request,
                                        CertbrokerRenewal **ret, CertbrokerError *error) {
        sd_bus_message *reply = NULL;
        CertbrokerRenewal *i = NULL;
        int r;

        if (!client || !ret)
                return error_setf(error, -EINVAL, NULL, "certbroker_request_renewal: NULL argument.");
        r = request_get_all(client, request, &reply, error);
        if (r < 0)
                return r;
        i = calloc(1, sizeof(*i));
        r = i ? read_properties(reply, read_renewal_property, i) : -ENOMEM;
        if (r >= 0)     /* "" where a daemon without renewal says nothing */
                r = fill_empty(i, renewal_strings, ELEMENTSOF(renewal_strings), NULL);
        sd_bus_message_unref(reply);
        if (r < 0) {
                certbroker_renewal_free(i);
                return error_setf(error, r, NULL, "Cannot read the renewal properties of request %s: %s",
                                  request, strerror(-r));
        }
        *ret = i;
        return 0;
}

_public_ int certbroker_stop_renewal(CertbrokerClient *client, const char *request, CertbrokerError *error) {
        return request_call(client, request, "StopRenewal", error);
}

static uint64_t now_realtime(void) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        return (uint64_t) ts.tv_sec * 1000000ULL + (uint64_t) ts.tv_nsec / 1000ULL;
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

_public_ int certbroker_wait_successor(CertbrokerClient *client, const char *request, uint64_t timeout_usec,
                                       char **ret_successor, CertbrokerError *error) {
        sd_bus_slot *match = NULL;
        char *path = NULL, *match_rule = NULL;
        WaitContext w = { .reply_error = SD_BUS_ERROR_NULL };
        uint64_t deadline, now;
        const char *id;
        int r;

        if (!client)
                return error_setf(error, -EINVAL, NULL, "certbroker_wait_successor: NULL argument.");
        r = request_path(request, &path, error);
        if (r < 0)
                return r;
        id = path + strlen(REQUEST_PREFIX) + 1;

        /* Subscribe before the first read, so no change falls between the two. */
        if (asprintf(&match_rule, "type='signal',sender='%s',path='%s',interface='%s',"
                     "member='PropertiesChanged',arg0='%s'",
                     CERTBROKER_BUS_NAME, path, PROPERTIES_IFACE, REQUEST_IFACE) < 0) {
                match_rule = NULL;
                r = error_setf(error, -ENOMEM, NULL, "Out of memory.");
                goto finish;
        }
        r = sd_bus_add_match(client->bus, &match, match_rule, on_properties_changed, &w);
        if (r < 0) {
                r = error_setf(error, r, NULL, "Cannot subscribe to the changes of request %s: %s",
                               id, strerror(-r));
                goto finish;
        }

        now = now_monotonic();
        deadline = timeout_usec == CERTBROKER_WAIT_INFINITY || timeout_usec > UINT64_MAX - now ?
                   UINT64_MAX : now + timeout_usec;
        for (;;) {
                CertbrokerRenewal *i = NULL;
                uint64_t next, real;

                w.changed = false;
                r = certbroker_request_renewal(client, path, &i, error);
                if (r < 0)
                        goto finish;
                if (*i->successor) {
                        if (ret_successor) {
                                *ret_successor = i->successor;
                                i->successor = NULL;
                        }
                        certbroker_renewal_free(i);
                        r = 1;
                        goto finish;
                }
                if (renewal_ended(i)) {
                        certbroker_renewal_free(i);
                        r = CERTBROKER_CHAIN_ENDED;
                        goto finish;
                }
                now = now_monotonic();
                if (now >= deadline) {
                        certbroker_renewal_free(i);
                        r = 0;
                        goto finish;
                }
                /* The next read: a signal, the poll interval, RenewAt (plus a second for the
                 * daemon to make the successor), or the deadline, whichever comes first. */
                next = now + SUCCESSOR_POLL_USEC;
                real = now_realtime();
                if (i->renew_at > 0) {
                        uint64_t at = i->renew_at > real ? now + (i->renew_at - real) : now;
                        at += 1000000ULL;
                        if (at < next)
                                next = at;
                }
                if (next > deadline)
                        next = deadline;
                certbroker_renewal_free(i);
                while (!w.changed) {
                        now = now_monotonic();
                        if (now >= next)
                                break;
                        r = sd_bus_process(client->bus, NULL);
                        if (r < 0)
                                break;
                        if (r > 0)
                                continue;
                        r = sd_bus_wait(client->bus, next - now);
                        if (r < 0)
                                break;
                }
                if (r < 0) {
                        r = error_setf(error, r, NULL, "Lost the connection to certbrokerd while waiting "
                                       "for the successor of request %s: %s", id, strerror(-r));
                        goto finish;
                }
        }
finish:
        sd_bus_slot_unref(match);
        free(match_rule);
        free(path);
        return r;
}

_public_ int certbroker_chain_latest(CertbrokerClient *client, const char *request, char **ret_id,
                                     CertbrokerError *error) {
        char *path = NULL, *cur = NULL;
        int r;

        if (!client || !ret_id)
                return error_setf(error, -EINVAL, NULL, "certbroker_chain_latest: NULL argument.");
        r = request_path(request, &path, error);
        if (r < 0)
                return r;
        r = strdup_out(path + strlen(REQUEST_PREFIX) + 1, &cur);
        free(path);
        if (r < 0)
                return error_setf(error, r, NULL, "Out of memory.");
        for (unsigned k = 0; k < CHAIN_LINKS_MAX; k++) {
                CertbrokerRenewal *i = NULL;

                r = certbroker_request_renewal(client, cur, &i, error);
                if (r < 0) {
                        free(cur);
                        return r;
                }
                if (!*i->successor) {
                        certbroker_renewal_free(i);
                        *ret_id = cur;
                        return 0;
                }
                free(cur);
                cur = i->successor;
                i->successor = NULL;
                certbroker_renewal_free(i);
        }
        free(cur);
        return error_setf(error, -ELOOP, NULL, "The chain of request %s has more than %u links.",
                          request, CHAIN_LINKS_MAX);
}
