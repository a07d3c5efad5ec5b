#!/bin/sh
# Build shadowai-agent.pkg on a Mac (Xcode command line tools). See packaging/macos/README.md.
set -eu
VERSION="${1:?usage: build-pkg.sh VERSION}"
HERE="$(cd "$(dirname "$0")" && pwd)"
REPO="$HERE/../.."
STAGE="$(mktemp -d)"
trap 'rm -rf "$STAGE"' EXIT

mkdir -p "$STAGE/root/opt/shadowai/agent/wheels" "$STAGE/root/Library/LaunchDaemons" \
    "$STAGE/root/Library/Application Support/shadowai"
python3 -m pip wheel --no-deps -w "$STAGE/root/opt/shadowai/agent/wheels" "$REPO"
python3 -m pip download --only-binary=:all: -d "$STAGE/root/opt/shadowai/agent/wheels" \
    "shadowai[agent] @ file://$(ls "$STAGE"/root/opt/shadowai/agent/wheels/shadowai-*.whl)"
cp "$HERE/../launchd/com.shadowai.agent.plist" "$STAGE/root/Library/LaunchDaemons/"
cp "$REPO/packaging/etc/agent.toml" "$STAGE/root/Library/Application Support/shadowai/agent.toml"

pkgbuild --root "$STAGE/root" --scripts "$HERE/scripts" --identifier com.shadowai.agent \
    --version "$VERSION" --install-location / "shadowai-agent-$VERSION.pkg"
