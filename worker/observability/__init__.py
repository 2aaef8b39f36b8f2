"""What evalq tells its operators: structured logs (``logs``), with secrets redacted from
them and from everything else it writes (``redaction``)."""
