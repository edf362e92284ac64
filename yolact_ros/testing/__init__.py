"""Support for tests and benchmarks: deterministic reference weights and synthetic RGB-D scenes.

Nothing in the product imports this package (a contract in ``.importlinter``); the one
exception is ``yolact bench --weights reference`` (the default of ``yolact bench``), which
imports :mod:`.reference_weights` when it runs, so a machine can be benchmarked without a
trained checkpoint.
"""
