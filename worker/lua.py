"""Lua scripts kept as files, called with their KEYS and ARGV by name.

A script lives in the ``scripts/`` folder of the package that uses it. Below a comment
saying what it does, it names its keys and arguments once, by unpacking them into locals::

    local job, due, active = unpack(KEYS)
    local request_id, now = unpack(ARGV, 1, 2)  -- ARGV[3..]: field/value pairs

:class:`Script` reads those lines, so a caller passes ``keys`` and ``args`` as mappings
and the order lives in the file alone. ``keys`` may hold more than the script names (a
store passes all its keys); ``args`` must match exactly. A line ``-- include: NAME`` is
replaced by a shared fragment: text the caller renders (the job state table), or
``_NAME.lua`` beside the script. A fragment that uses the script's locals says so in a
line ``-- needs: a, b``, checked when the script loads.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from functools import cache
from importlib.resources import files
from typing import Any

from redis.exceptions import NoScriptError

_INCLUDE = re.compile(r"^-- include: (\w+)[ \t]*$", re.MULTILINE)
_NEEDS = re.compile(r"^-- needs: ([\w, ]+)$", re.MULTILINE)
_KEYS = re.compile(r"^local\s+([\w\s,]+?)\s*=\s*unpack\(KEYS\)", re.MULTILINE)
_ARGV = re.compile(r"^local\s+([\w\s,]+?)\s*=\s*unpack\(ARGV(?:,\s*1,\s*(\d+))?\)", re.MULTILINE)


def read_script(package: str, name: str, fragments: Mapping[str, str] | None = None) -> str:
    """The text of ``scripts/NAME.lua`` in ``package``, its includes expanded."""
    return expand(_source(package, name), package, fragments)


def expand(text: str, package: str, fragments: Mapping[str, str] | None = None) -> str:
    """``text`` with its includes (fragments of ``package``, or given) expanded."""
    return _expand(text, package, fragments or {}, included=set())


def script_names(package: str) -> list[str]:
    """Every script in ``package``'s ``scripts/`` folder (fragments start with ``_``)."""
    folder = files(package) / "scripts"
    return sorted(
        p.name.removesuffix(".lua")
        for p in folder.iterdir()
        if p.name.endswith(".lua") and not p.name.startswith("_")
    )


class Script:
    """One loaded script: ``script(keys={...}, args={...}, rest=[...])``."""

    def __init__(self, client: Any, name: str, source: str) -> None:
        self.name = name
        self.source = source
        self.key_names = _names(_KEYS, source)
        arguments = _ARGV.search(source)
        self.arg_names = _names(_ARGV, source)
        #: Whether ARGV goes on past the named arguments (``unpack(ARGV, 1, N)``).
        self.variadic = bool(arguments and arguments[2])
        if arguments and arguments[2] and int(arguments[2]) != len(self.arg_names):
            raise ValueError(f"{name}.lua unpacks {arguments[2]} ARGV into other names")
        self._script = client.register_script(source)

    @property
    def sha(self) -> str:
        """The script's SHA1 (as Redis's SLOWLOG and SCRIPT commands name it)."""
        return str(self._script.sha)

    def __call__(
        self,
        keys: Mapping[str, str],
        args: Mapping[str, Any] | None = None,
        rest: Sequence[Any] = (),
        client: Any = None,
    ) -> Any:
        key_list, arg_list = self.ordered(keys, args, rest)
        return self._script(keys=key_list, args=arg_list, client=client)

    def ordered(
        self, keys: Mapping[str, str], args: Mapping[str, Any] | None, rest: Sequence[Any]
    ) -> tuple[list[str], list[Any]]:
        """KEYS and ARGV in the order the script unpacks them."""
        args = args or {}
        missing = [k for k in self.key_names if k not in keys]
        if missing or set(args) != set(self.arg_names) or (rest and not self.variadic):
            raise ValueError(
                f"{self.name}.lua takes KEYS {self.key_names} and ARGV {self.arg_names}"
                f"{' + more' if self.variadic else ''}; got keys missing {missing}, "
                f"args {sorted(args)}{' + more' if rest else ''}"
            )
        return [keys[k] for k in self.key_names], [*(args[a] for a in self.arg_names), *rest]


#: One call for :func:`run_together`: (script, keys, args, more ARGV).
Call = tuple[Script, Mapping[str, str], Mapping[str, Any], Sequence[Any]]


def run_together(client: Any, calls: Sequence[Call]) -> list[Any]:
    """Run several scripts, in order, in one round trip (a pipeline without a
    transaction; redis-py's own pipelining of scripts asks SCRIPT EXISTS first, a second
    round trip). A script Redis no longer holds (a restart, a failover) answers NOSCRIPT,
    which means it did not run: it is loaded and run again on its own."""
    pipe = client.pipeline(transaction=False)
    for script, keys, args, rest in calls:
        key_list, arg_list = script.ordered(keys, args, rest)
        pipe.evalsha(script.sha, len(key_list), *key_list, *arg_list)
    results = list(pipe.execute(raise_on_error=False))
    for position, (result, (script, keys, args, rest)) in enumerate(
        zip(results, calls, strict=True)
    ):
        if isinstance(result, NoScriptError):
            results[position] = script(keys, args, rest)  # registers and runs it
        elif isinstance(result, Exception):
            raise result
    return results


def load_scripts(
    client: Any, package: str, fragments: Mapping[str, str] | None = None
) -> dict[str, Script]:
    """Every script of ``package``, registered on ``client``, by name."""
    return {
        name: Script(client, name, read_script(package, name, fragments))
        for name in script_names(package)
    }


@cache
def _source(package: str, name: str) -> str:
    return (files(package) / "scripts" / f"{name}.lua").read_text(encoding="utf-8")


def _expand(
    text: str,
    package: str,
    fragments: Mapping[str, str],
    included: set[str],
    declared: set[str] | None = None,
) -> str:
    if declared is None:
        declared = set(_names(_KEYS, text)) | set(_names(_ARGV, text))

    def include(match: re.Match[str]) -> str:
        name = match[1]
        if name in included:
            return f"-- ({name} is above)"
        included.add(name)
        fragment = fragments[name] if name in fragments else _source(package, f"_{name}")
        for needed in _NEEDS.findall(fragment):
            absent = [n for n in (s.strip() for s in needed.split(",")) if n not in declared]
            if absent:
                raise ValueError(f"fragment {name} needs locals {absent} declared before it")
        return _expand(fragment, package, fragments, included, declared)

    return _INCLUDE.sub(include, text)


def _names(pattern: re.Pattern[str], source: str) -> list[str]:
    match = pattern.search(source)
    return [] if match is None else [n.strip() for n in match[1].split(",")]
