"""Real photos bundled with scikit-image (``skimage.data``), loaded as 3-channel uint8 images.

The one loader of the photos the synthetic data, the demo scene, ``yolact bench``, the tests and
the benchmarks use (no photo can be downloaded here; those that would need a download fail).
"""

from __future__ import annotations

import numpy as np


def load_photo(name: str, rgb: bool = False) -> np.ndarray:
    """scikit-image's photo ``name`` as a C-contiguous uint8 [H,W,3], BGR (OpenCV's and the
    Segmenter's order) or RGB with ``rgb=True``: a grey photo has its value in all three
    channels, an alpha channel is dropped, another dtype is scaled to 0..255 by its maximum.
    Raises what scikit-image raises for a name it does not bundle (AttributeError) or cannot
    load offline."""
    import skimage.data

    img = np.asarray(getattr(skimage.data, name)())
    if img.dtype != np.uint8:
        img = (255 * (img.astype(np.float64) / max(float(img.max()), 1e-9))).astype(np.uint8)
    if img.ndim == 2:
        img = np.stack([img] * 3, axis=-1)
    img = img[:, :, :3]
    return np.ascontiguousarray(img if rgb else img[:, :, ::-1])
