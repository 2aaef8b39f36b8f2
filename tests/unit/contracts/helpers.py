"""Assertions shared by the contract tests."""

from __future__ import annotations

import copy
from typing import Any

from pydantic import BaseModel, ValidationError

from api_contracts import describe_validation_error
from api_contracts.examples import sample_request


def problems(model: type[BaseModel], data: Any) -> str | None:
    """``describe_validation_error`` of validating ``data``, or None when it is valid."""
    try:
        model.model_validate(data)
    except ValidationError as exc:
        return describe_validation_error(exc)
    return None


def assert_valid(model: type[BaseModel], data: Any) -> None:
    found = problems(model, data)
    assert found is None, found


def assert_rejected(model: type[BaseModel], data: Any, path: str, *, within: bool = False) -> str:
    """``data`` is rejected and a problem line names the dotted ``path`` (or, ``within``, a
    path inside it); returns the problem lines."""
    found = problems(model, data)
    assert found is not None, f"expected {path} to be rejected"
    prefixes = (f"{path}: ", f"{path}.") if within else (f"{path}: ",)
    assert any(line.startswith(prefixes) for line in found.splitlines()), found
    return found


def request_with(path: str, value: Any) -> dict[str, Any]:
    """The sample request with ``value`` set at dotted ``path`` (dicts created as needed)."""
    request = copy.deepcopy(sample_request())
    *parents, last = path.split(".")
    node: Any = request
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node.setdefault(part, {})
    node[last] = value
    return request


def request_without(path: str) -> dict[str, Any]:
    request = copy.deepcopy(sample_request())
    *parents, last = path.split(".")
    node: Any = request
    for part in parents:
        node = node[part]
    del node[last]
    return request
