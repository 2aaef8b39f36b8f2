"""The exception that carries a modeled AWS error from the model layer to the wire."""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """A modeled service error; `code` is an error shape name of the service model."""

    def __init__(self, code: str, message: str, **fields: Any) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        # Extra members of the error shape, e.g. ValidationException's reason/fieldList.
        self.fields = fields


def validation_error(
    message: str,
    field_errors: list[tuple[str, str]] | None = None,
    reason: str = "FieldValidationFailed",
) -> ApiError:
    """ValidationException with the `reason` and `fieldList` members the model defines."""
    return ApiError(
        "ValidationException",
        message,
        reason=reason,
        fieldList=[{"name": n, "message": m} for n, m in (field_errors or [])],
    )


def field_validation_error(errors: list[tuple[str, str]]) -> ApiError:
    """ValidationException worded like AWS: "N validation error(s) detected: Value at ..."."""
    parts = [f"Value at '{name}' failed to satisfy constraint: {msg}" for name, msg in errors]
    noun = "error" if len(errors) == 1 else "errors"
    return validation_error(
        f"{len(errors)} validation {noun} detected: " + "; ".join(parts), errors
    )


def not_found(batch_evaluation_id: str) -> ApiError:
    return ApiError(
        "ResourceNotFoundException", f"Batch evaluation {batch_evaluation_id} not found"
    )


def conflict(message: str) -> ApiError:
    return ApiError("ConflictException", message)


def quota_exceeded(message: str) -> ApiError:
    return ApiError("ServiceQuotaExceededException", message)


def throttled(operation: str) -> ApiError:
    return ApiError("ThrottlingException", f"Rate exceeded for {operation}")
