"""The ``yolact_node`` executable: :func:`run_node` (signal handlers first, then :func:`main`).

Kept apart from :mod:`yolact_ros.ros.node` so the generated script installs the signal
handlers of :mod:`yolact_ros.ros.process` before rclpy, numpy or torch is imported: this
module imports only the standard library, ``names`` and ``process`` at the top.
"""

from __future__ import annotations

import os
import sys
import time

from .names import NODE_NAME
from .process import exit_with_parent, finish, install_signal_handlers, mark_started, shutdown_requested

__all__ = ["main", "run_node"]


def run_node() -> None:
    """The ``yolact_node`` executable: handlers first, then :func:`main`; ends the process."""
    install_signal_handlers()  # from here a signal ends the process with 0, wherever the main thread is
    exit_with_parent()
    try:
        code = main()
    except BaseException:
        if not shutdown_requested():
            raise  # a real error: its traceback, exit 1
        code = 0  # a shutdown already under way
    finish(code)


def _check_imports() -> str | None:
    """A one-line reason when a message package is missing (clearer than an ImportError)."""
    try:
        import vision_msgs.msg  # noqa: F401
    except ImportError:
        return (
            "vision_msgs is not installed: install ros-$ROS_DISTRO-vision-msgs "
            "(or build test/ros_deps/vision_msgs into your workspace)"
        )
    try:
        import yolact_ros.msg  # noqa: F401
    except ImportError:
        return (
            "yolact_ros.msg not found: build the package with colcon and source install/setup.bash "
            "(a pip install of yolact_ros has no ROS messages)"
        )
    return None


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``yolact_node`` executable (run through
    :func:`run_node`). Returns the exit code: 0 after SIGINT/SIGTERM or
    the shutdown transition, 1 when autostart fails (the reason is logged once, by the
    transition), 2 for an unusable command line."""
    from ..inference.cpu_memory import keep_freed_memory

    keep_freed_memory()  # before rclpy and DDS start their threads: one malloc arena for all
    import rclpy
    from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
    from rclpy.lifecycle import TransitionCallbackReturn
    from rclpy.signals import SignalHandlerOptions

    from .node import YolactNode
    from .throttle import one_line

    args = sys.argv if argv is None else argv
    # Before torch (and its OpenMP runtime) is imported: idle OpenMP threads sleep instead of
    # spinning. Measured here (2 shared cores): spinning threads made the Segmenter 2-5x slower
    # and the publishing after each frame 3-4x slower. Set OMP_WAIT_POLICY=ACTIVE to opt out.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    install_signal_handlers()  # ours, not rclpy's (idempotent: run_node installed them already)
    try:
        rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    except Exception as exc:  # noqa: BLE001 - e.g. malformed --ros-args: one line, no traceback
        print(f"[ERROR] [{NODE_NAME}]: cannot start: {one_line(exc)}", file=sys.stderr)
        return 2
    node = None
    try:
        problem = _check_imports()
        if problem:
            rclpy.logging.get_logger(NODE_NAME).error(problem)
            return 1
        node = YolactNode(argv=args)
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        if node.get_parameter("autostart").value:
            for name, trigger in (("configure", node.trigger_configure), ("activate", node.trigger_activate)):
                if trigger() != TransitionCallbackReturn.SUCCESS:
                    if shutdown_requested():  # a signal arrived during the transition
                        return 0
                    node.get_logger().info(
                        f"autostart: {name} failed (reason above), exiting with code 1; with autostart:=false "
                        "the node stays up and waits for lifecycle transitions"
                    )
                    return 1
        # Short waits: a signal (shutdown_requested) and a shutdown transition are noticed between them.
        mark_started()
        while rclpy.ok() and not node.finalized.is_set() and not shutdown_requested():
            executor.spin_once(timeout_sec=0.1)
        if node.finalized.is_set():
            node.get_logger().info("shutdown transition: exiting")
            end = time.monotonic() + 0.3  # let the ChangeState reply reach the caller
            while rclpy.ok() and time.monotonic() < end:
                executor.spin_once(timeout_sec=0.05)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except Exception as exc:  # noqa: BLE001
        if shutdown_requested() or not rclpy.ok():  # a signal arrived mid-transition
            return 0
        rclpy.logging.get_logger(NODE_NAME).fatal(f"unexpected {type(exc).__name__}: {one_line(exc)}")
        return 1
    finally:
        if node is not None:
            node.stop_worker(timeout=0.5)
            try:
                node.destroy_node()
            except Exception:  # noqa: BLE001 - shutting down anyway
                pass
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    run_node()
