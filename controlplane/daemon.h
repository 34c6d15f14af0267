// `tether-controlplane run`: the daemon loop. Opens (and migrates) the
// registry, keeps one connection to the dataplane (reconnecting with backoff
// while it is absent), and reconciles at start, after every reconnect, when
// the registry changes (PRAGMA data_version), when the dataplane's generation
// moves away from the one it left, and every interval. Owned by
// controlplane/; runs on the process's main thread until SIGTERM or SIGINT.
#pragma once

#include <chrono>
#include <string>

namespace tether::cp {

struct DaemonOptions {
  std::string db_path;
  std::string socket_path;
  std::chrono::milliseconds interval{5000};  // full reconcile at least this often
  std::chrono::milliseconds poll{200};       // registry and generation checks
  std::chrono::milliseconds max_backoff{2000};
};

// Returns the process exit status: 0 after SIGTERM/SIGINT, 1 when the
// registry cannot be opened.
int run_daemon(const DaemonOptions& options);

}  // namespace tether::cp
