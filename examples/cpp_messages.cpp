// oxide-style messages over an AF_UNIX socket pair, with the C++ API of
// <libblight_protocol/socket.h>:
//
//   - small messages: the 12-byte header and the payload in one gather list,
//     BlightProtocol::send_blocking(fd, iov, 2): one system call per message where
//     upstream makes two;
//   - a large payload (a full-screen 8-bit surface, 1404 x 1872 as on a reMarkable) from
//     new[], sent with BlightProtocol::send_zerocopy: the library delete[]s it once the id
//     is released and the receiver has consumed the bytes;
//   - the receiver: wait_for_read, then recv_blocking for the header and the payload, and
//     delete[] for what they return (as oxide's code does).
//
// Exits non-zero on any wrong result.
#include <libblight_protocol/socket.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <sys/socket.h>
#include <thread>
#include <unistd.h>

namespace {

enum MessageType : uint32_t { Invalid, Ack, Ping, Repaint, Move, Info, Delete };

// oxide's blight_header_t: type, ackid, payload size.
struct Header {
    MessageType type;
    unsigned int ackid;
    uint32_t size;
};
static_assert(sizeof(Header) == 12, "oxide's header is 12 bytes");

#define CHECK(cond)                                                                          \
    do {                                                                                     \
        if (!(cond)) {                                                                       \
            std::fprintf(stderr, "cpp_messages: %s:%d: %s failed (errno %d: %s)\n", __FILE__, \
                         __LINE__, #cond, errno, std::strerror(errno));                      \
            std::exit(1);                                                                    \
        }                                                                                    \
    } while (0)

unsigned char pattern(size_t i, unsigned int ackid) {
    return static_cast<unsigned char>((i * 29 + ackid * 3 + (i >> 8)) & 0xff);
}

// Header and payload in one call: no partial message is ever visible on its own, and one
// system call instead of two.
bool send_message(int fd, MessageType type, unsigned int ackid, const unsigned char* data,
                  uint32_t size) {
    Header header{type, ackid, size};
    struct iovec iov[2] = {{&header, sizeof(header)}, {const_cast<unsigned char*>(data), size}};
    return BlightProtocol::send_blocking(fd, iov, size ? 2 : 1);
}

// A large payload that the caller gives away: header with send_blocking, payload with
// send_zerocopy. Returns the buffer id to release (the caller could keep it to ask
// blight_buffer_in_flight first).
blight_buffer_id_t send_surface(int fd, unsigned int ackid, unsigned char* data, uint32_t size) {
    Header header{Repaint, ackid, size};
    CHECK(BlightProtocol::send_blocking(fd, reinterpret_cast<BlightProtocol::blight_data_t>(&header),
                                        sizeof(header)));
    auto id = BlightProtocol::send_zerocopy(fd, data, size);
    // On failure send_zerocopy has already released the id: the library still frees data.
    CHECK(id.has_value());
    return *id;
}

// The receiving side, as oxide reads a message: wait, header, payload (delete[] both).
struct Received {
    Header header;
    unsigned char* data;  // new[]; nullptr for an empty payload
};

bool receive(int fd, Received& out) {
    if (!BlightProtocol::wait_for_read(fd, 5000)) {
        return false;
    }
    auto header = BlightProtocol::recv_blocking(fd, sizeof(Header));
    if (!header) {
        return false;
    }
    std::memcpy(&out.header, *header, sizeof(Header));
    delete[] *header;
    out.data = nullptr;
    if (out.header.size > 0) {
        auto payload = BlightProtocol::recv_blocking(fd, out.header.size);
        if (!payload) {
            return false;
        }
        out.data = *payload;
    }
    return true;
}

}  // namespace

int main() {
    int sv[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) == 0);
    const int client = sv[0], server = sv[1];
    constexpr uint32_t kSurface = 1404 * 1872;
    constexpr unsigned int kSmall = 200;

    // The display server side: checks every message, acknowledges each with its ackid.
    int server_errors = 0;
    unsigned long long server_bytes = 0;
    std::thread display([&] {
        for (;;) {
            Received m{};
            if (!receive(server, m)) {
                server_errors++;
                return;
            }
            for (uint32_t i = 0; i < m.header.size; i++) {
                if (m.data[i] != pattern(i, m.header.ackid)) {
                    server_errors++;
                    break;
                }
            }
            server_bytes += m.header.size;
            delete[] m.data;
            if (m.header.type == Delete) {
                return;
            }
            if (!send_message(server, Ack, m.header.ackid, nullptr, 0)) {
                server_errors++;
                return;
            }
        }
    });

    auto expect_ack = [&](unsigned int ackid) {
        Received ack{};
        CHECK(receive(client, ack));
        CHECK(ack.header.type == Ack && ack.header.ackid == ackid && ack.header.size == 0);
    };

    // Small messages, one system call each.
    unsigned char small[64];
    for (unsigned int ackid = 1; ackid <= kSmall; ackid++) {
        uint32_t size = ackid % 65;  // 0..64 bytes
        for (uint32_t i = 0; i < size; i++) {
            small[i] = pattern(i, ackid);
        }
        CHECK(send_message(client, ackid % 2 ? Ping : Move, ackid, small, size));
        expect_ack(ackid);
    }

    // Three full-screen surfaces, zero-copy; each buffer is given away at once.
    for (unsigned int ackid = kSmall + 1; ackid <= kSmall + 3; ackid++) {
        unsigned char* surface = new unsigned char[kSurface];
        for (uint32_t i = 0; i < kSurface; i++) {
            surface[i] = pattern(i, ackid);
        }
        blight_buffer_id_t id = send_surface(client, ackid, surface, kSurface);
        CHECK(blight_release_buffer(id) == 0);  // surface is the library's now
        expect_ack(ackid);
        // The display server read it: completing now delete[]s the surface.
        CHECK(blight_process_zerocopy_completions(client, 1000) >= 0);
        for (int i = 0; i < 100 && blight_buffer_in_flight(id) != -ENOENT; i++) {
            CHECK(blight_process_zerocopy_completions(client, 10) >= 0);
        }
        CHECK(blight_buffer_in_flight(id) == -ENOENT);  // released and complete: freed
    }

    CHECK(send_message(client, Delete, kSmall + 4, nullptr, 0));
    display.join();
    CHECK(server_errors == 0);
    CHECK(server_bytes == 3ull * kSurface + [] {
        unsigned long long n = 0;
        for (unsigned int a = 1; a <= kSmall; a++) n += a % 65;
        return n;
    }());

    blight_zerocopy_stats st;
    CHECK(blight_get_zerocopy_stats(client, &st) == 0);
    std::printf("cpp_messages: %u small messages (header + payload in one call), 3 surfaces of %u bytes\n",
                kSmall, kSurface);
    std::printf("  surfaces: %llu bytes spliced, %llu copied, %llu by MSG_ZEROCOPY; %llu sends completed, %llu pending\n",
                static_cast<unsigned long long>(st.splice_bytes),
                static_cast<unsigned long long>(st.copied_bytes),
                static_cast<unsigned long long>(st.zerocopy_bytes),
                static_cast<unsigned long long>(st.completed_sends),
                static_cast<unsigned long long>(st.pending_sends));
    CHECK(st.splice_bytes + st.copied_bytes + st.zerocopy_bytes == 3ull * kSurface);
    CHECK(st.pending_sends == 0);

    CHECK(blight_forget_socket(client) == 0);
    close(client);
    close(server);
    std::printf("cpp_messages: OK\n");
    return 0;
}
