"""End to end: `yolact train` overfits a few synthetic images; the checkpoint loads by itself and scores well.

Real data path (synthetic COCO JSON -> CocoInstances -> transforms -> loss -> SGD), a
small random-init MobileNetV2 YOLACT at 128 px, a few hundred tiny steps, then
``Segmenter(weights=...)`` + ``evaluate`` on the same images.  Also covers resume.
"""

import json

import pytest
import torch

from yolact_ros.cli.train import main as train_main
from yolact_ros.data.synth import make_synthetic_dataset

CONFIG = """
base: yolact_resnet50
name: tiny_overfit
max_size: 128
fpn_num_features: 32
head_channels: 32
num_prototypes: 16
backbone:
  kind: mobilenetv2
  pred_scales: [[16], [32], [64], [96], [128]]
train:
  lr: 0.003  # peak 0.0015 at batch 4; 0.01 killed the prototypes (ReLU) on an AVX-512 EPYC: mask loss stuck
  lr_warmup_init: 0.001
  lr_warmup_until: 20
  max_iter: 120
  lr_steps: [100]
"""


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("overfit")
    json_path = make_synthetic_dataset(root / "data", n=4, seed=3, size=(128, 96), classes=("disc", "rectangle"))
    cfg = root / "tiny.yaml"
    cfg.write_text(CONFIG)
    return root, json_path, cfg


def _losses(out_dir):
    return [
        json.loads(line)
        for line in (out_dir / "metrics.jsonl").read_text().splitlines()
        if '"iteration"' in line and "validation" not in line
    ]


def test_overfit_loss_falls_and_mask_ap50_rises(tiny):
    torch.manual_seed(0)
    root, json_path, cfg = tiny
    images = json_path.parent / "images"
    out = root / "run"
    rc = train_main(
        [
            "--config",
            str(cfg),
            "--train-json",
            str(json_path),
            "--train-images",
            str(images),
            "--val-json",
            str(json_path),
            "--val-images",
            str(images),
            "--out",
            str(out),
            "--batch-size",
            "4",
            "--iters",
            "120",
            "--no-augment",
            "--num-workers",
            "0",
            "--threads",
            "1",
            "--log-every",
            "10",
            "--no-progress",
            "--seed",
            "0",
            "--freeze-bn",
            "no",
        ]
    )
    assert rc == 0
    losses = _losses(out)
    first, last = losses[0], losses[-1]
    assert last["total"] < 0.5 * first["total"], (first, last)
    assert last["mask"] < 0.5 * first["mask"] and last["box"] < first["box"]
    val = [
        json.loads(line)["validation"]
        for line in (out / "metrics.jsonl").read_text().splitlines()
        if "validation" in line
    ]
    assert val and val[-1]["mask_AP50"] > 50, val  # chance level is ~0

    # the checkpoint is self-describing: weights alone give the model, its classes and good masks
    from yolact_ros.evaluation.coco_eval import evaluate
    from yolact_ros.segmenter import Segmenter

    ckpt = out / "tiny_overfit_best.pth"
    seg = Segmenter(weights=ckpt, device="cpu")
    assert seg.class_names == ("disc", "rectangle")
    stats = evaluate(seg, json_path, images, progress=False, verbose=False)
    assert stats["mask_AP50"] > 50


def test_resume_continues_from_the_saved_iteration(tiny):
    root, json_path, cfg = tiny
    images = json_path.parent / "images"
    out = root / "resume"
    common = [
        "--config",
        str(cfg),
        "--train-json",
        str(json_path),
        "--train-images",
        str(images),
        "--out",
        str(out),
        "--batch-size",
        "2",
        "--no-augment",
        "--num-workers",
        "0",
        "--threads",
        "1",
        "--log-every",
        "1",
        "--no-progress",
    ]
    assert train_main(common + ["--iters", "3"]) == 0
    ckpt = out / "tiny_overfit_1_3.pth"  # 4 images / batch 2: epoch 1 after 2 steps
    assert ckpt.is_file() and (out / "tiny_overfit_1_3_state.pth").is_file()
    state = torch.load(out / "tiny_overfit_1_3_state.pth", weights_only=True)
    assert state["iteration"] == 3 and state["optimizer"]["state"]  # momentum buffers saved
    (out / "metrics.jsonl").unlink()
    assert train_main(common + ["--iters", "5", "--resume", str(ckpt)]) == 0
    iters = [rec["iteration"] for rec in _losses(out)]
    assert iters == [4, 5]
    assert (out / "tiny_overfit_2_5.pth").is_file()


def test_cli_errors_are_clear(tiny, tmp_path, capsys):
    root, json_path, cfg = tiny
    images = json_path.parent / "images"
    base = ["--train-json", str(json_path), "--train-images", str(images), "--out", str(tmp_path / "o")]
    assert train_main(["--config", "no_such_config"] + base) == 2
    assert "unknown config" in capsys.readouterr().err
    assert (
        train_main(
            [
                "--config",
                str(cfg),
                "--train-json",
                str(tmp_path / "none.json"),
                "--train-images",
                str(images),
                "--out",
                str(tmp_path / "o"),
            ]
        )
        == 2
    )
    assert "error" in capsys.readouterr().err
    named = tmp_path / "named.yaml"
    named.write_text(CONFIG + "class_names: [cat, dog]\n")
    assert train_main(["--config", str(named)] + base) == 2
    assert "differ from the training JSON" in capsys.readouterr().err
    assert train_main(["--config", str(cfg), "--val-json", str(json_path)] + base) == 2
    assert "go together" in capsys.readouterr().err


def test_yolact_plus_config_trains_the_maskiou_net(tiny, tmp_path):
    """A YOLACT++ base (use_maskiou) with a small backbone: the mask-IoU term is live and its net learns."""
    root, json_path, _ = tiny
    images = json_path.parent / "images"
    cfg = tmp_path / "plus.yaml"
    cfg.write_text("""
base: yolact_plus_resnet50
name: tiny_plus
max_size: 256
fpn_num_features: 32
head_channels: 32
backbone:
  kind: mobilenetv2
train:
  lr_warmup_until: 2
""")
    out = tmp_path / "run"
    assert (
        train_main(
            [
                "--config",
                str(cfg),
                "--train-json",
                str(json_path),
                "--train-images",
                str(images),
                "--out",
                str(out),
                "--batch-size",
                "2",
                "--iters",
                "4",
                "--no-augment",
                "--num-workers",
                "0",
                "--threads",
                "1",
                "--log-every",
                "1",
                "--no-progress",
                "--freeze-bn",
                "no",
            ]
        )
        == 0
    )
    losses = _losses(out)
    assert all(rec["maskiou"] > 0 for rec in losses), losses
    from yolact_ros.model.checkpoint import read_checkpoint

    state, meta = read_checkpoint(out / "tiny_plus_2_4.pth")
    assert any(k.startswith("maskiou_net.") for k in state) and '"use_maskiou": true' in meta["config_json"]
