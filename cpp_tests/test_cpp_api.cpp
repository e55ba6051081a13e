// The C++ API of libblight_protocol/socket.h, namespace BlightProtocol, as oxide's code
// calls it: std::optional results holding memory released with delete[], default
// arguments, bool results, errno set on failure, and the send_blocking(fd, iovec*, count)
// overload.
#include <libblight_protocol/socket.h>

#include <gtest/gtest.h>
#include <sys/uio.h>

#include <cstdint>
#include <optional>
#include <thread>
#include <type_traits>

#include "socket_test_support.h"
#include "test_util.h"

using namespace blight_test;
using namespace blight_sock_test;

namespace {

// ---- the declarations, exactly as upstream's ---------------------------------------------

static_assert(std::is_same_v<BlightProtocol::blight_data_t, unsigned char*>);
static_assert(std::is_same_v<BlightProtocol::blight_data_t, ::blight_data_t>);

// Taking the address with the exact upstream type proves the signature (default
// arguments aside, which the calls below use).
[[maybe_unused]] std::optional<BlightProtocol::blight_data_t> (*const kRecv)(int, ssize_t, unsigned int, unsigned int) =
    &BlightProtocol::recv;
[[maybe_unused]] std::optional<BlightProtocol::blight_data_t> (*const kRecvBlocking)(int, ssize_t) =
    &BlightProtocol::recv_blocking;
[[maybe_unused]] bool (*const kSendBlocking)(int, const BlightProtocol::blight_data_t, ssize_t) =
    &BlightProtocol::send_blocking;
[[maybe_unused]] bool (*const kSendv)(int, const struct iovec*, int) = &BlightProtocol::send_blocking;
[[maybe_unused]] bool (*const kWaitForSend)(int, int) = &BlightProtocol::wait_for_send;
[[maybe_unused]] bool (*const kWaitForRead)(int, int) = &BlightProtocol::wait_for_read;

static_assert(std::is_same_v<decltype(BlightProtocol::recv(0, 1)), std::optional<unsigned char*>>);
static_assert(std::is_same_v<decltype(BlightProtocol::recv_blocking(0, 1)), std::optional<unsigned char*>>);
static_assert(std::is_same_v<decltype(BlightProtocol::wait_for_read(0)), bool>);
static_assert(std::is_same_v<decltype(BlightProtocol::wait_for_send(0)), bool>);

// Owns what the C++ API returns, releasing it the way upstream callers do.
struct Owned {
    std::optional<BlightProtocol::blight_data_t> v;
    explicit Owned(std::optional<BlightProtocol::blight_data_t> o) : v(o) {}
    ~Owned() {
        if (v) delete[] *v;
    }
    Owned(const Owned&) = delete;
    Owned& operator=(const Owned&) = delete;
};

class CppApi : public ::testing::TestWithParam<bool> {
  protected:
    bool nonblocking() const { return GetParam(); }
};

// ---- success -----------------------------------------------------------------------------

TEST_P(CppApi, RecvReturnsNewArrayMemory) {
    Pair p = unix_pair(nonblocking());
    auto msg = pattern(4096, 51);
    ASSERT_TRUE(BlightProtocol::send_blocking(p.a.get(), msg.data(), 4096));
    auto got = BlightProtocol::recv(p.b.get(), 4096);  // default attempts and timeout
    ASSERT_TRUE(got.has_value());
    ASSERT_NE(*got, nullptr);
    EXPECT_EQ(first_mismatch(*got, 4096, 51), -1);
    delete[] *got;
}

TEST_P(CppApi, RecvWithExplicitAttemptsAndTimeout) {
    Pair p = unix_pair(nonblocking());
    auto msg = pattern(100, 52);
    ASSERT_TRUE(BlightProtocol::send_blocking(p.a.get(), msg.data(), 100));
    Owned got(BlightProtocol::recv(p.b.get(), 100, 1, 1000));
    ASSERT_TRUE(got.v.has_value());
    EXPECT_EQ(first_mismatch(*got.v, 100, 52), -1);
}

TEST_P(CppApi, RecvBlockingReturnsNewArrayMemory) {
    Pair p = unix_pair(nonblocking());
    auto msg = pattern(12345, 53);
    ASSERT_TRUE(BlightProtocol::send_blocking(p.a.get(), msg.data(), 12345));
    auto got = BlightProtocol::recv_blocking(p.b.get(), 12345);
    ASSERT_TRUE(got.has_value());
    EXPECT_EQ(first_mismatch(*got, 12345, 53), -1);
    delete[] *got;
}

TEST_P(CppApi, PiecesAreReassembledByRecvAndRecvBlocking) {
    for (bool blocking_call : {false, true}) {
        Pair p = unix_pair(nonblocking());
        auto msg = pattern(500, 54);
        std::thread writer([&] { write_in_pieces(p.a.get(), msg.data(), msg.size(), 1, 100us); });
        Owned got(blocking_call ? BlightProtocol::recv_blocking(p.b.get(), 500) : BlightProtocol::recv(p.b.get(), 500));
        if (!got.v) p.b.reset();
        writer.join();
        ASSERT_TRUE(got.v.has_value()) << (blocking_call ? "recv_blocking" : "recv") << ": " << std::strerror(errno);
        EXPECT_EQ(first_mismatch(*got.v, 500, 54), -1) << (blocking_call ? "recv_blocking" : "recv");
    }
}

TEST_P(CppApi, LargeMessagesBothWays) {
    Pair p = unix_pair(nonblocking());
    constexpr size_t n = 8u << 20;
    auto ab = pattern(n, 55), ba = pattern(n, 56);
    bool s1 = false, s2 = false;
    std::optional<unsigned char*> r1;
    std::thread t1([&] { s1 = BlightProtocol::send_blocking(p.a.get(), ab.data(), n); });
    std::thread t2([&] { s2 = BlightProtocol::send_blocking(p.b.get(), ba.data(), n); });
    std::thread t3([&] { r1 = BlightProtocol::recv_blocking(p.b.get(), n); });
    Owned r2(BlightProtocol::recv_blocking(p.a.get(), n));
    if (!r2.v) ::shutdown(p.a.get(), SHUT_RDWR);
    t3.join();
    Owned r1_owned(r1);
    if (!r1) ::shutdown(p.b.get(), SHUT_RDWR);
    t1.join();
    t2.join();
    EXPECT_TRUE(s1);
    EXPECT_TRUE(s2);
    ASSERT_TRUE(r1_owned.v.has_value());
    ASSERT_TRUE(r2.v.has_value());
    EXPECT_EQ(first_mismatch(*r1_owned.v, n, 55), -1);
    EXPECT_EQ(first_mismatch(*r2.v, n, 56), -1);
}

TEST_P(CppApi, WaitForReturnsTrueWhenReady) {
    Pair p = unix_pair(nonblocking());
    EXPECT_TRUE(BlightProtocol::wait_for_send(p.a.get()));  // default timeout -1
    EXPECT_TRUE(BlightProtocol::wait_for_send(p.a.get(), 0));
    std::thread writer([&] {
        std::this_thread::sleep_for(50ms);
        unsigned char c = 1;
        write_in_pieces(p.a.get(), &c, 1, 1, 0us);
    });
    bool ready = BlightProtocol::wait_for_read(p.b.get());  // waits until the byte arrives
    bool readable = !nothing_to_read(p.b.get());
    writer.join();
    EXPECT_TRUE(ready);
    EXPECT_TRUE(readable) << "wait_for_read() returned before there was data";
    EXPECT_TRUE(BlightProtocol::wait_for_read(p.b.get(), 0));
}

// ---- failures: empty optional or false, and errno ----------------------------------------------

TEST_P(CppApi, RecvTimeoutIsEmptyWithErrnoEagain) {
    Pair p = unix_pair(nonblocking());
    errno = ENOSPC;
    auto t0 = Clock::now();
    Owned got(BlightProtocol::recv(p.b.get(), 16, 2, 30));
    int e = errno;
    EXPECT_FALSE(got.v.has_value());
    EXPECT_EQ(e, EAGAIN);
    EXPECT_GE(elapsed_ms(t0), 2 * 30 * 9 / 10);

    // Defaults: 5 attempts of 50 ms.
    errno = 0;
    t0 = Clock::now();
    Owned got2(BlightProtocol::recv(p.b.get(), 16));
    e = errno;
    EXPECT_FALSE(got2.v.has_value());
    EXPECT_EQ(e, EAGAIN);
    EXPECT_GE(elapsed_ms(t0), 5 * 50 * 9 / 10);
}

TEST_P(CppApi, ShortMessageIsEmptyWithErrnoEbadmsg) {
    for (bool blocking_call : {false, true}) {
        Pair p = unix_pair(nonblocking());
        auto msg = pattern(10, 57);
        ASSERT_TRUE(BlightProtocol::send_blocking(p.a.get(), msg.data(), 10));
        p.a.reset();
        errno = 0;
        Owned got(blocking_call ? BlightProtocol::recv_blocking(p.b.get(), 100) : BlightProtocol::recv(p.b.get(), 100));
        int e = errno;
        EXPECT_FALSE(got.v.has_value());
        EXPECT_EQ(e, EBADMSG) << (blocking_call ? "recv_blocking" : "recv");
    }
}

TEST_P(CppApi, BadSizesAreEmptyWithErrnoEinval) {
    Pair p = unix_pair(nonblocking());
    unsigned char c = 1;
    ASSERT_TRUE(BlightProtocol::send_blocking(p.a.get(), &c, 1));
    for (ssize_t size : {ssize_t{0}, ssize_t{-1}}) {
        errno = 0;
        Owned a(BlightProtocol::recv(p.b.get(), size));
        EXPECT_FALSE(a.v.has_value());
        EXPECT_EQ(errno, EINVAL) << size;
        errno = 0;
        Owned b(BlightProtocol::recv_blocking(p.b.get(), size));
        EXPECT_FALSE(b.v.has_value());
        EXPECT_EQ(errno, EINVAL) << size;
    }
    errno = 0;
    EXPECT_FALSE(BlightProtocol::send_blocking(p.a.get(), &c, -1));
    EXPECT_EQ(errno, EINVAL);
    errno = 0;
    EXPECT_FALSE(BlightProtocol::send_blocking(p.a.get(), static_cast<BlightProtocol::blight_data_t>(nullptr), 10));
    EXPECT_EQ(errno, EINVAL);
    // The byte sent first is still there.
    Owned got(BlightProtocol::recv_blocking(p.b.get(), 1));
    ASSERT_TRUE(got.v.has_value());
    EXPECT_EQ((*got.v)[0], 1);
    EXPECT_TRUE(nothing_to_read(p.b.get()));
}

TEST_P(CppApi, PeerGoneSetsErrno) {
    Pair p = unix_pair(nonblocking());
    p.a.reset();
    errno = 0;
    EXPECT_FALSE(BlightProtocol::wait_for_read(p.b.get(), 1000));
    EXPECT_EQ(errno, ECONNRESET);
    errno = 0;
    EXPECT_FALSE(BlightProtocol::wait_for_send(p.b.get(), 1000));
    EXPECT_EQ(errno, ECONNRESET);
    errno = 0;
    Owned got(BlightProtocol::recv(p.b.get(), 8));
    EXPECT_FALSE(got.v.has_value());
    EXPECT_EQ(errno, ECONNRESET);  // as blight_recv documents: peer gone, nothing left
    errno = 0;
    Owned got2(BlightProtocol::recv_blocking(p.b.get(), 8));
    EXPECT_FALSE(got2.v.has_value());
    EXPECT_EQ(errno, EBADMSG);
}

TEST_P(CppApi, SendToClosedPeerIsFalseWithEpipeAndNoSigpipe) {
    bool nb = nonblocking();
    ChildResult res = run_in_child([nb] {
        Pair p = unix_pair(nb);
        p.b.reset();
        unsigned char msg[16] = {};
        errno = 0;
        if (BlightProtocol::send_blocking(p.a.get(), msg, 16)) return 1;
        if (errno != EPIPE) return 2;
        iovec iov[] = {{msg, 12}, {msg, 4}};
        errno = 0;
        if (BlightProtocol::send_blocking(p.a.get(), iov, 2)) return 3;
        if (errno != EPIPE) return 4;
        return 0;
    });
    EXPECT_TRUE(res.ok()) << res.describe();
}

TEST_P(CppApi, WaitTimeoutIsFalseWithErrnoEagain) {
    Pair p = unix_pair(nonblocking());
    errno = 0;
    auto t0 = Clock::now();
    EXPECT_FALSE(BlightProtocol::wait_for_read(p.b.get(), 100));
    EXPECT_EQ(errno, EAGAIN);
    EXPECT_GE(elapsed_ms(t0), 100 * 9 / 10);
    ASSERT_GT(fill_socket(p.a.get()), 0u);
    errno = 0;
    EXPECT_FALSE(BlightProtocol::wait_for_send(p.a.get(), 50));
    EXPECT_EQ(errno, EAGAIN);
}

INSTANTIATE_TEST_SUITE_P(Unix, CppApi, ::testing::Bool(), [](const ::testing::TestParamInfo<bool>& info) {
    return std::string(info.param ? "NonBlocking" : "Blocking");
});

TEST(CppApiBadFd, ErrnoForInvalidDescriptors) {
    int closed = closed_fd_number();
    unsigned char buf[8] = {};
    for (int fd : {-1, closed}) {
        errno = 0;
        EXPECT_FALSE(BlightProtocol::send_blocking(fd, buf, 8)) << fd;
        EXPECT_EQ(errno, EBADF) << fd;
        errno = 0;
        Owned a(BlightProtocol::recv_blocking(fd, 8));
        EXPECT_FALSE(a.v.has_value());
        EXPECT_EQ(errno, EBADF) << fd;
        errno = 0;
        Owned b(BlightProtocol::recv(fd, 8, 1, 10));
        EXPECT_FALSE(b.v.has_value());
        EXPECT_TRUE(errno == EINVAL || errno == EBADF) << fd << ": " << errno;
        errno = 0;
        EXPECT_FALSE(BlightProtocol::wait_for_read(fd, 100)) << fd;
        EXPECT_EQ(errno, EINVAL) << fd;
        errno = 0;
        EXPECT_FALSE(BlightProtocol::wait_for_send(fd, 100)) << fd;
        EXPECT_EQ(errno, EINVAL) << fd;
    }
    int fds[2];
    ASSERT_EQ(::pipe(fds), 0);
    Fd r(fds[0]), w(fds[1]);
    errno = 0;
    EXPECT_FALSE(BlightProtocol::send_blocking(w.get(), buf, 8));
    EXPECT_EQ(errno, ENOTSOCK);
}

// ---- the vectored overload ------------------------------------------------------------------------

TEST(CppApiSendv, HeaderAndPayloadInOneCall) {
    Pair p = unix_pair(true);
    auto all = pattern(12 + 64, 58);
    iovec iov[] = {{all.data(), 12}, {all.data() + 12, 64}};
    ASSERT_TRUE(BlightProtocol::send_blocking(p.a.get(), iov, 2));
    Owned header(BlightProtocol::recv_blocking(p.b.get(), 12));
    Owned payload(BlightProtocol::recv(p.b.get(), 64));
    ASSERT_TRUE(header.v.has_value());
    ASSERT_TRUE(payload.v.has_value());
    EXPECT_EQ(first_mismatch(*header.v, 12, 58), -1);
    EXPECT_EQ(first_mismatch(*payload.v, 64, 58, 12), -1);
}

TEST(CppApiSendv, LargeVectorToASlowReader) {
    Pair p = unix_pair(true);
    constexpr size_t n = 6u << 20;
    auto all = pattern(n, 59);
    std::vector<iovec> iov;
    for (size_t off = 0; off < n;) {
        size_t len = std::min<size_t>(n - off, iov.size() % 2 ? 12 : 300007);
        iov.push_back(iovec{all.data() + off, len});
        off += len;
    }
    std::vector<unsigned char> got;
    std::thread reader([&] { got = slow_read(p.b.get(), n, 65536, 100us); });
    bool ok = BlightProtocol::send_blocking(p.a.get(), iov.data(), static_cast<int>(iov.size()));
    if (!ok) p.a.reset();
    reader.join();
    EXPECT_TRUE(ok) << std::strerror(errno);
    ASSERT_EQ(got.size(), n);
    EXPECT_EQ(first_mismatch(got.data(), n, 59), -1);
}

TEST(CppApiSendv, BadArgumentsAreFalseWithErrnoEinval) {
    Pair p = unix_pair(false);
    unsigned char c[4] = {};
    iovec iov[] = {{c, 4}, {nullptr, 3}};
    errno = 0;
    EXPECT_FALSE(BlightProtocol::send_blocking(p.a.get(), iov, 2));
    EXPECT_EQ(errno, EINVAL);
    errno = 0;
    EXPECT_FALSE(BlightProtocol::send_blocking(p.a.get(), iov, -1));
    EXPECT_EQ(errno, EINVAL);
    errno = 0;
    EXPECT_FALSE(BlightProtocol::send_blocking(p.a.get(), static_cast<const iovec*>(nullptr), 1));
    EXPECT_EQ(errno, EINVAL);
    errno = 0;
    EXPECT_FALSE(BlightProtocol::send_blocking(-1, iov, 1));
    EXPECT_EQ(errno, EBADF);
    EXPECT_TRUE(BlightProtocol::send_blocking(p.a.get(), iov, 0));
    EXPECT_TRUE(nothing_to_read(p.b.get()));
}

// ---- the way oxide's code uses it --------------------------------------------------------------

struct Header {
    uint32_t type;
    uint32_t ackid;
    uint32_t size;
};
static_assert(sizeof(Header) == 12);

TEST(CppApiUsage, MessageLoopLikeOxide) {
    Pair p = unix_pair(true);  // the display server's socket pairs are non-blocking
    constexpr int kMessages = 50;
    std::thread sender([&] {
        for (int m = 0; m < kMessages; m++) {
            uint32_t len = static_cast<uint32_t>((m * 131) % 5000);
            Header h{1, static_cast<uint32_t>(m), len};
            auto payload = pattern(len, 1000 + static_cast<uint64_t>(m));
            iovec iov[] = {{&h, sizeof h}, {len ? payload.data() : nullptr, len}};
            if (m % 2) {
                if (!BlightProtocol::send_blocking(p.a.get(), iov, 2)) return;
            } else {
                if (!BlightProtocol::send_blocking(p.a.get(), reinterpret_cast<BlightProtocol::blight_data_t>(&h), sizeof h))
                    return;
                if (len && !BlightProtocol::send_blocking(p.a.get(), payload.data(), len)) return;
            }
        }
    });
    int received = 0;
    for (int m = 0; m < kMessages; m++) {
        if (!BlightProtocol::wait_for_read(p.b.get(), 5000)) break;
        auto maybe = BlightProtocol::recv(p.b.get(), sizeof(Header));
        if (!maybe.has_value()) break;
        Header h;
        std::memcpy(&h, maybe.value(), sizeof h);
        delete[] maybe.value();
        EXPECT_EQ(h.ackid, static_cast<uint32_t>(m));
        if (h.size > 0) {
            auto data = BlightProtocol::recv_blocking(p.b.get(), h.size);
            if (!data.has_value()) break;
            EXPECT_EQ(first_mismatch(data.value(), h.size, 1000 + static_cast<uint64_t>(m)), -1) << m;
            delete[] data.value();
        }
        received++;
    }
    if (received != kMessages) p.b.reset();
    sender.join();
    EXPECT_EQ(received, kMessages);
}

}  // namespace
