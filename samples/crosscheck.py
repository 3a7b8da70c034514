#!/usr/bin/python3
"""Cross-check expected.json against tshark display filters.

gen_expected.py reads tshark *fields* and computes the facts itself (sequence coverage,
raw ClientHello bytes). This script checks the same facts a second, independent way: it
counts frames matching Wireshark display filters (`-z io,stat`), so a user can repeat any
check in Wireshark. The ClientHello count is cross-checked as
  dissected first ClientHello (tls.handshake.type == 1 before the first hello's end; a
  second hello after a HelloRetryRequest is a new message, not a transmission of the first)
  + client retransmissions that start inside the ClientHello (tcp.analysis.retransmission).

Files with a key log (`with_keys` in expected.json) are checked again with the secrets
(`-o tls.keylog_file:`, or the pcapng's own Decryption Secrets Block): each named alert by
frame, sender and `tls.alert_message.desc`; the server's certificate by the names and times
tshark's X.509 dissector shows (gen_expected.py read them from the DER with openssl); the
CertificateRequest and the client's Certificate by handshake type.

Usage: python3 crosscheck.py [SAMPLES_DIR]
"""
import json
import os
import re
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
TLS_PORTS = [4431, 4432, 4433, 4434, 4435, 4440, 4441, 4442, 4443, 8443, 8444, 8445, 9001, 9002, 9003, 9004, 9005,
             9009, 9010]
NAMES = {"close_notify": 0, "protocol_version": 70, "handshake_failure": 40, "unknown_ca": 48,
         "bad_certificate": 42, "certificate_expired": 45, "certificate_required": 116}
VERS = {"TLSv1.3": "0x0304", "TLSv1.2": "0x0303"}


def counts(path, filters, opts=()):
    out = []
    cfg = tempfile.mkdtemp()
    env = dict(os.environ, WIRESHARK_CONFIG_DIR=cfg)
    for i in range(0, len(filters), 40):
        chunk = filters[i:i + 40]
        cmd = ["tshark", "-r", path, "-n", "-2", "-q"] + list(opts)
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


def fields(path, flt, field, opts=(), lines=False):
    cfg = tempfile.mkdtemp()
    cmd = ["tshark", "-r", path, "-n", "-2"] + list(opts)
    for p in TLS_PORTS:
        cmd += ["-d", "tcp.port==%d,tls" % p]
    cmd += ["-Y", flt, "-T", "fields", "-e", field]
    r = subprocess.run(cmd, capture_output=True, text=True,
                       env=dict(os.environ, WIRESHARK_CONFIG_DIR=cfg))
    if lines:
        return [v for v in r.stdout.splitlines() if v]
    return [v for v in r.stdout.split() if v]


def utc(iso):
    """2024-01-01T00:00:00Z as tshark's x509af.utcTime shows it"""
    return iso.replace("T", " ").replace("Z", " (UTC)")


def cn(name):
    """the CN value of an RFC 2253 name (the lab's names have one attribute)"""
    return name.split("CN=", 1)[1].split(",", 1)[0]


def check_with_keys(d, name, e, bad):
    """the with_keys facts, with the secrets; returns how many were checked"""
    path = os.path.join(d, name)
    opts = [] if e["keylog"].startswith("pcapng") else ["-o", "tls.keylog_file:" + os.path.join(d, e["keylog"])]
    checked = 0
    for k in e["with_keys"]:
        c = next(c for c in e["connections"] if c["stream"] == k["stream"])
        s = "tcp.stream==%d" % k["stream"]
        ipk = "ipv6" if ":" in c["client_ip"] else "ip"
        side = {"client": "%s.src==%s && tcp.srcport==%d" % (ipk, c["client_ip"], c["client_port"]),
                "server": "%s.src==%s && tcp.srcport==%d" % (ipk, c["server_ip"], c["server_port"])}
        want, flts = [], []
        for a in k["alerts"]:
            f = "%s && frame.number==%d && %s && tls.alert_message.desc==%d" % (
                s, a["frame"], side[a["sender"]], NAMES[a["description"]])
            want.append(("alert %s frame %d" % (a["description"], a["frame"]), True))
            flts.append(f)
            if not opts:
                continue  # a DSB cannot be switched off: no keyless view of it here
            want.append(("alert frame %d encrypted" % a["frame"], a["encrypted"]))
            flts.append(None)
        want.append(("client_certificate_requested", k["client_certificate_requested"]))
        flts.append("%s && %s && tls.handshake.type==13" % (s, side["server"]))
        want.append(("client_certificate_sent", k["client_certificate_sent"]))
        flts.append("%s && %s && tls.handshake.type==11 && tls.handshake.certificates_length>0"
                    % (s, side["client"]))
        srv_cert = "%s && %s && tls.handshake.type==11" % (s, side["server"])
        if "certificate_subject" in k:
            for key in ("certificate_subject", "certificate_issuer"):
                v = cn(k[key])
                want.append((key, True))
                flts.append('%s && (x509sat.uTF8String=="%s" || x509sat.printableString=="%s")'
                            % (srv_cert, v, v))
        keyed = [f for f in flts if f is not None]
        ns = iter(counts(path, keyed, opts))
        plain = iter(counts(path, [f for f, nxt in zip(flts, flts[1:] + ["x"]) if nxt is None]))
        for (key, v), f in zip(want, flts):
            got = (next(plain) == 0) if f is None else (next(ns) > 0)
            checked += 1
            if got != v:
                bad.append("%s stream %d %s: tshark with keys says %r, expected.json %r" % (name, k["stream"], key, got, v))
        if "certificate_subject" in k:
            first = fields(path, srv_cert, "tls.handshake.certificate_length", opts)
            n = len(first[0].split(",")) if first else 0
            times = fields(path, srv_cert, "x509af.utcTime", opts, lines=True)
            times = times[0].split(",")[:2] if times else []
            for key, got, v in (("server_certificate_count", n, k["server_certificate_count"]),
                                ("validity", times, [utc(k["not_before"]), utc(k["not_after"])])):
                checked += 1
                if got != v:
                    bad.append("%s stream %d %s: tshark with keys says %r, expected.json %r" % (name, k["stream"], key, got, v))
    return checked


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
            if isinstance(a, dict) and a.get("inferred"):
                # without keys: an alert-sized (19-byte) TLS 1.3 record from that side
                side = fromc if a["sender"] == "client" else froms
                add("alert", "%s && tls.record.opaque_type==23 && tls.record.length==19" % side,
                    lambda n, a=a: a if n > 0 else None)
            elif isinstance(a, dict):
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
        if "with_keys" in e:
            checked += check_with_keys(d, name, e, bad)
    print("%d facts cross-checked with display filters, %d mismatches" % (checked, len(bad)))
    for b in bad:
        print("  " + b)
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
