"""The markdown summary of a run, printed at the end and pasted into docs."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from bench.results import BenchResults


def _table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines.extend("| " + " | ".join(row) + " |" for row in rows)
    return [*lines, ""]


def _ms(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


def _ratio(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}×"


def render_markdown(results: BenchResults) -> str:
    options, machine = results.options, results.machine
    lines = [
        f"## Switchboard benchmark ({results.timestamp})",
        "",
        f"{machine.cpu_model}, {machine.logical_cpus} logical CPUs, Python {machine.python}; "
        f"{options.workers} worker(s) per gateway; wrk {options.duration_seconds} s per point, "
        f"median of {options.repeat}; load average {machine.load_average_before} before, "
        f"{machine.load_average_after} after.",
        "",
        "### Load (wrk, keep-alive, non-streamed)",
        "",
    ]
    lines += _table(
        ["target", "concurrency", "req/s", "p50 ms", "p99 ms", "added p50 ms", "server CPU ms/req", "errors"],
        (
            [
                cell.target,
                str(cell.concurrency),
                f"{cell.throughput_rps:.0f}",
                _ms(cell.p50_ms),
                _ms(cell.p99_ms),
                _ms(cell.added_p50_ms),
                _ms(cell.server_cpu_ms_per_request),
                str(cell.errors),
            ]
            for cell in sorted(results.load, key=lambda c: c.concurrency)
        ),
    )
    if results.comparisons:
        lines += ["### Switchboard / LiteLLM proxy", ""]
        lines += _table(
            ["concurrency", "Switchboard variant", "added latency", "throughput", "server CPU per request"],
            (
                [
                    str(c.concurrency),
                    c.variant,
                    _ratio(c.added_latency_ratio),
                    _ratio(c.throughput_ratio),
                    _ratio(c.cpu_per_request_ratio),
                ]
                for c in results.comparisons
            ),
        )
    if results.ttft:
        lines += ["### Streaming time to first token (sequential)", ""]
        lines += _table(
            ["target", "requests per run", "p50 ms", "p99 ms", "overhead vs direct ms"],
            (
                [cell.target, str(cell.runs[0].requests), _ms(cell.p50_ms), _ms(cell.p99_ms), _ms(cell.overhead_ms)]
                for cell in results.ttft
            ),
        )
    if results.replica_scaling:
        lines += ["### Scale-out: independent Switchboard processes, no balancer", ""]
        lines += _table(
            ["concurrency", "1 process req/s", "processes", "combined req/s", "speed-up"],
            (
                [str(s.concurrency), f"{s.single_rps:.0f}", str(s.replicas), f"{s.combined_rps:.0f}", _ratio(s.speedup)]
                for s in results.replica_scaling
            ),
        )
    if results.load_generator:
        lines += ["### Load generator headroom", ""]
        lines += _table(
            ["concurrency", "direct req/s", "fastest gateway", "its req/s", "direct / gateway", "wrk cores (direct)"],
            (
                [
                    str(check.concurrency),
                    f"{check.direct_rps:.0f}",
                    check.fastest_gateway,
                    f"{check.fastest_gateway_rps:.0f}",
                    _ratio(check.headroom),
                    f"{check.wrk_cores_during_direct:.2f}",
                ]
                for check in results.load_generator
            ),
        )
    if results.notes:
        lines += ["### Notes", "", *(f"- {note}" for note in results.notes), ""]
    return "\n".join(lines)
