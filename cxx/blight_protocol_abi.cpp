// SPDX-License-Identifier: MIT
// Upstream's five BlightProtocol:: C++ functions, defined out of line with upstream's
// exact declarations (include/libblight_protocol/socket.h), so that binaries built
// against upstream's socket.h (libblight, the display server, apps) find them in
// libblight_socket.so. Compiled by build.rs with the target's C++ compiler: the mangled
// names (ssize_t is `l` on 64-bit targets, `i` on 32-bit ones) and the way
// std::optional<unsigned char*> is returned (registers on x86-64 and aarch64, memory on
// armv7) are the compiler's, not guessed. Each one forwards to a C export of the Rust
// library.
//
// They are defined here under internal names (asm labels blight_socket_cxx_*, hidden),
// and exported under upstream's mangled names by the Rust library (src/ffi/cxx.rs): a
// landing pad (endbr, bti c) and one branch instruction each, which leave arguments, return
// registers and the stack as they are. That is because rustc's version script for a cdylib
// ends in `local: *;` and GNU ld cannot merge a second one into it (only lld can): the
// exported names must be Rust's own.
//
// Behaviour as upstream's socket.cpp: errno set on failure, memory from new[] (callers
// delete[] it), size <= 0 is EINVAL for recv, attempts == 0 gives EAGAIN without reading.
// The differences are listed in docs/GUIDE.md ("Migrating oxide").
#include "libblight_protocol/socket.h"

#include <cerrno>
#include <new>
#include <type_traits>

// The internal names, branched to by the exported trampolines (src/ffi/cxx.rs).
#define BLIGHT_SOCKET_CXX_IMPL(name) __asm__("blight_socket_cxx_" name) __attribute__((visibility("hidden")))
namespace BlightSocketCxx {
using BlightProtocol::blight_data_t;
std::optional<blight_data_t> recv(int fd, ssize_t size, unsigned int attempts, unsigned int timeout)
    BLIGHT_SOCKET_CXX_IMPL("recv");
std::optional<blight_data_t> recv_blocking(int fd, ssize_t size) BLIGHT_SOCKET_CXX_IMPL("recv_blocking");
bool send_blocking(int fd, const blight_data_t data, ssize_t size) BLIGHT_SOCKET_CXX_IMPL("send_blocking");
bool wait_for_send(int fd, int timeout) BLIGHT_SOCKET_CXX_IMPL("wait_for_send");
bool wait_for_read(int fd, int timeout) BLIGHT_SOCKET_CXX_IMPL("wait_for_read");
}  // namespace BlightSocketCxx

// The exported functions have exactly the type of upstream's (declared in socket.h):
// a trampoline that branches from one to the other changes nothing.
static_assert(std::is_same_v<decltype(&BlightSocketCxx::recv), decltype(static_cast<std::optional<BlightProtocol::blight_data_t> (*)(int, ssize_t, unsigned, unsigned)>(&BlightProtocol::recv))>);
static_assert(std::is_same_v<decltype(&BlightSocketCxx::recv_blocking), decltype(&BlightProtocol::recv_blocking)>);
static_assert(std::is_same_v<decltype(&BlightSocketCxx::send_blocking), decltype(static_cast<bool (*)(int, const BlightProtocol::blight_data_t, ssize_t)>(&BlightProtocol::send_blocking))>);
static_assert(std::is_same_v<decltype(&BlightSocketCxx::wait_for_send), decltype(&BlightProtocol::wait_for_send)>);
static_assert(std::is_same_v<decltype(&BlightSocketCxx::wait_for_read), decltype(&BlightProtocol::wait_for_read)>);

namespace BlightSocketCxx {
namespace {
// true, or false with errno set.
bool ok(int res) {
    if (res < 0) {
        errno = -res;
        return false;
    }
    return true;
}

// new[] of `size` bytes filled by `fill` (a C export returning 0 or a negative errno).
template <class Fill>
std::optional<blight_data_t> recv_new(ssize_t size, Fill fill) {
    if (size <= 0) {
        // The C export logs the bad argument and returns -EINVAL.
        int res = fill(nullptr);
        errno = res < 0 ? -res : EINVAL;
        return {};
    }
    // Throwing new[] with a catch, as upstream allocates: the nothrow form costs a call
    // layer (and a try block) inside libstdc++ on every receive.
    blight_data_t data;
    try {
        data = new unsigned char[static_cast<size_t>(size)];
    } catch (const std::bad_alloc&) {
        errno = ENOMEM;
        return {};
    }
    int res = fill(data);
    if (res < 0) {
        delete[] data;
        errno = -res;
        return {};
    }
    return data;
}
}  // namespace

std::optional<blight_data_t> recv(int fd, ssize_t size, unsigned int attempts, unsigned int timeout) {
    if (size > 0 && attempts == 0) {
        // Upstream makes no attempt at all and reports EAGAIN (blight_recv_into would
        // count 0 as 1).
        errno = EAGAIN;
        return {};
    }
    return recv_new(size, [&](blight_data_t data) { return ::blight_recv_into(fd, data, size, attempts, timeout); });
}

std::optional<blight_data_t> recv_blocking(int fd, ssize_t size) {
    return recv_new(size, [&](blight_data_t data) { return ::blight_recv_blocking_into(fd, data, size); });
}

bool send_blocking(int fd, const blight_data_t data, ssize_t size) {
    return ok(::blight_send_blocking(fd, data, size));
}

bool wait_for_send(int fd, int timeout) {
    return ok(::blight_wait_for_send(fd, timeout));
}

bool wait_for_read(int fd, int timeout) {
    return ok(::blight_wait_for_read(fd, timeout));
}
}  // namespace BlightSocketCxx
