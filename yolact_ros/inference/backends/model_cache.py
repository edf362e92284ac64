"""The on-disk cache of converted models, so a restart loads in seconds instead of converting.

Location: the ``cache_dir`` argument, else ``$YOLACT_ROS_CACHE_DIR``, else
``$XDG_CACHE_HOME/yolact_ros`` (``~/.cache/yolact_ros``).  One entry per key (a digest of
the weights file's bytes and everything the conversion depends on); an entry is a directory
written under a temporary name and renamed into place (atomic: a process stopped mid-write
leaves no entry, only a ``.tmp-*`` folder that the next write removes), holding a
``manifest.json`` with the SHA-256 of each file.  An entry whose files do not match their
manifest (truncated, edited, half-deleted) counts as absent and is rebuilt; a cache that
cannot be written is skipped with one warning.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)

ENV_VAR = "YOLACT_ROS_CACHE_DIR"
MANIFEST = "manifest.json"
_STALE_TMP_S = 3600.0


def default_cache_dir() -> Path:
    """``$YOLACT_ROS_CACHE_DIR``, else the per-user cache directory."""
    env = os.environ.get(ENV_VAR, "").strip()
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME", "").strip() or str(Path.home() / ".cache")
    return Path(base).expanduser() / "yolact_ros"


def resolve_cache_dir(cache_dir: "str | Path | None") -> Path:
    return Path(cache_dir).expanduser() if cache_dir not in (None, "") else default_cache_dir()


def file_digest(path: "str | Path", chunk: int = 1 << 22) -> str:
    """SHA-256 of a file's bytes (hex)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            block = f.read(chunk)
            if not block:
                break
            h.update(block)
    return h.hexdigest()


def cache_key(**parts) -> str:
    """A short stable key of the named parts (JSON-serialisable values)."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:24]


def _verify(entry: Path) -> bool:
    try:
        manifest = json.loads((entry / MANIFEST).read_text())
        files = manifest["files"]
        return bool(files) and all(file_digest(entry / name) == digest for name, digest in files.items())
    except (OSError, ValueError, KeyError, TypeError):
        return False


class ModelCache:
    """Entries under ``root`` (see the module doc).  ``root`` None: the default location."""

    def __init__(self, root: "str | Path | None" = None):
        self.root = resolve_cache_dir(root)

    def entry(self, key: str) -> Path:
        return self.root / key

    def lookup(self, key: str) -> "Path | None":
        """The entry's directory if present and intact; a damaged one is removed (one warning)."""
        entry = self.entry(key)
        if not entry.exists():
            return None
        if _verify(entry):
            return entry
        log.warning("model cache entry %s is damaged (files do not match its manifest); rebuilding it", entry)
        shutil.rmtree(entry, ignore_errors=True)
        return None

    def store(self, key: str, write: Callable[[Path], None]) -> "Path | None":
        """Run ``write(tmpdir)`` (it writes the entry's files there), then publish the folder
        atomically as the entry.  Returns the entry, or None if the cache is not writable
        (one warning; the caller then converts without caching)."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            self._sweep()
            tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{key}-", dir=self.root))
        except OSError as exc:
            log.warning(
                "model cache %s is not writable (%s); converting without a cache", self.root, exc.strerror or exc
            )
            return None
        try:
            write(tmp)
            files = {p.name: file_digest(p) for p in sorted(tmp.iterdir()) if p.is_file()}
            (tmp / MANIFEST).write_text(json.dumps({"files": files, "written": time.time()}, indent=1))
            entry = self.entry(key)
            if entry.exists():  # another process won the race, or a damaged one was left: replace
                shutil.rmtree(entry, ignore_errors=True)
            os.replace(tmp, entry)
            return entry
        except OSError as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            log.warning(
                "model cache %s: could not write an entry (%s); converting without a cache",
                self.root,
                exc.strerror or exc,
            )
            return None
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise

    def _sweep(self) -> None:
        """Remove temporary folders older than an hour (left by a process stopped mid-write)."""
        now = time.time()
        for p in self.root.glob(".tmp-*"):
            try:
                if now - p.stat().st_mtime > _STALE_TMP_S:
                    shutil.rmtree(p, ignore_errors=True)
            except OSError:
                pass
