// libblight-reference.so: upstream libblight_protocol socket.cpp's algorithm, in its own
// shared library, so that blight-bench calls it exactly as it calls ours (through a pointer
// from dlsym) and it is compiled as a library, not inlined into the benchmark's loops.
//
// send_blocking: send(MSG_EOR | MSG_NOSIGNAL) in a loop; EAGAIN/EINTR sleep 5 us and retry.
// recv_blocking: recv(MSG_WAITALL) in a loop, same retry; upstream's offset bug fixed
// (each partial read lands at buffer + received, not at the start), so its data verifies.
// Exported under this project's C names (the library is only ever dlopen()ed with
// RTLD_LOCAL, and linked with -Bsymbolic so that its own calls stay inside it).
#include <sys/socket.h>
#include <sys/types.h>
#include <time.h>

#include <cerrno>
#include <cstdlib>

#define REF_EXPORT extern "C" __attribute__((visibility("default")))

namespace {
void short_pause() {
    timespec requested{0, 5000};
    timespec remaining{};
    nanosleep(&requested, &remaining);
}
}  // namespace

REF_EXPORT int blight_send_blocking(int fd, const unsigned char* data, ssize_t size) {
    ssize_t sent = 0;
    while (sent < size) {
        ssize_t res = ::send(fd, data + sent, size - sent, MSG_EOR | MSG_NOSIGNAL);
        if (res > 0) {
            sent += res;
            continue;
        }
        if (res < 0 && errno != EAGAIN && errno != EINTR) {
            return -errno;
        }
        short_pause();
    }
    return 0;
}

REF_EXPORT int blight_recv_blocking_into(int fd, unsigned char* data, ssize_t size) {
    ssize_t received = 0;
    while (received < size) {
        ssize_t res = ::recv(fd, data + received, size - received, MSG_WAITALL);
        if (res > 0) {
            received += res;
            continue;
        }
        if (res == 0) {
            return -EBADMSG;
        }
        if (errno != EAGAIN && errno != EINTR) {
            return -errno;
        }
        short_pause();
    }
    return 0;
}

// As upstream's C blight_recv_blocking: the memory comes from the allocator (malloc here,
// new[] upstream: the same allocation underneath); the caller frees it.
REF_EXPORT int blight_recv_blocking(int fd, unsigned char** data, ssize_t size) {
    if (size <= 0) return -EINVAL;
    auto* buf = static_cast<unsigned char*>(std::malloc(static_cast<size_t>(size)));
    if (buf == nullptr) return -ENOMEM;
    int rc = blight_recv_blocking_into(fd, buf, size);
    if (rc != 0) {
        std::free(buf);
        return rc;
    }
    *data = buf;
    return 0;
}
