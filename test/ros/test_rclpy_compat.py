"""The rclpy workaround of yolact_ros/ros/rclpy_compat.py is applied exactly where rclpy needs it.

ros2/rclpy#1209: a ChangeState request *by id* for a transition that is not valid in the
current state raises RCLError out of the executor on rclpy 7.1 (Jazzy). A plain LifecycleNode
gets that request here, in process, through the real service: the bug must show exactly when
``change_state_workaround_needed()`` says so. The day an rclpy release fixes it, this test
fails on that distribution: narrow the version check (or drop the guard). Then the same request
to ``YolactNode`` must be refused cleanly (success=false), the node still serving.
"""

from __future__ import annotations

import time

import pytest


@pytest.fixture
def context(ros_runtime):
    import rclpy
    from rclpy.context import Context
    from rclpy.signals import SignalHandlerOptions

    ctx = Context()
    rclpy.init(context=ctx, signal_handler_options=SignalHandlerOptions.NO)
    yield ctx
    rclpy.try_shutdown(context=ctx)


def _request_by_id(ctx, target, transition_id: int, timeout: float = 20.0):
    """Send ChangeState(id=transition_id) to ``target`` from a client node in ``ctx``, spinning
    both; the response's success, or the exception the executor raised while serving it."""
    import rclpy
    from lifecycle_msgs.msg import Transition
    from lifecycle_msgs.srv import ChangeState
    from rclpy.executors import SingleThreadedExecutor

    client_node = rclpy.create_node("rclpy_compat_probe_client", context=ctx)
    executor = SingleThreadedExecutor(context=ctx)
    executor.add_node(target)
    executor.add_node(client_node)
    try:
        client = client_node.create_client(ChangeState, f"{target.get_name()}/change_state")
        assert client.wait_for_service(timeout_sec=timeout), "change_state service not found"
        future = client.call_async(ChangeState.Request(transition=Transition(id=transition_id)))
        deadline = time.monotonic() + timeout
        while not future.done():
            assert time.monotonic() < deadline, "no ChangeState response"
            try:
                executor.spin_once(timeout_sec=0.1)
            except Exception as exc:  # noqa: BLE001 - the bug under test: what came out of the executor
                return exc
        return future.result().success
    finally:
        executor.shutdown(timeout_sec=2.0)
        client_node.destroy_node()


def test_version_rule(ros_runtime):
    from yolact_ros.ros.rclpy_compat import change_state_workaround_needed, rclpy_version

    assert change_state_workaround_needed((7, 1, 5))  # Jazzy
    assert not change_state_workaround_needed((9, 1, 2))  # Kilted
    assert rclpy_version() is not None  # read from rclpy's package.xml (or its Python distribution)


def test_the_bug_shows_exactly_where_the_workaround_is_applied(context):
    from lifecycle_msgs.msg import Transition
    from rclpy.lifecycle import LifecycleNode

    from yolact_ros.ros.rclpy_compat import RCLError, change_state_workaround_needed, rclpy_version

    plain = LifecycleNode("rclpy_compat_plain", context=context)
    try:
        outcome = _request_by_id(context, plain, Transition.TRANSITION_ACTIVATE)  # invalid while unconfigured
    finally:
        plain.destroy_node()
    needed = change_state_workaround_needed()
    if needed:
        assert isinstance(outcome, RCLError), (
            f"rclpy {rclpy_version()} answered an invalid ChangeState by id ({outcome!r}) instead of raising: "
            "ros2/rclpy#1209 is fixed here, narrow change_state_workaround_needed()"
        )
    else:
        assert outcome is False, f"rclpy {rclpy_version()}: {outcome!r}; ros2/rclpy#1209 is back, widen the check"


def test_yolact_node_refuses_the_same_request_cleanly(context):
    from lifecycle_msgs.msg import Transition

    from yolact_ros.ros.node import YolactNode
    from yolact_ros.ros.rclpy_compat import current_state_label

    node = YolactNode("rclpy_compat_yolact", argv=[], context=context)
    try:
        assert _request_by_id(context, node, Transition.TRANSITION_ACTIVATE) is False
        assert _request_by_id(context, node, 99) is False  # no such transition id
        assert current_state_label(node) == "unconfigured"
    finally:
        node.destroy_node()
