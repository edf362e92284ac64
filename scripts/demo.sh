#!/usr/bin/env bash
# `make demo`: yolact_node on a synthetic camera stream, with the shipped demo model.
#   1. .venv with PyTorch and the ROS 2 Jazzy wheels (first use ~4 min; re-runs seconds)
#   2. colcon build of the workspace (first use ~1 min; re-runs seconds)
#   3. python -m yolact_ros.ros.demo: starts yolact_node as launch/segment.launch.py would,
#      streams 30 s of camera frames, records the outputs and checks them
# Outputs in out/demo/: summary.json, overlay.mp4, preview.png, frames/, frames.json, node.log.
# Extra arguments go to the demo runner, e.g.:
#   bash scripts/demo.sh --duration 60 --rate 10 --weights my_model.pth --out out/mine
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

WEIGHTS="models/demo/yolact_synth_demo.pth"
if [[ " $* " != *" --weights"* ]] && [ ! -s "$WEIGHTS" ]; then
  echo "[demo] error: the demo model $WEIGHTS is missing (incomplete checkout?); pass --weights FILE" >&2
  exit 1
fi

echo "[demo] setting up .venv (PyTorch, ROS 2 Jazzy wheels)"
bash scripts/setup_env.sh --ros
echo "[demo] building the ROS workspace"
bash scripts/build_ws.sh
# shellcheck disable=SC1091
source scripts/ros_env.sh
echo "[demo] ROS_DOMAIN_ID=$ROS_DOMAIN_ID"

# -P: never import the source tree ahead of the built package (which holds yolact_ros.msg)
exec "$ROOT/.venv/bin/python" -P -m yolact_ros.ros.demo --out out/demo "$@"
