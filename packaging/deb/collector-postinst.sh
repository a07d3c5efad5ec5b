#!/bin/sh
# Create the collector's user and virtual environment from the bundled wheels.
# DPKG_ROOT is set when dpkg installs into another root (dpkg --root, chrootless scripts).
set -e
ROOT="${DPKG_ROOT:-}"
PREFIX="$ROOT/opt/shadowai/collector"

case "$1" in
configure)
    systemd-sysusers ${ROOT:+--root="$ROOT"} "$ROOT/usr/lib/sysusers.d/shadowai-collector.conf"
    rm -rf "$PREFIX/venv"
    python3 -m venv "$PREFIX/venv"
    "$PREFIX/venv/bin/python" -m pip install --quiet --no-index --no-compile \
        --disable-pip-version-check --find-links "$PREFIX/wheels" "shadowai[collector]"
    uid=$(awk -F: '$1 == "shadowai" {print $3}' "$ROOT/etc/passwd")
    install -d -m 0700 "$ROOT/var/lib/shadowai-collector"
    chown -R "$uid:$uid" "$ROOT/var/lib/shadowai-collector"
    # The rule pack is the administrator's from the first install on.
    if [ ! -e "$ROOT/etc/shadowai/rules" ]; then
        install -d -m 0755 "$ROOT/etc/shadowai"
        cp -R "$PREFIX/share/rules" "$ROOT/etc/shadowai/rules"
    fi
    if [ -z "$ROOT" ] && [ -d /run/systemd/system ]; then
        systemctl daemon-reload
        if [ -z "$2" ]; then
            systemctl enable shadowai-collector.service
        fi
        systemctl restart shadowai-collector.service
    fi
    ;;
esac
exit 0
