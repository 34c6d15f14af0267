#include "dataplane/config.h"

#include <fstream>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>
#include <stdexcept>

#include "dataplane/fw_json.h"
#include "dataplane/host_fw_json.h"
#include "dataplane/nat_json.h"

namespace tether::dp {
namespace {

using nlohmann::json;

struct ConfigError {
  std::string message;
};

[[noreturn]] void fail(const std::string& msg) { throw ConfigError{msg}; }

const json* field(const json& obj, const char* key) {
  auto it = obj.find(key);
  return it == obj.end() || it->is_null() ? nullptr : &*it;
}

std::string get_string(const json& obj, const char* key, const std::string& where) {
  const json* v = field(obj, key);
  if (!v || !v->is_string()) fail(where + "." + key + " must be a string");
  return v->get<std::string>();
}

template <typename T>
T get_uint(const json& obj, const char* key, const std::string& where, T def, uint64_t min,
           uint64_t max) {
  const json* v = field(obj, key);
  if (!v) return def;
  if (!v->is_number_unsigned()) fail(where + "." + key + " must be a non-negative integer");
  auto x = v->get<uint64_t>();
  if (x < min || x > max)
    fail(where + "." + key + " must be between " + std::to_string(min) + " and " +
         std::to_string(max));
  return static_cast<T>(x);
}

Ipv4Prefix parse_iface_address(const json& v, const std::string& where) {
  if (!v.is_string()) fail(where + " must be a string like \"10.0.1.1/24\"");
  auto p = parse_prefix(v.get<std::string>(), /*allow_host_bits=*/true);
  if (!p || p->len == 0 || v.get<std::string>().find('/') == std::string::npos)
    fail(where + ": \"" + v.get<std::string>() + "\" is not an address/prefix-length");
  return *p;
}

DataplaneConfig parse(const json& root) {
  if (!root.is_object()) fail("the configuration must be a JSON object");
  static const std::set<std::string> known = {
      "api_socket", "eal_args",  "lcores",   "mbufs",        "ports",     "exception",
      "routes",     "neighbors", "icmp",     "arp",          "wireguard", "testing",
      "nat",        "$comment",  "firewall", "host_firewall"};
  for (auto& [k, _] : root.items())
    if (!known.count(k)) fail("unknown top-level key \"" + k + "\"");

  DataplaneConfig c;
  if (field(root, "api_socket")) c.api_socket = get_string(root, "api_socket", "config");
  if (const json* e = field(root, "eal_args")) {
    if (!e->is_array()) fail("eal_args must be an array of strings");
    c.eal_args.clear();
    for (auto& a : *e) {
      if (!a.is_string()) fail("eal_args must be an array of strings");
      c.eal_args.push_back(a.get<std::string>());
    }
  }
  if (const json* l = field(root, "lcores")) {
    if (field(*l, "service"))
      c.service_lcore = get_uint<unsigned>(*l, "service", "lcores", 0, 0, 1023);
    if (const json* w = field(*l, "workers")) {
      if (!w->is_array() || w->empty()) fail("lcores.workers must be a non-empty array");
      for (auto& x : *w) {
        if (!x.is_number_unsigned()) fail("lcores.workers must hold lcore numbers");
        c.worker_lcores.push_back(x.get<unsigned>());
      }
    }
  }
  c.mbufs = get_uint<uint32_t>(root, "mbufs", "config", c.mbufs, 1023, 4u << 20);

  const json* ports = field(root, "ports");
  if (!ports || !ports->is_array() || ports->empty()) fail("ports must be a non-empty array");
  std::set<std::string> names;
  for (size_t i = 0; i < ports->size(); ++i) {
    const json& p = (*ports)[i];
    std::string where = "ports[" + std::to_string(i) + "]";
    if (!p.is_object()) fail(where + " must be an object");
    PortConfig pc;
    pc.name = get_string(p, "name", where);
    if (pc.name.empty() || pc.name.size() > 32) fail(where + ".name must be 1-32 characters");
    if (!names.insert(pc.name).second) fail(where + ": duplicate port name \"" + pc.name + "\"");
    pc.device = get_string(p, "device", where);
    if (pc.device.empty()) fail(where + ".device must not be empty");
    pc.domain = get_uint<uint16_t>(p, "domain", where, 0, 0, 4095);
    pc.mtu = get_uint<uint16_t>(p, "mtu", where, 1500, 576, 9000);
    if (const json* m = field(p, "mac")) {
      if (!m->is_string() || !(pc.mac = parse_mac(m->get<std::string>())))
        fail(where + ".mac must look like 02:00:00:00:00:01");
    }
    if (const json* a = field(p, "addresses")) {
      if (!a->is_array()) fail(where + ".addresses must be an array");
      for (size_t j = 0; j < a->size(); ++j)
        pc.addresses.push_back(
            parse_iface_address((*a)[j], where + ".addresses[" + std::to_string(j) + "]"));
    }
    c.ports.push_back(std::move(pc));
  }
  if (const json* e = field(root, "exception")) {
    if (!e->is_object()) fail("exception must be an object with a device");
    c.exception_device = get_string(*e, "device", "exception");
    if (c.exception_device->rfind("net_tap", 0) != 0)
      fail("exception.device must be a net_tap device");
  }
  if (const json* r = field(root, "routes")) {
    if (!r->is_array()) fail("routes must be an array");
    for (size_t i = 0; i < r->size(); ++i) {
      const json& x = (*r)[i];
      std::string where = "routes[" + std::to_string(i) + "]";
      if (!x.is_object()) fail(where + " must be an object");
      RouteConfig rc;
      rc.domain = get_uint<uint16_t>(x, "domain", where, 0, 0, 4095);
      auto pfx = parse_prefix(get_string(x, "prefix", where));
      if (!pfx) fail(where + ".prefix is not a network prefix (host bits must be zero)");
      rc.prefix = *pfx;
      if (field(x, "via")) {
        rc.via = parse_ipv4(get_string(x, "via", where));
        if (!rc.via) fail(where + ".via is not an IPv4 address");
      }
      if (field(x, "port")) rc.port = get_string(x, "port", where);
      if (!rc.via && rc.port.empty()) fail(where + " needs \"via\" or \"port\"");
      c.routes.push_back(rc);
    }
  }
  if (const json* n = field(root, "neighbors")) {
    if (!n->is_array()) fail("neighbors must be an array");
    for (size_t i = 0; i < n->size(); ++i) {
      const json& x = (*n)[i];
      std::string where = "neighbors[" + std::to_string(i) + "]";
      NeighborConfig nc;
      nc.port = get_string(x, "port", where);
      auto ip = parse_ipv4(get_string(x, "ip", where));
      auto mac = parse_mac(get_string(x, "mac", where));
      if (!ip) fail(where + ".ip is not an IPv4 address");
      if (!mac) fail(where + ".mac must look like 02:00:00:00:00:01");
      nc.ip = *ip;
      nc.mac = *mac;
      c.neighbors.push_back(nc);
    }
  }
  if (const json* i = field(root, "icmp")) {
    c.icmp.rate_per_sec = get_uint<uint32_t>(*i, "rate_per_sec", "icmp", 100, 0, 1000000);
    c.icmp.burst = get_uint<uint32_t>(*i, "burst", "icmp", 50, 1, 1000000);
  }
  if (const json* a = field(root, "arp")) {
    c.arp.reachable_ms = get_uint<uint32_t>(*a, "reachable_ms", "arp", 30000, 100, 86400000);
    c.arp.retry_ms = get_uint<uint32_t>(*a, "retry_ms", "arp", 1000, 10, 60000);
    c.arp.retries = get_uint<uint32_t>(*a, "retries", "arp", 3, 1, 100);
    c.arp.forget_ms = get_uint<uint32_t>(*a, "forget_ms", "arp", 30000, 100, 86400000);
    c.arp.queue_per_neighbor = get_uint<uint32_t>(*a, "queue_per_neighbor", "arp", 4, 0, 64);
    c.arp.max_neighbors = get_uint<uint32_t>(*a, "max_neighbors", "arp", 65536, 16, 1u << 22);
  }
  if (const json* w = field(root, "wireguard")) {
    if (!w->is_object()) fail("wireguard must be an object");
    for (auto& [k, _] : w->items())
      if (k != "under_load_per_sec" && k != "timers") fail("wireguard: unknown key \"" + k + "\"");
    c.wireguard.under_load_per_sec =
        get_uint<uint32_t>(*w, "under_load_per_sec", "wireguard", 1000, 0, 10000000);
    if (const json* t = field(*w, "timers")) {
      if (!t->is_object()) fail("wireguard.timers must be an object");
      static const std::set<std::string> timer_keys = {
          "rekey_after_time_ms", "reject_after_time_ms", "rekey_attempt_time_ms",
          "rekey_timeout_ms",    "keepalive_timeout_ms", "rekey_after_messages"};
      for (auto& [k, _] : t->items())
        if (!timer_keys.count(k)) fail("wireguard.timers: unknown key \"" + k + "\"");
      auto& tc = c.wireguard.timers;
      const std::string where = "wireguard.timers";
      tc.rekey_after_time_ms =
          get_uint<uint64_t>(*t, "rekey_after_time_ms", where, 120000, 100, 86400000);
      tc.reject_after_time_ms =
          get_uint<uint64_t>(*t, "reject_after_time_ms", where, 180000, 100, 86400000);
      tc.rekey_attempt_time_ms =
          get_uint<uint64_t>(*t, "rekey_attempt_time_ms", where, 90000, 100, 86400000);
      tc.rekey_timeout_ms = get_uint<uint64_t>(*t, "rekey_timeout_ms", where, 5000, 10, 600000);
      tc.keepalive_timeout_ms =
          get_uint<uint64_t>(*t, "keepalive_timeout_ms", where, 10000, 10, 600000);
      tc.rekey_after_messages = get_uint<uint64_t>(
          *t, "rekey_after_messages", where, wg::kRekeyAfterMessages, 16, wg::kRekeyAfterMessages);
      if (tc.reject_after_time_ms <= tc.rekey_after_time_ms)
        fail("wireguard.timers: reject_after_time_ms must exceed rekey_after_time_ms");
    }
  }
  if (const json* n = field(root, "nat")) {
    if (!n->is_object()) fail("nat must be an object");
    static const std::set<std::string> nat_keys = {"max_sessions", "max_mappings", "timeouts",
                                                   "gateways",     "mappings",     "snat"};
    for (auto& [k, _] : n->items())
      if (!nat_keys.count(k)) fail("nat: unknown key \"" + k + "\"");
    c.nat.max_sessions =
        get_uint<uint32_t>(*n, "max_sessions", "nat", c.nat.max_sessions, 1024, 1u << 25);
    c.nat.max_mappings =
        get_uint<uint32_t>(*n, "max_mappings", "nat", c.nat.max_mappings, 16, 1u << 20);
    try {
      if (const json* t = field(*n, "timeouts"))
        c.nat.timeouts = parse_nat_timeouts(*t, "nat.timeouts");
      auto list = [&](const char* key, auto&& each) {
        const json* l = field(*n, key);
        if (!l) return;
        if (!l->is_array()) fail(std::string("nat.") + key + " must be a list");
        for (size_t i = 0; i < l->size(); ++i)
          each((*l)[i], std::string("nat.") + key + "[" + std::to_string(i) + "]");
      };
      list("gateways", [&](const json& j, const std::string& w) {
        c.nat.gateways.push_back(parse_nat_gateway(j, w));
      });
      list("mappings", [&](const json& j, const std::string& w) {
        c.nat.mappings.push_back(parse_nat_mapping(j, w));
      });
      list("snat", [&](const json& j, const std::string& w) {
        c.nat.snat.push_back(parse_nat_snat(j, w));
      });
    } catch (const std::invalid_argument& e) {
      fail(e.what());
    }
  }
  if (const json* f = field(root, "firewall")) {
    if (!f->is_object()) fail("firewall must be an object");
    static const std::set<std::string> fw_keys = {"max_rules", "log_per_sec", "zones",
                                                  "policies",  "$comment",    "tcp_window_tracking",
                                                  "tcp_pickup"};
    for (auto& [k, _] : f->items())
      if (!fw_keys.count(k)) fail("firewall: unknown key \"" + k + "\"");
    c.firewall.max_rules =
        get_uint<uint32_t>(*f, "max_rules", "firewall", c.firewall.max_rules, 64, 1u << 22);
    c.firewall.log_per_sec =
        get_uint<uint32_t>(*f, "log_per_sec", "firewall", c.firewall.log_per_sec, 0, 100000);
    if (const json* t = field(*f, "tcp_window_tracking")) {
      if (!t->is_boolean()) fail("firewall.tcp_window_tracking must be true or false");
      c.firewall.tcp_window_tracking = t->get<bool>();
    }
    if (const json* t = field(*f, "tcp_pickup")) {
      if (!t->is_boolean()) fail("firewall.tcp_pickup must be true or false");
      c.firewall.tcp_pickup = t->get<bool>();
    }
    try {
      for (const char* key : {"zones", "policies"}) {
        const json* l = field(*f, key);
        if (!l) continue;
        if (!l->is_array()) fail(std::string("firewall.") + key + " must be a list");
        for (size_t i = 0; i < l->size(); ++i) {
          std::string w = std::string("firewall.") + key + "[" + std::to_string(i) + "]";
          if (key == std::string("zones"))
            c.firewall.zones.push_back(parse_fw_zone((*l)[i], w));
          else
            c.firewall.policies.push_back(parse_fw_policy((*l)[i], w));
        }
      }
    } catch (const std::invalid_argument& e) {
      fail(e.what());
    }
  }
  if (const json* h = field(root, "host_firewall")) {
    try {
      c.host_firewall = parse_host_policy(*h, "host_firewall");
    } catch (const std::invalid_argument& e) {
      fail(e.what());
    }
  }
  if (const json* t = field(root, "testing")) {
    if (!t->is_object()) fail("testing must be an object");
    for (auto& [k, _] : t->items())
      if (k != "clock_control" && k != "nat_sequential_ports")
        fail("testing: unknown key \"" + k + "\"");
    if (const json* cc = field(*t, "clock_control")) {
      if (!cc->is_boolean()) fail("testing.clock_control must be true or false");
      c.testing.clock_control = cc->get<bool>();
    }
    if (const json* sp = field(*t, "nat_sequential_ports")) {
      if (!sp->is_boolean()) fail("testing.nat_sequential_ports must be true or false");
      c.testing.nat_sequential_ports = sp->get<bool>();
    }
  }
  return c;
}

}  // namespace

std::optional<DataplaneConfig> parse_config(const std::string& text, std::string* error) {
  auto root = json::parse(text, nullptr, false, /*ignore_comments=*/true);
  if (root.is_discarded()) {
    if (error) *error = "the configuration is not valid JSON";
    return std::nullopt;
  }
  try {
    return parse(root);
  } catch (const ConfigError& e) {
    if (error) *error = e.message;
    return std::nullopt;
  }
}

std::optional<DataplaneConfig> load_config(const std::string& path, std::string* error) {
  std::ifstream in(path);
  if (!in) {
    if (error) *error = "cannot read " + path;
    return std::nullopt;
  }
  std::stringstream ss;
  ss << in.rdbuf();
  auto c = parse_config(ss.str(), error);
  if (!c && error) *error = path + ": " + *error;
  return c;
}

}  // namespace tether::dp
