#!/usr/bin/env bash
# Seeds the fuzz corpora (corpus/ is gitignored; nothing here is committed but this script).
#   pipeline:    every capture in ../samples (and a few small ones from ../../shared/corpus/public)
#   compare:     each paired sample: u32 LE length of the client side, client side, server side
#   tls_records: the TCP payloads of each sample, per connection, in the target's chunk format
#                [ctl(dir), len_lo, len_hi, bytes...]
set -euo pipefail
cd "$(dirname "$0")"
mkdir -p corpus/pipeline corpus/tls_records corpus/compare
for c in ../samples/*.client.pcap; do
    s="${c%.client.pcap}.server.pcap"
    [ -f "$s" ] || continue
    python3 -c 'import struct,sys; a=open(sys.argv[1],"rb").read(); b=open(sys.argv[2],"rb").read(); sys.stdout.buffer.write(struct.pack("<I", len(a)) + a + b)' \
        "$c" "$s" >"corpus/compare/$(basename "${c%.client.pcap}")"
done
for f in ../samples/*.pcap ../samples/*.pcapng ../samples/*.gz ../samples/*.zst; do
    [ -f "$f" ] && cp "$f" "corpus/pipeline/$(basename "$f")"
done
pub=../../shared/corpus/public
if [ -d "$pub" ]; then
    find "$pub" -type f \( -name '*.pcap' -o -name '*.pcapng' \) -size -16k -print0 |
        while IFS= read -r -d '' f; do
            cp "$f" "corpus/pipeline/public_$(basename "$(dirname "$f")")_$(basename "$f")"
        done
fi
python3 - corpus/tls_records ../samples/*.pcap <<'PY'
import struct, sys, os
out = sys.argv[1]
def packets(path):
    b = open(path, 'rb').read()
    magic = b[:4]
    if magic in (b'\xd4\xc3\xb2\xa1', b'\x4d\x3c\xb2\xa1'): e = '<'
    elif magic in (b'\xa1\xb2\xc3\xd4', b'\xa1\xb2\x3c\x4d'): e = '>'
    else: return
    lt = struct.unpack(e + 'I', b[20:24])[0] & 0xffff
    off = 24
    while off + 16 <= len(b):
        incl = struct.unpack(e + 'I', b[off + 8:off + 12])[0]
        yield lt, b[off + 16:off + 16 + incl]
        off += 16 + incl
def ip_of(lt, d):
    if lt == 1:
        off, et = 14, struct.unpack('>H', d[12:14])[0]
        while et in (0x8100, 0x88a8):
            et = struct.unpack('>H', d[off + 2:off + 4])[0]; off += 4
        return d[off:]
    if lt == 113: return d[16:]
    if lt == 276: return d[20:]
    if lt in (101, 228, 229): return d
    if lt == 0: return d[4:]
    return b''
def tcp(ip):
    if len(ip) < 20: return None
    v = ip[0] >> 4
    if v == 4:
        if ip[9] != 6: return None
        ihl = (ip[0] & 15) * 4
        tot = struct.unpack('>H', ip[2:4])[0]
        src, dst, t = ip[12:16], ip[16:20], ip[ihl:tot]
    elif v == 6:
        if len(ip) < 40 or ip[6] != 6: return None
        src, dst, t = ip[8:24], ip[24:40], ip[40:40 + struct.unpack('>H', ip[4:6])[0]]
    else: return None
    if len(t) < 20: return None
    sp, dp = struct.unpack('>HH', t[:4])
    return (src, sp), (dst, dp), t[(t[12] >> 4) * 4:]
for path in sys.argv[2:]:
    flows = {}
    for lt, d in packets(path):
        r = tcp(ip_of(lt, d))
        if not r or not r[2]: continue
        a, b, payload = r
        key = tuple(sorted([a, b]))
        f = flows.setdefault(key, {'first': a, 'chunks': []})
        f['chunks'].append((0 if a == f['first'] else 1, payload))
    for i, f in enumerate(flows.values()):
        blob = b''.join(bytes([d]) + struct.pack('<H', len(p)) + p for d, p in f['chunks'])
        name = os.path.join(out, '%s_%d' % (os.path.basename(path), i))
        open(name, 'wb').write(blob)
PY
# Encapsulations the decoder unwraps (GTP-U, CAPWAP, PPPoE, 6in4), as whole frames for the
# decode half of tls_records (raw IPv4 for link type 101, Ethernet for link type 1).
python3 - corpus/tls_records <<'PY'
import struct, sys, os
out = sys.argv[1]
def ip4(proto, payload, src=b'\x0a\x00\x00\x01', dst=b'\x0a\x00\x00\x02'):
    return struct.pack('>BBHHHBBH4s4s', 0x45, 0, 20 + len(payload), 1, 0x4000, 64, proto, 0,
                       src, dst) + payload
def tcp(payload=b''):
    return struct.pack('>HHIIBBHHH', 40000, 443, 1, 0, 0x50, 0x18, 65535, 0, 0) + payload
def udp(sport, dport, payload):
    return struct.pack('>HHHH', sport, dport, 8 + len(payload), 0) + payload
hello = bytes([22, 3, 1, 0, 4, 1, 0, 0, 0])
inner = ip4(6, tcp(hello))
gtp = struct.pack('>BBHI', 0x30, 0xff, len(inner), 1) + inner
gtp_ext = struct.pack('>BBHIHBB', 0x34, 0xff, len(inner) + 8, 1, 0, 0, 0x85) + bytes([1, 0, 0, 0]) + inner
eth = b'\x00\x11\x22\x33\x44\x55\x66\x77\x88\x99\xaa\xbb\x08\x00' + inner
capwap = struct.pack('>BBHI', 0, 0x10, 0, 0) + eth
wifi = bytes([0x08, 0x01]) + bytes(22) + bytes([0xaa, 0xaa, 3, 0, 0, 0, 8, 0]) + inner
capwap80211 = struct.pack('>BBHI', 0, 0x10, 0x0100 | 0x10, 0) + wifi
pppoe = (b'\x00\x11\x22\x33\x44\x55\x66\x77\x88\x99\xaa\xbb\x88\x64' +
         struct.pack('>BBHHH', 0x11, 0, 1, len(inner) + 2, 0x0021) + inner)
six4 = ip4(41, struct.pack('>IHBB16s16s', 0x60000000, len(tcp(hello)), 6, 64, bytes(16), bytes(16)) + tcp(hello))
seeds = {
    'frame_gtpu': ip4(17, udp(2152, 2152, gtp)),
    'frame_gtpu_ext': ip4(17, udp(2152, 2152, gtp_ext)),
    'frame_capwap_8023': ip4(17, udp(5247, 5247, capwap)),
    'frame_capwap_80211': ip4(17, udp(5247, 5247, capwap80211)),
    'frame_pppoe_eth': pppoe,
    'frame_6in4': six4,
    'frame_frag_first': ip4(6, tcp(hello))[:6] + b'\x20\x00' + ip4(6, tcp(hello))[8:],
}
for name, b in seeds.items():
    open(os.path.join(out, name), 'wb').write(b)
    # The same frame as a one-packet pcap for the pipeline target.
    lt = 1 if name.endswith('_eth') else 101
    pcap = struct.pack('<IHHiIII', 0xa1b2c3d4, 2, 4, 0, 0, 262144, lt)
    pcap += struct.pack('<IIII', 1700000000, 0, len(b), len(b)) + b
    open(os.path.join(out, '..', 'pipeline', name + '.pcap'), 'wb').write(pcap)
PY
echo "seeded: $(ls corpus/pipeline | wc -l) pipeline, $(ls corpus/tls_records | wc -l) tls_records, $(ls corpus/compare | wc -l) compare"
