#!/usr/bin/env bash
# DNS throughput side by side on loopback: sztp-redirector vs dnsmasq (and hickory's own
# `hickory-dns` when it is installed) serving the same _sztp._tcp SRV set and a <serial>._sztp
# TXT record of the same size, driven by dnsperf. The server runs on one CPU, dnsperf on the
# other (taskset). For each server, offered rates go up step by step; the result is the highest
# rate whose loss is at most MAX_LOSS percent, with its achieved queries/s and mean latency.
#
# usage: tests/bench/dns.sh
# env:   SZTP_BIN  release binary to measure (default: this tree's, built)
#        RATES     offered queries/s per step (default "10000 20000 40000 60000 80000 100000 140000 180000")
#        PERIOD    seconds per step (default 10)
#        MAX_LOSS  highest loss in percent that still passes (default 0.1)
#        SERVERS   which servers (default "ours dnsmasq hickory"; hickory is skipped when
#                  `hickory-dns` is not on PATH: `cargo install hickory-dns` installs it)
#        CPU_SERVER, CPU_CLIENT   the two CPUs (default 0 and 1)
#        CLIENTS   dnsperf -c (default 4)
#        OUTSTANDING  dnsperf -q, queries in flight (default 200). dnsperf counts the queries
#                  still in flight when a step ends as lost, so q/(rate*PERIOD) is a floor of
#                  the loss: keep it well under MAX_LOSS
# A step passes when its loss is at most MAX_LOSS percent and dnsperf achieved at least 99% of
# the offered rate (below that the server, answering late, throttled dnsperf's window).
# needs: dnsperf, dnsmasq, taskset; no root (loopback only). Raw outputs go to $WORK.
#
# Ours is the release `sztp-redirector run` with only [dns] enabled, its default log filter
# (per-query lines are debug) and its device journal on (one line per TXT query, as in
# production); dnsmasq cannot serve binary TXT data, so its TXT holds printable text of the
# same length (142 octets) as our ci= value.
set -euo pipefail

RATES=${RATES:-"10000 20000 40000 60000 80000 100000 140000 180000"}
PERIOD=${PERIOD:-10}
MAX_LOSS=${MAX_LOSS:-0.1}
SERVERS=${SERVERS:-"ours dnsmasq hickory"}
CPU_SERVER=${CPU_SERVER:-0}
CPU_CLIENT=${CPU_CLIENT:-1}
CLIENTS=${CLIENTS:-4}
OUTSTANDING=${OUTSTANDING:-200}
REPO=$(cd "$(dirname "$0")/../.." && pwd)
WORK=$(mktemp -d /tmp/sztp-dns-bench.XXXXXX)
SERVER_PID=""

cleanup() {
    if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
}
trap cleanup EXIT

echo "work directory: $WORK"
# SZTP_BIN: a release binary to measure; default: build this tree's
if [ -n "${SZTP_BIN:-}" ]; then
    OURS_BIN=$SZTP_BIN
else
    (cd "$REPO" && cargo build --release --bin sztp-redirector >/dev/null)
    OURS_BIN=$REPO/target/release/sztp-redirector
fi

# The same records for every server.
cat > "$WORK/queries.txt" <<'EOF'
_sztp._tcp.example.com SRV
SN123._sztp.example.com TXT
_sztp._tcp.example.com SRV
SN123._sztp.example.com TXT
nope._sztp.example.com TXT
EOF

cat > "$WORK/ours.toml" <<EOF
[appliance]
state-dir = "$WORK/state"

[[bootstrap-server]]
name = "owner-primary"
uri = "https://sztp.owner.example.com"

[[bootstrap-server]]
name = "owner-backup"
uri = "https://sztp2.owner.example.com"

[[rule]]
name = "default"
redirect-to = ["owner-primary", "owner-backup"]

[[device]]
serial = "SN123"
redirect-to = ["owner-primary"]

[dns]
listen = ["127.0.0.1:0"]
zones = ["example.com"]
hosts = { "sztp.owner.example.com" = ["192.0.2.10"], "sztp2.owner.example.com" = ["192.0.2.11"] }
EOF

TXT142="ci=$(head -c 139 /dev/zero | tr '\0' 'x')"

# A port for the servers that take a number, not a socket: bind 0, read it, release it.
free_port() {
    /usr/bin/python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

wait_log() { # file pattern
    for _ in $(seq 1 100); do
        grep -q "$2" "$1" 2>/dev/null && return 0
        sleep 0.1
    done
    echo "server did not start:" >&2
    cat "$1" >&2
    return 1
}

start_ours() {
    env -u RUST_LOG taskset -c "$CPU_SERVER" "$OURS_BIN" run --config "$WORK/ours.toml" 2>"$WORK/ours.log" &
    SERVER_PID=$!
    wait_log "$WORK/ours.log" "listening for dns on udp"
    PORT=$(sed -n 's/.*listening for dns on udp 127.0.0.1:\([0-9]*\).*/\1/p' "$WORK/ours.log" | head -1)
}

start_dnsmasq() {
    PORT=$(free_port)
    taskset -c "$CPU_SERVER" dnsmasq --no-daemon --conf-file=/dev/null --no-resolv --no-hosts \
        --listen-address=127.0.0.1 --bind-interfaces --port="$PORT" --pid-file= \
        --auth-server=ns.example.com --auth-zone=example.com \
        --srv-host=_sztp._tcp.example.com,sztp.owner.example.com,443,0,0 \
        --srv-host=_sztp._tcp.example.com,sztp2.owner.example.com,443,1,0 \
        --host-record=sztp.owner.example.com,192.0.2.10 \
        --host-record=sztp2.owner.example.com,192.0.2.11 \
        --txt-record=SN123._sztp.example.com,"$TXT142" \
        --cache-size=0 2>"$WORK/dnsmasq.log" &
    SERVER_PID=$!
    wait_log "$WORK/dnsmasq.log" "started, version"
}

start_hickory() {
    PORT=$(free_port)
    mkdir -p "$WORK/hickory"
    cat > "$WORK/hickory/example.com.zone" <<EOF
\$ORIGIN example.com.
@ 1800 IN SOA ns.example.com. hostmaster.example.com. 1 3600 600 604800 1800
@ 1800 IN NS ns.example.com.
_sztp._tcp 1800 IN SRV 0 0 443 sztp.owner.example.com.
_sztp._tcp 1800 IN SRV 1 0 443 sztp2.owner.example.com.
SN123._sztp 1800 IN TXT "$TXT142"
EOF
    cat > "$WORK/hickory/named.toml" <<EOF
listen_addrs_ipv4 = ["127.0.0.1"]
directory = "$WORK/hickory"
[[zones]]
zone = "example.com"
zone_type = "Primary"
file = "example.com.zone"
EOF
    RUST_LOG=warn taskset -c "$CPU_SERVER" hickory-dns -c "$WORK/hickory/named.toml" -p "$PORT" 2>"$WORK/hickory.log" >&2 &
    SERVER_PID=$!
    for _ in $(seq 1 100); do
        dig @127.0.0.1 -p "$PORT" +time=1 +tries=1 example.com SOA +short >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    cat "$WORK/hickory.log" >&2
    return 1
}

# One step: prints "offered sent lost% qps latency_ms".
step() { # server rate
    local out="$WORK/$1-$2.txt"
    taskset -c "$CPU_CLIENT" dnsperf -s 127.0.0.1 -p "$PORT" -d "$WORK/queries.txt" -l "$PERIOD" \
        -Q "$2" -c "$CLIENTS" -q "$OUTSTANDING" >"$out" 2>&1 || true
    local lost qps lat
    lost=$(sed -n 's/.*Queries lost: *[0-9]* (\([0-9.]*\)%).*/\1/p' "$out")
    qps=$(sed -n 's/.*Queries per second: *\([0-9.]*\).*/\1/p' "$out")
    lat=$(sed -n 's/.*Average Latency (s): *\([0-9.]*\).*/\1/p' "$out")
    echo "$2 ${lost:-100} ${qps:-0} $(awk -v l="${lat:-0}" 'BEGIN{printf "%.3f", l*1000}')"
}

declare -A BEST_QPS BEST_LAT BEST_RATE
for s in $SERVERS; do
    if [ "$s" = hickory ] && ! command -v hickory-dns >/dev/null; then
        echo "hickory-dns not installed: skipped (cargo install hickory-dns)"
        continue
    fi
    "start_$s"
    # sanity: the records answer
    dig @127.0.0.1 -p "$PORT" +norec _sztp._tcp.example.com SRV +short | sed "s/^/[$s] /"
    echo "== $s (port $PORT): offered lost% qps latency_ms"
    BEST_QPS[$s]=0; BEST_LAT[$s]=-; BEST_RATE[$s]=0
    for r in $RATES; do
        read -r rate lost qps lat < <(step "$s" "$r")
        echo "   $rate $lost $qps $lat"
        if awk -v l="$lost" -v m="$MAX_LOSS" -v q="$qps" -v r="$rate" \
            'BEGIN{exit !(l <= m && q >= 0.99 * r)}'; then
            BEST_QPS[$s]=$qps; BEST_LAT[$s]=$lat; BEST_RATE[$s]=$rate
        else
            break
        fi
    done
    cleanup
    SERVER_PID=""
done

echo
echo "server       highest-offered-rate-passing  qps-achieved  mean-latency-ms   (loss <= ${MAX_LOSS}%, ${PERIOD}s steps)"
for s in "${!BEST_QPS[@]}"; do
    printf '%-12s %28s  %12s  %15s\n' "$s" "${BEST_RATE[$s]}" "${BEST_QPS[$s]}" "${BEST_LAT[$s]}"
done
if [ -n "${BEST_QPS[ours]:-}" ] && [ -n "${BEST_QPS[dnsmasq]:-}" ]; then
    awk -v o="${BEST_QPS[ours]}" -v d="${BEST_QPS[dnsmasq]}" \
        'BEGIN{ if (d > 0) printf "ours/dnsmasq: %.2fx\n", o/d }'
fi
