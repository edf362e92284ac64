"""The inference result of one image."""

from __future__ import annotations

import numpy as np

__all__ = ["Instances"]


class Instances:
    """Detected instances of one image, sorted by descending score.

    - ``boxes``      float32 [N,4]  x1, y1, x2, y2 in input-image pixels
    - ``scores``     float32 [N]    final score (YOLACT++: box score x predicted mask IoU)
    - ``class_ids``  int64   [N]    0-based index into ``class_names``
    - ``box_scores`` float32 [N]    class confidence before mask re-scoring (= ``scores`` for YOLACT)
    - ``class_names`` tuple of str

    Masks are kept **box-sized**: ``mask_windows[i]`` (bool [h_i,w_i]) holds instance i's mask
    in a window of the image whose top-left pixel is ``mask_origins[i]`` = (x0, y0); the mask
    is False everywhere outside its window. The Segmenter pastes only these windows (instances
    of similar size share a window size) and copies only them to the host. ``masks``
    gives the full-frame bool [N,H,W] masks (built on first use, then kept), the same values
    as a full-image paste; :meth:`mask_crop` reads any region without building them.

    Built from full-frame masks (``Instances(boxes, scores, class_ids, masks)``), the windows
    are the whole image.
    """

    def __init__(
        self,
        boxes,
        scores,
        class_ids,
        masks=None,
        box_scores=None,
        class_names=(),
        *,
        mask_windows=None,
        mask_origins=None,
        image_size=None,
    ):
        self.boxes = boxes
        self.scores = scores
        self.class_ids = class_ids
        self.box_scores = scores if box_scores is None else box_scores
        self.class_names = tuple(class_names)
        if masks is not None:
            masks = np.asarray(masks, dtype=bool)
            self.mask_windows = masks
            self.mask_origins = np.zeros((masks.shape[0], 2), np.int64)
            self._size = (int(masks.shape[1]), int(masks.shape[2]))
            self._full = masks
        else:
            if mask_windows is None or mask_origins is None or image_size is None:
                raise ValueError("Instances needs masks= (full frame) or mask_windows=, mask_origins= and image_size=")
            self.mask_windows = list(mask_windows)  # ragged: one bool [h_i, w_i] array each
            self.mask_origins = np.asarray(mask_origins, dtype=np.int64).reshape(-1, 2)
            self._size = (int(image_size[0]), int(image_size[1]))
            self._full = None

    def __len__(self) -> int:
        return int(np.shape(self.scores)[0])

    def __repr__(self) -> str:
        h, w = self._size
        return f"Instances({len(self)} in {w}x{h}, classes {self.labels})"

    @property
    def image_size(self) -> tuple[int, int]:
        """(height, width) of the image the instances belong to."""
        return self._size

    @property
    def labels(self) -> list[str]:
        return [self.class_names[i] if 0 <= i < len(self.class_names) else str(int(i)) for i in self.class_ids]

    @property
    def masks(self) -> np.ndarray:
        """bool [N,H,W] full-frame masks (materialised from the windows once, then kept)."""
        if self._full is None:
            n, (h, w) = len(self), self._size
            full = np.zeros((n, h, w), bool)
            for i in range(n):
                x0, y0, win = self.mask_window(i)
                full[i, y0 : y0 + win.shape[0], x0 : x0 + win.shape[1]] = win
            self._full = full
        return self._full

    def mask_window(self, i: int) -> tuple[int, int, np.ndarray]:
        """``(x0, y0, window)``: instance ``i``'s mask inside its window (clipped to the image)."""
        h, w = self._size
        x0, y0 = (int(v) for v in self.mask_origins[i])
        win = self.mask_windows[i]
        return x0, y0, win[: max(0, h - y0), : max(0, w - x0)]

    def mask_crop(self, i: int, x: int, y: int, width: int, height: int) -> np.ndarray:
        """bool [height, width]: the full-frame mask of instance ``i`` in the region whose
        top-left pixel is (x, y) (False outside the image or the window). A view when the
        region lies inside the window."""
        x0, y0, win = self.mask_window(i)
        wh, ww = win.shape
        if x >= x0 and y >= y0 and x + width <= x0 + ww and y + height <= y0 + wh:
            return win[y - y0 : y - y0 + height, x - x0 : x - x0 + width]
        out = np.zeros((height, width), bool)
        ax, ay = max(x, x0), max(y, y0)
        bx, by = min(x + width, x0 + ww), min(y + height, y0 + wh)
        if ax < bx and ay < by:
            out[ay - y : by - y, ax - x : bx - x] = win[ay - y0 : by - y0, ax - x0 : bx - x0]
        return out

    @staticmethod
    def empty(height: int, width: int, class_names: tuple[str, ...] = ()) -> "Instances":
        return Instances(
            boxes=np.zeros((0, 4), np.float32),
            scores=np.zeros((0,), np.float32),
            class_ids=np.zeros((0,), np.int64),
            mask_windows=[],
            mask_origins=np.zeros((0, 2), np.int64),
            image_size=(height, width),
            class_names=class_names,
        )

    def __getitem__(self, idx) -> "Instances":
        """Select instances with an index array, slice or boolean mask."""
        picked = np.arange(len(self))[idx]
        out = Instances(
            boxes=self.boxes[idx],
            scores=self.scores[idx],
            class_ids=self.class_ids[idx],
            box_scores=self.box_scores[idx],
            class_names=self.class_names,
            mask_windows=[self.mask_windows[k] for k in np.atleast_1d(picked)],
            mask_origins=self.mask_origins[idx],
            image_size=self._size,
        )
        if self._full is not None:
            out._full = self._full[idx]
        return out
