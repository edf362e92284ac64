# Two commands on a fresh Debian/Ubuntu machine (Python 3.11): `make demo` and `make test`.
# Each installs what it needs into .venv/ on first use; re-runs reuse it.
.PHONY: demo test test-kilted test-core lint setup setup-ros build bench clean

demo:
	bash scripts/demo.sh

test:
	bash scripts/test.sh

# the ROS tests (node, lifecycle, launch statics, reliability) against ROS 2 Kilted, in their own
# environment (.venv-kilted, install-kilted/): scripts/distro.sh
test-kilted:
	YOLACT_ROS_DISTRO=kilted YOLACT_ROS_TEST_PATHS=test/ros bash scripts/test.sh

# the model / inference / training stack only (no ROS needed)
test-core: setup
	.venv/bin/python -m pytest -q test --ignore=test/ros

# ruff (lint + format check, ruff.toml), mypy (setup.cfg), import-linter (.importlinter)
lint:
	bash scripts/lint.sh

setup:
	bash scripts/setup_env.sh

setup-ros:
	bash scripts/setup_env.sh --ros

build: setup-ros
	bash scripts/build_ws.sh

bench: setup
	.venv/bin/yolact bench

clean:
	rm -rf build install log build-kilted install-kilted log-kilted out .ros_log
