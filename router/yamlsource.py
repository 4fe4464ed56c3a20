"""YAML files validated by pydantic, with errors that point at the offending line.

An engineer who breaks a policy or config must read ``policies/clinic.yaml:14: rules[2].route.tier: unknown tier
'fronteir'`` rather than a stack trace; this module keeps the line of every node so any error, from the YAML
parser, from pydantic or from a semantic check, can be reported at its place.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

ModelT = TypeVar("ModelT", bound=BaseModel)
Location = tuple[str | int, ...]


class ConfigFileError(ValueError):
    """A file that cannot be used, with the place and the reason."""

    def __init__(self, source: str, line: int | None, message: str) -> None:
        self.source = source
        self.line = line
        self.reason = message
        where = f"{source}:{line}" if line is not None else source
        super().__init__(f"{where}: {message}")


def dotted(loc: Sequence[str | int]) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


class YamlDocument:
    """Parsed YAML data plus the line (1-based) where each mapping key or sequence item starts."""

    def __init__(self, text: str, source: str) -> None:
        self.source = source
        self.text = text
        self.sha256 = hashlib.sha256(text.encode()).hexdigest()
        try:
            root = yaml.compose(text, Loader=yaml.SafeLoader)
            self.data: Any = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            line = mark.line + 1 if mark is not None else None
            raise ConfigFileError(source, line, f"invalid YAML: {getattr(exc, 'problem', None) or exc}") from exc
        self._lines: dict[Location, int] = {}
        if root is not None:
            self._index(root, ())

    @classmethod
    def from_path(cls, path: str | Path, max_bytes: int | None = None) -> YamlDocument:
        """Read and parse a file; with ``max_bytes``, a larger file is refused after reading at most one byte more."""
        path = Path(path)
        try:
            with path.open("rb") as file:
                data = file.read() if max_bytes is None else file.read(max_bytes + 1)
        except OSError as exc:
            raise ConfigFileError(str(path), None, f"cannot read: {exc.strerror}") from exc
        if max_bytes is not None and len(data) > max_bytes:
            raise ConfigFileError(str(path), None, f"larger than {max_bytes} bytes")
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ConfigFileError(str(path), None, "not UTF-8 text") from exc
        return cls(text, str(path))

    def _index(self, node: yaml.Node, loc: Location) -> None:
        self._lines[loc] = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                child = (*loc, key_node.value)
                self._index(value_node, child)
                self._lines[child] = key_node.start_mark.line + 1
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                self._index(item, (*loc, index))

    def line_of(self, loc: Sequence[str | int]) -> int | None:
        """The line of the deepest node of ``loc`` that exists in the file."""
        parts = tuple(loc)
        while parts:
            if parts in self._lines:
                return self._lines[parts]
            parts = parts[:-1]
        return self._lines.get(())

    def error(self, loc: Sequence[str | int], message: str) -> ConfigFileError:
        prefix = f"{dotted(loc)}: " if loc else ""
        return ConfigFileError(self.source, self.line_of(loc), prefix + message)

    def validate(self, model: type[ModelT], context: dict[str, Any] | None = None) -> ModelT:
        """Validate the data as ``model``; the first error is raised at its line."""
        try:
            return model.model_validate(self.data if self.data is not None else {}, context=context)
        except ValidationError as exc:
            first = exc.errors()[0]
            raise self.error(tuple(first["loc"]), first["msg"]) from exc
