#!/usr/bin/env bash
# The project's test command (README): set up .venv (+ ROS 2 wheels), build the ROS workspace, run pytest.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/setup_env.sh --ros
bash scripts/build_ws.sh
# shellcheck disable=SC1091
source scripts/ros_env.sh
export YOLACT_ROS_REQUIRE_ROS=1
set +e
.venv/bin/python -m pytest -q -p no:cacheprovider test "$@"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
  echo "pytest collected no tests: failing" >&2
  exit 1
fi
exit "$rc"
