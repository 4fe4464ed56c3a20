"""Time to first token against a sometimes-silent first deployment, with and without hedging.

The simulator's first small deployment answers in 150 ms, but a share of its requests (``--slow-rate``, 20 % by
default) are accepted and then silent for 3 s before the first token — the dead air of a voice call; the second
deployment always answers in 250 ms. The same seeded sequence of streamed turns goes through a gateway without
latency guards and through one with ``first_token_deadline_ms`` on the tier, and the caller-side TTFT (request sent
to first content token) and the gateway's own ``ttft_ms`` from the ledger are compared.

    python bench/hedge_ttft.py                 # 200 turns each, 4 at a time
    python bench/hedge_ttft.py --turns 400 --deadline-ms 400
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import openai
import yaml

from router.app import create_app
from router.background import BackgroundServer
from router.server import server_options
from router.settings import Settings
from router.simulator import ModelBehaviour, SimulatorServer, SimulatorSettings

REPO = Path(__file__).resolve().parent.parent
MESSAGES = [{"role": "user", "content": "Can you move my appointment to Thursday afternoon?"}]


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def _config(sim_url: str, deadline_ms: float | None) -> dict[str, Any]:
    names = {"small-a": "gpt-4o-mini", "small-b": "gpt-4.1-mini", "standard-a": "gpt-4o", "frontier-a": "gpt-4.1"}
    config: dict[str, Any] = {
        "deployments": [
            {
                "name": name,
                "model": f"openai/{model}",
                "api_base": f"{sim_url}/v1",
                "timeouts": {"connect": 1, "first_token": 10, "total": 20},
            }
            for name, model in names.items()
        ],
        "tiers": {"small": ["small-a", "small-b"], "standard": ["standard-a"], "frontier": ["frontier-a"]},
        "policy": str(REPO / "policies" / "default.yaml"),
    }
    if deadline_ms is not None:
        config["latency"] = {"tiers": {"small": {"first_token_deadline_ms": deadline_ms}}}
    return config


async def _drive(base_url: str, turns: int, concurrency: int) -> list[float]:
    client = openai.AsyncOpenAI(base_url=f"{base_url}/v1", api_key="x", max_retries=0)
    ttfts: list[float] = []
    counter = iter(range(turns))

    async def loop() -> None:
        for _ in counter:
            sent = time.perf_counter()
            first = None
            stream = await client.chat.completions.create(model="small", messages=MESSAGES, stream=True)
            async for chunk in stream:
                if first is None and chunk.choices and chunk.choices[0].delta.content:
                    first = time.perf_counter() - sent
            assert first is not None
            ttfts.append(first * 1000)

    await asyncio.gather(*(loop() for _ in range(concurrency)))
    await client.close()
    return ttfts


def _run(label: str, deadline_ms: float | None, args: argparse.Namespace) -> dict[str, Any]:
    behaviour = {
        "gpt-4o-mini": ModelBehaviour(
            ttft_ms=150, rate_slow_first_token=args.slow_rate, slow_first_token_ms=3000, tokens_per_second=100
        ),
        "gpt-4.1-mini": ModelBehaviour(ttft_ms=250, tokens_per_second=100),
        "*": ModelBehaviour(),
    }
    with (
        tempfile.TemporaryDirectory(prefix="hedge-bench-") as tmp,
        SimulatorServer(SimulatorSettings(models=behaviour, seed=11)) as simulator,
    ):
        config_path = Path(tmp) / "gateway.yaml"
        config_path.write_text(yaml.safe_dump(_config(simulator.base_url, deadline_ms)))
        settings = Settings(config=config_path, data_dir=Path(tmp) / "data", classifier="off")
        with BackgroundServer(create_app(settings), name="gateway", **server_options(settings)) as gateway:
            asyncio.run(_drive(gateway.base_url, 4, 1))  # warm-up, not measured
            with sqlite3.connect(Path(tmp) / "data" / "ledger.sqlite3") as db:
                warm_rows = db.execute("SELECT COUNT(*) FROM ledger").fetchone()[0]
            client_ttft = asyncio.run(_drive(gateway.base_url, args.turns, args.concurrency))
            time.sleep(0.5)
            with sqlite3.connect(Path(tmp) / "data" / "ledger.sqlite3") as db:
                rows = db.execute(
                    "SELECT ttft_ms, error_type, cost_usd FROM ledger ORDER BY rowid LIMIT -1 OFFSET ?", (warm_rows,)
                ).fetchall()
    served = [ttft for ttft, error, _ in rows if error is None and ttft is not None]
    wasted = [cost for _, error, cost in rows if error == "hedge_wasted"]
    spend = sum(cost for _, _, cost in rows)
    return {
        "run": label,
        "first_token_deadline_ms": deadline_ms,
        "turns": len(client_ttft),
        "client_ttft_p50_ms": round(statistics.median(client_ttft)),
        "client_ttft_p99_ms": round(_percentile(client_ttft, 0.99)),
        "client_ttft_max_ms": round(max(client_ttft)),
        "gateway_ttft_p50_ms": round(statistics.median(served)),
        "gateway_ttft_p99_ms": round(_percentile(served, 0.99)),
        "hedges": len(wasted),
        "hedge_wasted_usd": round(sum(wasted), 8),
        "spend_usd": round(spend, 8),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--turns", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--slow-rate", type=float, default=0.2)
    parser.add_argument("--deadline-ms", type=float, default=500)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "hedge_ttft.json")
    args = parser.parse_args()
    results = [_run("no hedging", None, args), _run("hedging", args.deadline_ms, args)]
    for result in results:
        print(json.dumps(result))
    args.out.write_text(json.dumps({"slow_rate": args.slow_rate, "results": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
