"""The maintainers' tooling: pre-commit, the CI workflow, the release workflow."""

from __future__ import annotations

import pathlib
import re

import yaml

import keras_alexnet

ROOT = pathlib.Path(__file__).resolve().parent.parent


def _load(path: str) -> dict:
    with open(ROOT / path, encoding="utf-8") as file:
        return yaml.safe_load(file)


def _steps(job: dict) -> list[dict]:
    return job["steps"]


def _uses(job: dict, action: str) -> list[dict]:
    """The job's steps that use `action` (any version)."""
    return [s for s in _steps(job) if s.get("uses", "").startswith(action + "@")]


def test_pre_commit_pins_ruff_lint_and_format():
    config = _load(".pre-commit-config.yaml")
    (ruff,) = [r for r in config["repos"] if r["repo"].endswith("/ruff-pre-commit")]
    assert re.fullmatch(r"v\d+\.\d+\.\d+", ruff["rev"]), ruff["rev"]
    assert {hook["id"] for hook in ruff["hooks"]} == {"ruff", "ruff-format"}


def test_ci_workflow_runs_ci_run_on_python_3_11_with_a_timeout():
    workflow = _load(".github/workflows/ci.yml")
    # YAML 1.1 reads the bare key `on` as True.
    triggers = workflow.get("on", workflow.get(True))
    assert {"push", "pull_request"} <= set(triggers)
    (job,) = workflow["jobs"].values()
    assert 0 < job["timeout-minutes"] <= 120
    setup = _uses(job, "actions/setup-python")
    assert setup and setup[0]["with"]["python-version"] == "3.11"
    assert setup[0]["with"]["cache"] == "pip"
    assert any(s.get("run", "").strip() == "bash .ci/run" for s in _steps(job))


def test_release_workflow_checks_the_tag_and_publishes_by_trusted_publishing():
    workflow = _load(".github/workflows/release.yml")
    triggers = workflow.get("on", workflow.get(True))
    assert triggers["push"]["tags"] == ["v*"]
    jobs = workflow["jobs"]
    runs = "\n".join(s.get("run", "") for job in jobs.values() for s in _steps(job))
    assert "python -m build" in runs and "twine check" in runs
    assert "keras_alexnet/__init__.py" in runs and "GITHUB_REF_NAME" in runs
    (publish,) = [
        job for job in jobs.values() if _uses(job, "pypa/gh-action-pypi-publish")
    ]
    assert publish["permissions"]["id-token"] == "write"
    environment = publish["environment"]
    assert (
        environment["name"] if isinstance(environment, dict) else environment
    ) == "pypi"
    # Only the publishing job may mint an identity token.
    assert workflow["permissions"] == {"contents": "read"}


def test_release_tag_check_reads_the_version_the_package_reports():
    # The release job's sed expression, applied here: it must find the version.
    source = (ROOT / "keras_alexnet" / "__init__.py").read_text(encoding="utf-8")
    found = re.findall(r'^__version__ = "(.*)"$', source, re.MULTILINE)
    assert found == [keras_alexnet.__version__]
