"""The benchmarks' inputs stay in step with the labs they measure (a bench is run rarely; a lab change
that breaks one should fail here, in seconds, not when someone next measures)."""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench import bench_grading, rerun  # noqa: E402


def test_grading_benchmark_builds_every_kind_of_submission_from_the_current_lab():
    notebooks = bench_grading.submissions(REPO / "solutions" / bench_grading.LAB / f"{bench_grading.LAB}.ipynb",
                                          REPO / "labs" / bench_grading.LAB / f"{bench_grading.LAB}.ipynb")
    assert set(notebooks) == set(bench_grading.KINDS)
    full = notebooks["full"]
    for kind, nb in notebooks.items():
        assert kind == "full" or nb != full, f"{kind} is the same notebook as the full solution"


def test_rerun_check_runs_the_solution_without_its_hidden_tests(tmp_path):
    copy = rerun.without_hidden_tests("00-setup", tmp_path / "00-setup") / "00-setup.ipynb"
    text = copy.read_text()
    assert "BEGIN HIDDEN TESTS" not in text and "END HIDDEN TESTS" not in text
    assert "BEGIN SOLUTION" in text  # the answers stay: a learner who solved every exercise
