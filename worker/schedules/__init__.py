"""Schedules: evaluations evalq submits itself, each slot exactly once (docs/schedules.md)."""
