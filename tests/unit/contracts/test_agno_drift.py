"""AgnoEvaluation against AgentOS's own request model and route (the ``agno`` package).

The body members must be exactly ``EvalRunInput``'s, with the same types, the same
required ones and the same limits (evalq may be stricter only where
api_contracts/agno.py says so); ``db_id`` and ``table`` must be query parameters of
``POST /eval-runs``. A new agno that adds, removes or retypes a member fails here.
"""

from __future__ import annotations

import enum
import types
import typing
from typing import Any, Literal, Union

import annotated_types
from agno.os.routers.evals.evals import get_eval_router
from agno.os.routers.evals.schemas import EvalRunInput
from pydantic import BaseModel, StringConstraints
from pydantic.fields import FieldInfo

from api_contracts import AgnoEvaluation

#: Members that go in the query string, not the body.
QUERY = frozenset({"db_id", "table"})
#: Limits evalq adds to AgentOS's (an empty id would be read as no id at all).
STRICTER = {"agent_id": {"min_length": 1}, "team_id": {"min_length": 1}}


def describe(tp: Any) -> Any:
    """A comparable description of a type, the same for agno's and evalq's spelling."""
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        return describe(typing.get_args(tp)[0])
    if origin in (Union, types.UnionType):
        members = [describe(a) for a in typing.get_args(tp) if a is not type(None)]
        return members[0] if len(members) == 1 else ("union", frozenset(members))
    if origin is Literal:
        return ("literal", frozenset(typing.get_args(tp)))
    if origin is list:
        return ("list", describe(typing.get_args(tp)[0]))
    if origin is dict:
        key, value = typing.get_args(tp)
        return ("dict", describe(key), describe(value))
    if tp is Any:
        return "any"
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return ("enum", frozenset(member.value for member in tp))
    if tp in (str, int, bool, float):
        return tp.__name__
    raise AssertionError(f"no description for {tp!r}")


_LIMITS = {
    annotated_types.Ge: ("ge", "ge"),
    annotated_types.Le: ("le", "le"),
    annotated_types.MinLen: ("min_length", "min_length"),
    annotated_types.MaxLen: ("max_length", "max_length"),
}


def _limits_in(items: Any) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for item in items:
        for kind, (attribute, name) in _LIMITS.items():
            if isinstance(item, kind):
                found[name] = getattr(item, attribute)
        if isinstance(item, StringConstraints):
            found.update({k: v for k, v in (("min_length", item.min_length),) if v is not None})
        if isinstance(item, FieldInfo):
            found.update(_limits_in(item.metadata))
    return found


def limits(field: FieldInfo) -> dict[str, Any]:
    """ge/le/min_length/max_length of a field, from its FieldInfo and its annotation."""
    found = _limits_in(field.metadata)
    stack = [field.annotation]
    while stack:
        tp = stack.pop()
        if typing.get_origin(tp) is typing.Annotated:
            found.update(_limits_in(typing.get_args(tp)[1:]))
        stack.extend(typing.get_args(tp))
    return found


def members(model: type[BaseModel], skip: frozenset[str] = frozenset()) -> dict[str, Any]:
    return {
        name: (field.is_required(), describe(field.annotation))
        for name, field in model.model_fields.items()
        if name not in skip
    }


def test_body_members_match_evalruninput() -> None:
    assert members(AgnoEvaluation, QUERY) == members(EvalRunInput)


def test_limits_match_evalruninput() -> None:
    for name, theirs in EvalRunInput.model_fields.items():
        ours = limits(AgnoEvaluation.model_fields[name])
        assert ours == {**limits(theirs), **STRICTER.get(name, {})}, name


def test_db_id_and_table_are_query_parameters_of_the_route() -> None:
    router = get_eval_router(dbs={}, agents=[], teams=[])
    (route,) = [r for r in router.routes if r.path == "/eval-runs" and "POST" in r.methods]
    assert {param.name for param in route.dependant.query_params} == QUERY
