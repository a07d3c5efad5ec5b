#!/bin/sh
# Stop the agent before its files go; remove the environment postinst built, so that dpkg can
# remove the folders it owns. The data directory stays.
set -e
ROOT="${DPKG_ROOT:-}"
if [ -z "$ROOT" ] && [ -d /run/systemd/system ]; then
    systemctl stop shadowai-agent.service || true
    if [ "$1" = remove ]; then
        systemctl disable shadowai-agent.service || true
    fi
fi
if [ "$1" = remove ]; then
    rm -rf "$ROOT/opt/shadowai/agent/venv"
fi
exit 0
