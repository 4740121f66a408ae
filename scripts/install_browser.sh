#!/usr/bin/env bash
# Headless Chromium and ChromeDriver for the report's browser test (Debian packages).
# Installs them when absent and this runs as root (as CI does); otherwise says how.
set -euo pipefail
if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
    exit 0
fi
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "setup: headless Chromium is not installed; the browser test will skip (and fail under" \
         "CI=true). Install it with: sudo apt-get install chromium chromium-driver" >&2
    exit 0
fi
echo "setup: installing chromium and chromium-driver (Debian packages) for the browser test" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null
