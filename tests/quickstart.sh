#!/usr/bin/env bash
# The quick start, end to end and unprivileged: the appliance on loopback high ports from
# config/quickstart.toml, `probe` playing a factory-fresh device, then the device's journey as
# the operator sees it (`sztp-redirector devices` and the status page).
# Usage (from the repository root): tests/quickstart.sh
#
# The journey, one numbered step per service. A service not served by this version keeps its
# step as a marked SLOT that says so; the service's engineer fills it in (its section in
# config/quickstart.toml, a probe step here, a line in tests/quickstart.rs):
#   1. DHCPv4 (relay path): an address and option 143                     served
#   2. DHCPv6 (relay path): an address and option 136                     served
#   3. DNS: _sztp._tcp SRV and <serial>._sztp TXT                         served
#   4. RESTCONF get-bootstrapping-data on the redirect server, and the
#      owner's bootstrap server (a test double) reached through it        SLOT (issue 9)
#   5. the device's timeline (`devices`) and the status page              served
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --quiet
bin=${CARGO_TARGET_DIR:-target}/debug/sztp-redirector
cfg=config/quickstart.toml
mac=02:00:00:53:5a:50
mkdir -p target
rm -rf target/quickstart-state  # a fresh appliance every time
"$bin" check-config "$cfg"
"$bin" run --config "$cfg" 2> target/quickstart.log &
server=$!
trap 'kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true' EXIT
# "ready" is logged once every socket of every service is bound
for _ in $(seq 100); do
  grep -q "daemon: ready" target/quickstart.log && break
  kill -0 "$server" 2>/dev/null || break
  sleep 0.1
done
grep -e "listening for" -e "daemon: ready" target/quickstart.log

echo "--- 1. DHCPv4: a device asks (probe as relay agent 127.0.0.1, link 192.0.2.1):"
"$bin" probe --relay 127.0.0.1:6767 --link-selection 192.0.2.1 --mac "$mac" --wait 500ms

echo "--- 2. DHCPv6: the same device asks (probe as relay agent [::1], link 2001:db8:1::1):"
"$bin" probe --relay6 "[::1]:6547" --link-address 2001:db8:1::1 --mac "$mac" --wait 500ms

echo "--- 3. DNS: a device with serial SN0001 looks up its TXT record, then the SRV:"
"$bin" probe --dns-server 127.0.0.1:8053 --domain staging.example.com --serial SN0001

# ---- SLOT 4, RESTCONF (issue 9): [redirect-server] on a loopback high port and an owner
# bootstrap-server test double; the probe follows option 143 to the redirect server
# (get-bootstrapping-data) and on to the owner's server.
echo "--- 4. RESTCONF redirect to the owner's bootstrap server: not served by this version yet"

echo "--- 5. the device's journey (sztp-redirector devices, from the status API):"
# the status server folds each step just after the reply has left: wait for the last ones
for _ in $(seq 50); do
  "$bin" devices --config "$cfg" --json "$mac" 2>/dev/null | grep -q 'DHCPv6 Reply to Request' &&
    "$bin" devices --config "$cfg" --json SN0001 2>/dev/null | grep -q '"dns-answered"' && break
  sleep 0.1
done
"$bin" devices --config "$cfg"
"$bin" devices --config "$cfg" "$mac"
echo "--- status page: http://127.0.0.1:9143/ (metrics: http://127.0.0.1:9143/metrics)"
echo "--- leases:"
"$bin" leases --config "$cfg"
echo "--- stop (SIGTERM), then the device journal's last events (the ACK, the DHCPv6 Reply, the TXT answer):"
kill -TERM "$server"
wait "$server"
grep '"event":"ack"' target/quickstart-state/devices.jsonl | tail -n 1
grep '"event":"request"' target/quickstart-state/devices.jsonl | tail -n 1
grep '"proto":"dns"' target/quickstart-state/devices.jsonl | tail -n 1
