"""keep_freed_memory: glibc keeps freed blocks, so a repeated large allocation stops faulting.

Each case runs in a fresh interpreter: the malloc settings are per process and final.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc settings")

# 64 MiB blocks written from a thread other than the main one (the node's inference worker is
# one): by default each is a fresh mapping, faulted in page by page (16384 pages a block).
PROBE = r"""
import json, resource, sys, threading
from yolact_ros.inference.cpu_memory import keep_freed_memory
applied = keep_freed_memory()
faults = []
def run():
    for _ in range(6):
        f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        a = bytearray(64 << 20)  # malloc'd, then zeroed: every page written
        faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0)
        del a
t = threading.Thread(target=run); t.start(); t.join()
print(json.dumps({"applied": applied, "again": keep_freed_memory(), "faults": faults}))
"""


def _probe(env_value: str | None) -> dict:
    env = dict(os.environ)
    env.pop("YOLACT_ROS_KEEP_FREED_MEMORY", None)
    if env_value is not None:
        env["YOLACT_ROS_KEEP_FREED_MEMORY"] = env_value
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_kept_memory_is_reused_instead_of_faulted_in_again():
    kept = _probe(None)
    assert kept["applied"] is True and kept["again"] is True
    # the first block is faulted in once; the later ones reuse it
    assert kept["faults"][0] > 10000
    assert max(kept["faults"][2:]) < 1000, kept["faults"]


def test_opt_out_leaves_glibc_defaults():
    default = _probe("0")
    assert default["applied"] is False and default["again"] is False
    # glibc's defaults: every block mapped afresh and faulted in page by page
    assert min(default["faults"][2:]) > 10000, default["faults"]
