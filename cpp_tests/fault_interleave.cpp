// Interleavings forced deterministically: this file interposes fstat(), which the library
// calls to check a descriptor's identity, so that a test can stop a thread right after
// that call (as a preemption would) and change the descriptor under it. Unarmed, the
// interposer only forwards to the real fstat.
#include <dlfcn.h>
#include <gtest/gtest.h>
#include <semaphore.h>
#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <thread>
#include <vector>

#include "blight_socket.h"
#include "test_util.h"

using namespace blight_test;

namespace {

// The thread that armed the pause stops once, right after its next fstat returns.
thread_local bool t_pause_after_fstat = false;
sem_t g_fstat_done, g_resume;

void after_fstat() {
    if (t_pause_after_fstat) {
        t_pause_after_fstat = false;
        sem_post(&g_fstat_done);
        sem_wait(&g_resume);
    }
}

template <typename Fn>
Fn real(const char* name) {
    return reinterpret_cast<Fn>(dlsym(RTLD_NEXT, name));
}

}  // namespace

extern "C" int fstat(int fd, struct stat* st) {
    static auto next = real<int (*)(int, struct stat*)>("fstat");
    int r = next(fd, st);
    after_fstat();
    return r;
}

extern "C" int fstat64(int fd, struct stat64* st) {
    static auto next = real<int (*)(int, struct stat64*)>("fstat64");
    int r = next(fd, st);
    after_fstat();
    return r;
}

namespace {

std::atomic<int> g_frees{0};
void scribble_free(blight_data_t data, size_t size, void*) {
    std::memset(data, 'X', size);  // the caller reusing memory the library handed back
    delete[] data;
    g_frees++;
}

}  // namespace

// A call on number X checks X's identity, then (preempted) finds that X was closed, given
// to a new socket and registered by another thread. It must not take the new socket's
// fresh entry for the closed socket's and retire it: that freed the new socket's buffer
// before its peer had read it.
TEST(Interleave, ACallOverlappingCloseAndReuseLeavesTheNewSocketsSendsAlone) {
    sem_init(&g_fstat_done, 0, 0);
    sem_init(&g_resume, 0, 0);
    int old_pair[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, old_pair), 0);
    const int x = old_pair[0];
    int completer_result = 0;
    std::thread completer([&] {
        t_pause_after_fstat = true;
        completer_result = blight_process_zerocopy_completions(x, 0);
    });
    sem_wait(&g_fstat_done);  // the completer has read the old socket's identity
    ::close(old_pair[0]);
    ::close(old_pair[1]);
    int fresh[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, fresh), 0);
    ASSERT_EQ(fresh[0], x) << "the new socket did not get the closed number";
    Fd a(fresh[0]), b(fresh[1]);

    const size_t n = 64 * 1024;
    auto* data = new unsigned char[n];
    std::memset(data, 'A', n);
    g_frees = 0;
    blight_buffer_id_t id = 0;
    ASSERT_EQ(blight_send_zerocopy(x, data, n, scribble_free, nullptr, &id), 0);
    ASSERT_EQ(blight_release_buffer(id), 0);
    blight_zerocopy_stats before{};
    ASSERT_EQ(blight_get_zerocopy_stats(x, &before), 0);

    sem_post(&g_resume);
    completer.join();
    EXPECT_GE(completer_result, 0);
    EXPECT_EQ(g_frees, before.splice_sends > 0 ? 0 : 1) << "the new socket's buffer was freed before its peer read it";
    blight_zerocopy_stats after{};
    ASSERT_EQ(blight_get_zerocopy_stats(x, &after), 0);
    EXPECT_EQ(after.abandoned_sends, 0u);
    EXPECT_EQ(after.splice_bytes + after.copied_bytes, n) << "the new socket lost its statistics";

    std::vector<unsigned char> got(n);
    ASSERT_EQ(blight_recv_blocking_into(b.get(), got.data(), static_cast<ssize_t>(n)), 0);
    EXPECT_EQ(std::count(got.begin(), got.end(), 'A'), static_cast<long>(n)) << "the peer read reused memory";
    for (int i = 0; i < 300 && g_frees == 0; i++) blight_process_zerocopy_completions(x, 10);
    EXPECT_EQ(g_frees, 1);
    EXPECT_EQ(blight_forget_socket(x), 0);
    sem_destroy(&g_fstat_done);
    sem_destroy(&g_resume);
}
