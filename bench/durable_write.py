"""What the durable ledger write adds to a turn: the time ``await Ledger.commit(record)`` takes (the answer is
released only after it), for SQLite (``synchronous=FULL``, fsync per commit) and PostgreSQL, with 1, 16 and
64 turns finishing concurrently (group commit: concurrent turns share one commit).

    python bench/durable_write.py                      # SQLite, and PostgreSQL from a throwaway local cluster
    python bench/durable_write.py --database-url postgresql://...  --commits 2000

Before this change a record was queued in memory and the answer released at once (0 ms added, and lost on a
crash), so these latencies are the whole added cost.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from router.accounting.ledger import Ledger, LedgerRecord, LedgerSink, PostgresLedgerSink, SQLiteLedgerSink
from router.db import open_postgres


def _record(n: int) -> LedgerRecord:
    return LedgerRecord(
        request_id=f"req_bench_{n}",
        tenant="bench",
        agent="voice",
        deployment="small-a",
        model="openai/gpt-4o-mini",
        tier="small",
        status=200,
        prompt_tokens=120,
        completion_tokens=24,
        cost_usd=0.0000324,
        baseline_cost_usd=0.0004,
        risks={"medical": 0.02},
    )


async def _measure(sink: LedgerSink, spool: Path, concurrency: int, commits: int) -> dict[str, Any]:
    ledger = Ledger(sink, spool)
    await ledger.start()
    latencies: list[float] = []
    counter = iter(range(commits))

    async def turn_loop() -> None:
        for n in counter:
            started = time.perf_counter()
            await ledger.commit(_record(n))
            latencies.append((time.perf_counter() - started) * 1000)

    began = time.perf_counter()
    await asyncio.gather(*(turn_loop() for _ in range(concurrency)))
    elapsed = time.perf_counter() - began
    await ledger.aclose()
    latencies.sort()
    return {
        "concurrency": concurrency,
        "commits": len(latencies),
        "p50_ms": round(statistics.median(latencies), 3),
        "p99_ms": round(latencies[int(0.99 * (len(latencies) - 1))], 3),
        "max_ms": round(latencies[-1], 3),
        "commits_per_s": round(len(latencies) / elapsed),
    }


async def _run(database_url: str | None, commits: int, levels: list[int]) -> dict[str, list[dict[str, Any]]]:
    results: dict[str, list[dict[str, Any]]] = {"sqlite": [], "postgresql": []}
    with tempfile.TemporaryDirectory(prefix="durable-bench-") as tmp:
        for level in levels:
            sink = SQLiteLedgerSink(Path(tmp) / f"ledger-{level}.sqlite3")
            results["sqlite"].append(await _measure(sink, Path(tmp) / "spool.jsonl", level, commits))
        if database_url is not None:
            pool = await open_postgres(database_url)
            try:
                await pool.execute("TRUNCATE ledger")
                for level in levels:
                    results["postgresql"].append(
                        await _measure(PostgresLedgerSink(pool), Path(tmp) / "spool.jsonl", level, commits)
                    )
                    await pool.execute("TRUNCATE ledger")
            finally:
                await pool.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", help="PostgreSQL to use (default: a throwaway local cluster)")
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--commits", type=int, default=1000, help="commits per concurrency level")
    parser.add_argument("--concurrency", default="1,16,64")
    parser.add_argument("--output", type=Path, default=Path(__file__).parent / "results" / "durable_write.json")
    args = parser.parse_args()
    levels = [int(level) for level in args.concurrency.split(",")]
    if args.no_postgres or args.database_url:
        results = asyncio.run(_run(args.database_url, args.commits, levels))
    else:
        from tests.postgres_server import PostgresServer

        with PostgresServer() as server:
            results = asyncio.run(_run(server.url, args.commits, levels))
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    for store, rows in results.items():
        for row in rows:
            latency = f"p50 {row['p50_ms']:7.2f} ms  p99 {row['p99_ms']:7.2f} ms  max {row['max_ms']:7.2f} ms"
            print(f"{store:10} concurrency {row['concurrency']:3}: {latency}  {row['commits_per_s']:6} commits/s")


if __name__ == "__main__":
    main()
