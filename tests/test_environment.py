"""The two descriptions of the environment agree, and the CLI is wired."""

from __future__ import annotations

import re

from labkit.authoring import REPO
from labkit.cli import COMMANDS, main


def _pins(text: str) -> set[str]:
    return set(re.findall(r'"([A-Za-z0-9_.\-\[\],]+==[^"]+)"', text))


def test_environment_yml_matches_pyproject():
    pyproject = _pins((REPO / "pyproject.toml").read_text())
    conda = _pins((REPO / "environment.yml").read_text())
    runtime = {p for p in pyproject if not p.startswith(("pytest==", "ruff==", "playwright=="))}
    assert runtime <= conda, f"environment.yml lacks {sorted(runtime - conda)}"
    assert conda <= pyproject, f"environment.yml pins what pyproject.toml does not: {sorted(conda - pyproject)}"


def test_readme_names_the_two_commands_ci_runs():
    readme = (REPO / "README.md").read_text()
    assert "python3 course.py run" in readme and "python3 course.py test" in readme
    assert "python3 course.py test" in (REPO / ".ci" / "run").read_text()


def test_cli_help_lists_every_command(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for command in COMMANDS:
        assert f"labkit {command}" in out
