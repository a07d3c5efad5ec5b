#!/bin/sh
# Remove what postinst made; identity, spool and caches go only on purge.
set -e
ROOT="${DPKG_ROOT:-}"
case "$1" in
remove|purge)
    rm -rf "$ROOT/opt/shadowai/agent/venv"
    rmdir "$ROOT/opt/shadowai/agent" "$ROOT/opt/shadowai" 2>/dev/null || true
    ;;
esac
if [ "$1" = purge ]; then
    rm -rf "$ROOT/var/lib/shadowai-agent"
    rmdir "$ROOT/etc/shadowai" 2>/dev/null || true
fi
if [ -z "$ROOT" ] && [ -d /run/systemd/system ]; then
    systemctl daemon-reload || true
fi
exit 0
