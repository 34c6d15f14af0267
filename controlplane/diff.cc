#include "controlplane/diff.h"

#include <algorithm>
#include <map>
#include <set>
#include <tuple>

namespace tether::cp {
namespace {

using RouteKey = std::pair<uint16_t, Ipv4Prefix>;

Result<Ipv4Prefix> field_prefix(const nlohmann::json& j, const char* name, bool host_bits) {
  if (!j.contains(name) || !j[name].is_string())
    return internal(std::string("dataplane reported an entry without '") + name + "': " + j.dump());
  auto p = parse_prefix(j[name].get<std::string>(), host_bits);
  if (!p)
    return internal(std::string("dataplane reported a malformed '") + name + "': " + j.dump());
  return *p;
}

std::string origin_of(const nlohmann::json& j) {
  auto it = j.find("origin");
  return it != j.end() && it->is_string() ? it->get<std::string>() : "config";
}

nlohmann::json address_change(const char* op, const std::string& port, const Ipv4Prefix& a) {
  return {{"kind", "address"}, {"op", op}, {"port", port}, {"address", format_prefix(a)}};
}

nlohmann::json route_add(const Route& r) {
  nlohmann::json j = {
      {"kind", "route"}, {"op", "add"}, {"domain", r.domain}, {"prefix", format_prefix(r.prefix)}};
  if (r.via) j["via"] = format_ipv4(*r.via);
  if (!r.port.empty()) j["port"] = r.port;
  return j;
}

nlohmann::json route_del(const RouteKey& k) {
  return {
      {"kind", "route"}, {"op", "del"}, {"domain", k.first}, {"prefix", format_prefix(k.second)}};
}

// The reported route already is what the registry asks for.
bool satisfies(const ReportedRoute& rep, const Route& want) {
  return rep.via == want.via && (want.port.empty() || want.port == rep.port);
}

std::string describe_reported(const ReportedRoute& r) {
  std::string s = format_prefix(r.prefix);
  if (r.via) s += " via " + format_ipv4(*r.via);
  if (!r.port.empty()) s += " on " + r.port;
  return s;
}

}  // namespace

Result<DataplaneState> parse_dataplane_state(const nlohmann::json& ports_result,
                                             const nlohmann::json& routes_result) {
  DataplaneState out;
  if (!ports_result.is_object() || !ports_result.contains("ports") ||
      !ports_result["ports"].is_array())
    return internal("ports.list result has no 'ports' array");
  for (const auto& p : ports_result["ports"]) {
    if (!p.is_object() || !p.contains("name") || !p["name"].is_string())
      return internal("ports.list reported a port without a name: " + p.dump());
    const auto name = p["name"].get<std::string>();
    out.ports.push_back(name);
    if (!p.contains("addresses")) continue;
    for (const auto& a : p["addresses"]) {
      auto addr = field_prefix(a, "address", /*host_bits=*/true);
      if (!addr) return addr.error();
      out.addresses.push_back({name, *addr, origin_of(a)});
    }
  }
  if (!routes_result.is_object() || !routes_result.contains("routes") ||
      !routes_result["routes"].is_array())
    return internal("routes.list result has no 'routes' array");
  for (const auto& r : routes_result["routes"]) {
    // A WireGuard peer's allowed prefixes are listed as routes of kind
    // "tunnel"; they belong to the peer, not to the route table we reconcile.
    if (r.value("kind", "") == "tunnel") continue;
    ReportedRoute rr;
    auto prefix = field_prefix(r, "prefix", /*host_bits=*/false);
    if (!prefix) return prefix.error();
    rr.prefix = *prefix;
    rr.domain = r.value("domain", uint16_t{0});
    if (r.contains("via") && r["via"].is_string()) {
      rr.via = parse_ipv4(r["via"].get<std::string>());
      if (!rr.via) return internal("routes.list reported a malformed 'via': " + r.dump());
    }
    if (r.contains("port") && r["port"].is_string()) rr.port = r["port"].get<std::string>();
    rr.origin = origin_of(r);
    out.routes.push_back(std::move(rr));
  }
  return out;
}

Plan plan_changes(const DesiredState& desired, const DataplaneState& reported) {
  Plan plan;
  const std::set<std::string> ports(reported.ports.begin(), reported.ports.end());

  // Addresses.
  const std::set<PortAddress> want_addrs(desired.addresses.begin(), desired.addresses.end());
  std::set<PortAddress> have_api, have_other;
  for (const auto& a : reported.addresses)
    (a.origin == kOriginApi ? have_api : have_other).insert({a.port, a.address});
  std::vector<PortAddress> addr_dels, addr_adds;
  for (const auto& a : have_api)
    if (!want_addrs.count(a)) addr_dels.push_back(a);
  for (const auto& a : want_addrs) {
    if (have_api.count(a) || have_other.count(a)) continue;
    if (!ports.count(a.port)) {
      plan.held_back.push_back("address " + format_prefix(a.address) + " on " + a.port +
                               ": the dataplane has no port " + a.port);
      continue;
    }
    addr_adds.push_back(a);
  }

  // Routes, keyed by (domain, prefix): the dataplane holds one per key.
  std::map<RouteKey, const ReportedRoute*> have_routes;
  for (const auto& r : reported.routes) have_routes.emplace(RouteKey{r.domain, r.prefix}, &r);
  std::map<RouteKey, const Route*> want_routes;
  for (const auto& r : desired.routes) want_routes.emplace(RouteKey{r.domain, r.prefix}, &r);

  std::set<RouteKey> route_dels;
  std::map<RouteKey, const Route*> route_adds;
  for (const auto& [key, rep] : have_routes) {
    if (rep->origin != kOriginApi) continue;
    auto want = want_routes.find(key);
    if (want == want_routes.end() || !satisfies(*rep, *want->second)) {
      route_dels.insert(key);
      continue;
    }
    // Kept, unless its gateway's address goes away in this plan: then it is
    // deleted before and re-added after, as the dataplane checks each step.
    if (!rep->via) continue;
    for (const auto& a : addr_dels)
      if (a.port == rep->port && a.address.contains(*rep->via)) {
        route_dels.insert(key);
        route_adds.emplace(key, want->second);
        break;
      }
  }
  for (const auto& [key, want] : want_routes) {
    if (!want->port.empty() && !ports.count(want->port)) {
      plan.held_back.push_back(describe(*want) + ": the dataplane has no port " + want->port);
      continue;
    }
    auto have = have_routes.find(key);
    if (have == have_routes.end()) {
      route_adds.emplace(key, want);
    } else if (have->second->origin == kOriginApi) {
      if (route_dels.count(key)) route_adds.emplace(key, want);
    } else if (!satisfies(*have->second, *want)) {
      plan.held_back.push_back(describe(*want) + ": the dataplane's " + have->second->origin +
                               " route " + describe_reported(*have->second) + " holds that prefix");
    }
  }

  for (const auto& k : route_dels) plan.changes.push_back(route_del(k));
  for (const auto& a : addr_dels) plan.changes.push_back(address_change("del", a.port, a.address));
  for (const auto& a : addr_adds) plan.changes.push_back(address_change("add", a.port, a.address));
  for (const auto& [k, r] : route_adds) plan.changes.push_back(route_add(*r));
  return plan;
}

std::string describe_change(const nlohmann::json& c) {
  std::string s = c.value("kind", "?") + " " + c.value("op", "?");
  if (c.value("kind", "") == "address") {
    s += " " + c.value("address", "?") + " on " + c.value("port", "?");
  } else {
    s += " " + c.value("prefix", "?") + " domain " + std::to_string(c.value("domain", 0));
    if (c.contains("via")) s += " via " + c.value("via", "?");
    if (c.contains("port")) s += " on " + c.value("port", "?");
  }
  return s;
}

}  // namespace tether::cp
