#!/usr/bin/env bash
# Installs Debian's chromium for the operations console's browser test (tests/e2e/test_ops_console.py), which
# drives it with Playwright for Python through its executable path. Never `playwright install`: no browser
# builds are downloaded, only Debian's package. Idempotent; run as root (CI runs as root).
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then
  echo "chromium already installed: $(command -v chromium)"
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "install_browser.sh: run as root (apt-get install -y chromium)" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
echo "installed $(chromium --version 2>/dev/null | head -1)"
