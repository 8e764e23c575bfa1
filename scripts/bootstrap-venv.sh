#!/usr/bin/env bash
# Create the project's virtual environment. Debian ships venv support in a
# separate package (python3-venv); install it when missing and we are root.
set -euo pipefail
python="$1"
venv="$2"
if [ -x "$venv/bin/python" ]; then
    exit 0
fi
if ! "$python" -m venv "$venv" 2>/dev/null; then
    rm -rf "$venv"
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "installing python3-venv (Debian keeps venv support in its own package)"
        apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null
        "$python" -m venv "$venv"
    else
        echo "error: '$python -m venv' failed; install your distribution's venv package (Debian: sudo apt-get install python3-venv)" >&2
        exit 1
    fi
fi
