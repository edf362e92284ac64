"""Another git revision's ``yolact_ros`` imported beside this tree's, for alternated benchmarks.

The revision's package is exported with ``git archive`` into a folder under another name
(:data:`ALIAS`), so both versions are imported side by side in one process (relative imports
keep the exported copy self-contained) and a benchmark can call them in turn on the same
input: machine noise hits both alike and the ratio is a fair speed comparison.
"""

from __future__ import annotations

import importlib
import io
import subprocess
import sys
import tarfile
from pathlib import Path
from types import ModuleType

#: The repository the revisions are read from.
REPO = Path(__file__).resolve().parents[2]
#: The name the other revision's package is imported under.
ALIAS = "yolact_ros_rev"


def import_revision(rev: str, into: Path) -> ModuleType:
    """Import ``rev``'s yolact_ros package as :data:`ALIAS`, exported into the folder ``into``
    (which must outlive its use)."""
    blob = subprocess.run(
        ["git", "-C", str(REPO), "archive", "--format=tar", rev, "yolact_ros"], check=True, capture_output=True
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(blob)) as tar:
        tar.extractall(into, filter="data")
    (into / "yolact_ros").rename(into / ALIAS)
    sys.path.insert(0, str(into))
    return importlib.import_module(ALIAS)


def short_name(rev: str) -> str:
    """The abbreviated commit id of ``rev``."""
    return subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", rev], check=True, capture_output=True, text=True
    ).stdout.strip()
