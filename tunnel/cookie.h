// MAC1, MAC2 and cookie replies (WireGuard paper §5.3 and §5.4.7).
// CookieChecker is the responder's side, one per interface: it checks MAC1 of
// every handshake message, and, when the interface is under load, MAC2 against
// a cookie bound to the sender's outer address, answering messages without a
// valid MAC2 with a cookie reply. CookieMaker is the initiator's side, one per
// peer: it stamps MAC1/MAC2 on messages we send, and keeps the cookie the peer
// gave us. Times are milliseconds of the caller's clock, which tests drive.
#pragma once

#include <cstdint>

#include "tunnel/crypto.h"
#include "tunnel/messages.h"
#include "tunnel/noise.h"

namespace tether::wg {

// The responder's secret for cookies changes this often (COOKIE_SECRET_MAX_AGE).
inline constexpr uint64_t kCookieSecretMaxAgeMs = 120'000;

class CookieChecker {
 public:
  explicit CookieChecker(const Identity& local);
  // msg/len is a whole initiation or response.
  bool check_mac1(const uint8_t* msg, size_t len) const;
  // `source` is the sender's outer address and port as bytes (IPv4 4 + port 2,
  // network order). Rotates the secret when it is older than two minutes.
  bool check_mac2(const uint8_t* msg, size_t len, Bytes source, uint64_t now_ms);
  // Builds the cookie reply to msg (whose sender_index is `receiver_index`).
  void make_reply(const uint8_t* msg, size_t len, uint32_t receiver_index, Bytes source,
                  uint64_t now_ms, MessageCookieReply* out);

 private:
  Key cookie(Bytes source, uint64_t now_ms);
  Hash mac1_key_;
  Hash cookie_key_;
  Key secret_{};
  uint64_t secret_born_ms_ = 0;
  bool have_secret_ = false;
};

class CookieMaker {
 public:
  explicit CookieMaker(const PeerKeys& peer);
  // Fills mac1 (always) and mac2 (when a cookie younger than two minutes is
  // held) of an initiation or response we are about to send to the peer.
  void add_macs(uint8_t* msg, size_t len, uint64_t now_ms);
  // Takes a cookie reply to the last message we stamped; false if it does not
  // decrypt (wrong peer, stale, forged).
  bool consume_reply(const MessageCookieReply& reply, uint64_t now_ms);
  void clear();

 private:
  Hash mac1_key_;
  Hash cookie_key_;
  Mac last_mac1_{};
  bool have_last_mac1_ = false;
  Mac cookie_{};
  uint64_t cookie_born_ms_ = 0;
  bool have_cookie_ = false;
};

}  // namespace tether::wg
