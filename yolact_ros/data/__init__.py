"""COCO-format instance data: reading (:mod:`.coco`), augmentation (:mod:`.augment`)
and a synthetic dataset generator (:mod:`.synth`).

Submodules are imported lazily by their users; this package imports nothing itself.
"""
