#!/usr/bin/python3
"""Cross-check expected.json against tshark display filters.

gen_expected.py reads tshark *fields* and computes the facts itself (sequence coverage,
raw ClientHello bytes). This script checks the same facts a second, independent way: it
counts frames matching Wireshark display filters (`-z io,stat`), so a user can repeat any
check in Wireshark. The ClientHello count is cross-checked as
  dissected first ClientHello (tls.handshake.type == 1 before the first hello's end; a
  second hello after a HelloRetryRequest is a new message, not a transmission of the first)
  + client retransmissions that start inside the ClientHello (tcp.analysis.retransmission).

Usage: python3 crosscheck.py [SAMPLES_DIR]
"""
import json
import os
import re
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
TLS_PORTS = [4431, 4432, 4433, 4434, 4435, 8443, 8444, 8445, 9001, 9002, 9003, 9004, 9005,
             9009, 9010]
NAMES = {"protocol_version": 70, "handshake_failure": 40, "unknown_ca": 48}
VERS = {"TLSv1.3": "0x0304", "TLSv1.2": "0x0303"}


def counts(path, filters):
    out = []
    cfg = tempfile.mkdtemp()
    env = dict(os.environ, WIRESHARK_CONFIG_DIR=cfg)
    for i in range(0, len(filters), 40):
        chunk = filters[i:i + 40]
        cmd = ["tshark", "-r", path, "-n", "-2", "-q"]
        for p in TLS_PORTS:
            cmd += ["-d", "tcp.port==%d,tls" % p]
        cmd += ["-z", "io,stat,0," + ",".join(chunk)]
        r = subprocess.run(cmd, capture_output=True, text=True, env=env)
        row = [ln for ln in r.stdout.splitlines() if "<>" in ln]
        if not row:
            raise SystemExit("%s: no io,stat output: %s" % (path, r.stderr))
        cells = [c.strip() for c in row[-1].split("|")[2:-1]]
        out += [int(cells[2 * k]) for k in range(len(chunk))]
    return out


def fields(path, flt, field):
    cfg = tempfile.mkdtemp()
    cmd = ["tshark", "-r", path, "-n", "-2"]
    for p in TLS_PORTS:
        cmd += ["-d", "tcp.port==%d,tls" % p]
    cmd += ["-Y", flt, "-T", "fields", "-e", field]
    r = subprocess.run(cmd, capture_output=True, text=True,
                       env=dict(os.environ, WIRESHARK_CONFIG_DIR=cfg))
    return [v for v in r.stdout.split() if v]


def main():
    d = sys.argv[1] if len(sys.argv) > 1 else HERE
    exp = json.load(open(os.path.join(d, "expected.json")))["files"]
    bad, checked = [], 0
    for name, e in sorted(exp.items()):
        path = os.path.join(d, name)
        nstreams = len(set(fields(path, "tcp", "tcp.stream")))
        if nstreams != e["connection_count"]:
            bad.append("%s: %d tcp.stream values, expected %d" % (name, nstreams, e["connection_count"]))
        checks, flts = [], []
        for c in e["connections"]:
            s = "tcp.stream==%d && !icmp && !icmpv6" % c["stream"]
            ipk = "ipv6" if ":" in c["client_ip"] else "ip"
            fromc = "%s.src==%s && tcp.srcport==%d" % (ipk, c["client_ip"], c["client_port"])
            froms = "%s.src==%s && tcp.srcport==%d" % (ipk, c["server_ip"], c["server_port"])

            def add(key, flt, conv, s=s):
                checks.append((c["stream"], key, conv, c.get(key, "absent")))
                flts.append("%s && %s" % (s, flt))
            add("syn_count", "tcp.flags.syn==1 && tcp.flags.ack==0", lambda n: n)
            add("synack_seen", "tcp.flags.syn==1 && tcp.flags.ack==1", lambda n: n > 0)
            add("client_fin", fromc + " && tcp.flags.fin==1", lambda n: n > 0)
            add("client_rst", fromc + " && tcp.flags.reset==1", lambda n: n > 0)
            add("server_fin", froms + " && tcp.flags.fin==1", lambda n: n > 0)
            add("server_rst", froms + " && tcp.flags.reset==1", lambda n: n > 0)
            if c.get("clienthello_count"):
                # first copy (dissected) + retransmissions starting inside the ClientHello
                ch_end = fields(path, "%s && tls.handshake.type==1" % s, "tcp.nxtseq")
                first = "%s && tls.handshake.type==1" % s
                if not ch_end:  # not dissected (snaplen cut, or an HTTP port): first payload
                    ch_end = fields(path, "%s && %s && tcp.seq==1 && tcp.len>0" % (s, fromc), "tcp.nxtseq")
                    first = "%s && %s && tcp.seq==1 && tcp.len>0 && !tcp.analysis.retransmission" % (s, fromc)
                end = int(ch_end[0])
                first += " && tcp.seq<%d" % end
                checks.append((c["stream"], "clienthello_count", None, c["clienthello_count"]))
                flts.append(first)
                flts.append("%s && %s && tcp.analysis.retransmission && tcp.len>0 && tcp.seq<%d"
                            % (s, fromc, end))
                checks.append((c["stream"], "+rtx", None, None))
                add("clienthello_acked", "%s && tcp.flags.ack==1 && tcp.ack>=%d" % (froms, end),
                    lambda n: n > 0)
            a = c.get("alert", "absent")
            if isinstance(a, dict):
                side = fromc if a["sender"] == "client" else froms
                add("alert", "%s && tls.alert_message.desc==%d" % (side, NAMES[a["description"]]),
                    lambda n, a=a: a if n > 0 else None)
            elif a is None:
                add("alert", "tls.record.content_type==21", lambda n: None if n == 0 else "alert seen")
            if "sni" in c:
                # on an HTTP port tshark does not dissect the ClientHello: look at the bytes
                add("sni", '(tls.handshake.extensions_server_name=="%s" || (%s && tcp.port==8080'
                    ' && tcp.payload contains "%s"))' % (c["sni"], fromc, c["sni"]),
                    lambda n, v=c["sni"]: v if n > 0 else None)
            if "tls_version" in c:
                v = VERS[c["tls_version"]]
                add("tls_version", "tls.handshake.type==2 && (tls.handshake.extensions.supported_version==%s"
                    " || (!tls.handshake.extensions.supported_version && tls.handshake.version==%s))" % (v, v),
                    lambda n, v=c["tls_version"]: v if n > 0 else None)
        ns = counts(path, flts)
        i = 0
        for stream, key, conv, want in checks:
            if key == "+rtx":
                continue
            if key == "clienthello_count":
                got = ns[i] + ns[i + 1]
                i += 2
            else:
                got = conv(ns[i])
                i += 1
            checked += 1
            if got != want:
                bad.append("%s stream %d %s: tshark filter says %r, expected.json %r" % (name, stream, key, got, want))
    print("%d facts cross-checked with display filters, %d mismatches" % (checked, len(bad)))
    for b in bad:
        print("  " + b)
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
