#!/usr/bin/env bash
# record.sh - re-record every capture in samples/ from scratch.
#
#   sudo bash samples/record.sh              # all scenarios, ~95 s + ~45 s of cross-checks
#   sudo bash samples/record.sh tls13_ok ... # only these scenario functions (for debugging)
#   OUT=/tmp/x sudo -E bash samples/record.sh   # write somewhere else; KEEP_TMP=1 keeps the lab dir
#
# Builds three network namespaces joined by veth pairs and a router that decrements
# TTL / hop limit:
#
#   td-cli (client / gateway)            td-rtr (router, iptables)           td-srv (backend)
#   c0 10.99.1.2  fd00:99:1::2  <---->  r0 10.99.1.1  r1 10.99.2.1  <---->  s0 10.99.2.2  fd00:99:2::2
#   cv (802.1Q vid 42, see vlan) <---->  rv                                      10.99.2.3 (VLAN path)
#   (only during `nat`: VIP 10.99.9.100:8446 on the router, DNAT to 10.99.2.2:9006,
#    SNAT to 10.99.2.1:20000-20100)
#
# Servers on the backend (td-srv):
#   443 nginx TLS 1.2+1.3 (v4, v6)   4434 nginx TLS (router clamps MSS to 300)
#   9004 nginx TLS (router drops packets carrying the SNI "backend.test")
#   9006 nginx TLS (reached only through the router's NAT, see nat)
#   9007 nginx TLS (router drops its SYNs, only during syn_blocked)
#   9008 nginx TLS (router answers SNI "reset.test" with a forged RST, only during reset_injected)
#   8080 nginx plain HTTP, "return 502"   81 nothing (closed)
#   4431 s_server -tls1_3 only   4432 s_server TLS 1.2 one cipher   4433 s_server big chain
#   9001/8445 lab.py silent   9002 lab.py reset   9003 lab.py close   9005 lab.py reuse-server
#   udp/53 lab.py udp   4435 s_server TLS 1.3, P-256 only (HelloRetryRequest)
#   9009 lab.py close-on-accept   9010 lab.py delay-proxy (7 s) -> 127.0.0.1:4436 s_server
#   4440 s_server TLS 1.3, client certificate required (-Verify 1, trusts the lab client CA only)
#   4444 s_server TLS 1.2, the same client certificate requirement
#   4441 s_server TLS 1.2+1.3, certificate for other.test / *.other.test (lab test CA)
#   4442 s_server TLS 1.2+1.3, certificate for backend.test that expired 2024-01-01 (lab test CA)
#   4443 s_server TLS 1.2+1.3, sends only its leaf (lab test CA -> intermediate -> leaf)
# Router rules: 8443 SYN dropped; 8444 SYN rejected with ICMP admin-prohibited (v4 and v6);
# ICMP frag-needed from the router itself dropped (path-MTU black hole while r0 MTU is 1280).
# Only while their scenario records: 9007 SYN dropped (syn_blocked); 9008 ClientHello with
# SNI "reset.test" answered with a forged RST (reset_injected).
#
# Every capture is written to a temp dir, then moved into samples/, then expected.json is
# regenerated from the packets by gen_expected.py (which fails if a recording did not
# produce the intended shape) and checked again with display filters by crosscheck.py.
# Scenarios for certificates and mutual TLS also keep the key log their client wrote
# (openssl s_client -keylogfile, SSLKEYLOGFILE for curl and gnutls-cli) as NAME.keys beside
# the capture: test secrets of throwaway lab certificates made fresh on every run.
# Needs: tcpdump tshark (dumpcap editcap)
# openssl curl nginx python3 iproute2 iptables ethtool netcat-openbsd zstd gzip gnutls-cli.
set -euo pipefail

[ "$(id -u)" = 0 ] || { echo "run as root: sudo bash $0" >&2; exit 1; }
for t in tcpdump tshark dumpcap editcap openssl curl nginx ip iptables ip6tables ethtool nc zstd gzip gnutls-cli /usr/bin/python3; do
    command -v "$t" >/dev/null || { echo "missing tool: $t (apt-get install -y tcpdump tshark openssl curl nginx iproute2 iptables ethtool netcat-openbsd zstd python3 gnutls-bin)" >&2; exit 1; }
done
for n in td-cli td-rtr td-srv; do
    ip netns list | grep -qw "$n" && { echo "namespace $n already exists; delete it first (ip netns del $n)" >&2; exit 1; }
done

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
OUT=${OUT:-$HERE}
LAB="/usr/bin/python3 $HERE/lab.py"
T=$(mktemp -d /tmp/tdrec.XXXXXX)
mkdir -p "$T/out"
PIDS=()      # long-running servers, shims
CAPS=()      # running captures
START=$(date +%s)

log() { printf '[%3ss] %s\n' $(( $(date +%s) - START )) "$*"; }

cleanup() {
    set +e
    for p in "${CAPS[@]}" "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
    sleep 0.3
    for p in "${CAPS[@]}" "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done
    # anything else still running inside the lab namespaces was started by this script
    for n in td-cli td-rtr td-srv; do
        for p in $(ip netns pids "$n" 2>/dev/null); do kill -9 "$p" 2>/dev/null; done
    done
    for n in td-cli td-rtr td-srv; do ip netns del "$n" 2>/dev/null; done
    [ -n "${KEEP_TMP:-}" ] && echo "kept $T" || rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 130' INT TERM


cli() { ip netns exec td-cli "$@"; }
rtr() { ip netns exec td-rtr "$@"; }
srv() { ip netns exec td-srv "$@"; }
# run a client command, log its outcome, never fail the script
try() { local rc=0; "$@" >"$T/last.out" 2>&1 || rc=$?; log "  exit $rc: $(tail -c 300 "$T/last.out" | tr '\n' ' ')"; }
# bg NS CMD...: start a long-running process in namespace NS. `ip netns exec` execs the
# command, so $! is the process itself and cleanup can kill it by pid.
bg() { local ns=$1; shift; ip netns exec "$ns" "$@" >>"$T/bg.log" 2>&1 & PIDS+=($!); }

# cap FILE NS IFACE FILTER [tcpdump options...]: start a capture, wait until it listens
cap() {
    local file=$1 ns=$2 ifc=$3 filter=$4; shift 4
    local f=(); [ -n "$filter" ] && f=("$filter")
    ip netns exec "$ns" tcpdump -Z root -U --immediate-mode -n -s 0 -i "$ifc" "$@" -w "$T/out/$file" "${f[@]}" \
        2>"$T/$file.err" &
    CAPS+=($!)
    for _ in $(seq 50); do grep -q "listening on" "$T/$file.err" 2>/dev/null && return 0; sleep 0.1; done
    echo "tcpdump for $file did not start:" >&2; cat "$T/$file.err" >&2; exit 1
}
# stop all running captures (SIGINT makes tcpdump/dumpcap flush and exit)
stopcaps() {
    sleep "${1:-0.5}"
    for p in "${CAPS[@]}"; do kill -INT "$p" 2>/dev/null || true; done
    for p in "${CAPS[@]}"; do wait "$p" 2>/dev/null || true; done
    CAPS=()
}

CURL=(curl -s -o /dev/null --resolve backend.test:443:10.99.2.2)
url() { echo "https://backend.test:$1/"; }   # --resolve for every port is added below
for p in 81 4431 4432 4433 4434 4440 8080 8443 8444 9001 9002 9003 9004 9007 9009 9010; do
    CURL+=(--resolve "backend.test:$p:10.99.2.2")
done

# ---------------------------------------------------------------- certificates
certs() {
    log "certificates"
    local d=$T/pki
    mkdir -p "$d"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 \
        -keyout "$d/ec.key" -out "$d/ec.crt" -subj "/CN=backend.test" \
        -addext "subjectAltName=DNS:backend.test" 2>/dev/null
    # big chain for the MTU black hole: RSA-4096 root -> intermediate -> leaf with 150 SANs
    openssl req -x509 -newkey rsa:4096 -nodes -days 3650 -keyout "$d/root.key" -out "$d/root.crt" \
        -subj "/CN=tlsdiag lab root CA" -addext "basicConstraints=critical,CA:TRUE" 2>/dev/null
    openssl req -new -newkey rsa:4096 -nodes -keyout "$d/int.key" -out "$d/int.csr" \
        -subj "/CN=tlsdiag lab intermediate CA" 2>/dev/null
    printf 'basicConstraints=critical,CA:TRUE\n' >"$d/int.ext"
    openssl x509 -req -in "$d/int.csr" -CA "$d/root.crt" -CAkey "$d/root.key" -CAcreateserial \
        -days 3650 -extfile "$d/int.ext" -out "$d/int.crt" 2>/dev/null
    local sans="DNS:backend.test" i
    for i in $(seq 1 150); do sans+=",DNS:service-$i.backend-pool.internal.example.test"; done
    openssl req -new -newkey rsa:4096 -nodes -keyout "$d/big.key" -out "$d/big.csr" \
        -subj "/CN=backend.test" 2>/dev/null
    printf 'subjectAltName=%s\n' "$sans" >"$d/big.ext"
    openssl x509 -req -in "$d/big.csr" -CA "$d/int.crt" -CAkey "$d/int.key" -CAcreateserial \
        -days 3650 -extfile "$d/big.ext" -out "$d/big.crt" 2>/dev/null
    cat "$d/int.crt" "$d/root.crt" >"$d/chain.crt"
    certs_lab
}
# ec CN EXT OUT [ISSUER]: a P-256 key and certificate for /CN=CN with extensions EXT (one per
# line), signed by ISSUER (a name in $d with .crt and .key), self-signed without one
ec() {
    local d=$T/pki cn=$1 ext=$2 out=$3 issuer=${4:-}
    printf '%b\n' "$ext" >"$d/$out.ext"
    if [ -z "$issuer" ]; then
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 \
            -keyout "$d/$out.key" -out "$d/$out.crt" -subj "/CN=$cn" -extensions v3 \
            -config <(printf '[req]\ndistinguished_name=dn\n[dn]\n[v3]\n'; cat "$d/$out.ext") 2>/dev/null
        return
    fi
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$d/$out.key" \
        -out "$d/$out.csr" -subj "/CN=$cn" 2>/dev/null
    openssl x509 -req -in "$d/$out.csr" -CA "$d/$issuer.crt" -CAkey "$d/$issuer.key" \
        -CAcreateserial -days 3650 -extfile "$d/$out.ext" -out "$d/$out.crt" 2>/dev/null
}
# Small P-256 PKI for the certificate and mutual-TLS scenarios: a test CA the clients trust,
# an intermediate under it, leaves for a wrong name, an expired one and a leaf-only chain; a
# client CA the mTLS server trusts and a rogue CA it does not, each with a client certificate.
certs_lab() {
    local d=$T/pki
    local ca='basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign'
    local srv='basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth'
    local cl='basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth'
    ec "tlsdiag lab test CA" "$ca" labca
    ec "tlsdiag lab test intermediate CA" "$ca" labint labca
    ec "other.test" "$srv\nsubjectAltName=DNS:other.test,DNS:*.other.test" wrongname labca
    ec "backend.test" "$srv\nsubjectAltName=DNS:backend.test" leafonly labint
    ec "tlsdiag lab client CA" "$ca" clientca
    ec "tlsdiag lab rogue CA" "$ca" rogueca
    ec "gateway.test" "$cl" rogueclient rogueca
    # expired: valid 2023-01-01 to 2024-01-01 (openssl x509 in OpenSSL 3.0 takes no dates)
    mkdir -p "$d/db"; : >"$d/db/index.txt"
    printf '[ca]\ndefault_ca=lab\n[lab]\ndatabase=%s\nnew_certs_dir=%s\nserial=%s\n' \
        "$d/db/index.txt" "$d/db" "$d/db/serial" >"$d/ca.cnf"
    printf 'default_md=sha256\npolicy=any\nunique_subject=no\nx509_extensions=ext\n' >>"$d/ca.cnf"
    printf '[any]\ncommonName=supplied\n[ext]\n%b\nsubjectAltName=DNS:backend.test\n' "$srv" >>"$d/ca.cnf"
    echo 1000 >"$d/db/serial"
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$d/expired.key" \
        -out "$d/expired.csr" -subj "/CN=backend.test" 2>/dev/null
    openssl ca -batch -notext -config "$d/ca.cnf" -cert "$d/labca.crt" -keyfile "$d/labca.key" \
        -in "$d/expired.csr" -out "$d/expired.crt" -startdate 20230101000000Z \
        -enddate 20240101000000Z 2>/dev/null
}

# ---------------------------------------------------------------- topology
topology() {
    log "namespaces, veth, addresses, routes, router rules"
    local n
    for n in td-cli td-rtr td-srv; do ip netns add $n; ip -n $n link set lo up; done
    ip link add c0 netns td-cli type veth peer name r0 netns td-rtr
    ip link add s0 netns td-srv type veth peer name r1 netns td-rtr
    ip link add cv netns td-cli type veth peer name rv netns td-rtr
    ip -n td-cli addr add 10.99.1.2/24 dev c0
    ip -n td-cli addr add fd00:99:1::2/64 dev c0 nodad
    ip -n td-rtr addr add 10.99.1.1/24 dev r0
    ip -n td-rtr addr add fd00:99:1::1/64 dev r0 nodad
    ip -n td-rtr addr add 10.99.2.1/24 dev r1
    ip -n td-rtr addr add fd00:99:2::1/64 dev r1 nodad
    ip -n td-srv addr add 10.99.2.2/24 dev s0
    ip -n td-srv addr add 10.99.2.3/24 dev s0
    ip -n td-srv addr add fd00:99:2::2/64 dev s0 nodad
    local l
    for l in td-cli:c0 td-cli:cv td-rtr:r0 td-rtr:r1 td-rtr:rv td-srv:s0; do
        ip -n "${l%%:*}" link set "${l##*:}" up
        # wire-sized segments and correct checksums in the captures
        ip netns exec "${l%%:*}" ethtool -K "${l##*:}" tso off gso off gro off tx off rx off >/dev/null 2>&1 || true
    done
    ip -n td-cli route add default via 10.99.1.1
    ip -n td-cli -6 route add default via fd00:99:1::1
    ip -n td-srv route add default via 10.99.2.1
    ip -n td-srv -6 route add default via fd00:99:2::1
    rtr sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1 \
        net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0
    for n in td-cli td-srv; do
        # no per-destination TCP metrics: each connection starts from the same state
        ip netns exec $n sysctl -qw net.ipv4.tcp_no_metrics_save=1
    done

    # 802.1Q link (this kernel has no 8021q module): lab.py vlan creates tap "cv.42" in
    # td-cli and "rv.42" in td-rtr, and tags/untags frames on the veth pair cv <-> rv.
    bg td-cli $LAB vlan cv.42 cv 42
    bg td-rtr $LAB vlan rv.42 rv 42
    for _ in $(seq 50); do
        ip -n td-cli link show cv.42 >/dev/null 2>&1 && ip -n td-rtr link show rv.42 >/dev/null 2>&1 && break
        sleep 0.1
    done
    # IPv4 only on the VLAN link: no MLD/RS chatter in its capture
    cli sysctl -qw net.ipv6.conf.cv.disable_ipv6=1 net.ipv6.conf.cv/42.disable_ipv6=1
    rtr sysctl -qw net.ipv6.conf.rv.disable_ipv6=1 net.ipv6.conf.rv/42.disable_ipv6=1
    ip -n td-cli link set cv.42 address 02:00:00:00:42:02 mtu 1496 up
    ip -n td-rtr link set rv.42 address 02:00:00:00:42:01 mtu 1496 up
    ip -n td-cli addr add 10.99.3.2/24 dev cv.42
    ip -n td-rtr addr add 10.99.3.1/24 dev rv.42
    cli ethtool -K cv.42 tso off gso off tx off >/dev/null 2>&1 || true
    rtr ethtool -K rv.42 tso off gso off tx off >/dev/null 2>&1 || true
    ip -n td-cli route add 10.99.2.3/32 via 10.99.3.1 dev cv.42

    # the router's firewall
    rtr iptables -A FORWARD -p tcp --dport 8443 --syn -j DROP
    rtr iptables -A FORWARD -p tcp --dport 8444 --syn -j REJECT --reject-with icmp-admin-prohibited
    rtr ip6tables -A FORWARD -p tcp --dport 8444 --syn -j REJECT --reject-with icmp6-adm-prohibited
    rtr iptables -A FORWARD -p tcp --dport 9004 -m string --string backend.test --algo bm -j DROP
    rtr iptables -t mangle -A FORWARD -p tcp -m multiport --ports 4434 --tcp-flags SYN,RST SYN \
        -j TCPMSS --set-mss 300
    rtr iptables -A OUTPUT -p icmp --icmp-type fragmentation-needed -j DROP
}

servers() {
    log "servers"
    local d=$T/pki
    mkdir -p "$T/nginx"
    cat >"$T/nginx/nginx.conf" <<EOF
daemon off; master_process off; worker_processes 1; user root;
pid $T/nginx/nginx.pid; error_log $T/nginx/error.log;
events { worker_connections 512; }
http {
    access_log off;
    client_body_temp_path $T/nginx/tmp; proxy_temp_path $T/nginx/tmp;
    fastcgi_temp_path $T/nginx/tmp; uwsgi_temp_path $T/nginx/tmp; scgi_temp_path $T/nginx/tmp;
    server {
        listen 443 ssl; listen [::]:443 ssl; listen 4434 ssl; listen 9004 ssl; listen 9006 ssl;
        listen 9007 ssl; listen 9008 ssl;
        server_name backend.test;
        ssl_certificate $d/ec.crt; ssl_certificate_key $d/ec.key;
        ssl_protocols TLSv1.2 TLSv1.3;
        location / { default_type text/plain; return 200 "hello from the backend\n"; }
    }
    server { listen 8080; location / { return 502; } }
}
EOF
    mkdir -p "$T/nginx/tmp"
    bg td-srv nginx -p "$T/nginx" -c "$T/nginx/nginx.conf"
    bg td-srv openssl s_server -accept 4431 -cert "$d/ec.crt" -key "$d/ec.key" -tls1_3 -www -quiet
    bg td-srv openssl s_server -accept 4432 -cert "$d/ec.crt" -key "$d/ec.key" -tls1_2 \
        -cipher ECDHE-ECDSA-AES128-GCM-SHA256 -www -quiet
    bg td-srv openssl s_server -accept 4433 -cert "$d/big.crt" -key "$d/big.key" \
        -cert_chain "$d/chain.crt" -www -quiet
    bg td-srv openssl s_server -accept 4435 -cert "$d/ec.crt" -key "$d/ec.key" -tls1_3 \
        -groups P-256 -www -quiet
    bg td-srv openssl s_server -accept 127.0.0.1:4436 -cert "$d/ec.crt" -key "$d/ec.key" -www -quiet
    # no CA file or store: s_server must not complete a chain from one (4443 sends its leaf only)
    local nostore=(-no-CAfile -no-CApath -no-CAstore)
    bg td-srv openssl s_server -accept 4440 -cert "$d/ec.crt" -key "$d/ec.key" -tls1_3 \
        -Verify 1 -verify_return_error -CAfile "$d/clientca.crt" -www -quiet
    bg td-srv openssl s_server -accept 4444 -cert "$d/ec.crt" -key "$d/ec.key" -tls1_2 \
        -Verify 1 -verify_return_error -CAfile "$d/clientca.crt" -www -quiet
    bg td-srv openssl s_server -accept 4441 -cert "$d/wrongname.crt" -key "$d/wrongname.key" \
        "${nostore[@]}" -www -quiet
    bg td-srv openssl s_server -accept 4442 -cert "$d/expired.crt" -key "$d/expired.key" \
        "${nostore[@]}" -www -quiet
    bg td-srv openssl s_server -accept 4443 -cert "$d/leafonly.crt" -key "$d/leafonly.key" \
        "${nostore[@]}" -www -quiet
    bg td-srv $LAB close-on-accept 9009
    bg td-srv $LAB delay-proxy 9010 4436 7
    bg td-srv $LAB silent 9001
    bg td-srv $LAB silent 8445
    bg td-srv $LAB reset 9002
    bg td-srv $LAB close 9003
    bg td-srv $LAB reuse-server 9005 "$d/ec.crt" "$d/ec.key"
    bg td-srv $LAB udp 53
    # wait until every TCP port listens
    local p
    for p in 443 4431 4432 4433 4434 4435 4436 4440 4441 4442 4443 4444 8080 9001 9002 9003 9004 9005 9006 9007 9008 9009 9010 8445; do
        for _ in $(seq 50); do
            srv ss -Hltn "sport = :$p" | grep -q LISTEN && break
            sleep 0.1
        done
    done
    # resolve neighbours once so the first captures carry no ARP/ND (mixed.pcap flushes them)
    cli "${CURL[@]}" -k "$(url 443)" || true
    cli curl -s -o /dev/null -k --resolve "backend.test:443:[fd00:99:2::2]" https://backend.test/ || true
    cli curl -s -o /dev/null -k --resolve backend.test:443:10.99.2.3 https://backend.test/ || true
}

# ---------------------------------------------------------------- scenarios
# The 55 s give-up runs in the background from the start (own port, own capture).
gateway_timeout_55s_start() {
    log "gateway_timeout_55s: started in the background (55 s)"
    cap gateway_timeout_55s.pcap td-cli any "tcp port 8445"
    GW_CAP=${CAPS[-1]}; CAPS=("${CAPS[@]:0:${#CAPS[@]}-1}")
    ip netns exec td-cli $LAB tls 10.99.2.2 8445 backend.test 55 >"$T/gw.out" 2>&1 &
    GW_CLI=$!
}
gateway_timeout_55s_wait() {
    log "gateway_timeout_55s: waiting for the client to give up"
    wait "$GW_CLI" || true
    log "  $(cat "$T/gw.out")"
    sleep 0.5
    kill -INT "$GW_CAP"; wait "$GW_CAP" || true
}

tls13_ok() {
    log "tls13_ok"
    cap tls13_ok.pcap td-cli c0 "host 10.99.2.2 and tcp port 443"
    try cli "${CURL[@]}" -k --tlsv1.3 "$(url 443)"
    stopcaps
}
tls12_ok() {
    log "tls12_ok"
    cap tls12_ok.pcap td-cli c0 "host 10.99.2.2 and tcp port 443"
    try cli "${CURL[@]}" -k --tls-max 1.2 "$(url 443)"
    stopcaps
}
tls13_ok_ipv6() {
    log "tls13_ok_ipv6"
    cap tls13_ok_ipv6.pcap td-cli c0 "host fd00:99:2::2 and tcp port 443"
    try cli curl -s -o /dev/null -k --resolve "backend.test:443:[fd00:99:2::2]" https://backend.test/
    stopcaps
}
silent_backend() {
    log "silent_backend (client gives up after 5 s)"
    cap silent_backend.client.pcap td-cli c0 "tcp port 9001"
    cap silent_backend.server.pcap td-srv s0 "tcp port 9001"
    try cli "${CURL[@]}" -k --max-time 5 "$(url 9001)"
    stopcaps 1
}
clienthello_dropped() {
    log "clienthello_dropped (router drops the ClientHello by SNI; client resets after 5 s)"
    cap clienthello_dropped.client.pcap td-cli c0 "tcp port 9004"
    cap clienthello_dropped.server.pcap td-srv s0 "tcp port 9004"
    try cli $LAB tls 10.99.2.2 9004 backend.test 5 --rst
    stopcaps 1
}
mtu_blackhole() {
    log "mtu_blackhole (r0 MTU 1280, frag-needed dropped, 11 KB certificate chain)"
    rtr ip link set r0 mtu 1280   # the IPv6 minimum: lower would strip r0's IPv6 addresses
    cap mtu_blackhole.client.pcap td-cli c0 "tcp port 4433"
    cap mtu_blackhole.server.pcap td-srv s0 "tcp port 4433"
    try cli "${CURL[@]}" -k --max-time 5 "$(url 4433)"
    stopcaps 1.5
    rtr ip link set r0 mtu 1500
}
server_reset() {
    log "server_reset (server reads 5 bytes and closes with the rest unread)"
    cap server_reset.client.pcap td-cli c0 "tcp port 9002"
    cap server_reset.server.pcap td-srv s0 "tcp port 9002"
    try cli "${CURL[@]}" -k --max-time 5 "$(url 9002)"
    stopcaps
}
server_closed() {
    log "server_closed (server reads the ClientHello and closes)"
    cap server_closed.pcap td-cli c0 "tcp port 9003"
    try cli "${CURL[@]}" -k --max-time 5 "$(url 9003)"
    stopcaps
}
hello_retry() {
    log "hello_retry (client's key share X25519, server accepts P-256 only -> HelloRetryRequest)"
    cap hello_retry.pcap td-cli c0 "tcp port 4435"
    try cli timeout 5 openssl s_client -connect 10.99.2.2:4435 -servername backend.test \
        -groups X25519:P-256 </dev/null
    stopcaps
}
server_closed_on_accept() {
    log "server_closed_on_accept (server closes at accept; the ClientHello follows 0.2 s later)"
    cap server_closed_on_accept.pcap td-cli c0 "tcp port 9009"
    try cli $LAB tls 10.99.2.2 9009 backend.test 5 --wait 0.2
    stopcaps
}
slow_backend() {
    log "slow_backend (a proxy holds the server's first bytes back 7 s)"
    cap slow_backend.pcap td-cli c0 "tcp port 9010"
    try cli "${CURL[@]}" -k --max-time 15 "$(url 9010)"
    stopcaps
}
syn_dropped() {
    log "syn_dropped (router drops SYNs to 8443; client gives up after 5 s)"
    cap syn_dropped.pcap td-cli c0 "tcp port 8443"
    try cli "${CURL[@]}" -k --max-time 5 "$(url 8443)"
    stopcaps
}
port_closed() {
    log "port_closed"
    cap port_closed.pcap td-cli c0 "tcp port 81"
    try cli "${CURL[@]}" -k --max-time 5 "$(url 81)"
    stopcaps
}
icmp_admin_prohibited() {
    log "icmp_admin_prohibited (v4) and icmp6_admin_prohibited"
    cap icmp_admin_prohibited.pcap td-cli c0 "tcp port 8444 or icmp"
    try cli "${CURL[@]}" -k --max-time 5 "$(url 8444)"
    stopcaps
    cap icmp6_admin_prohibited.pcap td-cli c0 "tcp port 8444 or (icmp6 and ip6[40] == 1)"
    try cli curl -s -o /dev/null -k --max-time 5 --resolve "backend.test:8444:[fd00:99:2::2]" https://backend.test:8444/
    stopcaps
}
server_alert() {
    log "server_alert_protocol_version, server_alert_handshake_failure"
    cap server_alert_protocol_version.pcap td-cli c0 "tcp port 4431"
    try cli timeout 5 openssl s_client -connect 10.99.2.2:4431 -servername backend.test -tls1_2 </dev/null
    stopcaps
    cap server_alert_handshake_failure.pcap td-cli c0 "tcp port 4432"
    try cli timeout 5 openssl s_client -connect 10.99.2.2:4432 -servername backend.test -tls1_2 \
        -cipher ECDHE-ECDSA-AES256-GCM-SHA384 </dev/null
    stopcaps
}
client_alert() {
    log "client_alert_tls12, client_alert_tls13 (curl without -k rejects the self-signed cert)"
    cap client_alert_tls12.pcap td-cli c0 "host 10.99.2.2 and tcp port 443"
    try cli "${CURL[@]}" --tls-max 1.2 "$(url 443)"
    stopcaps
    cap client_alert_tls13.pcap td-cli c0 "host 10.99.2.2 and tcp port 443"
    try cli "${CURL[@]}" --tlsv1.3 "$(url 443)"
    stopcaps
}
not_tls() {
    log "not_tls (TLS to the plain HTTP port)"
    cap not_tls.pcap td-cli c0 "tcp port 8080"
    try cli "${CURL[@]}" -k --max-time 5 "$(url 8080)"
    stopcaps
}
cleartext() {
    log "cleartext (plain HTTP, backend answers 502)"
    cap cleartext.pcap td-cli c0 "tcp port 8080"
    try cli curl -s -o /dev/null -w '%{http_code}' --max-time 5 http://10.99.2.2:8080/
    stopcaps
}
tcp_no_data() {
    log "tcp_no_data (nc -z)"
    cap tcp_no_data.pcap td-cli c0 "tcp port 8080"
    try cli nc -z -w 2 10.99.2.2 8080
    stopcaps
}
clienthello_split() {
    log "clienthello_split (MSS clamped to 300: 517-byte ClientHello in two segments)"
    cap clienthello_split.pcap td-cli c0 "tcp port 4434"
    try cli "${CURL[@]}" -k "$(url 4434)"
    stopcaps
}

# ---- paired captures for `compare` (gateway side vs backend side, same connections)
healthy() {
    log "healthy (curl -k --tlsv1.3 -> nginx :443, both sides)"
    cap healthy.client.pcap td-cli c0 "host 10.99.2.2 and tcp port 443"
    cap healthy.server.pcap td-srv s0 "host 10.99.1.2 and tcp port 443"
    try cli "${CURL[@]}" -k --tlsv1.3 "$(url 443)"
    stopcaps
}
# The router is a NATing load balancer for this one: the client connects to the VIP
# 10.99.9.100:8446 (routed to the router, no address owns it); PREROUTING DNATs it to the
# backend 10.99.2.2:9006, POSTROUTING SNATs the client to 10.99.2.1:20000-20100. So the
# 4-tuple differs between the two captures; Linux NAT rewrites neither the ISNs nor the TCP
# timestamps. Two connections: a healthy one, then one whose ClientHello (SNI
# "blocked.test") the router drops in FORWARD (after DNAT, before SNAT). Runs last: the nat
# table turns conntrack on in td-rtr for good, and no earlier recording should go through it.
NAT_RULES=(
    "-t nat -A PREROUTING -i r0 -p tcp -d 10.99.9.100 --dport 8446 -j DNAT --to-destination 10.99.2.2:9006"
    "-t nat -A POSTROUTING -o r1 -p tcp -m conntrack --ctorigdst 10.99.9.100 --ctorigdstport 8446 -j SNAT --to-source 10.99.2.1:20000-20100"
    "-A FORWARD -p tcp -m conntrack --ctorigdst 10.99.9.100 --ctorigdstport 8446 -m string --string blocked.test --algo bm -j DROP"
)
nat() {
    log "nat (VIP 10.99.9.100:8446 -> 10.99.2.2:9006, SNAT 10.99.2.1:20000-20100; 2nd CH dropped)"
    local r
    for r in "${NAT_RULES[@]}"; do rtr iptables $r; done
    cap nat.client.pcap td-cli c0 "host 10.99.9.100 and tcp port 8446"
    cap nat.server.pcap td-srv s0 "host 10.99.2.1 and tcp port 9006"
    try cli curl -s -o /dev/null -k --tlsv1.3 --max-time 5 --resolve backend.test:8446:10.99.9.100 \
        https://backend.test:8446/
    sleep 1
    try cli $LAB tls 10.99.9.100 8446 blocked.test 5 --rst
    stopcaps 1
    for r in "${NAT_RULES[@]}"; do rtr iptables ${r/-A /-D }; done
}
# The router silently drops every SYN to :9007 (nginx listens there). A healthy connection
# to :443 before and another one after it bracket the blocked one, so the backend capture
# provably ran while the SYNs should have arrived; curl to :9007 retries its SYN (1, 2, 3,
# 4 s) and gives up at 5 s. The backend sees nothing of that connection.
SYN_BLOCKED_RULE="-A FORWARD -p tcp --dport 9007 --syn -j DROP"
syn_blocked() {
    log "syn_blocked (router drops SYNs to :9007; healthy :443 connections before and after, both sides)"
    rtr iptables $SYN_BLOCKED_RULE
    cap syn_blocked.client.pcap td-cli c0 "host 10.99.2.2 and (tcp port 443 or tcp port 9007)"
    cap syn_blocked.server.pcap td-srv s0 "host 10.99.1.2 and (tcp port 443 or tcp port 9007)"
    try cli "${CURL[@]}" -k --tlsv1.3 "$(url 443)"
    sleep 0.5
    try cli "${CURL[@]}" -k --max-time 5 "$(url 9007)"
    sleep 0.5
    try cli "${CURL[@]}" -k --tlsv1.3 "$(url 443)"
    stopcaps 1
    rtr iptables ${SYN_BLOCKED_RULE/-A /-D }
}
# DPI-style block: the router matches the SNI "reset.test" in the ClientHello to :9008,
# drops it and answers the client with a TCP RST in the server's name (iptables REJECT
# --reject-with tcp-reset). The backend sees the handshake and then nothing. A healthy
# connection to :443 0.5 s later, captured on both sides, proves the backend capture still
# ran when the forged RST was sent.
RESET_RULE="-A FORWARD -p tcp --dport 9008 -m string --string reset.test --algo bm -j REJECT --reject-with tcp-reset"
reset_injected() {
    log "reset_injected (router answers the CH for SNI reset.test on :9008 with a forged RST; healthy :443 connection after, both sides)"
    rtr iptables $RESET_RULE
    cap reset_injected.client.pcap td-cli c0 "host 10.99.2.2 and (tcp port 9008 or tcp port 443)"
    cap reset_injected.server.pcap td-srv s0 "host 10.99.1.2 and (tcp port 9008 or tcp port 443)"
    try cli curl -s -o /dev/null -k --max-time 5 --resolve reset.test:9008:10.99.2.2 https://reset.test:9008/
    sleep 0.5
    try cli "${CURL[@]}" -k --tlsv1.3 "$(url 443)"
    stopcaps 1
    rtr iptables ${RESET_RULE/-A /-D }
}

# ---- certificates and mutual TLS, each with the key log its client wrote (NAME.keys)
# keylog NAME: the path of NAME's key log in the output dir, removed first (clients append)
keylog() { rm -f "$T/out/$1.keys"; echo "$T/out/$1.keys"; }
# s13 / s12 ARGS...: openssl s_client to 10.99.2.2 with SNI backend.test, TLS 1.3 / TLS 1.2
# with an AES-GCM suite, 5 s at most; stdin stays open 1 s after the request it sends
req() { printf 'GET / HTTP/1.0\r\nHost: backend.test\r\n\r\n'; sleep 1; }
s13() { req | cli timeout 5 openssl s_client -servername backend.test -tls1_3 "$@"; }
s12() { req | cli timeout 5 openssl s_client -servername backend.test -tls1_2 \
        -cipher ECDHE-ECDSA-AES128-GCM-SHA256 "$@"; }
# gnutls NAME PORT: gnutls-cli, TLS 1.3 only, trusting the lab test CA, checking backend.test
gnutls() {
    cli env SSLKEYLOGFILE="$(keylog "$1")" timeout 5 gnutls-cli --x509cafile "$T/pki/labca.crt" \
        --sni-hostname backend.test --verify-hostname backend.test \
        --priority NORMAL:-VERS-ALL:+VERS-TLS1.3 -p "$2" 10.99.2.2 </dev/null
}
# The server wants a client certificate (TLS 1.3, -Verify 1). curl, like a gateway, sends its
# request right after its Finished. 1: the client has none and sends an empty Certificate;
# the server answers with one encrypted alert (certificate_required) and closes. 2: the
# client's certificate is from a CA the server does not trust (unknown_ca). A copy of 1
# carries its key log in a pcapng Decryption Secrets Block.
tls13_mtls() {
    log "tls13_mtls_no_client_cert, tls13_mtls_untrusted_client_cert (s_server -Verify 1 :4440)"
    local n=tls13_mtls_no_client_cert
    cap $n.pcap td-cli c0 "tcp port 4440"
    try cli env SSLKEYLOGFILE="$(keylog $n)" "${CURL[@]}" -k --tlsv1.3 --max-time 5 "$(url 4440)"
    stopcaps
    editcap --inject-secrets "tls,$T/out/$n.keys" "$T/out/$n.pcap" "$T/out/$n.dsb.pcapng"
    n=tls13_mtls_untrusted_client_cert
    cap $n.pcap td-cli c0 "tcp port 4440"
    try cli env SSLKEYLOGFILE="$(keylog $n)" "${CURL[@]}" -k --tlsv1.3 --max-time 5 \
        --cert "$T/pki/rogueclient.crt" --key "$T/pki/rogueclient.key" "$(url 4440)"
    stopcaps
}
# The same mutual-TLS server in TLS 1.2 (:4444): its CertificateRequest and the client's
# Certificate are in clear; the server's alert after the client's Finished is encrypted
tls12_mtls() {
    log "tls12_mtls_no_client_cert, tls12_mtls_untrusted_client_cert (s_server -Verify 1 :4444)"
    local n=tls12_mtls_no_client_cert
    cap $n.pcap td-cli c0 "tcp port 4444"
    try s12 -connect 10.99.2.2:4444 -keylogfile "$(keylog $n)"
    stopcaps
    n=tls12_mtls_untrusted_client_cert
    cap $n.pcap td-cli c0 "tcp port 4444"
    try s12 -connect 10.99.2.2:4444 -keylogfile "$(keylog $n)" \
        -cert "$T/pki/rogueclient.crt" -key "$T/pki/rogueclient.key"
    stopcaps
}
# TLS 1.3 clients that trust the lab test CA reject the server's certificate: gnutls-cli (its
# alert is encrypted) for a name the certificate does not cover and for an expired one;
# openssl s_client (its alert goes in clear) for the wrong name
tls13_client_rejects() {
    log "tls13_client_rejects_name (+ _openssl), tls13_client_rejects_expired"
    cap tls13_client_rejects_name.pcap td-cli c0 "tcp port 4441"
    try gnutls tls13_client_rejects_name 4441
    stopcaps
    local n=tls13_client_rejects_name_openssl
    cap $n.pcap td-cli c0 "tcp port 4441"
    try s13 -connect 10.99.2.2:4441 -keylogfile "$(keylog $n)" -CAfile "$T/pki/labca.crt" \
        -verify_return_error -verify_hostname backend.test
    stopcaps
    cap tls13_client_rejects_expired.pcap td-cli c0 "tcp port 4442"
    try gnutls tls13_client_rejects_expired 4442
    stopcaps
}
# The same two failures in TLS 1.2 (s_client, AES-128-GCM): the certificate and the client's
# alert are in clear
tls12_cert_rejects() {
    log "tls12_expired, tls12_wrong_name (s_client -tls1_2 -verify_return_error)"
    local n
    for n in tls12_expired:4442 tls12_wrong_name:4441; do
        cap "${n%:*}.pcap" td-cli c0 "tcp port ${n#*:}"
        try s12 -connect "10.99.2.2:${n#*:}" -keylogfile "$(keylog "${n%:*}")" \
            -CAfile "$T/pki/labca.crt" -verify_return_error -verify_hostname backend.test
        stopcaps
    done
}
# The server sends its leaf without the intermediate; the client trusts the root only
leaf_only() {
    log "leaf_only (s_server :4443 sends its leaf only; s_client -tls1_2 trusts the root only)"
    cap leaf_only.pcap td-cli c0 "tcp port 4443"
    try s12 -connect 10.99.2.2:4443 -keylogfile "$(keylog leaf_only)" \
        -CAfile "$T/pki/labca.crt" -verify_return_error -verify_hostname backend.test
    stopcaps
}
# The same in TLS 1.3: the leaf travels encrypted, OpenSSL's client alert in clear
leaf_only_tls13() {
    log "leaf_only_tls13 (s_server :4443 sends its leaf only; s_client -tls1_3 trusts the root only)"
    cap leaf_only_tls13.pcap td-cli c0 "tcp port 4443"
    try s13 -connect 10.99.2.2:4443 -keylogfile "$(keylog leaf_only_tls13)" \
        -CAfile "$T/pki/labca.crt" -verify_return_error -verify_hostname backend.test
    stopcaps
}
# A healthy TLS 1.2 AES-GCM connection ending with the client's close_notify, with its key log
tls12_ok_keys() {
    log "tls12_ok_keys (curl -k --tls-max 1.2 with SSLKEYLOGFILE -> nginx :443)"
    cap tls12_ok_keys.pcap td-cli c0 "host 10.99.2.2 and tcp port 443"
    try cli env SSLKEYLOGFILE="$(keylog tls12_ok_keys)" "${CURL[@]}" -k --tls-max 1.2 "$(url 443)"
    stopcaps
}

# ---- link types and file formats
tls13_ok_sll2() {
    log "tls13_ok_sll2 (tcpdump -i any: LINUX_SLL2)"
    cap tls13_ok_sll2.pcap td-cli any "host 10.99.2.2 and tcp port 443"
    try cli "${CURL[@]}" -k --tlsv1.3 "$(url 443)"
    stopcaps
}
port_closed_sll() {
    log "port_closed_sll (tcpdump -i any -y LINUX_SLL)"
    cap port_closed_sll.pcap td-cli any "tcp port 81" -y LINUX_SLL
    try cli "${CURL[@]}" -k --max-time 5 "$(url 81)"
    stopcaps
}
tls12_ok_vlan() {
    log "tls12_ok_vlan (802.1Q vid 42, captured on the parent veth)"
    # no filter: outgoing frames carry the tag inline, so "tcp port 443" would miss them;
    # only this connection (and ARP) uses the cv link
    ip -n td-cli neigh flush dev cv.42
    cap tls12_ok_vlan.pcap td-cli cv ""
    try cli curl -s -o /dev/null -k --tls-max 1.2 --resolve backend.test:443:10.99.2.3 https://backend.test/
    stopcaps
}
server_alert_pcapng() {
    log "server_alert_protocol_version.pcapng (dumpcap, two interfaces)"
    ip netns exec td-cli dumpcap -q -i c0 -f "tcp port 4431" -i lo -f "tcp port 4431" \
        -w "$T/out/server_alert_protocol_version.pcapng" 2>"$T/dumpcap.err" &
    CAPS+=($!)
    for _ in $(seq 50); do [ -s "$T/out/server_alert_protocol_version.pcapng" ] && break; sleep 0.1; done
    sleep 0.5
    try cli timeout 5 openssl s_client -connect 10.99.2.2:4431 -servername backend.test -tls1_2 </dev/null
    stopcaps
}
tls13_ok_nano() {
    log "tls13_ok_nano (nanosecond pcap)"
    cap tls13_ok_nano.pcap td-cli c0 "host 10.99.2.2 and tcp port 443" --time-stamp-precision=nano
    try cli "${CURL[@]}" -k --tlsv1.3 "$(url 443)"
    stopcaps
}
tls13_ok_snap96() {
    log "tls13_ok_snap96 (snaplen 96)"
    cap tls13_ok_snap96.pcap td-cli c0 "host 10.99.2.2 and tcp port 443" -s 96
    try cli "${CURL[@]}" -k --tlsv1.3 "$(url 443)"
    stopcaps
}
midstream() {
    log "midstream (capture starts 1 s after the handshake)"
    { sleep 1.5; printf 'GET / HTTP/1.1\r\nHost: backend.test\r\nConnection: close\r\n\r\n'; sleep 1; } |
        cli timeout 5 openssl s_client -connect 10.99.2.2:443 -servername backend.test -quiet \
        >"$T/mid.out" 2>&1 &
    local c=$!
    sleep 0.8
    cap midstream.pcap td-cli c0 "host 10.99.2.2 and tcp port 443"
    wait $c || true
    stopcaps
}
port_reuse() {
    log "port_reuse (two connections from source port 40000)"
    cap port_reuse.pcap td-cli c0 "tcp port 9005"
    try cli $LAB reuse 10.99.2.2 9005 40000 backend.test
    stopcaps
}
mixed() {
    log "mixed (20 concurrent connections, UDP, ARP, ND)"
    ip -n td-cli neigh flush all; ip -n td-cli -6 neigh flush all
    cap mixed.pcap td-cli c0 "not port 8445"
    local V6=(curl -s -o /dev/null --max-time 5 --resolve "backend.test:443:[fd00:99:2::2]"
              --resolve "backend.test:8444:[fd00:99:2::2]")
    local jobs=(
        "${CURL[*]} -k --tlsv1.3 $(url 443)"
        "${CURL[*]} -k --tls-max 1.2 $(url 443)"
        "${V6[*]} -k https://backend.test/"
        "${CURL[*]} --tlsv1.3 $(url 443)"
        "${CURL[*]} --tls-max 1.2 $(url 443)"
        "${CURL[*]} -k --max-time 5 $(url 9001)"
        "${CURL[*]} -k --max-time 5 $(url 9002)"
        "${CURL[*]} -k --max-time 5 $(url 9003)"
        "$LAB tls 10.99.2.2 9004 backend.test 5 --rst"
        "${CURL[*]} -k --max-time 5 $(url 8443)"
        "${CURL[*]} -k --max-time 5 $(url 81)"
        "${CURL[*]} -k --max-time 5 $(url 8444)"
        "${V6[*]} -k https://backend.test:8444/"
        "timeout 5 openssl s_client -connect 10.99.2.2:4431 -servername backend.test -tls1_2"
        "timeout 5 openssl s_client -connect 10.99.2.2:4432 -servername backend.test -tls1_2 -cipher ECDHE-ECDSA-AES256-GCM-SHA384"
        "${CURL[*]} -k --max-time 5 $(url 8080)"
        "curl -s -o /dev/null --max-time 5 http://10.99.2.2:8080/"
        "nc -z -w 2 10.99.2.2 8080"
        "${CURL[*]} -k $(url 4434)"
        "${CURL[*]} -k --tlsv1.3 $(url 443)"
    )
    local j pids=()
    for j in "${jobs[@]}"; do
        ip netns exec td-cli bash -c "$j </dev/null >/dev/null 2>&1" & pids+=($!)
        sleep 0.05
    done
    # UDP noise: a DNS-ish query answered, one to a closed port (ICMP port unreachable),
    # and ARP for an absent neighbour (unanswered)
    ip netns exec td-cli bash -c 'printf "\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x07backend\x04test\x00\x00\x01\x00\x01" | nc -u -w 1 10.99.2.2 53' >/dev/null 2>&1 &
    pids+=($!)
    ip netns exec td-cli bash -c 'echo hello | nc -u -w 1 10.99.2.2 54' >/dev/null 2>&1 & pids+=($!)
    ip netns exec td-cli bash -c 'echo hello | nc -u -w 1 10.99.1.77 9' >/dev/null 2>&1 & pids+=($!)
    for j in "${pids[@]}"; do wait "$j" || true; done
    stopcaps 1.5
}

# ---- derived files (no new traffic)
derived() {
    log "derived: truncated copy, gzip and zstd copies"
    # cut tls13_ok.pcap in the middle of its last packet record
    /usr/bin/python3 - "$T/out/tls13_ok.pcap" "$T/out/tls13_ok_truncated.pcap" <<'EOF'
import struct, sys
data = open(sys.argv[1], "rb").read()
off, last = 24, None
while off + 16 <= len(data):
    incl = struct.unpack("<I", data[off + 8:off + 12])[0]
    last = (off, incl)
    off += 16 + incl
o, incl = last
open(sys.argv[2], "wb").write(data[:o + 16 + incl // 2])
EOF
    gzip -9 -n -c "$T/out/silent_backend.client.pcap" >"$T/out/silent_backend.client.pcap.gz"
    zstd -q -19 -c "$T/out/silent_backend.client.pcap" >"$T/out/silent_backend.client.pcap.zst"
}

# ---- appended scenarios
offload_port_closed() {
    log "offload_port_closed (TX checksum offload on c0; curl to the router's closed :81, one hop)"
    # the router's own RST arrives at TTL 64, as the client's SYN leaves: TTLs cannot say which
    # end captured; the client's own packets are captured before the checksum is filled in
    cli ethtool -K c0 tx on >/dev/null
    cap offload_port_closed.pcap td-cli c0 "host 10.99.1.1 and tcp port 81"
    try cli curl -s -o /dev/null --max-time 5 http://10.99.1.1:81/
    stopcaps
    cli ethtool -K c0 tx off >/dev/null
}

ALL=(tls13_ok tls12_ok tls13_ok_ipv6 silent_backend clienthello_dropped mtu_blackhole
     server_reset server_closed syn_dropped port_closed icmp_admin_prohibited server_alert
     client_alert not_tls cleartext tcp_no_data clienthello_split tls13_ok_sll2
     port_closed_sll tls12_ok_vlan server_alert_pcapng tls13_ok_nano tls13_ok_snap96
     midstream port_reuse mixed healthy syn_blocked reset_injected hello_retry
     server_closed_on_accept slow_backend tls13_mtls tls13_client_rejects tls12_cert_rejects
     leaf_only leaf_only_tls13 tls12_ok_keys nat offload_port_closed
     tls12_mtls)

certs
topology
servers
if [ $# -gt 0 ]; then
    for s in "$@"; do
        if [ "$s" = gateway_timeout_55s ]; then gateway_timeout_55s_start; gateway_timeout_55s_wait
        else "$s"; fi
    done
    [ -f "$T/out/tls13_ok.pcap" ] && [ -f "$T/out/silent_backend.client.pcap" ] && derived
else
    gateway_timeout_55s_start
    for s in "${ALL[@]}"; do "$s"; done
    derived
    gateway_timeout_55s_wait
    # a full run replaces every capture
    rm -f "$OUT"/*.pcap "$OUT"/*.pcapng "$OUT"/*.pcap.gz "$OUT"/*.pcap.zst "$OUT"/*.keys
fi
chmod 644 "$T"/out/*
mv "$T"/out/* "$OUT"/
log "captures written to $OUT"
if [ $# -eq 0 ]; then
    /usr/bin/python3 "$HERE/gen_expected.py" "$OUT"
    /usr/bin/python3 "$HERE/crosscheck.py" "$OUT"
fi
log "done"
