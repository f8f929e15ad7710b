/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Fuzzes what certbrokerctl deploy parses from files a tenant (or whoever got write access to
 * the directory) controls: the state file (deploy_state_parse()) and a deploy.d configuration
 * (deploy_config_parse()). The first byte selects the parser. Checks what every accepted state
 * must be, and that a refusal always says why. */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "deploy-files.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_id(const char *id, bool may_be_empty) {
        if (!*id) {
                if (!may_be_empty)
                        abort();
                return;
        }
        if (!deploy_id_is_valid(id))
                abort();
}

static void fuzz_state(const char *text, size_t size) {
        DeployState s;
        char *why = NULL;
        int r;

        memset(&s, 0x5a, sizeof s);
        r = deploy_state_parse(text, size, &s, &why);
        if (r < 0) {
                if (!why || !*why)
                        abort();
                free(why);
                return;
        }
        if (r != 0)
                abort();
        check_id(s.request, true);
        check_id(s.reloaded, true);
        if (*s.reloaded && !*s.request)
                abort();
        if (*s.intent && strlen(s.intent) != DEPLOY_INTENT_LEN)
                abort();
        check_id(s.seal_request, true);
        if (*s.seal_request) {
                uint8_t pub[32];
                if (strlen(s.seal_secret) != DEPLOY_SEAL_SECRET_LEN || deploy_seal_public(&s, pub) != 0)
                        abort();
        }
        free(why);
}

static void fuzz_config(const char *data, size_t size) {
        DeployConfig c;
        char *text, *why = NULL;
        int r;

        text = malloc(size + 1);
        if (!text)
                return;
        memcpy(text, data, size);
        text[size] = 0;
        memset(&c, 0, sizeof c);
        r = deploy_config_parse(text, &c, &why);
        if (r < 0) {
                if (!why || !*why)
                        abort();
        } else {
                if (!c.dir || (c.n_dns == 0 && !c.subject))
                        abort();
                for (size_t i = 0; i < c.n_dns; i++)
                        if (!c.dns[i] || !*c.dns[i])
                                abort();
                if (c.dns && c.dns[c.n_dns])
                        abort();
                /* The output settings of an accepted file are consistent: a format's settings
                 * are there, and only with it. */
                DeployOutputs o = {
                        .passphrase_file = c.passphrase_file, .passphrase_credential = c.passphrase_credential,
                        .nssdb = c.nssdb, .nickname = c.nickname,
                };
                if (deploy_outputs_check(c.format, &o, true, NULL) != 0 || !(o.formats & DEPLOY_FORMAT_PEM))
                        abort();
                if ((o.formats & DEPLOY_FORMAT_PKCS12) && !o.passphrase_file == !o.passphrase_credential)
                        abort();
                if (!(o.formats & DEPLOY_FORMAT_PKCS12) && (o.passphrase_file || o.passphrase_credential))
                        abort();
                if (!(o.formats & DEPLOY_FORMAT_NSSDB) != !o.nssdb || (o.nssdb && o.nssdb[0] != '/'))
                        abort();
                deploy_config_done(&c);
        }
        free(why);
        free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        if (size < 1)
                return 0;
        if (data[0] & 1)
                fuzz_config((const char *) data + 1, size - 1);
        else
                fuzz_state((const char *) data + 1, size - 1);
        return 0;
}
