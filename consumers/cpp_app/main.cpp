// A C++ consumer written the way oxide's code uses the socket layer: its own
// BlightProtocol typedefs come first (as upstream's libblight_protocol.h declares them),
// then <libblight_protocol/socket.h>; messages are a 12-byte header then the payload,
// sent with BlightProtocol::send_blocking and read with wait_for_read + recv_blocking,
// and received memory is released with delete[].
// Exits 1 at the first wrong result.
#include <cstdint>

namespace BlightProtocol {
typedef unsigned char* blight_data_t;
// As upstream's libblight_protocol.h.
typedef enum { Invalid, Ack, Ping, Repaint, Move, Info, Delete, List, Raise, Lower, Wait, Focus } BlightMessageType;
typedef struct blight_header_t {
    BlightMessageType type;
    unsigned int ackid;
    uint32_t size;
} blight_header_t;
typedef struct blight_message_t {
    blight_header_t header;
    blight_data_t data;
} blight_message_t;
}  // namespace BlightProtocol

#include <libblight_protocol/socket.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <sys/socket.h>
#include <thread>
#include <unistd.h>
#include <vector>

using namespace BlightProtocol;

static_assert(sizeof(blight_header_t) == 12, "oxide's message header is 12 bytes");

#define CHECK(cond)                                                                            \
    do {                                                                                       \
        if (!(cond)) {                                                                         \
            std::fprintf(stderr, "cpp_app: %s:%d: check failed: %s (errno %d: %s)\n", __FILE__, \
                         __LINE__, #cond, errno, std::strerror(errno));                        \
            std::exit(1);                                                                      \
        }                                                                                      \
    } while (0)

// oxide's blight_send_message: the header, then the payload, two send_blocking calls.
static bool send_message(int fd, BlightMessageType type, unsigned int ackid, uint32_t size,
                         blight_data_t data) {
    blight_header_t header{type, ackid, size};
    if (!send_blocking(fd, reinterpret_cast<blight_data_t>(&header), sizeof(header))) {
        return false;
    }
    return size == 0 || send_blocking(fd, data, size);
}

// oxide's blight_message_from_socket: wait, read the header, read the payload.
static blight_message_t* message_from_socket(int fd) {
    if (!wait_for_read(fd)) {
        return nullptr;
    }
    auto maybe = recv_blocking(fd, sizeof(blight_header_t));
    if (!maybe.has_value()) {
        return nullptr;
    }
    auto message = new blight_message_t;
    std::memcpy(&message->header, maybe.value(), sizeof(blight_header_t));
    delete[] maybe.value();
    message->data = nullptr;
    if (message->header.size) {
        auto payload = recv_blocking(fd, message->header.size);
        if (!payload.has_value()) {
            delete message;
            return nullptr;
        }
        message->data = payload.value();
    }
    return message;
}

static void message_deref(blight_message_t* message) {
    delete[] message->data;  // from new[]: recv_blocking's memory
    delete message;
}

static unsigned char pattern(size_t i, unsigned int ackid) {
    return static_cast<unsigned char>((i * 13 + ackid * 101 + (i >> 10)) & 0xff);
}

// The "server": answers every Ping with an Ack of the same ackid whose payload is the
// request's payload, bytes reversed; stops at a Delete.
static void serve(int fd) {
    for (;;) {
        blight_message_t* m = message_from_socket(fd);
        if (m == nullptr) {
            std::fprintf(stderr, "cpp_app: server: receive failed: %s\n", std::strerror(errno));
            std::exit(1);
        }
        if (m->header.type == Delete) {
            message_deref(m);
            return;
        }
        std::vector<unsigned char> reply(m->data, m->data + m->header.size);
        std::vector<unsigned char>(reply.rbegin(), reply.rend()).swap(reply);
        if (!send_message(fd, Ack, m->header.ackid, m->header.size, reply.data())) {
            std::fprintf(stderr, "cpp_app: server: send failed: %s\n", std::strerror(errno));
            std::exit(1);
        }
        message_deref(m);
    }
}

int main() {
    int sv[2];
    // How the display server makes its socket pairs.
    CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) == 0);
    std::thread server(serve, sv[1]);

    // Payload sizes from empty to far more than the socket buffer holds.
    const uint32_t sizes[] = {0, 1, 12, 64, 4096, 65536, 100003, 1u << 20, 3u << 20};
    unsigned int ackid = 0;
    for (uint32_t size : sizes) {
        ++ackid;
        std::vector<unsigned char> payload(size);
        for (size_t i = 0; i < size; i++) {
            payload[i] = pattern(i, ackid);
        }
        CHECK(send_message(sv[0], Ping, ackid, size, payload.data()));
        blight_message_t* reply = message_from_socket(sv[0]);
        CHECK(reply != nullptr);
        CHECK(reply->header.type == Ack);
        CHECK(reply->header.ackid == ackid);
        CHECK(reply->header.size == size);
        for (size_t i = 0; i < size; i++) {
            CHECK(reply->data[i] == pattern(size - 1 - i, ackid));
        }
        message_deref(reply);
    }

    // The same message through the one-call path: header and payload in one gather list.
    {
        ++ackid;
        std::vector<unsigned char> payload(5000);
        for (size_t i = 0; i < payload.size(); i++) {
            payload[i] = pattern(i, ackid);
        }
        blight_header_t header{Ping, ackid, static_cast<uint32_t>(payload.size())};
        struct iovec iov[2] = {{&header, sizeof(header)}, {payload.data(), payload.size()}};
        CHECK(send_blocking(sv[0], iov, 2));
        blight_message_t* reply = message_from_socket(sv[0]);
        CHECK(reply != nullptr && reply->header.ackid == ackid && reply->header.size == 5000);
        CHECK(reply->data[0] == pattern(4999, ackid) && reply->data[4999] == pattern(0, ackid));
        message_deref(reply);
    }

    // A zero-copy payload from new[]: the library delete[]s it once released and consumed.
    {
        ++ackid;
        const uint32_t size = 256 * 1024;
        blight_data_t payload = new unsigned char[size];
        for (size_t i = 0; i < size; i++) {
            payload[i] = pattern(i, ackid);
        }
        blight_header_t header{Ping, ackid, size};
        CHECK(send_blocking(sv[0], reinterpret_cast<blight_data_t>(&header), sizeof(header)));
        auto id = send_zerocopy(sv[0], payload, size);
        CHECK(id.has_value());
        CHECK(blight_release_buffer(*id) == 0);  // payload belongs to the library now
        blight_message_t* reply = message_from_socket(sv[0]);
        CHECK(reply != nullptr && reply->header.ackid == ackid && reply->header.size == size);
        for (size_t i = 0; i < size; i++) {
            CHECK(reply->data[i] == pattern(size - 1 - i, ackid));
        }
        message_deref(reply);
        // The server read every byte; the buffer completes and is freed.
        for (int i = 0; i < 500 && blight_buffer_in_flight(*id) != -ENOENT; i++) {
            CHECK(blight_process_zerocopy_completions(sv[0], 10) >= 0);
        }
        CHECK(blight_buffer_in_flight(*id) == -ENOENT);
    }

    CHECK(send_message(sv[0], Delete, ++ackid, 0, nullptr));
    server.join();

    // Nothing to read: upstream's recv gives up with EAGAIN, wait_for_read times out.
    errno = 0;
    CHECK(!BlightProtocol::recv(sv[0], sizeof(blight_header_t), 2, 10).has_value() && errno == EAGAIN);
    errno = 0;
    CHECK(!wait_for_read(sv[0], 10) && errno == EAGAIN);

    // The peer closes: no SIGPIPE, EPIPE; the reader sees ECONNRESET.
    CHECK(blight_forget_socket(sv[1]) >= 0);
    close(sv[1]);
    unsigned char byte = 1;
    errno = 0;
    CHECK(!send_blocking(sv[0], &byte, 1) && errno == EPIPE);
    errno = 0;
    CHECK(!wait_for_read(sv[0], 100) && errno == ECONNRESET);
    CHECK(blight_forget_socket(sv[0]) >= 0);
    close(sv[0]);

    std::printf("cpp_app: %u oxide-style messages exchanged, all checks passed\n", ackid);
    return 0;
}
