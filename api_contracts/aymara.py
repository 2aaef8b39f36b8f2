"""``AymaraEvaluation``: an Aymara eval run, as the official ``aymara-ai-sdk`` spells it.

The fields are those of ``client.evals.runs.create(...)`` (the SDK's ``RunCreateParams``,
``EvalResponseParam``, ``EvalRunExampleParam`` and ``FileReference``);
``tests/unit/contracts/test_aymara_drift.py`` fails when the SDK and these classes disagree.
``null`` counts as absent, as for the AgentCore parameters: absent members are not sent.

Deliberate differences from ``RunCreateParams``:

* ``eval_run_uuid`` is not accepted: evalq owns the identity of the runs it creates.
* The run-level ``continue_thread`` (continue a conversation after this run) is not
  accepted: a queued batch run continues no conversation. Each response keeps its own.
* Integers and booleans are strict (``"3"`` or ``1`` for ``true`` are refused), and a
  response names its prompt with a non-empty ``prompt_uuid``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, StrictBool, StrictInt, StringConstraints

#: A non-empty identifier (prompt, eval, workspace).
Uuid = Annotated[str, StringConstraints(min_length=1)]

#: The SDK's ``ContentType``.
ContentType = Literal["text", "image", "video"]


class _Params(BaseModel):
    """A structure of the SDK's parameters: unknown members are rejected."""

    model_config = ConfigDict(extra="forbid", field_title_generator=lambda name, _info: name)


class FileReference(_Params):
    """A response given as an uploaded file (``client.files``) instead of text."""

    file_uuid: str | None = None
    remote_file_path: str | None = None


class EvalResponse(_Params):
    """One AI response to one of the eval's prompts (the SDK's ``EvalResponseParam``)."""

    prompt_uuid: Uuid
    content: str | FileReference | None = None
    content_type: ContentType | None = None
    ai_refused: StrictBool | None = None
    exclude_from_scoring: StrictBool | None = None
    continue_thread: StrictBool | None = None
    thread_uuid: str | None = None
    turn_number: StrictInt | None = None


class EvalRunExample(_Params):
    """A scored example given to the scorer (the SDK's ``EvalRunExampleParam``)."""

    prompt: str
    response: str
    type: Literal["pass", "fail"]
    example_uuid: str | None = None
    explanation: str | None = None


class AymaraEvaluation(_Params):
    """``client.evals.runs.create`` parameters without ``eval_run_uuid`` and
    ``continue_thread``; ``workspace_uuid`` and ``is_sandbox`` go in the query string."""

    eval_uuid: Uuid
    responses: list[EvalResponse]
    name: str | None = None
    ai_description: str | None = None
    workspace_uuid: str | None = None
    is_sandbox: StrictBool | None = None
    eval_run_examples: list[EvalRunExample] | None = None

    def create_params(self) -> dict[str, Any]:
        """Keyword arguments for ``client.evals.runs.create(**params)``: absent members
        left out. The caller may add ``name`` when the producer gave none."""
        return self.model_dump(mode="json", exclude_none=True)
