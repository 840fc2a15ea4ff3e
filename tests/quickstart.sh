#!/usr/bin/env bash
# The quick start, end to end and unprivileged: the appliance on loopback high ports from
# config/quickstart.toml, the owner's bootstrap server as a test double, `probe` playing one
# factory-fresh device (MAC 02:00:00:53:5a:50, serial QS-0001), then the device's journey as
# the operator sees it (`sztp-redirector devices` and the status page).
# Usage (from the repository root): tests/quickstart.sh
#
# The journey of the one device:
#   1. DHCPv4 (relay path): an address and option 143 naming the redirect server; the device
#      follows it: RESTCONF get-bootstrapping-data on the redirect server (Basic user = its
#      serial, from the address it leased), redirected to the owner's bootstrap server
#   2. DHCPv6 (relay path): an address and option 136
#   3. DNS: its <serial>._sztp TXT record and the _sztp._tcp SRV
#   4. its timeline (`devices`), the status page, the leases, the device journal
# The ports are fixed (it is the operator's demo): UDP 6767, 6547, 8053 and TCP 8053, 9443,
# 9444, 9143 on loopback. If another program holds one, the script stops and says which.
set -euo pipefail
cd "$(dirname "$0")/.."
# tests/quickstart.rs hands over the binary cargo test built (a `cargo build` here would
# rebuild it: dev-dependencies change the crate's features)
if [ -n "${SZTP_QUICKSTART_BIN:-}" ]; then
  bin=$SZTP_QUICKSTART_BIN
else
  cargo build --quiet
  bin=${CARGO_TARGET_DIR:-target}/debug/sztp-redirector
fi
cfg=config/quickstart.toml
mac=02:00:00:53:5a:50
serial=QS-0001
mkdir -p target
rm -rf target/quickstart-state  # a fresh appliance every time
"$bin" check-config "$cfg"

# the owner's bootstrap server: tests/owner_double.py (Python standard library only) with a
# throw-away certificate; the device does not verify it (nothing conveyed a trust anchor)
owner_dir=target/quickstart-owner
rm -rf "$owner_dir" && mkdir -p "$owner_dir"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 \
  -subj /CN=owner.example.com -keyout "$owner_dir/key.pem" -out "$owner_dir/cert.pem" 2>/dev/null
/usr/bin/python3 tests/owner_double.py --cert "$owner_dir/cert.pem" --key "$owner_dir/key.pem" \
  --record "$owner_dir/arrivals.jsonl" --port 9444 > "$owner_dir/owner.log" 2>&1 &
owner=$!
server=
trap 'kill $server "$owner" 2>/dev/null || true; wait $server "$owner" 2>/dev/null || true' EXIT
for _ in $(seq 100); do
  grep -qs "listening on" "$owner_dir/owner.log" && break
  kill -0 "$owner" 2>/dev/null || break
  sleep 0.1
done
if ! grep -q "listening on" "$owner_dir/owner.log"; then
  echo "quick start: the owner's bootstrap server (test double) could not listen on" \
    "127.0.0.1:9444; is the port held by another program (ss -ltnp)?" >&2
  tail -n 3 "$owner_dir/owner.log" >&2
  exit 1
fi

"$bin" run --config "$cfg" 2> target/quickstart.log &
server=$!
# "ready" is logged once every socket of every service is bound
for _ in $(seq 100); do
  grep -q "daemon: ready" target/quickstart.log && break
  kill -0 "$server" 2>/dev/null || break
  sleep 0.1
done
if ! grep -q "daemon: ready" target/quickstart.log; then
  echo "quick start: the appliance did not start; its quick start ports (UDP 6767, 6547," \
    "8053; TCP 8053, 9443, 9143 on loopback) may be held by another program (ss -lntup):" >&2
  grep -i -e error -e "in use" target/quickstart.log >&2 || tail -n 5 target/quickstart.log >&2
  exit 1
fi
grep -e "listening for" -e "daemon: ready" target/quickstart.log

echo "--- 1. DHCPv4: the device asks (probe as relay agent 127.0.0.1, link 127.0.2.1), then"
echo "    follows option 143 to the redirect server (RESTCONF from the address it leased, its"
echo "    serial $serial as the Basic user) and on to the owner's bootstrap server:"
"$bin" probe --relay 127.0.0.1:6767 --link-selection 127.0.2.1 --mac "$mac" --wait 500ms \
  --follow --from-lease --serial "$serial" --hw-model quickstart-model
echo "owner's bootstrap server (test double): $(grep -c get-bootstrapping-data \
  "$owner_dir/arrivals.jsonl") get-bootstrapping-data request(s) recorded:"
grep get-bootstrapping-data "$owner_dir/arrivals.jsonl"

echo "--- 2. DHCPv6: the same device asks (probe as relay agent [::1], link 2001:db8:1::1):"
"$bin" probe --relay6 "[::1]:6547" --link-address 2001:db8:1::1 --mac "$mac" --wait 500ms

echo "--- 3. DNS: the same device looks up its TXT record ($serial), then the SRV:"
"$bin" probe --dns-server 127.0.0.1:8053 --domain staging.example.com --serial "$serial"

echo "--- 4. the device's journey (sztp-redirector devices, from the status API):"
# the status server folds each step just after the reply has left: wait for the last ones
for _ in $(seq 50); do
  j=$("$bin" devices --config "$cfg" --json "$mac" 2>/dev/null || true)
  grep -q 'DHCPv6 Reply to Request' <<< "$j" && grep -q '"dns-answered"' <<< "$j" &&
    grep -q '"redirect-served"' <<< "$j" && break
  sleep 0.1
done
"$bin" devices --config "$cfg"
"$bin" devices --config "$cfg" "$mac"
echo "--- status page: http://127.0.0.1:9143/ (metrics: http://127.0.0.1:9143/metrics)"
echo "--- leases:"
"$bin" leases --config "$cfg"
echo "--- stop (SIGTERM), then the device journal's last event of each protocol:"
kill -TERM "$server"
wait "$server"
server=
for proto in dhcp4 dhcp6 dns restconf; do
  grep "\"proto\":\"$proto\"" target/quickstart-state/devices.jsonl | tail -n 1
done
