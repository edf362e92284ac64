"""Identity switches of a tracker against ground truth identities (no ROS).

:class:`IdentityScore` is fed, frame by frame, the ground-truth objects (persistent ids and
masks, e.g. :class:`yolact_ros.data.scene.SceneObject`) and the tracked detections (masks and
the ids :class:`yolact_ros.inference.tracking.Tracker` gave them). Detections are matched to
objects one-to-one by mask IoU >= ``min_iou`` (optimal assignment); a *matched object-frame* is
an object matched in a frame, and an *identity switch* is a matched object-frame whose track
id differs from the one that object was last matched with (CLEAR-MOT's IDSW).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ..inference.tracking import mask_iou

__all__ = ["IdentityScore"]


@dataclass
class IdentityScore:
    """Counts of a tracked stream; ``switch_rate`` = switches / matched object-frames."""

    min_iou: float = 0.5
    frames: int = 0
    objects: int = 0  # ground-truth object-frames
    matched: int = 0  # of which matched to a detection
    switches: int = 0
    class_switches: int = 0  # of which the detection's class changed too (the model changed its mind)
    last_track: dict[int, int] = field(default_factory=dict)  # object id -> track id it was last matched with
    last_class: dict[int, int] = field(default_factory=dict)  # object id -> class of that detection

    def update(
        self,
        object_ids: Sequence[int],
        object_masks: np.ndarray,
        track_ids: Sequence[int],
        det_masks: np.ndarray,
        det_classes: Sequence[int] | None = None,
    ) -> list[tuple[int, int]]:
        """One frame: objects (ids, bool [M,H,W]) and tracked detections (ids, bool [N,H,W],
        optionally their classes); the matched (object index, detection index) pairs."""
        from scipy.optimize import linear_sum_assignment

        self.frames += 1
        self.objects += len(object_ids)
        if len(object_ids) == 0 or len(track_ids) == 0:
            return []
        iou = mask_iou(np.asarray(object_masks), np.asarray(det_masks))
        rows, cols = linear_sum_assignment(iou, maximize=True)
        pairs = [(int(r), int(c)) for r, c in zip(rows, cols) if iou[r, c] >= self.min_iou]
        for r, c in pairs:
            oid, tid = int(object_ids[r]), int(track_ids[c])
            self.matched += 1
            cls = -1 if det_classes is None else int(det_classes[c])
            if oid in self.last_track and self.last_track[oid] != tid:
                self.switches += 1
                self.class_switches += int(det_classes is not None and self.last_class[oid] != cls)
            self.last_track[oid], self.last_class[oid] = tid, cls
        return pairs

    @property
    def switch_rate(self) -> float:
        return self.switches / self.matched if self.matched else 0.0

    def summary(self) -> dict:
        return {
            "frames": self.frames,
            "object_frames": self.objects,
            "matched_object_frames": self.matched,
            "identity_switches": self.switches,
            "switch_rate": round(self.switch_rate, 5),
            "switches_with_class_change": self.class_switches,
        }
