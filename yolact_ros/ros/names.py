"""The names the package is installed and run under: package, executable, default node name.

No imports, so the launch rules, the node process runner and the executable's entry can all read
them cheaply.
"""

from __future__ import annotations

__all__ = ["EXECUTABLE", "NODE_NAME", "PACKAGE"]

#: The ROS package (share/ and lib/ directories, message package).
PACKAGE = "yolact_ros"
#: The installed executable (``ros2 run yolact_ros yolact_node``).
EXECUTABLE = "yolact_node"
#: The node's default name, and the name the launch file gives it: the executable's.
NODE_NAME = EXECUTABLE
