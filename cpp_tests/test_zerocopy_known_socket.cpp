// Buffers under the threshold on a socket the library already knows are copied without
// re-checking the socket's identity (no fstat). These tests pin what that path must keep:
// bad descriptors leave the caller owning the data, and the accounting stays exact.
#include <gtest/gtest.h>
#include <sys/eventfd.h>

#include "blight_socket.h"
#include "test_util.h"

using namespace blight_test;

namespace {

blight_zerocopy_stats stats_of(int fd) {
    blight_zerocopy_stats s{};
    EXPECT_EQ(blight_get_zerocopy_stats(fd, &s), 0);
    return s;
}

// Makes `fd` known to the library (one send through the checked path).
void register_socket(int fd, int reader) {
    unsigned char byte = 1;
    blight_buffer_id_t id = 0;
    ASSERT_EQ(blight_send_zerocopy(fd, &byte, 1, nullptr, nullptr, &id), 0);
    ASSERT_NE(id, 0u);
    ASSERT_EQ(blight_release_buffer(id), 0);
    ASSERT_EQ(read_exactly(reader, 1).size(), 1u);
}

}  // namespace

TEST(ZeroCopyFastPath, SmallSendsOnAKnownSocketAreCopiedAndCounted) {
    Pair p = unix_pair(true);
    register_socket(p.a.get(), p.b.get());
    blight_zerocopy_stats before = stats_of(p.a.get());
    blight_zerocopy_stats total_before = stats_of(-1);
    FreeCounter fc;
    for (int i = 0; i < 100; i++) {
        auto* buf = new unsigned char[100];
        fill_pattern(buf, 100, 7, 100 * i);
        blight_buffer_id_t id = 0;
        ASSERT_EQ(blight_send_zerocopy(p.a.get(), buf, 100, count_and_delete, &fc, &id), 0);
        ASSERT_NE(id, 0u);
        EXPECT_EQ(blight_buffer_in_flight(id), 0);
        EXPECT_EQ(blight_release_buffer(id), 0);
    }
    EXPECT_EQ(fc.calls, 100);
    std::vector<unsigned char> got = read_exactly(p.b.get(), 100 * 100);
    EXPECT_EQ(first_mismatch(got.data(), got.size(), 7), -1);
    blight_zerocopy_stats after = stats_of(p.a.get());
    EXPECT_EQ(after.copied_sends - before.copied_sends, 100u);
    EXPECT_EQ(after.copied_bytes - before.copied_bytes, 100u * 100);
    EXPECT_EQ(stats_of(-1).copied_bytes - total_before.copied_bytes, 100u * 100);
}

TEST(ZeroCopyFastPath, KnownSocketClosedGivesEbadfAndNoId) {
    Pair p = unix_pair(true);
    register_socket(p.a.get(), p.b.get());
    int num = p.a.get();
    p.a.reset();
    unsigned char data[64] = {0};
    blight_buffer_id_t id = 12345;
    EXPECT_EQ(blight_send_zerocopy(num, data, sizeof data, nullptr, nullptr, &id), -EBADF);
    EXPECT_EQ(id, 0u) << "nothing registered: the caller still owns the data";
    EXPECT_GE(blight_forget_socket(num), 0);
}

TEST(ZeroCopyFastPath, KnownSocketNumberReusedByANonSocketGivesEnotsockAndNoId) {
    Pair p = unix_pair(true);
    register_socket(p.a.get(), p.b.get());
    int num = p.a.get();
    Fd ev(::eventfd(0, EFD_CLOEXEC));
    ASSERT_GE(ev.get(), 0);
    ASSERT_EQ(::dup2(ev.get(), num), num);  // closes the socket, the number now names an eventfd
    unsigned char data[64] = {0};
    blight_buffer_id_t id = 12345;
    EXPECT_EQ(blight_send_zerocopy(num, data, sizeof data, nullptr, nullptr, &id), -ENOTSOCK);
    EXPECT_EQ(id, 0u);
    // The checked paths see the reuse and retire the old socket.
    blight_zerocopy_stats s{};
    EXPECT_EQ(blight_get_zerocopy_stats(num, &s), -ENOTSOCK);
    p.a.reset(num);
}

TEST(ZeroCopyFastPath, PeerClosedAfterRegistrationStillSetsTheId) {
    Pair p = unix_pair(true);
    register_socket(p.a.get(), p.b.get());
    p.b.reset();
    FreeCounter fc;
    auto* buf = new unsigned char[64]();
    blight_buffer_id_t id = 0;
    EXPECT_EQ(blight_send_zerocopy(p.a.get(), buf, 64, count_and_delete, &fc, &id), -EPIPE);
    ASSERT_NE(id, 0u) << "a send error after the checks: the library owns the buffer";
    EXPECT_EQ(fc.calls, 0);
    EXPECT_EQ(blight_release_buffer(id), 0);
    EXPECT_EQ(fc.calls, 1);
}
