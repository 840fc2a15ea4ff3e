# $1 = 0 on erase (not on upgrade): stop and disable.
if [ "$1" -eq 0 ] && [ -d /run/systemd/system ]; then
    systemctl stop sztp-redirector.service >/dev/null 2>&1 || true
    systemctl disable sztp-redirector.service >/dev/null 2>&1 || true
fi
exit 0
