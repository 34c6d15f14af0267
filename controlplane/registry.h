// The registry: the appliance's desired state in one SQLite database (WAL,
// busy_timeout, foreign keys on; schema in docs/registry.md). Owned by
// controlplane/. One Registry is one connection and belongs to one thread;
// other processes (the admin CLI, the daemon) open their own. Every mutation
// is one transaction that also writes its audit row in `changes`, and returns
// that row's id; an invalid mutation returns an Error and writes nothing.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/net.h"
#include "controlplane/result.h"
#include "controlplane/sqlite.h"

namespace tether::cp {

using ChangeId = int64_t;

// Who asks for a change and why; goes into the audit row.
struct Attribution {
  std::string actor;   // "cli:alice", "api:token-3", "reconciler"
  std::string reason;  // free text, may be empty
};

struct PortAddress {
  std::string port;    // the dataplane port name: "uplink"
  Ipv4Prefix address;  // host bits kept: 10.0.1.1/24
  auto operator<=>(const PortAddress&) const = default;
};

struct Interface {
  std::string port;
  std::vector<Ipv4Prefix> addresses;
};

struct Route {
  uint16_t domain = 0;
  Ipv4Prefix prefix;        // no host bits
  std::optional<Ipv4> via;  // nullopt: on-link out of `port`
  std::string port;         // empty: the dataplane picks the port whose subnet holds `via`
  std::string reason;
};

// A route as a user types it; empty strings mean "not given".
struct RouteRequest {
  int64_t domain = 0;
  std::string prefix;
  std::string via;
  std::string port;
};

struct ChangeRecord {
  ChangeId id = 0;
  std::string at;  // UTC, 2024-05-01T12:00:00.000Z
  std::string actor;
  std::string action;  // interface.add, interface.address.add, route.del, reconcile.refused, ...
  nlohmann::json detail;
  std::string reason;
};

// What the reconciler compiles into dataplane changes: one consistent read.
struct DesiredState {
  std::vector<PortAddress> addresses;
  std::vector<Route> routes;
  ChangeId as_of = 0;  // the newest change this state includes
};

struct ReconcileStatus {
  std::string state;  // in_sync | partial | refused | unreachable
  std::optional<uint64_t> generation;
  ChangeId change_id = 0;
  std::string message;
  std::string at;  // filled in by the registry
};

class Registry {
 public:
  // Opens or creates the database and applies pending migrations. Refuses a
  // database whose schema is newer than this binary.
  static Result<Registry> open(const std::string& path);

  Registry(Registry&&) = default;
  Registry& operator=(Registry&&) = default;

  int schema_version() const { return schema_version_; }
  Result<std::string> journal_mode();
  // Changes whenever another connection commits (PRAGMA data_version).
  Result<int64_t> data_version();

  // Interfaces: a dataplane port the registry knows, with its addresses.
  Result<ChangeId> add_interface(std::string_view port, const Attribution& by);
  // Creates the interface as well when it is not there yet.
  Result<ChangeId> add_address(std::string_view port, std::string_view address,
                               const Attribution& by);
  Result<ChangeId> del_address(std::string_view port, std::string_view address,
                               const Attribution& by);
  // Deletes the interface and its addresses; refused while routes use them.
  Result<ChangeId> del_interface(std::string_view port, const Attribution& by);
  Result<std::vector<Interface>> interfaces();

  Result<ChangeId> add_route(const RouteRequest& route, const Attribution& by);
  Result<ChangeId> del_route(int64_t domain, std::string_view prefix, const Attribution& by);
  Result<std::vector<Route>> routes(std::optional<uint16_t> domain = std::nullopt);

  // The newest `limit` audit rows, oldest first.
  Result<std::vector<ChangeRecord>> changes(int64_t limit = 100);

  Result<DesiredState> desired_state();

  Result<std::optional<ReconcileStatus>> reconcile_status();
  // Stores the reconciler's outcome when it differs from the stored one
  // (true then). Entering "refused" or "partial" (or a new reason for it)
  // writes an audit row reconcile.<state>; leaving it, reconcile.recovered.
  Result<bool> record_reconcile(const ReconcileStatus& status);

  sql::Database& database() { return db_; }

 private:
  explicit Registry(sql::Database db, int version) : db_(std::move(db)), schema_version_(version) {}

  Result<ChangeId> audit(std::string_view action, const nlohmann::json& detail,
                         const Attribution& by);
  Result<bool> interface_exists(std::string_view port);
  // Inside the caller's transaction; no audit row of its own.
  Status insert_interface(std::string_view port);
  Result<std::vector<PortAddress>> load_addresses();
  Result<std::vector<Route>> load_routes(std::optional<uint16_t> domain);
  // Routes whose gateway would lose its connected subnet without `gone`.
  Result<std::optional<std::string>> route_depending_on(const std::vector<PortAddress>& gone);

  sql::Database db_;
  int schema_version_ = 0;
};

// Text forms used in messages and the audit detail.
std::string describe(const Route& r);

}  // namespace tether::cp
