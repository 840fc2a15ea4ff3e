# Creates the system user the service runs as (before files owned by its group land).
getent group sztp-redirector >/dev/null || groupadd --system sztp-redirector
getent passwd sztp-redirector >/dev/null || \
    useradd --system --gid sztp-redirector --no-create-home --home-dir /var/lib/sztp-redirector \
        --shell /sbin/nologin --comment "SZTP redirector" sztp-redirector
exit 0
