"""Benchmarks: ``make bench`` (``python -m tests.bench``). Prints one table; every figure
stands beside a baseline measured in the same run against the same parts."""

from __future__ import annotations

import argparse
import sys

from rich.console import Console
from rich.table import Table

from tests.bench import scenarios


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench")
    parser.add_argument("--quick", action="store_true", help="smaller runs (smoke test)")
    parser.add_argument("--only", action="append", help="run only these scenarios")
    args = parser.parse_args(argv)
    console = Console(width=200)
    table = Table("scenario", "evalq", "baseline", "ratio", "notes", title="evalq benchmarks")
    for name, scenario in scenarios.ALL.items():
        if args.only and name not in args.only:
            continue
        console.print(f"running {name} ...")
        for row in scenario(quick=args.quick):
            table.add_row(*row)
    console.print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
