"""Counters that tests read back through ``GET /_sim/stats``."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from router.simulator.faults import FaultKind

_KEPT_STOP_LATENCIES = 1000


class SimulatorStats(BaseModel):
    """What the simulator saw since it started or was last reset."""

    requests_total: int = 0
    requests_by_model: dict[str, int] = Field(default_factory=dict)
    requests_by_endpoint: dict[str, int] = Field(default_factory=dict)
    faults: dict[str, int] = Field(default_factory=lambda: dict.fromkeys(map(str, FaultKind), 0))
    streams_completed: int = 0
    streams_cancelled: int = 0
    requests_cancelled: int = Field(0, description="Non-stream requests whose client left before the answer.")
    cancelled_stream_stop_seconds: list[float] = Field(
        default_factory=list,
        description="Per cancelled stream (the last 1000): seconds from noticing the disconnect to the handler stop.",
    )
    last_request: dict[str, Any] | None = None
    last_headers: dict[str, str] = Field(default_factory=dict)

    def record_request(self, endpoint: str, headers: dict[str, str]) -> None:
        self.requests_total += 1
        self.requests_by_endpoint[endpoint] = self.requests_by_endpoint.get(endpoint, 0) + 1
        self.last_headers = headers

    def record_body(self, model: str, body: dict[str, Any]) -> None:
        self.requests_by_model[model] = self.requests_by_model.get(model, 0) + 1
        self.last_request = body

    def record_fault(self, kind: FaultKind) -> None:
        self.faults[kind] += 1

    def record_stream_completed(self) -> None:
        self.streams_completed += 1

    def record_cancelled(self, *, stream: bool, stop_seconds: float) -> None:
        if stream:
            self.streams_cancelled += 1
            self.cancelled_stream_stop_seconds.append(stop_seconds)
            # A long-lived simulator (the gateway's embedded mode) must not grow without bound.
            del self.cancelled_stream_stop_seconds[:-_KEPT_STOP_LATENCIES]
        else:
            self.requests_cancelled += 1
