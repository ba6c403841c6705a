"""Griffe extension: reads Keras' "Example:" docstring sections as examples.

The code follows Keras' docstring style, an unindented "Example:" section;
griffe's Google parser knows only an indented "Examples:" section and would
render the doctest as prose (where `['a', 'b']` even reads as a Markdown link).
"""

from __future__ import annotations

import re

import griffe

# Keras' section, up to the next "Reference:"-style heading or the end.
_EXAMPLE = re.compile(
    r"^Example:[ \t]*\n(?P<body>.*?)(?=^(?:References?|Reference):[ \t]*$|\Z)",
    re.MULTILINE | re.DOTALL,
)


def _indent(match: re.Match[str]) -> str:
    body = match.group("body").strip("\n")
    lines = [f"    {line}" if line.strip() else "" for line in body.splitlines()]
    return "Examples:\n" + "\n".join(lines) + "\n\n"


class KerasExampleSections(griffe.Extension):
    def on_object(self, *, obj: griffe.Object, **kwargs: object) -> None:
        if obj.docstring is not None:
            obj.docstring.value = _EXAMPLE.sub(_indent, obj.docstring.value)
