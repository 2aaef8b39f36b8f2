"""Examples for producer services (documentation that tests run: docs/schedules.md)."""
