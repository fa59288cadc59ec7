#!/usr/bin/env bash
# Make sure Debian's Chromium is at /usr/bin/chromium for the demo page's browser test
# (tests/test_demo_browser.py drives it headless through Playwright's Python package; we never
# run `playwright install`, which downloads browser builds).
#
# Idempotent and non-interactive: returns at once when /usr/bin/chromium exists; otherwise
# installs Debian's `chromium` plus fonts (so emoji and text render in screenshots).
set -euo pipefail

CHROMIUM=/usr/bin/chromium

log() { echo "chromium.sh: $*" >&2; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo -n "$@"
    else
        log "need root to run: $*"
        return 1
    fi
}

if [ -x "$CHROMIUM" ]; then
    log "$CHROMIUM already installed"
    exit 0
fi

log "installing chromium"
export DEBIAN_FRONTEND=noninteractive
as_root apt-get update -q
as_root apt-get install -y -q --no-install-recommends \
    chromium fonts-dejavu-core fonts-noto-color-emoji
"$CHROMIUM" --version >&2
