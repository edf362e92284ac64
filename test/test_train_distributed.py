"""`yolact train` under torchrun (DistributedDataParallel on gloo, 2 processes on this CPU).

Real torchrun launches of the real CLI: 2 ranks x 2 images train like 1 process x 4,
checkpoints move between world sizes, a killed rank is survived with --max-restarts 1
and reported without, two simulated machines train like one, distributed validation
scores like `yolact eval`.  Tolerance for "the same parameters": the largest absolute
difference of any tensor <= 1e-5 (gloo sums the gradients of 2 ranks in another order
than one process sums 4 images; measured ~1e-9 after 4 steps).
"""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from yolact_ros.data.synth import make_synthetic_dataset
from yolact_ros.model.checkpoint import read_checkpoint
from yolact_ros.train.checkpoints import latest_checkpoint
from yolact_ros.train.distributed import GlobalBatchSampler, split_batch

REPO = Path(__file__).resolve().parents[1]
PARAM_TOLERANCE = 1e-5
#: a job that lost a rank and may not restart ends well within this many seconds (the agent's timeouts)
FAILURE_EXIT_S = 60

CONFIG = """
base: yolact_resnet50
name: ddp
max_size: 128
fpn_num_features: 32
head_channels: 32
num_prototypes: 16
backbone:
  kind: mobilenetv2
  pred_scales: [[16], [32], [64], [96], [128]]
train:
  lr: 0.004
  lr_warmup_init: 0.001
  lr_warmup_until: 2
  max_iter: 8
  lr_steps: [6]
  masks_to_train: 10000  # no random subset of the positives: the data decide everything
"""


# -- units ------------------------------------------------------------------------------------------
def test_ranks_share_each_global_batch_exactly():
    one = GlobalBatchSampler(10, 4, seed=3)
    ranks = [GlobalBatchSampler(10, 4, seed=3, rank=r, world_size=2) for r in range(2)]
    it1, its = iter(one), [iter(s) for s in ranks]
    for _step in range(7):  # over epoch boundaries (2 batches per epoch, 2 images dropped)
        whole = next(it1)
        parts = [next(i) for i in its]
        assert sorted(parts[0] + parts[1]) == sorted(whole) and len(parts[0]) == len(parts[1]) == 2
    assert GlobalBatchSampler(10, 4, seed=3).epoch_order(0) != GlobalBatchSampler(10, 4, seed=3).epoch_order(1)
    # resuming at (epoch 1, batch 1) continues the same sequence at any world size
    full = iter(GlobalBatchSampler(10, 4, seed=3))
    expected = [next(full) for _ in range(5)][3:]
    later = iter(GlobalBatchSampler(10, 4, seed=3, rank=1, world_size=4, start_epoch=1, start_batch=1))
    assert [next(later) for _ in range(2)] == [b[1::4] for b in expected]


def test_global_batch_must_divide_over_the_ranks():
    assert split_batch(8, 4) == 2
    with pytest.raises(ValueError, match=r"--batch-size 6 is the global batch .* 4 processes \(e.g. 4 or 8\)"):
        split_batch(6, 4)
    with pytest.raises(ValueError, match="fewer than the global batch"):
        GlobalBatchSampler(3, 4, seed=0, world_size=2)


def test_latest_checkpoint_is_the_newest_complete_one(tmp_path):
    from yolact_ros.model.config import get_config
    from yolact_ros.train.trainer import Trainer, TrainOptions

    assert latest_checkpoint(tmp_path, "x") is None
    cfg = get_config("yolact_resnet50").replace(name="x", max_size=128)
    t = Trainer(cfg, [], TrainOptions(out_dir=tmp_path, device="cpu", progress=False))
    t.save(10, 0)
    t.save(20, 1)
    assert latest_checkpoint(tmp_path, "x") == tmp_path / "x_1_20.pth"
    (tmp_path / "x_2_30.pth").write_bytes((tmp_path / "x_1_20.pth").read_bytes())  # no _state.pth: incomplete
    (tmp_path / "x_2_25.pth").write_bytes(b"half a file")
    (tmp_path / "x_2_25_state.pth").write_bytes(b"half a file")
    assert latest_checkpoint(tmp_path, "x") == tmp_path / "x_1_20.pth"


def test_sync_bn_on_the_cpu_is_refused_in_one_line(tmp_path):
    from yolact_ros.model.config import get_config
    from yolact_ros.train.distributed import Dist
    from yolact_ros.train.trainer import Trainer, TrainOptions

    cfg = get_config("yolact_resnet50").replace(name="x", max_size=128)
    with pytest.raises(ValueError, match="--sync-bn needs CUDA"):
        Trainer(
            cfg,
            [],
            TrainOptions(out_dir=tmp_path, device="cpu", progress=False, freeze_bn=False, sync_bn=True),
            dist=Dist(world_size=2, backend="gloo"),
        )


def test_a_parameter_without_gradient_is_named(tmp_path, data):
    from yolact_ros.data.augment import EvalTransform, TransformedDataset, collate
    from yolact_ros.data.coco import CocoInstances
    from yolact_ros.train.config_file import resolve_config
    from yolact_ros.train.trainer import Trainer, TrainOptions

    cfg = resolve_config(str(data["config"])).replace(class_names=("disc", "rectangle", "triangle", "star"))
    ds = TransformedDataset(CocoInstances(data["json"], data["images"]), EvalTransform(cfg))
    t = Trainer(cfg, ds, TrainOptions(out_dir=tmp_path, device="cpu", progress=False))
    images, targets = collate([ds[0], ds[1]])
    assert t.step(images, targets, 1e-4) is not None  # every parameter of the real model takes part
    t.model.spare = torch.nn.Linear(2, 2)  # one that never does
    t._checked_gradients = False
    with pytest.raises(
        RuntimeError, match=r"2 trainable parameters get no gradient in training \(spare.weight, spare.bias\)"
    ):
        t.step(images, targets, 1e-4)


# -- torchrun ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("ddp")
    json_path = make_synthetic_dataset(root / "data", n=8, seed=3, size=(128, 96))
    cfg = root / "ddp.yaml"
    cfg.write_text(CONFIG)
    return {"root": root, "json": json_path, "images": json_path.parent / "images", "config": cfg}


def _env():
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    env.pop("TORCHELASTIC_RESTART_COUNT", None)
    return env


def _train_args(data, out, iters=4, batch=4, extra=()):
    return [
        "train",
        "--config",
        str(data["config"]),
        "--train-json",
        str(data["json"]),
        "--train-images",
        str(data["images"]),
        "--out",
        str(out),
        "--batch-size",
        str(batch),
        "--iters",
        str(iters),
        "--no-augment",
        "--num-workers",
        "0",
        "--threads",
        "1",
        "--log-every",
        "1",
        "--no-progress",
        "--freeze-bn",
        "yes",
        *extra,
    ]


def _single(args, timeout=300):
    return subprocess.run(
        [sys.executable, "-m", "yolact_ros.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=_env(),
        cwd=REPO,
    )


def _torchrun_cmd(args, nproc=2, launcher=("--standalone",)):
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        *launcher,
        "--nproc-per-node",
        str(nproc),
        "-m",
        "yolact_ros.cli",
        *args,
    ]


def _torchrun(args, nproc=2, launcher=("--standalone",), timeout=300):
    return subprocess.run(
        _torchrun_cmd(args, nproc, launcher), capture_output=True, text=True, timeout=timeout, env=_env(), cwd=REPO
    )


def _ok(proc):
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    return proc


def _params(path):
    state, meta = read_checkpoint(path)
    return state, meta


def _max_diff(a, b):
    assert a.keys() == b.keys()
    return max(float((a[k].double() - b[k].double()).abs().max()) for k in a if a[k].is_floating_point())


def _losses(out):
    lines = (Path(out) / "metrics.jsonl").read_text().splitlines()
    return [json.loads(x) for x in lines if '"validation"' not in x]


@pytest.fixture(scope="module")
def runs(data):
    """1 process x batch 4 and 2 ranks x batch 2, 8 SGD steps each, a checkpoint every 4."""
    root = data["root"]
    _ok(_single(_train_args(data, root / "one", iters=8, extra=("--save-every", "4", "--keep", "5"))))
    ddp = _ok(_torchrun(_train_args(data, root / "two", iters=8, extra=("--save-every", "4", "--keep", "5"))))
    return {"one": root / "one", "two": root / "two", "two_log": ddp}


def test_two_ranks_train_like_one_process_with_the_same_global_batch(runs):
    one, two = _losses(runs["one"]), _losses(runs["two"])
    assert [r["iteration"] for r in one] == [r["iteration"] for r in two] == list(range(1, 9))
    assert {r["world_size"] for r in one} == {1} and {r["world_size"] for r in two} == {2}
    for a, b in zip(one, two):
        for term in ("total", "box", "conf", "mask", "segm"):
            assert b[term] == pytest.approx(a[term], rel=1e-4, abs=1e-5), (a, b)
    assert one[-1]["total"] < one[0]["total"]  # they learn
    sa, ma = _params(runs["one"] / "ddp_4_8.pth")
    sb, mb = _params(runs["two"] / "ddp_4_8.pth")
    assert _max_diff(sa, sb) <= PARAM_TOLERANCE
    assert not any(k.startswith("module.") for k in sb)  # the official layout, loadable as is
    assert (ma["world_size"], mb["world_size"], mb["batch_size"]) == (1, 2, 4)
    # rank 0 alone spoke: one start-up line, one "checkpoint" line
    log = runs["two_log"]
    assert log.stdout.count("checkpoint ") == 1 and log.stderr.count("[train] done") == 1


def test_checkpoints_resume_at_another_world_size(runs, data):
    """A torchrun checkpoint resumes in one process and a single-process one under torchrun:
    same global batch, same schedule, same data order, same result."""
    root = data["root"]
    _ok(
        _single(_train_args(data, root / "two_then_one", iters=8, extra=("--resume", str(runs["two"] / "ddp_2_4.pth"))))
    )
    _ok(
        _torchrun(
            _train_args(data, root / "one_then_two", iters=8, extra=("--resume", str(runs["one"] / "ddp_2_4.pth")))
        )
    )
    final, _ = _params(runs["one"] / "ddp_4_8.pth")
    for out in ("two_then_one", "one_then_two"):
        state, _ = _params(root / out / "ddp_4_8.pth")
        assert _max_diff(final, state) <= PARAM_TOLERANCE, out
    # another global batch would change the schedule: refused
    bad = _single(
        _train_args(data, root / "bad", iters=8, batch=2, extra=("--resume", str(runs["two"] / "ddp_2_4.pth")))
    )
    assert bad.returncode == 2 and "trained with global batch 4; resume with --batch-size 4" in bad.stderr


def test_a_global_batch_the_ranks_cannot_share_is_refused(data):
    proc = _torchrun(_train_args(data, data["root"] / "odd", batch=3))
    assert proc.returncode != 0
    assert "--batch-size 3 is the global batch and must divide evenly over 2 processes (e.g. 2 or 4)" in proc.stderr
    assert "yolact_ros/" not in proc.stderr  # no traceback from the workers (torchrun prints its own summary)


def _rank_pid(launcher_pid: int, rank: int, restart: int = 0) -> int | None:
    """The pid of the worker with this RANK started by the launcher (from /proc)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            env = (entry / "environ").read_bytes().split(b"\0")
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if f"RANK={rank}".encode() in env and f"TORCHELASTIC_RESTART_COUNT={restart}".encode() in env:
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            if ppid == launcher_pid:
                return int(entry.name)
    return None


def _kill_rank_after_checkpoint(proc, out: Path, name: str, rank: int = 1, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not (out / name).is_file():
        assert proc.poll() is None, "training ended before its first checkpoint"
        time.sleep(0.02)
    assert (out / name).is_file()
    pid = _rank_pid(proc.pid, rank)
    assert pid is not None, "rank 1 not found"
    os.kill(pid, signal.SIGKILL)


def test_a_killed_rank_is_survived_with_one_restart(data, runs):
    """SIGKILL to rank 1 after the iteration-4 checkpoint: torchrun restarts both ranks, they
    resume from it (--resume auto) and end where an uninterrupted run ends."""
    out = data["root"] / "restart"
    args = _train_args(data, out, iters=40, extra=("--save-every", "4", "--keep", "2", "--resume", "auto"))
    reference = data["root"] / "uninterrupted"
    _ok(_single(_train_args(data, reference, iters=40, extra=("--save-every", "40"))))
    proc = subprocess.Popen(
        _torchrun_cmd(args, launcher=("--standalone", "--max-restarts", "1")),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
        cwd=REPO,
    )
    try:
        _kill_rank_after_checkpoint(proc, out, "ddp_2_4.pth")
        stdout, stderr = proc.communicate(timeout=300)
    finally:
        proc.kill()
    assert proc.returncode == 0, stderr[-4000:]
    assert re.search(r"resumed from \S+ddp_\d+_\d+\.pth at iteration (\d+)", stderr), stderr[-3000:]
    iterations = [r["iteration"] for r in _losses(out)]
    assert iterations[-1] == 40 and len(set(iterations)) == 40  # every iteration logged, some twice
    final, meta = _params(out / "ddp_20_40.pth")
    assert meta["world_size"] == 2
    expected, _ = _params(reference / "ddp_20_40.pth")
    assert _max_diff(final, expected) <= PARAM_TOLERANCE

    from yolact_ros.segmenter import Segmenter

    assert Segmenter(weights=out / "ddp_20_40.pth", device="cpu").class_names == (
        "disc",
        "rectangle",
        "triangle",
        "star",
    )


def test_without_restarts_a_lost_rank_ends_the_job_and_is_named(data):
    out = data["root"] / "lost"
    args = _train_args(data, out, iters=400, extra=("--save-every", "4"))
    proc = subprocess.Popen(
        _torchrun_cmd(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(), cwd=REPO
    )
    try:
        _kill_rank_after_checkpoint(proc, out, "ddp_2_4.pth")
        _, stderr = proc.communicate(timeout=FAILURE_EXIT_S + 30)  # only a hang exceeds it
    finally:
        proc.kill()
    assert proc.returncode != 0
    assert re.search(r"rank\s*:\s*1 \(local_rank: 1\)", stderr) and "SIGKILL" in stderr, stderr[-3000:]
    assert "yolact train (rank 0): " in stderr  # the survivor says who it is and why it stopped
    for path in out.glob("*.pth"):  # nothing half-written
        if path.name.endswith("_state.pth"):
            torch.load(path, weights_only=True)
        else:
            read_checkpoint(path)


def test_two_machines_simulated_train_like_one(data, runs):
    """Two torchrun launchers (--nnodes 2, c10d rendezvous on 127.0.0.1), one process each."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = data["root"] / "two_nodes"
    args = _train_args(data, out, iters=8, extra=("--save-every", "8"))
    launcher = (
        "--nnodes",
        "2",
        "--rdzv-backend",
        "c10d",
        "--rdzv-endpoint",
        f"127.0.0.1:{port}",
        "--rdzv-id",
        "yolact-test",
    )
    nodes = [
        subprocess.Popen(
            _torchrun_cmd(args, nproc=1, launcher=launcher),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=_env(),
            cwd=REPO,
        )
        for _ in range(2)
    ]
    try:
        results = [n.communicate(timeout=300) for n in nodes]
    finally:
        for n in nodes:
            n.kill()
    for n, (_, err) in zip(nodes, results):
        assert n.returncode == 0, err[-3000:]
    state, meta = _params(out / "ddp_4_8.pth")
    assert meta["world_size"] == 2
    assert _max_diff(state, _params(runs["two"] / "ddp_4_8.pth")[0]) <= PARAM_TOLERANCE


def test_distributed_validation_scores_like_yolact_eval(tmp_path):
    """Validation on 2 ranks (each a shard, gathered) = `evaluate` of the same checkpoint in one process."""
    from yolact_ros.evaluation.coco_eval import evaluate
    from yolact_ros.segmenter import Segmenter

    demo = REPO / "models" / "demo" / "yolact_synth_demo.pth"
    train = make_synthetic_dataset(tmp_path / "train", n=4, seed=7)
    val = make_synthetic_dataset(tmp_path / "val", n=15, seed=1000)  # odd: the ranks get 8 and 7 images
    out = tmp_path / "run"
    args = [
        "train",
        "--config",
        str(REPO / "configs" / "synth_mobilenet.yaml"),
        "--train-json",
        str(train),
        "--train-images",
        str(train.parent / "images"),
        "--val-json",
        str(val),
        "--val-images",
        str(val.parent / "images"),
        "--out",
        str(out),
        "--resume",
        str(demo),
        "--iters",
        "701",
        "--lr",
        "1e-9",
        "--batch-size",
        "2",
        "--no-augment",
        "--num-workers",
        "0",
        "--threads",
        "1",
        "--no-progress",
    ]
    _ok(_torchrun(args))
    record = [
        json.loads(x)["validation"] for x in (out / "metrics.jsonl").read_text().splitlines() if "validation" in x
    ][-1]
    assert record["world_size"] == 2 and record["num_images"] == 15
    stats = evaluate(
        Segmenter(weights=next(out.glob("synth_mobilenet_*_701.pth")), device="cpu"),
        val,
        val.parent / "images",
        progress=False,
        verbose=False,
    )
    assert stats["mask_AP"] > 30  # a real model, not an empty one
    assert record["mask_AP"] == pytest.approx(stats["mask_AP"], abs=0.05)
    assert record["box_AP"] == pytest.approx(stats["box_AP"], abs=0.05)


def test_ctrl_c_stops_every_rank_after_the_same_step_and_rank_0_saves(data):
    out = data["root"] / "ctrl_c"
    proc = subprocess.Popen(
        _torchrun_cmd(_train_args(data, out, iters=400, extra=("--save-every", "4"))),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
        cwd=REPO,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not (out / "ddp_2_4.pth").is_file() and time.monotonic() < deadline:
            time.sleep(0.02)
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in the terminal does
        _, stderr = proc.communicate(timeout=90)
    finally:
        proc.kill()
    saved = list(out.glob("ddp_*_interrupt.pth"))
    assert len(saved) == 1, stderr[-3000:]
    assert (
        "yolact train (rank 0): interrupted by SIGINT" in stderr
        and "yolact train (rank 1): interrupted by SIGINT" in stderr
    )
    iteration = int(re.search(r"_(\d+)_interrupt", saved[0].name).group(1))
    assert read_checkpoint(saved[0])[1]["iteration"] == iteration == _losses(out)[-1]["iteration"]
