/* SPDX-License-Identifier: MIT */
/*
 * libblight_protocol/socket.h: upstream-compatible socket layer of libblight_protocol,
 * implemented by libblight_socket.
 *
 * From C: the declarations of blight_socket.h.
 * From C++: the same, plus the BlightProtocol API that oxide's code calls. Memory these
 * wrappers return comes from new[] and is released with delete[]; on failure they return
 * an empty optional (or false) and set errno.
 *
 * Works when upstream's libblight_protocol.h (which declares
 * BlightProtocol::blight_data_t as unsigned char*) was included first.
 */
#ifndef LIBBLIGHT_PROTOCOL_SOCKET_H
#define LIBBLIGHT_PROTOCOL_SOCKET_H

#include "../blight_socket.h"

#ifdef __cplusplus
#include <cerrno>
#include <cstddef>
#include <new>
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

namespace detail {
inline bool ok(int res) {
    if (res < 0) {
        errno = -res;
        return false;
    }
    return true;
}
inline void delete_array(blight_data_t data, size_t, void*) { delete[] data; }

/* Allocates `size` bytes with new[] and fills them with `fill(data)` (a negative errno on
 * failure); on failure frees them and returns nothing with errno set. */
template <class Fill>
inline std::optional<blight_data_t> recv_new(ssize_t size, Fill fill) {
    if (size <= 0) {
        errno = EINVAL;
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
}  // namespace detail

/* Receives exactly `size` bytes: up to `attempts` waits of `timeout` ms for data, then
 * a read; a partial message is completed with a blocking read. Free with delete[]. */
inline std::optional<blight_data_t> recv(int fd, ssize_t size, unsigned int attempts = 5,
                                         unsigned int timeout = 50) {
    return detail::recv_new(size, [&](blight_data_t data) { return ::blight_recv_into(fd, data, size, attempts, timeout); });
}

/* Receives exactly `size` bytes, waiting as long as it takes. Free with delete[]. */
inline std::optional<blight_data_t> recv_blocking(int fd, ssize_t size) {
    return detail::recv_new(size, [&](blight_data_t data) { return ::blight_recv_blocking_into(fd, data, size); });
}

/* Sends every byte or fails (errno EPIPE for a closed peer; never SIGPIPE). */
inline bool send_blocking(int fd, const blight_data_t data, ssize_t size) {
    return detail::ok(::blight_send_blocking(fd, data, size));
}

/* Sends every byte of a gather list, in one system call when the socket has room. */
inline bool send_blocking(int fd, const struct iovec* iov, int count) {
    return detail::ok(::blight_sendv_blocking(fd, iov, count));
}

inline bool wait_for_send(int fd, int timeout = -1) {
    return detail::ok(::blight_wait_for_send(fd, timeout));
}

inline bool wait_for_read(int fd, int timeout = -1) {
    return detail::ok(::blight_wait_for_read(fd, timeout));
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
