// What the C library's cancellation wrapper costs a small send and receive (issue 18;
// docs/BENCHMARKS.md, "The cancellation wrapper"). In a process with more than one thread
// glibc's send() and recv() switch the thread to asynchronous cancellation around the
// system call and back (two atomic read-modify-writes); syscall(SYS_sendto / SYS_recvfrom)
// makes the same system calls without them. One thread sends 12 bytes and receives them
// back on a non-blocking AF_UNIX pair, both ways alternately, in interleaved rounds: first
// while the process has one thread (glibc then skips the wrapper: the control, about
// 1.00), then once a second thread exists (as in every Qt program, and in blight).
//
// usage: blight-syscall-entry [rounds] [pairs per round]
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <thread>
#include <vector>

namespace {
double thread_cpu_ns() {
    timespec t{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return double(t.tv_sec) * 1e9 + double(t.tv_nsec);
}
double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
}

// Median per-round ratio syscall() / libc, and the medians of each, in ns per pair.
void measure(const char* when, int rounds, int pairs) {
    int fds[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fds) != 0) std::exit((std::perror("socketpair"), 1));
    unsigned char out[12] = {1, 2, 3}, in[12];
    std::vector<double> libc_ns, raw_ns, ratio;
    for (int r = 0; r < rounds; r++) {
        double t[2];
        for (int k = 0; k < 2; k++) {
            const int way = (k + r) % 2;
            const double c = thread_cpu_ns();
            for (int i = 0; i < pairs; i++) {
                long s, g;
                if (way == 0) {
                    s = send(fds[0], out, sizeof out, MSG_NOSIGNAL);
                    g = recv(fds[1], in, sizeof in, MSG_WAITALL);
                } else {
                    s = syscall(SYS_sendto, fds[0], out, sizeof out, MSG_NOSIGNAL | MSG_DONTWAIT, nullptr, 0);
                    g = syscall(SYS_recvfrom, fds[1], in, sizeof in, MSG_WAITALL | MSG_DONTWAIT, nullptr, nullptr);
                }
                if (s != 12 || g != 12) std::exit((std::fprintf(stderr, "short transfer\n"), 1));
            }
            t[way] = (thread_cpu_ns() - c) / pairs;
        }
        libc_ns.push_back(t[0]);
        raw_ns.push_back(t[1]);
        ratio.push_back(t[1] / t[0]);
    }
    close(fds[0]);
    close(fds[1]);
    std::printf("  %-22s libc send/recv %6.1f ns   syscall() %6.1f ns   syscall() / libc %.3f\n", when, median(libc_ns),
                median(raw_ns), median(ratio));
}
}  // namespace

int main(int argc, char** argv) {
    const int rounds = argc > 1 ? std::atoi(argv[1]) : 21;
    const int pairs = argc > 2 ? std::atoi(argv[2]) : 200000;
    std::printf("12-byte send + recv on one thread, %d interleaved rounds of %d (medians; ratio: of per-round ratios)\n",
                rounds, pairs);
    measure("one thread (control)", rounds, pairs);
    std::atomic<bool> stop{false};
    std::thread other([&] {
        while (!stop.load()) usleep(10000);
    });
    measure("a second thread exists", rounds, pairs);
    stop = true;
    other.join();
}
