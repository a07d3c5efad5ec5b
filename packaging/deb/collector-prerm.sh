#!/bin/sh
# Stop the collector before its files go; remove the environment postinst built, so that dpkg can
# remove the folders it owns. The data directory stays.
set -e
ROOT="${DPKG_ROOT:-}"
if [ -z "$ROOT" ] && [ -d /run/systemd/system ]; then
    systemctl stop shadowai-collector.service || true
    if [ "$1" = remove ]; then
        systemctl disable shadowai-collector.service || true
    fi
fi
if [ "$1" = remove ]; then
    rm -rf "$ROOT/opt/shadowai/collector/venv"
fi
exit 0
