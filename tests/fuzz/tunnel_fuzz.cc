// Fuzz harness for the WireGuard handshake parsers (tunnel/noise.h,
// tunnel/cookie.h): everything an arbitrary UDP payload can reach before a
// session exists. Aborts on a crash, a sanitizer report, or a broken
// invariant (a MAC the harness itself stamped failing to verify).
//
// Input: one UDP payload. It is dispatched twice:
//  1. As received: message_type(), then by type and exact length, MAC1 and
//     MAC2 checks, and consume_initiation (responder with one known peer),
//     consume_response (against a pending initiation of ours) or
//     CookieMaker::consume_reply (answering that initiation's mac1).
//  2. As a plausible handshake message: the bytes laid over an initiation and
//     a response (type forced, zero-padded), with a valid mac1 stamped by the
//     harness, so mutations of the Noise fields get past the MAC1 gate.
//
// Keys, ephemerals, indices and timestamp are those of the known-answer test
// (tunnel/tests/wg_reference.py), so the seeds it writes with --seeds
// (tests/fuzz/corpus/tunnel/) are valid messages here.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "tunnel/cookie.h"
#include "tunnel/messages.h"
#include "tunnel/noise.h"

namespace {

using namespace tether::wg;

Key hex_key(const char* h) {
  Key k{};
  for (size_t i = 0; i < k.size(); ++i) std::sscanf(h + 2 * i, "%2hhx", &k[i]);
  return k;
}

// From wg_reference.py: S_I, S_R, E_I, E_R, PSK, indices, TAI64N(1700000000.123456789).
const char* kInitiatorStatic = "b877c1d165ca0a1a96931194ca1b07a45daa88fdfdfeeb6b32a28711eec76e40";
const char* kResponderStatic = "1843971d720d00e82cc327cf0bcdc78cb3ac6475af31581d35789aadd162d078";
const char* kInitiatorEphemeral =
    "c823156b8012b188618f023fb06fef7bd93aa7fe53cfd3512b1260d48951e05d";
const char* kResponderEphemeral =
    "18a44ebd6c82b60a26020e5b06ecddbdc3944e790718d3a3d33c2b3632aa6b45";
const char* kPsk = "10ed8b023a00f5914d5c2021cb88abbcdf8c44171327430814315c6f24e37505";
constexpr uint32_t kInitiatorIndex = 0x11223344;
constexpr uint32_t kResponderIndex = 0xa1b2c3d4;
constexpr Timestamp kTimestamp = {0x40, 0x00, 0x00, 0x00, 0x65, 0x53,
                                  0xf1, 0x0a, 0x07, 0x5b, 0xcd, 0x15};
const uint8_t kSource[6] = {192, 0, 2, 1, 0xca, 0x6c};
constexpr uint64_t kNowMs = 1'000'000;

struct World {
  Identity initiator, responder;
  PeerKeys i_sees_r, r_sees_i;
  Key responder_ephemeral;
  MessageInitiation pending_msg;  // our initiation, mac1 stamped
  HandshakeState pending;         // its state, waiting for a response
};
World* g = nullptr;

void check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "tunnel_fuzz: invariant broken: %s\n", what);
    std::abort();
  }
}

const PeerKeys* find(const Key& pub) {
  return pub == g->initiator.public_key ? &g->r_sees_i : nullptr;
}

// The responder's path for an initiation that passed MAC1.
void respond(const MessageInitiation& m) {
  ConsumedInitiation ci;
  if (!consume_initiation(g->responder, m, find, &ci)) return;
  check(ci.peer == &g->r_sees_i, "consume_initiation returned another peer");
  ci.hs.local_index = kResponderIndex;
  MessageResponse r;
  check(create_response(*ci.peer, &ci.hs, &r, &g->responder_ephemeral),
        "create_response after a good initiation");
  CookieMaker(*ci.peer).add_macs(reinterpret_cast<uint8_t*>(&r), sizeof r, kNowMs);
  check(CookieChecker(g->initiator).check_mac1(reinterpret_cast<uint8_t*>(&r), sizeof r),
        "mac1 of our own response");
  SessionKeys k = derive_keys(&ci.hs, false);
  k.clear();
}

// The initiator's path for a response that passed MAC1.
void complete(const MessageResponse& m) {
  HandshakeState hs = g->pending;
  if (!consume_response(g->initiator, g->i_sees_r, m, &hs)) {
    // A refused response must leave the pending state as it was.
    check(std::memcmp(&hs, &g->pending, sizeof hs) == 0, "failed consume_response changed state");
    return;
  }
  SessionKeys k = derive_keys(&hs, true);
  k.clear();
}

void as_received(const uint8_t* data, size_t size) {
  uint8_t type;
  if (!message_type(data, size, &type)) return;
  Bytes source{kSource};
  if (type == kInitiation && size == sizeof(MessageInitiation)) {
    CookieChecker checker(g->responder);
    if (!checker.check_mac1(data, size)) return;
    // Under load the responder would answer without a good mac2 by a cookie.
    if (!checker.check_mac2(data, size, source, kNowMs)) {
      MessageCookieReply reply;
      MessageInitiation m;
      std::memcpy(&m, data, sizeof m);
      checker.make_reply(data, size, m.sender_index, source, kNowMs, &reply);
      check(reply.type == kCookieReply, "cookie reply built");
    }
    MessageInitiation m;
    std::memcpy(&m, data, sizeof m);
    respond(m);
  } else if (type == kResponse && size == sizeof(MessageResponse)) {
    CookieChecker checker(g->initiator);
    if (!checker.check_mac1(data, size)) return;
    checker.check_mac2(data, size, source, kNowMs);
    MessageResponse m;
    std::memcpy(&m, data, sizeof m);
    complete(m);
  } else if (type == kCookieReply && size == sizeof(MessageCookieReply)) {
    CookieMaker maker(g->i_sees_r);
    MessageInitiation m = g->pending_msg;
    maker.add_macs(reinterpret_cast<uint8_t*>(&m), sizeof m, kNowMs);
    MessageCookieReply reply;
    std::memcpy(&reply, data, sizeof reply);
    if (maker.consume_reply(reply, kNowMs)) {
      // The cookie now goes into mac2 of what we send next.
      maker.add_macs(reinterpret_cast<uint8_t*>(&m), sizeof m, kNowMs + 1);
      check(CookieChecker(g->responder).check_mac1(reinterpret_cast<uint8_t*>(&m), sizeof m),
            "mac1 after a cookie");
    }
  } else if (type == kData && size >= sizeof(MessageDataHeader)) {
    // Data needs a session; only the header is read before the index lookup.
    MessageDataHeader h;
    std::memcpy(&h, data, sizeof h);
    (void)h;
  }
}

void as_plausible(const uint8_t* data, size_t size) {
  {
    MessageInitiation m{};
    std::memcpy(&m, data, std::min(size, mac1_offset<MessageInitiation>()));
    m.type = kInitiation;
    m.reserved[0] = m.reserved[1] = m.reserved[2] = 0;
    CookieMaker(g->i_sees_r).add_macs(reinterpret_cast<uint8_t*>(&m), sizeof m, kNowMs);
    check(CookieChecker(g->responder).check_mac1(reinterpret_cast<uint8_t*>(&m), sizeof m),
          "harness-stamped initiation mac1");
    respond(m);
  }
  {
    MessageResponse m{};
    std::memcpy(&m, data, std::min(size, mac1_offset<MessageResponse>()));
    m.type = kResponse;
    m.reserved[0] = m.reserved[1] = m.reserved[2] = 0;
    CookieMaker(g->r_sees_i).add_macs(reinterpret_cast<uint8_t*>(&m), sizeof m, kNowMs);
    check(CookieChecker(g->initiator).check_mac1(reinterpret_cast<uint8_t*>(&m), sizeof m),
          "harness-stamped response mac1");
    complete(m);
  }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  g = new World;
  g->responder_ephemeral = hex_key(kResponderEphemeral);
  Key ei = hex_key(kInitiatorEphemeral);
  check(Identity::from_private(hex_key(kInitiatorStatic), &g->initiator) &&
            Identity::from_private(hex_key(kResponderStatic), &g->responder) &&
            PeerKeys::make(g->initiator, g->responder.public_key, hex_key(kPsk), &g->i_sees_r) &&
            PeerKeys::make(g->responder, g->initiator.public_key, hex_key(kPsk), &g->r_sees_i),
        "fixed keys");
  check(create_initiation(g->initiator, g->i_sees_r, kInitiatorIndex, kTimestamp, &g->pending_msg,
                          &g->pending, &ei),
        "pending initiation");
  CookieMaker(g->i_sees_r)
      .add_macs(reinterpret_cast<uint8_t*>(&g->pending_msg), sizeof g->pending_msg, kNowMs);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  as_received(data, size);
  as_plausible(data, size);
  return 0;
}
