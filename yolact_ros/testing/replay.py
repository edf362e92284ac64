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
):
    """Play ``bag`` to the end at ``rate``; returns (the closed player, the DiagnosticArrays
    received during the pause).

    With ``clock`` the player starts paused, its ``/clock`` standing at the bag's start, and
    plays once the node's diagnostics are stamped with that time (the node follows it). With
    ``pause_after`` it pauses for ``pause_s`` once that many messages went out. ``on_start``
    gets the player as the timeline starts; ``remap`` renames topics (BagPlayer)."""
    from .bag_player import BagPlayer

    player = BagPlayer(bag, rate=rate, start_paused=True, clock=clock, remap=remap)
    during_pause: list = []
    try:
        if not player.wait_for_subscribers():
            raise TimeoutError("the node never subscribed to the bag's topics")
        player.start()
        if clock:
            start = player.start_ns
            if not wait_until(lambda: any(stamp_to_ns(a.header.stamp) == start for a in client.diagnostics[-3:]), 30):
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
    """Until the node's newest status says it received at least ``received`` frames in all and
    processed or dropped each of them; that status's values. TimeoutError otherwise."""
    found: list[dict[str, str]] = []

    def settled() -> bool:
        found[:] = client.statuses(node_name)[-1:]
        if not found:
            return False
        v = found[0]
        got = int(v[Key.FRAMES_RECEIVED])
        return got >= received and int(v[Key.FRAMES_PROCESSED]) + int(v[Key.FRAMES_DROPPED]) == got

    if not wait_until(settled, timeout):
        raise TimeoutError(f"the node did not settle within {timeout} s: {found}")
    return found[0]
