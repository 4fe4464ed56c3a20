"""Regular expressions for caller text, compiled with RE2 so every match runs in time linear in the text.

Python's ``re`` backtracks: one nested quantifier and a run of digits can hold the interpreter (and, since ``re``
keeps the GIL, every thread and the event loop) for minutes. RE2 never backtracks. Every pattern that reads text a
caller sent is compiled here, and a pattern RE2 cannot run (backreferences, lookarounds) fails at import instead of
quietly falling back to a backtracking engine.

RE2's ``\\d``, ``\\w``, ``\\s`` and ``\\b`` are ASCII-only; the detectors read text in ``classifiers.normalise``'s
folded form, whose digits, spaces and letters are ASCII wherever Unicode has an ASCII equivalent.

The ``re2`` package's own ``search``/``finditer`` re-encode the text and translate byte offsets in Python on every
call, which made the detectors three times slower; for ASCII text (nearly every folded turn), where byte and
character offsets agree, :class:`Pattern` calls RE2 directly and leaves the general path to the package.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Protocol, overload

import re2

_ANCHOR = re2._Anchor  # the package's own alias of RE2::Anchor
_NO_SPAN = (-1, -1)


class Match(Protocol):
    # The whole match always matched; a group may not have (as typeshed types re.Match).
    @overload
    def group(self) -> str: ...
    @overload
    def group(self, group: int, /) -> str | None: ...

    def start(self, group: int = 0, /) -> int: ...

    def end(self, group: int = 0, /) -> int: ...

    def span(self, group: int = 0, /) -> tuple[int, int]: ...


class _AsciiMatch:
    """A match in ASCII text, whose byte offsets are its character offsets."""

    __slots__ = ("_spans", "_text")

    def __init__(self, text: str, spans: list[tuple[int, int]]) -> None:
        self._text = text
        self._spans = spans

    @overload
    def group(self) -> str: ...
    @overload
    def group(self, group: int, /) -> str | None: ...
    def group(self, group: int = 0) -> str | None:
        start, end = self._spans[group]
        return None if start < 0 else self._text[start:end]

    def start(self, group: int = 0, /) -> int:
        return self._spans[group][0]

    def end(self, group: int = 0, /) -> int:
        return self._spans[group][1]

    def span(self, group: int = 0, /) -> tuple[int, int]:
        return self._spans[group]


class Pattern:
    """A compiled RE2 pattern with the part of ``re.Pattern``'s interface the classifiers use."""

    __slots__ = ("_compiled", "_groups", "_program", "pattern")

    def __init__(self, pattern: str) -> None:
        options = re2.Options()
        options.log_errors = False  # a bad pattern raises below with RE2's message; RE2 would also print it
        try:
            self._compiled = re2.compile(pattern, options)
        except re2.error as error:
            reason = error.args[0].decode() if error.args and isinstance(error.args[0], bytes) else str(error)
            raise ValueError(f"not a linear-time (RE2) pattern: {reason}: {pattern!r}") from error
        self._program = self._compiled._regexp
        self._groups: int = self._compiled.groups
        self.pattern = pattern

    def _ascii_matches(self, anchor: Any, text: str, pos: int, endpos: int | None) -> Iterator[_AsciiMatch]:
        data = text.encode("ascii")
        end = len(data) if endpos is None else max(0, min(endpos, len(data)))
        pos = max(0, min(pos, end))
        while True:
            spans = self._program.Match(anchor, data, pos, end)
            if spans[0] == _NO_SPAN:
                return
            yield _AsciiMatch(text, spans)
            matched_from, matched_to = spans[0]
            pos = matched_to if matched_to > matched_from else matched_to + 1  # past an empty match
            if pos > end:
                return

    def _first(self, anchor: Any, text: str, pos: int, endpos: int | None) -> Match | None:
        if text.isascii():
            return next(self._ascii_matches(anchor, text, pos, endpos), None)
        method = {_ANCHOR.UNANCHORED: "search", _ANCHOR.ANCHOR_START: "match"}.get(anchor, "fullmatch")
        return getattr(self._compiled, method)(text, pos, endpos)  # type: ignore[no-any-return]

    def search(self, text: str, pos: int = 0, endpos: int | None = None) -> Match | None:
        return self._first(_ANCHOR.UNANCHORED, text, pos, endpos)

    def match(self, text: str, pos: int = 0, endpos: int | None = None) -> Match | None:
        return self._first(_ANCHOR.ANCHOR_START, text, pos, endpos)

    def fullmatch(self, text: str, pos: int = 0, endpos: int | None = None) -> Match | None:
        return self._first(_ANCHOR.ANCHOR_BOTH, text, pos, endpos)

    def finditer(self, text: str, pos: int = 0, endpos: int | None = None) -> Iterator[Match]:
        if text.isascii():
            return self._ascii_matches(_ANCHOR.UNANCHORED, text, pos, endpos)
        return self._compiled.finditer(text, pos, endpos)  # type: ignore[no-any-return]

    def findall(self, text: str, pos: int = 0, endpos: int | None = None) -> list[Any]:
        """Like ``re.findall``: whole matches, group 1, or tuples of groups (``""`` for a group that took no part)."""
        matches = self.finditer(text, pos, endpos)
        if self._groups == 0:
            return [match.group() for match in matches]
        if self._groups == 1:
            return [match.group(1) or "" for match in matches]
        return [tuple(match.group(index) or "" for index in range(1, self._groups + 1)) for match in matches]

    def sub(self, replacement: str | Callable[[Match], str], text: str) -> str:
        """Every match replaced by ``replacement`` (a literal text, or a function of the match)."""
        pieces: list[str] = []
        cursor = 0
        for match in self.finditer(text):
            start, end = match.span()
            pieces.append(text[cursor:start])
            pieces.append(replacement(match) if callable(replacement) else replacement)
            cursor = end
        pieces.append(text[cursor:])
        return "".join(pieces)


def compile(pattern: str) -> Pattern:  # mirrors re.compile, called as regex.compile
    """``pattern`` compiled with RE2; raises ``ValueError`` naming the pattern if RE2 cannot run it."""
    return Pattern(pattern)


def escape(literal: str) -> str:
    """``literal`` quoted for use inside an RE2 pattern."""
    return re2.escape(literal)  # type: ignore[no-any-return]
