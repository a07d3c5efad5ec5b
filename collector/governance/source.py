"""YAML documents with the line of every key, so rule and test problems can say file:line."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import yaml


class _Loader(yaml.SafeLoader):
    """Safe loader refusing duplicate keys (at the second one's line).

    Pure Python on purpose: libyaml's composer recurses in C and crashes the process on
    deeply nested input, where this one raises RecursionError.
    """

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep)
        except (yaml.YAMLError, RecursionError):
            raise
        except Exception as exc:  # PyYAML leaks built-in errors: 2026-02-30, !!bool x, ...
            raise _invalid(node, exc) from None

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        if not isinstance(node, yaml.MappingNode):  # `!!set [a]`: the base class says so
            return super().construct_mapping(node, deep)
        seen: set[object] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            try:
                duplicate = key in seen
            except TypeError:  # unhashable: the base class reports it with its mark
                continue
            if duplicate:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep)


def read_documents(text: str) -> Iterator[tuple[yaml.Node, object]]:
    """Each YAML document as (node, value); raises yaml.YAMLError where the text breaks."""
    loader = _Loader(text)
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is not None:
                yield node, _construct(loader, node)
    finally:
        loader.dispose()


def _construct(loader: _Loader, node: yaml.Node) -> object:
    try:
        return loader.construct_document(node)
    except (yaml.YAMLError, RecursionError):
        raise
    except Exception as exc:  # deferred constructors (sets, pairs) leak built-in errors too
        raise _invalid(node, exc) from None


def _invalid(node: yaml.Node, exc: Exception) -> yaml.YAMLError:
    kind = node.tag.rpartition(":")[2]
    return yaml.constructor.ConstructorError(None, None, f"invalid {kind}: {exc}", node.start_mark)


def yaml_problem(label: str, text: str, exc: yaml.YAMLError) -> str:
    """'file:line: yaml: reason' for a YAML error."""
    line, reason = yaml_error(text, exc)
    return f"{label}:{line}: yaml: {reason}"


def yaml_error(text: str, exc: yaml.YAMLError) -> tuple[int, str]:
    """The line and reason of a YAML error, whatever kind PyYAML raised."""
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        return line, ", ".join(part for part in (exc.context, exc.problem) if part) or str(exc)
    if isinstance(exc, yaml.reader.ReaderError):
        line = text.count("\n", 0, exc.position) + 1
        return line, f"{exc.reason} (character {exc.character!r})"
    return 1, str(exc)


@dataclass(frozen=True)
class Where:
    """Lines of a document's keys by dotted path ('detection.sel.file.path|contains')."""

    label: str
    line: int
    lines: dict[str, int] = field(default_factory=dict)

    @classmethod
    def of(cls, label: str, node: yaml.Node, depth: int = 3) -> Where:
        where = cls(label, node.start_mark.line + 1)
        where._collect(node, "", depth, set())
        return where

    def _collect(self, node: yaml.Node, prefix: str, depth: int, seen: set[int]) -> None:
        # Aliases share nodes: visit each once, or a walk could grow like the alias
        # expansion ("billion laughs") that pySigma refuses.
        if depth == 0 or id(node) in seen:
            return
        seen.add(id(node))
        if isinstance(node, yaml.SequenceNode):
            for item in node.value:
                if isinstance(item, yaml.MappingNode):  # not nested lists: their depth is free
                    self._collect(item, prefix, depth, seen)
        if not isinstance(node, yaml.MappingNode):
            return
        for key_node, value_node in node.value:
            if isinstance(key_node, yaml.ScalarNode):
                path = prefix + str(key_node.value)
                self.lines.setdefault(path, key_node.start_mark.line + 1)
                self._collect(value_node, path + ".", depth - 1, seen)

    def line_of(self, path: str) -> str:
        """'file:line' of the nearest key on `path` that the document has."""
        probe = path
        while probe and probe not in self.lines:
            probe = probe.rpartition(".")[0]
        return f"{self.label}:{self.lines.get(probe, self.line)}"

    def at(self, path: str) -> str:
        """'file:line: path: ', the start of a problem about `path`."""
        return f"{self.line_of(path)}: {path}: "

    def field_path(self, field_name: str) -> str:
        """The first detection key on `field_name` ('detection.sel.x|re'), else 'detection'."""
        for path in self.lines:
            parts = path.split(".", 2)
            if len(parts) < 3 or parts[0] != "detection":
                continue
            if parts[2] == field_name or parts[2].startswith(field_name + "|"):
                return path
        return "detection"
