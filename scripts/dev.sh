#!/usr/bin/env bash
# One entry point for a fresh machine with only Python 3.11:
#   bash scripts/dev.sh demo   # set up .venv, then run `dreamor demo` (headless Blender, the add-on, a refine)
#   bash scripts/dev.sh test   # set up .venv, then run the whole test suite
# Set-up is idempotent: a second run reuses .venv and only reinstalls when pyproject.toml changed.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
PY=${PYTHON:-python3.11}
VENV="$ROOT/.venv"
# OpenMP threads that spin while waiting make torch 3-15x slower when another process is busy.
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}

setup() {
    if ! command -v "$PY" >/dev/null 2>&1; then
        echo "error: $PY not found; install Python 3.11 (or set PYTHON=/path/to/python3.11)" >&2
        exit 2
    fi
    if [ ! -x "$VENV/bin/python" ]; then
        echo "==> creating $VENV"
        "$PY" -m venv "$VENV"
    fi
    local stamp="$VENV/.installed-$(sha1sum pyproject.toml | cut -c1-12)"
    if [ ! -f "$stamp" ]; then
        echo "==> installing dreamor and its test dependencies (torch CPU, bpy 5.0.1, ...)"
        "$VENV/bin/python" -m pip install --quiet --upgrade pip 2>/dev/null || true
        "$VENV/bin/python" -m pip install --quiet -e ".[test]"
        rm -f "$VENV"/.installed-* && touch "$stamp"
    fi
}

cmd=${1:-}
case "$cmd" in
    test)
        setup
        shift
        set +e
        "$VENV/bin/python" -m pytest -q "$@"
        rc=$?
        set -e
        if [ "$rc" -eq 5 ]; then
            echo "error: pytest collected no tests" >&2
        fi
        exit "$rc"
        ;;
    demo)
        setup
        shift
        exec "$VENV/bin/python" -m dreamor.cli demo "$@"
        ;;
    *)
        echo "usage: bash scripts/dev.sh demo|test [args]" >&2
        exit 2
        ;;
esac
