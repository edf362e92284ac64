"""The ROS interfaces without ROS: message definitions, image decoding, Instances -> message fields.

Shared by the node (``yolact_ros.ros``, with rclpy's message classes) and by ``yolact bag``
(``yolact_ros.bag``, with rosbags' classes), so both publish the same bytes. Never imports rclpy.
"""
