#!/bin/sh
# Remove what postinst made; the database, keys and CA go only on purge, the rules never.
set -e
ROOT="${DPKG_ROOT:-}"
case "$1" in
remove|purge)
    rm -rf "$ROOT/opt/shadowai/collector/venv"
    rmdir "$ROOT/opt/shadowai/collector" "$ROOT/opt/shadowai" 2>/dev/null || true
    ;;
esac
if [ "$1" = purge ]; then
    rm -rf "$ROOT/var/lib/shadowai-collector"
fi
if [ -z "$ROOT" ] && [ -d /run/systemd/system ]; then
    systemctl daemon-reload || true
fi
exit 0
