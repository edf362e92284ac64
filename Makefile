# Two commands on a fresh Debian/Ubuntu machine (Python 3.11): `make demo` and `make test`.
# Each installs what it needs into .venv/ on first use; re-runs reuse it.
.PHONY: demo test test-core setup setup-ros build bench infer-example clean

demo:
	bash scripts/demo.sh

test:
	bash scripts/test.sh

# the model / inference / training stack only (no ROS needed)
test-core: setup
	.venv/bin/python -m pytest -q test --ignore=test/ros

setup:
	bash scripts/setup_env.sh

setup-ros:
	bash scripts/setup_env.sh --ros

build: setup-ros
	bash scripts/build_ws.sh

bench: setup
	.venv/bin/yolact bench

infer-example: setup
	.venv/bin/python -c "import skimage.data, cv2; cv2.imwrite('out/astronaut.jpg', skimage.data.astronaut()[:, :, ::-1])" 2>/dev/null || (mkdir -p out && .venv/bin/python -c "import skimage.data, cv2; cv2.imwrite('out/astronaut.jpg', skimage.data.astronaut()[:, :, ::-1])")
	.venv/bin/yolact infer out/astronaut.jpg --out out/infer

clean:
	rm -rf build install log out .ros_log
