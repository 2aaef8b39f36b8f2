"""evalq where evalq-emulators is not installed (the production image): every command
imports, `evalq example` works, and `evalq emulator` / `evalq demo` say how to install the
emulators instead of failing on an import."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

#: Runs in a child interpreter in which evalq_emulators cannot be imported.
_WITHOUT_EMULATORS = textwrap.dedent(
    """
    import importlib.abc, importlib.metadata, json, sys

    class NoEmulators(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] == "evalq_emulators":
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None

    sys.meta_path.insert(0, NoEmulators())
    real = importlib.metadata.entry_points
    importlib.metadata.entry_points = lambda **kw: (
        [] if kw.get("name") == "evalq-emulator" else real(**kw))

    from typer.testing import CliRunner
    from worker.cli.main import app

    runner = CliRunner()
    results = {name: runner.invoke(app, argv) for name, argv in (
        ("example", ["example", "--count", "2"]),
        ("emulator", ["emulator", "--port", "0"]),
        ("demo", ["demo", "--requests", "1"]),
    )}
    print(json.dumps({name: [r.exit_code, r.output] for name, r in results.items()}))
    """
)


def test_evalq_works_without_the_emulators_and_says_how_to_get_them() -> None:
    done = subprocess.run(
        [sys.executable, "-c", _WITHOUT_EMULATORS], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    results = json.loads(done.stdout.splitlines()[-1])
    code, output = results["example"]
    assert code == 0
    assert [json.loads(line)["request_id"] for line in output.splitlines()] == [
        "demo-001",
        "demo-002",
    ]
    for command in ("emulator", "demo"):
        code, output = results[command]
        assert code == 1, output
        assert "evalq-emulators" in output
        assert "pip install ./emulators" in " ".join(output.split())
