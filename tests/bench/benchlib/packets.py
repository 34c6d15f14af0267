"""Writes Ethernet/IPv4/UDP frames into a classic pcap file, by hand (no
scapy import, so the smoke run stays fast). Checksums are real."""
import ipaddress
import struct


def _mac(text):
    return bytes(int(b, 16) for b in text.split(":"))


def _ip(text):
    return ipaddress.IPv4Address(text).packed


def _sum16(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return s


def ipv4_udp(dst_mac, src_mac, src_ip, dst_ip, frame_len=64, ttl=64, sport=1024, dport=9):
    """One frame of exactly frame_len bytes (no FCS) with no Ethernet padding:
    the IPv4 total length covers everything after the Ethernet header."""
    ip_len = frame_len - 14
    udp_len = ip_len - 20
    if udp_len < 8:
        raise ValueError(f"frame_len {frame_len} is too short for Ethernet/IPv4/UDP")
    payload = bytes(i & 0xFF for i in range(udp_len - 8))
    src, dst = _ip(src_ip), _ip(dst_ip)
    pseudo = src + dst + struct.pack("!BBH", 0, 17, udp_len)
    udp = struct.pack("!HHHH", sport, dport, udp_len, 0) + payload
    ucsum = 0xFFFF - _sum16(pseudo + udp)
    udp = udp[:6] + struct.pack("!H", ucsum or 0xFFFF) + udp[8:]
    hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, ip_len, 0, 0x4000, ttl, 17, 0, src, dst)
    hdr = hdr[:10] + struct.pack("!H", 0xFFFF - _sum16(hdr)) + hdr[12:]
    return _mac(dst_mac) + _mac(src_mac) + b"\x08\x00" + hdr + udp


def write_pcap(path, frames):
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))  # LINKTYPE_ETHERNET
        for i, fr in enumerate(frames):
            f.write(struct.pack("<IIII", i // 1000000, i % 1000000, len(fr), len(fr)))
            f.write(fr)
