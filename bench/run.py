"""Benchmark Switchboard against direct calls and the LiteLLM proxy on a zero-latency provider simulator.

    python bench/run.py [--quick] [--workers 1] [--duration 10] [--repeat 3] [--replicas 2]

Starts the simulator, the gateways and the LiteLLM proxy as child processes on 127.0.0.1, drives each target with
wrk at several concurrencies, times streamed first tokens, writes bench/results/latest.json (+ .md) and prints the
markdown summary. Every child process is stopped at the end, on errors and on Ctrl-C. See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import os
import secrets
import signal
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import NoReturn

if __package__ in (None, ""):
    # Run as a script: the bench package and the gateway's modules import from the repository root.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx

from bench.caller_turns import ReferenceBlocks, TextMode, chat_body, turn_text
from bench.environment import load_average, machine_info, versions
from bench.load import LoadSpec, children_cpu_seconds, run_wrk, write_lua_script, wrk_executable
from bench.processes import ServerFailed, ServerFleet, ServerProcess
from bench.report import render_markdown
from bench.results import BenchResults, LoadCell, LoadRun, RunOptions, TargetInfo, TtftCell
from bench.targets import (
    DEFAULT_LITELLM_VENV,
    GATEWAY_TEMPLATE,
    LITELLM_TEMPLATE,
    ROUTED_MODEL,
    UPSTREAM_MODEL,
    Target,
    TargetName,
    gateway_server,
    litellm_executable,
    litellm_server,
    render_template,
    simulator_server,
)
from bench.ttft import TtftRun, measure_ttft
from router import headers as switchboard_headers

RESULTS = Path(__file__).resolve().parent / "results"
SINGLE_TARGETS = [name for name in TargetName if name is not TargetName.REPLICAS]
CLASSIFYING_TARGETS = {TargetName.SWITCHBOARD, TargetName.SWITCHBOARD_CACHED, TargetName.REPLICAS}
GATEWAY_TARGETS = {*CLASSIFYING_TARGETS, TargetName.SWITCHBOARD_NO_CLASSIFIER}
WARM_UP_SECONDS = 1
WARM_UP_CONNECTIONS = 10
# Below this, direct throughput does not show that wrk and the simulator leave the gateways room to go faster.
MIN_LOAD_GENERATOR_HEADROOM = 3.0
FULL = {"duration": 10, "repeat": 3, "concurrency": [1, 10, 50], "ttft_requests": 200}
QUICK = {"duration": 2, "repeat": 1, "concurrency": [1, 10], "ttft_requests": 50}


def _concurrency_list(text: str) -> list[int]:
    levels = [int(part) for part in text.split(",") if part.strip()]
    if not levels or min(levels) < 1:
        raise argparse.ArgumentTypeError("concurrency levels are positive integers, comma-separated")
    return levels


def _target_list(text: str) -> list[TargetName]:
    try:
        return [TargetName(part.strip()) for part in text.split(",") if part.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{exc}; choose from {', '.join(SINGLE_TARGETS)}") from exc


def parse_options(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help=f"short smoke run: {QUICK} unless set explicitly")
    parser.add_argument("--workers", type=int, default=1, help="worker processes of each gateway and of LiteLLM")
    parser.add_argument("--simulator-workers", type=int, default=1, help="worker processes of the simulator")
    parser.add_argument("--duration", type=int, help=f"seconds per wrk measurement (default {FULL['duration']})")
    parser.add_argument("--repeat", type=int, help=f"measurements per point, medians kept (default {FULL['repeat']})")
    parser.add_argument("--concurrency", type=_concurrency_list, help="comma-separated (default 1,10,50)")
    parser.add_argument(
        "--ttft-requests", type=int, help=f"streamed requests per TTFT run (default {FULL['ttft_requests']})"
    )
    parser.add_argument("--replicas", type=int, default=1, help="also drive N Switchboard processes side by side")
    parser.add_argument(
        "--targets",
        type=_target_list,
        default=SINGLE_TARGETS,
        help=f"comma-separated subset of {', '.join(SINGLE_TARGETS)} (default: all)",
    )
    parser.add_argument("--output", type=Path, help="results JSON (default results/latest.json, quick.json)")
    parser.add_argument(
        "--litellm-venv",
        type=Path,
        default=Path(os.environ.get("LITELLM_PROXY_VENV", DEFAULT_LITELLM_VENV)),
        help="venv made by bench/litellm_proxy/setup.sh",
    )
    parser.add_argument("--wrk-threads", type=int, default=1, help="wrk threads per instance")
    parser.add_argument("--startup-timeout", type=float, default=180, help="seconds for each server to be ready")
    options = parser.parse_args(argv)
    preset = QUICK if options.quick else FULL
    for name, value in preset.items():
        if getattr(options, name) is None:
            setattr(options, name, value)
    if options.output is None:
        options.output = RESULTS / ("quick.json" if options.quick else "latest.json")
    if options.replicas > 1:
        options.targets = [*options.targets, TargetName.REPLICAS]
    if min(options.workers, options.simulator_workers, options.duration, options.repeat, options.replicas) < 1:
        parser.error("--workers, --simulator-workers, --duration, --repeat and --replicas must be at least 1")
    return options


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def start_targets(options: argparse.Namespace, workdir: Path, fleet: ServerFleet) -> list[Target]:
    """Start the simulator, then every server the chosen targets need (in parallel), and wait until all serve."""
    simulator = fleet.launch(simulator_server(workdir, options.simulator_workers))
    simulator.wait_ready(options.startup_timeout)
    log(f"simulator ready on {simulator.base_url} (pid {simulator.pid})")
    sim_api_base = simulator.base_url + "/v1"
    gateway_config = render_template(GATEWAY_TEMPLATE, workdir / "gateway.yaml", sim_api_base)
    token = f"sk-bench-{secrets.token_hex(24)}"
    chosen = set(options.targets)

    def gateway(name: str, classifier: bool) -> ServerProcess:
        return fleet.launch(gateway_server(name, workdir, gateway_config, options.workers, classifier=classifier))

    classifying: list[ServerProcess] = []
    if chosen & CLASSIFYING_TARGETS:
        classifying = [gateway(f"switchboard-{index + 1}", True) for index in range(options.replicas)]
    unclassified = None
    if TargetName.SWITCHBOARD_NO_CLASSIFIER in chosen:
        unclassified = gateway("switchboard-no-classifier", False)
    litellm = None
    if TargetName.LITELLM in chosen:
        config = render_template(LITELLM_TEMPLATE, workdir / "litellm.yaml", sim_api_base)
        litellm = fleet.launch(
            litellm_server(workdir, config, options.workers, venv=options.litellm_venv, master_key=token)
        )
    for server in fleet.servers[1:]:
        server.wait_ready(options.startup_timeout)
        log(f"{server.name} ready on {server.base_url} (pid {server.pid})")

    servers_of: dict[TargetName, tuple[tuple[ServerProcess, ...], str, TextMode]] = {
        TargetName.DIRECT: ((simulator,), UPSTREAM_MODEL, TextMode.DISTINCT),
        TargetName.SWITCHBOARD: (tuple(classifying[:1]), ROUTED_MODEL, TextMode.DISTINCT),
        TargetName.SWITCHBOARD_CACHED: (tuple(classifying[:1]), ROUTED_MODEL, TextMode.REPEATED),
        TargetName.SWITCHBOARD_NO_CLASSIFIER: (tuple(filter(None, [unclassified])), ROUTED_MODEL, TextMode.DISTINCT),
        TargetName.LITELLM: (tuple(filter(None, [litellm])), UPSTREAM_MODEL, TextMode.DISTINCT),
        TargetName.REPLICAS: (tuple(classifying), ROUTED_MODEL, TextMode.DISTINCT),
    }
    targets = []
    for name in options.targets:
        servers, model, text_mode = servers_of[name]
        upstream = None if name is TargetName.DIRECT else simulator
        targets.append(Target(name, servers, model, text_mode, token, upstream))
    return targets


def probe(target: Target) -> TargetInfo:
    """One real request to each of the target's servers: it must answer, and a gateway says whether it classified."""
    intents = []
    for server in target.servers:
        body = chat_body(target.model, turn_text(target.text_mode, 1))
        response = httpx.post(
            target.chat_url(server),
            content=body,
            headers={"authorization": f"Bearer {target.token}", "content-type": "application/json"},
            timeout=30,
        )
        if response.status_code != 200 or not response.json()["choices"][0]["message"]["content"]:
            raise ServerFailed(f"{server.name} did not answer a probe turn: {response.status_code} {response.text}")
        intents.append(response.headers.get(switchboard_headers.INTENT))
    return TargetInfo(
        name=target.name,
        description=target.description,
        model=target.model,
        text_mode=target.text_mode.value,
        processes=len(target.servers),
        classification_active=all(intents) if target.name in GATEWAY_TARGETS else None,
    )


def measure_load(target: Target, specs: list[LoadSpec], duration: int, script: Path, threads: int) -> LoadRun:
    upstream = target.upstream
    server_before = target.server_cpu_seconds()
    upstream_before = upstream.cpu_seconds() if upstream else 0.0
    wrk_before = children_cpu_seconds()
    summaries = run_wrk(script, specs, duration, threads)
    wrk_after = children_cpu_seconds()
    return LoadRun.from_wrk(
        summaries,
        server_cpu_seconds=target.server_cpu_seconds() - server_before,
        upstream_cpu_seconds=upstream.cpu_seconds() - upstream_before if upstream else None,
        load_generator_cpu_seconds=wrk_after - wrk_before,
    )


def measure_all(options: argparse.Namespace, targets: list[Target], script: Path, results: BenchResults) -> None:
    """Rounds of every target at every concurrency (then its TTFT), so slow drifts of the machine hit all alike."""
    references = ReferenceBlocks()
    for target in targets:
        specs = target.load_specs(min(WARM_UP_CONNECTIONS, max(options.concurrency)), references)
        if specs is not None:
            run_wrk(script, specs, WARM_UP_SECONDS, options.wrk_threads)
    load_runs: dict[tuple[TargetName, int], list[LoadRun]] = defaultdict(list)
    ttft_runs: dict[TargetName, list[TtftRun]] = defaultdict(list)
    for round_number in range(1, options.repeat + 1):
        for target in targets:
            for concurrency in options.concurrency:
                specs = target.load_specs(concurrency, references)
                if specs is None:
                    continue
                run = measure_load(target, specs, options.duration, script, options.wrk_threads)
                load_runs[(target.name, concurrency)].append(run)
                log(
                    f"[{round_number}/{options.repeat}] {target.name} c={concurrency}: {run.throughput_rps:.0f} req/s, "
                    f"p50 {run.p50_ms:.2f} ms, p99 {run.p99_ms:.2f} ms, "
                    f"CPU {run.server_cpu_ms_per_request:.2f} ms/req, errors {run.errors}"
                )
            if target.name is not TargetName.REPLICAS and options.ttft_requests > 0:
                ttft = asyncio.run(
                    measure_ttft(
                        target.chat_url(target.servers[0]),
                        model=target.model,
                        text_mode=target.text_mode,
                        token=target.token,
                        requests=options.ttft_requests,
                        first_reference=references.next_base(),
                    )
                )
                ttft_runs[target.name].append(ttft)
                log(f"[{round_number}/{options.repeat}] {target.name} TTFT p50 {ttft.p50_ms:.2f} ms")
    results.load = [LoadCell.from_runs(name, concurrency, runs) for (name, concurrency), runs in load_runs.items()]
    results.ttft = [TtftCell.from_runs(name, runs) for name, runs in ttft_runs.items()]


def explain(results: BenchResults) -> list[str]:
    machine = results.machine
    notes = [
        f"Measured on a shared {machine.logical_cpus}-CPU machine (load average {machine.load_average_before} "
        f"before, {machine.load_average_after} after) where other work ran at the same time: the figures are "
        "noisy; compare ratios within one run rather than absolute numbers across runs.",
        "wrk, the simulator and the servers share the same cores. Server CPU per request is read from /proc "
        "(utime + stime of each server process and its workers) around each wrk run.",
        "Above a gateway's capacity, added p50 is mostly queueing behind other requests; concurrency 1 shows the "
        "per-request overhead.",
    ]
    classified = {target.name: target.classification_active for target in results.targets}
    if any(classified.get(name) is False for name in CLASSIFYING_TARGETS):
        notes.append(
            "The gateway returned no x-switchboard-intent for a probe turn: classification is not wired into it "
            "yet, so the switchboard and switchboard_cached rows measure the same path as switchboard_no_classifier."
        )
    if classified.get(TargetName.SWITCHBOARD_NO_CLASSIFIER):
        notes.append("The gateway started with SWITCHBOARD_CLASSIFIER=off still reported an intent: it classified.")
    notes += [
        f"{cell.target} at concurrency {cell.concurrency}: {cell.errors} failed requests over the repeats."
        for cell in results.load
        if cell.errors
    ]
    notes += [
        f"At concurrency {check.concurrency} direct is only {check.headroom:.1f}× the fastest gateway: "
        "the load generator or the simulator may limit the gateway figures."
        for check in results.load_generator
        if check.headroom < MIN_LOAD_GENERATOR_HEADROOM
    ]
    return notes


def write_results(results: BenchResults, output: Path) -> None:
    output.parent.mkdir(parents=True, exist_ok=True)
    documents = {output: results.model_dump_json(indent=2), output.with_suffix(".md"): render_markdown(results)}
    for path, text in documents.items():
        partial = path.with_name(path.name + ".tmp")
        partial.write_text(text + "\n")
        partial.replace(path)


def _exit_on_signal(signum: int, frame: object) -> NoReturn:
    # SystemExit unwinds through the ``with`` blocks, which stop every server, as Ctrl-C does.
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    options = parse_options(argv)
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _exit_on_signal)
    # A run started as a background job of a non-interactive shell inherits SIGINT ignored; Ctrl-C or `kill -INT`
    # must still stop it and its servers.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    wrk_executable()
    litellm_python = None
    if TargetName.LITELLM in options.targets:
        litellm_python = litellm_executable(options.litellm_venv).with_name("python")
    started = time.monotonic()
    results = BenchResults(
        timestamp=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        options=RunOptions(
            quick=options.quick,
            workers=options.workers,
            simulator_workers=options.simulator_workers,
            duration_seconds=options.duration,
            repeat=options.repeat,
            concurrency=options.concurrency,
            ttft_requests=options.ttft_requests,
            replicas=options.replicas,
            targets=[str(name) for name in options.targets],
        ),
        machine=machine_info(),
        versions=versions(litellm_python),
        targets=[],
    )
    try:
        with tempfile.TemporaryDirectory(prefix="switchboard-bench-") as folder, ServerFleet() as fleet:
            workdir = Path(folder)
            targets = start_targets(options, workdir, fleet)
            results.targets = [probe(target) for target in targets]
            measure_all(options, targets, write_lua_script(workdir), results)
    except ServerFailed as exc:
        log(f"benchmark aborted: {exc}")
        return 1
    results.wall_seconds = round(time.monotonic() - started, 1)
    results.machine.load_average_after = load_average()
    results.derive()
    results.notes = explain(results)
    write_results(results, options.output)
    print(render_markdown(results))
    log(f"results written to {options.output} in {results.wall_seconds:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
