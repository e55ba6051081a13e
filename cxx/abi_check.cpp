// The C++ ABI on the tablets: calls the five exported BlightProtocol:: functions through
// the declarations of upstream's unmodified socket.h (oxide's shared/libblight_protocol,
// with the libblight_protocol.h it includes) on an AF_UNIX socket pair, compiled with the
// cross compiler and run under qemu-user against the cross-built library
// (scripts/test.d/26-cross-arm.sh). The caller's undefined symbols carry upstream's
// mangling (ssize_t: `i` on armv7, `l` on aarch64), and a std::optional<unsigned char*>
// comes back in memory on armv7 (AAPCS: a composite larger than 4 bytes) and in x0/x1 on
// aarch64: a library that disagreed would fail these checks. Exits non-zero on the first
// failure. By hand (O = an oxide checkout's shared/ directory, S = a directory holding a
// copy of /usr/include/systemd):
//   <triple>-g++ -std=c++17 -I$O -I$O/libblight_protocol/vendor/fbg/src
//     -I$O/libblight_protocol/vendor/fbg/src/nanojpeg -I$S cxx/abi_check.cpp
//     -L<dir of libblight_socket.so> -lblight_socket -o abi_check
//   qemu-<arch> -L / -E LD_LIBRARY_PATH=<dir of libblight_socket.so> ./abi_check
#include <libblight_protocol/socket.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <optional>
#include <type_traits>
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
    using Optional = std::optional<BlightProtocol::blight_data_t>;
    static_assert(std::is_trivially_copyable_v<Optional>, "std::optional<unsigned char*> is trivially copyable");
#if defined(__arm__)
    static_assert(sizeof(Optional) == 8, "returned in memory under AAPCS (composite > 4 bytes)");
    const char* returned = "in memory (AAPCS: an 8-byte composite; the caller passes its address in r0)";
#elif defined(__aarch64__)
    static_assert(sizeof(Optional) == 16, "returned in x0/x1 under AAPCS64 (composite <= 16 bytes)");
    const char* returned = "in registers x0/x1 (AAPCS64: a 16-byte composite)";
#else
    const char* returned = "as this host's ABI returns a trivially copyable struct";
#endif
    std::printf("abi_check: %zu-bit, sizeof(ssize_t) %zu, std::optional<blight_data_t> of %zu bytes returned %s: "
                "the five functions, all checks passed\n",
                sizeof(void*) * 8, sizeof(ssize_t), sizeof(Optional), returned);
    return 0;
}
