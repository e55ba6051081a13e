/* Plain C through the upstream-compatible header libblight_protocol/socket.h: it must
 * compile as C (no C++ in the way) and the five upstream functions, the
 * receive-into-caller-buffer exports and the vectored send must work from C on a real
 * non-blocking AF_UNIX socket pair, with errors as negative errno values. Exits non-zero
 * on the first failed check. */
#define _GNU_SOURCE
#include <libblight_protocol/socket.h>
/* Included twice, as happens through several headers. */
#include <libblight_protocol/socket.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#define CHECK(cond)                                                                  \
    do {                                                                             \
        if (!(cond)) {                                                               \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
            return 1;                                                                \
        }                                                                            \
    } while (0)

int main(void) {
    int sv[2];
    unsigned char msg[100];
    blight_data_t got = NULL;
    unsigned char into[100];
    unsigned char header[12];
    struct iovec iov[3];
    size_t i;

    /* SIGPIPE at its default disposition: a send to a closed peer must not raise it. */
    signal(SIGPIPE, SIG_DFL);

    for (i = 0; i < sizeof msg; i++) msg[i] = (unsigned char)(i * 13 + 1);
    for (i = 0; i < sizeof header; i++) header[i] = (unsigned char)(0xA0 + i);
    CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) == 0);

    /* The five upstream functions. */
    CHECK(blight_wait_for_send(sv[0], -1) == 0);
    CHECK(blight_wait_for_read(sv[1], 20) == -EAGAIN);
    CHECK(blight_send_blocking(sv[0], msg, (ssize_t)sizeof msg) == 0);
    CHECK(blight_wait_for_read(sv[1], -1) == 0);
    CHECK(blight_recv(sv[1], &got, 40) == 0);
    CHECK(got != NULL && memcmp(got, msg, 40) == 0);
    free(got);
    got = NULL;
    CHECK(blight_recv_blocking(sv[1], &got, 60) == 0);
    CHECK(got != NULL && memcmp(got, msg + 40, 60) == 0);
    free(got);

    /* Into the caller's buffer. */
    CHECK(blight_send_blocking(sv[0], msg, (ssize_t)sizeof msg) == 0);
    CHECK(blight_recv_into(sv[1], into, 30, 5, 50) == 0);
    CHECK(blight_recv_blocking_into(sv[1], into + 30, 70) == 0);
    CHECK(memcmp(into, msg, sizeof msg) == 0);

    /* A message as header + payload in one call; zero-length entries are skipped. */
    iov[0].iov_base = header;
    iov[0].iov_len = sizeof header;
    iov[1].iov_base = NULL;
    iov[1].iov_len = 0;
    iov[2].iov_base = msg;
    iov[2].iov_len = 64;
    CHECK(blight_sendv_blocking(sv[0], iov, 3) == 0);
    CHECK(blight_recv_blocking_into(sv[1], into, 76) == 0);
    CHECK(memcmp(into, header, 12) == 0 && memcmp(into + 12, msg, 64) == 0);

    /* Errors are negative errno values. */
    got = (blight_data_t)msg;
    CHECK(blight_recv(sv[1], &got, 0) == -EINVAL);
    CHECK(got == (blight_data_t)msg); /* untouched on failure, as upstream */
    CHECK(blight_recv_blocking(sv[1], NULL, 10) == -EINVAL);
    CHECK(blight_send_blocking(sv[0], NULL, 10) == -EINVAL);
    CHECK(blight_sendv_blocking(sv[0], NULL, 1) == -EINVAL);
    CHECK(blight_sendv_blocking(sv[0], iov, -1) == -EINVAL);
    CHECK(blight_recv_into(sv[1], into, 10, 2, 10) == -EAGAIN);
    CHECK(blight_send_blocking(-1, msg, 10) == -EBADF);

    /* Hang-up: buffered data stays readable, then ECONNRESET; sends fail with EPIPE. */
    CHECK(blight_send_blocking(sv[1], msg, 10) == 0);
    close(sv[1]);
    CHECK(blight_wait_for_read(sv[0], 100) == 0);
    CHECK(blight_recv_blocking_into(sv[0], into, 10) == 0);
    CHECK(blight_wait_for_read(sv[0], 100) == -ECONNRESET);
    CHECK(blight_recv_blocking(sv[0], &got, 10) == -EBADMSG);
    CHECK(blight_send_blocking(sv[0], msg, 10) == -EPIPE);
    CHECK(blight_sendv_blocking(sv[0], iov, 3) == -EPIPE);
    close(sv[0]);
    CHECK(blight_wait_for_read(sv[0], 100) == -EINVAL);

    printf("c_compat_test: all checks passed\n");
    return 0;
}
