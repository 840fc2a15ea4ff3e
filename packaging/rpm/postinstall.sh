# Not enabled or started: a DHCP server must not answer before its operator configured it.
chown root:sztp-redirector /etc/sztp-redirector/sztp-redirector.toml 2>/dev/null || true
chmod 0640 /etc/sztp-redirector/sztp-redirector.toml 2>/dev/null || true
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null 2>&1 || true
    # $1 = 2 or more on upgrade: restart a running service.
    if [ "$1" -ge 2 ] && systemctl is-active --quiet sztp-redirector.service; then
        systemctl restart sztp-redirector.service || true
    fi
fi
exit 0
