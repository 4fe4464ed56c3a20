"""What ``switchboard traffic send`` shows while it runs: turns, calls, elapsed time and the cost billed so far.

A tqdm bar on a terminal; elsewhere (CI logs, ``| tee``) one plain line every few seconds, since a bar redrawn with
carriage returns is unreadable in a file.
"""

from __future__ import annotations

import time
from typing import TextIO

from tqdm import tqdm

from router.traffic.send import SendSummary


class SendProgress:
    """Called with the running summary after every turn; ``close`` prints the final state."""

    def __init__(self, stream: TextIO, *, bar: bool, every_s: float) -> None:
        self._stream = stream
        self._every_s = every_s
        self._started = time.monotonic()
        self._last_line: float | None = None
        self._last_line_turns = -1
        self._bar: tqdm | None = None
        self._use_bar = bar

    def __call__(self, summary: SendSummary) -> None:
        if self._use_bar:
            self._update_bar(summary)
            return
        now = time.monotonic()
        if self._last_line is None or now - self._last_line >= self._every_s:
            self._last_line = now
            self._print_line(summary, now)

    def close(self, summary: SendSummary) -> None:
        if self._bar is not None:
            self._update_bar(summary)
            self._bar.close()
        elif summary.requests != self._last_line_turns:
            self._print_line(summary, time.monotonic())

    def _update_bar(self, summary: SendSummary) -> None:
        if self._bar is None:
            self._bar = tqdm(total=summary.planned_turns, desc="send", unit="turn", file=self._stream)
        self._bar.set_postfix_str(f"calls {summary.calls:,}/{summary.planned_calls:,}, {_cost(summary)}", refresh=False)
        self._bar.update(summary.requests - self._bar.n)

    def _print_line(self, summary: SendSummary, now: float) -> None:
        self._last_line_turns = summary.requests
        elapsed = int(now - self._started)
        print(
            f"sent {summary.requests:,}/{summary.planned_turns:,} turns, {summary.calls:,}/{summary.planned_calls:,}"
            f" calls, {elapsed // 60}:{elapsed % 60:02d} elapsed, {_cost(summary)}",
            file=self._stream,
            flush=True,
        )


def _cost(summary: SendSummary) -> str:
    failed = f", {summary.failed:,} failed" if summary.failed else ""
    return f"cost ${summary.cost_usd:.6f}{failed}"
