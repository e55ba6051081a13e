/* The end-to-end step's negative control (integrations/oxide/e2e.sh --negative-control):
 * an LD_PRELOAD library that corrupts one send in 50 on blight's client sockets, to prove
 * that the step's checks can fail.
 *
 * It wraps send(2) and sendmsg(2), the calls both socket layers use (upstream's
 * socket.cpp: send; this library: send and sendmsg), and syscall(2) for SYS_sendto, which
 * this library's per-message fast path uses (src/sys.rs, send_nowait). Only sends on a connected AF_UNIX
 * stream socket with an unnamed peer in another process are counted: that is the
 * socketpair blight hands its clients; the D-Bus connection (a named peer) and a process's
 * own socketpairs are left alone, so what breaks is the blight protocol, not the bus. On the counted sends number CORRUPT_SEND_FIRST,
 * CORRUPT_SEND_FIRST + 50, ... (CORRUPT_SEND_FIRST from the environment, default 10;
 * CORRUPT_SEND_EVERY overrides 50) every byte of the buffer is inverted; the length is
 * kept, so the stream stays in step and only the content is wrong. One line per corrupted
 * send goes to stderr (CORRUPT_SEND_TRACE=1: one per counted send).
 *
 * Build: gcc -shared -fPIC -O2 corrupt_send.c -o corrupt_send.so -ldl */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/un.h>
#include <unistd.h>

static atomic_long counted;

static long env_long(const char* name, long fallback) {
  const char* s = getenv(name);
  if (s == NULL || *s == '\0') {
    return fallback;
  }
  char* end = NULL;
  long v = strtol(s, &end, 10);
  return (end != s && *end == '\0' && v > 0) ? v : fallback;
}

/* A connected AF_UNIX stream socket whose peer has no name (a socketpair). */
static int is_blight_socket(int fd) {
  int type = 0;
  socklen_t len = sizeof(type);
  if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) != 0 || type != SOCK_STREAM) {
    return 0;
  }
  struct sockaddr_un peer;
  len = sizeof(peer);
  memset(&peer, 0, sizeof(peer));
  if (getpeername(fd, (struct sockaddr*)&peer, &len) != 0) {
    return 0;
  }
  if (peer.sun_family != AF_UNIX || len > sizeof(sa_family_t)) {
    return 0;
  }
  /* A socketpair this process made for itself (upstream's C suite has local tests that
   * do) has this process as its peer; blight's socket has blight. */
  struct ucred cred;
  len = sizeof(cred);
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) {
    return 0;
  }
  return cred.pid != getpid();
}

/* Whether this send is one to corrupt (counts it when it is on a blight socket). */
static int should_corrupt(int fd, size_t size) {
  if (size == 0 || !is_blight_socket(fd)) {
    return 0;
  }
  long n = atomic_fetch_add(&counted, 1) + 1;
  long first = env_long("CORRUPT_SEND_FIRST", 10);
  long every = env_long("CORRUPT_SEND_EVERY", 50);
  if (getenv("CORRUPT_SEND_TRACE") != NULL) {
    fprintf(stderr, "corrupt_send: pid %d: send #%ld (fd %d, %zu bytes)\n", (int)getpid(), n, fd, size);
  }
  if (n < first || (n - first) % every != 0) {
    return 0;
  }
  fprintf(stderr, "corrupt_send: pid %d: corrupting send #%ld (fd %d, %zu bytes)\n", (int)getpid(), n, fd, size);
  return 1;
}

static void* next(const char* name) {
  void* f = dlsym(RTLD_NEXT, name);
  if (f == NULL) {
    fprintf(stderr, "corrupt_send: no %s after this library\n", name);
    abort();
  }
  return f;
}

ssize_t send(int fd, const void* buf, size_t size, int flags) {
  static ssize_t (*real)(int, const void*, size_t, int);
  if (real == NULL) {
    real = (ssize_t(*)(int, const void*, size_t, int))next("send");
  }
  if (buf == NULL || !should_corrupt(fd, size)) {
    return real(fd, buf, size, flags);
  }
  unsigned char* copy = malloc(size);
  if (copy == NULL) {
    return real(fd, buf, size, flags);
  }
  for (size_t i = 0; i < size; i++) {
    copy[i] = (unsigned char)~((const unsigned char*)buf)[i];
  }
  ssize_t res = real(fd, copy, size, flags);
  int saved = errno;
  free(copy);
  errno = saved;
  return res;
}

ssize_t sendmsg(int fd, const struct msghdr* msg, int flags) {
  static ssize_t (*real)(int, const struct msghdr*, int);
  if (real == NULL) {
    real = (ssize_t(*)(int, const struct msghdr*, int))next("sendmsg");
  }
  size_t size = 0;
  for (size_t i = 0; msg != NULL && i < msg->msg_iovlen; i++) {
    size += msg->msg_iov[i].iov_len;
  }
  /* Messages carrying file descriptors are left alone (that is D-Bus, or SCM_RIGHTS). */
  if (msg == NULL || msg->msg_controllen != 0 || !should_corrupt(fd, size)) {
    return real(fd, msg, flags);
  }
  unsigned char* copy = malloc(size);
  if (copy == NULL) {
    return real(fd, msg, flags);
  }
  size_t at = 0;
  for (size_t i = 0; i < msg->msg_iovlen; i++) {
    const unsigned char* p = msg->msg_iov[i].iov_base;
    for (size_t j = 0; j < msg->msg_iov[i].iov_len; j++) {
      copy[at++] = (unsigned char)~p[j];
    }
  }
  struct iovec one = {copy, size};
  struct msghdr m = *msg;
  m.msg_iov = &one;
  m.msg_iovlen = 1;
  ssize_t res = real(fd, &m, flags);
  int saved = errno;
  free(copy);
  errno = saved;
  return res;
}

/* syscall(2) takes up to six arguments of register size; like the C library's own
 * syscall(), this reads all six whatever the call passed. */
long syscall(long number, ...) {
  static long (*real)(long, ...);
  if (real == NULL) {
    real = (long (*)(long, ...))next("syscall");
  }
  va_list ap;
  va_start(ap, number);
  long a[6];
  for (int i = 0; i < 6; i++) {
    a[i] = va_arg(ap, long);
  }
  va_end(ap);
  const void* buf = (const void*)a[1];
  size_t size = (size_t)a[2];
  /* A plain send: no destination address (a[4]), on a blight socket. */
  if (number != SYS_sendto || buf == NULL || a[4] != 0 || !should_corrupt((int)a[0], size)) {
    return real(number, a[0], a[1], a[2], a[3], a[4], a[5]);
  }
  unsigned char* copy = malloc(size);
  if (copy == NULL) {
    return real(number, a[0], a[1], a[2], a[3], a[4], a[5]);
  }
  for (size_t i = 0; i < size; i++) {
    copy[i] = (unsigned char)~((const unsigned char*)buf)[i];
  }
  long res = real(number, a[0], (long)copy, a[2], a[3], a[4], a[5]);
  int saved = errno;
  free(copy);
  errno = saved;
  return res;
}
