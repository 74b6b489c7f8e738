#!/usr/bin/env bash
# Drives the README's two commands:
#   ./run.sh train [flags]   train the default job (trainers.train)
#   ./run.sh test [args]     run the whole test suite (pytest)
# Both create or reuse a virtual environment in .venv and install the pinned
# stack from setup.cfg into it (re-installing only when setup.cfg changes).
# TF_METAGRAD_GPU=1 adds the `gpu` extra (TensorFlow's CUDA build).
set -euo pipefail
cd "$(dirname "$0")"

die() { echo "run.sh: $*" >&2; exit 2; }

UV_VERSION=0.13.9

pick_python() {
  local candidates=("${PYTHON:-}" python3.11 python3 python)
  for c in "${candidates[@]}"; do
    [ -n "$c" ] && command -v "$c" >/dev/null 2>&1 && { echo "$c"; return; }
  done
  die "no Python found; install CPython 3.11 and run again (or set PYTHON=/path/to/python3.11)."
}

ensure_venv() {
  local py; py=$(pick_python)
  local ver; ver=$("$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
  case "$ver" in
    3.9|3.10|3.11) ;;
    *) die "tf_metagrad needs CPython 3.9-3.11 because dm-reverb 0.14 ships wheels only for those versions; '$py' is Python $ver, so install Python 3.11 and run again with PYTHON=python3.11." ;;
  esac
  if [ ! -x .venv/bin/python ]; then
    echo "run.sh: creating .venv with $py (Python $ver)" >&2
    "$py" -m venv .venv
  fi
  local extras="test,bench" gpu=""
  if [ "${TF_METAGRAD_GPU:-0}" = 1 ]; then
    extras="$extras,gpu"
    gpu="gpu"
  fi
  # Switching TF_METAGRAD_GPU reinstalls; without it the stamp is unchanged.
  local want; want=$({ cat setup.cfg setup.py; [ -z "$gpu" ] || echo "$gpu"; } | sha256sum | cut -d' ' -f1)
  if [ "$(cat .venv/.tf_metagrad_stamp 2>/dev/null || true)" != "$want" ]; then
    echo "run.sh: installing the pinned stack into .venv (first run takes a minute or two)" >&2
    .venv/bin/python -m pip install --quiet --upgrade pip >&2
    # uv installs the same pinned versions as pip in half the time (24 s
    # against 48 s on a 2-core machine, bytecode compiled by both), which is
    # part of a fresh CI run's 10 minutes; pip remains the fallback. uv
    # trusts the system's certificates (--native-tls), as pip does.
    if ! { .venv/bin/python -m pip install --quiet "uv==$UV_VERSION" >&2 &&
           .venv/bin/uv pip install --quiet --native-tls --compile-bytecode \
             --python .venv/bin/python -e ".[$extras]" >&2; }; then
      echo "run.sh: uv could not install the stack; installing with pip" >&2
      .venv/bin/python -m pip install --quiet -e ".[$extras]" >&2
    fi
    echo "$want" > .venv/.tf_metagrad_stamp
  fi
}

cmd=${1:-}
[ -n "$cmd" ] && shift
case "$cmd" in
  train)
    ensure_venv
    exec .venv/bin/python -m trainers.train "$@"
    ;;
  test)
    ensure_venv
    # Three workers on two cores: many tests wait on processes, sockets and
    # timeouts, and a third worker fills that idle time (a whole run: 582 s
    # with three, 632 s with two, back to back on a 2-core machine).
    exec .venv/bin/python -m pytest -n 3 --dist loadfile --no-loadscope-reorder -q "$@"
    ;;
  *)
    die "usage: ./run.sh train [flags] | ./run.sh test [pytest args]"
    ;;
esac
