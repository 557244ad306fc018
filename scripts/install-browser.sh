#!/usr/bin/env bash
# Install a headless browser for the viewer's browser test: Debian's chromium and chromium-driver.
#
# Idempotent and quick when already installed (one `command -v` check, no apt call). Needs root
# (CI runs `make test` as root on a fresh Debian machine); without root or apt-get it says so and
# exits 0, and tests/test_view_browser.py then skips with that reason.
set -u

have_browser() {
    command -v chromedriver >/dev/null 2>&1 && { command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; }
}

if have_browser; then
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-browser: no apt-get here; install chromium and chromium-driver yourself (browser test will skip)" >&2
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "install-browser: not root; run 'sudo scripts/install-browser.sh' (browser test will skip)" >&2
    exit 0
fi
echo "install-browser: installing chromium and chromium-driver with apt-get (once)" >&2
export DEBIAN_FRONTEND=noninteractive
if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null; }; then
    echo "install-browser: apt-get failed; the browser test will skip" >&2
    exit 0
fi
have_browser || echo "install-browser: chromium installed but chromedriver not found on PATH" >&2
exit 0
