"""scripts/gpu_check.sh --dry-run: the device check's steps on the CPU, so that the command
run on a lent GPU (minutes of device time) is known to work before it is spent.

The dry run's interpreter sees only what the device has: its Python packages are torch,
torchvision, numpy, OpenCV, scikit-image and pytest with their own dependencies, nothing else
(no PyYAML, pycocotools, onnx, ROS). So an import the device cannot satisfy fails here too."""

from __future__ import annotations

import importlib.metadata as metadata
import importlib.util
import json
import os
import re
import subprocess
import sys
import sysconfig
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEVICE_PACKAGES = ("torch", "torchvision", "numpy", "opencv-python-headless", "scikit-image", "pytest")


def _requirements(dist: metadata.Distribution) -> list[str]:
    names = []
    for req in dist.requires or []:
        name, _, marker = req.partition(";")
        if "extra" in marker:
            continue  # optional features, not installed with the package
        names.append(re.match(r"[A-Za-z0-9_.-]+", name.strip()).group(0))
    return names


def device_like_python(tmp: Path) -> Path:
    """An interpreter that imports the standard library, this repository (PYTHONPATH) and only
    the installed distributions of DEVICE_PACKAGES and their dependencies: ``python -S`` (no
    site-packages) with a folder of links to exactly those distributions' files."""
    site, seen, todo = Path(sysconfig.get_paths()["purelib"]), set(), list(DEVICE_PACKAGES)
    lib = tmp / "device_site"
    lib.mkdir()
    while todo:
        name = todo.pop()
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue  # a dependency for another Python version or platform
        key = dist.metadata["Name"].lower().replace("_", "-")
        if key in seen:
            continue
        seen.add(key)
        todo += _requirements(dist)
        for top in {f.parts[0] for f in dist.files or [] if f.parts and f.parts[0] != ".."}:
            if not (lib / top).exists() and (site / top).exists():
                (lib / top).symlink_to(site / top)
    assert {"torch", "numpy", "cv2", "skimage", "pytest"} <= {p.name for p in lib.iterdir()}
    wrapper = tmp / "python"
    wrapper.write_text(
        f'#!/bin/sh\nexport PYTHONPATH="${{PYTHONPATH:+$PYTHONPATH:}}{lib}"\nexec "{sys.executable}" -S "$@"\n'
    )
    wrapper.chmod(0o755)
    return wrapper


def test_device_like_python_lacks_other_packages(tmp_path):
    python = device_like_python(tmp_path)
    probe = (
        "import importlib.util as u; print([n for n in ('torch', 'cv2', 'skimage', 'yaml', 'pycocotools', "
        "'onnx', 'rclpy') if u.find_spec(n)])"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run([str(python), "-c", probe], capture_output=True, text=True, check=True, env=env).stdout
    assert out.strip() == "['torch', 'cv2', 'skimage']"


def test_gpu_check_dry_run(tmp_path):
    out = tmp_path / "out"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # the ROS workspace's: not on the device
    env["PYTHON"] = str(device_like_python(tmp_path))
    proc = subprocess.run(
        ["bash", "scripts/gpu_check.sh", str(out), "--dry-run"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    summary = (out / "summary.txt").read_text() if (out / "summary.txt").exists() else ""
    assert proc.returncode == 0, proc.stdout + proc.stderr + summary + (out / "cuda_tests.txt").read_text()
    files = sorted(p.name for p in out.iterdir())
    assert files == ["bench_gpu.json", "bench_gpu.txt", "cuda_tests.txt", "cuda_tests.xml", "env.txt", "summary.txt"]
    assert "failed" not in (out / "cuda_tests.txt").read_text()
    rows = json.loads((out / "bench_gpu.json").read_text())
    assert rows and all(r["total_ms"] > 0 and r["instances"] >= 0 for r in rows)
    assert {r["batch"] for r in rows} == {1, 2}
    assert "cuda_tests: exit 0" in summary and "bench_gpu: exit 0" in summary
    assert "# targets" in (out / "bench_gpu.txt").read_text()


def _bench_gpu():
    spec = importlib.util.spec_from_file_location("bench_gpu", REPO / "bench" / "bench_gpu.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_failing_group_is_reported_and_the_rest_measured(tmp_path, monkeypatch, capsys):
    bench_gpu = _bench_gpu()
    real = bench_gpu.run_group

    def run_group(segs, image, batch, frames, warmup):
        if batch == 2:
            raise RuntimeError("CUDA out of memory (raised by the test)")
        return real(segs, image, batch, frames, warmup)

    monkeypatch.setattr(bench_gpu, "run_group", run_group)
    out = tmp_path / "rows.json"
    assert bench_gpu.main(["--preset", "tiny", "--device", "cpu", "--frames", "1", "--json", str(out)]) == 1
    assert [r["batch"] for r in json.loads(out.read_text())] == [1]
    printed = capsys.readouterr().out
    assert "FAILED yolact_resnet50 320x240 default batch 2: RuntimeError: CUDA out of memory" in printed
    assert "# targets" in printed


def test_target_lines_read_the_rows():
    bench_gpu = _bench_gpu()

    def row(precision, total_ms, graph=False, share=0.1):
        return dict(
            config="yolact_plus_resnet50",
            precision=precision,
            size="640x480",
            batch=1,
            settings="default",
            cuda_graph=graph,
            total_ms=total_ms,
            postprocess_share=share,
            cuda_graph_used=graph,
        )

    rows = [row("fp32", 12.0), row("fp16", 5.0, share=0.2), row("fp16", 4.0, graph=True), row("fp32", 10.0, True)]
    (line,) = bench_gpu.target_lines(rows)
    assert "fp16 200 frames/s (target >= 200: met)" in line
    assert "fp16 as a CUDA graph 250 frames/s" in line
    assert "post-processing 20.0 % (target <= 15 %: NOT met)" in line
    assert "fp32/fp16 time 2.40 (target <= 2: NOT met)" in line
    assert "graph/eager fp32 1.20x" in line and "graph/eager fp16 1.25x" in line
    assert bench_gpu.target_lines([r for r in rows if r["precision"] == "fp32"]) == [
        "yolact_plus_resnet50 640x480 batch 1 top 15: no fp16 row (CUDA only)"
    ]
    for r, peak in zip(rows, (300.0, 150.0, 90.0, 280.0)):
        r.update(cuda_network_mb=130.0 if r["precision"] == "fp32" else 131.0, cuda_call_peak_mb=peak)
    rows.append({**rows[0], "batch": 4, "cuda_call_peak_mb": 1100.0})
    memory = [line for line in bench_gpu.target_lines(rows) if "GPU memory" in line]
    assert memory == [
        "yolact_plus_resnet50 fp32 GPU memory: the network 130 MB (once, shared by every camera); "
        "a call's peak on top: batch 1 640x480 default 300 MB, batch 4 640x480 default 1100 MB",
        "yolact_plus_resnet50 fp16 GPU memory: the network 131 MB (once, shared by every camera); "
        "a call's peak on top: batch 1 640x480 default 150 MB",
    ]
