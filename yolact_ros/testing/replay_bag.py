"""Write a small rosbag2 of the synthetic camera scene, stamped in a fixed past epoch (no ROS).

The replay test and benchmark play it into ``yolact_node``. Every frame of
:class:`~yolact_ros.data.scene.DemoScene` becomes a ``sensor_msgs/Image`` (``bgr8``) whose
header stamp equals its log time, starting at :data:`REPLAY_EPOCH_NS` (2024-01-01 00:00 UTC):
far from any machine's "now", so code that mixes wall time and bag time shows it at once
(years instead of milliseconds). Written with ``rosbags`` and its built-in Jazzy typestore.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["REPLAY_EPOCH_NS", "REPLAY_TOPIC", "bag_stamps", "write_scene_bag"]

#: The first frame's stamp and log time: 2024-01-01T00:00:00Z in nanoseconds.
REPLAY_EPOCH_NS = 1_704_067_200 * 1_000_000_000
#: The image topic of the bag.
REPLAY_TOPIC = "/camera/image_raw"


def write_scene_bag(
    out: Path | str,
    *,
    frames: int = 60,
    rate: float = 15.0,
    size: tuple[int, int] = (320, 240),
    topic: str = REPLAY_TOPIC,
    storage: str = "mcap",
    seed: int = 0,
    frame_id: str = "camera_optical",
) -> Path:
    """Write ``frames`` frames of the scene at ``rate`` Hz, ``size`` = (width, height), to a new
    bag directory ``out`` (``storage``: mcap or sqlite3); returns ``out``. Frame ``i`` has
    stamp and log time ``REPLAY_EPOCH_NS + round(i / rate s)``."""
    import numpy as np
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_typestore

    from ..data import synth
    from ..data.scene import DemoScene

    if frames < 1 or rate <= 0:
        raise ValueError(f"frames must be >= 1 and rate > 0, got frames={frames}, rate={rate}")
    plugins = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}
    if storage not in plugins:
        raise ValueError(f"storage must be one of {sorted(plugins)}, got {storage!r}")
    out = Path(out)
    typestore = get_typestore(Stores.ROS2_JAZZY)
    Image = typestore.types["sensor_msgs/msg/Image"]
    Header = typestore.types["std_msgs/msg/Header"]
    Time = typestore.types["builtin_interfaces/msg/Time"]
    scene = DemoScene(synth.DEFAULT_CLASSES, size=size, rate=rate, seed=seed)
    with Writer(out, version=9, storage_plugin=plugins[storage]) as writer:
        conn = writer.add_connection(topic, Image.__msgtype__, typestore=typestore)
        for i, stamp_ns in enumerate(bag_stamps(frames, rate)):
            bgr, _ = scene.frame(i)
            h, w = bgr.shape[:2]
            msg = Image(
                header=Header(
                    stamp=Time(sec=stamp_ns // 1_000_000_000, nanosec=stamp_ns % 1_000_000_000), frame_id=frame_id
                ),
                height=h,
                width=w,
                encoding="bgr8",
                is_bigendian=0,
                step=w * 3,
                data=np.ascontiguousarray(bgr).reshape(-1),
            )
            writer.write(conn, stamp_ns, typestore.serialize_cdr(msg, Image.__msgtype__))
    return out


def bag_stamps(frames: int, rate: float) -> list[int]:
    """The stamps (ns) of a bag written by :func:`write_scene_bag` with these settings."""
    return [REPLAY_EPOCH_NS + round(i * 1e9 / rate) for i in range(frames)]
