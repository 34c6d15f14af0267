// WireGuard's primitives on OpenSSL 3 (WireGuard paper §5.4, "Cryptographic
// primitives"): X25519, ChaCha20-Poly1305 with WireGuard's 64-bit counter
// nonce, XChaCha20-Poly1305 (HChaCha20 + ChaCha20-Poly1305) for cookies,
// BLAKE2s hash, keyed BLAKE2s-128 MAC, HMAC-BLAKE2s and WireGuard's HKDF.
// Everything here is reentrant; Aead holds an OpenSSL context and belongs to
// one thread at a time (each worker owns one).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <span>
#include <string_view>

namespace tether::wg {

inline constexpr size_t kKeyLen = 32;
inline constexpr size_t kHashLen = 32;
inline constexpr size_t kTagLen = 16;   // Poly1305
inline constexpr size_t kMacLen = 16;   // MAC1, MAC2, cookie
inline constexpr size_t kXNonceLen = 24;
inline constexpr size_t kTimestampLen = 12;  // TAI64N

using Key = std::array<uint8_t, kKeyLen>;
using Hash = std::array<uint8_t, kHashLen>;
using Mac = std::array<uint8_t, kMacLen>;
using Timestamp = std::array<uint8_t, kTimestampLen>;
using Bytes = std::span<const uint8_t>;

// Overwrites memory in a way the compiler may not elide (OPENSSL_cleanse).
void secure_zero(void* p, size_t n);
template <class T>
void secure_zero(T& v) {
  secure_zero(&v, sizeof v);
}
// Constant-time equality (CRYPTO_memcmp).
bool equal_ct(const void* a, const void* b, size_t n);
// Cryptographically secure random bytes (RAND_bytes); aborts if the RNG fails.
void random_bytes(void* p, size_t n);

// --- X25519 (RFC 7748) ---
// A fresh private key, clamped as RFC 7748 §5 describes.
Key x25519_generate();
// pub = priv · 9. False only if OpenSSL fails.
bool x25519_public(const Key& priv, Key* pub);
// shared = priv · pub. False when OpenSSL refuses or the result is all zero
// (a low-order point: WireGuard rejects it).
bool x25519(const Key& priv, const Key& pub, Key* shared);
// The two functions above keep the last few private keys they loaded, per
// thread (loading one costs a scalar multiplication); this drops one, as
// when an ephemeral key is spent.
void x25519_forget(const Key& priv);

// --- BLAKE2s (RFC 7693) ---
// HASH(parts...) = BLAKE2s-256 of the concatenation.
Hash blake2s(std::initializer_list<Bytes> parts);
// MAC(key, parts...) = keyed BLAKE2s with a 16-byte output (WireGuard's Mac).
Mac blake2s_mac16(const Key& key, std::initializer_list<Bytes> parts);
// Keyed BLAKE2s-128 with a key of any length 1..32 (cookie: key is 32 bytes).
Mac blake2s_mac16(Bytes key, std::initializer_list<Bytes> parts);
// Keyed BLAKE2s with a key of 1..32 bytes and a digest of out_len 1..32 bytes
// (RFC 7693 §2.5; the length is a parameter, not a truncation). blake2s_mac16
// is out_len 16; this form also serves the reference known-answer tests,
// which use 32-byte digests. False on a key or digest length out of range.
bool blake2s_keyed(Bytes key, std::initializer_list<Bytes> parts, uint8_t* out, size_t out_len);
// HMAC(key, input) with BLAKE2s-256 (RFC 2104, block 64).
Hash hmac_blake2s(Bytes key, Bytes input);
// WireGuard's KDF_n(key, input): n = 1..3 outputs of 32 bytes.
void kdf(const Hash& chaining_key, Bytes input, Hash* t1, Hash* t2 = nullptr, Hash* t3 = nullptr);

// --- ChaCha20-Poly1305 (RFC 8439) with WireGuard's nonce: 32 zero bits
// followed by the 64-bit counter little-endian. ---
class Aead {
 public:
  Aead();
  ~Aead();
  Aead(const Aead&) = delete;
  Aead& operator=(const Aead&) = delete;

  // out gets len bytes of ciphertext followed by the 16-byte tag; out may be
  // in (in place). False only if OpenSSL fails.
  bool seal(const Key& key, uint64_t counter, Bytes aad, const uint8_t* in, size_t len,
            uint8_t* out);
  // in holds len bytes of ciphertext followed by the tag; out gets len bytes
  // of plaintext (may be in). False when the tag does not authenticate.
  bool open(const Key& key, uint64_t counter, Bytes aad, const uint8_t* in, size_t len,
            uint8_t* out);

 private:
  struct Ctx;
  Ctx* ctx_;
};

// One-shot forms with a context per thread (handshakes, cookies, tests).
bool aead_seal(const Key& key, uint64_t counter, Bytes aad, const uint8_t* in, size_t len,
               uint8_t* out);
bool aead_open(const Key& key, uint64_t counter, Bytes aad, const uint8_t* in, size_t len,
               uint8_t* out);

// --- XChaCha20-Poly1305 (draft-irtf-cfrg-xchacha-03) ---
// HChaCha20(key, nonce[0..16)) → subkey (§2.2 of the draft).
Key hchacha20(const Key& key, const uint8_t nonce16[16]);
bool xaead_seal(const Key& key, const uint8_t nonce[kXNonceLen], Bytes aad, const uint8_t* in,
                size_t len, uint8_t* out);
bool xaead_open(const Key& key, const uint8_t nonce[kXNonceLen], Bytes aad, const uint8_t* in,
                size_t len, uint8_t* out);

// --- TAI64N (WireGuard paper §5.1): 8-byte big-endian TAI seconds label
// (2^62 + 10 + unix seconds) and 4-byte big-endian nanoseconds. ---
Timestamp tai64n(uint64_t unix_ns);
Timestamp tai64n_now();

}  // namespace tether::wg
