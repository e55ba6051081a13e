// blight-bench: libblight_socket against the upstream socket.cpp algorithm.
//
// Every scenario runs "ours" and the reference ALTERNATELY in the same process (the order
// rotates each round), reports medians and ratios of medians, and verifies every received
// message (sequence stamps on every 4 KiB page of every message, full content on a sample
// or, with --smoke / --verify-all, on all of them): a fast wrong path cannot win. Sender
// and receiver CPU are measured in their own threads with CLOCK_THREAD_CPUTIME_ID.
//
// Output: quick mode prints one summary table (each of our calls / upstream's loop, and the
// path the bytes took); --details adds every row's medians and the byte accounting,
// --targets the PASS/MISS scoreboard; --full and --smoke print all of it. The JSON always
// holds everything.
//
// Exit code: 0 whatever the targets say (a benchmark is not a test); 1 when data
// verification or a send/receive failed; 2 for bad arguments.
#include <libblight_protocol/socket.h>

#include <arpa/inet.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cinttypes>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <functional>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace {

// ---------------------------------------------------------------------------------------
// The contenders, each a shared library called through pointers from dlsym, ours included,
// so that every one pays the same call (issue 18: a reference compiled into this binary
// was inlined into the loops that call it, and ours was not):
// - ours: libblight_socket.so (linked; its functions looked up in it like the others);
// - the reference: upstream libblight_protocol socket.cpp's algorithm, in
//   libblight-reference.so (bench/reference_socket.cpp): send(MSG_EOR | MSG_NOSIGNAL) in a
//   loop, recv(MSG_WAITALL) in a loop, EAGAIN/EINTR sleep 5 us; upstream's offset bug fixed;
// - upstream: oxide's own socket.cpp, compiled unmodified into libblight-upstream.so
//   (optional: only where the build found an oxide tree). Its blight_recv_blocking returns
//   memory from new[] (released with delete[]) and has upstream's offset bug, which only a
//   partial read can hit: a message of (a) is one buffer of the kernel, read whole or not
//   at all, and every message is verified.
struct Contender {
    const char* name = nullptr;
    void* lib = nullptr;
    int (*send_blocking)(int, const unsigned char*, ssize_t) = nullptr;
    int (*recv_blocking)(int, unsigned char**, ssize_t) = nullptr;  // allocates, as oxide's
    int (*recv_blocking_into)(int, unsigned char*, ssize_t) = nullptr;  // not in upstream
    bool new_delete = false;  // recv_blocking's memory comes from new[]
    void release(unsigned char* p) const {
        if (new_delete) {
            delete[] p;
        } else {
            std::free(p);
        }
    }
};
Contender g_ours, g_ref, g_up;

template <class F>
void resolve(Contender& c, F& fn, const char* symbol, bool required) {
    fn = reinterpret_cast<F>(dlsym(c.lib, symbol));
    if (fn == nullptr && required) {
        std::fprintf(stderr, "blight-bench: %s has no %s\n", c.name, symbol);
        std::exit(2);
    }
}

// Loads a contender from the directory of this binary (or, for ours, the loaded library).
bool load_contender(Contender& c, const char* name, const std::string& file, bool required) {
    c.name = name;
    c.lib = dlopen(file.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (c.lib == nullptr) {
        if (required) {
            std::fprintf(stderr, "blight-bench: cannot load %s: %s\n", file.c_str(), dlerror());
            std::exit(2);
        }
        return false;
    }
    resolve(c, c.send_blocking, "blight_send_blocking", true);
    resolve(c, c.recv_blocking, "blight_recv_blocking", true);
    resolve(c, c.recv_blocking_into, "blight_recv_blocking_into", false);
    return true;
}

std::string exe_dir() {
    char path[4096];
    ssize_t n = readlink("/proc/self/exe", path, sizeof path - 1);
    if (n <= 0) return ".";
    path[n] = 0;
    std::string s(path);
    return s.substr(0, s.rfind('/'));
}

void load_contenders() {
    Dl_info info{};
    if (dladdr(reinterpret_cast<void*>(&blight_sendv_blocking), &info) == 0 || info.dli_fname == nullptr) {
        std::fprintf(stderr, "blight-bench: cannot find libblight_socket.so\n");
        std::exit(2);
    }
    load_contender(g_ours, "ours", info.dli_fname, true);
    const std::string dir = exe_dir();
    load_contender(g_ref, "reference", dir + "/libblight-reference.so", true);
    if (load_contender(g_up, "upstream", dir + "/libblight-upstream.so", false)) g_up.new_delete = true;
}

// The reference's calls, under the names the scenarios use.
namespace reference {
int send_blocking(int fd, const unsigned char* data, ssize_t size) { return g_ref.send_blocking(fd, data, size); }
int recv_blocking_into(int fd, unsigned char* data, ssize_t size) { return g_ref.recv_blocking_into(fd, data, size); }
}  // namespace reference

// ---------------------------------------------------------------------------------------
// Options, clocks, failures.
struct Options {
    enum Mode { Quick, Full, Smoke } mode = Quick;
    std::string json = "bench-results.json";
    std::set<char> only;  // empty: every scenario
    int rounds = 0;       // 0: the mode's default
    bool verify_all = false;
    bool details = false;  // every row's raw medians and the byte accounting table (--details, --full, --smoke)
    bool targets = false;  // the target scoreboard and (c)'s kernel floor (--targets, --full, --smoke)
};
Options opt;

std::atomic<uint64_t> g_failures{0};
std::atomic<uint64_t> g_checked_msgs{0};
std::atomic<uint64_t> g_checked_full{0};

void fail(const char* what, long long a = 0, long long b = 0) {
    if (g_failures.fetch_add(1) < 20) {
        std::fprintf(stderr, "VERIFY FAILED: %s (%lld, %lld)\n", what, a, b);
    }
}

double now_s() {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}
double thread_cpu_s() {
    timespec ts{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

// Times the calling thread went to sleep (voluntary context switches: a wait in poll,
// nanosleep or a blocking call).
double thread_sleeps() {
    rusage u{};
    getrusage(RUSAGE_THREAD, &u);
    return double(u.ru_nvcsw);
}

double median(std::vector<double> v) {
    if (v.empty()) return NAN;
    std::sort(v.begin(), v.end());
    size_t n = v.size();
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

int rounds() {
    if (opt.rounds > 0) return opt.rounds;
    switch (opt.mode) {
        case Options::Full: return 11;
        case Options::Smoke: return 1;
        default: return 5;
    }
}
// Work per round: quick 2, full 6, smoke tiny.
double scale() {
    switch (opt.mode) {
        case Options::Full: return 6.0;
        case Options::Smoke: return 0.05;
        default: return 2.0;
    }
}
size_t scaled(size_t n, size_t min_n = 2) { return std::max(min_n, static_cast<size_t>(n * scale())); }

std::string human(size_t bytes) {
    char b[32];
    if (bytes >= (1u << 20) && bytes % (1u << 20) == 0) std::snprintf(b, sizeof b, "%zuMiB", bytes >> 20);
    else if (bytes >= 1024 && bytes % 1024 == 0) std::snprintf(b, sizeof b, "%zuKiB", bytes >> 10);
    else std::snprintf(b, sizeof b, "%zuB", bytes);
    return b;
}

// ---------------------------------------------------------------------------------------
// Sockets.
void unix_pair(int fds[2]) {
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fds) != 0) {
        std::perror("socketpair");
        std::exit(1);
    }
}

void set_nonblock(int fd) { fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK); }

void tcp_pair(int fds[2]) {
    int l = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (l < 0 || bind(l, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || listen(l, 1) != 0 ||
        getsockname(l, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
        std::perror("tcp listen");
        std::exit(1);
    }
    int c = socket(AF_INET, SOCK_STREAM, 0);
    if (c < 0 || connect(c, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
        std::perror("tcp connect");
        std::exit(1);
    }
    int s = accept(l, nullptr, nullptr);
    if (s < 0) {
        std::perror("accept");
        std::exit(1);
    }
    close(l);
    set_nonblock(c);
    set_nonblock(s);
    fds[0] = c;  // sender
    fds[1] = s;  // receiver
}

void close_pair(int fds[2]) {
    blight_forget_socket(fds[0]);
    close(fds[0]);
    close(fds[1]);
}

// ---------------------------------------------------------------------------------------
// Message content. Every message is a template (depends on the offset, differs from page
// to page) with a stamp of (sequence number, page) in the first 8 bytes of every 4 KiB
// page and in the last 8 bytes. A stale page, a reordered or misplaced chunk, or a buffer
// reused too early shows up as a wrong stamp.
constexpr size_t kPage = 4096;
std::vector<unsigned char> g_template;

void ensure_template(size_t size) {
    if (g_template.size() >= size) return;
    size_t old = g_template.size();
    g_template.resize(size);
    for (size_t i = old; i < size; i++) {
        g_template[i] = static_cast<unsigned char>((i * 131u) ^ (i >> 12) * 29u ^ 0x5a);
    }
}

inline uint64_t stamp_value(uint64_t seq, uint64_t where) {
    return (seq + 1) * 0x9E3779B97F4A7C15ull ^ (where * 0xC2B2AE3D27D4EB4Full);
}

inline void stamp(unsigned char* b, size_t size, uint64_t seq) {
    for (size_t off = 0; off + 8 <= size; off += kPage) {
        uint64_t v = stamp_value(seq, off / kPage);
        std::memcpy(b + off, &v, 8);
    }
    if (size >= 16 && (size - 8) % kPage >= 8) {
        uint64_t v = stamp_value(seq, ~0ull);
        std::memcpy(b + size - 8, &v, 8);
    }
}

// Checks the stamps of every message, and the whole content when `full`.
inline void check_message(const unsigned char* b, size_t size, uint64_t seq, bool full) {
    bool ok = true;
    for (size_t off = 0; off + 8 <= size; off += kPage) {
        uint64_t v;
        std::memcpy(&v, b + off, 8);
        ok &= v == stamp_value(seq, off / kPage);
    }
    bool tail = size >= 16 && (size - 8) % kPage >= 8;
    if (tail) {
        uint64_t v;
        std::memcpy(&v, b + size - 8, 8);
        ok &= v == stamp_value(seq, ~0ull);
    }
    if (ok && full) {
        for (size_t off = 0; off < size; off += kPage) {
            size_t start = off + 8;
            size_t end = std::min(size, off + kPage);
            if (tail && end == size) end = size - 8;
            if (start < end && std::memcmp(b + start, g_template.data() + start, end - start) != 0) ok = false;
        }
        g_checked_full.fetch_add(1, std::memory_order_relaxed);
    }
    g_checked_msgs.fetch_add(1, std::memory_order_relaxed);
    if (!ok) fail("message content", static_cast<long long>(seq), static_cast<long long>(size));
}
inline bool full_check(uint64_t seq) { return opt.verify_all || seq % 16 == 0; }

unsigned char* alloc_buffer(size_t size) {
    void* p = nullptr;
    if (posix_memalign(&p, kPage, std::max(size, kPage)) != 0) {
        std::perror("posix_memalign");
        std::exit(1);
    }
    ensure_template(size);
    std::memcpy(p, g_template.data(), size);
    return static_cast<unsigned char*>(p);
}

// A pool of send buffers. A buffer given to blight_send_zerocopy comes back only through
// its free_fn: the sender never touches it before the library says the kernel is done.
struct Pool {
    std::mutex m;
    std::deque<unsigned char*> free;
    std::vector<unsigned char*> all;
    size_t size = 0;
    // free.size(), readable without the lock: the zero-copy sender checks it after every
    // send, and a mutex there would bill the harness to the zero-copy rows only.
    std::atomic<size_t> n_free{0};
    Pool(size_t count, size_t bytes) : size(bytes) {
        for (size_t i = 0; i < count; i++) {
            all.push_back(alloc_buffer(bytes));
            free.push_back(all.back());
        }
        n_free = free.size();
    }
    ~Pool() {
        for (auto* p : all) std::free(p);
    }
    unsigned char* take() {
        std::lock_guard<std::mutex> g(m);
        if (free.empty()) return nullptr;
        auto* p = free.front();
        free.pop_front();
        n_free.store(free.size(), std::memory_order_relaxed);
        return p;
    }
    void give(unsigned char* p) {
        std::lock_guard<std::mutex> g(m);
        free.push_back(p);
        n_free.store(free.size(), std::memory_order_relaxed);
    }
    size_t available() const { return n_free.load(std::memory_order_relaxed); }
};
void pool_free_fn(blight_data_t data, size_t, void* user) { static_cast<Pool*>(user)->give(data); }

// ---------------------------------------------------------------------------------------
// One measured run: a sender thread and a receiver thread started together.
struct Sample {
    double wall = 0, snd_cpu = 0, rcv_cpu = 0;
    double bytes = 0, msgs = 0;
    double pool_waits = 0;  // zero-copy sender: times it found every buffer still in the kernel
    double snd_sleeps = 0, rcv_sleeps = 0;  // voluntary context switches of each thread
};

Sample run_threads(const std::function<void()>& sender, const std::function<void()>& receiver) {
    std::atomic<int> ready{0};
    std::atomic<bool> go{false};
    Sample s;
    double t_send_end = 0, t_recv_end = 0;
    std::thread rt([&] {
        ready++;
        while (!go.load()) std::this_thread::yield();
        double c0 = thread_cpu_s(), z0 = thread_sleeps();
        receiver();
        s.rcv_cpu = thread_cpu_s() - c0;
        s.rcv_sleeps = thread_sleeps() - z0;
        t_recv_end = now_s();
    });
    std::thread st([&] {
        ready++;
        while (!go.load()) std::this_thread::yield();
        double c0 = thread_cpu_s(), z0 = thread_sleeps();
        sender();
        s.snd_cpu = thread_cpu_s() - c0;
        s.snd_sleeps = thread_sleeps() - z0;
        t_send_end = now_s();
    });
    while (ready.load() < 2) std::this_thread::yield();
    double t0 = now_s();
    go = true;
    st.join();
    rt.join();
    s.wall = std::max(t_send_end, t_recv_end) - t0;
    return s;
}

using RecvFn = int (*)(int, unsigned char*, ssize_t);
int ours_recv(int fd, unsigned char* b, ssize_t n) { return g_ours.recv_blocking_into(fd, b, n); }

// ---------------------------------------------------------------------------------------
// Results.
struct Row {
    std::string scenario, transport, path;
    size_t size = 0;
    std::vector<Sample> samples;
    double med(const std::function<double(const Sample&)>& f) const {
        std::vector<double> v;
        for (auto& s : samples) v.push_back(f(s));
        return median(v);
    }
    double msgs_per_s() const { return med([](const Sample& s) { return s.msgs / s.wall; }); }
    double gbps() const { return med([](const Sample& s) { return s.bytes / s.wall / 1e9; }); }
    double snd_us_per_msg() const { return med([](const Sample& s) { return s.snd_cpu / s.msgs * 1e6; }); }
    double rcv_us_per_msg() const { return med([](const Sample& s) { return s.rcv_cpu / s.msgs * 1e6; }); }
    double snd_s_per_gb() const { return med([](const Sample& s) { return s.snd_cpu / s.bytes * 1e9; }); }
    double rcv_s_per_gb() const { return med([](const Sample& s) { return s.rcv_cpu / s.bytes * 1e9; }); }
    double snd_cpu_s() const { return med([](const Sample& s) { return s.snd_cpu; }); }
    double snd_sleeps_per_msg() const { return med([](const Sample& s) { return s.snd_sleeps / s.msgs; }); }
    double rcv_sleeps_per_msg() const { return med([](const Sample& s) { return s.rcv_sleeps / s.msgs; }); }
    double pool_waits_per_1k() const { return med([](const Sample& s) { return s.pool_waits / s.msgs * 1000; }); }
    // The median over rounds of f(this round) / f(other's same round). The rounds of one
    // scenario are interleaved, so the two samples of a round ran back to back: the ratio
    // cancels what drifts between rounds (the machine's load, its clock).
    double paired(const Row& other, const std::function<double(const Sample&)>& f) const {
        std::vector<double> v;
        for (size_t i = 0; i < samples.size() && i < other.samples.size(); i++) v.push_back(f(samples[i]) / f(other.samples[i]));
        return median(v);
    }
};
double rate_of(const Sample& s) { return s.msgs / s.wall; }
double snd_cpu_per_msg_of(const Sample& s) { return s.snd_cpu / s.msgs; }
std::deque<Row> g_rows;

struct Target {
    std::string id, what;
    double ours = NAN, ref = NAN, ratio = NAN;
    bool at_least = true;  // ratio >= goal, else <= goal
    double goal = 1;
    bool pass = false;
};
std::vector<Target> g_targets;

void target(const std::string& id, const std::string& what, double ours, double ref, bool at_least, double goal) {
    Target t{id, what, ours, ref, ours / ref, at_least, goal, false};
    t.pass = std::isfinite(t.ratio) && (at_least ? t.ratio >= goal : t.ratio <= goal);
    g_targets.push_back(t);
}
// A target whose ratio is not ours / ref (the paired median of Row::paired).
void target_ratio(const std::string& id, const std::string& what, double ours, double ref, double ratio, bool at_least,
                  double goal) {
    Target t{id, what, ours, ref, ratio, at_least, goal, false};
    t.pass = std::isfinite(t.ratio) && (at_least ? t.ratio >= goal : t.ratio <= goal);
    g_targets.push_back(t);
}
// A target that is a measured value (not a ratio) against an absolute goal.
void target_abs(const std::string& id, const std::string& what, double value, bool at_least, double goal) {
    Target t{id, what, value, NAN, value, at_least, goal, false};
    t.pass = std::isfinite(value) && (at_least ? value >= goal : value <= goal);
    g_targets.push_back(t);
}

struct Accounting {
    std::string scenario, transport;
    size_t size;
    uint64_t sent = 0;
    blight_zerocopy_stats st{};
};
std::vector<Accounting> g_accounting;

// (c)'s kernel floor: raw vmsplice+splice next to ours and the reference (not a target).
struct Floor {
    size_t size;
    double raw_cpu, ours_cpu, ref_cpu;     // sender s/GB
    double raw_gbps, ours_gbps, ref_gbps;  // GB/s
};
std::vector<Floor> g_floors;

void add_stats(blight_zerocopy_stats& a, const blight_zerocopy_stats& b) {
    a.zerocopy_sends += b.zerocopy_sends;
    a.zerocopy_bytes += b.zerocopy_bytes;
    a.kernel_copied_sends += b.kernel_copied_sends;
    a.kernel_copied_bytes += b.kernel_copied_bytes;
    a.splice_sends += b.splice_sends;
    a.splice_bytes += b.splice_bytes;
    a.copied_sends += b.copied_sends;
    a.copied_bytes += b.copied_bytes;
    a.enobufs_retries += b.enobufs_retries;
    a.completed_sends += b.completed_sends;
    a.abandoned_sends += b.abandoned_sends;
    a.pending_sends += b.pending_sends;
}

// Runs each variant rounds() times, interleaved, the order rotating every round, after
// one unmeasured warm-up run of each. `run(variant, warmup)` returns one sample.
void interleave(std::vector<Row*> rows, const std::function<Sample(size_t, bool)>& run) {
    if (opt.mode != Options::Smoke) {
        for (size_t v = 0; v < rows.size(); v++) run(v, true);
    }
    for (int r = 0; r < rounds(); r++) {
        for (size_t k = 0; k < rows.size(); k++) {
            size_t v = (k + r) % rows.size();
            rows[v]->samples.push_back(run(v, false));
        }
    }
}

Row* new_row(const std::string& scenario, const std::string& transport, const std::string& path, size_t size) {
    g_rows.push_back(Row{scenario, transport, path, size, {}});
    return &g_rows.back();
}

void print_rows_msgs(const std::vector<Row*>& rows) {
    if (!opt.details) return;
    for (auto* r : rows) {
        std::printf("  %-4s %-22s %8s %12.0f msg/s  %7.3f GB/s  snd %7.3f us/msg  rcv %7.3f us/msg  sleeps/msg snd %.3f rcv %.3f\n",
                    r->transport.c_str(), r->path.c_str(), human(r->size).c_str(), r->msgs_per_s(), r->gbps(),
                    r->snd_us_per_msg(), r->rcv_us_per_msg(), r->snd_sleeps_per_msg(), r->rcv_sleeps_per_msg());
    }
    std::fflush(stdout);
}
void print_rows_bytes(const std::vector<Row*>& rows) {
    if (!opt.details) return;
    for (auto* r : rows) {
        char waits[64] = "";
        if (r->path == "send_zerocopy") {
            std::snprintf(waits, sizeof waits, "  pool empty %.1f/1k msgs", r->pool_waits_per_1k());
        }
        std::printf("  %-4s %-22s %8s %8.3f GB/s  snd %7.3f s/GB  rcv %7.3f s/GB  (%.0f msg/s)%s\n", r->transport.c_str(),
                    r->path.c_str(), human(r->size).c_str(), r->gbps(), r->snd_s_per_gb(), r->rcv_s_per_gb(),
                    r->msgs_per_s(), waits);
    }
    std::fflush(stdout);
}

// ---------------------------------------------------------------------------------------
// (a) oxide's pattern: a 12-byte header, then the payload, on a non-blocking AF_UNIX pair.
struct Header {
    uint32_t seq, size, tag;
};
static_assert(sizeof(Header) == 12, "oxide's header is 12 bytes");
constexpr uint32_t kTag = 0xB1167A5Eu;

void scenario_a() {
    if (opt.details) std::printf("(a) oxide's pattern: 12-byte header + payload, AF_UNIX SOCK_NONBLOCK pair\n");
    const size_t msgs = scaled(15000, 200);
    for (size_t payload : {size_t(0), size_t(64), size_t(4096)}) {
        constexpr size_t kVariants = 16;
        std::vector<std::vector<unsigned char>> payloads(kVariants);
        for (size_t v = 0; v < kVariants; v++) {
            payloads[v].resize(std::max<size_t>(payload, 1));
            for (size_t i = 0; i < payloads[v].size(); i++) payloads[v][i] = static_cast<unsigned char>(v * 97 + i * 13 + (i >> 8));
        }
        std::vector<Row*> rows = {new_row("a", "unix", "reference", payload),
                                  new_row("a", "unix", "send_blocking x2", payload),
                                  new_row("a", "unix", "sendv_blocking", payload)};
        if (g_up.lib != nullptr) rows.push_back(new_row("a", "unix", "upstream", payload));
        interleave(rows, [&](size_t variant, bool warm) {
            size_t n = warm ? msgs / 4 : msgs;
            int fds[2];
            unix_pair(fds);
            auto sender = [&] {
                for (size_t i = 0; i < n; i++) {
                    Header h{uint32_t(i), uint32_t(payload), kTag ^ uint32_t(i)};
                    unsigned char* p = payloads[i % kVariants].data();
                    int rc;
                    if (variant == 0 || variant == 3) {
                        // The reference, or upstream's socket.cpp: two send_blocking calls.
                        const Contender& c = variant == 0 ? g_ref : g_up;
                        rc = c.send_blocking(fds[0], reinterpret_cast<unsigned char*>(&h), sizeof h);
                        if (rc == 0 && payload > 0) rc = c.send_blocking(fds[0], p, payload);
                    } else if (variant == 1) {
                        rc = g_ours.send_blocking(fds[0], reinterpret_cast<unsigned char*>(&h), sizeof h);
                        if (rc == 0 && payload > 0) rc = g_ours.send_blocking(fds[0], p, payload);
                    } else {
                        iovec iov[2] = {{&h, sizeof h}, {p, payload}};
                        rc = blight_sendv_blocking(fds[0], iov, payload > 0 ? 2 : 1);
                    }
                    if (rc != 0) {
                        fail("(a) send", rc, variant);
                        return;
                    }
                }
            };
            auto receiver = [&] {
                // Each side's own allocating recv_blocking, header then payload, as oxide's
                // blight_message_from_socket reads (its memory released as it was allocated).
                const Contender& c = variant == 0 ? g_ref : variant == 3 ? g_up : g_ours;
                for (size_t i = 0; i < n; i++) {
                    unsigned char* got = nullptr;
                    int rc = c.recv_blocking(fds[1], &got, sizeof(Header));
                    Header h{};
                    if (rc == 0) {
                        std::memcpy(&h, got, sizeof h);
                        c.release(got);
                    }
                    if (rc == 0 && (h.seq != uint32_t(i) || h.size != payload || h.tag != (kTag ^ uint32_t(i)))) {
                        fail("(a) header", h.seq, i);
                        return;
                    }
                    if (rc == 0 && payload > 0) {
                        rc = c.recv_blocking(fds[1], &got, payload);
                        if (rc == 0) {
                            if (std::memcmp(got, payloads[i % kVariants].data(), payload) != 0) fail("(a) payload", i, payload);
                            c.release(got);
                        }
                    }
                    if (rc != 0) {
                        fail("(a) recv", rc, variant);
                        return;
                    }
                    g_checked_msgs.fetch_add(1, std::memory_order_relaxed);
                    g_checked_full.fetch_add(1, std::memory_order_relaxed);
                }
            };
            Sample s = run_threads(sender, receiver);
            s.msgs = double(n);
            s.bytes = double(n * (sizeof(Header) + payload));
            close_pair(fds);
            return s;
        });
        print_rows_msgs(rows);
        std::string p = std::to_string(payload) + "B";
        target("a.rate." + p, "(a) msg rate, send_blocking x2 / reference, payload " + p, rows[1]->msgs_per_s(),
               rows[0]->msgs_per_s(), true, 1.0);
        target("a.cpu." + p, "(a) sender CPU/msg, send_blocking x2 / reference, payload " + p,
               rows[1]->snd_us_per_msg(), rows[0]->snd_us_per_msg(), false, 1.0);
        double goal = payload == 64 ? 1.6 : payload == 4096 ? 1.2 : 1.0;
        target("a.vec.rate." + p, "(a) msg rate, sendv_blocking / reference, payload " + p, rows[2]->msgs_per_s(),
               rows[0]->msgs_per_s(), true, goal);
        if (rows.size() > 3) {
            target("a.up.rate." + p, "(a) msg rate, send_blocking x2 / upstream's socket.cpp, payload " + p,
                   rows[1]->msgs_per_s(), rows[3]->msgs_per_s(), true, 1.0);
            target("a.up.cpu." + p, "(a) sender CPU/msg, send_blocking x2 / upstream's socket.cpp, payload " + p,
                   rows[1]->snd_us_per_msg(), rows[3]->snd_us_per_msg(), false, 1.0);
            target_ratio("a.pr.rate." + p, "(a) the same rate, median of per-round ratios, payload " + p,
                         rows[1]->msgs_per_s(), rows[3]->msgs_per_s(), rows[1]->paired(*rows[3], rate_of), true, 1.0);
            target_ratio("a.pr.cpu." + p, "(a) the same sender CPU, median of per-round ratios, payload " + p,
                         rows[1]->snd_us_per_msg(), rows[3]->snd_us_per_msg(),
                         rows[1]->paired(*rows[3], snd_cpu_per_msg_of), false, 1.0);
        }
    }
}

// ---------------------------------------------------------------------------------------
// (b) A slow receiver: reads at most 64 KiB, then sleeps 1 ms. The sender's CPU for the
// same bytes is what waiting costs. The stream carries a periodic pattern, checked.
constexpr size_t kPeriod = 65521;  // prime: chunks never line up with it
std::vector<unsigned char> g_stream;
void ensure_stream(size_t max_chunk) {
    if (g_stream.size() >= kPeriod + max_chunk) return;
    g_stream.resize(kPeriod + max_chunk);
    for (size_t i = 0; i < g_stream.size(); i++) {
        size_t k = i % kPeriod;
        g_stream[i] = static_cast<unsigned char>(k * 7 + (k >> 7) * 3 + 1);
    }
}

void scenario_b() {
    const size_t chunk = 16 * 1024, read_max = 64 * 1024;
    const size_t total = scaled(4u << 20, 256 * 1024);
    if (opt.details) std::printf("(b) slow receiver (reads <= 64 KiB, then sleeps 1 ms): %s in %s sends, AF_UNIX\n",
                human(total).c_str(), human(chunk).c_str());
    ensure_stream(std::max(chunk, read_max));
    std::vector<Row*> rows = {new_row("b", "unix", "reference", chunk), new_row("b", "unix", "send_blocking", chunk)};
    interleave(rows, [&](size_t variant, bool warm) {
        size_t n = warm ? total / 4 : total;
        int fds[2];
        unix_pair(fds);
        auto sender = [&] {
            for (size_t off = 0; off < n; off += chunk) {
                size_t len = std::min(chunk, n - off);
                const unsigned char* p = g_stream.data() + off % kPeriod;
                int rc = variant == 0 ? reference::send_blocking(fds[0], p, len)
                                      : g_ours.send_blocking(fds[0], const_cast<unsigned char*>(p), len);
                if (rc != 0) {
                    fail("(b) send", rc, variant);
                    return;
                }
            }
        };
        auto receiver = [&] {
            std::vector<unsigned char> buf(read_max);
            size_t got = 0;
            while (got < n) {
                pollfd p{fds[1], POLLIN, 0};
                poll(&p, 1, -1);
                ssize_t r = recv(fds[1], buf.data(), read_max, MSG_DONTWAIT);
                if (r < 0 && (errno == EAGAIN || errno == EINTR)) continue;
                if (r <= 0) {
                    fail("(b) recv", r, errno);
                    return;
                }
                if (std::memcmp(buf.data(), g_stream.data() + got % kPeriod, size_t(r)) != 0) fail("(b) stream", got, r);
                got += size_t(r);
                g_checked_msgs.fetch_add(1, std::memory_order_relaxed);
                timespec ms{0, 1000000};
                nanosleep(&ms, nullptr);
            }
        };
        Sample s = run_threads(sender, receiver);
        s.bytes = double(n);
        s.msgs = double((n + chunk - 1) / chunk);
        close_pair(fds);
        return s;
    });
    for (auto* r : rows) {
        if (!opt.details) break;
        std::printf("  unix %-22s %8s sends  sender CPU %8.3f ms for %s (%6.3f s/GB)  wall %.3f s\n", r->path.c_str(),
                    human(r->size).c_str(), r->snd_cpu_s() * 1e3, human(total).c_str(), r->snd_s_per_gb(),
                    r->med([](const Sample& s) { return s.wall; }));
    }
    target("b.cpu", "(b) slow receiver: sender CPU, send_blocking / reference", rows[1]->snd_cpu_s(),
           rows[0]->snd_cpu_s(), false, 0.25);
}

// ---------------------------------------------------------------------------------------
// Large messages (c, d) and small ones through the zero-copy API (e): `size`-byte
// messages from a pool of buffers, each stamped with its sequence number.
enum class SendKind { Reference, Blocking, Zerocopy, RawSplice };

// The kernel's floor for (c): vmsplice + splice with no library code at all, the loop that
// blight_send_zerocopy's splice path runs minus everything that makes it safe and general
// (no registry, no completion tracking, no buffer table, no SIGPIPE guard: the benchmark
// ignores SIGPIPE). A 1 MiB pipe per socket (F_SETPIPE_SZ, as the library asks for),
// vmsplice without SPLICE_F_GIFT and with SPLICE_F_NONBLOCK, then splice
// SPLICE_F_MOVE | SPLICE_F_NONBLOCK into the SOCK_NONBLOCK socket until the pipe is empty,
// poll(POLLOUT) on EAGAIN. Without completion tracking the sender cannot know when the
// receiver is done with a buffer, so it may only resend buffers whose content never
// changes: they all carry the same content (stamped as message 0; the sender rewrites
// those same stamp bytes before each send, as the other rows write theirs), and the
// receiver checks every message against that constant content, page stamps and (sampled
// or --verify-all) full content.
struct RawSplicePipe {
    int rd = -1, wr = -1;
    size_t capacity = 0;
    bool open() {
        int p[2];
        if (pipe2(p, O_NONBLOCK | O_CLOEXEC) != 0) return false;
        rd = p[0];
        wr = p[1];
        int got = fcntl(wr, F_SETPIPE_SZ, 1 << 20);
        capacity = got > 0 ? size_t(got) : 16 * kPage;
        return true;
    }
    ~RawSplicePipe() {
        if (rd >= 0) close(rd);
        if (wr >= 0) close(wr);
    }
};

bool wait_pollout(int fd) {
    pollfd p{fd, POLLOUT, 0};
    while (poll(&p, 1, -1) < 0) {
        if (errno != EINTR) return false;
    }
    return true;
}

int raw_splice_send(RawSplicePipe& pipe, int fd, const unsigned char* data, size_t size) {
    size_t off = 0;
    while (off < size) {
        iovec iov{const_cast<unsigned char*>(data + off), std::min(size - off, pipe.capacity)};
        ssize_t queued = vmsplice(pipe.wr, &iov, 1, SPLICE_F_NONBLOCK);
        if (queued < 0) {
            if (errno == EINTR) continue;
            return -errno;  // the pipe is empty between messages: EAGAIN cannot happen here
        }
        ssize_t moved = 0;
        while (moved < queued) {
            ssize_t n = splice(pipe.rd, nullptr, fd, nullptr, size_t(queued - moved), SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
            if (n > 0) {
                moved += n;
            } else if (n < 0 && errno == EAGAIN) {
                if (!wait_pollout(fd)) return -errno;
            } else if (n < 0 && errno == EINTR) {
                continue;
            } else {
                return n == 0 ? -EPIPE : -errno;
            }
        }
        off += size_t(queued);
    }
    return 0;
}

struct StreamRun {
    int fds[2];
    size_t size, count;
    SendKind kind;
    RecvFn recv;
    Pool* pool;
    blight_zerocopy_stats stats{};
    size_t pool_waits = 0;
};

void stream_sender(StreamRun& r) {
    int fd = r.fds[0];
    Pool& pool = *r.pool;
    size_t low_water = pool.all.size() / 2;
    if (r.kind == SendKind::RawSplice) {
        // Set up inside the measured thread, as the library makes its pipe at the first send.
        RawSplicePipe pipe;
        if (!pipe.open()) {
            fail("(c) raw pipe2", errno, 0);
            return;
        }
        for (size_t i = 0; i < r.count; i++) {
            unsigned char* b = pool.all[i % pool.all.size()];
            // Every other row's sender writes its stamps (a store into each 4 KiB page,
            // which the receiver's core last read: a cache-line transfer per page) before
            // sending. The floor rewrites the same constant stamps, so that it pays that
            // harness cost too and the ratios compare sending, not stamping. Same bytes:
            // the content the receiver can see never changes.
            stamp(b, r.size, 0);
            int rc = raw_splice_send(pipe, fd, b, r.size);
            if (rc != 0) {
                fail("(c) raw splice send", rc, i);
                return;
            }
        }
        return;
    }
    for (size_t i = 0; i < r.count; i++) {
        unsigned char* b;
        while ((b = pool.take()) == nullptr) {
            // Every buffer is still in the kernel: wait for the receiver to consume one.
            r.pool_waits++;
            int n = blight_process_zerocopy_completions(fd, 10);
            if (n < 0) {
                fail("process_zerocopy_completions", n, 0);
                return;
            }
        }
        stamp(b, r.size, i);
        int rc;
        switch (r.kind) {
            case SendKind::Reference:
                rc = reference::send_blocking(fd, b, r.size);
                pool.give(b);
                break;
            case SendKind::Blocking:
                rc = g_ours.send_blocking(fd, b, r.size);
                pool.give(b);
                break;
            case SendKind::RawSplice:
                rc = -EINVAL;  // handled above
                break;
            case SendKind::Zerocopy: {
                blight_buffer_id_t id = 0;
                rc = blight_send_zerocopy(fd, b, r.size, pool_free_fn, &pool, &id);
                if (id != 0) blight_release_buffer(id);
                if (pool.available() < low_water) blight_process_zerocopy_completions(fd, 0);
                break;
            }
        }
        if (rc != 0) {
            fail("stream send", rc, int(r.kind));
            return;
        }
    }
    if (r.kind == SendKind::Zerocopy) {
        // The last buffers come back once the receiver has consumed them.
        while (pool.available() < pool.all.size()) {
            int n = blight_process_zerocopy_completions(fd, 100);
            if (n < 0) {
                fail("process_zerocopy_completions", n, 0);
                return;
            }
        }
    }
}

void stream_receiver(StreamRun& r) {
    std::vector<unsigned char> buf(r.size);
    for (size_t i = 0; i < r.count; i++) {
        int rc = r.recv(r.fds[1], buf.data(), ssize_t(r.size));
        if (rc != 0) {
            fail("stream recv", rc, i);
            return;
        }
        // The raw splice floor resends constant buffers, all stamped as message 0.
        check_message(buf.data(), r.size, r.kind == SendKind::RawSplice ? 0 : i, full_check(i));
    }
}

Sample stream_run(bool tcp, size_t size, size_t count, SendKind kind, RecvFn recv, Pool& pool,
                  blight_zerocopy_stats* stats) {
    StreamRun r{};
    if (tcp) tcp_pair(r.fds);
    else unix_pair(r.fds);
    r.size = size;
    r.count = count;
    r.kind = kind;
    r.recv = recv;
    r.pool = &pool;
    Sample s = run_threads([&] { stream_sender(r); }, [&] { stream_receiver(r); });
    s.bytes = double(size) * double(count);
    s.msgs = double(count);
    s.pool_waits = double(r.pool_waits);
    if (stats != nullptr) {
        blight_zerocopy_stats st{};
        if (blight_get_zerocopy_stats(r.fds[0], &st) == 0) add_stats(*stats, st);
    }
    close_pair(r.fds);
    return s;
}

size_t pool_count(size_t size) { return size <= 64 * 1024 ? 16 : size <= (1u << 20) ? 8 : 4; }

void scenario_c() {
    if (opt.details) std::printf("(c) large messages on AF_UNIX (SOCK_NONBLOCK pair)\n");
    std::vector<size_t> sizes = {64 * 1024, 1u << 20, 10u << 20};
    const size_t bytes = scaled(128u << 20, 2u << 20);
    for (size_t size : sizes) {
        Pool pool(pool_count(size), size);
        // The floor's buffers: as many as ours cycles through, identical, never modified.
        Pool raw_pool(pool_count(size), size);
        for (auto* b : raw_pool.all) stamp(b, size, 0);
        size_t count = std::max<size_t>(bytes / size, opt.mode == Options::Smoke ? 2 : 8);
        std::vector<Row*> rows = {new_row("c", "unix", "reference", size), new_row("c", "unix", "send_blocking", size),
                                  new_row("c", "unix", "send_zerocopy", size), new_row("c", "unix", "raw_splice", size)};
        Accounting acc{"c", "unix", size};
        interleave(rows, [&](size_t v, bool warm) {
            size_t n = warm ? std::max<size_t>(count / 4, 2) : count;
            SendKind kind = v == 0   ? SendKind::Reference
                            : v == 1 ? SendKind::Blocking
                            : v == 2 ? SendKind::Zerocopy
                                     : SendKind::RawSplice;
            RecvFn recv = v == 0 ? reference::recv_blocking_into : ours_recv;
            Sample s = stream_run(false, size, n, kind, recv, v == 3 ? raw_pool : pool, (v == 2 && !warm) ? &acc.st : nullptr);
            if (v == 2 && !warm) acc.sent += uint64_t(n) * size;
            return s;
        });
        print_rows_bytes(rows);
        g_accounting.push_back(acc);
        std::string h = human(size);
        // The floor is information, not a target: what the kernel's splice path costs here.
        Floor f{size, rows[3]->snd_s_per_gb(), rows[2]->snd_s_per_gb(), rows[0]->snd_s_per_gb(),
                rows[3]->gbps(), rows[2]->gbps(), rows[0]->gbps()};
        g_floors.push_back(f);
        if (opt.details) std::printf("  FLOOR %-6s sender CPU/GB: raw splice / reference %.3fx, send_zerocopy / reference %.3fx, "
                    "send_zerocopy / raw splice %.3fx; throughput raw / reference %.3fx, send_zerocopy / raw %.3fx\n",
                    h.c_str(), f.raw_cpu / f.ref_cpu, f.ours_cpu / f.ref_cpu, f.ours_cpu / f.raw_cpu,
                    f.raw_gbps / f.ref_gbps, f.ours_gbps / f.raw_gbps);
        std::fflush(stdout);
        target("c.tput." + h, "(c) throughput, send_blocking / reference, " + h, rows[1]->gbps(), rows[0]->gbps(), true, 0.95);
        target("c.zc.cpu." + h, "(c) sender CPU/GB, send_zerocopy (splice) / reference, " + h, rows[2]->snd_s_per_gb(),
               rows[0]->snd_s_per_gb(), false, 0.4);
        target("c.zc.tput." + h, "(c) throughput, send_zerocopy (splice) / reference, " + h, rows[2]->gbps(),
               rows[0]->gbps(), true, size == 64 * 1024 ? 1.2 : 1.0);
    }
}

void scenario_d() {
    if (opt.details) std::printf("(d) TCP loopback: reference, copying send and blight_send_zerocopy (completions processed in the loop)\n");
    std::vector<size_t> sizes = {4096, 16384, 64 * 1024, 256 * 1024, 1u << 20, 10u << 20};
    if (opt.mode == Options::Smoke) sizes = {4096, 64 * 1024, 1u << 20};
    const size_t bytes = scaled(64u << 20, 2u << 20);
    for (size_t size : sizes) {
        Pool pool(pool_count(size), size);
        size_t count = std::max<size_t>(bytes / size, opt.mode == Options::Smoke ? 2 : 8);
        // The reference row (upstream's loop on the same TCP pair) is what the summary
        // compares against; the targets compare the zero-copy API with our copying send.
        std::vector<Row*> rows = {new_row("d", "tcp", "reference", size), new_row("d", "tcp", "send_blocking", size),
                                  new_row("d", "tcp", "send_zerocopy", size)};
        Accounting acc{"d", "tcp", size};
        interleave(rows, [&](size_t v, bool warm) {
            size_t n = warm ? std::max<size_t>(count / 4, 2) : count;
            SendKind kind = v == 0 ? SendKind::Reference : v == 1 ? SendKind::Blocking : SendKind::Zerocopy;
            RecvFn recv = v == 0 ? reference::recv_blocking_into : ours_recv;
            Sample s = stream_run(true, size, n, kind, recv, pool, (v == 2 && !warm) ? &acc.st : nullptr);
            if (v == 2 && !warm) acc.sent += uint64_t(n) * size;
            return s;
        });
        print_rows_bytes(rows);
        g_accounting.push_back(acc);
        if (size >= 64 * 1024) {
            std::string h = human(size);
            target("d.tput." + h, "(d) TCP throughput, send_zerocopy / copying send, " + h, rows[2]->gbps(),
                   rows[1]->gbps(), true, 0.9);
        }
    }
}

void scenario_e() {
    if (opt.details) std::printf("(e) the zero-copy API on AF_UNIX small messages vs blight_send_blocking and the reference\n");
    const size_t msgs = scaled(15000, 200);
    for (size_t size : {size_t(12), size_t(64), size_t(512), size_t(4096)}) {
        Pool pool(64, size);
        // As in (d): the reference row is the summary's baseline, the target compares the
        // zero-copy API with send_blocking.
        std::vector<Row*> rows = {new_row("e", "unix", "reference", size), new_row("e", "unix", "send_blocking", size),
                                  new_row("e", "unix", "send_zerocopy", size)};
        Accounting acc{"e", "unix", size};
        interleave(rows, [&](size_t v, bool warm) {
            size_t n = warm ? msgs / 4 : msgs;
            SendKind kind = v == 0 ? SendKind::Reference : v == 1 ? SendKind::Blocking : SendKind::Zerocopy;
            RecvFn recv = v == 0 ? reference::recv_blocking_into : ours_recv;
            Sample s = stream_run(false, size, n, kind, recv, pool, (v == 2 && !warm) ? &acc.st : nullptr);
            if (v == 2 && !warm) acc.sent += uint64_t(n) * size;
            return s;
        });
        print_rows_msgs(rows);
        g_accounting.push_back(acc);
        std::string h = human(size);
        target("e.rate." + h, "(e) msg rate, send_zerocopy / send_blocking, AF_UNIX " + h, rows[2]->msgs_per_s(),
               rows[1]->msgs_per_s(), true, 0.9);
    }
}

// ---------------------------------------------------------------------------------------
// (f) Completion processing with N sends in flight: TCP loopback, threshold lowered so
// every small send is MSG_ZEROCOPY, each send its own buffer, ids released at once; the
// receiver drains everything; then blight_process_zerocopy_completions is timed (thread
// CPU and wall) until every send is complete.
// Waits (bounded) until the peer has acknowledged everything sent (SIOCOUTQ == 0): the
// kernel then releases the MSG_ZEROCOPY page references and queues the notifications,
// which it merges into one range. Without this, sends waiting for delayed ACKs hold
// socket option memory and the kernel refuses more MSG_ZEROCOPY sends with ENOBUFS
// (net.core.optmem_max), long before 10000 are in flight.
void wait_acked(int fd) {
    for (int i = 0; i < 400; i++) {
        int outq = 0;
        if (ioctl(fd, SIOCOUTQ, &outq) != 0 || outq == 0) return;
        usleep(500);
    }
}

void scenario_f() {
    if (opt.details) std::printf("(f) completion processing cost with N MSG_ZEROCOPY sends in flight (TCP loopback)\n");
    const size_t size = 256;
    size_t old_threshold = blight_zerocopy_threshold();
    blight_set_zerocopy_threshold(1);
    std::vector<size_t> ns = {100, 1000, 10000};
    std::vector<double> per_send_cpu;
    for (size_t n : ns) {
        std::vector<double> cpu_ns, wall_ns, inflight;
        int reps = rounds();
        for (int rep = -1; rep < reps; rep++) {
            if (rep < 0 && opt.mode == Options::Smoke) continue;
            int fds[2];
            tcp_pair(fds);
            int one = 1;
            setsockopt(fds[0], IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            std::vector<unsigned char*> bufs(n);
            std::atomic<size_t> freed{0};
            struct Ctx {
                std::atomic<size_t>* freed;
            } ctx{&freed};
            // Only counts: the buffers are freed after the measurement, so that malloc's
            // heap trimming is not billed to completion processing.
            auto count_free = [](blight_data_t, size_t, void* u) { static_cast<Ctx*>(u)->freed->fetch_add(1); };
            for (size_t i = 0; i < n; i++) {
                bufs[i] = alloc_buffer(size);
                stamp(bufs[i], size, i);
            }
            std::thread rt([&] {
                std::vector<unsigned char> buf(size);
                for (size_t i = 0; i < n; i++) {
                    int rc = g_ours.recv_blocking_into(fds[1], buf.data(), size);
                    if (rc != 0) {
                        fail("(f) recv", rc, i);
                        return;
                    }
                    check_message(buf.data(), size, i, true);
                }
            });
            for (size_t i = 0; i < n; i++) {
                if (i % 256 == 255) wait_acked(fds[0]);
                blight_buffer_id_t id = 0;
                int rc = blight_send_zerocopy(fds[0], bufs[i], size, count_free, &ctx, &id);
                if (rc != 0) fail("(f) send", rc, i);
                if (id != 0) blight_release_buffer(id);
            }
            rt.join();
            // Let the last ACKs (which release the kernel's references) arrive first: this
            // measures processing, not waiting.
            usleep(20000);
            blight_zerocopy_stats st{};
            blight_get_zerocopy_stats(fds[0], &st);
            size_t pending = st.pending_sends;
            double c0 = thread_cpu_s(), t0 = now_s();
            size_t done = 0;
            while (done < pending) {
                int k = blight_process_zerocopy_completions(fds[0], 1000);
                if (k <= 0) {
                    fail("(f) completions", k, done);
                    break;
                }
                done += size_t(k);
            }
            double cpu = thread_cpu_s() - c0, wall = now_s() - t0;
            close_pair(fds);
            if (freed.load() != n) fail("(f) buffers freed", freed.load(), n);
            for (auto* b : bufs) std::free(b);
            if (rep < 0 || pending == 0) continue;
            cpu_ns.push_back(cpu / pending * 1e9);
            wall_ns.push_back(wall / pending * 1e9);
            inflight.push_back(double(pending));
        }
        Row* row = new_row("f", "tcp", "process_completions", n);
        Sample s;
        s.msgs = median(inflight);
        s.snd_cpu = median(cpu_ns) * 1e-9 * s.msgs;
        s.wall = median(wall_ns) * 1e-9 * s.msgs;
        row->samples.push_back(s);
        if (opt.details) std::printf("  tcp  %6zu sends, %6.0f in flight when processed: %8.1f ns CPU/completion  %8.1f ns wall/completion\n",
                    n, median(inflight), median(cpu_ns), median(wall_ns));
        per_send_cpu.push_back(median(cpu_ns));
        target_abs("f.cost." + std::to_string(n), "(f) CPU per completed send (us), " + std::to_string(n) + " in flight",
                   median(cpu_ns) / 1000.0, false, 1.0);
    }
    blight_set_zerocopy_threshold(old_threshold);
    target_abs("f.flat", "(f) flatness: cost at 10000 / cost at 100 in flight", per_send_cpu.back() / per_send_cpu.front(),
               false, 2.0);
}

// ---------------------------------------------------------------------------------------
// Output.
bool accounting_adds_up(const Accounting& a) {
    uint64_t sum = a.st.zerocopy_bytes + a.st.splice_bytes + a.st.copied_bytes;
    return sum == a.sent && a.st.kernel_copied_bytes <= a.st.zerocopy_bytes;
}

// Records the accounting target; prints the table with --details, and always when a row
// does not add up (nothing wrong is hidden by the short output). Returns the rows that add up.
size_t check_accounting() {
    size_t ok_rows = std::count_if(g_accounting.begin(), g_accounting.end(), accounting_adds_up);
    bool all_ok = ok_rows == g_accounting.size();
    if (!g_accounting.empty()) {
        target_abs("d.accounting", "(c,d,e) zerocopy + splice + copied bytes == bytes sent", all_ok ? 1 : 0, true, 1);
    }
    if (!opt.details && all_ok) return ok_rows;
    std::printf("\nByte accounting of blight_send_zerocopy (blight_get_zerocopy_stats, summed over measured runs)\n");
    std::printf("  %-4s %-4s %8s %14s %14s %14s %14s %14s %14s  %s\n", "scn", "net", "size", "sent", "zerocopy", "(kernel copied)",
                "splice", "copied", "zc+splice+copy", "adds up");
    for (auto& a : g_accounting) {
        uint64_t sum = a.st.zerocopy_bytes + a.st.splice_bytes + a.st.copied_bytes;
        bool ok = accounting_adds_up(a);
        std::printf("  %-4s %-4s %8s %14" PRIu64 " %14" PRIu64 " %14" PRIu64 " %14" PRIu64 " %14" PRIu64 " %14" PRIu64 "  %s\n",
                    a.scenario.c_str(), a.transport.c_str(), human(a.size).c_str(), a.sent, a.st.zerocopy_bytes,
                    a.st.kernel_copied_bytes, a.st.splice_bytes, a.st.copied_bytes, sum, ok ? "yes" : "NO");
    }
    return ok_rows;
}

size_t targets_passed() {
    return std::count_if(g_targets.begin(), g_targets.end(), [](const Target& t) { return t.pass; });
}

void print_targets() {
    std::printf("\nTargets (ratios of medians measured in this run; a.pr.*: medians of per-round ratios)\n");
    std::printf("  %-16s %-70s %12s %12s %8s %8s  %s\n", "id", "what", "ours", "reference", "ratio", "target", "result");
    for (auto& t : g_targets) {
        char goal[32];
        std::snprintf(goal, sizeof goal, "%s%.2f", t.at_least ? ">=" : "<=", t.goal);
        char ref[32] = "-";
        if (std::isfinite(t.ref)) std::snprintf(ref, sizeof ref, "%.4g", t.ref);
        std::printf("  %-16s %-70s %12.4g %12s %8.3f %8s  %s\n", t.id.c_str(), t.what.c_str(), t.ours, ref, t.ratio, goal,
                    t.pass ? "PASS" : "MISS");
    }
    std::printf("  %zu of %zu targets PASS (docs/BENCHMARKS.md: what limits each MISS)\n", targets_passed(), g_targets.size());
    if (!g_floors.empty()) {
        std::printf("\nKernel floor for (c) (information, not a target): sender CPU per GB, same run, ratios of medians\n");
        std::printf("  %-8s %12s %12s %12s %14s %14s %14s\n", "size", "raw s/GB", "ours s/GB", "ref s/GB", "raw / ref",
                    "ours / ref", "ours / raw");
        for (auto& f : g_floors) {
            std::printf("  %-8s %12.4f %12.4f %12.4f %13.3fx %13.3fx %13.3fx\n", human(f.size).c_str(), f.raw_cpu, f.ours_cpu,
                        f.ref_cpu, f.raw_cpu / f.ref_cpu, f.ours_cpu / f.ref_cpu, f.ours_cpu / f.raw_cpu);
        }
        std::printf("  raw = vmsplice + splice with no library code (the kernel's cost); a target of 0.4x is\n"
                    "  reachable only where raw / ref is below 0.4x\n");
    }
}

// The summary: every call of ours against upstream's loop (the "reference" row of the
// same scenario, size and run), and the path its bytes took.
struct SummaryLine {
    const Row* row;
    const Row* ref;
    double rate, cpu;  // ours / upstream: messages per second, sender CPU per message
    std::string path;
};

const Accounting* accounting_of(const Row& r) {
    for (auto& a : g_accounting) {
        if (a.scenario == r.scenario && a.transport == r.transport && a.size == r.size) return &a;
    }
    return nullptr;
}

std::string share(uint64_t part, uint64_t whole) {
    char b[32];
    double pct = 100.0 * double(part) / double(whole);
    if (part == whole) return "100%";
    if (pct < 0.1) return "<0.1%";
    std::snprintf(b, sizeof b, pct < 99.95 ? "%.1f%%" : ">99.9%%", pct);
    return b;
}

// Where the bytes of one row went: the statistics of send_zerocopy, else an ordinary send.
std::string path_of(const Row& r) {
    if (r.path != "send_zerocopy") return "copied";
    const Accounting* a = accounting_of(r);
    if (a == nullptr || a->sent == 0) return "?";
    std::string out;
    bool copied = false;
    auto add = [&](const char* what, uint64_t bytes, bool copy) {
        if (bytes == 0) return;
        out += out.empty() ? "" : ", ";
        if (copy && !copied) out += "copied: ";
        copied |= copy;
        out += std::string(what) + " " + share(bytes, a->sent);
    };
    // "zero-copy 5%, copied: kernel 10%, fallback 85%"
    add("spliced", a->st.splice_bytes, false);
    add("zero-copy", a->st.zerocopy_bytes - a->st.kernel_copied_bytes, false);
    add("kernel", a->st.kernel_copied_bytes, true);
    add("fallback", a->st.copied_bytes, true);
    if (!accounting_adds_up(*a)) out += " (DOES NOT ADD UP)";
    return out;
}

std::vector<SummaryLine> summary() {
    std::vector<SummaryLine> out;
    for (auto& ref : g_rows) {
        if (ref.path != "reference") continue;
        for (auto& r : g_rows) {
            if (&r == &ref || r.scenario != ref.scenario || r.transport != ref.transport || r.size != ref.size ||
                r.path == "reference" || r.path == "raw_splice" || r.path == "upstream") {
                continue;
            }
            out.push_back({&r, &ref, r.msgs_per_s() / ref.msgs_per_s(), r.snd_us_per_msg() / ref.snd_us_per_msg(), path_of(r)});
        }
    }
    return out;
}

const char* scenario_title(const std::string& s, int line) {
    static const char* t[][2] = {{"(a) AF_UNIX", "oxide's pattern"}, {"(b) AF_UNIX", "slow receiver"},
                                 {"(c) AF_UNIX", "large messages"},  {"(d) TCP loopback", "large messages"},
                                 {"(e) AF_UNIX", "small messages"}};
    int i = s[0] - 'a';
    return i >= 0 && i < 5 ? t[i][line] : "";
}

void print_summary() {
    auto lines = summary();
    std::printf("\nOurs / upstream's send loop, medians of the same run (%s)\n",
                opt.mode == Options::Full    ? "full mode"
                : opt.mode == Options::Smoke ? "smoke mode: one short round, the timings mean nothing"
                                             : "quick mode: a ratio can move 20 % between runs");
    std::printf("  %-16s %-6s %-13s    %s\n", "", "", "send_blocking", "the other call");
    std::printf("  %-16s %-6s %6s %6s    %-16s %6s %6s  %s\n", "scenario", "size", "rate", "CPU", "call", "rate", "CPU",
                "path of its bytes");
    // One line per scenario and size: send_blocking, then the other call (sendv_blocking in
    // (a), send_zerocopy in (c) to (e)), each against the reference row of that size.
    std::string prev_scn;
    int scn_line = 0;
    for (size_t i = 0; i < lines.size(); i++) {
        const Row& r = *lines[i].row;
        if (r.path.rfind("send_blocking", 0) != 0) continue;
        const SummaryLine* other = nullptr;
        for (auto& o : lines) {
            if (o.ref == lines[i].ref && o.row != &r) other = &o;
        }
        if (r.scenario != prev_scn) scn_line = 0;
        const char* title = scn_line < 2 ? scenario_title(r.scenario, scn_line) : "";
        scn_line++;
        prev_scn = r.scenario;
        std::printf("  %-16s %-6s %5.2fx %5.2fx", title, human(r.size).c_str(), lines[i].rate, lines[i].cpu);
        if (other != nullptr) {
            std::printf("    %-16s %5.2fx %5.2fx  %s", other->row->path.c_str(), other->rate, other->cpu, other->path.c_str());
        }
        std::printf("\n");
    }
    // (a) against upstream's own socket.cpp (the anchor): send_blocking x2, same run.
    std::string up;
    for (auto& u : g_rows) {
        if (u.path != "upstream") continue;
        for (auto& r : g_rows) {
            if (r.scenario == u.scenario && r.size == u.size && r.path == "send_blocking x2") {
                char b[96];
                std::snprintf(b, sizeof b, "%s%s %.2fx %.2fx", up.empty() ? "" : ", ", human(r.size).c_str(),
                              r.msgs_per_s() / u.msgs_per_s(), r.snd_us_per_msg() / u.snd_us_per_msg());
                up += b;
            }
        }
    }
    if (!up.empty()) {
        std::printf("  %-16s send_blocking / upstream's own socket.cpp (rate, CPU): %s\n", "(a) the anchor", up.c_str());
    }
    std::vector<const Row*> f;
    for (auto& r : g_rows) {
        if (r.scenario == "f") f.push_back(&r);
    }
    if (!f.empty()) {
        std::string ns, counts;
        for (auto* r : f) {
            char b[32];
            std::snprintf(b, sizeof b, "%s%.0f", ns.empty() ? "" : " / ", r->snd_us_per_msg() * 1000);
            ns += b;
            counts += (counts.empty() ? "" : " / ") + std::to_string(r->size);
        }
        std::printf("  %-16s completing a MSG_ZEROCOPY send costs %s ns of CPU with %s in flight\n", "(f) TCP loopback",
                    ns.c_str(), counts.c_str());
    }
    if (!lines.empty()) {
        std::printf(
            "  size  message size; (a): payload after oxide's 12-byte header; (b): each send of one long stream\n"
            "  rate  messages per second, ours / upstream: above 1.00x ours is faster\n"
            "  CPU   the sending thread's CPU time per message, ours / upstream: below 1.00x ours is cheaper\n"
            "  call  (a): header + payload in one sendv_blocking, not two send_blocking; (c)-(e): the zero-copy API\n"
            "  path  spliced, zero-copy: the sender copied nothing; copied by the kernel (MSG_ZEROCOPY, loopback)\n"
            "        or by the library's fallback (a plain send: under %zu bytes, or after kernel copies)\n",
            blight_zerocopy_threshold());
    }
}

std::string jnum(double v) {
    if (!std::isfinite(v)) return "null";
    char b[64];
    std::snprintf(b, sizeof b, "%.6g", v);
    return b;
}

std::string jstr(const std::string& s) {
    std::string o = "\"";
    for (char c : s) {
        if (c == '"' || c == '\\') o += '\\';
        o += c;
    }
    return o + "\"";
}

// One record per line, so that plot.sh can read it with awk.
bool write_json(const std::string& path) {
    FILE* f = std::fopen(path.c_str(), "w");
    if (f == nullptr) {
        std::perror(path.c_str());
        return false;
    }
    utsname u{};
    uname(&u);
    const char* mode = opt.mode == Options::Full ? "full" : opt.mode == Options::Smoke ? "smoke" : "quick";
    std::fprintf(f, "{\n\"mode\": \"%s\", \"rounds\": %d, \"cpus\": %u, \"kernel\": %s, \"threshold\": %zu,\n", mode,
                 rounds(), std::thread::hardware_concurrency(), jstr(u.release).c_str(), blight_zerocopy_threshold());
    std::fprintf(f, "\"verification\": {\"failures\": %" PRIu64 ", \"messages_checked\": %" PRIu64
                    ", \"fully_checked\": %" PRIu64 "},\n",
                 g_failures.load(), g_checked_msgs.load(), g_checked_full.load());
    std::fprintf(f, "\"results\": [\n");
    for (size_t i = 0; i < g_rows.size(); i++) {
        const Row& r = g_rows[i];
        std::fprintf(f,
                     "{\"scenario\": %s, \"transport\": %s, \"path\": %s, \"size\": %zu, \"runs\": %zu, \"msgs_per_s\": %s, "
                     "\"gb_per_s\": %s, \"snd_cpu_us_per_msg\": %s, \"rcv_cpu_us_per_msg\": %s, \"snd_cpu_s_per_gb\": %s, "
                     "\"rcv_cpu_s_per_gb\": %s, \"snd_cpu_s\": %s, \"snd_sleeps_per_msg\": %s, \"rcv_sleeps_per_msg\": %s}%s\n",
                     jstr(r.scenario).c_str(), jstr(r.transport).c_str(), jstr(r.path).c_str(), r.size, r.samples.size(),
                     jnum(r.msgs_per_s()).c_str(), jnum(r.gbps()).c_str(), jnum(r.snd_us_per_msg()).c_str(),
                     jnum(r.rcv_us_per_msg()).c_str(), jnum(r.snd_s_per_gb()).c_str(), jnum(r.rcv_s_per_gb()).c_str(),
                     jnum(r.snd_cpu_s()).c_str(), jnum(r.snd_sleeps_per_msg()).c_str(), jnum(r.rcv_sleeps_per_msg()).c_str(),
                     i + 1 < g_rows.size() ? "," : "");
    }
    std::fprintf(f, "],\n\"accounting\": [\n");
    for (size_t i = 0; i < g_accounting.size(); i++) {
        const Accounting& a = g_accounting[i];
        std::fprintf(f,
                     "{\"scenario\": %s, \"transport\": %s, \"size\": %zu, \"sent_bytes\": %" PRIu64 ", \"zerocopy_bytes\": %" PRIu64
                     ", \"kernel_copied_bytes\": %" PRIu64 ", \"splice_bytes\": %" PRIu64 ", \"copied_bytes\": %" PRIu64
                     ", \"zerocopy_sends\": %" PRIu64 ", \"kernel_copied_sends\": %" PRIu64 ", \"splice_sends\": %" PRIu64
                     ", \"copied_sends\": %" PRIu64 ", \"enobufs_retries\": %" PRIu64 "}%s\n",
                     jstr(a.scenario).c_str(), jstr(a.transport).c_str(), a.size, a.sent, a.st.zerocopy_bytes,
                     a.st.kernel_copied_bytes, a.st.splice_bytes, a.st.copied_bytes, a.st.zerocopy_sends,
                     a.st.kernel_copied_sends, a.st.splice_sends, a.st.copied_sends, a.st.enobufs_retries,
                     i + 1 < g_accounting.size() ? "," : "");
    }
    std::fprintf(f, "],\n\"floor\": [\n");
    for (size_t i = 0; i < g_floors.size(); i++) {
        const Floor& x = g_floors[i];
        std::fprintf(f,
                     "{\"scenario\": \"c\", \"size\": %zu, \"raw_snd_cpu_s_per_gb\": %s, \"ours_snd_cpu_s_per_gb\": %s, "
                     "\"ref_snd_cpu_s_per_gb\": %s, \"raw_over_ref\": %s, \"ours_over_ref\": %s, \"ours_over_raw\": %s, "
                     "\"raw_gb_per_s\": %s, \"ours_gb_per_s\": %s, \"ref_gb_per_s\": %s}%s\n",
                     x.size, jnum(x.raw_cpu).c_str(), jnum(x.ours_cpu).c_str(), jnum(x.ref_cpu).c_str(),
                     jnum(x.raw_cpu / x.ref_cpu).c_str(), jnum(x.ours_cpu / x.ref_cpu).c_str(),
                     jnum(x.ours_cpu / x.raw_cpu).c_str(), jnum(x.raw_gbps).c_str(), jnum(x.ours_gbps).c_str(),
                     jnum(x.ref_gbps).c_str(), i + 1 < g_floors.size() ? "," : "");
    }
    std::fprintf(f, "],\n\"summary\": [\n");
    auto lines = summary();
    for (size_t i = 0; i < lines.size(); i++) {
        const SummaryLine& l = lines[i];
        // No "gb_per_s" key here: plot.sh picks its series by that key.
        std::fprintf(f,
                     "{\"scenario\": %s, \"transport\": %s, \"path\": %s, \"size\": %zu, \"baseline\": \"reference\", "
                     "\"rate_over_ref\": %s, \"snd_cpu_over_ref\": %s, \"bytes_went\": %s}%s\n",
                     jstr(l.row->scenario).c_str(), jstr(l.row->transport).c_str(), jstr(l.row->path).c_str(), l.row->size,
                     jnum(l.rate).c_str(), jnum(l.cpu).c_str(), jstr(l.path).c_str(), i + 1 < lines.size() ? "," : "");
    }
    std::fprintf(f, "],\n\"targets\": [\n");
    for (size_t i = 0; i < g_targets.size(); i++) {
        const Target& t = g_targets[i];
        std::fprintf(f, "{\"id\": %s, \"what\": %s, \"ours\": %s, \"reference\": %s, \"ratio\": %s, \"goal\": %s%s, \"pass\": %s}%s\n",
                     jstr(t.id).c_str(), jstr(t.what).c_str(), jnum(t.ours).c_str(), jnum(t.ref).c_str(),
                     jnum(t.ratio).c_str(), t.at_least ? "\">=" : "\"<=", (jnum(t.goal) + "\"").c_str(),
                     t.pass ? "true" : "false", i + 1 < g_targets.size() ? "," : "");
    }
    std::fprintf(f, "]\n}\n");
    return std::fclose(f) == 0;
}

void usage() {
    std::printf(
        "usage: blight-bench [--full | --smoke] [--targets] [--details] [--json PATH] [--only abcdef]\n"
        "                    [--rounds N] [--verify-all]\n"
        "  (default)     quick mode, under a minute on 2 cores: prints only the summary (ours /\n"
        "                upstream per scenario, and the path the bytes took)\n"
        "  --full        careful numbers: 11 rounds, 3x the work per round of quick mode; prints\n"
        "                everything (--details and --targets)\n"
        "  --smoke       a few seconds: one round of everything, every message fully verified;\n"
        "                prints everything\n"
        "  --targets     also print the target scoreboard (PASS/MISS) and (c)'s kernel floor\n"
        "  --details     also print every row's medians (rates, CPU, sleeps) and the byte accounting\n"
        "  --json PATH   where the results go (default bench-results.json)\n"
        "  --only LIST   only these scenarios, e.g. --only ac\n"
        "  --rounds N    measured rounds per variant (interleaved)\n"
        "  --verify-all  check the full content of every message (default: stamps on every\n"
        "                page of every message, full content of every 16th)\n"
        "The JSON always holds everything: every row, the byte accounting, the floor, the summary\n"
        "and the targets.\n"
        "exit code: 0 (targets MISSed included), 1 when data verification failed, 2 usage\n");
}

}  // namespace

int main(int argc, char** argv) {
    for (int i = 1; i < argc; i++) {
        std::string a = argv[i];
        if (a == "--full") opt.mode = Options::Full;
        else if (a == "--smoke") opt.mode = Options::Smoke;
        else if (a == "--verify-all") opt.verify_all = true;
        else if (a == "--targets") opt.targets = true;
        else if (a == "--details") opt.details = true;
        else if (a == "--json" && i + 1 < argc) opt.json = argv[++i];
        else if (a == "--only" && i + 1 < argc) opt.only = std::set<char>(argv[i + 1], argv[i + 1] + std::strlen(argv[i + 1])), i++;
        else if (a == "--rounds" && i + 1 < argc) opt.rounds = std::atoi(argv[++i]);
        else if (a == "-h" || a == "--help") {
            usage();
            return 0;
        } else {
            usage();
            return 2;
        }
    }
    if (opt.mode == Options::Smoke) opt.verify_all = true;
    if (opt.mode != Options::Quick) opt.details = opt.targets = true;
    signal(SIGPIPE, SIG_IGN);
    load_contenders();
    const char* mode = opt.mode == Options::Full ? "full" : opt.mode == Options::Smoke ? "smoke" : "quick";
    std::printf("blight-bench (%s mode, %d interleaved rounds per variant, %u CPUs): ours vs the upstream algorithm\n",
                mode, rounds(), std::thread::hardware_concurrency());
    if (opt.details) std::printf("\n");
    double t0 = now_s();
    auto want = [](char c) { return opt.only.empty() || opt.only.count(c) > 0; };
    // Without --details the scenarios print nothing: one progress line instead.
    bool first = true;
    auto run = [&](char c, void (*scenario)()) {
        if (!want(c)) return;
        if (!opt.details) {
            std::printf("%s(%c)", first ? "measuring " : " ", c);
            std::fflush(stdout);
        }
        first = false;
        scenario();
    };
    run('a', scenario_a);
    run('b', scenario_b);
    run('c', scenario_c);
    run('d', scenario_d);
    run('e', scenario_e);
    run('f', scenario_f);
    if (!opt.details) std::printf(" done\n");
    size_t accounting_ok = check_accounting();
    if (opt.targets) print_targets();
    print_summary();
    bool json_ok = write_json(opt.json);
    std::printf("\nverification: %" PRIu64 " messages checked (%" PRIu64 " in full), %" PRIu64 " failures",
                g_checked_msgs.load(), g_checked_full.load(), g_failures.load());
    if (!g_accounting.empty()) {
        std::printf("; paths add up to the bytes sent in %zu of %zu rows", accounting_ok, g_accounting.size());
    }
    std::printf("\n");
    if (!opt.targets && !g_targets.empty()) {
        std::printf("targets: %zu of %zu PASS (the scoreboard: --targets or --full; docs/BENCHMARKS.md explains each MISS)\n",
                    targets_passed(), g_targets.size());
    }
    std::printf("results: %s%s (every row, byte accounting, summary, targets)\nelapsed: %.1f s\n", opt.json.c_str(),
                json_ok ? "" : " (NOT WRITTEN)", now_s() - t0);
    if (g_failures.load() > 0) {
        std::fprintf(stderr, "blight-bench: DATA VERIFICATION FAILED\n");
        return 1;
    }
    return json_ok ? 0 : 1;
}
