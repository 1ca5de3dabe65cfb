#!/usr/bin/env bash
# Prints the path of a working Python 3.12 interpreter: python3.12 on PATH, else one pyenv provides.
set -euo pipefail
if python3.12 -c 'import sys; assert sys.version_info[:2] == (3, 12)' >/dev/null 2>&1; then
  command -v python3.12
  exit 0
fi
if command -v pyenv >/dev/null 2>&1; then
  for candidate in $(ls -d "$(pyenv root)"/versions/3.12*/bin/python3.12 2>/dev/null | sort -V -r); do
    if "$candidate" -c 'import sys' >/dev/null 2>&1; then
      echo "$candidate"
      exit 0
    fi
  done
fi
echo "No Python 3.12 found. Install it (e.g. 'pyenv install 3.12' or your OS package python3.12) and retry." >&2
exit 1
