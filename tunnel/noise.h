// The Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s handshake as WireGuard uses it
// (WireGuard paper §5.4.2-5.4.5): building and consuming the initiation and
// the response, and deriving the transport keys. Pure functions over explicit
// state; the caller (the dataplane's service thread) owns peers, indices,
// timestamps' replay check, rate limits, MACs and cookies (tunnel/cookie.h).
// Ephemerals may be fixed by tests so a handshake is reproducible bit for bit.
#pragma once

#include <cstdint>
#include <functional>

#include "tunnel/crypto.h"
#include "tunnel/messages.h"

namespace tether::wg {

// The local interface's static identity.
struct Identity {
  Key private_key{};
  Key public_key{};
  Hash mac1_key{};    // HASH("mac1----" || public_key): checks MAC1 of messages to us
  Hash cookie_key{};  // HASH("cookie--" || public_key): encrypts our cookie replies
  // Derives the public key and both labels' keys; false if the key is unusable.
  static bool from_private(const Key& private_key, Identity* out);
};

// What one side knows of a peer; immutable while the peer's config is.
struct PeerKeys {
  Key public_key{};
  Key preshared_key{};  // all zero when the peer has none (Noise's psk = 0^32)
  Key static_static{};  // DH(our private, peer public), computed once
  Hash mac1_key{};      // HASH("mac1----" || peer public): MAC1 of messages we send it
  Hash cookie_key{};    // HASH("cookie--" || peer public): decrypts its cookie replies
  // False when the peer's public key gives an all-zero static-static DH.
  static bool make(const Identity& local, const Key& peer_public, const Key& preshared,
                   PeerKeys* out);
};

// One side's state between the two handshake messages.
struct HandshakeState {
  Hash hash{};
  Hash chaining_key{};
  Key ephemeral_private{};
  Key remote_ephemeral{};
  uint32_t local_index = 0;   // as chosen by us, host order
  uint32_t remote_index = 0;  // as chosen by the peer, host order
  void clear();               // secure_zero of everything
};

// Transport keys of one session (a keypair in the paper's words).
struct SessionKeys {
  Key send{};
  Key receive{};
  uint32_t local_index = 0;
  uint32_t remote_index = 0;
  bool initiator = false;
  void clear();
};

// --- Initiator ---
// Builds an initiation to `peer` (all fields but mac1/mac2, which
// CookieMaker::add_macs fills) and the state to consume its response.
// `ephemeral` fixes the ephemeral private key (tests); null draws a fresh one.
bool create_initiation(const Identity& local, const PeerKeys& peer, uint32_t local_index,
                       const Timestamp& now, MessageInitiation* out, HandshakeState* hs,
                       const Key* ephemeral = nullptr);

// Consumes the response to the initiation `hs` was made for. On success `hs`
// is ready for derive_keys(initiator = true). MACs are checked by the caller.
bool consume_response(const Identity& local, const PeerKeys& peer, const MessageResponse& msg,
                      HandshakeState* hs);

// --- Responder ---
struct ConsumedInitiation {
  const PeerKeys* peer = nullptr;  // what find() returned
  Timestamp timestamp{};           // decrypted TAI64N; the caller checks it grows
  HandshakeState hs;               // remote_index and remote_ephemeral set
};
using FindPeer = std::function<const PeerKeys*(const Key& public_key)>;

// Decrypts the initiator's static key, looks it up with find(), then
// authenticates the timestamp. False on any failure (unknown peer included).
bool consume_initiation(const Identity& local, const MessageInitiation& msg, const FindPeer& find,
                        ConsumedInitiation* out);

// Builds the response (all fields but mac1/mac2) to a consumed initiation;
// `hs` must carry local_index. On success `hs` is ready for
// derive_keys(initiator = false).
bool create_response(const PeerKeys& peer, HandshakeState* hs, MessageResponse* out,
                     const Key* ephemeral = nullptr);

// --- Both ---
// (T_send, T_recv) = KDF2(C, ε) in the initiator's order, swapped for the
// responder; zeroes `hs`.
SessionKeys derive_keys(HandshakeState* hs, bool initiator);

}  // namespace tether::wg
