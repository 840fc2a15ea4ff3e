#!/usr/bin/env bash
# The quick start, end to end and unprivileged: the appliance on loopback port 6767 from
# config/quickstart.toml, and `probe` playing a factory-fresh device behind a relay agent.
# Usage (from the repository root): tests/quickstart.sh
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --quiet
bin=target/debug/sztp-redirector
"$bin" check-config config/quickstart.toml
"$bin" run --config config/quickstart.toml 2> target/quickstart.log &
server=$!
trap 'kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true' EXIT
for _ in $(seq 50); do
  grep -q "listening for dhcp4" target/quickstart.log && break
  sleep 0.1
done
grep "listening for dhcp4" target/quickstart.log
echo "--- a device asks (probe as relay agent 127.0.0.1, link 192.0.2.1):"
"$bin" probe --relay 127.0.0.1:6767 --link-selection 192.0.2.1 --wait 500ms
echo "--- leases:"
"$bin" leases --config config/quickstart.toml
echo "--- stop (SIGTERM), then the device journal's last event:"
kill -TERM "$server"
wait "$server"
tail -n 1 target/quickstart-state/devices.jsonl
