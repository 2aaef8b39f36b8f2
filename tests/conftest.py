pytest_plugins = ["evalq_emulators.pytest_plugin", "evalq_emulators.backend_fixtures"]
