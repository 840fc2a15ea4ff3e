#!/usr/bin/env bash
# DHCPv6 throughput side by side: kea-dhcp6 (memfile, persist; single- and multi-threaded) vs
# sztp-redirector, same box, same veth pair in throwaway namespaces, same /64 pool and option
# 136, perfdhcp -6 from the client's link-local address (Solicit/Advertise/Request/Reply, 136
# in the ORO). Server and perfdhcp run pinned to different CPUs (taskset).
#
# usage: tests/bench/dhcp6.sh [--kea-only | --ours-only]
# env:   SZTP_BIN    release binary (default target/release/sztp-redirector, built if missing)
#        RATES       offered rates per step (default "1000 2000 4000 6000 8000 12000 16000 24000 32000")
#        PERIOD      seconds per step (default 10)
#        CPU_RATE    fixed rate of the CPU-cost run (default 2000): every server gets the same load
#                    and its CPU time (all threads, user+system) is read from /proc, so the cost
#                    per 1,000 exchanges compares even where perfdhcp is what saturates
#        RSS_CLIENTS clients of the RSS run (default 10000); RSS_RATE its rate (default 1000);
#                    it lasts 6 × RSS_CLIENTS / RSS_RATE seconds, so nearly every client binds
#        REPEAT      sweeps per server, alternating (default 1); the summary gives the median
#        SERVER_CPU  CPU the server is pinned to (default 0); PERF_CPU the one perfdhcp gets
#                    (default 1)
#        KEA_THREADS thread-pool-size of the multi-threaded Kea run (default 2)
#        MODES       servers to run (default "kea-st kea-mt ours")
# needs: root, iproute2, kea-dhcp6-server, kea-admin (perfdhcp), util-linux (taskset); prints a
#        table at the end.
set -euo pipefail

MODES=${MODES:-"kea-st kea-mt ours"}
case "${1:-}" in
    --kea-only) MODES="kea-st kea-mt" ;;
    --ours-only) MODES="ours" ;;
    "") ;;
    *) echo "usage: $0 [--kea-only | --ours-only]" >&2; exit 2 ;;
esac

RATES=${RATES:-"1000 2000 4000 6000 8000 12000 16000 24000 32000"}
PERIOD=${PERIOD:-10}
CPU_RATE=${CPU_RATE:-2000}
RSS_RATE=${RSS_RATE:-1000}
RSS_CLIENTS=${RSS_CLIENTS:-10000}
REPEAT=${REPEAT:-1}
SERVER_CPU=${SERVER_CPU:-0}
PERF_CPU=${PERF_CPU:-1}
KEA_THREADS=${KEA_THREADS:-2}
REPO=$(cd "$(dirname "$0")/../.." && pwd)
SZTP_BIN=${SZTP_BIN:-$REPO/target/release/sztp-redirector}

if [ "$(id -u)" != 0 ]; then
    echo "needs root (network namespaces)" >&2
    exit 1
fi

TAG="sztpb-$$"
NS_S="$TAG-s"
NS_C="$TAG-c"
IF_S=$(printf 'b%xs6' $$)
IF_C=$(printf 'b%xc6' $$)
WORK=$(mktemp -d /tmp/sztp-bench6.XXXXXX)
SERVER_PID=""

for ns in $(ip netns list | awk '{print $1}' | grep '^sztpb-' || true); do
    pid=${ns#sztpb-}
    pid=${pid%%-*}
    [ -d "/proc/$pid" ] || ip netns del "$ns" 2>/dev/null || true
done

stop_server() {
    if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        for _ in $(seq 1 50); do
            kill -0 "$SERVER_PID" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    SERVER_PID=""
}

cleanup() {
    stop_server
    ip netns del "$NS_S" 2>/dev/null || true
    ip netns del "$NS_C" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ip netns add "$NS_S"
ip netns add "$NS_C"
ip link add "$IF_S" netns "$NS_S" type veth peer name "$IF_C" netns "$NS_C"
ip -n "$NS_S" link set lo up
ip -n "$NS_C" link set lo up
ip -n "$NS_S" addr add 2001:db8:1::1/64 dev "$IF_S" nodad
ip -n "$NS_S" link set "$IF_S" up
ip -n "$NS_C" link set "$IF_C" up

# both ends need a link-local address past DAD before anyone can send
wait_link_local() {
    for _ in $(seq 1 200); do
        if ip -n "$1" -6 addr show dev "$2" | grep 'inet6 fe80:' | grep -vq tentative; then
            return 0
        fi
        sleep 0.1
    done
    echo "$2 in $1: no usable link-local address" >&2
    return 1
}
wait_link_local "$NS_S" "$IF_S"
wait_link_local "$NS_C" "$IF_C"

URI1="https://sztp1.example.test:8443"
URI2="https://[2001:db8::1]:8443"

echo "== machine"
echo "nproc: $(nproc)  server on CPU $SERVER_CPU, perfdhcp on CPU $PERF_CPU"
echo "cpu: $(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)"
echo "kernel: $(uname -r)"
echo "kea: $(kea-dhcp6 -v 2>/dev/null || echo '?')  perfdhcp: $(perfdhcp -v 2>&1 | head -n1 || true)"
echo "date: $(date -u +%FT%TZ)"

wait_port547() {
    for _ in $(seq 1 150); do
        if ! kill -0 "$SERVER_PID" 2>/dev/null; then
            echo "server exited during start-up:" >&2
            tail -n 30 "$1" >&2 || true
            return 1
        fi
        if ip netns exec "$NS_S" ss -lunH 'sport = :547' | grep -q .; then
            sleep 0.5
            return 0
        fi
        sleep 0.1
    done
    echo "server did not bind :547 within 15 s" >&2
    tail -n 30 "$1" >&2 || true
    return 1
}

start_kea() {
    local dir=$1 threads=$2
    mkdir -p "$dir"
    local mt='"multi-threading": { "enable-multi-threading": false },'
    if [ "$threads" -gt 1 ]; then
        mt="\"multi-threading\": { \"enable-multi-threading\": true, \"thread-pool-size\": $threads, \"packet-queue-size\": 64 },"
    fi
    cat >"$dir/kea-dhcp6.json" <<EOF
{ "Dhcp6": {
  "interfaces-config": { "interfaces": ["$IF_S"] },
  $mt
  "server-id": { "type": "LLT", "persist": false },
  "lease-database": { "type": "memfile", "persist": true, "name": "$dir/kea-leases6.csv", "lfc-interval": 0 },
  "option-def": [ { "name": "sztp-redirect", "code": 136, "type": "tuple", "array": true, "space": "dhcp6" } ],
  "preferred-lifetime": 1800, "valid-lifetime": 3600,
  "subnet6": [ { "id": 1, "subnet": "2001:db8:1::/64", "interface": "$IF_S",
    "pools": [ { "pool": "2001:db8:1::1000 - 2001:db8:1::ffff:ffff" } ],
    "option-data": [ { "name": "sztp-redirect", "data": "$URI1, $URI2" } ] } ],
  "loggers": [ { "name": "kea-dhcp6", "output_options": [ { "output": "$dir/kea.log" } ], "severity": "WARN" } ]
} }
EOF
    KEA_PIDFILE_DIR=$dir KEA_LOCKFILE_DIR=$dir \
        timeout -k 5 900 taskset -c "$SERVER_CPU" ip netns exec "$NS_S" kea-dhcp6 -c "$dir/kea-dhcp6.json" >"$dir/stdout.log" 2>&1 &
    SERVER_PID=$!
    wait_port547 "$dir/stdout.log"
}
start_kea_st() { start_kea "$1" 1; }
start_kea_mt() { start_kea "$1" "$KEA_THREADS"; }

start_ours() {
    local dir=$1
    mkdir -p "$dir/state"
    cat >"$dir/sztp-redirector.toml" <<EOF
[appliance]
state-dir = "$dir/state"

[[bootstrap-server]]
name = "sztp1"
uri = "$URI1"

[[bootstrap-server]]
name = "sztp2"
uri = "$URI2"

[[rule]]
name = "default"
redirect-to = ["sztp1", "sztp2"]
via = "direct"

[dhcp6]
interfaces = ["$IF_S"]

[[dhcp6.subnet]]
prefix = "2001:db8:1::/64"
pools = ["2001:db8:1::1000-2001:db8:1::ffff:ffff"]
interface = "$IF_S"
preferred-lifetime = "30m"
valid-lifetime = "1h"
EOF
    RUST_LOG=${RUST_LOG:-warn,sztp_redirector::dhcp::v6::server=info} \
        timeout -k 5 900 taskset -c "$SERVER_CPU" ip netns exec "$NS_S" \
        "$SZTP_BIN" run --config "$dir/sztp-redirector.toml" >"$dir/stdout.log" 2>&1 &
    SERVER_PID=$!
    wait_port547 "$dir/stdout.log"
}

server_real_pid() {
    # timeout → taskset (execs ip) → ip netns exec (execs the server)
    pgrep -P "$SERVER_PID" | head -n1
}

perf() {
    local out=$1
    shift
    timeout -k 5 "$((PERIOD + 60))" taskset -c "$PERF_CPU" ip netns exec "$NS_C" \
        perfdhcp -6 -l "$IF_C" -o 6,0088 "$@" >"$out" 2>&1 || true
}

# perfdhcp → "sa_sent sa_recv sa_drops rr_sent rr_recv rr_drops"
perf_counts() {
    awk '
        /Statistics for: SOLICIT-ADVERTISE/ { s = "sa" }
        /Statistics for: REQUEST-REPLY/ { s = "rr" }
        /^[[:space:]]*sent packets:/ { sent[s] = $3 }
        /^[[:space:]]*received packets:/ { recv[s] = $3 }
        /^[[:space:]]*drops:/ { drops[s] = $2 }
        END { printf "%d %d %d %d %d %d\n", sent["sa"], recv["sa"], drops["sa"], sent["rr"], recv["rr"], drops["rr"] }
    ' "$1"
}

RESULTS=()
sweep() {
    local name=$1 starter=$2
    local best=0 best_rate=0
    echo
    echo "== $name: perfdhcp -6 -l $IF_C -r RATE -R 1000000 -p $PERIOD -o 6,0088"
    printf '%-8s %-22s %-22s %-12s %s\n' rate "SA sent/recv/drops" "RR sent/recv/drops" "exch/s" verdict
    for rate in $RATES; do
        local dir="$WORK/$name-$rate"
        "$starter" "$dir"
        perf "$dir/perfdhcp.txt" -r "$rate" -R 1000000 -p "$PERIOD"
        stop_server
        read -r sas sar sad rrs rrr rrd < <(perf_counts "$dir/perfdhcp.txt")
        local ok=no done=$((rrr / PERIOD))
        # pass: something was sent and at most 1 % of each exchange was lost
        if [ "$sas" -gt 0 ] && [ $((sad * 100)) -le "$sas" ] && [ "$rrs" -gt 0 ] && [ $((rrd * 100)) -le "$rrs" ]; then
            ok=yes
        fi
        printf '%-8s %-22s %-22s %-12s %s\n' "$rate" "$sas/$sar/$sad" "$rrs/$rrr/$rrd" "$done" "$ok"
        if grep -q "dhcp6 stopped" "$dir/stdout.log" 2>/dev/null; then
            grep "dhcp6 stopped" "$dir/stdout.log" | tail -n1 | sed 's/^.*stopped /         # server: /'
        fi
        if [ "$ok" = yes ]; then
            best=$rate
            best_rate=$done
        else
            break
        fi
    done
    RESULTS+=("$name $best $best_rate")
}

CPU_RESULTS=()
cpu_run() {
    local name=$1 starter=$2
    local dir="$WORK/$name-cpu"
    "$starter" "$dir"
    local pid tck t0 t1
    pid=$(server_real_pid)
    tck=$(getconf CLK_TCK)
    t0=$(awk '{print $14 + $15}' "/proc/$pid/stat")
    perf "$dir/perfdhcp.txt" -r "$CPU_RATE" -R 1000000 -p "$PERIOD"
    t1=$(awk '{print $14 + $15}' "/proc/$pid/stat")
    stop_server
    local replies cpu
    read -r _ _ _ _ replies _ < <(perf_counts "$dir/perfdhcp.txt")
    cpu=$(awk -v a="$t0" -v b="$t1" -v t="$tck" 'BEGIN { printf "%.2f", (b - a) / t }')
    echo "$name: ${cpu} CPU-seconds for $replies exchanges at $CPU_RATE/s ($(awk -v c="$cpu" -v r="$replies" 'BEGIN { if (r) printf "%.1f", c * 1e6 / r; else print "?" }') ms of CPU per 1,000 exchanges)"
    CPU_RESULTS+=("$name $cpu $replies")
}

rss_run() {
    local name=$1 starter=$2
    local dir="$WORK/$name-rss"
    "$starter" "$dir"
    # 6 draws per client on average: all but ~0.25 % of the clients bind (1 - e^-6)
    local secs=$((6 * RSS_CLIENTS / RSS_RATE))
    PERIOD=$secs perf "$dir/perfdhcp.txt" -r "$RSS_RATE" -R "$RSS_CLIENTS" -p "$secs"
    local pid rss
    pid=$(server_real_pid)
    rss=$(awk '/^VmRSS/ {print $2 " " $3}' "/proc/$pid/status")
    echo "$name: VmRSS $rss after $RSS_CLIENTS clients (perfdhcp: $(perf_counts "$dir/perfdhcp.txt"))"
    stop_server
}

if [[ " $MODES " == *" ours "* ]] && [ ! -x "$SZTP_BIN" ]; then
    (cd "$REPO" && timeout 1200 cargo build --release --locked)
fi
for _ in $(seq "$REPEAT"); do
    for m in $MODES; do
        sweep "$m" "start_${m//-/_}"
    done
done
for m in $MODES; do
    cpu_run "$m" "start_${m//-/_}"
    rss_run "$m" "start_${m//-/_}"
done

echo
echo "== highest offered rate with <= 1% drops (SOLICIT-ADVERTISE and REQUEST-REPLY)"
printf '%-8s %-14s %s\n' server "max rate/s" "exchanges/s at it"
for r in "${RESULTS[@]}"; do
    read -r n b a <<<"$r"
    printf '%-8s %-14s %s\n' "$n" "$b" "$a"
done
median() { sort -n | awk '{ v[NR] = $1 } END { if (NR) print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2; else print 0 }'; }
best_of() { printf '%s\n' "${RESULTS[@]}" | awk -v s="$1" '$1 == s { print $2 }' | median; }
echo "median of $REPEAT sweep(s):"
for m in $MODES; do
    echo "  $m $(best_of "$m")"
done
echo
echo "== CPU per 1,000 exchanges at $CPU_RATE/s (server threads, user+system)"
for r in "${CPU_RESULTS[@]}"; do
    read -r n c a <<<"$r"
    printf '%-8s %s\n' "$n" "$(awk -v c="$c" -v a="$a" 'BEGIN { if (a) printf "%.1f ms", c * 1e6 / a; else print "?" }')"
done
