#!/usr/bin/python3
"""Write samples/expected.json from the captures themselves.

Every fact is read from the packets with tshark (fields, including the raw TCP payload);
nothing is taken from the scenario's intent. The intent is used only as a check: each
file lists the verdicts its recording was meant to produce, a small oracle derives a
verdict for every connection from the tshark facts (the signatures in DOMAIN.md), and
the script fails if the two disagree, so a recording that did not produce the intended
shape is caught here instead of being written down as truth.

A capture with a key log beside it (`NAME.keys` for `NAME.pcap`) or a pcapng holding a
Decryption Secrets Block is read twice: without secrets for the facts and the verdict above
(a DSB is removed first with `editcap --discard-all-secrets`), and with them
(`-o tls.keylog_file:`) for what only decryption shows; those facts go to the file's
`with_keys` list, one entry per stream. Certificates are read from their DER with openssl.

Usage: python3 gen_expected.py [SAMPLES_DIR]     (needs tshark >= 4.0, openssl; stdlib only)
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections import Counter

HERE = os.path.dirname(os.path.abspath(__file__))

# file -> (capture point, verdicts the recording was meant to produce, in stream order
# where the order is deterministic, else compared as a multiset)
INTENT = {
    "tls13_ok.pcap": ("client", ["tls_ok"]),
    "tls12_ok.pcap": ("client", ["tls_ok"]),
    "tls13_ok_ipv6.pcap": ("client", ["tls_ok"]),
    "silent_backend.client.pcap": ("client", ["tls_no_server_response"]),
    "silent_backend.server.pcap": ("server", ["tls_no_server_response"]),
    "silent_backend.client.pcap.gz": ("client", ["tls_no_server_response"]),
    "silent_backend.client.pcap.zst": ("client", ["tls_no_server_response"]),
    "clienthello_dropped.client.pcap": ("client", ["tls_no_server_response"]),
    "clienthello_dropped.server.pcap": ("server", ["clienthello_lost"]),
    "mtu_blackhole.client.pcap": ("client", ["server_response_lost"]),
    "mtu_blackhole.server.pcap": ("server", ["server_response_lost"]),
    "server_reset.client.pcap": ("client", ["server_reset"]),
    "server_reset.server.pcap": ("server", ["server_reset"]),
    "server_closed.pcap": ("client", ["server_closed"]),
    "syn_dropped.pcap": ("client", ["tcp_no_synack"]),
    "port_closed.pcap": ("client", ["tcp_refused"]),
    "port_closed_sll.pcap": ("client", ["tcp_refused"]),
    "icmp_admin_prohibited.pcap": ("client", ["icmp_unreachable"]),
    "icmp6_admin_prohibited.pcap": ("client", ["icmp_unreachable"]),
    "server_alert_protocol_version.pcap": ("client", ["server_alert"]),
    "server_alert_protocol_version.pcapng": ("client", ["server_alert"]),
    "server_alert_handshake_failure.pcap": ("client", ["server_alert"]),
    "client_alert_tls12.pcap": ("client", ["client_alert"]),
    "client_alert_tls13.pcap": ("client", ["client_alert"]),
    "not_tls.pcap": ("client", ["not_tls"]),
    "cleartext.pcap": ("client", ["cleartext"]),
    "tcp_no_data.pcap": ("client", ["tcp_no_data"]),
    "clienthello_split.pcap": ("client", ["tls_ok"]),
    "tls13_ok_sll2.pcap": ("client", ["tls_ok"]),
    "tls12_ok_vlan.pcap": ("client", ["tls_ok"]),
    "tls13_ok_nano.pcap": ("client", ["tls_ok"]),
    "tls13_ok_snap96.pcap": ("client", ["tls_ok"]),
    "tls13_ok_truncated.pcap": ("client", ["tls_ok"]),
    "midstream.pcap": ("client", ["incomplete"]),
    "port_reuse.pcap": ("client", ["tls_ok", "tls_no_server_response"]),
    "gateway_timeout_55s.pcap": ("client", ["tls_no_server_response"]),
    "healthy.client.pcap": ("client", ["tls_ok"]),
    "healthy.server.pcap": ("server", ["tls_ok"]),
    "nat.client.pcap": ("client", ["tls_ok", "tls_no_server_response"]),
    "nat.server.pcap": ("server", ["tls_ok", "clienthello_lost"]),
    "syn_blocked.client.pcap": ("client", ["tls_ok", "tcp_no_synack", "tls_ok"]),
    # only the two :443 connections that bracket the blocked one reached the backend
    "syn_blocked.server.pcap": ("server", ["tls_ok", "tls_ok"]),
    # the router's forged RST arrives with TTL 64, the server's own packets with 63; a
    # healthy :443 connection follows 0.5 s later
    "reset_injected.client.pcap": ("client", ["middlebox_reset", "tls_ok"]),
    # the backend saw the TCP handshake of the :9008 connection and then nothing, not even a
    # close (the connection was still open when the capture ended); the :443 connection after
    # it proves the capture ran while the ClientHello and the forged RST were sent
    "reset_injected.server.pcap": ("server", ["incomplete", "tls_ok"]),
    # the client offers a key share for X25519 only, the server takes P-256 only: a
    # HelloRetryRequest, then a second ClientHello (not a retransmission of the first)
    "hello_retry.pcap": ("client", ["tls_ok"]),
    # the server closed (FIN) at accept; the ClientHello sent 0.2 s later is reset by its kernel
    "server_closed_on_accept.pcap": ("client", ["server_closed"]),
    # a proxy held the server's first bytes back 7 s
    "slow_backend.pcap": ("client", ["tls_ok"]),
    # mutual TLS in TLS 1.3: after the client's Finished (and, from curl, its request) the
    # server sends one 19-byte encrypted record (the alert) and closes
    "tls13_mtls_no_client_cert.pcap": ("client", ["server_alert"]),
    "tls13_mtls_no_client_cert.dsb.pcapng": ("client", ["server_alert"]),
    "tls13_mtls_untrusted_client_cert.pcap": ("client", ["server_alert"]),
    "tls12_mtls_no_client_cert.pcap": ("client", ["server_alert"]),
    "tls12_mtls_untrusted_client_cert.pcap": ("client", ["server_alert"]),
    # gnutls-cli encrypts its TLS 1.3 alert: one 19-byte record where its Finished would be
    "tls13_client_rejects_name.pcap": ("client", ["client_alert"]),
    "tls13_client_rejects_expired.pcap": ("client", ["client_alert"]),
    # OpenSSL's client sends this TLS 1.3 alert in clear
    "tls13_client_rejects_name_openssl.pcap": ("client", ["client_alert"]),
    "tls12_expired.pcap": ("client", ["client_alert"]),
    "tls12_wrong_name.pcap": ("client", ["client_alert"]),
    "leaf_only.pcap": ("client", ["client_alert"]),
    "leaf_only_tls13.pcap": ("client", ["client_alert"]),
    "tls12_ok_keys.pcap": ("client", ["tls_ok"]),
    "mixed.pcap": ("client", Counter({
        "tls_ok": 5, "client_alert": 2, "tls_no_server_response": 2, "server_reset": 1,
        "server_closed": 1, "tcp_no_synack": 1, "tcp_refused": 1, "icmp_unreachable": 2,
        "server_alert": 2, "not_tls": 1, "cleartext": 1, "tcp_no_data": 1})),
    # TX checksum offload on c0: the client's SYN is captured with a wrong TCP checksum, the
    # router's RST (one hop, TTL 64 like the SYN) arrives right
    "offload_port_closed.pcap": ("client", ["tcp_refused"]),
}

# TLS on ports tshark would not try on its own (8080 stays HTTP on purpose)
TLS_PORTS = [4431, 4432, 4433, 4434, 4435, 4440, 4441, 4442, 4443, 8443, 8444, 8445, 9001, 9002, 9003, 9004, 9005,
             9009, 9010]

ALERTS = {0: "close_notify", 10: "unexpected_message", 20: "bad_record_mac",
          22: "record_overflow", 40: "handshake_failure", 42: "bad_certificate",
          43: "unsupported_certificate", 44: "certificate_revoked", 45: "certificate_expired",
          46: "certificate_unknown", 47: "illegal_parameter", 48: "unknown_ca",
          49: "access_denied", 50: "decode_error", 51: "decrypt_error",
          70: "protocol_version", 71: "insufficient_security", 80: "internal_error",
          86: "inappropriate_fallback", 90: "user_canceled", 109: "missing_extension",
          110: "unsupported_extension", 112: "unrecognized_name",
          113: "bad_certificate_status_response", 115: "unknown_psk_identity",
          116: "certificate_required", 120: "no_application_protocol"}
VERSIONS = {0x0304: "TLSv1.3", 0x0303: "TLSv1.2", 0x0302: "TLSv1.1", 0x0301: "TLSv1.0"}

FIELDS = ["frame.number", "frame.protocols", "ip.src", "ip.dst", "ipv6.src", "ipv6.dst",
          "ip.ttl", "ipv6.hlim", "tcp.stream", "tcp.srcport", "tcp.dstport", "tcp.flags",
          "tcp.seq_raw", "tcp.ack_raw", "tcp.len", "tcp.payload",
          "tcp.analysis.retransmission", "tls.record.content_type", "tls.handshake.type",
          "tls.handshake.version", "tls.handshake.extensions.supported_version",
          "tls.handshake.extensions_server_name", "tls.alert_message.desc",
          "icmp.type", "icmpv6.type", "tls.record.length", "tls.record.opaque_type"]
SEP = "\x1f"
M32 = 1 << 32


def sdiff(a, b):
    """a - b in sequence space, as a signed number"""
    d = (a - b) % M32
    return d - M32 if d >= M32 // 2 else d


def tshark_rows(path, fields=FIELDS, keylog=None):
    cfg = tempfile.mkdtemp()
    cmd = ["tshark", "-r", path, "-n", "-2", "-o", "tcp.desegment_tcp_streams:TRUE",
           "-o", "tcp.analyze_sequence_numbers:TRUE", "-o", "tcp.check_checksum:FALSE"]
    if keylog:
        cmd += ["-o", "tls.keylog_file:" + keylog]
    for p in TLS_PORTS:
        cmd += ["-d", "tcp.port==%d,tls" % p]
    cmd += ["-T", "fields", "-E", "occurrence=a", "-E", "aggregator=" + SEP]
    for f in fields:
        cmd += ["-e", f]
    env = dict(os.environ, WIRESHARK_CONFIG_DIR=cfg)
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    shutil.rmtree(cfg, ignore_errors=True)
    rows = []
    for line in r.stdout.splitlines():
        v = line.split("\t")
        v += [""] * (len(fields) - len(v))
        rows.append({k: (v[i].split(SEP) if v[i] else []) for i, k in enumerate(fields)})
    return rows, r.returncode, r.stderr.strip()


def first(row, k, conv=str):
    return conv(row[k][0]) if row[k] else None


def ints(row, k, base=10):
    out = []
    for x in row[k]:
        for y in x.split(","):
            if y:
                out.append(int(y, 0) if base == 0 else int(y, base))
    return out


class Conn:
    def __init__(self, stream):
        self.stream = stream
        self.pkts = []        # TCP packets (not ICMP quotes)
        self.icmp = []        # frames of ICMP errors quoting this connection


def connections(rows):
    conns = {}
    for r in rows:
        if not r["tcp.stream"]:
            continue
        s = int(r["tcp.stream"][0])
        c = conns.setdefault(s, Conn(s))
        protos = r["frame.protocols"][0] if r["frame.protocols"] else ""
        if ":icmp:" in protos or ":icmpv6:" in protos:
            c.icmp.append(int(r["frame.number"][0]))
            continue
        src = first(r, "ip.src") or first(r, "ipv6.src")
        dst = first(r, "ip.dst") or first(r, "ipv6.dst")
        ttl = first(r, "ip.ttl", int) if r["ip.ttl"] else first(r, "ipv6.hlim", int)
        c.pkts.append({
            "frame": int(r["frame.number"][0]),
            "src": (src, int(r["tcp.srcport"][0])), "dst": (dst, int(r["tcp.dstport"][0])),
            "ttl": ttl, "flags": int(r["tcp.flags"][0], 16),
            "seq": int(r["tcp.seq_raw"][0]), "ack": int(r["tcp.ack_raw"][0]),
            "len": int(r["tcp.len"][0]),
            "payload": bytes.fromhex(r["tcp.payload"][0].replace(":", "")) if r["tcp.payload"] else b"",
            "rtx": bool(r["tcp.analysis.retransmission"]),
            "ctypes": ints(r, "tls.record.content_type"),
            "hstypes": ints(r, "tls.handshake.type"),
            "hsver": ints(r, "tls.handshake.version", 0),
            "supver": ints(r, "tls.handshake.extensions.supported_version", 0),
            "sni": r["tls.handshake.extensions_server_name"],
            "alerts": ints(r, "tls.alert_message.desc"),
            "rlens": ints(r, "tls.record.length"),
            # records tshark could not decrypt carry an opaque type and no content type;
            # in TLS 1.3 they follow the clear ones (ServerHello, ChangeCipherSpec)
            "otypes": ints(r, "tls.record.opaque_type"),
        })
    return [conns[k] for k in sorted(conns)]


FIN, SYN, RST, ACK = 0x01, 0x02, 0x04, 0x10


def is_ch_start(p):
    b = p["payload"]
    return len(b) >= 6 and b[0] == 0x16 and b[1] == 3 and b[2] <= 4 and b[5] == 1


def parse_sni(ch):
    """server_name from a ClientHello record (bytes from the record header on)"""
    try:
        i = 5 + 4 + 2 + 32
        i += 1 + ch[i]                                   # session id
        i += 2 + int.from_bytes(ch[i:i + 2], "big")      # cipher suites
        i += 1 + ch[i]                                   # compression
        end = i + 2 + int.from_bytes(ch[i:i + 2], "big")
        i += 2
        while i + 4 <= end:
            t, n = int.from_bytes(ch[i:i + 2], "big"), int.from_bytes(ch[i + 2:i + 4], "big")
            if t == 0:
                e = ch[i + 4:i + 4 + n]
                ln = int.from_bytes(e[3:5], "big")
                if len(e) < 5 + ln:
                    return None
                return e[5:5 + ln].decode()
            i += 4 + n
    except (IndexError, UnicodeDecodeError):
        return None
    return None


def facts(c):
    """per-connection facts, all from the packets"""
    P = c.pkts
    syn = [p for p in P if p["flags"] & SYN and not p["flags"] & ACK]
    synack = [p for p in P if p["flags"] & SYN and p["flags"] & ACK]
    if syn:
        cli = syn[0]["src"]
    elif synack:
        cli = synack[0]["dst"]
    else:  # no handshake in the capture: the server is the side on the lower port
        a, b = P[0]["src"], P[0]["dst"]
        cli = a if a[1] > b[1] else b
    C = [p for p in P if p["src"] == cli]
    S = [p for p in P if p["src"] != cli]
    srv = S[0]["src"] if S else (C[0]["dst"] if C else None)
    f = {"stream": c.stream, "client": cli, "server": srv,
         "syn_count": len(syn), "synack_seen": bool(synack),
         "client_fin": any(p["flags"] & FIN for p in C), "client_rst": any(p["flags"] & RST for p in C),
         "server_fin": any(p["flags"] & FIN for p in S), "server_rst": any(p["flags"] & RST for p in S),
         "icmp_frames": c.icmp, "client_ttl": C[0]["ttl"] if C else None}
    # a RST in the server's name whose TTL differs from the server's first packet: forged
    srst = next((p for p in S if p["flags"] & RST), None)
    f["server_rst_forged"] = bool(srst) and len(S) >= 2 and srst["ttl"] != S[0]["ttl"]
    # the server's FIN came before the client sent any data: it closed on accept, and the
    # RST that follows is its kernel answering data sent to a closed socket
    sfin = next((p for p in S if p["flags"] & FIN), None)
    cdata = next((p for p in C if p["len"] > 0), None)
    f["server_closed_first"] = bool(sfin) and bool(cdata) and sfin["frame"] < cdata["frame"]
    f["handshake"] = bool(synack) and any(
        p["flags"] & ACK and not p["flags"] & (SYN | RST) and p["ack"] == (synack[0]["seq"] + 1) % M32
        for p in C)
    cpay = [p for p in C if p["len"] > 0]
    spay = [p for p in S if p["len"] > 0]
    f["client_payload"] = bool(cpay)
    f["server_payload"] = bool(spay)
    # ClientHello: byte range from the first segment that starts a handshake record of type 1
    chs = next((p for p in cpay if is_ch_start(p)), None)
    f["ch"] = None
    if chs:
        start = chs["seq"]
        end = (start + 5 + int.from_bytes(chs["payload"][3:5], "big")) % M32
        n = sdiff(end, start)
        cover = [0] * n
        buf = bytearray(n)
        have = [False] * n
        for p in cpay:
            lo = max(0, sdiff(p["seq"], start))
            hi = min(n, sdiff(p["seq"], start) + p["len"])
            for i in range(lo, hi):
                cover[i] += 1
                j = i - sdiff(p["seq"], start)
                if j < len(p["payload"]) and not have[i]:
                    buf[i], have[i] = p["payload"][j], True
        segs = [p["frame"] for p in cpay if not p["rtx"] and 0 <= sdiff(p["seq"], start) < n]
        sni = parse_sni(bytes(buf)) if all(have) else None
        ts_sni = sorted({s for p in C for s in p["sni"]})
        if sni is not None and ts_sni and ts_sni != [sni]:
            raise SystemExit("SNI mismatch in stream %d: %s vs %s" % (c.stream, sni, ts_sni))
        if sni is None and ts_sni:
            sni = ts_sni[0]
        f["ch"] = {"count": max(cover), "acked": any(p["flags"] & ACK and sdiff(p["ack"], end) >= 0 for p in S),
                   "end": end, "segments": segs, "sni": sni, "first_frame": chs["frame"]}
    # ServerHello (tshark, or raw bytes when the snaplen cut the payload)
    sh = [p for p in S if 2 in p["hstypes"]] or \
         [p for p in spay if len(p["payload"]) >= 6 and p["payload"][0] == 0x16 and p["payload"][5] == 2]
    f["sh_frame"] = sh[0]["frame"] if sh else None
    f["tls_version"] = None
    if sh and 2 in sh[0]["hstypes"]:
        v = sh[0]["supver"][-1] if sh[0]["supver"] else sh[0]["hsver"][0]
        f["tls_version"] = VERSIONS.get(v, hex(v))
    # alerts: tshark-parsed (clear) ones, and records of type 21 it could not parse (encrypted)
    alerts = []
    for p in P:
        side = "client" if p["src"] == cli else "server"
        for d in p["alerts"]:
            alerts.append({"sender": side, "description": ALERTS.get(d, str(d)), "encrypted": False,
                           "frame": p["frame"]})
        n_enc = p["ctypes"].count(21) - len(p["alerts"])
        for _ in range(max(0, n_enc)):
            alerts.append({"sender": side, "encrypted": True, "frame": p["frame"]})
    f["alerts"] = alerts
    f["enc_alert"] = encrypted_alert(P, cli, f["tls_version"])
    # the client's payload after the ClientHello (handshake went on)
    f["client_more"] = bool(chs) and any(sdiff(p["seq"], f["ch"]["end"]) >= 0 for p in cpay)
    f["client_first_bytes"] = cpay[0]["payload"][:8] if cpay else b""
    f["server_first_bytes"] = min(spay, key=lambda p: p["frame"])["payload"][:8] if spay else b""
    # server data: gap at its start (first bytes never arrived) or retransmitted and never ACKed
    f["server_gap"] = False
    f["server_unacked_rtx"] = False
    if spay and synack:
        isn1 = (synack[0]["seq"] + 1) % M32
        f["server_gap"] = min(sdiff(p["seq"], isn1) for p in spay) > 0
        top = max(sdiff(p["seq"] + p["len"], isn1) for p in spay)
        acked = max([sdiff(p["ack"], isn1) for p in C if p["flags"] & ACK] or [0])
        f["server_unacked_rtx"] = any(p["rtx"] for p in spay) and acked < top
    # the client's sequence jumps (its FIN/RST carries a seq past data we never saw)
    f["client_seq_jump"] = False
    if syn and not cpay:
        isn1 = (syn[0]["seq"] + 1) % M32
        f["client_seq_jump"] = any(p["flags"] & (FIN | RST) and sdiff(p["seq"], isn1) > 0 for p in C)
    return f


def encrypted_alert(P, cli, version):
    """TLS 1.3 without keys: the side that sent an alert-sized encrypted record (19 bytes:
    2 of alert, the inner type, a 16-byte tag) where DOMAIN.md's signatures put one, else None.
    client: its first encrypted record is that size (a Finished is at least 53 bytes);
    server: its only record after the client's Finished, followed by its close."""
    if version != "TLSv1.3":
        return None
    recs = []
    for p in P:
        types = p["ctypes"] + p["otypes"]
        if len(types) != len(p["rlens"]):
            return None
        recs += [(p["frame"], p["src"] == cli, t, n) for t, n in zip(types, p["rlens"]) if t == 23]
    mine = [r for r in recs if r[1]]
    if not mine:
        return None
    if mine[0][3] == 19:
        return "client"
    fin = mine[0][0]
    after = [r for r in recs if not r[1] and r[0] > fin]
    sclose = any(p["flags"] & (FIN | RST) for p in P if p["src"] != cli)
    if len(after) == 1 and after[0][3] == 19 and sclose:
        return "server"
    return None


def oracle(f, vantage):
    """verdict from the facts, following DOMAIN.md's signature table"""
    if not f["syn_count"] and not f["synack_seen"]:
        return "incomplete"
    if not f["synack_seen"]:
        if f["icmp_frames"]:
            return "icmp_unreachable"
        return "tcp_refused" if f["server_rst"] else "tcp_no_synack"
    if not f["client_payload"]:
        if f["client_seq_jump"]:
            return "clienthello_lost"
        closed = f["client_fin"] or f["client_rst"] or f["server_fin"] or f["server_rst"]
        # no payload and no close: the capture ended while the connection was open
        return "tcp_no_data" if not f["server_payload"] and closed else "incomplete"
    if not f["ch"]:
        return "cleartext"
    clear = [a for a in f["alerts"] if not a["encrypted"]]
    if any(a["sender"] == "server" for a in clear):
        return "server_alert"
    if any(a["sender"] == "client" for a in clear):
        return "client_alert"
    if f["enc_alert"]:
        return f["enc_alert"] + "_alert"
    if f["server_gap"] or f["server_unacked_rtx"]:
        return "server_response_lost"
    if f["sh_frame"] and f["client_more"]:
        return "tls_ok"
    if f["server_payload"]:
        b = f["server_first_bytes"]
        if not (20 <= b[0] <= 24 and b[1] == 3):
            return "not_tls"
        return "incomplete"
    if f["server_rst"] and f["server_closed_first"] and not f["server_rst_forged"]:
        return "server_closed"
    if f["server_rst"]:
        return "middlebox_reset" if f["server_rst_forged"] else "server_reset"
    if f["server_fin"]:
        return "server_closed"
    return "tls_no_server_response"


def capture_vantage(fs):
    ttls = {f["client_ttl"] for f in fs if f["client_ttl"] is not None}
    if ttls and all(t in (64, 128, 255) for t in ttls):
        return "client"
    if ttls and all(t not in (64, 128, 255) for t in ttls):
        return "server"
    return "unknown"


def expected_conn(f, verdict):
    e = {"stream": f["stream"], "verdict": verdict,
         "client_ip": f["client"][0], "client_port": f["client"][1],
         "server_ip": f["server"][0], "server_port": f["server"][1]}
    e["syn_count"] = f["syn_count"]
    e["synack_seen"] = f["synack_seen"]
    if f["ch"]:
        e["clienthello_count"] = f["ch"]["count"]
        e["clienthello_acked"] = f["ch"]["acked"]
    elif f["synack_seen"] or f["client_payload"]:
        e["clienthello_count"] = 0
    for k in ("client_fin", "client_rst", "server_fin", "server_rst"):
        e[k] = f[k]
    clear = [a for a in f["alerts"] if not a["encrypted"]]
    side = verdict.split("_")[0]
    if verdict in ("server_alert", "client_alert") and any(a["sender"] == side for a in clear):
        a = next(a for a in clear if a["sender"] == side)
        e["alert"] = {k: a[k] for k in ("sender", "description", "encrypted")}
    elif verdict in ("server_alert", "client_alert"):
        # inferred from an alert-sized encrypted record: what it says needs the keys
        e["alert"] = {"sender": side, "description": None, "encrypted": True, "inferred": True}
    elif not f["alerts"] and verdict not in ("tls_ok", "incomplete"):
        e["alert"] = None
    # tls_ok / incomplete: the close_notify at the end is encrypted (a type-21 record after
    # the handshake in TLS 1.2, an ordinary type-23 record in TLS 1.3), so no claim either way
    if f["ch"] and f["ch"]["sni"]:
        e["sni"] = f["ch"]["sni"]
    if f["tls_version"]:
        e["tls_version"] = f["tls_version"]
    return e


KEY_FIELDS = ["frame.number", "tcp.stream", "ip.src", "ipv6.src", "tcp.srcport",
              "tls.record.content_type", "tls.alert_message.desc", "tls.handshake.type",
              "tls.handshake.certificate"]


def pcapng_blocks(data):
    """(type, bytes) of each block of a one-section pcapng, or [] for anything else"""
    if data[:4] != b"\x0a\x0d\x0d\x0a":
        return []
    order = "little" if data[8:12] == b"\x4d\x3c\x2b\x1a" else "big"
    off, out = 0, []
    while off + 12 <= len(data):
        blen = int.from_bytes(data[off + 4:off + 8], order)
        if blen < 12:
            break
        out.append((int.from_bytes(data[off:off + 4], order), data[off:off + blen]))
        off += blen
    return out


def has_dsb(path):
    """True when a pcapng holds a Decryption Secrets Block (type 0x0000000A)"""
    with open(path, "rb") as fh:
        return any(t == 0x0A for t, _ in pcapng_blocks(fh.read()))


def without_secrets(path):
    """a temporary copy of a pcapng with its DSBs left out (the caller deletes it); editcap
    4.0 refuses to rewrite a file holding a DSB, even with --discard-all-secrets"""
    with open(path, "rb") as fh:
        blocks = pcapng_blocks(fh.read())
    fd, tmp = tempfile.mkstemp(suffix=".pcapng")
    with os.fdopen(fd, "wb") as fh:
        fh.write(b"".join(b for t, b in blocks if t != 0x0A))
    return tmp


def x509(der_hex):
    """subject, issuer, validity (UTC, ISO 8601) and SAN DNS names of one DER certificate"""
    from datetime import datetime
    der = bytes.fromhex(der_hex.replace(":", ""))
    r = subprocess.run(["openssl", "x509", "-inform", "DER", "-noout", "-subject", "-issuer",
                        "-startdate", "-enddate", "-nameopt", "RFC2253", "-ext",
                        "subjectAltName"], input=der, capture_output=True, check=True)
    out = {}
    for line in r.stdout.decode().splitlines():
        k, _, v = line.strip().partition("=")
        out[k] = v
    iso = lambda t: datetime.strptime(" ".join(t.split()), "%b %d %H:%M:%S %Y GMT").strftime(
        "%Y-%m-%dT%H:%M:%SZ")
    sans = re.findall(r"DNS:([^,\s]+)", r.stdout.decode())
    return {"certificate_subject": out["subject"], "certificate_issuer": out["issuer"],
            "not_before": iso(out["notBefore"]), "not_after": iso(out["notAfter"]),
            "certificate_dns_names": sans}


def keyed_facts(path, keylog, fs, plain_rows):
    """per stream, what tshark shows with the secrets: alerts named, certificates (the
    server's leaf, with TLS 1.3 too), whether a client certificate was asked for and sent"""
    rows, _, _ = tshark_rows(path, KEY_FIELDS, keylog)
    plain = Counter()
    for r in plain_rows:
        if r["tcp.stream"] and not r["icmp.type"] and not r["icmpv6.type"]:
            plain[int(r["tcp.stream"][0])] += len(r["tls.handshake.type"]) + len(r["tls.alert_message.desc"])
    out = []
    for f in fs:
        rs = [r for r in rows if r["tcp.stream"] and int(r["tcp.stream"][0]) == f["stream"]]
        seen, alerts, certs = 0, [], {"client": None, "server": None}
        hs = {"client": set(), "server": set()}
        for r in rs:
            src = (first(r, "ip.src") or first(r, "ipv6.src"), first(r, "tcp.srcport", int))
            side = "client" if src == f["client"] else "server"
            types = ints(r, "tls.handshake.type")
            descs = ints(r, "tls.alert_message.desc")
            seen += len(types) + len(descs)
            hs[side].update(types)
            frame = int(r["frame.number"][0])
            for d in descs:
                name = ALERTS.get(d, str(d))
                clear = any(a["frame"] == frame and not a["encrypted"] and a["description"] == name
                            for a in f["alerts"])
                alerts.append({"sender": side, "frame": frame, "description": name,
                               "encrypted": not clear})
            if 11 in types and certs[side] is None:
                certs[side] = r["tls.handshake.certificate"]
        decrypted = seen > plain[f["stream"]]
        e = {"stream": f["stream"], "decrypted": decrypted, "alerts": alerts}
        known = decrypted or f["tls_version"] == "TLSv1.2"
        if certs["server"]:
            e["server_certificate_count"] = len(certs["server"])
            e.update(x509(certs["server"][0]))
        e["client_certificate_requested"] = (13 in hs["server"]) if known else None
        e["client_certificate_sent"] = bool(certs["client"]) if known else None
        if certs["client"]:
            c = x509(certs["client"][0])
            e["client_certificate_subject"] = c["certificate_subject"]
            e["client_certificate_issuer"] = c["certificate_issuer"]
        out.append(e)
    return out


def main():
    d = sys.argv[1] if len(sys.argv) > 1 else HERE
    out = {"about": "Facts read from the packets by gen_expected.py (tshark fields); "
                    "see README.md. Regenerated by record.sh.", "files": {}}
    bad = []
    for name in sorted(INTENT):
        path = os.path.join(d, name)
        if not os.path.exists(path):
            bad.append("%s: missing" % name)
            continue
        want_vantage, want = INTENT[name]
        keys = path[:-len(".pcap")] + ".keys" if path.endswith(".pcap") else None
        keys = keys if keys and os.path.exists(keys) else None
        dsb = has_dsb(path)
        plain = without_secrets(path) if dsb else path
        rows, rc, err = tshark_rows(plain)
        if dsb:
            os.unlink(plain)
        fs = [facts(c) for c in connections(rows)]
        got = [oracle(f, want_vantage) for f in fs]
        vantage = capture_vantage(fs)
        ok = (Counter(got) == want) if isinstance(want, Counter) else (got == want)
        if not ok:
            bad.append("%s: verdicts %s, intended %s" % (name, got, dict(want) if isinstance(want, Counter) else want))
        if vantage != want_vantage:
            bad.append("%s: TTLs say capture point %s, intended %s" % (name, vantage, want_vantage))
        if rc != 0 and name != "tls13_ok_truncated.pcap":
            bad.append("%s: tshark exit %d: %s" % (name, rc, err))
        entry = {"args": [], "vantage": vantage, "connection_count": len(fs),
                 "connections": [expected_conn(f, v) for f, v in zip(fs, got)]}
        if keys or dsb:
            entry["keylog"] = os.path.basename(keys) if keys else "pcapng Decryption Secrets Block"
            entry["with_keys"] = keyed_facts(path, keys, fs, rows)
        if dsb:
            # the DSB is read without being asked: the report names the decrypted alert
            for c, k in zip(entry["connections"], entry["with_keys"]):
                a = c.get("alert")
                named = [x for x in k["alerts"] if a and x["sender"] == a["sender"]]
                if a and a.get("inferred") and named:
                    c["alert"] = {"sender": a["sender"], "description": named[0]["description"],
                                  "encrypted": True, "inferred": False, "decrypted": True}
        out["files"][name] = entry
        print("%-40s %-7s %2d conn  %s" % (name, vantage, len(fs), " ".join(got)))
    with open(os.path.join(d, "expected.json"), "w") as fh:
        json.dump(out, fh, indent=1)
        fh.write("\n")
    if bad:
        print("\nRECORDING DID NOT PRODUCE THE INTENDED SHAPE:\n  " + "\n  ".join(bad), file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
