"""evalq's test tooling, a distribution of its own (``evalq-emulators``).

* ``agentcore``, ``aymara``, ``agno``: emulators of the remote services evalq drives, on
  one HTTP server and fault stack (``common``); ``cli`` is their one command line
  (``evalq-emulator``, which ``evalq emulator`` runs).
* ``fake_openai``, ``agentos``: a fake OpenAI-compatible model and the real Agno AgentOS
  on it, the oracle of the Agno emulator's contract tests.
* ``pytest_plugin``, ``backend_fixtures``: evalq's pytest fixtures; ``processes``,
  ``rabbitmq``, ``sentinel``, ``tls``: the real parts they start.

Nothing here imports ``worker``: the fixtures run evalq as processes (``evalq worker``).
"""
