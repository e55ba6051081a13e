/* Plain C: includes the generated header and calls every exported function on a real
 * AF_UNIX socket pair. Exits non-zero on the first failed check. */
#define _GNU_SOURCE
#include "blight_socket.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define CHECK(cond)                                                         \
    do {                                                                    \
        if (!(cond)) {                                                      \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
            return 1;                                                       \
        }                                                                   \
    } while (0)

static int frees = 0;
static void count_free(blight_data_t data, size_t size, void *user) {
    (void)size;
    (void)user;
    free(data);
    frees++;
}

int main(void) {
    int sv[2];
    unsigned char msg[] = "hello, blight";
    blight_data_t got = NULL;
    unsigned char into[sizeof msg];
    unsigned char part1[] = "head", part2[] = "payload";
    struct iovec iov[2];
    unsigned char big_in[64 * 1024];
    blight_data_t big;
    blight_buffer_id_t id = 0;
    blight_zerocopy_stats stats;
    size_t i;

    CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) == 0);

    CHECK(blight_wait_for_send(sv[0], 100) == 0);
    CHECK(blight_wait_for_read(sv[1], 10) == -EAGAIN);
    CHECK(blight_send_blocking(sv[0], msg, sizeof msg) == 0);
    CHECK(blight_wait_for_read(sv[1], 100) == 0);
    CHECK(blight_recv(sv[1], &got, sizeof msg) == 0);
    CHECK(got != NULL && memcmp(got, msg, sizeof msg) == 0);
    free(got);

    CHECK(blight_send_blocking(sv[0], msg, sizeof msg) == 0);
    CHECK(blight_recv_blocking(sv[1], &got, sizeof msg) == 0);
    CHECK(memcmp(got, msg, sizeof msg) == 0);
    free(got);

    CHECK(blight_send_blocking(sv[0], msg, sizeof msg) == 0);
    CHECK(blight_recv_into(sv[1], into, sizeof into, 5, 50) == 0);
    CHECK(memcmp(into, msg, sizeof msg) == 0);
    CHECK(blight_send_blocking(sv[0], msg, sizeof msg) == 0);
    CHECK(blight_recv_blocking_into(sv[1], into, sizeof into) == 0);

    iov[0].iov_base = part1;
    iov[0].iov_len = 4;
    iov[1].iov_base = part2;
    iov[1].iov_len = 7;
    CHECK(blight_sendv_blocking(sv[0], iov, 2) == 0);
    CHECK(blight_recv_blocking_into(sv[1], into, 11) == 0);
    CHECK(memcmp(into, "headpayload", 11) == 0);

    big = malloc(sizeof big_in);
    CHECK(big != NULL);
    for (i = 0; i < sizeof big_in; i++) big[i] = (unsigned char)(i * 7);
    CHECK(blight_set_zerocopy_threshold(4096) == 0);
    CHECK(blight_set_splice_policy(sv[0], BLIGHT_SPLICE_SAME_USER) == 0);
    CHECK(blight_zerocopy_threshold() == 4096);
    CHECK(blight_send_zerocopy(sv[0], big, sizeof big_in, count_free, NULL, &id) == 0);
    CHECK(id != 0);
    CHECK(blight_buffer_in_flight(id) >= 0);
    CHECK(blight_recv_blocking_into(sv[1], big_in, sizeof big_in) == 0);
    for (i = 0; i < sizeof big_in; i++) CHECK(big_in[i] == (unsigned char)(i * 7));
    CHECK(blight_process_zerocopy_completions(sv[0], 1000) >= 0);
    CHECK(blight_release_buffer(id) == 0);
    CHECK(blight_release_buffer(id) == -ENOENT);
    CHECK(frees == 1);
    CHECK(blight_get_zerocopy_stats(sv[0], &stats) == 0);
    CHECK(stats.splice_bytes + stats.copied_bytes + stats.zerocopy_bytes == sizeof big_in);
    CHECK(stats.pending_sends == 0);
    CHECK(blight_forget_socket(sv[0]) == 0);
    CHECK(blight_get_zerocopy_stats(-1, &stats) == 0);

    close(sv[1]);
    CHECK(blight_send_blocking(sv[0], msg, sizeof msg) == -EPIPE);
    close(sv[0]);
    printf("c_api_test: all checks passed\n");
    return 0;
}
