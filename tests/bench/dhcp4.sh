#!/usr/bin/env bash
# DHCPv4 throughput side by side: kea-dhcp4 (memfile, persist) vs sztp-redirector, same box,
# same veth pair in throwaway namespaces, same pool and option 143, perfdhcp -4 as a relay.
#
# usage: tests/bench/dhcp4.sh [--kea-only | --ours-only] [--sweep | --pinned | --rss | --cpu | --avalanche | --callgrind | --perfstat]
#   --sweep      (default) the rate sweep, RSS and CPU-per-lease runs below
#   --pinned     CPU time per 1,000 completed DORA at a fixed PINNED_RATE, the server pinned to
#                CPU 1 and perfdhcp to CPU 0 (taskset): ours, kea single-threaded and kea
#                multi-threaded (the issue-12 measure)
#   --rss        only the RSS run of the sweep: VmRSS (and RssAnon) after RSS_RATE/s over 10,000
#                clients, ours and kea
#   --cpu        only the CPU-per-lease run of the sweep (CPU_RATE/s for PERIOD seconds, not
#                pinned), CPU_REPEAT times (default 3) alternating ours and kea
#   --avalanche  perfdhcp --scenario avalanche with AVALANCHE_CLIENTS (default "500 5000")
#                clients: time until every client is leased, ours and kea
#   --perfstat   ours only: perf stat software counters (task clock, context switches) of the
#                server for CALLGRIND_EXCHANGES exchanges at PINNED_RATE, per 1,000 DORA
#   --callgrind  ours only, under valgrind: instructions per completed DORA (counters zeroed
#                once the server is up, dumped after CALLGRIND_EXCHANGES exchanges); a measure
#                robust to a busy machine, user space only (syscalls are not counted)
# env:   SZTP_BIN   release binary (default target/release/sztp-redirector, built if missing)
#        RATES      offered rates per step (default "1000 2000 3000 4000 6000 8000 12000 16000 24000 32000")
#        PERIOD     seconds per step (default 10; shortened so a step never exceeds the pool)
#        RSS_RATE   rate of the 10,000-client run used for the RSS figure (default 1000)
#        REPEAT     sweeps per server, alternating kea and ours (default 1); the summary
#                   gives every sweep's result and the median per server
#        CPU_RATE   fixed rate of the CPU-cost run (default 4000): both servers get the same
#                   load and the server's own CPU time (all threads, user+system) is read
#                   from /proc, so the cost per lease compares even where perfdhcp, not the
#                   server, is what saturates
#        RSS_SMAPS  non-empty: the RSS run also lists the largest resident mappings and threads
#        OURS_EXTRA_TOML  appended to our server's configuration file (e.g. a [status] table)
#        PINNED_RATE, PINNED_PERIOD  --pinned: rate (default 3000/s) and seconds (default 10)
#        PINNED_REPEAT  --pinned: runs per server, alternating (default 3); the median counts
#        AVALANCHE_CLIENTS  --avalanche: client counts (default "500 5000")
#        CALLGRIND_EXCHANGES --callgrind: DORA exchanges measured (default 2000, at 100/s)
# needs: root, iproute2, kea-dhcp4-server, kea-admin (perfdhcp), jq, util-linux (taskset),
#        valgrind (--callgrind only); prints a table at the end.
set -euo pipefail

MODE=both
RUN=sweep
usage() { echo "usage: $0 [--kea-only | --ours-only] [--sweep | --pinned | --rss | --cpu | --avalanche | --callgrind | --perfstat]" >&2; exit 2; }
for arg in "$@"; do
    case "$arg" in
        --kea-only) MODE=kea ;;
        --ours-only) MODE=ours ;;
        --sweep) RUN=sweep ;;
        --pinned) RUN=pinned ;;
        --rss) RUN=rss ;;
        --cpu) RUN=cpu ;;
        --avalanche) RUN=avalanche ;;
        --callgrind) RUN=callgrind; MODE=ours ;;
        --perfstat) RUN=perfstat; MODE=ours ;;
        *) usage ;;
    esac
done
PINNED_RATE=${PINNED_RATE:-3000}
PINNED_PERIOD=${PINNED_PERIOD:-10}
PINNED_REPEAT=${PINNED_REPEAT:-3}
AVALANCHE_CLIENTS=${AVALANCHE_CLIENTS:-"500 5000"}
CALLGRIND_EXCHANGES=${CALLGRIND_EXCHANGES:-2000}
# the server's CPU list (taskset -c) for --pinned; empty elsewhere
PIN_SERVER=""
KEA_MT=false

RATES=${RATES:-"1000 2000 3000 4000 6000 8000 12000 16000 24000 32000"}
PERIOD=${PERIOD:-10}
RSS_RATE=${RSS_RATE:-1000}
CPU_RATE=${CPU_RATE:-4000}
REPEAT=${REPEAT:-1}
REPO=$(cd "$(dirname "$0")/../.." && pwd)
SZTP_BIN=${SZTP_BIN:-$REPO/target/release/sztp-redirector}

if [ "$(id -u)" != 0 ]; then
    echo "needs root (network namespaces)" >&2
    exit 1
fi

# Unique names (pid) so a crashed earlier run never collides; sweep ones whose pid is gone.
TAG="sztpb-$$"
NS_S="$TAG-s"
NS_C="$TAG-c"
IF_S=$(printf 'b%xs' $$)
IF_C=$(printf 'b%xc' $$)
WORK=$(mktemp -d /tmp/sztp-bench.XXXXXX)
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
ip -n "$NS_S" addr add 198.18.0.1/15 dev "$IF_S"
ip -n "$NS_C" addr add 198.18.0.2/15 dev "$IF_C"   # perfdhcp -4 is a relay: giaddr 198.18.0.2
ip -n "$NS_S" link set "$IF_S" up
ip -n "$NS_C" link set "$IF_C" up

# Same data for both servers: subnet 198.18.0.0/15, pool 198.18.1.0-198.19.255.254
# (130,814 addresses), option 143 = the two URIs of peers-and-crates §7.
POOL_FIRST=198.18.1.0
POOL_LAST=198.19.255.254
POOL_SIZE=130814
OPT143=001f68747470733a2f2f737a7470312e6578616d706c652e746573743a38343433001a68747470733a2f2f5b323030313a6462383a3a315d3a38343433

echo "== machine"
echo "nproc: $(nproc)"
echo "cpu: $(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)"
echo "kernel: $(uname -r)"
echo "kea: $(kea-dhcp4 -v 2>/dev/null || echo '?')  perfdhcp: $(perfdhcp -v 2>&1 | head -n1 || true)"
echo "date: $(date -u +%FT%TZ)"

# `taskset -c LIST` when the server is pinned (--pinned), nothing otherwise
pin() {
    if [ -n "$PIN_SERVER" ]; then
        echo "taskset -c $PIN_SERVER"
    fi
}

wait_port67() {
    # Ready when something in the server namespace has UDP :67 bound (Kea's raw mode keeps
    # a fallback UDP socket too); bounded to 15 s.
    for _ in $(seq 1 150); do
        if ! kill -0 "$SERVER_PID" 2>/dev/null; then
            echo "server exited during start-up:" >&2
            tail -n 30 "$1" >&2 || true
            return 1
        fi
        if ip netns exec "$NS_S" ss -lunH 'sport = :67' | grep -q .; then
            sleep 0.5
            return 0
        fi
        sleep 0.1
    done
    echo "server did not bind :67 within 15 s" >&2
    tail -n 30 "$1" >&2 || true
    return 1
}

start_kea() {
    local dir=$1
    mkdir -p "$dir"
    cat >"$dir/kea-dhcp4.json" <<EOF
{ "Dhcp4": {
  "interfaces-config": { "interfaces": ["$IF_S"], "dhcp-socket-type": "raw" },
  "lease-database": { "type": "memfile", "persist": true, "name": "$dir/kea-leases4.csv", "lfc-interval": 0 },
  "option-def": [ { "name": "sztp-redirect", "code": 143, "type": "binary", "space": "dhcp4" } ],
  "valid-lifetime": 3600,
  "multi-threading": { "enable-multi-threading": $KEA_MT, "thread-pool-size": 2, "packet-queue-size": 64 },
  "subnet4": [ { "id": 1, "subnet": "198.18.0.0/15",
    "pools": [ { "pool": "$POOL_FIRST - $POOL_LAST" } ],
    "option-data": [ { "name": "sztp-redirect", "code": 143, "csv-format": false, "data": "$OPT143" } ] } ],
  "loggers": [ { "name": "kea-dhcp4", "output_options": [ { "output": "$dir/kea.log" } ], "severity": "WARN" } ]
} }
EOF
    KEA_PIDFILE_DIR=$dir KEA_LOCKFILE_DIR=$dir \
        timeout -k 5 900 ip netns exec "$NS_S" $(pin) kea-dhcp4 -c "$dir/kea-dhcp4.json" >"$dir/stdout.log" 2>&1 &
    SERVER_PID=$!
    wait_port67 "$dir/stdout.log"
}

start_ours() {
    local dir=$1
    mkdir -p "$dir/state"
    cat >"$dir/sztp-redirector.toml" <<EOF
[appliance]
state-dir = "$dir/state"

[[bootstrap-server]]
name = "sztp1"
uri = "https://sztp1.example.test:8443"

[[bootstrap-server]]
name = "sztp2"
uri = "https://[2001:db8::1]:8443"

[[rule]]
name = "default"
redirect-to = ["sztp1", "sztp2"]
via = "direct"

[dhcp4]
interfaces = ["$IF_S"]

[[dhcp4.subnet]]
subnet = "198.18.0.0/15"
pools = ["$POOL_FIRST-$POOL_LAST"]
lease-time = "1h"
${OURS_EXTRA_TOML:-}
EOF
    RUST_LOG=${RUST_LOG:-warn,sztp_redirector::daemon=info} timeout -k 5 900 ip netns exec "$NS_S" \
        $(pin) ${OURS_WRAPPER:-} "$SZTP_BIN" run --config "$dir/sztp-redirector.toml" >"$dir/stdout.log" 2>&1 &
    SERVER_PID=$!
    wait_port67 "$dir/stdout.log"
}

# The pid of the real server process (child of timeout).
server_real_pid() {
    pgrep -P "$SERVER_PID" | head -n1
}

# perfdhcp → "do_sent do_recv do_drops ra_sent ra_recv ra_drops"
perf_counts() {
    awk '
        /Statistics for: DISCOVER-OFFER/ { s = "do" }
        /Statistics for: REQUEST-ACK/ { s = "ra" }
        /^[[:space:]]*sent packets:/ { sent[s] = $3 }
        /^[[:space:]]*received packets:/ { recv[s] = $3 }
        /^[[:space:]]*drops:/ { drops[s] = $2 }
        END { printf "%d %d %d %d %d %d\n", sent["do"], recv["do"], drops["do"], sent["ra"], recv["ra"], drops["ra"] }
    ' "$1"
}

RESULTS=()

# One server, increasing rates; each step on a fresh server and empty lease store.
sweep() {
    local name=$1 starter=$2
    local best=0 best_ack_rate=0
    echo
    echo "== $name: perfdhcp -4 -l $IF_C -r RATE -R 1000000 -p P -o 55,01038f"
    printf '%-8s %-4s %-22s %-22s %-10s %s\n' rate p "DO sent/recv/drops" "RA sent/recv/drops" "ack/s" verdict
    for rate in $RATES; do
        local p=$PERIOD
        # Never offer more new clients than the pool holds (keep 10 % spare).
        while [ $((rate * p)) -gt $((POOL_SIZE * 9 / 10)) ] && [ "$p" -gt 1 ]; do p=$((p - 1)); done
        local dir="$WORK/$name-$rate"
        "$starter" "$dir"
        timeout -k 5 $((p + 30)) ip netns exec "$NS_C" \
            perfdhcp -4 -l "$IF_C" -r "$rate" -R 1000000 -p "$p" -o 55,01038f >"$dir/perfdhcp.txt" 2>&1 || true
        stop_server
        read -r dos dor dod ras rar rad < <(perf_counts "$dir/perfdhcp.txt")
        local ok=no ackrate=$((rar / p))
        # Pass: something was sent and drops are at most 1 % in both exchanges.
        if [ "$dos" -gt 0 ] && [ $((dod * 100)) -le "$dos" ] && [ "$ras" -gt 0 ] && [ $((rad * 100)) -le "$ras" ]; then
            ok=yes
        fi
        printf '%-8s %-4s %-22s %-22s %-10s %s\n' "$rate" "$p" "$dos/$dor/$dod" "$ras/$rar/$rad" "$ackrate" "$ok"
        # our server's own counters (packets, replies, lease-journal fsyncs), when it logged them
        if [ -f "$dir/stdout.log" ] && grep -q "dhcp4 stopped" "$dir/stdout.log"; then
            grep "dhcp4 stopped" "$dir/stdout.log" | tail -n1 | sed 's/^.*stopped /         # server: /'
        fi
        if [ "$ok" = yes ]; then
            best=$rate
            best_ack_rate=$ackrate
        else
            break
        fi
    done
    RESULTS+=("$name $best $best_ack_rate")
}

rss_run() {
    local name=$1 starter=$2
    local dir="$WORK/$name-rss"
    "$starter" "$dir"
    # 30 s of draws over 10,000 clients covers them all but a few (1 - e^-(draws/10000)).
    timeout -k 5 90 ip netns exec "$NS_C" \
        perfdhcp -4 -l "$IF_C" -r "$RSS_RATE" -R 10000 -p $((60000 / RSS_RATE)) -o 55,01038f >"$dir/perfdhcp.txt" 2>&1 || true
    local pid rss leases
    pid=$(server_real_pid)
    rss=$(awk '/^VmRSS/ {print $2 " " $3}' "/proc/$pid/status")
    anon=$(awk '/^RssAnon/ {print $2 " " $3}' "/proc/$pid/status")
    if [ "$name" = kea ]; then
        leases=$(tail -n +2 "$dir/kea-leases4.csv" | cut -d, -f1 | sort -u | wc -l)
    else
        leases=$("$SZTP_BIN" leases --state-dir "$dir/state" --json | jq length)
    fi
    if [ -n "${RSS_SMAPS:-}" ]; then
        # the largest resident mappings (heap, thread arenas, stacks, the binary)
        awk '/^[0-9a-f]+-[0-9a-f]+ / { m = $6 ? $6 : "[anon]" } /^Rss:/ { r[m] += $2 } END { for (k in r) if (r[k] >= 256) printf "  %8d kB  %s\n", r[k], k }' "/proc/$pid/smaps" | sort -rn | head -n 12
        echo "  threads: $(ls "/proc/$pid/task" | wc -l)"
    fi
    echo "$name: VmRSS $rss (RssAnon $anon) with $leases leases (perfdhcp: $(perf_counts "$dir/perfdhcp.txt"))"
    stop_server
}

# Server CPU seconds (utime+stime of every thread) for a fixed load.
CPU_RESULTS=()
cpu_run() {
    local name=$1 starter=$2
    local dir="$WORK/$name-cpu"
    "$starter" "$dir"
    local pid tck t0 t1
    pid=$(server_real_pid)
    tck=$(getconf CLK_TCK)
    t0=$(awk '{print $14 + $15}' "/proc/$pid/stat")
    timeout -k 5 $((PERIOD + 30)) ip netns exec "$NS_C" \
        perfdhcp -4 -l "$IF_C" -r "$CPU_RATE" -R 1000000 -p "$PERIOD" -o 55,01038f >"$dir/perfdhcp.txt" 2>&1 || true
    t1=$(awk '{print $14 + $15}' "/proc/$pid/stat")
    stop_server
    local acks cpu
    read -r _ _ _ _ acks _ < <(perf_counts "$dir/perfdhcp.txt")
    cpu=$(awk -v a="$t0" -v b="$t1" -v t="$tck" 'BEGIN { printf "%.2f", (b - a) / t }')
    echo "$name: ${cpu} CPU-seconds for $acks ACKs at $CPU_RATE/s ($(awk -v c="$cpu" -v a="$acks" 'BEGIN { printf "%.1f", c * 1e6 / a }') us of CPU per lease)"
    CPU_RESULTS+=("$name $cpu $acks")
}

if [ "$MODE" != kea ] && [ ! -x "$SZTP_BIN" ]; then
    (cd "$REPO" && timeout 1200 cargo build --release --locked)
fi

# --pinned: server CPU time per 1,000 completed DORA at a fixed rate, server on CPU 1,
# perfdhcp on CPU 0. Prints one line per run and the median per server.
pinned_run() {
    local name=$1 starter=$2 i=$3
    local dir="$WORK/$name-pinned-$i"
    "$starter" "$dir"
    local pid tck t0 t1
    pid=$(server_real_pid)
    tck=$(getconf CLK_TCK)
    t0=$(awk '{print $14 + $15}' "/proc/$pid/stat")
    timeout -k 5 $((PINNED_PERIOD + 30)) ip netns exec "$NS_C" taskset -c 0 \
        perfdhcp -4 -l "$IF_C" -r "$PINNED_RATE" -R 1000000 -p "$PINNED_PERIOD" -o 55,01038f >"$dir/perfdhcp.txt" 2>&1 || true
    t1=$(awk '{print $14 + $15}' "/proc/$pid/stat")
    stop_server
    local acks ms
    read -r _ _ _ _ acks _ < <(perf_counts "$dir/perfdhcp.txt")
    ms=$(awk -v a="$t0" -v b="$t1" -v t="$tck" -v n="$acks" 'BEGIN { if (n > 0) printf "%.1f", (b - a) / t * 1000 * 1000 / n; else print "nan" }')
    echo "$name run $i: $acks DORA completed, $(awk -v a="$t0" -v b="$t1" -v t="$tck" 'BEGIN { printf "%.2f", (b - a) / t }') CPU-s, $ms ms CPU per 1000 DORA"
    PINNED_RESULTS+=("$name $ms")
}

if [ "$RUN" = rss ]; then
    [ "$MODE" != ours ] && rss_run kea start_kea
    [ "$MODE" != kea ] && rss_run ours start_ours
    exit 0
fi

if [ "$RUN" = cpu ]; then
    for _ in $(seq "${CPU_REPEAT:-3}"); do
        [ "$MODE" != kea ] && cpu_run ours start_ours
        [ "$MODE" != ours ] && cpu_run kea start_kea
    done
    exit 0
fi

if [ "$RUN" = pinned ]; then
    PINNED_RESULTS=()
    PIN_SERVER=1
    echo
    echo "== pinned: server on CPU 1, perfdhcp on CPU 0, $PINNED_RATE/s for ${PINNED_PERIOD}s, relay mode, 143 requested"
    for i in $(seq "$PINNED_REPEAT"); do
        [ "$MODE" != kea ] && pinned_run ours start_ours "$i"
        if [ "$MODE" != ours ]; then
            KEA_MT=false pinned_run kea-st start_kea "$i"
            KEA_MT=true pinned_run kea-mt start_kea "$i"
        fi
    done
    median() { sort -n | awk '{ v[NR] = $1 } END { if (NR) print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2; else print 0 }'; }
    echo
    echo "== median ms of server CPU per 1000 completed DORA"
    for n in ours kea-st kea-mt; do
        m=$(printf '%s\n' "${PINNED_RESULTS[@]}" | awk -v s="$n" '$1 == s { print $2 }' | median)
        [ "$m" != 0 ] && echo "$n $m"
    done
    exit 0
fi

# --avalanche: every client sends a DISCOVER at once, perfdhcp backs off and retransmits
# until each is leased; its report gives the time the whole scenario took.
if [ "$RUN" = avalanche ]; then
    echo
    echo "== avalanche: perfdhcp --scenario avalanche -R N, relay mode, 143 requested"
    for n in $AVALANCHE_CLIENTS; do
        for name in ours kea; do
            [ "$MODE" = kea ] && [ "$name" = ours ] && continue
            [ "$MODE" = ours ] && [ "$name" = kea ] && continue
            dir="$WORK/$name-avalanche-$n"
            if [ "$name" = ours ]; then start_ours "$dir"; else start_kea "$dir"; fi
            timeout -k 5 300 ip netns exec "$NS_C" \
                perfdhcp -4 -l "$IF_C" --scenario avalanche -R "$n" -o 55,01038f >"$dir/perfdhcp.txt" 2>&1 || true
            stop_server
            took=$(grep -i -E "took|time" "$dir/perfdhcp.txt" | head -n 3 | tr '\n' ' ')
            read -r dos dor dod ras rar rad < <(perf_counts "$dir/perfdhcp.txt")
            echo "$name, $n clients: $took(DO $dos/$dor/$dod, RA $ras/$rar/$rad)"
        done
    done
    exit 0
fi

# --perfstat: software counters of our server per completed DORA (context switches, task
# clock), perf stat attached for the load only: what callgrind does not see (wake-ups, syscalls)
if [ "$RUN" = perfstat ]; then
    dir="$WORK/ours-perfstat"
    start_ours "$dir"
    pid=$(server_real_pid)
    perf stat -e task-clock,context-switches,cpu-migrations -p "$pid" -o "$dir/perfstat.txt" &
    perf_pid=$!
    timeout -k 5 $((CALLGRIND_EXCHANGES / PINNED_RATE + 60)) ip netns exec "$NS_C" \
        perfdhcp -4 -l "$IF_C" -r "$PINNED_RATE" -R 1000000 -n "$CALLGRIND_EXCHANGES" -o 55,01038f >"$dir/perfdhcp.txt" 2>&1 || true
    kill -INT "$perf_pid"
    wait "$perf_pid" || true
    stop_server
    read -r _ _ _ _ acks _ < <(perf_counts "$dir/perfdhcp.txt")
    awk -v n="$acks" '/task-clock|context-switches|cpu-migrations/ { gsub(",", "", $1); printf "ours: %s %s per 1000 DORA (%s for %d DORA)\n", $2, $1 * 1000 / (n > 0 ? n : 1), $1, n }' "$dir/perfstat.txt"
    exit 0
fi

# --callgrind: instructions (user space) per completed DORA of our server
if [ "$RUN" = callgrind ]; then
    command -v valgrind >/dev/null || { echo "needs valgrind" >&2; exit 1; }
    dir="$WORK/ours-callgrind"
    OURS_WRAPPER="valgrind --tool=callgrind --callgrind-out-file=$dir/callgrind.out"
    start_ours "$dir"
    pid=$(pgrep -P "$SERVER_PID" | head -n1)
    # the server is up: count from here
    sleep 1
    callgrind_control -z "$pid" >/dev/null
    rate=100
    timeout -k 5 $((CALLGRIND_EXCHANGES / rate + 60)) ip netns exec "$NS_C" \
        perfdhcp -4 -l "$IF_C" -r "$rate" -R 1000000 -n "$CALLGRIND_EXCHANGES" -o 55,01038f >"$dir/perfdhcp.txt" 2>&1 || true
    callgrind_control -d "$pid" >/dev/null
    sleep 1
    stop_server
    read -r _ _ _ _ acks _ < <(perf_counts "$dir/perfdhcp.txt")
    # the first dump holds exactly the load (zeroed before, dumped after); the final one at
    # exit holds the shutdown and is left out
    dump=$(ls "$dir"/callgrind.out* | grep -E '\.1$' | head -n1)
    ir=$(awk '/^summary:|^totals:/ { print $2; exit }' "$dump")
    echo "ours: $ir instructions for $acks completed DORA: $((ir / (acks > 0 ? acks : 1))) per DORA (user space)"
    callgrind_annotate --inclusive=no "$dump" 2>/dev/null | sed -n '1,45p' || true
    if [ -n "${CALLGRIND_KEEP:-}" ]; then cp "$dump" "$CALLGRIND_KEEP"; fi
    exit 0
fi
# Alternate the servers so a slow patch of the machine does not fall on one of them only.
for _ in $(seq "$REPEAT"); do
    [ "$MODE" != ours ] && sweep kea start_kea
    [ "$MODE" != kea ] && sweep ours start_ours
done
if [ "$MODE" != ours ]; then
    rss_run kea start_kea
    cpu_run kea start_kea
fi
if [ "$MODE" != kea ]; then
    rss_run ours start_ours
    cpu_run ours start_ours
    size=$(stat -c %s "$SZTP_BIN")
    strip -o "$WORK/stripped" "$SZTP_BIN"
    echo "sztp-redirector binary: $size bytes as built, $(stat -c %s "$WORK/stripped") bytes stripped"
fi

echo
echo "== highest offered rate with <= 1% drops (DISCOVER-OFFER and REQUEST-ACK)"
printf '%-6s %-14s %s\n' server "max rate/s" "acks/s at it"
for r in "${RESULTS[@]}"; do
    read -r n b a <<<"$r"
    printf '%-6s %-14s %s\n' "$n" "$b" "$a"
done
median() { sort -n | awk '{ v[NR] = $1 } END { if (NR) print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2; else print 0 }'; }
best_of() { printf '%s\n' "${RESULTS[@]}" | awk -v s="$1" '$1 == s { print $2 }' | median; }
kea_best=$(best_of kea)
ours_best=$(best_of ours)
echo "median of $REPEAT sweep(s): kea $kea_best, ours $ours_best"
if [ "${kea_best%.*}" -gt 0 ] && [ "${ours_best%.*}" -gt 0 ]; then
    echo "ratio ours/kea: $(awk -v o="$ours_best" -v k="$kea_best" 'BEGIN { printf "%.2f", o / k }')"
fi

kea_cpu=""
ours_cpu=""
for r in "${CPU_RESULTS[@]}"; do
    read -r n c a <<<"$r"
    [ "$n" = kea ] && kea_cpu="$c $a"
    [ "$n" = ours ] && ours_cpu="$c $a"
done
if [ -n "$kea_cpu" ] && [ -n "$ours_cpu" ]; then
    echo "CPU per lease at $CPU_RATE/s, kea/ours: $(awk -v k="$kea_cpu" -v o="$ours_cpu" 'BEGIN { split(k, K, " "); split(o, O, " "); printf "%.2f", (K[1] / K[2]) / (O[1] / O[2]) }')"
fi
