"""Latency and throughput of the turn classifier with the shipped default model.

* cache misses: distinct texts, one request at a time, straight through ``TurnClassifier.classify``;
* the same with a sent history (a system message and three earlier user turns): first with every earlier turn
  already judged (a call's later turns: only the new turn is a miss), then with none judged (a chat arriving
  with its whole history at once);
* throughput: concurrency 16 through ``BatchingClassifier`` (distinct texts, so every call is inferred).

Targets: p50 <= 5 ms and p99 <= 15 ms per turn. Run: ``python bench/bench_classifier.py [--turns 400]``.

Wall-clock latency on a shared machine measures the neighbours as much as the classifier, so the cache-miss line
is followed by the CPU time of the classifying thread per turn (onnxruntime runs on it with one intra-op thread),
and the 1-minute load average is printed next to the figures.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import time

import click
import numpy as np

from classifiers import BatchingClassifier, Conversation, TurnClassifier
from classifiers.embeddings import EncoderRuntime

OPENERS = ["hi", "um so", "quick question,", "hello again,", "yeah so basically", "excuse me,", "ok and", "sorry,"]
REQUESTS = [
    "what time do you open on {day}",
    "I want to dispute a {amount} dollar charge on my card",
    "can I move my appointment to {day} afternoon",
    "my package {order} still hasn't arrived and I'm really annoyed",
    "how do I reset my password for order {order}",
    "the card number is {card}",
    "thanks, that's all for {day}",
    "if I upgrade on {day} what happens to the seats I already paid {amount} for",
]
CONTEXTS = [None, "Can I have your card number please?", "Is there anything else I can help you with?"]


def distinct_turns(count: int) -> list[Conversation]:
    """``count`` different turns: templates, openers, contexts and a running number vary."""
    days = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
    combinations = itertools.cycle(itertools.product(OPENERS, REQUESTS, CONTEXTS))
    turns = []
    for index, (opener, request, context) in zip(range(count), combinations, strict=False):
        text = request.format(
            day=days[index % 7], amount=20 + index, order=10_000 + index, card=f"4111 1111 1111 {index:04d}"
        )
        turns.append(Conversation(latest_user_text=f"{opener} {text} ({index})", previous_assistant_text=context))
    return turns


def with_history(turn: Conversation, index: int) -> Conversation:
    return turn.model_copy(
        update={
            "earlier_user_texts": tuple(
                REQUESTS[(index + k) % len(REQUESTS)].format(
                    day="monday", amount=index, order=index * 10 + k, card=f"4111 1111 1111 {index:04d}"
                )
                for k in range(3)
            ),
            "instruction_texts": (f"You are the voice agent of shop {index}. Be brief and friendly.",),
        }
    )


def percentile_ms(samples: list[float], q: float) -> float:
    return float(np.percentile(samples, q) * 1000)


async def concurrent_throughput(classifier: TurnClassifier, turns: list[Conversation], concurrency: int) -> float:
    batching = BatchingClassifier(classifier)
    queue = iter(turns)

    async def client() -> None:
        for turn in queue:
            await batching.classify(turn)

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    await batching.aclose()
    return len(turns) / elapsed


@click.command()
@click.option("--turns", default=400, show_default=True, help="Distinct turns per measurement.")
@click.option("--runtime", type=click.Choice([r.value for r in EncoderRuntime]), default=None)
@click.option("--concurrency", default=16, show_default=True)
def main(turns: int, runtime: str | None, concurrency: int) -> None:
    classifier = TurnClassifier.load(runtime=runtime)
    corpus = distinct_turns(turns * 2)
    for warm_up in corpus[:20]:
        classifier.classify(warm_up.model_copy(update={"latest_user_text": warm_up.latest_user_text + " warm"}))
    latencies, cpu = [], []
    for turn in corpus[:turns]:
        started, started_cpu = time.perf_counter(), time.thread_time()
        classifier.classify(turn)
        latencies.append(time.perf_counter() - started)
        cpu.append(time.thread_time() - started_cpu)
    in_call, cold = [], []
    for index, turn in enumerate(corpus[:turns]):
        # A latest turn not seen before (the first loop's texts are in the encoder's cache by now).
        turn = turn.model_copy(update={"latest_user_text": f"{turn.latest_user_text} and one more thing"})
        chat = with_history(turn, index)
        classifier.classify(chat.model_copy(update={"latest_user_text": f"warm {index}"}))  # judges the history
        started = time.perf_counter()
        classifier.classify(chat)
        in_call.append(time.perf_counter() - started)
        fresh = with_history(
            turn.model_copy(update={"latest_user_text": f"{turn.latest_user_text}, sorry"}), index + 10 * turns
        )
        started = time.perf_counter()
        classifier.classify(fresh)
        cold.append(time.perf_counter() - started)
    throughput = asyncio.run(concurrent_throughput(classifier, corpus[turns:], concurrency))
    click.echo(
        f"runtime {classifier.encoder.runtime.value}, {turns} distinct turns, load average {os.getloadavg()[0]:.1f} "
        f"on {os.cpu_count()} cores"
    )
    click.echo(
        f"cache-miss latency per turn: p50 {percentile_ms(latencies, 50):.2f} ms, "
        f"p99 {percentile_ms(latencies, 99):.2f} ms (targets 5 / 15 ms)"
    )
    click.echo(f"  CPU time per turn: p50 {percentile_ms(cpu, 50):.2f} ms, p99 {percentile_ms(cpu, 99):.2f} ms")
    for label, samples in (("history already judged", in_call), ("history not judged yet", cold)):
        click.echo(
            f"with a 4-message history, {label}: p50 {percentile_ms(samples, 50):.2f} ms, "
            f"p99 {percentile_ms(samples, 99):.2f} ms"
        )
    click.echo(f"throughput at concurrency {concurrency} via BatchingClassifier: {throughput:.0f} turns/s")


if __name__ == "__main__":
    main()
