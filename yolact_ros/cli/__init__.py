"""The ``yolact`` command: one dispatcher, one module per subcommand.

Subcommands are imported only when run, so ``yolact infer`` does not load the trainer.
"""

from __future__ import annotations

import importlib
import logging
import sys

from .. import signals
from ..inference.cpu_memory import keep_freed_memory

#: exit codes after SIGINT / SIGTERM (the shell's 128 + signal number)
SIGNAL_EXIT_CODES = {2: 130, 15: 143}

#: name -> (module, help); each module has ``main(argv) -> int``
SUBCOMMANDS = {
    "infer": ("yolact_ros.cli.infer", "segment images, folders and videos; write overlays + COCO results JSON"),
    "bench": ("yolact_ros.cli.bench", "per-stage CPU latency of the Segmenter"),
    "train": ("yolact_ros.cli.train", "train on a COCO-format dataset"),
    "eval": ("yolact_ros.cli.eval", "box / mask AP on a COCO-format dataset"),
    "synth": ("yolact_ros.cli.synth", "write a synthetic COCO-format instance dataset"),
    "export": ("yolact_ros.cli.export", "write a checkpoint as a self-describing ONNX file (docs/onnx.md)"),
    "quantize": ("yolact_ros.cli.quantize", "int8-quantize a checkpoint for the OpenVINO backend (docs/cpu.md)"),
    "bag": ("yolact_ros.cli.bag", "segment a recorded rosbag2 offline into a new bag (docs/recorded_data.md)"),
}


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: yolact {" + ",".join(SUBCOMMANDS) + "} ...\n")
        for name, (_, helptext) in SUBCOMMANDS.items():
            print(f"  {name:6s} {helptext}")
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    if name not in SUBCOMMANDS:
        print(f"yolact: unknown command {name!r}; choose from {', '.join(SUBCOMMANDS)}", file=sys.stderr)
        return 2
    # SIGINT / SIGTERM: exit 130 / 143 with one line, never an abort (yolact_ros.signals); the
    # trainer's loop asks for an orderly stop instead, to save its interrupt checkpoint
    signals.install(
        lambda signum: SIGNAL_EXIT_CODES.get(signum, 1),
        lambda signum: f"yolact {name}: interrupted by {_signal_name(signum)}",
    )
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    keep_freed_memory()  # before torch starts its threads
    return int(importlib.import_module(SUBCOMMANDS[name][0]).main(rest) or 0)


def _signal_name(signum: int) -> str:
    import signal

    return signal.Signals(signum).name


if __name__ == "__main__":
    raise SystemExit(main())
