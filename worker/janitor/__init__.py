"""The janitor: a sweep (beat's ``evals.janitor``, or ``evalq janitor``) that keeps the
remote account and the job store clean. ``plan`` finds what to do, ``sweep`` does it,
``indexes`` reads and moves the job store's records for both."""
