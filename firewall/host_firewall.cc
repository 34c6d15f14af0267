#include "firewall/host_firewall.h"

#include <nftables/libnftables.h>

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

}  // namespace tether::fw
