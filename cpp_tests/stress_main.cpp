// Stress test (ctest label `stress`): many threads, each opening socket after socket of
// every supported kind (AF_UNIX stream blocking and non-blocking, TCP over IPv4 and IPv6,
// UDP over IPv4 and IPv6), sending messages of random sizes with blight_send_blocking and
// blight_send_zerocopy mixed, while two other threads process completions on every live
// socket; ids are released at random, before or after their completions.
//
// Checked: every byte arrives intact and in order on every stream (a position-dependent
// pattern, per-socket seed); every UDP datagram arrives, in order, with its sequence
// number and checksum (the senders pace themselves to the receiver so the kernel has no
// reason to drop: a loss fails the test); every free_fn runs exactly once, after its
// release (marked before blight_release_buffer is called) and after its completions (the
// table entry is gone when free_fn runs: blight_buffer_in_flight says -ENOENT).
//
// Duration: BLIGHT_STRESS_SECONDS (default 60). Threads: BLIGHT_STRESS_THREADS (default 6).
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>

#include <algorithm>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

#include "libblight_protocol/socket.h"
#include "test_util.h"

using namespace blight_test;
using Clock = std::chrono::steady_clock;

namespace {

long env_long(const char* name, long dflt) {
    const char* v = std::getenv(name);
    if (v == nullptr || *v == '\0') return dflt;
    long n = std::strtol(v, nullptr, 10);
    return n > 0 ? n : dflt;
}

struct Totals {
    std::atomic<uint64_t> sessions{0}, by_kind[6]{}, blocking_sends{0}, zerocopy_calls{0}, bytes{0},
        datagrams{0}, buffers{0}, frees{0}, bad_frees{0}, completions{0}, process_calls{0},
        released_before_completion{0}, released_after_completion{0}, corrupt{0}, lost{0}, errors{0};
};
Totals g;

const char* kKindNames[6] = {"unix", "unix-nonblocking", "tcp4", "tcp6", "udp4", "udp6"};

// One buffer given to blight_send_zerocopy.
struct Record {
    std::atomic<blight_buffer_id_t> id{0};
    std::atomic<bool> released{false};
    std::atomic<int> frees{0};
    std::atomic<int> bad{0};
};

extern "C" void stress_free(unsigned char* data, size_t, void* user) {
    auto* r = static_cast<Record*>(user);
    // After the release (marked before blight_release_buffer) ...
    if (!r->released.load()) r->bad++;
    // ... and after every completion: the table no longer knows the id.
    blight_buffer_id_t id = r->id.load();
    if (id == 0 || blight_buffer_in_flight(id) != -ENOENT) r->bad++;
    r->frees++;
    g.frees++;
    delete[] data;
}

// A live sending socket that the completion threads may visit; `alive` is cleared (under
// `mu`) before the socket is forgotten and closed, so no thread uses a closed number.
struct Live {
    std::mutex mu;
    bool alive = true;
    int fd = -1;
};
std::mutex g_live_mu;
std::vector<std::shared_ptr<Live>> g_live;

void completion_thread(std::atomic<bool>& stop, unsigned seed) {
    std::mt19937 rng(seed);
    while (!stop) {
        std::vector<std::shared_ptr<Live>> snapshot;
        {
            std::lock_guard<std::mutex> l(g_live_mu);
            snapshot = g_live;
        }
        for (auto& l : snapshot) {
            std::lock_guard<std::mutex> lk(l->mu);
            if (!l->alive) continue;
            int r = blight_process_zerocopy_completions(l->fd, rng() % 4 == 0 ? 1 : 0);
            g.process_calls++;
            if (r < 0) {
                std::fprintf(stderr, "process_zerocopy_completions(%d): %d\n", l->fd, r);
                g.errors++;
            } else {
                g.completions += r;
            }
        }
        if (snapshot.empty()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
}

struct UdpHeader {
    uint32_t magic;
    uint32_t len;
    uint64_t seq;
    uint64_t sum;
};
constexpr uint32_t kMagic = 0xb119b7u;

uint64_t fnv(const unsigned char* p, size_t n) {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 1099511628211ull;
    return h;
}

size_t stream_size(std::mt19937_64& rng) {
    // Log-uniform 1 B .. 4 MiB: many small, some huge.
    int bits = static_cast<int>(rng() % 23);  // 0..22
    size_t lo = size_t(1) << bits;
    return lo + rng() % lo;  // < 2^(bits+1) <= 4 MiB
}

// One socket pair's life: a receiver thread, `messages` sends, checks, forget, close.
void session(int thread_no, uint64_t session_no, std::mt19937_64& rng) {
    int kind = static_cast<int>(rng() % 6);
    bool udp = kind >= 4;
    Pair p = kind == 0   ? unix_pair(false)
             : kind == 1 ? unix_pair(true)
             : kind == 2 ? tcp_pair(AF_INET, rng() % 2)
             : kind == 3 ? tcp_pair(AF_INET6, rng() % 2)
                         : udp_pair(kind == 4 ? AF_INET : AF_INET6);
    g.sessions++;
    g.by_kind[kind]++;
    const uint64_t seed = (uint64_t(thread_no) << 40) ^ session_no * 0x9E3779B97F4A7C15ull;
    int messages = 4 + static_cast<int>(rng() % 40);
    std::atomic<uint64_t> received_datagrams{0};
    std::atomic<bool> rx_failed{false};
    std::atomic<uint64_t> datagrams_sent_final{UINT64_MAX};

    std::thread rx;
    if (udp) {
        int big = 8 << 20;
        ::setsockopt(p.b.get(), SOL_SOCKET, SO_RCVBUFFORCE, &big, sizeof big);
        timeval tv{0, 100000};
        ::setsockopt(p.b.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        rx = std::thread([&] {
            std::vector<unsigned char> buf(70000);
            uint64_t expect = 0;
            int timeouts = 0;
            for (;;) {
                if (expect == datagrams_sent_final.load()) return;
                ssize_t n = ::recv(p.b.get(), buf.data(), buf.size(), 0);
                if (n < 0 && errno == EINTR) continue;
                if (n < 0 && errno == EAGAIN && ++timeouts < 100) continue;  // 10 s in all
                if (n < 0) {
                    if (errno == EAGAIN && expect == datagrams_sent_final.load()) return;
                    std::fprintf(stderr, "udp session %" PRIu64 ": datagram %" PRIu64 " lost (%s)\n", session_no,
                                 expect, std::strerror(errno));
                    g.lost++;
                    rx_failed = true;
                    return;
                }
                UdpHeader h;
                std::memcpy(&h, buf.data(), sizeof h);
                if (size_t(n) < sizeof h || h.magic != kMagic || h.len != size_t(n) || h.seq != expect ||
                    h.sum != fnv(buf.data() + sizeof h, n - sizeof h) ||
                    first_mismatch(buf.data() + sizeof h, n - sizeof h, seed ^ h.seq) != -1) {
                    std::fprintf(stderr, "udp session %" PRIu64 ": datagram %" PRIu64 " corrupt or out of order\n",
                                 session_no, expect);
                    g.corrupt++;
                    rx_failed = true;
                    return;
                }
                expect++;
                timeouts = 0;
                received_datagrams = expect;
            }
        });
    } else {
        rx = std::thread([&] {
            std::vector<unsigned char> buf(1 << 20);
            uint64_t off = 0;
            // Some receivers use the library, others plain recv.
            bool use_lib = seed & 1;
            for (;;) {
                ssize_t n;
                if (use_lib) {
                    int w = blight_wait_for_read(p.b.get(), -1);
                    if (w == -ECONNRESET) break;
                    if (w != 0) {
                        g.errors++;
                        rx_failed = true;
                        return;
                    }
                }
                n = ::recv(p.b.get(), buf.data(), buf.size(), MSG_DONTWAIT);
                if (n == 0) break;
                if (n < 0) {
                    if (errno == EINTR) continue;
                    if (errno == EAGAIN) {
                        pollfd pf{p.b.get(), POLLIN, 0};
                        ::poll(&pf, 1, 100);
                        continue;
                    }
                    g.errors++;
                    rx_failed = true;
                    return;
                }
                long long bad = first_mismatch(buf.data(), n, seed, off);
                if (bad != -1) {
                    std::fprintf(stderr, "stream session %" PRIu64 " (%s): byte %llu corrupt\n", session_no,
                                 kKindNames[kind], (unsigned long long)(off + bad));
                    g.corrupt++;
                    rx_failed = true;
                    return;
                }
                off += n;
            }
            received_datagrams = off;  // total bytes, compared below
        });
    }

    auto live = std::make_shared<Live>();
    live->fd = p.a.get();
    {
        std::lock_guard<std::mutex> l(g_live_mu);
        g_live.push_back(live);
    }

    std::vector<std::unique_ptr<Record>> records;
    std::vector<Record*> unreleased;
    uint64_t off = 0, seq = 0;
    for (int m = 0; m < messages && !rx_failed; m++) {
        size_t size;
        unsigned char* buf;
        if (udp) {
            // Pace: at most 16 datagrams ahead of the receiver.
            while (seq - received_datagrams.load() >= 16 && !rx_failed) std::this_thread::yield();
            size = sizeof(UdpHeader) + rng() % (60 * 1024 - sizeof(UdpHeader));
            buf = new unsigned char[size];
            fill_pattern(buf + sizeof(UdpHeader), size - sizeof(UdpHeader), seed ^ seq);
            UdpHeader h{kMagic, uint32_t(size), seq, fnv(buf + sizeof(UdpHeader), size - sizeof(UdpHeader))};
            std::memcpy(buf, &h, sizeof h);
            seq++;
            g.datagrams++;
        } else {
            size = stream_size(rng);
            buf = new unsigned char[size];
            fill_pattern(buf, size, seed, off);
            off += size;
        }
        g.bytes += size;
        if (rng() % 3 == 0) {
            int r = blight_send_blocking(p.a.get(), buf, static_cast<ssize_t>(size));
            delete[] buf;
            g.blocking_sends++;
            if (r != 0) {
                std::fprintf(stderr, "send_blocking: %d\n", r);
                g.errors++;
                break;
            }
        } else {
            records.push_back(std::make_unique<Record>());
            Record* rec = records.back().get();
            blight_buffer_id_t id = 0;
            int r = blight_send_zerocopy(p.a.get(), buf, static_cast<ssize_t>(size), stress_free, rec, &id);
            rec->id = id;
            g.zerocopy_calls++;
            g.buffers++;
            if (r != 0 || id == 0) {
                std::fprintf(stderr, "send_zerocopy: %d id %" PRIu64 "\n", r, id);
                g.errors++;
                if (id == 0) {
                    delete[] buf;
                    records.pop_back();
                    g.buffers--;
                    break;
                }
            }
            if (rng() % 2 == 0) {
                // Release at once: usually before the completion.
                if (blight_buffer_in_flight(id) > 0) g.released_before_completion++;
                rec->released = true;
                if (blight_release_buffer(id) != 0) g.errors++;
            } else {
                unreleased.push_back(rec);
            }
        }
        // Now and then: process here too, and release some of the held ids.
        if (rng() % 4 == 0) {
            std::lock_guard<std::mutex> lk(live->mu);
            int r = blight_process_zerocopy_completions(p.a.get(), static_cast<int>(rng() % 3));
            if (r < 0) g.errors++;
            else g.completions += r;
        }
        while (!unreleased.empty() && rng() % 3 != 0) {
            size_t i = rng() % unreleased.size();
            Record* rec = unreleased[i];
            int inf = blight_buffer_in_flight(rec->id);
            if (inf > 0) g.released_before_completion++;
            else g.released_after_completion++;
            rec->released = true;
            if (blight_release_buffer(rec->id) != 0) g.errors++;
            unreleased.erase(unreleased.begin() + i);
        }
    }
    for (Record* rec : unreleased) {
        if (blight_buffer_in_flight(rec->id) > 0) g.released_before_completion++;
        else g.released_after_completion++;
        rec->released = true;
        if (blight_release_buffer(rec->id) != 0) g.errors++;
    }
    // End of stream, then let the completions come (the receiver is still reading).
    datagrams_sent_final = seq;
    if (!udp) ::shutdown(p.a.get(), SHUT_WR);
    rx.join();
    auto deadline = Clock::now() + std::chrono::seconds(5);
    auto all_freed = [&] {
        for (auto& r : records)
            if (r->frees.load() == 0) return false;
        return true;
    };
    while (!all_freed() && Clock::now() < deadline) {
        std::lock_guard<std::mutex> lk(live->mu);
        int r = blight_process_zerocopy_completions(p.a.get(), 10);
        if (r > 0) g.completions += r;
    }
    {
        std::lock_guard<std::mutex> lk(live->mu);
        live->alive = false;
        int abandoned = blight_forget_socket(p.a.get());
        if (abandoned != 0) {
            std::fprintf(stderr, "session %" PRIu64 " (%s): %d sends abandoned although the peer read all\n",
                         session_no, kKindNames[kind], abandoned);
            g.errors++;
        }
    }
    {
        std::lock_guard<std::mutex> l(g_live_mu);
        g_live.erase(std::find(g_live.begin(), g_live.end(), live));
    }
    if (!udp && !rx_failed && received_datagrams.load() != off) {
        std::fprintf(stderr, "stream session %" PRIu64 ": %" PRIu64 " bytes received of %" PRIu64 "\n", session_no,
                     received_datagrams.load(), off);
        g.lost++;
    }
    for (auto& r : records) {
        if (r->frees.load() != 1 || r->bad.load() != 0) {
            std::fprintf(stderr, "buffer %" PRIu64 ": %d frees, %d out of order\n", r->id.load(), r->frees.load(),
                         r->bad.load());
            g.bad_frees++;
        }
    }
}

}  // namespace

TEST(Stress, AllSocketKindsMixedSendsAndCompletions) {
    signal(SIGPIPE, SIG_IGN);
    const long seconds = env_long("BLIGHT_STRESS_SECONDS", 60);
    const long threads = env_long("BLIGHT_STRESS_THREADS", 6);
    const uint64_t base_seed = env_long("BLIGHT_STRESS_SEED", static_cast<long>(::time(nullptr)));
    std::printf("stress: %ld s, %ld sender threads + 2 completion threads, seed %" PRIu64 "\n", seconds, threads,
                base_seed);
    blight_zerocopy_stats before{};
    ASSERT_EQ(blight_get_zerocopy_stats(-1, &before), 0);
    auto end = Clock::now() + std::chrono::seconds(seconds);
    std::atomic<bool> stop{false};
    std::vector<std::thread> procs;
    for (int i = 0; i < 2; i++) procs.emplace_back(completion_thread, std::ref(stop), unsigned(base_seed + i));
    std::vector<std::thread> workers;
    for (long t = 0; t < threads; t++)
        workers.emplace_back([&, t] {
            std::mt19937_64 rng(base_seed * 1000003 + t);
            uint64_t n = 0;
            while (Clock::now() < end && g.corrupt == 0 && g.lost == 0) session(static_cast<int>(t), n++, rng);
        });
    for (auto& w : workers) w.join();
    stop = true;
    for (auto& p : procs) p.join();
    blight_zerocopy_stats s{};
    ASSERT_EQ(blight_get_zerocopy_stats(-1, &s), 0);
    auto d = [&](uint64_t blight_zerocopy_stats::*f) { return (unsigned long long)(s.*f - before.*f); };
    std::printf("stress: threads=%ld sockets=%llu (", threads, (unsigned long long)g.sessions.load());
    for (int k = 0; k < 6; k++) std::printf("%s%s=%llu", k ? " " : "", kKindNames[k], (unsigned long long)g.by_kind[k].load());
    std::printf(")\n");
    std::printf("stress: sends=%llu (send_blocking=%llu send_zerocopy=%llu) datagrams=%llu bytes=%llu (%.2f GiB)\n",
                (unsigned long long)(g.blocking_sends + g.zerocopy_calls), (unsigned long long)g.blocking_sends.load(),
                (unsigned long long)g.zerocopy_calls.load(), (unsigned long long)g.datagrams.load(),
                (unsigned long long)g.bytes.load(), g.bytes.load() / 1073741824.0);
    std::printf("stress: buffers=%llu frees=%llu bad_frees=%llu released_before_completion=%llu "
                "released_after_completion=%llu\n",
                (unsigned long long)g.buffers.load(), (unsigned long long)g.frees.load(),
                (unsigned long long)g.bad_frees.load(), (unsigned long long)g.released_before_completion.load(),
                (unsigned long long)g.released_after_completion.load());
    std::printf("stress: completions returned=%llu process_calls=%llu corrupt=%llu lost=%llu errors=%llu\n",
                (unsigned long long)g.completions.load(), (unsigned long long)g.process_calls.load(),
                (unsigned long long)g.corrupt.load(), (unsigned long long)g.lost.load(),
                (unsigned long long)g.errors.load());
    std::printf("stress: by path: zerocopy_sends=%llu zerocopy_bytes=%llu kernel_copied_sends=%llu "
                "kernel_copied_bytes=%llu splice_sends=%llu splice_bytes=%llu copied_sends=%llu copied_bytes=%llu "
                "enobufs_retries=%llu completed_sends=%llu abandoned_sends=%llu pending_sends=%llu\n",
                d(&blight_zerocopy_stats::zerocopy_sends), d(&blight_zerocopy_stats::zerocopy_bytes),
                d(&blight_zerocopy_stats::kernel_copied_sends), d(&blight_zerocopy_stats::kernel_copied_bytes),
                d(&blight_zerocopy_stats::splice_sends), d(&blight_zerocopy_stats::splice_bytes),
                d(&blight_zerocopy_stats::copied_sends), d(&blight_zerocopy_stats::copied_bytes),
                d(&blight_zerocopy_stats::enobufs_retries), d(&blight_zerocopy_stats::completed_sends),
                d(&blight_zerocopy_stats::abandoned_sends), (unsigned long long)s.pending_sends);
    EXPECT_EQ(g.corrupt.load(), 0u);
    EXPECT_EQ(g.lost.load(), 0u);
    EXPECT_EQ(g.errors.load(), 0u);
    EXPECT_EQ(g.bad_frees.load(), 0u);
    EXPECT_EQ(g.frees.load(), g.buffers.load()) << "every free_fn ran exactly once";
    EXPECT_EQ(s.pending_sends, 0u);
    EXPECT_EQ(s.abandoned_sends - before.abandoned_sends, 0u);
    // Sends also complete inside send (ENOBUFS, splice) and waits: returned <= counted.
    EXPECT_LE(g.completions.load(), s.completed_sends - before.completed_sends)
        << "process_zerocopy_completions returned more completions than were counted";
    EXPECT_EQ(s.zerocopy_sends - before.zerocopy_sends + s.splice_sends - before.splice_sends,
              s.completed_sends - before.completed_sends)
        << "every zero-copy and splice send completed";
    // Bytes given to send_zerocopy = the three paths.
    EXPECT_GT(g.sessions.load(), 0u);
}
