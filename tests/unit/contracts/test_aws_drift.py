"""AgentCoreEvaluation against the botocore model of StartBatchEvaluation.

When boto3's model changes (a new member, another limit or pattern), one of these fails.
Each AWS constraint is checked twice: in the generated JSON Schema (what producers in
other languages see) and by validating values at and past the limit (what evalq enforces).
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from api_contracts import AgentCoreEvaluation, describe_validation_error
from api_contracts.common import full_match

from . import aws_model as aws

NODES = list(aws.walk())
SCHEMA = AgentCoreEvaluation.model_json_schema()


def _deref(node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        extra = {k: v for k, v in node.items() if k != "$ref"}
        node = {**SCHEMA["$defs"][node["$ref"].rsplit("/", 1)[1]], **extra}
    non_null = [branch for branch in node.get("anyOf", []) if branch != {"type": "null"}]
    if non_null:
        (branch,) = non_null
        return _deref(branch)
    return node


def json_schema_at(path: tuple[str, ...]) -> dict[str, Any]:
    node = _deref(SCHEMA)
    for part in path:
        if part == "[]":
            node = node["items"]
        elif part == "{key}":
            node = {"type": "string", **node.get("propertyNames", {})}
        elif part == "{value}":
            node = node["additionalProperties"]
        else:
            node = node["properties"][part]
        node = _deref(node)
    return node


def _nodes(*kinds: str, having: tuple[str, ...] = ()) -> list[aws.Node]:
    return [
        n
        for n in NODES
        if n.shape.type_name in kinds and (not having or any(k in n.meta for k in having))
    ]


def _ids(nodes: list[aws.Node]) -> list[str]:
    return [n.id for n in nodes]


def _problems(data: Any) -> str | None:
    try:
        AgentCoreEvaluation.model_validate(data)
    except ValidationError as exc:
        return describe_validation_error(exc)
    return None


def assert_accepted(data: Any) -> None:
    problems = _problems(data)
    assert problems is None, problems


def assert_rejected_at(data: Any, dotted: str) -> None:
    problems = _problems(data)
    assert problems is not None, f"expected a problem at {dotted}"
    assert any(line.startswith(f"{dotted}: ") for line in problems.splitlines()), problems


# --- the model is what this file walks ---------------------------------------------------


def test_walk_covers_the_whole_input_shape() -> None:
    top = set(aws.input_shape().members) - aws.FORBIDDEN_MEMBERS
    assert {n.path[0] for n in NODES if n.path} == top
    assert len(_nodes("list", "map", "string", having=("min", "max", "pattern"))) >= 25


# --- JSON Schema: every member, limit, pattern, enum and union as in the AWS model -------


@pytest.mark.parametrize("node", _nodes("structure"), ids=_ids(_nodes("structure")))
def test_structure_members_and_required_match(node: aws.Node) -> None:
    schema = json_schema_at(node.path)
    members = set(node.shape.members)
    required = set(node.shape.required_members)
    if not node.path:
        members -= aws.FORBIDDEN_MEMBERS
        required -= aws.OPTIONAL_IN_EVALQ | aws.FORBIDDEN_MEMBERS
    assert set(schema["properties"]) == members
    assert set(schema.get("required", [])) == required
    assert schema["additionalProperties"] is False
    if node.shape.is_tagged_union:
        assert (schema.get("minProperties"), schema.get("maxProperties")) == (1, 1)
    else:
        assert "minProperties" not in schema
        assert "maxProperties" not in schema


STRINGS = _nodes("string")


@pytest.mark.parametrize("node", STRINGS, ids=_ids(STRINGS))
def test_string_limits_pattern_and_enum_match(node: aws.Node) -> None:
    schema = json_schema_at(node.path)
    meta = node.meta
    assert schema["type"] == "string"
    assert schema.get("minLength", 0) == meta.get("min", 0)
    assert schema.get("maxLength") == meta.get("max")
    expected_pattern = full_match(meta["pattern"]) if "pattern" in meta else None
    assert schema.get("pattern") == expected_pattern
    assert schema.get("enum") == (node.shape.enum or None)


COLLECTIONS = _nodes("list", "map")


@pytest.mark.parametrize("node", COLLECTIONS, ids=_ids(COLLECTIONS))
def test_collection_sizes_match(node: aws.Node) -> None:
    schema = json_schema_at(node.path)
    words = (
        ("minItems", "maxItems")
        if node.shape.type_name == "list"
        else (
            "minProperties",
            "maxProperties",
        )
    )
    assert schema.get(words[0], 0) == node.meta.get("min", 0)
    assert schema.get(words[1]) == node.meta.get("max")


TIMESTAMPS = _nodes("timestamp")


@pytest.mark.parametrize("node", TIMESTAMPS, ids=_ids(TIMESTAMPS))
def test_timestamps_are_iso_strings(node: aws.Node) -> None:
    schema = json_schema_at(node.path)
    assert (schema["type"], schema["format"]) == ("string", "date-time")


def test_no_unmodelled_types() -> None:
    kinds = {n.shape.type_name for n in NODES}
    assert kinds <= {"structure", "list", "map", "string", "timestamp"}, kinds


# --- behaviour: values at and one past every limit --------------------------------------


def _sized_collection(node: aws.Node, n: int) -> Any:
    if node.shape.type_name == "list":
        return [aws.minimal(node.shape.member) for _ in range(n)]
    keys = [f"k{i}" for i in range(n)]
    assert all(aws.matches_aws(node.shape.key, key) for key in keys)
    return {key: aws.minimal(node.shape.value) for key in keys}


SIZED = _nodes("list", "map", having=("min", "max"))


@pytest.mark.parametrize("node", SIZED, ids=_ids(SIZED))
def test_collection_sizes_enforced(node: aws.Node) -> None:
    low, high = node.meta.get("min", 0), node.meta.get("max")
    dotted = aws.error_path(node.path)
    assert_accepted(aws.document(node.path, _sized_collection(node, low)))
    if low > 0:
        assert_rejected_at(aws.document(node.path, _sized_collection(node, low - 1)), dotted)
    if high is not None:
        assert_accepted(aws.document(node.path, _sized_collection(node, high)))
        assert_rejected_at(aws.document(node.path, _sized_collection(node, high + 1)), dotted)


LENGTHS = _nodes("string", having=("min", "max"))


def _length_cases(node: aws.Node) -> list[tuple[int, bool]]:
    low, high = node.meta.get("min", 0), node.meta.get("max")
    cases = [(low, True)] + ([(low - 1, False)] if low > 0 else [])
    if high is not None:
        cases += [(high, True), (high + 1, False)]
    return cases


@pytest.mark.parametrize("node", LENGTHS, ids=_ids(LENGTHS))
def test_string_lengths_enforced(node: aws.Node) -> None:
    checked = 0
    for length, valid in _length_cases(node):
        value = aws.string_of_length(node.shape, length)
        if value is None:  # no string of this length matches the pattern at all
            continue
        assert len(value) == length
        assert aws.matches_aws(node.shape, value) is valid, (length, value[:40])
        data = aws.document(node.path, value)
        if valid:
            assert_accepted(data)
        else:
            assert_rejected_at(data, aws.error_path(node.path, value))
        checked += 1
    assert checked >= 2


ENUMS = [n for n in STRINGS if n.shape.enum]


@pytest.mark.parametrize("node", ENUMS, ids=_ids(ENUMS))
def test_enums_enforced(node: aws.Node) -> None:
    for value in node.shape.enum:
        assert_accepted(aws.document(node.path, value))
    assert_rejected_at(
        aws.document(node.path, node.shape.enum[0].lower()), aws.error_path(node.path)
    )


STRUCTURES = _nodes("structure")


@pytest.mark.parametrize("node", STRUCTURES, ids=_ids(STRUCTURES))
def test_required_members_and_unions_enforced(node: aws.Node) -> None:
    minimal = aws.minimal(node.shape)
    dotted = aws.error_path(node.path)
    assert_accepted(aws.document(node.path, minimal))
    for name in node.shape.required_members:
        if not node.path and name in aws.OPTIONAL_IN_EVALQ | aws.FORBIDDEN_MEMBERS:
            continue
        missing = {k: v for k, v in minimal.items() if k != name}
        assert_rejected_at(aws.document(node.path, missing), aws.error_path((*node.path, name)))
    unknown = {**minimal, "notAMember": 1}
    assert_rejected_at(aws.document(node.path, unknown), aws.error_path((*node.path, "notAMember")))
    if node.shape.is_tagged_union:
        assert_rejected_at(aws.document(node.path, {}), dotted)
        everything = {m: aws.minimal(s) for m, s in node.shape.members.items()}
        if len(everything) > 1:
            assert_rejected_at(aws.document(node.path, everything), dotted)
        for member, shape in node.shape.members.items():
            assert_accepted(aws.document(node.path, {member: aws.minimal(shape)}))


def test_the_only_absent_aws_member_is_rejected() -> None:
    data = aws.document((), aws.minimal(aws.input_shape()))
    for member in aws.FORBIDDEN_MEMBERS:
        assert_rejected_at({**data, member: "a" * 40}, member)


# --- behaviour: patterns accept exactly what the AWS pattern accepts --------------------

PATTERNS = _nodes("string", having=("pattern",))

#: Python's ``\s`` also matches U+001C..U+001F; AWS (ECMA 262) and pydantic (Rust) do not.
_PY_ONLY_WHITESPACE = re.compile("[\x1c-\x1f]")
_JUNK = st.text(
    alphabet=st.sampled_from("aZ09._-:/#+=@*$ \tébB-_\u00a0:arnws"), min_size=0, max_size=80
)


@pytest.mark.parametrize("node", PATTERNS, ids=_ids(PATTERNS))
@settings(
    max_examples=40, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(data=st.data())
def test_patterns_enforced_like_aws(node: aws.Node, data: st.DataObject) -> None:
    regex = node.meta["pattern"]
    value = data.draw(
        st.one_of(st.from_regex(regex, fullmatch=True), _JUNK).filter(
            lambda s: not _PY_ONLY_WHITESPACE.search(s)
        )
    )
    doc = aws.document(node.path, value)
    if aws.matches_aws(node.shape, value):
        assert_accepted(doc)
    else:
        assert_rejected_at(doc, aws.error_path(node.path, value))
