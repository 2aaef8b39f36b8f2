"""Targets: the accounts and regions evalq runs jobs in, each with its own quotas,
credentials and name prefix (``config``), how a request picks one (``routing``), and
what each needs at run time (``registry``)."""
