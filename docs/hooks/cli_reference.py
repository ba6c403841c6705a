"""MkDocs hook: writes the command line's `--help` texts into docs/cli.md.

The reference is generated from the parser at build time, so it cannot drift
from the code: every subcommand registered in `keras_alexnet.cli` appears, with
its options, where cli.md has the `<!-- cli-help -->` marker.
"""

from __future__ import annotations

import argparse
import os

MARKER = "<!-- cli-help -->"


def on_page_markdown(markdown, page, config, files):
    if page.file.src_uri != "cli.md" or MARKER not in markdown:
        return markdown
    os.environ["COLUMNS"] = "88"  # argparse wraps at the terminal width
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from keras_alexnet import cli

    parser = cli.build_parser()
    sections = [_block("keras-alexnet --help", parser.format_help())]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, subparser in action.choices.items():
                sections.append(f"### `{name}`\n")
                sections.append(
                    _block(f"keras-alexnet {name} --help", subparser.format_help())
                )
    return markdown.replace(MARKER, "\n".join(sections))


def _block(command: str, text: str) -> str:
    return f"```text\n$ {command}\n{text.rstrip()}\n```\n"
