// Fault injection: ENOBUFS from a tiny net.core.optmem_max (in a private network
// namespace), a peer that closes in the middle of a large zero-copy send, signals (EINTR)
// hammering blocked sends and receives, a socket closed with pending buffers whose number
// is then reused, and completions processed from several threads at once.
#include <gtest/gtest.h>
#include <net/if.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/wait.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <memory>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>

#include "libblight_protocol/socket.h"
#include "child_process.h"
#include "test_util.h"

using namespace blight_test;
using Clock = std::chrono::steady_clock;

namespace {

blight_zerocopy_stats stats_of(int fd) {
    blight_zerocopy_stats s{};
    EXPECT_EQ(blight_get_zerocopy_stats(fd, &s), 0);
    return s;
}

std::string read_file(const char* path) {
    std::ifstream f(path);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
}

// Counts SIGPIPE instead of dying of it, so the test can assert none was raised.
std::atomic<int> g_sigpipes{0};
void on_sigpipe(int) { g_sigpipes++; }

struct SigpipeCounter {
    struct sigaction old {};
    SigpipeCounter() {
        struct sigaction sa {};
        sa.sa_handler = on_sigpipe;
        sigemptyset(&sa.sa_mask);
        sigaction(SIGPIPE, &sa, &old);
        g_sigpipes = 0;
    }
    ~SigpipeCounter() { sigaction(SIGPIPE, &old, nullptr); }
};

// Frees that record the order of events: the test marks `released` before it releases,
// and the free checks it and counts.
struct Tracked {
    std::atomic<bool> released{false};
    std::atomic<int> frees{0};
    std::atomic<int> early{0};  // freed before release
};

extern "C" void tracked_free(unsigned char* data, size_t, void* user) {
    auto* t = static_cast<Tracked*>(user);
    if (!t->released.load()) t->early++;
    t->frees++;
    delete[] data;
}

}  // namespace

// --- ENOBUFS ----------------------------------------------------------------------------

namespace {

// Runs in a child in its own network namespace; returns "" on success or what failed.
std::string enobufs_child(std::string& report) {
    if (::unshare(CLONE_NEWNET) != 0) return std::string("SKIP unshare(CLONE_NEWNET): ") + std::strerror(errno);
    {
        Fd s(::socket(AF_INET, SOCK_DGRAM, 0));
        ifreq ifr{};
        std::strncpy(ifr.ifr_name, "lo", IFNAMSIZ - 1);
        if (::ioctl(s.get(), SIOCGIFFLAGS, &ifr) != 0) return std::string("SIOCGIFFLAGS: ") + std::strerror(errno);
        ifr.ifr_flags |= IFF_UP;
        if (::ioctl(s.get(), SIOCSIFFLAGS, &ifr) != 0) return std::string("SIOCSIFFLAGS lo up: ") + std::strerror(errno);
    }
    {
        FILE* f = std::fopen("/proc/sys/net/core/optmem_max", "w");
        if (f == nullptr) return std::string("SKIP cannot write optmem_max in the namespace: ") + std::strerror(errno);
        std::fprintf(f, "1024\n");
        if (std::fclose(f) != 0) return std::string("SKIP cannot write optmem_max: ") + std::strerror(errno);
    }
    std::string om = read_file("/proc/sys/net/core/optmem_max");
    if (!om.empty() && om.back() == '\n') om.pop_back();
    report += "optmem_max in namespace=" + om;
    auto p = tcp_pair(AF_INET);
    constexpr int kBuffers = 200;
    constexpr size_t kSize = 64 * 1024;
    std::atomic<bool> bad{false};
    std::thread rx([&] {
        for (int i = 0; i < kBuffers; i++) {
            auto got = read_exactly(p.b.get(), kSize);
            if (got.size() != kSize || first_mismatch(got.data(), kSize, 7, i * kSize) != -1) bad = true;
        }
    });
    std::vector<blight_buffer_id_t> ids;
    Tracked tr;
    int send_errors = 0;
    // No completion processing: the notifications pile up in the option memory.
    for (int i = 0; i < kBuffers; i++) {
        auto* buf = new unsigned char[kSize];
        fill_pattern(buf, kSize, 7, i * kSize);
        blight_buffer_id_t id = 0;
        if (blight_send_zerocopy(p.a.get(), buf, kSize, tracked_free, &tr, &id) != 0) send_errors++;
        ids.push_back(id);
    }
    rx.join();
    auto st = stats_of(p.a.get());
    tr.released = true;
    for (auto id : ids) blight_release_buffer(id);
    for (int i = 0; i < 200 && tr.frees.load() < kBuffers; i++) blight_process_zerocopy_completions(p.a.get(), 10);
    blight_forget_socket(p.a.get());
    char line[512];
    std::snprintf(line, sizeof line,
                  " zerocopy_sends=%llu copied_sends=%llu kernel_copied_sends=%llu enobufs_retries=%llu "
                  "completed=%llu abandoned=%llu frees=%d",
                  (unsigned long long)st.zerocopy_sends, (unsigned long long)st.copied_sends,
                  (unsigned long long)st.kernel_copied_sends, (unsigned long long)st.enobufs_retries,
                  (unsigned long long)st.completed_sends, (unsigned long long)st.abandoned_sends, tr.frees.load());
    report += line;
    if (send_errors) return "a send failed under ENOBUFS" + report;
    if (bad) return "data corrupted under ENOBUFS" + report;
    if (st.enobufs_retries == 0) return "no ENOBUFS was provoked" + report;
    if (st.zerocopy_sends == 0) return "no MSG_ZEROCOPY send at all" + report;
    if (tr.frees.load() != kBuffers || tr.early.load() != 0) return "frees wrong" + report;
    return "";
}

}  // namespace

TEST(Fault, EnobufsFromTinyOptmemInPrivateNetns) {
    std::string host_before = read_file("/proc/sys/net/core/optmem_max");
    // No time limit of its own before; 300 s is above ctest's 120 s and leaves valgrind room.
    ChildResult res = run_in_child_reporting(
        [](std::string& msg) {
            std::string report;
            std::string err;
            try {
                err = enobufs_child(report);
            } catch (const std::exception& e) {
                err = e.what();
            }
            msg = (err.empty() ? "OK " : err + " | ") + report;
            return 0;
        },
        std::chrono::seconds(300));
    const std::string& msg = res.report;
    std::string host_after = read_file("/proc/sys/net/core/optmem_max");
    if (host_after != host_before) {
        // Older kernels have one optmem_max for every namespace: put it back.
        FILE* f = std::fopen("/proc/sys/net/core/optmem_max", "w");
        if (f) {
            std::fputs(host_before.c_str(), f);
            std::fclose(f);
        }
        GTEST_SKIP() << "net.core.optmem_max is not per network namespace on this kernel (restored)";
    }
    ASSERT_TRUE(res.exited) << "child died: " << res.describe() << ": " << msg;
    if (msg.rfind("SKIP", 0) == 0) GTEST_SKIP() << msg;
    std::printf("[ enobufs  ] %s\n", msg.c_str());
    EXPECT_EQ(msg.rfind("OK ", 0), 0u) << msg;
}

// --- Peer closing mid-send -------------------------------------------------------------

namespace {

void peer_closes_mid_send(Pair p, const char* what) {
    SCOPED_TRACE(what);
    SigpipeCounter sp;
    constexpr size_t kSize = 64 << 20;
    auto* buf = new unsigned char[kSize];
    std::memset(buf, 0x5a, kSize);
    Tracked tr;
    std::thread rx([&] {
        auto got = read_exactly(p.b.get(), 1 << 20);
        EXPECT_EQ(got.size(), size_t(1) << 20);
        p.b.reset();  // close in the middle
    });
    blight_buffer_id_t id = 0;
    int r = blight_send_zerocopy(p.a.get(), buf, kSize, tracked_free, &tr, &id);
    rx.join();
    EXPECT_TRUE(r == -EPIPE || r == -ECONNRESET) << r;
    EXPECT_NE(id, 0u) << "a send error after registration still names the buffer";
    EXPECT_EQ(g_sigpipes.load(), 0) << "SIGPIPE raised";
    EXPECT_EQ(tr.frees.load(), 0) << "freed before release";
    tr.released = true;
    EXPECT_EQ(blight_release_buffer(id), 0);
    for (int i = 0; i < 100 && tr.frees.load() == 0; i++) blight_process_zerocopy_completions(p.a.get(), 10);
    if (tr.frees.load() == 0) blight_forget_socket(p.a.get());
    EXPECT_EQ(tr.frees.load(), 1);
    EXPECT_EQ(tr.early.load(), 0);
    EXPECT_EQ(blight_release_buffer(id), -ENOENT);
    blight_forget_socket(p.a.get());
    EXPECT_EQ(tr.frees.load(), 1) << "freed exactly once";
    // A second send on the dead socket: an error, never SIGPIPE.
    unsigned char b[16] = {};
    EXPECT_LT(blight_send_blocking(p.a.get(), b, sizeof b), 0);
    EXPECT_EQ(g_sigpipes.load(), 0);
}

}  // namespace

TEST(Fault, PeerClosesMidZerocopySendTcp4) { peer_closes_mid_send(tcp_pair(AF_INET), "tcp4"); }
TEST(Fault, PeerClosesMidZerocopySendTcp6) { peer_closes_mid_send(tcp_pair(AF_INET6), "tcp6"); }
TEST(Fault, PeerClosesMidZerocopySendUnix) { peer_closes_mid_send(unix_pair(), "unix"); }
TEST(Fault, PeerClosesMidZerocopySendUnixNonblocking) { peer_closes_mid_send(unix_pair(true), "unix nonblocking"); }

// --- EINTR ------------------------------------------------------------------------------

namespace {
std::atomic<long> g_signals{0};
void on_usr1(int) { g_signals++; }
}  // namespace

TEST(Fault, SignalsHammerBlockedSendsAndReceives) {
    struct sigaction sa {}, old{};
    sa.sa_handler = on_usr1;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0;  // no SA_RESTART: every blocked call sees EINTR
    ASSERT_EQ(sigaction(SIGUSR1, &sa, &old), 0);
    g_signals = 0;
    for (auto kind : {"unix", "tcp4", "unix-nonblocking"}) {
        SCOPED_TRACE(kind);
        Pair p = std::string(kind) == "tcp4" ? tcp_pair(AF_INET) : unix_pair(std::string(kind) == "unix-nonblocking");
        constexpr size_t kSize = 24 << 20;
        auto payload = pattern(kSize, 11);
        std::atomic<bool> done{false};
        std::atomic<int> rx_result{1}, tx_result{1}, zc_result{1}, wait_result{1};
        std::vector<unsigned char> got;
        pthread_t rx_thread{}, tx_thread{};
        std::atomic<int> ready{0};
        std::thread rx([&] {
            rx_thread = pthread_self();
            ready++;
            // Blocks in wait_for_read while nothing is there, then in the receive.
            wait_result = blight_wait_for_read(p.b.get(), -1);
            blight_data_t data = nullptr;
            rx_result = blight_recv_blocking(p.b.get(), &data, 2 * kSize);
            if (data) {
                got.assign(data, data + 2 * kSize);
                free(data);
            }
        });
        std::thread tx([&] {
            tx_thread = pthread_self();
            ready++;
            while (ready.load() < 2) std::this_thread::yield();
            std::this_thread::sleep_for(std::chrono::milliseconds(100));  // let rx block first
            tx_result = blight_send_blocking(p.a.get(), payload.data(), kSize);
            auto* zc = new unsigned char[kSize];
            std::memcpy(zc, payload.data(), kSize);
            blight_buffer_id_t id = 0;
            FreeCounter fc;
            zc_result = blight_send_zerocopy(p.a.get(), zc, kSize, count_and_delete, &fc, &id);
            blight_release_buffer(id);
            while (fc.calls.load() == 0) blight_process_zerocopy_completions(p.a.get(), 10);
        });
        while (ready.load() < 2) std::this_thread::yield();
        std::thread hammer([&] {
            while (!done) {
                pthread_kill(rx_thread, SIGUSR1);
                pthread_kill(tx_thread, SIGUSR1);
                std::this_thread::sleep_for(std::chrono::microseconds(50));
            }
        });
        tx.join();
        rx.join();
        done = true;
        hammer.join();
        EXPECT_EQ(wait_result.load(), 0);
        EXPECT_EQ(tx_result.load(), 0);
        EXPECT_EQ(zc_result.load(), 0);
        EXPECT_EQ(rx_result.load(), 0);
        ASSERT_EQ(got.size(), 2 * kSize);
        EXPECT_EQ(first_mismatch(got.data(), kSize, 11), -1);
        EXPECT_EQ(first_mismatch(got.data() + kSize, kSize, 11), -1);
        blight_forget_socket(p.a.get());
    }
    // A timed wait interrupted all along still waits its whole timeout.
    {
        auto p = unix_pair();
        pthread_t self = pthread_self();
        std::atomic<bool> stop{false};
        std::thread hammer([&] {
            while (!stop) {
                pthread_kill(self, SIGUSR1);
                std::this_thread::sleep_for(std::chrono::microseconds(100));
            }
        });
        auto t0 = Clock::now();
        int r = blight_wait_for_read(p.b.get(), 300);
        auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0).count();
        stop = true;
        hammer.join();
        EXPECT_EQ(r, -EAGAIN);
        EXPECT_GE(ms, 290);
        EXPECT_LT(ms, 2000);
    }
    std::printf("[ signals  ] %ld SIGUSR1 delivered\n", g_signals.load());
    EXPECT_GT(g_signals.load(), 100);
    sigaction(SIGUSR1, &old, nullptr);
}

// --- Close with pending buffers, number reused --------------------------------------------

TEST(Fault, ClosedWithPendingBuffersThenNumberReused) {
    blight_zerocopy_stats before{};
    ASSERT_EQ(blight_get_zerocopy_stats(-1, &before), 0);
    auto p = tcp_pair(AF_INET);
    int fd = p.a.get();
    constexpr int kBuffers = 6;  // fewer than the COPIED run that switches to copying
    constexpr size_t kSize = 256 * 1024;
    Tracked tr;
    std::vector<blight_buffer_id_t> ids;
    std::thread rx([&] { read_exactly(p.b.get(), kBuffers * kSize); });
    for (int i = 0; i < kBuffers; i++) {
        auto* buf = new unsigned char[kSize];
        std::memset(buf, i, kSize);
        blight_buffer_id_t id = 0;
        ASSERT_EQ(blight_send_zerocopy(fd, buf, kSize, tracked_free, &tr, &id), 0);
        ids.push_back(id);
    }
    rx.join();
    auto old_stats = stats_of(fd);
    EXPECT_GT(old_stats.zerocopy_sends, 0u);
    EXPECT_GT(old_stats.pending_sends, 0u) << "no completion was processed: sends are pending";
    tr.released = true;
    for (auto id : ids) EXPECT_EQ(blight_release_buffer(id), 0);
    EXPECT_EQ(tr.frees.load(), 0) << "freed while sends were in flight";
    // Closed without blight_forget_socket: the kernel drops its notifications.
    p.a.reset();
    // A new socket under the same number (socket() gives the lowest free number, which
    // may be lower: then dup2 puts it there, as a later socket() would).
    int s = ::socket(AF_INET, SOCK_STREAM, 0);
    ASSERT_GE(s, 0);
    if (s != fd) {
        ASSERT_EQ(::dup2(s, fd), fd);
        ::close(s);
    }
    Fd reused(fd);
    auto fresh = stats_of(reused.get());
    EXPECT_EQ(fresh.zerocopy_sends, 0u) << "the new socket inherited the old one's counters";
    EXPECT_EQ(fresh.pending_sends, 0u);
    EXPECT_EQ(fresh.copied_bytes, 0u);
    // Noticing the new socket retired the old one: its notifications were dropped with it,
    // so nothing proves the kernel is done with those buffers: they are held, not freed
    // (issue 13; this test expected them freed before).
    EXPECT_EQ(tr.frees.load(), 0);
    EXPECT_EQ(tr.early.load(), 0);
    blight_zerocopy_stats after{};
    ASSERT_EQ(blight_get_zerocopy_stats(-1, &after), 0);
    EXPECT_GE(after.zerocopy_sends - before.zerocopy_sends, old_stats.zerocopy_sends);
    EXPECT_EQ(after.pending_sends - before.pending_sends, old_stats.pending_sends);
    EXPECT_EQ(after.held_sends - before.held_sends, old_stats.pending_sends);
    EXPECT_EQ(after.abandoned_sends - before.abandoned_sends, old_stats.pending_sends);
    for (auto id : ids) EXPECT_GE(blight_buffer_in_flight(id), 1);
    EXPECT_EQ(blight_process_zerocopy_completions(reused.get(), 0), 0);
    EXPECT_EQ(tr.frees.load(), 0);
}

// --- Completions from several threads at once ---------------------------------------------

TEST(Fault, CompletionsFromSeveralThreadsOnOneSocket) {
    size_t threshold = blight_zerocopy_threshold();
    ASSERT_EQ(blight_set_zerocopy_threshold(4096), 0);
    long total_completed = 0, total_sends = 0, total_frees = 0, total_buffers = 0;
    // Loopback makes the kernel copy, and after a run of COPIED notifications a socket
    // stops using MSG_ZEROCOPY: so many sockets, each with a burst of zero-copy sends.
    for (int round = 0; round < 40; round++) {
        auto p = tcp_pair(round % 2 ? AF_INET6 : AF_INET);
        constexpr int kBuffers = 64;
        constexpr size_t kSize = 32 * 1024;
        std::vector<std::unique_ptr<Tracked>> tr;
        for (int i = 0; i < kBuffers; i++) tr.push_back(std::make_unique<Tracked>());
        std::unique_ptr<std::atomic<blight_buffer_id_t>[]> ids(new std::atomic<blight_buffer_id_t>[kBuffers]());
        std::atomic<bool> sent{false};
        std::atomic<long> completed{0};
        std::atomic<bool> bad{false};
        std::thread rx([&] {
            for (int i = 0; i < kBuffers; i++) {
                auto got = read_exactly(p.b.get(), kSize);
                if (got.size() != kSize || first_mismatch(got.data(), kSize, round, i * kSize) != -1) bad = true;
            }
        });
        std::vector<std::thread> procs;
        for (int t = 0; t < 4; t++)
            procs.emplace_back([&] {
                for (;;) {
                    bool last = sent.load();
                    int r = blight_process_zerocopy_completions(p.a.get(), 1);
                    if (r < 0) {
                        bad = true;
                        return;
                    }
                    completed += r;
                    if (last && stats_of(p.a.get()).pending_sends == 0) return;
                }
            });
        std::thread releaser([&] {
            for (int i = 0; i < kBuffers; i++) {
                while (ids[i] == 0 && !bad) std::this_thread::yield();
                tr[i]->released = true;
                EXPECT_EQ(blight_release_buffer(ids[i].load()), 0);
            }
        });
        for (int i = 0; i < kBuffers; i++) {
            auto* buf = new unsigned char[kSize];
            fill_pattern(buf, kSize, round, i * kSize);
            blight_buffer_id_t id = 0;
            ASSERT_EQ(blight_send_zerocopy(p.a.get(), buf, kSize, tracked_free, tr[i].get(), &id), 0);
            ids[i].store(id);
        }
        sent = true;
        releaser.join();
        rx.join();
        for (auto& t : procs) t.join();
        auto st = stats_of(p.a.get());
        EXPECT_FALSE(bad);
        EXPECT_EQ(st.pending_sends, 0u);
        EXPECT_EQ((long)st.completed_sends, completed.load()) << "counts returned add up to the completions";
        for (int i = 0; i < kBuffers; i++) {
            EXPECT_EQ(tr[i]->frees.load(), 1) << i;
            EXPECT_EQ(tr[i]->early.load(), 0) << i;
            total_frees += tr[i]->frees.load();
        }
        total_completed += completed.load();
        total_sends += st.zerocopy_sends;
        total_buffers += kBuffers;
        EXPECT_EQ(blight_forget_socket(p.a.get()), 0);
    }
    blight_set_zerocopy_threshold(threshold);
    std::printf("[ multi    ] %ld buffers, %ld MSG_ZEROCOPY sends, %ld completions from 4 threads, %ld frees\n",
                total_buffers, total_sends, total_completed, total_frees);
    EXPECT_GT(total_completed, 0);
}
