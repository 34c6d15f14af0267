// The reconciler: compiles the registry's desired state into config.apply
// requests for the dataplane (docs/dataplane-api.md) through one dpapi::Client
// connection it owns. Owned by controlplane/; one Reconciler, its Registry and
// its connection belong to one thread (the daemon's loop).
//
// A pass reads the desired state, the dataplane's generation, ports and
// routes, computes the plan (controlplane/diff.h) and, only when the plan is
// not empty, applies it with expect_generation. A `conflict` re-reads and
// retries; an `invalid_argument` is logged, applied change by change so one
// bad entry does not hold back the rest, and recorded in reconcile_status and
// the audit; the same refused plan is not re-sent until the registry or the
// dataplane's generation changes.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "controlplane/diff.h"
#include "controlplane/registry.h"
#include "dataplane/api/client.h"

namespace tether::cp {

struct ReconcileOutcome {
  enum class State {
    kInSync,       // nothing to send, or everything sent was applied
    kPartial,      // in sync except entries held back (see message)
    kRefused,      // the dataplane refused some changes (see message)
    kUnreachable,  // no connection; the next pass needs connect()
    kError,        // the registry or the dataplane's reply failed; retry later
  };
  State state = State::kError;
  uint64_t generation = 0;  // the dataplane's after this pass
  size_t applied = 0;       // changes the dataplane accepted in this pass
  std::string message;
};

const char* state_name(ReconcileOutcome::State s);

class Reconciler {
 public:
  static constexpr int kMaxConflictRetries = 5;
  static constexpr const char* kClientName = "tether-controlplane";

  Reconciler(Registry& registry, std::string socket_path)
      : registry_(registry), socket_path_(std::move(socket_path)) {}

  // Connects and says hello; the dataplane's generation on success.
  dpapi::Result<uint64_t> connect();
  bool connected() const { return client_.connected(); }
  void disconnect() { client_.close(); }

  // Asks the dataplane for its generation; an "io" error means it is gone.
  dpapi::Result<uint64_t> poll_generation();

  // The dataplane's generation as of the end of the last pass (0 before).
  // A different live generation means someone else changed it.
  uint64_t synced_generation() const { return synced_generation_; }

  ReconcileOutcome reconcile_once();

  // Records that the dataplane cannot be reached (once per outage).
  void record_unreachable(const std::string& why);

 private:
  dpapi::Result<nlohmann::json> call(const std::string& method,
                                     const nlohmann::json& params = nlohmann::json::object());
  ReconcileOutcome finish(ReconcileOutcome out, ChangeId as_of);
  void log_held_back(const std::vector<std::string>& held_back);

  Registry& registry_;
  std::string socket_path_;
  dpapi::Client client_;
  uint64_t synced_generation_ = 0;

  // The last plan the dataplane refused, and at which generation.
  std::optional<std::pair<uint64_t, std::vector<nlohmann::json>>> refused_;
  std::string refused_message_;
  std::set<std::string> held_back_logged_;
};

}  // namespace tether::cp
