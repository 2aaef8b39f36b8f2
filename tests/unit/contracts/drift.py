"""Compare a pydantic model's JSON Schema with a botocore shape, member by member.

A generic form of what ``test_aws_drift.py`` does for StartBatchEvaluation, for the shapes
added later (UpdateEvaluator's input, InvokeHarness's messages): structures (members,
required, unions), strings (length, pattern, enum), collections (sizes), numbers
(bounds), documents, blobs and booleans.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from api_contracts.common import full_match

#: Member names pydantic cannot use as field names, spelled on the wire by an alias.
ALIASES = {"json": "json"}
_NUMBER_TYPES = {"integer": "integer", "long": "integer", "float": "number", "double": "number"}


@dataclass(frozen=True)
class Node:
    path: tuple[str, ...]
    shape: Any

    @property
    def id(self) -> str:
        return ".".join(self.path) or "(root)"


def walk(
    shape: Any,
    skip: frozenset[str] = frozenset(),
    path: tuple[str, ...] = (),
    ancestors: tuple[str, ...] = (),
) -> Iterator[Node]:
    """Every shape reachable from ``shape``, without the top-level members in ``skip``."""
    yield Node(path, shape)
    if shape.name in ancestors or shape.metadata.get("document"):
        return
    inner = (*ancestors, shape.name)
    if shape.type_name == "structure":
        for name, member in shape.members.items():
            if not path and name in skip:
                continue
            yield from walk(member, skip, (*path, name), inner)
    elif shape.type_name == "list":
        yield from walk(shape.member, skip, (*path, "[]"), inner)
    elif shape.type_name == "map":
        yield from walk(shape.key, skip, (*path, "{key}"), inner)
        yield from walk(shape.value, skip, (*path, "{value}"), inner)


class SchemaView:
    """A model's JSON Schema, navigated by the paths of :func:`walk`."""

    def __init__(self, schema: dict[str, Any]) -> None:
        self.schema = schema

    def deref(self, node: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in node:
            extra = {k: v for k, v in node.items() if k != "$ref"}
            node = {**self.schema["$defs"][node["$ref"].rsplit("/", 1)[1]], **extra}
        non_null = [b for b in node.get("anyOf", []) if b != {"type": "null"}]
        if len(non_null) == 1 and len(node["anyOf"]) == 2:
            return self.deref({**{k: v for k, v in node.items() if k != "anyOf"}, **non_null[0]})
        return node

    def at(self, path: tuple[str, ...]) -> dict[str, Any]:
        node = self.deref(self.schema)
        for part in path:
            if part == "[]":
                node = node["items"]
            elif part == "{key}":
                node = {"type": "string", **node.get("propertyNames", {})}
            elif part == "{value}":
                node = node["additionalProperties"]
            else:
                node = node["properties"][ALIASES.get(part, part)]
            node = self.deref(node)
        return node


def problems(view: SchemaView, node: Node, skip: frozenset[str] = frozenset()) -> list[str]:
    """Where the JSON Schema at ``node.path`` says something else than the AWS shape."""
    schema, shape, meta = view.at(node.path), node.shape, dict(node.shape.metadata)
    out: list[str] = []

    def expect(what: str, got: Any, want: Any) -> None:
        if got != want:
            out.append(f"{node.id}: {what} is {got!r}, AWS says {want!r}")

    kind = shape.type_name
    if meta.get("document"):
        expect("type of a document", schema.get("type"), None)
        return out
    if kind == "structure":
        members = set(shape.members) - (skip if not node.path else set())
        required = set(shape.required_members) - (skip if not node.path else set())
        expect("members", set(schema.get("properties", {})), members)
        expect("required", set(schema.get("required", [])), required)
        expect("additionalProperties", schema.get("additionalProperties"), False)
        if shape.is_tagged_union:
            expect("union size", (schema.get("minProperties"), schema.get("maxProperties")), (1, 1))
    elif kind in ("string", "blob"):
        expect("type", schema.get("type"), "string")
        if kind == "string":
            expect("minLength", schema.get("minLength", 0), meta.get("min", 0))
            expect("maxLength", schema.get("maxLength"), meta.get("max"))
            pattern = full_match(meta["pattern"]) if "pattern" in meta else None
            expect("pattern", schema.get("pattern"), pattern)
            expect("enum", schema.get("enum"), shape.enum or None)
    elif kind in ("list", "map"):
        words = ("minItems", "maxItems") if kind == "list" else ("minProperties", "maxProperties")
        expect("type", schema.get("type"), "array" if kind == "list" else "object")
        expect(words[0], schema.get(words[0], 0), meta.get("min", 0))
        expect(words[1], schema.get(words[1]), meta.get("max"))
    elif kind in _NUMBER_TYPES:
        types = {b.get("type") for b in schema.get("anyOf", [schema])}
        if _NUMBER_TYPES[kind] == "integer":
            expect("type", types, {"integer"})
        else:
            expect("type", types <= {"integer", "number"} and "number" in types, True)
        for branch in schema.get("anyOf", [schema]):
            expect("minimum", branch.get("minimum"), meta.get("min"))
            expect("maximum", branch.get("maximum"), meta.get("max"))
    elif kind == "boolean":
        expect("type", schema.get("type"), "boolean")
    else:
        out.append(f"{node.id}: no drift check for {kind} shapes")
    return out
