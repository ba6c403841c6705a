"""The documentation site builds strictly, and its chart matches the tables.

`mkdocs build --strict` fails on a broken link, a missing page, an unknown
cross-reference or a docstring whose parameters differ from the signature, so a
change that breaks the documentation fails CI. It runs offline: no plugin of
mkdocs.yml fetches anything.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    site_dir = tmp_path_factory.mktemp("site")
    env = dict(
        os.environ,
        NO_MKDOCS_2_WARNING="1",
        TF_CPP_MIN_LOG_LEVEL="2",
        PYTHONPATH=str(ROOT),
    )
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", site_dir],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return site_dir


def text_of(page: pathlib.Path) -> str:
    return re.sub(r"<[^>]+>", " ", page.read_text(encoding="utf-8"))


def test_every_page_of_the_nav_is_built(site):
    pages = (
        "quickstart installation architecture lrn pretrained data training "
        "fine-tuning distributed cli export performance troubleshooting api "
        "changelog"
    )
    for page in pages.split():
        assert (site / page / "index.html").is_file(), page
    assert (site / "images" / "performance.png").is_file()


def test_api_reference_renders_the_docstrings(site):
    api = text_of(site / "api" / "index.html")
    for fragment in (
        "Instantiates AlexNet",
        "export_model",
        "imagenet_dataset",
        "LocalResponseNormalization",
        "decode_predictions",
    ):
        assert fragment in api, fragment


def test_cli_reference_lists_every_subcommand(site):
    from keras_alexnet import cli

    cli_page = text_of(site / "cli" / "index.html")
    parser = cli.build_parser()
    (subcommands,) = [
        action.choices
        for action in parser._actions
        if hasattr(action, "choices") and isinstance(action.choices, dict)
    ]
    for name, subparser in subcommands.items():
        assert f"keras-alexnet {name} --help" in cli_page, name
        for action in subparser._actions:
            for option in action.option_strings:
                assert option in cli_page, (name, option)


def test_changelog_page_includes_the_changelog(site):
    changelog = text_of(site / "changelog" / "index.html")
    assert "Unreleased" in changelog and "Keep a Changelog" in changelog


def test_chart_is_drawn_from_the_numbers_of_the_tables(tmp_path):
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import plot_performance
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    data = json.loads((ROOT / "benchmarks" / "recorded.json").read_text("utf-8"))
    # The recorded numbers are those of the inference table of the section of
    # performance.md that recorded.json names: the table whose header starts
    # with the recorded columns (further columns are not charted).
    inference = data["inference"]
    text = (ROOT / "docs" / "performance.md").read_text(encoding="utf-8")
    heading = f"## {inference['section']}\n"
    assert heading in text, heading
    section = text.split(heading, 1)[1].split("\n## ", 1)[0]
    tables = [block.splitlines() for block in section.split("\n\n")]
    tables = [
        lines
        for lines in tables
        if lines
        and [cell.strip().replace("`", "") for cell in lines[0].split("|")[2:-1]][
            : len(inference["columns"])
        ]
        == inference["columns"]
    ]
    (table,) = tables
    for backend, values in inference["rows"].items():
        (row,) = [line for line in table if line.startswith(f"| {backend} | ")]
        cells = [cell.strip(" *") for cell in row.split("|")[2:-1]]
        assert [float(cell) for cell in cells[: len(values)]] == values, backend
    output = tmp_path / "chart.png"
    plot_performance.plot(data, output)
    with open(output, "rb") as file:
        assert file.read(8) == b"\x89PNG\r\n\x1a\n"
    from PIL import Image

    with Image.open(output) as image:
        assert image.size[0] > 1000 and image.size[1] > 400
