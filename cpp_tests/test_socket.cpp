// The five upstream functions through the C API (blight_recv, blight_recv_blocking,
// blight_send_blocking, blight_wait_for_send, blight_wait_for_read) plus the
// receive-into-caller-buffer exports, on real sockets, as a user of the installed header
// sees them (SPEC section 1).
#include <libblight_protocol/socket.h>

#include <gtest/gtest.h>
#include <malloc.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#include <cstdlib>
#include <thread>

#include "socket_test_support.h"
#include "test_util.h"

using namespace blight_test;
using namespace blight_sock_test;

namespace {

constexpr size_t kBig = 8u << 20;  // 8 MiB: far larger than any default socket buffer

// A buffer from blight_recv*, released with free() as the header says.
struct Freed {
    blight_data_t p = nullptr;
    ~Freed() { std::free(p); }
};

// ---- the four receive exports, called one way -------------------------------------------

// Many behaviours hold for every receive export; the tests below name the export they check
// and call one helper with it.
enum class RecvFn { Recv, RecvBlocking, RecvInto, RecvBlockingInto };

const char* recv_name(RecvFn f) {
    switch (f) {
        case RecvFn::Recv: return "blight_recv";
        case RecvFn::RecvBlocking: return "blight_recv_blocking";
        case RecvFn::RecvInto: return "blight_recv_into";
        case RecvFn::RecvBlockingInto: return "blight_recv_blocking_into";
    }
    return "?";
}

constexpr size_t kGuard = 16;           // bytes after the caller's buffer that must stay 0xEE
constexpr unsigned char kGuardByte = 0xEE;

// What one receive produced: the malloc()ed memory of blight_recv / blight_recv_blocking,
// or the caller's buffer of the _into variants (size bytes, then kGuard guard bytes).
struct Received {
    Freed owned;
    std::vector<unsigned char> buf;
};

// Receives `size` bytes with `f`: blight_recv_into with upstream's 5 attempts of 50 ms.
int recv_with(RecvFn f, int fd, Received& out, size_t size) {
    auto n = static_cast<ssize_t>(size);
    switch (f) {
        case RecvFn::Recv: return blight_recv(fd, &out.owned.p, n);
        case RecvFn::RecvBlocking: return blight_recv_blocking(fd, &out.owned.p, n);
        case RecvFn::RecvInto:
            out.buf.assign(size + kGuard, kGuardByte);
            return blight_recv_into(fd, out.buf.data(), n, 5, 50);
        case RecvFn::RecvBlockingInto:
            out.buf.assign(size + kGuard, kGuardByte);
            return blight_recv_blocking_into(fd, out.buf.data(), n);
    }
    return -ENOSYS;
}

// After a successful receive of `size` bytes: they are pattern bytes [offset, offset +
// size) of `seed`; blight_recv* memory is malloc()ed (free()able) and the _into variants
// wrote nothing past `size`.
void expect_received(RecvFn f, const Received& got, size_t size, uint64_t seed, uint64_t offset = 0) {
    SCOPED_TRACE(recv_name(f));
    if (f == RecvFn::Recv || f == RecvFn::RecvBlocking) {
        ASSERT_NE(got.owned.p, nullptr);
        EXPECT_EQ(first_mismatch(got.owned.p, size, seed, offset), -1);
        EXPECT_GE(malloc_usable_size(got.owned.p), size);  // malloc()ed, free()able
        return;
    }
    ASSERT_EQ(got.buf.size(), size + kGuard);
    EXPECT_EQ(first_mismatch(got.buf.data(), size, seed, offset), -1);
    for (size_t i = size; i < got.buf.size(); i++) ASSERT_EQ(got.buf[i], kGuardByte) << "wrote past size at " << i;
}

class UnixPairTest : public ::testing::TestWithParam<bool> {
  protected:
    bool nonblocking() const { return GetParam(); }
};

std::string BlockingName(const ::testing::TestParamInfo<bool>& info) {
    return info.param ? "NonBlocking" : "Blocking";
}

// ---- round trips ---------------------------------------------------------------------

// Sends `size` pattern bytes with blight_send_blocking and receives them with `f`: the
// bytes arrive intact and nothing more is left to read.
void expect_round_trip(Pair& p, RecvFn f, size_t size, uint64_t seed) {
    SCOPED_TRACE(recv_name(f));
    auto msg = pattern(size, seed);
    ASSERT_EQ(blight_send_blocking(p.a.get(), msg.data(), static_cast<ssize_t>(size)), 0);
    Received got;
    ASSERT_EQ(recv_with(f, p.b.get(), got, size), 0);
    expect_received(f, got, size, seed);
    EXPECT_TRUE(nothing_to_read(p.b.get()));
}

TEST_P(UnixPairTest, SendBlockingThenRecvBlockingRoundTrip) {
    Pair p = unix_pair(nonblocking());
    expect_round_trip(p, RecvFn::RecvBlocking, 1000, 1);
}

TEST_P(UnixPairTest, SendBlockingThenRecvRoundTrip) {
    Pair p = unix_pair(nonblocking());
    expect_round_trip(p, RecvFn::Recv, 4096, 2);
}

TEST_P(UnixPairTest, RecvIntoAndRecvBlockingIntoFillCallerBuffer) {
    Pair p = unix_pair(nonblocking());
    ASSERT_NO_FATAL_FAILURE(expect_round_trip(p, RecvFn::RecvInto, 777, 3));
    expect_round_trip(p, RecvFn::RecvBlockingInto, 777, 3);
}

// Receiving exactly `size` bytes must not eat into the next message.
TEST_P(UnixPairTest, BackToBackMessagesKeepTheirBoundaries) {
    Pair p = unix_pair(nonblocking());
    // A 12-byte header then a payload, three times, all written before any read.
    std::vector<unsigned char> all = pattern(3 * (12 + 300), 4);
    ASSERT_EQ(blight_send_blocking(p.a.get(), all.data(), static_cast<ssize_t>(all.size())), 0);
    for (int m = 0; m < 3; m++) {
        size_t base = static_cast<size_t>(m) * 312;
        Freed header, payload;
        if (m % 2 == 0) {
            ASSERT_EQ(blight_recv(p.b.get(), &header.p, 12), 0);
            ASSERT_EQ(blight_recv_blocking(p.b.get(), &payload.p, 300), 0);
        } else {
            ASSERT_EQ(blight_recv_blocking(p.b.get(), &header.p, 12), 0);
            ASSERT_EQ(blight_recv(p.b.get(), &payload.p, 300), 0);
        }
        EXPECT_EQ(first_mismatch(header.p, 12, 4, base), -1) << "message " << m;
        EXPECT_EQ(first_mismatch(payload.p, 300, 4, base + 12), -1) << "message " << m;
    }
    EXPECT_TRUE(nothing_to_read(p.b.get()));
}

TEST_P(UnixPairTest, RecvSucceedsWhenDataArrivesWithinTheAttempts) {
    Pair p = unix_pair(nonblocking());
    auto msg = pattern(64, 5);
    std::thread writer([&] {
        std::this_thread::sleep_for(20ms);  // well inside 5 x 50 ms
        write_in_pieces(p.a.get(), msg.data(), msg.size(), msg.size(), 0us);
    });
    Freed got;
    int r = blight_recv(p.b.get(), &got.p, 64);
    writer.join();
    ASSERT_EQ(r, 0);
    EXPECT_EQ(first_mismatch(got.p, 64, 5), -1);
}

// ---- a message in many small pieces (upstream wrote every partial read at the start) --

// `writer` sends `total` pattern bytes in pieces of `piece` bytes, `pause` apart, while `f`
// receives them on `reader` in one call: every piece lands in its place.
void expect_pieces_reassembled(Fd& writer_fd, Fd& reader_fd, RecvFn f, size_t piece, size_t total, uint64_t seed,
                               std::chrono::microseconds pause) {
    SCOPED_TRACE(std::string(recv_name(f)) + ", piece " + std::to_string(piece));
    auto msg = pattern(total, seed);
    std::atomic<bool> wrote_all{false};
    std::thread writer([&] {
        wrote_all = write_in_pieces(writer_fd.get(), msg.data(), msg.size(), piece, pause);
    });
    Received got;
    int r = recv_with(f, reader_fd.get(), got, total);
    if (r != 0) reader_fd.reset();  // unblock the writer
    writer.join();
    ASSERT_EQ(r, 0);
    ASSERT_TRUE(wrote_all);
    expect_received(f, got, total, seed);
    EXPECT_TRUE(nothing_to_read(reader_fd.get()));
}

void expect_pieces_reassembled(bool nonblocking, RecvFn f, size_t piece, size_t total, uint64_t seed,
                               std::chrono::microseconds pause) {
    Pair p = unix_pair(nonblocking);
    expect_pieces_reassembled(p.a, p.b, f, piece, total, seed, pause);
}

TEST_P(UnixPairTest, RecvBlockingReassemblesOneBytePieces) {
    expect_pieces_reassembled(nonblocking(), RecvFn::RecvBlocking, 1, 300, 6 + 1, 200us);
}

TEST_P(UnixPairTest, RecvBlockingReassemblesSevenBytePieces) {
    expect_pieces_reassembled(nonblocking(), RecvFn::RecvBlocking, 7, 4099, 6 + 7, 100us);
}

TEST_P(UnixPairTest, RecvReassemblesOneBytePieces) {
    expect_pieces_reassembled(nonblocking(), RecvFn::Recv, 1, 300, 6 + 1, 200us);
}

TEST_P(UnixPairTest, RecvReassemblesSevenBytePieces) {
    expect_pieces_reassembled(nonblocking(), RecvFn::Recv, 7, 4099, 6 + 7, 100us);
}

TEST_P(UnixPairTest, RecvBlockingIntoReassemblesPieces) {
    expect_pieces_reassembled(nonblocking(), RecvFn::RecvBlockingInto, 7, 2003, 7, 50us);
}

TEST_P(UnixPairTest, RecvIntoReassemblesPieces) {
    expect_pieces_reassembled(nonblocking(), RecvFn::RecvInto, 1, 2003, 8, 20us);
}

// ---- a peer that closes: EPIPE, never SIGPIPE ------------------------------------------

TEST_P(UnixPairTest, SendToClosedPeerIsEpipeWithoutSigpipe) {
    bool nb = nonblocking();
    ChildResult res = run_in_child([nb] {
        Pair p = unix_pair(nb);
        p.b.reset();
        unsigned char msg[32] = {1, 2, 3};
        if (blight_send_blocking(p.a.get(), msg, sizeof msg) != -EPIPE) return 1;
        // Again: still EPIPE, still no signal.
        if (blight_send_blocking(p.a.get(), msg, sizeof msg) != -EPIPE) return 2;
        return 0;
    });
    EXPECT_TRUE(res.ok()) << res.describe();
}

TEST_P(UnixPairTest, PeerClosingDuringLargeSendFailsWithoutSigpipe) {
    bool nb = nonblocking();
    ChildResult res = run_in_child([nb] {
        Pair p = unix_pair(nb);
        std::vector<unsigned char> big(kBig, 0x5A);
        std::thread closer([&] {
            // Read a little, then hang up while the sender is blocked on a full socket.
            slow_read(p.b.get(), 100000, 16384, 0us);
            std::this_thread::sleep_for(20ms);
            p.b.reset();
        });
        int r = blight_send_blocking(p.a.get(), big.data(), static_cast<ssize_t>(big.size()));
        closer.join();
        // The kernel reports ECONNRESET when the peer closed with unread data, EPIPE otherwise.
        if (r != -EPIPE && r != -ECONNRESET) return 1;
        if (blight_send_blocking(p.a.get(), big.data(), 16) != -EPIPE) return 2;
        return 0;
    });
    EXPECT_TRUE(res.ok()) << res.describe();
}

// ---- timeouts of recv ----------------------------------------------------------------

TEST_P(UnixPairTest, RecvWithNothingArrivingIsEagainAfterAllAttempts) {
    Pair p = unix_pair(nonblocking());
    Freed got;
    got.p = reinterpret_cast<blight_data_t>(0x1);  // must be left untouched
    auto t0 = Clock::now();
    int r = blight_recv(p.b.get(), &got.p, 16);
    long long ms = elapsed_ms(t0);
    EXPECT_EQ(r, -EAGAIN);
    EXPECT_EQ(got.p, reinterpret_cast<blight_data_t>(0x1));  // untouched on failure, as upstream
    got.p = nullptr;
    EXPECT_GE(ms, 5 * 50 * 9 / 10) << "5 attempts x 50 ms";
}

TEST_P(UnixPairTest, RecvIntoHonoursAttemptsAndTimeout) {
    Pair p = unix_pair(nonblocking());
    unsigned char buf[16];
    auto t0 = Clock::now();
    EXPECT_EQ(blight_recv_into(p.b.get(), buf, 16, 3, 40), -EAGAIN);
    EXPECT_GE(elapsed_ms(t0), 3 * 40 * 9 / 10);

    // attempts == 0 counts as one attempt.
    t0 = Clock::now();
    EXPECT_EQ(blight_recv_into(p.b.get(), buf, 16, 0, 60), -EAGAIN);
    EXPECT_GE(elapsed_ms(t0), 60 * 9 / 10);

    // Nothing was consumed or sent along the way: the socket still works.
    unsigned char msg[16] = {9};
    ASSERT_EQ(blight_send_blocking(p.a.get(), msg, 16), 0);
    EXPECT_EQ(blight_recv_into(p.b.get(), buf, 16, 1, 1000), 0);
    EXPECT_EQ(buf[0], 9);
}

// ---- short messages: EBADMSG -----------------------------------------------------------

// `sender` sends 10 pattern bytes and closes: `f` (blight_recv or blight_recv_blocking)
// asking for 100 fails with -EBADMSG and leaves *data untouched, as upstream does.
void expect_short_message_then_close_is_ebadmsg(Fd& sender, int receiver, RecvFn f, uint64_t seed) {
    SCOPED_TRACE(recv_name(f));
    auto msg = pattern(10, seed);
    ASSERT_EQ(blight_send_blocking(sender.get(), msg.data(), 10), 0);
    sender.reset();
    Received got;
    got.owned.p = reinterpret_cast<blight_data_t>(0x1);
    EXPECT_EQ(recv_with(f, receiver, got, 100), -EBADMSG);
    EXPECT_EQ(got.owned.p, reinterpret_cast<blight_data_t>(0x1));  // untouched on failure, as upstream
    got.owned.p = nullptr;
}

TEST_P(UnixPairTest, ShortMessageThenCloseIsEbadmsgForRecvBlocking) {
    Pair p = unix_pair(nonblocking());
    expect_short_message_then_close_is_ebadmsg(p.a, p.b.get(), RecvFn::RecvBlocking, 9);
}

TEST_P(UnixPairTest, ShortMessageThenCloseIsEbadmsgForRecv) {
    Pair p = unix_pair(nonblocking());
    expect_short_message_then_close_is_ebadmsg(p.a, p.b.get(), RecvFn::Recv, 9);
}

TEST_P(UnixPairTest, ShortMessageThenCloseIsEbadmsgForIntoVariants) {
    Pair p = unix_pair(nonblocking());
    auto msg = pattern(10, 9);
    ASSERT_EQ(blight_send_blocking(p.a.get(), msg.data(), 10), 0);
    ASSERT_EQ(blight_send_blocking(p.a.get(), msg.data(), 10), 0);
    unsigned char buf[100];
    EXPECT_EQ(blight_recv_into(p.b.get(), buf, 15, 5, 50), 0);  // 15 of the 20 bytes
    p.a.reset();
    EXPECT_EQ(blight_recv_blocking_into(p.b.get(), buf, 100), -EBADMSG);  // 5 left, then EOF
}

TEST_P(UnixPairTest, ShortMessageDeliveredSlowlyThenCloseIsEbadmsg) {
    Pair p = unix_pair(nonblocking());
    auto msg = pattern(50, 10);
    std::thread writer([&] {
        write_in_pieces(p.a.get(), msg.data(), msg.size(), 5, 1000us);
        p.a.reset();
    });
    Freed got;
    int r = blight_recv_blocking(p.b.get(), &got.p, 1000);
    writer.join();
    EXPECT_EQ(r, -EBADMSG);
    EXPECT_EQ(got.p, nullptr);
}

TEST_P(UnixPairTest, PeerGoneWithNothingSent) {
    Pair p = unix_pair(nonblocking());
    p.a.reset();
    Freed got;
    EXPECT_EQ(blight_recv_blocking(p.b.get(), &got.p, 8), -EBADMSG);
    EXPECT_EQ(got.p, nullptr);
    // blight_recv documents ECONNRESET when the peer is gone and nothing is left.
    EXPECT_EQ(blight_recv(p.b.get(), &got.p, 8), -ECONNRESET);
    EXPECT_EQ(got.p, nullptr);
}

// ---- bad arguments -----------------------------------------------------------------------

TEST_P(UnixPairTest, NonPositiveSizeIsEinvalAndConsumesNothing) {
    Pair p = unix_pair(nonblocking());
    auto msg = pattern(20, 11);
    ASSERT_EQ(blight_send_blocking(p.a.get(), msg.data(), 20), 0);
    unsigned char buf[20];
    for (ssize_t size : {ssize_t{0}, ssize_t{-1}, ssize_t{-4096}}) {
        blight_data_t d = reinterpret_cast<blight_data_t>(0x1);
        EXPECT_EQ(blight_recv(p.b.get(), &d, size), -EINVAL) << size;
        EXPECT_EQ(d, reinterpret_cast<blight_data_t>(0x1)) << size;  // untouched on failure
        d = reinterpret_cast<blight_data_t>(0x1);
        EXPECT_EQ(blight_recv_blocking(p.b.get(), &d, size), -EINVAL) << size;
        EXPECT_EQ(d, reinterpret_cast<blight_data_t>(0x1)) << size;  // untouched on failure
        EXPECT_EQ(blight_recv_into(p.b.get(), buf, size, 5, 50), -EINVAL) << size;
        EXPECT_EQ(blight_recv_blocking_into(p.b.get(), buf, size), -EINVAL) << size;
    }
    for (ssize_t size : {ssize_t{-1}, ssize_t{-4096}}) {
        EXPECT_EQ(blight_send_blocking(p.a.get(), msg.data(), size), -EINVAL) << size;
    }
    // size == 0 sends nothing and succeeds (documented).
    EXPECT_EQ(blight_send_blocking(p.a.get(), msg.data(), 0), 0);
    // The 20 bytes are still there, untouched, and nothing else was sent.
    ASSERT_EQ(blight_recv_blocking_into(p.b.get(), buf, 20), 0);
    EXPECT_EQ(first_mismatch(buf, 20, 11), -1);
    EXPECT_TRUE(nothing_to_read(p.b.get()));
}

TEST_P(UnixPairTest, NullPointersAreEinvalAndConsumeNothing) {
    Pair p = unix_pair(nonblocking());
    auto msg = pattern(20, 12);
    ASSERT_EQ(blight_send_blocking(p.a.get(), msg.data(), 20), 0);
    EXPECT_EQ(blight_recv(p.b.get(), nullptr, 20), -EINVAL);
    EXPECT_EQ(blight_recv_blocking(p.b.get(), nullptr, 20), -EINVAL);
    EXPECT_EQ(blight_recv_into(p.b.get(), nullptr, 20, 5, 50), -EINVAL);
    EXPECT_EQ(blight_recv_blocking_into(p.b.get(), nullptr, 20), -EINVAL);
    EXPECT_EQ(blight_send_blocking(p.a.get(), nullptr, 20), -EINVAL);
    // size 0 with a null pointer sends nothing (documented: size == 0 returns 0).
    EXPECT_EQ(blight_send_blocking(p.a.get(), nullptr, 0), 0);
    unsigned char buf[20];
    ASSERT_EQ(blight_recv_blocking_into(p.b.get(), buf, 20), 0);
    EXPECT_EQ(first_mismatch(buf, 20, 12), -1);
    EXPECT_TRUE(nothing_to_read(p.b.get()));
}

// ---- hang-up and readiness ---------------------------------------------------------------

TEST_P(UnixPairTest, WaitForReadTimesOutWithEagain) {
    Pair p = unix_pair(nonblocking());
    auto t0 = Clock::now();
    EXPECT_EQ(blight_wait_for_read(p.b.get(), 120), -EAGAIN);
    EXPECT_GE(elapsed_ms(t0), 120 * 9 / 10);
    EXPECT_EQ(blight_wait_for_read(p.b.get(), 0), -EAGAIN);
}

TEST_P(UnixPairTest, WaitForSendTimesOutWithEagainWhenFull) {
    Pair p = unix_pair(nonblocking());
    ASSERT_GT(fill_socket(p.a.get()), 0u);
    auto t0 = Clock::now();
    EXPECT_EQ(blight_wait_for_send(p.a.get(), 120), -EAGAIN);
    EXPECT_GE(elapsed_ms(t0), 120 * 9 / 10);
    EXPECT_EQ(blight_wait_for_send(p.a.get(), 0), -EAGAIN);
    // Once the reader drains the socket it is writable again.
    std::thread drainer([&] {
        std::this_thread::sleep_for(30ms);
        drain_available(p.b.get());
    });
    int r = blight_wait_for_send(p.a.get(), 5000);
    drainer.join();
    EXPECT_EQ(r, 0);
}

TEST_P(UnixPairTest, WaitForReadyIsImmediate) {
    Pair p = unix_pair(nonblocking());
    EXPECT_EQ(blight_wait_for_send(p.a.get(), 0), 0);
    EXPECT_EQ(blight_wait_for_send(p.a.get(), -1), 0);
    unsigned char c = 1;
    ASSERT_EQ(blight_send_blocking(p.a.get(), &c, 1), 0);
    EXPECT_EQ(blight_wait_for_read(p.b.get(), 0), 0);
    EXPECT_EQ(blight_wait_for_read(p.b.get(), -1), 0);
    // Waiting does not consume: the byte is still there.
    EXPECT_FALSE(nothing_to_read(p.b.get()));
}

TEST_P(UnixPairTest, WaitForReadForeverWakesWhenDataArrives) {
    Pair p = unix_pair(nonblocking());
    std::thread writer([&] {
        std::this_thread::sleep_for(50ms);
        unsigned char c = 7;
        write_in_pieces(p.a.get(), &c, 1, 1, 0us);
    });
    int r = blight_wait_for_read(p.b.get(), -1);
    bool readable = !nothing_to_read(p.b.get());  // before the writer is joined
    writer.join();
    EXPECT_EQ(r, 0);
    EXPECT_TRUE(readable) << "wait_for_read(-1) returned before there was data";
}

TEST_P(UnixPairTest, HangUpWithNoDataIsEconnreset) {
    Pair p = unix_pair(nonblocking());
    p.a.reset();
    // A finite timeout so that a wrong answer fails (EAGAIN) instead of hanging.
    EXPECT_EQ(blight_wait_for_read(p.b.get(), 1000), -ECONNRESET);
    EXPECT_EQ(blight_wait_for_send(p.b.get(), 1000), -ECONNRESET);
    EXPECT_EQ(blight_wait_for_read(p.b.get(), 0), -ECONNRESET);
}

TEST_P(UnixPairTest, HangUpWithBufferedDataIsReadyUntilDrained) {
    Pair p = unix_pair(nonblocking());
    auto msg = pattern(100, 13);
    ASSERT_EQ(blight_send_blocking(p.a.get(), msg.data(), 100), 0);
    p.a.reset();
    EXPECT_EQ(blight_wait_for_read(p.b.get(), 1000), 0);
    unsigned char buf[100];
    ASSERT_EQ(blight_recv_blocking_into(p.b.get(), buf, 60), 0);
    EXPECT_EQ(blight_wait_for_read(p.b.get(), 1000), 0) << "40 bytes are still buffered";
    Freed rest;
    ASSERT_EQ(blight_recv(p.b.get(), &rest.p, 40), 0);
    EXPECT_EQ(first_mismatch(buf, 60, 13), -1);
    EXPECT_EQ(first_mismatch(rest.p, 40, 13, 60), -1);
    EXPECT_EQ(blight_wait_for_read(p.b.get(), 1000), -ECONNRESET);
}

TEST(SocketWait, ClosedDescriptorNumberIsEinval) {
    int fd = closed_fd_number();
    EXPECT_EQ(blight_wait_for_read(fd, 1000), -EINVAL);
    EXPECT_EQ(blight_wait_for_send(fd, 1000), -EINVAL);
    EXPECT_EQ(blight_wait_for_read(fd, 0), -EINVAL);
    EXPECT_EQ(blight_wait_for_send(fd, -1), -EINVAL);  // POLLNVAL comes at once
}

// poll(2) ignores negative descriptors, so a naive wait on -1 sleeps for the whole
// timeout (or forever with -1). -1 is not an open descriptor: -EINVAL, at once.
TEST(SocketWait, MinusOneDescriptorIsEinval) {
    EXPECT_EQ(blight_wait_for_read(-1, 100), -EINVAL);
    EXPECT_EQ(blight_wait_for_send(-1, 100), -EINVAL);
    ChildResult res = run_in_child([] {
        if (blight_wait_for_read(-1, -1) != -EINVAL) return 1;
        if (blight_wait_for_send(-1, -1) != -EINVAL) return 2;
        return 0;
    }, 3s);
    EXPECT_TRUE(res.ok()) << res.describe() << " (a timeout means the wait on fd -1 hangs)";
}

// ---- invalid and non-socket descriptors ----------------------------------------------------

TEST(SocketBadFd, MinusOneFailsWithNegativeErrno) {
    unsigned char buf[16] = {};
    EXPECT_EQ(blight_send_blocking(-1, buf, 16), -EBADF);
    Freed got;
    got.p = reinterpret_cast<blight_data_t>(0x1);
    EXPECT_EQ(blight_recv_blocking(-1, &got.p, 16), -EBADF);
    EXPECT_EQ(got.p, reinterpret_cast<blight_data_t>(0x1));  // untouched on failure, as upstream
    got.p = nullptr;
    EXPECT_EQ(blight_recv_blocking_into(-1, buf, 16), -EBADF);
    got.p = reinterpret_cast<blight_data_t>(0x1);
    int r = blight_recv(-1, &got.p, 16);
    EXPECT_TRUE(r == -EINVAL || r == -EBADF) << r;
    EXPECT_EQ(got.p, reinterpret_cast<blight_data_t>(0x1));  // untouched on failure, as upstream
    got.p = nullptr;
    r = blight_recv_into(-1, buf, 16, 1, 10);
    EXPECT_TRUE(r == -EINVAL || r == -EBADF) << r;
}

TEST(SocketBadFd, ClosedFdFailsWithNegativeErrno) {
    int fd = closed_fd_number();
    unsigned char buf[16] = {};
    EXPECT_EQ(blight_send_blocking(fd, buf, 16), -EBADF);
    Freed got;
    EXPECT_EQ(blight_recv_blocking(fd, &got.p, 16), -EBADF);
    EXPECT_EQ(got.p, nullptr);
    int r = blight_recv(fd, &got.p, 16);
    EXPECT_TRUE(r == -EINVAL || r == -EBADF) << r;
    EXPECT_EQ(got.p, nullptr);
    r = blight_recv_into(fd, buf, 16, 1, 10);
    EXPECT_TRUE(r == -EINVAL || r == -EBADF) << r;
}

// Every receive export on `fd`, which is not a socket: -ENOTSOCK, and *data set to NULL.
void expect_every_recv_is_enotsock(int fd) {
    unsigned char buf[16];
    Freed got;
    EXPECT_EQ(blight_recv(fd, &got.p, 16), -ENOTSOCK);
    EXPECT_EQ(got.p, nullptr);
    EXPECT_EQ(blight_recv_blocking(fd, &got.p, 16), -ENOTSOCK);
    EXPECT_EQ(got.p, nullptr);
    EXPECT_EQ(blight_recv_into(fd, buf, 16, 1, 10), -ENOTSOCK);
    EXPECT_EQ(blight_recv_blocking_into(fd, buf, 16), -ENOTSOCK);
}

TEST(SocketBadFd, PipeIsNotASocket) {
    int fds[2];
    ASSERT_EQ(::pipe(fds), 0);
    Fd r(fds[0]), w(fds[1]);
    unsigned char buf[16] = {1, 2, 3};
    EXPECT_EQ(blight_send_blocking(w.get(), buf, 16), -ENOTSOCK);
    // poll works on pipes, so the waits behave as on a socket.
    EXPECT_EQ(blight_wait_for_send(w.get(), 0), 0);
    EXPECT_EQ(blight_wait_for_read(r.get(), 0), -EAGAIN);
    ASSERT_EQ(::write(w.get(), buf, 16), 16);
    EXPECT_EQ(blight_wait_for_read(r.get(), 100), 0);
    expect_every_recv_is_enotsock(r.get());
    // Writer gone with data left: readable; drained: hang-up.
    w.reset();
    EXPECT_EQ(blight_wait_for_read(r.get(), 100), 0);
    ASSERT_EQ(::read(r.get(), buf, 16), 16);
    EXPECT_EQ(blight_wait_for_read(r.get(), 100), -ECONNRESET);
}

TEST(SocketBadFd, RegularFileIsNotASocket) {
    FILE* f = std::tmpfile();
    ASSERT_NE(f, nullptr);
    Fd fd(::dup(fileno(f)));
    std::fclose(f);
    unsigned char buf[16] = {1};
    ASSERT_EQ(::write(fd.get(), buf, 16), 16);
    ASSERT_EQ(::lseek(fd.get(), 0, SEEK_SET), 0);
    EXPECT_EQ(blight_send_blocking(fd.get(), buf, 16), -ENOTSOCK);
    expect_every_recv_is_enotsock(fd.get());
    // Regular files always poll ready.
    EXPECT_EQ(blight_wait_for_read(fd.get(), 100), 0);
    EXPECT_EQ(blight_wait_for_send(fd.get(), 100), 0);
}

// ---- signals without SA_RESTART -----------------------------------------------------------

TEST_P(UnixPairTest, SignalsDoNotInterruptABlockedSend) {
    NoRestartHandler handler(SIGUSR1);
    Pair p = unix_pair(nonblocking());
    std::vector<unsigned char> msg = pattern(kBig, 14);
    std::vector<unsigned char> got;
    std::thread reader([&] { got = slow_read(p.b.get(), kBig, 32768, 150us); });
    int r;
    {
        SignalStorm storm(pthread_self(), SIGUSR1, 200us);
        r = blight_send_blocking(p.a.get(), msg.data(), static_cast<ssize_t>(msg.size()));
        storm.stop();
        EXPECT_GT(storm.sent(), 0);
    }
    if (r != 0) p.a.reset();  // let the reader see EOF
    reader.join();
    EXPECT_EQ(r, 0);
    EXPECT_GT(g_signals_caught.load(), 0) << "the sender was never interrupted";
    ASSERT_EQ(got.size(), kBig);
    EXPECT_EQ(first_mismatch(got.data(), got.size(), 14), -1);
}

// `f` waits for `n` bytes that a writer starts sending 30 ms later in pieces of `piece`,
// `pause` apart, while SIGUSR1 (no SA_RESTART) hits the receiving thread every 200 us:
// every byte arrives and the receiver was interrupted.
void expect_recv_survives_signals(bool nonblocking, RecvFn f, size_t n, uint64_t seed, size_t piece,
                                  std::chrono::microseconds pause) {
    SCOPED_TRACE(recv_name(f));
    NoRestartHandler handler(SIGUSR1);
    Pair p = unix_pair(nonblocking);
    std::vector<unsigned char> msg = pattern(n, seed);
    std::thread writer([&] {
        std::this_thread::sleep_for(30ms);  // the receiver is blocked with nothing to read
        write_in_pieces(p.a.get(), msg.data(), n, piece, pause);
    });
    Received got;
    int r;
    {
        SignalStorm storm(pthread_self(), SIGUSR1, 200us);
        r = recv_with(f, p.b.get(), got, n);
        storm.stop();
    }
    if (r != 0) p.b.reset();
    writer.join();
    EXPECT_EQ(r, 0);
    EXPECT_GT(g_signals_caught.load(), 0) << "the receiver was never interrupted";
    expect_received(f, got, n, seed);
}

TEST_P(UnixPairTest, SignalsDoNotInterruptABlockedRecvBlocking) {
    expect_recv_survives_signals(nonblocking(), RecvFn::RecvBlocking, 1u << 20, 15, 16384, 1000us);
}

TEST_P(UnixPairTest, SignalsDoNotInterruptRecv) {
    expect_recv_survives_signals(nonblocking(), RecvFn::Recv, 256u << 10, 16, 4096, 500us);
}

// EINTR during a wait is retried with the time that is left: no early EAGAIN, no -EINTR.
TEST_P(UnixPairTest, SignalsDoNotShortenOrBreakAWait) {
    NoRestartHandler handler(SIGUSR1);
    Pair p = unix_pair(nonblocking());
    int r;
    long long ms;
    {
        SignalStorm storm(pthread_self(), SIGUSR1, 500us);
        auto t0 = Clock::now();
        r = blight_wait_for_read(p.b.get(), 150);
        ms = elapsed_ms(t0);
        storm.stop();
    }
    EXPECT_EQ(r, -EAGAIN);
    EXPECT_GE(ms, 150 * 9 / 10);
    EXPECT_GT(g_signals_caught.load(), 0);

    // And a wait that ends with data, while signals keep coming.
    std::thread writer([&] {
        std::this_thread::sleep_for(50ms);
        unsigned char c = 1;
        write_in_pieces(p.a.get(), &c, 1, 1, 0us);
    });
    {
        SignalStorm storm(pthread_self(), SIGUSR1, 500us);
        r = blight_wait_for_read(p.b.get(), 5000);
        storm.stop();
    }
    writer.join();
    EXPECT_EQ(r, 0);
}

// ---- waiting burns no CPU (poll, not a sleep-and-retry loop) -----------------------------

// While a send is stuck on a full socket with no reader, the sending thread must sleep in
// poll (a few wake-ups at most), not retry every few microseconds (thousands of them).
TEST_P(UnixPairTest, BlockedSendSleepsInsteadOfSpinning) {
    Pair p = unix_pair(nonblocking());
    std::vector<unsigned char> msg = pattern(kBig, 25);
    std::atomic<pid_t> tid{0};
    int r = -1;
    std::thread sender([&] {
        tid = current_tid();
        r = blight_send_blocking(p.a.get(), msg.data(), static_cast<ssize_t>(kBig));
    });
    wait_for_tid(tid);
    std::this_thread::sleep_for(100ms);  // the socket is full by now
    long before = voluntary_switches(tid.load());
    std::this_thread::sleep_for(300ms);
    long after = voluntary_switches(tid.load());
    std::vector<unsigned char> got = slow_read(p.b.get(), kBig, 1u << 20, 0us);
    if (got.size() != kBig) p.b.reset();
    sender.join();
    EXPECT_EQ(r, 0);
    ASSERT_EQ(got.size(), kBig);
    EXPECT_EQ(first_mismatch(got.data(), kBig, 25), -1);
    ASSERT_GE(before, 0);
    EXPECT_LT(after - before, 50) << "the blocked sender woke up " << (after - before) << " times in 300 ms";
}

TEST_P(UnixPairTest, BlockedRecvBlockingSleepsInsteadOfSpinning) {
    Pair p = unix_pair(nonblocking());
    std::atomic<pid_t> tid{0};
    int r = -1;
    Freed got;
    std::thread receiver([&] {
        tid = current_tid();
        r = blight_recv_blocking(p.b.get(), &got.p, 1000);
    });
    wait_for_tid(tid);
    std::this_thread::sleep_for(50ms);
    unsigned char first[10] = {};
    write_in_pieces(p.a.get(), first, sizeof first, sizeof first, 0us);  // a partial message
    std::this_thread::sleep_for(50ms);
    long before = voluntary_switches(tid.load());
    std::this_thread::sleep_for(300ms);
    long after = voluntary_switches(tid.load());
    std::vector<unsigned char> rest(990, 0);
    write_in_pieces(p.a.get(), rest.data(), rest.size(), rest.size(), 0us);
    receiver.join();
    EXPECT_EQ(r, 0);
    ASSERT_GE(before, 0);
    EXPECT_LT(after - before, 50) << "the blocked receiver woke up " << (after - before) << " times in 300 ms";
}

// ---- 8 MiB, larger than the socket buffer -------------------------------------------------

// kBig bytes each way at once, both sends in flight together: a -> b received with
// blight_recv_blocking, b -> a with `recv_ba` (blight_recv or blight_recv_blocking).
void expect_large_message_both_ways(Pair& p, RecvFn recv_ba_with, uint64_t seed_ab, uint64_t seed_ba) {
    SCOPED_TRACE(recv_name(recv_ba_with));
    std::vector<unsigned char> ab = pattern(kBig, seed_ab), ba = pattern(kBig, seed_ba);
    int send_ab = -1, send_ba = -1, recv_ab = -1, recv_ba = -1;
    Received got_ab, got_ba;
    std::thread t1([&] { send_ab = blight_send_blocking(p.a.get(), ab.data(), static_cast<ssize_t>(kBig)); });
    std::thread t2([&] { send_ba = blight_send_blocking(p.b.get(), ba.data(), static_cast<ssize_t>(kBig)); });
    std::thread t3([&] { recv_ab = recv_with(RecvFn::RecvBlocking, p.b.get(), got_ab, kBig); });
    recv_ba = recv_with(recv_ba_with, p.a.get(), got_ba, kBig);
    if (recv_ba != 0) ::shutdown(p.a.get(), SHUT_RDWR);  // unblock the others
    t3.join();
    if (recv_ab != 0) ::shutdown(p.b.get(), SHUT_RDWR);
    t1.join();
    t2.join();
    EXPECT_EQ(send_ab, 0);
    EXPECT_EQ(send_ba, 0);
    ASSERT_EQ(recv_ab, 0);
    ASSERT_EQ(recv_ba, 0);
    expect_received(RecvFn::RecvBlocking, got_ab, kBig, seed_ab);
    expect_received(recv_ba_with, got_ba, kBig, seed_ba);
}

TEST_P(UnixPairTest, LargeMessageBothWaysAtOnce) {
    Pair p = unix_pair(nonblocking());
    expect_large_message_both_ways(p, RecvFn::RecvBlocking, 17, 18);
}

TEST_P(UnixPairTest, LargeMessageThroughRecvCompletesThePartialRead) {
    Pair p = unix_pair(nonblocking());
    std::vector<unsigned char> msg = pattern(kBig, 19);
    int sent = -1;
    std::thread sender([&] { sent = blight_send_blocking(p.a.get(), msg.data(), static_cast<ssize_t>(kBig)); });
    Freed got;
    int r = blight_recv(p.b.get(), &got.p, static_cast<ssize_t>(kBig));
    if (r != 0) p.b.reset();
    sender.join();
    EXPECT_EQ(sent, 0);
    ASSERT_EQ(r, 0);
    EXPECT_EQ(first_mismatch(got.p, kBig, 19), -1);
}

TEST_P(UnixPairTest, LargeMessageToASlowReader) {
    Pair p = unix_pair(nonblocking());
    std::vector<unsigned char> msg = pattern(kBig, 20);
    std::vector<unsigned char> got;
    std::thread reader([&] { got = slow_read(p.b.get(), kBig, 100000, 100us); });
    int r = blight_send_blocking(p.a.get(), msg.data(), static_cast<ssize_t>(kBig));
    if (r != 0) p.a.reset();
    reader.join();
    EXPECT_EQ(r, 0);
    ASSERT_EQ(got.size(), kBig);
    EXPECT_EQ(first_mismatch(got.data(), kBig, 20), -1);
}

INSTANTIATE_TEST_SUITE_P(Unix, UnixPairTest, ::testing::Bool(), BlockingName);

// ---- TCP loopback, IPv4 and IPv6 ------------------------------------------------------------

struct TcpParam {
    int family;
    bool nonblocking;
};

class TcpTest : public ::testing::TestWithParam<TcpParam> {
  protected:
    void SetUp() override {
        if (!family_available(GetParam().family)) GTEST_SKIP() << "address family not available";
    }
    Pair pair() const { return tcp_pair(GetParam().family, GetParam().nonblocking); }
};

std::string TcpName(const ::testing::TestParamInfo<TcpParam>& info) {
    return std::string(info.param.family == AF_INET ? "IPv4" : "IPv6") +
           (info.param.nonblocking ? "NonBlocking" : "Blocking");
}

TEST_P(TcpTest, LargeMessageBothWaysAtOnce) {
    Pair p = pair();
    expect_large_message_both_ways(p, RecvFn::Recv, 21, 22);
}

TEST_P(TcpTest, PiecesAreReassembled) {
    Pair p = pair();
    int one = 1;
    ::setsockopt(p.b.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    expect_pieces_reassembled(p.b, p.a, RecvFn::RecvBlocking, 7, 1500, 23, 100us);
}

TEST_P(TcpTest, ShortMessageThenCloseIsEbadmsg) {
    Pair p = pair();
    expect_short_message_then_close_is_ebadmsg(p.b, p.a.get(), RecvFn::RecvBlocking, 24);
}

TEST_P(TcpTest, ShortMessageThenCloseIsEbadmsgForRecv) {
    Pair p = pair();
    expect_short_message_then_close_is_ebadmsg(p.b, p.a.get(), RecvFn::Recv, 24);
}

TEST_P(TcpTest, SendToClosedPeerFailsWithoutSigpipe) {
    TcpParam param = GetParam();
    ChildResult res = run_in_child([param] {
        Pair p = tcp_pair(param.family, param.nonblocking);
        p.b.reset();
        std::vector<unsigned char> msg(1u << 20, 1);
        // The first bytes may be accepted before the peer's reset arrives; sending on
        // must fail with EPIPE or ECONNRESET, without a signal.
        int r = 0;
        for (int i = 0; i < 50 && r == 0; i++) {
            r = blight_send_blocking(p.a.get(), msg.data(), static_cast<ssize_t>(msg.size()));
            if (r == 0) std::this_thread::sleep_for(5ms);
        }
        if (r != -EPIPE && r != -ECONNRESET) return 1;
        return 0;
    });
    EXPECT_TRUE(res.ok()) << res.describe();
}

INSTANTIATE_TEST_SUITE_P(Tcp, TcpTest,
                         ::testing::Values(TcpParam{AF_INET, false}, TcpParam{AF_INET, true},
                                           TcpParam{AF_INET6, false}, TcpParam{AF_INET6, true}),
                         TcpName);

}  // namespace
