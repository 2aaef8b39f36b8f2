"""The botocore model of StartBatchEvaluation, walked to drive the drift tests.

Paths are tuples of member names plus ``"[]"`` (a list item), ``"{key}"`` and ``"{value}"``
(a map key or value).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import boto3

from api_contracts.errors import field_path

#: Members of the AWS input that evalq does not take from producers.
FORBIDDEN_MEMBERS = frozenset({"clientToken"})
#: Members AWS requires that evalq makes optional (it derives them).
OPTIONAL_IN_EVALQ = frozenset({"batchEvaluationName"})

#: Key used when a test places a value inside a map.
MAP_KEY = "k"

#: A valid value for every string shape that has a constraint (and a generic one for
#: "String"). A new constrained shape in the AWS model fails the tests until it is listed.
VALID_STRINGS: dict[str, str] = {
    "String": "s",
    "BatchEvaluationName": "evalq_test",
    "EvaluatorId": "Builtin.Helpfulness",
    "InsightId": "Builtin.Summary",
    "LogGroupName": "/aws/bedrock-agentcore/runtimes/agent",
    "LogGroupNamePrefix": "/aws/bedrock-agentcore/",
    "TraceId": "0123456789abcdef0123456789abcdef",
    "OnlineEvaluationConfigArn": (
        "arn:aws:bedrock-agentcore:us-east-1:123456789012:online-evaluation-config/"
        "my_config-abcdefghij"
    ),
    "EvaluationContentTextString": "The answer cites a source.",
    "EvaluationToolName": "search",
    "GroundTruthTurnInputPromptString": "What is the weather?",
    "TagKey": "team",
    "TagValue": "evals",
    "KmsKeyArn": "arn:aws:kms:us-east-1:123456789012:key/12345678-1234-1234-1234-123456789012",
    "BatchEvaluationDescription": "nightly",
    "OptionalLogGroupName": "/evalq/results",
    "LogStreamName": "stream-1",
    "MetricsNamespace": "Evalq/Nightly",
    "ResultDestination": "DEDICATED_LOG_GROUP",
    "DatasetId": "dataset_1",
    "DatasetVersion": "DRAFT",
    "AgentRuntimeEndpointArn": (
        "arn:aws:bedrock-agentcore:us-east-1:123456789012:runtime/my_agent-abcdefghij/"
        "runtime-endpoint/DEFAULT"
    ),
    "RequestTemplate": "{}",
}

#: An ISO 8601 timestamp for timestamp shapes.
TIMESTAMP = "2025-06-01T12:00:00Z"


def _kms_arn(n: int) -> str | None:
    head, tail = "arn:aws:kms:", ":123456789012:key/12345678-1234-1234-1234-123456789012"
    region = n - len(head) - len(tail)
    return None if region < 0 else head + "a" * region + tail


#: Strings of an exact length that match the shape's pattern (None: impossible).
PATTERNED_FILLERS: dict[str, Callable[[int], str | None]] = {
    "EvaluatorId": lambda n: "Builtin." + "a" * (n - 8) if n > 8 else None,
    "LogGroupNamePrefix": lambda n: "a" * n,
    "TagKey": lambda n: "a" * n,
    "TagValue": lambda n: "a" * n,
    "KmsKeyArn": _kms_arn,
    "MetricsNamespace": lambda n: "a" * n,
    "DatasetVersion": lambda n: "1" * n,
}


@functools.cache
def input_shape() -> Any:
    client = boto3.client("bedrock-agentcore", region_name="us-east-1")
    return client.meta.service_model.operation_model("StartBatchEvaluation").input_shape


@dataclass(frozen=True)
class Node:
    path: tuple[str, ...]
    shape: Any

    @property
    def meta(self) -> dict[str, Any]:
        return dict(self.shape.metadata)

    @property
    def id(self) -> str:
        return ".".join(self.path) or "(input)"


def walk(
    shape: Any = None, path: tuple[str, ...] = (), ancestors: tuple[str, ...] = ()
) -> Iterator[Node]:
    """Every shape reachable from the input (excluding forbidden members), depth first."""
    shape = input_shape() if shape is None else shape
    yield Node(path, shape)
    if shape.name in ancestors:  # a recursive shape: its members were walked above
        return
    inner = (*ancestors, shape.name)
    if shape.type_name == "structure":
        for name, member in shape.members.items():
            if not path and name in FORBIDDEN_MEMBERS:
                continue
            yield from walk(member, (*path, name), inner)
    elif shape.type_name == "list":
        yield from walk(shape.member, (*path, "[]"), inner)
    elif shape.type_name == "map":
        yield from walk(shape.key, (*path, "{key}"), inner)
        yield from walk(shape.value, (*path, "{value}"), inner)


def shape_at(path: tuple[str, ...]) -> Any:
    shape = input_shape()
    for part in path:
        if part == "[]":
            shape = shape.member
        elif part == "{key}":
            shape = shape.key
        elif part == "{value}":
            shape = shape.value
        else:
            shape = shape.members[part]
    return shape


def valid_string(shape: Any) -> str:
    if shape.name not in VALID_STRINGS:
        raise AssertionError(f"add a valid example of AWS shape {shape.name} to VALID_STRINGS")
    value = VALID_STRINGS[shape.name]
    assert matches_aws(shape, value), (shape.name, value)
    return value


def string_of_length(shape: Any, n: int) -> str | None:
    """A string of length ``n`` that matches ``shape``'s pattern, if one is known."""
    if "pattern" not in shape.metadata:
        return "a" * n
    if shape.name not in PATTERNED_FILLERS:
        raise AssertionError(f"add a filler for AWS shape {shape.name} to PATTERNED_FILLERS")
    return PATTERNED_FILLERS[shape.name](n)


def aws_regex(shape: Any) -> re.Pattern[str]:
    return re.compile(shape.metadata["pattern"])


def matches_aws(shape: Any, value: str) -> bool:
    """Whether AWS accepts ``value`` for the string ``shape`` (pattern, length, enum)."""
    meta = shape.metadata
    if shape.enum:
        return value in shape.enum
    if not meta.get("min", 0) <= len(value) <= meta.get("max", len(value)):
        return False
    return "pattern" not in meta or aws_regex(shape).fullmatch(value) is not None


def minimal(shape: Any) -> Any:
    """A smallest valid value of ``shape``."""
    kind = shape.type_name
    if kind == "structure":
        if shape.is_tagged_union:
            first = next(iter(shape.members))
            return {first: minimal(shape.members[first])}
        return {
            name: minimal(shape.members[name])
            for name in shape.required_members
            if name not in FORBIDDEN_MEMBERS
        }
    if kind == "list":
        return [minimal(shape.member) for _ in range(shape.metadata.get("min", 0))]
    if kind == "map":
        return {}
    if kind == "timestamp":
        return TIMESTAMP
    if kind == "string":
        return valid_string(shape)
    raise AssertionError(f"no minimal value for {kind} shape {shape.name}")


def document(path: tuple[str, ...], value: Any, shape: Any = None) -> Any:
    """A minimal valid input with ``value`` placed at ``path``."""
    shape = input_shape() if shape is None else shape
    if not path:
        return value
    head, rest = path[0], path[1:]
    if head == "[]":
        return [document(rest, value, shape.member)]
    if head == "{key}":
        return {document(rest, value, shape.key): minimal(shape.value)}
    if head == "{value}":
        return {MAP_KEY: document(rest, value, shape.value)}
    doc = {} if shape.is_tagged_union else minimal(shape)
    doc[head] = document(rest, value, shape.members[head])
    return doc


def error_path(path: tuple[str, ...], value: Any = None) -> str:
    """The dotted path ``describe_validation_error`` names for a problem at ``path``."""
    loc: list[str | int] = []
    for part in path:
        if part == "[]":
            loc.append(0)
        elif part == "{value}":
            loc.append(MAP_KEY)
        elif part == "{key}":
            loc.extend([str(value), "[key]"])
        else:
            loc.append(part)
    return field_path(loc)
