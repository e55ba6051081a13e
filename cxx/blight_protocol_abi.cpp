// SPDX-License-Identifier: MIT
// Upstream's five BlightProtocol:: C++ functions, defined out of line with upstream's
// exact declarations (include/libblight_protocol/socket.h), so that binaries built
// against upstream's socket.h (libblight, the display server, apps) find them in
// libblight_socket.so. Compiled by build.rs with the target's C++ compiler: the mangled
// names (ssize_t is `l` on 64-bit targets, `i` on 32-bit ones) and the way
// std::optional<unsigned char*> is returned (registers on x86-64 and aarch64, memory on
// armv7) are the compiler's, not guessed. Each one forwards to a C export of the Rust
// library; only these five are defined here (cxx/exports.map exports them).
//
// Behaviour as upstream's socket.cpp: errno set on failure, memory from new[] (callers
// delete[] it), size <= 0 is EINVAL for recv, attempts == 0 gives EAGAIN without reading.
// The differences are listed in docs/GUIDE.md ("Migrating oxide").
#include "libblight_protocol/socket.h"

#include <cerrno>
#include <new>

namespace BlightProtocol {
namespace {
// true, or false with errno set (not detail::ok: an inline function of the header would be
// emitted as a weak BlightProtocol:: symbol and exported).
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
    blight_data_t data = new (std::nothrow) unsigned char[static_cast<size_t>(size)];
    if (data == nullptr) {
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
}  // namespace BlightProtocol
