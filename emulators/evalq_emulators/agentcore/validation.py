"""Server-side input validation against the service model's constraints.

botocore validates only `required`, types and `min` on the client; the service also
enforces `max`, `pattern`, `enum` and union exclusivity. Patterns in the model are
Smithy patterns with their anchors stripped, so they are applied with `fullmatch`.
"""

from __future__ import annotations

import math
import re
from functools import lru_cache
from typing import Any

from .errors import field_validation_error
from .wire import operation_model

FieldErrors = list[tuple[str, str]]


@lru_cache(maxsize=256)
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def validate_input(operation: str, params: dict[str, Any]) -> None:
    """Raise ValidationException naming every offending field of the request."""
    shape = operation_model(operation).input_shape
    errors: FieldErrors = []
    _check(shape, params, "", errors)
    if errors:
        raise field_validation_error(errors)


def _check(shape: Any, value: Any, path: str, errors: FieldErrors) -> None:
    kind = shape.type_name
    handler = _CHECKS.get(kind)
    if handler is not None:
        handler(shape, value, path, errors)


def _check_structure(shape: Any, value: Any, path: str, errors: FieldErrors) -> None:
    if shape.metadata.get("document"):
        return  # a free-form JSON document (a tool's input): any JSON value
    if not isinstance(value, dict):
        errors.append((path, "Member must be an object"))
        return
    for name in shape.required_members:
        if value.get(name) is None:
            errors.append((_join(path, name), "Member must not be null"))
    present = [k for k, v in value.items() if v is not None and k in shape.members]
    if shape.metadata.get("union") and len(present) != 1:
        errors.append((path, "Member must have exactly one union member set"))
    # Unknown members are ignored, as JSON services do for forward compatibility.
    for name in present:
        _check(shape.members[name], value[name], _join(path, name), errors)


def _check_list(shape: Any, value: Any, path: str, errors: FieldErrors) -> None:
    if not isinstance(value, list):
        errors.append((path, "Member must be a list"))
        return
    _check_length(shape, len(value), path, errors)
    for i, item in enumerate(value):
        _check(shape.member, item, f"{path}.{i + 1}", errors)


def _check_map(shape: Any, value: Any, path: str, errors: FieldErrors) -> None:
    if not isinstance(value, dict):
        errors.append((path, "Member must be a map"))
        return
    _check_length(shape, len(value), path, errors)
    for key, item in value.items():
        _check(shape.key, key, f"{path}.{key}", errors)
        _check(shape.value, item, f"{path}.{key}", errors)


def _check_string(shape: Any, value: Any, path: str, errors: FieldErrors) -> None:
    if not isinstance(value, str):
        errors.append((path, "Member must be a string"))
        return
    _check_length(shape, len(value), path, errors)
    enum = shape.metadata.get("enum")
    if enum and value not in enum:
        errors.append((path, f"Member must satisfy enum value set: [{', '.join(enum)}]"))
    pattern = shape.metadata.get("pattern")
    # Only test the pattern once the length is sane so long inputs cannot blow up.
    max_len = shape.metadata.get("max")
    sane_length = max_len is None or len(value) <= max_len
    if pattern and sane_length and not _compiled(pattern).fullmatch(value):
        errors.append((path, f"Member must satisfy regular expression pattern: {pattern}"))


def _check_integer(shape: Any, value: Any, path: str, errors: FieldErrors) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        errors.append((path, "Member must be an integer"))
        return
    _check_range(shape, value, path, errors)


def _check_number(shape: Any, value: Any, path: str, errors: FieldErrors) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        errors.append((path, "Member must be a number"))
        return
    if not math.isfinite(value):  # Python's json reads NaN and Infinity; JSON has neither
        errors.append((path, "Member must be a finite number"))
        return
    _check_range(shape, value, path, errors)


def _check_range(shape: Any, value: float, path: str, errors: FieldErrors) -> None:
    lo, hi = shape.metadata.get("min"), shape.metadata.get("max")
    if lo is not None and value < lo:
        errors.append((path, f"Member must have value greater than or equal to {lo}"))
    if hi is not None and value > hi:
        errors.append((path, f"Member must have value less than or equal to {hi}"))


def _check_boolean(shape: Any, value: Any, path: str, errors: FieldErrors) -> None:
    if not isinstance(value, bool):
        errors.append((path, "Member must be a boolean"))


def _check_timestamp(shape: Any, value: Any, path: str, errors: FieldErrors) -> None:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        errors.append((path, "Member must be a timestamp"))


def _check_length(shape: Any, length: int, path: str, errors: FieldErrors) -> None:
    lo, hi = shape.metadata.get("min"), shape.metadata.get("max")
    if lo is not None and length < lo:
        errors.append((path, f"Member must have length greater than or equal to {lo}"))
    if hi is not None and length > hi:
        errors.append((path, f"Member must have length less than or equal to {hi}"))


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


_CHECKS = {
    "structure": _check_structure,
    "list": _check_list,
    "map": _check_map,
    "string": _check_string,
    "integer": _check_integer,
    "long": _check_integer,
    "double": _check_number,
    "float": _check_number,
    "boolean": _check_boolean,
    "timestamp": _check_timestamp,
}
