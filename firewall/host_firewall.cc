#include "firewall/host_firewall.h"

#include <nftables/libnftables.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cctype>
#include <cstdio>

namespace tether::fw {

InterfaceClaim::~InterfaceClaim() {
  release();
  if (ctx_) nft_ctx_free(ctx_);
}

bool InterfaceClaim::run(const std::string& cmd, std::string* error) {
  if (!ctx_) {
    ctx_ = nft_ctx_new(NFT_CTX_DEFAULT);
    if (!ctx_) {
      if (error) *error = "nftables: cannot create a context";
      return false;
    }
    nft_ctx_buffer_error(ctx_);
  }
  if (nft_run_cmd_from_buffer(ctx_, cmd.c_str()) != 0) {
    if (error) *error = std::string("nftables: ") + nft_ctx_get_error_buffer(ctx_);
    return false;
  }
  return true;
}

bool InterfaceClaim::claim(const std::string& table, const std::vector<std::string>& ifnames,
                           std::string* error) {
  for (auto& n : ifnames)
    for (char ch : n)
      if (!(isalnum(static_cast<unsigned char>(ch)) || ch == '-' || ch == '_' || ch == '.')) {
        *error = "interface name \"" + n + "\" has characters nftables will not take";
        return false;
      }
  // "add" then "delete" then "add": idempotent whether or not the table exists.
  std::string cmd = "add table netdev " + table + "\ndelete table netdev " + table +
                    "\nadd table netdev " + table + "\n";
  for (size_t i = 0; i < ifnames.size(); ++i)
    cmd += "add chain netdev " + table + " claim" + std::to_string(i) +
           " { type filter hook ingress device \"" + ifnames[i] +
           "\" priority -500; policy drop; }\n";
  if (!run(cmd, error)) return false;
  table_ = table;
  return true;
}

void InterfaceClaim::release() {
  if (table_.empty()) return;
  std::string ignored;
  run("delete table netdev " + table_, &ignored);
  table_.clear();
}

namespace {

// The characters InterfaceClaim::claim accepts; anything else could end the
// quoted name early or is not a Linux interface name at all.
bool ifname_ok(const std::string& n) {
  if (n.empty() || n.size() > 15) return false;  // IFNAMSIZ - 1
  for (char ch : n)
    if (!(isalnum(static_cast<unsigned char>(ch)) || ch == '-' || ch == '_' || ch == '.'))
      return false;
  return true;
}

// An extra rule is spliced into the guard chain as one line of the script:
// it must stay one rule of that chain. A newline or ';' would start another
// command, an unbalanced '}' would close the chain (and let the rest define
// other tables in the same transaction), '#' could comment out our closing
// brace, and include/define pull in text we never see. The rule itself is
// libnftables' to judge.
std::optional<std::string> extra_problem(const std::string& r) {
  size_t first = r.find_first_not_of(" \t");
  if (first == std::string::npos) return "is empty";
  int depth = 0;
  for (char ch : r) {
    if (ch == '\n' || ch == '\r' || ch == ';')
      return "holds a newline or ';': give one rule per entry";
    if (ch == '#') return "holds '#': comments are not taken";
    if (static_cast<unsigned char>(ch) < 0x20 && ch != '\t') return "holds a control character";
    if (ch == '{') ++depth;
    if (ch == '}' && --depth < 0) return "closes a '}' it did not open";
  }
  if (depth != 0) return "leaves a '{' open";
  size_t end = r.find_first_of(" \t", first);
  std::string word = r.substr(first, end == std::string::npos ? std::string::npos : end - first);
  if (word == "include" || word == "define" || word == "redefine" || word == "undefine")
    return "is \"" + word + "\", not a rule";
  return std::nullopt;
}

const char* proto_name(uint8_t proto) { return proto == 17 ? "udp" : "tcp"; }

std::string trimmed(std::string s) {
  while (!s.empty() && isspace(static_cast<unsigned char>(s.back()))) s.pop_back();
  return s;
}

}  // namespace

std::optional<std::string> validate(const HostPolicy& p) {
  for (auto& n : p.interfaces)
    if (!ifname_ok(n))
      return "interface \"" + n +
             "\" is not an interface name (1-15 characters: letters, digits, '-', '_', '.')";
  for (auto& a : p.admin) {
    if (a.len > 32) return "admin range " + format_prefix(a) + " has a length over 32";
    if (a.addr != a.network())
      return "admin range " + format_prefix(a) + " has host bits set (the network is " +
             format_prefix({a.network(), a.len}) + ")";
  }
  for (auto& s : p.services) {
    if (s.proto != 6 && s.proto != 17)
      return "service protocol " + std::to_string(s.proto) + " is neither TCP (6) nor UDP (17)";
    if (s.port == 0) return std::string("service ") + proto_name(s.proto) + "/0 has no port";
  }
  if (p.new_per_second < 1) return "new_per_second must be at least 1";
  // nftables refuses a packet limit without burst ("burst must be > 0").
  if (p.burst < 1) return "burst must be at least 1";
  for (size_t i = 0; i < p.extra.size(); ++i)
    if (auto why = extra_problem(p.extra[i]))
      return "extra rule " + std::to_string(i + 1) + " \"" + p.extra[i] + "\" " + *why;
  return std::nullopt;
}

HostFirewall::~HostFirewall() {
  remove();
  if (ctx_) nft_ctx_free(ctx_);
}

bool HostFirewall::run(const std::string& cmd, std::string* out, std::string* error) {
  if (!ctx_) {
    ctx_ = nft_ctx_new(NFT_CTX_DEFAULT);
    if (!ctx_) {
      if (error) *error = "nftables: cannot create a context";
      return false;
    }
    nft_ctx_buffer_output(ctx_);
    nft_ctx_buffer_error(ctx_);
  }
  // The script goes through a memfd read as a file, not through
  // nft_run_cmd_from_buffer: for a buffer, libnftables 1.0.6 quotes the
  // buffer's first line under every error, whatever line was at fault, and
  // no line number. From a file it quotes the right line, with its number.
  // A file is still one transaction, like `nft -f`.
  int rc;
  std::string name;
  int fd = memfd_create("tether-nft", MFD_CLOEXEC);
  if (fd >= 0 && write(fd, cmd.data(), cmd.size()) == static_cast<ssize_t>(cmd.size())) {
    name = "/proc/self/fd/" + std::to_string(fd);
    rc = nft_run_cmd_from_filename(ctx_, name.c_str());
  } else {
    rc = nft_run_cmd_from_buffer(ctx_, cmd.c_str());
  }
  if (fd >= 0) close(fd);
  // Reading a buffer also empties it: read both every time, so that a
  // warning left by one command never shows up in the next one's message.
  std::string output = nft_ctx_get_output_buffer(ctx_);
  std::string errors = nft_ctx_get_error_buffer(ctx_);
  if (rc != 0) {
    // "/proc/self/fd/7:28:15-22: Error: ..." names a file nobody can open
    // afterwards; name the table instead.
    for (size_t at = 0; !name.empty() && (at = errors.find(name + ":", at)) != std::string::npos;
         at += table_.size())
      errors.replace(at, name.size(), table_);
    if (error) *error = "nftables: " + trimmed(errors.empty() ? "command failed" : errors);
    return false;
  }
  if (out) *out = std::move(output);
  return true;
}

std::string HostFirewall::script(const HostPolicy& p) const {
  // "add" then "delete": whether or not a table of that name exists (ours
  // from an earlier run, or none), it is gone after these two.
  std::string s = "add table inet " + table_ + "\ndelete table inet " + table_ + "\n";
  if (p.interfaces.empty()) return s;
  const std::string limit = " limit rate " + std::to_string(p.new_per_second) + "/second burst " +
                            std::to_string(p.burst) + " packets";
  auto list = [](const std::vector<std::string>& items) {
    std::string l;
    for (auto& i : items) l += (l.empty() ? "" : ", ") + i;
    return l;
  };
  std::vector<std::string> ifs, admin, services;
  for (auto& n : p.interfaces) ifs.push_back("\"" + n + "\"");
  for (auto& a : p.admin) admin.push_back(format_prefix(a));
  for (auto& sv : p.services)
    services.push_back(std::string(proto_name(sv.proto)) + " . " + std::to_string(sv.port));
  // Named sets rather than anonymous ones: `list table` then shows who is
  // guarded and admitted, and an empty set is valid where "{ }" is not.
  s += "table inet " + table_ + " {\n";
  s += "  set guarded {\n    type ifname\n    elements = { " + list(ifs) + " }\n  }\n";
  // auto-merge: overlapping admin ranges (10.0.0.0/8 and 10.1.0.0/16) are
  // merged; without it nftables refuses them as "conflicting intervals".
  s += "  set admin {\n    type ipv4_addr\n    flags interval\n    auto-merge\n";
  if (!admin.empty()) s += "    elements = { " + list(admin) + " }\n";
  s += "  }\n";
  s += "  set services {\n    type inet_proto . inet_service\n";
  if (!services.empty()) s += "    elements = { " + list(services) + " }\n";
  s += "  }\n";
  // Policy accept: only what arrives on a guarded interface is judged.
  s += "  chain input {\n    type filter hook input priority filter; policy accept;\n";
  s += "    iifname @guarded jump guard\n  }\n";
  s += "  chain guard {\n";
  s += "    ct state established,related accept\n";
  s += "    ct state invalid drop\n";
  if (p.allow_ping) s += "    ip saddr @admin icmp type echo-request" + limit + " accept\n";
  // One limit for all services together: the rate caps what the kernel's
  // listeners see, whoever the admin.
  s += "    ip saddr @admin meta l4proto . th dport @services ct state new" + limit + " accept\n";
  for (auto& r : p.extra) s += "    " + r + "\n";
  s += "    counter drop\n  }\n}\n";
  return s;
}

bool HostFirewall::apply(const HostPolicy& p, std::string* error) {
  if (auto why = validate(p)) {
    if (error) *error = *why;
    return false;
  }
  // One script is one nftables transaction: a rule that libnftables or the
  // kernel refuses aborts it whole, and the table in force stays as it was
  // (the delete included).
  if (!run(script(p), nullptr, error)) return false;
  policy_ = p;
  installed_ = !p.interfaces.empty();
  return true;
}

std::string HostFirewall::ruleset(std::string* error) {
  if (!installed_) return "";
  std::string out;
  if (!run("list table inet " + table_, &out, error)) return "";
  return out;
}

void HostFirewall::remove() {
  if (!installed_) return;
  std::string ignored;
  run("delete table inet " + table_, nullptr, &ignored);
  installed_ = false;
  policy_ = HostPolicy{};
}

}  // namespace tether::fw
