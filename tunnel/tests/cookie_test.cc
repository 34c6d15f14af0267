// MAC1/MAC2 and cookie replies (tunnel/cookie.h; WireGuard paper §5.3,
// §5.4.4, §5.4.7) under a driven millisecond clock. The known answer for a
// reference cookie reply is CookieKat in noise_test.cc, beside its vectors.
#include "tunnel/cookie.h"

#include <gtest/gtest.h>

#include <cstring>

namespace tether::wg {
namespace {

struct Sides {
  Identity i, r;
  PeerKeys i_sees_r{};
  Sides() {
    EXPECT_TRUE(Identity::from_private(x25519_generate(), &i));
    EXPECT_TRUE(Identity::from_private(x25519_generate(), &r));
    EXPECT_TRUE(PeerKeys::make(i, r.public_key, Key{}, &i_sees_r));
  }
};

// IPv4 address and port, network order, as the dataplane passes them.
const uint8_t kSrcA[6] = {192, 0, 2, 1, 0xca, 0x6c};
const uint8_t kSrcB[6] = {192, 0, 2, 2, 0xca, 0x6c};  // other address
const uint8_t kSrcC[6] = {192, 0, 2, 1, 0xca, 0x6d};  // same address, other port

MessageInitiation initiation(const Sides& s, uint32_t index = 7) {
  MessageInitiation m;
  HandshakeState hs;
  EXPECT_TRUE(create_initiation(s.i, s.i_sees_r, index, tai64n_now(), &m, &hs));
  return m;
}

uint8_t* raw(MessageInitiation& m) { return reinterpret_cast<uint8_t*>(&m); }
bool mac2_zero(const MessageInitiation& m) {
  static const uint8_t zero[kMacLen] = {};
  return std::memcmp(m.mac2, zero, kMacLen) == 0;
}

// The responder hands the initiator a cookie for kSrcA at `t`; returns a
// message stamped with it at `t`.
MessageInitiation with_cookie(const Sides& s, CookieChecker& rc, CookieMaker& maker, uint64_t t) {
  MessageInitiation m = initiation(s);
  maker.add_macs(raw(m), sizeof m, t);
  EXPECT_TRUE(rc.check_mac1(raw(m), sizeof m));
  MessageCookieReply reply;
  rc.make_reply(raw(m), sizeof m, m.sender_index, Bytes{kSrcA}, t, &reply);
  EXPECT_TRUE(maker.consume_reply(reply, t));
  maker.add_macs(raw(m), sizeof m, t);
  return m;
}

TEST(CookieMacs, Mac1RoundTrip) {
  Sides s;
  CookieChecker rc(s.r);
  CookieMaker maker(s.i_sees_r);
  MessageInitiation m = initiation(s);
  EXPECT_FALSE(rc.check_mac1(raw(m), sizeof m));  // create_initiation leaves MACs zero
  maker.add_macs(raw(m), sizeof m, 0);
  EXPECT_TRUE(rc.check_mac1(raw(m), sizeof m));
  EXPECT_TRUE(mac2_zero(m));
  // Another responder's checker, a truncated message, a flipped bit: no.
  Sides other;
  EXPECT_FALSE(CookieChecker(other.r).check_mac1(raw(m), sizeof m));
  EXPECT_FALSE(rc.check_mac1(raw(m), sizeof m - 1));
  EXPECT_FALSE(rc.check_mac1(raw(m), 0));
  m.ephemeral[3] ^= 1;
  EXPECT_FALSE(rc.check_mac1(raw(m), sizeof m));
}

TEST(CookieMacs, Mac2AbsentFails) {
  Sides s;
  CookieChecker rc(s.r);
  CookieMaker maker(s.i_sees_r);
  MessageInitiation m = initiation(s);
  maker.add_macs(raw(m), sizeof m, 5);
  ASSERT_TRUE(mac2_zero(m));
  EXPECT_FALSE(rc.check_mac2(raw(m), sizeof m, Bytes{kSrcA}, 5));
  EXPECT_FALSE(rc.check_mac2(raw(m), 8, Bytes{kSrcA}, 5));
}

TEST(CookieReply, RoundTripBindsSource) {
  Sides s;
  CookieChecker rc(s.r);
  CookieMaker maker(s.i_sees_r);
  MessageInitiation m = initiation(s, 0x0a0b0c0d);
  maker.add_macs(raw(m), sizeof m, 1000);
  MessageCookieReply reply;
  rc.make_reply(raw(m), sizeof m, 0x0a0b0c0d, Bytes{kSrcA}, 1000, &reply);
  EXPECT_EQ(reply.type, kCookieReply);
  EXPECT_EQ(0, reply.reserved[0] | reply.reserved[1] | reply.reserved[2]);
  const uint8_t le[4] = {0x0d, 0x0c, 0x0b, 0x0a};
  EXPECT_EQ(0, std::memcmp(&reply.receiver_index, le, 4));
  ASSERT_TRUE(maker.consume_reply(reply, 1000));

  maker.add_macs(raw(m), sizeof m, 1500);
  EXPECT_FALSE(mac2_zero(m));
  EXPECT_TRUE(rc.check_mac1(raw(m), sizeof m));
  EXPECT_TRUE(rc.check_mac2(raw(m), sizeof m, Bytes{kSrcA}, 1500));
  EXPECT_FALSE(rc.check_mac2(raw(m), sizeof m, Bytes{kSrcB}, 1500));
  EXPECT_FALSE(rc.check_mac2(raw(m), sizeof m, Bytes{kSrcC}, 1500));
  // mac2 covers everything before it, mac1 included.
  MessageInitiation t = m;
  t.mac1[0] ^= 1;
  EXPECT_FALSE(rc.check_mac2(raw(t), sizeof t, Bytes{kSrcA}, 1500));
  t = m;
  t.mac2[15] ^= 1;
  EXPECT_FALSE(rc.check_mac2(raw(t), sizeof t, Bytes{kSrcA}, 1500));

  // The cookie keeps working for other messages from the same source,
  // responses included.
  MessageResponse resp{};
  resp.type = kResponse;
  maker.add_macs(reinterpret_cast<uint8_t*>(&resp), sizeof resp, 2000);
  EXPECT_TRUE(rc.check_mac1(reinterpret_cast<uint8_t*>(&resp), sizeof resp));
  EXPECT_TRUE(rc.check_mac2(reinterpret_cast<uint8_t*>(&resp), sizeof resp, Bytes{kSrcA}, 2000));
}

TEST(CookieReply, CookieExpiresAfterTwoMinutes) {
  Sides s;
  CookieChecker rc(s.r);
  CookieMaker maker(s.i_sees_r);
  const uint64_t t0 = 10'000;
  MessageInitiation m = with_cookie(s, rc, maker, t0);
  maker.add_macs(raw(m), sizeof m, t0 + kCookieSecretMaxAgeMs - 1);
  EXPECT_FALSE(mac2_zero(m));
  EXPECT_TRUE(rc.check_mac2(raw(m), sizeof m, Bytes{kSrcA}, t0 + kCookieSecretMaxAgeMs - 1));
  // 120 s after it was received the initiator stops using it.
  maker.add_macs(raw(m), sizeof m, t0 + kCookieSecretMaxAgeMs);
  EXPECT_TRUE(mac2_zero(m));
  EXPECT_FALSE(rc.check_mac2(raw(m), sizeof m, Bytes{kSrcA}, t0 + kCookieSecretMaxAgeMs));
  // And does not resurrect it later.
  maker.add_macs(raw(m), sizeof m, t0 + 1);
  EXPECT_TRUE(mac2_zero(m));
}

TEST(CookieReply, SecretRotationInvalidatesOldCookies) {
  Sides s;
  CookieChecker rc(s.r);
  CookieMaker maker(s.i_sees_r);
  // The responder's secret is born at t = 0 ...
  MessageInitiation first = initiation(s);
  EXPECT_FALSE(rc.check_mac2(raw(first), sizeof first, Bytes{kSrcB}, 0));
  // ... and hands out a cookie at 100 s, still under that secret.
  MessageInitiation m = with_cookie(s, rc, maker, 100'000);
  EXPECT_TRUE(rc.check_mac2(raw(m), sizeof m, Bytes{kSrcA}, 119'999));
  // At 120 s the secret rotates: the initiator's 20 s old cookie is now void.
  maker.add_macs(raw(m), sizeof m, 120'000);
  EXPECT_FALSE(mac2_zero(m));
  EXPECT_FALSE(rc.check_mac2(raw(m), sizeof m, Bytes{kSrcA}, 120'000));
  // A fresh reply under the new secret works again.
  MessageInitiation n = with_cookie(s, rc, maker, 121'000);
  EXPECT_TRUE(rc.check_mac2(raw(n), sizeof n, Bytes{kSrcA}, 121'000));
}

TEST(CookieReply, ForgedOrTamperedReplyRefused) {
  Sides s;
  CookieChecker rc(s.r);
  CookieMaker maker(s.i_sees_r);
  MessageInitiation m = initiation(s);
  MessageCookieReply reply;
  rc.make_reply(raw(m), sizeof m, 7, Bytes{kSrcA}, 0, &reply);
  // Nothing stamped yet: there is no mac1 a reply could answer.
  EXPECT_FALSE(maker.consume_reply(reply, 0));

  maker.add_macs(raw(m), sizeof m, 0);
  rc.make_reply(raw(m), sizeof m, 7, Bytes{kSrcA}, 0, &reply);
  for (size_t i = 0; i < sizeof reply; ++i) {
    if (i >= 4 && i < 8) continue;  // receiver_index: the caller's routing, not authenticated
    MessageCookieReply t = reply;
    reinterpret_cast<uint8_t*>(&t)[i] ^= 0x20;
    EXPECT_FALSE(maker.consume_reply(t, 0)) << i;
  }
  MessageCookieReply forged = reply;
  random_bytes(forged.encrypted_cookie, sizeof forged.encrypted_cookie);
  EXPECT_FALSE(maker.consume_reply(forged, 0));

  // A reply from another responder (other cookie key) does not decrypt.
  Sides other;
  CookieChecker oc(other.r);
  MessageCookieReply foreign;
  oc.make_reply(raw(m), sizeof m, 7, Bytes{kSrcA}, 0, &foreign);
  EXPECT_FALSE(maker.consume_reply(foreign, 0));

  // A reply to an earlier message (its mac1 is the AAD) is stale.
  MessageInitiation m2 = initiation(s);
  maker.add_macs(raw(m2), sizeof m2, 0);
  EXPECT_FALSE(maker.consume_reply(reply, 0));

  // The genuine reply to the latest message is taken once, not replayed.
  rc.make_reply(raw(m2), sizeof m2, 7, Bytes{kSrcA}, 0, &reply);
  EXPECT_TRUE(maker.consume_reply(reply, 0));
  EXPECT_FALSE(maker.consume_reply(reply, 0));

  // None of the refused replies installed a cookie before the good one.
  maker.add_macs(raw(m2), sizeof m2, 1);
  EXPECT_TRUE(rc.check_mac2(raw(m2), sizeof m2, Bytes{kSrcA}, 1));
}

TEST(CookieReply, ClearForgetsCookie) {
  Sides s;
  CookieChecker rc(s.r);
  CookieMaker maker(s.i_sees_r);
  MessageInitiation m = with_cookie(s, rc, maker, 0);
  EXPECT_FALSE(mac2_zero(m));
  maker.clear();
  maker.add_macs(raw(m), sizeof m, 1);
  EXPECT_TRUE(mac2_zero(m));
  EXPECT_TRUE(rc.check_mac1(raw(m), sizeof m));  // MAC1 still works after clear()
}

TEST(CookieReply, NonceIsFreshPerReply) {
  Sides s;
  CookieChecker rc(s.r);
  MessageInitiation m = initiation(s);
  MessageCookieReply a, b;
  rc.make_reply(raw(m), sizeof m, 7, Bytes{kSrcA}, 0, &a);
  rc.make_reply(raw(m), sizeof m, 7, Bytes{kSrcA}, 0, &b);
  EXPECT_NE(0, std::memcmp(a.nonce, b.nonce, kXNonceLen));
  EXPECT_NE(0, std::memcmp(a.encrypted_cookie, b.encrypted_cookie, sizeof a.encrypted_cookie));
}

}  // namespace
}  // namespace tether::wg
