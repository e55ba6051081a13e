/* The whole life of zero-copy buffers in a poll() event loop, over both transports:
 *
 *   1. TCP over loopback: blight_send_zerocopy uses MSG_ZEROCOPY; the kernel reports each
 *      finished send in the socket's error queue, and poll() says so with POLLERR.
 *   2. An AF_UNIX stream socket pair (oxide's transport): the kernel refuses MSG_ZEROCOPY,
 *      so the library moves the pages with vmsplice + splice. That path has no
 *      notification and raises no POLLERR: a buffer is done once the peer has *read* its
 *      bytes, which the library infers from the socket's unread byte count (SIOCOUTQ).
 *      The loop therefore also processes completions periodically (on its poll timeout)
 *      and after every acknowledgement from the peer.
 *
 * For each message the loop mallocs a buffer, fills it, sends it with
 * blight_send_zerocopy(..., free_message, ...) and releases the id at once
 * (fire-and-forget): from then on the library owns the buffer and calls free_message
 * exactly once, when the kernel no longer needs the pages. A forked receiver reads every
 * message, verifies it and acknowledges it. At the end the example waits for the last
 * completions, prints blight_get_zerocopy_stats, forgets the socket and closes it.
 *
 * Exits non-zero on any wrong result. Build: see examples/CMakeLists.txt.
 */
#define _GNU_SOURCE
#include <blight_socket.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define MESSAGES 48
#define WINDOW 8        /* messages sent but not yet acknowledged */
#define TICK_MS 5       /* periodic completion processing (the splice path needs it) */

#define CHECK(cond)                                                                         \
    do {                                                                                    \
        if (!(cond)) {                                                                      \
            fprintf(stderr, "zerocopy_event_loop: %s:%d: %s failed (errno %d: %s)\n",        \
                    __FILE__, __LINE__, #cond, errno, strerror(errno));                     \
            exit(1);                                                                        \
        }                                                                                   \
    } while (0)

/* What goes on the wire before each payload. */
struct header {
    uint32_t seq;
    uint32_t size; /* 0 ends the stream */
};

/* Every free_message call lands here. */
struct loop {
    const char* name;
    unsigned long long freed;
    unsigned long long freed_bytes;
};

static size_t message_size(unsigned seq) {
    /* Under the threshold (copied), around it, and well above it (zero-copy). */
    static const size_t sizes[] = {4096, 16 * 1024, 64 * 1024, 256 * 1024, 1024 * 1024};
    return sizes[seq % (sizeof sizes / sizeof sizes[0])];
}

static unsigned char pattern(size_t i, unsigned seq) {
    return (unsigned char)((i * 7 + seq * 131 + (i >> 9)) & 0xff);
}

/* The free callback: runs once per buffer, outside the library's locks, from the thread
 * that dropped the last reference (here: the loop, in blight_release_buffer or
 * blight_process_zerocopy_completions). */
static void free_message(blight_data_t data, size_t size, void* user) {
    struct loop* l = user;
    l->freed++;
    l->freed_bytes += size;
    memset(data, 0xdd, size); /* any later use of the pages by the kernel would show */
    free(data);
}

/* The peer: reads each message, checks every byte, acknowledges it with its seq. */
static int receive_all(int fd) {
    for (;;) {
        struct header h;
        blight_data_t payload = NULL;
        if (blight_recv_blocking_into(fd, (unsigned char*)&h, sizeof h) != 0) {
            return 2;
        }
        if (h.size == 0) {
            return 0;
        }
        if (h.size != message_size(h.seq) || blight_recv_blocking(fd, &payload, h.size) != 0) {
            return 3;
        }
        for (size_t i = 0; i < h.size; i++) {
            if (payload[i] != pattern(i, h.seq)) {
                fprintf(stderr, "receiver: message %u byte %zu corrupted\n", h.seq, i);
                return 4;
            }
        }
        free(payload);
        if (blight_send_blocking(fd, (blight_data_t)&h.seq, sizeof h.seq) != 0) {
            return 5;
        }
    }
}

/* POLLERR with nothing completed: is it a real socket error? */
static void check_socket_error(int fd) {
    int err = 0;
    socklen_t len = sizeof err;
    CHECK(getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0);
    if (err != 0) {
        fprintf(stderr, "zerocopy_event_loop: socket error: %s\n", strerror(err));
        exit(1);
    }
}

static const char* path_name(uint32_t path) {
    switch (path) {
    case BLIGHT_ZEROCOPY_PATH_MSG_ZEROCOPY: return "MSG_ZEROCOPY";
    case BLIGHT_ZEROCOPY_PATH_SPLICE: return "vmsplice/splice";
    case BLIGHT_ZEROCOPY_PATH_COPY: return "copy";
    default: return "none";
    }
}

/* Sends MESSAGES messages on `fd` to the receiver at the other end, in an event loop. */
static void run(const char* name, int fd, int peer) {
    struct loop l = {name, 0, 0};
    unsigned sent = 0, acked = 0;
    unsigned long long payload_bytes = 0;
    int status = 0, completions = 0, ticks = 0;
    blight_zerocopy_stats st;
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        close(fd);
        _exit(receive_all(peer));
    }
    close(peer);
    /* oxide's sockets are non-blocking; blight_send_zerocopy waits in poll when full. */
    CHECK(fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) == 0);

    while (acked < MESSAGES) {
        struct pollfd p = {fd, POLLIN, 0};
        int n;
        if (sent < MESSAGES && sent - acked < WINDOW) {
            p.events |= POLLOUT;
        }
        /* POLLERR is always reported, asked for or not: with MSG_ZEROCOPY it means
         * "notifications wait in the error queue". */
        n = poll(&p, 1, TICK_MS);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        CHECK(n >= 0);
        if (n == 0 || (p.revents & POLLERR)) {
            /* POLLERR (MSG_ZEROCOPY) or the periodic tick (the splice path, which never
             * raises POLLERR). Never blocks with timeout 0, and on AF_UNIX never reads
             * socket data. */
            int r = blight_process_zerocopy_completions(fd, 0);
            CHECK(r >= 0);
            completions += r;
            ticks += n == 0;
            if (r == 0 && (p.revents & POLLERR)) {
                check_socket_error(fd);
            }
        }
        if (p.revents & POLLIN) {
            uint32_t seq;
            CHECK(blight_recv_blocking_into(fd, (unsigned char*)&seq, sizeof seq) == 0);
            CHECK(seq == acked);
            acked++;
            /* The peer has read message `seq`: on the splice path its pages are free now. */
            int r = blight_process_zerocopy_completions(fd, 0);
            CHECK(r >= 0);
            completions += r;
        } else if (p.revents & (POLLHUP | POLLNVAL)) {
            fprintf(stderr, "zerocopy_event_loop: %s: the receiver went away\n", name);
            exit(1);
        }
        if ((p.revents & POLLOUT) && sent < MESSAGES) {
            size_t size = message_size(sent);
            struct header h = {sent, (uint32_t)size};
            blight_buffer_id_t id = 0;
            unsigned char* buf = malloc(size);
            int r;
            CHECK(buf != NULL);
            for (size_t i = 0; i < size; i++) {
                buf[i] = pattern(i, sent);
            }
            CHECK(blight_send_blocking(fd, (blight_data_t)&h, sizeof h) == 0);
            r = blight_send_zerocopy(fd, buf, (ssize_t)size, free_message, &l, &id);
            /* On a send error *id is set too and the library owns buf: release it anyway. */
            if (id != 0) {
                if (sent == 3) {
                    printf("%s: message 3 (%zu bytes): %d send(s) in flight right after the call\n",
                           name, size, blight_buffer_in_flight(id));
                }
                CHECK(blight_release_buffer(id) == 0);
            }
            CHECK(r == 0);
            /* buf must not be touched from here on: free_message will free it. */
            payload_bytes += size;
            sent++;
        }
    }

    /* Every message was read by the peer. Wait for the last notifications (MSG_ZEROCOPY
     * reports them shortly after the data left; the splice path completes when consumed). */
    for (int i = 0; i < 200; i++) {
        CHECK(blight_get_zerocopy_stats(fd, &st) == 0);
        if (st.pending_sends == 0) {
            break;
        }
        int r = blight_process_zerocopy_completions(fd, 10);
        CHECK(r >= 0);
        completions += r;
    }
    CHECK(blight_get_zerocopy_stats(fd, &st) == 0);

    printf("%s: %u messages, %llu payload bytes; path now: %s\n", name, sent, payload_bytes,
           path_name(st.path));
    printf("  MSG_ZEROCOPY  %6llu sends %11llu bytes (kernel reported COPIED: %llu sends, %llu bytes)\n",
           (unsigned long long)st.zerocopy_sends, (unsigned long long)st.zerocopy_bytes,
           (unsigned long long)st.kernel_copied_sends, (unsigned long long)st.kernel_copied_bytes);
    printf("  splice        %6llu sends %11llu bytes\n", (unsigned long long)st.splice_sends,
           (unsigned long long)st.splice_bytes);
    printf("  copied        %6llu sends %11llu bytes\n", (unsigned long long)st.copied_sends,
           (unsigned long long)st.copied_bytes);
    printf("  completed %llu, pending %llu, abandoned %llu, ENOBUFS retries %llu;"
           " %d completed in the loop, %d idle ticks\n",
           (unsigned long long)st.completed_sends, (unsigned long long)st.pending_sends,
           (unsigned long long)st.abandoned_sends, (unsigned long long)st.enobufs_retries,
           completions, ticks);
    printf("  free_message called %llu times for %llu bytes\n", l.freed, l.freed_bytes);

    CHECK(st.zerocopy_bytes + st.splice_bytes + st.copied_bytes == payload_bytes);
    CHECK(st.pending_sends == 0);
    CHECK(l.freed == sent && l.freed_bytes == payload_bytes);

    /* End of stream, then forget the socket *before* closing it (close drops pending
     * notifications; forgetting first releases whatever is still held). */
    {
        struct header end = {sent, 0};
        CHECK(blight_send_blocking(fd, (blight_data_t)&end, sizeof end) == 0);
    }
    CHECK(waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    CHECK(blight_forget_socket(fd) == 0); /* 0 sends abandoned: all completed */
    close(fd);
}

static void tcp_pair(int sv[2]) {
    struct sockaddr_in addr;
    socklen_t len = sizeof addr;
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK(lfd >= 0);
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CHECK(bind(lfd, (struct sockaddr*)&addr, sizeof addr) == 0);
    CHECK(listen(lfd, 1) == 0);
    CHECK(getsockname(lfd, (struct sockaddr*)&addr, &len) == 0);
    sv[0] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK(sv[0] >= 0);
    CHECK(connect(sv[0], (struct sockaddr*)&addr, sizeof addr) == 0);
    sv[1] = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
    CHECK(sv[1] >= 0);
    close(lfd);
}

int main(void) {
    int sv[2];
    blight_zerocopy_stats total;

    printf("blight_socket %s, zero-copy threshold: %zu bytes (BLIGHT_SOCKET_ZEROCOPY_THRESHOLD)\n",
           blight_socket_version(), blight_zerocopy_threshold());

    tcp_pair(sv);
    run("TCP loopback", sv[0], sv[1]);

    CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) == 0);
    run("AF_UNIX pair", sv[0], sv[1]);

    CHECK(blight_get_zerocopy_stats(-1, &total) == 0);
    printf("process totals: %llu bytes by MSG_ZEROCOPY (%llu of them copied by the kernel), "
           "%llu by splice, %llu copied\n",
           (unsigned long long)total.zerocopy_bytes, (unsigned long long)total.kernel_copied_bytes,
           (unsigned long long)total.splice_bytes, (unsigned long long)total.copied_bytes);
    printf("zerocopy_event_loop: OK\n");
    return 0;
}
