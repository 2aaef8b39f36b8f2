"""Types shared by every v1 message: version, timestamps, identifiers, backends."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Final

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BeforeValidator,
    Field,
    GetJsonSchemaHandler,
    StringConstraints,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, PydanticCustomError, to_jsonable_python

#: Version of the public contract; every message carries it as ``schema_version``.
SCHEMA_VERSION: Final = 1

#: Base of the ``$id`` of every exported JSON Schema.
SCHEMA_ID_BASE: Final = "https://evalq.internal/schemas/v1/"


class Backend(StrEnum):
    """Remote evaluation services evalq can drive."""

    AGENTCORE = "agentcore"  #: Amazon Bedrock AgentCore batch evaluations
    AYMARA = "aymara"  #: Aymara eval runs
    AGNO = "agno"  #: Agno AgentOS eval runs


def full_match(pattern: str) -> str:
    """Anchor ``pattern`` so it must match the whole string.

    AWS service-model patterns are implicitly anchored; pydantic (like JSON Schema) searches.
    """
    return f"^(?:{pattern})$"


def _to_utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


#: A timezone-aware instant, normalised to UTC; ISO 8601 on the wire.
UtcDatetime = Annotated[AwareDatetime, AfterValidator(_to_utc)]

#: The producer's idempotency key.
RequestId = Annotated[
    str, StringConstraints(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]*$")
]

#: Name of the calling service.
ProducerName = Annotated[
    str, StringConstraints(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9._-]*$")
]

#: Key of a ``correlation`` entry.
CorrelationKey = Annotated[
    str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._:-]+$")
]

#: Value of a ``correlation`` entry: no control characters (C0, DEL, C1).
CorrelationValue = Annotated[
    str, StringConstraints(max_length=256, pattern=r"^[^\x00-\x1F\x7F-\x9F]*$")
]


@dataclass(frozen=True)
class KeyPatternInPropertyNames:
    """``Annotated`` marker for a map whose keys have a pattern.

    pydantic puts the key pattern in ``patternProperties``, which lets JSON Schema
    validators accept keys that do not match it. This moves it to ``propertyNames`` and
    the value schema to ``additionalProperties``, so the schema rejects what evalq rejects.
    """

    def __get_pydantic_json_schema__(
        self, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        schema = handler(core_schema)
        patterns = schema.pop("patternProperties", {})
        if patterns:
            ((pattern, value_schema),) = patterns.items()
            schema["propertyNames"] = {**schema.get("propertyNames", {}), "pattern": pattern}
            schema["additionalProperties"] = value_schema
        return schema


def _none_as_empty_dict(value: Any) -> Any:
    return {} if value is None else value


#: Small str -> str map a producer attaches to a request; echoed back in the outcome.
Correlation = Annotated[
    dict[CorrelationKey, CorrelationValue],
    Field(max_length=32),
    KeyPatternInPropertyNames(),
    BeforeValidator(_none_as_empty_dict),
]


def jsonable(value: Any) -> Any:
    """Turn what boto3 returns into plain JSON values.

    Datetimes become ISO 8601 strings; infinities and NaN (which JSON cannot carry, though
    Python's json module parses and emits them) become ``null``.
    """
    try:
        return to_jsonable_python(value, inf_nan_mode="null")
    except Exception as exc:  # pydantic_core raises a bare PydanticSerializationError
        raise PydanticCustomError(
            "not_json", "Value is not JSON-serialisable: {error}", {"error": str(exc)}
        ) from exc


#: A JSON object; datetimes and other boto3 values are converted to their JSON form.
JsonObject = Annotated[dict[str, Any], BeforeValidator(jsonable)]
