// A client of oxide's display server (blight), written against libblight, for the
// end-to-end step (integrations/oxide/e2e.sh). It adds surfaces, repaints, moves, raises,
// lists and removes them, pings, and checks every answer blight gives. Every wait has a
// deadline (--timeout-ms); after --max-missed missed answers it gives up instead of
// waiting for each one.
//
// Blight acknowledges Ping, Info, List, Delete and Wait; on the desktop it does not
// acknowledge Repaint, Move or Raise, so those are checked through what follows them on
// the same socket: Info must show the move, and a Ping sent after a batch of repaints is
// answered only once blight has read the whole batch.
//
// With --watch SECONDS it is instead the step's observer: it opens the first connection of
// a fresh blight, gives itself the "system" flag (setFlags: blight grants it to the only
// connection), and prints blight's whole surface list (D-Bus getSurfaces: ids
// "connection/<pid>/surface/<n>") each time it changes, until SIGTERM or SECONDS pass.
//
// Output: one "check: ..." line per failed check, then
//   client: <passed> checks passed, <failed> failed, <missed> answers missed
//   bench: pings=<n> ping_median_us=<x> ping_p99_us=<y> repaints=<n> repaints_per_s=<z>
// Exit status 0 only when every check passed.
#include <libblight.h>
#include <libblight/connection.h>

#include <systemd/sd-bus.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <set>
#include <string>
#include <vector>

namespace {

struct Options {
  int surfaces = 3;
  int pings = 2000;
  int repaint_batches = 50;
  int repaints_per_batch = 200;
  int timeout_ms = 5000;
  int max_missed = 3;
};

int passed = 0;
int failed = 0;
int missed = 0;
Options opt;

void check(bool ok, const std::string& what) {
  if (ok) {
    passed++;
  } else {
    failed++;
    std::printf("check: FAILED %s\n", what.c_str());
    std::fflush(stdout);
  }
}

// Too many missed answers: blight or the socket is broken; waiting longer only hides it.
bool gave_up() { return missed >= opt.max_missed; }

// Sends a message blight acknowledges and waits (bounded) for the answer. Returns the
// ack, or nullptr when sending failed or no answer came in time (counted as missed).
Blight::ackid_ptr_t request(Blight::Connection* conn, Blight::MessageType type, const void* data,
                            size_t size, const char* what) {
  auto maybe = conn->send(type, (Blight::data_t) const_cast<void*>(data), size);
  if (!maybe.has_value()) {
    check(false, std::string(what) + ": send failed: " + std::strerror(errno));
    return nullptr;
  }
  auto ack = maybe.value();
  if (!ack->wait(opt.timeout_ms)) {
    missed++;
    check(false, std::string(what) + ": no answer within " + std::to_string(opt.timeout_ms) + " ms");
    return nullptr;
  }
  return ack;
}

std::set<Blight::surface_id_t> list(Blight::Connection* conn, bool* ok) {
  std::set<Blight::surface_id_t> ids;
  auto ack = request(conn, Blight::MessageType::List, nullptr, 0, "List");
  *ok = ack != nullptr && ack->data_size % sizeof(Blight::surface_id_t) == 0 &&
        (ack->data_size == 0 || ack->data != nullptr);
  if (!*ok) {
    return ids;
  }
  auto* p = reinterpret_cast<Blight::surface_id_t*>(ack->data.get());
  for (size_t i = 0; i < ack->data_size / sizeof(Blight::surface_id_t); i++) {
    ids.insert(p[i]);
  }
  return ids;
}

// Info answers with the surface's geometry; an unknown surface gets an empty answer.
bool info(Blight::Connection* conn, Blight::surface_id_t id, Blight::surface_info_t* out) {
  auto ack = request(conn, Blight::MessageType::Info, &id, sizeof(id), "Info");
  if (ack == nullptr || ack->data_size < sizeof(Blight::surface_info_t) || ack->data == nullptr) {
    return false;
  }
  std::memcpy(out, ack->data.get(), sizeof(*out));
  return true;
}

// One ping with a deadline; the round trip in microseconds, or -1 when missed.
double ping(Blight::Connection* conn) {
  auto start = std::chrono::steady_clock::now();
  auto ack = request(conn, Blight::MessageType::Ping, nullptr, 0, "Ping");
  if (ack == nullptr) {
    return -1;
  }
  check(ack->data_size == 0, "Ping: answer carries no data");
  return std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start).count();
}

double percentile(std::vector<double> v, double p) {
  if (v.empty()) {
    return 0;
  }
  std::sort(v.begin(), v.end());
  size_t i = std::min(v.size() - 1, (size_t)(p * (v.size() - 1) + 0.5));
  return v[i];
}

int int_arg(const char* s) {
  char* end = nullptr;
  long v = std::strtol(s, &end, 10);
  if (end == s || *end != '\0' || v < 0 || v > 1000000) {
    std::fprintf(stderr, "e2e_client: not a count: %s\n", s);
    std::exit(2);
  }
  return (int)v;
}

volatile std::sig_atomic_t stop_watching = 0;

// The --watch mode (see the top of this file). Exit status 0 once it has watched.
int watch(int seconds) {
  std::signal(SIGTERM, [](int) { stop_watching = 1; });
  if (!Blight::connect(false) || Blight::connection() == nullptr) {
    std::printf("watch: could not open a connection to blight\n");
    return 1;
  }
  sd_bus* bus = nullptr;
  if (sd_bus_open_user(&bus) < 0) {
    std::printf("watch: could not connect to the session bus\n");
    return 1;
  }
  std::string me = "connection/" + std::to_string(getpid());
  sd_bus_error error = SD_BUS_ERROR_NULL;
  sd_bus_message* reply = nullptr;
  int r = sd_bus_call_method(bus, BLIGHT_SERVICE, "/", BLIGHT_INTERFACE, "setFlags", &error, &reply, "sas",
                             me.c_str(), 1, "system");
  if (r < 0) {
    std::printf("watch: setFlags(%s, [system]) failed: %s\n", me.c_str(), error.message ? error.message : "");
    return 1;
  }
  sd_bus_message_unref(reply);
  std::printf("watch: watching as %s\n", me.c_str());
  std::fflush(stdout);
  std::string last = "-";
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
  while (!stop_watching && std::chrono::steady_clock::now() < deadline) {
    sd_bus_error_free(&error);
    error = SD_BUS_ERROR_NULL;
    reply = nullptr;
    r = sd_bus_call_method(bus, BLIGHT_SERVICE, "/", BLIGHT_INTERFACE, "getSurfaces", &error, &reply, "");
    if (r < 0) {
      std::printf("watch: getSurfaces failed: %s\n", error.message ? error.message : std::strerror(-r));
      std::fflush(stdout);
      return 1;
    }
    char** ids = nullptr;
    std::string now;
    if (sd_bus_message_read_strv(reply, &ids) >= 0 && ids != nullptr) {
      for (char** p = ids; *p != nullptr; p++) {
        now += std::string(" ") + *p;
        free(*p);
      }
      free(ids);
    }
    sd_bus_message_unref(reply);
    if (now != last) {
      std::printf("surfaces:%s\n", now.c_str());
      std::fflush(stdout);
      last = now;
    }
    usleep(100 * 1000);
  }
  std::fflush(stdout);
  std::_Exit(0);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 3 && std::string(argv[1]) == "--watch") {
    return watch(int_arg(argv[2]));
  }
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i];
    int v = int_arg(argv[i + 1]);
    if (a == "--surfaces") opt.surfaces = std::max(1, v);
    else if (a == "--pings") opt.pings = v;
    else if (a == "--repaint-batches") opt.repaint_batches = v;
    else if (a == "--repaints-per-batch") opt.repaints_per_batch = std::max(1, v);
    else if (a == "--timeout-ms") opt.timeout_ms = std::max(1, v);
    else if (a == "--max-missed") opt.max_missed = std::max(1, v);
    else {
      std::fprintf(stderr, "e2e_client: unknown option %s\n", a.c_str());
      return 2;
    }
  }
  if (argc % 2 == 0) {
    std::fprintf(stderr, "e2e_client: options come in pairs: --name value\n");
    return 2;
  }

  // Blight registers on the session bus on the desktop.
  check(Blight::connect(false), "connect to D-Bus");
  check(Blight::exists(), "blight's service is on the bus");
  Blight::Connection* conn = Blight::connection();
  check(conn != nullptr, "open a connection to blight");
  if (conn == nullptr) {
    std::printf("client: %d checks passed, %d failed, %d answers missed\n", passed, failed, missed);
    return 1;
  }

  // A first ping: blight answers at all.
  check(ping(conn) >= 0, "first ping answered");

  bool ok = false;
  auto before = list(conn, &ok);
  check(ok && before.empty(), "List on a new connection is empty");

  // Add surfaces with distinct geometry and content.
  std::vector<Blight::shared_buf_t> bufs;
  for (int i = 0; i < opt.surfaces && !gave_up(); i++) {
    unsigned int w = 64 + 16 * i, h = 48 + 8 * i;
    auto maybe = Blight::createBuffer(10 * i, 20 * i, w, h, (int)w * 4, Blight::Format::Format_ARGB32_Premultiplied, 1.0);
    check(maybe.has_value(), "createBuffer " + std::to_string(i));
    if (!maybe.has_value()) break;
    auto buf = maybe.value();
    for (size_t b = 0; b < buf->size(); b++) buf->data[b] = (unsigned char)(b * 7 + i);
    Blight::addSurface(buf);
    check(buf->surface != 0, "addSurface " + std::to_string(i) + " gives an identifier");
    if (buf->surface != 0) bufs.push_back(buf);
  }
  std::set<Blight::surface_id_t> added;
  for (auto& b : bufs) added.insert(b->surface);
  check(added.size() == bufs.size(), "surface identifiers are distinct");
  auto listed = list(conn, &ok);
  check(ok && listed == added, "List shows exactly the surfaces added");

  // Repaint, move and raise each; Info shows the new position and the same geometry.
  for (size_t i = 0; i < bufs.size() && !gave_up(); i++) {
    auto& b = bufs[i];
    check(conn->repaint(b).has_value(), "Repaint sent");
    int nx = 100 + 30 * (int)i, ny = 200 + 10 * (int)i;
    check(conn->move(b->surface, nx, ny).has_value(), "Move sent");
    check(conn->raise(b).has_value(), "Raise sent");
    Blight::surface_info_t inf{};
    bool got = info(conn, b->surface, &inf);
    check(got, "Info answered for surface " + std::to_string(b->surface));
    if (got) {
      check(inf.x == nx && inf.y == ny, "Info shows the move of surface " + std::to_string(b->surface) + " (" +
                                           std::to_string(inf.x) + "," + std::to_string(inf.y) + ")");
      check(inf.width == b->width && inf.height == b->height && (int)inf.stride == b->stride &&
              inf.format == b->format,
            "Info shows the geometry of surface " + std::to_string(b->surface));
    }
  }

  // Ping round trips.
  std::vector<double> rtt;
  for (int i = 0; i < opt.pings && !gave_up(); i++) {
    double us = ping(conn);
    if (us >= 0) rtt.push_back(us);
  }
  check((int)rtt.size() == opt.pings || gave_up(), "every ping answered");

  // Repaints: a batch, then a ping; its answer means blight has read the whole batch.
  long repaints = 0;
  double repaint_seconds = 0;
  for (int batch = 0; batch < opt.repaint_batches && !gave_up() && !bufs.empty(); batch++) {
    auto& b = bufs[batch % bufs.size()];
    auto start = std::chrono::steady_clock::now();
    bool sent = true;
    for (int r = 0; r < opt.repaints_per_batch && sent; r++) {
      sent = conn->repaint(b->surface, r % 8, r % 8, b->width / 2, b->height / 2).has_value();
    }
    check(sent, "repaint batch sent");
    bool answered = ping(conn) >= 0;
    check(answered, "ping after repaint batch answered");
    if (sent && answered) {
      repaints += opt.repaints_per_batch;
      repaint_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    }
  }

  // Info about a surface that does not exist: an empty answer, not a hang.
  Blight::surface_id_t bogus = 0;
  for (auto id : added) bogus = std::max<Blight::surface_id_t>(bogus, id);
  bogus = (Blight::surface_id_t)(bogus + 1000);
  if (!gave_up()) {
    auto ack = request(conn, Blight::MessageType::Info, &bogus, sizeof(bogus), "Info (unknown surface)");
    check(ack != nullptr && ack->data_size == 0, "Info about an unknown surface answers empty");
  }

  // Remove every surface (each Delete is acknowledged), then List is empty.
  for (auto& b : bufs) {
    if (gave_up()) break;
    auto id = b->surface;
    auto ack = request(conn, Blight::MessageType::Delete, &id, sizeof(id), "Delete");
    check(ack != nullptr, "Delete of surface " + std::to_string(id) + " answered");
  }
  if (!gave_up()) {
    auto after = list(conn, &ok);
    check(ok && after.empty(), "List is empty after removing every surface");
    check(ping(conn) >= 0, "last ping answered");
  }
  if (gave_up()) {
    std::printf("check: FAILED gave up after %d missed answers\n", missed);
    failed++;
  }

  std::printf("client: %d checks passed, %d failed, %d answers missed\n", passed, failed, missed);
  std::printf("bench: pings=%zu ping_median_us=%.1f ping_p99_us=%.1f repaints=%ld repaints_per_s=%.0f\n", rtt.size(),
              percentile(rtt, 0.5), percentile(rtt, 0.99), repaints,
              repaint_seconds > 0 ? repaints / repaint_seconds : 0.0);
  std::fflush(stdout);
  // Leave without tearing down libblight's globals: its worker thread owns the socket.
  std::_Exit(failed == 0 ? 0 : 1);
}
