"""Step "feedback": one HTML page per submission, written for the learner.

Per test: passed or failed, points, the message the test raised and what to fix; the code
of visible tests (which the learner already has). Hidden tests' code, tracebacks and the
outputs of test cells are never included.
"""

from __future__ import annotations

import html
from pathlib import Path

from .assignment import Assignment

_STYLE = """body{font-family:system-ui,sans-serif;max-width:900px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;width:100%}td,th{border:1px solid #ccc;padding:.4em;vertical-align:top}
.passed{color:#176f2c;font-weight:600}.failed,.not.run{color:#b00020;font-weight:600}
pre{background:#f6f8fa;padding:.6em;overflow-x:auto;font-size:90%}.note{background:#fff8e1;padding:.6em}"""


def render(result, assignment: Assignment) -> str:
    """The feedback page of one :class:`~labkit.grading.pipeline.SubmissionResult`."""
    e = html.escape
    rows = []
    for test in result.tests:
        spec = assignment.test(test.grade_id)
        code = e(spec.visible_source) if spec else ""
        detail = ""
        if test.status != "passed":
            detail = f"<p>{e(test.message)}</p>" + (f"<p><b>What to fix:</b> {e(test.hint)}</p>" if test.hint else "")
        hidden_note = "<p><i>This test also has hidden checks.</i></p>" if spec and spec.hidden else ""
        rows.append(f"<tr><td><code>{e(test.grade_id)}</code></td>"
                    f"<td class='{e(test.status)}'>{e(test.status)}</td>"
                    f"<td>{test.points:g} / {test.max_points:g}</td>"
                    f"<td>{detail}{hidden_note}<details><summary>visible test code</summary>"
                    f"<pre>{code}</pre></details></td></tr>")
    notes = "".join(f"<li>{e(reason)}</li>" for reason in result.learner_reasons())
    notes_html = f"<div class='note'><b>Notes from the grader</b><ul>{notes}</ul></div>" if notes else ""
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{e(assignment.lab)}: feedback for "
            f"{e(result.student)}</title><style>{_STYLE}</style></head><body>"
            f"<h1>{e(assignment.lab)}: feedback for {e(result.student)}</h1>"
            f"<p><b>Score: {result.total:g} / {result.max_score:g}</b></p>{notes_html}"
            "<table><tr><th>Test</th><th>Result</th><th>Points</th><th>Details</th></tr>"
            f"{''.join(rows)}</table></body></html>\n")


def write_feedback(result, assignment: Assignment, out: Path) -> Path:
    from .submissions import safe_name

    path = Path(out) / "feedback" / safe_name(result.student) / f"{assignment.lab}.html"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(result, assignment), encoding="utf-8")
    return path
