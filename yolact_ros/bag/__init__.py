"""Offline segmentation of recorded rosbag2 files (``yolact bag``), without ROS: read, segment, write.

``segment`` is the engine, ``naming`` the output topic names (the node's), ``typestore`` the
rosbags types and message factories, ``depth_pairing`` the 3D inputs, ``coco`` the COCO files.
"""
