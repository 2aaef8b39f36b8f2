"""The production wheel and image carry the product only: worker/ and api_contracts/ with
their runtime dependencies. The test tooling is evalq-emulators (emulators/), a
distribution of its own that imports nothing of evalq."""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
#: Path parts no module of the production wheel may have.
TEST_TOOLING = re.compile(r"(^|/)(testing|emulators?|evalq_emulators|tests?|conftest\.py)(/|$)")
#: What a clone holds that `pip install .` on a fresh clone never sees.
_NOT_IN_A_CLONE = shutil.ignore_patterns(
    ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".*_cache", ".hypothesis"
)


def _name(requirement: str) -> str:
    """The distribution a PEP 508 requirement names, normalized."""
    found = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement)
    assert found, requirement
    return re.sub(r"[-_.]+", "-", found[0]).lower()


def _project(path: Path) -> Any:
    return tomllib.loads(path.read_text())["project"]


def dev_only() -> set[str]:
    """Distributions only tests and tooling need: evalq's dev extras, evalq-emulators and
    all its dependencies, less what evalq needs at run time."""
    evalq = _project(ROOT / "pyproject.toml")
    emulators = _project(ROOT / "emulators" / "pyproject.toml")
    runtime = {_name(r) for r in evalq["dependencies"]}
    groups = [*evalq["optional-dependencies"].values(), emulators["dependencies"],
              *emulators["optional-dependencies"].values()]  # fmt: skip
    names = {_name(r) for group in groups for r in group} | {"evalq-emulators"}
    return names - runtime


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[zipfile.ZipFile]:
    """evalq's wheel, built as `pip install .` builds it from a fresh clone."""
    clone = tmp_path_factory.mktemp("clone") / "evalq"
    shutil.copytree(ROOT, clone, ignore=_NOT_IN_A_CLONE)
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(out), str(clone)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    (built,) = out.glob("evalq-*.whl")
    with zipfile.ZipFile(built) as archive:
        yield archive


def test_the_wheel_ships_worker_and_api_contracts_only(wheel: zipfile.ZipFile) -> None:
    names = wheel.namelist()
    top = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
    modules = [name for name in names if name.endswith(".py")]
    assert top == {"worker", "api_contracts"}
    assert [m for m in modules if TEST_TOOLING.search(m.removesuffix(".py"))] == []
    assert "worker/runtime/app.py" in modules  # the product is there


def test_the_wheel_requires_no_dev_only_distribution(wheel: zipfile.ZipFile) -> None:
    (metadata,) = [n for n in wheel.namelist() if n.endswith(".dist-info/METADATA")]
    required = [
        line.removeprefix("Requires-Dist: ")
        for line in wheel.read(metadata).decode().splitlines()
        if line.startswith("Requires-Dist: ") and "extra ==" not in line
    ]
    assert required, "no runtime requirement at all"
    assert {_name(r) for r in required} & dev_only() == set()
    assert {"pytest", "agno", "fastapi", "uvicorn", "evalq-emulators"} <= dev_only()


def _module_level_imports(path: Path) -> set[str]:
    """Top-level names a module imports when it is imported (not inside functions)."""
    found: set[str] = set()
    for node in ast.parse(path.read_text()).body:
        statements = [node]
        if isinstance(node, ast.If | ast.Try):  # e.g. `if TYPE_CHECKING:` is not run
            test = getattr(node, "test", None)
            if isinstance(test, ast.Name) and test.id == "TYPE_CHECKING":
                continue
            statements = list(ast.walk(node))
        for statement in statements:
            if isinstance(statement, ast.Import):
                found |= {alias.name.split(".")[0] for alias in statement.names}
            elif isinstance(statement, ast.ImportFrom) and statement.level == 0:
                found.add((statement.module or "").split(".")[0])
    return found


def test_no_production_module_imports_test_tooling_when_imported() -> None:
    """evalq's commands that need the emulators (`evalq emulator`, `evalq demo`) import
    them when they run, so `import worker...` works where they are not installed."""
    tooling = {name.replace("-", "_") for name in dev_only()} | {"evalq_emulators", "tests"}
    offending = {
        str(path.relative_to(ROOT)): sorted(_module_level_imports(path) & tooling)
        for package in ("worker", "api_contracts")
        for path in sorted((ROOT / package).rglob("*.py"))
    }
    assert {path: names for path, names in offending.items() if names} == {}


def test_the_emulators_import_nothing_of_evalq() -> None:
    """evalq-emulators runs evalq as processes (`evalq worker`), never imports it."""
    imports: dict[str, set[str]] = {}
    for path in sorted((ROOT / "emulators/evalq_emulators").rglob("*.py")):
        names = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names.add((node.module or "").split(".")[0])
        imports[str(path.relative_to(ROOT))] = names & {"worker", "api_contracts", "tests"}
    assert {path: names for path, names in imports.items() if names} == {}


def test_the_images_install_no_test_tooling() -> None:
    """deploy/Dockerfile: the evalq image copies and installs worker/ and api_contracts/
    only, without extras; the emulator target installs evalq-emulators without its
    pytest and AgentOS extras."""
    dockerfile = (ROOT / "deploy/Dockerfile").read_text()
    stages = re.split(r"^FROM ", dockerfile, flags=re.MULTILINE)[1:]
    runtime = [s for s in stages if " AS " not in s.splitlines()[0]]
    assert len(runtime) == 1
    assert stages[-1] == runtime[0], "the evalq image is the last stage, the default target"
    build = next(s for s in stages if s.splitlines()[0].endswith(" AS build"))
    assert re.findall(r"^COPY (\S+)", build, flags=re.MULTILINE) == [
        "pyproject.toml", "api_contracts/", "worker/",
    ]  # fmt: skip
    assert re.findall(r"pip install (\S+)", build) == ["."]
    emulator = next(s for s in stages if s.splitlines()[0].endswith(" AS emulator"))
    assert re.findall(r"pip install (\S+)", emulator) == ["./emulators"]
    installed = " ".join(re.findall(r"pip install ([^&\n]+)", dockerfile))
    assert [name for name in dev_only() - {"evalq-emulators"} if name in installed] == []
    assert "[" not in installed  # no extras
