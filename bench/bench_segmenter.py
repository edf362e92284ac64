"""Per-stage CPU latency of the Segmenter (same as `yolact bench`). Prints figures; asserts nothing.

    .venv/bin/python bench/bench_segmenter.py --runs 7
"""
import sys

from yolact_ros.cli.bench import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
