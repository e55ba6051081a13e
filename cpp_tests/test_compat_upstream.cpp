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
#include <cstring>
#include <dlfcn.h>
#include <string>
#include <sys/socket.h>
#include <unistd.h>
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

// Upstream's own test_blight_recv (tests/libblight_protocol/test.c): a recv that fails
// must leave *data alone, because the test goes on to send from that very buffer. (This
// library used to set *data to NULL on failure: the write then failed with EFAULT.)
TEST(CompatUpstream, UpstreamRecvTestKeepsItsBuffer) {
    Pair p = unix_pair(true);
    blight_data_t data = static_cast<blight_data_t>(std::malloc(10));
    ASSERT_NE(data, nullptr);
    std::memset(data, 0x5a, 10);
    blight_data_t const before = data;
    ASSERT_EQ(blight_recv(p.b.get(), &data, 10), -EAGAIN);
    ASSERT_EQ(data, before);
    ASSERT_EQ(write(p.a.get(), data, 10), 10);
    blight_data_t data2 = nullptr;
    ASSERT_EQ(blight_recv(p.b.get(), &data2, 10), 0);
    ASSERT_NE(data2, nullptr);
    EXPECT_EQ(std::memcmp(data, data2, 10), 0);
    std::free(data);
    std::free(data2);
}

TEST(CompatUpstream, FailedRecvLeavesDataUntouched) {
    Pair p = unix_pair(false);
    unsigned char mine[4] = {};
    blight_data_t data = mine;
    ASSERT_EQ(write(p.a.get(), "abc", 3), 3);
    ASSERT_EQ(shutdown(p.a.get(), SHUT_WR), 0);
    EXPECT_EQ(blight_recv_blocking(p.b.get(), &data, 10), -EBADMSG);
    EXPECT_EQ(data, mine);
    EXPECT_EQ(blight_recv(p.b.get(), &data, 10), -EBADMSG);
    EXPECT_EQ(data, mine);
    EXPECT_EQ(blight_recv(p.b.get(), &data, -1), -EINVAL);
    EXPECT_EQ(data, mine);
}

// The five C++ functions are exported by the library out of line, under upstream's
// mangled names (ssize_t is `long` on 64-bit targets, `int` on 32-bit ones): binaries
// built against upstream's socket.h look them up there.
TEST(CompatUpstream, CppFunctionsAreExportedUnderUpstreamsNames) {
    const std::string s = std::is_same_v<ssize_t, long> ? "l" : "i";
    struct {
        std::string name;
        void* address;
    } const expected[] = {
        {"_ZN14BlightProtocol4recvEi" + s + "jj",
         reinterpret_cast<void*>(static_cast<std::optional<blight_data_t> (*)(int, ssize_t, unsigned, unsigned)>(
             &BlightProtocol::recv))},
        {"_ZN14BlightProtocol13recv_blockingEi" + s, reinterpret_cast<void*>(&BlightProtocol::recv_blocking)},
        {"_ZN14BlightProtocol13send_blockingEiPh" + s,
         reinterpret_cast<void*>(
             static_cast<bool (*)(int, const blight_data_t, ssize_t)>(&BlightProtocol::send_blocking))},
        {"_ZN14BlightProtocol13wait_for_sendEii", reinterpret_cast<void*>(&BlightProtocol::wait_for_send)},
        {"_ZN14BlightProtocol13wait_for_readEii", reinterpret_cast<void*>(&BlightProtocol::wait_for_read)},
    };
    for (const auto& e : expected) {
        void* sym = dlsym(RTLD_DEFAULT, e.name.c_str());
        EXPECT_NE(sym, nullptr) << e.name;
        EXPECT_EQ(sym, e.address) << e.name;
    }
}

// Upstream's recv: size <= 0 is EINVAL; attempts == 0 makes no attempt and gives EAGAIN,
// consuming nothing; recv_blocking of a closed peer is EBADMSG.
TEST(CompatUpstream, CppRecvEdgeCasesAsUpstream) {
    Pair p = unix_pair(true);
    ASSERT_EQ(write(p.a.get(), "0123456789", 10), 10);
    errno = 0;
    EXPECT_FALSE(BlightProtocol::recv(p.b.get(), 0).has_value());
    EXPECT_EQ(errno, EINVAL);
    errno = 0;
    EXPECT_FALSE(BlightProtocol::recv(p.b.get(), -5, 5, 50).has_value());
    EXPECT_EQ(errno, EINVAL);
    errno = 0;
    EXPECT_FALSE(BlightProtocol::recv(p.b.get(), 10, 0, 50).has_value());
    EXPECT_EQ(errno, EAGAIN);
    auto got = BlightProtocol::recv(p.b.get(), 10, 1, 50);
    ASSERT_TRUE(got.has_value());
    EXPECT_EQ(std::memcmp(*got, "0123456789", 10), 0);
    delete[] *got;
    p.a.reset();
    errno = 0;
    EXPECT_FALSE(BlightProtocol::recv_blocking(p.b.get(), 10).has_value());
    EXPECT_EQ(errno, EBADMSG);
}

}  // namespace
