// Source compatibility with upstream: this translation unit first declares what upstream's
// libblight_protocol.h declares (BlightProtocol::blight_data_t as unsigned char*, and its
// trick of a blight_data_t macro around its own C declarations), then includes the
// installed socket header, and calls everything the way oxide's code does: the C++ API
// through BlightProtocol::, the C functions globally and through namespace BlightProtocol.
namespace BlightProtocol {
typedef unsigned char* blight_data_t;
}
// Upstream's libblight_protocol.h defines this macro for its C declarations and #undefs
// it at the end; do the same around a declaration of our own.
#define blight_data_t BlightProtocol::blight_data_t
extern "C" {
typedef struct {
    int fd;
    blight_data_t data;
} compat_upstream_buf_t;
}
#undef blight_data_t

#include <libblight_protocol/socket.h>
// Included twice, as happens through several headers.
#include <libblight_protocol/socket.h>

#include <gtest/gtest.h>

#include <cstdlib>
#include <thread>
#include <type_traits>

#include "socket_test_support.h"
#include "test_util.h"

using blight_test::first_mismatch;
using blight_test::pattern;
using blight_test::Pair;
using blight_test::unix_pair;

static_assert(std::is_same_v<BlightProtocol::blight_data_t, unsigned char*>);
static_assert(std::is_same_v<decltype(compat_upstream_buf_t::data), unsigned char*>);

namespace {

TEST(CompatUpstream, CppApiThroughTheNamespace) {
    Pair p = unix_pair(true);
    auto msg = pattern(300, 71);
    BlightProtocol::blight_data_t data = msg.data();
    ASSERT_TRUE(BlightProtocol::wait_for_send(p.a.get()));
    ASSERT_TRUE(BlightProtocol::wait_for_send(p.a.get(), 100));
    ASSERT_TRUE(BlightProtocol::send_blocking(p.a.get(), data, 100));
    ASSERT_TRUE(BlightProtocol::wait_for_read(p.b.get()));
    ASSERT_TRUE(BlightProtocol::wait_for_read(p.b.get(), 100));
    auto a = BlightProtocol::recv(p.b.get(), 50);
    auto b = BlightProtocol::recv(p.b.get(), 25, 5, 50);
    auto c = BlightProtocol::recv_blocking(p.b.get(), 25);
    ASSERT_TRUE(a.has_value() && b.has_value() && c.has_value());
    EXPECT_EQ(first_mismatch(a.value(), 50, 71), -1);
    EXPECT_EQ(first_mismatch(b.value(), 25, 71, 50), -1);
    EXPECT_EQ(first_mismatch(c.value(), 25, 71, 75), -1);
    delete[] a.value();
    delete[] b.value();
    delete[] c.value();
    EXPECT_FALSE(BlightProtocol::wait_for_read(p.b.get(), 0));
    EXPECT_EQ(errno, EAGAIN);
}

TEST(CompatUpstream, UsingNamespaceDirective) {
    using namespace BlightProtocol;
    Pair p = unix_pair(false);
    auto msg = pattern(64, 72);
    blight_data_t data = msg.data();  // unambiguous: both typedefs name unsigned char*
    ASSERT_TRUE(send_blocking(p.a.get(), data, 64));
    ASSERT_TRUE(wait_for_read(p.b.get(), 1000));
    // Unqualified recv with two arguments picks BlightProtocol::recv, not ::recv(2).
    auto got = BlightProtocol::recv(p.b.get(), 32);
    ASSERT_TRUE(got.has_value());
    EXPECT_EQ(first_mismatch(*got, 32, 72), -1);
    delete[] *got;
    auto rest = recv_blocking(p.b.get(), 32);
    ASSERT_TRUE(rest.has_value());
    EXPECT_EQ(first_mismatch(*rest, 32, 72, 32), -1);
    delete[] *rest;
}

TEST(CompatUpstream, CFunctionsGloballyAndThroughTheNamespace) {
    Pair p = unix_pair(true);
    auto msg = pattern(40, 73);
    BlightProtocol::blight_data_t out = msg.data();
    ASSERT_EQ(blight_wait_for_send(p.a.get(), 100), 0);
    ASSERT_EQ(BlightProtocol::blight_wait_for_send(p.a.get(), 100), 0);
    ASSERT_EQ(blight_send_blocking(p.a.get(), out, 20), 0);
    ASSERT_EQ(BlightProtocol::blight_send_blocking(p.a.get(), out + 20, 20), 0);
    ASSERT_EQ(BlightProtocol::blight_wait_for_read(p.b.get(), 100), 0);
    ASSERT_EQ(blight_wait_for_read(p.b.get(), 100), 0);

    BlightProtocol::blight_data_t d1 = nullptr;
    blight_data_t d2 = nullptr;
    ASSERT_EQ(BlightProtocol::blight_recv(p.b.get(), &d1, 10), 0);
    ASSERT_EQ(blight_recv(p.b.get(), &d2, 10), 0);
    EXPECT_EQ(first_mismatch(d1, 10, 73), -1);
    EXPECT_EQ(first_mismatch(d2, 10, 73, 10), -1);
    std::free(d1);
    std::free(d2);
    d1 = d2 = nullptr;
    ASSERT_EQ(BlightProtocol::blight_recv_blocking(p.b.get(), &d1, 10), 0);
    ASSERT_EQ(blight_recv_blocking(p.b.get(), &d2, 10), 0);
    EXPECT_EQ(first_mismatch(d1, 10, 73, 20), -1);
    EXPECT_EQ(first_mismatch(d2, 10, 73, 30), -1);
    std::free(d1);
    std::free(d2);

    unsigned char h[12] = {1}, payload[4] = {2};
    struct iovec iov[] = {{h, 12}, {payload, 4}};
    ASSERT_EQ(BlightProtocol::blight_sendv_blocking(p.a.get(), iov, 2), 0);
    unsigned char in[16];
    ASSERT_EQ(blight_recv_blocking_into(p.b.get(), in, 16), 0);
    EXPECT_EQ(in[0], 1);
    EXPECT_EQ(in[12], 2);

    EXPECT_EQ(BlightProtocol::blight_wait_for_read(p.b.get(), 0), -EAGAIN);
}

// The same functions, as the function-pointer types upstream declares.
TEST(CompatUpstream, UpstreamFunctionTypes) {
    int (*r)(int, BlightProtocol::blight_data_t*, ssize_t) = &BlightProtocol::blight_recv;
    int (*rb)(int, BlightProtocol::blight_data_t*, ssize_t) = &blight_recv_blocking;
    int (*sb)(int, const BlightProtocol::blight_data_t, ssize_t) = &BlightProtocol::blight_send_blocking;
    int (*ws)(int, int) = &BlightProtocol::blight_wait_for_send;
    int (*wr)(int, int) = &blight_wait_for_read;
    EXPECT_EQ(r, &::blight_recv);
    EXPECT_EQ(rb, &::blight_recv_blocking);
    EXPECT_EQ(sb, &::blight_send_blocking);
    EXPECT_EQ(ws, &::blight_wait_for_send);
    EXPECT_EQ(wr, &::blight_wait_for_read);
}

}  // namespace
