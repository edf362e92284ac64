#!/usr/bin/env bash
# Build the ROS 2 workspace of this repository with colcon: the yolact_ros package (messages,
# Python package, node, launch, config) plus, for tests/CI, the vision_msgs stand-in in
# test/ros_deps/ and the foxglove_msgs one (neither is on PyPI; on a real ROS install use the apt ones).
# Idempotent: a re-run rebuilds only what changed (a few seconds).
#   bash scripts/build_ws.sh                 build into ./build ./install ./log
#   YOLACT_ROS_DISTRO=kilted bash scripts/build_ws.sh   the same against Kilted, into
#                                            ./build-kilted ./install-kilted ./log-kilted
#   YOLACT_ROS_NO_STANDIN=1 bash scripts/build_ws.sh   build yolact_ros only (real vision_msgs)
# Extra arguments are passed to `colcon build`.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck disable=SC1091
source "$ROOT/scripts/distro.sh"
VENV="$YR_VENV"
cd "$ROOT"

if [ ! -x "$VENV/bin/colcon" ]; then
  echo "[build_ws] $VENV/bin/colcon not found: run scripts/setup_env.sh --ros first" >&2
  exit 1
fi
PY="$VENV/bin/python"
# The ROS 2 wheels live in the venv: it is the underlay prefix for CMake and ament.
export PATH="$VENV/bin:$PATH"
export VIRTUAL_ENV="$VENV"
export AMENT_PREFIX_PATH="$VENV${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}"
export CMAKE_PREFIX_PATH="$VENV${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}"
# Avoid a huge parallel C++ build on small machines.
export MAKEFLAGS="${MAKEFLAGS:--j2}"
unset PYTHONPATH  # never build against whatever an earlier shell put there

# The ROS wheels' exported CMake files name the wheel builder's Python; setup_env.sh --ros
# repoints them, repeat it here (cheap, idempotent) so a build never trips over it.
if grep -lq '/opt/python/cp311-cp311' "$VENV"/share/*/cmake/*.cmake 2>/dev/null; then
  PYINC=$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
  NPINC=$("$PY" -c 'import numpy; print(numpy.get_include())')
  { grep -l '/opt/python/cp311-cp311' "$VENV"/share/*/cmake/*.cmake 2>/dev/null || true; } | xargs -r sed -i \
    -e "s#/opt/python/cp311-cp311/include/python3.11#$PYINC#g" \
    -e "s#/opt/python/cp311-cp311/lib/python3.11/site-packages/numpy/_core/include#$NPINC#g"
fi

BASE_PATHS=("$ROOT")
if [ "${YOLACT_ROS_NO_STANDIN:-0}" != 1 ]; then
  BASE_PATHS+=("$ROOT/test/ros_deps/vision_msgs")
  BASE_PATHS+=("$ROOT/test/ros_deps/foxglove_msgs")
fi

"$VENV/bin/colcon" --log-base "$YR_LOG" build \
  --base-paths "${BASE_PATHS[@]}" \
  --build-base "$YR_BUILD" --install-base "$YR_INSTALL" \
  --merge-install --symlink-install \
  --event-handlers console_direct- summary+ \
  --cmake-args -DPython3_EXECUTABLE="$PY" -DBUILD_TESTING=OFF \
  "$@"

test -x "$YR_INSTALL/lib/yolact_ros/yolact_node" || { echo "[build_ws] yolact_node was not installed" >&2; exit 1; }
echo "[build_ws] done ($YR_DISTRO): source scripts/ros_env.sh to use it"
