"""One run of a job as the SDK reports it: RUNNING on enter, SUCCESS or FAILED on exit."""

from __future__ import annotations

import contextvars
import sys
import time
import uuid
from datetime import UTC, datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flowdeck.sdk.client import Client

if sys.platform != "win32":
    import resource

    def peak_memory_mb() -> float | None:
        """The process's peak resident memory so far, in MiB."""
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        # Linux counts KiB, macOS bytes.
        return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024

else:

    def peak_memory_mb() -> float | None:
        return None  # no getrusage on Windows


_CURRENT: contextvars.ContextVar[Run | None] = contextvars.ContextVar("flowdeck_run", default=None)


def current_run() -> Run | None:
    """The run the calling code is inside (a decorated job reaches its run this way)."""
    return _CURRENT.get()


def _now() -> datetime:
    return datetime.now(UTC)


class _Counter:
    """A row count that is sent only once the job set it (so an untouched counter is not
    reported as zero rows)."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, run: Run | None, owner: type) -> Any:
        if run is None:
            return self
        return run._counts.get(self.name, 0)

    def __set__(self, run: Run, value: int) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"{self.name} must be a whole number ≥ 0, got {value!r}")
        run._counts[self.name] = value


class Run:
    """What a job reports about itself. Use it through ``Client.run`` (a context manager,
    sync or async):

        with client.run(pipeline="load_sales", batch_id=20261123, env="prod") as run:
            run.rows_read += 1000
            run.custom_stats["sku_count"] = 48211
            run.labels["retailer"] = "acme"

    On exit it reports SUCCESS, or FAILED with the exception's message (the exception is
    re-raised), with the duration, the CPU time and the peak memory of the process.
    """

    rows_read = _Counter()
    rows_written = _Counter()
    rows_invalid = _Counter()
    rows_inserted = _Counter()
    rows_updated = _Counter()

    def __init__(
        self,
        client: Client,
        pipeline: str,
        *,
        batch_id: str | int | None = None,
        env: str | None = None,
        project: str | None = None,
        run_id: str | None = None,
        labels: dict[str, str] | None = None,
    ) -> None:
        self.client = client
        self.run_id = run_id or str(uuid.uuid4())
        self.pipeline = pipeline
        self.batch_id = batch_id
        self.env = env
        self.project = project
        self.labels: dict[str, str] = dict(labels or {})
        self.custom_stats: dict[str, Any] = {}
        self.status: str | None = None
        self.error_message: str | None = None
        self.started_at: datetime | None = None
        self.ended_at: datetime | None = None
        self.duration_s: float | None = None
        self._counts: dict[str, int] = {}
        self._t0 = 0.0
        self._cpu0 = 0.0
        self._failed_by_hand = False
        self._token: contextvars.Token[Run | None] | None = None

    # -- what the job calls ---------------------------------------------------------------
    def fail(self, message: str) -> None:
        """Mark the run failed without raising (it is reported FAILED on exit)."""
        self._failed_by_hand = True
        self.error_message = message

    def progress(self) -> None:
        """Report the counters so far while the run goes on (still RUNNING)."""
        self.client._send(self._report("RUNNING"))

    # -- the protocol ----------------------------------------------------------------------
    def start(self) -> Run:
        self.started_at = _now()
        self._t0 = time.perf_counter()
        self._cpu0 = time.process_time()
        self.status = "RUNNING"
        self._token = _CURRENT.set(self)
        self.client._send(self._report("RUNNING"))
        return self

    def finish(self, error: BaseException | None = None) -> None:
        if self._token is not None:
            try:
                _CURRENT.reset(self._token)
            except ValueError:  # finished in another context than it started in
                _CURRENT.set(None)
            self._token = None
        self.ended_at = _now()
        self.duration_s = round(time.perf_counter() - self._t0, 6)
        cpu = time.process_time() - self._cpu0
        self.custom_stats.setdefault("cpu_seconds", round(cpu, 3))
        if self.duration_s > 0:
            self.custom_stats.setdefault("cpu_percent", round(100 * cpu / self.duration_s, 1))
        if (peak := peak_memory_mb()) is not None:
            self.custom_stats.setdefault("peak_memory_mb", round(peak, 1))
        if error is not None:
            self.status = "FAILED"
            text = str(error)
            self.error_message = f"{type(error).__name__}: {text}" if text else type(error).__name__
        elif self._failed_by_hand:
            self.status = "FAILED"
        else:
            self.status = "SUCCESS"
        self.client._send(self._report(self.status))

    def _report(self, status: str) -> dict[str, Any]:
        report: dict[str, Any] = {
            "run_id": self.run_id,
            "pipeline": self.pipeline,
            "status": status,
        }
        for key in (
            "batch_id",
            "env",
            "project",
            "started_at",
            "ended_at",
            "duration_s",
            "error_message",
        ):
            value = getattr(self, key)
            if value is not None:
                report[key] = value.isoformat() if isinstance(value, datetime) else value
        report.update(self._counts)
        if self.labels:
            report["labels"] = {str(k): str(v) for k, v in self.labels.items()}
        if self.custom_stats:
            report["custom_stats"] = dict(self.custom_stats)
        return report

    def __enter__(self) -> Run:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.finish(exc)

    async def __aenter__(self) -> Run:
        return self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.finish(exc)
