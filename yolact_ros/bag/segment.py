"""``yolact bag``'s engine: a rosbag2's image topics -> the node's outputs, written to a new rosbag2.

Reads with rosbags' ``AnyReader`` (sqlite3 and MCAP) in log-time order, decodes each frame
the node's way (:mod:`yolact_ros.interfaces.images`), runs the Segmenter on batches of frames
(across cameras), builds the node's messages with the shared mapping
(:mod:`yolact_ros.interfaces.fields`) and writes them with rosbags' ``Writer``: every output
at its input's log time, with its input's header stamp and frame_id, in the input bag's
message order (a queue of slots, one per input message, written out as soon as the slots
before them are complete). ``label_info`` is written once, at the first image's log time.

3D (``detections_3d``): each colour frame is paired with the depth frame of the nearest stamp
within the tolerance; a frame waits until its camera's depth stream has passed its stamp, so
a depth frame logged just after its colour frame is still found. Bad input never stops the
run: a frame that does not deserialize or decode is counted and skipped (one line each); a
bag that cannot be read further ends the reading, and what was read is still processed and
written (``BagSummary.stopped`` says why). The output bag is closed in every case.
"""

from __future__ import annotations

import sys
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from rosbags.highlevel import AnyReader
from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime
from rosbags.rosbag2 import StoragePlugin, Writer

from ..inference.defaults import DEPTH_TOLERANCE_S
from ..inference.instances import Instances
from ..interfaces import fields
from ..interfaces.fields import CLASS_ID_FORMATS
from ..interfaces.images import ImageConversionError, compressed_to_bgr, image_to_bgr
from .coco import CocoWriter
from .depth_pairing import DepthPairing
from .naming import DEFAULT_NAMESPACE, camera_names, output_topic
from .typestore import (
    CAMERA_INFO,
    COMPRESSED_IMAGE,
    IMAGE,
    OUTPUT_TYPES,
    bag_typestore,
    header,
    message_classes,
)

__all__ = ["BagError", "BagJob", "BagSummary", "CameraCounts", "image_topics", "segment_bag"]

#: label_info's QoS, as the node's publisher (``ros2 bag play`` offers it latched too).
LATCHED = Qos(
    QosHistory.KEEP_LAST,
    1,
    QosReliability.RELIABLE,
    QosDurability.TRANSIENT_LOCAL,
    QosTime(0, 0),
    QosTime(0, 0),
    QosLiveliness.AUTOMATIC,
    QosTime(0, 0),
    False,
)

#: Storage names of ``--storage``.
STORAGES = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}


class BagError(Exception):
    """A fatal problem (unreadable input, unknown topic, output exists): one line."""


@dataclass
class BagJob:
    """What to read, what to write; see ``yolact bag --help``."""

    input: Path
    output: Path
    topics: list[str]
    depth_topics: list[str] = field(default_factory=list)
    info_topics: list[str] = field(default_factory=list)
    storage: str = "mcap"
    copy_inputs: bool = False
    namespace: str = DEFAULT_NAMESPACE
    class_id_format: str = CLASS_ID_FORMATS[0]
    batch_size: int = 4
    coco_dir: Path | None = None
    depth_tolerance: float = DEPTH_TOLERANCE_S


@dataclass
class CameraCounts:
    """One camera's frames: read, segmented, skipped (by reason), with / without 3D."""

    read: int = 0
    segmented: int = 0
    skipped: Counter = field(default_factory=Counter)
    with_3d: int = 0
    without_depth: int = 0

    def line(self, name: str, topic: str, with_depth: bool) -> str:
        skipped = sum(self.skipped.values())
        why = f" ({', '.join(f'{n} {k}' for k, n in sorted(self.skipped.items()))})" if skipped else ""
        depth = f", {self.with_3d} with 3D, {self.without_depth} without depth" if with_depth else ""
        return (
            f"{name or 'image'} ({topic}): {self.read} read, {self.segmented} segmented, {skipped} skipped{why}{depth}"
        )


@dataclass
class BagSummary:
    """Per camera (name, topic, counts, has depth); ``stopped``: why reading ended early, else None."""

    cameras: list[tuple[str, str, CameraCounts, bool]]
    written: int
    stopped: str | None = None

    def lines(self) -> list[str]:
        out = [c.line(name, topic, depth) for name, topic, c, depth in self.cameras]
        if self.stopped:
            out.append(f"reading stopped early: {self.stopped}")
        return out


@dataclass
class _Slot:
    """The output of one input message, written at its log time once ``done``."""

    log_time: int
    messages: list = field(default_factory=list)  # (connection, bytes)
    done: bool = True


@dataclass
class _Camera:
    name: str
    topic: str
    depth_topic: str | None
    info_topic: str | None
    counts: CameraCounts = field(default_factory=CameraCounts)
    outputs: dict = field(default_factory=dict)  # output name -> writer connection
    depth: DepthPairing | None = None
    coco: CocoWriter | None = None


@dataclass
class _Frame:
    cam: _Camera
    slot: _Slot
    image: np.ndarray
    stamp_ns: int
    frame_id: str
    msg: Any  # keeps the buffer ``image`` may view


def image_topics(reader) -> list[str]:
    """The reader's topics of sensor_msgs/Image or CompressedImage, sorted."""
    return sorted({c.topic for c in reader.connections if c.msgtype in (IMAGE, COMPRESSED_IMAGE)})


def _decode(msg, msgtype: str) -> np.ndarray:
    if msgtype == COMPRESSED_IMAGE:
        return compressed_to_bgr(msg)[0]
    return image_to_bgr(msg)


class _Run:
    """One ``segment_bag`` call's state."""

    def __init__(self, seg, job: BagJob, reader, writer, on_frame: Callable[[], None], warn: Callable[[str], None]):
        self.seg, self.job, self.reader, self.writer = seg, job, reader, writer
        self.on_frame, self.warn = on_frame, warn
        self.store = bag_typestore()
        self.classes = message_classes(self.store)
        self.queue: deque[_Slot] = deque()
        self.waiting: list[_Frame] = []
        self.label_conn = None
        self.written = 0
        self.stop: Callable[[], bool] = lambda: False

    def output(self, topic: str, name: str):
        qos = [LATCHED] if name == "label_info" else []
        return self.writer.add_connection(topic, OUTPUT_TYPES[name], typestore=self.store, offered_qos_profiles=qos)

    def copy_connection(self, conn):
        msgdef = getattr(conn.msgdef, "data", conn.msgdef)
        if msgdef and conn.digest and str(conn.digest).startswith("RIHS01_"):
            return self.writer.add_connection(
                conn.topic,
                conn.msgtype,
                msgdef=msgdef,
                rihs01=conn.digest,
                serialization_format=conn.ext.serialization_format,
                offered_qos_profiles=conn.ext.offered_qos_profiles,
            )
        return self.writer.add_connection(conn.topic, conn.msgtype, typestore=self.store)

    # -- writing, in the input's order ---------------------------------------------------------
    def drain(self) -> None:
        while self.queue and self.queue[0].done:
            slot = self.queue.popleft()
            for conn, data in slot.messages:
                self.writer.write(conn, slot.log_time, data)
                self.written += 1

    def serialize(self, msg, name: str) -> bytes:
        return bytes(self.store.serialize_cdr(msg, OUTPUT_TYPES[name]))

    # -- frames ----------------------------------------------------------------------------------
    def skip(self, cam: _Camera, kind: str, text: str, slot: _Slot | None = None) -> None:
        cam.counts.skipped[kind] += 1
        self.warn(f"{cam.topic}: frame {cam.counts.read} skipped: {text}")
        if slot is not None:
            slot.done = True
        self.on_frame()

    def add_image(self, cam: _Camera, conn, slot: _Slot, raw) -> None:
        cam.counts.read += 1
        if self.label_conn is not None:
            info = fields.label_info(self.classes, self.seg.class_names, self.seg.score_threshold)
            info.header = header(slot.log_time, "", self.store)
            slot.messages.insert(0, (self.label_conn, self.serialize(info, "label_info")))  # first in the bag
            self.label_conn = None
        try:
            msg = self.reader.deserialize(raw, conn.msgtype)
        except Exception as exc:  # noqa: BLE001 - rosbags raises many kinds for bad CDR
            self.skip(cam, "deserialize", f"cannot deserialize {conn.msgtype}: {type(exc).__name__}: {exc}")
            return
        try:
            image = _decode(msg, conn.msgtype)
        except ImageConversionError as exc:
            self.skip(cam, exc.kind, str(exc))
            return
        slot.done = False
        self.waiting.append(
            _Frame(cam, slot, image, fields.stamp_to_ns(msg.header.stamp), str(msg.header.frame_id), msg)
        )

    def ready(self, frame: _Frame, end: bool) -> bool:
        depth = frame.cam.depth
        return end or depth is None or depth.passed(frame.stamp_ns)

    def run_batches(self, end: bool = False) -> None:
        while not self.stop():
            ready = [f for f in self.waiting if self.ready(f, end)]
            if len(self.waiting) > 8 * self.job.batch_size:  # a depth stream that stopped: do not wait forever
                ready = self.waiting[: self.job.batch_size]
            if not ready or (len(ready) < self.job.batch_size and not end):
                return
            batch = ready[: self.job.batch_size]
            ids = {id(f) for f in batch}
            self.waiting = [f for f in self.waiting if id(f) not in ids]
            self.segment(batch)
            self.drain()

    def segment(self, batch: list[_Frame]) -> None:
        try:
            results: list[Instances | None] = list(self.seg([f.image for f in batch]))
        except (ValueError, RuntimeError) as exc:
            if len(batch) == 1:
                results = [None]
                error = exc
            else:  # find the frame that fails; the others are segmented one by one
                for f in batch:
                    self.segment([f])
                return
        for f, inst in zip(batch, results):
            if inst is None:
                self.skip(f.cam, "segmenter", f"{type(error).__name__}: {error}", f.slot)
                continue
            self.write_frame(f, inst)
            f.cam.counts.segmented += 1
            self.on_frame()

    def write_frame(self, f: _Frame, inst: Instances) -> None:
        cam, cls = f.cam, self.classes
        head = header(f.stamp_ns, f.frame_id, self.store)
        fmt = self.job.class_id_format
        det = fields.instances_to_detections(cls, inst, head, self.seg.class_names, class_id_format=fmt)
        out = [(cam.outputs["detections"], self.serialize(det, "detections"))]
        out.append((cam.outputs["masks"], self.serialize(fields.instances_to_masks(cls, inst, head), "masks")))
        if cam.depth is not None:
            placed = cam.depth.place(inst, f.stamp_ns, self.job.depth_tolerance, self.warn)
            if placed is None:
                cam.counts.without_depth += 1
            else:
                result, frame_id = placed
                head_3d = header(f.stamp_ns, frame_id, self.store)
                msg = fields.instances_to_detections_3d(
                    cls, inst, result, head_3d, self.seg.class_names, class_id_format=fmt
                )
                out.append((cam.outputs["detections_3d"], self.serialize(msg, "detections_3d")))
                cam.counts.with_3d += 1
        if cam.coco is not None:
            cam.coco.add(f.image, inst, f.stamp_ns)
        f.slot.messages += out
        f.slot.done = True


def _open_reader(path: Path, store):
    if not path.exists():
        raise BagError(f"input bag {path} does not exist")
    try:
        reader = AnyReader([path], default_typestore=store)
        reader.open()
    except Exception as exc:  # noqa: BLE001 - rosbags raises its own and OS/sqlite/MCAP errors for unreadable files
        raise BagError(f"cannot read {path} as a rosbag2 (sqlite3 or MCAP): {type(exc).__name__}: {exc}") from None
    return reader


def _cameras(job: BagJob, reader) -> list[_Camera]:
    by_topic = {c.topic: c.msgtype for c in reader.connections}
    available = ", ".join(image_topics(reader)) or "none"
    for topic in job.topics:
        if by_topic.get(topic) not in (IMAGE, COMPRESSED_IMAGE):
            what = "is not in the bag" if topic not in by_topic else f"is {by_topic[topic]}, not an image"
            raise BagError(f"topic {topic} {what}; the bag's image topics: {available}")
    for flag, given in (("--depth-topic", job.depth_topics), ("--camera-info-topic", job.info_topics)):
        if given and len(given) != len(job.topics):
            raise BagError(f"{flag}: give one per --topic ({len(job.topics)}), in the same order; got {len(given)}")
    if bool(job.depth_topics) != bool(job.info_topics):
        raise BagError("3D needs both --depth-topic and --camera-info-topic")
    for topic in job.depth_topics:
        if by_topic.get(topic) != IMAGE:
            raise BagError(
                f"depth topic {topic} is not a sensor_msgs/Image topic of the bag; its image topics: {available}"
            )
    for topic in job.info_topics:
        if by_topic.get(topic) != CAMERA_INFO:
            infos = sorted(t for t, ty in by_topic.items() if ty == CAMERA_INFO)
            raise BagError(
                f"camera_info topic {topic} is not in the bag; its CameraInfo topics: {', '.join(infos) or 'none'}"
            )
    depth: list[str | None] = list(job.depth_topics) or [None] * len(job.topics)
    info: list[str | None] = list(job.info_topics) or [None] * len(job.topics)
    return [_Camera(n, t, d, i) for n, t, d, i in zip(camera_names(job.topics), job.topics, depth, info)]


def segment_bag(
    seg,
    job: BagJob,
    on_frame: Callable[[], None] = lambda: None,
    warn: Callable[[str], None] | None = None,
    on_total: Callable[[int], None] = lambda total: None,
    stop: Callable[[], bool] = lambda: False,
) -> BagSummary:
    """Run ``seg`` (a Segmenter) over ``job``; returns the summary. Raises :class:`BagError` for
    a fatal problem found before anything is written. ``on_total(n)``: the number of image
    messages, once known; ``on_frame()``: after each frame (segmented or skipped); ``stop()``
    True (e.g. Ctrl-C): no further message is read nor batch started, what is done is written
    and the bag closed."""
    warn = warn or (lambda text: print(f"yolact bag: warning: {text}", file=sys.stderr))
    if job.storage not in STORAGES:
        raise BagError(f"--storage must be one of {', '.join(STORAGES)}, got {job.storage!r}")
    if job.batch_size < 1:
        raise BagError(f"--batch-size must be >= 1, got {job.batch_size}")
    if job.output.exists():
        raise BagError(f"output {job.output} exists already; not overwriting it")
    reader = _open_reader(job.input, bag_typestore())
    try:
        cameras = _cameras(job, reader)
        on_total(sum(c.msgcount for c in reader.connections if c.topic in job.topics))
        writer = Writer(job.output, version=9, storage_plugin=STORAGES[job.storage])
        writer.open()
        run = _Run(seg, job, reader, writer, on_frame, warn)
        run.stop = stop
        stopped = None
        try:
            stopped = _read_all(run, cameras)
        finally:
            run.run_batches(end=True)
            run.drain()
            writer.close()
            for cam in cameras:
                if cam.coco is not None:
                    cam.coco.close()
    finally:
        reader.close()
    summary = [(c.name, c.topic, c.counts, c.depth is not None) for c in cameras]
    return BagSummary(summary, run.written, stopped)


def _read_all(run: _Run, cameras: list[_Camera]) -> str | None:
    """Reads every message of the cameras' topics; returns why reading stopped early, or None."""
    job, reader = run.job, run.reader
    roles: dict[str, tuple[str, _Camera]] = {}
    run.label_conn = run.output(output_topic(job.namespace, "", "label_info"), "label_info")
    for cam in cameras:
        roles[cam.topic] = ("image", cam)
        for name in ("detections", "masks") + (("detections_3d",) if cam.depth_topic else ()):
            cam.outputs[name] = run.output(output_topic(job.namespace, cam.name, name), name)
        if cam.depth_topic and cam.info_topic:
            cam.depth = DepthPairing(cam.depth_topic)
            roles[cam.depth_topic] = ("depth", cam)
            roles[cam.info_topic] = ("info", cam)
        if job.coco_dir is not None:
            cam.coco = CocoWriter(job.coco_dir, cam.name, cam.topic, tuple(run.seg.class_names))
    conns = [c for c in reader.connections if c.topic in roles]
    copies = {c.id: run.copy_connection(c) for c in conns} if job.copy_inputs else {}
    messages = reader.messages(connections=conns)
    while True:
        try:
            conn, log_time, raw = next(messages)
        except StopIteration:
            return None
        except Exception as exc:  # noqa: BLE001 - a truncated or corrupt file: keep what was read
            return f"{type(exc).__name__}: {exc}"
        if run.stop():
            return "interrupted"
        role, cam = roles[conn.topic]
        slot = _Slot(log_time)
        if conn.id in copies:
            slot.messages.append((copies[conn.id], bytes(raw)))
        run.queue.append(slot)
        if role == "image":
            run.add_image(cam, conn, slot, raw)
        elif cam.depth is not None:
            cam.depth.add(role, reader, conn, raw, run.warn)
        run.run_batches()
        run.drain()
