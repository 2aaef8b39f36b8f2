from worker.observability.redaction import redact, redact_value, register_secret


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


def test_backend_keys_are_redacted_by_the_names_they_travel_under():
    text = (
        "headers {'x-api-key': 'ak_live_123456', 'Authorization': 'Bearer os-key-98765'} "
        'body {"api_key": "k-abcdef"} EVALQ_AGNO_SECURITY_KEY=sec-4242 security_key: s3cr3t'
    )
    cleaned = redact(text)
    for secret in ("ak_live_123456", "os-key-98765", "k-abcdef", "sec-4242", "s3cr3t"):
        assert secret not in cleaned, cleaned
    assert "Bearer [REDACTED]" in cleaned


def test_a_registered_key_is_redacted_wherever_it_appears():
    key = "aym-live-0c3a9d7e5b"
    register_secret(key)
    message = f"401 from https://api.aymara.ai: key {key} is not valid ({key[:4]}...)"
    cleaned = redact(message)
    assert key not in cleaned
    assert "[REDACTED]" in cleaned
    assert redact_value({"error": message, "nested": [key]}) == {
        "error": cleaned,
        "nested": ["[REDACTED]"],
    }


def test_short_values_are_not_registered():
    register_secret("abc")
    assert redact("abc is a word") == "abc is a word"


def test_secret_named_keys_of_a_json_value_are_blanked():
    assert redact_value({"x-api-key": "anything", "security_key": "k", "name": "n"}) == {
        "x-api-key": "[REDACTED]",
        "security_key": "[REDACTED]",
        "name": "n",
    }
