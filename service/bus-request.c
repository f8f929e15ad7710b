/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* org.certbroker.Broker1.Request objects: readable and callable by the request's owner and
 * root; reading, Wait(), Cancel() and StopRenewal() also by whom polkit authorizes for
 * org.certbroker.broker1.manage (never the key: TakeKey, TakeKeySealed, ConfirmKey, nor
 * Remove). Access is decided in the find callback, before any property or method; polkit's
 * answer is asked for by a bus filter first (request_filter()), since the lookup cannot wait. */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "basic.h"
#include "bus-pending.h"
#include "bus-polkit.h"
#include "bus-text.h"
#include "bus-util.h"
#include "caller.h"
#include "renewal.h"
#include "log.h"
#include "manager.h"

#define WAITERS_PER_REQUEST_MAX 64U

static bool member_is_delegable(sd_bus_message *msg);

/* The request at path, if the current message may see it: 1 and *ret; 0 not a request's path;
 * a negative errno with error set. */
static int request_lookup(sd_bus *bus, const char *path, Manager *m, Request **ret, sd_bus_error *error) {
        sd_bus_message *msg = sd_bus_get_current_message(bus);
        _cleanup_(freep) char *id = NULL;
        Request *req;
        uid_t uid;
        int r;

        r = sd_bus_path_decode(path, CB_REQUEST_PREFIX, &id);
        if (r <= 0)
                return r;
        req = store_id_is_valid(id) ? manager_find_request(m, id) : NULL;
        if (!req) {
                char echo[BUS_TEXT_ECHO_SIZE(32)];
                return bus_error_set(error, BROKER_ERROR_NO_SUCH_REQUEST, "No request '%s'.",
                                     bus_text_echo(id, 32, echo, sizeof echo));
        }

        /* The daemon itself is emitting a signal for this object (bus_request_changed()). Not
         * judged by the current message: that is whatever call is being answered meanwhile,
         * perhaps another user's, whose method changed this request on the way (a slot it
         * freed let this one go on), and judging it would drop the owner's signal. The
         * signal carries names only (org.certbroker.Broker1(5)). */
        if (!msg || m->emitting_request_change) {
                *ret = req;
                return 1;
        }
        r = caller_uid_from_message(m->callers, msg, &uid);
        if (r < 0)
                return bus_caller_error(m, error, r);
        if (uid != 0 && uid != req->rec->owner) {
                sd_bus_error perr = SD_BUS_ERROR_NULL;

                r = member_is_delegable(msg) ? bus_polkit_known(m, msg, CB_POLKIT_ACTION_MANAGE, &perr) : 0;
                if (r > 0) {
                        *ret = req;
                        return 1;
                }
                r = bus_error_set(error, BROKER_ERROR_ACCESS_DENIED, "Request %s belongs to another user%s%s",
                                  req->rec->id, perr.message ? "; " : ".", perr.message ?: "");
                if (sd_bus_error_has_name(&perr, SD_BUS_ERROR_INTERACTIVE_AUTHORIZATION_REQUIRED)) {
                        sd_bus_error e = SD_BUS_ERROR_NULL;
                        (void) sd_bus_error_set(&e, perr.name, error->message);
                        sd_bus_error_free(error);
                        (void) sd_bus_error_move(error, &e);
                }
                sd_bus_error_free(&perr);
                return r;
        }
        *ret = req;
        return 1;
}

/* The Request (for the methods) and its record (for the properties, by offset). */
static int request_find(sd_bus *bus, const char *path, const char *interface, void *userdata,
                        void **ret_found, sd_bus_error *error) {
        Request *req;
        int r = request_lookup(bus, path, userdata, &req, error);

        if (r > 0)
                *ret_found = req;
        return r;
}

static int record_find(sd_bus *bus, const char *path, const char *interface, void *userdata,
                       void **ret_found, sd_bus_error *error) {
        Manager *m = (Manager *) ((uint8_t *) userdata - offsetof(Manager, requests));
        Request *req;
        int r = request_lookup(bus, path, m, &req, error);

        if (r > 0)
                *ret_found = req->rec;
        return r;
}

/* What polkit's .manage may let a non-owner do with a request: read it (properties,
 * introspection), Wait(), Cancel(), StopRenewal(). Never the key, nor Remove(). */
static bool member_is_delegable(sd_bus_message *msg) {
        const char *iface = sd_bus_message_get_interface(msg), *member = sd_bus_message_get_member(msg);

        if (!iface || !member)
                return false;
        if (strcmp(iface, "org.freedesktop.DBus.Properties") == 0)
                return strcmp(member, "Get") == 0 || strcmp(member, "GetAll") == 0;
        if (strcmp(iface, "org.freedesktop.DBus.Introspectable") == 0)
                return strcmp(member, "Introspect") == 0;
        if (strcmp(iface, CB_REQUEST_IFACE) == 0)
                return strcmp(member, "Wait") == 0 || strcmp(member, "Cancel") == 0 ||
                       strcmp(member, "StopRenewal") == 0;
        return false;
}

/* Runs before the object lookup for every incoming message: a call on another user's request
 * that polkit might allow is held until polkit has answered (bus-polkit.h), then dispatched
 * again; request_find() reads the answer. Everything else passes untouched. */
static int request_filter(sd_bus_message *msg, void *userdata, sd_bus_error *ret_error) {
        _cleanup_(freep) char *id = NULL;
        Manager *m = userdata;
        const char *path = sd_bus_message_get_path(msg);
        Request *req;
        uid_t uid;
        int r;

        if (!sd_bus_message_is_method_call(msg, NULL, NULL) || !path || m->emitting_request_change)
                return 0;
        if (strncmp(path, CB_REQUEST_PREFIX "/", strlen(CB_REQUEST_PREFIX "/")) != 0 || !member_is_delegable(msg))
                return 0;
        if (sd_bus_path_decode(path, CB_REQUEST_PREFIX, &id) <= 0)
                return 0;
        req = store_id_is_valid(id) ? manager_find_request(m, id) : NULL;
        if (!req || caller_uid_from_message(m->callers, msg, &uid) < 0 || uid == 0 || uid == req->rec->owner)
                return 0;

        sd_bus_error perr = SD_BUS_ERROR_NULL;
        r = bus_polkit_authorize(m, msg, uid, CB_POLKIT_ACTION_MANAGE, "read or change another user's request", &perr);
        sd_bus_error_free(&perr);
        return r == 0;  /* held: it comes again when polkit has answered */
}

static int request_enumerate(sd_bus *bus, const char *prefix, void *userdata, char ***ret_nodes,
                             sd_bus_error *error) {
        _cleanup_(bus_nodes_freep) char **nodes = NULL;
        Manager *m = userdata;
        sd_bus_message *msg = sd_bus_get_current_message(bus);
        size_t n = 0;
        uid_t uid = (uid_t) -1;

        if (msg && caller_uid_from_message(m->callers, msg, &uid) < 0)
                uid = (uid_t) -1;
        nodes = calloc(m->n_requests + 1, sizeof(char *));
        if (!nodes)
                return -ENOMEM;
        for (size_t i = 0; i < m->n_requests; i++) {
                if (uid != 0 && uid != m->requests[i]->rec->owner)
                        continue;
                if (bus_request_path(m->requests[i]->rec->id, &nodes[n]) < 0)
                        return -ENOMEM;
                n++;
        }
        *ret_nodes = TAKE_PTR(nodes);
        return 0;
}

/* The record's fields, each at its offset in StoreRequest (record_find()). */
static int get_state(sd_bus *bus, const char *path, const char *interface, const char *property,
                     sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        return bus_append_text(reply, request_state_to_string(*(const RequestState *) userdata));
}

static int get_names(sd_bus *bus, const char *path, const char *interface, const char *property,
                     sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        return sd_bus_message_append_strv(reply, *(char ***) userdata);
}

/* Successor, Predecessor: the request's object path, "/" when there is none. */
static int get_link(sd_bus *bus, const char *path, const char *interface, const char *property,
                    sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        const char *id = *(const char *const *) userdata;
        _cleanup_(freep) char *p = NULL;
        int r;

        if (!id || !store_id_is_valid(id))
                return sd_bus_message_append(reply, "o", "/");
        r = bus_request_path(id, &p);
        if (r < 0)
                return r;
        return sd_bus_message_append(reply, "o", p);
}

/* ---- Wait() ---- */

static void wait_answer(PendingReply *p) {
        Request *req = p->data;

        (void) pending_reply_return(p, "s", request_state_to_string(req->rec->state));
}

static void wake_waiters(Request *req) {
        while (req->waiters)
                wait_answer(req->waiters);
}

void bus_request_caller_gone(const char *unique_name, void *userdata) {
        Manager *m = userdata;
        unsigned dropped = 0;

        for (size_t i = 0; i < m->n_requests; i++)
                for (PendingReply *p = m->requests[i]->waiters, *next; p; p = next) {
                        const char *sender = sd_bus_message_get_sender(p->call);
                        next = p->next;
                        if (!sender || strcmp(sender, unique_name) != 0)
                                continue;
                        pending_reply_drop(p);
                        dropped++;
                }
        if (dropped > 0)
                log_debug("%s left the bus: dropped its %u Wait() call(s).", unique_name, dropped);
}

static int method_wait(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Request *req = userdata;
        PendingReply *p = NULL;
        uint64_t timeout;
        unsigned n;
        int r;

        r = sd_bus_message_read(msg, "t", &timeout);
        if (r < 0)
                return r;
        if (timeout == 0 || request_state_is_terminal(req->rec->state))
                return sd_bus_reply_method_return(msg, "s", request_state_to_string(req->rec->state));

        n = pending_reply_count(req->waiters);
        if (n >= WAITERS_PER_REQUEST_MAX)
                return bus_error_set(error, BROKER_ERROR_QUOTA_EXCEEDED,
                                     "Request %s already has %u Wait() calls outstanding.",
                                     req->rec->id, WAITERS_PER_REQUEST_MAX);
        r = pending_reply_new(msg, &req->waiters, req, &p);
        if (r < 0)
                return r;
        r = pending_reply_set_timeout(p, req->manager->event, timeout, wait_answer);
        if (r < 0) {
                pending_reply_drop(p);
                return r;
        }
        return 1;       /* replied later, exactly once */
}

/* ---- the owner's operations: request.c does them ---- */

static int key_not_ready(Request *req, sd_bus_error *error) {
        return bus_error_set(error, BROKER_ERROR_NOT_READY, "Request %s is %s: the key can be taken once it is issued.",
                             req->rec->id, request_state_to_string(req->rec->state));
}

static int key_gone(Request *req, sd_bus_error *error) {
        if (req->rec->key_sealed)
                return bus_error_set(error, BROKER_ERROR_KEY_ALREADY_TAKEN,
                                     "The private key of request %s was sealed to a receiver (TakeKeySealed) and "
                                     "erased; only that receiver can open the sealed copy.", req->rec->id);
        return bus_error_set(error, BROKER_ERROR_KEY_ALREADY_TAKEN,
                             req->rec->not_after != 0 && req->rec->not_after <= now_usec() ?
                             "The private key of request %s was erased when its certificate expired." :
                             "The private key of request %s was already taken and has been erased.",
                             req->rec->id);
}

/* The erase is on disk: the reply (holding the key, or its sealed copy, or saying that the key
 * or the request is gone) goes out. On an fsync error it still goes: the key is no longer the
 * broker's to give, and a caller without it would have lost it; the erase may then come back
 * after a power loss. */
static void on_erase_durable(int error, void *userdata) {
        sd_bus_message *reply = userdata;

        if (error < 0)
                log_warning_errno(error, "An erase (a key, a request) may not be on disk (fsync failed): %m");
        (void) sd_bus_send(NULL, reply, NULL);
        sd_bus_message_unref(reply);
}

/* Sends reply once the erase just committed is durable (the journal's group commit, off the
 * loop), and has the journal's worker truncate the WAL after it. Returns 1 when deferred (the
 * method handler's "answered" for sd-bus). */
static int send_after_erase(Manager *m, sd_bus_message *reply) {
        JournalSync *j = m->journal_sync;
        int r;

        if (!j)
                return sd_bus_send(NULL, reply, NULL);
        r = journal_sync_request(j, on_erase_durable, reply, NULL);
        if (r < 0)
                return r;
        sd_bus_message_ref(reply);
        journal_sync_request_checkpoint(j);
        return 1;
}

static int method_take_key(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        Request *req = userdata;
        CbSecret *pem = NULL;
        int r;

        r = sd_bus_message_new_method_return(msg, &reply);
        if (r < 0)
                return r;
        /* The reply holds the key: have sd-bus wipe it when freed. */
        r = sd_bus_message_sensitive(reply);
        if (r < 0)
                return r;
        r = request_take_key(req, &pem);
        if (r == -EBUSY)
                return key_not_ready(req, error);
        if (r == -ENOKEY)
                return key_gone(req, error);
        if (r < 0)
                return sd_bus_error_set_errnof(error, r, "Cannot read the stored key: %m");
        r = sd_bus_message_append(reply, "s", (const char *) pem->data);
        secret_free(pem);
        if (r < 0)
                return r;
        return send_after_erase(req->manager, reply);
}

/* An empty method return for msg, sent once the erase just committed is on disk. */
static int reply_after_erase(Manager *m, sd_bus_message *msg) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        int r;

        r = sd_bus_message_new_method_return(msg, &reply);
        if (r < 0)
                return r;
        return send_after_erase(m, reply);
}

static int method_take_key_sealed(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_(freep) uint8_t *box = NULL;
        Request *req = userdata;
        const void *recipient = NULL;
        size_t n = 0, size = 0;
        int r;

        r = sd_bus_message_read_array(msg, 'y', &recipient, &n);
        if (r < 0)
                return r;
        r = request_take_key_sealed(req, recipient, n, &box, &size);
        switch (r) {
        case -EBUSY:
                return key_not_ready(req, error);
        case -EINVAL:
                return bus_error_set(error, BROKER_ERROR_INVALID_ARGUMENT,
                                     "The recipient is %zu bytes: it must be an X25519 public key of %u bytes "
                                     "(libsodium crypto_box_keypair()).", n, STORE_SEAL_RECIPIENT_LEN);
        case -EDOM:
                return bus_error_set(error, BROKER_ERROR_INVALID_ARGUMENT,
                                     "The recipient is not a usable X25519 public key (a low-order point); the key "
                                     "is still in the broker.");
        case -EPERM:
                return bus_error_set(error, BROKER_ERROR_KEY_ALREADY_TAKEN,
                                     "The private key of request %s was sealed to another recipient: only the "
                                     "receiver that asked first can have it.", req->rec->id);
        case -ENOKEY:
                return key_gone(req, error);
        }
        if (r < 0)
                return sd_bus_error_set_errnof(error, r, "Cannot seal the stored key: %m");
        bool again = r == 1;    /* the copy sealed before: nothing erased now */
        r = sd_bus_message_new_method_return(msg, &reply);
        if (r < 0)
                return r;
        r = sd_bus_message_append_array(reply, 'y', box, size);
        if (r < 0)
                return r;
        return again ? sd_bus_send(NULL, reply, NULL) : send_after_erase(req->manager, reply);
}

static int method_confirm_key(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Request *req = userdata;
        int r;

        r = request_confirm_key(req);
        if (r == -EBUSY)
                return bus_error_set(error, BROKER_ERROR_NOT_READY,
                                     req->rec->state == REQUEST_ISSUED ?
                                     "Request %s: its key has not been taken; ConfirmKey() follows TakeKeySealed()." :
                                     "Request %s is %s: ConfirmKey() follows TakeKeySealed() of an issued request.",
                                     req->rec->id, request_state_to_string(req->rec->state));
        if (r < 0)
                return sd_bus_error_set_errnof(error, r, "Cannot erase the sealed key: %m");
        if (r > 0)
                return sd_bus_reply_method_return(msg, NULL);   /* confirmed before: nothing erased */
        return reply_after_erase(req->manager, msg);
}

static int method_cancel(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Request *req = userdata;
        int r;

        r = request_cancel(req);
        if (r == -EBUSY)
                return bus_error_set(error, BROKER_ERROR_NOT_READY,
                                     "Request %s is already %s; only a request in progress can be cancelled "
                                     "(Remove() forgets a finished one).",
                                     req->rec->id, request_state_to_string(req->rec->state));
        if (r < 0)
                return sd_bus_error_set_errnof(error, r, "Cannot record the cancellation: %m");
        if (r > 0)
                return sd_bus_reply_method_return(msg, NULL);   /* cancelled before: nothing erased */
        return reply_after_erase(req->manager, msg);
}

static int method_stop_renewal(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Request *req = userdata;
        int r;

        r = renewal_stop(req);
        if (r < 0)
                return sd_bus_error_set_errnof(error, r, "Cannot record that renewal stops: %m");
        return sd_bus_reply_method_return(msg, NULL);
}

static int method_remove(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Request *req = userdata;
        Manager *m = req->manager;      /* req is freed by its removal */
        int r;

        if (!request_state_is_terminal(req->rec->state))
                return bus_error_set(error, BROKER_ERROR_NOT_READY,
                                     "Request %s is %s: Cancel() it first, or wait until it ends.",
                                     req->rec->id, request_state_to_string(req->rec->state));
        r = request_remove(req);
        if (r < 0)
                return sd_bus_error_set_errnof(error, r, "Cannot remove the request from the journal: %m");
        return reply_after_erase(m, msg);
}

#define CONST SD_BUS_VTABLE_PROPERTY_CONST
#define INVAL SD_BUS_VTABLE_PROPERTY_EMITS_INVALIDATION
#define REC(name, sig, getter, field, flags) \
        SD_BUS_PROPERTY(name, sig, getter, offsetof(StoreRequest, field), flags)

/* The properties: the record's fields (userdata: the StoreRequest, record_find()). */
static const sd_bus_vtable record_vtable[] = {
        SD_BUS_VTABLE_START(0),
        REC("Id", "s", bus_property_get_chars, id, CONST),
        REC("CA", "s", bus_property_get_text, ca, CONST),
        REC("Label", "s", bus_property_get_text, label, CONST),
        REC("Subject", "s", bus_property_get_text, subject, CONST),
        REC("Key", "s", bus_property_get_text, key, CONST),
        REC("Usage", "s", bus_property_get_text, usage, CONST),
        REC("Names", "as", get_names, names, CONST),
        REC("Owner", "u", bus_property_get_u32, owner, CONST),
        REC("State", "s", get_state, state, INVAL),
        REC("Error", "s", bus_property_get_text, error, INVAL),
        REC("ErrorMessage", "s", bus_property_get_text, error_message, INVAL),
        REC("FailInfo", "s", bus_property_get_text, fail_info, INVAL),
        REC("Warning", "s", bus_property_get_text, warning, INVAL),
        REC("TransactionId", "s", bus_property_get_text, transaction_id, INVAL),
        REC("Certificate", "s", bus_property_get_text, certificate, INVAL),
        REC("Chain", "s", bus_property_get_text, chain, INVAL),
        REC("Serial", "s", bus_property_get_text, serial, INVAL),
        REC("NotBefore", "t", bus_property_get_usec, not_before, INVAL),
        REC("NotAfter", "t", bus_property_get_usec, not_after, INVAL),
        REC("Created", "t", bus_property_get_usec, created, CONST),
        REC("Updated", "t", bus_property_get_usec, updated, INVAL),
        REC("NextAttempt", "t", bus_property_get_usec, next_attempt, INVAL),
        REC("Attempts", "u", bus_property_get_u32, attempts, INVAL),
        REC("KeyAvailable", "b", bus_property_get_bool, key_available, INVAL),
        REC("KeySealed", "b", bus_property_get_bool, key_sealed, INVAL),
        REC("Renew", "b", bus_property_get_bool, renew, INVAL),
        REC("RenewAt", "t", bus_property_get_usec, renew_at, INVAL),
        REC("Successor", "o", get_link, successor, INVAL),
        REC("Predecessor", "o", get_link, predecessor, CONST),
        SD_BUS_VTABLE_END
};

/* The methods (userdata: the Request, request_find()). */
static const sd_bus_vtable request_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_METHOD_WITH_NAMES("Wait", "t", SD_BUS_PARAM(timeout_usec), "s", SD_BUS_PARAM(state),
                                 method_wait, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_NAMES("TakeKey", "", , "s", SD_BUS_PARAM(key_pem),
                                 method_take_key, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_NAMES("TakeKeySealed", "ay", SD_BUS_PARAM(recipient), "ay", SD_BUS_PARAM(sealed_key),
                                 method_take_key_sealed, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD("ConfirmKey", "", "", method_confirm_key, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD("Cancel", "", "", method_cancel, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD("Remove", "", "", method_remove, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD("StopRenewal", "", "", method_stop_renewal, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_VTABLE_END
};

int bus_request_register(Manager *m) {
        int r;

        /* Two vtables of one interface: sd-bus wants each its own userdata, so the record's
         * gets &m->requests (record_find() goes back to m). */
        r = sd_bus_add_fallback_vtable(m->bus, NULL, CB_REQUEST_PREFIX, CB_REQUEST_IFACE,
                                       record_vtable, record_find, &m->requests);
        if (r < 0)
                return r;
        r = sd_bus_add_fallback_vtable(m->bus, NULL, CB_REQUEST_PREFIX, CB_REQUEST_IFACE,
                                       request_vtable, request_find, m);
        if (r < 0)
                return r;
        r = sd_bus_add_filter(m->bus, NULL, request_filter, m);
        if (r < 0)
                return r;
        return sd_bus_add_node_enumerator(m->bus, NULL, CB_REQUEST_PREFIX, request_enumerate, m);
}

void bus_request_changed(Request *r) {
        _cleanup_(freep) char *path = NULL;

        if (r->manager->bus && bus_request_path(r->rec->id, &path) >= 0) {
                bool was = r->manager->emitting_request_change;
                int q;

                /* NULL: every property flagged EMITS_INVALIDATION, names only. */
                r->manager->emitting_request_change = true;
                q = sd_bus_emit_properties_changed_strv(r->manager->bus, path, CB_REQUEST_IFACE, NULL);
                r->manager->emitting_request_change = was;
                if (q < 0)
                        log_full_errno(LOG_DEBUG, q, "Request %s: cannot emit PropertiesChanged: %m", r->rec->id);
        }
        if (request_state_is_terminal(r->rec->state))
                wake_waiters(r);
}

void bus_request_gone(Request *r) {
        /* Removal or shutdown: answer the waiters with the state we have. */
        wake_waiters(r);
}
