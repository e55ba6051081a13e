// Bad input for every export: null pointers, negative and huge sizes, closed and negative
// descriptors, descriptors that are not sockets (pipe, regular file, eventfd, /dev/null),
// unknown, zero and double-released ids. Each call must return a negative errno (and leave
// its out-parameters in the documented state); none may crash, hang or leak.
//
// Calls that could block forever if the library mishandled the descriptor run in a forked
// child with a deadline, so a hang is a failure, not a stuck suite.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <climits>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <limits>

#include "libblight_protocol/socket.h"
#include "child_process.h"
#include "test_util.h"

using namespace blight_test;

namespace {

constexpr ssize_t kHuge = std::numeric_limits<ssize_t>::max();

// On a 32-bit target kHuge is 2 GiB, which malloc can give (a 32-bit process on a 64-bit
// kernel has 4 GiB): apply() limits the address space to 1 GiB more than is mapped now,
// until destruction, so that kHuge is more than any allocator gives there too. Does
// nothing on 64-bit targets, where no allocator gives SSIZE_MAX bytes.
class HugeIsUnallocatable {
public:
    void apply() {
        if (sizeof(void*) > 4) return;
        long pages = 0;
        if (FILE* f = std::fopen("/proc/self/statm", "r")) {
            if (std::fscanf(f, "%ld", &pages) != 1) pages = 0;
            std::fclose(f);
        }
        ASSERT_GT(pages, 0);
        ASSERT_EQ(getrlimit(RLIMIT_AS, &old_), 0);
        rlimit lim = old_;
        lim.rlim_cur = rlim_t(pages) * rlim_t(sysconf(_SC_PAGESIZE)) + (rlim_t(1) << 30);
        if (old_.rlim_cur != RLIM_INFINITY && old_.rlim_cur < lim.rlim_cur) lim.rlim_cur = old_.rlim_cur;
        ASSERT_EQ(setrlimit(RLIMIT_AS, &lim), 0);
        set_ = true;
    }
    ~HugeIsUnallocatable() {
        if (set_) setrlimit(RLIMIT_AS, &old_);
    }

private:
    rlimit old_{};
    bool set_ = false;
};

// Runs `f` in a forked child; returns its result, or INT_MIN on a crash or a hang of
// more than `seconds`.
int bounded_call(const std::function<int()>& f, int seconds = 5) {
    ChildResult res = run_in_child_reporting(
        [&f](std::string& report) {
            int r = f();
            report.assign(reinterpret_cast<const char*>(&r), sizeof r);
            return 0;
        },
        std::chrono::seconds(seconds));
    if (res.timed_out) {
        ADD_FAILURE() << "call did not return within " << seconds << " s";
        return INT_MIN;
    }
    int result = INT_MIN;
    if (res.ok() && res.report.size() == sizeof result) std::memcpy(&result, res.report.data(), sizeof result);
    return result;
}

// Descriptors that are not sockets, each in a state where a read would not block: a pipe
// with data (and its write end), a regular file with content, an eventfd with a count,
// /dev/null. Owned by the fixture.
struct NonSockets {
    Fd pipe_r, pipe_w, file, efd, devnull;
    NonSockets() {
        int p[2];
        check_sys(::pipe(p) == 0, "pipe");
        pipe_r.reset(p[0]);
        pipe_w.reset(p[1]);
        check_sys(::write(pipe_w.get(), "0123456789abcdef", 16) == 16, "write");
        FILE* f = std::tmpfile();
        check_sys(f != nullptr, "tmpfile");
        file.reset(::dup(::fileno(f)));
        std::fclose(f);
        check_sys(::write(file.get(), "0123456789abcdef", 16) == 16, "write");
        ::lseek(file.get(), 0, SEEK_SET);
        efd.reset(::eventfd(1, 0));
        check_sys(efd.get() >= 0, "eventfd");
        devnull.reset(::open("/dev/null", O_RDWR));
        check_sys(devnull.get() >= 0, "open");
    }
    std::vector<std::pair<const char*, int>> all() const {
        return {{"pipe read end", pipe_r.get()},
                {"pipe write end", pipe_w.get()},
                {"regular file", file.get()},
                {"eventfd", efd.get()},
                {"/dev/null", devnull.get()}};
    }
};

// A descriptor number that is certainly closed.
int closed_fd() {
    int fd = ::dup(0);
    if (fd < 0) fd = ::open("/dev/null", O_RDONLY);
    ::close(fd);
    return fd;
}

}  // namespace

TEST(BadInput, RecvNullSizeAndHuge) {
    auto p = unix_pair();
    blight_data_t data = reinterpret_cast<blight_data_t>(0x1);
    EXPECT_EQ(blight_recv(p.b.get(), nullptr, 16), -EINVAL);
    EXPECT_EQ(blight_recv_blocking(p.b.get(), nullptr, 16), -EINVAL);
    for (ssize_t size : {ssize_t(0), ssize_t(-1), ssize_t(-4096), std::numeric_limits<ssize_t>::min()}) {
        data = reinterpret_cast<blight_data_t>(0x1);
        EXPECT_EQ(blight_recv(p.b.get(), &data, size), -EINVAL) << size;
        EXPECT_EQ(data, reinterpret_cast<blight_data_t>(0x1));  // untouched on failure
        data = reinterpret_cast<blight_data_t>(0x1);
        EXPECT_EQ(blight_recv_blocking(p.b.get(), &data, size), -EINVAL) << size;
        EXPECT_EQ(data, reinterpret_cast<blight_data_t>(0x1));  // untouched on failure
    }
    // More than any allocator gives: -ENOMEM, not an abort.
    {
        HugeIsUnallocatable limit;
        ASSERT_NO_FATAL_FAILURE(limit.apply());
        data = reinterpret_cast<blight_data_t>(0x1);
        EXPECT_EQ(blight_recv(p.b.get(), &data, kHuge), -ENOMEM);
        EXPECT_EQ(data, reinterpret_cast<blight_data_t>(0x1));  // untouched on failure
        EXPECT_EQ(blight_recv_blocking(p.b.get(), &data, kHuge), -ENOMEM);
        EXPECT_EQ(data, reinterpret_cast<blight_data_t>(0x1));  // untouched on failure
    }
    unsigned char buf[16];
    EXPECT_EQ(blight_recv_into(p.b.get(), nullptr, 16, 1, 1), -EINVAL);
    EXPECT_EQ(blight_recv_into(p.b.get(), buf, 0, 1, 1), -EINVAL);
    EXPECT_EQ(blight_recv_into(p.b.get(), buf, -5, 1, 1), -EINVAL);
    EXPECT_EQ(blight_recv_blocking_into(p.b.get(), nullptr, 16), -EINVAL);
    EXPECT_EQ(blight_recv_blocking_into(p.b.get(), buf, 0), -EINVAL);
    EXPECT_EQ(blight_recv_blocking_into(p.b.get(), buf, -5), -EINVAL);
    // The C++ wrappers: empty optional and errno.
    errno = 0;
    EXPECT_FALSE(BlightProtocol::recv(p.b.get(), -1).has_value());
    EXPECT_EQ(errno, EINVAL);
    errno = 0;
    EXPECT_FALSE(BlightProtocol::recv_blocking(p.b.get(), 0).has_value());
    EXPECT_EQ(errno, EINVAL);
    // Nothing was consumed by any of this.
    ASSERT_EQ(::send(p.a.get(), "x", 1, 0), 1);
    EXPECT_EQ(blight_recv_into(p.b.get(), buf, 1, 1, 100), 0);
    EXPECT_EQ(buf[0], 'x');
}

TEST(BadInput, SendNullNegativeAndBadVectors) {
    auto p = unix_pair();
    unsigned char byte = 1;
    EXPECT_EQ(blight_send_blocking(p.a.get(), nullptr, 16), -EINVAL);
    EXPECT_EQ(blight_send_blocking(p.a.get(), &byte, -1), -EINVAL);
    EXPECT_EQ(blight_send_blocking(p.a.get(), &byte, std::numeric_limits<ssize_t>::min()), -EINVAL);
    // A bare nullptr with an int count names both overloads on 32-bit targets, where
    // ssize_t is int (on 64-bit it picked the iovec one): both, each by its type.
    EXPECT_FALSE(BlightProtocol::send_blocking(p.a.get(), static_cast<blight_data_t>(nullptr), 3));
    EXPECT_EQ(errno, EINVAL);
    EXPECT_FALSE(BlightProtocol::send_blocking(p.a.get(), static_cast<const iovec*>(nullptr), 3));
    EXPECT_EQ(errno, EINVAL);
    EXPECT_EQ(blight_sendv_blocking(p.a.get(), nullptr, 1), -EINVAL);
    iovec iov[2] = {{&byte, 1}, {nullptr, 5}};
    EXPECT_EQ(blight_sendv_blocking(p.a.get(), iov, -1), -EINVAL);
    EXPECT_EQ(blight_sendv_blocking(p.a.get(), iov, INT_MIN), -EINVAL);
    EXPECT_EQ(blight_sendv_blocking(p.a.get(), iov, 2), -EINVAL) << "null base with a length";
    std::vector<iovec> many(IOV_MAX + 1, iovec{&byte, 1});
    EXPECT_EQ(blight_sendv_blocking(p.a.get(), many.data(), IOV_MAX + 1), -EINVAL);
    EXPECT_EQ(blight_sendv_blocking(p.a.get(), many.data(), INT_MAX), -EINVAL);
    // None of the rejected calls wrote a byte.
    set_nonblocking(p.b.get(), true);
    char c;
    EXPECT_EQ(::recv(p.b.get(), &c, 1, 0), -1);
    EXPECT_EQ(errno, EAGAIN);
}

TEST(BadInput, ZerocopyBadArgumentsRegisterNothing) {
    auto p = tcp_pair();
    FreeCounter fc;
    std::vector<unsigned char> buf(64 * 1024, 7);
    blight_buffer_id_t id = 99;
    EXPECT_EQ(blight_send_zerocopy(p.a.get(), nullptr, 100, count_only_free, &fc, &id), -EINVAL);
    EXPECT_EQ(id, 0u);
    for (ssize_t size : {ssize_t(0), ssize_t(-1), std::numeric_limits<ssize_t>::min()}) {
        id = 99;
        EXPECT_EQ(blight_send_zerocopy(p.a.get(), buf.data(), size, count_only_free, &fc, &id), -EINVAL) << size;
        EXPECT_EQ(id, 0u);
    }
    EXPECT_EQ(blight_send_zerocopy(p.a.get(), buf.data(), 100, count_only_free, &fc, nullptr), -EINVAL);
    // Closed, negative and huge-sized sends on a bad descriptor: -EBADF, nothing registered,
    // the memory is never touched (a huge size on a bad fd must not be read).
    for (int fd : {closed_fd(), -1, -12345, INT_MAX}) {
        id = 99;
        int r = blight_send_zerocopy(fd, buf.data(), kHuge, count_only_free, &fc, &id);
        EXPECT_EQ(r, -EBADF) << fd;
        EXPECT_EQ(id, 0u);
        id = 99;
        EXPECT_EQ(blight_send_zerocopy(fd, buf.data(), 100, count_only_free, &fc, &id), -EBADF) << fd;
        EXPECT_EQ(id, 0u);
    }
    NonSockets ns;
    for (auto [what, fd] : ns.all()) {
        id = 99;
        EXPECT_EQ(blight_send_zerocopy(fd, buf.data(), 100, count_only_free, &fc, &id), -ENOTSOCK) << what;
        EXPECT_EQ(id, 0u) << what;
    }
    EXPECT_EQ(fc.calls.load(), 0) << "the caller still owns the memory of a rejected call";
    // The C++ wrapper: no id, errno, the caller still owns the memory.
    auto* mem = new unsigned char[10];
    EXPECT_FALSE(BlightProtocol::send_zerocopy(-1, mem, 10).has_value());
    EXPECT_EQ(errno, EBADF);
    delete[] mem;
}

TEST(BadInput, UnknownZeroAndDoubleReleasedIds) {
    EXPECT_EQ(blight_release_buffer(0), -ENOENT);
    EXPECT_EQ(blight_release_buffer(~blight_buffer_id_t(0)), -ENOENT);
    EXPECT_EQ(blight_release_buffer(blight_buffer_id_t(1) << 62), -ENOENT);
    EXPECT_EQ(blight_buffer_in_flight(0), -ENOENT);
    EXPECT_EQ(blight_buffer_in_flight(~blight_buffer_id_t(0)), -ENOENT);
    auto p = unix_pair();
    FreeCounter fc;
    unsigned char small[100] = {};
    blight_buffer_id_t id = 0;
    ASSERT_EQ(blight_send_zerocopy(p.a.get(), small, sizeof small, count_only_free, &fc, &id), 0);
    ASSERT_NE(id, 0u);
    EXPECT_EQ(blight_release_buffer(id), 0);
    EXPECT_EQ(fc.calls.load(), 1);
    for (int i = 0; i < 3; i++) EXPECT_EQ(blight_release_buffer(id), -ENOENT);
    EXPECT_EQ(blight_buffer_in_flight(id), -ENOENT);
    EXPECT_EQ(blight_release_buffer(id + 1000000), -ENOENT);
    EXPECT_EQ(fc.calls.load(), 1) << "a double release must not free twice";
    auto got = read_exactly(p.b.get(), sizeof small);
    EXPECT_EQ(got.size(), sizeof small);
}

TEST(BadInput, ClosedAndNegativeDescriptors) {
    unsigned char buf[64] = {};
    blight_data_t data = reinterpret_cast<blight_data_t>(0x1);
    blight_zerocopy_stats st{};
    iovec iov{buf, sizeof buf};
    for (int fd : {closed_fd(), -1, -77, INT_MAX}) {
        SCOPED_TRACE(fd);
        EXPECT_LT(blight_send_blocking(fd, buf, sizeof buf), 0);
        EXPECT_LT(blight_sendv_blocking(fd, &iov, 1), 0);
        EXPECT_LT(blight_recv(fd, &data, 16), 0);
        EXPECT_EQ(data, reinterpret_cast<blight_data_t>(0x1));  // untouched on failure
        data = reinterpret_cast<blight_data_t>(0x1);
        EXPECT_LT(bounded_call([&] { return blight_recv_blocking(fd, &data, 16); }), 0);
        EXPECT_LT(blight_recv_into(fd, buf, 16, 1, 10), 0);
        EXPECT_LT(bounded_call([&] { return blight_recv_blocking_into(fd, buf, 16); }), 0);
        // Waiting forever on a descriptor that is not open must not wait at all.
        EXPECT_EQ(bounded_call([&] { return blight_wait_for_send(fd, -1); }), -EINVAL) << "wait_for_send(fd, -1)";
        EXPECT_EQ(bounded_call([&] { return blight_wait_for_read(fd, -1); }), -EINVAL) << "wait_for_read(fd, -1)";
        EXPECT_LT(blight_wait_for_send(fd, 0), 0);
        EXPECT_LT(blight_wait_for_read(fd, 10), 0);
        EXPECT_LT(bounded_call([&] { return blight_process_zerocopy_completions(fd, -1); }), 0);
        EXPECT_LT(blight_process_zerocopy_completions(fd, 0), 0);
        // Forgetting an fd that was closed while the library still knew it is allowed
        // once (it releases what the closed socket held); after that it is unknown.
        int first = blight_forget_socket(fd);
        EXPECT_TRUE(first >= 0 || first == -EBADF) << first;
        EXPECT_EQ(blight_forget_socket(fd), -EBADF);
        if (fd != -1) {  // -1: the process totals
            EXPECT_LT(blight_get_zerocopy_stats(fd, &st), 0);
        }
        EXPECT_EQ(blight_get_zerocopy_stats(fd, nullptr), -EINVAL);
    }
    // A closed descriptor is EBADF for the calls that document it.
    int fd = closed_fd();
    EXPECT_EQ(blight_send_blocking(fd, buf, sizeof buf), -EBADF);
    EXPECT_EQ(blight_wait_for_read(fd, 0), -EINVAL);
    EXPECT_EQ(blight_wait_for_send(fd, 0), -EINVAL);
    EXPECT_EQ(blight_process_zerocopy_completions(fd, 0), -EBADF);
    EXPECT_EQ(blight_forget_socket(fd), -EBADF);
    EXPECT_EQ(blight_get_zerocopy_stats(fd, &st), -EBADF);
    EXPECT_EQ(blight_get_zerocopy_stats(-1, nullptr), -EINVAL);
}

TEST(BadInput, NonSocketDescriptors) {
    NonSockets ns;
    unsigned char buf[64] = {};
    iovec iov{buf, sizeof buf};
    blight_zerocopy_stats st{};
    for (auto [what, fd] : ns.all()) {
        SCOPED_TRACE(what);
        EXPECT_EQ(blight_send_blocking(fd, buf, sizeof buf), -ENOTSOCK);
        EXPECT_EQ(blight_sendv_blocking(fd, &iov, 1), -ENOTSOCK);
        blight_data_t data = reinterpret_cast<blight_data_t>(0x1);
        EXPECT_LT(bounded_call([&] { return blight_recv(fd, &data, 16); }), 0);
        EXPECT_LT(bounded_call([&] { return blight_recv_blocking(fd, &data, 16); }), 0);
        EXPECT_LT(bounded_call([&] { return blight_recv_into(fd, buf, 16, 1, 10); }), 0);
        EXPECT_LT(bounded_call([&] { return blight_recv_blocking_into(fd, buf, 16); }), 0);
        EXPECT_EQ(blight_process_zerocopy_completions(fd, 0), -ENOTSOCK);
        EXPECT_EQ(bounded_call([&] { return blight_process_zerocopy_completions(fd, -1); }), -ENOTSOCK);
        EXPECT_EQ(blight_forget_socket(fd), -ENOTSOCK);
        EXPECT_EQ(blight_get_zerocopy_stats(fd, &st), -ENOTSOCK);
        // wait_for_* are poll(): a pipe or file can be "ready"; they must just return.
        int r = bounded_call([&] { return blight_wait_for_read(fd, 10); });
        EXPECT_NE(r, INT_MIN);
        r = bounded_call([&] { return blight_wait_for_send(fd, 10); });
        EXPECT_NE(r, INT_MIN);
    }
    // The pipe's and the file's data were not consumed by any receive above (they ran in
    // children, but the descriptions are shared): the rejected calls read nothing.
    char got[16];
    EXPECT_EQ(::read(ns.pipe_r.get(), got, sizeof got), 16);
    EXPECT_EQ(::pread(ns.file.get(), got, sizeof got, 0), 16);
}

TEST(BadInput, ThresholdAndStats) {
    size_t before = blight_zerocopy_threshold();
    EXPECT_GT(before, 0u);
    EXPECT_EQ(blight_set_zerocopy_threshold(0), -EINVAL);
    EXPECT_EQ(blight_zerocopy_threshold(), before);
    EXPECT_EQ(blight_set_zerocopy_threshold(SIZE_MAX), 0);
    EXPECT_EQ(blight_zerocopy_threshold(), SIZE_MAX) << "a threshold above INT_MAX must read back whole";
    // Above INT_MAX and, where size_t has them, above 32 bits: 2^32 on 64-bit, 2^31 on 32-bit.
    const size_t big = (size_t(1) << 31) * (sizeof(size_t) > 4 ? 2 : 1);
    EXPECT_EQ(blight_set_zerocopy_threshold(big), 0);
    EXPECT_EQ(blight_zerocopy_threshold(), big);
    EXPECT_EQ(blight_set_zerocopy_threshold(before), 0);
    EXPECT_EQ(blight_zerocopy_threshold(), before);
    blight_zerocopy_stats st{};
    EXPECT_EQ(blight_get_zerocopy_stats(-1, &st), 0);
    EXPECT_EQ(blight_get_zerocopy_stats(-2, &st), -EBADF);
}
