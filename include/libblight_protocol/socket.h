/* SPDX-License-Identifier: MIT */
/*
 * libblight_protocol/socket.h: upstream-compatible socket layer of libblight_protocol,
 * implemented by libblight_socket.
 *
 * From C: the declarations of blight_socket.h.
 * From C++: the same, plus the BlightProtocol API that oxide's code calls, declared
 * exactly as upstream's socket.h declares it. libblight_socket exports these five
 * functions out of line with upstream's mangled names, so binaries built against
 * upstream's header run against this library unchanged. Memory they return comes from
 * new[] and is released with delete[]; on failure they return an empty optional (or
 * false) and set errno.
 *
 * Works when upstream's libblight_protocol.h (which declares
 * BlightProtocol::blight_data_t as unsigned char*) was included first, from plain C, in
 * the installed layout (<prefix>/include/libblight_protocol/socket.h next to
 * <prefix>/include/blight_socket.h), and copied flat into one directory together with
 * blight_socket.h (what upstream's qmake build does with the headers of HEADERS).
 */
#ifndef LIBBLIGHT_PROTOCOL_SOCKET_H
#define LIBBLIGHT_PROTOCOL_SOCKET_H

/* blight_socket.h: next to this file (copied flat), one directory up (installed), or on
 * the include path. */
#if defined(__has_include)
#if __has_include("blight_socket.h")
#include "blight_socket.h"
#elif __has_include("../blight_socket.h")
#include "../blight_socket.h"
#else
#include <blight_socket.h>
#endif
#else
#include "../blight_socket.h"
#endif

#ifdef __cplusplus
#include <cerrno>
#include <cstddef>
#include <optional>
#include <sys/uio.h>

namespace BlightProtocol {
typedef unsigned char* blight_data_t;

/* Upstream declares the C functions inside namespace BlightProtocol too. */
using ::blight_buffer_id_t;
using ::blight_free_fn;
using ::blight_recv;
using ::blight_recv_blocking;
using ::blight_send_blocking;
using ::blight_sendv_blocking;
using ::blight_wait_for_read;
using ::blight_wait_for_send;
using ::blight_send_zerocopy;
using ::blight_process_zerocopy_completions;
using ::blight_release_buffer;

/* Upstream's five functions, declared as upstream declares them (defaults included;
 * upstream's LIBBLIGHT_PROTOCOL_EXPORT is this visibility attribute), and defined out of
 * line in libblight_socket (cxx/blight_protocol_abi.cpp). */
#define BLIGHT_SOCKET_CXX_EXPORT __attribute__((visibility("default")))

/* Receives exactly `size` bytes: up to `attempts` waits of `timeout` ms for data, then
 * a read; a partial message is completed with a blocking read. Free with delete[]. */
BLIGHT_SOCKET_CXX_EXPORT std::optional<blight_data_t> recv(int fd, ssize_t size, unsigned int attempts = 5, unsigned int timeout = 50);

/* Receives exactly `size` bytes, waiting as long as it takes. Free with delete[]. */
BLIGHT_SOCKET_CXX_EXPORT std::optional<blight_data_t> recv_blocking(int fd, ssize_t size);

/* Sends every byte or fails (errno EPIPE for a closed peer; never SIGPIPE). */
BLIGHT_SOCKET_CXX_EXPORT bool send_blocking(int fd, const blight_data_t data, ssize_t size);

/* Wait until `fd` is writable / readable; `timeout` in ms, -1 waits forever. */
BLIGHT_SOCKET_CXX_EXPORT bool wait_for_send(int fd, int timeout = -1);
BLIGHT_SOCKET_CXX_EXPORT bool wait_for_read(int fd, int timeout = -1);

/* Extensions of this library, inline over the C exports. */
namespace detail {
inline bool ok(int res) {
    if (res < 0) {
        errno = -res;
        return false;
    }
    return true;
}
inline void delete_array(blight_data_t data, size_t, void*) { delete[] data; }
}  // namespace detail

/* Sends every byte of a gather list, in one system call when the socket has room. */
inline bool send_blocking(int fd, const struct iovec* iov, int count) {
    return detail::ok(::blight_sendv_blocking(fd, iov, count));
}

/* Zero-copy send of memory allocated with new[]: the library delete[]s it once the id
 * is released and the kernel is done with it. Returns the id to release, or nothing
 * (errno set). Who owns `data` after a failure depends on errno:
 *   EINVAL, EBADF, ENOTSOCK: nothing was registered, the caller still owns `data` and
 *                            must delete[] it;
 *   any other errno (EPIPE, ECONNRESET, ...): the send failed after registration, the
 *                            library owns `data`, releases the id itself and delete[]s
 *                            it; the caller must not touch it again. A send that the
 *                            kernel refuses with one of the three errnos above after
 *                            registration (EINVAL from UDP GSO, say) is reported as EIO,
 *                            so that the rule holds; the library logs the kernel's error. */
inline std::optional<blight_buffer_id_t> send_zerocopy(int fd, blight_data_t data, ssize_t size) {
    blight_buffer_id_t id = 0;
    int res = ::blight_send_zerocopy(fd, data, size, &detail::delete_array, nullptr, &id);
    if (res < 0) {
        if (id != 0) {
            ::blight_release_buffer(id);
            if (res == -EINVAL || res == -EBADF || res == -ENOTSOCK) {
                res = -EIO;  // the library owns `data` (see above)
            }
        }
        errno = -res;
        return {};
    }
    return id;
}
}  // namespace BlightProtocol
#endif /* __cplusplus */

#endif /* LIBBLIGHT_PROTOCOL_SOCKET_H */
