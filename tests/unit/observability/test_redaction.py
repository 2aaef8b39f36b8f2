from worker.observability.redaction import redact


def test_secrets_are_redacted():
    text = (
        "key AKIAABCDEFGHIJKLMNOP secret_access_key=abc/def+ghi "
        "redis://user:hunter2@cache:6379/0 Authorization: AWS4-HMAC Signature=deadbeef"
    )
    cleaned = redact(text)
    for secret in ("AKIAABCDEFGHIJKLMNOP", "abc/def+ghi", "hunter2", "deadbeef"):
        assert secret not in cleaned
    assert "redis://user:[REDACTED]@cache:6379/0" in cleaned


def test_ordinary_text_is_left_alone():
    text = "ValidationException: evaluation.evaluators has at most 10 items"
    assert redact(text) == text
