// PeerTimers against a clock the test drives (no sleeping): each rule of
// WireGuard paper §6 fires exactly when due and not before.
#include "tunnel/timers.h"

#include <gtest/gtest.h>

namespace tether::wg {
namespace {

class TimersTest : public ::testing::Test {
 protected:
  TimerConfig cfg;
  PeerTimers timers{&cfg, 12345};
  PeerActivity a;
  uint64_t now = 1'000'000;  // ms; any origin

  TimerActions at(uint64_t t) {
    now = t;
    return timers.poll(a, now);
  }
};

TEST_F(TimersTest, NothingDueWhenIdle) {
  a.have_endpoint = true;
  for (uint64_t t = now; t < now + 600'000; t += 1000) {
    TimerActions act = timers.poll(a, t);
    EXPECT_FALSE(act.send_initiation || act.send_keepalive || act.zero_keys || act.give_up);
  }
}

TEST_F(TimersTest, StagedPacketsStartOneHandshake) {
  a.have_endpoint = true;
  a.staged = true;
  EXPECT_TRUE(at(now).send_initiation);
  EXPECT_TRUE(timers.handshake_in_flight());
  // In flight: no second initiation until the retransmit timer.
  EXPECT_FALSE(at(now + 1000).send_initiation);
  EXPECT_FALSE(at(now + 3000).send_initiation);
}

TEST_F(TimersTest, NoEndpointNoInitiation) {
  a.staged = true;
  EXPECT_FALSE(at(now).send_initiation);
}

TEST_F(TimersTest, RetransmitsWithJitterThenGivesUp) {
  a.have_endpoint = true;
  a.staged = true;
  uint64_t start = now;
  ASSERT_TRUE(at(start).send_initiation);
  // §6.4: REKEY_TIMEOUT (5 s) plus at most 334 ms of jitter.
  EXPECT_FALSE(at(start + cfg.rekey_timeout_ms - 1).send_initiation);
  bool resent = false;
  for (uint64_t t = start + cfg.rekey_timeout_ms; t <= start + cfg.rekey_timeout_ms + 334; ++t)
    if (at(t).send_initiation) {
      resent = true;
      break;
    }
  EXPECT_TRUE(resent);
  EXPECT_EQ(timers.attempts(), 2u);
  // Keep polling: after REKEY_ATTEMPT_TIME / REKEY_TIMEOUT = 18 attempts it gives up.
  bool gave_up = false;
  uint64_t gave_up_at = 0;
  for (uint64_t t = now; t < start + 200'000; t += 10) {
    TimerActions act = at(t);
    if (act.give_up) {
      gave_up = true;
      gave_up_at = t;
      break;
    }
  }
  ASSERT_TRUE(gave_up);
  EXPECT_GE(gave_up_at - start, cfg.rekey_attempt_time_ms);
  EXPECT_LE(gave_up_at - start, cfg.rekey_attempt_time_ms + 18 * 334 + 100);
  EXPECT_FALSE(timers.handshake_in_flight());
}

TEST_F(TimersTest, CompletedHandshakeStopsRetransmits) {
  a.have_endpoint = true;
  a.staged = true;
  ASSERT_TRUE(at(now).send_initiation);
  uint64_t t0 = now;
  timers.handshake_complete(t0 + 100);
  a.staged = false;
  for (uint64_t t = t0 + 100; t < t0 + 30'000; t += 100) EXPECT_FALSE(at(t).send_initiation);
}

TEST_F(TimersTest, PassiveKeepaliveAfterReceivedData) {
  a.have_endpoint = true;
  a.last_data_received = a.last_received = now;
  EXPECT_FALSE(at(now + cfg.keepalive_timeout_ms - 1).send_keepalive);
  EXPECT_TRUE(at(now + cfg.keepalive_timeout_ms).send_keepalive);
  // Once per silence.
  EXPECT_FALSE(at(now + 1000).send_keepalive);
}

TEST_F(TimersTest, NoKeepaliveWhenWeAnswered) {
  a.have_endpoint = true;
  uint64_t t0 = now;
  a.last_data_received = a.last_received = t0;
  a.last_sent = t0 + 5;
  EXPECT_FALSE(at(t0 + 2 * cfg.keepalive_timeout_ms).send_keepalive);
}

TEST_F(TimersTest, UnansweredDataStartsNewHandshake) {
  a.have_endpoint = true;
  uint64_t t0 = now;
  a.last_received = t0 - 1;
  a.last_data_sent = a.last_sent = t0;
  at(t0);
  uint64_t due = t0 + cfg.keepalive_timeout_ms + cfg.rekey_timeout_ms;
  // Data keeps flowing out; the timer counts from the first unanswered send.
  for (uint64_t t = t0 + 10; t < due; t += 10) {
    a.last_data_sent = a.last_sent = t;
    ASSERT_FALSE(at(t).send_initiation) << t - t0;
  }
  EXPECT_TRUE(at(due).send_initiation);
}

TEST_F(TimersTest, AnswerCancelsNewHandshake) {
  a.have_endpoint = true;
  uint64_t t0 = now;
  a.last_data_sent = a.last_sent = t0;
  at(t0);
  a.last_received = t0 + 100;
  EXPECT_FALSE(at(t0 + cfg.keepalive_timeout_ms + cfg.rekey_timeout_ms).send_initiation);
}

TEST_F(TimersTest, PersistentKeepalive) {
  a.have_endpoint = true;
  timers.set_persistent_keepalive(25);
  a.last_sent = now;
  EXPECT_FALSE(at(now + 24'999).send_keepalive);
  EXPECT_TRUE(at(now + 1).send_keepalive);
  EXPECT_FALSE(at(now + 1000).send_keepalive);
  EXPECT_TRUE(at(now + 24'000).send_keepalive);
}

TEST_F(TimersTest, RekeyRequestInitiatesOncePerTimeout) {
  a.have_endpoint = true;
  a.rekey_requested = true;
  EXPECT_TRUE(at(now).send_initiation);
  timers.handshake_complete(now + 10);
  // Still flagged (the send path has not seen the new keys yet): rate limited.
  EXPECT_FALSE(at(now + 100).send_initiation);
  EXPECT_TRUE(at(now + cfg.rekey_timeout_ms).send_initiation);
}

TEST_F(TimersTest, ZeroKeysAfterThreeRejectAfterTime) {
  a.have_endpoint = true;
  a.keys_present = true;
  a.session_born = now;
  uint64_t t0 = now;
  EXPECT_FALSE(at(t0 + 3 * cfg.reject_after_time_ms - 1).zero_keys);
  EXPECT_TRUE(at(t0 + 3 * cfg.reject_after_time_ms).zero_keys);
  EXPECT_FALSE(at(t0 + 3 * cfg.reject_after_time_ms + 10).zero_keys);  // once
  // A new session re-arms it.
  a.session_born = now;
  EXPECT_FALSE(at(now + 1).zero_keys);
  EXPECT_TRUE(at(a.session_born + 3 * cfg.reject_after_time_ms).zero_keys);
}

TEST_F(TimersTest, ResponderWaitsForTheInitiatorsData) {
  a.have_endpoint = true;
  uint64_t t0 = now;
  timers.response_sent(t0);
  a.staged = true;  // our own traffic waits for the session the peer started
  EXPECT_FALSE(at(t0 + 10).send_initiation);
  EXPECT_FALSE(at(t0 + cfg.rekey_timeout_ms - 1).send_initiation);
  EXPECT_TRUE(at(t0 + cfg.rekey_timeout_ms).send_initiation);  // never confirmed: our turn
}

TEST_F(TimersTest, ShortenedTimersForTests) {
  cfg.rekey_timeout_ms = 100;
  cfg.rekey_attempt_time_ms = 1000;
  EXPECT_EQ(cfg.max_handshake_attempts(), 10u);
  a.have_endpoint = true;
  a.staged = true;
  ASSERT_TRUE(at(now).send_initiation);
  EXPECT_TRUE(at(now + 100 + 334).send_initiation);
}

}  // namespace
}  // namespace tether::wg
