// Out of memory on demand (issue #16, docs/RELIABILITY.md): this executable replaces
// malloc and friends with wrappers that can be told to fail, and checks that every
// allocation the library makes on a send path fails cleanly: -ENOMEM with nothing sent and
// nothing taken (id 0, free_fn not run, the peer reads nothing), or a complete send; never
// an abort. Not built with the sanitizers (they own malloc).
#include <gtest/gtest.h>
#include <malloc.h>

#include <atomic>
#include <cstdlib>
#include <thread>

#include "socket_test_support.h"
#include "zc_util.h"

extern "C" {
void* __libc_malloc(size_t);
void* __libc_calloc(size_t, size_t);
void* __libc_realloc(void*, size_t);
void* __libc_memalign(size_t, size_t);
}

namespace {
// Allocations left before the next one fails (negative: never fail); with g_fail_all,
// every one from then on fails.
std::atomic<long> g_countdown{-1};
std::atomic<bool> g_fail_all{false};
std::atomic<long> g_failed{0};

bool fail_now() {
    if (g_fail_all.load(std::memory_order_relaxed)) {
        g_failed++;
        return true;
    }
    long left = g_countdown.load(std::memory_order_relaxed);
    if (left < 0) return false;
    if (g_countdown.fetch_sub(1) == 0) {
        g_failed++;
        return true;
    }
    return false;
}
}  // namespace

extern "C" void* malloc(size_t n) {
    if (fail_now()) {
        errno = ENOMEM;
        return nullptr;
    }
    return __libc_malloc(n);
}
extern "C" void* calloc(size_t a, size_t b) {
    if (fail_now()) {
        errno = ENOMEM;
        return nullptr;
    }
    return __libc_calloc(a, b);
}
extern "C" void* realloc(void* p, size_t n) {
    if (fail_now()) {
        errno = ENOMEM;
        return nullptr;
    }
    return __libc_realloc(p, n);
}
extern "C" int posix_memalign(void** out, size_t align, size_t n) {
    if (fail_now()) return ENOMEM;
    void* p = __libc_memalign(align, n);
    if (!p) return ENOMEM;
    *out = p;
    return 0;
}
extern "C" void* aligned_alloc(size_t align, size_t n) {
    if (fail_now()) {
        errno = ENOMEM;
        return nullptr;
    }
    return __libc_memalign(align, n);
}
extern "C" void* memalign(size_t align, size_t n) {
    if (fail_now()) {
        errno = ENOMEM;
        return nullptr;
    }
    return __libc_memalign(align, n);
}

namespace {

using namespace blight_test;
using namespace blight_sock_test;
using namespace zc_test;

// The logger formats its lines on the heap (its own lane, issue #20a): kept quiet here.
const int g_quiet = ::setenv("BLIGHT_SOCKET_LOG", "off", 1);

// One send of `n` bytes on a new AF_UNIX pair (splice path for large n) with the k-th
// allocation of the call failing (k < 0: every allocation). Returns 0 if the outcome was
// clean, else the failed check's line.
int send_with_failure(long k, size_t n, bool tcp) {
    (void)g_quiet;
    // Warm up: the logger, the threshold, the fork handlers, this thread's state.
    {
        Pair w = unix_pair(false);
        unsigned char b[16] = {};
        blight_buffer_id_t id = 0;
        ZC_CHILD_CHECK(blight_send_zerocopy(w.a.get(), b, sizeof b, nullptr, nullptr, &id) == 0);
        blight_release_buffer(id);
    }
    Pair p = tcp ? tcp_pair(AF_INET) : unix_pair(false);
    auto* buf = new unsigned char[n];
    fill_pattern(buf, n, 42);
    FreeCounter fc;
    std::vector<unsigned char> got;
    got.reserve(n);
    std::atomic<bool> go{false};
    std::thread reader([&] {
        while (!go) std::this_thread::sleep_for(std::chrono::milliseconds(1));
        unsigned char tmp[65536];
        for (;;) {
            ssize_t r = ::recv(p.b.get(), tmp, sizeof tmp, 0);
            if (r <= 0) break;
            got.insert(got.end(), tmp, tmp + r);
            if (got.size() >= n) break;
        }
    });
    blight_buffer_id_t id = 0;
    if (k < 0)
        g_fail_all = true;
    else
        g_countdown = k;
    g_failed = 0;
    go = true;
    int r = blight_send_zerocopy(p.a.get(), buf, static_cast<ssize_t>(n), count_only_free, &fc, &id);
    g_fail_all = false;
    g_countdown = -1;
    ::shutdown(p.a.get(), SHUT_WR);
    reader.join();
    // With every allocation failing, a socket the library has not seen cannot be registered.
    if (k < 0) ZC_CHILD_CHECK(r == -ENOMEM);
    if (r == -ENOMEM) {
        ZC_CHILD_CHECK(id == 0);
        ZC_CHILD_CHECK(got.empty());
        ZC_CHILD_CHECK(fc.calls.load() == 0);
    } else {
        ZC_CHILD_CHECK(r == 0);
        ZC_CHILD_CHECK(id != 0);
        ZC_CHILD_CHECK(got.size() == n && first_mismatch(got.data(), n, 42) < 0);
        ZC_CHILD_CHECK(blight_release_buffer(id) == 0);
        for (int i = 0; i < 100 && fc.calls.load() == 0; i++) blight_process_zerocopy_completions(p.a.get(), 20);
        ZC_CHILD_CHECK(fc.calls.load() == 1);
    }
    delete[] buf;
    return 0;
}

TEST(HostileAlloc, EveryAllocationFailing) {
    for (bool tcp : {false, true}) {
        for (size_t n : {size_t{100}, size_t{256 * 1024}}) {
            auto res = run_in_child([&] { return send_with_failure(-1, n, tcp); }, std::chrono::seconds(20));
            EXPECT_TRUE(res.ok()) << (tcp ? "tcp " : "unix ") << n << " bytes: " << res.describe();
        }
    }
}

TEST(HostileAlloc, EachAllocationFailingInTurn) {
    for (bool tcp : {false, true}) {
        for (size_t n : {size_t{100}, size_t{256 * 1024}}) {
            for (long k = 0; k < 24; k++) {
                auto res = run_in_child([&] { return send_with_failure(k, n, tcp); }, std::chrono::seconds(20));
                EXPECT_TRUE(res.ok()) << (tcp ? "tcp " : "unix ") << n << " bytes, allocation " << k << " failing: "
                                      << res.describe();
            }
        }
    }
}

}  // namespace
