"""`printable`: text from files and paths, safe to print on a terminal."""

from __future__ import annotations

__all__ = ["printable"]


def printable(text: object) -> str:
    """`str(text)` with every character that is not printable escaped as
    Python writes it (`\\n`, `\\x1b`, `\\u202e`).

    Class names, paths and run-folder text reach the terminal through it: an
    ANSI escape cannot recolour or move the cursor, and a newline cannot forge
    an output line.

    Example:

    >>> printable("cat\\n  1. dog 1.0000\\x1b[2K")
    'cat\\\\n  1. dog 1.0000\\\\x1b[2K'
    """
    text = str(text)
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
