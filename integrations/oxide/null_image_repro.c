/* Reproducer for blight's crash in SurfaceWidget::updatePaintNode
 * (applications/display-server/surfacewidget.cpp), see UPSTREAM-NOTE.md.
 *
 * A client adds a surface whose QImage is null (RGB32, 100x100, stride 300: a row needs
 * 400 bytes, so QImage refuses the buffer, as upstream's tests/libblight_protocol does in
 * test_blight_surface_to_fbg and test_blight_move_surface), lets blight render a frame,
 * then adds a second, valid surface and pings blight. Unfixed, blight's scene graph holds
 * an image node without a texture for the first surface; when the next change of the
 * scene makes the renderer visit it, blight dies with SIGSEGV in
 * QSGSoftwareRenderableNode::update() (offscreen, software scene graph): the ping is never
 * answered and the socket hangs up. Fixed, every ping is answered.
 *
 * Needs a running blight on the session bus (DBUS_SESSION_BUS_ADDRESS).
 * Build: gcc null_image_repro.c -I<libblight_protocol include dir> -lblight_protocol
 * Exit status: 0 blight survived, 1 blight died or stopped answering, 2 setup failed. */
#include <errno.h>
#include <libblight_protocol.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* Sends a Ping with this ackid and waits (at most timeout_ms) for its Ack; answers the
 * Pings blight sends meanwhile. 0 answered, -1 not (hang-up or timeout). */
static int ping(int fd, unsigned int ackid, int timeout_ms) {
  if (blight_send_message(fd, Ping, ackid, 0, NULL, 0, NULL) < 0) {
    fprintf(stderr, "repro: sending a ping failed: %s\n", strerror(errno));
    return -1;
  }
  double deadline = now_ms() + timeout_ms;
  while (now_ms() < deadline) {
    struct pollfd p = {fd, POLLIN, 0};
    int n = poll(&p, 1, (int)(deadline - now_ms()) + 1);
    if (n <= 0) {
      continue;
    }
    blight_message_t* m = NULL;
    int res = blight_message_from_socket(fd, &m);
    if (res == -EAGAIN || res == -EINTR) {
      continue;
    }
    if (res < 0 || m == NULL) {
      fprintf(stderr, "repro: the socket to blight hung up (%s): blight is gone\n", strerror(-res));
      return -1;
    }
    int type = m->header.type;
    unsigned int id = m->header.ackid;
    blight_message_deref(m);
    if (type == Ack && id == ackid) {
      return 0;
    }
    if (type == Ping) {
      blight_send_message(fd, Ack, id, 0, NULL, 0, NULL);
    }
  }
  fprintf(stderr, "repro: no answer to ping %u within %d ms\n", ackid, timeout_ms);
  return -1;
}

int main(void) {
  blight_bus* bus = NULL;
  if (blight_bus_connect_user(&bus) < 0 || bus == NULL || !blight_service_available(bus)) {
    fprintf(stderr, "repro: blight is not on the session bus\n");
    return 2;
  }
  int fd = blight_service_open(bus);
  if (fd < 0) {
    fprintf(stderr, "repro: could not open a connection to blight\n");
    return 2;
  }
  if (ping(fd, 1, 5000) != 0) {
    return 2;
  }
  /* 100 pixels of RGB32 need 400 bytes a row; 300 makes blight's QImage null. */
  blight_buf_t* buf = blight_create_buffer(10, 10, 100, 100, 100 * 3, Format_RGB32, 1.0);
  if (buf == NULL) {
    fprintf(stderr, "repro: blight_create_buffer failed\n");
    return 2;
  }
  blight_surface_id_t id = blight_add_surface(bus, buf);
  if (id == 0) {
    fprintf(stderr, "repro: blight_add_surface failed\n");
    return 2;
  }
  /* Let blight render a frame with it: its item gets an image node without a texture. */
  usleep(300 * 1000);
  if (ping(fd, 2, 5000) != 0) {
    printf("repro: blight died after a surface with a null image was added (the bug)\n");
    return 1;
  }
  /* Any later change of the scene makes the renderer visit that node: here a second,
   * valid surface (a row of 100 RGB32 pixels is 400 bytes). */
  blight_buf_t* buf2 = blight_create_buffer(150, 150, 100, 100, 100 * 4, Format_RGB32, 1.0);
  if (buf2 == NULL || blight_add_surface(bus, buf2) == 0) {
    fprintf(stderr, "repro: adding the second surface failed\n");
    return 2;
  }
  /* Give the scene graph time to render a few frames, then check blight still answers. */
  for (unsigned int i = 0; i < 10; i++) {
    usleep(100 * 1000);
    if (ping(fd, 10 + i, 5000) != 0) {
      printf("repro: blight died after a surface with a null image was added (the bug)\n");
      return 1;
    }
  }
  blight_remove_surface(fd, id);
  blight_buffer_deref(buf);
  blight_buffer_deref(buf2);
  close(fd);
  blight_bus_deref(bus);
  printf("repro: blight survived a surface with a null image\n");
  return 0;
}
