/* A C consumer of the installed libblight_socket: the upstream socket API and the
 * zero-copy API over real AF_UNIX socket pairs, non-blocking as oxide makes them.
 * Exits 1 at the first wrong result. */
#include <blight_socket.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define CHECK(cond)                                                                 \
    do {                                                                            \
        if (!(cond)) {                                                              \
            fprintf(stderr, "c_app: %s:%d: check failed: %s\n", __FILE__, __LINE__, \
                    #cond);                                                         \
            exit(1);                                                                \
        }                                                                           \
    } while (0)

#define CHECK_EQ(got, want)                                                          \
    do {                                                                             \
        long long got_ = (long long)(got), want_ = (long long)(want);                \
        if (got_ != want_) {                                                         \
            fprintf(stderr, "c_app: %s:%d: %s is %lld, expected %lld (%s)\n",        \
                    __FILE__, __LINE__, #got, got_, want_,                           \
                    got_ < 0 ? strerror((int)-got_) : "");                           \
            exit(1);                                                                 \
        }                                                                            \
    } while (0)

static void fill(unsigned char* p, size_t n, unsigned seed) {
    size_t i;
    for (i = 0; i < n; i++) {
        p[i] = (unsigned char)((i * 31u + seed * 7u + (i >> 12)) & 0xff);
    }
}

static int same(const unsigned char* p, size_t n, unsigned seed) {
    size_t i;
    for (i = 0; i < n; i++) {
        if (p[i] != (unsigned char)((i * 31u + seed * 7u + (i >> 12)) & 0xff)) {
            fprintf(stderr, "c_app: byte %zu differs\n", i);
            return 0;
        }
    }
    return 1;
}

static void pair(int sv[2]) {
    CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) == 0);
}

/* Waits for a forked peer and checks that it exited with status 0. */
static void reap(pid_t pid) {
    int status = 0;
    CHECK(waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

/* Small messages in one process: send, wait, receive, compare. */
static void test_small_messages(void) {
    int sv[2];
    unsigned char msg[1000];
    blight_data_t data = NULL;
    pair(sv);
    CHECK_EQ(blight_wait_for_send(sv[0], 1000), 0);
    CHECK_EQ(blight_wait_for_read(sv[1], 0), -EAGAIN); /* nothing sent yet */
    fill(msg, sizeof msg, 1);
    CHECK_EQ(blight_send_blocking(sv[0], msg, (ssize_t)sizeof msg), 0);
    CHECK_EQ(blight_wait_for_read(sv[1], 1000), 0);
    CHECK_EQ(blight_recv(sv[1], &data, (ssize_t)sizeof msg), 0);
    CHECK(data != NULL && same(data, sizeof msg, 1));
    free(data); /* memory from blight_recv* is released with free() */

    /* Nothing more arrives: upstream's attempts run out with EAGAIN. */
    data = (blight_data_t)1;
    CHECK_EQ(blight_recv(sv[1], &data, 16), -EAGAIN);
    CHECK(data == (blight_data_t)1); /* left untouched on failure, as upstream */
    CHECK_EQ(blight_recv(sv[1], &data, 0), -EINVAL);

    /* Peer gone: bytes still buffered are readable, then ECONNRESET. */
    CHECK_EQ(blight_send_blocking(sv[0], msg, 10), 0);
    close(sv[0]);
    CHECK_EQ(blight_wait_for_read(sv[1], 1000), 0);
    CHECK_EQ(blight_recv_blocking(sv[1], &data, 10), 0);
    CHECK(same(data, 10, 1));
    free(data);
    CHECK_EQ(blight_wait_for_read(sv[1], 1000), -ECONNRESET);
    CHECK_EQ(blight_recv_blocking(sv[1], &data, 10), -EBADMSG);
    /* Writing to a closed peer: -EPIPE, no SIGPIPE (the default action would kill us). */
    CHECK_EQ(blight_send_blocking(sv[1], msg, 10), -EPIPE);
    close(sv[1]);
}

/* 4 MiB each way between two processes: far more than the socket buffer holds, so both
 * blocking calls wait in poll on the non-blocking socket. The child sends it in pieces
 * of odd sizes; the parent receives it in one call. */
static void test_large_message(void) {
    const size_t size = 4u << 20;
    int sv[2];
    pid_t pid;
    blight_data_t data = NULL;
    unsigned char* msg = malloc(size);
    CHECK(msg != NULL);
    fill(msg, size, 2);
    pair(sv);
    pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        size_t off = 0, piece = 1;
        close(sv[1]);
        while (off < size) {
            size_t n = piece < size - off ? piece : size - off;
            if (blight_send_blocking(sv[0], msg + off, (ssize_t)n) != 0) {
                _exit(2);
            }
            off += n;
            piece = piece * 3 + 1;
        }
        /* And receive it back from the parent. */
        if (blight_recv_blocking(sv[0], &data, (ssize_t)size) != 0 || !same(data, size, 2)) {
            _exit(3);
        }
        _exit(0);
    }
    close(sv[0]);
    CHECK_EQ(blight_recv_blocking(sv[1], &data, (ssize_t)size), 0);
    CHECK(same(data, size, 2));
    CHECK_EQ(blight_send_blocking(sv[1], data, (ssize_t)size), 0);
    free(data);
    reap(pid);
    close(sv[1]);
    free(msg);
}

struct frees {
    int count;
    size_t bytes;
};

static void count_free(blight_data_t data, size_t size, void* user) {
    struct frees* f = user;
    f->count++;
    f->bytes += size;
    free(data);
}

/* Zero-copy send of a malloc'd buffer to a reader in another process: the library
 * frees it through the callback once released and consumed. */
static void test_zerocopy(void) {
    const size_t size = 1u << 20;
    int sv[2];
    int i;
    pid_t pid;
    struct frees frees = {0, 0};
    blight_buffer_id_t id = 0;
    blight_zerocopy_stats stats;
    unsigned char* buf = malloc(size);
    CHECK(buf != NULL);
    fill(buf, size, 3);
    pair(sv);
    pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        blight_data_t data = NULL;
        close(sv[0]);
        if (blight_recv_blocking(sv[1], &data, (ssize_t)size) != 0 || !same(data, size, 3)) {
            _exit(2);
        }
        _exit(0);
    }
    close(sv[1]);
    CHECK_EQ(blight_send_zerocopy(sv[0], buf, (ssize_t)size, count_free, &frees, &id), 0);
    CHECK(id != 0);
    CHECK_EQ(blight_release_buffer(id), 0);
    CHECK_EQ(blight_release_buffer(id), -ENOENT); /* released twice */
    reap(pid);                                    /* the child read every byte */
    for (i = 0; i < 500 && frees.count == 0; i++) {
        CHECK(blight_process_zerocopy_completions(sv[0], 10) >= 0);
    }
    CHECK_EQ(frees.count, 1);
    CHECK_EQ(frees.bytes, size);
    CHECK_EQ(blight_buffer_in_flight(id), -ENOENT);

    CHECK_EQ(blight_get_zerocopy_stats(sv[0], &stats), 0);
    CHECK_EQ(stats.zerocopy_bytes + stats.splice_bytes + stats.copied_bytes, size);
    CHECK_EQ(stats.pending_sends, 0);
    printf("c_app: zero-copy 1 MiB over AF_UNIX: %llu bytes spliced, %llu copied\n",
           (unsigned long long)stats.splice_bytes, (unsigned long long)stats.copied_bytes);
    CHECK(blight_forget_socket(sv[0]) >= 0);
    close(sv[0]);

    /* Bad arguments: nothing registered, the caller keeps the memory. */
    buf = malloc(64);
    CHECK(buf != NULL);
    pair(sv);
    id = 99;
    CHECK_EQ(blight_send_zerocopy(sv[0], buf, 0, count_free, &frees, &id), -EINVAL);
    CHECK_EQ(id, 0);
    CHECK_EQ(blight_send_zerocopy(sv[0], buf, 64, count_free, &frees, NULL), -EINVAL);
    CHECK_EQ(frees.count, 1);
    free(buf);
    CHECK_EQ(blight_release_buffer(0), -ENOENT);
    close(sv[0]);
    close(sv[1]);
}

int main(void) {
    /* The installed library is at least as new as the installed header. */
    CHECK(blight_socket_version_number() >= BLIGHT_SOCKET_VERSION_NUM);
    CHECK(blight_socket_version() != NULL && blight_socket_version()[0] != '\0');
    size_t threshold = blight_zerocopy_threshold();
    CHECK(threshold > 0);
    test_small_messages();
    test_large_message();
    test_zerocopy();
    CHECK_EQ(blight_set_zerocopy_threshold(0), -EINVAL);
    CHECK_EQ(blight_zerocopy_threshold(), threshold);
    printf("c_app: all checks passed\n");
    return 0;
}
