"""labkit.deferred: another library's import-time work put off until it is used, with the same answers."""

from __future__ import annotations

import json
import subprocess
import sys

CHECKS = """
import json, sys
{first}
import jsonschema
import nbformat  # the grader's workers import it (through jsonschema)
loaded_at_import = "rfc3987_syntax.syntax_helpers" in sys.modules
checker = jsonschema.FormatChecker()
values = ["http://example.com/\\u00e4", "not an iri", "http://[::1", "urn:isbn:0451450523", "//host/rel",
          "http://ex.com/a b", "", "ftp://user@host:21/x?q#f", "mailto:someone@example.com"]
answers = []
for fmt in ("iri", "iri-reference"):
    for value in values:
        try:
            jsonschema.validate(value, {{"format": fmt}}, format_checker=checker)
            answers.append(True)
        except jsonschema.ValidationError:
            answers.append(False)
import rfc3987_syntax
print(json.dumps({{"at_import": loaded_at_import, "answers": answers,
                  "iri": rfc3987_syntax.is_valid_syntax_iri("http://example.com/")}}))
"""


def _run(first: str) -> dict:
    done = subprocess.run([sys.executable, "-c", CHECKS.format(first=first)], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout)


def test_iri_checks_give_the_same_answers_with_the_grammar_built_on_first_use():
    deferred, plain = _run("import labkit"), _run("")
    assert not deferred["at_import"], "importing jsonschema after labkit still built rfc3987_syntax's grammar"
    assert plain["at_import"]  # without labkit it is built at import: what the stand-in saves
    assert deferred["answers"] == plain["answers"]
    assert deferred["answers"].count(False) >= 3 and deferred["answers"].count(True) >= 3
    assert deferred["iri"] is plain["iri"] is True  # any other name of the module reaches the real one


def test_nothing_is_replaced_once_the_real_module_is_imported():
    result = subprocess.run([sys.executable, "-c", (
        "import sys, rfc3987_syntax; real = sys.modules['rfc3987_syntax']; import labkit; "
        "assert sys.modules['rfc3987_syntax'] is real; print('ok')")], capture_output=True, text=True, timeout=120)
    assert result.stdout.strip() == "ok", result.stderr[-2000:]
