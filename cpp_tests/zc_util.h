// Helpers shared by the zero-copy suites (test_zerocopy.cpp, test_splice.cpp): statistics,
// bounded completion loops, a verifying reader thread, socket pairs with fixed buffer
// sizes; forked children with a bounded wait come from child_process.h.
#pragma once

#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/wait.h>

#include <cstring>
#include <functional>
#include <thread>

#include "libblight_protocol/socket.h"
#include "child_process.h"
#include "test_util.h"

namespace zc_test {

using namespace blight_test;
using namespace std::chrono_literals;

constexpr size_t kDefaultThreshold = 10240;

// Every test that depends on the process-wide threshold sets it explicitly, and puts the
// default back afterwards.
class ThresholdTest : public ::testing::Test {
  protected:
    void SetUp() override { ASSERT_EQ(blight_set_zerocopy_threshold(kDefaultThreshold), 0); }
    void TearDown() override { blight_set_zerocopy_threshold(kDefaultThreshold); }
};

// A new[] copy of bytes [off, off + n) of the pattern stream `seed`.
inline unsigned char* new_pattern(size_t n, uint64_t seed, uint64_t off = 0) {
    auto* p = new unsigned char[n];
    fill_pattern(p, n, seed, off);
    return p;
}

// Sends a new[] copy of pattern bytes [off, off + n) with count_and_delete; returns the id
// (released at once when `release`).
inline blight_buffer_id_t send_new(int fd, size_t n, uint64_t seed, uint64_t off, FreeCounter& fc,
                                   bool release = true) {
    blight_buffer_id_t id = 0;
    int r = blight_send_zerocopy(fd, new_pattern(n, seed, off), static_cast<ssize_t>(n), count_and_delete, &fc, &id);
    EXPECT_EQ(r, 0) << std::strerror(-r);
    EXPECT_NE(id, 0u);
    if (release && id != 0) {
        EXPECT_EQ(blight_release_buffer(id), 0);
    }
    return id;
}

inline blight_zerocopy_stats stats_of(int fd) {
    blight_zerocopy_stats s;
    std::memset(&s, 0xA5, sizeof s);  // every field must be written
    int r = blight_get_zerocopy_stats(fd, &s);
    EXPECT_EQ(r, 0) << "blight_get_zerocopy_stats(" << fd << ")";
    return s;
}

inline uint64_t bytes_sent(const blight_zerocopy_stats& s) {
    return s.zerocopy_bytes + s.splice_bytes + s.copied_bytes;
}

inline bool all_zero(const blight_zerocopy_stats& s) {
    return s.zerocopy_sends == 0 && s.zerocopy_bytes == 0 && s.kernel_copied_sends == 0 &&
           s.kernel_copied_bytes == 0 && s.splice_sends == 0 && s.splice_bytes == 0 &&
           s.copied_sends == 0 && s.copied_bytes == 0 && s.enobufs_retries == 0 &&
           s.completed_sends == 0 && s.abandoned_sends == 0 && s.pending_sends == 0;
}

// Calls blight_process_zerocopy_completions(fd, 100) until done() (at most `rounds` times,
// i.e. a bounded wait, not a timing check). Fails the test on a negative result.
inline bool process_until(int fd, const std::function<bool()>& done, int rounds = 300) {
    for (int i = 0; i < rounds; i++) {
        if (done()) return true;
        int r = blight_process_zerocopy_completions(fd, 100);
        EXPECT_GE(r, 0) << "blight_process_zerocopy_completions: " << std::strerror(-r);
        if (r < 0) return false;
    }
    return done();
}

// Waits (bounded) until `fd` has `events` (or POLLERR/POLLHUP); returns revents, 0 on timeout.
inline short poll_for(int fd, short events, int timeout_ms) {
    pollfd p{fd, events, 0};
    int r;
    do {
        r = ::poll(&p, 1, timeout_ms);
    } while (r < 0 && errno == EINTR);
    return r > 0 ? p.revents : 0;
}

// Reads `total` bytes from `fd` on its own thread and compares them with the pattern
// stream `seed`. Each wait for data is bounded (a stuck sender fails, it does not hang);
// the owner can also unblock it by closing the descriptor.
class StreamReader {
  public:
    // With `period` != 0 the expected stream repeats: byte p is pattern byte p % period.
    StreamReader(int fd, size_t total, uint64_t seed, size_t chunk = 256 * 1024, size_t period = 0)
        : fd_(fd), total_(total), seed_(seed), chunk_(chunk), period_(period) {
        thread_ = std::thread([this] { run(); });
    }
    ~StreamReader() { join(); }
    void join() {
        if (thread_.joinable()) thread_.join();
    }
    size_t received() const { return received_; }
    long long mismatch() const { return mismatch_; }
    const std::string& error() const { return error_; }

  private:
    void run() {
        std::vector<unsigned char> buf(chunk_);
        while (received_ < total_) {
            short ev = poll_for(fd_, POLLIN, 20000);
            if (ev == 0) {
                error_ = "no data for 20 s";
                return;
            }
            ssize_t r = ::recv(fd_, buf.data(), std::min(chunk_, total_ - received_), MSG_DONTWAIT);
            if (r == 0) {
                error_ = "EOF";
                return;
            }
            if (r < 0) {
                if (errno == EINTR || errno == EAGAIN) continue;
                error_ = std::string("recv: ") + std::strerror(errno);
                return;
            }
            if (mismatch_ < 0) {
                for (size_t i = 0; i < static_cast<size_t>(r); i++) {
                    uint64_t pos = received_ + i;
                    if (buf[i] != pattern_byte(seed_, period_ ? pos % period_ : pos)) {
                        mismatch_ = static_cast<long long>(pos);
                        break;
                    }
                }
            }
            received_ += static_cast<size_t>(r);
        }
    }

    int fd_;
    size_t total_;
    uint64_t seed_;
    size_t chunk_;
    size_t period_;
    std::atomic<size_t> received_{0};
    long long mismatch_ = -1;
    std::string error_;
    std::thread thread_;
};

// A connected TCP loopback pair whose sender has SO_SNDBUF `sndbuf` and whose receiver has
// SO_RCVBUF `rcvbuf` set before the connection exists (so the window is negotiated small).
// The MSS is 1400 bytes, as on Ethernet: loopback's 64 KiB MSS is larger than a small
// window, and the sender would then trickle data out on the persist timer.
inline Pair tcp_pair_sized(int family, int sndbuf, int rcvbuf) {
    const int mss = 1400;
    return tcp_pair_with(
        family,
        [&](int listener) {
            check_sys(::setsockopt(listener, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf) == 0, "SO_RCVBUF");
            check_sys(::setsockopt(listener, IPPROTO_TCP, TCP_MAXSEG, &mss, sizeof mss) == 0, "TCP_MAXSEG");
        },
        [&](int client) {
            check_sys(::setsockopt(client, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf) == 0, "SO_SNDBUF");
            check_sys(::setsockopt(client, IPPROTO_TCP, TCP_MAXSEG, &mss, sizeof mss) == 0, "TCP_MAXSEG");
        });
}

inline int sockopt_int(int fd, int level, int name) {
    int v = 0;
    socklen_t l = sizeof v;
    check_sys(::getsockopt(fd, level, name, &v, &l) == 0, "getsockopt");
    return v;
}

}  // namespace zc_test
