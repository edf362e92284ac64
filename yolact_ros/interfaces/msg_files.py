"""Where the ``.msg`` definitions of this package's messages and of vision_msgs live (package data).

One copy of each definition: ``definitions/yolact_ros/`` is what the ROS build generates the
package's messages from (the repository's ``msg/`` points there), ``definitions/vision_msgs/``
is the text of upstream vision_msgs 4.1.1 (the test/CI stand-in package builds from it; on a
real ROS install the distribution's vision_msgs is used). ``yolact bag`` registers both with
rosbags, so the bags it writes carry the upstream definitions and type hashes.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["DEFINITIONS_DIR", "message_files"]

#: One folder per ROS package, holding that package's ``<Name>.msg`` files.
DEFINITIONS_DIR = Path(__file__).resolve().parent / "definitions"


def message_files() -> dict[str, Path]:
    """``"<package>/msg/<Name>"`` -> its ``.msg`` file, for every shipped definition."""
    files = {
        f"{pkg.name}/msg/{f.stem}": f
        for pkg in sorted(DEFINITIONS_DIR.iterdir())
        if pkg.is_dir()
        for f in sorted(pkg.glob("*.msg"))
    }
    if not files:
        raise FileNotFoundError(f"no .msg definitions under {DEFINITIONS_DIR} (an incomplete install?)")
    return files
