// Shared helpers of the C++ suites: real sockets of every kind, owned descriptors, and
// data patterns that make corruption, loss and reordering visible.
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include "blight_socket.h"

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace blight_test {

// An owned file descriptor, closed on destruction.
class Fd {
  public:
    Fd() = default;
    explicit Fd(int fd) : fd_(fd) {}
    Fd(Fd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
    Fd& operator=(Fd&& o) noexcept {
        reset(std::exchange(o.fd_, -1));
        return *this;
    }
    Fd(const Fd&) = delete;
    Fd& operator=(const Fd&) = delete;
    // The documented way to close a socket the library may know: forget, then close. Tests
    // that close without forgetting do it explicitly (reset(), close()); at the end of a
    // test's scope this keeps one test's sockets out of the next one's statistics when the
    // suite runs in one process (valgrind), since a small send on a reused number is
    // counted without an identity check (docs/GUIDE.md).
    ~Fd() {
        if (fd_ >= 0) blight_forget_socket(fd_);
        reset();
    }
    int get() const { return fd_; }
    int release() { return std::exchange(fd_, -1); }
    void reset(int fd = -1) {
        if (fd_ >= 0) ::close(fd_);
        fd_ = fd;
    }

  private:
    int fd_ = -1;
};

struct Pair {
    Fd a;  // the sending side by convention
    Fd b;
};

inline void check_sys(bool ok, const char* what) {
    if (!ok) throw std::runtime_error(std::string(what) + ": " + std::strerror(errno));
}

inline void set_nonblocking(int fd, bool on) {
    int flags = ::fcntl(fd, F_GETFL);
    check_sys(flags >= 0, "fcntl");
    check_sys(::fcntl(fd, F_SETFL, on ? (flags | O_NONBLOCK) : (flags & ~O_NONBLOCK)) == 0, "fcntl");
}

// socketpair(AF_UNIX, type [| SOCK_NONBLOCK]).
inline Pair unix_pair(bool nonblocking = false, int type = SOCK_STREAM) {
    int sv[2];
    check_sys(::socketpair(AF_UNIX, type | (nonblocking ? SOCK_NONBLOCK : 0), 0, sv) == 0, "socketpair");
    return Pair{Fd(sv[0]), Fd(sv[1])};
}

// The loopback address of `family` (AF_INET or AF_INET6), any port; returns its length.
inline socklen_t loopback_address(int family, sockaddr_storage& ss) {
    ss = sockaddr_storage{};
    if (family == AF_INET) {
        auto* sin = reinterpret_cast<sockaddr_in*>(&ss);
        sin->sin_family = AF_INET;
        sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        return sizeof(sockaddr_in);
    }
    auto* sin6 = reinterpret_cast<sockaddr_in6*>(&ss);
    sin6->sin6_family = AF_INET6;
    sin6->sin6_addr = in6addr_loopback;
    return sizeof(sockaddr_in6);
}

// A connected TCP pair over loopback. `on_listener(fd)` and `on_client(fd)` may set
// options that must exist before the connection (buffer sizes, MSS).
template <class OnListener, class OnClient>
inline Pair tcp_pair_with(int family, OnListener on_listener, OnClient on_client) {
    Fd listener(::socket(family, SOCK_STREAM, 0));
    check_sys(listener.get() >= 0, "socket");
    on_listener(listener.get());
    sockaddr_storage ss;
    socklen_t len = loopback_address(family, ss);
    check_sys(::bind(listener.get(), reinterpret_cast<sockaddr*>(&ss), len) == 0, "bind");
    check_sys(::listen(listener.get(), 1) == 0, "listen");
    check_sys(::getsockname(listener.get(), reinterpret_cast<sockaddr*>(&ss), &len) == 0, "getsockname");
    Fd client(::socket(family, SOCK_STREAM, 0));
    check_sys(client.get() >= 0, "socket");
    on_client(client.get());
    check_sys(::connect(client.get(), reinterpret_cast<sockaddr*>(&ss), len) == 0, "connect");
    Fd server(::accept(listener.get(), nullptr, nullptr));
    check_sys(server.get() >= 0, "accept");
    return Pair{std::move(client), std::move(server)};
}

// A connected TCP pair over loopback (AF_INET or AF_INET6).
inline Pair tcp_pair(int family = AF_INET, bool nonblocking = false) {
    Pair p = tcp_pair_with(family, [](int) {}, [](int) {});
    if (nonblocking) set_nonblocking(p.a.get(), true);
    return p;
}

// A connected UDP pair over loopback (AF_INET or AF_INET6).
inline Pair udp_pair(int family = AF_INET) {
    Fd a(::socket(family, SOCK_DGRAM, 0)), b(::socket(family, SOCK_DGRAM, 0));
    check_sys(a.get() >= 0 && b.get() >= 0, "socket");
    sockaddr_storage sa, sb;
    socklen_t len = loopback_address(family, sa);
    loopback_address(family, sb);
    check_sys(::bind(a.get(), reinterpret_cast<sockaddr*>(&sa), len) == 0, "bind");
    check_sys(::bind(b.get(), reinterpret_cast<sockaddr*>(&sb), len) == 0, "bind");
    socklen_t la = len, lb = len;
    check_sys(::getsockname(a.get(), reinterpret_cast<sockaddr*>(&sa), &la) == 0, "getsockname");
    check_sys(::getsockname(b.get(), reinterpret_cast<sockaddr*>(&sb), &lb) == 0, "getsockname");
    check_sys(::connect(a.get(), reinterpret_cast<sockaddr*>(&sb), lb) == 0, "connect");
    check_sys(::connect(b.get(), reinterpret_cast<sockaddr*>(&sa), la) == 0, "connect");
    return Pair{std::move(a), std::move(b)};
}

// Byte i of a pattern stream with `seed`: position-dependent, so a shifted, repeated or
// misplaced byte is detected.
inline unsigned char pattern_byte(uint64_t seed, uint64_t i) {
    uint64_t x = (i + 1) * 0x9E3779B97F4A7C15ull ^ seed * 0xD1B54A32D192ED03ull;
    x ^= x >> 29;
    return static_cast<unsigned char>(x);
}

inline void fill_pattern(unsigned char* buf, size_t n, uint64_t seed, uint64_t offset = 0) {
    for (size_t i = 0; i < n; i++) buf[i] = pattern_byte(seed, offset + i);
}

inline std::vector<unsigned char> pattern(size_t n, uint64_t seed, uint64_t offset = 0) {
    std::vector<unsigned char> v(n);
    fill_pattern(v.data(), n, seed, offset);
    return v;
}

// Index of the first byte that differs from the pattern, or -1.
inline long long first_mismatch(const unsigned char* buf, size_t n, uint64_t seed, uint64_t offset = 0) {
    for (size_t i = 0; i < n; i++)
        if (buf[i] != pattern_byte(seed, offset + i)) return static_cast<long long>(i);
    return -1;
}

// Reads exactly n bytes with plain read(2) (independent of the library under test);
// returns fewer only at EOF.
inline std::vector<unsigned char> read_exactly(int fd, size_t n) {
    std::vector<unsigned char> out(n);
    size_t got = 0;
    while (got < n) {
        ssize_t r = ::recv(fd, out.data() + got, n - got, 0);
        if (r == 0) break;
        if (r < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN) {
                usleep(100);
                continue;
            }
            throw std::runtime_error(std::string("recv: ") + std::strerror(errno));
        }
        got += static_cast<size_t>(r);
    }
    out.resize(got);
    return out;
}

// A free_fn that counts calls (and the bytes they freed) in a FreeCounter passed as
// `user`, and frees memory allocated with malloc/new[] as asked.
struct FreeCounter {
    std::atomic<int> calls{0};
    std::atomic<size_t> bytes{0};
};

extern "C" inline void count_only_free(unsigned char*, size_t size, void* user) {
    auto* c = static_cast<FreeCounter*>(user);
    c->bytes += size;
    c->calls++;
}

extern "C" inline void count_and_delete(unsigned char* data, size_t size, void* user) {
    delete[] data;
    count_only_free(data, size, user);
}

}  // namespace blight_test
