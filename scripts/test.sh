#!/usr/bin/env bash
# The project's test command (README): set up .venv (+ ROS 2 wheels), build the ROS workspace, run pytest.
# YOLACT_ROS_DISTRO=kilted runs it against Kilted in its own environment (make test-kilted).
# YOLACT_ROS_TEST_PATHS (default: test) chooses what runs; arguments go to pytest.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# shellcheck disable=SC1091
source "$ROOT/scripts/distro.sh"
DISTRO="$YR_DISTRO" PY="$YR_VENV/bin/python"  # ros_env.sh clears the YR_ names
bash scripts/setup_env.sh --ros
bash scripts/build_ws.sh
# shellcheck disable=SC1091
source scripts/ros_env.sh
export YOLACT_ROS_REQUIRE_ROS=1
set +e
echo "[test] ROS 2 $DISTRO ($PY)"
# shellcheck disable=SC2086
"$PY" -m pytest -q -p no:cacheprovider ${YOLACT_ROS_TEST_PATHS:-test} "$@"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
  echo "pytest collected no tests: failing" >&2
  exit 1
fi
exit "$rc"
