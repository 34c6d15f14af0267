// WireGuard's primitives on OpenSSL 3 (see crypto.h). Algorithms are fetched
// once and cached for the life of the process: a fetch walks the provider
// store under a lock, far too slow for a per-packet path. The cached objects
// are never freed on purpose: OpenSSL tears its providers down from an atexit
// handler, and freeing after that (from a static destructor) would crash.
#include "tunnel/crypto.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/rand.h>
#include <time.h>

#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace tether::wg {

namespace {

// These functions have no error channel (a MAC or hash that "failed" and
// returned zeros would compare equal to an attacker's zeros), and OpenSSL only
// fails here on allocation failure or a broken installation: stop loudly.
[[noreturn]] void fatal(const char* what) {
  std::fprintf(stderr, "tether::wg crypto: %s failed\n", what);
  std::abort();
}

const EVP_MD* blake2s_md() {
  static EVP_MD* md = [] {
    EVP_MD* m = EVP_MD_fetch(nullptr, "BLAKE2S-256", nullptr);
    if (m == nullptr) fatal("EVP_MD_fetch(BLAKE2S-256)");
    return m;
  }();
  return md;
}

EVP_MAC* blake2s_mac() {
  static EVP_MAC* mac = [] {
    EVP_MAC* m = EVP_MAC_fetch(nullptr, "BLAKE2SMAC", nullptr);
    if (m == nullptr) fatal("EVP_MAC_fetch(BLAKE2SMAC)");
    return m;
  }();
  return mac;
}

const EVP_CIPHER* chacha20_poly1305() {
  static EVP_CIPHER* c = [] {
    EVP_CIPHER* p = EVP_CIPHER_fetch(nullptr, "ChaCha20-Poly1305", nullptr);
    if (p == nullptr) fatal("EVP_CIPHER_fetch(ChaCha20-Poly1305)");
    return p;
  }();
  return c;
}

// One digest and one MAC context per thread, reinitialised per call, so that
// hashing (a handshake does dozens, and MAC1 is checked on every handshake
// packet, flood or not) allocates nothing.
struct HashCtx {
  EVP_MD_CTX* md = EVP_MD_CTX_new();
  EVP_MAC_CTX* mac = EVP_MAC_CTX_new(blake2s_mac());
  HashCtx() {
    if (md == nullptr || mac == nullptr) fatal("EVP_MD_CTX_new/EVP_MAC_CTX_new");
  }
  ~HashCtx() {
    EVP_MD_CTX_free(md);
    EVP_MAC_CTX_free(mac);  // cleanses the key it holds
  }
  HashCtx(const HashCtx&) = delete;
  HashCtx& operator=(const HashCtx&) = delete;
};

HashCtx& hash_ctx() {
  thread_local HashCtx ctx;
  return ctx;
}

void blake2s_into(std::initializer_list<Bytes> parts, uint8_t out[kHashLen]) {
  EVP_MD_CTX* ctx = hash_ctx().md;
  if (EVP_DigestInit_ex2(ctx, blake2s_md(), nullptr) != 1) fatal("EVP_DigestInit_ex2");
  for (Bytes p : parts) {
    if (!p.empty() && EVP_DigestUpdate(ctx, p.data(), p.size()) != 1) fatal("EVP_DigestUpdate");
  }
  unsigned int n = 0;
  if (EVP_DigestFinal_ex(ctx, out, &n) != 1 || n != kHashLen) fatal("EVP_DigestFinal_ex");
}

inline uint32_t load_le32(const uint8_t* p) {
  return uint32_t{p[0]} | uint32_t{p[1]} << 8 | uint32_t{p[2]} << 16 | uint32_t{p[3]} << 24;
}
inline void store_le32(uint8_t* p, uint32_t v) {
  p[0] = uint8_t(v);
  p[1] = uint8_t(v >> 8);
  p[2] = uint8_t(v >> 16);
  p[3] = uint8_t(v >> 24);
}
inline uint64_t load_le64(const uint8_t* p) {
  return uint64_t{load_le32(p)} | uint64_t{load_le32(p + 4)} << 32;
}
inline uint32_t rotl(uint32_t v, int n) { return v << n | v >> (32 - n); }

// RFC 8439 §2.1.
inline void quarter_round(uint32_t* x, int a, int b, int c, int d) {
  x[a] += x[b];
  x[d] = rotl(x[d] ^ x[a], 16);
  x[c] += x[d];
  x[b] = rotl(x[b] ^ x[c], 12);
  x[a] += x[b];
  x[d] = rotl(x[d] ^ x[a], 8);
  x[c] += x[d];
  x[b] = rotl(x[b] ^ x[c], 7);
}

}  // namespace

void secure_zero(void* p, size_t n) { OPENSSL_cleanse(p, n); }

bool equal_ct(const void* a, const void* b, size_t n) { return CRYPTO_memcmp(a, b, n) == 0; }

void random_bytes(void* p, size_t n) {
  auto* b = static_cast<unsigned char*>(p);
  while (n > 0) {
    int chunk = n > INT_MAX ? INT_MAX : int(n);
    if (RAND_bytes(b, chunk) != 1) fatal("RAND_bytes");
    b += chunk;
    n -= size_t(chunk);
  }
}

// --- X25519 ---

Key x25519_generate() {
  Key k;
  random_bytes(k.data(), k.size());
  // RFC 7748 §5 decodeScalar25519: clear the cofactor bits, set bit 254.
  // OpenSSL clamps internally as well; clamping the stored key makes it the
  // same bytes `wg genkey` would print.
  k[0] &= 248;
  k[31] &= 127;
  k[31] |= 64;
  return k;
}

namespace {

// OpenSSL derives the public key whenever it loads a raw private key: a
// second scalar multiplication for every DH. A handshake uses each private
// key more than once (the static for every handshake, an ephemeral for ee
// and se), so each thread keeps its last few loaded keys. Entries are freed
// (and cleansed by OpenSSL) when evicted, forgotten, or at thread exit.
// Loads a private key for derive only. EVP_PKEY_new_raw_private_key would
// also compute its public key, with OpenSSL's portable fixed-base code
// (slower than the assembler ladder a derive uses); given any public value
// alongside, OpenSSL takes it as it is, and derive never reads it.
// x25519_public computes the real one as a derive with the base point.
EVP_PKEY* load_private(const Key& priv) {
  struct FromData {
    EVP_PKEY_CTX* ctx = EVP_PKEY_CTX_new_from_name(nullptr, "X25519", nullptr);
    FromData() {
      if (!ctx || EVP_PKEY_fromdata_init(ctx) != 1) fatal("EVP_PKEY_fromdata_init(X25519)");
    }
    ~FromData() { EVP_PKEY_CTX_free(ctx); }
  };
  thread_local FromData from;
  static const Key kPlaceholder{9};
  Key p = priv;
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PRIV_KEY, p.data(), p.size()),
      OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY,
                                        const_cast<uint8_t*>(kPlaceholder.data()), kKeyLen),
      OSSL_PARAM_construct_end()};
  EVP_PKEY* pk = nullptr;
  bool ok = EVP_PKEY_fromdata(from.ctx, &pk, EVP_PKEY_KEYPAIR, params) == 1;
  secure_zero(p);
  return ok ? pk : nullptr;
}

class PrivateKeyCache {
 public:
  ~PrivateKeyCache() {
    for (auto& e : entries_) drop(e);
  }
  // The loaded key and a derive context initialised for it; null on failure.
  EVP_PKEY_CTX* get(const Key& priv, EVP_PKEY** pkey = nullptr) {
    Entry* hit = nullptr;
    for (auto& e : entries_)
      if (e.pkey && equal_ct(e.priv.data(), priv.data(), kKeyLen)) hit = &e;
    if (!hit) {
      EVP_PKEY* pk = load_private(priv);
      if (!pk) return nullptr;
      EVP_PKEY_CTX* ctx = EVP_PKEY_CTX_new_from_pkey(nullptr, pk, nullptr);
      if (!ctx || EVP_PKEY_derive_init(ctx) != 1) {
        EVP_PKEY_CTX_free(ctx);
        EVP_PKEY_free(pk);
        return nullptr;
      }
      hit = &entries_[0];  // an empty entry, else the least recently used
      for (auto& e : entries_)
        if (e.used < hit->used) hit = &e;
      drop(*hit);
      hit->pkey = pk;
      hit->ctx = ctx;
      hit->priv = priv;
    }
    hit->used = ++clock_;
    if (pkey) *pkey = hit->pkey;
    return hit->ctx;
  }
  void forget(const Key& priv) {
    for (auto& e : entries_)
      if (e.pkey && equal_ct(e.priv.data(), priv.data(), kKeyLen)) drop(e);
  }

 private:
  static constexpr size_t kEntries = 4;
  struct Entry {
    EVP_PKEY* pkey = nullptr;
    EVP_PKEY_CTX* ctx = nullptr;
    Key priv{};
    uint64_t used = 0;
  };
  static void drop(Entry& e) {
    EVP_PKEY_CTX_free(e.ctx);
    if (e.pkey) EVP_PKEY_free(e.pkey);  // cleanses the private key
    e.ctx = nullptr;
    e.pkey = nullptr;
    secure_zero(e.priv);
    e.used = 0;
  }
  Entry entries_[kEntries];
  uint64_t clock_ = 0;
};

// Public keys are loaded again and again too: the initiator's ephemeral for
// es and ee, a peer's static for every handshake with it. Not secret.
class PublicKeyCache {
 public:
  ~PublicKeyCache() {
    for (auto& e : entries_) EVP_PKEY_free(e.pkey);
  }
  EVP_PKEY* get(const Key& pub) {
    Entry* hit = nullptr;
    for (auto& e : entries_)
      if (e.pkey && e.pub == pub) hit = &e;
    if (!hit) {
      EVP_PKEY* pk = EVP_PKEY_new_raw_public_key(EVP_PKEY_X25519, nullptr, pub.data(), pub.size());
      if (!pk) return nullptr;
      hit = &entries_[0];
      for (auto& e : entries_)
        if (e.used < hit->used) hit = &e;
      EVP_PKEY_free(hit->pkey);
      hit->pkey = pk;
      hit->pub = pub;
    }
    hit->used = ++clock_;
    return hit->pkey;
  }

 private:
  struct Entry {
    EVP_PKEY* pkey = nullptr;
    Key pub{};
    uint64_t used = 0;
  };
  Entry entries_[8];
  uint64_t clock_ = 0;
};

thread_local PrivateKeyCache t_keys;
thread_local PublicKeyCache t_public_keys;

}  // namespace

void x25519_forget(const Key& priv) { t_keys.forget(priv); }

bool x25519_public(const Key& priv, Key* pub) {
  static const Key kBasePoint{9};  // RFC 7748 §4.1: u = 9
  // The base point is not low order: a zero result cannot happen for a
  // clamped scalar, so x25519() fails only if OpenSSL does.
  return x25519(priv, kBasePoint, pub);
}

bool x25519(const Key& priv, const Key& pub, Key* shared) {
  EVP_PKEY_CTX* ctx = t_keys.get(priv);
  EVP_PKEY* theirs = t_public_keys.get(pub);
  size_t n = shared->size();
  // validate_peer = 0: an X25519 public key has no structure to check, and
  // the check would cost another context allocation. The all-zero test
  // below is the check that matters (RFC 7748 §6.1). The context keeps its
  // derive_init; each call sets the peer anew.
  bool ok = theirs != nullptr && ctx != nullptr &&
            EVP_PKEY_derive_set_peer_ex(ctx, theirs, 0) == 1 &&
            EVP_PKEY_derive(ctx, shared->data(), &n) == 1 && n == kKeyLen;
  // A low-order public key gives an all-zero secret whatever our private key;
  // WireGuard must refuse it (RFC 7748 §6.1, WireGuard paper §5.4). OpenSSL
  // already fails the derive in that case; test again so the contract does
  // not rest on that.
  static constexpr Key kZero{};
  if (ok && equal_ct(shared->data(), kZero.data(), kKeyLen)) ok = false;
  if (!ok) {
    secure_zero(*shared);
    // A refused peer key is routine (any handshake may carry one); leave no
    // error on this thread's queue for unrelated OpenSSL callers to find.
    ERR_clear_error();
  }
  return ok;
}

// --- BLAKE2s ---

Hash blake2s(std::initializer_list<Bytes> parts) {
  Hash h;
  blake2s_into(parts, h.data());
  return h;
}

bool blake2s_keyed(Bytes key, std::initializer_list<Bytes> parts, uint8_t* out, size_t out_len) {
  if (key.empty() || key.size() > 32 || out_len < 1 || out_len > 32) return false;
  EVP_MAC_CTX* ctx = hash_ctx().mac;
  // RFC 7693 §2.5: the digest length is a parameter of the hash (it is mixed
  // into the initial state), not a truncation, so set it before the key.
  size_t size = out_len;
  OSSL_PARAM params[] = {OSSL_PARAM_construct_size_t(OSSL_MAC_PARAM_SIZE, &size),
                         OSSL_PARAM_construct_end()};
  if (EVP_MAC_init(ctx, key.data(), key.size(), params) != 1) fatal("EVP_MAC_init(BLAKE2SMAC)");
  for (Bytes p : parts) {
    if (!p.empty() && EVP_MAC_update(ctx, p.data(), p.size()) != 1) fatal("EVP_MAC_update");
  }
  size_t n = 0;
  if (EVP_MAC_final(ctx, out, &n, out_len) != 1 || n != out_len) fatal("EVP_MAC_final");
  return true;
}

Mac blake2s_mac16(const Key& key, std::initializer_list<Bytes> parts) {
  return blake2s_mac16(Bytes(key), parts);
}

Mac blake2s_mac16(Bytes key, std::initializer_list<Bytes> parts) {
  Mac m;
  // A wrong key length is a programming error; returning a predictable MAC
  // instead would let forged packets through.
  if (!blake2s_keyed(key, parts, m.data(), m.size())) fatal("blake2s_mac16: key length");
  return m;
}

// RFC 2104 on BLAKE2s-256 with its 64-byte block, as WireGuard defines HMAC
// (WireGuard paper §5.4). Two hashes on the per-thread context: cheaper than
// OpenSSL's HMAC, which keeps three digest contexts.
Hash hmac_blake2s(Bytes key, Bytes input) {
  constexpr size_t kBlock = 64;
  uint8_t k[kBlock] = {};
  if (key.size() > kBlock) {
    blake2s_into({key}, k);
  } else if (!key.empty()) {
    std::memcpy(k, key.data(), key.size());
  }
  uint8_t pad[kBlock];
  for (size_t i = 0; i < kBlock; ++i) pad[i] = k[i] ^ 0x36;
  Hash inner;
  blake2s_into({Bytes(pad), input}, inner.data());
  for (size_t i = 0; i < kBlock; ++i) pad[i] = k[i] ^ 0x5c;
  Hash out;
  blake2s_into({Bytes(pad), Bytes(inner)}, out.data());
  secure_zero(k, sizeof k);
  secure_zero(pad, sizeof pad);
  secure_zero(inner);
  return out;
}

// WireGuard paper §5.4 KDF_n: HKDF (RFC 5869) with the chaining key as salt
// and empty info. Outputs go through locals so that t1 may alias
// chaining_key, as in kdf(ck, dh, &ck, &key).
void kdf(const Hash& chaining_key, Bytes input, Hash* t1, Hash* t2, Hash* t3) {
  Hash t0 = hmac_blake2s(chaining_key, input);
  static constexpr uint8_t kOne[1] = {1};
  Hash o1 = hmac_blake2s(t0, kOne);
  Hash o2{}, o3{};
  if (t2 != nullptr || t3 != nullptr) {
    uint8_t buf[kHashLen + 1];
    std::memcpy(buf, o1.data(), kHashLen);
    buf[kHashLen] = 2;
    o2 = hmac_blake2s(t0, buf);
    if (t3 != nullptr) {
      std::memcpy(buf, o2.data(), kHashLen);
      buf[kHashLen] = 3;
      o3 = hmac_blake2s(t0, buf);
    }
    secure_zero(buf, sizeof buf);
  }
  secure_zero(t0);
  if (t1 != nullptr) *t1 = o1;
  if (t2 != nullptr) *t2 = o2;
  if (t3 != nullptr) *t3 = o3;
  secure_zero(o1);
  secure_zero(o2);
  secure_zero(o3);
}

// --- ChaCha20-Poly1305 ---

// The cipher is bound to the context once, in the constructor. Each call then
// passes cipher = NULL to EVP_CipherInit_ex2, which only rekeys and resets the
// nonce and Poly1305 state of the existing provider context; passing the
// cipher again would make OpenSSL free and reallocate that context per packet.
struct Aead::Ctx {
  EVP_CIPHER_CTX* c = nullptr;
};

namespace {

// WireGuard paper §5.4: 32 zero bits, then the counter little-endian.
inline void wg_nonce(uint64_t counter, uint8_t nonce[12]) {
  std::memset(nonce, 0, 4);
  for (int i = 0; i < 8; ++i) nonce[4 + i] = uint8_t(counter >> (8 * i));
}

}  // namespace

Aead::Aead() : ctx_(new Ctx) {
  ctx_->c = EVP_CIPHER_CTX_new();
  if (ctx_->c == nullptr ||
      EVP_CipherInit_ex2(ctx_->c, chacha20_poly1305(), nullptr, nullptr, 1, nullptr) != 1) {
    fatal("EVP_CIPHER_CTX_new/EVP_CipherInit_ex2(ChaCha20-Poly1305)");
  }
}

Aead::~Aead() {
  EVP_CIPHER_CTX_free(ctx_->c);  // cleanses the key schedule
  delete ctx_;
}

bool Aead::seal(const Key& key, uint64_t counter, Bytes aad, const uint8_t* in, size_t len,
                uint8_t* out) {
  if (len > size_t(INT_MAX) || aad.size() > size_t(INT_MAX)) return false;
  EVP_CIPHER_CTX* c = ctx_->c;
  uint8_t nonce[12];
  wg_nonce(counter, nonce);
  int n = 0;
  if (EVP_CipherInit_ex2(c, nullptr, key.data(), nonce, 1, nullptr) != 1) return false;
  if (!aad.empty() && EVP_CipherUpdate(c, nullptr, &n, aad.data(), int(aad.size())) != 1) {
    return false;
  }
  // A zero-length plaintext (a keepalive) is just the tag.
  if (len > 0 && EVP_CipherUpdate(c, out, &n, in, int(len)) != 1) return false;
  uint8_t none[kTagLen];  // a stream cipher's final step outputs nothing
  if (EVP_CipherFinal_ex(c, none, &n) != 1) return false;
  return EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_GET_TAG, int(kTagLen), out + len) == 1;
}

bool Aead::open(const Key& key, uint64_t counter, Bytes aad, const uint8_t* in, size_t len,
                uint8_t* out) {
  if (len > size_t(INT_MAX) || aad.size() > size_t(INT_MAX)) return false;
  EVP_CIPHER_CTX* c = ctx_->c;
  uint8_t nonce[12];
  wg_nonce(counter, nonce);
  // SET_TAG copies the tag into the context before any output is written, so
  // decrypting in place (out == in) cannot clobber it.
  void* tag = const_cast<uint8_t*>(in + len);
  int n = 0;
  uint8_t none[kTagLen];  // a stream cipher's final step outputs nothing
  bool ok = EVP_CipherInit_ex2(c, nullptr, key.data(), nonce, 0, nullptr) == 1 &&
            EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_SET_TAG, int(kTagLen), tag) == 1 &&
            (aad.empty() || EVP_CipherUpdate(c, nullptr, &n, aad.data(), int(aad.size())) == 1) &&
            (len == 0 || EVP_CipherUpdate(c, out, &n, in, int(len)) == 1) &&
            EVP_CipherFinal_ex(c, none, &n) == 1;
  // Never hand back plaintext that failed authentication (RFC 8439 §4:
  // "the decrypted text ... MUST NOT be released").
  if (!ok) {
    if (len > 0) secure_zero(out, len);
    ERR_clear_error();
  }
  return ok;
}

namespace {
Aead& thread_aead() {
  thread_local Aead a;
  return a;
}
}  // namespace

bool aead_seal(const Key& key, uint64_t counter, Bytes aad, const uint8_t* in, size_t len,
               uint8_t* out) {
  return thread_aead().seal(key, counter, aad, in, len, out);
}

bool aead_open(const Key& key, uint64_t counter, Bytes aad, const uint8_t* in, size_t len,
               uint8_t* out) {
  return thread_aead().open(key, counter, aad, in, len, out);
}

// --- XChaCha20-Poly1305 ---

// draft-irtf-cfrg-xchacha-03 §2.2: the ChaCha20 block function's 20 rounds
// on (constants, key, 16-byte nonce) without the final addition of the
// input; the subkey is state words 0..3 and 12..15.
Key hchacha20(const Key& key, const uint8_t nonce16[16]) {
  uint32_t x[16] = {0x61707865, 0x3320646e, 0x79622d32, 0x6b206574};  // "expand 32-byte k"
  for (int i = 0; i < 8; ++i) x[4 + i] = load_le32(key.data() + 4 * i);
  for (int i = 0; i < 4; ++i) x[12 + i] = load_le32(nonce16 + 4 * i);
  for (int round = 0; round < 10; ++round) {  // 10 double rounds (RFC 8439 §2.3)
    quarter_round(x, 0, 4, 8, 12);
    quarter_round(x, 1, 5, 9, 13);
    quarter_round(x, 2, 6, 10, 14);
    quarter_round(x, 3, 7, 11, 15);
    quarter_round(x, 0, 5, 10, 15);
    quarter_round(x, 1, 6, 11, 12);
    quarter_round(x, 2, 7, 8, 13);
    quarter_round(x, 3, 4, 9, 14);
  }
  Key out;
  for (int i = 0; i < 4; ++i) store_le32(out.data() + 4 * i, x[i]);
  for (int i = 0; i < 4; ++i) store_le32(out.data() + 16 + 4 * i, x[12 + i]);
  secure_zero(x, sizeof x);
  return out;
}

// draft-irtf-cfrg-xchacha-03 §2.3.1: ChaCha20-Poly1305 under the HChaCha20
// subkey with the 12-byte nonce 00000000 || nonce[16..24). Those 8 bytes read
// little-endian are exactly WireGuard's counter nonce, so the AEAD above
// serves unchanged.
bool xaead_seal(const Key& key, const uint8_t nonce[kXNonceLen], Bytes aad, const uint8_t* in,
                size_t len, uint8_t* out) {
  Key sub = hchacha20(key, nonce);
  bool ok = aead_seal(sub, load_le64(nonce + 16), aad, in, len, out);
  secure_zero(sub);
  return ok;
}

bool xaead_open(const Key& key, const uint8_t nonce[kXNonceLen], Bytes aad, const uint8_t* in,
                size_t len, uint8_t* out) {
  Key sub = hchacha20(key, nonce);
  bool ok = aead_open(sub, load_le64(nonce + 16), aad, in, len, out);
  secure_zero(sub);
  return ok;
}

// --- TAI64N ---

Timestamp tai64n(uint64_t unix_ns) {
  // The TAI64 label of unix second s is 2^62 + 10 + s (TAI was 10 s ahead of
  // UTC in 1972); WireGuard only needs it to increase, not to be exact TAI.
  uint64_t secs = 0x400000000000000aULL + unix_ns / 1000000000ULL;
  uint32_t nanos = uint32_t(unix_ns % 1000000000ULL);
  Timestamp t;
  for (int i = 0; i < 8; ++i) t[i] = uint8_t(secs >> (56 - 8 * i));
  for (int i = 0; i < 4; ++i) t[8 + i] = uint8_t(nanos >> (24 - 8 * i));
  return t;
}

Timestamp tai64n_now() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  return tai64n(uint64_t(ts.tv_sec) * 1000000000ULL + uint64_t(ts.tv_nsec));
}

}  // namespace tether::wg
