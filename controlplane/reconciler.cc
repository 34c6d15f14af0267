#include "controlplane/reconciler.h"

#include <spdlog/spdlog.h>

namespace tether::cp {
namespace {

std::string join(const std::vector<std::string>& parts) {
  std::string out;
  for (const auto& p : parts) out += (out.empty() ? "" : "; ") + p;
  return out;
}

}  // namespace

const char* state_name(ReconcileOutcome::State s) {
  switch (s) {
    case ReconcileOutcome::State::kInSync:
      return "in_sync";
    case ReconcileOutcome::State::kPartial:
      return "partial";
    case ReconcileOutcome::State::kRefused:
      return "refused";
    case ReconcileOutcome::State::kUnreachable:
      return "unreachable";
    case ReconcileOutcome::State::kError:
      return "error";
  }
  return "error";
}

dpapi::Result<uint64_t> Reconciler::connect() {
  dpapi::Result<uint64_t> res;
  auto c = client_.connect(socket_path_, kClientName);
  if (!c) {
    res.error = c.error;
    return res;
  }
  res.value = client_.generation();
  return res;
}

dpapi::Result<nlohmann::json> Reconciler::call(const std::string& method,
                                               const nlohmann::json& params) {
  return client_.call(method, params);
}

dpapi::Result<uint64_t> Reconciler::poll_generation() {
  dpapi::Result<uint64_t> res;
  auto r = call("generation.get");
  if (!r) {
    res.error = r.error;
    return res;
  }
  res.value = r.value.value("generation", uint64_t{0});
  return res;
}

void Reconciler::record_unreachable(const std::string& why) {
  ReconcileStatus s{"unreachable", std::nullopt, 0, why, ""};
  if (auto prev = registry_.reconcile_status(); prev && *prev) s.change_id = (**prev).change_id;
  if (auto r = registry_.record_reconcile(s); !r)
    spdlog::error("reconcile: cannot record status: {}", r.error().message);
}

void Reconciler::log_held_back(const std::vector<std::string>& held_back) {
  std::set<std::string> now(held_back.begin(), held_back.end());
  for (const auto& h : now)
    if (!held_back_logged_.count(h)) spdlog::warn("reconcile: held back {}", h);
  held_back_logged_ = std::move(now);
}

ReconcileOutcome Reconciler::finish(ReconcileOutcome out, ChangeId as_of) {
  if (out.state == ReconcileOutcome::State::kInSync ||
      out.state == ReconcileOutcome::State::kPartial ||
      out.state == ReconcileOutcome::State::kRefused) {
    synced_generation_ = out.generation;
    ReconcileStatus s{state_name(out.state), out.generation, as_of, out.message, ""};
    if (auto r = registry_.record_reconcile(s); !r)
      spdlog::error("reconcile: cannot record status: {}", r.error().message);
  }
  return out;
}

ReconcileOutcome Reconciler::reconcile_once() {
  using State = ReconcileOutcome::State;
  ReconcileOutcome out;
  if (!client_.connected()) {
    out.state = State::kUnreachable;
    out.message = "not connected to the dataplane";
    return out;
  }
  auto desired = registry_.desired_state();
  if (!desired) {
    out.message = desired.error().message;
    spdlog::error("reconcile: cannot read the registry: {}", out.message);
    return out;
  }
  const ChangeId as_of = desired->as_of;

  auto io_lost = [&](const dpapi::Error& e) {
    out.state = State::kUnreachable;
    out.message = e.message;
    spdlog::warn("reconcile: lost the dataplane: {}", e.message);
    return out;
  };
  auto failed = [&](const std::string& what, const dpapi::Error& e) {
    if (e.code == "io") return io_lost(e);
    out.state = State::kError;
    out.message = what + ": " + e.code + ": " + e.message;
    spdlog::error("reconcile: {} as_of_change={}", out.message, as_of);
    return out;
  };

  for (int attempt = 0; attempt <= kMaxConflictRetries; ++attempt) {
    auto gen = poll_generation();
    if (!gen) return failed("generation.get", *gen.error);
    const uint64_t g = gen.value;
    auto ports = call("ports.list");
    if (!ports) return failed("ports.list", *ports.error);
    auto routes = call("routes.list");
    if (!routes) return failed("routes.list", *routes.error);
    if (routes.value.value("generation", g) != g) continue;  // changed while we read
    auto reported = parse_dataplane_state(ports.value, routes.value);
    if (!reported) {
      out.state = State::kError;
      out.message = reported.error().message;
      spdlog::error("reconcile: generation={} {}", g, out.message);
      return out;
    }
    Plan plan = plan_changes(*desired, *reported);
    log_held_back(plan.held_back);
    out.generation = g;
    out.message = join(plan.held_back);
    out.state = plan.held_back.empty() ? State::kInSync : State::kPartial;
    if (plan.empty()) {
      refused_.reset();
      return finish(out, as_of);
    }
    if (refused_ && refused_->first == g && refused_->second == plan.changes) {
      // Refused before and nothing has changed since: do not send it again.
      out.state = State::kRefused;
      out.message = refused_message_;
      return out;
    }

    auto apply = [&](const std::vector<nlohmann::json>& changes, uint64_t expect) {
      return call("config.apply",
                  {{"expect_generation", expect}, {"origin", kOriginApi}, {"changes", changes}});
    };
    auto r = apply(plan.changes, g);
    if (r) {
      out.generation = r.value.value("generation", g);
      out.applied = plan.changes.size();
      refused_.reset();
      spdlog::info("reconcile: applied changes={} generation={}->{} as_of_change={}", out.applied,
                   g, out.generation, as_of);
      return finish(out, as_of);
    }
    if (r.error->code == "conflict") {
      spdlog::info("reconcile: generation {} moved on before apply ({}); re-reading", g,
                   r.error->message);
      continue;
    }
    if (r.error->code != "invalid_argument") return failed("config.apply", *r.error);

    // Refused whole. Apply change by change, in plan order, so that one bad
    // entry does not hold back the others.
    std::vector<nlohmann::json> refused;
    std::vector<std::string> why;
    uint64_t cur = g;
    bool conflicted = false;
    for (size_t i = 0; i < plan.changes.size(); ++i) {
      const auto& c = plan.changes[i];
      auto one = plan.changes.size() == 1 ? r : apply({c}, cur);
      if (one) {
        cur = one.value.value("generation", cur);
        ++out.applied;
        continue;
      }
      if (one.error->code == "conflict") {
        conflicted = true;
        break;
      }
      if (one.error->code != "invalid_argument") return failed("config.apply", *one.error);
      spdlog::warn("reconcile: dataplane refused generation={} as_of_change={} change=\"{}\": {}",
                   cur, as_of, describe_change(c), one.error->message);
      refused.push_back(c);
      why.push_back(describe_change(c) + ": " + one.error->message);
    }
    if (conflicted) continue;
    if (out.applied)
      spdlog::info("reconcile: applied changes={} refused={} generation={}->{} as_of_change={}",
                   out.applied, refused.size(), g, cur, as_of);
    out.generation = cur;
    if (refused.empty()) return finish(out, as_of);  // a transient refusal; all went in
    for (const auto& h : plan.held_back) why.push_back(h);
    out.state = State::kRefused;
    out.message = join(why);
    refused_.emplace(cur, std::move(refused));
    refused_message_ = out.message;
    return finish(out, as_of);
  }
  out.state = State::kError;
  out.message = "the dataplane's generation kept changing; gave up after " +
                std::to_string(kMaxConflictRetries + 1) + " attempts";
  spdlog::warn("reconcile: {} as_of_change={}", out.message, as_of);
  return out;
}

}  // namespace tether::cp
