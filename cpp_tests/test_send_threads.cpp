// Two threads sending on one socket (issue 20): each blight_send_zerocopy call's bytes are
// contiguous in the stream with respect to the other blight_send_zerocopy calls on the same
// descriptor, whatever path each takes (the cheap path of small buffers, splice,
// MSG_ZEROCOPY, copies). One thread sends large multi-chunk messages, the other small ones;
// the peer reads the stream in small pieces (so that the socket is often full and sends go
// out in parts) and checks every message byte for byte: a header naming its thread,
// sequence number and length, then bytes stamped with that thread and sequence number.
#include <gtest/gtest.h>

#include "zc_util.h"

using namespace zc_test;

namespace {

constexpr uint32_t kMagic = 0xB1167E57u;

struct Header {
    uint32_t magic;
    uint32_t thread;
    uint32_t seq;
    uint32_t len;  // payload bytes after the header
};

uint64_t stamp_seed(uint32_t thread, uint32_t seq) { return (uint64_t(thread) << 32) | seq; }

// A new[] message: header, then `len` payload bytes stamped with (thread, seq).
unsigned char* new_message(uint32_t thread, uint32_t seq, uint32_t len) {
    auto* m = new unsigned char[sizeof(Header) + len];
    Header h{kMagic, thread, seq, len};
    std::memcpy(m, &h, sizeof h);
    fill_pattern(m + sizeof h, len, stamp_seed(thread, seq));
    return m;
}

// Reads `total` bytes from `fd` and checks the message framing: every message whole and
// in order per thread. Keeps reading after a failure (the senders must not block forever).
class FramingReader {
  public:
    FramingReader(int fd, size_t total, uint32_t threads) : fd_(fd), total_(total), next_seq_(threads, 0) {
        thread_ = std::thread([this] { run(); });
    }
    ~FramingReader() { join(); }
    void join() {
        if (thread_.joinable()) thread_.join();
    }
    const std::string& error() const { return error_; }
    size_t received() const { return received_; }
    const std::vector<uint32_t>& messages() const { return next_seq_; }

  private:
    void fail(const std::string& what) {
        if (error_.empty()) error_ = what + " at stream byte " + std::to_string(pos_);
    }
    // Consumes one byte of the stream.
    void take(unsigned char b) {
        if (!error_.empty()) return;
        if (in_header_ < sizeof(Header)) {
            header_bytes_[in_header_++] = b;
            if (in_header_ == sizeof(Header)) {
                std::memcpy(&h_, header_bytes_, sizeof h_);
                if (h_.magic != kMagic || h_.thread >= next_seq_.size()) {
                    fail("no message header where one must start (another message landed inside one)");
                } else if (h_.seq != next_seq_[h_.thread]) {
                    fail("thread " + std::to_string(h_.thread) + " message " + std::to_string(h_.seq) + " where " +
                         std::to_string(next_seq_[h_.thread]) + " was due");
                }
                body_ = 0;
                if (h_.len == 0) finish();
            }
            return;
        }
        if (b != pattern_byte(stamp_seed(h_.thread, h_.seq), body_)) {
            fail("thread " + std::to_string(h_.thread) + " message " + std::to_string(h_.seq) + " byte " +
                 std::to_string(body_) + " of " + std::to_string(h_.len) + " is not its own");
            return;
        }
        if (++body_ == h_.len) finish();
    }
    void finish() {
        next_seq_[h_.thread]++;
        in_header_ = 0;
    }
    void run() {
        std::vector<unsigned char> buf(4093);
        while (received_ < total_) {
            if (poll_for(fd_, POLLIN, 20000) == 0) {
                fail("no data for 20 s");
                return;
            }
            ssize_t r = ::recv(fd_, buf.data(), std::min(buf.size(), total_ - received_), MSG_DONTWAIT);
            if (r == 0) {
                fail("EOF");
                return;
            }
            if (r < 0) {
                if (errno == EINTR || errno == EAGAIN) continue;
                fail(std::string("recv: ") + std::strerror(errno));
                return;
            }
            for (ssize_t i = 0; i < r; i++, pos_++) take(buf[i]);
            received_ += static_cast<size_t>(r);
        }
    }

    int fd_;
    size_t total_;
    std::vector<uint32_t> next_seq_;
    std::atomic<size_t> received_{0};
    size_t pos_ = 0;
    unsigned char header_bytes_[sizeof(Header)] = {};
    size_t in_header_ = 0;
    Header h_{};
    uint32_t body_ = 0;
    std::string error_;
    std::thread thread_;
};

enum class Kind { UnixSplice, UnixSpliceNonblocking, UnixCopy, Tcp };

struct Case {
    Kind kind;
    const char* name;
};

class SendThreads : public ThresholdTest, public ::testing::WithParamInterface<Case> {};

TEST_P(SendThreads, EachCallsBytesAreContiguousInTheStream) {
    const Case& c = GetParam();
    // Non-blocking: the small sends meet a full socket in this library (EAGAIN, then a
    // wait), not in the kernel.
    Pair p = c.kind == Kind::Tcp ? tcp_pair(AF_INET) : unix_pair(c.kind == Kind::UnixSpliceNonblocking);
    if (c.kind == Kind::UnixCopy) {
        ASSERT_EQ(blight_set_splice_policy(p.a.get(), BLIGHT_SPLICE_NEVER), 0);
    }
    // Large: several chunks each (a pipe-full of splice, partial sends on a full socket),
    // sizes that do not line up with pages. Small: under the threshold, the cheap path.
    const uint32_t kLarge = 24, kSmall = 3000;
    auto large_len = [](uint32_t seq) { return uint32_t((1 << 20) + 4097 * (seq % 5) + 13); };
    auto small_len = [](uint32_t seq) { return uint32_t(1 + (seq * 37) % (kDefaultThreshold - 100)); };
    size_t total = 0;
    for (uint32_t i = 0; i < kLarge; i++) total += sizeof(Header) + large_len(i);
    for (uint32_t i = 0; i < kSmall; i++) total += sizeof(Header) + small_len(i);
    FramingReader reader(p.b.get(), total, 2);
    FreeCounter fc;
    std::atomic<int> send_errors{0};
    auto sender = [&](uint32_t thread, uint32_t count, auto len_of) {
        for (uint32_t seq = 0; seq < count; seq++) {
            uint32_t len = len_of(seq);
            blight_buffer_id_t id = 0;
            int r = blight_send_zerocopy(p.a.get(), new_message(thread, seq, len), sizeof(Header) + len,
                                         count_and_delete, &fc, &id);
            if (r != 0) send_errors++;
            if (id != 0) blight_release_buffer(id);
            if (r != 0) return;
        }
    };
    std::thread large([&] { sender(0, kLarge, large_len); });
    std::thread small([&] { sender(1, kSmall, small_len); });
    large.join();
    small.join();
    reader.join();
    EXPECT_EQ(send_errors, 0);
    EXPECT_EQ(reader.error(), "");
    EXPECT_EQ(reader.received(), total);
    ASSERT_EQ(reader.messages().size(), 2u);
    EXPECT_EQ(reader.messages()[0], kLarge);
    EXPECT_EQ(reader.messages()[1], kSmall);
    EXPECT_TRUE(process_until(p.a.get(), [&] { return fc.calls == int(kLarge + kSmall); }));
    blight_zerocopy_stats s = stats_of(p.a.get());
    EXPECT_EQ(bytes_sent(s), total);
    if (c.kind == Kind::UnixSplice || c.kind == Kind::UnixSpliceNonblocking) {
        EXPECT_GT(s.splice_bytes, 0u);
    } else if (c.kind == Kind::UnixCopy) {
        EXPECT_EQ(s.copied_bytes, total);
    }
    RecordProperty("copied_bytes", static_cast<int>(s.copied_bytes));
}

INSTANTIATE_TEST_SUITE_P(Paths, SendThreads,
                         ::testing::Values(Case{Kind::UnixSplice, "unix_splice"},
                                           Case{Kind::UnixSpliceNonblocking, "unix_splice_nonblocking"},
                                           Case{Kind::UnixCopy, "unix_copy"}, Case{Kind::Tcp, "tcp"}),
                         [](const ::testing::TestParamInfo<Case>& i) { return std::string(i.param.name); });

}  // namespace
