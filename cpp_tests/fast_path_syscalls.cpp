// The per-message fast paths (issue 18) make the system calls upstream makes, no more: a
// small message that fits (send) or is already there (receive) costs one send or one
// recv and no poll, a ready socket one poll. And how a send waits for room on a full
// socket: a small write first waits briefly (one ppoll with a short timeout), then in
// poll; a large write polls at once. This file interposes send, sendmsg, recv, poll, ppoll
// and syscall (the library calls them through libc's symbols; its fast path sends,
// receives and looks through syscall(SYS_sendto / SYS_recvfrom / SYS_ppoll), counted here
// as send, recv and poll) and
// counts the calls of the calling thread while a test has armed the count; unarmed, the
// interposers only forward.
// Counting calls, not time: nothing here depends on the machine's speed.
#include <dlfcn.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdarg>
#include <cstdlib>
#include <functional>
#include <thread>
#include <vector>

#include "libblight_protocol/socket.h"
#include "test_util.h"

using namespace blight_test;

namespace {
struct Counts {
    int send = 0, sendmsg = 0, recv = 0, poll = 0, ppoll = 0;
    long ppoll_timeout_ns = -1;  // the last ppoll's timeout
};
thread_local bool t_armed = false;
thread_local Counts t_counts;
// Runs inside the next armed ppoll, before the real one: what the peer or another thread
// does while the sender waits briefly.
thread_local std::function<void()> t_during_ppoll;

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
extern "C" long syscall(long number, ...) {
    static auto next = real<long (*)(long, ...)>("syscall");
    va_list ap;
    va_start(ap, number);
    long a[6];
    for (long& x : a) x = va_arg(ap, long);  // up to six, as the C library's own syscall()
    va_end(ap);
    if (t_armed && number == SYS_sendto) t_counts.send++;
    if (t_armed && number == SYS_recvfrom) t_counts.recv++;
    if (t_armed && number == SYS_ppoll) t_counts.poll++;  // the waits' zero-timeout look
    return next(number, a[0], a[1], a[2], a[3], a[4], a[5]);
}
extern "C" int ppoll(struct pollfd* fds, nfds_t n, const struct timespec* timeout, const sigset_t* mask) {
    static auto next = real<int (*)(struct pollfd*, nfds_t, const struct timespec*, const sigset_t*)>("ppoll");
    if (t_armed) {
        t_counts.ppoll++;
        t_counts.ppoll_timeout_ns = timeout ? long(timeout->tv_sec) * 1000000000L + long(timeout->tv_nsec) : -1;
        if (t_during_ppoll) {
            auto during = std::move(t_during_ppoll);
            t_during_ppoll = nullptr;
            during();
        }
    }
    return next(fds, n, timeout, mask);
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

// The wait for room (src/io/room.rs). A socket that the peer does not read is filled to
// EAGAIN first; returns the bytes it took.
size_t fill(int fd) {
    std::vector<unsigned char> b(4096, 0x33);
    size_t n = 0;
    for (ssize_t r; (r = ::send(fd, b.data(), b.size(), MSG_DONTWAIT)) > 0;) n += size_t(r);
    EXPECT_EQ(errno, EAGAIN);
    return n;
}

// Reads exactly `n` bytes (the filler, never the message sent after it), waiting for them.
void consume(int fd, size_t n) {
    unsigned char b[65536];
    while (n > 0) {
        ssize_t r = ::recv(fd, b, std::min(n, sizeof b), MSG_DONTWAIT);
        if (r > 0) {
            n -= size_t(r);
        } else {
            ASSERT_TRUE(r < 0 && errno == EAGAIN) << "the filler ended early";
            pollfd pfd{fd, POLLIN, 0};
            ::poll(&pfd, 1, 1000);
        }
    }
}

// Reads everything the peer has (a receiver catching up).
size_t drain(int fd) {
    size_t n = 0;
    unsigned char b[65536];
    for (ssize_t r; (r = ::recv(fd, b, sizeof b, MSG_DONTWAIT)) > 0;) n += size_t(r);
    return n;
}

// A small send on a full socket whose peer reads everything after `ms` milliseconds.
Counts send_to_a_late_reader(int ms) {
    Pair p;
    const size_t filled = fill(p.fd[0]);
    std::thread reader([&] {
        std::this_thread::sleep_for(std::chrono::milliseconds(ms));
        consume(p.fd[1], filled);
    });
    unsigned char msg[kHeader] = {7};
    Counts c = count([&] { EXPECT_EQ(blight_send_blocking(p.fd[0], msg, kHeader), 0); });
    reader.join();
    EXPECT_EQ(drain(p.fd[1]), size_t(kHeader));
    return c;
}

// A small send on a full socket whose peer reads everything during the send's short wait:
// room comes before the short wait's timer.
Counts send_while_the_reader_catches_up() {
    Pair p;
    fill(p.fd[0]);
    t_during_ppoll = [&] { drain(p.fd[1]); };
    unsigned char msg[kHeader] = {9};
    Counts c = count([&] { EXPECT_EQ(blight_send_blocking(p.fd[0], msg, kHeader), 0); });
    t_during_ppoll = nullptr;
    EXPECT_EQ(drain(p.fd[1]), size_t(kHeader));
    return c;
}

// Whatever earlier tests in this process taught the library: a first wait in poll that
// lasts longer than the short wait makes the next first wait short, and so does a short
// wait that ended on its timer (not with room, which a badly delayed thread could see).
void expect_short_first_wait_next() {
    for (int i = 0; i < 5; i++) {
        Counts c = send_to_a_late_reader(20);
        if (c.ppoll == 0 || c.poll > 0) return;
    }
    ADD_FAILURE() << "the first wait never became short";
}

TEST(FullSocket, ASmallSendWaitsBrieflyOnceThenInPoll) {
    expect_short_first_wait_next();
    Counts c = send_to_a_late_reader(100);
    EXPECT_EQ(c.ppoll, 1) << "one short first wait, never a loop of them";
    EXPECT_GT(c.ppoll_timeout_ns, 0);
    EXPECT_LE(c.ppoll_timeout_ns, 1000000) << "the first wait is short (upstream's 5 us)";
    EXPECT_GE(c.poll, 1) << "a socket still full after the short wait is waited for in poll";
    EXPECT_GE(c.send, 3);  // the first try, after the short wait, after poll
}

TEST(FullSocket, RoomAfterTheShortWaitIsOneMoreSendAndNoPoll) {
    expect_short_first_wait_next();
    Counts c = send_while_the_reader_catches_up();
    EXPECT_EQ(c.ppoll, 1);
    EXPECT_EQ(c.poll, 0);
    EXPECT_EQ(c.send, 2) << "send, short wait, send: upstream's system calls";
}

// Room before the short wait's timer means the queue drains faster than the short wait
// lasts: the next first wait polls at once; a wait in poll that outlasts the short wait
// makes it short again.
TEST(FullSocket, TheFirstWaitFollowsHowFastTheQueueDrained) {
    expect_short_first_wait_next();
    EXPECT_EQ(send_while_the_reader_catches_up().ppoll, 1);
    Counts c = send_to_a_late_reader(100);
    EXPECT_EQ(c.ppoll, 0) << "the last short wait ended with room: poll at once";
    EXPECT_GE(c.poll, 1);
    c = send_while_the_reader_catches_up();
    EXPECT_EQ(c.ppoll, 1) << "the last wait in poll outlasted the short wait: short again";
}

TEST(FullSocket, TheVectorCallAndTheCxxWrapperWaitTheSameWay) {
    expect_short_first_wait_next();
    Pair p;
    fill(p.fd[0]);
    t_during_ppoll = [&] { drain(p.fd[1]); };
    unsigned char msg[kHeader] = {1};
    unsigned char payload[64] = {2};
    iovec iov[2] = {{msg, sizeof msg}, {payload, sizeof payload}};
    Counts c = count([&] { EXPECT_EQ(blight_sendv_blocking(p.fd[0], iov, 2), 0); });
    EXPECT_EQ(c.ppoll, 1);
    EXPECT_EQ(c.poll, 0);
    EXPECT_EQ(drain(p.fd[1]), sizeof msg + sizeof payload);

    expect_short_first_wait_next();
    const size_t filled = fill(p.fd[0]);
    std::thread reader([&] {
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
        consume(p.fd[1], filled);
    });
    c = count([&] { EXPECT_TRUE(BlightProtocol::send_blocking(p.fd[0], msg, kHeader)); });
    reader.join();
    EXPECT_EQ(drain(p.fd[1]), size_t(kHeader));
    EXPECT_EQ(c.ppoll, 1);
    EXPECT_GE(c.poll, 1);
    t_during_ppoll = nullptr;
}

TEST(FullSocket, ALargeSendPollsAtOnce) {
    expect_short_first_wait_next();
    Pair p;
    fill(p.fd[0]);
    std::atomic<bool> sent{false};
    std::thread reader([&] {
        std::this_thread::sleep_for(std::chrono::milliseconds(30));
        while (!sent.load()) {
            drain(p.fd[1]);
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
        }
    });
    std::vector<unsigned char> big(64 * 1024, 0x44);
    Counts c = count([&] { EXPECT_EQ(blight_send_blocking(p.fd[0], big.data(), ssize_t(big.size())), 0); });
    sent = true;
    reader.join();
    EXPECT_EQ(c.ppoll, 0) << "bulk writes wait for a quarter-empty socket in poll";
    EXPECT_GE(c.poll, 1);
}

TEST(FullSocket, NumberReusedDuringTheShortWaitIsEbadfAndTheNewSocketGetsNothing) {
    expect_short_first_wait_next();
    unsigned char msg[kHeader] = {5};
    Pair p;
    fill(p.fd[0]);
    const int x = p.fd[0];
    int fresh[2] = {-1, -1};
    t_during_ppoll = [&] {
        // Another thread closes the number and a new socket takes it.
        ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fresh), 0);
        ASSERT_EQ(::dup2(fresh[0], x), x);
        ::close(fresh[0]);
    };
    Counts c = count([&] { EXPECT_EQ(blight_send_blocking(x, msg, kHeader), -EBADF); });
    t_during_ppoll = nullptr;
    EXPECT_EQ(c.ppoll, 1);
    EXPECT_EQ(c.send, 1) << "nothing was tried on the new socket";
    EXPECT_EQ(drain(fresh[1]), 0u) << "the new socket's peer read the old socket's message";
    ::close(fresh[1]);
}
}  // namespace
