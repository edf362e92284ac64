"""What runs the network: one interface, three runtimes.

A backend takes the Segmenter's preprocessed input [N,3,S,S] and returns ``Yolact.forward``'s
dict of float32 tensors (``loc``, ``conf``, ``mask``, ``proto``, ``priors``); everything
before (preprocessing) and after (decoding, NMS, mask assembly: :mod:`..postprocess`) is
shared and runs in float32 whatever the backend's precision.  Every backend has:

- ``name``, ``precision`` (what actually runs, read back from the runtime), ``cfg``,
  ``input_size``, ``device``, ``channels_last``, ``model`` (the PyTorch module, or None);
- ``forward(x, mark=None)``: ``mark`` is called between backbone+FPN and the heads by
  backends that can split the network (torch eager) for stage timing;
- ``mask_iou(masks, classes)``: YOLACT++'s mask re-scoring head;
- ``describe()``: one line for logs and diagnostics.

Modules: :mod:`.torch_backend`, :mod:`.onnxruntime_backend`, :mod:`.openvino_backend`,
:mod:`.model_cache` (converted models on disk), :mod:`.choice` (the ``auto`` rule).
"""
