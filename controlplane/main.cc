// tether-controlplane: the daemon (`run`) and the admin commands that write
// the registry (`interface`, `route`, `changes`, `status`). Exit status: 0 on
// success, 2 on invalid input (the message says what to fix), 1 when the
// registry cannot be opened or fails.
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdlib>
#include <iostream>
#include <nlohmann/json.hpp>

#include "controlplane/daemon.h"
#include "controlplane/registry.h"
#include "dataplane/api/wire.h"

namespace {

using namespace tether;
using namespace tether::cp;

constexpr int kExitFailure = 1;
constexpr int kExitInvalid = 2;

std::string default_actor() {
  for (const char* var : {"SUDO_USER", "USER", "LOGNAME"})
    if (const char* v = std::getenv(var); v && *v) return std::string("cli:") + v;
  return "cli:uid" + std::to_string(getuid());
}

int fail(const Error& e) {
  std::cerr << "error: " << e.message << "\n";
  return e.code == Error::Code::kInternal ? kExitFailure : kExitInvalid;
}

int report(const Result<ChangeId>& r) {
  if (!r) return fail(r.error());
  std::cout << "change " << *r << "\n";
  return 0;
}

std::string or_dash(const std::string& s) { return s.empty() ? "-" : s; }

struct Args {
  std::string db;
  std::string actor = default_actor();
  std::string reason;
  std::string port, address, prefix, via;
  int64_t domain = 0;
  bool domain_given = false;
  bool json = false;
  int64_t limit = 50;
  std::string socket = dpapi::kDefaultSocket;
  int64_t interval_ms = 5000;
  std::string log_level = "info";
};

int interface_list(Registry& reg, const Args& a) {
  auto list = reg.interfaces();
  if (!list) return fail(list.error());
  nlohmann::json out = nlohmann::json::array();
  for (const auto& i : *list) {
    nlohmann::json addrs = nlohmann::json::array();
    for (const auto& p : i.addresses) addrs.push_back(format_prefix(p));
    out.push_back({{"port", i.port}, {"addresses", addrs}});
  }
  if (a.json) {
    std::cout << out.dump() << "\n";
    return 0;
  }
  for (const auto& i : out) {
    std::string addrs;
    for (const auto& p : i["addresses"]) addrs += (addrs.empty() ? "" : " ") + p.get<std::string>();
    std::printf("%-16s %s\n", i["port"].get<std::string>().c_str(), or_dash(addrs).c_str());
  }
  return 0;
}

int route_list(Registry& reg, const Args& a) {
  std::optional<uint16_t> domain;
  if (a.domain_given) {
    if (a.domain < 0 || a.domain > 65535) return fail(invalid("--domain must be 0..65535"));
    domain = static_cast<uint16_t>(a.domain);
  }
  auto list = reg.routes(domain);
  if (!list) return fail(list.error());
  nlohmann::json out = nlohmann::json::array();
  for (const auto& r : *list) {
    nlohmann::json j = {{"domain", r.domain}, {"prefix", format_prefix(r.prefix)}};
    j["via"] = r.via ? nlohmann::json(format_ipv4(*r.via)) : nlohmann::json(nullptr);
    j["port"] = r.port.empty() ? nlohmann::json(nullptr) : nlohmann::json(r.port);
    j["reason"] = r.reason;
    out.push_back(j);
  }
  if (a.json) {
    std::cout << out.dump() << "\n";
    return 0;
  }
  for (const auto& r : *list)
    std::printf("%-6u %-18s %-15s %-12s %s\n", r.domain, format_prefix(r.prefix).c_str(),
                r.via ? format_ipv4(*r.via).c_str() : "-", or_dash(r.port).c_str(),
                r.reason.c_str());
  return 0;
}

int changes_list(Registry& reg, const Args& a) {
  if (a.limit < 1) return fail(invalid("--limit must be at least 1"));
  auto list = reg.changes(a.limit);
  if (!list) return fail(list.error());
  nlohmann::json out = nlohmann::json::array();
  for (const auto& c : *list)
    out.push_back({{"id", c.id},
                   {"at", c.at},
                   {"actor", c.actor},
                   {"action", c.action},
                   {"detail", c.detail},
                   {"reason", c.reason}});
  if (a.json) {
    std::cout << out.dump() << "\n";
    return 0;
  }
  for (const auto& c : *list)
    std::printf("%-6lld %s %-16s %-22s %s%s\n", static_cast<long long>(c.id), c.at.c_str(),
                c.actor.c_str(), c.action.c_str(), c.detail.dump().c_str(),
                c.reason.empty() ? "" : ("  # " + c.reason).c_str());
  return 0;
}

int status(Registry& reg, const Args& a) {
  auto s = reg.reconcile_status();
  if (!s) return fail(s.error());
  nlohmann::json out = nullptr;
  if (*s) {
    const auto& st = **s;
    out = {
        {"state", st.state}, {"change_id", st.change_id}, {"message", st.message}, {"at", st.at}};
    out["generation"] = st.generation ? nlohmann::json(*st.generation) : nullptr;
  }
  if (a.json) {
    std::cout << out.dump() << "\n";
    return 0;
  }
  if (!*s) {
    std::cout << "not reconciled yet\n";
    return 0;
  }
  const auto& st = **s;
  std::cout << st.state
            << " generation=" << (st.generation ? std::to_string(*st.generation) : std::string("-"))
            << " change=" << st.change_id << " at=" << st.at << "\n";
  if (!st.message.empty()) std::cout << st.message << "\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Tether control plane: registry, reconciler and admin commands"};
  app.require_subcommand(1);
  Args a;

  auto db_opt = [&](CLI::App* sub) {
    sub->add_option("--db", a.db, "registry database file")->required();
  };
  auto who_opts = [&](CLI::App* sub) {
    db_opt(sub);
    sub->add_option("--reason", a.reason, "why; kept in the audit");
    sub->add_option("--actor", a.actor, "who; kept in the audit")->capture_default_str();
  };

  auto* run =
      app.add_subcommand("run", "run the daemon: reconcile the registry into the dataplane");
  db_opt(run);
  run->add_option("--dataplane-socket", a.socket, "the dataplane API socket")
      ->capture_default_str();
  run->add_option("--interval-ms", a.interval_ms, "full reconcile at least this often")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{100}, int64_t{86400000}));
  run->add_option("--log-level", a.log_level, "trace, debug, info, warn, error")
      ->capture_default_str()
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error"}));

  auto* iface = app.add_subcommand("interface", "dataplane ports and their addresses");
  iface->require_subcommand(1);
  auto* iface_add = iface->add_subcommand("add", "add an interface, or an address to it");
  who_opts(iface_add);
  iface_add->add_option("port", a.port, "dataplane port name, e.g. uplink")->required();
  iface_add->add_option("address", a.address, "address/length, e.g. 10.0.1.1/24");
  auto* iface_del =
      iface->add_subcommand("del", "delete an address, or the interface with all its addresses");
  who_opts(iface_del);
  iface_del->add_option("port", a.port, "dataplane port name")->required();
  iface_del->add_option("address", a.address, "address/length; omit to delete the interface");
  auto* iface_list = iface->add_subcommand("list", "list interfaces");
  db_opt(iface_list);
  iface_list->add_flag("--json", a.json, "JSON output");

  auto* route = app.add_subcommand("route", "static routes");
  route->require_subcommand(1);
  auto* route_add = route->add_subcommand("add", "add a static route");
  who_opts(route_add);
  route_add->add_option("prefix", a.prefix, "destination, e.g. 10.2.0.0/24")->required();
  route_add->add_option("--domain", a.domain, "routing domain (0: uplink)")->capture_default_str();
  route_add->add_option("--via", a.via, "gateway address");
  route_add->add_option("--port", a.port, "interface the route leaves through");
  auto* route_del = route->add_subcommand("del", "delete a static route");
  who_opts(route_del);
  route_del->add_option("prefix", a.prefix, "destination")->required();
  route_del->add_option("--domain", a.domain, "routing domain")->capture_default_str();
  auto* route_list_cmd = route->add_subcommand("list", "list static routes");
  db_opt(route_list_cmd);
  auto* domain_filter = route_list_cmd->add_option("--domain", a.domain, "only this domain");
  route_list_cmd->add_flag("--json", a.json, "JSON output");

  auto* changes = app.add_subcommand("changes", "the audit trail");
  changes->require_subcommand(1);
  auto* changes_list_cmd = changes->add_subcommand("list", "list the newest changes");
  db_opt(changes_list_cmd);
  changes_list_cmd->add_option("--limit", a.limit, "how many")->capture_default_str();
  changes_list_cmd->add_flag("--json", a.json, "JSON output");

  auto* status_cmd = app.add_subcommand("status", "the reconciler's last outcome");
  db_opt(status_cmd);
  status_cmd->add_flag("--json", a.json, "JSON output");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? 0 : kExitInvalid;
  }
  a.domain_given = domain_filter->count() > 0;

  if (run->parsed()) {
    spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");
    spdlog::set_level(spdlog::level::from_str(a.log_level));
    DaemonOptions opt;
    opt.db_path = a.db;
    opt.socket_path = a.socket;
    opt.interval = std::chrono::milliseconds(a.interval_ms);
    return run_daemon(opt);
  }

  auto reg = Registry::open(a.db);
  if (!reg) {
    std::cerr << "error: " << reg.error().message << "\n";
    return kExitFailure;
  }
  const Attribution by{a.actor, a.reason};
  if (iface_add->parsed())
    return report(a.address.empty() ? reg->add_interface(a.port, by)
                                    : reg->add_address(a.port, a.address, by));
  if (iface_del->parsed())
    return report(a.address.empty() ? reg->del_interface(a.port, by)
                                    : reg->del_address(a.port, a.address, by));
  if (iface_list->parsed()) return interface_list(*reg, a);
  if (route_add->parsed()) return report(reg->add_route({a.domain, a.prefix, a.via, a.port}, by));
  if (route_del->parsed()) return report(reg->del_route(a.domain, a.prefix, by));
  if (route_list_cmd->parsed()) return route_list(*reg, a);
  if (changes_list_cmd->parsed()) return changes_list(*reg, a);
  if (status_cmd->parsed()) return status(*reg, a);
  return kExitInvalid;
}
