#!/usr/bin/python3
"""Small servers and clients used by record.sh to stage each failure for real.

Standard library only. Each subcommand runs in one network namespace (record.sh
starts it with `ip netns exec`). Servers run until killed; clients exit by
themselves and print one line saying what happened.

Servers (dual-stack, listen on [::]:PORT):
  silent PORT            accept, never read, never answer (stalled backend)
  reset PORT             accept, read 5 bytes, close with the rest unread -> RST
  close PORT             accept, read the whole first TLS record, close -> FIN
  close-on-accept PORT   accept and close at once, before anything arrives -> FIN; the
                         kernel then resets whatever the client sends
  delay-proxy PORT TARGET_PORT SECONDS
                         forward to 127.0.0.1:TARGET_PORT, holding the server's first
                         bytes back SECONDS (a backend slow to answer the ClientHello)
  reuse-server PORT CERT KEY
                         1st connection: full TLS handshake; later ones: silent
  udp PORT               answer every UDP datagram with a short reply (DNS-ish noise)
Clients:
  tls HOST PORT SNI TIMEOUT [--rst] [--sport N] [--wait S]
                         TLS handshake with a timeout; on timeout close (FIN), or
                         with --rst set SO_LINGER 0 first so close sends RST;
                         --wait sleeps S seconds between connect and ClientHello
  reuse HOST PORT SPORT SNI
                         two connections from the same source port: the first does
                         a handshake and resets (no TIME_WAIT), the second gives up
                         after 3 s
Link emulation:
  vlan TAP IFACE VID     userspace 802.1Q: frames the kernel sends on tap TAP leave
                         IFACE tagged with VID; frames from IFACE go to TAP untagged
                         (this kernel has no 8021q module, see README)
"""
import fcntl
import os
import select
import socket
import ssl
import struct
import sys
import threading
import time


def listen(port):
    s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    s.bind(("::", port))
    s.listen(64)
    return s


KEEP = []  # connections the silent server holds open forever


def serve(port, handler):
    s = listen(port)
    while True:
        c, _ = s.accept()
        threading.Thread(target=handler, args=(c,), daemon=True).start()


def h_silent(c):
    KEEP.append(c)


def h_reset(c):
    c.recv(5)          # the TLS record header only
    time.sleep(0.3)    # let the rest of the ClientHello arrive, unread
    c.close()          # unread data in the receive queue -> kernel sends RST


def read_record(c):
    buf = b""
    while len(buf) < 5:
        d = c.recv(5 - len(buf))
        if not d:
            return buf
        buf += d
    need = 5 + struct.unpack("!H", buf[3:5])[0]
    while len(buf) < need:
        d = c.recv(need - len(buf))
        if not d:
            break
        buf += d
    return buf


def h_close(c):
    read_record(c)
    time.sleep(0.05)
    c.close()          # everything read -> FIN


def h_close_on_accept(c):
    c.close()          # nothing read, nothing queued -> FIN


def pump(src, dst, delay):
    first = True
    try:
        while True:
            d = src.recv(65536)
            if not d:
                break
            if first and delay:
                time.sleep(delay)
            first = False
            dst.sendall(d)
        dst.shutdown(socket.SHUT_WR)
    except OSError:
        pass


def cmd_delay_proxy(port, target, delay):
    s = listen(port)
    while True:
        c, _ = s.accept()
        b = socket.create_connection(("127.0.0.1", target))
        threading.Thread(target=pump, args=(c, b, 0), daemon=True).start()
        threading.Thread(target=pump, args=(b, c, delay), daemon=True).start()


def cmd_reuse_server(port, cert, key):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    s = listen(port)
    n = 0
    while True:
        c, _ = s.accept()
        n += 1
        if n == 1:
            def run(c=c):
                try:
                    t = ctx.wrap_socket(c, server_side=True)
                    t.recv(100)
                except (OSError, ssl.SSLError):
                    pass
            threading.Thread(target=run, daemon=True).start()
        else:
            KEEP.append(c)


def cmd_udp(port):
    s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    s.bind(("::", port))
    while True:
        d, a = s.recvfrom(2048)
        s.sendto(d[:2] + b"\x81\x80" + d[4:], a)


def client_ctx():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def rst_close(s):
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()


def tls_attempt(host, port, sni, timeout, sport=None, wait=0):
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    if sport:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("", sport))
    s.settimeout(timeout)
    s.connect((host, port))
    time.sleep(wait)
    t = client_ctx().wrap_socket(s, server_hostname=sni, do_handshake_on_connect=False)
    t0 = time.monotonic()
    try:
        t.do_handshake()
        return t, "handshake done (%s)" % t.version()
    except socket.timeout:
        return t, "handshake timed out after %.1f s" % (time.monotonic() - t0)
    except (OSError, ssl.SSLError) as e:
        return t, "handshake failed: %s" % e


def cmd_tls(args):
    host, port, sni, timeout = args[0], int(args[1]), args[2], float(args[3])
    sport = int(args[args.index("--sport") + 1]) if "--sport" in args else None
    wait = float(args[args.index("--wait") + 1]) if "--wait" in args else 0
    t, what = tls_attempt(host, port, sni, timeout, sport, wait)
    if "--rst" in args:
        rst_close(t)
        what += ", closed with RST"
    else:
        t.close()
        what += ", closed"
    print("lab tls %s:%d: %s" % (host, port, what), flush=True)


def cmd_reuse_client(host, port, sport, sni):
    t, what = tls_attempt(host, port, sni, 3, sport)
    try:
        t.sendall(b"ping")
    except OSError:
        pass
    time.sleep(0.2)
    rst_close(t)
    print("lab reuse #1 from port %d: %s, reset" % (sport, what), flush=True)
    time.sleep(0.5)
    t, what = tls_attempt(host, port, sni, 3, sport)
    t.close()
    print("lab reuse #2 from port %d: %s, closed" % (sport, what), flush=True)


TUNSETIFF = 0x400454CA
IFF_TAP, IFF_NO_PI = 0x0002, 0x1000
ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4


def cmd_vlan(tap, iface, vid):
    fd = os.open("/dev/net/tun", os.O_RDWR)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", tap.encode(), IFF_TAP | IFF_NO_PI))
    raw = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    raw.bind((iface, 0))
    tag = struct.pack("!HH", 0x8100, vid & 0x0FFF)
    while True:
        r, _, _ = select.select([fd, raw], [], [])
        if fd in r:
            f = os.read(fd, 65536)
            try:
                raw.send(f[:12] + tag + f[12:])
            except OSError:
                pass  # link not up yet

        if raw in r:
            f, addr = raw.recvfrom(65536)
            if addr[2] == PACKET_OUTGOING:
                continue
            # the receiving kernel moves the tag to metadata; strip it if still inline
            if f[12:14] == b"\x81\x00":
                f = f[:12] + f[16:]
            try:
                os.write(fd, f)
            except OSError:
                pass  # tap not up yet


def main():
    a = sys.argv[1:]
    if not a:
        sys.exit(__doc__)
    cmd, rest = a[0], a[1:]
    handlers = {"silent": h_silent, "reset": h_reset, "close": h_close,
                "close-on-accept": h_close_on_accept}
    if cmd in handlers:
        serve(int(rest[0]), handlers[cmd])
    elif cmd == "reuse-server":
        cmd_reuse_server(int(rest[0]), rest[1], rest[2])
    elif cmd == "delay-proxy":
        cmd_delay_proxy(int(rest[0]), int(rest[1]), float(rest[2]))
    elif cmd == "udp":
        cmd_udp(int(rest[0]))
    elif cmd == "tls":
        cmd_tls(rest)
    elif cmd == "reuse":
        cmd_reuse_client(rest[0], int(rest[1]), int(rest[2]), rest[3])
    elif cmd == "vlan":
        cmd_vlan(rest[0], rest[1], int(rest[2]))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
