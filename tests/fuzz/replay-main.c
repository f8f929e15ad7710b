/* Replays fuzz corpus files through a libFuzzer entry point, so that every
 * corpus file is also a regression test in the normal suite (and under
 * ASan/UBSan when the suite is built with sanitizers).
 *
 * Usage: fuzz-NAME-replay PATH...   (files, or directories of files) */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv) __attribute__((weak));

static int replay_file(const char *path, unsigned *count) {
        FILE *f = fopen(path, "rbe");
        if (!f) {
                fprintf(stderr, "replay: cannot open %s: %s\n", path, strerror(errno));
                return -1;
        }
        size_t cap = 4096, len = 0;
        uint8_t *buf = malloc(cap);
        if (!buf) {
                fclose(f);
                return -1;
        }
        for (;;) {
                if (len == cap) {
                        uint8_t *nbuf = realloc(buf, cap * 2);
                        if (!nbuf) {
                                free(buf);
                                fclose(f);
                                return -1;
                        }
                        buf = nbuf;
                        cap *= 2;
                }
                size_t n = fread(buf + len, 1, cap - len, f);
                if (n == 0)
                        break;
                len += n;
        }
        int bad = ferror(f);
        fclose(f);
        if (bad) {
                fprintf(stderr, "replay: cannot read %s\n", path);
                free(buf);
                return -1;
        }
        /* Hand the target an exact-size copy so ASan sees overreads. */
        uint8_t *exact = malloc(len ? len : 1);
        if (!exact) {
                free(buf);
                return -1;
        }
        memcpy(exact, buf, len);
        free(buf);
        LLVMFuzzerTestOneInput(exact, len);
        free(exact);
        (*count)++;
        return 0;
}

static int replay_path(const char *path, unsigned *count) {
        struct stat st;
        if (stat(path, &st) < 0) {
                fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
                return -1;
        }
        if (!S_ISDIR(st.st_mode))
                return replay_file(path, count);

        struct dirent **ents = NULL;
        int n = scandir(path, &ents, NULL, alphasort);
        if (n < 0) {
                fprintf(stderr, "replay: cannot list %s: %s\n", path, strerror(errno));
                return -1;
        }
        int r = 0;
        for (int i = 0; i < n; i++) {
                if (ents[i]->d_name[0] != '.' && r == 0) {
                        char sub[4096];
                        snprintf(sub, sizeof sub, "%s/%s", path, ents[i]->d_name);
                        r = replay_path(sub, count);
                }
                free(ents[i]);
        }
        free(ents);
        return r;
}

int main(int argc, char **argv) {
        if (LLVMFuzzerInitialize)
                LLVMFuzzerInitialize(&argc, &argv);
        unsigned count = 0;
        for (int i = 1; i < argc; i++)
                if (replay_path(argv[i], &count) < 0)
                        return EXIT_FAILURE;
        if (count == 0) {
                fprintf(stderr, "replay: no corpus files found: an empty corpus tests nothing\n");
                return EXIT_FAILURE;
        }
        printf("replayed %u corpus files\n", count);
        return EXIT_SUCCESS;
}
