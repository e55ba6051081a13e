/* Preloaded into Rust test binaries run under qemu-user (scripts/test.d/26-cross-arm.sh):
 * thread creation fails with EAGAIN at once instead of crashing or hanging the emulator,
 * and Rust's test harness then runs each test on the main thread (it does so when
 * spawning fails with WouldBlock). A test that itself needs a thread fails loudly. */
#include <errno.h>
#include <pthread.h>

int pthread_create(pthread_t* thread, const pthread_attr_t* attr, void* (*start)(void*), void* arg) {
    (void)thread;
    (void)attr;
    (void)start;
    (void)arg;
    return EAGAIN;
}
