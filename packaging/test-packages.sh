#!/usr/bin/env bash
# Builds the .deb and .rpm and tests them for real on this Debian machine (as root):
#   dpkg -i; the service user exists; the packaged binary passes check-config on its own
#   default file and, run as that user (as systemd's User= would), serves a DHCPv4 exchange to
#   `probe` on loopback, and its status server lists that device (`devices`, `/metrics`);
#   systemd-analyze verify on the installed unit; an upgrade over the
#   previous build keeps a changed conffile; dpkg -r keeps config, state and user; dpkg -P
#   removes config and state and keeps the user; lintian shows no error; the rpm's contents
#   and scriptlets (rpm -qlp --scripts).
# Cleans up after itself: purges the package and, when this script created it, the user.
# Usage (root, from anywhere): packaging/test-packages.sh [--no-build]
set -euo pipefail
cd "$(dirname "$0")/.."

PKG=sztp-redirector
USER_NAME=sztp-redirector
BIN=/usr/bin/sztp-redirector
CONF=/etc/sztp-redirector/sztp-redirector.toml
STATE=/var/lib/sztp-redirector
UNIT=/lib/systemd/system/sztp-redirector.service

step() { printf '\n--- %s\n' "$*"; }
fail() { printf 'FAIL: %s\n' "$*" >&2; exit 1; }
check() { # check "what" command...: run, fail with "what" when it fails
    local what=$1; shift
    if "$@"; then printf 'ok: %s\n' "$what"; else fail "$what"; fi
}

[ "$(id -u)" = 0 ] || fail "needs root (dpkg -i)"
if dpkg-query -W -f='${Status}' "$PKG" 2>/dev/null | grep -q ' installed'; then
    fail "$PKG is installed on this machine already; this test would remove it"
fi
[ -e "$STATE" ] && fail "$STATE exists already; this test would remove it"
user_existed=no
getent passwd "$USER_NAME" >/dev/null && user_existed=yes

work=$(mktemp -d /tmp/sztp-pkgtest.XXXXXX)
chmod 0755 "$work"
server_pid=
cleanup() {
    local rc=$?
    if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
    dpkg -P "$PKG" >/dev/null 2>&1 || true
    rm -rf "$STATE"
    if [ "$user_existed" = no ]; then
        userdel "$USER_NAME" 2>/dev/null || true
        groupdel "$USER_NAME" 2>/dev/null || true
    fi
    rm -rf "$work"
    [ $rc = 0 ] && echo "packages: all checks passed" || echo "packages: FAILED (rc $rc)"
}
trap cleanup EXIT

if [ "${1:-}" != --no-build ]; then
    step "build (release) and package"
    cargo build --release --locked
fi
command -v cargo-deb >/dev/null || fail "cargo-deb is not installed (cargo install --locked cargo-deb)"
command -v cargo-generate-rpm >/dev/null || fail "cargo-generate-rpm is not installed"
cargo deb --no-build --locked --deb-revision 1 -o "$work/old.deb" >/dev/null
cargo deb --no-build --locked --deb-revision 2 -o "$work/new.deb" >/dev/null
cargo generate-rpm -o "$work/pkg.rpm" >/dev/null
version=$(dpkg-deb -f "$work/new.deb" Version)
old_version=$(dpkg-deb -f "$work/old.deb" Version)
echo "built $PKG $old_version and $version, and $(basename "$work/pkg.rpm")"

step "dpkg -i (the previous build, $old_version)"
dpkg -i "$work/old.deb"
check "installed $old_version" test "$(dpkg-query -W -f='${Version}' "$PKG")" = "$old_version"
check "service user exists" getent passwd "$USER_NAME"
check "service group exists" getent group "$USER_NAME"
check "user has no login shell" test "$(getent passwd "$USER_NAME" | cut -d: -f7)" = /usr/sbin/nologin
for f in "$BIN" "$CONF" /usr/share/doc/sztp-redirector/example.toml \
    /usr/share/man/man8/sztp-redirector.8.gz "$UNIT"; do
    check "installs $f" test -e "$f"
done
check "conffile registered" sh -c "dpkg-query -W -f='\${Conffiles}' $PKG | grep -q '$CONF'"
check "config is root:$USER_NAME 0640" test "$(stat -c '%U:%G %a' "$CONF")" = "root:$USER_NAME 640"
check "service not started by the install" sh -c "! pgrep -x sztp-redirector >/dev/null"

step "the packaged binary on its own default file"
out=$("$BIN" check-config "$CONF")
check "check-config: $out" test "$out" = "$CONF: ok"
out=$(setpriv --reuid="$USER_NAME" --regid="$USER_NAME" --init-groups "$BIN" check-config "$CONF")
check "check-config as $USER_NAME: $out" test "$out" = "$CONF: ok"
check "man page renders" sh -c "man -l /usr/share/man/man8/sztp-redirector.8.gz 2>/dev/null | grep -q sztp-redirector"

step "systemd-analyze verify $UNIT"
systemd-analyze verify "$UNIT"
check "unit verifies" true
systemd-analyze security --offline=true "$UNIT" | tail -n 1

step "run as $USER_NAME (as User= does): a DHCPv4 exchange on loopback"
mkdir -p "$work/state"
chown "$USER_NAME:$USER_NAME" "$work/state"
cat >"$work/loopback.toml" <<EOF
[appliance]
state-dir = "$work/state"

[[bootstrap-server]]
name = "owner-primary"
uri = "https://sztp.owner.example.com:8443"

[[rule]]
name = "default"
redirect-to = ["owner-primary"]

[dhcp4]
interfaces = ["lo"]
port = 0

[[dhcp4.subnet]]
subnet = "192.0.2.0/24"
pools = ["192.0.2.100-192.0.2.199"]
lease-time = "1h"

[status]
listen = ["127.0.0.1:0"]
EOF
chmod 0644 "$work/loopback.toml"
setpriv --reuid="$USER_NAME" --regid="$USER_NAME" --init-groups \
    "$BIN" run --config "$work/loopback.toml" 2>"$work/server.log" &
server_pid=$!
port=
for _ in $(seq 200); do
    port=$(sed -n 's/.*listening for dhcp4 on lo 0\.0\.0\.0:\([0-9]*\).*/\1/p' "$work/server.log" | head -n 1)
    [ -n "$port" ] && break
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.05
done
[ -n "$port" ] || { cat "$work/server.log"; fail "the packaged daemon did not start"; }
check "daemon runs as $USER_NAME" test "$(ps -o user= -p "$server_pid" | tr -d ' ')" = "$USER_NAME"
"$BIN" probe --relay "127.0.0.1:$port" --link-selection 192.0.2.1 --wait 2s | tee "$work/probe.txt"
check "probe got a lease" grep -q '^ack 192.0.2.1[0-9][0-9]' "$work/probe.txt"
check "probe got option 143" grep -q '1. https://sztp.owner.example.com:8443' "$work/probe.txt"
status_port=$(sed -n 's/.*listening for status on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$work/server.log" | head -n 1)
# the device table folds the ACK just after it left: poll for it
for _ in $(seq 100); do
    "$BIN" devices --url "http://127.0.0.1:$status_port" >"$work/devices.txt" 2>&1 &&
        grep -q 'dhcp-acked  handed-off' "$work/devices.txt" && break
    sleep 0.05
done
cat "$work/devices.txt"
check "status server lists the probed device" grep -q 'dhcp-acked  handed-off' "$work/devices.txt"
curl -sS --fail "http://127.0.0.1:$status_port/metrics" >"$work/metrics.txt"
check "status /metrics counts the replies" grep -q '^sztp_dhcp4_replies_total [1-9]' "$work/metrics.txt"
kill -TERM "$server_pid"
rc=0
wait "$server_pid" || rc=$?
server_pid=
check "daemon stopped cleanly on SIGTERM" test "$rc" = 0
check "lease journal written by $USER_NAME" test "$(stat -c %U "$work/state/leases4.journal")" = "$USER_NAME"

step "upgrade to $version keeps a changed conffile"
echo "# changed by the operator" >>"$CONF"
mkdir -p "$STATE"
echo '{}' >"$STATE/marker"
dpkg -i "$work/new.deb"
check "upgraded to $version" test "$(dpkg-query -W -f='${Version}' "$PKG")" = "$version"
check "changed conffile kept" grep -q '^# changed by the operator' "$CONF"
check "state kept over the upgrade" test -e "$STATE/marker"

step "dpkg -r: binary gone; config, state and user stay"
dpkg -r "$PKG"
check "binary removed" test ! -e "$BIN"
check "unit removed" test ! -e "$UNIT"
check "config kept" test -e "$CONF"
check "state kept" test -e "$STATE/marker"
check "user kept" getent passwd "$USER_NAME"

step "dpkg -P: config and state gone; user stays"
dpkg -P "$PKG"
check "config removed" test ! -e "$CONF"
check "state removed" test ! -e "$STATE"
check "user kept after purge" getent passwd "$USER_NAME"
check "package gone" sh -c "! dpkg-query -W -f='\${Status}' $PKG 2>/dev/null | grep -q ' installed'"

step "lintian $(basename "$work/new.deb")"
lintian --fail-on error --tag-display-limit 0 "$work/new.deb" | tee "$work/lintian.txt" || fail "lintian reports errors"
check "lintian: no error" sh -c "! grep -q '^E:' '$work/lintian.txt'"

step "rpm -qlp --scripts"
rpm -qlp --scripts "$work/pkg.rpm" | tee "$work/rpm.txt"
for f in "$BIN" "$CONF" /usr/lib/systemd/system/sztp-redirector.service \
    /usr/share/man/man8/sztp-redirector.8 /usr/share/doc/sztp-redirector/example.toml; do
    check "rpm contains $f" grep -qx "$f" "$work/rpm.txt"
done
check "rpm %pre creates the user" grep -q 'useradd --system' "$work/rpm.txt"
check "rpm config is noreplace" sh -c "rpm -qp --qf '[%{FILEFLAGS:fflags} %{FILENAMES}\n]' '$work/pkg.rpm' | grep -q '^cn $CONF'"
