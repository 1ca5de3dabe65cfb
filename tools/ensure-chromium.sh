#!/usr/bin/env bash
# The browser test drives Debian's headless Chromium; install it when missing and we may (root + apt).
set -uo pipefail
if command -v chromium >/dev/null 2>&1; then exit 0; fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "Installing Debian's chromium for the browser test..."
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
    || echo "Could not install chromium: the browser test will be skipped." >&2
else
  echo "chromium not found and cannot be installed here: the browser test will be skipped." >&2
fi
exit 0
