"""AymaraEvaluation against the official SDK's own parameter types (``aymara-ai-sdk``).

Each model is compared, member by member, with the SDK's TypedDict: the same members (but
the documented exclusions), the same required ones, the same types (``null`` counts as
absent on both sides). A new SDK that adds, removes or retypes a member fails here.
"""

from __future__ import annotations

import collections.abc
import types
import typing
from typing import Any, Literal, Union

import pytest
import typing_extensions
from aymara_ai.types import eval_response_param
from aymara_ai.types.evals import eval_run_example_param, run_create_params
from aymara_ai.types.shared_params import file_reference
from pydantic import BaseModel

from api_contracts import aymara

#: SDK members evalq does not accept, and why (api_contracts/aymara.py says more).
EXCLUDED = {
    "RunCreateParams": {"eval_run_uuid", "continue_thread"},
}

PAIRS: list[tuple[Any, type[BaseModel]]] = [
    (run_create_params.RunCreateParams, aymara.AymaraEvaluation),
    (eval_response_param.EvalResponseParam, aymara.EvalResponse),
    (eval_run_example_param.EvalRunExampleParam, aymara.EvalRunExample),
    (file_reference.FileReference, aymara.FileReference),
]

_SCALARS = {str: "str", bool: "bool", int: "int", float: "float"}


def _without_none(args: tuple[Any, ...]) -> list[Any]:
    return [arg for arg in args if arg is not type(None)]


def describe(tp: Any) -> Any:
    """A comparable description of a type, the same for the SDK's and evalq's spelling."""
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        return describe(typing.get_args(tp)[0])
    if origin in (typing.Required, typing.NotRequired):
        return describe(typing.get_args(tp)[0])
    if origin in (Union, types.UnionType):
        members = [describe(arg) for arg in _without_none(typing.get_args(tp))]
        return members[0] if len(members) == 1 else ("union", frozenset(members))
    if origin is Literal:
        return ("literal", frozenset(typing.get_args(tp)))
    if origin in (list, collections.abc.Iterable):
        return ("list", describe(typing.get_args(tp)[0]))
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return ("object", tp.__name__)
    if typing_extensions.is_typeddict(tp):
        return ("object", tp.__name__.removesuffix("Param"))
    for scalar, name in _SCALARS.items():
        if tp is scalar:
            return name
    raise AssertionError(f"no description for {tp!r}")


def _required(typed_dict: Any, hint: Any) -> bool:
    # Read from the hint: with string annotations (the SDK's modules use them), Python
    # 3.11 cannot see ``Required`` when it builds ``__required_keys__``.
    origin = typing.get_origin(hint)
    if origin is typing.Required:
        return True
    return bool(typed_dict.__total__) and origin is not typing.NotRequired


def sdk_members(typed_dict: Any) -> dict[str, tuple[bool, Any]]:
    hints = typing.get_type_hints(typed_dict, include_extras=True)
    return {name: (_required(typed_dict, hint), describe(hint)) for name, hint in hints.items()}


def our_members(model: type[BaseModel]) -> dict[str, tuple[bool, Any]]:
    return {
        name: (field.is_required(), describe(field.annotation))
        for name, field in model.model_fields.items()
    }


@pytest.mark.parametrize(("typed_dict", "model"), PAIRS, ids=lambda p: getattr(p, "__name__", ""))
def test_members_match_the_sdk(typed_dict: Any, model: type[BaseModel]) -> None:
    theirs = sdk_members(typed_dict)
    ours = our_members(model)
    excluded = EXCLUDED.get(typed_dict.__name__, set())
    assert excluded <= set(theirs), "an exclusion names a member the SDK no longer has"
    assert set(ours) == set(theirs) - excluded
    for name, (required, kind) in ours.items():
        assert (required, kind) == theirs[name], name


def test_create_params_are_accepted_by_the_sdk_method() -> None:
    """Every member evalq sends is a keyword of ``client.evals.runs.create``."""
    from aymara_ai.resources.evals.runs import RunsResource

    keywords = set(typing.get_type_hints(RunsResource.create)) - {"return"}
    assert set(aymara.AymaraEvaluation.model_fields) <= keywords
