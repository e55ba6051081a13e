/* oxide's own blight_send_message and blight_message_from_socket (libblight_protocol.cpp,
 * built from the oxide tree by sendv.sh), over an AF_UNIX SOCK_NONBLOCK socketpair: a
 * sender thread and a receiver thread, every message checked.
 *
 *   send_message check              round trips of 0 B to 1 MiB payloads (more than a
 *                                   socket buffer: partial writes), then a closed peer;
 *                                   exit status 0 when all passed
 *   send_message bench SIZE COUNT   COUNT messages of SIZE bytes; prints
 *                                   "<messages/s> <sender CPU us/msg> <receiver CPU us/msg>"
 *
 * Linked only to libblight_protocol, so that the same binary runs against upstream's
 * library, the drop-in build and the drop-in build with sendv-message.patch (chosen by
 * LD_LIBRARY_PATH). */
#define _GNU_SOURCE
#include <errno.h>
#include <libblight_protocol.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

struct run {
  int fds[2];
  uint32_t size;
  long count;
  unsigned char* payload;
  long bad;
  double rcv_cpu;
};

static double thread_cpu(void) {
  struct timespec t;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static double wall(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static void fill(unsigned char* p, uint32_t size, long i) {
  for (uint32_t k = 0; k < size; k++) p[k] = (unsigned char)(i * 31 + k * 7 + (k >> 8));
}

static void* receiver(void* arg) {
  struct run* r = arg;
  double c0 = thread_cpu();
  unsigned char* want = malloc(r->size ? r->size : 1);
  for (long i = 0; i < r->count; i++) {
    blight_message_t* m = NULL;
    int res = blight_message_from_socket(r->fds[1], &m);
    if (res == -EAGAIN || res == -EINTR) {  /* nothing within upstream's 5 x 50 ms */
      i--;
      continue;
    }
    if (res < 0 || m == NULL) {
      fprintf(stderr, "message %ld: blight_message_from_socket: %s\n", i, strerror(-res));
      r->bad++;
      break;
    }
    fill(want, r->size, i);
    if (m->header.ackid != (unsigned)i || m->header.size != r->size ||
        (r->size && memcmp(m->data, want, r->size) != 0)) {
      fprintf(stderr, "message %ld: wrong header or data (ackid %u, size %u)\n", i, m->header.ackid, m->header.size);
      r->bad++;
    }
    blight_message_deref(m);
  }
  free(want);
  r->rcv_cpu = thread_cpu() - c0;
  return NULL;
}

/* Sends r->count messages while a receiver thread reads and checks them; returns the
 * sender's CPU seconds, or -1 on a failed send. */
static double run_messages(struct run* r, double* elapsed) {
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, r->fds) != 0) {
    perror("socketpair");
    exit(2);
  }
  unsigned char* payload = malloc(r->size ? r->size : 1);
  pthread_t t;
  double t0 = wall();
  pthread_create(&t, NULL, receiver, r);
  double c0 = thread_cpu();
  int failed = 0;
  for (long i = 0; i < r->count && !failed; i++) {
    fill(payload, r->size, i);
    BlightMessageType type = r->size ? Repaint : Ack; /* neither is acknowledged */
    int res = blight_send_message(r->fds[0], type, (unsigned)i, r->size, r->size ? payload : NULL, 0, NULL);
    if (res != 0) {
      fprintf(stderr, "message %ld: blight_send_message: %d\n", i, res);
      failed = 1;
    }
  }
  double cpu = thread_cpu() - c0;
  if (failed) shutdown(r->fds[0], SHUT_RDWR);
  pthread_join(t, NULL);
  *elapsed = wall() - t0;
  close(r->fds[0]);
  close(r->fds[1]);
  free(payload);
  return failed ? -1 : cpu;
}

static int check(void) {
  static const uint32_t sizes[] = {0, 1, 12, 64, 4096, 65536, 1 << 20};
  int failures = 0;
  for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
    struct run r = {.size = sizes[k], .count = sizes[k] >= 65536 ? 20 : 2000};
    double elapsed;
    int ok = run_messages(&r, &elapsed) >= 0 && r.bad == 0;
    printf("%s   : blight_send_message -> blight_message_from_socket, %ld messages of %u bytes\n", ok ? "PASS" : "FAIL",
           r.count, r.size);
    failures += !ok;
  }
  /* A peer that closed: an error, never SIGPIPE (which this process does not ignore). */
  int fds[2];
  socketpair(AF_UNIX, SOCK_STREAM, 0, fds);
  close(fds[1]);
  unsigned char data[64] = {0};
  int res = blight_send_message(fds[0], Repaint, 1, sizeof data, data, 0, NULL);
  int ok = res == -EPIPE;
  printf("%s   : blight_send_message to a closed peer returns -EPIPE (got %d)\n", ok ? "PASS" : "FAIL", res);
  failures += !ok;
  close(fds[0]);
  /* Data missing with a size: -EINVAL, nothing sent. */
  socketpair(AF_UNIX, SOCK_STREAM, 0, fds);
  res = blight_send_message(fds[0], Repaint, 1, 64, NULL, 0, NULL);
  ok = res == -EINVAL;
  printf("%s   : blight_send_message with size and no data returns -EINVAL (got %d)\n", ok ? "PASS" : "FAIL", res);
  failures += !ok;
  close(fds[0]);
  close(fds[1]);
  printf("Totals: %d passed, %d failed, 0 skipped\n", 9 - failures, failures);
  return failures;
}

int main(int argc, char** argv) {
  if (argc == 2 && strcmp(argv[1], "check") == 0) return check();
  if (argc == 4 && strcmp(argv[1], "bench") == 0) {
    struct run r = {.size = (uint32_t)atol(argv[2]), .count = atol(argv[3])};
    double elapsed;
    double cpu = run_messages(&r, &elapsed);
    if (cpu < 0 || r.bad) return 1;
    printf("%.0f %.3f %.3f\n", (double)r.count / elapsed, cpu * 1e6 / (double)r.count, r.rcv_cpu * 1e6 / (double)r.count);
    return 0;
  }
  fprintf(stderr, "usage: send_message check | send_message bench SIZE COUNT\n");
  return 2;
}
