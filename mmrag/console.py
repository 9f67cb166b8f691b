"""Terminal-safe text for human-readable output: stored strings never drive the terminal.

File names, captions, ids and metadata come from users' files and manifests; a name such as
``"\\x1b]0;PWNED\\x07\\x1b[2J"`` would set the terminal title and clear the screen if printed
raw, and ``[red]`` would be read as rich markup. Every human-readable output passes stored text
through :func:`printable` (plain prints), :func:`cell` (rich tables) or :func:`markup_safe`
(rich markup strings). JSON output stays exact and never goes through here.
"""

from __future__ import annotations

import re

from rich.markup import escape
from rich.text import Text

# C0 and C1 controls, DEL, and the invisible formatting characters that reorder or hide text
# (bidi overrides and isolates, zero-width joiners, BOM); lone surrogates are bytes of a name
# that was not valid UTF-8 (decoded with surrogateescape).
_UNSAFE = re.compile(
    "[\x00-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff\ud800-\udfff]"
)
_UNSAFE_WITH_LINES = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff\ud800-\udfff]"
)


def _escape_char(match: re.Match[str]) -> str:
    """One unsafe character as a visible escape: ``\\x1b``, ``\\u202e``, ``\\xe9`` (a byte)."""
    code = ord(match.group())
    if 0xDC80 <= code <= 0xDCFF:  # surrogateescape: the original byte
        return f"\\x{code - 0xDC00:02x}"
    if code <= 0xFF:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}"


def printable(text: object, *, keep_newlines: bool = False) -> str:
    """``text`` with every control, invisible-formatting and stray-surrogate character escaped.

    ``keep_newlines`` keeps ``\\n`` and ``\\t`` (multi-line answers); names never keep them, so a
    file name cannot fake a line of output.
    """
    pattern = _UNSAFE_WITH_LINES if keep_newlines else _UNSAFE
    return pattern.sub(_escape_char, str(text))


def markup_safe(text: object, *, keep_newlines: bool = False) -> str:
    """``text`` made printable and with rich markup escaped, for f-strings printed by rich."""
    return escape(printable(text, keep_newlines=keep_newlines))


def cell(text: object) -> Text:
    """A rich table cell showing ``text`` literally (no markup), made printable."""
    return Text(printable(text))

