"""Matching cost of a tenant intent catalog against already computed user-turn embeddings.

The catalog is synthetic (``--intents`` x ``--examples`` examples, a negative for every fourth intent) and its
vectors random unit vectors: matching is a dense product plus segment maxima, so its cost depends on the sizes
only, and no encoder run is needed to measure it. BLAS is limited to one thread, as in the classifier's worker.

Target: p50 and p99 <= 0.5 ms per single-turn match with 5,000 examples.
Run: ``python bench/bench_catalog.py [--intents 250 --examples 20 --turns 2000]``.
"""

from __future__ import annotations

import time

import click
import numpy as np

from classifiers.catalog import Catalog, CatalogIndex, CatalogIntent
from classifiers.embeddings import EMBEDDING_DIM
from classifiers.pipeline import single_blas_thread

TARGET_MS = 0.5
BATCH_SIZES = (1, 8, 32, 128)


def synthetic_catalog(intents: int, examples: int) -> Catalog:
    return Catalog(
        name="bench",
        threshold=0.6,
        intents=[
            CatalogIntent(
                name=f"intent_{i}",
                intent="faq",
                risks=["payment"] if i % 3 == 0 else [],
                tier="small" if i % 2 else None,
                examples=[f"intent {i} example {j}" for j in range(examples)],
                negatives=[f"intent {i} negative"] if i % 4 == 0 else [],
            )
            for i in range(intents)
        ],
    )


def unit_vectors(rng: np.random.Generator, count: int) -> np.ndarray:
    vectors = rng.standard_normal((count, EMBEDDING_DIM)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def percentile_ms(samples: list[float], q: float) -> float:
    return float(np.percentile(samples, q) * 1000)


@click.command()
@click.option("--intents", default=250, show_default=True)
@click.option("--examples", default=20, show_default=True, help="Examples per intent.")
@click.option("--turns", default=2000, show_default=True, help="Single-turn matches measured.")
@click.option("--seed", default=7, show_default=True)
def main(intents: int, examples: int, turns: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    catalog = synthetic_catalog(intents, examples)
    utterances = unit_vectors(rng, len(catalog.utterances()))
    index = CatalogIndex(catalog, utterances)
    # Half the queries are noisy copies of random examples (they match and build a CatalogMatch), half are
    # unrelated (no match), as on a tenant's real traffic.
    near = rng.random(turns) < 0.5
    queries = unit_vectors(rng, turns) * 0.5 + near[:, None] * utterances[rng.integers(0, intents * examples, turns)]
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    with single_blas_thread():
        index.match(queries[:50])
        latencies = []
        matched = 0
        for row in range(turns):
            started = time.perf_counter()
            found = index.match(queries[row : row + 1])
            latencies.append(time.perf_counter() - started)
            matched += found[0] is not None
        throughput = {}
        for batch in BATCH_SIZES:
            started = time.perf_counter()
            for start in range(0, turns, batch):
                index.match(queries[start : start + batch])
            throughput[batch] = turns / (time.perf_counter() - started)
    p50, p99 = percentile_ms(latencies, 50), percentile_ms(latencies, 99)
    verdict = "ok" if p99 <= TARGET_MS else "OVER TARGET"
    click.echo(f"catalog: {intents} intents x {examples} examples = {intents * examples} examples, {turns} turns")
    click.echo(f"single-turn match: p50 {p50:.3f} ms, p99 {p99:.3f} ms (target {TARGET_MS} ms: {verdict})")
    click.echo(f"matched {matched / turns:.0%} of turns")
    click.echo("batch throughput: " + ", ".join(f"batch {b}: {t:,.0f} turns/s" for b, t in throughput.items()))


if __name__ == "__main__":
    main()
