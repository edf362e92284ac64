"""Stage timing of one Segmenter call: ``time.perf_counter`` on the CPU, CUDA events on a GPU."""

from __future__ import annotations

import time

import torch

#: ``seg.timings`` keys (ms); ``forward`` = backbone_fpn + heads, the only network stage the
#: onnxruntime backend can time (its backbone_fpn and heads are NaN)
STAGES = ("preprocess", "backbone_fpn", "heads", "forward", "detect", "masks", "total")


class StageClock:
    """Stage boundaries of one call: ``time.perf_counter`` on the CPU, CUDA events on a GPU
    (recorded in stream order; read after :meth:`finish`, so timing never syncs the host)."""

    def __init__(self, device: torch.device):
        self.cuda = device.type == "cuda"
        self.marks: list = []

    def mark(self) -> int:
        if self.cuda:
            event = torch.cuda.Event(enable_timing=True)
            event.record()
            self.marks.append(event)
        else:
            self.marks.append(time.perf_counter())
        return len(self.marks) - 1

    @property
    def last(self) -> int:
        return len(self.marks) - 1

    def finish(self) -> None:
        self.mark()
        if self.cuda:
            self.marks[-1].synchronize()  # the results are on the host already: nothing left to wait for

    def ms(self, a: int, b: int) -> float:
        if self.cuda:
            return float(self.marks[a].elapsed_time(self.marks[b]))
        return (self.marks[b] - self.marks[a]) * 1000.0
