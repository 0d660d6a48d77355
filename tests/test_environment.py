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


def test_set_up_compiles_every_aws_cdk_module_a_lab_imports():
    """course.py byte-compiles only the AWS CDK's modules the labs import (the rest is 400 MB of
    generated sources): a lab that imports another one must be named there, or every graded kernel
    of it compiles that module again in memory."""
    import importlib.util
    import json

    spec = importlib.util.spec_from_file_location("course", REPO / "course.py")
    assert spec is not None and spec.loader is not None
    course = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(course)  # definitions only: course.py acts under ``__main__``
    imported = set()
    for notebook in [*(REPO / "solutions").glob("*/*.ipynb"), *(REPO / "notebooks").glob("*.ipynb")]:
        for cell in json.loads(notebook.read_text())["cells"]:
            code = "".join(cell["source"]) if cell["cell_type"] == "code" else ""
            imported |= {m.split(".")[0] for m in re.findall(r"(?:from|import)\s+aws_cdk\.(\w+)", code)}
            imported |= set(re.findall(r"from\s+aws_cdk\s+import\s+(\w+)", code))
    services = {name for name in imported if name.startswith(("aws_", "alexa_")) or name == "interfaces"}
    assert services, "lab 13 imports the CDK's SageMaker module: the scan above found nothing"
    missing = sorted(services - set(course.AWS_CDK_COMPILED))
    assert not missing, f"course.py's AWS_CDK_COMPILED lacks {missing}"
