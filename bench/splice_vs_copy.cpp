// splice-vs-copy: what the splice path saves a sender whose peer is the same user (issue 20),
// oxide's case: a client connects to the server's AF_UNIX socket, both run as one user, so
// the default policy (BLIGHT_SPLICE_SAME_USER) splices. Each round sends the same messages
// twice on the same connection, once with the default policy and once with
// BLIGHT_SPLICE_NEVER (what a peer of another user gets: copies), in alternating order, and
// measures the sending thread's CPU time (CLOCK_THREAD_CPUTIME_ID) and the wall time; it
// prints the medians and their ratio. The statistics must show that the bytes took the path
// each half asked for, or the program fails.
//
// Usage: splice-vs-copy [rounds (default 15)] [MiB per half-round (default 64)]
#include <libblight_protocol/socket.h>

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>

namespace {

double now(clockid_t clock) {
    timespec ts{};
    clock_gettime(clock, &ts);
    return double(ts.tv_sec) + double(ts.tv_nsec) * 1e-9;
}

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
}

[[noreturn]] void die(const char* what) {
    std::perror(what);
    std::exit(1);
}

// A connected pair made as oxide makes it: listen, connect, accept (SO_PEERCRED: this user).
void connect_pair(int& client, int& server) {
    int l = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    int len = std::snprintf(addr.sun_path + 1, sizeof addr.sun_path - 1, "splice-vs-copy-%d", ::getpid());
    socklen_t alen = socklen_t(offsetof(sockaddr_un, sun_path) + 1 + len);
    if (l < 0 || ::bind(l, reinterpret_cast<sockaddr*>(&addr), alen) != 0 || ::listen(l, 1) != 0) die("listen");
    client = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (client < 0 || ::connect(client, reinterpret_cast<sockaddr*>(&addr), alen) != 0) die("connect");
    server = ::accept4(l, nullptr, nullptr, SOCK_CLOEXEC);
    if (server < 0) die("accept");
    ::close(l);
}

}  // namespace

int main(int argc, char** argv) {
    const int rounds = argc > 1 ? std::atoi(argv[1]) : 15;
    const size_t half_bytes = size_t(argc > 2 ? std::atoi(argv[2]) : 64) << 20;
    if (rounds < 1 || half_bytes == 0) {
        std::fprintf(stderr, "usage: splice-vs-copy [rounds] [MiB per half-round]\n");
        return 2;
    }
    int sender = -1, receiver = -1;
    connect_pair(sender, receiver);
    std::atomic<bool> done{false};
    std::thread reader([&] {
        std::vector<unsigned char> buf(1 << 20);
        while (!done) {
            pollfd p{receiver, POLLIN, 0};
            if (::poll(&p, 1, 100) <= 0) continue;
            if (::recv(receiver, buf.data(), buf.size(), MSG_DONTWAIT) == 0) break;
        }
    });
    std::printf("splice-vs-copy: %d rounds of %zu MiB per path, same-user peer (listen/connect/accept)\n", rounds,
                half_bytes >> 20);
    std::printf("%8s  %-6s  %13s  %13s  %9s\n", "size", "path", "sender CPU s/GB", "wall s/GB", "spliced");
    bool ok = true;
    for (size_t size : {size_t(64) << 10, size_t(1) << 20, size_t(10) << 20}) {
        std::vector<unsigned char> msg(size, 0x5A);
        const size_t count = std::max<size_t>(1, half_bytes / size);
        const double gb = double(count * size) / 1e9;
        std::vector<double> cpu[2], wall[2];
        uint64_t spliced[2] = {0, 0}, copied[2] = {0, 0};
        for (int r = 0; r < rounds; r++) {
            for (int k = 0; k < 2; k++) {
                int mode = (r + k) % 2;  // 0: the default policy (splice), 1: BLIGHT_SPLICE_NEVER (copy)
                blight_set_splice_policy(sender, mode == 0 ? BLIGHT_SPLICE_SAME_USER : BLIGHT_SPLICE_NEVER);
                blight_zerocopy_stats before{}, after{};
                blight_get_zerocopy_stats(sender, &before);
                double c0 = now(CLOCK_THREAD_CPUTIME_ID), w0 = now(CLOCK_MONOTONIC);
                for (size_t i = 0; i < count; i++) {
                    blight_buffer_id_t id = 0;
                    // free_fn NULL: the buffer is ours, and never changes while in flight.
                    if (blight_send_zerocopy(sender, msg.data(), ssize_t(size), nullptr, nullptr, &id) != 0) die("send");
                    blight_release_buffer(id);
                    if (i % 16 == 15) blight_process_zerocopy_completions(sender, 0);
                }
                while (blight_get_zerocopy_stats(sender, &after) == 0 && after.pending_sends > 0)
                    blight_process_zerocopy_completions(sender, 100);
                cpu[mode].push_back((now(CLOCK_THREAD_CPUTIME_ID) - c0) / gb);
                wall[mode].push_back((now(CLOCK_MONOTONIC) - w0) / gb);
                spliced[mode] += after.splice_bytes - before.splice_bytes;
                copied[mode] += after.copied_bytes - before.copied_bytes;
            }
        }
        const char* names[2] = {"splice", "copy"};
        for (int mode = 0; mode < 2; mode++) {
            uint64_t total = spliced[mode] + copied[mode];
            std::printf("%7zuK  %-6s  %15.4f  %13.4f  %8.1f%%\n", size >> 10, names[mode], median(cpu[mode]),
                        median(wall[mode]), total ? 100.0 * double(spliced[mode]) / double(total) : 0.0);
        }
        std::printf("%8s  splice / copy: sender CPU %.3fx, wall %.3fx\n", "", median(cpu[0]) / median(cpu[1]),
                    median(wall[0]) / median(wall[1]));
        // The paths asked for: splice moves all but the tails under the threshold; copy all.
        if (spliced[1] != 0 || spliced[0] < (spliced[0] + copied[0]) * 9 / 10) ok = false;
    }
    done = true;
    ::shutdown(sender, SHUT_WR);
    reader.join();
    if (!ok) {
        std::fprintf(stderr, "splice-vs-copy: the bytes did not take the paths asked for\n");
        return 1;
    }
    return 0;
}
