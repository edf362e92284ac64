"""The inference result of one image."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Instances:
    """Detected instances of one image, sorted by descending score.

    - ``boxes``     float32 [N,4]   x1, y1, x2, y2 in input-image pixels
    - ``scores``    float32 [N]     final score (YOLACT++: box score x predicted mask IoU)
    - ``class_ids`` int64   [N]     0-based index into ``class_names``
    - ``masks``     bool    [N,H,W] at the input image's size
    - ``box_scores`` float32 [N]    class confidence before mask re-scoring (= ``scores`` for YOLACT)
    - ``class_names`` tuple of str
    """

    boxes: np.ndarray
    scores: np.ndarray
    class_ids: np.ndarray
    masks: np.ndarray
    box_scores: np.ndarray = None  # type: ignore[assignment]
    class_names: tuple[str, ...] = field(default=())

    def __post_init__(self):
        if self.box_scores is None:
            self.box_scores = self.scores

    def __len__(self) -> int:
        return int(self.scores.shape[0])

    @property
    def image_size(self) -> tuple[int, int]:
        """(height, width) of the image the instances belong to."""
        return int(self.masks.shape[1]), int(self.masks.shape[2])

    @property
    def labels(self) -> list[str]:
        return [self.class_names[i] if 0 <= i < len(self.class_names) else str(int(i)) for i in self.class_ids]

    @staticmethod
    def empty(height: int, width: int, class_names: tuple[str, ...] = ()) -> "Instances":
        return Instances(
            boxes=np.zeros((0, 4), np.float32),
            scores=np.zeros((0,), np.float32),
            class_ids=np.zeros((0,), np.int64),
            masks=np.zeros((0, height, width), bool),
            class_names=class_names,
        )

    def __getitem__(self, idx) -> "Instances":
        """Select instances with an index array, slice or boolean mask."""
        return Instances(
            boxes=self.boxes[idx], scores=self.scores[idx], class_ids=self.class_ids[idx], masks=self.masks[idx],
            box_scores=self.box_scores[idx], class_names=self.class_names,
        )
