// No panic crosses the C boundary. Run with BLIGHT_SOCKET_TEST_PANIC=* (set by ctest),
// which makes every export panic inside its guard: each must return -EIO (0 for
// blight_zerocopy_threshold, which returns a size), log it, and leave the process alive
// and the library usable for the next call. blight_socket_version and
// blight_socket_version_number return constants and have no guard.
#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>

#include "libblight_protocol/socket.h"
#include "test_util.h"

using namespace blight_test;

TEST(PanicBoundary, EveryExportReturnsEio) {
    const char* env = std::getenv("BLIGHT_SOCKET_TEST_PANIC");
    if (env == nullptr || std::strcmp(env, "*") != 0) GTEST_SKIP() << "run with BLIGHT_SOCKET_TEST_PANIC='*' (ctest sets it)";
    auto p = unix_pair();
    auto t = tcp_pair();
    unsigned char buf[64] = {1, 2, 3};
    blight_data_t data = nullptr;
    iovec iov{buf, sizeof buf};
    blight_zerocopy_stats st{};
    FreeCounter fc;
    blight_buffer_id_t id = 0;
    // Twice: the first panic must not poison anything the second call needs.
    for (int round = 0; round < 2; round++) {
        EXPECT_EQ(blight_recv(p.b.get(), &data, 16), -EIO);
        EXPECT_EQ(blight_recv_blocking(p.b.get(), &data, 16), -EIO);
        EXPECT_EQ(blight_send_blocking(p.a.get(), buf, sizeof buf), -EIO);
        EXPECT_EQ(blight_sendv_blocking(p.a.get(), &iov, 1), -EIO);
        EXPECT_EQ(blight_wait_for_send(p.a.get(), -1), -EIO);
        EXPECT_EQ(blight_wait_for_read(p.b.get(), -1), -EIO);
        EXPECT_EQ(blight_recv_into(p.b.get(), buf, 16, 1, 10), -EIO);
        EXPECT_EQ(blight_recv_blocking_into(p.b.get(), buf, 16), -EIO);
        EXPECT_EQ(blight_send_zerocopy(t.a.get(), buf, sizeof buf, count_only_free, &fc, &id), -EIO);
        EXPECT_EQ(blight_process_zerocopy_completions(t.a.get(), -1), -EIO);
        EXPECT_EQ(blight_release_buffer(1), -EIO);
        EXPECT_EQ(blight_buffer_in_flight(1), -EIO);
        EXPECT_EQ(blight_forget_socket(t.a.get()), -EIO);
        EXPECT_EQ(blight_get_zerocopy_stats(-1, &st), -EIO);  // the macro: the _sized function
        EXPECT_EQ((blight_get_zerocopy_stats)(-1, &st), -EIO);
        EXPECT_EQ(blight_set_log_callback(nullptr, nullptr), -EIO);
        EXPECT_EQ(blight_set_log_level(BLIGHT_LOG_WARN), -EIO);
        EXPECT_EQ(blight_set_zerocopy_threshold(4096), -EIO);
        EXPECT_EQ(blight_set_splice_policy(p.a.get(), BLIGHT_SPLICE_SAME_USER), -EIO);
        EXPECT_EQ(blight_zerocopy_threshold(), 0u);
        // The C++ wrappers turn it into errno EIO.
        errno = 0;
        EXPECT_FALSE(BlightProtocol::recv(p.b.get(), 8).has_value());
        EXPECT_EQ(errno, EIO);
        EXPECT_FALSE(BlightProtocol::send_blocking(p.a.get(), buf, 8));
        EXPECT_EQ(errno, EIO);
        EXPECT_FALSE(BlightProtocol::wait_for_read(p.b.get(), 0));
        EXPECT_EQ(errno, EIO);
    }
    EXPECT_EQ(fc.calls.load(), 0);
    // Nothing was sent or consumed by the panicking calls.
    set_nonblocking(p.b.get(), true);
    EXPECT_EQ(::recv(p.b.get(), buf, 1, 0), -1);
}

TEST(PanicBoundary, FromManyThreadsAtOnce) {
    const char* env = std::getenv("BLIGHT_SOCKET_TEST_PANIC");
    if (env == nullptr) GTEST_SKIP() << "run with BLIGHT_SOCKET_TEST_PANIC set";
    std::vector<std::thread> threads;
    std::atomic<int> eio{0};
    for (int t = 0; t < 8; t++)
        threads.emplace_back([&] {
            unsigned char b[4] = {};
            for (int i = 0; i < 200; i++) {
                if (blight_send_blocking(-1, b, 4) == -EIO) eio++;
                if (blight_release_buffer(i + 1) == -EIO) eio++;
            }
        });
    for (auto& th : threads) th.join();
    EXPECT_EQ(eio.load(), 8 * 200 * 2);
}
