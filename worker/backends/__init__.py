"""Remote evaluation services: what evalq needs from one (``base``), the shared rate limits
of their calls (``ratelimit``), and one package per service (``agentcore``)."""
