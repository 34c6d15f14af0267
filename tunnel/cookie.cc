// MAC1/MAC2 and cookie replies (WireGuard paper §5.3 "Denial of service
// mitigation and cookies", §5.4.4 "Cookie MACs", §5.4.7 "Under load: cookie
// reply message").
#include "tunnel/cookie.h"

#include <cstring>

namespace tether::wg {
namespace {

void store_le32(uint32_t v, uint32_t* dst) {
  uint8_t b[4] = {uint8_t(v), uint8_t(v >> 8), uint8_t(v >> 16), uint8_t(v >> 24)};
  std::memcpy(dst, b, 4);
}

// msg_alpha of §5.4.4: everything before mac1; msg_beta: everything before mac2.
Bytes before_mac1(const uint8_t* msg, size_t len) { return {msg, len - 2 * kMacLen}; }
Bytes before_mac2(const uint8_t* msg, size_t len) { return {msg, len - kMacLen}; }
// Every message carrying MACs ends with mac1 || mac2.
bool long_enough(size_t len) { return len >= 2 * kMacLen; }

}  // namespace

CookieChecker::CookieChecker(const Identity& local)
    : mac1_key_(local.mac1_key), cookie_key_(local.cookie_key) {}

// mac1 = MAC(HASH(LABEL_MAC1 || Spub_m'), msg_alpha) with our own public key:
// proves the sender knows whom it is talking to before we spend a DH on it.
bool CookieChecker::check_mac1(const uint8_t* msg, size_t len) const {
  if (!long_enough(len)) return false;
  Mac mac = blake2s_mac16(mac1_key_, {before_mac1(msg, len)});
  return equal_ct(mac.data(), msg + len - 2 * kMacLen, kMacLen);
}

// mac2 = MAC(τ, msg_beta) where τ is the cookie we would give this source now.
bool CookieChecker::check_mac2(const uint8_t* msg, size_t len, Bytes source, uint64_t now_ms) {
  if (!long_enough(len)) return false;
  Key c = cookie(source, now_ms);
  Mac mac = blake2s_mac16(Bytes{c.data(), kMacLen}, {before_mac2(msg, len)});
  secure_zero(c);
  bool ok = equal_ct(mac.data(), msg + len - kMacLen, kMacLen);
  secure_zero(mac);
  return ok;
}

// §5.4.7: msg.cookie = XAEAD(HASH(LABEL_COOKIE || Spub_m), nonce, τ, M) where
// M is the mac1 of the message being answered, binding the reply to it.
void CookieChecker::make_reply(const uint8_t* msg, size_t len, uint32_t receiver_index,
                               Bytes source, uint64_t now_ms, MessageCookieReply* out) {
  std::memset(out, 0, sizeof *out);
  if (!long_enough(len)) return;  // not a MAC'd message: type stays 0, nothing to send
  MessageCookieReply r{};
  r.type = kCookieReply;
  store_le32(receiver_index, &r.receiver_index);
  random_bytes(r.nonce, sizeof r.nonce);
  Key c = cookie(source, now_ms);
  bool ok = xaead_seal(cookie_key_, r.nonce, Bytes{msg + len - 2 * kMacLen, kMacLen}, c.data(),
                       kMacLen, r.encrypted_cookie);
  secure_zero(c);
  if (ok) *out = r;
}

// τ = MAC(R_m, A_m'): R_m is a random secret replaced every two minutes (§5.3),
// so a cookie is only good for as long as its secret lives. The 16-byte
// cookie sits in the first half of the returned key; the rest is zero.
Key CookieChecker::cookie(Bytes source, uint64_t now_ms) {
  // Unsigned difference: a clock that went backwards also rotates, which
  // only costs the senders one more cookie round trip.
  if (!have_secret_ || now_ms - secret_born_ms_ >= kCookieSecretMaxAgeMs) {
    random_bytes(secret_.data(), secret_.size());
    secret_born_ms_ = now_ms;
    have_secret_ = true;
  }
  Mac tau = blake2s_mac16(secret_, {source});
  Key out{};
  std::memcpy(out.data(), tau.data(), kMacLen);
  secure_zero(tau);
  return out;
}

CookieMaker::CookieMaker(const PeerKeys& peer)
    : mac1_key_(peer.mac1_key), cookie_key_(peer.cookie_key) {}

// §5.4.4: mac1 always; mac2 = MAC(τ, msg_beta) only with a cookie received
// less than two minutes ago, else sixteen zero bytes.
void CookieMaker::add_macs(uint8_t* msg, size_t len, uint64_t now_ms) {
  if (!long_enough(len)) return;
  uint8_t* mac1 = msg + len - 2 * kMacLen;
  uint8_t* mac2 = msg + len - kMacLen;
  last_mac1_ = blake2s_mac16(mac1_key_, {before_mac1(msg, len)});
  std::memcpy(mac1, last_mac1_.data(), kMacLen);
  have_last_mac1_ = true;

  if (have_cookie_ && now_ms - cookie_born_ms_ >= kCookieSecretMaxAgeMs) {
    // The responder has rotated its secret by now: the cookie is worthless.
    secure_zero(cookie_);
    have_cookie_ = false;
  }
  if (have_cookie_) {
    Mac m = blake2s_mac16(Bytes{cookie_.data(), kMacLen}, {before_mac2(msg, len)});
    std::memcpy(mac2, m.data(), kMacLen);
  } else {
    std::memset(mac2, 0, kMacLen);
  }
}

// §5.4.7: the reply decrypts only with the mac1 we last sent as associated
// data, so a reply to anything else (or a forged one) is refused. As the Linux
// driver does, a mac1 answers at most one reply: a replayed reply is refused.
bool CookieMaker::consume_reply(const MessageCookieReply& reply, uint64_t now_ms) {
  if (reply.type != kCookieReply || reply.reserved[0] || reply.reserved[1] || reply.reserved[2] ||
      !have_last_mac1_)
    return false;
  Mac c;
  if (!xaead_open(cookie_key_, reply.nonce, Bytes{last_mac1_.data(), kMacLen},
                  reply.encrypted_cookie, kMacLen, c.data())) {
    secure_zero(c);
    return false;
  }
  cookie_ = c;
  secure_zero(c);
  cookie_born_ms_ = now_ms;
  have_cookie_ = true;
  have_last_mac1_ = false;
  return true;
}

void CookieMaker::clear() {
  secure_zero(last_mac1_);
  secure_zero(cookie_);
  have_last_mac1_ = false;
  have_cookie_ = false;
  cookie_born_ms_ = 0;
}

}  // namespace tether::wg
