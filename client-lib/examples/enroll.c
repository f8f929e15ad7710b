/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Enroll one name with libcertbroker, wait, print the certificate, save the key (0600).
 * Build: cc enroll.c $(pkg-config --cflags --libs libcertbroker)
 * Run:   ./a.out web.a.example.com [CA] >cert.pem     (the key goes to ./key.pem) */
#include <certbroker.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char *argv[]) {
        CertbrokerError e = CERTBROKER_ERROR_NULL;
        CertbrokerClient *c = NULL;
        const char *names[] = { argc > 1 ? argv[1] : "web.a.example.com", NULL };
        CertbrokerRequestSpec spec = { .ca = argc > 2 ? argv[2] : "", .names = names };
        char *id = NULL, *state = NULL, *cert = NULL, *key = NULL;
        int ok = 0, fd;

        if (certbroker_open(&c, &e) >= 0 && certbroker_enroll(c, &spec, &id, &e) >= 0 &&
            certbroker_wait(c, id, 120 * 1000000ULL, NULL, NULL, &state, &e) >= 0) {
                fprintf(stderr, "request %s: %s\n", id, state);
                if (strcmp(state, "issued") == 0 &&
                    certbroker_request_certificate(c, id, &cert, NULL, &e) >= 0 &&
                    certbroker_take_key(c, id, &key, &e) >= 0 &&
                    (fd = open("key.pem", O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600)) >= 0) {
                        ok = dprintf(fd, "%s", key) > 0;
                        ok = close(fd) == 0 && ok && printf("%s", cert) > 0;
                }
        }
        if (e.message)
                fprintf(stderr, "error: %s [%s]\n", e.message, e.name ? e.name : "libcertbroker");
        certbroker_secret_free(key);
        free(cert);
        free(state);
        free(id);
        certbroker_error_clear(&e);
        certbroker_close(c);
        return ok ? 0 : 1;
}
