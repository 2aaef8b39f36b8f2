"""A thin client of Aymara eval runs over the official ``aymara-ai-sdk``.

The SDK's own retries are off (``max_retries=0``): it would retry a POST whose answer was
lost and create a second run, and it sleeps in the worker. evalq retries on its own
timer and makes creation exactly-once itself. Every list is read page by page with an
explicit ``limit``/``offset``: the SDK's auto-pagination stops after the first page (its
``SyncOffsetPage.next_page_info`` adds the page length to ``count`` before comparing it
with ``count``).

Each method returns the SDK's own models (``EvalRunResult``, ``ScoredResponse``), typed
and parsed as the SDK parses them; :func:`as_json` turns one into the JSON an outcome
carries. Failures are raised as evalq errors (``classification``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from typing import Any, Final, TypeVar

import httpx
from aymara_ai import AymaraAI
from aymara_ai.pagination import SyncOffsetPage
from aymara_ai.types.evals import EvalRunResult, ScoredResponse
from pydantic import BaseModel

from api_contracts import AymaraEvaluation, ReasonCode
from worker.backends.aymara.classification import classify
from worker.errors import PermanentError, RemoteJobNotFound, RetryableError
from worker.observability.redaction import register_secret
from worker.settings import Settings

#: Items per page when evalq lists (Aymara's default and, as far as it documents, its most).
PAGE_SIZE: Final = 100

_Item = TypeVar("_Item")


def as_json(model: BaseModel) -> dict[str, Any]:
    """A model as plain JSON (timestamps as ISO 8601 strings), members the service sent."""
    return model.model_dump(mode="json", exclude_unset=True)


class AymaraClient:
    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        connect_timeout: float = 5.0,
        read_timeout: float = 30.0,
        http_client: httpx.Client | None = None,
    ) -> None:
        register_secret(api_key)
        self.sdk = AymaraAI(
            api_key=api_key,
            base_url=base_url,
            max_retries=0,
            timeout=httpx.Timeout(read_timeout, connect=connect_timeout),
            http_client=http_client,
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> AymaraClient:
        if not settings.aymara_base_url:
            raise ValueError("EVALQ_AYMARA_BASE_URL is not set: no Aymara backend")
        if settings.aymara_api_key is None:
            raise PermanentError("EVALQ_AYMARA_API_KEY is not set", ReasonCode.unauthorized)
        return cls(
            settings.aymara_base_url,
            settings.aymara_api_key.get_secret_value(),
            connect_timeout=settings.aymara_connect_timeout,
            read_timeout=settings.aymara_read_timeout,
        )

    def create_run(self, evaluation: AymaraEvaluation, *, name: str | None = None) -> EvalRunResult:
        """``POST /v2/eval-runs`` (``workspace_uuid`` and ``is_sandbox`` in the query).
        ``name`` is used when the evaluation gives none. Not idempotent: the caller makes
        sure a lost answer is looked up before any retry."""
        params = evaluation.create_params()
        if name is not None:
            params.setdefault("name", name)
        return _checked(self._call(lambda: self.sdk.evals.runs.create(**params)))

    def get_run(self, eval_run_uuid: str, *, workspace_uuid: str | None = None) -> EvalRunResult:
        """``GET /v2/eval-runs/{uuid}``; ``RemoteJobNotFound`` when it does not exist."""
        return _checked(
            self._call(
                lambda: self.sdk.evals.runs.get(eval_run_uuid, **_workspace(workspace_uuid)),
                run_lookup=True,
            )
        )

    def list_runs(
        self, *, eval_uuid: str | None = None, workspace_uuid: str | None = None
    ) -> list[EvalRunResult]:
        """Every run (of ``eval_uuid`` when given), all pages."""
        filters: dict[str, Any] = _workspace(workspace_uuid)
        if eval_uuid is not None:
            filters["eval_uuid"] = eval_uuid
        return list(
            self._pages(
                lambda offset: self.sdk.evals.runs.list(limit=PAGE_SIZE, offset=offset, **filters),
                key=lambda run: run.eval_run_uuid,
            )
        )

    def list_responses(
        self, eval_run_uuid: str, *, workspace_uuid: str | None = None
    ) -> list[ScoredResponse]:
        """A run's scored responses, all pages; ``RemoteJobNotFound`` when the run is gone."""
        where = _workspace(workspace_uuid)
        return list(
            self._pages(
                lambda offset: self.sdk.evals.runs.list_responses(
                    eval_run_uuid, limit=PAGE_SIZE, offset=offset, **where
                ),
                key=lambda response: response.response_uuid or response.prompt_uuid,
                run_lookup=True,
            )
        )

    def delete_run(self, eval_run_uuid: str, *, workspace_uuid: str | None = None) -> None:
        """``DELETE /v2/eval-runs/{uuid}``; a run that is already gone counts as deleted."""
        try:
            self._call(
                lambda: self.sdk.evals.runs.delete(eval_run_uuid, **_workspace(workspace_uuid)),
                run_lookup=True,
            )
        except RemoteJobNotFound:
            return

    def close(self) -> None:
        self.sdk.close()

    def _pages(
        self,
        fetch: Callable[[int], SyncOffsetPage[_Item]],
        *,
        key: Callable[[_Item], str],
        run_lookup: bool = False,
    ) -> Iterator[_Item]:
        """Items of every page, read by offset until a short or empty page; an item seen
        twice (the list shifted between two pages) is given once."""
        seen: set[str] = set()
        offset = 0
        while True:
            page = self._call(functools.partial(fetch, offset), run_lookup=run_lookup)
            items = page.items or []
            for item in items:
                if key(item) not in seen:
                    seen.add(key(item))
                    yield item
            if len(items) < PAGE_SIZE:
                return
            offset += len(items)

    @staticmethod
    def _call(operation: Callable[[], _Item], *, run_lookup: bool = False) -> _Item:
        try:
            return operation()
        except Exception as exc:
            raise classify(exc, run_lookup=run_lookup) from exc


def _checked(run: Any) -> EvalRunResult:
    """``run`` if it is a run: the SDK does not validate answers (strict validation would
    also refuse a status added later), so a body that is no run at all (a proxy's page)
    is caught here, as a transient failure."""
    if not isinstance(run, EvalRunResult) or not all(
        isinstance(getattr(run, member, None), str) for member in ("eval_run_uuid", "status")
    ):
        raise RetryableError(f"unexpected answer from Aymara: {str(run)[:200]!r}")
    return run


def _workspace(workspace_uuid: str | None) -> dict[str, Any]:
    return {} if workspace_uuid is None else {"workspace_uuid": workspace_uuid}
