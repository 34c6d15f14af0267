#include "controlplane/daemon.h"

#include <signal.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cerrno>
#include <ctime>

#include "controlplane/reconciler.h"
#include "controlplane/registry.h"

namespace tether::cp {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// Sleeps up to `d`, waking early for a blocked SIGTERM/SIGINT; true if one came.
bool wait_for_signal(const sigset_t& set, milliseconds d) {
  d = std::max(d, milliseconds(0));
  timespec ts{static_cast<time_t>(d.count() / 1000), static_cast<long>(d.count() % 1000) * 1000000};
  for (;;) {
    int sig = sigtimedwait(&set, nullptr, &ts);
    if (sig > 0) {
      spdlog::info("controlplane: received signal {}, stopping", sig);
      return true;
    }
    if (errno == EAGAIN) return false;
    if (errno != EINTR) return false;
  }
}

}  // namespace

int run_daemon(const DaemonOptions& opt) {
  // Signals are taken synchronously in wait_for_signal, never in a handler.
  // SIGPIPE: a dataplane that goes away mid-write must not kill us.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  signal(SIGPIPE, SIG_IGN);

  auto registry = Registry::open(opt.db_path);
  if (!registry) {
    spdlog::error("controlplane: {}", registry.error().message);
    return 1;
  }
  spdlog::info("controlplane: registry {} at schema version {}", opt.db_path,
               registry->schema_version());
  auto last_data_version = registry->data_version();
  Reconciler reconciler(*registry, opt.socket_path);

  milliseconds backoff{100};
  auto next_connect = Clock::now();
  auto next_full = Clock::now();
  bool absent_logged = false;
  bool was_connected = false;
  bool need = true;
  uint64_t seen_generation = 0;

  for (;;) {
    auto now = Clock::now();
    if (!reconciler.connected()) {
      if (was_connected) {
        spdlog::warn("controlplane: lost the dataplane at {}; reconnecting", opt.socket_path);
        reconciler.record_unreachable("lost the connection to " + opt.socket_path);
        was_connected = false;
        absent_logged = true;
        backoff = milliseconds(100);
        next_connect = now;
      }
      if (now >= next_connect) {
        auto c = reconciler.connect();
        if (c) {
          spdlog::info("controlplane: connected to the dataplane at {} generation={}",
                       opt.socket_path, c.value);
          was_connected = true;
          absent_logged = false;
          backoff = milliseconds(100);
          need = true;  // after every (re)connect: the dataplane may have restarted
          seen_generation = c.value;
        } else {
          if (!absent_logged) {
            spdlog::warn("controlplane: dataplane not reachable ({}); retrying", c.error->message);
            reconciler.record_unreachable(c.error->message);
            absent_logged = true;
          }
          next_connect = now + backoff;
          backoff = std::min(backoff * 2, opt.max_backoff);
        }
      }
    }

    if (reconciler.connected()) {
      if (auto dv = registry->data_version();
          dv && (!last_data_version || *dv != *last_data_version)) {
        last_data_version = dv;
        need = true;
      }
      if (now >= next_full) need = true;
      if (!need) {
        // Someone else changed the dataplane (or it restarted between polls
        // and we reconnected): look again. An error does not re-trigger until
        // the generation moves, the registry changes or the interval passes.
        auto g = reconciler.poll_generation();
        if (g && g.value != seen_generation) {
          seen_generation = g.value;
          need = true;
        }
      }
      if (need && reconciler.connected()) {
        auto out = reconciler.reconcile_once();
        need = false;
        next_full = Clock::now() + opt.interval;
        if (out.generation != 0) seen_generation = out.generation;
        spdlog::debug("controlplane: reconcile state={} generation={} applied={}",
                      state_name(out.state), out.generation, out.applied);
      }
    }

    auto wait = opt.poll;
    if (!reconciler.connected())
      wait = std::chrono::duration_cast<milliseconds>(next_connect - Clock::now());
    if (wait_for_signal(set, std::clamp(wait, milliseconds(0), opt.max_backoff))) break;
  }
  reconciler.disconnect();
  return 0;
}

}  // namespace tether::cp
