#include "tunnel/timers.h"

#include <algorithm>

namespace tether::wg {

uint64_t PeerTimers::jitter() {
  // xorshift64: the jitter only spreads retransmissions of many peers apart.
  rng_ ^= rng_ << 13;
  rng_ ^= rng_ >> 7;
  rng_ ^= rng_ << 17;
  return rng_ % (kRekeyTimeoutJitterMaxMs + 1);
}

void PeerTimers::reset() {
  in_flight_ = false;
  attempts_ = 0;
  last_initiation_ms_ = retransmit_at_ms_ = first_attempt_ms_ = 0;
  last_keepalive_ms_ = session_born_ = 0;
  first_unanswered_send_ms_ = keepalive_for_data_ms_ = 0;
  zeroed_ = false;
}

bool PeerTimers::should_initiate(uint64_t now) const {
  // WireGuard paper §6.4: at most one initiation per REKEY_TIMEOUT.
  return !in_flight_ &&
         (last_initiation_ms_ == 0 || now - last_initiation_ms_ >= cfg_->rekey_timeout_ms);
}

void PeerTimers::initiation_sent(uint64_t now, bool retry) {
  if (!retry || !in_flight_) {
    attempts_ = 0;
    first_attempt_ms_ = now;
  }
  in_flight_ = true;
  ++attempts_;
  last_initiation_ms_ = now;
  // §6.4: retransmit after REKEY_TIMEOUT plus up to a third of a second of jitter.
  retransmit_at_ms_ = now + cfg_->rekey_timeout_ms + jitter();
}

void PeerTimers::handshake_complete(uint64_t) {
  in_flight_ = false;
  attempts_ = 0;
}

TimerActions PeerTimers::poll(const PeerActivity& a, uint64_t now) {
  TimerActions act;
  if (a.session_born > session_born_) {
    session_born_ = a.session_born;
    zeroed_ = false;
  }

  // Retransmission of an unanswered initiation, then giving up (§6.4).
  if (in_flight_ && now >= retransmit_at_ms_) {
    if (attempts_ >= cfg_->max_handshake_attempts()) {
      in_flight_ = false;
      attempts_ = 0;
      act.give_up = true;
    } else {
      initiation_sent(now, true);
      act.send_initiation = true;
    }
  }

  // §6.5: data sent that nothing answered within KEEPALIVE + REKEY_TIMEOUT
  // means the session may be dead: start a new handshake.
  if (a.last_data_sent > a.last_received) {
    if (first_unanswered_send_ms_ == 0 || first_unanswered_send_ms_ <= a.last_received)
      first_unanswered_send_ms_ = std::max(a.last_received + 1, std::min(a.last_data_sent, now));
  } else {
    first_unanswered_send_ms_ = 0;
  }
  bool want_handshake = a.staged || a.rekey_requested;
  if (first_unanswered_send_ms_ &&
      now - first_unanswered_send_ms_ >= cfg_->keepalive_timeout_ms + cfg_->rekey_timeout_ms) {
    want_handshake = true;
    first_unanswered_send_ms_ = 0;  // once per silence; the handshake retries on its own
  }
  if (want_handshake && !act.send_initiation && !act.give_up && a.have_endpoint &&
      should_initiate(now)) {
    initiation_sent(now);
    act.send_initiation = true;
  }

  // §6.5 passive keepalive: data came in and we sent nothing back for
  // KEEPALIVE_TIMEOUT; answer once per such silence.
  if (a.last_data_received > a.last_sent && a.last_data_received != keepalive_for_data_ms_ &&
      now - a.last_data_received >= cfg_->keepalive_timeout_ms) {
    keepalive_for_data_ms_ = a.last_data_received;
    act.send_keepalive = true;
  }
  // Persistent keepalive: nothing went out for that long (wg(8) PersistentKeepalive).
  if (persistent_keepalive_ms_ && a.have_endpoint &&
      now - std::max({a.last_sent, last_keepalive_ms_}) >= persistent_keepalive_ms_)
    act.send_keepalive = true;
  if (act.send_keepalive) last_keepalive_ms_ = now;

  // §6.3: after 3 × REJECT_AFTER_TIME without a new session no key may remain.
  if (a.keys_present && !zeroed_ && session_born_ &&
      now - session_born_ >= 3 * cfg_->reject_after_time_ms) {
    zeroed_ = true;
    act.zero_keys = true;
  }
  return act;
}

}  // namespace tether::wg
