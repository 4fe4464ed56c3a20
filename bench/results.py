"""What a benchmark run measured, and the figures derived from it: medians, added latency, ratios, scale-out.

Everything here is a pydantic model, so bench/results/latest.json is exactly ``BenchResults.model_dump_json()``.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence

from pydantic import BaseModel, Field

from bench.load import WrkSummary
from bench.targets import TargetName
from bench.ttft import TtftRun

DIRECT, LITELLM, REPLICAS = TargetName.DIRECT, TargetName.LITELLM, TargetName.REPLICAS


class LoadRun(BaseModel):
    """One wrk measurement of one target at one concurrency (several wrk instances for replicas, combined)."""

    requests: int
    seconds: float
    throughput_rps: float = Field(description="Successful requests per second, summed over wrk instances.")
    p50_ms: float = Field(description="The slowest instance's p50 when several wrk instances ran.")
    p90_ms: float
    p99_ms: float
    mean_ms: float
    max_ms: float
    errors: int = Field(description="Connect, read, write, timeout errors and non-2xx answers.")
    server_cpu_ms_per_request: float = Field(description="CPU of the target's processes (workers included).")
    upstream_cpu_ms_per_request: float | None = Field(description="CPU of the simulator behind a gateway.")
    load_generator_cores: float = Field(description="wrk's CPU seconds per wall-clock second.")

    @classmethod
    def from_wrk(
        cls,
        summaries: Sequence[WrkSummary],
        *,
        server_cpu_seconds: float,
        upstream_cpu_seconds: float | None,
        load_generator_cpu_seconds: float,
    ) -> LoadRun:
        requests = sum(summary.requests for summary in summaries)
        if requests == 0:
            raise RuntimeError("wrk completed no request: the target does not answer")
        seconds = max(summary.duration_us for summary in summaries) / 1e6

        def worst(field: str) -> float:
            return max(getattr(summary.latency_us, field) for summary in summaries) / 1000

        return cls(
            requests=requests,
            seconds=seconds,
            throughput_rps=sum(summary.successful_per_second for summary in summaries),
            p50_ms=worst("p50"),
            p90_ms=worst("p90"),
            p99_ms=worst("p99"),
            mean_ms=sum(s.latency_us.mean * s.requests for s in summaries) / requests / 1000,
            max_ms=worst("max"),
            errors=sum(summary.errors.total for summary in summaries),
            server_cpu_ms_per_request=server_cpu_seconds * 1000 / requests,
            upstream_cpu_ms_per_request=(
                None if upstream_cpu_seconds is None else upstream_cpu_seconds * 1000 / requests
            ),
            load_generator_cores=load_generator_cpu_seconds / seconds,
        )


class LoadCell(BaseModel):
    """One target at one concurrency: every repeat, their medians, and the latency added over direct."""

    target: str
    concurrency: int
    runs: list[LoadRun]
    throughput_rps: float
    p50_ms: float
    p99_ms: float
    server_cpu_ms_per_request: float
    upstream_cpu_ms_per_request: float | None
    errors: int = Field(description="Summed over the repeats.")
    added_p50_ms: float | None = Field(None, description="This target's p50 minus direct's, at this concurrency.")

    @classmethod
    def from_runs(cls, target: str, concurrency: int, runs: list[LoadRun]) -> LoadCell:
        upstream = [run.upstream_cpu_ms_per_request for run in runs if run.upstream_cpu_ms_per_request is not None]
        return cls(
            target=target,
            concurrency=concurrency,
            runs=runs,
            throughput_rps=statistics.median(run.throughput_rps for run in runs),
            p50_ms=statistics.median(run.p50_ms for run in runs),
            p99_ms=statistics.median(run.p99_ms for run in runs),
            server_cpu_ms_per_request=statistics.median(run.server_cpu_ms_per_request for run in runs),
            upstream_cpu_ms_per_request=statistics.median(upstream) if upstream else None,
            errors=sum(run.errors for run in runs),
        )


class TtftCell(BaseModel):
    target: str
    runs: list[TtftRun]
    p50_ms: float = Field(description="Median over the repeats of each run's p50.")
    p99_ms: float
    overhead_ms: float | None = Field(None, description="This target's p50 minus direct's.")

    @classmethod
    def from_runs(cls, target: str, runs: list[TtftRun]) -> TtftCell:
        return cls(
            target=target,
            runs=runs,
            p50_ms=statistics.median(run.p50_ms for run in runs),
            p99_ms=statistics.median(run.p99_ms for run in runs),
        )


class Comparison(BaseModel):
    """A Switchboard variant against the LiteLLM proxy at one concurrency (ratios: Switchboard / LiteLLM)."""

    concurrency: int
    variant: str
    added_latency_ratio: float | None = Field(description="None when LiteLLM added no latency to compare to.")
    throughput_ratio: float
    cpu_per_request_ratio: float


class ReplicaScaling(BaseModel):
    concurrency: int = Field(description="Total connections, split evenly over the replicas.")
    replicas: int
    single_rps: float = Field(description="One Switchboard process (classification on) at the same concurrency.")
    combined_rps: float
    speedup: float


class LoadGeneratorCheck(BaseModel):
    """Direct throughput far above every gateway's shows that wrk and the simulator are not the bottleneck."""

    concurrency: int
    direct_rps: float
    fastest_gateway: str
    fastest_gateway_rps: float
    headroom: float = Field(description="direct_rps / fastest_gateway_rps.")
    wrk_cores_during_direct: float


class TargetInfo(BaseModel):
    name: str
    description: str
    model: str
    text_mode: str
    processes: int = Field(description="Server processes behind the target (replicas), each with its workers.")
    classification_active: bool | None = Field(
        None, description="Whether the gateway reported an intent (x-switchboard-intent) for a probe turn."
    )


class MachineInfo(BaseModel):
    cpu_model: str
    logical_cpus: int
    memory_gib: float
    kernel: str
    python: str
    load_average_before: tuple[float, float, float]
    load_average_after: tuple[float, float, float] | None = None


class RunOptions(BaseModel):
    quick: bool
    workers: int
    simulator_workers: int
    duration_seconds: int
    repeat: int
    concurrency: list[int]
    ttft_requests: int
    replicas: int
    targets: list[str]


class BenchResults(BaseModel):
    timestamp: str
    wall_seconds: float | None = None
    options: RunOptions
    machine: MachineInfo
    versions: dict[str, str]
    targets: list[TargetInfo]
    load: list[LoadCell] = Field(default_factory=list)
    ttft: list[TtftCell] = Field(default_factory=list)
    comparisons: list[Comparison] = Field(default_factory=list)
    replica_scaling: list[ReplicaScaling] = Field(default_factory=list)
    load_generator: list[LoadGeneratorCheck] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)

    def cell(self, target: str, concurrency: int) -> LoadCell | None:
        return next((c for c in self.load if c.target == target and c.concurrency == concurrency), None)

    def derive(self) -> None:
        """Fill in added latency, TTFT overhead, the LiteLLM ratios, replica scaling and the load-generator check."""
        for cell in self.load:
            direct = self.cell(DIRECT, cell.concurrency)
            if direct is not None and cell.target != DIRECT:
                cell.added_p50_ms = cell.p50_ms - direct.p50_ms
        direct_ttft = next((cell for cell in self.ttft if cell.target == DIRECT), None)
        for cell in self.ttft:
            if direct_ttft is not None and cell.target != DIRECT:
                cell.overhead_ms = cell.p50_ms - direct_ttft.p50_ms
        self.comparisons = [comparison for comparison in map(self._against_litellm, self.load) if comparison]
        self.replica_scaling = [scaling for scaling in map(self._scaling, self.load) if scaling]
        self.load_generator = [check for check in map(self._generator_check, self.load) if check]

    def _against_litellm(self, cell: LoadCell) -> Comparison | None:
        litellm = self.cell(LITELLM, cell.concurrency)
        if litellm is None or cell.target in (DIRECT, LITELLM) or cell.added_p50_ms is None:
            return None
        litellm_added = litellm.added_p50_ms
        return Comparison(
            concurrency=cell.concurrency,
            variant=cell.target,
            added_latency_ratio=(cell.added_p50_ms / litellm_added) if litellm_added and litellm_added > 0 else None,
            throughput_ratio=cell.throughput_rps / litellm.throughput_rps,
            cpu_per_request_ratio=cell.server_cpu_ms_per_request / litellm.server_cpu_ms_per_request,
        )

    def _scaling(self, cell: LoadCell) -> ReplicaScaling | None:
        single = self.cell(TargetName.SWITCHBOARD, cell.concurrency)
        if cell.target != REPLICAS or single is None:
            return None
        return ReplicaScaling(
            concurrency=cell.concurrency,
            replicas=self.options.replicas,
            single_rps=single.throughput_rps,
            combined_rps=cell.throughput_rps,
            speedup=cell.throughput_rps / single.throughput_rps,
        )

    def _generator_check(self, cell: LoadCell) -> LoadGeneratorCheck | None:
        if cell.target != DIRECT:
            return None
        gateways = [c for c in self.load if c.concurrency == cell.concurrency and c.target not in (DIRECT, REPLICAS)]
        if not gateways:
            return None
        fastest = max(gateways, key=lambda c: c.throughput_rps)
        return LoadGeneratorCheck(
            concurrency=cell.concurrency,
            direct_rps=cell.throughput_rps,
            fastest_gateway=fastest.target,
            fastest_gateway_rps=fastest.throughput_rps,
            headroom=cell.throughput_rps / fastest.throughput_rps,
            wrk_cores_during_direct=statistics.median(run.load_generator_cores for run in cell.runs),
        )
