// The splice path and a peer that splices out (issue 20). A peer that splice()s from its
// end of an AF_UNIX stream socket into a pipe keeps references to the sender's pages after
// SIOCOUTQ says they left: the library completes the send, the free_fn runs, the caller
// rewrites the memory, and the peer's pipe delivers the rewritten bytes. So the library
// splices by default only to a peer of the same user (SO_PEERCRED), and copies otherwise.
//
// The peer here is a forked child that drops to another user (nobody) before it connects,
// so that SO_PEERCRED names that user: these tests need root, and are skipped without it.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <grp.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <cstdio>

#include "zc_util.h"

using namespace zc_test;

namespace {

constexpr uid_t kNobody = 65534;
constexpr size_t kMessage = 64 << 10;
constexpr uint64_t kSeed = 2020;
constexpr unsigned char kRewritten = 0x5A;

// A page-aligned buffer the test owns (the free_fn below only rewrites it): 64 KiB in
// whole pages fit one default pipe (16 slots) even where the peer cannot enlarge its pipe.
struct PageBuffer {
    explicit PageBuffer(size_t n) : size(n) {
        void* p = ::mmap(nullptr, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        data = p == MAP_FAILED ? nullptr : static_cast<unsigned char*>(p);
    }
    ~PageBuffer() {
        if (data != nullptr) ::munmap(data, size);
    }
    unsigned char* data;
    size_t size;
};

// The free_fn of a caller that reuses its memory at once: it writes new data there.
struct Rewriter {
    std::atomic<int> calls{0};
};

extern "C" void rewrite_on_free(unsigned char* data, size_t size, void* user) {
    std::memset(data, kRewritten, size);
    static_cast<Rewriter*>(user)->calls++;
}

// What the peer reports back over the socket once it has read its pipe.
struct PeerReport {
    uint64_t read;       // bytes read from the pipe
    uint64_t original;   // of those, equal to what was sent
    uint64_t rewritten;  // of those, equal to what the sender wrote after its free_fn
};

bool write_all(int fd, const void* p, size_t n) {
    auto* c = static_cast<const unsigned char*>(p);
    while (n > 0) {
        ssize_t r = ::send(fd, c, n, MSG_NOSIGNAL);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return false;
        c += r;
        n -= static_cast<size_t>(r);
    }
    return true;
}

bool read_all(int fd, void* p, size_t n) {
    auto* c = static_cast<unsigned char*>(p);
    while (n > 0) {
        if (poll_for(fd, POLLIN, 20000) == 0) return false;
        ssize_t r = ::read(fd, c, n);
        if (r < 0 && (errno == EINTR || errno == EAGAIN)) continue;
        if (r <= 0) return false;
        c += r;
        n -= static_cast<size_t>(r);
    }
    return true;
}

// The peer's side, in the child: splices the whole message out of the socket into a
// pipe, says so ('S'), waits for the sender's go ('G': its free_fn has run), then reads
// the pipe and reports what it found. Returns the child's exit code.
int splice_out_and_report(int sock) {
    int p[2];
    if (::pipe(p) != 0) return 10;
    ::fcntl(p[1], F_SETPIPE_SZ, 1 << 20);  // room to spare where allowed; 64 KiB suffice
    size_t in_pipe = 0;
    while (in_pipe < kMessage) {
        ssize_t r = ::splice(sock, nullptr, p[1], nullptr, kMessage - in_pipe, 0);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return 11;
        in_pipe += static_cast<size_t>(r);
    }
    char c = 'S';
    if (!write_all(sock, &c, 1)) return 12;
    if (!read_all(sock, &c, 1) || c != 'G') return 13;
    std::vector<unsigned char> got(kMessage);
    if (!read_all(p[0], got.data(), got.size())) return 14;
    PeerReport rep{got.size(), 0, 0};
    for (size_t i = 0; i < got.size(); i++) {
        rep.original += got[i] == pattern_byte(kSeed, i);
        rep.rewritten += got[i] == kRewritten;
    }
    return write_all(sock, &rep, sizeof rep) ? 0 : 15;
}

// A peer process of user `uid`, connected to the accepted socket `sock` of this process:
// SO_PEERCRED on `sock` names `uid` (the credentials of whoever connected).
class Peer {
  public:
    Peer(uid_t uid, int (*body)(int sock)) {
        Fd listener(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
        check_sys(listener.get() >= 0, "socket");
        sockaddr_un addr{};
        addr.sun_family = AF_UNIX;
        // An abstract address: no file, no permission for the other user to need.
        int len = std::snprintf(addr.sun_path + 1, sizeof addr.sun_path - 1, "blight-splice-peer-%d-%d", ::getpid(),
                                counter_++);
        socklen_t alen = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + len);
        check_sys(::bind(listener.get(), reinterpret_cast<sockaddr*>(&addr), alen) == 0, "bind");
        check_sys(::listen(listener.get(), 1) == 0, "listen");
        std::fflush(nullptr);
        pid_ = ::fork();
        check_sys(pid_ >= 0, "fork");
        if (pid_ == 0) {
            ::alarm(60);  // the child's watchdog: a stuck peer dies, the parent's waits fail
            if (uid != ::geteuid() &&
                (::setgroups(0, nullptr) != 0 || ::setgid(uid) != 0 || ::setuid(uid) != 0 || ::geteuid() != uid)) {
                ::_exit(20);
            }
            int s = ::socket(AF_UNIX, SOCK_STREAM, 0);
            if (s < 0 || ::connect(s, reinterpret_cast<sockaddr*>(&addr), alen) != 0) ::_exit(21);
            ::_exit(body(s));
        }
        check_sys(poll_for(listener.get(), POLLIN, 20000) != 0, "the peer did not connect within 20 s");
        sock_ = Fd(::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
        check_sys(sock_.get() >= 0, "accept");
    }
    ~Peer() {
        if (pid_ > 0) wait();
    }
    int sock() const { return sock_.get(); }
    // The child's exit code (bounded: killed after 30 s), or -1 if it did not exit.
    int wait() {
        int status = 0;
        for (int i = 0; i < 3000; i++) {
            pid_t r = ::waitpid(pid_, &status, WNOHANG);
            if (r == pid_) {
                pid_ = -1;
                return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
            }
            ::usleep(10 * 1000);
        }
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, &status, 0);
        pid_ = -1;
        return -1;
    }

  private:
    static inline int counter_ = 0;
    pid_t pid_ = -1;
    Fd sock_;
};

uid_t peer_uid(int fd) {
    ucred cred{};
    socklen_t len = sizeof cred;
    check_sys(::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0, "SO_PEERCRED");
    return cred.uid;
}

class SplicePeer : public ThresholdTest {
  protected:
    void SetUp() override {
        ThresholdTest::SetUp();
        if (::geteuid() != 0) GTEST_SKIP() << "needs root, to run the peer as another user (nobody)";
    }
};

// What the splicing peer read, with the sender's free_fn rewriting the buffer as soon as
// the library completed the send. `prepare` runs on the sender's socket before the send.
struct Outcome {
    PeerReport report{};
    blight_zerocopy_stats stats{};
    int exit_code = -1;
};

Outcome send_to_splicing_peer(uid_t uid, const std::function<void(int)>& prepare = {}) {
    Outcome out;
    Peer peer(uid, splice_out_and_report);
    EXPECT_EQ(peer_uid(peer.sock()), uid);
    if (prepare) prepare(peer.sock());
    PageBuffer buf(kMessage);
    EXPECT_NE(buf.data, nullptr);
    if (buf.data == nullptr) return out;
    fill_pattern(buf.data, kMessage, kSeed);
    Rewriter rw;
    blight_buffer_id_t id = 0;
    EXPECT_EQ(blight_send_zerocopy(peer.sock(), buf.data, kMessage, rewrite_on_free, &rw, &id), 0);
    EXPECT_NE(id, 0u);
    EXPECT_EQ(blight_release_buffer(id), 0);
    char c = 0;
    EXPECT_TRUE(read_all(peer.sock(), &c, 1) && c == 'S') << "the peer did not splice the message out";
    // The bytes left the socket (into the peer's pipe): the library may complete the send.
    EXPECT_TRUE(process_until(peer.sock(), [&] { return rw.calls != 0; })) << "free_fn never ran";
    EXPECT_EQ(rw.calls, 1);
    c = 'G';
    EXPECT_TRUE(write_all(peer.sock(), &c, 1));
    EXPECT_TRUE(read_all(peer.sock(), &out.report, sizeof out.report)) << "no report from the peer";
    out.stats = stats_of(peer.sock());
    out.exit_code = peer.wait();
    return out;
}

// The default: a peer of another user gets a copy, so rewriting the buffer after its
// free_fn never reaches it. (Before issue 20 the library spliced to any peer, and this
// peer read the rewritten bytes: all 64 KiB of them.)
TEST_F(SplicePeer, PeerOfAnotherUserGetsACopyAndNeverSeesLaterWrites) {
    Outcome o = send_to_splicing_peer(kNobody);
    EXPECT_EQ(o.exit_code, 0);
    EXPECT_EQ(o.report.read, kMessage);
    EXPECT_EQ(o.report.original, kMessage) << o.report.rewritten
                                           << " bytes the sender wrote after its free_fn reached the peer";
    EXPECT_EQ(o.stats.splice_bytes, 0u);
    EXPECT_EQ(o.stats.splice_sends, 0u);
    EXPECT_EQ(o.stats.copied_bytes, kMessage);
    EXPECT_EQ(o.stats.path, static_cast<uint32_t>(BLIGHT_ZEROCOPY_PATH_COPY_OTHER_USER));
}

// The explicit opt-in: the caller trusts this peer, and the library splices to it. (This
// peer abuses that trust; what it reads is recorded, not asserted: it is the kernel's
// behaviour the default guards against.)
TEST_F(SplicePeer, AnyPeerPolicySplicesToAnotherUser) {
    Outcome o = send_to_splicing_peer(kNobody, [](int fd) {
        ASSERT_EQ(blight_set_splice_policy(fd, BLIGHT_SPLICE_ANY_PEER), 0);
    });
    EXPECT_EQ(o.exit_code, 0);
    EXPECT_EQ(o.report.read, kMessage);
    EXPECT_EQ(o.stats.splice_bytes, kMessage);
    EXPECT_EQ(o.stats.copied_bytes, 0u);
    EXPECT_EQ(o.stats.path, static_cast<uint32_t>(BLIGHT_ZEROCOPY_PATH_SPLICE));
    RecordProperty("rewritten_bytes_the_peer_read", static_cast<int>(o.report.rewritten));
    std::printf("with BLIGHT_SPLICE_ANY_PEER the splicing peer read %llu rewritten bytes of %zu\n",
                static_cast<unsigned long long>(o.report.rewritten), kMessage);
}

// Switching a socket to BLIGHT_SPLICE_NEVER copies, also to the same user.
TEST_F(SplicePeer, NeverPolicyCopiesToTheSameUser) {
    Outcome o = send_to_splicing_peer(::geteuid(), [](int fd) {
        ASSERT_EQ(blight_set_splice_policy(fd, BLIGHT_SPLICE_NEVER), 0);
    });
    EXPECT_EQ(o.exit_code, 0);
    EXPECT_EQ(o.report.original, kMessage);
    EXPECT_EQ(o.stats.splice_bytes, 0u);
    EXPECT_EQ(o.stats.copied_bytes, kMessage);
    EXPECT_EQ(o.stats.path, static_cast<uint32_t>(BLIGHT_ZEROCOPY_PATH_COPY));
}

// A policy applies to the sends that start afterwards: a socket whose peer is another user
// copies, is switched to BLIGHT_SPLICE_ANY_PEER and splices, then back to the default.
TEST_F(SplicePeer, PolicyChangesApplyToLaterSends) {
    Peer peer(kNobody, [](int sock) {
        std::vector<unsigned char> got(3 * kMessage);
        return read_all(sock, got.data(), got.size()) && got == pattern(3 * kMessage, kSeed) ? 0 : 30;
    });
    FreeCounter fc;
    const uint64_t spliced[3] = {0, kMessage, kMessage};
    const uint64_t copied[3] = {kMessage, kMessage, 2 * kMessage};
    const uint32_t path[3] = {BLIGHT_ZEROCOPY_PATH_COPY_OTHER_USER, BLIGHT_ZEROCOPY_PATH_SPLICE,
                              BLIGHT_ZEROCOPY_PATH_COPY_OTHER_USER};
    for (int i = 0; i < 3; i++) {
        if (i > 0) {
            int policy = i == 1 ? BLIGHT_SPLICE_ANY_PEER : BLIGHT_SPLICE_SAME_USER;
            ASSERT_EQ(blight_set_splice_policy(peer.sock(), policy), 0);
        }
        send_new(peer.sock(), kMessage, kSeed, i * kMessage, fc);
        blight_zerocopy_stats s = stats_of(peer.sock());
        EXPECT_EQ(s.splice_bytes, spliced[i]) << "after send " << i;
        EXPECT_EQ(s.copied_bytes, copied[i]) << "after send " << i;
        EXPECT_EQ(s.path, path[i]) << "after send " << i;
    }
    EXPECT_EQ(peer.wait(), 0) << "the peer read other bytes than were sent";
    EXPECT_TRUE(process_until(peer.sock(), [&] { return fc.calls == 3; }));
}

// ---- without root: a peer of the same user, the argument checks ---------------------------

class SpliceSameUser : public ThresholdTest {};

// oxide's case: server and clients run as the same user, and keep the splice path. (This
// peer splices out, and could read what the sender writes after its free_fn: the same
// user's process is trusted by design.)
TEST_F(SpliceSameUser, PeerOfTheSameUserGetsTheSplicePathByDefault) {
    Outcome o = send_to_splicing_peer(::geteuid());
    EXPECT_EQ(o.exit_code, 0);
    EXPECT_EQ(o.report.read, kMessage);
    EXPECT_EQ(o.stats.splice_bytes, kMessage);
    EXPECT_EQ(o.stats.copied_bytes, 0u);
    EXPECT_EQ(o.stats.path, static_cast<uint32_t>(BLIGHT_ZEROCOPY_PATH_SPLICE));
}

// A socket registered before it has a peer copies meanwhile, and checks the peer again
// once it is connected (an unconnected socket's SO_PEERCRED says nothing).
TEST_F(SpliceSameUser, PeerIsCheckedOnceTheSocketIsConnected) {
    Fd listener(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    ASSERT_GE(listener.get(), 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    int len = std::snprintf(addr.sun_path + 1, sizeof addr.sun_path - 1, "blight-splice-later-%d", ::getpid());
    socklen_t alen = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + len);
    ASSERT_EQ(::bind(listener.get(), reinterpret_cast<sockaddr*>(&addr), alen), 0);
    ASSERT_EQ(::listen(listener.get(), 1), 0);
    Fd a(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    ASSERT_GE(a.get(), 0);
    ASSERT_EQ(blight_set_splice_policy(a.get(), BLIGHT_SPLICE_SAME_USER), 0);
    EXPECT_EQ(stats_of(a.get()).path, static_cast<uint32_t>(BLIGHT_ZEROCOPY_PATH_COPY)) << "no peer yet";
    ASSERT_EQ(::connect(a.get(), reinterpret_cast<sockaddr*>(&addr), alen), 0);
    Fd b(::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
    ASSERT_GE(b.get(), 0);
    StreamReader reader(b.get(), kMessage, kSeed);
    FreeCounter fc;
    send_new(a.get(), kMessage, kSeed, 0, fc);
    reader.join();
    EXPECT_EQ(reader.mismatch(), -1);
    blight_zerocopy_stats s = stats_of(a.get());
    EXPECT_EQ(s.path, static_cast<uint32_t>(BLIGHT_ZEROCOPY_PATH_SPLICE));
    EXPECT_EQ(s.splice_bytes, kMessage);
    EXPECT_TRUE(process_until(a.get(), [&] { return fc.calls == 1; }));
}

// A policy lasts until the socket is forgotten; then the default applies again.
TEST_F(SpliceSameUser, PolicyLastsUntilTheSocketIsForgotten) {
    Pair p = unix_pair();
    ASSERT_EQ(blight_set_splice_policy(p.a.get(), BLIGHT_SPLICE_NEVER), 0);
    FreeCounter fc;
    StreamReader reader(p.b.get(), 2 * kMessage, kSeed);
    send_new(p.a.get(), kMessage, kSeed, 0, fc);
    blight_zerocopy_stats s = stats_of(p.a.get());
    EXPECT_EQ(s.copied_bytes, kMessage);
    EXPECT_EQ(s.path, static_cast<uint32_t>(BLIGHT_ZEROCOPY_PATH_COPY));
    ASSERT_EQ(blight_forget_socket(p.a.get()), 0);
    send_new(p.a.get(), kMessage, kSeed, kMessage, fc);
    s = stats_of(p.a.get());
    EXPECT_EQ(s.splice_bytes, kMessage);
    EXPECT_EQ(s.path, static_cast<uint32_t>(BLIGHT_ZEROCOPY_PATH_SPLICE));
    reader.join();
    EXPECT_EQ(reader.mismatch(), -1);
    EXPECT_TRUE(process_until(p.a.get(), [&] { return fc.calls == 2; }));
}

// Every error a caller can reach, and a call that fails registers nothing.
TEST(SplicePolicy, BadArguments) {
    Pair p = unix_pair();
    EXPECT_EQ(blight_set_splice_policy(p.a.get(), 3), -EINVAL);
    EXPECT_EQ(blight_set_splice_policy(p.a.get(), -1), -EINVAL);
    EXPECT_EQ(blight_set_splice_policy(-1, BLIGHT_SPLICE_SAME_USER), -EBADF);
    EXPECT_EQ(blight_set_splice_policy(-1, 99), -EINVAL) << "the policy is checked first";
    int closed = ::dup(p.b.get());
    ASSERT_GE(closed, 0);
    ::close(closed);
    EXPECT_EQ(blight_set_splice_policy(closed, BLIGHT_SPLICE_ANY_PEER), -EBADF);
    int pipefd[2];
    ASSERT_EQ(::pipe(pipefd), 0);
    EXPECT_EQ(blight_set_splice_policy(pipefd[0], BLIGHT_SPLICE_NEVER), -ENOTSOCK);
    ::close(pipefd[0]);
    ::close(pipefd[1]);
    // Sockets without a splice path: refused, and left unknown to the library (a TCP
    // socket is not switched to SO_ZEROCOPY by a failed call).
    Pair t = tcp_pair(AF_INET);
    Pair d = unix_pair(false, SOCK_DGRAM);
    Pair q = unix_pair(false, SOCK_SEQPACKET);
    for (int fd : {t.a.get(), d.a.get(), q.a.get()}) {
        EXPECT_EQ(blight_set_splice_policy(fd, BLIGHT_SPLICE_ANY_PEER), -EOPNOTSUPP) << fd;
        EXPECT_EQ(stats_of(fd).path, static_cast<uint32_t>(BLIGHT_ZEROCOPY_PATH_NONE)) << fd;
    }
    int zerocopy_on = -1;
    socklen_t optlen = sizeof zerocopy_on;
    // (qemu-user knows no SO_ZEROCOPY: there the option cannot be read, nor turned on.)
    if (::getsockopt(t.a.get(), SOL_SOCKET, 60 /* SO_ZEROCOPY */, &zerocopy_on, &optlen) == 0) {
        EXPECT_EQ(zerocopy_on, 0);
    }
    // The valid ones.
    for (int policy : {BLIGHT_SPLICE_NEVER, BLIGHT_SPLICE_ANY_PEER, BLIGHT_SPLICE_SAME_USER})
        EXPECT_EQ(blight_set_splice_policy(p.a.get(), policy), 0) << policy;
}

// BLIGHT_SOCKET_SPLICE=0 turns the path off whatever the policy says. Runs as its own ctest
// (splice_env_off) with that variable set; skipped otherwise.
TEST(SpliceEnvOff, NoSocketSplicesWhateverItsPolicy) {
    const char* env = std::getenv("BLIGHT_SOCKET_SPLICE");
    if (env == nullptr || std::string(env) != "0") GTEST_SKIP() << "runs with BLIGHT_SOCKET_SPLICE=0 (ctest splice_env_off)";
    ASSERT_EQ(blight_set_zerocopy_threshold(kDefaultThreshold), 0);
    Pair p = unix_pair();
    ASSERT_EQ(blight_set_splice_policy(p.a.get(), BLIGHT_SPLICE_ANY_PEER), 0);
    StreamReader reader(p.b.get(), kMessage, kSeed);
    FreeCounter fc;
    blight_buffer_id_t id = send_new(p.a.get(), kMessage, kSeed, 0, fc);
    EXPECT_EQ(fc.calls, 1) << "copied: freed at release";
    EXPECT_EQ(blight_buffer_in_flight(id), -ENOENT);
    reader.join();
    EXPECT_EQ(reader.mismatch(), -1);
    blight_zerocopy_stats s = stats_of(p.a.get());
    EXPECT_EQ(s.splice_bytes, 0u);
    EXPECT_EQ(s.copied_bytes, kMessage);
    EXPECT_EQ(s.path, static_cast<uint32_t>(BLIGHT_ZEROCOPY_PATH_COPY));
}

}  // namespace
