// The error queue is shared: timestamps, ICMP errors and zero-copy notifications arrive
// there together, other threads drain it, and a socket may be forgotten while it stays in
// use. None of this may hang a wait, turn a report into an error, or lose a completion.
#include <gtest/gtest.h>

#include <linux/errqueue.h>
#include <netinet/in.h>
#include <netinet/udp.h>

#include <climits>
#include <memory>

#include "zc_util.h"

using namespace zc_test;

namespace {

// A UDP socket connected to a loopback port nobody listens on, with IP_RECVERR: every
// datagram it sends comes back as ICMP port-unreachable, queued in its error queue.
Fd udp_to_closed_port() {
    Fd probe(::socket(AF_INET, SOCK_DGRAM, 0));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    check_sys(::bind(probe.get(), reinterpret_cast<sockaddr*>(&addr), len) == 0, "bind");
    check_sys(::getsockname(probe.get(), reinterpret_cast<sockaddr*>(&addr), &len) == 0, "getsockname");
    probe.reset();  // the port is now closed
    Fd fd(::socket(AF_INET, SOCK_DGRAM, 0));
    int on = 1;
    check_sys(::setsockopt(fd.get(), SOL_IP, IP_RECVERR, &on, sizeof on) == 0, "IP_RECVERR");
    check_sys(::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), len) == 0, "connect");
    return fd;
}

// udp_to_closed_port, after one datagram: its ICMP error is on its way to the error queue.
Fd udp_with_icmp_error() {
    Fd fd = udp_to_closed_port();
    unsigned char byte = 7;
    check_sys(::send(fd.get(), &byte, 1, 0) == 1, "send");
    return fd;
}

}  // namespace

TEST(ErrorQueue, ForeignMessagesInTheQueueDoNotStopWaitsFromTimingOut) {
    ChildResult res = run_in_child([] {
        Fd fd = udp_with_icmp_error();
        ZC_CHILD_CHECK((poll_for(fd.get(), 0, 5000) & POLLERR) != 0);
        // The first wait reports the socket error (SO_ERROR); the ICMP report stays in the
        // queue, for the caller to read, and keeps POLLERR up.
        int first = blight_wait_for_read(fd.get(), 200);
        ZC_CHILD_CHECK(first == -ECONNREFUSED || first == -EAGAIN);
        // Later waits must still end at their timeout.
        for (int i = 0; i < 3; i++) {
            ZC_CHILD_CHECK(blight_wait_for_read(fd.get(), 100) == -EAGAIN);
            ZC_CHILD_CHECK(blight_wait_for_read(fd.get(), 0) == -EAGAIN);
        }
        // The library left the report for its owner.
        ZC_CHILD_CHECK((poll_for(fd.get(), 0, 0) & POLLERR) != 0);
        return 0;
    }, 30s);
    EXPECT_TRUE(res.ok()) << res.describe();
}

TEST(ErrorQueue, ZeroCopyCompletionsOnAUdpSocketWithIcmpErrors) {
    // A zero-copy datagram socket whose queue also holds an ICMP error: completions are
    // applied, the error is reported once as that errno, never as garbage.
    Fd fd = udp_with_icmp_error();
    ASSERT_NE(poll_for(fd.get(), 0, 5000) & POLLERR, 0);
    size_t threshold = blight_zerocopy_threshold();
    ASSERT_EQ(blight_set_zerocopy_threshold(1024), 0);
    FreeCounter fc;
    blight_buffer_id_t id = 0;
    int r = blight_send_zerocopy(fd.get(), new_pattern(4096, 3), 4096, count_and_delete, &fc, &id);
    // The send itself may already meet the error (the queue is drained while sending).
    EXPECT_TRUE(r == 0 || r == -ECONNREFUSED) << r;
    ASSERT_NE(id, 0u);
    ASSERT_EQ(blight_release_buffer(id), 0);
    int errors = 0;
    for (int i = 0; i < 300 && fc.calls == 0; i++) {
        r = blight_process_zerocopy_completions(fd.get(), 100);
        if (r < 0) {
            EXPECT_EQ(r, -ECONNREFUSED);
            errors++;
        }
    }
    blight_set_zerocopy_threshold(threshold);
    EXPECT_EQ(fc.calls, 1);
    EXPECT_LE(errors, 1);
    EXPECT_EQ(stats_of(fd.get()).pending_sends, 0u);
    EXPECT_EQ(blight_forget_socket(fd.get()), 0);
}

TEST(ErrorQueue, ACompletionReadTogetherWithASocketErrorIsCountedAndTheErrorReportedNext) {
    // One zero-copy datagram to a closed loopback port: its notification and the ICMP error
    // it provokes land in the error queue together, and one call reads both. That call
    // returns the completed send; the next returns the error. Neither may be lost.
    Fd fd = udp_to_closed_port();
    size_t threshold = blight_zerocopy_threshold();
    ASSERT_EQ(blight_set_zerocopy_threshold(1024), 0);
    FreeCounter fc;
    blight_buffer_id_t id = send_new(fd.get(), 4096, 5, 0, fc);
    blight_set_zerocopy_threshold(threshold);
    ASSERT_NE(id, 0u);  // send_new released it
    ASSERT_EQ(stats_of(fd.get()).zerocopy_sends, 1u) << "the datagram was not sent with MSG_ZEROCOPY";
    // Let both the notification and the ICMP error arrive before the first read.
    ASSERT_NE(poll_for(fd.get(), 0, 5000) & POLLERR, 0);
    ::usleep(100 * 1000);

    int first = blight_process_zerocopy_completions(fd.get(), 1000);
    EXPECT_EQ(first, 1) << "the completed send must be counted by the call that read it";
    EXPECT_EQ(fc.calls, 1);
    EXPECT_EQ(blight_process_zerocopy_completions(fd.get(), 0), -ECONNREFUSED)
        << "the socket error read with it must be reported by the next call";
    EXPECT_EQ(blight_process_zerocopy_completions(fd.get(), 0), 0) << "reported once";
    blight_zerocopy_stats s = stats_of(fd.get());
    EXPECT_EQ(s.completed_sends, 1u);
    EXPECT_EQ(s.pending_sends, 0u);
    EXPECT_EQ(blight_forget_socket(fd.get()), 0);
}

TEST(ErrorQueue, AFailedZeroCopyDatagramDoesNotShiftTheNotificationsOfLaterSends) {
    // UDP GSO with a segment size the kernel refuses: udp_send_skb fails with EINVAL after
    // the send was numbered, and its notification still comes. Counting it as unnumbered
    // put every later completion one send behind: the next buffer was never freed (and a
    // wait for it hung), or was completed by the wrong report.
    Pair p = udp_pair(AF_INET);
    Fd &tx = p.a, &rx = p.b;
    int gso = 10;
    if (::setsockopt(tx.get(), SOL_UDP, UDP_SEGMENT, &gso, sizeof gso) != 0) GTEST_SKIP() << "no UDP_SEGMENT";

    size_t threshold = blight_zerocopy_threshold();
    ASSERT_EQ(blight_set_zerocopy_threshold(1024), 0);
    FreeCounter fc;
    blight_buffer_id_t first = 0;
    int r = blight_send_zerocopy(tx.get(), new_pattern(20000, 8), 20000, count_and_delete, &fc, &first);
    ASSERT_NE(first, 0u);
    EXPECT_EQ(blight_release_buffer(first), 0);
    if (r == 0) {
        blight_set_zerocopy_threshold(threshold);
        GTEST_SKIP() << "this kernel accepted 2000 segments of 10 bytes";
    }
    EXPECT_EQ(r, -EINVAL) << std::strerror(-r);
    // The failed send's own notification arrives and is read (it completes nothing).
    ::usleep(10 * 1000);
    EXPECT_GE(blight_process_zerocopy_completions(tx.get(), 0), 0);
    gso = 0;
    ASSERT_EQ(::setsockopt(tx.get(), SOL_UDP, UDP_SEGMENT, &gso, sizeof gso), 0);
    blight_buffer_id_t second = send_new(tx.get(), 20000, 8, 0, fc);
    blight_set_zerocopy_threshold(threshold);
    ASSERT_NE(second, 0u);
    std::vector<unsigned char> got(65536);
    EXPECT_EQ(::recv(rx.get(), got.data(), got.size(), 0), 20000);
    EXPECT_EQ(first_mismatch(got.data(), 20000, 8, 0), -1);
    for (int i = 0; i < 100 && fc.calls < 2; i++) blight_process_zerocopy_completions(tx.get(), 20);
    EXPECT_EQ(fc.calls, 2) << "a buffer sent after the failed send was never completed";
    blight_zerocopy_stats s = stats_of(tx.get());
    EXPECT_EQ(s.pending_sends, 0u);
    EXPECT_EQ(s.completed_sends, s.zerocopy_sends);
    EXPECT_EQ(blight_process_zerocopy_completions(tx.get(), 0), 0);
    EXPECT_EQ(blight_forget_socket(tx.get()), 0);
}

TEST(ErrorQueue, TimestampsOnAZeroCopySocketAreNotErrors) {
    // SO_TIMESTAMP makes the kernel attach a receive timestamp to every message read,
    // the error queue's too: it is not a sock_extended_err and must not be read as one.
    Pair p = tcp_pair(AF_INET);
    int on = 1;
    ASSERT_EQ(::setsockopt(p.a.get(), SOL_SOCKET, SO_TIMESTAMP, &on, sizeof on), 0);
    constexpr size_t kSize = 64 * 1024;
    constexpr int kBuffers = 6;
    StreamReader reader(p.b.get(), kSize * kBuffers, 21);
    FreeCounter fc;
    for (int i = 0; i < kBuffers; i++) {
        send_new(p.a.get(), kSize, 21, i * kSize, fc);
        ASSERT_FALSE(HasFailure());
    }
    reader.join();
    EXPECT_EQ(reader.mismatch(), -1);
    EXPECT_TRUE(process_until(p.a.get(), [&] { return fc.calls == kBuffers; }));
    auto st = stats_of(p.a.get());
    EXPECT_GT(st.zerocopy_sends, 0u);
    EXPECT_EQ(st.pending_sends, 0u);
    EXPECT_EQ(blight_forget_socket(p.a.get()), 0);
}

TEST(ErrorQueue, WaitingForeverEndsWhenAnotherThreadTakesTheLastNotification) {
    // One thread waits in blight_process_zerocopy_completions(fd, -1) while another drains
    // the same queue: if the other takes the last notification between the waiter's check
    // and its poll, no POLLERR will ever come. The waiter must notice that nothing is
    // pending any more and return.
    ChildResult res = run_in_child([] {
        constexpr size_t kSize = 64 * 1024;
        for (int round = 0; round < 100; round++) {
            Pair p = tcp_pair(round % 2 ? AF_INET6 : AF_INET);
            StreamReader reader(p.b.get(), kSize, round);
            FreeCounter fc;
            blight_buffer_id_t id = 0;
            ZC_CHILD_CHECK(blight_send_zerocopy(p.a.get(), new_pattern(kSize, round), kSize, count_and_delete, &fc,
                                                &id) == 0);
            ZC_CHILD_CHECK(blight_release_buffer(id) == 0);
            std::atomic<int> waiter_result{INT_MIN};
            std::thread waiter([&] { waiter_result = blight_process_zerocopy_completions(p.a.get(), -1); });
            while (fc.calls == 0) {
                ZC_CHILD_CHECK(blight_process_zerocopy_completions(p.a.get(), 0) >= 0);
                ZC_CHILD_CHECK(blight_wait_for_read(p.a.get(), 0) == -EAGAIN);
            }
            waiter.join();  // a hang here is caught by run_in_child's time limit
            ZC_CHILD_CHECK(waiter_result >= 0);
            reader.join();
            ZC_CHILD_CHECK(reader.mismatch() == -1);
            ZC_CHILD_CHECK(blight_forget_socket(p.a.get()) == 0);
        }
        return 0;
    }, 90s);
    EXPECT_TRUE(res.ok()) << res.describe();
}

TEST(ErrorQueue, SendsAfterForgettingAnOpenSocketStillComplete) {
    // blight_forget_socket does not close the socket, and the kernel's notification
    // counter does not restart: a socket used again after being forgotten must not match
    // new notifications against a counter that starts at 0 again.
    Pair p = tcp_pair(AF_INET);
    constexpr size_t kSize = 64 * 1024;
    constexpr int kBuffers = 6;
    StreamReader reader(p.b.get(), kSize * kBuffers, 5);
    FreeCounter fc;
    for (int i = 0; i < kBuffers / 2; i++) send_new(p.a.get(), kSize, 5, i * kSize, fc);
    ASSERT_FALSE(HasFailure());
    auto before = stats_of(p.a.get());
    EXPECT_EQ(before.path, BLIGHT_ZEROCOPY_PATH_MSG_ZEROCOPY);
    ASSERT_GE(blight_forget_socket(p.a.get()), 0);
    for (int i = kBuffers / 2; i < kBuffers; i++) send_new(p.a.get(), kSize, 5, i * kSize, fc);
    ASSERT_FALSE(HasFailure());
    reader.join();
    EXPECT_EQ(reader.mismatch(), -1);
    EXPECT_TRUE(process_until(p.a.get(), [&] { return fc.calls == kBuffers; })) << fc.calls << " freed";
    auto after = stats_of(p.a.get());
    EXPECT_EQ(after.pending_sends, 0u);
    EXPECT_EQ(after.path, BLIGHT_ZEROCOPY_PATH_COPY) << "the counter's position is unknown: copy";
    EXPECT_EQ(after.copied_bytes, kSize * (kBuffers / 2));
    EXPECT_EQ(blight_forget_socket(p.a.get()), 0);
}

TEST(ErrorQueue, WaitOnADuplicateOfAZeroCopySocketKeepsItsTimeout) {
    // The notifications of sends made through one descriptor raise POLLERR on every
    // descriptor of the socket; a wait through a dup must end at its timeout, and it
    // completes the sends of the descriptor that made them.
    ChildResult res = run_in_child([] {
        Pair p = tcp_pair(AF_INET);
        constexpr size_t kSize = 64 * 1024;
        StreamReader reader(p.b.get(), kSize, 9);
        FreeCounter fc;
        blight_buffer_id_t id = 0;
        ZC_CHILD_CHECK(blight_send_zerocopy(p.a.get(), new_pattern(kSize, 9), kSize, count_and_delete, &fc, &id) == 0);
        ZC_CHILD_CHECK(blight_release_buffer(id) == 0);
        reader.join();
        Fd dup(::dup(p.a.get()));
        ZC_CHILD_CHECK((poll_for(dup.get(), 0, 5000) & POLLERR) != 0);
        ZC_CHILD_CHECK(fc.calls == 0);
        ZC_CHILD_CHECK(blight_wait_for_read(dup.get(), 100) == -EAGAIN);
        // The wait read the notification through the dup and credited it to the entry
        // that sent: the buffer is complete, and POLLERR is down.
        ZC_CHILD_CHECK(fc.calls == 1);
        ZC_CHILD_CHECK((poll_for(dup.get(), 0, 0) & POLLERR) == 0);
        ZC_CHILD_CHECK(blight_wait_for_read(dup.get(), 0) == -EAGAIN);
        ZC_CHILD_CHECK(blight_wait_for_send(dup.get(), 100) == 0);
        ZC_CHILD_CHECK(stats_of(p.a.get()).pending_sends == 0);
        ZC_CHILD_CHECK(blight_forget_socket(p.a.get()) == 0);
        return 0;
    }, 30s);
    EXPECT_TRUE(res.ok()) << res.describe();
}

TEST(ErrorQueue, SendsCompleteThroughADuplicateAfterTheSendingDescriptorIsClosed) {
    // Zero-copy sends through descriptor A, A dup'ed to B, then A closed without
    // blight_forget_socket: the socket lives on through B, its notifications still come,
    // and they complete A's sends when read through B (they were stranded until A's number
    // was reused).
    Pair p = tcp_pair(AF_INET);
    constexpr size_t kSize = 64 * 1024;
    constexpr int kBuffers = 4;
    StreamReader reader(p.b.get(), kSize * kBuffers, 13);
    FreeCounter fc;
    for (int i = 0; i < kBuffers; i++) {
        send_new(p.a.get(), kSize, 13, i * kSize, fc);
        ASSERT_FALSE(HasFailure());
    }
    reader.join();
    ASSERT_EQ(reader.mismatch(), -1);
    ASSERT_GT(stats_of(p.a.get()).zerocopy_sends, 0u);
    Fd dup(::dup(p.a.get()));
    ASSERT_GE(dup.get(), 0);
    int a_number = p.a.get();
    p.a.reset();  // closed, not forgotten
    EXPECT_TRUE(process_until(dup.get(), [&] { return fc.calls == kBuffers; })) << fc.calls << " freed";
    // Forgetting the closed number releases what is left of its entry (nothing by now).
    EXPECT_EQ(blight_forget_socket(a_number), 0);
    EXPECT_EQ(blight_forget_socket(dup.get()), 0);
    EXPECT_EQ(fc.calls, kBuffers);
}

// Sends in flight through descriptor A, whose socket stays open through a dup B that the
// library knows: A is closed without blight_forget_socket and its number given to a new
// socket. The next call on that number finds A's entry stale; the sends must move to B's
// entry, not be abandoned, because the kernel still reads their pages (splice) or will
// still report them (MSG_ZEROCOPY): freeing them let the peer read reused memory.
class DupKeepsTheSocket : public ::testing::TestWithParam<bool> {};

TEST_P(DupKeepsTheSocket, SendsInFlightMoveToTheDupWhenTheSendingNumberIsReused) {
    const bool unix_stream = GetParam();
    Pair p = unix_stream ? unix_pair() : tcp_pair_sized(AF_INET, 1 << 20, 4096);
    constexpr size_t kSize = 64 * 1024;
    auto* data = new_pattern(kSize, 14);
    FreeCounter fc;
    blight_buffer_id_t id = 0;
    ASSERT_EQ(blight_send_zerocopy(p.a.get(), data, kSize, count_and_delete, &fc, &id), 0);
    ASSERT_EQ(blight_release_buffer(id), 0);
    blight_zerocopy_stats s = stats_of(p.a.get());
    ASSERT_EQ(s.splice_sends + s.zerocopy_sends, 1u) << "not sent zero-copy";
    if (s.pending_sends == 0) GTEST_SKIP() << "completed before the peer read (nothing to hand over)";
    Fd dup(::dup(p.a.get()));
    ASSERT_GE(dup.get(), 0);
    EXPECT_EQ(blight_process_zerocopy_completions(dup.get(), 0), 0);  // the peer read nothing yet

    const uint64_t abandoned_before = stats_of(-1).abandoned_sends;
    const int number = p.a.get();
    p.a.reset();  // closed, not forgotten; the socket lives on through `dup`
    Pair q = unix_pair();
    ASSERT_EQ(::dup2(q.a.get(), number), number);
    Fd reused(number);
    EXPECT_TRUE(all_zero(stats_of(number)));  // finds the old entry stale
    EXPECT_EQ(fc.calls, 0) << "a buffer the kernel still reads was freed";
    EXPECT_EQ(stats_of(-1).abandoned_sends, abandoned_before) << "sends of a socket still open were abandoned";

    std::vector<unsigned char> got(kSize);
    ASSERT_EQ(blight_recv_blocking_into(p.b.get(), got.data(), kSize), 0);
    EXPECT_EQ(first_mismatch(got.data(), kSize, 14, 0), -1) << "the peer read reused memory";
    EXPECT_TRUE(process_until(dup.get(), [&] { return fc.calls == 1; })) << "never completed through the dup";
    EXPECT_EQ(stats_of(dup.get()).pending_sends, 0u);
    EXPECT_EQ(blight_forget_socket(dup.get()), 0);
    EXPECT_EQ(fc.calls, 1);
}

INSTANTIATE_TEST_SUITE_P(SpliceAndMsgZerocopy, DupKeepsTheSocket, ::testing::Values(true, false),
                         [](const ::testing::TestParamInfo<bool>& i) { return i.param ? "Unix" : "Tcp"; });
