// SO_ZEROCOPY refused: setsockopt(SO_ZEROCOPY) failing with ENOPROTOOPT, as qemu-user
// answers (it forwards only the socket options it knows) and as a kernel without
// MSG_ZEROCOPY does. The library must then copy on that socket: every byte arrives, each
// buffer is freed exactly once, at its release, nothing is pending or held, and waiting for
// completions returns at once. This file interposes setsockopt() and getsockopt() so that,
// while a test runs, SO_ZEROCOPY is refused the way qemu-user refuses it: the same tests
// check the fallback natively (x86-64, i686) and under qemu-user (armv7, aarch64), where
// the tests of real MSG_ZEROCOPY completions are skipped (cpp_tests/emulation_skips.txt).
#include <dlfcn.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <vector>

#include "zc_util.h"

using namespace zc_test;

namespace {

std::atomic<bool> g_refuse_so_zerocopy{false};

template <typename Fn>
Fn real(const char* name) {
    return reinterpret_cast<Fn>(dlsym(RTLD_NEXT, name));
}

bool refused(int level, int name) {
    if (g_refuse_so_zerocopy.load() && level == SOL_SOCKET && name == SO_ZEROCOPY) {
        errno = ENOPROTOOPT;
        return true;
    }
    return false;
}

}  // namespace

extern "C" int setsockopt(int fd, int level, int name, const void* value, socklen_t len) {
    static auto next = real<int (*)(int, int, int, const void*, socklen_t)>("setsockopt");
    return refused(level, name) ? -1 : next(fd, level, name, value, len);
}

extern "C" int getsockopt(int fd, int level, int name, void* value, socklen_t* len) {
    static auto next = real<int (*)(int, int, int, void*, socklen_t*)>("getsockopt");
    return refused(level, name) ? -1 : next(fd, level, name, value, len);
}

namespace {

class ZeroCopyRefused : public ThresholdTest {
  protected:
    void SetUp() override {
        ThresholdTest::SetUp();
        g_refuse_so_zerocopy = true;
    }
    void TearDown() override {
        g_refuse_so_zerocopy = false;
        ThresholdTest::TearDown();
    }
};

// One buffer given to blight_send_zerocopy, and what its free_fn saw.
struct Tracked {
    FreeCounter fc;
    blight_buffer_id_t id = 0;
};

// Sends a new[] copy of pattern bytes [off, off + n) of `seed`, keeping the id.
void send_tracked(int fd, size_t n, uint64_t seed, uint64_t off, Tracked& t) {
    int r = blight_send_zerocopy(fd, new_pattern(n, seed, off), static_cast<ssize_t>(n), count_and_delete, &t.fc,
                                 &t.id);
    ASSERT_EQ(r, 0) << std::strerror(-r);
    ASSERT_NE(t.id, 0u);
}

// The fallback's promises for `count` sends of `total` bytes, all released.
void expect_copied(int fd, uint64_t count, uint64_t total) {
    blight_zerocopy_stats s = stats_of(fd);
    EXPECT_EQ(s.path, static_cast<uint32_t>(BLIGHT_ZEROCOPY_PATH_COPY));
    EXPECT_EQ(s.zerocopy_sends, 0u);
    EXPECT_EQ(s.zerocopy_bytes, 0u);
    EXPECT_EQ(s.kernel_copied_sends, 0u);
    EXPECT_EQ(s.copied_bytes, total);
    EXPECT_GE(s.copied_sends, count);
    EXPECT_EQ(s.pending_sends, 0u);
    EXPECT_EQ(s.completed_sends, 0u);
    EXPECT_EQ(s.held_sends, 0u);
    // No completion will ever come, and none is waited for.
    EXPECT_EQ(blight_process_zerocopy_completions(fd, 0), 0);
    EXPECT_EQ(blight_process_zerocopy_completions(fd, -1), 0);
    EXPECT_EQ(blight_wait_for_send(fd, 10000), 0);
}

TEST_F(ZeroCopyRefused, TheRefusalIsWhatQemuUserAnswers) {
    Pair p = tcp_pair(AF_INET);
    int one = 1;
    errno = 0;
    EXPECT_EQ(::setsockopt(p.a.get(), SOL_SOCKET, SO_ZEROCOPY, &one, sizeof one), -1);
    EXPECT_EQ(errno, ENOPROTOOPT);
    // Other options still work.
    EXPECT_EQ(::setsockopt(p.a.get(), SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one), 0);
}

TEST_F(ZeroCopyRefused, TcpSendsAreCopiedIntactAndEachFreedOnceAtRelease) {
    for (int family : {AF_INET, AF_INET6}) {
        SCOPED_TRACE(family == AF_INET ? "tcp4" : "tcp6");
        Pair p = tcp_pair(family);
        const size_t n = 200000, count = 8;  // far above the 10240-byte threshold
        StreamReader reader(p.b.get(), n * count, 71);
        std::vector<Tracked> bufs(count);
        for (size_t i = 0; i < count; i++) {
            ASSERT_NO_FATAL_FAILURE(send_tracked(p.a.get(), n, 71, i * n, bufs[i]));
            // Copied: the library is done with it at once, but frees it only at release.
            EXPECT_EQ(blight_buffer_in_flight(bufs[i].id), 0);
            EXPECT_EQ(bufs[i].fc.calls, 0);
        }
        for (Tracked& t : bufs) {
            EXPECT_EQ(blight_release_buffer(t.id), 0);
            EXPECT_EQ(t.fc.calls, 1);
            EXPECT_EQ(t.fc.bytes, n);
            EXPECT_EQ(blight_buffer_in_flight(t.id), -ENOENT);
            EXPECT_EQ(blight_release_buffer(t.id), -ENOENT);
        }
        reader.join();
        EXPECT_EQ(reader.error(), "");
        EXPECT_EQ(reader.received(), n * count);
        EXPECT_EQ(reader.mismatch(), -1);
        expect_copied(p.a.get(), count, n * count);
        // Nothing is held when the socket is forgotten, and every buffer was freed once.
        EXPECT_EQ(blight_forget_socket(p.a.get()), 0);
        for (const Tracked& t : bufs) EXPECT_EQ(t.fc.calls, 1);
    }
}

TEST_F(ZeroCopyRefused, UdpDatagramsAreCopiedIntactAndEachFreedOnceAtRelease) {
    for (int family : {AF_INET, AF_INET6}) {
        SCOPED_TRACE(family == AF_INET ? "udp4" : "udp6");
        Pair p = udp_pair(family);
        const std::vector<size_t> sizes = {1, 10239, 10240, 10241, 30000, 65000 - 100};
        uint64_t total = 0;
        for (size_t n : sizes) {
            Tracked t;
            ASSERT_NO_FATAL_FAILURE(send_tracked(p.a.get(), n, n, 0, t));
            std::vector<unsigned char> got(70000);
            ssize_t r = ::recv(p.b.get(), got.data(), got.size(), 0);
            ASSERT_EQ(r, static_cast<ssize_t>(n)) << "one datagram per send";
            EXPECT_EQ(first_mismatch(got.data(), n, n), -1) << n;
            EXPECT_EQ(t.fc.calls, 0);
            EXPECT_EQ(blight_release_buffer(t.id), 0);
            EXPECT_EQ(t.fc.calls, 1) << n;
            total += n;
        }
        expect_copied(p.a.get(), sizes.size(), total);
        EXPECT_EQ(blight_forget_socket(p.a.get()), 0);
    }
}

TEST_F(ZeroCopyRefused, ReleasedBeforeTheSendReturnsOnADupIsStillFreedOnce) {
    // Sends through a dup of the socket, released at once: the copied path keeps no
    // per-descriptor state that a dup or a forget could confuse.
    Pair p = tcp_pair(AF_INET);
    Fd dup_fd(::dup(p.a.get()));
    ASSERT_GE(dup_fd.get(), 0);
    const size_t n = 50000;
    StreamReader reader(p.b.get(), 4 * n, 5);
    FreeCounter fc;
    for (int i = 0; i < 4; i++) send_new(i % 2 ? dup_fd.get() : p.a.get(), n, 5, i * n, fc);
    EXPECT_EQ(fc.calls, 4);
    reader.join();
    EXPECT_EQ(reader.error(), "");
    EXPECT_EQ(reader.mismatch(), -1);
    EXPECT_EQ(stats_of(p.a.get()).pending_sends, 0u);
    EXPECT_EQ(blight_forget_socket(dup_fd.get()), 0);
    EXPECT_EQ(blight_forget_socket(p.a.get()), 0);
    EXPECT_EQ(fc.calls, 4);
}

}  // namespace
