"""CPU DCNv2: torchvision's deform_conv2d kernel vs this project's grid_sample + strided-conv path.

Runs yolact_plus_resnet50's backbone + FPN with the reference weights both ways (alternating runs,
median) and prints the time and the largest output difference. Prints figures; asserts nothing.

    .venv/bin/python bench/bench_dcn.py --runs 5
"""

import argparse
import statistics
import time

import torch

from yolact_ros.model import build_yolact
from yolact_ros.model.dcn import DCN
from yolact_ros.testing.reference_weights import apply_golden_weights


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--config", default="yolact_plus_resnet50")
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    model = apply_golden_weights(build_yolact(a.config))
    dcns = [m for m in model.modules() if isinstance(m, DCN)]
    x = torch.randn(1, 3, model.cfg.max_size, model.cfg.max_size, generator=torch.Generator().manual_seed(0))
    times = {True: [], False: []}
    outs = {}
    with torch.inference_mode():
        for fast in (True, False):  # warm-up
            for m in dcns:
                m.fast_cpu = fast
            outs[fast] = model.features(x)
        for _ in range(a.runs):
            for fast in (True, False):
                for m in dcns:
                    m.fast_cpu = fast
                t = time.perf_counter()
                model.features(x)
                times[fast].append(time.perf_counter() - t)
    diff = max((u - v).abs().max().item() for u, v in zip(outs[True], outs[False]))
    print(f"{a.config} backbone+FPN ({len(dcns)} DCN layers), {a.threads} threads, median of {a.runs}:")
    print(f"  torchvision deform_conv2d : {1000 * statistics.median(times[False]):7.1f} ms")
    print(f"  grid_sample + strided conv: {1000 * statistics.median(times[True]):7.1f} ms")
    print(f"  max |difference| of the pyramid outputs: {diff:.2e}")


if __name__ == "__main__":
    main()
