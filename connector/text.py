"""Text fit for an operator's terminal: whatever came from a helpdesk, a file or a command line.

Used by the errors and by the logs' console rendering alike (a module of its own, so that
neither imports the other for it).
"""

from __future__ import annotations

__all__ = ["printable", "printable_json"]


def printable(text: str) -> str:
    """`text` as a terminal shows it and does nothing else: every character that is not
    printable (controls, line breaks, escape sequences, bidi overrides, C1 codes) escaped as
    `repr` escapes it, so that one value stays on one line and reads as it is.

    Whatever came from a helpdesk, a ticket file, a mapping or the command line goes through
    this before it is printed: a ticket field holding `ESC ] 0 ; ... BEL` would otherwise
    retitle the operator's terminal, and a newline in it would forge a line of output.
    """
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def printable_json(text: str) -> str:
    """JSON `text` with every character that is not printable inside its strings written as a
    `\\u` escape: the same JSON value, safe on a terminal. Newlines of the layout stay.

    JSON encoders escape only the C0 controls: C1 codes (`0x9b` is an 8-bit CSI) and bidi
    overrides from ticket content would otherwise reach the terminal raw.
    """
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() or c == "\n" else _json_escape(c) for c in text)


def _json_escape(char: str) -> str:
    code = ord(char)
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    code -= 0x10000  # beyond the BMP, JSON spells it as a surrogate pair
    return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"
