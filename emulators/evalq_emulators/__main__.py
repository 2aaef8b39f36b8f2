"""``python -m evalq_emulators``: the ``evalq-emulator`` command."""

from evalq_emulators.cli import main

main()
