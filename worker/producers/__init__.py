"""Producers: what each calling service may ask of evalq (docs/security.md)."""
