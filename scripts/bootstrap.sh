#!/usr/bin/env bash
# Create the project's virtual environment and install what is missing, then run a command in it.
# Works on a fresh Debian machine with Python 3.11 and root (installs python3-venv if needed).
# Usage: scripts/bootstrap.sh [COMMAND ARGS...]   e.g. scripts/bootstrap.sh pytest -q
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${TFLBNN_VENV:-.venv}
STAMP="$VENV/.tflbnn-installed"

find_python() {
    for candidate in "${PYTHON:-}" python3.11 python3; do
        if [ -n "$candidate" ] && command -v "$candidate" >/dev/null 2>&1 &&
            "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
            echo "$candidate"
            return 0
        fi
    done
    echo "tflbnn needs Python 3.11 (tensorflow 2.16 wheels); none found on PATH" >&2
    return 1
}

apt_install() {
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@"
    else
        echo "please install the Debian package(s): $*" >&2
        return 1
    fi
}

if [ ! -f "$STAMP" ] || [ setup.cfg -nt "$STAMP" ]; then
    PYTHON_BIN=$(find_python)
    if [ ! -x "$VENV/bin/python" ]; then
        if ! "$PYTHON_BIN" -m venv "$VENV" 2>/dev/null; then
            rm -rf "$VENV"
            apt_install python3-venv
            "$PYTHON_BIN" -m venv "$VENV"
        fi
    fi
    "$VENV/bin/python" -m pip install --quiet --upgrade pip "setuptools>=64" wheel
    "$VENV/bin/python" -m pip install --quiet -e ".[test]"
    touch "$STAMP"
fi

if [ "$#" -gt 0 ]; then
    cmd=$1
    shift
    if [ -x "$VENV/bin/$cmd" ]; then
        exec "$VENV/bin/$cmd" "$@"
    fi
    exec "$cmd" "$@"
fi
