"""Inference: numpy images in, :class:`~.instances.Instances` out.

Modules: ``segmenter`` (the :class:`~.segmenter.Segmenter`, orchestration only),
``postprocess`` (raw network outputs -> Instances in two steps), ``instances`` (the result
type), ``visualize`` (overlays), ``defaults`` (the default settings, defined once).
Imports nothing itself, so reading ``defaults`` does not load torch.
"""
