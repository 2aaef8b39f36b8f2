"""rest-json wire format of bedrock-agentcore and bedrock-agentcore-control, derived from
botocore's service models.

Routes, status codes, error statuses and timestamp formats are all read from the
models botocore ships, so the emulator answers exactly what the real clients expect.
Both services are served on one port: their routes do not overlap.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache, lru_cache
from typing import Any
from urllib.parse import unquote

import botocore.session

from ..common.messages import Reply
from .config import DATA_PLANE, OPERATIONS, SERVICE_OF
from .errors import ApiError, validation_error

SERVICE_NAME = DATA_PLANE
# rest-json bodies default to epoch seconds when a shape names no timestampFormat.
_DEFAULT_BODY_TIMESTAMP_FORMAT = "unixTimestamp"


@cache
def service_model(service: str = SERVICE_NAME) -> Any:
    """The botocore model of ``service`` (loaded once; read-only afterwards)."""
    return botocore.session.get_session().get_service_model(service)


def operation_model(operation: str) -> Any:
    """The botocore model of an operation the emulator serves, from its own service."""
    return service_model(SERVICE_OF[operation]).operation_model(operation)


@lru_cache(maxsize=1)
def error_names() -> frozenset[str]:
    """Every error shape the served services define (the names boto3 turns into exceptions)."""
    services = set(SERVICE_OF.values())
    return frozenset(s.name for name in services for s in service_model(name).error_shapes)


@dataclass(frozen=True)
class Route:
    service: str
    operation: str
    method: str
    pattern: re.Pattern[str]
    status: int


@lru_cache(maxsize=1)
def routes() -> tuple[Route, ...]:
    """Turn each operation's `requestUri` template into a path regex."""
    out = []
    for name in OPERATIONS:
        op = operation_model(name)
        uri = op.http["requestUri"].split("?", 1)[0]
        regex = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(uri))
        out.append(
            Route(
                service=SERVICE_OF[name],
                operation=name,
                method=op.http["method"],
                pattern=re.compile(regex + "/?"),
                status=int(op.http.get("responseCode", 200)),
            )
        )
    # Longest templates first so `/{id}/stop` is not swallowed by `/{id}`.
    return tuple(sorted(out, key=lambda r: -len(r.pattern.pattern)))


def route_of(operation: str) -> Route:
    (found,) = [r for r in routes() if r.operation == operation]
    return found


def match_route(method: str, path: str) -> tuple[Route, dict[str, str]] | None:
    for route in routes():
        m = route.pattern.fullmatch(path)
        if m and route.method == method:
            return route, {k: unquote(v) for k, v in m.groupdict().items()}
    return None


def path_exists(path: str) -> bool:
    """True when some operation serves this path (so a wrong method is a 405, not a 404)."""
    return any(r.pattern.fullmatch(path) for r in routes())


def parse_request(
    operation: str,
    uri_params: dict[str, str],
    qs: Mapping[str, list[str]],
    body: bytes,
    headers: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Rebuild the operation's input parameters from URI, query string (parsed), headers
    and body."""
    shape = operation_model(operation).input_shape
    lowered = {k.lower(): v for k, v in (headers or {}).items()}
    params: dict[str, Any] = {}
    has_body_members = False
    for name, member in shape.members.items():
        location = member.serialization.get("location")
        wire_name = member.serialization.get("name", name)
        if location == "uri":
            if wire_name in uri_params:
                params[name] = uri_params[wire_name]
        elif location == "querystring":
            if wire_name in qs:
                params[name] = _parse_scalar(name, member, qs[wire_name][-1])
        elif location == "header":
            if wire_name.lower() in lowered:
                params[name] = lowered[wire_name.lower()]
        elif location is None:
            has_body_members = True
    if has_body_members and body.strip():
        try:
            doc = json.loads(body)
        except ValueError as exc:
            raise validation_error(
                f"Could not parse request body: {exc}", reason="CannotParse"
            ) from exc
        if not isinstance(doc, dict):
            raise validation_error("Request body must be a JSON object", reason="CannotParse")
        params.update(doc)
    return params


def _parse_scalar(name: str, shape: Any, raw: str) -> Any:
    if shape.type_name in ("integer", "long"):
        try:
            return int(raw)
        except ValueError as exc:
            raise validation_error(
                f"{name} must be an integer", [(name, "must be an integer")], reason="CannotParse"
            ) from exc
    return raw


def format_timestamp(value: float | datetime, fmt: str) -> Any:
    """Render an epoch/datetime in the format a shape asks for."""
    dt = value if isinstance(value, datetime) else datetime.fromtimestamp(value, tz=UTC)
    dt = dt.astimezone(UTC)
    if fmt == "iso8601":
        # Millisecond precision with a literal Z, as AWS services emit.
        return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"
    if fmt == "rfc822":
        return dt.strftime("%a, %d %b %Y %H:%M:%S GMT")
    return round(dt.timestamp(), 3)


def encode_shape(shape: Any, value: Any, path: str = "") -> Any:
    """Serialize a Python value into the JSON form of `shape`.

    Unknown structure members raise, so an emulator bug can never leak a field the
    real service would not send.
    """
    kind = shape.type_name
    if kind == "structure":
        if not isinstance(value, dict):
            raise TypeError(f"{path or shape.name}: expected dict")
        out: dict[str, Any] = {}
        for key, item in value.items():
            if item is None:
                continue
            if key not in shape.members:
                raise KeyError(f"{shape.name} has no member {key!r}")
            member = shape.members[key]
            out[member.serialization.get("name", key)] = encode_shape(
                member, item, f"{path}.{key}" if path else key
            )
        return out
    if kind == "list":
        return [encode_shape(shape.member, v, f"{path}[]") for v in value]
    if kind == "map":
        return {str(k): encode_shape(shape.value, v, f"{path}.{k}") for k, v in value.items()}
    if kind == "timestamp":
        if isinstance(value, str):
            return value
        fmt = shape.serialization.get("timestampFormat", _DEFAULT_BODY_TIMESTAMP_FORMAT)
        return format_timestamp(value, fmt)
    return value


def _json_headers(body: bytes) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "Content-Length": str(len(body)),
        "x-amzn-RequestId": str(uuid.uuid4()),
    }


def encode_output(operation: str, output: dict[str, Any]) -> Reply:
    shape = operation_model(operation).output_shape
    body = json.dumps(encode_shape(shape, output)).encode()
    return Reply(route_of(operation).status, headers=_json_headers(body), raw=body)


def _error_shape(code: str, service: str) -> Any:
    """The error shape ``code`` of ``service``, else of the other served service."""
    for name in (service, *sorted(set(SERVICE_OF.values()) - {service})):
        model = service_model(name)
        if code in {s.name for s in model.error_shapes}:
            return model.shape_for(code)
    raise KeyError(code)


def error_status(code: str, service: str = SERVICE_NAME) -> int:
    shape = _error_shape(code, service)
    return int(shape.metadata["error"]["httpStatusCode"])


def encode_error(err: ApiError, fallback_status: int = 400, service: str = SERVICE_NAME) -> Reply:
    """The error shape's HTTP status, `x-amzn-ErrorType` header and JSON members."""
    doc: dict[str, Any] = {"message": err.message, **err.fields}
    if err.code in error_names():
        shape = _error_shape(err.code, service)
        status = int(shape.metadata["error"]["httpStatusCode"])
        payload = encode_shape(shape, doc)
    else:
        # Transport-level errors (unknown path) that the model does not describe.
        status = fallback_status
        payload = doc
    body = json.dumps(payload).encode()
    headers = _json_headers(body)
    headers["x-amzn-ErrorType"] = err.code
    return Reply(status, headers=headers, raw=body)
