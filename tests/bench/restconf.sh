#!/usr/bin/env bash
# RESTCONF redirect server side by side with nginx serving the same response body as a static
# file over TLS: requests/s on kept-alive connections (HTTP/1.1 with wrk, h2 with h2load) and
# new TLS handshakes/s (wrk with "Connection: close", one request per connection).
#
# Both servers run in one throwaway network namespace on loopback, pinned to CPU $SERVER_CPU
# (ours with its two runtime threads, nginx with one worker), the load generators on CPU
# $CLIENT_CPU. Both use the same ECDSA P-256 certificate (the one sztp-redirector generates),
# TLS session caches and tickets off on both, so every new connection is a full handshake.
# Our side is the real product path: get-bootstrapping-data parsed, the policy asked, the CMS
# built and the device event journaled per request (nginx writes its access log).
#
# usage: tests/bench/restconf.sh
# env:   SZTP_BIN     release binary (default target/release/sztp-redirector, built if missing)
#        DURATION     seconds per measurement (default 10)
#        CONNS        concurrent connections (default 64)
#        REPEAT       runs per server and measurement, alternating (default 1); the summary
#                     gives every run and the median
#        SERVER_CPU / CLIENT_CPU   CPUs to pin to (default 0 / 1)
#        RESULT       file to append the summary to (default: only printed)
# needs: root (a network namespace), nginx (nginx-light), wrk, h2load (nghttp2-client), curl,
#        taskset (util-linux); prints a table at the end.
set -euo pipefail

DURATION=${DURATION:-10}
CONNS=${CONNS:-64}
REPEAT=${REPEAT:-1}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
REPO=$(cd "$(dirname "$0")/../.." && pwd)
SZTP_BIN=${SZTP_BIN:-$REPO/target/release/sztp-redirector}
OUR_PORT=8443
NGINX_PORT=9443
OP=/restconf/operations/ietf-sztp-bootstrap-server:get-bootstrapping-data

if [ "$(id -u)" != 0 ]; then
    echo "needs root (a network namespace keeps the fixed ports private)" >&2
    exit 1
fi
for tool in nginx wrk h2load curl taskset; do
    command -v "$tool" >/dev/null || { echo "missing: $tool" >&2; exit 1; }
done
if [ ! -x "$SZTP_BIN" ]; then
    (cd "$REPO" && cargo build --release)
fi

NS="sztpb-$$-rc"
WORK=$(mktemp -d /tmp/sztp-bench-rc.XXXXXX)
OUR_PID=""
NGINX_PID=""
for ns in $(ip netns list | awk '{print $1}' | grep '^sztpb-' || true); do
    pid=${ns#sztpb-}
    pid=${pid%%-*}
    [ -d "/proc/$pid" ] || ip netns del "$ns" 2>/dev/null || true
done

stop() { # pid
    if [ -n "$1" ] && kill -0 "$1" 2>/dev/null; then
        kill -TERM "$1" 2>/dev/null || true
        for _ in $(seq 1 50); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$1" 2>/dev/null || true
        wait "$1" 2>/dev/null || true
    fi
}
cleanup() {
    stop "$OUR_PID"
    stop "$NGINX_PID"
    ip netns del "$NS" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ip netns add "$NS"
ip -n "$NS" link set lo up
inns() { ip netns exec "$NS" "$@"; }

# --- sztp-redirector: only the redirect server ------------------------------------------
mkdir -p "$WORK/state"
cat > "$WORK/sztp.toml" <<EOF
[appliance]
state-dir = "$WORK/state"

[[bootstrap-server]]
name = "owner"
uri = "https://sztp.owner.example.com:8443"

[redirect-server]
listen = ["127.0.0.1:$OUR_PORT"]
advertise = "https://192.0.2.1:$OUR_PORT"
rate-limit = 0
max-connections = 100000
serial-from = "basic-username"

[[rule]]
name = "default"
redirect-to = ["owner"]
EOF
"$SZTP_BIN" check-config "$WORK/sztp.toml" >/dev/null
inns taskset -c "$SERVER_CPU" "$SZTP_BIN" run --config "$WORK/sztp.toml" 2> "$WORK/sztp.log" &
OUR_PID=$!
for _ in $(seq 1 100); do
    grep -q "listening for restconf on 127.0.0.1:$OUR_PORT" "$WORK/sztp.log" && break
    kill -0 "$OUR_PID" 2>/dev/null || { cat "$WORK/sztp.log" >&2; exit 1; }
    sleep 0.1
done
grep -q "listening for restconf" "$WORK/sztp.log" || { cat "$WORK/sztp.log" >&2; exit 1; }

BODY='{"ietf-sztp-bootstrap-server:input":{"signed-data-preferred":[null],"hw-model":"bench-model"}}'
inns curl -sS -k -u SN1: -H 'Content-Type: application/yang-data+json' -d "$BODY" \
    "https://127.0.0.1:$OUR_PORT$OP" -o "$WORK/answer.json"
grep -q conveyed-information "$WORK/answer.json" || { echo "no answer from ours" >&2; cat "$WORK/answer.json" >&2; exit 1; }

# --- nginx: the same answer as a static file, the same certificate ----------------------
mkdir -p "$WORK/www${OP%/*}" "$WORK/nginx"
cp "$WORK/answer.json" "$WORK/www$OP"
# nginx's worker runs as nobody: it must be able to walk to the file (mktemp -d is 0700)
chmod 755 "$WORK"
chmod -R a+rX "$WORK/www"
cat > "$WORK/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;
events { worker_connections 100000; }
http {
    access_log $WORK/nginx/access.log;
    types { application/yang-data+json json; }
    default_type application/yang-data+json;
    client_body_temp_path $WORK/nginx/body;
    proxy_temp_path $WORK/nginx/proxy;
    fastcgi_temp_path $WORK/nginx/fastcgi;
    uwsgi_temp_path $WORK/nginx/uwsgi;
    scgi_temp_path $WORK/nginx/scgi;
    keepalive_requests 1000000;
    server {
        listen 127.0.0.1:$NGINX_PORT ssl http2;
        ssl_certificate $WORK/state/tls/redirect-ecdsa.crt;
        ssl_certificate_key $WORK/state/tls/redirect-ecdsa.key;
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_session_cache off;
        ssl_session_tickets off;
        root $WORK/www;
    }
}
EOF
inns taskset -c "$SERVER_CPU" nginx -c "$WORK/nginx.conf" -p "$WORK/nginx" 2> "$WORK/nginx/stderr.log" &
NGINX_PID=$!
for _ in $(seq 1 100); do
    inns curl -sS -k -o /dev/null "https://127.0.0.1:$NGINX_PORT$OP" 2>/dev/null && break
    sleep 0.1
done
inns curl -sS -k "https://127.0.0.1:$NGINX_PORT$OP" -o "$WORK/nginx-answer.json"
cmp -s "$WORK/answer.json" "$WORK/nginx-answer.json" || {
    echo "nginx serves another body" >&2
    cat "$WORK/nginx/stderr.log" "$WORK/nginx/error.log" >&2 2>/dev/null
    exit 1
}

# --- load ---------------------------------------------------------------------------------
cat > "$WORK/post.lua" <<EOF
wrk.method = "POST"
wrk.body = '$BODY'
wrk.headers["Content-Type"] = "application/yang-data+json"
wrk.headers["Authorization"] = "Basic U04xOg=="
EOF
cp "$WORK/post.lua" "$WORK/post-close.lua"
echo 'wrk.headers["Connection"] = "close"' >> "$WORK/post-close.lua"
echo 'wrk.headers["Connection"] = "close"' > "$WORK/get-close.lua"
echo "$BODY" > "$WORK/body.json"

# wrk prints "Requests/sec: N"; h2load prints "finished in Xs, N req/s, ..."
wrk_rate() { sed -n 's/^Requests\/sec: *\([0-9.]*\).*/\1/p' | cut -d. -f1; }
h2_rate() { sed -n 's/^finished in [^,]*, \([0-9.]*\) req\/s.*/\1/p' | cut -d. -f1; }
errors() { grep -E 'Non-2xx|Socket errors|failed|errored' || true; }

run_one() { # server measurement -> rate
    local server=$1 what=$2 url port script
    if [ "$server" = ours ]; then port=$OUR_PORT; else port=$NGINX_PORT; fi
    url="https://127.0.0.1:$port$OP"
    case "$server/$what" in
        ours/keepalive-h1)  script=(-s "$WORK/post.lua") ;;
        nginx/keepalive-h1) script=() ;;
        ours/handshakes)    script=(-s "$WORK/post-close.lua") ;;
        nginx/handshakes)   script=(-s "$WORK/get-close.lua") ;;
    esac
    local out="$WORK/$server-$what-$RANDOM.txt"
    case "$what" in
        keepalive-h1|handshakes)
            inns taskset -c "$CLIENT_CPU" wrk -t1 -c"$CONNS" -d"${DURATION}s" "${script[@]}" "$url" > "$out" 2>&1
            errors < "$out" | sed "s/^/  [$server $what] /" >&2
            wrk_rate < "$out" ;;
        keepalive-h2)
            if [ "$server" = ours ]; then
                inns taskset -c "$CLIENT_CPU" h2load -D "$DURATION" -c "$CONNS" -m 8 -d "$WORK/body.json" \
                    -H 'content-type: application/yang-data+json' -H 'authorization: Basic U04xOg==' "$url" > "$out" 2>&1
            else
                inns taskset -c "$CLIENT_CPU" h2load -D "$DURATION" -c "$CONNS" -m 8 "$url" > "$out" 2>&1
            fi
            grep -E '^requests:' "$out" | sed "s/^/  [$server $what] /" >&2
            h2_rate < "$out" ;;
    esac
}

median() { sort -n | awk '{a[NR]=$1} END {if (NR==0) print "-"; else if (NR%2) print a[(NR+1)/2]; else print int((a[NR/2]+a[NR/2+1])/2)}'; }

declare -A R
for what in keepalive-h1 keepalive-h2 handshakes; do
    for i in $(seq 1 "$REPEAT"); do
        for server in nginx ours; do
            rate=$(run_one "$server" "$what")
            echo "$what run $i $server: ${rate:-?}/s" >&2
            R[$server/$what]="${R[$server/$what]:-} ${rate:-0}"
        done
    done
done

{
    echo "# restconf.sh $(date -u +%Y-%m-%dT%H:%M:%SZ) DURATION=$DURATION CONNS=$CONNS REPEAT=$REPEAT server CPU $SERVER_CPU, load CPU $CLIENT_CPU"
    echo "# $(nproc) CPUs, $(uname -r), $("$SZTP_BIN" --version), $(nginx -v 2>&1)"
    printf '%-34s %14s %14s %8s\n' measurement nginx ours ours/nginx
    for what in keepalive-h1 keepalive-h2 handshakes; do
        n=$(echo ${R[nginx/$what]} | tr ' ' '\n' | median)
        o=$(echo ${R[ours/$what]} | tr ' ' '\n' | median)
        ratio=$(awk -v o="$o" -v n="$n" 'BEGIN { if (n > 0) printf "%.2f", o / n; else print "-" }')
        case $what in
            keepalive-h1) label="requests/s, HTTP/1.1 keep-alive" ;;
            keepalive-h2) label="requests/s, h2 (8 streams)" ;;
            handshakes) label="new TLS handshakes/s" ;;
        esac
        printf '%-34s %14s %14s %8s   runs: nginx%s ours%s\n' "$label" "$n" "$o" "$ratio" "${R[nginx/$what]}" "${R[ours/$what]}"
    done
    echo "# device events journaled by ours: $(wc -l < "$WORK/state/devices.jsonl")"
} | tee -a "${RESULT:-/dev/null}"
