"""Replay on simulated time: a rosbag2 played with its ``/clock`` into ``yolact_node`` with
``use_sim_time``, at 1x and 0.25x with a pause, and the same bag without simulated time.

The bag (the synthetic camera scene, stamped from 2024-01-01) is played by
:class:`~yolact_ros.testing.bag_player.BagPlayer`, the stand-in for ``ros2 bag play --clock``.
Under simulated time every figure of the node's diagnostics that is a time on a clock (latency
stamp -> publish, input rate, seconds since the last input, "input stopped") follows the bag's
clock; ``/diagnostics`` itself is paced by a steady timer, so it goes on while the clock stands
still. Without simulated time the node's clock is the wall clock and the stamps are the bag's:
the latency then reads as old as the stamps are (years), which is what they say.

No timing is asserted beyond wide bounds: counts, order and ranges several times wider than
what a loaded 2-core machine produces.
"""

from __future__ import annotations

import math
import signal
import time

import pytest

from yolact_ros.ros.diagnostics import FrameStats, Key, latency_ms, stamp_to_ns
from yolact_ros.testing.replay import play_bag, wait_settled

FPS = 15.0
FRAMES = 30
PAUSE_S = 3.0
#: the largest latency (stamp -> publish, simulated seconds) a frame may show: the node's
#: processing time on a loaded machine is far below it, the bag's age (years) far above
LATENCY_BOUND_MS = 20_000.0


# -- FrameStats on a given clock (no ROS) -----------------------------------------------------------
class _Clock:
    """A clock a test sets by hand (seconds)."""

    def __init__(self, t: float):
        self.t = t

    def __call__(self) -> float:
        return self.t


def _feed(stats: FrameStats, clock: _Clock, n: int, rate: float) -> None:
    for _ in range(n):
        stats.on_received(False)
        stats.on_processed(1, latency_ms=5.0)
        clock.t += 1.0 / rate


def test_frame_stats_follow_the_clock_they_are_given():
    clock = _Clock(1_704_067_200.0)
    stats = FrameStats(clock=clock)
    _feed(stats, clock, 20, FPS)
    snap = stats.snapshot()
    assert snap["input_rate_hz"] == pytest.approx(FPS, rel=1e-6)
    assert not snap["input_stopped"]
    # the clock stands still (a paused bag): however long that lasts, nothing stops
    for _ in range(3):
        snap = stats.snapshot()
        assert not snap["input_stopped"] and snap["input_age_s"] == pytest.approx(1.0 / FPS)
    clock.t += 2.0  # the clock runs on without frames: stopped
    assert stats.snapshot()["input_stopped"]


def test_frame_stats_clock_going_back_is_re_anchored_once():
    jumps: list[float] = []
    clock = _Clock(1_704_067_210.0)
    stats = FrameStats(clock=clock, on_clock_jump=jumps.append)
    _feed(stats, clock, 20, FPS)
    stats.snapshot()
    clock.t -= 10.0  # the bag restarted
    snap = stats.snapshot()
    assert jumps == [pytest.approx(10.0)]
    assert snap["input_age_s"] >= 0.0 and not snap["input_stopped"]
    assert snap["input_rate_hz"] == pytest.approx(FPS, rel=1e-6)
    _feed(stats, clock, 5, FPS)
    snap = stats.snapshot()
    assert jumps == [pytest.approx(10.0)], "one call per jump"
    assert snap["received"] == 25 and snap["input_rate_hz"] == pytest.approx(FPS, rel=1e-6)


def test_latency_is_unset_without_a_clock_or_stamp():
    assert math.isnan(latency_ms(0, 1_000))  # simulated time before the first /clock
    assert math.isnan(latency_ms(5_000_000, 0))
    assert latency_ms(5_000_000, 1_000_000) == 4.0
    assert latency_ms(1_000_000, 5_000_000) == -4.0  # a stamp ahead of the clock is reported as is


def test_stats_clock_follows_a_node_clock_on_ros_time(ros_runtime):
    from rclpy.clock import ROSClock
    from rclpy.time import Time

    from yolact_ros.ros.diagnostics import stats_clock

    ros_clock = ROSClock()
    now = stats_clock(ros_clock)
    t0 = time.monotonic()
    assert t0 <= now() <= time.monotonic()  # system time: the steady clock
    ros_clock._set_ros_time_is_active(True)
    ros_clock.set_ros_time_override(Time(seconds=1_704_067_200, clock_type=ros_clock.clock_type))
    assert now() == 1_704_067_200.0


# -- the node on a played bag -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def scene_bag(tmp_path_factory, ros_runtime):
    from yolact_ros.testing.replay_bag import write_scene_bag

    return write_scene_bag(tmp_path_factory.mktemp("bags") / "scene", frames=FRAMES, rate=FPS, size=(160, 120))


def _start_node(weights, sim: bool):
    from yolact_ros.ros.node_process import NodeProcess

    proc = NodeProcess(
        _node(sim),
        _ns(sim),
        {
            "weights": weights,
            "threads": 1,
            "backend": "torch",
            "precision": "fp32",
            "device": "cpu",
            "use_sim_time": sim,
            "diagnostics_period": 0.25,
            # reliable input: every frame of the bag arrives, so the counts are exact
            f"qos_overrides.{_image_topic(sim)}.subscription.reliability": "reliable",
        },
        remaps={"image": _image_topic(sim)},
    )
    assert proc.wait_for_output("active:", 120), f"node did not become active:\n{proc.output}"
    return proc


def _node(sim: bool) -> str:
    """The node's name: its diagnostics status is named after it, so the two never mix."""
    return "yolact_sim_node" if sim else "yolact_wall_node"


def _ns(sim: bool) -> str:
    return "/yolact_sim" if sim else "/yolact_wall"


def _image_topic(sim: bool) -> str:
    """Where the bag's images go: one topic per node, so each node sees only its own replay."""
    return f"{_ns(sim)}/camera/image_raw"


def _play(bag, client, sim: bool, **kwargs):
    from yolact_ros.testing.replay_bag import REPLAY_TOPIC

    return play_bag(bag, client, clock=sim, remap={REPLAY_TOPIC: _image_topic(sim)}, **kwargs)


def _client(sim: bool):
    from yolact_ros.testing.node_client import Client

    client = Client(_ns(sim), f"{_ns(sim)}/unused_input")
    client.spin_in_background()
    return client


@pytest.fixture(scope="module")
def sim_node(ros_log_dir, small_weights):
    proc = _start_node(small_weights, sim=True)
    yield proc
    proc.stop(signal.SIGINT)


@pytest.fixture(scope="module")
def sim_client(sim_node):
    client = _client(sim=True)
    yield client
    client.close()


def _values(arrays: list, sim: bool = True) -> list[dict[str, str]]:
    from yolact_ros.ros.diagnostics import status_name

    name = status_name(_node(sim))
    return [{kv.key: kv.value for kv in st.values} for arr in arrays for st in arr.status if st.name == name]


def _messages(arrays: list, sim: bool = True) -> list[str]:
    from yolact_ros.ros.diagnostics import status_name

    name = status_name(_node(sim))
    return [st.message for arr in arrays for st in arr.status if st.name == name]


def _number(values: dict, key: str) -> float:
    text = values.get(key, "")
    return float(text) if text not in ("", "nan") else float("nan")


def _check_outputs(client, stamps: list[int]) -> None:
    """Every output carries a stamp of the bag, each once, in the bag's order."""
    got = [stamp_to_ns(d.header.stamp) for d in client.detections]
    assert got, "no detections"
    assert set(got) <= set(stamps), "an output carries a stamp that is not an input's"
    assert got == sorted(set(got)), "outputs out of order or repeated"
    assert [stamp_to_ns(m.header.stamp) for m in client.masks] == got


def _check_latencies(statuses: list[dict]) -> None:
    lat = [_number(v, k) for v in statuses for k in (Key.LATENCY_P50, Key.LATENCY_MAX, Key.LAST_LATENCY)]
    lat = [x for x in lat if not math.isnan(x)]
    assert lat, "no latency reported"
    assert 0.0 <= min(lat) and max(lat) <= LATENCY_BOUND_MS, (min(lat), max(lat))


def _median_input_rate(statuses: list[dict], min_received: int) -> float:
    """The median input rate of the statuses once ``min_received`` frames had arrived."""
    rates = sorted(_number(v, Key.INPUT_RATE) for v in statuses if int(v[Key.FRAMES_RECEIVED]) >= min_received)
    rates = [r for r in rates if r > 0]
    assert rates, "no input rate reported"
    return rates[len(rates) // 2]


def test_replay_at_recorded_rate_with_a_pause(scene_bag, sim_client):
    from yolact_ros.testing.replay_bag import bag_stamps

    client = sim_client
    player, during_pause = _play(scene_bag, client, True, rate=1.0, pause_after=FRAMES // 2, pause_s=PAUSE_S)
    assert len(player.published) == FRAMES
    wait_settled(client, _node(True), FRAMES // 2)
    _check_outputs(client, bag_stamps(FRAMES, FPS))

    # /diagnostics went on while the clock stood still (steady timer), stamped with the paused clock
    assert len(during_pause) >= 3, f"{len(during_pause)} diagnostics in {PAUSE_S} s of pause"
    paused_at = {stamp_to_ns(a.header.stamp) for a in during_pause}
    assert len(paused_at) <= 2, "the node's clock moved while /clock stood still"
    assert min(paused_at) >= player.start_ns
    # ...and the input did not count as stopped: no time passed on the node's clock
    assert not [m for m in _messages(during_pause) if "stopped" in m]
    ages = [_number(v, Key.INPUT_AGE) for v in _values(during_pause)]
    assert ages and max(ages) < 1.0, ages

    statuses = _values(client.diagnostics)
    _check_latencies(statuses)
    assert min(_number(v, Key.INPUT_AGE) for v in statuses if v.get(Key.INPUT_AGE)) >= 0.0
    assert FPS / 2 <= _median_input_rate(statuses, 5) <= FPS * 2


def test_replay_at_quarter_rate_after_the_clock_went_back(scene_bag, sim_client, sim_node):
    """The bag played again (its clock restarts: the node's clock goes back) at 0.25x: the
    rates still read the recorded rate in simulated Hz, not a quarter of it."""
    from yolact_ros.testing.replay_bag import bag_stamps

    client = sim_client
    del client.detections[:], client.masks[:], client.diagnostics[:]
    player, _ = _play(scene_bag, client, True, rate=0.25)
    assert len(player.published) == FRAMES
    wait_settled(client, _node(True), FRAMES + FRAMES // 2)
    _check_outputs(client, bag_stamps(FRAMES, FPS))
    assert sim_node.output.count("clock went back") == 1, sim_node.tail(30)

    statuses = _values(client.diagnostics)
    _check_latencies(statuses)
    assert min(_number(v, Key.INPUT_AGE) for v in statuses if v.get(Key.INPUT_AGE)) >= 0.0
    # the second pass's statuses, once a few of its frames arrived: recorded Hz, not a quarter
    assert FPS / 2 <= _median_input_rate(statuses, FRAMES + 5) <= FPS * 2
    assert not [m for m in _messages(client.diagnostics) if "stopped" in m]


def test_replay_without_sim_time_reports_the_stamps_age(scene_bag, small_weights, ros_log_dir):
    """use_sim_time false, no /clock: the node's clock is the wall clock, the stamps are the
    bag's (2024), and the latency says exactly that; a pause reads as stopped input."""
    from yolact_ros.testing.replay_bag import bag_stamps

    proc = _start_node(small_weights, sim=False)
    client = _client(sim=False)
    try:
        player, during_pause = _play(scene_bag, client, False, rate=1.0, pause_after=FRAMES // 2, pause_s=PAUSE_S / 2)
        wait_settled(client, _node(False), FRAMES // 2)
        _check_outputs(client, bag_stamps(FRAMES, FPS))
        statuses = _values(client.diagnostics, sim=False)
        age_ms = (time.time_ns() - player.start_ns) / 1e6
        lat = [_number(v, Key.LATENCY_P50) for v in statuses]
        lat = [x for x in lat if not math.isnan(x)]
        day_ms = 86_400_000.0
        assert lat and all(age_ms - day_ms < x < age_ms + day_ms for x in lat), (age_ms, lat[:3])
        assert [m for m in _messages(during_pause, sim=False) if "input stopped" in m], (
            "a wall-clock pause reads as stopped"
        )
    except BaseException:
        print(proc.tail(40))  # shown by pytest with the failure
        raise
    finally:
        client.close()
        proc.stop(signal.SIGINT)
