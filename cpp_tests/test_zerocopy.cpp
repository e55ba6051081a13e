// The zero-copy API (issue 3): blight_send_zerocopy, completions, the buffer table.
//
// On this machine every MSG_ZEROCOPY send over loopback is copied by the kernel (and
// reported COPIED): these tests prove correctness and the accounting, not a speed-up.
#include <gtest/gtest.h>

#include <netinet/udp.h>
#include <sys/ioctl.h>
#include <sys/stat.h>

#include <array>
#include <chrono>
#include <climits>
#include <limits>
#include <memory>
#include <mutex>
#include <thread>
#include <atomic>

#include "zc_util.h"

using namespace zc_test;

namespace {

// One datagram, waiting at most 20 s for it.
std::vector<unsigned char> recv_dgram(int fd, size_t max = 70000) {
    std::vector<unsigned char> buf(max);
    if (poll_for(fd, POLLIN, 20000) == 0) {
        ADD_FAILURE() << "no datagram within 20 s";
        return {};
    }
    ssize_t r = ::recv(fd, buf.data(), buf.size(), MSG_DONTWAIT);
    if (r < 0) {
        ADD_FAILURE() << "recv: " << std::strerror(errno);
        return {};
    }
    buf.resize(static_cast<size_t>(r));
    return buf;
}

int inq(int fd) {
    int n = -1;
    check_sys(::ioctl(fd, FIONREAD, &n) == 0, "FIONREAD");
    return n;
}

class ZeroCopy : public ThresholdTest {};

// ---- arguments, ids ------------------------------------------------------------------

TEST_F(ZeroCopy, BadArgumentsAreEinvalAndRegisterNothing) {
    Pair p = unix_pair();
    FreeCounter fc;
    unsigned char buf[64] = {1, 2, 3};
    blight_buffer_id_t id = 777;
    EXPECT_EQ(blight_send_zerocopy(p.a.get(), nullptr, 64, count_only_free, &fc, &id), -EINVAL);
    EXPECT_EQ(id, 0u);
    id = 777;
    EXPECT_EQ(blight_send_zerocopy(p.a.get(), buf, 0, count_only_free, &fc, &id), -EINVAL);
    EXPECT_EQ(id, 0u);
    id = 777;
    EXPECT_EQ(blight_send_zerocopy(p.a.get(), buf, -1, count_only_free, &fc, &id), -EINVAL);
    EXPECT_EQ(id, 0u);
    id = 777;
    EXPECT_EQ(blight_send_zerocopy(p.a.get(), buf, std::numeric_limits<ssize_t>::min(), count_only_free, &fc, &id), -EINVAL);
    EXPECT_EQ(id, 0u);
    EXPECT_EQ(blight_send_zerocopy(p.a.get(), buf, 64, count_only_free, &fc, nullptr), -EINVAL);
    // Nothing was sent, nothing registered, nothing freed: the caller still owns buf.
    EXPECT_EQ(inq(p.b.get()), 0);
    EXPECT_EQ(fc.calls, 0);
    blight_zerocopy_stats s = stats_of(p.a.get());
    EXPECT_EQ(bytes_sent(s), 0u);
}

TEST_F(ZeroCopy, BadDescriptorsAreEbadfOrEnotsockAndRegisterNothing) {
    FreeCounter fc;
    std::vector<unsigned char> buf = pattern(20000, 1);
    blight_zerocopy_stats before = stats_of(-1);

    // A closed descriptor, and -1.
    int closed;
    {
        Pair p = unix_pair();
        closed = p.a.get();
    }
    for (int fd : {closed, -1}) {
        blight_buffer_id_t id = 777;
        EXPECT_EQ(blight_send_zerocopy(fd, buf.data(), 20000, count_only_free, &fc, &id), -EBADF) << fd;
        EXPECT_EQ(id, 0u);
        EXPECT_EQ(blight_process_zerocopy_completions(fd, 0), -EBADF);
        blight_zerocopy_stats s;
        if (fd != -1) {
            EXPECT_EQ(blight_get_zerocopy_stats(fd, &s), -EBADF);
        }
    }
    // A pipe and a regular file are not sockets.
    int pfd[2];
    ASSERT_EQ(::pipe(pfd), 0);
    Fd pr(pfd[0]), pw(pfd[1]);
    char tmpl[] = "/tmp/blight_zc_XXXXXX";
    Fd file(::mkstemp(tmpl));
    ASSERT_GE(file.get(), 0);
    ::unlink(tmpl);
    for (int fd : {pw.get(), pr.get(), file.get()}) {
        blight_buffer_id_t id = 777;
        EXPECT_EQ(blight_send_zerocopy(fd, buf.data(), 20000, count_only_free, &fc, &id), -ENOTSOCK) << fd;
        EXPECT_EQ(id, 0u);
        EXPECT_EQ(blight_process_zerocopy_completions(fd, 0), -ENOTSOCK);
        blight_zerocopy_stats s;
        EXPECT_EQ(blight_get_zerocopy_stats(fd, &s), -ENOTSOCK);
    }
    struct stat st;
    ASSERT_EQ(::fstat(file.get(), &st), 0);
    EXPECT_EQ(st.st_size, 0);
    EXPECT_EQ(inq(pr.get()), 0);
    EXPECT_EQ(fc.calls, 0);
    blight_zerocopy_stats after = stats_of(-1);
    EXPECT_EQ(bytes_sent(after), bytes_sent(before));
    EXPECT_EQ(after.pending_sends, before.pending_sends);
    EXPECT_EQ(blight_get_zerocopy_stats(-1, nullptr), -EINVAL);
}

TEST_F(ZeroCopy, UnknownZeroAndDoubleReleaseAreEnoent) {
    EXPECT_EQ(blight_release_buffer(0), -ENOENT);
    EXPECT_EQ(blight_release_buffer(UINT64_MAX), -ENOENT);
    EXPECT_EQ(blight_release_buffer(UINT64_MAX / 2 + 12345), -ENOENT);
    EXPECT_EQ(blight_buffer_in_flight(0), -ENOENT);
    EXPECT_EQ(blight_buffer_in_flight(UINT64_MAX), -ENOENT);

    Pair p = unix_pair();
    FreeCounter fc;
    blight_buffer_id_t id = send_new(p.a.get(), 100, 2, 0, fc, false);
    blight_buffer_id_t id2 = send_new(p.a.get(), 100, 2, 100, fc, false);
    ASSERT_NE(id, 0u);
    EXPECT_NE(id, id2);
    EXPECT_EQ(blight_buffer_in_flight(id), 0);  // copied: nothing in flight
    EXPECT_EQ(fc.calls, 0);                      // but not released yet
    EXPECT_EQ(blight_release_buffer(id), 0);
    EXPECT_EQ(fc.calls, 1);
    EXPECT_EQ(blight_release_buffer(id), -ENOENT);
    EXPECT_EQ(blight_release_buffer(id), -ENOENT);
    EXPECT_EQ(blight_buffer_in_flight(id), -ENOENT);
    EXPECT_EQ(fc.calls, 1);
    EXPECT_EQ(blight_release_buffer(id2), 0);
    EXPECT_EQ(blight_release_buffer(id2), -ENOENT);
    EXPECT_EQ(fc.calls, 2);
    EXPECT_EQ(fc.bytes, 200u);
    // Ids are never reused.
    blight_buffer_id_t id3 = send_new(p.a.get(), 100, 2, 200, fc, true);
    EXPECT_NE(id3, id);
    EXPECT_NE(id3, id2);
    EXPECT_EQ(blight_release_buffer(id3), -ENOENT);
    EXPECT_EQ(read_exactly(p.b.get(), 300), pattern(300, 2));
}

// ---- data integrity ------------------------------------------------------------------

const std::vector<size_t> kStreamSizes = {1,     100,   4096,    10239,  10240,      10241,  16384,
                                          65536, 65537, 300000,  4096,   (1u << 20) + 7, 20000, 65536,
                                          65536, 65536, 65536,   65536,  65536,      65536,  65536};

struct StreamCase {
    const char* name;
    int family;  // AF_INET, AF_INET6, AF_UNIX
    bool nonblocking;
};

class ZeroCopyStream : public ThresholdTest, public ::testing::WithParamInterface<StreamCase> {};

TEST_P(ZeroCopyStream, DataIntactAndEveryBufferFreedOnce) {
    const StreamCase& c = GetParam();
    Pair p = c.family == AF_UNIX ? unix_pair(c.nonblocking) : tcp_pair(c.family, c.nonblocking);
    size_t total = 0;
    for (size_t n : kStreamSizes) total += n;
    const uint64_t seed = 0x5151 + c.family;
    StreamReader reader(p.b.get(), total, seed);
    FreeCounter fc;
    size_t off = 0;
    for (size_t n : kStreamSizes) {
        send_new(p.a.get(), n, seed, off, fc);
        off += n;
        ASSERT_GE(blight_process_zerocopy_completions(p.a.get(), 0), 0);
    }
    reader.join();
    EXPECT_EQ(reader.error(), "");
    EXPECT_EQ(reader.received(), total);
    EXPECT_EQ(reader.mismatch(), -1);
    EXPECT_TRUE(process_until(p.a.get(), [&] { return fc.calls == static_cast<int>(kStreamSizes.size()); }));
    EXPECT_EQ(fc.calls, static_cast<int>(kStreamSizes.size()));
    EXPECT_EQ(fc.bytes, total);
    blight_zerocopy_stats s = stats_of(p.a.get());
    EXPECT_EQ(bytes_sent(s), total);
    EXPECT_EQ(s.pending_sends, 0u);
    EXPECT_EQ(s.completed_sends, s.zerocopy_sends + s.splice_sends);
    if (c.family == AF_UNIX) {
        EXPECT_EQ(s.zerocopy_bytes, 0u);
    } else {
        EXPECT_EQ(s.splice_bytes, 0u);
        EXPECT_GT(s.zerocopy_bytes, 0u);  // a fresh TCP socket starts with MSG_ZEROCOPY
        EXPECT_LE(s.kernel_copied_bytes, s.zerocopy_bytes);
    }
    EXPECT_GT(s.copied_bytes, 0u);  // the chunks below the threshold
}

INSTANTIATE_TEST_SUITE_P(Transports, ZeroCopyStream,
                         ::testing::Values(StreamCase{"tcp4", AF_INET, false}, StreamCase{"tcp6", AF_INET6, false},
                                           StreamCase{"tcp4_nonblocking", AF_INET, true},
                                           StreamCase{"unix_stream", AF_UNIX, false},
                                           StreamCase{"unix_stream_nonblocking", AF_UNIX, true}),
                         [](const ::testing::TestParamInfo<StreamCase>& i) { return std::string(i.param.name); });

struct DgramCase {
    const char* name;
    int family;  // AF_INET, AF_INET6, or AF_UNIX for SOCK_SEQPACKET
};

class ZeroCopyDatagram : public ThresholdTest, public ::testing::WithParamInterface<DgramCase> {};

TEST_P(ZeroCopyDatagram, EachDatagramIntactAndFreedOnce) {
    const DgramCase& c = GetParam();
    Pair p = c.family == AF_UNIX ? unix_pair(false, SOCK_SEQPACKET) : udp_pair(c.family);
    const std::vector<size_t> sizes = {1, 1000, 10239, 10240, 10241, 30000, 60000, 65000 - 100};
    FreeCounter fc;
    size_t total = 0, count = 0;
    for (int round = 0; round < 3; round++) {
        for (size_t n : sizes) {
            uint64_t seed = round * 100 + n;
            send_new(p.a.get(), n, seed, 0, fc);
            std::vector<unsigned char> got = recv_dgram(p.b.get());
            ASSERT_EQ(got.size(), n) << "datagram boundaries must be kept";
            ASSERT_EQ(first_mismatch(got.data(), n, seed), -1) << n;
            ASSERT_GE(blight_process_zerocopy_completions(p.a.get(), 0), 0);
            total += n;
            count++;
        }
    }
    EXPECT_TRUE(process_until(p.a.get(), [&] { return fc.calls == static_cast<int>(count); }));
    EXPECT_EQ(fc.calls, static_cast<int>(count));
    EXPECT_EQ(fc.bytes, total);
    blight_zerocopy_stats s = stats_of(p.a.get());
    EXPECT_EQ(bytes_sent(s), total);
    EXPECT_EQ(s.pending_sends, 0u);
    EXPECT_EQ(s.splice_bytes, 0u);
    if (c.family == AF_UNIX) {
        // SO_ZEROCOPY is refused on AF_UNIX: everything copied, one send per datagram.
        EXPECT_EQ(s.zerocopy_bytes, 0u);
        EXPECT_EQ(s.copied_bytes, total);
        EXPECT_EQ(s.copied_sends, count);
        EXPECT_EQ(s.path, static_cast<uint32_t>(BLIGHT_ZEROCOPY_PATH_COPY));
    } else {
        EXPECT_GT(s.zerocopy_bytes, 0u);
        EXPECT_EQ(s.completed_sends, s.zerocopy_sends);
    }
}

INSTANTIATE_TEST_SUITE_P(Transports, ZeroCopyDatagram,
                         ::testing::Values(DgramCase{"udp4", AF_INET}, DgramCase{"udp6", AF_INET6},
                                           DgramCase{"unix_seqpacket", AF_UNIX}),
                         [](const ::testing::TestParamInfo<DgramCase>& i) { return std::string(i.param.name); });

// ---- ownership: when free_fn runs ----------------------------------------------------

struct OrderProbe {
    FreeCounter fc;
    blight_buffer_id_t id = 0;
    std::atomic<int> in_flight_at_free{12345};
};

extern "C" void probe_free(unsigned char* data, size_t size, void* user) {
    auto* p = static_cast<OrderProbe*>(user);
    // By the time free_fn runs the buffer is gone from the table.
    p->in_flight_at_free = blight_buffer_in_flight(p->id);
    count_and_delete(data, size, &p->fc);
}

TEST_F(ZeroCopy, ReleaseAfterCompletionFreesAtRelease) {
    for (int family : {AF_INET, AF_INET6}) {
        Pair p = tcp_pair(family);
        const size_t n = 65536;
        StreamReader reader(p.b.get(), n, 31);
        OrderProbe probe;
        int r = blight_send_zerocopy(p.a.get(), new_pattern(n, 31), n, probe_free, &probe, &probe.id);
        ASSERT_EQ(r, 0);
        ASSERT_NE(probe.id, 0u);
        // A fresh TCP socket sends with MSG_ZEROCOPY and nothing has read the completion yet.
        EXPECT_GE(blight_buffer_in_flight(probe.id), 1);
        reader.join();
        EXPECT_EQ(reader.mismatch(), -1);
        EXPECT_TRUE(process_until(p.a.get(), [&] { return blight_buffer_in_flight(probe.id) == 0; }));
        // Complete, but not released: the caller still holds it.
        EXPECT_EQ(blight_buffer_in_flight(probe.id), 0);
        EXPECT_EQ(probe.fc.calls, 0);
        EXPECT_EQ(blight_process_zerocopy_completions(p.a.get(), 0), 0);
        EXPECT_EQ(probe.fc.calls, 0);
        EXPECT_EQ(blight_release_buffer(probe.id), 0);
        EXPECT_EQ(probe.fc.calls, 1);  // at release, nothing in flight
        EXPECT_EQ(probe.fc.bytes, n);
        EXPECT_EQ(probe.in_flight_at_free, -ENOENT);
        EXPECT_EQ(blight_buffer_in_flight(probe.id), -ENOENT);
        EXPECT_EQ(blight_release_buffer(probe.id), -ENOENT);
        EXPECT_EQ(blight_process_zerocopy_completions(p.a.get(), 0), 0);
        EXPECT_EQ(probe.fc.calls, 1);
    }
}

TEST_F(ZeroCopy, ReleaseBeforeCompletionFreesAtLastCompletion) {
    for (int family : {AF_INET, AF_INET6}) {
        Pair p = tcp_pair(family);
        const size_t n = 200000;  // several MSG_ZEROCOPY sends of one buffer
        StreamReader reader(p.b.get(), n, 32);
        OrderProbe probe;
        int r = blight_send_zerocopy(p.a.get(), new_pattern(n, 32), n, probe_free, &probe, &probe.id);
        ASSERT_EQ(r, 0);
        int in_flight = blight_buffer_in_flight(probe.id);
        EXPECT_GE(in_flight, 1);
        EXPECT_EQ(blight_release_buffer(probe.id), 0);
        EXPECT_EQ(probe.fc.calls, 0) << "freed while " << in_flight << " sends were in flight";
        // Released but in flight: still known, and a second release is refused.
        EXPECT_GE(blight_buffer_in_flight(probe.id), 1);
        EXPECT_EQ(blight_release_buffer(probe.id), -ENOENT);
        reader.join();
        EXPECT_EQ(reader.mismatch(), -1);
        // Watch every completion: the buffer must not be freed while any send is in flight.
        for (int i = 0; i < 300 && probe.fc.calls == 0; i++) {
            int before = blight_buffer_in_flight(probe.id);
            ASSERT_GE(before, 1);
            ASSERT_GE(blight_process_zerocopy_completions(p.a.get(), 100), 0);
            int after = blight_buffer_in_flight(probe.id);
            if (probe.fc.calls == 0) {
                EXPECT_GE(after, 1) << "not freed, yet nothing in flight";
            } else {
                EXPECT_EQ(after, -ENOENT);
            }
        }
        EXPECT_EQ(probe.fc.calls, 1);
        EXPECT_EQ(probe.in_flight_at_free, -ENOENT);
        EXPECT_EQ(blight_process_zerocopy_completions(p.a.get(), 0), 0);
        EXPECT_EQ(probe.fc.calls, 1);
        EXPECT_EQ(probe.fc.bytes, n);
    }
}

TEST_F(ZeroCopy, CopiedSendIsFreedAtRelease) {
    Pair p = unix_pair(false, SOCK_SEQPACKET);
    OrderProbe probe;
    int r = blight_send_zerocopy(p.a.get(), new_pattern(50000, 33), 50000, probe_free, &probe, &probe.id);
    ASSERT_EQ(r, 0);
    EXPECT_EQ(blight_buffer_in_flight(probe.id), 0);
    EXPECT_EQ(probe.fc.calls, 0);
    EXPECT_EQ(blight_release_buffer(probe.id), 0);
    EXPECT_EQ(probe.fc.calls, 1);
    EXPECT_EQ(probe.in_flight_at_free, -ENOENT);
    std::vector<unsigned char> got = recv_dgram(p.b.get());
    ASSERT_EQ(got.size(), 50000u);
    EXPECT_EQ(first_mismatch(got.data(), got.size(), 33), -1);
}

// ---- many buffers, many threads ------------------------------------------------------

TEST_F(ZeroCopy, FiveThousandBuffersInFlightOverTcp) {
    const size_t kCount = 5000, kSize = 16384, kDistinct = 256;
    // 256 distinct, never-modified buffers; message i is buffer i % 256 (free_fn only
    // counts). Byte p of the stream is pattern byte p % (256 * 16 KiB).
    std::vector<unsigned char> arena = pattern(kDistinct * kSize, 41);
    Pair p = tcp_pair(AF_INET);
    StreamReader reader(p.b.get(), kCount * kSize, 41, 256 * 1024, kDistinct * kSize);
    FreeCounter fc;
    std::vector<blight_buffer_id_t> ids;
    ids.reserve(kCount);
    for (size_t i = 0; i < kCount; i++) {
        blight_buffer_id_t id = 0;
        int r = blight_send_zerocopy(p.a.get(), arena.data() + (i % kDistinct) * kSize, kSize, count_only_free, &fc, &id);
        ASSERT_EQ(r, 0) << std::strerror(-r);
        ASSERT_NE(id, 0u);
        ids.push_back(id);
        if (i % 64 == 63) {
            ASSERT_GE(blight_process_zerocopy_completions(p.a.get(), 0), 0);
        }
    }
    // All 5000 ids are still the caller's: nothing may be freed yet.
    EXPECT_EQ(fc.calls, 0);
    size_t held_by_kernel = 0;
    for (blight_buffer_id_t id : ids) {
        int n = blight_buffer_in_flight(id);
        ASSERT_GE(n, 0);
        held_by_kernel += n > 0;
    }
    RecordProperty("sends_in_flight_after_sending", static_cast<int>(held_by_kernel));
    reader.join();
    EXPECT_EQ(reader.error(), "");
    EXPECT_EQ(reader.received(), kCount * kSize);
    EXPECT_EQ(reader.mismatch(), -1);
    for (blight_buffer_id_t id : ids) ASSERT_EQ(blight_release_buffer(id), 0);
    EXPECT_TRUE(process_until(p.a.get(), [&] { return fc.calls == static_cast<int>(kCount); }));
    EXPECT_EQ(fc.calls, static_cast<int>(kCount));
    EXPECT_EQ(fc.bytes, kCount * kSize);
    for (blight_buffer_id_t id : ids) ASSERT_EQ(blight_buffer_in_flight(id), -ENOENT);
    blight_zerocopy_stats s = stats_of(p.a.get());
    EXPECT_EQ(bytes_sent(s), kCount * kSize);
    EXPECT_EQ(s.splice_bytes, 0u);
    EXPECT_GT(s.zerocopy_sends, 0u);
    EXPECT_EQ(s.pending_sends, 0u);
    EXPECT_EQ(s.abandoned_sends, 0u);
    EXPECT_EQ(s.completed_sends, s.zerocopy_sends);
    EXPECT_LE(s.kernel_copied_sends, s.zerocopy_sends);
    EXPECT_LE(s.kernel_copied_bytes, s.zerocopy_bytes);
}

TEST_F(ZeroCopy, ThreadsSendOnTheirSocketsWhileAnotherProcessesCompletions) {
    const int kThreads = 4, kMessages = 120;
    const size_t kSize = 65536 + 1000;
    std::vector<Pair> pairs;
    for (int t = 0; t < kThreads; t++) pairs.push_back(tcp_pair(t % 2 ? AF_INET6 : AF_INET));
    std::vector<std::unique_ptr<StreamReader>> readers;
    for (int t = 0; t < kThreads; t++)
        readers.push_back(std::make_unique<StreamReader>(pairs[t].b.get(), kMessages * kSize, 500 + t));
    std::array<FreeCounter, kThreads> counters;
    std::atomic<bool> stop{false};
    std::atomic<int> completion_errors{0}, completed{0};
    std::thread completer([&] {
        while (!stop) {
            for (int t = 0; t < kThreads; t++) {
                int r = blight_process_zerocopy_completions(pairs[t].a.get(), 1);
                if (r < 0)
                    completion_errors++;
                else
                    completed += r;
            }
        }
    });
    std::atomic<int> send_errors{0};
    std::vector<std::thread> senders;
    for (int t = 0; t < kThreads; t++) {
        senders.emplace_back([&, t] {
            for (int i = 0; i < kMessages; i++) {
                blight_buffer_id_t id = 0;
                int r = blight_send_zerocopy(pairs[t].a.get(), new_pattern(kSize, 500 + t, i * kSize), kSize,
                                             count_and_delete, &counters[t], &id);
                if (r != 0 || id == 0 || blight_release_buffer(id) != 0) send_errors++;
            }
        });
    }
    for (auto& s : senders) s.join();
    for (auto& r : readers) r->join();
    stop = true;
    completer.join();
    EXPECT_EQ(send_errors, 0);
    EXPECT_EQ(completion_errors, 0);
    for (int t = 0; t < kThreads; t++) {
        SCOPED_TRACE(t);
        EXPECT_EQ(readers[t]->error(), "");
        EXPECT_EQ(readers[t]->received(), kMessages * kSize);
        EXPECT_EQ(readers[t]->mismatch(), -1);
        EXPECT_TRUE(process_until(pairs[t].a.get(), [&] { return counters[t].calls == kMessages; }));
        EXPECT_EQ(counters[t].calls, kMessages);
        EXPECT_EQ(counters[t].bytes, kMessages * kSize);
        blight_zerocopy_stats s = stats_of(pairs[t].a.get());
        EXPECT_EQ(bytes_sent(s), kMessages * kSize);
        EXPECT_EQ(s.pending_sends, 0u);
        EXPECT_EQ(s.completed_sends, s.zerocopy_sends);
    }
}

// ---- sockets that go away ------------------------------------------------------------

// A sender whose peer cannot take more than a few KiB: MSG_ZEROCOPY sends stay in the
// sender's queue, so their completions cannot come.
Pair stuck_tcp_pair() { return tcp_pair_sized(AF_INET, 1 << 20, 4096); }

// Sends 4 x 64 KiB zero-copy on `fd` (from `data`, which stays alive); returns the ids.
std::vector<blight_buffer_id_t> send_stuck(int fd, const std::vector<unsigned char>& data, FreeCounter& fc) {
    std::vector<blight_buffer_id_t> ids;
    for (int i = 0; i < 4; i++) {
        blight_buffer_id_t id = 0;
        int r = blight_send_zerocopy(fd, const_cast<unsigned char*>(data.data()) + i * 65536, 65536, count_only_free,
                                     &fc, &id);
        EXPECT_EQ(r, 0) << std::strerror(-r);
        EXPECT_NE(id, 0u);
        ids.push_back(id);
    }
    return ids;
}

// Forgetting an open socket whose peer has not read: what the kernel still reads is held,
// never freed (issue 13; before, it was freed after 100 ms). Used again through the same
// descriptor once the peer has read, the socket completes the held sends.
TEST_F(ZeroCopy, ForgettingASocketHoldsItsUnreadBuffersUntilTheKernelIsDone) {
    std::vector<unsigned char> data = pattern(4 * 65536, 51);
    Pair p = stuck_tcp_pair();
    stats_of(p.a.get());
    blight_zerocopy_stats t0 = stats_of(-1);
    FreeCounter fc;
    std::vector<blight_buffer_id_t> ids = send_stuck(p.a.get(), data, fc);
    ASSERT_EQ(ids.size(), 4u);
    blight_zerocopy_stats s = stats_of(p.a.get());
    ASSERT_EQ(s.zerocopy_sends, 4u);
    ASSERT_GE(s.pending_sends, 1u);
    // Release two; keep two.
    EXPECT_EQ(blight_release_buffer(ids[0]), 0);
    EXPECT_EQ(blight_release_buffer(ids[2]), 0);
    int pending_before = static_cast<int>(stats_of(p.a.get()).pending_sends);
    int held = blight_forget_socket(p.a.get());
    ASSERT_GE(held, 1);
    EXPECT_LE(held, pending_before);
    // Only a released buffer whose every send completed is freed.
    int freed = 0;
    for (int i : {0, 2}) freed += blight_buffer_in_flight(ids[i]) == -ENOENT;
    EXPECT_EQ(fc.calls, freed);
    int in_flight = 0;
    for (blight_buffer_id_t id : ids) in_flight += std::max(0, blight_buffer_in_flight(id));
    EXPECT_EQ(in_flight, held);
    blight_zerocopy_stats t1 = stats_of(-1);
    EXPECT_EQ(t1.held_sends - t0.held_sends, static_cast<uint32_t>(held));
    EXPECT_EQ(t1.abandoned_sends - t0.abandoned_sends, static_cast<uint64_t>(held));
    EXPECT_EQ(t1.pending_sends - t0.pending_sends, static_cast<uint64_t>(held));
    EXPECT_EQ(bytes_sent(t1) - bytes_sent(t0), 4u * 65536);
    // The socket itself starts over; held buffers stay held while the peer does not read.
    EXPECT_TRUE(all_zero(stats_of(p.a.get())));
    ::usleep(50 * 1000);
    EXPECT_EQ(fc.calls, freed);
    // The peer reads everything; the same descriptor, used again, takes the held sends over.
    EXPECT_EQ(read_exactly(p.b.get(), 4 * 65536), data);
    EXPECT_TRUE(process_until(p.a.get(), [&] {
        for (blight_buffer_id_t id : ids)
            if (blight_buffer_in_flight(id) > 0) return false;
        return true;
    }));
    EXPECT_EQ(blight_release_buffer(ids[1]), 0);
    EXPECT_EQ(blight_release_buffer(ids[3]), 0);
    EXPECT_EQ(fc.calls, 4);
    EXPECT_EQ(fc.bytes, 4u * 65536);
    for (blight_buffer_id_t id : ids) EXPECT_EQ(blight_release_buffer(id), -ENOENT);
    blight_zerocopy_stats t2 = stats_of(-1);
    EXPECT_EQ(t2.held_sends, t0.held_sends);
    EXPECT_EQ(t2.pending_sends, t0.pending_sends);
    EXPECT_EQ(blight_forget_socket(p.a.get()), 0);
}

// After close() the kernel drops the notifications and SIOCOUTQ cannot be read: nothing
// can prove the kernel is done, so the buffers of the sends in flight are held (issue 13).
TEST_F(ZeroCopy, ForgettingAClosedSocketHoldsItsPendingBuffers) {
    std::vector<unsigned char> data = pattern(4 * 65536, 52);
    Pair p = stuck_tcp_pair();
    stats_of(p.a.get());
    blight_zerocopy_stats t0 = stats_of(-1);
    FreeCounter fc;
    std::vector<blight_buffer_id_t> ids = send_stuck(p.a.get(), data, fc);
    for (blight_buffer_id_t id : ids) {
        EXPECT_EQ(blight_release_buffer(id), 0);
    }
    int pending = static_cast<int>(stats_of(p.a.get()).pending_sends);
    ASSERT_GE(pending, 1);
    EXPECT_EQ(fc.calls, 4 - pending);
    int num = p.a.get();
    p.a.reset();  // closed: the kernel drops the notifications
    EXPECT_EQ(blight_forget_socket(num), pending);
    EXPECT_EQ(fc.calls, 4 - pending);
    blight_zerocopy_stats t1 = stats_of(-1);
    EXPECT_EQ(t1.abandoned_sends - t0.abandoned_sends, static_cast<uint64_t>(pending));
    EXPECT_EQ(t1.held_sends - t0.held_sends, static_cast<uint32_t>(pending));
    EXPECT_EQ(bytes_sent(t1) - bytes_sent(t0), 4u * 65536);
    EXPECT_EQ(t1.pending_sends - t0.pending_sends, static_cast<uint64_t>(pending));
    // Forgotten: a second forget of the closed number knows nothing of it.
    EXPECT_EQ(blight_forget_socket(num), -EBADF);
    EXPECT_EQ(fc.calls, 4 - pending);
}

TEST_F(ZeroCopy, ClosedSocketNumberReusedByANewSocketStartsFresh) {
    std::vector<unsigned char> data = pattern(4 * 65536, 53);
    Pair p = stuck_tcp_pair();
    Pair q = tcp_pair(AF_INET);
    stats_of(p.a.get());
    stats_of(q.a.get());
    FreeCounter fc;
    std::vector<blight_buffer_id_t> ids = send_stuck(p.a.get(), data, fc);
    for (blight_buffer_id_t id : ids) EXPECT_EQ(blight_release_buffer(id), 0);
    blight_zerocopy_stats old = stats_of(p.a.get());
    ASSERT_EQ(old.zerocopy_sends, 4u);
    ASSERT_GE(old.pending_sends, 1u);
    int freed_before = fc.calls;
    EXPECT_EQ(freed_before, 4 - static_cast<int>(old.pending_sends));
    blight_zerocopy_stats t0 = stats_of(-1);

    // Close the socket, then give its number to another (connected TCP) socket.
    int num = p.a.get();
    p.a.reset();
    ASSERT_EQ(::dup2(q.a.get(), num), num);
    q.a.reset(num);  // q.a now owns the reused number

    blight_zerocopy_stats fresh = stats_of(num);
    EXPECT_TRUE(all_zero(fresh)) << "the new socket inherited the old counters";
    EXPECT_EQ(fresh.path, static_cast<uint32_t>(BLIGHT_ZEROCOPY_PATH_NONE));
    // The old socket's sends in flight are held (issue 13: before, they were freed).
    EXPECT_EQ(fc.calls, freed_before);
    blight_zerocopy_stats t1 = stats_of(-1);
    EXPECT_EQ(t1.abandoned_sends - t0.abandoned_sends, old.pending_sends);
    EXPECT_EQ(t1.held_sends - t0.held_sends, old.pending_sends);
    EXPECT_EQ(t1.pending_sends, t0.pending_sends);
    EXPECT_EQ(bytes_sent(t1), bytes_sent(t0));

    // The new socket works and counts only its own sends.
    StreamReader reader(q.b.get(), 3 * 65536, 54);
    FreeCounter fc2;
    for (int i = 0; i < 3; i++) send_new(num, 65536, 54, i * 65536, fc2);
    reader.join();
    EXPECT_EQ(reader.mismatch(), -1);
    EXPECT_TRUE(process_until(num, [&] { return fc2.calls == 3; }));
    blight_zerocopy_stats s = stats_of(num);
    EXPECT_EQ(bytes_sent(s), 3u * 65536);
    EXPECT_GE(s.zerocopy_sends, 3u);
    EXPECT_EQ(s.abandoned_sends, 0u);
    EXPECT_EQ(s.completed_sends, s.zerocopy_sends);
    EXPECT_EQ(fc.calls, freed_before);
}

// The process totals count every socket once, also while sockets are being forgotten
// (blight_forget_socket) or found closed and reused (the next call on the number): no
// counter but pending_sends ever goes down.
TEST_F(ZeroCopy, ProcessTotalsNeverGoBackWhileSocketsAreForgotten) {
    std::atomic<bool> done{false};
    std::atomic<int> sockets{0};
    std::thread churn([&] {
        // 4000 sockets take about 0.1 s; the time limit is for valgrind.
        auto until = std::chrono::steady_clock::now() + std::chrono::seconds(2);
        for (int i = 0; i < 4000 && std::chrono::steady_clock::now() < until; i++) {
            Pair p = unix_pair(true);
            FreeCounter fc;
            send_new(p.a.get(), 100, 56, 0, fc);
            if (i % 2 == 0) {
                EXPECT_EQ(blight_forget_socket(p.a.get()), 0);
            }  // else closed unforgotten: the next pair gets the number, and retires it
            sockets++;
        }
        done = true;
    });
    blight_zerocopy_stats last = stats_of(-1);
    int reads = 0, backwards = 0;
    while (!done) {
        blight_zerocopy_stats s = stats_of(-1);
        reads++;
        if (bytes_sent(s) < bytes_sent(last) || s.copied_sends < last.copied_sends) {
            if (backwards++ < 3) {
                ADD_FAILURE() << "totals went back after " << sockets << " sockets: bytes " << bytes_sent(last)
                              << " -> " << bytes_sent(s) << ", copied sends " << last.copied_sends << " -> "
                              << s.copied_sends;
            }
        }
        last = s;
    }
    churn.join();
    EXPECT_EQ(backwards, 0) << "in " << reads << " reads";
    blight_zerocopy_stats end = stats_of(-1);
    EXPECT_GE(bytes_sent(end), bytes_sent(last));
}

// A forget while another thread's send waits for a peer that does not read: it must not
// wait for that send (it waited for as long as the peer did not read), and nothing may be
// lost: once the send returns, forget works and every buffer is freed once.
TEST_F(ZeroCopy, ForgetDuringABlockedSendInAnotherThreadFailsWithEbusy) {
    ChildResult res = run_in_child([] {
        Pair p = unix_pair();
        const size_t n = 8u << 20;
        FreeCounter fc;
        int send_result = 1;
        std::thread sender([&] {
            blight_buffer_id_t id = 0;
            send_result = blight_send_zerocopy(p.a.get(), new_pattern(n, 57), static_cast<ssize_t>(n),
                                               count_and_delete, &fc, &id);
            if (id != 0) blight_release_buffer(id);
        });
        // The peer reads nothing until forget has returned: the sender stays blocked.
        ::usleep(200 * 1000);
        auto t0 = std::chrono::steady_clock::now();
        int r = blight_forget_socket(p.a.get());
        double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        std::vector<unsigned char> got(n);
        int rr = blight_recv_blocking_into(p.b.get(), got.data(), static_cast<ssize_t>(n));
        sender.join();
        ZC_CHILD_CHECK(r == -EBUSY);
        ZC_CHILD_CHECK(took < 5.0);
        ZC_CHILD_CHECK(rr == 0 && send_result == 0);
        ZC_CHILD_CHECK(first_mismatch(got.data(), n, 57, 0) == -1);
        // The socket is still known; now that the send returned, forget works.
        for (int i = 0; i < 300 && fc.calls == 0; i++) blight_process_zerocopy_completions(p.a.get(), 10);
        ZC_CHILD_CHECK(blight_forget_socket(p.a.get()) == 0);
        ZC_CHILD_CHECK(fc.calls == 1);
        return 0;
    }, 30s);
    EXPECT_TRUE(res.ok()) << res.describe();
}

// Forgetting a number that was closed and given to another file forgets the closed socket:
// its pending buffers are held and counted (issue 13: before, freed), and the call says how
// many.
TEST_F(ZeroCopy, ForgettingAReusedNumberHoldsTheClosedSocketsSends) {
    for (bool reused_by_socket : {true, false}) {
        SCOPED_TRACE(reused_by_socket ? "reused by a socket" : "reused by a pipe");
        std::vector<unsigned char> data = pattern(4 * 65536, 55);
        Pair p = stuck_tcp_pair();
        FreeCounter fc;
        std::vector<blight_buffer_id_t> ids = send_stuck(p.a.get(), data, fc);
        for (blight_buffer_id_t id : ids) EXPECT_EQ(blight_release_buffer(id), 0);
        int pending = static_cast<int>(stats_of(p.a.get()).pending_sends);
        ASSERT_GE(pending, 1);
        blight_zerocopy_stats t0 = stats_of(-1);

        int num = p.a.get();
        p.a.reset();
        Pair q = tcp_pair(AF_INET);
        int pipe_fds[2] = {-1, -1};
        ASSERT_EQ(::pipe(pipe_fds), 0);
        Fd pipe_r(pipe_fds[0]), pipe_w(pipe_fds[1]);
        ASSERT_EQ(::dup2(reused_by_socket ? q.a.get() : pipe_w.get(), num), num);
        Fd reused(num);

        EXPECT_EQ(blight_forget_socket(num), pending);
        EXPECT_EQ(fc.calls, 4 - pending);
        blight_zerocopy_stats t1 = stats_of(-1);
        EXPECT_EQ(t1.abandoned_sends - t0.abandoned_sends, static_cast<uint64_t>(pending));
        EXPECT_EQ(t1.held_sends - t0.held_sends, static_cast<uint32_t>(pending));
        EXPECT_EQ(t1.pending_sends, t0.pending_sends);
        EXPECT_EQ(bytes_sent(t1), bytes_sent(t0)) << "the totals lost or doubled the closed socket";
        // Forgotten: the number is now just what it names.
        EXPECT_EQ(blight_forget_socket(num), reused_by_socket ? 0 : -ENOTSOCK);
        EXPECT_EQ(fc.calls, 4 - pending);
    }
}

TEST_F(ZeroCopy, DupToTheNumberOfALiveSocketAlsoStartsFresh) {
    // dup2 onto a live socket closes it implicitly.
    std::vector<unsigned char> data = pattern(4 * 65536, 55);
    Pair p = stuck_tcp_pair();
    Pair q = unix_pair();
    FreeCounter fc;
    std::vector<blight_buffer_id_t> ids = send_stuck(p.a.get(), data, fc);
    for (blight_buffer_id_t id : ids) EXPECT_EQ(blight_release_buffer(id), 0);
    ASSERT_LT(fc.calls, 4);
    int freed_before = fc.calls;
    ASSERT_EQ(::dup2(q.a.get(), p.a.get()), p.a.get());
    EXPECT_TRUE(all_zero(stats_of(p.a.get())));
    EXPECT_EQ(fc.calls, freed_before) << "the closed socket's sends in flight are held (issue 13)";
    // The number now names the AF_UNIX socket: sending works, with its own path.
    FreeCounter fc2;
    send_new(p.a.get(), 50000, 56, 0, fc2);
    EXPECT_EQ(read_exactly(q.b.get(), 50000), pattern(50000, 56));
    EXPECT_TRUE(process_until(p.a.get(), [&] { return fc2.calls == 1; }));
    EXPECT_EQ(stats_of(p.a.get()).zerocopy_bytes, 0u);
    EXPECT_EQ(bytes_sent(stats_of(p.a.get())), 50000u);
}

// Two descriptors of one socket (dup, or inherited): the kernel counts MSG_ZEROCOPY
// notification ids per socket, not per descriptor. A send through the second descriptor
// must not shift the ids of the first, or a completion is credited to the wrong send.
TEST_F(ZeroCopy, DupDescriptorsOfOneSocketNeverCompleteTheWrongSend) {
    std::vector<unsigned char> x = pattern(65536, 57, 0), y = pattern(65536, 57, 65536), z = pattern(65536, 57, 131072);
    Pair p = stuck_tcp_pair();
    Fd d(::dup(p.a.get()));
    ASSERT_GE(d.get(), 0);
    stats_of(d.get());
    // X through a, then Y through d, each read in full by the receiver before the next send
    // (so the kernel gives each its own notification); then Z through a, which the receiver
    // does not read: with a receive window of a few KiB, the kernel still holds most of Z.
    blight_buffer_id_t ix = 0, iy = 0, iz = 0;
    ASSERT_EQ(blight_send_zerocopy(p.a.get(), x.data(), 65536, nullptr, nullptr, &ix), 0);
    ASSERT_EQ(read_exactly(p.b.get(), 65536), x);
    ASSERT_EQ(blight_send_zerocopy(d.get(), y.data(), 65536, nullptr, nullptr, &iy), 0);
    ASSERT_EQ(read_exactly(p.b.get(), 65536), y);
    ASSERT_EQ(blight_send_zerocopy(p.a.get(), z.data(), 65536, nullptr, nullptr, &iz), 0);
    for (int i = 0; i < 300 && (blight_buffer_in_flight(ix) != 0 || blight_buffer_in_flight(iy) != 0); i++) {
        ASSERT_GE(blight_process_zerocopy_completions(p.a.get(), 50), 0);
        ASSERT_GE(blight_process_zerocopy_completions(d.get(), 50), 0);
    }
    EXPECT_EQ(blight_buffer_in_flight(ix), 0);
    EXPECT_EQ(blight_buffer_in_flight(iy), 0);
    EXPECT_GE(blight_buffer_in_flight(iz), 1) << "Z reported complete while the kernel still holds it";
    // What the API allows once in_flight is 0 must not reach the receiver.
    if (blight_buffer_in_flight(iz) == 0) std::fill(z.begin(), z.end(), 0);
    EXPECT_EQ(read_exactly(p.b.get(), 65536), pattern(65536, 57, 131072));
    EXPECT_TRUE(process_until(p.a.get(), [&] { return blight_buffer_in_flight(iz) == 0; }, 100));
    for (blight_buffer_id_t id : {ix, iy, iz}) EXPECT_EQ(blight_release_buffer(id), 0);
    for (blight_buffer_id_t id : {ix, iy, iz}) EXPECT_EQ(blight_buffer_in_flight(id), -ENOENT);
    blight_zerocopy_stats sa = stats_of(p.a.get()), sd = stats_of(d.get());
    EXPECT_EQ(bytes_sent(sa) + bytes_sent(sd), 3u * 65536);
    EXPECT_EQ(sa.pending_sends + sd.pending_sends, 0u);
}

// ---- AF_UNIX: the error queue is the data ----------------------------------------------

TEST_F(ZeroCopy, CompletionsOnUnixSocketWithUnreadDataLeaveEveryByte) {
    // A socket never used with blight_send_zerocopy, one that was (copied: seqpacket), and a
    // stream socket that was (splice, nothing pending).
    for (int type : {SOCK_STREAM, SOCK_SEQPACKET}) {
        for (bool used : {false, true}) {
            SCOPED_TRACE(std::string(type == SOCK_STREAM ? "stream" : "seqpacket") + (used ? " used" : " unused"));
            Pair p = unix_pair(false, type);
            if (used) {
                FreeCounter fc;
                send_new(p.a.get(), 1000, 60, 0, fc);
                send_new(p.a.get(), 30000, 61, 0, fc);
                EXPECT_EQ(fc.calls, type == SOCK_STREAM ? 1 : 2);
                if (type == SOCK_STREAM) {
                    EXPECT_EQ(read_exactly(p.b.get(), 1000), pattern(1000, 60));
                    EXPECT_EQ(read_exactly(p.b.get(), 30000), pattern(30000, 61));
                } else {
                    EXPECT_EQ(recv_dgram(p.b.get()), pattern(1000, 60));
                    EXPECT_EQ(recv_dgram(p.b.get()), pattern(30000, 61));
                }
                EXPECT_TRUE(process_until(p.a.get(), [&] { return fc.calls == 2; }));
            }
            std::vector<unsigned char> msg = pattern(1000, 62);
            ASSERT_EQ(::send(p.b.get(), msg.data(), msg.size(), 0), 1000);
            EXPECT_EQ(blight_process_zerocopy_completions(p.a.get(), 0), 0);
            EXPECT_EQ(blight_process_zerocopy_completions(p.a.get(), 50), 0);
            EXPECT_EQ(blight_process_zerocopy_completions(p.a.get(), -1), 0);  // nothing pending: at once
            EXPECT_EQ(inq(p.a.get()), 1000);
            EXPECT_EQ(read_exactly(p.a.get(), 1000), msg);
            EXPECT_EQ(blight_process_zerocopy_completions(p.a.get(), 0), 0);
        }
    }
}

// ---- waiting with notifications pending ------------------------------------------------

// Sends 64 KiB zero-copy on `a` (read in full by `b`) and waits (bounded) until the
// completion waits in a's error queue (POLLERR). Returns the id (released).
blight_buffer_id_t send_and_wait_for_pollerr(Pair& p, uint64_t seed, FreeCounter& fc) {
    blight_buffer_id_t id = send_new(p.a.get(), 65536, seed, 0, fc);
    EXPECT_EQ(read_exactly(p.b.get(), 65536), pattern(65536, seed));
    bool err = false;
    for (int i = 0; i < 200 && !err; i++) err = (poll_for(p.a.get(), 0, 100) & POLLERR) != 0;
    EXPECT_TRUE(err) << "no notification arrived";
    EXPECT_GE(blight_buffer_in_flight(id), 1);
    return id;
}

TEST_F(ZeroCopy, WaitIsNotFooledByPendingNotifications) {
    for (int family : {AF_INET, AF_INET6}) {
        SCOPED_TRACE(family == AF_INET ? "tcp4" : "tcp6");
        Pair p = tcp_pair(family);
        FreeCounter fc;

        // Nothing to read: a timeout, not "ready" and not an error.
        blight_buffer_id_t id = send_and_wait_for_pollerr(p, 70, fc);
        EXPECT_EQ(blight_wait_for_read(p.a.get(), 100), -EAGAIN);
        EXPECT_TRUE(process_until(p.a.get(), [&] { return fc.calls == 1; }));
        EXPECT_EQ(blight_buffer_in_flight(id), -ENOENT);

        // Writable: ready, without error.
        id = send_and_wait_for_pollerr(p, 71, fc);
        EXPECT_EQ(blight_wait_for_send(p.a.get(), 1000), 0);
        EXPECT_EQ(blight_wait_for_send(p.a.get(), 0), 0);
        EXPECT_TRUE(process_until(p.a.get(), [&] { return fc.calls == 2; }));

        // The C++ wrappers agree.
        id = send_and_wait_for_pollerr(p, 72, fc);
        errno = 0;
        EXPECT_FALSE(BlightProtocol::wait_for_read(p.a.get(), 100));
        EXPECT_EQ(errno, EAGAIN);
        id = send_and_wait_for_pollerr(p, 73, fc);
        EXPECT_TRUE(BlightProtocol::wait_for_send(p.a.get(), 1000));

        // Data and notifications both waiting: readable.
        id = send_and_wait_for_pollerr(p, 74, fc);
        ASSERT_EQ(::send(p.b.get(), "hello", 5, 0), 5);
        EXPECT_EQ(blight_wait_for_read(p.a.get(), 5000), 0);
        EXPECT_EQ(read_exactly(p.a.get(), 5), std::vector<unsigned char>({'h', 'e', 'l', 'l', 'o'}));
        EXPECT_TRUE(process_until(p.a.get(), [&] { return fc.calls == 5; }));
        EXPECT_EQ(fc.calls, 5);
        EXPECT_EQ(stats_of(p.a.get()).pending_sends, 0u);
    }
}

// POLLERR from a real error (ICMP port unreachable on a connected UDP socket) while
// notifications also wait: the waits report the error, they neither time out nor spin.
// With IP_RECVERR, the ICMP error sits in the error queue next to the notifications and
// must not be taken for one.
TEST_F(ZeroCopy, RealSocketErrorBesideNotificationsIsReported) {
    for (bool recverr : {false, true}) {
        for (int family : {AF_INET, AF_INET6}) {
            SCOPED_TRACE(std::string(family == AF_INET ? "udp4" : "udp6") + (recverr ? " IP_RECVERR" : ""));
            Pair p = udp_pair(family);
            if (recverr) {
                int on = 1;
                if (family == AF_INET) {
                    ASSERT_EQ(::setsockopt(p.a.get(), SOL_IP, IP_RECVERR, &on, sizeof on), 0);
                } else {
                    ASSERT_EQ(::setsockopt(p.a.get(), SOL_IPV6, IPV6_RECVERR, &on, sizeof on), 0);
                }
            }
            p.b.reset();  // nobody listens on that port any more
            FreeCounter fc;
            blight_buffer_id_t id = send_new(p.a.get(), 20000, 75, 0, fc, false);
            ASSERT_NE(id, 0u);
            EXPECT_GE(blight_buffer_in_flight(id), 1);
            bool err = false;
            for (int i = 0; i < 200 && !err; i++) err = (poll_for(p.a.get(), 0, 100) & POLLERR) != 0;
            ASSERT_TRUE(err);
            EXPECT_EQ(blight_wait_for_read(p.a.get(), 5000), -ECONNREFUSED);
            // More sends: each is either sent or refused, and always gets an id.
            std::vector<blight_buffer_id_t> ids = {id};
            for (int i = 0; i < 4; i++) {
                blight_buffer_id_t more = 0;
                int r = blight_send_zerocopy(p.a.get(), new_pattern(20000, 76 + i), 20000, count_and_delete, &fc, &more);
                EXPECT_TRUE(r == 0 || r == -ECONNREFUSED) << std::strerror(-r);
                EXPECT_NE(more, 0u);
                ids.push_back(more);
                ::usleep(1000);
            }
            for (blight_buffer_id_t i : ids) EXPECT_EQ(blight_release_buffer(i), 0);
            // With IP_RECVERR the later ICMP errors are in the error queue too: completion
            // processing reports them (reading them cleared SO_ERROR), and goes on.
            int reported = 0;
            for (int i = 0; i < 300 && fc.calls < 5; i++) {
                int r = blight_process_zerocopy_completions(p.a.get(), 100);
                if (r == -ECONNREFUSED && recverr) {
                    reported++;
                } else {
                    ASSERT_GE(r, 0) << std::strerror(-r);
                }
            }
            EXPECT_EQ(fc.calls, 5);
            RecordProperty(recverr ? "errors_reported_with_recverr" : "errors_reported", reported);
            blight_zerocopy_stats s = stats_of(p.a.get());
            EXPECT_EQ(s.pending_sends, 0u);
            EXPECT_EQ(s.completed_sends, s.zerocopy_sends);
            EXPECT_LE(bytes_sent(s), 5u * 20000);
            EXPECT_GE(bytes_sent(s), 20000u);
        }
    }
}

// ---- statistics ----------------------------------------------------------------------

TEST_F(ZeroCopy, LoopbackIsReportedCopiedAndTheSocketSwitchesToCopying) {
    const int kSends = 24;
    const size_t n = 65536;
    Pair p = tcp_pair(AF_INET);
    StreamReader reader(p.b.get(), kSends * n, 80);
    FreeCounter fc;
    for (int i = 0; i < kSends; i++) {
        send_new(p.a.get(), n, 80, i * n, fc);
        ASSERT_TRUE(process_until(p.a.get(), [&] { return fc.calls == i + 1; })) << i;
    }
    reader.join();
    EXPECT_EQ(reader.mismatch(), -1);
    blight_zerocopy_stats s = stats_of(p.a.get());
    EXPECT_GT(s.zerocopy_sends, 0u);
    EXPECT_GT(s.kernel_copied_sends, 0u) << "loopback always copies";
    EXPECT_GT(s.kernel_copied_bytes, 0u);
    EXPECT_LE(s.kernel_copied_sends, s.zerocopy_sends);
    EXPECT_LE(s.kernel_copied_bytes, s.zerocopy_bytes);
    EXPECT_EQ(s.path, static_cast<uint32_t>(BLIGHT_ZEROCOPY_PATH_COPY));
    EXPECT_GT(s.copied_bytes, 0u) << "after the switch, sends are copied";
    EXPECT_LT(s.zerocopy_bytes, kSends * n);
    EXPECT_EQ(bytes_sent(s), kSends * n);
    EXPECT_EQ(s.completed_sends, s.zerocopy_sends);
    EXPECT_EQ(s.pending_sends, 0u);
    EXPECT_EQ(s.splice_bytes, 0u);
}

TEST_F(ZeroCopy, ChunksBelowTheThresholdAreCopied) {
    EXPECT_EQ(blight_zerocopy_threshold(), kDefaultThreshold);
    EXPECT_EQ(blight_set_zerocopy_threshold(0), -EINVAL);
    EXPECT_EQ(blight_zerocopy_threshold(), kDefaultThreshold);

    Pair p = tcp_pair(AF_INET);
    FreeCounter fc;
    // Below the default threshold: copied, nothing in flight.
    blight_buffer_id_t id = send_new(p.a.get(), 5000, 81, 0, fc, false);
    EXPECT_EQ(blight_buffer_in_flight(id), 0);
    EXPECT_EQ(blight_release_buffer(id), 0);
    EXPECT_EQ(fc.calls, 1);
    EXPECT_EQ(read_exactly(p.b.get(), 5000), pattern(5000, 81));
    blight_zerocopy_stats s = stats_of(p.a.get());
    EXPECT_EQ(s.copied_bytes, 5000u);
    EXPECT_GE(s.copied_sends, 1u);
    EXPECT_EQ(s.zerocopy_bytes, 0u);

    // A raised threshold copies a 64 KiB buffer too.
    ASSERT_EQ(blight_set_zerocopy_threshold(1 << 20), 0);
    EXPECT_EQ(blight_zerocopy_threshold(), 1u << 20);
    id = send_new(p.a.get(), 65536, 82, 0, fc, false);
    EXPECT_EQ(blight_buffer_in_flight(id), 0);
    EXPECT_EQ(read_exactly(p.b.get(), 65536), pattern(65536, 82));
    EXPECT_EQ(blight_release_buffer(id), 0);
    EXPECT_EQ(fc.calls, 2);
    s = stats_of(p.a.get());
    EXPECT_EQ(s.copied_bytes, 5000u + 65536);
    EXPECT_EQ(s.zerocopy_bytes, 0u);

    // Back to the default: 64 KiB goes zero-copy, and a tail below the threshold is copied.
    ASSERT_EQ(blight_set_zerocopy_threshold(kDefaultThreshold), 0);
    StreamReader reader(p.b.get(), 65536 + 15000, 83);
    send_new(p.a.get(), 65536, 83, 0, fc);
    send_new(p.a.get(), 15000, 83, 65536, fc);
    reader.join();
    EXPECT_EQ(reader.mismatch(), -1);
    EXPECT_TRUE(process_until(p.a.get(), [&] { return fc.calls == 4; }));
    s = stats_of(p.a.get());
    EXPECT_GE(s.zerocopy_sends, 2u);
    EXPECT_GT(s.zerocopy_bytes, 0u);
    EXPECT_EQ(bytes_sent(s), 5000u + 65536 + 65536 + 15000);
    EXPECT_EQ(s.completed_sends, s.zerocopy_sends);
}

TEST_F(ZeroCopy, ProcessTotalsIncludeForgottenSockets) {
    Pair p = tcp_pair(AF_INET6);
    Pair u = unix_pair();
    stats_of(p.a.get());
    stats_of(u.a.get());
    blight_zerocopy_stats t0 = stats_of(-1);
    EXPECT_EQ(t0.path, static_cast<uint32_t>(BLIGHT_ZEROCOPY_PATH_NONE));
    FreeCounter fc;
    StreamReader reader(p.b.get(), 3 * 65536, 90);
    for (int i = 0; i < 3; i++) send_new(p.a.get(), 65536, 90, i * 65536, fc);
    StreamReader ureader(u.b.get(), 200000, 91);
    send_new(u.a.get(), 200000, 91, 0, fc);
    reader.join();
    ureader.join();
    EXPECT_EQ(reader.mismatch(), -1);
    EXPECT_EQ(ureader.mismatch(), -1);
    blight_zerocopy_stats sp = stats_of(p.a.get()), su = stats_of(u.a.get());
    int abandoned = blight_forget_socket(p.a.get());
    ASSERT_GE(abandoned, 0);
    int abandoned_u = blight_forget_socket(u.a.get());
    ASSERT_GE(abandoned_u, 0);
    EXPECT_TRUE(all_zero(stats_of(p.a.get())));
    EXPECT_TRUE(all_zero(stats_of(u.a.get())));
    EXPECT_EQ(fc.calls, 4);
    blight_zerocopy_stats t1 = stats_of(-1);
    EXPECT_EQ(bytes_sent(t1) - bytes_sent(t0), 3u * 65536 + 200000);
    EXPECT_EQ(t1.zerocopy_bytes - t0.zerocopy_bytes, sp.zerocopy_bytes + su.zerocopy_bytes);
    EXPECT_EQ(t1.zerocopy_sends - t0.zerocopy_sends, sp.zerocopy_sends + su.zerocopy_sends);
    EXPECT_EQ(t1.splice_bytes - t0.splice_bytes, sp.splice_bytes + su.splice_bytes);
    EXPECT_EQ(t1.copied_bytes - t0.copied_bytes, sp.copied_bytes + su.copied_bytes);
    EXPECT_EQ(t1.abandoned_sends - t0.abandoned_sends, static_cast<uint64_t>(abandoned + abandoned_u));
    EXPECT_EQ(t1.completed_sends - t0.completed_sends + (t1.abandoned_sends - t0.abandoned_sends),
              sp.zerocopy_sends + sp.splice_sends + su.zerocopy_sends + su.splice_sends);
    EXPECT_EQ(t1.pending_sends, t0.pending_sends);
    EXPECT_EQ(t1.path, static_cast<uint32_t>(BLIGHT_ZEROCOPY_PATH_NONE));
}

// ---- free_fn calling back into the library ---------------------------------------------

struct Reentrant {
    int fd = -1;
    blight_buffer_id_t self = 0, other = 0;
    std::atomic<int> calls{0};
    int in_flight_self = 1, release_other = 1, release_self = 1, process = -1, stats_fd = 1, stats_all = 1;
    size_t threshold = 0;
};

extern "C" void reentrant_free(unsigned char* data, size_t, void* user) {
    auto* r = static_cast<Reentrant*>(user);
    delete[] data;
    blight_zerocopy_stats s;
    r->in_flight_self = blight_buffer_in_flight(r->self);
    r->release_self = blight_release_buffer(r->self);
    r->release_other = blight_release_buffer(r->other);
    r->process = blight_process_zerocopy_completions(r->fd, 0);
    r->stats_fd = blight_get_zerocopy_stats(r->fd, &s);
    r->stats_all = blight_get_zerocopy_stats(-1, &s);
    r->threshold = blight_zerocopy_threshold();
    r->calls++;
}

TEST_F(ZeroCopy, FreeFnMayCallBackIntoTheLibrary) {
    // A deadlock cannot be interrupted: run in a child, with a bounded wait.
    ChildResult res = run_in_child([] {
        Pair p = tcp_pair(AF_INET);
        StreamReader reader(p.b.get(), 4 * 65536, 100);
        FreeCounter others;
        // A is released before its completion: its free_fn runs inside completion processing.
        Reentrant a;
        a.fd = p.a.get();
        int r = blight_send_zerocopy(p.a.get(), new_pattern(65536, 100, 0), 65536, reentrant_free, &a, &a.self);
        ZC_CHILD_CHECK(r == 0);
        a.other = send_new(p.a.get(), 65536, 100, 65536, others, false);
        ZC_CHILD_CHECK(blight_buffer_in_flight(a.self) >= 1);
        ZC_CHILD_CHECK(blight_release_buffer(a.self) == 0);
        // C is released after its completion: its free_fn runs inside blight_release_buffer.
        Reentrant c;
        c.fd = p.a.get();
        r = blight_send_zerocopy(p.a.get(), new_pattern(65536, 100, 2 * 65536), 65536, reentrant_free, &c, &c.self);
        ZC_CHILD_CHECK(r == 0);
        c.other = send_new(p.a.get(), 65536, 100, 3 * 65536, others, false);
        reader.join();
        ZC_CHILD_CHECK(reader.mismatch() == -1);
        for (int i = 0; i < 300 && (a.calls == 0 || blight_buffer_in_flight(c.self) != 0); i++)
            ZC_CHILD_CHECK(blight_process_zerocopy_completions(p.a.get(), 100) >= 0);
        ZC_CHILD_CHECK(a.calls == 1);
        ZC_CHILD_CHECK(blight_buffer_in_flight(c.self) == 0);
        ZC_CHILD_CHECK(c.calls == 0);
        ZC_CHILD_CHECK(blight_release_buffer(c.self) == 0);
        ZC_CHILD_CHECK(c.calls == 1);
        for (Reentrant* x : {&a, &c}) {
            ZC_CHILD_CHECK(x->in_flight_self == -ENOENT);
            ZC_CHILD_CHECK(x->release_self == -ENOENT);
            ZC_CHILD_CHECK(x->release_other == 0);
            ZC_CHILD_CHECK(x->process >= 0);
            ZC_CHILD_CHECK(x->stats_fd == 0);
            ZC_CHILD_CHECK(x->stats_all == 0);
            ZC_CHILD_CHECK(x->threshold == kDefaultThreshold);
        }
        for (int i = 0; i < 300 && others.calls < 2; i++)
            ZC_CHILD_CHECK(blight_process_zerocopy_completions(p.a.get(), 100) >= 0);
        ZC_CHILD_CHECK(others.calls == 2);
        ZC_CHILD_CHECK(a.calls == 1 && c.calls == 1);
        return 0;
    }, 60s);
    EXPECT_TRUE(res.ok()) << res.describe();
}

// ---- the C++ wrapper -----------------------------------------------------------------

TEST_F(ZeroCopy, CppSendZerocopyDeletesNewArrayMemory) {
    // The library delete[]s these buffers; run under ASan to catch a mismatched free.
    for (int family : {AF_INET, AF_UNIX}) {
        Pair p = family == AF_UNIX ? unix_pair() : tcp_pair(AF_INET);
        const size_t sizes[] = {100, 65536, 300000};
        size_t total = 0;
        for (size_t n : sizes) total += n;
        StreamReader reader(p.b.get(), total, 110);
        std::vector<blight_buffer_id_t> ids;
        size_t off = 0;
        for (size_t n : sizes) {
            std::optional<blight_buffer_id_t> id = BlightProtocol::send_zerocopy(p.a.get(), new_pattern(n, 110, off), n);
            ASSERT_TRUE(id.has_value()) << std::strerror(errno);
            ASSERT_NE(*id, 0u);
            ids.push_back(*id);
            off += n;
        }
        reader.join();
        EXPECT_EQ(reader.mismatch(), -1);
        for (blight_buffer_id_t id : ids) EXPECT_EQ(blight_release_buffer(id), 0);
        EXPECT_TRUE(process_until(p.a.get(), [&] {
            for (blight_buffer_id_t id : ids)
                if (blight_buffer_in_flight(id) != -ENOENT) return false;
            return true;
        }));
        EXPECT_EQ(stats_of(p.a.get()).pending_sends, 0u);
    }
    // Bad arguments: nothing registered, the caller still owns (and deletes) the memory.
    Pair p = unix_pair();
    unsigned char* mine = new unsigned char[16];
    errno = 0;
    EXPECT_FALSE(BlightProtocol::send_zerocopy(p.a.get(), mine, 0).has_value());
    EXPECT_EQ(errno, EINVAL);
    errno = 0;
    EXPECT_FALSE(BlightProtocol::send_zerocopy(-1, mine, 16).has_value());
    EXPECT_EQ(errno, EBADF);
    delete[] mine;
    // A closed peer: EPIPE (no SIGPIPE), and the library still deletes the buffer (the
    // wrapper released the id).
    ChildResult res = run_in_child([] {
        Pair p = unix_pair();
        p.b.reset();
        errno = 0;
        ZC_CHILD_CHECK(!BlightProtocol::send_zerocopy(p.a.get(), new_pattern(65536, 111), 65536).has_value());
        ZC_CHILD_CHECK(errno == EPIPE);
        for (int i = 0; i < 100 && stats_of(p.a.get()).pending_sends != 0; i++)
            ZC_CHILD_CHECK(blight_process_zerocopy_completions(p.a.get(), 100) >= 0);
        ZC_CHILD_CHECK(stats_of(p.a.get()).pending_sends == 0);
        return 0;
    }, 60s);
    EXPECT_TRUE(res.ok()) << res.describe();
    // The kernel refusing the send itself with EINVAL (UDP GSO with 2000 segments) after
    // the buffer was registered: the library owns it, so the wrapper must not say EINVAL,
    // which tells the caller to delete[] it (a double free). It says EIO.
    Pair udp = udp_pair(AF_INET);
    Fd& tx = udp.a;
    int gso = 10;
    if (::setsockopt(tx.get(), SOL_UDP, UDP_SEGMENT, &gso, sizeof gso) == 0) {
        blight_set_zerocopy_threshold(1024);
        errno = 0;
        std::optional<blight_buffer_id_t> id = BlightProtocol::send_zerocopy(tx.get(), new_pattern(20000, 112), 20000);
        EXPECT_FALSE(id.has_value());
        EXPECT_EQ(errno, EIO) << "errno " << errno << " would make the caller delete[] memory the library owns";
        for (int i = 0; i < 50 && stats_of(tx.get()).pending_sends != 0; i++)
            blight_process_zerocopy_completions(tx.get(), 20);
        EXPECT_EQ(stats_of(tx.get()).pending_sends, 0u);
        EXPECT_EQ(blight_forget_socket(tx.get()), 0);
    }
}

// ---- a peer that goes away mid-send ----------------------------------------------------

// In a child with SIGPIPE at its default disposition: the receiver reads a little, then
// closes; the send must fail with `expected` (or `also`), not kill the process, set *id,
// and free the buffer exactly once after release.
int peer_closes_mid_send(Pair p, int expected, int also) {
    const size_t n = 8u << 20;
    FreeCounter fc;
    std::thread closer([&] {
        std::vector<unsigned char> got = read_exactly(p.b.get(), 4096);
        if (got != pattern(4096, 120)) fprintf(stderr, "first bytes corrupted\n");
        p.b.reset();
    });
    blight_buffer_id_t id = 0;
    int r = blight_send_zerocopy(p.a.get(), new_pattern(n, 120), n, count_and_delete, &fc, &id);
    closer.join();
    fprintf(stderr, "send result %d (%s)\n", r, std::strerror(-r));
    ZC_CHILD_CHECK(r == -expected || r == -also);
    ZC_CHILD_CHECK(id != 0);
    ZC_CHILD_CHECK(fc.calls == 0);
    ZC_CHILD_CHECK(blight_release_buffer(id) == 0);
    for (int i = 0; i < 100 && fc.calls == 0; i++)
        ZC_CHILD_CHECK(blight_process_zerocopy_completions(p.a.get(), 100) >= 0);
    if (fc.calls == 0) {
        ZC_CHILD_CHECK(blight_forget_socket(p.a.get()) >= 0);
    }
    ZC_CHILD_CHECK(fc.calls == 1);
    ZC_CHILD_CHECK(fc.bytes == n);
    ZC_CHILD_CHECK(blight_release_buffer(id) == -ENOENT);
    ZC_CHILD_CHECK(blight_process_zerocopy_completions(p.a.get(), 0) >= 0);
    ZC_CHILD_CHECK(fc.calls == 1);
    return 0;
}

TEST_F(ZeroCopy, TcpPeerClosingMidSendIsAnErrorNotSigpipe) {
    // A peer closing with unread data resets the connection: the kernel reports EPIPE or,
    // first, ECONNRESET. Either is a clean failure; SIGPIPE is not.
    for (int family : {AF_INET, AF_INET6}) {
        ChildResult res = run_in_child([family] { return peer_closes_mid_send(tcp_pair_sized(family, 65536, 65536), EPIPE, ECONNRESET); }, 60s);
        EXPECT_TRUE(res.ok()) << res.describe();
    }
}

TEST_F(ZeroCopy, UnixPeerClosingMidCopySendIsEpipeNotSigpipe) {
    // The copying path (threshold above the message size) on AF_UNIX: strictly EPIPE.
    ChildResult res = run_in_child([] {
        if (blight_set_zerocopy_threshold(64u << 20) != 0) return 99;
        return peer_closes_mid_send(unix_pair(), EPIPE, EPIPE);
    }, 60s);
    EXPECT_TRUE(res.ok()) << res.describe();
}

}  // namespace
