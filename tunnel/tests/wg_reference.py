#!/usr/bin/python3
"""An independent reference of the WireGuard handshake (WireGuard paper §5.4,
Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s), written straight from the paper with
Debian's python3-cryptography (X25519, ChaCha20-Poly1305) and hashlib's
BLAKE2s. It shares no code with tunnel/*.cc.

It runs a handshake over fixed keys, ephemerals, indices, timestamp and PSK,
and prints every input and output as C++ array literals; tunnel/tests/
noise_test.cc holds a pasted copy (its known-answer tests). Rerun and repaste
only if the inputs change:

    /usr/bin/python3 tunnel/tests/wg_reference.py > /tmp/kat.inc

With --seeds DIR it instead writes the same messages as the seed corpus of
tests/fuzz/tunnel_fuzz.cc, which uses these keys:

    /usr/bin/python3 tunnel/tests/wg_reference.py --seeds tests/fuzz/corpus/tunnel
"""
import hashlib
import os
import struct
import sys

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

CONSTRUCTION = b"Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s"
IDENTIFIER = b"WireGuard v1 zx2c4 Jason@zx2c4.com"
LABEL_MAC1 = b"mac1----"
LABEL_COOKIE = b"cookie--"


# --- primitives (paper §5.4 "Cryptographic primitives") ---
def HASH(*parts):
    return hashlib.blake2s(b"".join(parts)).digest()


def MAC(key, *parts):
    return hashlib.blake2s(b"".join(parts), key=key, digest_size=16).digest()


def HMAC(key, data):
    # RFC 2104 over BLAKE2s-256 (block size 64), spelled out rather than via hmac.
    block = 64
    if len(key) > block:
        key = HASH(key)
    key = key.ljust(block, b"\0")
    inner = HASH(bytes(k ^ 0x36 for k in key), data)
    return HASH(bytes(k ^ 0x5C for k in key), inner)


def KDF(n, key, data):
    t0 = HMAC(key, data)
    out, prev = [], b""
    for i in range(1, n + 1):
        prev = HMAC(t0, prev + bytes([i]))
        out.append(prev)
    return out


def clamp(k):
    k = bytearray(k)
    k[0] &= 248
    k[31] = (k[31] & 127) | 64
    return bytes(k)


def PUB(priv):
    return X25519PrivateKey.from_private_bytes(priv).public_key().public_bytes(
        Encoding.Raw, PublicFormat.Raw)


def DH(priv, pub):
    return X25519PrivateKey.from_private_bytes(priv).exchange(X25519PublicKey.from_public_bytes(pub))


def AEAD(key, counter, plain, aad):
    # WireGuard's nonce: 32 zero bits then the 64-bit counter, little-endian.
    return ChaCha20Poly1305(key).encrypt(b"\0" * 4 + struct.pack("<Q", counter), plain, aad)


def AEAD_OPEN(key, counter, sealed, aad):
    return ChaCha20Poly1305(key).decrypt(b"\0" * 4 + struct.pack("<Q", counter), sealed, aad)


def _rotl(v, c):
    return ((v << c) & 0xFFFFFFFF) | (v >> (32 - c))


def _quarter(s, a, b, c, d):
    s[a] = (s[a] + s[b]) & 0xFFFFFFFF; s[d] = _rotl(s[d] ^ s[a], 16)
    s[c] = (s[c] + s[d]) & 0xFFFFFFFF; s[b] = _rotl(s[b] ^ s[c], 12)
    s[a] = (s[a] + s[b]) & 0xFFFFFFFF; s[d] = _rotl(s[d] ^ s[a], 8)
    s[c] = (s[c] + s[d]) & 0xFFFFFFFF; s[b] = _rotl(s[b] ^ s[c], 7)


def HCHACHA20(key, nonce16):
    # draft-irtf-cfrg-xchacha-03 §2.2: 20 ChaCha rounds, no feed-forward,
    # output words 0..3 and 12..15.
    s = [0x61707865, 0x3320646E, 0x79622D32, 0x6B206574]
    s += list(struct.unpack("<8I", key)) + list(struct.unpack("<4I", nonce16))
    for _ in range(10):
        _quarter(s, 0, 4, 8, 12); _quarter(s, 1, 5, 9, 13)
        _quarter(s, 2, 6, 10, 14); _quarter(s, 3, 7, 11, 15)
        _quarter(s, 0, 5, 10, 15); _quarter(s, 1, 6, 11, 12)
        _quarter(s, 2, 7, 8, 13); _quarter(s, 3, 4, 9, 14)
    return struct.pack("<8I", *(s[0:4] + s[12:16]))


def XAEAD(key, nonce24, plain, aad):
    sub = HCHACHA20(key, nonce24[:16])
    return ChaCha20Poly1305(sub).encrypt(b"\0" * 4 + nonce24[16:], plain, aad)


# The draft's HChaCha20 test vector (§2.2.1) guards the hand-written rounds.
assert HCHACHA20(bytes(range(32)), bytes.fromhex("000000090000004a0000000031415927")) == \
    bytes.fromhex("82413b4227b27bfed30e42508a877d73a0f9e4d58a74a853c12ec41326d3ecdc")


def TAI64N(unix_s, ns):
    return struct.pack(">QI", (1 << 62) + 10 + unix_s, ns)


# --- fixed inputs ---
def fixed(label):
    return clamp(hashlib.sha256(b"tether wg kat " + label).digest())


S_I = fixed(b"initiator static")
S_R = fixed(b"responder static")
E_I = fixed(b"initiator ephemeral")
E_R = fixed(b"responder ephemeral")
PSK = hashlib.sha256(b"tether wg kat psk").digest()
IDX_I = 0x11223344
IDX_R = 0xA1B2C3D4
TIMESTAMP = TAI64N(1700000000, 123456789)
S_I_PUB, S_R_PUB = PUB(S_I), PUB(S_R)


def initiation():
    """§5.4.2: returns (message with mac1 and zero mac2, C, H)."""
    C = HASH(CONSTRUCTION)
    H = HASH(C, IDENTIFIER)
    H = HASH(H, S_R_PUB)
    e_pub = PUB(E_I)
    (C,) = KDF(1, C, e_pub)
    H = HASH(H, e_pub)
    C, k = KDF(2, C, DH(E_I, S_R_PUB))
    static = AEAD(k, 0, S_I_PUB, H)
    H = HASH(H, static)
    C, k = KDF(2, C, DH(S_I, S_R_PUB))
    ts = AEAD(k, 0, TIMESTAMP, H)
    H = HASH(H, ts)
    body = struct.pack("<B3xI", 1, IDX_I) + e_pub + static + ts
    mac1 = MAC(HASH(LABEL_MAC1, S_R_PUB), body)
    return body + mac1 + b"\0" * 16, C, H


def responder_consumes(msg):
    """The responder's view of an initiation: recovers the static key and the
    timestamp, returns (C, H, initiator ephemeral, sender index)."""
    assert MAC(HASH(LABEL_MAC1, S_R_PUB), msg[:116]) == msg[116:132]
    _, sender = struct.unpack("<B3xI", msg[:8])
    e_pub, static, ts = msg[8:40], msg[40:88], msg[88:116]
    C = HASH(CONSTRUCTION)
    H = HASH(HASH(C, IDENTIFIER), S_R_PUB)
    (C,) = KDF(1, C, e_pub)
    H = HASH(H, e_pub)
    C, k = KDF(2, C, DH(S_R, e_pub))
    assert AEAD_OPEN(k, 0, static, H) == S_I_PUB
    H = HASH(H, static)
    C, k = KDF(2, C, DH(S_R, S_I_PUB))
    assert AEAD_OPEN(k, 0, ts, H) == TIMESTAMP
    H = HASH(H, ts)
    return C, H, e_pub, sender


def response(C, H, e_i_pub, receiver, psk):
    """§5.4.3: returns (message with mac1 and zero mac2, C)."""
    e_pub = PUB(E_R)
    (C,) = KDF(1, C, e_pub)
    H = HASH(H, e_pub)
    (C,) = KDF(1, C, DH(E_R, e_i_pub))
    (C,) = KDF(1, C, DH(E_R, S_I_PUB))
    C, tau, k = KDF(3, C, psk)
    H = HASH(H, tau)
    empty = AEAD(k, 0, b"", H)
    H = HASH(H, empty)
    body = struct.pack("<B3xII", 2, IDX_R, receiver) + e_pub + empty
    mac1 = MAC(HASH(LABEL_MAC1, S_I_PUB), body)
    return body + mac1 + b"\0" * 16, C


def initiator_consumes(C, H, msg, psk):
    """The initiator's view of the response: returns its final C."""
    assert MAC(HASH(LABEL_MAC1, S_I_PUB), msg[:60]) == msg[60:76]
    e_pub, empty = msg[12:44], msg[44:60]
    (C,) = KDF(1, C, e_pub)
    H = HASH(H, e_pub)
    (C,) = KDF(1, C, DH(E_I, e_pub))
    (C,) = KDF(1, C, DH(S_I, e_pub))
    C, tau, k = KDF(3, C, psk)
    H = HASH(H, tau)
    AEAD_OPEN(k, 0, empty, H)
    return C


def transport(C):
    """§5.4.5: (T_send_i = T_recv_r, T_recv_i = T_send_r) = KDF2(C, ε)."""
    return KDF(2, C, b"")


def data(receiver, counter, key, inner):
    """§5.4.6: a transport data message; inner padded to a multiple of 16."""
    padded = inner + b"\0" * (-len(inner) % 16)
    return struct.pack("<B3xIQ", 4, receiver, counter) + AEAD(key, counter, padded, b"")


def emit(out, name, b, comment=None):
    if comment:
        out.append(f"// {comment}")
    out.append(f"constexpr std::array<uint8_t, {len(b)}> {name} = {{")
    for i in range(0, len(b), 12):
        out.append("    " + ", ".join(f"0x{x:02x}" for x in b[i:i + 12]) + ",")
    out.append("};")


def seeds(directory):
    """Valid and near-valid UDP payloads for tunnel_fuzz, one file each."""
    init, C_i, H_i = initiation()
    C_r, H_r, e_i_pub, sender = responder_consumes(init)
    resp_psk, C = response(C_r, H_r, e_i_pub, sender, PSK)
    resp_nopsk, _ = response(C_r, H_r, e_i_pub, sender, b"\0" * 32)
    t_send_i, t_recv_i = transport(C)
    cookie, nonce = bytes(range(0xC0, 0xD0)), bytes(range(0x40, 0x58))
    reply = struct.pack("<B3xI", 3, IDX_I) + nonce + XAEAD(
        HASH(LABEL_COOKIE, S_R_PUB), nonce, cookie, init[116:132])
    files = {
        "initiation": init,
        "initiation_with_mac2": init[:132] + MAC(cookie, init[:132]),
        "initiation_bad_mac1": init[:116] + bytes(16) + init[132:],
        "response_psk": resp_psk,
        "response_no_psk": resp_nopsk,
        "cookie_reply": reply,
        "data_keepalive": data(IDX_R, 0, t_send_i, b""),
        "data_small": data(IDX_I, 7, t_recv_i, b"tether"),
        "reserved_nonzero": b"\x01\x00\x01\x00" + init[4:],
        "short": b"\x02\x00\x00\x00",
    }
    os.makedirs(directory, exist_ok=True)
    for name, payload in files.items():
        with open(os.path.join(directory, name), "wb") as f:
            f.write(payload)


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--seeds":
        return seeds(sys.argv[2])
    out = [f"// Generated by tunnel/tests/wg_reference.py (independent Python reference)."]
    emit(out, "kRefInitiatorStatic", S_I)
    emit(out, "kRefResponderStatic", S_R)
    emit(out, "kRefInitiatorEphemeral", E_I)
    emit(out, "kRefResponderEphemeral", E_R)
    emit(out, "kRefPsk", PSK)
    emit(out, "kRefTimestamp", TIMESTAMP, "TAI64N of 1700000000 s + 123456789 ns")
    out.append(f"constexpr uint32_t kRefInitiatorIndex = 0x{IDX_I:08x};")
    out.append(f"constexpr uint32_t kRefResponderIndex = 0x{IDX_R:08x};")

    init, C_i, H_i = initiation()
    assert len(init) == 148
    emit(out, "kRefInitiation", init, "148 bytes: mac1 set, mac2 zero")
    C_r, H_r, e_i_pub, sender = responder_consumes(init)
    assert (C_r, H_r, sender) == (C_i, H_i, IDX_I)

    for tag, psk in (("Psk", PSK), ("NoPsk", b"\0" * 32)):
        resp, C_resp = response(C_r, H_r, e_i_pub, sender, psk)
        assert len(resp) == 92
        C_init = initiator_consumes(C_i, H_i, resp, psk)
        assert C_init == C_resp
        t_send_i, t_recv_i = transport(C_init)
        emit(out, f"kRefResponse{tag}", resp, "92 bytes: mac1 set, mac2 zero")
        emit(out, f"kRefInitiatorSend{tag}", t_send_i, "= responder's receive key")
        emit(out, f"kRefInitiatorReceive{tag}", t_recv_i, "= responder's send key")
        if psk == PSK:
            # The initiator confirms the session with a keepalive (empty data
            # message); the responder answers with a small packet.
            emit(out, "kRefKeepaliveFromInitiator", data(IDX_R, 0, t_send_i, b""),
                 "initiator's keepalive, counter 0, to the responder's index")
            emit(out, "kRefDataFromResponder", data(IDX_I, 7, t_recv_i, b"tether"),
                 "responder's data, counter 7, inner \"tether\" padded to 16")

    # §5.4.7: a cookie reply to the initiation from the responder, with a fixed
    # nonce and a fixed cookie, and the mac2 the initiator then adds.
    cookie = bytes(range(0xC0, 0xD0))
    nonce = bytes(range(0x40, 0x58))
    sealed = XAEAD(HASH(LABEL_COOKIE, S_R_PUB), nonce, cookie, init[116:132])
    reply = struct.pack("<B3xI", 3, IDX_I) + nonce + sealed
    assert len(reply) == 64
    emit(out, "kRefCookie", cookie)
    emit(out, "kRefCookieReply", reply, "64 bytes: reply to kInitiation carrying kCookie")
    emit(out, "kRefInitiationMac2", MAC(cookie, init[:132]),
         "mac2 of kInitiation once kCookie is held")
    print("\n".join(out))


if __name__ == "__main__":
    sys.exit(main())
