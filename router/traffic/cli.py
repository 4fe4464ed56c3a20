"""``switchboard traffic generate`` and ``switchboard replay``: make sample traffic, replay a log under policies."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import click

from router.config import load_config
from router.policy.store import LoadedPolicy, load_policy
from router.traffic.classify import ShippedClassifier
from router.traffic.gate import gate_failures, gate_violations, violation_lines
from router.traffic.generate import write_sample_log
from router.traffic.log import read_traffic
from router.traffic.redact import Redactor
from router.traffic.replay import DEFAULT_BATCH_SIZE, replay
from router.traffic.report import build_report, render_text, write_outputs
from router.traffic.send import DEFAULT_CONCURRENCY, send_traffic
from router.traffic.send_progress import SendProgress
from router.yamlsource import ConfigFileError

GATE_FAILED_EXIT = 3
BASELINE_POLICY, CANDIDATE_POLICY = "P", "Q"


@click.group("traffic")
def traffic() -> None:
    """Sample traffic and traffic logs."""


@traffic.command("generate")
@click.option("--calls", type=click.IntRange(min=1), required=True, help="Number of calls to generate.")
@click.option("--seed", type=int, default=0, show_default=True, help="Same seed, same bytes.")
@click.option("--out", "out_path", type=click.Path(dir_okay=False, path_type=Path), required=True, help="JSONL file.")
def generate(calls: int, seed: int, out_path: Path) -> None:
    """Write a traffic log of realistic voice calls to a clinic, a SaaS billing desk, a carrier and a bank."""
    records = write_sample_log(out_path, calls, seed, Redactor())
    click.echo(f"wrote {records:,} turns of {calls:,} calls to {out_path}")


@traffic.command("send")
@click.option(
    "--traffic",
    "traffic_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help="Traffic log (JSONL) to send.",
)
@click.option("--url", default="http://127.0.0.1:4000", show_default=True, help="The gateway's base URL.")
@click.option(
    "--concurrency",
    type=click.IntRange(min=1),
    default=DEFAULT_CONCURRENCY,
    show_default=True,
    help="Calls in flight at once; each call's turns are sent strictly in order.",
)
@click.option(
    "--stream-every", type=click.IntRange(min=0), default=3, show_default=True, help="Stream every n-th turn."
)
@click.option("--api-key", envvar="SWITCHBOARD_API_KEY", help="A virtual key, when the gateway requires one.")
@click.option(
    "--progress-every",
    type=click.FloatRange(min=0),
    default=10.0,
    show_default=True,
    help="Seconds between progress lines when stderr is not a terminal (a terminal gets a progress bar).",
)
def send(
    traffic_path: Path, url: str, concurrency: int, stream_every: int, api_key: str | None, progress_every: float
) -> None:
    """Send a traffic log through a running gateway: each call's turns in order, calls side by side.

    Progress (turns, calls, elapsed time, cost so far) goes to stderr; the totals the gateway billed, which
    ``switchboard report`` and the cost metrics reproduce, go to stdout at the end.
    """
    click.echo(f"sending {traffic_path} to {url}, {concurrency} calls at a time", err=True)
    progress = SendProgress(sys.stderr, bar=sys.stderr.isatty(), every_s=progress_every)
    summary = asyncio.run(
        send_traffic(
            read_traffic(traffic_path),
            url,
            concurrency=concurrency,
            stream_every=stream_every,
            api_key=api_key,
            progress=progress,
        )
    )
    progress.close(summary)
    outcomes = [f"{status}: {count:,}" for status, count in sorted(summary.statuses.items())]
    if summary.no_response:
        outcomes.append(f"no response: {summary.no_response:,}")
    click.echo(f"sent {summary.requests:,} turns of {summary.calls:,} calls ({', '.join(outcomes)})")
    click.echo(
        f"cost ${summary.cost_usd:.6f}, all-frontier baseline ${summary.baseline_cost_usd:.6f}, "
        f"savings ${summary.baseline_cost_usd - summary.cost_usd:.6f}"
    )
    if summary.failed:
        sys.exit(1)


@click.command("replay")
@click.option(
    "--traffic",
    "traffic_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help="Traffic log (JSONL) to replay.",
)
@click.option("--policy", "policy_path", type=click.Path(path_type=Path), required=True, help="Policy P.")
@click.option("--compare", "compare_path", type=click.Path(path_type=Path), help="Candidate policy Q to compare.")
@click.option("--config", "config_path", type=click.Path(path_type=Path), help="Gateway YAML (tiers, prices).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), help="Folder for CSVs and PNGs.")
@click.option(
    "--gate",
    is_flag=True,
    help=f"Exit {GATE_FAILED_EXIT} if the candidate (Q, else P) routes a turn below what P's floors and the routing "
    "contract require, or costs too much; 0 if it may ship.",
)
@click.option(
    "--max-cost-increase-pct",
    type=float,
    default=5.0,
    show_default=True,
    help="With --gate and --compare: most Q may raise cost per call over P.",
)
@click.option("--classifier", "model_path", type=click.Path(path_type=Path), help="Trained model; default: shipped.")
@click.option("--batch-size", type=click.IntRange(min=1), default=DEFAULT_BATCH_SIZE, show_default=True)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=os.cpu_count() or 1,
    show_default="CPU count",
    help="Processes classifying in parallel (each loads the model).",
)
@click.option("--progress/--no-progress", default=None, help="Progress bars (default: when stderr is a terminal).")
@click.pass_context
def replay_command(
    ctx: click.Context,
    traffic_path: Path,
    policy_path: Path,
    compare_path: Path | None,
    config_path: Path | None,
    out_dir: Path | None,
    gate: bool,
    max_cost_increase_pct: float,
    model_path: Path | None,
    batch_size: int,
    workers: int,
    progress: bool | None,
) -> None:
    """Replay a traffic log under policy P (and Q): tier mix, cost, savings, floor violations, changed decisions.

    Policies are files or the names of shipped policies (``default``, ``clinic``...). A program embedding this
    command may pass its own classifier as ``ctx.obj["classifier"]``.

    Exit status: 0 done (with --gate: the candidate may ship), 3 the gate failed (the offending turns on stderr),
    1 the log or a policy could not be read, 2 a usage error.
    """
    try:
        loaded_config = load_config(config_path)
        policies: dict[str, LoadedPolicy] = {
            BASELINE_POLICY: load_policy(loaded_config.policy_path(policy_path), loaded_config.config)
        }
        if compare_path is not None:
            policies[CANDIDATE_POLICY] = load_policy(loaded_config.policy_path(compare_path), loaded_config.config)
    except ConfigFileError as exc:
        raise click.ClickException(str(exc)) from exc
    classifier = (ctx.obj or {}).get("classifier") or ShippedClassifier(model_path)
    result = replay(
        read_traffic(traffic_path),
        policies,
        loaded_config.config,
        classifier,
        batch_size=batch_size,
        workers=workers,
        progress=sys.stderr.isatty() if progress is None else progress,
    )
    if result.turns.empty:
        raise click.ClickException(f"{traffic_path} holds no traffic records")
    report = build_report(result)
    click.echo(render_text(report, str(traffic_path)))
    violations = gate_violations(result, BASELINE_POLICY, report.candidate) if gate else None
    if out_dir is not None:
        written = write_outputs(report, out_dir)
        if violations is not None:
            violations.set_index("request_id").to_csv(out_dir / "gate_violations.csv")
            written.append(out_dir / "gate_violations.csv")
        click.echo(f"\nwrote {len(written)} files to {out_dir}")
    if violations is not None:
        failures = gate_failures(report, violations, max_cost_increase_pct)
        if failures:
            for failure in failures:
                click.echo(f"gate failed: {failure}", err=True)
            for line in violation_lines(violations):
                click.echo(line, err=True)
            ctx.exit(GATE_FAILED_EXIT)
        click.echo(
            f"gate passed: {report.candidate} routes no turn below {BASELINE_POLICY}'s floors or the routing contract "
            "and stays within the cost limit"
        )
