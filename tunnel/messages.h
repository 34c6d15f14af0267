// WireGuard's four message formats on the wire (WireGuard paper §5.4.2-5.4.7).
// Integers are little-endian; every struct is packed and exactly the size the
// protocol gives, so a received UDP payload can be read through it after a
// length check.
#pragma once

#include <cstddef>
#include <cstdint>

#include "tunnel/crypto.h"

namespace tether::wg {

enum MessageType : uint8_t {
  kInitiation = 1,
  kResponse = 2,
  kCookieReply = 3,
  kData = 4,
};

#pragma pack(push, 1)
struct MessageInitiation {
  uint8_t type;  // 1
  uint8_t reserved[3];
  uint32_t sender_index;  // little-endian
  uint8_t ephemeral[kKeyLen];
  uint8_t encrypted_static[kKeyLen + kTagLen];
  uint8_t encrypted_timestamp[kTimestampLen + kTagLen];
  uint8_t mac1[kMacLen];
  uint8_t mac2[kMacLen];
};

struct MessageResponse {
  uint8_t type;  // 2
  uint8_t reserved[3];
  uint32_t sender_index;
  uint32_t receiver_index;
  uint8_t ephemeral[kKeyLen];
  uint8_t encrypted_nothing[kTagLen];
  uint8_t mac1[kMacLen];
  uint8_t mac2[kMacLen];
};

struct MessageCookieReply {
  uint8_t type;  // 3
  uint8_t reserved[3];
  uint32_t receiver_index;
  uint8_t nonce[kXNonceLen];
  uint8_t encrypted_cookie[kMacLen + kTagLen];
};

struct MessageDataHeader {
  uint8_t type;  // 4
  uint8_t reserved[3];
  uint32_t receiver_index;
  uint64_t counter;  // little-endian; the AEAD nonce
  // followed by the encrypted, 16-padded inner packet and its 16-byte tag
};
#pragma pack(pop)

static_assert(sizeof(MessageInitiation) == 148);
static_assert(sizeof(MessageResponse) == 92);
static_assert(sizeof(MessageCookieReply) == 64);
static_assert(sizeof(MessageDataHeader) == 16);

// Bytes a data message adds to the inner packet besides padding.
inline constexpr size_t kDataOverhead = sizeof(MessageDataHeader) + kTagLen;  // 32
// Outer IPv4 + UDP headers around a message.
inline constexpr size_t kOuterIpv4Udp = 20 + 8;

// Offset of mac1 / mac2 in a message that carries them (initiation, response).
template <class M>
constexpr size_t mac1_offset() {
  return sizeof(M) - 2 * kMacLen;
}
template <class M>
constexpr size_t mac2_offset() {
  return sizeof(M) - kMacLen;
}

// The first byte of a message, with the three reserved bytes required zero
// (wireguard-go checks the whole little-endian word).
inline bool message_type(const uint8_t* p, size_t len, uint8_t* type) {
  if (len < 4 || p[1] != 0 || p[2] != 0 || p[3] != 0) return false;
  *type = p[0];
  return true;
}

}  // namespace tether::wg
