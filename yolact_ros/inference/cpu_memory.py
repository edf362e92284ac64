"""Keep freed CPU memory in the process instead of handing it back to the kernel every frame.

PyTorch's CPU tensors come from glibc ``malloc``. By default glibc serves a block over its
mmap threshold (at most 32 MiB) with a fresh ``mmap`` and unmaps it on ``free``, trims the
heap's free top, and serves a thread other than the main one from its own arena, whose heaps
hold at most 64 MiB (a larger block is always mapped). So every forward pass maps, faults in
page by page, zeroes and unmaps its large activations again: measured on 640x480 frames,
yolact_resnet50 in a worker thread, about 81 thousand page faults per image at batch 4, and a
batch of 4 ran at 0.81-0.93x the images/s of single images (BENCHMARKS.md, "Keeping freed
CPU memory").

:func:`keep_freed_memory` sets glibc to keep it: no mmap below 1 GiB, no trimming, one
arena for every thread (set before the threads start: the node and the CLI call it first
thing). Memory freed after one frame is reused by the next; the process's resident size stays
at its peak instead of shrinking between frames. Set ``YOLACT_ROS_KEEP_FREED_MEMORY=0`` to
leave glibc's defaults. Standard library only: importing this loads neither torch nor numpy.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

__all__ = ["ENV", "keep_freed_memory"]

ENV = "YOLACT_ROS_KEEP_FREED_MEMORY"

# mallopt parameters (glibc malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8
_MMAP_THRESHOLD = 1 << 30  # blocks below 1 GiB come from the heap
_TRIM_THRESHOLD = (1 << 31) - 1  # the largest value mallopt takes (an int): never trim

_applied: bool | None = None


def keep_freed_memory() -> bool:
    """Apply the settings above once per process; whether they are in effect.

    False (and nothing changed) when ``YOLACT_ROS_KEEP_FREED_MEMORY=0`` or the C library is
    not glibc. Safe to call more than once."""
    global _applied
    if _applied is not None:
        return _applied
    _applied = False
    if os.environ.get(ENV, "1").strip().lower() in ("0", "false", "no", "off"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        _ = libc.gnu_get_libc_version  # glibc only: other C libraries' mallopt differ or do nothing
    except (OSError, AttributeError):
        return False
    libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    ok = all(
        libc.mallopt(param, value) == 1
        for param, value in (
            (_M_MMAP_THRESHOLD, _MMAP_THRESHOLD),
            (_M_TRIM_THRESHOLD, _TRIM_THRESHOLD),
            (_M_ARENA_MAX, 1),
        )
    )
    _applied = ok
    return ok
