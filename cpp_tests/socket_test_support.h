// Helpers of the socket-layer suites (test_socket.cpp, test_sendv.cpp, test_cpp_api.cpp,
// test_compat_upstream.cpp): signal storms without SA_RESTART, slow readers, and small timing utilities. Every wait
// here is bounded.
#pragma once

#include "child_process.h"
#include "test_util.h"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <thread>
#include <vector>

namespace blight_sock_test {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

inline pid_t current_tid() { return static_cast<pid_t>(::syscall(SYS_gettid)); }

// Waits (bounded) until another thread has published its id in `tid`.
inline void wait_for_tid(const std::atomic<pid_t>& tid) {
    for (int i = 0; i < 5000 && tid.load() == 0; i++) std::this_thread::sleep_for(std::chrono::milliseconds(1));
}

inline long long elapsed_ms(Clock::time_point since) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - since).count();
}

// ---- forked children (child_process.h) -----------------------------------------------

using blight_test::ChildResult;
using blight_test::run_in_child;
using blight_test::run_in_child_reporting;

// ---- signals -------------------------------------------------------------------------

inline std::atomic<int> g_signals_caught{0};

extern "C" inline void blight_test_noop_handler(int) { g_signals_caught.fetch_add(1, std::memory_order_relaxed); }

// Installs a no-op handler for `sig` WITHOUT SA_RESTART (so blocking calls fail with
// EINTR), restoring the previous disposition on destruction.
class NoRestartHandler {
  public:
    explicit NoRestartHandler(int sig = SIGUSR1) : sig_(sig) {
        struct sigaction sa {};
        sa.sa_handler = blight_test_noop_handler;
        sigemptyset(&sa.sa_mask);
        sa.sa_flags = 0;  // no SA_RESTART
        blight_test::check_sys(::sigaction(sig_, &sa, &old_) == 0, "sigaction");
        g_signals_caught = 0;
    }
    ~NoRestartHandler() { ::sigaction(sig_, &old_, nullptr); }
    NoRestartHandler(const NoRestartHandler&) = delete;
    NoRestartHandler& operator=(const NoRestartHandler&) = delete;
    int signal() const { return sig_; }

  private:
    int sig_;
    struct sigaction old_ {};
};

// Sends `sig` to thread `target` every `interval` until stopped (or destroyed). `target`
// must outlive the storm: use the thread that owns the storm object.
class SignalStorm {
  public:
    SignalStorm(pthread_t target, int sig, std::chrono::microseconds interval = 300us)
        : thread_([this, target, sig, interval] {
              while (!stop_.load()) {
                  ::pthread_kill(target, sig);
                  sent_++;
                  std::this_thread::sleep_for(interval);
              }
          }) {}
    ~SignalStorm() { stop(); }
    void stop() {
        stop_ = true;
        if (thread_.joinable()) thread_.join();
    }
    int sent() const { return sent_.load(); }

  private:
    std::atomic<bool> stop_{false};
    std::atomic<int> sent_{0};
    std::thread thread_;
};

// ---- reading and writing with plain system calls (independent of the library) --------

// Reads up to `n` bytes in pieces of at most `chunk`, pausing `pause` between reads, until
// n bytes or EOF. Handles EINTR and EAGAIN (polls with a bound, then keeps going).
inline std::vector<unsigned char> slow_read(int fd, size_t n, size_t chunk, std::chrono::microseconds pause) {
    std::vector<unsigned char> out(n);
    size_t got = 0;
    while (got < n) {
        size_t want = std::min(chunk, n - got);
        ssize_t r = ::recv(fd, out.data() + got, want, 0);
        if (r == 0) break;
        if (r < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN) {
                struct pollfd p {fd, POLLIN, 0};
                ::poll(&p, 1, 100);
                continue;
            }
            break;
        }
        got += static_cast<size_t>(r);
        if (pause.count() > 0) std::this_thread::sleep_for(pause);
    }
    out.resize(got);
    return out;
}

// Writes all of buf in pieces of `piece` bytes with `pause` between them (plain send(2)
// with MSG_NOSIGNAL). Returns false if the peer went away.
inline bool write_in_pieces(int fd, const unsigned char* buf, size_t n, size_t piece, std::chrono::microseconds pause) {
    size_t off = 0;
    while (off < n) {
        size_t len = std::min(piece, n - off);
        ssize_t w = ::send(fd, buf + off, len, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN) {
                struct pollfd p {fd, POLLOUT, 0};
                ::poll(&p, 1, 100);
                continue;
            }
            return false;
        }
        off += static_cast<size_t>(w);
        if (pause.count() > 0) std::this_thread::sleep_for(pause);
    }
    return true;
}

// Writes without blocking until the socket is full; returns the bytes written.
inline size_t fill_socket(int fd) {
    std::vector<unsigned char> junk(65536, 0xAB);
    size_t total = 0;
    for (size_t piece : {size_t{65536}, size_t{4096}, size_t{256}, size_t{1}}) {
        for (;;) {
            ssize_t w = ::send(fd, junk.data(), piece, MSG_DONTWAIT | MSG_NOSIGNAL);
            if (w > 0) {
                total += static_cast<size_t>(w);
                continue;
            }
            if (w < 0 && errno == EINTR) continue;
            break;
        }
    }
    return total;
}

// Bytes readable right now without blocking (MSG_DONTWAIT), discarding them.
inline size_t drain_available(int fd) {
    unsigned char buf[65536];
    size_t total = 0;
    for (;;) {
        ssize_t r = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
        if (r > 0) {
            total += static_cast<size_t>(r);
            continue;
        }
        if (r < 0 && errno == EINTR) continue;
        break;
    }
    return total;
}

// True when nothing is waiting to be read on fd (MSG_PEEK | MSG_DONTWAIT).
inline bool nothing_to_read(int fd) {
    unsigned char c;
    ssize_t r = ::recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
    return r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

// A descriptor number that is certainly not open right now.
inline int closed_fd_number() {
    int fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    blight_test::check_sys(fd >= 0, "open /dev/null");
    ::close(fd);
    // Nothing else in this process opens descriptors concurrently during these tests; make
    // sure anyway.
    while (::fcntl(fd, F_GETFD) != -1 || errno != EBADF) fd++;
    return fd;
}

// Voluntary context switches of thread `tid` of this process so far, from /proc.
inline long voluntary_switches(pid_t tid) {
    std::string path = "/proc/self/task/" + std::to_string(tid) + "/status";
    FILE* f = std::fopen(path.c_str(), "r");
    if (!f) return -1;
    char line[256];
    long v = -1;
    while (std::fgets(line, sizeof line, f))
        if (std::sscanf(line, "voluntary_ctxt_switches: %ld", &v) == 1) break;
    std::fclose(f);
    return v;
}

// A pair usable for TCP tests, or an empty optional-like flag when the family is missing
// (IPv6 disabled on the machine).
inline bool family_available(int family) {
    int s = ::socket(family, SOCK_STREAM, 0);
    if (s < 0) return false;
    bool ok;
    if (family == AF_INET6) {
        sockaddr_in6 sin6{};
        sin6.sin6_family = AF_INET6;
        sin6.sin6_addr = in6addr_loopback;
        ok = ::bind(s, reinterpret_cast<sockaddr*>(&sin6), sizeof sin6) == 0;
    } else {
        sockaddr_in sin{};
        sin.sin_family = AF_INET;
        sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        ok = ::bind(s, reinterpret_cast<sockaddr*>(&sin), sizeof sin) == 0;
    }
    ::close(s);
    return ok;
}

}  // namespace blight_sock_test
