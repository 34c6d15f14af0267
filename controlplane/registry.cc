#include "controlplane/registry.h"

#include <algorithm>

#include "controlplane/input.h"
#include "controlplane/migrations.h"

namespace tether::cp {
namespace {

constexpr int kBusyTimeoutMs = 5000;
constexpr std::string_view kNow = "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')";

std::string sql_with_now(std::string_view fmt) {
  // Replaces each "NOW" in `fmt` with the timestamp expression.
  std::string out;
  for (size_t i = 0; i < fmt.size();) {
    if (fmt.substr(i, 3) == "NOW") {
      out += kNow;
      i += 3;
    } else {
      out += fmt[i++];
    }
  }
  return out;
}

nlohmann::json route_json(const Route& r) {
  nlohmann::json j = {{"domain", r.domain}, {"prefix", format_prefix(r.prefix)}};
  j["via"] = r.via ? nlohmann::json(format_ipv4(*r.via)) : nlohmann::json(nullptr);
  j["port"] = r.port.empty() ? nlohmann::json(nullptr) : nlohmann::json(r.port);
  return j;
}

}  // namespace

std::string describe(const Route& r) {
  std::string s = "route " + format_prefix(r.prefix) + " in domain " + std::to_string(r.domain);
  if (r.via) s += " via " + format_ipv4(*r.via);
  if (!r.port.empty()) s += " on " + r.port;
  return s;
}

Result<Registry> Registry::open(const std::string& path) {
  auto db = sql::Database::open(path);
  if (!db) return db.error();
  if (auto st = db->exec("PRAGMA busy_timeout = " + std::to_string(kBusyTimeoutMs)); !st)
    return st.error();
  if (auto st = db->exec("PRAGMA foreign_keys = ON"); !st) return st.error();
  auto mode = db->query_text("PRAGMA journal_mode = WAL");
  if (!mode) return mode.error();
  if (*mode != "wal")
    return internal("cannot put " + path + " in WAL mode (journal_mode is " + *mode +
                    "); the registry needs a file on a local file system");
  auto version = migrate(*db, registry_migrations());
  if (!version) {
    Error e = version.error();
    e.message = path + ": " + e.message;
    return e;
  }
  return Registry(std::move(*db), *version);
}

Result<std::string> Registry::journal_mode() { return db_.query_text("PRAGMA journal_mode"); }

Result<int64_t> Registry::data_version() { return db_.query_int("PRAGMA data_version"); }

Result<ChangeId> Registry::audit(std::string_view action, const nlohmann::json& detail,
                                 const Attribution& by) {
  auto stmt =
      db_.prepare(sql_with_now("INSERT INTO changes (at, actor, action, detail, reason) "
                               "VALUES (NOW, ?1, ?2, ?3, ?4)"));
  if (!stmt) return stmt.error();
  stmt->bind(1, by.actor.empty() ? std::string_view("unknown") : std::string_view(by.actor))
      .bind(2, action)
      .bind(3, std::string_view(detail.dump()))
      .bind(4, std::string_view(by.reason));
  if (auto st = stmt->run(); !st) return st.error();
  return db_.last_insert_rowid();
}

Result<bool> Registry::interface_exists(std::string_view port) {
  auto stmt = db_.prepare("SELECT 1 FROM interfaces WHERE port = ?1");
  if (!stmt) return stmt.error();
  stmt->bind(1, port);
  return stmt->step();
}

Result<std::vector<PortAddress>> Registry::load_addresses() {
  auto stmt = db_.prepare("SELECT port, address FROM interface_addresses");
  if (!stmt) return stmt.error();
  std::vector<PortAddress> out;
  for (;;) {
    auto row = stmt->step();
    if (!row) return row.error();
    if (!*row) break;
    auto addr = parse_prefix(stmt->text(1), true);
    if (!addr) return internal("registry holds a malformed address: " + stmt->text(1));
    out.push_back({stmt->text(0), *addr});
  }
  std::sort(out.begin(), out.end());
  return out;
}

Result<std::vector<Route>> Registry::load_routes(std::optional<uint16_t> domain) {
  auto stmt = db_.prepare(
      "SELECT domain, prefix, via, port, reason FROM routes WHERE ?1 IS NULL OR domain = ?1");
  if (!stmt) return stmt.error();
  if (domain) stmt->bind(1, int64_t{*domain});
  std::vector<Route> out;
  for (;;) {
    auto row = stmt->step();
    if (!row) return row.error();
    if (!*row) break;
    Route r;
    r.domain = static_cast<uint16_t>(stmt->int64(0));
    auto prefix = parse_prefix(stmt->text(1));
    if (!prefix) return internal("registry holds a malformed route prefix: " + stmt->text(1));
    r.prefix = *prefix;
    if (auto via = stmt->optional_text(2)) {
      r.via = parse_ipv4(*via);
      if (!r.via) return internal("registry holds a malformed gateway: " + *via);
    }
    r.port = stmt->optional_text(3).value_or("");
    r.reason = stmt->text(4);
    out.push_back(std::move(r));
  }
  std::sort(out.begin(), out.end(), [](const Route& a, const Route& b) {
    return std::tie(a.domain, a.prefix) < std::tie(b.domain, b.prefix);
  });
  return out;
}

Result<std::optional<std::string>> Registry::route_depending_on(
    const std::vector<PortAddress>& gone) {
  auto addresses = load_addresses();
  if (!addresses) return addresses.error();
  auto routes = load_routes(std::nullopt);
  if (!routes) return routes.error();
  auto on_port = [](const Route& r, const PortAddress& a) {
    return r.port.empty() || r.port == a.port;
  };
  for (const auto& r : *routes) {
    if (!r.via) continue;
    for (const auto& g : gone) {
      if (!on_port(r, g) || !g.address.contains(*r.via)) continue;
      bool still_connected = std::any_of(addresses->begin(), addresses->end(), [&](auto& a) {
        return std::find(gone.begin(), gone.end(), a) == gone.end() && on_port(r, a) &&
               a.address.contains(*r.via);
      });
      if (!still_connected)
        return std::optional<std::string>(describe(r) + " reaches its gateway through " +
                                          format_prefix(g.address) + " on " + g.port +
                                          "; delete or change that route first");
    }
  }
  return std::optional<std::string>();
}

Result<ChangeId> Registry::add_interface(std::string_view port, const Attribution& by) {
  if (auto st = check_port(port); !st) return st.error();
  auto tx = sql::Transaction::begin(db_, sql::Transaction::Mode::kWrite);
  if (!tx) return tx.error();
  auto exists = interface_exists(port);
  if (!exists) return exists.error();
  if (*exists) return conflict("interface " + std::string(port) + " already exists");
  if (auto st = insert_interface(port); !st) return st.error();
  auto id = audit("interface.add", {{"port", port}}, by);
  if (!id) return id.error();
  if (auto st = tx->commit(); !st) return st.error();
  return *id;
}

Status Registry::insert_interface(std::string_view port) {
  auto ins =
      db_.prepare(sql_with_now("INSERT INTO interfaces (port, created_at) VALUES (?1, NOW)"));
  if (!ins) return ins.error();
  ins->bind(1, port);
  return ins->run();
}

Result<ChangeId> Registry::add_address(std::string_view port, std::string_view address,
                                       const Attribution& by) {
  if (auto st = check_port(port); !st) return st.error();
  auto addr = parse_address(address);
  if (!addr) return addr.error();
  const std::string text = format_prefix(*addr);

  auto tx = sql::Transaction::begin(db_, sql::Transaction::Mode::kWrite);
  if (!tx) return tx.error();
  auto exists = interface_exists(port);
  if (!exists) return exists.error();
  auto current = load_addresses();
  if (!current) return current.error();
  for (const auto& a : *current) {
    if (a.address.addr != addr->addr) continue;
    if (a.port == port && a.address == *addr)
      return conflict("address " + text + " is already on " + a.port);
    if (a.port == port)
      return conflict("address " + format_ipv4(addr->addr) + " is already on " + a.port + " as " +
                      format_prefix(a.address) + "; delete that first to change its length");
  }
  if (!*exists) {
    if (auto st = insert_interface(port); !st) return st.error();
  }
  auto ins = db_.prepare(sql_with_now(
      "INSERT INTO interface_addresses (port, address, created_at) VALUES (?1, ?2, NOW)"));
  if (!ins) return ins.error();
  ins->bind(1, port).bind(2, std::string_view(text));
  if (auto st = ins->run(); !st) return st.error();
  auto id = audit("interface.address.add",
                  {{"port", port}, {"address", text}, {"interface_created", !*exists}}, by);
  if (!id) return id.error();
  if (auto st = tx->commit(); !st) return st.error();
  return *id;
}

Result<ChangeId> Registry::del_address(std::string_view port, std::string_view address,
                                       const Attribution& by) {
  if (auto st = check_port(port); !st) return st.error();
  auto addr = parse_address(address);
  if (!addr) return addr.error();
  const std::string text = format_prefix(*addr);

  auto tx = sql::Transaction::begin(db_, sql::Transaction::Mode::kWrite);
  if (!tx) return tx.error();
  auto exists = interface_exists(port);
  if (!exists) return exists.error();
  if (!*exists) return not_found("unknown interface " + std::string(port));
  auto dependent = route_depending_on({{std::string(port), *addr}});
  if (!dependent) return dependent.error();
  if (*dependent) return conflict(**dependent);
  auto del = db_.prepare("DELETE FROM interface_addresses WHERE port = ?1 AND address = ?2");
  if (!del) return del.error();
  del->bind(1, port).bind(2, std::string_view(text));
  if (auto st = del->run(); !st) return st.error();
  if (db_.changes() == 0)
    return not_found("interface " + std::string(port) + " has no address " + text);
  auto id = audit("interface.address.del", {{"port", port}, {"address", text}}, by);
  if (!id) return id.error();
  if (auto st = tx->commit(); !st) return st.error();
  return *id;
}

Result<ChangeId> Registry::del_interface(std::string_view port, const Attribution& by) {
  if (auto st = check_port(port); !st) return st.error();
  auto tx = sql::Transaction::begin(db_, sql::Transaction::Mode::kWrite);
  if (!tx) return tx.error();
  auto exists = interface_exists(port);
  if (!exists) return exists.error();
  if (!*exists) return not_found("unknown interface " + std::string(port));
  auto routes = load_routes(std::nullopt);
  if (!routes) return routes.error();
  for (const auto& r : *routes)
    if (r.port == port)
      return conflict("interface " + std::string(port) + " is used by " + describe(r) +
                      "; delete that route first");
  auto all = load_addresses();
  if (!all) return all.error();
  std::vector<PortAddress> gone;
  nlohmann::json gone_text = nlohmann::json::array();
  for (const auto& a : *all)
    if (a.port == port) {
      gone.push_back(a);
      gone_text.push_back(format_prefix(a.address));
    }
  auto dependent = route_depending_on(gone);
  if (!dependent) return dependent.error();
  if (*dependent) return conflict(**dependent);
  for (auto sql : {"DELETE FROM interface_addresses WHERE port = ?1",
                   "DELETE FROM interfaces WHERE port = ?1"}) {
    auto del = db_.prepare(sql);
    if (!del) return del.error();
    del->bind(1, port);
    if (auto st = del->run(); !st) return st.error();
  }
  auto id = audit("interface.del", {{"port", port}, {"addresses", gone_text}}, by);
  if (!id) return id.error();
  if (auto st = tx->commit(); !st) return st.error();
  return *id;
}

Result<std::vector<Interface>> Registry::interfaces() {
  auto tx = sql::Transaction::begin(db_, sql::Transaction::Mode::kRead);
  if (!tx) return tx.error();
  auto stmt = db_.prepare("SELECT port FROM interfaces ORDER BY port");
  if (!stmt) return stmt.error();
  std::vector<Interface> out;
  for (;;) {
    auto row = stmt->step();
    if (!row) return row.error();
    if (!*row) break;
    out.push_back({stmt->text(0), {}});
  }
  auto addresses = load_addresses();
  if (!addresses) return addresses.error();
  for (const auto& a : *addresses)
    for (auto& i : out)
      if (i.port == a.port) i.addresses.push_back(a.address);
  if (auto st = tx->commit(); !st) return st.error();
  return out;
}

Result<ChangeId> Registry::add_route(const RouteRequest& req, const Attribution& by) {
  if (auto st = check_domain(req.domain); !st) return st.error();
  auto prefix = parse_route_prefix(req.prefix);
  if (!prefix) return prefix.error();
  Route r;
  r.domain = static_cast<uint16_t>(req.domain);
  r.prefix = *prefix;
  r.reason = by.reason;
  if (!req.via.empty()) {
    r.via = parse_ipv4(req.via);
    if (!r.via || *r.via == 0)
      return invalid("'" + req.via + "' is not a gateway address, e.g. 10.0.1.254");
  }
  if (!req.port.empty()) {
    if (auto st = check_port(req.port); !st) return st.error();
    r.port = req.port;
  }
  if (!r.via && r.port.empty())
    return invalid("route " + format_prefix(r.prefix) + " needs a gateway (via), a port, or both");

  auto tx = sql::Transaction::begin(db_, sql::Transaction::Mode::kWrite);
  if (!tx) return tx.error();
  if (!r.port.empty()) {
    auto exists = interface_exists(r.port);
    if (!exists) return exists.error();
    if (!*exists)
      return not_found("unknown interface " + r.port + "; add it to the registry first");
  }
  auto same = load_routes(r.domain);
  if (!same) return same.error();
  for (const auto& o : *same)
    if (o.prefix == r.prefix)
      return conflict(describe(o) + " already exists; delete it first to change it");
  auto ins =
      db_.prepare(sql_with_now("INSERT INTO routes (domain, prefix, via, port, reason, created_at) "
                               "VALUES (?1, ?2, ?3, ?4, ?5, NOW)"));
  if (!ins) return ins.error();
  std::optional<std::string> via, port;
  if (r.via) via = format_ipv4(*r.via);
  if (!r.port.empty()) port = r.port;
  ins->bind(1, int64_t{r.domain})
      .bind(2, std::string_view(format_prefix(r.prefix)))
      .bind(3, via)
      .bind(4, port)
      .bind(5, std::string_view(r.reason));
  if (auto st = ins->run(); !st) return st.error();
  auto id = audit("route.add", route_json(r), by);
  if (!id) return id.error();
  if (auto st = tx->commit(); !st) return st.error();
  return *id;
}

Result<ChangeId> Registry::del_route(int64_t domain, std::string_view prefix_text,
                                     const Attribution& by) {
  if (auto st = check_domain(domain); !st) return st.error();
  auto prefix = parse_route_prefix(prefix_text);
  if (!prefix) return prefix.error();
  auto tx = sql::Transaction::begin(db_, sql::Transaction::Mode::kWrite);
  if (!tx) return tx.error();
  auto same = load_routes(static_cast<uint16_t>(domain));
  if (!same) return same.error();
  auto it =
      std::find_if(same->begin(), same->end(), [&](const Route& r) { return r.prefix == *prefix; });
  if (it == same->end())
    return not_found("no route " + format_prefix(*prefix) + " in domain " + std::to_string(domain));
  auto del = db_.prepare("DELETE FROM routes WHERE domain = ?1 AND prefix = ?2");
  if (!del) return del.error();
  del->bind(1, domain).bind(2, std::string_view(format_prefix(*prefix)));
  if (auto st = del->run(); !st) return st.error();
  auto id = audit("route.del", route_json(*it), by);
  if (!id) return id.error();
  if (auto st = tx->commit(); !st) return st.error();
  return *id;
}

Result<std::vector<Route>> Registry::routes(std::optional<uint16_t> domain) {
  return load_routes(domain);
}

Result<std::vector<ChangeRecord>> Registry::changes(int64_t limit) {
  auto stmt = db_.prepare(
      "SELECT id, at, actor, action, detail, reason FROM "
      "(SELECT * FROM changes ORDER BY id DESC LIMIT ?1) ORDER BY id");
  if (!stmt) return stmt.error();
  stmt->bind(1, limit);
  std::vector<ChangeRecord> out;
  for (;;) {
    auto row = stmt->step();
    if (!row) return row.error();
    if (!*row) break;
    ChangeRecord c;
    c.id = stmt->int64(0);
    c.at = stmt->text(1);
    c.actor = stmt->text(2);
    c.action = stmt->text(3);
    c.detail = nlohmann::json::parse(stmt->text(4), nullptr, /*allow_exceptions=*/false);
    c.reason = stmt->text(5);
    out.push_back(std::move(c));
  }
  return out;
}

Result<DesiredState> Registry::desired_state() {
  auto tx = sql::Transaction::begin(db_, sql::Transaction::Mode::kRead);
  if (!tx) return tx.error();
  DesiredState out;
  auto as_of = db_.query_int("SELECT coalesce(max(id), 0) FROM changes");
  if (!as_of) return as_of.error();
  out.as_of = *as_of;
  auto addresses = load_addresses();
  if (!addresses) return addresses.error();
  out.addresses = std::move(*addresses);
  auto routes = load_routes(std::nullopt);
  if (!routes) return routes.error();
  out.routes = std::move(*routes);
  if (auto st = tx->commit(); !st) return st.error();
  return out;
}

Result<std::optional<ReconcileStatus>> Registry::reconcile_status() {
  auto stmt = db_.prepare("SELECT state, generation, change_id, message, at FROM reconcile_status");
  if (!stmt) return stmt.error();
  auto row = stmt->step();
  if (!row) return row.error();
  if (!*row) return std::optional<ReconcileStatus>();
  ReconcileStatus s;
  s.state = stmt->text(0);
  if (!stmt->is_null(1)) s.generation = static_cast<uint64_t>(stmt->int64(1));
  s.change_id = stmt->int64(2);
  s.message = stmt->text(3);
  s.at = stmt->text(4);
  return std::optional<ReconcileStatus>(std::move(s));
}

Result<bool> Registry::record_reconcile(const ReconcileStatus& status) {
  auto tx = sql::Transaction::begin(db_, sql::Transaction::Mode::kWrite);
  if (!tx) return tx.error();
  auto prev = reconcile_status();
  if (!prev) return prev.error();
  if (*prev && (*prev)->state == status.state && (*prev)->generation == status.generation &&
      (*prev)->change_id == status.change_id && (*prev)->message == status.message)
    return false;
  auto up = db_.prepare(
      sql_with_now("INSERT INTO reconcile_status (id, at, state, generation, change_id, message) "
                   "VALUES (1, NOW, ?1, ?2, ?3, ?4) ON CONFLICT (id) DO UPDATE SET "
                   "at = excluded.at, state = excluded.state, generation = excluded.generation, "
                   "change_id = excluded.change_id, message = excluded.message"));
  if (!up) return up.error();
  up->bind(1, std::string_view(status.state)).bind(3, status.change_id).bind(4, status.message);
  if (status.generation) up->bind(2, static_cast<int64_t>(*status.generation));
  if (auto st = up->run(); !st) return st.error();

  // Audit what an admin must act on: entering a refused or partial state (or
  // a new reason for it), and leaving it.
  auto needs_action = [](const std::string& st) { return st == "refused" || st == "partial"; };
  const bool was = *prev && needs_action((*prev)->state);
  nlohmann::json detail = {{"change_id", status.change_id}, {"message", status.message}};
  detail["generation"] = status.generation ? nlohmann::json(*status.generation) : nullptr;
  const Attribution by{"reconciler", ""};
  if (needs_action(status.state) &&
      (!was || (*prev)->state != status.state || (*prev)->message != status.message)) {
    if (auto id = audit("reconcile." + status.state, detail, by); !id) return id.error();
  } else if (was && status.state == "in_sync") {
    if (auto id = audit("reconcile.recovered", detail, by); !id) return id.error();
  }
  if (auto st = tx->commit(); !st) return st.error();
  return true;
}

}  // namespace tether::cp
