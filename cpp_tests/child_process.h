// Forked children with a bounded wait, for every C++ suite: a check that could hang, crash
// or raise SIGPIPE runs in a child, and the parent gets a ChildResult (how the child ended,
// and optionally a report the child sent back). One implementation; socket_test_support.h
// and zc_util.h include it.
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <exception>
#include <functional>
#include <string>
#include <thread>

namespace blight_test {

// How a child of run_in_child / run_in_child_reporting ended.
struct ChildResult {
    bool timed_out = false;  // killed after the time limit
    bool exited = false;
    int exit_code = -1;
    bool signaled = false;
    int signal = 0;
    std::string error;   // fork, pipe or waitpid failed in the parent
    std::string report;  // what the body of run_in_child_reporting wrote

    // Exited with 0.
    bool ok() const { return !timed_out && exited && exit_code == 0; }
    std::string describe() const {
        if (!error.empty()) return error;
        if (timed_out) return "child killed after the time limit (hang or deadlock)";
        if (signaled) return "child killed by signal " + std::to_string(signal) + " (" + strsignal(signal) + ")";
        if (exited) return "child exited with code " + std::to_string(exit_code);
        return "child in an unknown state";
    }
};

#define ZC_CHILD_CHECK(cond)                                                              \
    do {                                                                                  \
        if (!(cond)) {                                                                    \
            fprintf(stderr, "%s:%d: child check failed: %s\n", __FILE__, __LINE__, #cond); \
            return __LINE__ % 200 + 1;                                                    \
        }                                                                                 \
    } while (0)

namespace child_detail {

inline ChildResult run(const std::function<int(std::string&)>& body, std::chrono::milliseconds limit, bool reporting) {
    using Clock = std::chrono::steady_clock;
    ChildResult res;
    int pipefd[2] = {-1, -1};
    if (reporting && ::pipe2(pipefd, O_CLOEXEC) != 0) {
        res.error = std::string("pipe failed: ") + std::strerror(errno);
        return res;
    }
    std::fflush(nullptr);
    pid_t pid = ::fork();
    if (pid < 0) {
        res.error = std::string("fork failed: ") + std::strerror(errno);
        if (reporting) {
            ::close(pipefd[0]);
            ::close(pipefd[1]);
        }
        return res;
    }
    if (pid == 0) {
        if (reporting) ::close(pipefd[0]);
        // SIGPIPE at its default disposition and no signal blocked: a SIGPIPE kills the child.
        ::signal(SIGPIPE, SIG_DFL);
        sigset_t none;
        sigemptyset(&none);
        ::pthread_sigmask(SIG_SETMASK, &none, nullptr);
        std::string report;
        int code = 100;
        try {
            code = body(report);
        } catch (const std::exception& e) {
            std::fprintf(stderr, "child: exception: %s\n", e.what());
            code = 101;
        } catch (...) {
            std::fprintf(stderr, "child: unknown exception\n");
            code = 101;
        }
        // A SIGPIPE left pending (raised while a thread of the body blocked it) would be a
        // latent kill.
        sigset_t pending;
        sigemptyset(&pending);
        if (::sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE)) {
            std::fprintf(stderr, "child: SIGPIPE pending\n");
            code = 102;
        }
        if (reporting) {
            size_t off = 0;
            while (off < report.size()) {
                ssize_t w = ::write(pipefd[1], report.data() + off, report.size() - off);
                if (w < 0 && errno == EINTR) continue;
                if (w <= 0) {
                    if (code == 0) code = 103;
                    break;
                }
                off += static_cast<size_t>(w);
            }
        }
        std::fflush(nullptr);
        ::_exit(code);
    }
    int rfd = -1;
    if (reporting) {
        ::close(pipefd[1]);
        rfd = pipefd[0];
    }
    // Reads what the child has written so far; closes the pipe at EOF.
    auto read_report = [&](int wait_ms) {
        if (rfd < 0) return;
        pollfd p{rfd, POLLIN, 0};
        if (::poll(&p, 1, wait_ms) <= 0) return;
        char buf[4096];
        ssize_t n = ::read(rfd, buf, sizeof buf);
        if (n > 0) {
            res.report.append(buf, static_cast<size_t>(n));
        } else if (n == 0 || errno != EINTR) {
            ::close(rfd);
            rfd = -1;
        }
    };
    auto deadline = Clock::now() + limit;
    int status = 0;
    for (;;) {
        pid_t r = ::waitpid(pid, &status, WNOHANG);
        if (r == pid) break;
        if (r < 0 && errno != EINTR) {
            res.error = std::string("waitpid failed: ") + std::strerror(errno);
            if (rfd >= 0) ::close(rfd);
            return res;
        }
        if (Clock::now() >= deadline) {
            ::kill(pid, SIGKILL);
            while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
            }
            res.timed_out = true;
            if (rfd >= 0) ::close(rfd);
            return res;
        }
        if (rfd >= 0)
            read_report(1);
        else
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    while (rfd >= 0) read_report(1000);  // the child is gone: the rest, then EOF
    if (WIFEXITED(status)) {
        res.exited = true;
        res.exit_code = WEXITSTATUS(status);
    } else if (WIFSIGNALED(status)) {
        res.signaled = true;
        res.signal = WTERMSIG(status);
    }
    return res;
}

}  // namespace child_detail

// Runs `body` in a forked child with SIGPIPE at its default disposition and no signal
// blocked, so that a SIGPIPE kills the child. The child exits with body's return value
// (0 = success; anything else names the failed check, see ZC_CHILD_CHECK; 101 = an
// exception, 102 = a SIGPIPE left pending). It is killed after `limit`, so a hang or a
// deadlock fails instead of hanging the suite. Call with no other threads running.
inline ChildResult run_in_child(const std::function<int()>& body,
                                std::chrono::milliseconds limit = std::chrono::seconds(10)) {
    return child_detail::run([&body](std::string&) { return body(); }, limit, false);
}

// The same, and what `body` writes into its report string comes back in
// ChildResult::report (through a pipe, once body has returned).
inline ChildResult run_in_child_reporting(const std::function<int(std::string& report)>& body,
                                          std::chrono::milliseconds limit = std::chrono::seconds(10)) {
    return child_detail::run(body, limit, true);
}

}  // namespace blight_test
