"""Test-only helpers of the ROS tests: image messages of a photo in several encodings, and the
check that the node's messages match Instances computed directly.

The node process is :mod:`yolact_ros.ros.node_process`; the client is
:mod:`yolact_ros.testing.node_client`'s (shared with the benchmarks) plus the parameter and
lifecycle services (:class:`Client`, here). Everything rclpy is imported inside functions, so
collecting the tests works without ROS.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from yolact_ros.testing import node_client

REPO = Path(__file__).resolve().parents[2]


# -- images ------------------------------------------------------------------------------------
def photo_rgb(name: str = "astronaut") -> np.ndarray:
    """A scikit-image photo in RGB order (what the test clients publish as rgb8)."""
    from yolact_ros.data.photos import load_photo

    return load_photo(name, rgb=True)


def image_msg(rgb: np.ndarray, encoding: str = "rgb8", frame_id: str = "camera_optical", pad: int = 0):
    """A sensor_msgs/Image of an RGB photo in ``encoding``, rows padded by ``pad`` bytes."""
    import cv2

    from yolact_ros.ros.stream_client import image_message

    conv = {
        "rgb8": lambda a: a,
        "bgr8": lambda a: a[:, :, ::-1],
        "rgba8": lambda a: cv2.cvtColor(a, cv2.COLOR_RGB2RGBA),
        "bgra8": lambda a: cv2.cvtColor(a, cv2.COLOR_RGB2BGRA),
        "mono8": lambda a: cv2.cvtColor(a, cv2.COLOR_RGB2GRAY),
    }
    return image_message(conv[encoding](rgb), encoding, frame_id, pad=pad)


def instances_from_messages(dets, masks, height: int, width: int, class_names):
    """(boxes, scores, class_ids, full-frame masks) of the node's messages, for :class:`Instances`."""
    from yolact_ros.ros.messages import full_frame_mask

    boxes, scores, ids, full = [], [], [], []
    for det, item in zip(dets.detections, masks.instances):
        cx, cy, w, h = det.bbox.center.position.x, det.bbox.center.position.y, det.bbox.size_x, det.bbox.size_y
        boxes.append([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2])
        scores.append(det.results[0].hypothesis.score)
        ids.append(list(class_names).index(det.results[0].hypothesis.class_id))
        full.append(full_frame_mask(item, height, width))
    return (
        np.array(boxes, np.float32).reshape(-1, 4),
        np.array(scores, np.float32),
        np.array(ids, np.int64),
        np.array(full, bool).reshape(-1, height, width),
    )


def masks_in_boxes(masks: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Full-frame masks cut to each box's ROI, as the node publishes them."""
    from yolact_ros.ros.messages import box_to_roi

    out = np.zeros_like(masks)
    for i, box in enumerate(boxes):
        x, y, w, h = box_to_roi(box, masks.shape[1], masks.shape[2])
        out[i, y : y + h, x : x + w] = masks[i, y : y + h, x : x + w]
    return out


def assert_matches(dets, masks, inst, height: int, width: int, class_names) -> None:
    """The node's messages agree with Instances computed directly."""
    assert len(dets.detections) == len(inst), (len(dets.detections), len(inst))
    assert len(masks.instances) == len(inst)
    for i, (det, item) in enumerate(zip(dets.detections, masks.instances)):
        assert det.id == str(i) == item.id
        x1, y1, x2, y2 = inst.boxes[i].tolist()
        assert abs(det.bbox.center.position.x - (x1 + x2) / 2) < 0.5
        assert abs(det.bbox.center.position.y - (y1 + y2) / 2) < 0.5
        assert abs(det.bbox.size_x - (x2 - x1)) < 1.0 and abs(det.bbox.size_y - (y2 - y1)) < 1.0
        assert det.results[0].hypothesis.class_id == class_names[int(inst.class_ids[i])]
        assert abs(det.results[0].hypothesis.score - float(inst.scores[i])) < 1e-3
        assert item.mask.encoding == "mono8"
        assert set(np.unique(np.frombuffer(item.mask.data, np.uint8)).tolist()) <= {0, 255}
        from yolact_ros.ros.messages import box_to_roi, full_frame_mask

        assert (item.roi.x_offset, item.roi.y_offset, item.roi.width, item.roi.height) == box_to_roi(
            inst.boxes[i], height, width
        )
        assert (item.mask.width, item.mask.height) == (item.roi.width, item.roi.height)
        got = full_frame_mask(item, height, width)
        # the published mask is the Segmenter's mask inside the box (ROI)
        ref = np.zeros_like(inst.masks[i])
        r = item.roi
        ref[r.y_offset : r.y_offset + r.height, r.x_offset : r.x_offset + r.width] = inst.masks[i][
            r.y_offset : r.y_offset + r.height, r.x_offset : r.x_offset + r.width
        ]
        union = np.logical_or(got, ref).sum()
        iou = np.logical_and(got, ref).sum() / union if union else 1.0
        assert iou > 0.98, f"instance {i}: mask IoU {iou:.3f}"


def run_example(name: str, args: list[str], feed, tries: int = 30, timeout: float = 30.0) -> tuple[int, str]:
    """Run ``examples/<name>`` with ``args`` while calling ``feed()`` (e.g. send a frame) until
    it exits, at most ``tries`` times (its discovery takes 0-3 s); (exit code, its output)."""
    import subprocess
    import sys

    proc = subprocess.Popen(
        [sys.executable, str(REPO / "examples" / name), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        for _ in range(tries):
            feed()
            if proc.poll() is not None:
                break
        out = proc.communicate(timeout=timeout)[0]
    finally:
        if proc.poll() is None:
            proc.kill()
    return proc.returncode, out


# -- the client with lifecycle and parameter services ---------------------------------------------
class Client(node_client.Client):
    """The tests' client: :class:`yolact_ros.testing.node_client.Client` plus the node's
    parameter and lifecycle services."""

    def _call(self, srv_type, service: str, request, ready_timeout: float, call_timeout: float):
        cli = self.node.create_client(srv_type, service)
        try:
            if not cli.wait_for_service(timeout_sec=ready_timeout):
                raise TimeoutError(f"{service} not available within {ready_timeout}s")
            fut = cli.call_async(request)
            if not self.spin_until(fut.done, call_timeout):
                raise TimeoutError(f"{service} call timed out after {call_timeout}s")
            return fut.result()
        finally:
            self.node.destroy_client(cli)

    def set_parameters(self, node_fqn: str, **values):
        """SetParameters service call (``a__b`` names the parameter ``a.b``); returns the list of
        SetParametersResult."""
        from rcl_interfaces.srv import SetParameters
        from rclpy.parameter import Parameter

        req = SetParameters.Request()
        req.parameters = [Parameter(k.replace("__", "."), value=v).to_parameter_msg() for k, v in values.items()]
        return self._call(SetParameters, f"{node_fqn}/set_parameters", req, 20.0, 20.0).results

    def lifecycle(self, node_fqn: str, transition: str | int | None = None, *, by_label: bool = False):
        """Trigger a lifecycle transition by name (configure, activate, ...) or raw transition id,
        sent by id, or by its label with ``by_label`` (True when it succeeded), or, without one,
        return the current state label."""
        from lifecycle_msgs.msg import Transition
        from lifecycle_msgs.srv import ChangeState, GetState

        if transition is None:
            return self._call(GetState, f"{node_fqn}/get_state", GetState.Request(), 30.0, 60.0).current_state.label
        req = ChangeState.Request()
        tid = transition if isinstance(transition, int) else getattr(Transition, f"TRANSITION_{transition.upper()}")
        req.transition = Transition(label=transition) if by_label else Transition(id=tid)
        return self._call(ChangeState, f"{node_fqn}/change_state", req, 30.0, 60.0).success
