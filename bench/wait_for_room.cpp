// How a sender waits for room on a full AF_UNIX socket, and what it costs the receiver
// (issue 18; docs/BENCHMARKS.md, "The wait for room"). No library at all: oxide's message
// pattern (a 12-byte header, then the payload, two sends) between two threads over a
// non-blocking socketpair, the receiver upstream's (recv(MSG_WAITALL), a 5 us nap on
// EAGAIN), the sender's send loop identical in every variant but for its wait on EAGAIN:
//   nap          upstream's short_pause(): nanosleep(5 us), about 55 us with timer slack
//   poll         poll(POLLOUT) at once: woken by the peer once the queue is a quarter full
//   ppoll+poll   this library's first wait for a small write: ppoll(POLLOUT, 5 us), then
//                poll if the socket is still full
// Rounds interleave the variants; each ratio is the median over rounds of the variant's
// figure over the nap's in the same round.
//
// usage: blight-wait-for-room [rounds] [messages per round] [nap|poll|ppoll]
// With a wait named, only that one runs (for a profiler: perf record -g -e cpu-clock).
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <string>
#include <thread>
#include <vector>

namespace {
enum Wait { Nap, Poll, PpollThenPoll, kWaits };
const char* kNames[kWaits] = {"nap (upstream)", "poll at once", "ppoll, then poll"};

double thread_cpu() {
    timespec t{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return double(t.tv_sec) + double(t.tv_nsec) * 1e-9;
}
double now() {
    timespec t{};
    clock_gettime(CLOCK_MONOTONIC, &t);
    return double(t.tv_sec) + double(t.tv_nsec) * 1e-9;
}
void nap() {
    timespec q{0, 5000};
    nanosleep(&q, nullptr);
}

// Sends all of p[0..n) with the wait `w` on EAGAIN; counts the waits.
void send_all(int fd, const unsigned char* p, size_t n, Wait w, long& waits) {
    bool first = true;
    for (size_t done = 0; done < n;) {
        ssize_t r = send(fd, p + done, n - done, MSG_NOSIGNAL);
        if (r >= 0) {
            done += size_t(r);
            first = true;
            continue;
        }
        if (errno != EAGAIN && errno != EINTR) std::exit((std::perror("send"), 1));
        waits++;
        pollfd pfd{fd, POLLOUT, 0};
        if (w == Nap) {
            nap();
        } else if (w == PpollThenPoll && first) {
            timespec t{0, 5000};
            ppoll(&pfd, 1, &t, nullptr);
            first = false;
        } else {
            poll(&pfd, 1, -1);
        }
    }
}

// Upstream's recv_blocking into `buf`.
void recv_all(int fd, unsigned char* buf, size_t n) {
    for (size_t done = 0; done < n;) {
        ssize_t r = recv(fd, buf + done, n - done, MSG_WAITALL);
        if (r > 0) {
            done += size_t(r);
        } else if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
            std::exit((std::perror("recv"), 1));
        } else {
            nap();
        }
    }
}

struct Sample {
    double rate, snd_cpu, rcv_cpu, waits;
};

Sample run(Wait w, size_t payload, size_t msgs) {
    int fds[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fds) != 0) std::exit((std::perror("socketpair"), 1));
    std::atomic<int> ready{0};
    std::atomic<bool> go{false};
    Sample s{};
    long waits = 0;
    double t_end_s = 0, t_end_r = 0;
    std::vector<unsigned char> out(payload + 1, 0x5A), in(payload + 12);
    std::thread receiver([&] {
        ready++;
        while (!go.load()) {
        }
        double c = thread_cpu();
        for (size_t i = 0; i < msgs; i++) {
            uint32_t h[3];
            recv_all(fds[1], in.data(), 12);
            std::copy(in.begin(), in.begin() + 12, reinterpret_cast<unsigned char*>(h));
            if (h[0] != uint32_t(i)) std::exit((std::fprintf(stderr, "message %zu out of order\n", i), 1));
            if (payload > 0) recv_all(fds[1], in.data(), payload);
        }
        s.rcv_cpu = (thread_cpu() - c) / double(msgs);
        t_end_r = now();
    });
    std::thread sender([&] {
        ready++;
        while (!go.load()) {
        }
        double c = thread_cpu();
        for (size_t i = 0; i < msgs; i++) {
            uint32_t h[3] = {uint32_t(i), uint32_t(payload), 0};
            send_all(fds[0], reinterpret_cast<unsigned char*>(h), 12, w, waits);
            if (payload > 0) send_all(fds[0], out.data(), payload, w, waits);
        }
        s.snd_cpu = (thread_cpu() - c) / double(msgs);
        t_end_s = now();
    });
    while (ready.load() < 2) {
    }
    double t0 = now();
    go = true;
    sender.join();
    receiver.join();
    close(fds[0]);
    close(fds[1]);
    s.rate = double(msgs) / (std::max(t_end_s, t_end_r) - t0);
    s.waits = double(waits) / double(msgs);
    return s;
}

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v.empty() ? 0 : v[v.size() / 2];
}
}  // namespace

int main(int argc, char** argv) {
    const int rounds = argc > 1 ? std::atoi(argv[1]) : 21;
    const size_t msgs = argc > 2 ? size_t(std::atol(argv[2])) : 15000;
    if (argc > 3) {
        const std::string name = argv[3];
        const Wait w = name == "nap" ? Nap : name == "poll" ? Poll : name == "ppoll" ? PpollThenPoll : kWaits;
        if (w == kWaits) return (std::fprintf(stderr, "unknown wait %s (nap, poll or ppoll)\n", argv[3]), 2);
        for (int r = 0; r < rounds; r++) run(w, 64, msgs);
        return 0;
    }
    std::printf("wait for room: %d interleaved rounds of %zu messages, AF_UNIX SOCK_NONBLOCK pair, no library\n", rounds,
                msgs);
    std::printf("  %-6s %-18s %12s %8s %10s %8s %10s %8s %10s\n", "size", "sender waits by", "msg/s", "rate", "rcv us/msg",
                "rcv CPU", "snd us/msg", "snd CPU", "waits/msg");
    for (size_t payload : {size_t(0), size_t(64), size_t(4096)}) {
        std::vector<Sample> got[kWaits];
        for (int w = 0; w < kWaits; w++) run(Wait(w), payload, msgs / 4);  // warm-up
        for (int r = 0; r < rounds; r++) {
            for (int k = 0; k < kWaits; k++) {
                int w = (k + r) % kWaits;
                got[w].push_back(run(Wait(w), payload, msgs));
            }
        }
        for (int w = 0; w < kWaits; w++) {
            auto med = [&](double Sample::*f) {
                std::vector<double> v;
                for (auto& s : got[w]) v.push_back(s.*f);
                return median(v);
            };
            auto paired = [&](double Sample::*f) {
                std::vector<double> v;
                for (size_t i = 0; i < got[w].size(); i++) v.push_back(got[w][i].*f / got[Nap][i].*f);
                return median(v);
            };
            std::printf("  %-6zu %-18s %12.0f %7.3fx %10.3f %7.3fx %10.3f %7.3fx %10.4f\n", payload, kNames[w],
                        med(&Sample::rate), paired(&Sample::rate), med(&Sample::rcv_cpu) * 1e6, paired(&Sample::rcv_cpu),
                        med(&Sample::snd_cpu) * 1e6, paired(&Sample::snd_cpu), med(&Sample::waits));
        }
    }
    std::printf("rate, rcv CPU, snd CPU: median over rounds of this wait's figure / the nap's in the same round\n");
}
