"""Play a bag into a running ``yolact_node`` and wait on it (the replay test and benchmark).

:func:`play_bag` plays with :class:`~yolact_ros.testing.bag_player.BagPlayer` once the node's
clock stands at the bag's start (simulated time), optionally pausing midway;
:func:`wait_settled` waits until the node has taken every frame it received. Both read the
node's ``/diagnostics`` through a :class:`~yolact_ros.ros.stream_client.StreamClient` that spins in the
background. rclpy is imported inside functions (via the player and the client).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from ..ros.diagnostics import Key, stamp_to_ns

__all__ = ["play_bag", "wait_settled", "wait_until"]


def wait_until(predicate: Callable[[], bool], timeout: float) -> bool:
    """Until ``predicate()`` holds (True) or ``timeout`` s passed (then its last value)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return bool(predicate())


def play_bag(
    bag: Path,
    client,
    *,
    rate: float = 1.0,
    clock: bool = True,
    pause_after: int | None = None,
    pause_s: float = 3.0,
    on_start: Callable[[object], None] | None = None,
    timeout: float = 300.0,
    remap: dict[str, str] | None = None,
    delay: float = 1.0,
):
    """Play ``bag`` to the end at ``rate``; returns (the closed player, the DiagnosticArrays
    received during the pause).

    With ``clock`` the player starts paused, its ``/clock`` standing at the bag's start, and
    plays once the node's diagnostics are stamped with that time (the node follows it). With
    ``pause_after`` it pauses for ``pause_s`` once that many messages went out. It starts
    ``delay`` s after the node's subscription was discovered. ``on_start``
    gets the player as the timeline starts; ``remap`` renames topics (BagPlayer). The player
    publishes from the client's node."""
    from .bag_player import BagPlayer

    player = BagPlayer(bag, rate=rate, start_paused=True, clock=clock, remap=remap, node=client.node)
    during_pause: list = []
    try:
        if not player.wait_for_subscribers():
            raise TimeoutError("the node never subscribed to the bag's topics")
        # our side matched the node's subscription; its side may match ours a moment later, and
        # a reliable, volatile subscription gets nothing sent before that (ros2 bag play --delay)
        time.sleep(delay)
        seen = len(client.diagnostics)
        player.start()
        if clock:
            start = player.start_ns
            # any array since the start: other nodes in the domain publish /diagnostics too
            if not wait_until(lambda: any(stamp_to_ns(a.header.stamp) == start for a in client.diagnostics[seen:]), 30):
                raise TimeoutError("the node's clock never came to the bag's start (is use_sim_time set?)")
        if on_start is not None:
            on_start(player)
        player.resume()
        if pause_after is not None:
            if not wait_until(lambda: len(player.published) >= pause_after, timeout):
                raise TimeoutError(f"{pause_after} messages not played within {timeout} s")
            player.pause()
            time.sleep(0.3)  # what is already sent arrives
            before = len(client.diagnostics)
            time.sleep(pause_s)
            during_pause = list(client.diagnostics[before:])
            player.resume()
        if not player.wait(timeout):
            raise TimeoutError(f"{bag} not played within {timeout} s")
    finally:
        player.close()
    return player, during_pause


def wait_settled(client, node_name: str, received: int, timeout: float = 60.0) -> dict[str, str]:
    """After playing: until the node's two newest statuses show the same count of frames
    received, at least ``received``, each of them processed or dropped; the newest status's
    values. TimeoutError otherwise. (A subscription keeps the newest frame only, so even a
    reliable one may replace a frame the executor has not taken yet: not every frame played
    need arrive.)"""
    found: list[dict[str, str]] = []

    def settled() -> bool:
        found[:] = client.statuses(node_name)[-2:]
        if len(found) < 2:
            return False
        counts = [
            (int(v[Key.FRAMES_RECEIVED]), int(v[Key.FRAMES_PROCESSED]) + int(v[Key.FRAMES_DROPPED])) for v in found
        ]
        return counts[0] == counts[1] and counts[1][0] == counts[1][1] >= received

    if not wait_until(settled, timeout):
        raise TimeoutError(f"the node did not settle within {timeout} s: {found[-1:]}")
    return found[-1]
