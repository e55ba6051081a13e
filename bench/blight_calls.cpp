// blight-calls: calls one function of a socket library N times in a loop, for callgrind
// (bench/callgrind.sh counts the instructions of one call: run with N and 2N calls, and
// --toggle-collect on the function, the difference / N is the steady-state cost).
//
//   blight-calls LIBRARY OP N
//
// LIBRARY is dlopen()ed (RTLD_LOCAL) and the function is called through the pointer dlsym
// returns, the same way for this project's library, the reference and upstream's
// socket.cpp. Every call works on a non-blocking AF_UNIX stream socketpair that has room
// (sends) or already holds the bytes (receives); the other side is served with plain
// system calls outside the measured function. OPs (12-byte messages, as oxide's header):
//   send                 blight_send_blocking(fd, 12 bytes)
//   recv_blocking        blight_recv_blocking(fd, &p, 12), then free(p)
//   recv                 blight_recv(fd, &p, 12)
//   recv_into            blight_recv_blocking_into(fd, buf, 12) (not in upstream)
//   wait_for_send        blight_wait_for_send(fd, 1000)
//   wait_for_read        blight_wait_for_read(fd, 1000)
//   cxx_send             BlightProtocol::send_blocking(fd, 12 bytes)
//   cxx_recv_blocking    BlightProtocol::recv_blocking(fd, 12), then delete[]
//   cxx_recv             BlightProtocol::recv(fd, 12, 5, 50)
//   cxx_wait_for_send    BlightProtocol::wait_for_send(fd, 1000)
//   cxx_wait_for_read    BlightProtocol::wait_for_read(fd, 1000)
// Prints the symbol to collect on, or exits 3 when the library has no such function.
#include <dlfcn.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>

namespace {
using data_t = unsigned char*;
using SendFn = int (*)(int, const unsigned char*, ssize_t);
using RecvFn = int (*)(int, data_t*, ssize_t);
using WaitFn = int (*)(int, int);
using CxxSendFn = bool (*)(int, data_t, ssize_t);
using CxxRecvBlockingFn = std::optional<data_t> (*)(int, ssize_t);
using CxxRecvFn = std::optional<data_t> (*)(int, ssize_t, unsigned, unsigned);
using CxxWaitFn = bool (*)(int, int);

constexpr ssize_t kSize = 12;
unsigned char g_out[kSize] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
unsigned char g_in[kSize];

[[noreturn]] void die(const char* what) {
    std::fprintf(stderr, "blight-calls: %s\n", what);
    std::exit(1);
}
void put(int fd) {
    if (::send(fd, g_out, kSize, MSG_NOSIGNAL) != kSize) die("send (peer side)");
}
void take(int fd) {
    if (::recv(fd, g_in, kSize, MSG_DONTWAIT) != kSize) die("recv (peer side)");
}
void check(bool ok, const char* op) {
    if (!ok) die(op);
}
}  // namespace

int main(int argc, char** argv) {
    if (argc != 4) {
        std::fprintf(stderr, "usage: blight-calls LIBRARY OP N\n");
        return 2;
    }
    void* lib = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (lib == nullptr) die(dlerror());
    const std::string op = argv[2];
    const long n = std::atol(argv[3]);
    struct Op {
        const char* name;
        const char* c;
        const char* mangled64;
    };
    static const Op ops[] = {
        {"send", "blight_send_blocking", nullptr},
        {"recv_blocking", "blight_recv_blocking", nullptr},
        {"recv", "blight_recv", nullptr},
        {"recv_into", "blight_recv_blocking_into", nullptr},
        {"wait_for_send", "blight_wait_for_send", nullptr},
        {"wait_for_read", "blight_wait_for_read", nullptr},
        {"cxx_send", nullptr, sizeof(ssize_t) == 8 ? "_ZN14BlightProtocol13send_blockingEiPhl" : "_ZN14BlightProtocol13send_blockingEiPhi"},
        {"cxx_recv_blocking", nullptr, sizeof(ssize_t) == 8 ? "_ZN14BlightProtocol13recv_blockingEil" : "_ZN14BlightProtocol13recv_blockingEii"},
        {"cxx_recv", nullptr, sizeof(ssize_t) == 8 ? "_ZN14BlightProtocol4recvEiljj" : "_ZN14BlightProtocol4recvEiijj"},
        {"cxx_wait_for_send", nullptr, "_ZN14BlightProtocol13wait_for_sendEii"},
        {"cxx_wait_for_read", nullptr, "_ZN14BlightProtocol13wait_for_readEii"},
    };
    const Op* found = nullptr;
    for (const Op& o : ops) {
        if (op == o.name) found = &o;
    }
    if (found == nullptr) die("unknown OP");
    const char* symbol = found->c != nullptr ? found->c : found->mangled64;
    void* fn = dlsym(lib, symbol);
    if (fn == nullptr) return 3;
    std::printf("%s\n", symbol);
    std::fflush(stdout);

    int fds[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fds) != 0) die("socketpair");
    const int s = fds[0], r = fds[1];
    for (long i = 0; i < n; i++) {
        if (op == "send") {
            check(reinterpret_cast<SendFn>(fn)(s, g_out, kSize) == 0, "send");
            take(r);
        } else if (op == "recv_blocking" || op == "recv") {
            put(s);
            data_t p = nullptr;
            check(reinterpret_cast<RecvFn>(fn)(r, &p, kSize) == 0, op.c_str());
            // Upstream's C functions hand out new[] memory, this project's malloc():
            // glibc's operator new[] of unsigned char is malloc, so free() is right for both.
            std::free(p);
        } else if (op == "recv_into") {
            put(s);
            check(reinterpret_cast<int (*)(int, unsigned char*, ssize_t)>(fn)(r, g_in, kSize) == 0, "recv_into");
        } else if (op == "wait_for_send") {
            check(reinterpret_cast<WaitFn>(fn)(s, 1000) == 0, "wait_for_send");
        } else if (op == "wait_for_read") {
            put(s);
            check(reinterpret_cast<WaitFn>(fn)(r, 1000) == 0, "wait_for_read");
            take(r);
        } else if (op == "cxx_send") {
            check(reinterpret_cast<CxxSendFn>(fn)(s, g_out, kSize), "cxx_send");
            take(r);
        } else if (op == "cxx_recv_blocking" || op == "cxx_recv") {
            put(s);
            std::optional<data_t> p = op == "cxx_recv" ? reinterpret_cast<CxxRecvFn>(fn)(r, kSize, 5, 50)
                                                       : reinterpret_cast<CxxRecvBlockingFn>(fn)(r, kSize);
            check(p.has_value(), op.c_str());
            delete[] *p;
        } else if (op == "cxx_wait_for_send") {
            check(reinterpret_cast<CxxWaitFn>(fn)(s, 1000), "cxx_wait_for_send");
        } else if (op == "cxx_wait_for_read") {
            put(s);
            check(reinterpret_cast<CxxWaitFn>(fn)(r, 1000), "cxx_wait_for_read");
            take(r);
        }
    }
    close(s);
    close(r);
    return 0;
}
