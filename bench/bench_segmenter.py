"""Per-stage CPU latency of the Segmenter (same as `yolact bench`). Prints figures; asserts nothing.

.venv/bin/python bench/bench_segmenter.py --runs 7
"""

import sys

from yolact_ros.cli.bench import main
from yolact_ros.inference.cpu_memory import keep_freed_memory

keep_freed_memory()  # as the yolact CLI and the node do, before torch starts its threads

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
