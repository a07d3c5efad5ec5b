#!/bin/sh
# Create the agent's user and virtual environment from the bundled wheels, then start it.
# DPKG_ROOT is set when dpkg installs into another root (dpkg --root, chrootless scripts).
set -e
ROOT="${DPKG_ROOT:-}"
PREFIX="$ROOT/opt/shadowai/agent"

case "$1" in
configure)
    systemd-sysusers ${ROOT:+--root="$ROOT"} "$ROOT/usr/lib/sysusers.d/shadowai-agent.conf"
    # A fresh environment on every install and upgrade: the wheels are the truth.
    rm -rf "$PREFIX/venv"
    python3 -m venv "$PREFIX/venv"
    "$PREFIX/venv/bin/python" -m pip install --quiet --no-index --no-compile \
        --disable-pip-version-check --find-links "$PREFIX/wheels" "shadowai[agent]"
    # Identity and spool live here and survive upgrades; only a purge removes them.
    uid=$(awk -F: '$1 == "shadowai-agent" {print $3}' "$ROOT/etc/passwd")
    install -d -m 0700 "$ROOT/var/lib/shadowai-agent"
    chown -R "$uid:$uid" "$ROOT/var/lib/shadowai-agent"
    chgrp "$uid" "$ROOT/etc/shadowai/agent.toml"
    if [ -z "$ROOT" ] && [ -d /run/systemd/system ]; then
        systemctl daemon-reload
        if [ -z "$2" ]; then
            systemctl enable shadowai-agent.service
        fi
        # Not started before enrollment: `shadowai-agent enroll` first, then it runs.
        if [ -f /var/lib/shadowai-agent/enrollment.json ]; then
            systemctl restart shadowai-agent.service
        fi
    fi
    ;;
esac
exit 0
