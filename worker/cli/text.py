"""Text from outside (producers' request ids, errors, raw bodies; remote services'
answers) as the command line prints it: never read as rich markup, and with control
characters shown as escapes, so no value can style, hide, move or rewrite what ops see."""

from __future__ import annotations

from rich.text import Text

#: C0 and C1 control characters but tab and newline, DEL, and the bidirectional
#: embeddings, overrides and isolates (they reorder what follows), each shown escaped.
_CONTROLS = (*range(0x20), 0x7F, *range(0x80, 0xA0), *range(0x202A, 0x202F),
             *range(0x2066, 0x206A))  # fmt: skip
_ESCAPES = {c: (f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}") for c in _CONTROLS}
del _ESCAPES[0x09], _ESCAPES[0x0A]


def visible(value: object) -> str:
    """``value`` as a string whose control characters are shown as escapes."""
    return str(value).translate(_ESCAPES)


def plain(value: object, style: str = "") -> Text:
    """``value`` as rich text printed as it is (no markup), control characters escaped."""
    return Text(visible(value), style=style)


def line(*parts: str | tuple[str, str] | Text) -> Text:
    """One line from parts: a ``str`` is evalq's own words, a ``(text, style)`` pair evalq's
    own styled words, a :class:`Text` (from :func:`plain`) text from outside."""
    return Text.assemble(*parts)
