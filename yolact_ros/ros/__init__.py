"""The ROS 2 face of yolact_ros: the ``yolact_node`` lifecycle node and its helpers.

The only part of the package that imports rclpy. Modules: ``node`` (the node and ``main``),
``params`` (parameter table, no rclpy), ``image_conversion`` (sensor_msgs <-> numpy),
``messages`` (Instances -> Detection2DArray / InstanceMaskArray), ``diagnostics``.
Kept free of imports so ``import yolact_ros.ros.params`` works without a ROS runtime.
"""
