"""The JSON Schemas of the v1 messages, generated from the models and shipped as files.

``python -m api_contracts.schema`` regenerates ``api_contracts/schemas/*.v1.json``;
``python -m api_contracts.schema --check`` exits 1 listing the files that drifted.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode

from api_contracts.cancel import CancelRequest
from api_contracts.common import SCHEMA_ID_BASE
from api_contracts.dead_letter import DeadLetter
from api_contracts.evaluator_update import EvaluatorUpdateOutcome, EvaluatorUpdateRequest
from api_contracts.outcome import EvaluationOutcome
from api_contracts.request import EvaluationRequest

#: Where the generated schemas live (shipped as package data).
SCHEMA_DIR: Final = Path(__file__).parent / "schemas"

#: JSON Schema dialect pydantic generates.
DIALECT: Final = "https://json-schema.org/draft/2020-12/schema"

#: kebab-case name -> model and mode: what producers send is validated, what evalq emits
#: is serialised.
MODELS: Final[dict[str, tuple[type[BaseModel], JsonSchemaMode]]] = {
    "evaluation-request": (EvaluationRequest, "validation"),
    "evaluation-outcome": (EvaluationOutcome, "serialization"),
    "dead-letter": (DeadLetter, "serialization"),
    "evaluator-update-request": (EvaluatorUpdateRequest, "validation"),
    "evaluator-update-outcome": (EvaluatorUpdateOutcome, "serialization"),
    "cancel-request": (CancelRequest, "validation"),
}


def schema_of(name: str) -> dict[str, Any]:
    """JSON Schema of the message ``name`` (a key of :data:`MODELS`)."""
    model, mode = MODELS[name]
    schema = model.model_json_schema(mode=mode)
    schema["$schema"] = DIALECT
    schema["$id"] = f"{SCHEMA_ID_BASE}{name}.json"
    schema["title"] = model.__name__
    return schema


def all_schemas() -> dict[str, dict[str, Any]]:
    """Every message schema by kebab-case name."""
    return {name: schema_of(name) for name in MODELS}


def schema_file(directory: Path, name: str) -> Path:
    return directory / f"{name}.v1.json"


def render(schema: dict[str, Any]) -> str:
    """The file text of ``schema``: indented, sorted keys, trailing newline."""
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def write_schemas(directory: Path = SCHEMA_DIR) -> list[Path]:
    """Write every schema into ``directory``; return the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, schema in all_schemas().items():
        path = schema_file(directory, name)
        path.write_text(render(schema), encoding="utf-8")
        paths.append(path)
    return paths


def drifted_schemas(directory: Path = SCHEMA_DIR) -> list[Path]:
    """Schema files in ``directory`` that are missing or differ from the models."""
    drifted = []
    for name, schema in all_schemas().items():
        path = schema_file(directory, name)
        if not path.is_file() or path.read_text(encoding="utf-8") != render(schema):
            drifted.append(path)
    return drifted


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m api_contracts.schema", description="Regenerate the v1 JSON Schemas."
    )
    parser.add_argument(
        "--check", action="store_true", help="only compare; exit 1 listing drifted files"
    )
    parser.add_argument("--directory", type=Path, default=SCHEMA_DIR, help="schema directory")
    args = parser.parse_args(argv)
    if args.check:
        drifted = drifted_schemas(args.directory)
        for path in drifted:
            print(f"out of date: {path}", file=sys.stderr)
        if drifted:
            print("run: python -m api_contracts.schema", file=sys.stderr)
        return 1 if drifted else 0
    for path in write_schemas(args.directory):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
