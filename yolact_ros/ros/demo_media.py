"""The demo's image outputs: its overlays as a video and as a contact sheet (OpenCV only)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

__all__ = ["write_preview", "write_video"]


def write_video(frames_dir: Path, out: Path, fps: float) -> dict:
    """The overlays ``frames_dir/frame_*.jpg`` as an mp4 at ``fps``; what was written, for the summary."""
    files = sorted(frames_dir.glob("frame_*.jpg"))
    if not files:
        return {"video": None, "video_frames": 0}
    first = cv2.imread(str(files[0]))
    assert first is not None  # a frame this run wrote
    h, w = first.shape[:2]
    # MPEG-4 part 2: the pip OpenCV wheels carry no H.264 encoder (asking for one only prints errors)
    fourcc = "mp4v"
    writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*fourcc), fps, (w, h))  # type: ignore[attr-defined]  # OpenCV's legacy name, kept for 4.x: not in the 5.x stubs
    if not writer.isOpened():
        writer.release()
        return {"video": None, "video_frames": 0, "video_error": "OpenCV cannot write mp4 here"}
    n = 0
    for f in files:
        img = cv2.imread(str(f))
        if img is not None and img.shape[:2] == (h, w):
            writer.write(img)
            n += 1
    writer.release()
    return {"video": out.name, "video_frames": n, "video_fps": round(fps, 2), "video_codec": fourcc}


def write_preview(frames_dir: Path, out: Path, prefer: list[int], tiles: int = 6) -> str | None:
    """A 3x2 contact sheet of overlays spread over the run (frames with detections first)."""
    files = {int(f.stem.split("_")[1]): f for f in frames_dir.glob("frame_*.jpg")}
    pool = [i for i in prefer if i in files] or sorted(files)
    if not pool:
        return None
    picks = [pool[int(round(k * (len(pool) - 1) / max(tiles - 1, 1)))] for k in range(min(tiles, len(pool)))]
    read = [cv2.imread(str(files[i])) for i in dict.fromkeys(picks)]
    imgs = [cv2.resize(im, (480, 360), interpolation=cv2.INTER_AREA) for im in read if im is not None]
    while len(imgs) % 3:
        imgs.append(np.zeros_like(imgs[0]))
    rows = [np.hstack(imgs[i : i + 3]) for i in range(0, len(imgs), 3)]
    cv2.imwrite(str(out), np.vstack(rows))
    return out.name
