/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Fuzzes the bus layer's message building: certbrokerd's real objects (bus_manager_attach())
 * on one end of a direct sd-bus connection in this process, a client on the other. Each input
 * is one call whose arguments, object path or the CA's stored texts carry the input's bytes;
 * the broker must answer it (a reply it could not build, e.g. an error message that is not
 * valid UTF-8, is never sent: the caller would wait for its timeout).
 *
 * Input: one selector byte, then the data:
 *   0  Request.Wait(0) on request/<data> (the path element escaped as sd_bus_path_encode does,
 *      so the broker decodes any bytes)
 *   1  Properties.GetAll(Request) on request/<data>
 *   2  CA.Check({}) on ca/<data>
 *   3  CA.Check({<data>: b}) on ca/corp (an unknown option's name echoed)
 *   4  Manager.Enroll("corp", "", ["x.a.example.com"], {<data>: s}) (likewise)
 *   5  Manager.CheckAccess(<data up to NUL>, <the rest>, [], {})
 *   6  Properties.GetAll(CA) on ca/corp with LastError, CACertificates and Capabilities set
 *      to the data's bytes (what a server said: anything)
 * Invariant: every call is answered, with a reply or an error, within a bounded number of
 * processing rounds; the CA's properties (6) are answered with their values, whatever they hold. Data that the client itself cannot send (invalid UTF-8 in a string
 * argument) is skipped. */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#include "bus-util.h"
#include "caller.h"
#include "manager.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char main_conf[] = "[Kerberos]\nRealm=EXAMPLE.COM\nPrincipal=svc-scep@EXAMPLE.COM\n";
static const char corp_conf[] = "[CA]\nURL=https://ndes.example.com/certsrv/mscep/mscep.dll\nDefault=yes\n";
static const char policy[] = "[Rule]\nName=a\nUsers=alice\nNames=*.a.example.com\n";

static Manager *manager;
static CaState *corp;
static sd_bus *server, *client;

static void setup(void) {
        CbConfigSource s[] = {
                { "certbroker.conf", main_conf, sizeof main_conf - 1 },
                { "ca.d/corp.conf", corp_conf, sizeof corp_conf - 1 },
                { "policy.d/p.policy", policy, sizeof policy - 1 },
        };
        sd_id128_t id = SD_ID128_MAKE(6c,0a,1f,2e,33,41,4b,5c,8d,9e,af,b0,c1,d2,e3,f4);
        int fds[2];

        manager = calloc(1, sizeof(*manager));
        corp = calloc(1, sizeof(*corp));
        if (!manager || !corp || cb_config_parse(s, 3, &manager->config, NULL) < 0 ||
            sd_event_new(&manager->event) < 0)
                abort();
        corp->manager = manager;
        corp->name = strdup("corp");
        manager->cas = calloc(1, sizeof(CaState *));
        if (!corp->name || !manager->cas)
                abort();
        manager->cas[0] = corp;
        manager->n_cas = 1;

        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) < 0 ||
            sd_bus_new(&server) < 0 || sd_bus_set_fd(server, fds[0], fds[0]) < 0 ||
            sd_bus_set_server(server, 1, id) < 0 || sd_bus_start(server) < 0 ||
            sd_bus_new(&client) < 0 || sd_bus_set_fd(client, fds[1], fds[1]) < 0 || sd_bus_start(client) < 0)
                abort();
        if (bus_manager_attach(manager, server) < 0)
                abort();
        sd_bus_unref(server);   /* the manager holds it */
}

typedef struct Answer {
        bool done;
        bool error;
} Answer;

static int on_reply(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        Answer *a = userdata;

        a->done = true;
        a->error = sd_bus_message_is_method_error(m, NULL);
        return 0;
}

/* Runs both ends until the call is answered; abort()s if the broker stops making progress
 * without answering. */
static void expect_answer(sd_bus_message *call, bool want_success) {
        Answer a = {};
        int idle = 0;

        if (sd_bus_call_async(client, NULL, call, on_reply, &a, 0) < 0)
                abort();
        for (unsigned round = 0; !a.done; round++) {
                int s = sd_bus_process(manager->bus, NULL), c = sd_bus_process(client, NULL);
                if (s < 0 || c < 0) {
                        fprintf(stderr, "fuzz-bus-messages: processing failed: %s\n", strerror(s < 0 ? -s : -c));
                        abort();
                }
                idle = s == 0 && c == 0 ? idle + 1 : 0;
                if (idle > 8 || round > 100000) {
                        fprintf(stderr, "fuzz-bus-messages: the broker did not answer the call\n");
                        abort();
                }
        }
        if (want_success && a.error) {
                fprintf(stderr, "fuzz-bus-messages: the call failed\n");
                abort();
        }
}

static sd_bus_message *new_call(const char *path, const char *iface, const char *member) {
        sd_bus_message *m = NULL;

        if (sd_bus_message_new_method_call(client, &m, NULL, path, iface, member) < 0)
                abort();
        return m;
}

static char *encoded_path(const char *prefix, const char *element) {
        char *p = NULL;

        if (!*element)
                element = "x";
        if (sd_bus_path_encode(prefix, element, &p) < 0)
                abort();
        return p;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        sd_bus_message *m = NULL;
        char *text, *path = NULL;
        int r = 0;

        if (!manager)
                setup();
        if (size < 1 || size > 4096)
                return 0;
        text = malloc(size);
        if (!text)
                return 0;
        memcpy(text, data + 1, size - 1);
        text[size - 1] = 0;             /* data up to its first NUL */

        switch (data[0] % 7) {
        case 0:
                path = encoded_path(CB_REQUEST_PREFIX, text);
                m = new_call(path, CB_REQUEST_IFACE, "Wait");
                r = sd_bus_message_append(m, "t", (uint64_t) 0);
                break;
        case 1:
                path = encoded_path(CB_REQUEST_PREFIX, text);
                m = new_call(path, "org.freedesktop.DBus.Properties", "GetAll");
                r = sd_bus_message_append(m, "s", CB_REQUEST_IFACE);
                break;
        case 2:
                path = encoded_path(CB_CA_PREFIX, text);
                m = new_call(path, CB_CA_IFACE, "Check");
                r = sd_bus_message_append(m, "a{sv}", 0);
                break;
        case 3:
                m = new_call(CB_CA_PREFIX "/corp", CB_CA_IFACE, "Check");
                r = sd_bus_message_append(m, "a{sv}", 1, text, "b", 1);
                break;
        case 4:
                m = new_call(CB_MANAGER_PATH, CB_MANAGER_IFACE, "Enroll");
                r = sd_bus_message_append(m, "ssasa{sv}", "corp", "", 1, "x.a.example.com", 1, text, "s", "");
                break;
        case 5: {
                size_t n = strlen(text);
                const char *subject = n + 1 < size - 1 ? text + n + 1 : "";
                m = new_call(CB_MANAGER_PATH, CB_MANAGER_IFACE, "CheckAccess");
                r = sd_bus_message_append(m, "ssasa{sv}", text, subject, 0, 0);
                break;
        }
        case 6:
                free(corp->last_error);
                free(corp->ca_certificates);
                for (size_t i = 0; i < corp->n_capabilities; i++)
                        free(corp->capabilities[i]);
                free(corp->capabilities);
                corp->capabilities = calloc(2, sizeof(char *));
                corp->last_error = strdup(text);
                corp->ca_certificates = strdup(text);
                if (!corp->capabilities || !corp->last_error || !corp->ca_certificates ||
                    !(corp->capabilities[0] = strdup(text)))
                        abort();
                corp->n_capabilities = 1;
                m = new_call(CB_CA_PREFIX "/corp", "org.freedesktop.DBus.Properties", "GetAll");
                r = sd_bus_message_append(m, "s", CB_CA_IFACE);
                break;
        }
        /* A string the client cannot send (not UTF-8): nothing to ask the broker. */
        if (r >= 0)
                expect_answer(m, data[0] % 7 == 6);
        sd_bus_message_unref(m);
        free(path);
        free(text);
        return 0;
}
