// The AF_UNIX stream path of blight_send_zerocopy (issue 7): vmsplice + splice, with
// completion inferred from SIOCOUTQ. The safety proof: a buffer is never reported
// complete (freed, or in_flight == 0) while the receiver has not read all of it, and
// changing it afterwards never changes what the receiver reads.
#include <gtest/gtest.h>

#include <sys/ioctl.h>
#include <sys/mman.h>

#include <memory>

#include "zc_util.h"

using namespace zc_test;

namespace {

// Asks for a send buffer of `want` bytes on `fd`; returns what the kernel granted.
int grow_sndbuf(int fd, int want) {
    ::setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &want, sizeof want);
    return sockopt_int(fd, SOL_SOCKET, SO_SNDBUF);
}

// Reads exactly n bytes (each wait bounded to 20 s); returns fewer on EOF or a stall.
std::vector<unsigned char> read_bounded(int fd, size_t n) {
    std::vector<unsigned char> out(n);
    size_t got = 0;
    while (got < n) {
        if (poll_for(fd, POLLIN, 20000) == 0) break;
        ssize_t r = ::recv(fd, out.data() + got, n - got, MSG_DONTWAIT);
        if (r == 0) break;
        if (r < 0) {
            if (errno == EINTR || errno == EAGAIN) continue;
            break;
        }
        got += static_cast<size_t>(r);
    }
    out.resize(got);
    return out;
}

class Splice : public ThresholdTest {};

// ---- the path is taken, data arrives intact ----------------------------------------------

struct SizeCase {
    size_t size;
    bool nonblocking;
};

class SpliceIntegrity : public ThresholdTest, public ::testing::WithParamInterface<SizeCase> {};

TEST_P(SpliceIntegrity, LargeMessagesGoBySpliceAndArriveIntact) {
    const SizeCase& c = GetParam();
    Pair p = unix_pair(c.nonblocking);
    const int kMessages = 2;
    const size_t total = kMessages * c.size;
    const uint64_t seed = c.size + c.nonblocking;
    StreamReader reader(p.b.get(), total, seed);
    FreeCounter fc;
    std::vector<blight_buffer_id_t> ids;
    for (int i = 0; i < kMessages; i++) {
        blight_buffer_id_t id = 0;
        int r = blight_send_zerocopy(p.a.get(), new_pattern(c.size, seed, i * c.size), c.size, count_and_delete, &fc,
                                     &id);
        ASSERT_EQ(r, 0) << std::strerror(-r);
        ASSERT_NE(id, 0u);
        ids.push_back(id);
        EXPECT_EQ(blight_release_buffer(id), 0);
    }
    reader.join();
    EXPECT_EQ(reader.error(), "");
    EXPECT_EQ(reader.received(), total);
    EXPECT_EQ(reader.mismatch(), -1);
    EXPECT_TRUE(process_until(p.a.get(), [&] { return fc.calls == kMessages; }));
    EXPECT_EQ(fc.calls, kMessages);
    EXPECT_EQ(fc.bytes, total);
    for (blight_buffer_id_t id : ids) EXPECT_EQ(blight_buffer_in_flight(id), -ENOENT);
    blight_zerocopy_stats s = stats_of(p.a.get());
    EXPECT_EQ(s.path, static_cast<uint32_t>(BLIGHT_ZEROCOPY_PATH_SPLICE));
    EXPECT_GT(s.splice_bytes, 0u);
    EXPECT_GT(s.splice_sends, 0u);
    EXPECT_EQ(s.zerocopy_bytes, 0u);
    EXPECT_EQ(s.zerocopy_sends, 0u);
    EXPECT_EQ(s.splice_bytes + s.copied_bytes, total);
    EXPECT_EQ(bytes_sent(s), total);
    EXPECT_EQ(s.completed_sends, s.splice_sends);
    EXPECT_EQ(s.pending_sends, 0u);
    EXPECT_EQ(s.abandoned_sends, 0u);
    // The pipe's whole content went to the socket: at most the tails below the threshold
    // were copied.
    EXPECT_LT(s.copied_bytes, kMessages * kDefaultThreshold);
}

INSTANTIATE_TEST_SUITE_P(Sizes, SpliceIntegrity,
                         ::testing::Values(SizeCase{64 << 10, false}, SizeCase{64 << 10, true},
                                           SizeCase{1 << 20, false}, SizeCase{1 << 20, true},
                                           SizeCase{10 << 20, false}, SizeCase{10 << 20, true},
                                           SizeCase{(1 << 20) + 4097, false}),
                         [](const ::testing::TestParamInfo<SizeCase>& i) {
                             return std::to_string(i.param.size) + (i.param.nonblocking ? "_nonblocking" : "_blocking");
                         });

TEST_F(Splice, SmallMessagesBelowTheThresholdAreCopied) {
    Pair p = unix_pair(true);
    FreeCounter fc;
    size_t total = 0;
    uint64_t off = 0;
    for (size_t n : {size_t(1), size_t(1000), size_t(5000), kDefaultThreshold - 1}) {
        blight_buffer_id_t id = 0;
        ASSERT_EQ(blight_send_zerocopy(p.a.get(), new_pattern(n, 7, off), n, count_and_delete, &fc, &id), 0);
        EXPECT_EQ(blight_buffer_in_flight(id), 0);  // copied: nothing for the kernel to hold
        int before = fc.calls;
        EXPECT_EQ(blight_release_buffer(id), 0);
        EXPECT_EQ(fc.calls, before + 1);
        total += n;
        off += n;
    }
    blight_zerocopy_stats s = stats_of(p.a.get());
    EXPECT_EQ(s.copied_bytes, total);
    EXPECT_EQ(s.copied_sends, 4u);
    EXPECT_EQ(s.splice_bytes, 0u);
    EXPECT_EQ(s.splice_sends, 0u);
    EXPECT_EQ(s.pending_sends, 0u);
    EXPECT_EQ(read_bounded(p.b.get(), total), pattern(total, 7));

    // A raised threshold copies large messages too.
    ASSERT_EQ(blight_set_zerocopy_threshold(1 << 20), 0);
    StreamReader reader(p.b.get(), 256 << 10, 8);
    blight_buffer_id_t id = 0;
    ASSERT_EQ(blight_send_zerocopy(p.a.get(), new_pattern(256 << 10, 8), 256 << 10, count_and_delete, &fc, &id), 0);
    EXPECT_EQ(blight_buffer_in_flight(id), 0);
    EXPECT_EQ(blight_release_buffer(id), 0);
    EXPECT_EQ(fc.calls, 5);
    reader.join();
    EXPECT_EQ(reader.mismatch(), -1);
    s = stats_of(p.a.get());
    EXPECT_EQ(s.copied_bytes, total + (256 << 10));
    EXPECT_EQ(s.splice_bytes, 0u);
}

// ---- the safety proof ----------------------------------------------------------------------

// What the receiver had read when a buffer's free_fn ran.
struct FreeWitness {
    const std::atomic<size_t>* bytes_read = nullptr;
    std::atomic<int> calls{0};
    std::atomic<size_t> read_at_free{0};
};

extern "C" void witness_free(unsigned char* data, size_t, void* user) {
    auto* w = static_cast<FreeWitness*>(user);
    w->read_at_free = w->bytes_read->load();
    w->calls++;
    delete[] data;
}

TEST_F(Splice, BufferIsNeverCompleteBeforeTheReceiverReadItAll) {
    Pair p = unix_pair();
    // The whole message must fit in the socket while nobody reads.
    int sndbuf = grow_sndbuf(p.a.get(), 4 << 20);
    const size_t n = std::min<size_t>(256 << 10, static_cast<size_t>(sndbuf) / 2);
    RecordProperty("message_bytes", static_cast<int>(n));
    ASSERT_GE(n, 4 * kDefaultThreshold);

    std::atomic<size_t> bytes_read{0};
    FreeWitness w;
    w.bytes_read = &bytes_read;
    blight_buffer_id_t id = 0;
    ASSERT_EQ(blight_send_zerocopy(p.a.get(), new_pattern(n, 20), n, witness_free, &w, &id), 0);
    ASSERT_NE(id, 0u);
    blight_zerocopy_stats s = stats_of(p.a.get());
    ASSERT_EQ(s.path, static_cast<uint32_t>(BLIGHT_ZEROCOPY_PATH_SPLICE));
    ASSERT_GT(s.splice_bytes, 0u);
    EXPECT_GE(blight_buffer_in_flight(id), 1);

    // Released, but the receiver has read nothing: not complete.
    EXPECT_EQ(blight_release_buffer(id), 0);
    EXPECT_EQ(w.calls, 0);
    EXPECT_EQ(blight_process_zerocopy_completions(p.a.get(), 50), 0);
    EXPECT_EQ(blight_process_zerocopy_completions(p.a.get(), 0), 0);
    EXPECT_EQ(w.calls, 0);
    EXPECT_GE(blight_buffer_in_flight(id), 1);

    // One byte at a time; after every byte, completions are processed.
    for (size_t i = 0; i < n; i++) {
        unsigned char c;
        ASSERT_NE(poll_for(p.b.get(), POLLIN, 20000), 0) << "stalled at byte " << i;
        ASSERT_EQ(::recv(p.b.get(), &c, 1, MSG_DONTWAIT), 1) << i;
        ASSERT_EQ(c, pattern_byte(20, i)) << i;
        bytes_read = i + 1;
        ASSERT_GE(blight_process_zerocopy_completions(p.a.get(), 0), 0);
        if (w.calls != 0) {
            ASSERT_EQ(w.read_at_free.load(), n) << "freed after the receiver read only " << w.read_at_free << " of "
                                                 << n << " bytes";
        } else if (i + 1 < n) {
            ASSERT_GE(blight_buffer_in_flight(id), 1) << i;
        }
    }
    EXPECT_TRUE(process_until(p.a.get(), [&] { return w.calls != 0; }));
    EXPECT_EQ(w.calls, 1);
    EXPECT_EQ(w.read_at_free.load(), n);
    EXPECT_EQ(blight_buffer_in_flight(id), -ENOENT);
    EXPECT_EQ(blight_process_zerocopy_completions(p.a.get(), 0), 0);
    EXPECT_EQ(w.calls, 1);
    s = stats_of(p.a.get());
    EXPECT_EQ(s.pending_sends, 0u);
    EXPECT_EQ(s.completed_sends, s.splice_sends);
}

// Small sends on a socket with nothing in flight take the cheap path (issue 13): copied
// without the send lock and not counted in the splice position. A buffer spliced after
// unread small copies must still complete only once the receiver read past its last byte.
TEST_F(Splice, BufferSplicedAfterUnreadSmallCopiesCompletesOnlyAfterItsLastByte) {
    Pair p = unix_pair();
    int sndbuf = grow_sndbuf(p.a.get(), 4 << 20);
    const size_t n = std::min<size_t>(128 << 10, static_cast<size_t>(sndbuf) / 4);
    ASSERT_GE(n, 4 * kDefaultThreshold);
    FreeCounter fc;
    const size_t kSmall = 100, kCopies = 50;
    for (size_t i = 0; i < kCopies; i++) send_new(p.a.get(), kSmall, 21, i * kSmall, fc);
    EXPECT_EQ(fc.calls, static_cast<int>(kCopies)) << "copies are freed at release";
    const size_t before = kCopies * kSmall;

    std::atomic<size_t> bytes_read{0};
    FreeWitness w;
    w.bytes_read = &bytes_read;
    blight_buffer_id_t id = 0;
    ASSERT_EQ(blight_send_zerocopy(p.a.get(), new_pattern(n, 21, before), n, witness_free, &w, &id), 0);
    ASSERT_EQ(blight_release_buffer(id), 0);
    ASSERT_GT(stats_of(p.a.get()).splice_bytes, 0u);
    EXPECT_EQ(blight_process_zerocopy_completions(p.a.get(), 20), 0);
    EXPECT_EQ(w.calls, 0);
    const size_t total = before + n;
    for (size_t got = 0; got < total;) {
        unsigned char buf[7];
        ASSERT_NE(poll_for(p.b.get(), POLLIN, 20000), 0) << "stalled at byte " << got;
        ssize_t r = ::recv(p.b.get(), buf, std::min(sizeof buf, total - got), MSG_DONTWAIT);
        ASSERT_GT(r, 0) << got;
        for (ssize_t k = 0; k < r; k++) ASSERT_EQ(buf[k], pattern_byte(21, got + k)) << got + k;
        got += static_cast<size_t>(r);
        bytes_read = got;
        ASSERT_GE(blight_process_zerocopy_completions(p.a.get(), 0), 0);
        if (w.calls != 0) {
            ASSERT_EQ(w.read_at_free.load(), total) << "freed after the receiver read " << w.read_at_free << " of "
                                                     << total << " bytes";
        }
    }
    EXPECT_TRUE(process_until(p.a.get(), [&] { return w.calls != 0; }));
    EXPECT_EQ(w.read_at_free.load(), total);
}

// Forgetting a socket never hands back memory the kernel may still read (issue 13): an
// unread spliced buffer is held after blight_forget_socket, and freed only once the peer
// has read it, or closed, and the socket is seen again (here: the same descriptor, still
// open). Before, it was freed after forget's 100 ms, while the peer could still read it.
TEST_F(Splice, ForgottenSocketsUnreadBufferIsHeldUntilThePeerReadsOrCloses) {
    for (bool peer_reads : {true, false}) {
        SCOPED_TRACE(peer_reads ? "the peer reads" : "the peer closes");
        Pair p = unix_pair();
        const size_t n = 64 << 10;
        std::atomic<size_t> bytes_read{0};
        FreeWitness w;
        w.bytes_read = &bytes_read;
        blight_zerocopy_stats t0 = stats_of(-1);
        blight_buffer_id_t id = 0;
        ASSERT_EQ(blight_send_zerocopy(p.a.get(), new_pattern(n, 22), n, witness_free, &w, &id), 0);
        ASSERT_EQ(blight_release_buffer(id), 0);
        ASSERT_GT(stats_of(p.a.get()).splice_bytes, 0u);
        int held = blight_forget_socket(p.a.get());
        EXPECT_GE(held, 1);
        EXPECT_EQ(w.calls, 0) << "freed while the peer had not read it";
        EXPECT_GE(blight_buffer_in_flight(id), 1);
        blight_zerocopy_stats t1 = stats_of(-1);
        EXPECT_EQ(t1.held_sends - t0.held_sends, static_cast<uint32_t>(held));
        ::usleep(150 * 1000);
        EXPECT_EQ(blight_process_zerocopy_completions(p.a.get(), 0), 0) << "taken over, but not read yet";
        EXPECT_EQ(w.calls, 0);
        if (peer_reads) {
            EXPECT_EQ(read_bounded(p.b.get(), n), pattern(n, 22));
            bytes_read = n;
        } else {
            p.b.reset();
        }
        EXPECT_TRUE(process_until(p.a.get(), [&] { return w.calls != 0; }));
        EXPECT_EQ(w.calls, 1);
        if (peer_reads) {
            EXPECT_EQ(w.read_at_free.load(), n);
        }
        EXPECT_EQ(blight_buffer_in_flight(id), -ENOENT);
        blight_zerocopy_stats t2 = stats_of(-1);
        EXPECT_EQ(t2.held_sends, t0.held_sends);
        EXPECT_EQ(t2.pending_sends, t0.pending_sends);
        EXPECT_EQ(blight_forget_socket(p.a.get()), 0);
    }
}

// A peer that read everything, or closed, before the forget: nothing is held.
TEST_F(Splice, ForgetAfterThePeerReadOrClosedHoldsNothing) {
    for (bool peer_reads : {true, false}) {
        SCOPED_TRACE(peer_reads ? "the peer read" : "the peer closed");
        Pair p = unix_pair();
        const size_t n = 64 << 10;
        FreeCounter fc;
        send_new(p.a.get(), n, 23, 0, fc);
        if (peer_reads) {
            EXPECT_EQ(read_bounded(p.b.get(), n), pattern(n, 23));
        } else {
            p.b.reset();
        }
        EXPECT_EQ(blight_forget_socket(p.a.get()), 0);
        EXPECT_EQ(fc.calls, 1);
    }
}

TEST_F(Splice, EachOfManyBuffersCompletesOnlyAfterItsLastByteWasRead) {
    // 16 spliced buffers with 100-byte copied messages between them; read in 7-byte
    // pieces. Each buffer's free_fn must see the receiver past that buffer's last byte.
    Pair p = unix_pair();
    int sndbuf = grow_sndbuf(p.a.get(), 4 << 20);
    const size_t kBig = 16384, kSmall = 100;
    int count = static_cast<int>(std::min<size_t>(16, static_cast<size_t>(sndbuf) / 2 / (kBig + kSmall + 1024)));
    ASSERT_GE(count, 4);
    std::atomic<size_t> bytes_read{0};
    std::vector<std::unique_ptr<FreeWitness>> w;
    std::vector<size_t> end;
    FreeCounter small;
    size_t off = 0;
    for (int i = 0; i < count; i++) {
        w.push_back(std::make_unique<FreeWitness>());
        w.back()->bytes_read = &bytes_read;
        blight_buffer_id_t id = 0;
        ASSERT_EQ(blight_send_zerocopy(p.a.get(), new_pattern(kBig, 21, off), kBig, witness_free, w.back().get(), &id), 0);
        off += kBig;
        end.push_back(off);
        EXPECT_GE(blight_buffer_in_flight(id), 1);
        EXPECT_EQ(blight_release_buffer(id), 0);
        ASSERT_EQ(blight_send_zerocopy(p.a.get(), new_pattern(kSmall, 21, off), kSmall, count_and_delete, &small, &id), 0);
        off += kSmall;
        EXPECT_EQ(blight_release_buffer(id), 0);
        EXPECT_EQ(small.calls, i + 1);  // copied: freed at release
    }
    const size_t total = off;
    blight_zerocopy_stats s = stats_of(p.a.get());
    EXPECT_EQ(s.splice_bytes, count * kBig);
    EXPECT_EQ(s.copied_bytes, count * kSmall);
    for (auto& x : w) EXPECT_EQ(x->calls, 0);
    EXPECT_EQ(blight_process_zerocopy_completions(p.a.get(), 20), 0);

    size_t read_when_first_freed = 0;
    std::vector<unsigned char> buf(7);
    while (bytes_read < total) {
        size_t want = std::min<size_t>(7, total - bytes_read);
        ASSERT_NE(poll_for(p.b.get(), POLLIN, 20000), 0) << "stalled at " << bytes_read;
        ssize_t r = ::recv(p.b.get(), buf.data(), want, MSG_DONTWAIT);
        ASSERT_GT(r, 0);
        ASSERT_EQ(first_mismatch(buf.data(), static_cast<size_t>(r), 21, bytes_read), -1) << "at " << bytes_read;
        bytes_read += static_cast<size_t>(r);
        ASSERT_GE(blight_process_zerocopy_completions(p.a.get(), 0), 0);
        for (int i = 0; i < count; i++) {
            if (w[i]->calls != 0) {
                ASSERT_GE(w[i]->read_at_free.load(), end[i]) << "buffer " << i << " freed early";
                if (read_when_first_freed == 0) read_when_first_freed = bytes_read;
            }
        }
    }
    // Completions are not all deferred to the end: the first buffer was freed while most
    // of the stream was still unread.
    EXPECT_GT(read_when_first_freed, 0u);
    EXPECT_LE(read_when_first_freed, end[count - 2]);
    EXPECT_TRUE(process_until(p.a.get(), [&] {
        for (auto& x : w)
            if (x->calls == 0) return false;
        return true;
    }));
    for (int i = 0; i < count; i++) {
        EXPECT_EQ(w[i]->calls, 1) << i;
        EXPECT_GE(w[i]->read_at_free.load(), end[i]) << i;
    }
    EXPECT_EQ(small.calls, count);
}

// Overwrites each buffer (free_fn == NULL: the caller keeps the memory) as soon as the
// library says no send of it is in flight; the receiver must still read the original.
class SpliceOverwrite : public ThresholdTest, public ::testing::WithParamInterface<bool> {};

TEST_P(SpliceOverwrite, ChangingABufferAfterCompletionNeverChangesWhatIsRead) {
    const bool nonblocking = GetParam();
    Pair p = unix_pair(nonblocking);  // default buffer: the sender blocks on a full socket
    const int kMessages = 8;
    const size_t kSize = 64 << 10;
    std::vector<std::vector<unsigned char>> bufs;
    for (int i = 0; i < kMessages; i++) bufs.push_back(pattern(kSize, 22, i * kSize));
    std::vector<std::atomic<blight_buffer_id_t>> ids(kMessages);
    for (auto& id : ids) id = 0;
    std::atomic<int> send_errors{0};
    std::thread sender([&] {
        for (int i = 0; i < kMessages; i++) {
            blight_buffer_id_t id = 0;
            int r = blight_send_zerocopy(p.a.get(), bufs[i].data(), kSize, nullptr, nullptr, &id);
            if (r != 0) send_errors++;
            ids[i] = id;  // published once the send returned
        }
    });
    const size_t total = kMessages * kSize;
    std::vector<unsigned char> got;
    got.reserve(total);
    std::vector<bool> overwritten(kMessages, false);
    int overwritten_early = 0;
    std::vector<unsigned char> chunk(4093);
    bool ok = true;
    while (ok && got.size() < total) {
        if (poll_for(p.b.get(), POLLIN, 20000) == 0) break;
        ssize_t r = ::recv(p.b.get(), chunk.data(), std::min(chunk.size(), total - got.size()), MSG_DONTWAIT);
        if (r <= 0) {
            if (r < 0 && (errno == EAGAIN || errno == EINTR)) continue;
            break;
        }
        got.insert(got.end(), chunk.begin(), chunk.begin() + r);
        int done = blight_process_zerocopy_completions(p.a.get(), 0);
        if (done < 0) {
            ADD_FAILURE() << "blight_process_zerocopy_completions: " << std::strerror(-done);
            ok = false;
        }
        for (int i = 0; ok && i < kMessages; i++) {
            blight_buffer_id_t id = ids[i];
            if (id == 0 || overwritten[i]) continue;
            int n = blight_buffer_in_flight(id);
            if (n < 0) {
                ADD_FAILURE() << "blight_buffer_in_flight(" << id << ") = " << n << " before release";
                ok = false;
                break;
            }
            if (n == 0) {
                // The library says the kernel is done: the memory is ours to change.
                for (auto& b : bufs[i]) b = static_cast<unsigned char>(~b);
                overwritten[i] = true;
                if (got.size() < total) overwritten_early++;
            }
        }
    }
    if (got.size() < total) p.a.reset();  // unblock a stuck sender before joining
    sender.join();
    ASSERT_EQ(got.size(), total);
    EXPECT_EQ(send_errors, 0);
    EXPECT_EQ(first_mismatch(got.data(), total, 22), -1) << "a buffer changed after completion reached the receiver";
    EXPECT_GE(overwritten_early, 1) << "no buffer was reported complete before the end";
    RecordProperty("overwritten_while_reading", overwritten_early);
    EXPECT_TRUE(process_until(p.a.get(), [&] {
        for (auto& id : ids)
            if (blight_buffer_in_flight(id) != 0) return false;
        return true;
    }));
    for (auto& id : ids) EXPECT_EQ(blight_release_buffer(id), 0);
    for (auto& id : ids) EXPECT_EQ(blight_buffer_in_flight(id), -ENOENT);
    blight_zerocopy_stats s = stats_of(p.a.get());
    EXPECT_GT(s.splice_bytes, 0u);
    EXPECT_EQ(bytes_sent(s), total);
}

INSTANTIATE_TEST_SUITE_P(Modes, SpliceOverwrite, ::testing::Values(false, true),
                         [](const ::testing::TestParamInfo<bool>& i) {
                             return std::string(i.param ? "nonblocking" : "blocking");
                         });

// ---- completion processing never reads the socket's data -------------------------------------

TEST_F(Splice, CompletionProcessingLeavesIncomingDataAlone) {
    Pair p = unix_pair();
    FreeCounter fc;
    blight_buffer_id_t id = 0;
    ASSERT_EQ(blight_send_zerocopy(p.a.get(), new_pattern(65536, 23), 65536, count_and_delete, &fc, &id), 0);
    ASSERT_EQ(blight_release_buffer(id), 0);
    std::vector<unsigned char> back = pattern(1000, 24);
    ASSERT_EQ(::send(p.b.get(), back.data(), back.size(), 0), 1000);
    // Pending and unread by the peer: nothing completes, and a's incoming bytes stay.
    EXPECT_EQ(blight_process_zerocopy_completions(p.a.get(), 50), 0);
    EXPECT_EQ(fc.calls, 0);
    int inq = -1;
    ASSERT_EQ(::ioctl(p.a.get(), FIONREAD, &inq), 0);
    EXPECT_EQ(inq, 1000);
    EXPECT_EQ(read_bounded(p.b.get(), 65536), pattern(65536, 23));
    EXPECT_TRUE(process_until(p.a.get(), [&] { return fc.calls == 1; }));
    EXPECT_EQ(fc.calls, 1);
    ASSERT_EQ(::ioctl(p.a.get(), FIONREAD, &inq), 0);
    EXPECT_EQ(inq, 1000);
    EXPECT_EQ(read_bounded(p.a.get(), 1000), back);
}

// ---- the peer goes away ------------------------------------------------------------------

TEST_F(Splice, PeerClosingMidSpliceIsEpipeNotSigpipe) {
    for (bool nonblocking : {false, true}) {
        ChildResult res = run_in_child([nonblocking] {
            Pair p = unix_pair(nonblocking);
            const size_t n = 8u << 20;
            FreeCounter fc;
            std::thread closer([&] {
                std::vector<unsigned char> first = read_bounded(p.b.get(), 4096);
                if (first != pattern(4096, 25)) fprintf(stderr, "first bytes corrupted\n");
                p.b.reset();
            });
            blight_buffer_id_t id = 0;
            int r = blight_send_zerocopy(p.a.get(), new_pattern(n, 25), n, count_and_delete, &fc, &id);
            closer.join();
            fprintf(stderr, "send result %d (%s)\n", r, std::strerror(-r));
            ZC_CHILD_CHECK(r == -EPIPE);
            ZC_CHILD_CHECK(id != 0);
            ZC_CHILD_CHECK(fc.calls == 0);
            blight_zerocopy_stats s = stats_of(p.a.get());
            ZC_CHILD_CHECK(s.splice_bytes > 0);
            ZC_CHILD_CHECK(blight_release_buffer(id) == 0);
            // The peer's queue is gone, so are the page references: complete.
            for (int i = 0; i < 100 && fc.calls == 0; i++)
                ZC_CHILD_CHECK(blight_process_zerocopy_completions(p.a.get(), 100) >= 0);
            ZC_CHILD_CHECK(fc.calls == 1);
            ZC_CHILD_CHECK(fc.bytes == n);
            ZC_CHILD_CHECK(blight_release_buffer(id) == -ENOENT);
            ZC_CHILD_CHECK(stats_of(p.a.get()).pending_sends == 0);
            // A later send on the dead socket fails the same way, and still no signal.
            ZC_CHILD_CHECK(blight_send_zerocopy(p.a.get(), new_pattern(65536, 26), 65536, count_and_delete, &fc, &id) ==
                           -EPIPE);
            ZC_CHILD_CHECK(blight_release_buffer(id) == 0);
            for (int i = 0; i < 100 && fc.calls == 1; i++)
                ZC_CHILD_CHECK(blight_process_zerocopy_completions(p.a.get(), 100) >= 0);
            ZC_CHILD_CHECK(fc.calls == 2);
            return 0;
        }, 60s);
        EXPECT_TRUE(res.ok())
            << (nonblocking ? "nonblocking: " : "blocking: ") << res.describe();
    }
}

// ---- free_fn calling back into the library from inside a send -----------------------------------

struct SendFromFree {
    int fd = -1;
    std::atomic<int> calls{0};
    int send_result = 1;
};

const unsigned char kTrailer[100] = {0xEE, 0xEE, 0xEE, 0xEE, 0xEE, 0xEE, 0xEE, 0xEE, 0xEE, 0xEE};

extern "C" void send_from_free(unsigned char* data, size_t, void* user) {
    auto* s = static_cast<SendFromFree*>(user);
    delete[] data;
    // "Buffer done, send the next message": a copied send on the same socket.
    blight_buffer_id_t id = 0;
    s->send_result = blight_send_zerocopy(s->fd, const_cast<unsigned char*>(kTrailer), sizeof kTrailer, nullptr,
                                          nullptr, &id);
    if (id != 0) {
        blight_release_buffer(id);
    }
    s->calls++;
}

TEST_F(Splice, FreeFnMaySendOnTheSameSocket) {
    // A's free_fn sends on A's own socket, while B is queued there. free_fn must run
    // outside every lock (no deadlock, whether it runs inside completion processing or
    // inside a send), and its message must not land inside B.
    ChildResult res = run_in_child(
        [] {
            Pair p = unix_pair();
            SendFromFree ctx;
            ctx.fd = p.a.get();
            const size_t n = 65536;
            blight_buffer_id_t a = 0, b = 0;
            ZC_CHILD_CHECK(blight_send_zerocopy(p.a.get(), new_pattern(n, 27), n, send_from_free, &ctx, &a) == 0);
            ZC_CHILD_CHECK(blight_release_buffer(a) == 0);
            ZC_CHILD_CHECK(ctx.calls == 0);
            ZC_CHILD_CHECK(read_bounded(p.b.get(), n) == pattern(n, 27));
            FreeCounter fc;
            ZC_CHILD_CHECK(blight_send_zerocopy(p.a.get(), new_pattern(n, 28), n, count_and_delete, &fc, &b) == 0);
            ZC_CHILD_CHECK(blight_release_buffer(b) == 0);
            // A becomes due while the receiver reads B (SIOCOUTQ also counts B's overhead).
            std::vector<unsigned char> rest;
            std::thread reader([&] { rest = read_bounded(p.b.get(), n + sizeof kTrailer); });
            for (int i = 0; i < 100 && ctx.calls == 0; i++)
                ZC_CHILD_CHECK(blight_process_zerocopy_completions(p.a.get(), 100) >= 0);
            reader.join();
            ZC_CHILD_CHECK(ctx.calls == 1);
            ZC_CHILD_CHECK(ctx.send_result == 0);
            ZC_CHILD_CHECK(rest.size() == n + sizeof kTrailer);
            std::vector<unsigned char> trailer(kTrailer, kTrailer + sizeof kTrailer);
            std::vector<unsigned char> bdata = pattern(n, 28);
            bool trailer_first = std::equal(trailer.begin(), trailer.end(), rest.begin()) &&
                                 std::equal(bdata.begin(), bdata.end(), rest.begin() + sizeof kTrailer);
            bool trailer_last = std::equal(bdata.begin(), bdata.end(), rest.begin()) &&
                                std::equal(trailer.begin(), trailer.end(), rest.begin() + n);
            ZC_CHILD_CHECK(trailer_first || trailer_last);
            for (int i = 0; i < 100 && fc.calls == 0; i++)
                ZC_CHILD_CHECK(blight_process_zerocopy_completions(p.a.get(), 100) >= 0);
            ZC_CHILD_CHECK(fc.calls == 1);
            ZC_CHILD_CHECK(ctx.calls == 1);
            return 0;
        },
        20s);
    EXPECT_TRUE(res.ok()) << res.describe();
}

}  // namespace

TEST_F(Splice, SendsSplicedBeforeAFallbackStillComplete) {
    // vmsplice refuses the unreadable tail of a buffer (EFAULT) after the first chunks went
    // by splice: the socket falls back to copying, and the chunks already spliced must
    // still complete once the receiver has read them (found in review: they were stranded
    // until the socket was forgotten, and forgetting spun for its whole window).
    Pair p = unix_pair();
    const size_t mib = 1 << 20, n = 4 * mib;
    void* mem = ::mmap(nullptr, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    ASSERT_NE(mem, MAP_FAILED);
    auto* data = static_cast<unsigned char*>(mem);
    fill_pattern(data, 3 * mib, 31);
    ASSERT_EQ(::mprotect(data + 3 * mib, mib, PROT_NONE), 0);
    StreamReader reader(p.b.get(), 3 * mib, 31);
    FreeCounter fc;
    blight_buffer_id_t id = 0;
    int r = blight_send_zerocopy(p.a.get(), data, n, count_only_free, &fc, &id);
    EXPECT_EQ(r, -EFAULT);
    ASSERT_NE(id, 0u);
    reader.join();
    EXPECT_EQ(reader.received(), 3 * mib) << reader.error();
    EXPECT_EQ(reader.mismatch(), -1);
    blight_zerocopy_stats s = stats_of(p.a.get());
    EXPECT_GT(s.splice_bytes, 0u);
    EXPECT_TRUE(process_until(p.a.get(), [&] { return blight_buffer_in_flight(id) == 0; }));
    EXPECT_EQ(stats_of(p.a.get()).pending_sends, 0u);
    EXPECT_EQ(blight_release_buffer(id), 0);
    EXPECT_EQ(fc.calls, 1);
    EXPECT_EQ(blight_forget_socket(p.a.get()), 0) << "nothing left to abandon";
    ::munmap(mem, n);
}
