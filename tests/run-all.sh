#!/usr/bin/env bash
# The whole test suite on a fresh Debian 12 machine, as root, in one command:
#   tests/run-all.sh
# 1. installs every peer the tests talk to (apt), and stops the daemons their packages start;
# 2. installs cargo-deb and cargo-generate-rpm (once; later runs find them installed);
# 3. runs every test with privileged (network-namespace) tests required:
#      SZTP_REQUIRE_PRIVILEGED_TESTS=1 cargo test --all-targets
# 4. builds the .deb and .rpm and tests them for real (packaging/test-packages.sh).
# It needs a Rust toolchain (rustup's; Debian 12's rustc is too old) and root. `.ci/run`
# runs exactly this after cargo fmt and clippy. SKIP_PACKAGES=1 leaves out step 4.
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}

step() { printf '\n=== %s (%s)\n' "$1" "$(date -u +%T)"; }

[ "$(id -u)" = 0 ] || { echo "tests/run-all.sh: run it as root (network namespaces, apt, dpkg)" >&2; exit 1; }
command -v cargo >/dev/null || {
    echo "tests/run-all.sh: no cargo on PATH: install the Rust toolchain with rustup first" >&2
    exit 1
}

# Every peer of the tests, by what uses it. Add yours here (one place for CI and people).
PEERS=(
    # DHCPv4/v6 clients, relays and reference servers
    isc-dhcp-client udhcpc busybox dhcpcd-base isc-dhcp-relay
    kea-dhcp4-server kea-dhcp6-server kea-admin dnsmasq-base
    # DNS and mDNS
    bind9-dnsutils knot-dnsutils dnsperf avahi-utils python3-zeroconf
    # RESTCONF / HTTPS
    curl openssl nginx-light wrk nghttp2-client
    # status page and metrics: a real browser and a real Prometheus text parser
    chromium python3 python3-prometheus-client
    # packages: lint, rpm listing, unit checks, man page rendering
    lintian rpm systemd man-db
    # harness: captures, namespaces, JSON, processes, a C linker for cargo
    tcpdump tshark iproute2 jq procps util-linux gcc libc6-dev
)

step "system packages"
# tshark asks whether non-root users may capture; answer it before apt can block on it.
echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
timeout 900 apt-get update -q
timeout 1800 apt-get install -y -q --no-install-recommends \
    -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
    "${PEERS[@]}" </dev/null

# Installing Kea, the relay, nginx or dnsmasq may start their services (when no policy-rc.d
# forbids it). Running, they would answer test traffic or hold ports: stop them.
for svc in kea-dhcp4-server kea-dhcp6-server kea-ctrl-agent kea-dhcp-ddns-server \
    isc-dhcp-relay nginx dnsmasq avahi-daemon; do
    if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
        systemctl stop "$svc" 2>/dev/null || true
        systemctl disable "$svc" 2>/dev/null || true
    fi
    if [ -x "/etc/init.d/$svc" ]; then
        "/etc/init.d/$svc" stop >/dev/null 2>&1 || true
    fi
done
for prog in kea-dhcp4 kea-dhcp6 kea-ctrl-agent kea-dhcp-ddns dhcrelay nginx dnsmasq avahi-daemon; do
    # Only daemons started by the packages (parent is init/systemd), never a test's child.
    for pid in $(pgrep -x "$prog" || true); do
        if [ "$(ps -o ppid= -p "$pid" | tr -d ' ')" = 1 ]; then
            kill "$pid" 2>/dev/null || true
        fi
    done
done

# Namespaces left by a killed earlier run: names carry the pid of the test process, so they
# never collide, but do not let them pile up.
for ns in $(ip netns list | awk '{print $1}' | grep -E '^sztp[tb]-' || true); do
    pid=${ns#sztp?-}
    pid=${pid%%-*}
    if [ ! -d "/proc/$pid" ]; then
        ip netns del "$ns" 2>/dev/null || true
    fi
done

step "packaging tools"
# Pinned: a no-op when this version is installed already (CI machines keep ~/.cargo).
for tool in cargo-deb@3.8.0 cargo-generate-rpm@0.21.1; do
    name=${tool%@*}
    if ! cargo install --list | grep -qx "$name v${tool#*@}:"; then
        timeout 1800 cargo install --locked "$tool"
    fi
done

step "toolchain"
cargo --version
rustc --version

step "SZTP_REQUIRE_PRIVILEGED_TESTS=1 cargo test --all-targets"
export SZTP_REQUIRE_PRIVILEGED_TESTS=1
timeout 3000 cargo test --all-targets

if [ "${SKIP_PACKAGES:-0}" != 1 ]; then
    step "packages: build, install, upgrade, remove, purge, lint"
    timeout 2400 packaging/test-packages.sh
fi

step "done"
