// blight_sendv_blocking (issue 7): a message as a gather list, sent with the guarantees of
// blight_send_blocking (every byte or an error, MSG_NOSIGNAL, poll on EAGAIN, partial
// writes resumed mid-vector), on real sockets, through the installed header.
#include <libblight_protocol/socket.h>

#include <gtest/gtest.h>
#include <limits.h>
#include <sys/uio.h>

#include <climits>
#include <cstring>
#include <thread>

#include "socket_test_support.h"
#include "test_util.h"

using namespace blight_test;
using namespace blight_sock_test;

namespace {

constexpr size_t kHeader = 12;  // oxide's message header

struct Freed {
    blight_data_t p = nullptr;
    ~Freed() { std::free(p); }
};

// A stream cut into entries of the given sizes, filled with one continuous pattern, so
// that any lost, repeated or misplaced byte across entry boundaries is visible.
struct Vector {
    std::vector<unsigned char> bytes;
    std::vector<iovec> iov;

    Vector(const std::vector<size_t>& sizes, uint64_t seed) {
        size_t total = 0;
        for (size_t s : sizes) total += s;
        bytes = pattern(total, seed);
        size_t off = 0;
        for (size_t s : sizes) {
            iov.push_back(iovec{s ? bytes.data() + off : nullptr, s});
            off += s;
        }
    }
    int count() const { return static_cast<int>(iov.size()); }
};

bool same_iov(const std::vector<iovec>& a, const std::vector<iovec>& b) {
    if (a.size() != b.size()) return false;
    for (size_t i = 0; i < a.size(); i++)
        if (a[i].iov_base != b[i].iov_base || a[i].iov_len != b[i].iov_len) return false;
    return true;
}

// ---- header + payload in one call ----------------------------------------------------------

struct MsgParam {
    size_t payload;
    bool nonblocking;
};

class SendvMessage : public ::testing::TestWithParam<MsgParam> {};

TEST_P(SendvMessage, HeaderAndPayloadArriveInOrder) {
    const auto [payload_len, nb] = GetParam();
    Pair p = unix_pair(nb);
    auto header = pattern(kHeader, 31);
    auto payload = pattern(payload_len, 32);
    iovec iov[2] = {{header.data(), kHeader}, {payload_len ? payload.data() : nullptr, payload_len}};
    ASSERT_EQ(blight_sendv_blocking(p.a.get(), iov, 2), 0);
    Freed h;
    ASSERT_EQ(blight_recv_blocking(p.b.get(), &h.p, kHeader), 0);
    EXPECT_EQ(first_mismatch(h.p, kHeader, 31), -1);
    if (payload_len > 0) {
        Freed d;
        ASSERT_EQ(blight_recv_blocking(p.b.get(), &d.p, static_cast<ssize_t>(payload_len)), 0);
        EXPECT_EQ(first_mismatch(d.p, payload_len, 32), -1);
    }
    EXPECT_TRUE(nothing_to_read(p.b.get()));
}

// One system call per message: on a SOCK_SEQPACKET socket every send call is one record,
// so the receiver sees header and payload as a single record of 12 + N bytes.
TEST_P(SendvMessage, OneSystemCallPerMessage) {
    const auto [payload_len, nb] = GetParam();
    Pair p = unix_pair(nb, SOCK_SEQPACKET);
    auto header = pattern(kHeader, 33);
    auto payload = pattern(payload_len, 34);
    iovec iov[2] = {{header.data(), kHeader}, {payload_len ? payload.data() : nullptr, payload_len}};
    for (int m = 0; m < 3; m++) ASSERT_EQ(blight_sendv_blocking(p.a.get(), iov, 2), 0);
    std::vector<unsigned char> rec(kHeader + payload_len + 100);
    for (int m = 0; m < 3; m++) {
        ssize_t r = ::recv(p.b.get(), rec.data(), rec.size(), MSG_DONTWAIT);
        ASSERT_EQ(r, static_cast<ssize_t>(kHeader + payload_len)) << "message " << m << " was split";
        EXPECT_EQ(first_mismatch(rec.data(), kHeader, 33), -1);
        EXPECT_EQ(first_mismatch(rec.data() + kHeader, payload_len, 34), -1);
    }
    EXPECT_TRUE(nothing_to_read(p.b.get()));
}

INSTANTIATE_TEST_SUITE_P(Sendv, SendvMessage,
                         ::testing::Values(MsgParam{0, false}, MsgParam{64, false}, MsgParam{4096, false},
                                           MsgParam{0, true}, MsgParam{64, true}, MsgParam{4096, true}),
                         [](const ::testing::TestParamInfo<MsgParam>& info) {
                             return "Payload" + std::to_string(info.param.payload) +
                                    (info.param.nonblocking ? "NonBlocking" : "Blocking");
                         });

// ---- shapes of vectors ----------------------------------------------------------------------

class SendvUnix : public ::testing::TestWithParam<bool> {
  protected:
    bool nonblocking() const { return GetParam(); }
};

TEST_P(SendvUnix, ZeroLengthEntriesAreSkipped) {
    Pair p = unix_pair(nonblocking());
    auto a = pattern(12, 35);
    auto b = pattern(64, 36);
    unsigned char dummy = 0xFF;
    iovec iov[] = {{nullptr, 0}, {a.data(), 12}, {&dummy, 0}, {nullptr, 0}, {b.data(), 64}, {nullptr, 0}};
    ASSERT_EQ(blight_sendv_blocking(p.a.get(), iov, 6), 0);
    auto got = read_exactly(p.b.get(), 76);
    ASSERT_EQ(got.size(), 76u);
    EXPECT_EQ(first_mismatch(got.data(), 12, 35), -1);
    EXPECT_EQ(first_mismatch(got.data() + 12, 64, 36), -1);
    EXPECT_TRUE(nothing_to_read(p.b.get()));
}

TEST_P(SendvUnix, EmptyVectorsSendNothing) {
    Pair p = unix_pair(nonblocking());
    unsigned char dummy = 1;
    iovec zeros[] = {{nullptr, 0}, {&dummy, 0}, {nullptr, 0}};
    EXPECT_EQ(blight_sendv_blocking(p.a.get(), zeros, 3), 0);
    EXPECT_EQ(blight_sendv_blocking(p.a.get(), zeros, 0), 0);
    EXPECT_EQ(blight_sendv_blocking(p.a.get(), nullptr, 0), 0);
    EXPECT_TRUE(nothing_to_read(p.b.get()));
}

TEST_P(SendvUnix, SingleEntry) {
    Pair p = unix_pair(nonblocking());
    Vector v({1000}, 37);
    ASSERT_EQ(blight_sendv_blocking(p.a.get(), v.iov.data(), 1), 0);
    auto got = read_exactly(p.b.get(), 1000);
    ASSERT_EQ(got.size(), 1000u);
    EXPECT_EQ(first_mismatch(got.data(), 1000, 37), -1);
}

TEST_P(SendvUnix, IovMaxEntries) {
    Pair p = unix_pair(nonblocking());
    std::vector<size_t> sizes;
    for (int i = 0; i < IOV_MAX; i++) sizes.push_back(static_cast<size_t>(i % 97) + (i % 5 == 0 ? 0 : 1));
    Vector v(sizes, 38);
    ASSERT_EQ(v.count(), IOV_MAX);
    std::vector<unsigned char> got;
    std::thread reader([&] { got = read_exactly(p.b.get(), v.bytes.size()); });
    int r = blight_sendv_blocking(p.a.get(), v.iov.data(), v.count());
    if (r != 0) p.a.reset();
    reader.join();
    ASSERT_EQ(r, 0);
    ASSERT_EQ(got.size(), v.bytes.size());
    EXPECT_EQ(first_mismatch(got.data(), got.size(), 38), -1);
    EXPECT_TRUE(nothing_to_read(p.b.get()));
}

// Partial writes land mid-entry and mid-vector; the rest must resume at the right byte.
TEST_P(SendvUnix, VectorLargerThanTheSocketBufferToASlowReader) {
    Pair p = unix_pair(nonblocking());
    std::vector<size_t> sizes;
    const size_t cycle[] = {kHeader, 1, 4093, 65537, 0, 131071, 7, 333333, 12289};
    size_t total = 0;
    for (size_t i = 0; total < (8u << 20); i++) {
        sizes.push_back(cycle[i % (sizeof cycle / sizeof cycle[0])]);
        total += sizes.back();
    }
    Vector v(sizes, 39);
    const std::vector<iovec> before = v.iov;
    std::vector<unsigned char> got;
    std::thread reader([&] { got = slow_read(p.b.get(), total, 50000, 100us); });
    int r = blight_sendv_blocking(p.a.get(), v.iov.data(), v.count());
    if (r != 0) p.a.reset();
    reader.join();
    EXPECT_EQ(r, 0);
    ASSERT_EQ(got.size(), total);
    EXPECT_EQ(first_mismatch(got.data(), total, 39), -1);
    EXPECT_TRUE(same_iov(before, v.iov)) << "the caller's const iovec array was modified";
}

TEST_P(SendvUnix, SmallEntriesThenAHugeOne) {
    Pair p = unix_pair(nonblocking());
    Vector v({kHeader, 3, 8u << 20}, 40);
    std::vector<unsigned char> got;
    std::thread reader([&] { got = slow_read(p.b.get(), v.bytes.size(), 65536, 50us); });
    int r = blight_sendv_blocking(p.a.get(), v.iov.data(), v.count());
    if (r != 0) p.a.reset();
    reader.join();
    EXPECT_EQ(r, 0);
    ASSERT_EQ(got.size(), v.bytes.size());
    EXPECT_EQ(first_mismatch(got.data(), got.size(), 40), -1);
}

TEST_P(SendvUnix, InterleavesWithSendBlockingInOrder) {
    Pair p = unix_pair(nonblocking());
    // One stream: [sendv 12+64][send 100][sendv 12+0][sendv 1+2+3]
    auto all = pattern(12 + 64 + 100 + 12 + 6, 41);
    unsigned char* d = all.data();
    iovec m1[] = {{d, 12}, {d + 12, 64}};
    iovec m3[] = {{d + 176, 12}, {nullptr, 0}};
    iovec m4[] = {{d + 188, 1}, {d + 189, 2}, {d + 191, 3}};
    ASSERT_EQ(blight_sendv_blocking(p.a.get(), m1, 2), 0);
    ASSERT_EQ(blight_send_blocking(p.a.get(), d + 76, 100), 0);
    ASSERT_EQ(blight_sendv_blocking(p.a.get(), m3, 2), 0);
    ASSERT_EQ(blight_sendv_blocking(p.a.get(), m4, 3), 0);
    Freed got;
    ASSERT_EQ(blight_recv_blocking(p.b.get(), &got.p, static_cast<ssize_t>(all.size())), 0);
    EXPECT_EQ(first_mismatch(got.p, all.size(), 41), -1);
    EXPECT_TRUE(nothing_to_read(p.b.get()));
}

TEST_P(SendvUnix, SignalsDoNotInterruptABlockedSendv) {
    NoRestartHandler handler(SIGUSR1);
    Pair p = unix_pair(nonblocking());
    std::vector<size_t> sizes;
    for (int i = 0; i < 64; i++) sizes.push_back(i % 2 ? 131071 : 1);  // ~4 MiB
    Vector v(sizes, 42);
    std::vector<unsigned char> got;
    std::thread reader([&] { got = slow_read(p.b.get(), v.bytes.size(), 32768, 150us); });
    int r;
    {
        SignalStorm storm(pthread_self(), SIGUSR1, 200us);
        r = blight_sendv_blocking(p.a.get(), v.iov.data(), v.count());
        storm.stop();
    }
    if (r != 0) p.a.reset();
    reader.join();
    EXPECT_EQ(r, 0);
    EXPECT_GT(g_signals_caught.load(), 0) << "the sender was never interrupted";
    ASSERT_EQ(got.size(), v.bytes.size());
    EXPECT_EQ(first_mismatch(got.data(), got.size(), 42), -1);
}

// Stuck on a full socket with no reader, the sender sleeps in poll instead of retrying.
TEST_P(SendvUnix, BlockedSendvSleepsInsteadOfSpinning) {
    Pair p = unix_pair(nonblocking());
    Vector v({kHeader, 4u << 20, 7, 1u << 20}, 45);
    std::atomic<pid_t> tid{0};
    int r = -1;
    std::thread sender([&] {
        tid = current_tid();
        r = blight_sendv_blocking(p.a.get(), v.iov.data(), v.count());
    });
    wait_for_tid(tid);
    std::this_thread::sleep_for(100ms);
    long before = voluntary_switches(tid.load());
    std::this_thread::sleep_for(300ms);
    long after = voluntary_switches(tid.load());
    std::vector<unsigned char> got = slow_read(p.b.get(), v.bytes.size(), 1u << 20, 0us);
    if (got.size() != v.bytes.size()) p.b.reset();
    sender.join();
    EXPECT_EQ(r, 0);
    ASSERT_EQ(got.size(), v.bytes.size());
    EXPECT_EQ(first_mismatch(got.data(), got.size(), 45), -1);
    ASSERT_GE(before, 0);
    EXPECT_LT(after - before, 50) << "the blocked sender woke up " << (after - before) << " times in 300 ms";
}

// ---- errors ------------------------------------------------------------------------------------

TEST_P(SendvUnix, BadArgumentsAreEinvalAndSendNothing) {
    Pair p = unix_pair(nonblocking());
    auto a = pattern(64, 43);
    iovec good[] = {{a.data(), 12}, {a.data() + 12, 52}};
    EXPECT_EQ(blight_sendv_blocking(p.a.get(), nullptr, 1), -EINVAL);
    EXPECT_EQ(blight_sendv_blocking(p.a.get(), nullptr, 2), -EINVAL);
    EXPECT_EQ(blight_sendv_blocking(p.a.get(), good, -1), -EINVAL);
    EXPECT_EQ(blight_sendv_blocking(p.a.get(), good, INT_MIN), -EINVAL);
    EXPECT_EQ(blight_sendv_blocking(p.a.get(), nullptr, -1), -EINVAL);

    // More than IOV_MAX entries, each of them valid.
    std::vector<iovec> many(IOV_MAX + 1, iovec{a.data(), 1});
    EXPECT_EQ(blight_sendv_blocking(p.a.get(), many.data(), IOV_MAX + 1), -EINVAL);

    // A null base with a length, after valid entries: rejected before anything is sent.
    iovec bad[] = {{a.data(), 12}, {a.data() + 12, 10}, {nullptr, 5}, {a.data() + 22, 10}};
    EXPECT_EQ(blight_sendv_blocking(p.a.get(), bad, 4), -EINVAL);
    iovec bad_first[] = {{nullptr, 1}};
    EXPECT_EQ(blight_sendv_blocking(p.a.get(), bad_first, 1), -EINVAL);

    EXPECT_TRUE(nothing_to_read(p.b.get())) << "a rejected vector sent bytes";
    // The socket is still usable.
    ASSERT_EQ(blight_sendv_blocking(p.a.get(), good, 2), 0);
    auto got = read_exactly(p.b.get(), 64);
    EXPECT_EQ(first_mismatch(got.data(), 64, 43), -1);
}

TEST_P(SendvUnix, ClosedPeerIsEpipeWithoutSigpipe) {
    bool nb = nonblocking();
    ChildResult res = run_in_child([nb] {
        Pair p = unix_pair(nb);
        p.b.reset();
        unsigned char h[12] = {}, d[64] = {};
        iovec iov[] = {{h, 12}, {d, 64}};
        if (blight_sendv_blocking(p.a.get(), iov, 2) != -EPIPE) return 1;
        if (blight_sendv_blocking(p.a.get(), iov, 1) != -EPIPE) return 2;
        return 0;
    });
    EXPECT_TRUE(res.ok()) << res.describe();
}

TEST_P(SendvUnix, PeerClosingMidVectorFailsWithoutSigpipe) {
    bool nb = nonblocking();
    ChildResult res = run_in_child([nb] {
        Pair p = unix_pair(nb);
        std::vector<unsigned char> big(1u << 20, 0x11);
        std::vector<iovec> iov(8, iovec{big.data(), big.size()});
        std::thread closer([&] {
            slow_read(p.b.get(), 100000, 16384, 0us);
            std::this_thread::sleep_for(20ms);
            p.b.reset();
        });
        int r = blight_sendv_blocking(p.a.get(), iov.data(), static_cast<int>(iov.size()));
        closer.join();
        if (r != -EPIPE && r != -ECONNRESET) return 1;
        return 0;
    });
    EXPECT_TRUE(res.ok()) << res.describe();
}

INSTANTIATE_TEST_SUITE_P(Sendv, SendvUnix, ::testing::Bool(),
                         [](const ::testing::TestParamInfo<bool>& info) {
                             return std::string(info.param ? "NonBlocking" : "Blocking");
                         });

TEST(SendvBadFd, InvalidAndNonSocketDescriptors) {
    unsigned char h[12] = {};
    iovec iov[] = {{h, 12}, {h, 12}};
    EXPECT_EQ(blight_sendv_blocking(-1, iov, 2), -EBADF);
    EXPECT_EQ(blight_sendv_blocking(closed_fd_number(), iov, 2), -EBADF);
    int fds[2];
    ASSERT_EQ(::pipe(fds), 0);
    Fd r(fds[0]), w(fds[1]);
    EXPECT_EQ(blight_sendv_blocking(w.get(), iov, 2), -ENOTSOCK);
    EXPECT_EQ(blight_sendv_blocking(w.get(), iov, 1), -ENOTSOCK);
}

// ---- TCP loopback -----------------------------------------------------------------------------

class SendvTcp : public ::testing::TestWithParam<int> {
  protected:
    void SetUp() override {
        if (!family_available(GetParam())) GTEST_SKIP() << "address family not available";
    }
};

TEST_P(SendvTcp, LargeVectorArrivesByteExact) {
    for (bool nb : {false, true}) {
        Pair p = tcp_pair(GetParam(), nb);
        std::vector<size_t> sizes;
        for (int i = 0; i < 100; i++) sizes.push_back(i % 3 == 0 ? kHeader : 65536 + 17 * i);
        Vector v(sizes, 44);
        Freed got;
        int rr = -1;
        std::thread reader([&] { rr = blight_recv_blocking(p.b.get(), &got.p, static_cast<ssize_t>(v.bytes.size())); });
        int r = blight_sendv_blocking(p.a.get(), v.iov.data(), v.count());
        if (r != 0) ::shutdown(p.a.get(), SHUT_RDWR);
        reader.join();
        EXPECT_EQ(r, 0) << (nb ? "non-blocking" : "blocking");
        ASSERT_EQ(rr, 0);
        EXPECT_EQ(first_mismatch(got.p, v.bytes.size(), 44), -1);
    }
}

TEST_P(SendvTcp, ClosedPeerFailsWithoutSigpipe) {
    int family = GetParam();
    ChildResult res = run_in_child([family] {
        Pair p = tcp_pair(family, false);
        p.b.reset();
        std::vector<unsigned char> d(1u << 20, 3);
        iovec iov[] = {{d.data(), 12}, {d.data(), d.size()}};
        int r = 0;
        for (int i = 0; i < 50 && r == 0; i++) {
            r = blight_sendv_blocking(p.a.get(), iov, 2);
            if (r == 0) std::this_thread::sleep_for(5ms);
        }
        return (r == -EPIPE || r == -ECONNRESET) ? 0 : 1;
    });
    EXPECT_TRUE(res.ok()) << res.describe();
}

INSTANTIATE_TEST_SUITE_P(Sendv, SendvTcp, ::testing::Values(AF_INET, AF_INET6),
                         [](const ::testing::TestParamInfo<int>& info) {
                             return std::string(info.param == AF_INET ? "IPv4" : "IPv6");
                         });

}  // namespace
