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
#   2. DHCPv6 (relay path): an address and option 136                     SLOT (issue 7)
#   3. DNS: _sztp._tcp SRV and <serial>._sztp TXT                         SLOT (issue 8)
#   4. RESTCONF get-bootstrapping-data on the redirect server, and the
#      owner's bootstrap server (a test double) reached through it        served
#   5. the device's timeline (`devices`) and the status page              served
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --quiet
bin=target/debug/sztp-redirector
cfg=config/quickstart.toml
mac=02:00:00:53:5a:50
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

# ---- SLOT 2, DHCPv6 (issue 7): [dhcp6] on loopback in config/quickstart.toml, then the probe
# as a relay agent asking for an address and option 136, e.g. "$bin" probe ... --relay ...
echo "--- 2. DHCPv6 (option 136): not served by this version yet"

# ---- SLOT 3, DNS (issue 8): [dns] on a loopback high port, then the device's lookups:
# _sztp._tcp SRV and <serial>._sztp TXT (probe, or dig -p PORT @127.0.0.1).
echo "--- 3. DNS (_sztp._tcp SRV, <serial>._sztp TXT): not served by this version yet"

echo "--- 4. RESTCONF: a lab device asks the redirect server with its serial (probe, Basic user"
echo "    QS-0001) and follows the redirect to the owner's bootstrap server (a test double):"
# the owner's bootstrap server: tests/owner_double.py (Python standard library only) with a
# throw-away certificate; devices do not check the redirect server's or its certificate here
owner_dir=target/quickstart-owner
rm -rf "$owner_dir" && mkdir -p "$owner_dir"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 \
  -subj /CN=owner.example.com -keyout "$owner_dir/key.pem" -out "$owner_dir/cert.pem" 2>/dev/null
/usr/bin/python3 tests/owner_double.py --cert "$owner_dir/cert.pem" --key "$owner_dir/key.pem" \
  --record "$owner_dir/arrivals.jsonl" --port 9444 > "$owner_dir/owner.log" &
owner=$!
trap 'kill "$server" "$owner" 2>/dev/null || true; wait "$server" "$owner" 2>/dev/null || true' EXIT
for _ in $(seq 100); do
  grep -q "listening on" "$owner_dir/owner.log" && break
  sleep 0.1
done
"$bin" probe --restconf https://127.0.0.1:9443 --serial QS-0001 --hw-model quickstart-model
echo "owner's bootstrap server: $(grep -c get-bootstrapping-data "$owner_dir/arrivals.jsonl") get-bootstrapping-data request(s) recorded"

echo "--- 5. the device's journey (sztp-redirector devices, from the status API):"
# the status server folds each step just after the reply has left: wait for the ACK's
for _ in $(seq 50); do
  "$bin" devices --config "$cfg" --json "$mac" 2>/dev/null | grep -q '"dhcp-acked"' &&
    "$bin" devices --config "$cfg" --json QS-0001 2>/dev/null | grep -q '"redirect-served"' &&
    break
  sleep 0.1
done
"$bin" devices --config "$cfg"
"$bin" devices --config "$cfg" "$mac"
echo "--- status page: http://127.0.0.1:9143/ (metrics: http://127.0.0.1:9143/metrics)"
echo "--- leases:"
"$bin" leases --config "$cfg"
echo "--- stop (SIGTERM), then the device journal's last DHCPv4 event:"
kill -TERM "$server"
wait "$server"
grep '"proto":"dhcp4"' target/quickstart-state/devices.jsonl | tail -n 1
