"""The ROS 2 face of yolact_ros: the ``yolact_node`` lifecycle node and its helpers.

The only part of the package that imports rclpy. The node is ``node`` (its lifecycle shell,
with ``worker``, ``runtime_settings``, ``model_loading`` and ``node_diagnostics``), the
executable's entry ``main.main`` / ``main.run_node`` (``process`` around it), the parameter
table ``param_table`` and its check ``params`` (no rclpy), message building ``messages`` and
``image_conversion``, the launch rules ``launch_args``; docs/architecture.md lists every module
with its job. Kept free of imports so ``import yolact_ros.ros.params`` works without a ROS runtime.
"""
