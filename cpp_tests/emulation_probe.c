/* Probes, run under the emulator (cpp_tests/emulated.cmake, test emulation_skip_holds.<probe>),
 * that check the reasons of cpp_tests/emulation_skips.txt still hold: each exits 0 when the
 * emulator still cannot do the thing (the skip is needed), 1 when it can (the skip is
 * stale: run those tests), 2 when the probe itself could not run.
 *   so_zerocopy  setsockopt(SO_ZEROCOPY) on a TCP socket is refused (qemu-user forwards
 *                only the socket options it knows, and answers ENOPROTOOPT to the rest)
 *   rlimit_as    a malloc larger than RLIMIT_AS allows succeeds (qemu-user reserves the
 *                guest's address space up front, so RLIMIT_AS never limits the guest) */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#ifndef SO_ZEROCOPY
#define SO_ZEROCOPY 60
#endif

static int so_zerocopy(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) {
        printf("so_zerocopy: socket: %s\n", strerror(errno));
        return 2;
    }
    int one = 1;
    int r = setsockopt(fd, SOL_SOCKET, SO_ZEROCOPY, &one, sizeof one);
    int err = errno;
    close(fd);
    if (r == 0) {
        printf("so_zerocopy: setsockopt(SO_ZEROCOPY) works here: the tests skipped for it in "
               "emulation_skips.txt must run (a skip whose test passes is an error)\n");
        return 1;
    }
    printf("so_zerocopy: setsockopt(SO_ZEROCOPY) refused with %s: the skip holds\n", strerror(err));
    return 0;
}

static int rlimit_as(void) {
    /* Room for what is mapped now plus 256 MiB, then ask for more than that. */
    const size_t extra = (size_t)256 << 20, ask = (size_t)768 << 20;
    long pages = 0;
    FILE* f = fopen("/proc/self/statm", "r");
    if (f) {
        if (fscanf(f, "%ld", &pages) != 1) pages = 0;
        fclose(f);
    }
    if (pages <= 0) {
        printf("rlimit_as: cannot read /proc/self/statm\n");
        return 2;
    }
    struct rlimit lim;
    if (getrlimit(RLIMIT_AS, &lim) != 0) {
        printf("rlimit_as: getrlimit: %s\n", strerror(errno));
        return 2;
    }
    lim.rlim_cur = (rlim_t)pages * (rlim_t)sysconf(_SC_PAGESIZE) + extra;
    if (setrlimit(RLIMIT_AS, &lim) != 0) {
        printf("rlimit_as: setrlimit: %s\n", strerror(errno));
        return 2;
    }
    void* p = malloc(ask);
    if (p == NULL) {
        printf("rlimit_as: malloc(%zu MiB) under a limit of %zu MiB more than mapped fails: RLIMIT_AS is "
               "honoured here, the tests skipped for it in emulation_skips.txt must run (a skip whose "
               "test passes is an error)\n",
               ask >> 20, extra >> 20);
        return 1;
    }
    free(p);
    printf("rlimit_as: malloc(%zu MiB) under a limit of %zu MiB more than mapped succeeds: RLIMIT_AS is "
           "ignored, the skip holds\n",
           ask >> 20, extra >> 20);
    return 0;
}

int main(int argc, char** argv) {
    if (argc == 2 && strcmp(argv[1], "so_zerocopy") == 0) return so_zerocopy();
    if (argc == 2 && strcmp(argv[1], "rlimit_as") == 0) return rlimit_as();
    fprintf(stderr, "usage: %s so_zerocopy|rlimit_as\n", argv[0]);
    return 2;
}
