#!/usr/bin/env bash
# Headless Chromium for the offline check of `s2s predict --html` (tests/test_html_report.py; .ci/run with
# S2S_BROWSER_TESTS=1 runs this).  Debian/Ubuntu: the `chromium` package (~100 MB with its libraries); needs root.
set -euo pipefail
if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; then
  echo "install_browser.sh: chromium is installed: $(command -v chromium || command -v chromium-browser)"
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core
chromium --version
