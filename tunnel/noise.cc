// Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s as WireGuard instantiates it
// (WireGuard paper §5.4.2 initiation, §5.4.3 response, §5.4.5 transport keys).
// Each function works on locals and commits to its outputs only on success, so
// a forged or corrupted message never disturbs a pending handshake.
#include "tunnel/noise.h"

#include <cstring>

namespace tether::wg {
namespace {

constexpr std::string_view kConstruction = "Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s";
constexpr std::string_view kIdentifier = "WireGuard v1 zx2c4 Jason@zx2c4.com";
constexpr std::string_view kLabelMac1 = "mac1----";
constexpr std::string_view kLabelCookie = "cookie--";

Bytes bytes(std::string_view s) { return {reinterpret_cast<const uint8_t*>(s.data()), s.size()}; }
template <size_t N>
Bytes bytes(const uint8_t (&a)[N]) {
  return {a, N};
}
template <size_t N>
Bytes bytes(const std::array<uint8_t, N>& a) {
  return {a.data(), N};
}

// Ci = HASH(CONSTRUCTION) and Hi = HASH(Ci || IDENTIFIER) are the same for
// every handshake (§5.4.2): computed once, on first use (thread-safe static).
struct Initial {
  Hash chaining_key;
  Hash hash;
};
const Initial& initial() {
  static const Initial v = [] {
    Initial i;
    i.chaining_key = blake2s({bytes(kConstruction)});
    i.hash = blake2s({bytes(i.chaining_key), bytes(kIdentifier)});
    return i;
  }();
  return v;
}

void store_le32(uint32_t v, uint32_t* dst) {
  uint8_t b[4] = {uint8_t(v), uint8_t(v >> 8), uint8_t(v >> 16), uint8_t(v >> 24)};
  std::memcpy(dst, b, 4);
}
uint32_t load_le32(const uint32_t* src) {
  uint8_t b[4];
  std::memcpy(b, src, 4);
  return uint32_t(b[0]) | uint32_t(b[1]) << 8 | uint32_t(b[2]) << 16 | uint32_t(b[3]) << 24;
}

bool is_zero(const Key& k) {
  static constexpr Key kZero{};
  return equal_ct(k.data(), kZero.data(), k.size());
}

// H = HASH(H || data)  (the Noise MixHash)
void mix_hash(Hash* h, Bytes data) { *h = blake2s({bytes(*h), data}); }

// C = KDF1(C, input)
void mix_key(Hash* c, Bytes input) {
  Hash t;
  kdf(*c, input, &t);
  *c = t;
  secure_zero(t);
}

// (C, k) = KDF2(C, input)
void mix_key2(Hash* c, Bytes input, Key* k) {
  Hash t;
  kdf(*c, input, &t, k);
  *c = t;
  secure_zero(t);
}

// Scratch secrets of one message; wiped however the function returns.
struct Scratch {
  Hash chaining_key{};
  Hash hash{};
  Key key{};
  Key dh{};
  Key ephemeral_private{};
  Key tau{};
  ~Scratch() { secure_zero(this, sizeof *this); }
};

// WireGuard paper §5.4.3, psk2 (both sides): (C, τ, κ) = KDF3(C, Q);
// H = HASH(H || τ); κ is left in s->key for the empty AEAD.
void mix_psk(Scratch* s, const Key& psk) {
  Hash c;
  kdf(s->chaining_key, bytes(psk), &c, &s->tau, &s->key);
  s->chaining_key = c;
  secure_zero(c);
  mix_hash(&s->hash, bytes(s->tau));
}

}  // namespace

bool Identity::from_private(const Key& private_key, Identity* out) {
  // An all-zero private key means "none configured" in wg(8); refuse it.
  if (is_zero(private_key)) return false;
  Identity id;
  id.private_key = private_key;
  if (!x25519_public(private_key, &id.public_key)) {
    secure_zero(id);
    return false;
  }
  // WireGuard paper §5.4.4: MAC1 and cookie-encryption keys of messages to us.
  id.mac1_key = blake2s({bytes(kLabelMac1), bytes(id.public_key)});
  id.cookie_key = blake2s({bytes(kLabelCookie), bytes(id.public_key)});
  *out = id;
  secure_zero(id);
  return true;
}

bool PeerKeys::make(const Identity& local, const Key& peer_public, const Key& preshared,
                    PeerKeys* out) {
  PeerKeys p;
  p.public_key = peer_public;
  p.preshared_key = preshared;
  // DH(Spriv_local, Spub_peer) never changes; the paper's ss term (§5.4.2)
  // is precomputed so a handshake costs one scalar multiplication less.
  if (!x25519(local.private_key, peer_public, &p.static_static)) {
    secure_zero(p);
    return false;
  }
  p.mac1_key = blake2s({bytes(kLabelMac1), bytes(peer_public)});
  p.cookie_key = blake2s({bytes(kLabelCookie), bytes(peer_public)});
  *out = p;
  secure_zero(p);
  return true;
}

void HandshakeState::clear() {
  static constexpr Key kZero{};
  if (!equal_ct(ephemeral_private.data(), kZero.data(), kKeyLen)) x25519_forget(ephemeral_private);
  secure_zero(this, sizeof *this);
}
void SessionKeys::clear() { secure_zero(this, sizeof *this); }

// WireGuard paper §5.4.2, initiator side.
bool create_initiation(const Identity& local, const PeerKeys& peer, uint32_t local_index,
                       const Timestamp& now, MessageInitiation* out, HandshakeState* hs,
                       const Key* ephemeral) {
  Scratch s;
  MessageInitiation m{};
  m.type = kInitiation;
  store_le32(local_index, &m.sender_index);

  // Ci, Hi from the constants; Hi = HASH(Hi || Spub_r).
  s.chaining_key = initial().chaining_key;
  s.hash = initial().hash;
  mix_hash(&s.hash, bytes(peer.public_key));

  // (Epriv_i, Epub_i) = DH-GENERATE(); Ci = KDF1(Ci, Epub_i); Hi = HASH(Hi || Epub_i).
  s.ephemeral_private = ephemeral ? *ephemeral : x25519_generate();
  Key epub;
  if (!x25519_public(s.ephemeral_private, &epub)) return false;
  std::memcpy(m.ephemeral, epub.data(), kKeyLen);
  mix_key(&s.chaining_key, bytes(m.ephemeral));
  mix_hash(&s.hash, bytes(m.ephemeral));

  // es: (Ci, κ) = KDF2(Ci, DH(Epriv_i, Spub_r)); static = AEAD(κ, 0, Spub_i, Hi).
  if (!x25519(s.ephemeral_private, peer.public_key, &s.dh)) return false;
  mix_key2(&s.chaining_key, bytes(s.dh), &s.key);
  if (!aead_seal(s.key, 0, bytes(s.hash), local.public_key.data(), kKeyLen, m.encrypted_static))
    return false;
  mix_hash(&s.hash, bytes(m.encrypted_static));

  // ss: (Ci, κ) = KDF2(Ci, DH(Spriv_i, Spub_r)), precomputed in PeerKeys;
  // timestamp = AEAD(κ, 0, TAI64N(), Hi).
  mix_key2(&s.chaining_key, bytes(peer.static_static), &s.key);
  if (!aead_seal(s.key, 0, bytes(s.hash), now.data(), kTimestampLen, m.encrypted_timestamp))
    return false;
  mix_hash(&s.hash, bytes(m.encrypted_timestamp));

  // mac1/mac2 stay zero here: CookieMaker::add_macs fills them (§5.4.4).
  *out = m;
  hs->clear();
  hs->hash = s.hash;
  hs->chaining_key = s.chaining_key;
  hs->ephemeral_private = s.ephemeral_private;
  hs->local_index = local_index;
  return true;
}

// WireGuard paper §5.4.2, responder side, in the order the message allows:
// ephemeral → es → decrypt static → find peer → ss → decrypt timestamp.
bool consume_initiation(const Identity& local, const MessageInitiation& msg, const FindPeer& find,
                        ConsumedInitiation* out) {
  if (msg.type != kInitiation || msg.reserved[0] || msg.reserved[1] || msg.reserved[2])
    return false;
  Scratch s;
  s.chaining_key = initial().chaining_key;
  s.hash = initial().hash;
  mix_hash(&s.hash, bytes(local.public_key));

  Key remote_ephemeral;
  std::memcpy(remote_ephemeral.data(), msg.ephemeral, kKeyLen);
  mix_key(&s.chaining_key, bytes(msg.ephemeral));
  mix_hash(&s.hash, bytes(msg.ephemeral));

  // es from our side: DH(Spriv_r, Epub_i). A low-order ephemeral gives zero
  // and is refused by x25519().
  if (!x25519(local.private_key, remote_ephemeral, &s.dh)) return false;
  mix_key2(&s.chaining_key, bytes(s.dh), &s.key);
  Key remote_static;
  if (!aead_open(s.key, 0, bytes(s.hash), msg.encrypted_static, kKeyLen, remote_static.data()))
    return false;
  mix_hash(&s.hash, bytes(msg.encrypted_static));

  // Only now do we know who claims to be talking; everything after this needs
  // the peer's precomputed ss and PSK.
  const PeerKeys* peer = find(remote_static);
  if (!peer || !equal_ct(peer->public_key.data(), remote_static.data(), kKeyLen)) return false;

  mix_key2(&s.chaining_key, bytes(peer->static_static), &s.key);
  Timestamp ts;
  if (!aead_open(s.key, 0, bytes(s.hash), msg.encrypted_timestamp, kTimestampLen, ts.data()))
    return false;
  mix_hash(&s.hash, bytes(msg.encrypted_timestamp));

  out->peer = peer;
  out->timestamp = ts;
  out->hs.clear();
  out->hs.hash = s.hash;
  out->hs.chaining_key = s.chaining_key;
  out->hs.remote_ephemeral = remote_ephemeral;
  out->hs.remote_index = load_le32(&msg.sender_index);
  return true;
}

// WireGuard paper §5.4.3, responder side.
bool create_response(const PeerKeys& peer, HandshakeState* hs, MessageResponse* out,
                     const Key* ephemeral) {
  Scratch s;
  MessageResponse m{};
  m.type = kResponse;
  store_le32(hs->local_index, &m.sender_index);
  store_le32(hs->remote_index, &m.receiver_index);
  s.chaining_key = hs->chaining_key;
  s.hash = hs->hash;

  // (Epriv_r, Epub_r) = DH-GENERATE(); Cr = KDF1(Cr, Epub_r); Hr = HASH(Hr || Epub_r).
  s.ephemeral_private = ephemeral ? *ephemeral : x25519_generate();
  Key epub;
  if (!x25519_public(s.ephemeral_private, &epub)) return false;
  std::memcpy(m.ephemeral, epub.data(), kKeyLen);
  mix_key(&s.chaining_key, bytes(m.ephemeral));
  mix_hash(&s.hash, bytes(m.ephemeral));

  // ee: Cr = KDF1(Cr, DH(Epriv_r, Epub_i)); se: Cr = KDF1(Cr, DH(Epriv_r, Spub_i)).
  if (!x25519(s.ephemeral_private, hs->remote_ephemeral, &s.dh)) return false;
  mix_key(&s.chaining_key, bytes(s.dh));
  if (!x25519(s.ephemeral_private, peer.public_key, &s.dh)) return false;
  mix_key(&s.chaining_key, bytes(s.dh));

  // psk2, then empty = AEAD(κ, 0, ε, Hr); Hr = HASH(Hr || empty).
  mix_psk(&s, peer.preshared_key);
  uint8_t nothing[1] = {};  // ε; a real pointer, as OpenSSL reads a null output as "AAD"
  if (!aead_seal(s.key, 0, bytes(s.hash), nothing, 0, m.encrypted_nothing)) return false;
  mix_hash(&s.hash, bytes(m.encrypted_nothing));

  *out = m;
  // The responder's ephemeral is spent: only C matters from here (§5.4.5).
  hs->hash = s.hash;
  hs->chaining_key = s.chaining_key;
  x25519_forget(hs->ephemeral_private);
  secure_zero(hs->ephemeral_private);
  secure_zero(hs->remote_ephemeral);
  return true;
}

// WireGuard paper §5.4.3, initiator side.
bool consume_response(const Identity& local, const PeerKeys& peer, const MessageResponse& msg,
                      HandshakeState* hs) {
  if (msg.type != kResponse || msg.reserved[0] || msg.reserved[1] || msg.reserved[2]) return false;
  // Only the response to our own initiation (its receiver is our index), and
  // only while that initiation is pending (derive_keys/clear zero the state).
  if (load_le32(&msg.receiver_index) != hs->local_index || is_zero(hs->ephemeral_private))
    return false;
  Scratch s;
  s.chaining_key = hs->chaining_key;
  s.hash = hs->hash;

  Key remote_ephemeral;
  std::memcpy(remote_ephemeral.data(), msg.ephemeral, kKeyLen);
  mix_key(&s.chaining_key, bytes(msg.ephemeral));
  mix_hash(&s.hash, bytes(msg.ephemeral));

  // ee and se from the initiator's side.
  if (!x25519(hs->ephemeral_private, remote_ephemeral, &s.dh)) return false;
  mix_key(&s.chaining_key, bytes(s.dh));
  if (!x25519(local.private_key, remote_ephemeral, &s.dh)) return false;
  mix_key(&s.chaining_key, bytes(s.dh));

  mix_psk(&s, peer.preshared_key);
  // A wrong PSK (or any tampering) fails here.
  uint8_t nothing[1];  // ε; a real pointer, as OpenSSL reads a null output as "AAD"
  if (!aead_open(s.key, 0, bytes(s.hash), msg.encrypted_nothing, 0, nothing)) return false;
  mix_hash(&s.hash, bytes(msg.encrypted_nothing));

  hs->hash = s.hash;
  hs->chaining_key = s.chaining_key;
  hs->remote_ephemeral = remote_ephemeral;
  hs->remote_index = load_le32(&msg.sender_index);
  x25519_forget(hs->ephemeral_private);
  secure_zero(hs->ephemeral_private);
  return true;
}

// WireGuard paper §5.4.5: (T_send_i = T_recv_r, T_recv_i = T_send_r) = KDF2(Ci = Cr, ε).
SessionKeys derive_keys(HandshakeState* hs, bool initiator) {
  SessionKeys k;
  Hash t1, t2;
  kdf(hs->chaining_key, Bytes{}, &t1, &t2);
  k.send = initiator ? t1 : t2;
  k.receive = initiator ? t2 : t1;
  k.local_index = hs->local_index;
  k.remote_index = hs->remote_index;
  k.initiator = initiator;
  secure_zero(t1);
  secure_zero(t2);
  hs->clear();
  return k;
}

}  // namespace tether::wg
