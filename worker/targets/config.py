"""What a target is and how the targets file spells it.

A target is one account in one region (an endpoint, for tests and emulators) with its own
quotas, credentials and job name prefix. ``EVALQ_TARGETS_FILE`` (YAML or JSON) lists them
with their routing rules; without it there is one implicit target, ``default``, made of
the ``EVALQ_*`` settings evalq always had. Every quota a target does not set is taken from
those settings, so they stay the defaults for all targets.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from api_contracts import Backend
from api_contracts.request import TargetName
from worker.config_files import read_data
from worker.keys import DEFAULT_TARGET
from worker.settings import Settings

_ROLE_ACCOUNT = re.compile(r"^arn:aws[a-z-]*:iam::(\d{12}):role/")

PerSecond = Annotated[float, Field(gt=0)]


class MatchRules(BaseModel):
    """A request matches when any rule does (an empty rule set matches nothing)."""

    model_config = ConfigDict(extra="forbid")

    #: The request's CloudWatch log group names: one of them starts with one of these.
    log_group_prefixes: list[Annotated[str, Field(min_length=1)]] = []
    #: The request's service name is one of these.
    service_names: list[Annotated[str, Field(min_length=1)]] = []


class _Target(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: TargetName
    #: The service this target runs. The targets file lists AgentCore targets; Aymara's
    #: and Agno's come from their settings (``EVALQ_AYMARA_*``, ``EVALQ_AGNO_*``).
    backend: Backend = Backend.AGENTCORE
    #: An AWS region; required for AgentCore.
    region: str | None = Field(None, pattern=r"^[a-z]{2}(-[a-z]+)+-\d+$")
    #: Unset: the real AWS endpoint of the region.
    endpoint_url: str | None = None
    #: The control plane's (evaluators); unset: ``endpoint_url``'s.
    control_endpoint_url: str | None = None
    #: An IAM role to assume for this target (refreshed before it expires); unset: the
    #: default credential chain.
    role_arn: str | None = Field(None, pattern=r"^arn:aws[a-z-]*:iam::\d{12}:role/.+$")
    external_id: str | None = None
    #: Unset: the real STS endpoint (tests point it at the emulator).
    sts_endpoint_url: str | None = None
    #: The account's id; unset: taken from ``role_arn``. Routes requests whose online
    #: evaluation config lives in this account and region.
    account_id: str | None = Field(None, pattern=r"^\d{12}$")
    match: MatchRules = MatchRules()

    @model_validator(mode="after")
    def _account_from_role(self) -> Self:
        if self.backend is Backend.AGENTCORE and self.region is None:
            raise ValueError("an AgentCore target needs a region")
        if self.account_id is None and self.role_arn:
            found = _ROLE_ACCOUNT.match(self.role_arn)
            if found:
                object.__setattr__(self, "account_id", found[1])
        return self


class TargetConfig(_Target):
    """A target with every quota, rate and prefix decided."""

    #: Remote names of the jobs evalq derives here start with this; the janitor of this
    #: target touches nothing else.
    job_name_prefix: str = Field(pattern=r"^[a-zA-Z][a-zA-Z0-9_]{0,15}$")
    max_active_jobs: Annotated[int, Field(ge=1)]
    account_max_jobs: Annotated[int, Field(ge=1)]
    account_high_water: Annotated[int, Field(ge=1)]
    start_rate: PerSecond
    stop_rate: PerSecond
    delete_rate: PerSecond
    get_rate: PerSecond
    list_rate: PerSecond
    invoke_rate: PerSecond
    max_invocations: Annotated[int, Field(ge=1)]


class TargetSpec(_Target):
    """A target as the file gives it: what it leaves out comes from the settings."""

    job_name_prefix: str | None = Field(None, pattern=r"^[a-zA-Z][a-zA-Z0-9_]{0,15}$")
    max_active_jobs: Annotated[int, Field(ge=1)] | None = None
    account_max_jobs: Annotated[int, Field(ge=1)] | None = None
    account_high_water: Annotated[int, Field(ge=1)] | None = None
    start_rate: PerSecond | None = None
    stop_rate: PerSecond | None = None
    delete_rate: PerSecond | None = None
    get_rate: PerSecond | None = None
    list_rate: PerSecond | None = None
    invoke_rate: PerSecond | None = None
    max_invocations: Annotated[int, Field(ge=1)] | None = None

    def resolve(self, settings: Settings) -> TargetConfig:
        """This target with every unset quota, rate and prefix taken from the settings."""
        inherited = {
            "job_name_prefix": settings.job_name_prefix,
            "max_active_jobs": settings.max_active_jobs,
            "account_max_jobs": settings.account_max_jobs,
            "account_high_water": settings.account_high_water,
            "start_rate": settings.start_rate,
            "stop_rate": settings.stop_rate,
            "delete_rate": settings.delete_rate,
            "get_rate": settings.get_rate,
            "list_rate": settings.list_rate,
            "invoke_rate": settings.invoke_rate,
            "max_invocations": settings.max_invocations,
        }
        given = self.model_dump(exclude_none=True)
        return TargetConfig.model_validate({**inherited, **given})


class TargetsFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    targets: Annotated[list[TargetSpec], Field(min_length=1)]
    #: Where a request that names no target and matches no rule goes; unset: nowhere
    #: (dead letter ``no_target``).
    default_target: TargetName | None = None

    @model_validator(mode="after")
    def _names(self) -> Self:
        names = [t.name for t in self.targets]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"target names must be unique, repeated: {', '.join(repeated)}")
        if self.default_target is not None and self.default_target not in names:
            raise ValueError(f"default_target {self.default_target!r} is not a listed target")
        return self


@dataclass(frozen=True)
class TargetSet:
    """The targets a deployment serves, in file order, and where unmatched requests go."""

    targets: list[TargetConfig]
    default_target: str | None


def load_targets(settings: Settings) -> TargetSet:
    """The configured targets, quotas filled in: the file's (or, without one, the implicit
    ``default``), then Aymara's and Agno's when their settings name a service."""
    extra = service_targets(settings)
    if settings.targets_file is None:
        only = TargetSpec(
            name=DEFAULT_TARGET, region=settings.aws_region,
            endpoint_url=settings.agentcore_endpoint_url,
            control_endpoint_url=settings.agentcore_control_endpoint_url,
        )  # fmt: skip
        return TargetSet([only.resolve(settings), *extra], DEFAULT_TARGET)
    file = TargetsFile.model_validate(read_data(Path(settings.targets_file)))
    listed = [t.resolve(settings) for t in file.targets]
    taken = {t.name for t in listed}
    return TargetSet([*listed, *(t for t in extra if t.name not in taken)], file.default_target)


def service_targets(settings: Settings) -> list[TargetConfig]:
    """Aymara's and Agno's targets (one each), from their settings."""
    found = []
    for backend, url, quota, rate in (
        (Backend.AYMARA, settings.aymara_base_url, settings.aymara_max_active_jobs,
         settings.aymara_rate),
        (Backend.AGNO, settings.agno_base_url, settings.agno_max_active_jobs,
         settings.agno_rate),
    ):  # fmt: skip
        if url is None:
            continue
        spec = TargetSpec(
            name=backend.value, backend=backend, endpoint_url=url, max_active_jobs=quota,
            start_rate=rate, stop_rate=rate, delete_rate=rate, get_rate=rate, list_rate=rate,
        )  # fmt: skip
        found.append(spec.resolve(settings))
    return found
