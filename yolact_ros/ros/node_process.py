"""The installed ``yolact_node`` run as ``launch/segment.launch.py`` runs it: command line, output, stop.

:class:`NodeProcess` starts the executable with the command line the launch file produces
(``--ros-args --params-file <installed yolact.yaml> -p name:=value ... -r __node:=...
-r __ns:=... -r image:=...``), collects its output (optionally logging and echoing it) and
stops it with a signal. :func:`ros_problem` says why the node cannot run here, if it cannot.
Used by the demo (:mod:`yolact_ros.ros.demo`), the tests and the benchmarks. Standard library
only: importing it needs no ROS runtime.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from .names import EXECUTABLE, PACKAGE

__all__ = ["NodeProcess", "install_prefix", "node_executable", "params_file", "ros_problem"]


# -- the installed package ------------------------------------------------------------------------
def install_prefix() -> Path | None:
    """The first prefix on ``AMENT_PREFIX_PATH`` holding the node executable (where ament_index
    finds the package), None when it is not built or not sourced."""
    for entry in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep):
        if entry and (Path(entry) / "lib" / PACKAGE / EXECUTABLE).is_file():
            return Path(entry)
    return None


def node_executable() -> Path | None:
    prefix = install_prefix()
    return prefix / "lib" / PACKAGE / EXECUTABLE if prefix else None


def params_file() -> Path | None:
    """The installed default parameter file (the launch file's ``params_file``)."""
    prefix = install_prefix()
    return prefix / "share" / PACKAGE / "config" / "yolact.yaml" if prefix else None


def ros_problem() -> str | None:
    """None if rclpy, the messages, the node executable and its parameter file are there, else why not."""
    try:
        import rclpy  # noqa: F401
    except ImportError as exc:
        return f"rclpy not importable ({exc})"
    try:
        import vision_msgs.msg  # noqa: F401
    except ImportError:
        return "vision_msgs not importable (build the workspace: bash scripts/build_ws.sh)"
    try:
        import yolact_ros.msg  # noqa: F401
    except ImportError:
        return "yolact_ros.msg not importable (workspace not built or install/setup.bash not sourced)"
    if node_executable() is None:
        return "no yolact_node on AMENT_PREFIX_PATH (bash scripts/build_ws.sh && source scripts/ros_env.sh)"
    params = params_file()
    if params is None or not params.is_file():
        return f"{params} not found: rebuild the workspace (bash scripts/build_ws.sh)"
    return None


# -- the node process -----------------------------------------------------------------------------
def _param_text(value) -> str:
    """A value as ``-p name:=<text>`` takes it (YAML)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(f'"{v}"' for v in value) + "]"
    if value == "":
        return "''"
    return str(value)


class NodeProcess:
    """The installed ``yolact_node`` started as launch starts it; its output (stdout and stderr)
    is collected by a background thread, optionally also written to ``log_path`` and printed
    with the prefix ``echo``."""

    def __init__(
        self,
        name: str,
        namespace: str,
        params: Mapping[str, object] | None = None,
        remaps: Mapping[str, str] | None = None,
        *,
        log_path: Path | None = None,
        echo: str | None = None,
        ros_args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
    ):
        self.cmd = cmd = self.command(name, namespace, params, remaps, ros_args)
        self.name = name
        self.namespace = namespace
        self.lines: list[str] = []
        self._lock = threading.Lock()
        self._log = open(log_path, "w", encoding="utf-8") if log_path else None  # noqa: SIM115 - closed in _finish
        self._echo = echo
        env = dict(os.environ, PYTHONUNBUFFERED="1", RCUTILS_LOGGING_BUFFERED_STREAM="0", **(env or {}))
        self.started = time.monotonic()
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    @staticmethod
    def command(
        name: str,
        namespace: str,
        params: Mapping[str, object] | None = None,
        remaps: Mapping[str, str] | None = None,
        ros_args: Sequence[str] = (),
    ) -> list[str]:
        """The command line: the installed params file, then ``-p`` overrides and remaps."""
        exe, yaml = node_executable(), params_file()
        if exe is None:
            raise FileNotFoundError(ros_problem() or "yolact_node is not installed")
        cmd = [str(exe), "--ros-args", "--params-file", str(yaml)]
        for key, value in (params or {}).items():
            cmd += ["-p", f"{key}:={_param_text(value)}"]
        cmd += ["-r", f"__node:={name}", "-r", f"__ns:={namespace}"]
        for src, dst in (remaps or {}).items():
            cmd += ["-r", f"{src}:={dst}"]
        return cmd + list(ros_args)

    def _read(self) -> None:
        assert self.proc.stdout is not None  # started with stdout=PIPE
        for line in self.proc.stdout:
            line = line.rstrip("\n")
            with self._lock:
                self.lines.append(line)
            if self._log is not None:
                self._log.write(line + "\n")
                self._log.flush()
            if self._echo is not None:
                print(f"{self._echo}{line}", flush=True)

    @property
    def output(self) -> str:
        with self._lock:
            return "\n".join(self.lines)

    def tail(self, n: int = 15) -> str:
        with self._lock:
            return "\n".join(self.lines[-n:])

    def alive(self) -> bool:
        return self.proc.poll() is None

    def wait_for_output(self, text: str, timeout: float) -> bool:
        """Until a line containing ``text`` was printed; False after ``timeout`` or when the node exited."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.output:
                return True
            if self.proc.poll() is not None:
                self._reader.join(2)
                return text in self.output
            time.sleep(0.05)
        return False

    def wait(self, timeout: float) -> int:
        """Until the node exits by itself; its exit code."""
        code = self.proc.wait(timeout)
        self._finish()
        return code

    def stop(self, sig: int = signal.SIGINT, timeout: float = 20.0) -> int | None:
        """Send ``sig`` (SIGINT as Ctrl-C, SIGTERM as launch on shutdown) and wait; SIGKILL after
        ``timeout``. The exit code; None when it had to be killed."""
        code: int | None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                code = self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
                code = None
        else:
            code = self.proc.returncode
        self._finish()
        return code

    def _finish(self) -> None:
        self._reader.join(5)
        if self._log is not None:
            self._log.close()
            self._log = None
