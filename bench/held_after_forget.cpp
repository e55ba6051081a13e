// What "never hand back memory the kernel may still read" costs (issue 13): the bytes
// held after blight_forget_socket in a disconnect pattern of oxide's transport (AF_UNIX
// stream, frames spliced by blight_send_zerocopy). 100 connections, 25 of each kind:
//   read-all   the client read every frame, then the server forgets and closes;
//   closed     the client closed with frames unread, then the server forgets;
//   stalled    the client is alive but stopped reading; the server sends while the socket
//              has room (poll), then forgets and closes (the client reads nothing more);
//   late-read  as stalled, but the client reads everything after the forget and the
//              server looks at the same descriptor again before closing it.
// Prints, per kind, the bytes sent, freed and held after forget. Single-threaded.
//   build/bench/held-after-forget [frame_bytes]
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "blight_socket.h"

namespace {

struct Freed {
    size_t bytes = 0;
};
void count_free(blight_data_t data, size_t size, void* user) {
    static_cast<Freed*>(user)->bytes += size;
    std::free(data);
}

size_t drain(int fd) {
    std::vector<unsigned char> buf(1 << 16);
    size_t n = 0;
    for (;;) {
        ssize_t r = ::recv(fd, buf.data(), buf.size(), MSG_DONTWAIT);
        if (r <= 0) return n;
        n += size_t(r);
    }
}

struct Row {
    const char* kind;
    size_t sent = 0, freed = 0, held_sends = 0;
};

}  // namespace

int main(int argc, char** argv) {
    const size_t frame = argc > 1 ? std::strtoul(argv[1], nullptr, 10) : 64 << 10;
    const int per_kind = 25;
    Row rows[] = {{"read-all"}, {"closed"}, {"stalled"}, {"late-read"}};
    blight_zerocopy_stats t0{};
    blight_get_zerocopy_stats(-1, &t0);
    for (Row& row : rows) {
        std::string kind = row.kind;
        for (int c = 0; c < per_kind; c++) {
            int sv[2];
            if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) != 0) return 1;
            Freed freed;
            size_t sent = 0;
            // Send while the socket has room (POLLOUT), at most 64 frames.
            for (int i = 0; i < 64 && blight_wait_for_send(sv[0], 0) == 0; i++) {
                auto* buf = static_cast<unsigned char*>(std::malloc(frame));
                std::memset(buf, i, frame);
                blight_buffer_id_t id = 0;
                if (blight_send_zerocopy(sv[0], buf, ssize_t(frame), count_free, &freed, &id) != 0) return 2;
                blight_release_buffer(id);
                sent += frame;
                if (kind == "read-all") drain(sv[1]);
            }
            if (kind == "read-all") drain(sv[1]);
            if (kind == "closed") ::close(sv[1]);
            int held = blight_forget_socket(sv[0]);
            if (held < 0) return 3;
            row.held_sends += size_t(held);
            if (kind == "late-read") {
                drain(sv[1]);
                for (int i = 0; i < 100 && freed.bytes < sent; i++) blight_process_zerocopy_completions(sv[0], 10);
                blight_forget_socket(sv[0]);
            }
            ::close(sv[0]);
            if (kind != "closed") ::close(sv[1]);
            row.sent += sent;
            row.freed += freed.bytes;
        }
    }
    blight_zerocopy_stats t1{};
    blight_get_zerocopy_stats(-1, &t1);
    std::printf("held after forget, AF_UNIX stream, %zu-byte frames spliced, %d connections of each kind\n", frame,
                per_kind);
    std::printf("  %-10s %12s %12s %12s %14s %11s\n", "kind", "sent", "freed", "held", "held/conn", "held sends");
    size_t held_total = 0;
    for (const Row& r : rows) {
        size_t held = r.sent - r.freed;
        held_total += held;
        std::printf("  %-10s %12zu %12zu %12zu %14zu %11zu\n", r.kind, r.sent, r.freed, held, held / per_kind,
                    r.held_sends);
    }
    std::printf("process totals: held_sends %u now (%zu bytes), abandoned_sends +%llu\n", t1.held_sends - t0.held_sends,
                held_total, (unsigned long long)(t1.abandoned_sends - t0.abandoned_sends));
    return 0;
}
