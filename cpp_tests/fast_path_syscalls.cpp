// The per-message fast paths (issue 18) make the system calls upstream makes, no more: a
// small message that fits (send) or is already there (receive) costs one send or one
// recv and no poll, a ready socket one poll. This file interposes send, sendmsg, recv and
// poll (the library calls them through libc's symbols) and counts the calls of the
// calling thread while a test has armed the count; unarmed, the interposers only forward.
// Counting calls, not time: nothing here depends on the machine's speed.
#include <dlfcn.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <thread>

#include "libblight_protocol/socket.h"
#include "test_util.h"

using namespace blight_test;

namespace {
struct Counts {
    int send = 0, sendmsg = 0, recv = 0, poll = 0;
};
thread_local bool t_armed = false;
thread_local Counts t_counts;

template <typename Fn>
Fn real(const char* name) {
    return reinterpret_cast<Fn>(dlsym(RTLD_NEXT, name));
}

// Counts the system calls of `body`, made on this thread.
template <typename F>
Counts count(F body) {
    t_counts = Counts{};
    t_armed = true;
    body();
    t_armed = false;
    return t_counts;
}
}  // namespace

extern "C" ssize_t send(int fd, const void* buf, size_t len, int flags) {
    static auto next = real<ssize_t (*)(int, const void*, size_t, int)>("send");
    if (t_armed) t_counts.send++;
    return next(fd, buf, len, flags);
}
extern "C" ssize_t sendmsg(int fd, const struct msghdr* msg, int flags) {
    static auto next = real<ssize_t (*)(int, const struct msghdr*, int)>("sendmsg");
    if (t_armed) t_counts.sendmsg++;
    return next(fd, msg, flags);
}
extern "C" ssize_t recv(int fd, void* buf, size_t len, int flags) {
    static auto next = real<ssize_t (*)(int, void*, size_t, int)>("recv");
    if (t_armed) t_counts.recv++;
    return next(fd, buf, len, flags);
}
extern "C" int poll(struct pollfd* fds, nfds_t n, int timeout) {
    static auto next = real<int (*)(struct pollfd*, nfds_t, int)>("poll");
    if (t_armed) t_counts.poll++;
    return next(fds, n, timeout);
}

namespace {
constexpr ssize_t kHeader = 12;  // oxide's message header

struct Pair {
    int fd[2];
    explicit Pair(int flags = SOCK_NONBLOCK) { EXPECT_EQ(socketpair(AF_UNIX, SOCK_STREAM | flags, 0, fd), 0); }
    ~Pair() {
        close(fd[0]);
        close(fd[1]);
    }
    void put(ssize_t n) {
        std::vector<unsigned char> b(n, 0x5A);
        ASSERT_EQ(::write(fd[0], b.data(), b.size()), n);
    }
};

TEST(FastPath, SendOfASmallMessageIsOneSendAndNoPoll) {
    Pair p;
    unsigned char msg[kHeader] = {1, 2, 3};
    Counts c = count([&] { EXPECT_EQ(blight_send_blocking(p.fd[0], msg, kHeader), 0); });
    EXPECT_EQ(c.send, 1);
    EXPECT_EQ(c.poll, 0);
    c = count([&] { EXPECT_TRUE(BlightProtocol::send_blocking(p.fd[0], msg, kHeader)); });
    EXPECT_EQ(c.send, 1);
    EXPECT_EQ(c.poll, 0);
}

TEST(FastPath, ReceivingAMessageThatIsThereIsOneRecvAndNoPoll) {
    Pair p;
    p.put(4 * kHeader + 64);
    blight_data_t d = nullptr;
    Counts c = count([&] { EXPECT_EQ(blight_recv_blocking(p.fd[1], &d, kHeader), 0); });
    std::free(d);
    EXPECT_EQ(c.recv, 1);
    EXPECT_EQ(c.poll, 0);
    c = count([&] { EXPECT_EQ(blight_recv(p.fd[1], &d, kHeader), 0); });
    std::free(d);
    EXPECT_EQ(c.recv, 1);
    EXPECT_EQ(c.poll, 0) << "blight_recv of a message that is there needs no poll";
    c = count([&] {
        auto m = BlightProtocol::recv_blocking(p.fd[1], kHeader);
        ASSERT_TRUE(m.has_value());
        delete[] *m;
    });
    EXPECT_EQ(c.recv, 1);
    EXPECT_EQ(c.poll, 0);
    c = count([&] {
        auto m = BlightProtocol::recv(p.fd[1], kHeader, 5, 50);
        ASSERT_TRUE(m.has_value());
        delete[] *m;
    });
    EXPECT_EQ(c.recv, 1);
    EXPECT_EQ(c.poll, 0);
    unsigned char buf[64];
    c = count([&] { EXPECT_EQ(blight_recv_blocking_into(p.fd[1], buf, 64), 0); });
    EXPECT_EQ(c.recv, 1);
    EXPECT_EQ(c.poll, 0);
}

TEST(FastPath, WaitingOnAReadySocketIsOnePoll) {
    Pair p;
    p.put(1);
    Counts c = count([&] {
        EXPECT_EQ(blight_wait_for_read(p.fd[1], 1000), 0);
        EXPECT_EQ(blight_wait_for_send(p.fd[0], 1000), 0);
        EXPECT_TRUE(BlightProtocol::wait_for_read(p.fd[1], 1000));
        EXPECT_TRUE(BlightProtocol::wait_for_send(p.fd[0], 1000));
    });
    EXPECT_EQ(c.poll, 4);
}

// What the fast path hands on: the slow path continues from it, with the same results as
// without a fast path.
TEST(FastPath, ARecvThatFindsNothingWaitsThenReads) {
    Pair p;
    std::thread late([&] {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
        p.put(kHeader);
    });
    blight_data_t d = nullptr;
    Counts c = count([&] { EXPECT_EQ(blight_recv_blocking(p.fd[1], &d, kHeader), 0); });
    late.join();
    std::free(d);
    EXPECT_GE(c.recv, 2);  // EAGAIN first, then the message
    EXPECT_GE(c.poll, 1);  // the wait: poll, never a spin
}

TEST(FastPath, APartialFirstRecvIsCompleted) {
    Pair p;
    p.put(5);
    std::thread late([&] {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
        p.put(kHeader - 5);
    });
    unsigned char buf[kHeader];
    EXPECT_EQ(blight_recv_blocking_into(p.fd[1], buf, kHeader), 0);
    late.join();
    p.put(5);
    std::thread late2([&] {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
        p.put(kHeader - 5);
    });
    blight_data_t d = nullptr;
    EXPECT_EQ(blight_recv(p.fd[1], &d, kHeader), 0);
    late2.join();
    std::free(d);
}

// Closes one end of the pair now (the other end's peer is gone); the destructor then
// closes a duplicate of the other end instead.
void close_end(Pair& p, int end) {
    close(p.fd[end]);
    p.fd[end] = ::dup(p.fd[1 - end]);
}

TEST(FastPath, ErrorsFoundByTheFirstCallAreTheSlowPathsErrors) {
    unsigned char msg[kHeader] = {};
    blight_data_t d = nullptr;
    {
        Pair p;
        close_end(p, 1);
        EXPECT_EQ(blight_send_blocking(p.fd[0], msg, kHeader), -EPIPE);  // and no SIGPIPE
        EXPECT_FALSE(BlightProtocol::send_blocking(p.fd[0], msg, kHeader));
        EXPECT_EQ(errno, EPIPE);
    }
    {
        Pair p;
        close_end(p, 0);  // hung up, nothing left: the first recv reads end of file
        EXPECT_EQ(blight_recv(p.fd[1], &d, kHeader), -ECONNRESET);
        EXPECT_EQ(blight_recv_blocking(p.fd[1], &d, kHeader), -EBADMSG);
        EXPECT_EQ(d, nullptr);
    }
    {
        Pair p;
        p.put(3);
        close_end(p, 0);  // 3 bytes, then the peer left
        EXPECT_EQ(blight_recv(p.fd[1], &d, kHeader), -EBADMSG);
        EXPECT_EQ(d, nullptr);
    }
    {
        Pair p;
        ::shutdown(p.fd[0], SHUT_WR);  // end of file without a hang-up
        EXPECT_EQ(blight_recv_blocking(p.fd[1], &d, kHeader), -EBADMSG);
        EXPECT_EQ(blight_recv(p.fd[1], &d, kHeader), -EBADMSG);
        EXPECT_EQ(d, nullptr);
    }
    {
        Pair p;  // nothing there: the wait still honours its timeout
        EXPECT_EQ(blight_wait_for_read(p.fd[1], 0), -EAGAIN);
        EXPECT_EQ(blight_wait_for_read(-1, 0), -EINVAL);
        EXPECT_EQ(blight_send_blocking(-1, msg, kHeader), -EBADF);
        EXPECT_EQ(blight_recv_blocking(-1, &d, kHeader), -EBADF);
    }
}
}  // namespace
