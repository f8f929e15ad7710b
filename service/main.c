/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* certbrokerd: sets up the manager, puts it on the bus and runs the event loop; nothing else. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>

#include "bus-util.h"
#include "config.h"
#include "log.h"
#include "manager.h"

static const char *arg_config_dir = CERTBROKER_CONFIG_DIR;
static const char *arg_state_dir = NULL;
static int arg_check_config = 0;

static void help(void) {
        printf("Usage: certbrokerd [OPTIONS]\n"
               "\n"
               "Certificate enrollment broker for Microsoft NDES over D-Bus.\n"
               "\n"
               "  -h --help              show this help\n"
               "     --version           show the version\n"
               "     --config-dir=DIR    read DIR/certbroker.conf, DIR/ca.d/*.conf and\n"
               "                         DIR/policy.d/*.policy (default %s)\n"
               "     --state-dir=DIR     keep the request journal in DIR (overrides\n"
               "                         StateDirectory= in certbroker.conf)\n"
               "     --check-config      read and check the configuration and policy, say\n"
               "                         what is wrong (file:line) or summarize it, and exit\n"
               "\n"
               "Runs in the foreground on the system bus ($DBUS_SYSTEM_BUS_ADDRESS is\n"
               "honoured) as org.certbroker.Broker1. SIGHUP reloads the configuration;\n"
               "SIGTERM stops. See certbrokerd(8).\n",
               CERTBROKER_CONFIG_DIR);
}

static int parse_argv(int argc, char *argv[]) {
        enum { ARG_VERSION = 0x100, ARG_CONFIG_DIR, ARG_STATE_DIR, ARG_CHECK_CONFIG };
        static const struct option options[] = {
                { "help",       no_argument,       NULL, 'h'            },
                { "version",    no_argument,       NULL, ARG_VERSION    },
                { "config-dir", required_argument, NULL, ARG_CONFIG_DIR },
                { "state-dir",  required_argument, NULL, ARG_STATE_DIR  },
                { "check-config", no_argument,     NULL, ARG_CHECK_CONFIG },
                {}
        };
        int c;

        while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0)
                switch (c) {
                case 'h':
                        help();
                        return 0;
                case ARG_VERSION:
                        printf("certbrokerd %s\n", CERTBROKER_VERSION);
                        return 0;
                case ARG_CONFIG_DIR:
                        arg_config_dir = optarg;
                        break;
                case ARG_STATE_DIR:
                        arg_state_dir = optarg;
                        break;
                case ARG_CHECK_CONFIG:
                        arg_check_config = 1;
                        break;
                default:
                        return -EINVAL;
                }

        if (optind < argc) {
                fprintf(stderr, "certbrokerd: unexpected argument '%s' (see --help)\n", argv[optind]);
                return -EINVAL;
        }
        return 1;
}

int main(int argc, char *argv[]) {
        Manager *m = NULL;
        int r;

        r = parse_argv(argc, argv);
        if (r <= 0)
                return r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;

        if (arg_check_config) {
                CbConfig *c = NULL;
                char *msg = NULL;

                r = manager_load_config(arg_config_dir, &c, &msg);
                if (r < 0) {
                        fprintf(stderr, "%s\n", msg ?: strerror(-r));
                        free(msg);
                        return EXIT_FAILURE;
                }
                printf("%s: valid. Realm %s, principal %s, suffix %s; %zu CA(s), %zu rule(s).\n",
                       arg_config_dir, c->realm, c->principal, c->permitted_suffix, c->n_cas, c->n_rules);
                for (size_t i = 0; i < c->n_cas; i++)
                        printf("  CA %s%s: %s\n", c->cas[i].name, c->cas[i].is_default ? " (default)" : "",
                               c->cas[i].url);
                cb_config_free(c);
                return EXIT_SUCCESS;
        }

        log_setup();

        /* Keys and Kerberos credentials live in this process's memory (OpenSSL and krb5 keep
         * their own copies outside our guarded buffers): no core dumps, and no ptrace or
         * /proc/<pid>/mem by other processes running as the same user. (Not in sanitizer
         * builds: LeakSanitizer needs a dumpable process to stop the world.) */
#if !defined(__SANITIZE_ADDRESS__)
        if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
                log_warning_errno(errno, "Cannot make the process non-dumpable: %m");
#endif

        r = manager_new(arg_config_dir, arg_state_dir, &m);
        if (r == MANAGER_ERR_CONFIG)
                return MANAGER_EXIT_CONFIG;     /* manager_new() said why */
        if (r < 0)
                return EXIT_FAILURE;            /* manager_new() said why */

        r = bus_manager_connect(m);
        if (r < 0) {
                manager_free(m);
                return EXIT_FAILURE;            /* bus_manager_connect() said why */
        }
        manager_start(m);
        r = manager_run(m);
        manager_free(m);
        return r < 0 ? EXIT_FAILURE : r;
}
