// WireGuard's protocol constants (WireGuard paper §6.1, Table 1; §6.2-6.5)
// and the per-peer timer logic, as a pure state machine over timestamps of
// a clock the caller passes in, so unit tests drive time without sleeping.
//
// The data plane's workers record what happened (data sent or received,
// authenticated packets in either direction) as millisecond timestamps; the
// service thread calls PeerTimers::poll with a snapshot of them and acts on
// the answer. The rules are the reference implementations' timers:
// - retransmit an unanswered initiation after REKEY_TIMEOUT plus jitter, and
//   give up after REKEY_ATTEMPT_TIME (§6.4);
// - answer received data with a keepalive when we sent nothing back within
//   KEEPALIVE_TIMEOUT (§6.5, passive keepalive);
// - start a new handshake when data we sent got nothing back within
//   KEEPALIVE_TIMEOUT + REKEY_TIMEOUT (§6.5);
// - send a persistent keepalive after that many seconds without traffic out;
// - zero every key after 3 × REJECT_AFTER_TIME without a new session (§6.3).
#pragma once

#include <cstdint>

namespace tether::wg {

inline constexpr uint64_t kRekeyAfterMessages = uint64_t{1} << 60;
inline constexpr uint64_t kRejectAfterMessages =
    UINT64_MAX - (uint64_t{1} << 13);  // 2^64 - 2^13 - 1
inline constexpr uint32_t kMaxStagedPackets = 128;
inline constexpr uint32_t kInitiationsPerSecond = 50;  // per peer, consumed initiations
inline constexpr uint32_t kRekeyTimeoutJitterMaxMs = 334;

// Durations in milliseconds; the defaults are the protocol's. Tests shorten them.
struct TimerConfig {
  uint64_t rekey_after_time_ms = 120'000;
  uint64_t reject_after_time_ms = 180'000;
  uint64_t rekey_attempt_time_ms = 90'000;
  uint64_t rekey_timeout_ms = 5'000;
  uint64_t keepalive_timeout_ms = 10'000;
  uint64_t rekey_after_messages = kRekeyAfterMessages;
  uint64_t reject_after_messages = kRejectAfterMessages;
  // How many initiations are sent before giving up: REKEY_ATTEMPT_TIME / REKEY_TIMEOUT.
  uint32_t max_handshake_attempts() const {
    return static_cast<uint32_t>(rekey_attempt_time_ms / (rekey_timeout_ms ? rekey_timeout_ms : 1));
  }
};

// What the service thread reads off a peer before asking what is due.
// Timestamps are of the caller's clock; 0 means never.
struct PeerActivity {
  uint64_t last_data_sent = 0;      // a non-keepalive data message went out
  uint64_t last_data_received = 0;  // a non-keepalive data message came in
  uint64_t last_sent = 0;      // any authenticated message went out (incl. keepalives, handshakes)
  uint64_t last_received = 0;  // any authenticated message came in
  uint64_t session_born = 0;   // when the newest session's keys were derived
  bool have_endpoint = false;
  bool keys_present = false;     // some keypair (or handshake state) still holds key material
  bool staged = false;           // packets wait for a session
  bool rekey_requested = false;  // the send path found the current session due for a rekey
};

struct TimerActions {
  bool send_initiation = false;  // a new or retransmitted initiation
  bool send_keepalive = false;
  bool zero_keys = false;  // forget every keypair and handshake
  bool give_up = false;    // stop retrying; drop staged packets
};

class PeerTimers {
 public:
  PeerTimers(const TimerConfig* cfg, uint32_t jitter_seed) : cfg_(cfg), rng_(jitter_seed | 1) {}

  void set_persistent_keepalive(uint32_t seconds) { persistent_keepalive_ms_ = seconds * 1000ull; }

  // What is due at `now`. Records that the returned initiation/keepalive
  // will be sent (call initiation_sent/keepalive_sent only for sends the
  // caller makes on its own, e.g. on first packet).
  TimerActions poll(const PeerActivity& a, uint64_t now);

  // A handshake is wanted now (packets staged, or a rekey): sends one unless
  // one is already in flight or the last went out less than REKEY_TIMEOUT ago.
  bool should_initiate(uint64_t now) const;
  void initiation_sent(uint64_t now, bool retry = false);
  // We answered the peer's initiation: as the reference implementations, a
  // response counts as a handshake sent, so no initiation of ours follows
  // within REKEY_TIMEOUT (the peer's first data confirms the session).
  void response_sent(uint64_t now) { last_initiation_ms_ = now; }
  // The handshake completed (initiator: response consumed; responder: the
  // peer's first data on the new session): stop retransmitting.
  void handshake_complete(uint64_t now);
  // A new session was derived from a handshake (either side).
  void session_derived(uint64_t now) { session_born_ = now; }
  void keepalive_sent(uint64_t now) { last_keepalive_ms_ = now; }
  void reset();

  bool handshake_in_flight() const { return in_flight_; }
  uint32_t attempts() const { return attempts_; }

 private:
  uint64_t jitter();

  const TimerConfig* cfg_;
  uint64_t rng_;
  uint64_t persistent_keepalive_ms_ = 0;
  bool in_flight_ = false;
  uint32_t attempts_ = 0;
  uint64_t last_initiation_ms_ = 0;
  uint64_t retransmit_at_ms_ = 0;
  uint64_t first_attempt_ms_ = 0;
  uint64_t last_keepalive_ms_ = 0;
  uint64_t session_born_ = 0;
  uint64_t first_unanswered_send_ms_ = 0;  // first data sent since we last received anything
  uint64_t keepalive_for_data_ms_ = 0;     // last_data_received we already answered
  bool zeroed_ = false;
};

}  // namespace tether::wg
