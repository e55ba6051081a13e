/* A client of oxide's display server (blight) written against libblight_protocol's C
 * API, for the sendv measurement (e2e-sendv.sh, run by `e2e.sh --bench-sendv`). Every
 * message it sends goes through oxide's own blight_send_message (libblight_protocol.cpp),
 * the function sendv-message.patch changes; which build of it runs is chosen by
 * LD_LIBRARY_PATH (upstream's socket.cpp, the drop-in, the drop-in + the patch).
 * (e2e_client.cpp uses libblight, whose Connection::send calls send_blocking itself and
 * never reaches blight_send_message: it cannot see the patch.)
 *
 * One connection (blight_service_open), one surface (blight_create_buffer,
 * blight_add_surface), then, each answer read on this thread with
 * blight_message_from_socket (no connection thread: no thread wake-up in the round trip):
 *   Ping   --pings round trips of a message without payload (header only: the patch
 *          sends it with one send, as before)
 *   Info   --infos round trips of a message with a 2-byte payload (the surface id;
 *          blight answers with the surface's geometry): two sends before, one sendmsg
 *          with the patch
 *   Repaint --batches batches of --per-batch blight_surface_repaint calls (a 36-byte
 *          packet each; blight does not acknowledge them on the desktop), each batch
 *          followed by a Ping whose answer means blight has read the whole batch
 * Every answer is checked (an Ack of the right id; Info's geometry); every wait has a
 * deadline (--timeout-ms).
 *
 * Output: one "check: FAILED ..." line per failed check, then
 *   client: <passed> checks passed, <failed> failed
 *   bench: pings=<n> ping_median_us=<x> ping_p99_us=<y> infos=<n> info_median_us=<x>
 *          info_p99_us=<y> repaints=<n> repaints_per_s=<z> client_cpu_us_per_repaint=<c>
 * (one line). Exit status 0 only when every check passed; 2 when blight is not there. */
#include <errno.h>
#include <libblight_protocol.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

static int passed, failed;
static int timeout_ms = 5000;

static void check(int ok, const char* what, unsigned int n) {
  if (ok) {
    passed++;
  } else {
    failed++;
    printf("check: FAILED %s (%u)\n", what, n);
    fflush(stdout);
  }
}

static double now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static double cpu_us(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e6 + ru.ru_utime.tv_usec + ru.ru_stime.tv_usec;
}

/* Waits (at most timeout_ms) for blight's Ack of ackid and returns it (the caller derefs
 * it), answering the Pings blight sends meanwhile; NULL on a hang-up or a timeout. */
static blight_message_t* wait_ack(int fd, unsigned int ackid) {
  double deadline = now_us() + timeout_ms * 1e3;
  for (;;) {
    blight_message_t* m = NULL;
    int res = blight_message_from_socket(fd, &m);
    if (res == -EAGAIN || res == -EINTR) {
      double left = deadline - now_us();
      if (left <= 0) {
        return NULL;
      }
      struct pollfd p = {fd, POLLIN, 0};
      poll(&p, 1, (int)(left / 1e3) + 1);
      continue;
    }
    if (res < 0 || m == NULL) {
      return NULL;
    }
    if (m->header.type == Ack && m->header.ackid == ackid) {
      return m;
    }
    if (m->header.type == Ping) {
      blight_send_message(fd, Ack, m->header.ackid, 0, NULL, -1, NULL);
    }
    blight_message_deref(m);
  }
}

/* One request and its answer; the round trip in microseconds, or -1 when it failed. */
static double request(int fd, BlightMessageType type, unsigned int ackid, uint32_t size, void* data,
                      blight_message_t** answer) {
  double start = now_us();
  if (blight_send_message(fd, type, ackid, size, (blight_data_t)data, -1, NULL) < 0) {
    check(0, "send", ackid);
    return -1;
  }
  blight_message_t* m = wait_ack(fd, ackid);
  double us = now_us() - start;
  if (m == NULL) {
    check(0, "an answer within the deadline", ackid);
    return -1;
  }
  if (answer != NULL) {
    *answer = m;
  } else {
    blight_message_deref(m);
  }
  return us;
}

static int cmp_double(const void* a, const void* b) {
  double x = *(const double*)a, y = *(const double*)b;
  return (x > y) - (x < y);
}

static double percentile(double* v, int n, double p) {
  if (n == 0) {
    return 0;
  }
  qsort(v, n, sizeof(double), cmp_double);
  int i = (int)(p * (n - 1) + 0.5);
  return v[i < n ? i : n - 1];
}

static int int_arg(const char* s) {
  char* end = NULL;
  long v = strtol(s, &end, 10);
  if (end == s || *end != '\0' || v <= 0 || v > 10000000) {
    fprintf(stderr, "e2e_sendv_client: not a positive count: %s\n", s);
    exit(2);
  }
  return (int)v;
}

int main(int argc, char** argv) {
  int pings = 2000, infos = 2000, batches = 50, per_batch = 200;
  for (int i = 1; i < argc; i++) {
    if (i + 1 >= argc) {
      fprintf(stderr, "usage: %s [--pings N] [--infos N] [--batches N] [--per-batch N] [--timeout-ms N]\n", argv[0]);
      return 2;
    }
    int v = int_arg(argv[i + 1]);
    if (!strcmp(argv[i], "--pings")) pings = v;
    else if (!strcmp(argv[i], "--infos")) infos = v;
    else if (!strcmp(argv[i], "--batches")) batches = v;
    else if (!strcmp(argv[i], "--per-batch")) per_batch = v;
    else if (!strcmp(argv[i], "--timeout-ms")) timeout_ms = v;
    else {
      fprintf(stderr, "e2e_sendv_client: unknown option %s\n", argv[i]);
      return 2;
    }
    i++;
  }

  blight_bus* bus = NULL;
  if (blight_bus_connect_user(&bus) < 0 || bus == NULL || !blight_service_available(bus)) {
    fprintf(stderr, "e2e_sendv_client: blight is not on the session bus\n");
    return 2;
  }
  int fd = blight_service_open(bus);
  if (fd < 0) {
    fprintf(stderr, "e2e_sendv_client: could not open a connection to blight\n");
    return 2;
  }
  unsigned int ackid = 1000;
  check(request(fd, Ping, ackid++, 0, NULL, NULL) >= 0, "first ping answered", 0);

  const unsigned int w = 128, h = 96;
  blight_buf_t* buf = blight_create_buffer(20, 30, w, h, w * 4, Format_ARGB32_Premultiplied, 1.0);
  check(buf != NULL, "blight_create_buffer", 0);
  blight_surface_id_t id = buf != NULL ? blight_add_surface(bus, buf) : 0;
  check(id != 0, "blight_add_surface gives an identifier", 0);
  if (failed) {
    printf("client: %d checks passed, %d failed\n", passed, failed);
    return 1;
  }
  memset(buf->data, 0x5a, (size_t)w * 4 * h);

  double* rtt = calloc(pings > infos ? pings : infos, sizeof(double));
  if (rtt == NULL) {
    return 2;
  }

  /* Ping: header only. */
  int n_ping = 0;
  for (int i = 0; i < pings && failed < 3; i++) {
    double us = request(fd, Ping, ackid++, 0, NULL, NULL);
    if (us >= 0) rtt[n_ping++] = us;
  }
  check(n_ping == pings, "every ping answered", n_ping);
  double ping_median = percentile(rtt, n_ping, 0.5), ping_p99 = percentile(rtt, n_ping, 0.99);

  /* Info: header and a 2-byte payload; the answer carries the surface's geometry. */
  int n_info = 0;
  for (int i = 0; i < infos && failed < 3; i++) {
    blight_message_t* m = NULL;
    double us = request(fd, Info, ackid++, sizeof(id), &id, &m);
    if (us < 0) continue;
    int ok = m->header.size == sizeof(blight_packet_surface_info_t) && m->data != NULL;
    if (ok) {
      blight_packet_surface_info_t inf;
      memcpy(&inf, m->data, sizeof(inf));
      ok = inf.width == w && inf.height == h && inf.x == 20 && inf.y == 30;
    }
    if (i == 0 || !ok) check(ok, "Info answers the surface's geometry", (unsigned int)i);
    blight_message_deref(m);
    rtt[n_info++] = us;
  }
  check(n_info == infos, "every Info answered", n_info);
  double info_median = percentile(rtt, n_info, 0.5), info_p99 = percentile(rtt, n_info, 0.99);

  /* Repaints: a batch, then a ping, whose answer means blight has read the whole batch. */
  long repaints = 0;
  double seconds = 0, cpu = 0;
  for (int b = 0; b < batches && failed < 3; b++) {
    double c0 = cpu_us(), t0 = now_us();
    int sent = 1;
    for (int r = 0; r < per_batch && sent; r++) {
      sent = blight_surface_repaint(fd, id, r % 8, r % 8, w / 2, h / 2, UI, Color, PartialUpdate) != 0;
    }
    check(sent, "repaint batch sent", (unsigned int)b);
    int answered = request(fd, Ping, ackid++, 0, NULL, NULL) >= 0;
    if (sent && answered) {
      repaints += per_batch;
      seconds += (now_us() - t0) / 1e6;
      cpu += cpu_us() - c0;
    }
  }
  check(repaints == (long)batches * per_batch, "every repaint batch read", (unsigned int)repaints);

  if (failed < 3) {
    check(blight_remove_surface(fd, id) == 0, "blight_remove_surface", id);
    check(request(fd, Ping, ackid++, 0, NULL, NULL) >= 0, "last ping answered", 0);
  }
  printf("client: %d checks passed, %d failed\n", passed, failed);
  printf("bench: pings=%d ping_median_us=%.1f ping_p99_us=%.1f infos=%d info_median_us=%.1f info_p99_us=%.1f "
         "repaints=%ld repaints_per_s=%.0f client_cpu_us_per_repaint=%.3f\n",
         n_ping, ping_median, ping_p99, n_info, info_median, info_p99, repaints,
         seconds > 0 ? repaints / seconds : 0.0, repaints > 0 ? cpu / repaints : 0.0);
  fflush(stdout);
  free(rtt);
  blight_buffer_deref(buf);
  close(fd);
  blight_bus_deref(bus);
  return failed == 0 ? 0 : 1;
}
