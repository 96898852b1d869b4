"""Reports that could not be sent yet, kept in files until flowdeck answers again.

One file per failed attempt, written under a temporary name and renamed into place, so a
reader never sees half a file. Sending takes a lock on the folder (where the platform has
``fcntl``), so two processes of the same pipeline do not send the same file twice; a
duplicate would be harmless anyway, since reports upsert by run_id.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

if sys.platform != "win32":
    import fcntl

    def _try_lock(fd: int) -> bool:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return False
        return True

    def _unlock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_UN)

else:  # no flock: a file may then be sent twice, which upserts harmlessly

    def _try_lock(fd: int) -> bool:
        return True

    def _unlock(fd: int) -> None:
        return None


Report = dict[str, Any]


def default_spool_root() -> Path:
    if env := os.environ.get("FLOWDECK_SPOOL_DIR"):
        return Path(env).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "flowdeck" / "spool"


class Spool:
    """A folder of pending reports for one flowdeck URL (metric points in its ``metrics``
    subfolder, with a send lock of their own)."""

    def __init__(self, root: Path, url: str, kind: str | None = None) -> None:
        # One folder per server, so reports never go to a flowdeck they were not meant for.
        self.path = root / hashlib.sha256(url.encode()).hexdigest()[:16]
        if kind is not None:
            self.path = self.path / kind

    def put(self, reports: list[Report]) -> Path:
        self.path.mkdir(parents=True, exist_ok=True)
        name = f"{time.time_ns():020d}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        tmp = self.path / f".{name}.tmp"
        with tmp.open("w", encoding="utf-8") as f:
            for report in reports:
                f.write(json.dumps(report, separators=(",", ":"), default=str) + "\n")
            f.flush()
            os.fsync(f.fileno())
        final = self.path / f"{name}.jsonl"
        tmp.rename(final)
        return final

    def files(self) -> list[Path]:
        """Pending files, oldest first."""
        if not self.path.is_dir():
            return []
        return sorted(self.path.glob("*.jsonl"))

    def count(self) -> int:
        total = 0
        for file in self.files():
            with contextlib.suppress(OSError):
                total += sum(1 for line in file.read_text("utf-8").splitlines() if line)
        return total

    @staticmethod
    def read(file: Path) -> list[Report]:
        reports: list[Report] = []
        for line in file.read_text("utf-8").splitlines():
            if not line.strip():
                continue
            try:
                reports.append(json.loads(line))
            except ValueError:
                # A line torn by a crash mid-write of an older version: nothing to send.
                continue
        return reports

    @contextlib.contextmanager
    def locked(self) -> Iterator[bool]:
        """Hold the folder's send lock; yields False when another process holds it."""
        self.path.mkdir(parents=True, exist_ok=True)
        with (self.path / ".lock").open("a") as lock:
            if not _try_lock(lock.fileno()):
                yield False
                return
            try:
                yield True
            finally:
                _unlock(lock.fileno())
