// Single-threaded check of the five exported BlightProtocol:: functions, for cross builds
// run under qemu-user (where threads do not work): calls each through upstream's
// declarations on a non-blocking AF_UNIX socket pair. Exits non-zero on the first failure.
//   <triple>-g++ -std=c++17 -Iinclude cxx/abi_check.cpp -L<dir of libblight_socket.so> \
//     -lblight_socket -o abi_check && qemu-<arch> -L /usr/<triple> -E LD_LIBRARY_PATH=<dir> ./abi_check
#include <libblight_protocol/socket.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <sys/socket.h>
#include <unistd.h>

#define CHECK(cond)                                                            \
    do {                                                                       \
        if (!(cond)) {                                                         \
            std::fprintf(stderr, "abi_check: line %d: %s\n", __LINE__, #cond); \
            return 1;                                                          \
        }                                                                      \
    } while (0)

int main() {
    int sv[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) == 0);
    unsigned char msg[64];
    for (unsigned i = 0; i < sizeof msg; i++) msg[i] = static_cast<unsigned char>(i * 7 + 3);
    CHECK(BlightProtocol::wait_for_send(sv[0]));
    CHECK(BlightProtocol::send_blocking(sv[0], msg, 40));
    CHECK(BlightProtocol::wait_for_read(sv[1], 100));
    auto a = BlightProtocol::recv(sv[1], 24);
    CHECK(a.has_value() && std::memcmp(*a, msg, 24) == 0);
    delete[] *a;
    auto b = BlightProtocol::recv_blocking(sv[1], 16);
    CHECK(b.has_value() && std::memcmp(*b, msg + 24, 16) == 0);
    delete[] *b;
    errno = 0;
    CHECK(!BlightProtocol::recv(sv[1], 8, 2, 10).has_value() && errno == EAGAIN);
    CHECK(!BlightProtocol::wait_for_read(sv[1], 0) && errno == EAGAIN);
    CHECK(!BlightProtocol::recv(sv[1], 0).has_value() && errno == EINVAL);
    close(sv[0]);
    CHECK(!BlightProtocol::recv_blocking(sv[1], 8).has_value() && errno == EBADMSG);
    CHECK(!BlightProtocol::send_blocking(sv[1], msg, 8) && errno == EPIPE);
    close(sv[1]);
    std::printf("abi_check: %zu-bit, all checks passed\n", sizeof(void*) * 8);
    return 0;
}
