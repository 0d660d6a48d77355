"""The grader's steps one by one, without kernels: intake, notebook repair, redaction, output
bookkeeping, cgroups, the disk watcher. Fast; the end-to-end runs are in test_grading*.py."""

from __future__ import annotations

import base64
import codecs
import copy
import json
import os
import shutil
import stat
import sys
from pathlib import Path

import nbformat
import pytest

from labkit.grading import execute, fairshare
from labkit.grading.assignment import TestSpec, prepare_assignment
from labkit.grading.redact import HIDDEN, Secrets, shown_exception
from labkit.grading.restore import plan, restore, segments
from labkit.grading.sandbox import UidLease
from labkit.grading.score import explain
from labkit.grading.submissions import find_submissions, safe_name

FIXTURE = Path(__file__).parent / "fixtures" / "grading" / "course"
pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the grader's tests need Linux")


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    base = tmp_path_factory.mktemp("units")
    shutil.copytree(FIXTURE, base / "course")
    (base / "course" / "autograder").mkdir()
    return prepare_assignment("mini", base / "prep", base / "course")


def _solution(lab) -> nbformat.NotebookNode:
    return copy.deepcopy(lab.source_notebook)


def _cell(nb, gid):
    return next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == gid)


# ---- intake: only real files in real folders, nothing followed, nothing blocks ----------------

def test_intake_lists_every_entry_and_grades_only_real_files(tmp_path, lab):
    subs, outside = tmp_path / "subs", tmp_path / "outside"
    outside.mkdir()
    secret = outside / "mini.ipynb"
    secret.write_text(json.dumps(lab.source_notebook))
    good = json.dumps(nbformat.v4.new_notebook())
    for student in ("alice", "nested", "two", "linked_nb", "fifo", "device", "hard", "big", "dir_nb",
                    "linked_nested"):
        (subs / student).mkdir(parents=True)
    (subs / "alice" / "mini.ipynb").write_text(good)
    (subs / "alice" / "mini-Copy1.ipynb").write_text(good)
    (subs / "nested" / "mini").mkdir()
    (subs / "nested" / "mini" / "mini.ipynb").write_text(good)
    (subs / "two" / "mini").mkdir()
    (subs / "two" / "mini.ipynb").write_text(good)
    (subs / "two" / "mini" / "mini.ipynb").write_text(good)
    (subs / "linked_nb" / "mini.ipynb").symlink_to(secret)
    os.mkfifo(subs / "fifo" / "mini.ipynb")
    if os.geteuid() == 0:
        os.mknod(subs / "device" / "mini.ipynb", 0o600 | stat.S_IFCHR, os.makedev(1, 3))
    os.link(secret, subs / "hard" / "mini.ipynb")
    (subs / "big" / "mini.ipynb").write_text(good + " " * 2_000_000)
    (subs / "dir_nb" / "mini.ipynb").mkdir()
    (subs / "linked_nested" / "mini").symlink_to(outside)
    (subs / "linked_student").symlink_to(outside)
    (subs / ".hidden").mkdir()
    (subs / ".hidden" / "mini.ipynb").write_text(good)
    (subs / "stray.txt").write_text("not a student")
    (subs / "bad name!").mkdir()
    (subs / "pipe").mkdir()
    os.mkfifo(subs / "top-fifo")
    found = {s.student: s for s in find_submissions(subs, "mini", tmp_path / "intake", max_bytes=1_000_000)}
    graded = sorted(s for s, sub in found.items() if not sub.problem)
    assert graded == ["alice", "nested"]
    assert "two notebooks" in found["two"].problem
    assert "symbolic link" in found["linked_nb"].problem and "symbolic link" in found["linked_student"].problem
    assert "FIFO" in found["fifo"].problem and "FIFO" in found["top-fifo"].problem
    if os.geteuid() == 0:
        assert "character device" in found["device"].problem
    assert "hard link" in found["hard"].problem
    assert "MB limit" in found["big"].problem
    assert "not a regular file" in found["dir_nb"].problem
    assert "symbolic link" in found["linked_nested"].problem
    assert "starts with a dot" in found[".hidden"].problem
    assert "not a student" in found["stray.txt"].problem
    assert "not a usable student id" in found["bad name!"].problem
    assert "no mini.ipynb" in found["pipe"].problem
    assert found["alice"].notes and "mini-Copy1.ipynb" in found["alice"].notes[0]
    copy_ = found["alice"].copy
    assert copy_.parent == tmp_path / "intake" and (copy_.stat().st_mode & 0o077) == 0
    assert found["alice"].read_verified() == good.encode()


def test_a_changed_private_copy_is_refused(tmp_path):
    (tmp_path / "subs" / "bob").mkdir(parents=True)
    (tmp_path / "subs" / "bob" / "mini.ipynb").write_text("{}")
    bob = find_submissions(tmp_path / "subs", "mini", tmp_path / "intake")[0]
    assert bob.read_verified() == b"{}"
    bob.copy.write_text('{"cells": []}')
    assert bob.read_verified() is None
    assert not bob.changed_since_intake(tmp_path / "subs")
    (tmp_path / "subs" / "bob" / "mini.ipynb").write_text("{} ")
    assert bob.changed_since_intake(tmp_path / "subs")


def test_output_folder_names_are_safe():
    assert safe_name("alice") == "alice"
    assert safe_name("../etc").startswith("unusable-") and "/" not in safe_name("a/b")


# ---- notebooks rebuilt from the lab source: metadata edits repaired -------------------------

def _graded_ids(nb):
    return [c.metadata["nbgrader"]["grade_id"] for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade")]


def _run_restore(lab, nb):
    return restore(json.dumps(nb).encode(), lab, "student")


@pytest.mark.parametrize("edit, reason", [
    ("rename_test", "came with the id 'my_test'"),
    ("flip_grade", "nbgrader metadata of test_mean changed (grade)"),
    ("points", "points of test_shout were changed to 100"),
    ("claim_points", "claimed points with the id 'bonus'"),
    ("delete_tests", "test cell test_rows was deleted"),
    ("duplicate_answer", "a second cell with the id 'answer_mean'"),
    ("rename_answer", "answer cell answer_rows came with the id 'renamed'"),
    ("strip_all", "came with its nbgrader metadata removed"),
    ("test_to_markdown", "test cell test_shout was turned into a markdown cell"),
    ("edit_test", "test cell test_mean was edited"),
])
def test_metadata_edits_are_repaired_from_the_source(lab, edit, reason):
    nb = _solution(lab)
    if edit == "rename_test":
        _cell(nb, "test_mean").metadata.nbgrader["grade_id"] = "my_test"
    elif edit == "flip_grade":
        _cell(nb, "test_mean").metadata.nbgrader["grade"] = False
    elif edit == "points":
        _cell(nb, "test_shout").metadata.nbgrader["points"] = 100
    elif edit == "claim_points":
        nb.cells.append(nbformat.v4.new_code_cell("pass", metadata={"nbgrader": {
            "grade": True, "grade_id": "bonus", "points": 50, "solution": False, "locked": True}}))
    elif edit == "delete_tests":
        nb.cells = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") != "test_rows"]
    elif edit == "duplicate_answer":
        index = nb.cells.index(_cell(nb, "answer_mean"))
        twin = copy.deepcopy(nb.cells[index])
        twin.source = "def mean(xs):\n    return 0.0\n"
        nb.cells.insert(index + 1, twin)
    elif edit == "rename_answer":
        _cell(nb, "answer_rows").metadata.nbgrader["grade_id"] = "renamed"
    elif edit == "strip_all":
        for cell in nb.cells:
            cell.metadata = {}
    elif edit == "test_to_markdown":
        _cell(nb, "test_shout").cell_type = "markdown"
        _cell(nb, "test_shout").pop("outputs")
        _cell(nb, "test_shout").pop("execution_count")
    elif edit == "edit_test":
        _cell(nb, "test_mean").source = "pass"
    restored = _run_restore(lab, nb)
    assert any(reason in flag for flag in restored.flags), restored.flags
    rebuilt = restored.notebook
    assert _graded_ids(rebuilt) == [c.metadata["nbgrader"]["grade_id"] for c in lab.source_notebook.cells
                                    if c.metadata.get("nbgrader", {}).get("grade")]
    for test in lab.tests:
        assert _cell(rebuilt, test.grade_id).source == test.source  # hidden tests back in place
        assert float(_cell(rebuilt, test.grade_id).metadata.nbgrader["points"]) == test.points
    if edit in ("rename_answer", "strip_all", "duplicate_answer"):
        assert "float(sum(xs))" in _cell(rebuilt, "answer_mean").source


def test_extra_learner_cells_stay_in_place_and_claim_nothing(lab):
    nb = _solution(lab)
    index = nb.cells.index(_cell(nb, "answer_shout"))
    nb.cells.insert(index + 1, nbformat.v4.new_code_cell("helper = 1", metadata={"nbgrader": {
        "grade": True, "grade_id": "test_shout", "points": 9, "solution": False}}))
    nb.cells.insert(index + 1, nbformat.v4.new_code_cell("scratch = 2"))
    rebuilt = _run_restore(lab, nb).notebook
    sources = [c.source for c in rebuilt.cells]
    assert sources.index("scratch = 2") == [c.metadata.get("nbgrader", {}).get("grade_id") for c in
                                            rebuilt.cells].index("answer_shout") + 1
    assert "helper = 1" in sources
    extra = next(c for c in rebuilt.cells if c.source == "helper = 1")
    assert not extra.metadata.get("nbgrader")


def test_plan_splits_tests_into_visible_and_hidden_segments(lab):
    rebuilt = _run_restore(lab, _solution(lab)).notebook
    roles = {p.grade_id: p for p in plan(rebuilt, lab) if p.grade_id}
    assert roles["answer_mean"].role == "learner" and roles["setup"].role == "instructor"
    assert [hidden for hidden, _ in roles["test_mean"].segments] == [False, True]
    assert roles["setup"].binds == ["csv", "pathlib"]
    assert segments("a\n### BEGIN HIDDEN TESTS\nb\n### END HIDDEN TESTS\nc\n### BEGIN HIDDEN TESTS\nd\n"
                    "### END HIDDEN TESTS") == [(False, "a"), (True, "b"), (False, "c"), (True, "d")]


def test_malformed_and_odd_notebooks_are_reasons_not_crashes(lab):
    for raw, reason in ((b"\xff\xfe", "not UTF-8"), (b"{", "not valid JSON"), (b"[1]", "without a 'cells'"),
                        (b"[" * 100000, "malformed notebook")):
        restored = restore(raw, lab, "s")
        assert restored.notebook is None and reason in restored.flags[0], restored.flags
    odd = {"cells": [{"cell_type": "code", "source": ["print(", "1)"], "metadata": "nope"}, "junk", 3],
           "metadata": {"kernelspec": {"name": "ir"}}}
    restored = restore(json.dumps(odd).encode(), lab, "s")
    assert restored.notebook is not None and any("kernel 'ir'" in f for f in restored.flags)


# ---- what learners read --------------------------------------------------------------------

@pytest.fixture(scope="module")
def secrets(lab):
    return lab.secrets


@pytest.mark.parametrize("encode", [
    lambda s: s, lambda s: s[::-1], lambda s: s.upper(), lambda s: " ".join(s),
    lambda s: "\u200b".join(s), lambda s: codecs.encode(s, "rot13"),
    lambda s: base64.b64encode(s.encode()).decode(), lambda s: base64.b64encode(s[::-1].encode()).decode(),
    lambda s: s.encode().hex(), lambda s: ":".join(f"{b:02x}" for b in s.encode()),
    lambda s: "".join(f"\\u{ord(c):04x}" for c in s), lambda s: "".join(f"%{b:02X}" for b in s.encode()),
    lambda s: base64.b32encode(s.encode()).decode(), lambda s: "ＸＸ" + s.replace("a", "ａ"),
], ids=["plain", "reversed", "upper", "spaced", "zero-width", "rot13", "base64", "base64-reversed", "hex",
        "hex-colons", "unicode-escapes", "url", "base32", "fullwidth"])
def test_a_hidden_line_is_found_in_any_encoding(secrets, encode):
    line = 'assert all(type(r) is dict for r in rows), "each row must be a dict"'
    text = f"got {encode(line)} instead"
    assert secrets.leaked_by(text)
    assert secrets.learner_text(text) == HIDDEN


def test_ordinary_messages_are_kept(secrets):
    for text in ("mean must return a float, got Yes: use float(...)", "data.csv has 3 rows, load_rows returned 0",
                 "shout('hi') should be 'HI!', got 'hi'", "name 'mean' is not defined"):
        assert secrets.learner_text(text) == text


def test_learner_exception_classes_are_never_named():
    assert shown_exception("AssertionError") == "AssertionError" and shown_exception("KernelDied") == "KernelDied"
    assert "LeakyName" not in shown_exception("LeakyName")


def test_secrets_ignore_what_the_learner_already_sees():
    shared = Secrets(["x = 1\n### BEGIN HIDDEN TESTS\nassert load_rows() == expected_rows_here\n### END HIDDEN TESTS"],
                     ["print(load_rows() == expected_rows_here)"])
    assert not shared.leaked_by("load_rows() == expected_rows_here")


# ---- words the learner's own copy holds are no secret: AWS errors quoted by hidden checks --------

def _hidden(*lines: str) -> str:
    return "x = 1\n### BEGIN HIDDEN TESTS\n" + "\n".join(lines) + "\n### END HIDDEN TESTS"


def _aws(code: str, operation: str, message: str) -> str:
    """What a learner's failed boto3 call raises (botocore's ClientError text)."""
    return f"An error occurred ({code}) when calling the {operation} operation: {message}"


# Hidden checks that quote the offline backend's own error words (the labkit package writes them,
# moto's exception modules hold S3's), and the error a learner's wrong call gets from the backend.
QUOTED_AWS_ERRORS = {
    "bedrock-tool-result": (
        'assert "Expected toolResult blocks at messages" in why, "answer every toolUse with its toolUseId"',
        _aws("ValidationException", "Converse", "Expected toolResult blocks at messages.2.content for the following "
             "Ids: tooluse_Hq2xK81pQ")),
    "agent-no-pending-action": (
        'assert "There is no pending action to return results for in this session." == str(err)',
        _aws("ValidationException", "InvokeAgent", "There is no pending action to return results for in this "
             "session.")),
    "agent-not-prepared": (
        'assert "is not prepared: call PrepareAgent before creating an alias." in why, "prepare the agent first"',
        _aws("ValidationException", "CreateAgentAlias", "Agent AG3X9KQ2 is not prepared: call PrepareAgent before "
             "creating an alias.")),
    "cloudtrail-bucket-policy": (
        'assert "with the condition s3:x-amz-acl = bucket-owner-full-control" in why, "the trail needs PutObject"',
        _aws("InsufficientS3BucketPolicyException", "CreateTrail", "Incorrect S3 bucket policy is detected for "
             "bucket: lab11-trail (no s3:PutObject). Allow cloudtrail.amazonaws.com s3:GetBucketAcl on the bucket "
             "and s3:PutObject on lab11-trail/AWSLogs/123456789012/* with the condition s3:x-amz-acl = "
             "bucket-owner-full-control.")),
    "moto-s3-no-such-bucket": (
        'assert err.response["Error"]["Message"] == "The specified bucket does not exist", "create the bucket before writing to it"',
        _aws("NoSuchBucket", "PutObject", "The specified bucket does not exist")),
}


@pytest.fixture(scope="module")
def shipped():
    from labkit.grading.redact import shipped_text

    return shipped_text()


@pytest.mark.parametrize("case", sorted(QUOTED_AWS_ERRORS))
def test_an_aws_error_that_a_hidden_check_quotes_is_shown(shipped, case):
    check, error = QUOTED_AWS_ERRORS[case]
    secrets = Secrets([_hidden(check)], [shipped])
    assert Secrets([_hidden(check)], []).leaked_by(error), "the case must quote words of the hidden check"
    assert secrets.learner_text(error) == error


@pytest.mark.parametrize("case", sorted(QUOTED_AWS_ERRORS))
def test_a_hidden_checks_own_words_stay_hidden_beside_an_aws_quote(shipped, case):
    check, error = QUOTED_AWS_ERRORS[case]
    secrets = Secrets([_hidden(check, 'assert spent <= 0.4217, "keep the monthly bill under the threshold of '
                               'forty-two cents"')], [shipped])
    for text in (check, check.split(", ")[-1], "keep the monthly bill under the threshold",
                 f"{error} (and: assert spent <= 0.4217)", base64.b64encode(check.encode()).decode()):
        assert secrets.learner_text(text) == HIDDEN, text
    assert secrets.learner_text(error) == error


def test_a_learner_exception_echoing_a_hidden_line_is_still_hidden(shipped):
    line = 'assert sorted(calls) == ["get_instance_price", "get_spot_price"], "both tools, in order"'
    secrets = Secrets([_hidden(line)], [shipped])
    for text in (line, line.upper(), line[::-1], codecs.encode(line, "rot13"), f"ValueError: {line[10:60]}",
                 _aws("ValidationException", "Converse", line)):
        assert secrets.leaked_by(text), text


def test_a_hidden_line_cannot_be_pieced_together_from_public_words():
    # Every 16 letters of the hidden line are in the public text, but never the line as a whole: a
    # message may not run on along the line through public windows into a stretch no public text holds.
    public = ["first = region_of_the_bucket_policy(x)", "second = the_bucket_policy_allows_put_object(y)"]
    line = "assert region_of_the_bucket_policy_allows_put_object(z)"
    secrets = Secrets([_hidden(line)], public)
    assert secrets.learner_text("region_of_the_bucket_policy") == "region_of_the_bucket_policy"
    assert secrets.learner_text("the_bucket_policy_allows_put_object") == "the_bucket_policy_allows_put_object"
    for text in ("region_of_the_bucket_policy_allows_put_object", "Region of the bucket policy, allows put object!",
                 "see: region-of-the-bucket-policy-allows-put-object (z)"):
        assert secrets.leaked_by(text), text


def test_public_phrases_apart_in_a_message_are_shown_though_a_hidden_line_joins_them():
    # Lab 05: a visible assert names the parameter and says "compare with the threshold parameter";
    # a hidden check reads "compare with the AccuracyThreshold parameter, not a number". The two
    # public phrases share "threshold" in the hidden line but stand apart in the message.
    public = ['assert ok, "a report of 0.81 passed the gate with AccuracyThreshold 0.95: compare with the '
              'threshold parameter, not a number"']
    secrets = Secrets([_hidden('assert right == threshold, "compare with the AccuracyThreshold parameter, not a number"')],
                      public)
    message = ("AssertionError: a report of 0.81 passed the gate with AccuracyThreshold 0.95: compare with the "
               "threshold parameter, not a number")
    assert secrets.learner_text(message) == message
    assert secrets.leaked_by("compare with the AccuracyThreshold parameter, not a number")


def test_text_of_the_released_learner_notebook_is_shown(lab):
    # The fixture's learner copy says "Read `data.csv` (columns `name,score`) into a list of dicts with
    # `score` as an `int`" in a Markdown cell; a hidden check quoting that sentence hides nothing.
    sentence = "into a list of dicts with `score` as an `int`"
    quoting = Secrets([_hidden(f'assert ok, "read the rows {sentence}"')], [])
    assert quoting.leaked_by(sentence)
    released = [c.source for c in lab.release_notebook.cells]
    assert Secrets([_hidden(f'assert ok, "read the rows {sentence}"')], released).learner_text(sentence) == sentence
    assert Secrets([_hidden(f'assert ok, "read the rows {sentence}"')], released).leaked_by(
        "read the rows into a list of dicts")


def test_every_text_file_of_the_courses_data_folder_is_public_and_nothing_else(tmp_path):
    from labkit.grading.assignment import course_data_text

    data = tmp_path / "data"
    (data / "crds").mkdir(parents=True)
    texts = {"crds/nodepool.yaml": "kind: NodePool", "prices.json": '{"ml.m5.large": 0.115}',
             "corpus.jsonl": '{"text": "spot capacity"}', "make_datasets.py": "def churn(): ...",
             "notes.md": "# Data", "table.csv": "a,b"}
    for name, text in texts.items():
        (data / name).write_text(text)
    (data / "weights.bin").write_bytes(b"\x00\x01 not text")
    (data / "linked.md").symlink_to(tmp_path / "elsewhere.md")
    (tmp_path / "elsewhere.md").write_text("outside the data folder")
    assert sorted(course_data_text(tmp_path)) == sorted(texts.values())
    assert course_data_text(tmp_path / "no-course") == []


def test_the_labs_secrets_know_what_the_learner_copy_ships(lab, secrets):
    # The assignment's own rule: the lab's released files and the installed package are public.
    assert secrets.learner_text("Write `mean(xs)` returning the arithmetic mean **as a float**.") == \
        "Write `mean(xs)` returning the arithmetic mean **as a float**."
    assert secrets.leaked_by("mean([2, 5]) should be 3.5: do not round")
    assert secrets.leaked_by('got "the scores should add up to 60"')


def test_a_visible_failure_goes_through_the_one_rule(lab):
    test = lab.test("test_mean")

    def failing(evalue: str, ename: str = "AssertionError"):
        error = {"output_type": "error", "ename": ename, "evalue": evalue, "traceback": []}
        cell = nbformat.v4.new_code_cell(outputs=[nbformat.from_dict(error)], execution_count=3)
        cell.metadata["labkit"] = {"failed_in": "visible"}
        return explain(test, cell, 0.0, lab)

    own = "mean must return a float, got Yes: use float(...)"
    assert failing(own).message == f"AssertionError: {own}"
    # A learner's own AssertionError (or the repr of an answer a visible assert prints) that echoes a
    # hidden line is hidden like any other text.
    for echo in ("mean([2, 5]) should be 3.5: do not round", "other = mean([2, 5])",
                 'assert type(other) is float and other == 3.5'):
        assert failing(echo).message == f"AssertionError: {HIDDEN}", echo
        assert failing(echo, "ValueError").message == f"ValueError: {HIDDEN}", echo
    error = _aws("ValidationException", "Converse", "A conversation must start with a user message.")
    assert failing(error, "Exception").message == f"Exception: {error}"


def test_a_template_keeps_its_words_and_checks_each_value(shipped):
    from labkit.grading.redact import message_templates

    hidden = _hidden('assert parse(LLAMA, {"stop_reason": "quota_exhausted"}).stop_reason == "max_tokens"',
                     'assert decide("iam:PassRole", {"iam:PassedToService": ["ec2.amazonaws.com"]}) != "allowed"')
    secrets = Secrets([hidden], [shipped])
    visible = 'assert reply.stop_reason == "max_tokens", f"{model_id}: stop reason {reply.stop_reason!r}, expected"'
    templates = message_templates(visible)
    shown = "us.meta.llama3-1-8b-instruct-v1:0: stop reason 'quota_exhausted', expected"
    assert secrets.leaked_by(shown) and secrets.learner_text(shown, templates=templates) == shown
    echoed = "us.meta.llama3-1-8b-instruct-v1:0: stop reason 'quota_exhausted}).stop_reason == max', expected"
    assert secrets.learner_text(echoed, templates=templates) == HIDDEN
    # The backend's own f-string (labkit.offline.cloudtrail) is a template too: a value next to its
    # words ("...amazonaws.com). Allow") is no hidden "amazonaws.com ... allowed".
    error = _aws("InsufficientS3BucketPolicyException", "CreateTrail", "Incorrect S3 bucket policy is detected for "
                 "bucket: lab11-trail (s3:GetBucketAcl on arn:aws:s3:::lab11-trail is implicitDeny for "
                 "cloudtrail.amazonaws.com). Allow cloudtrail.amazonaws.com s3:GetBucketAcl on the bucket and "
                 "s3:PutObject on lab11-trail/AWSLogs/123456789012/* with the condition s3:x-amz-acl = "
                 "bucket-owner-full-control.")
    assert secrets.leaked_by(error) and secrets.learner_text(error) == error
    sneaky = error.replace("implicitDeny for cloudtrail.amazonaws.com", 'iam:PassedToService": ["ec2.amazonaws.com')
    assert secrets.learner_text(sneaky) == HIDDEN


def test_a_python_literal_is_checked_string_by_string(shipped):
    secrets = Secrets([_hidden('assert healthy == {"lab11-high-latency": "OK", "lab11-low-accuracy": "OK"}, "both OK"',
                               'assert plan == ["reserve the capacity block first", "then scale the fleet"]')],
                      [shipped, "alarms named lab11-high-latency and lab11-low-accuracy"])
    state = "{'lab11-high-latency': 'OK', 'lab11-low-accuracy': 'ALARM'}"
    assert secrets.leaked_by(state) and secrets.learner_text(state) == state
    for text in ("['reserve the capacity block first']", "{'x': 'then scale the fleet, reserve the capacity'}",
                 'assert healthy == {"lab11-high-latency": "OK", "lab11-low-accuracy": "OK"}, "both OK"',
                 "[" * 3000 + "]" * 3000):
        assert secrets.learner_text(text, limit=6000) == HIDDEN or text.startswith("[["), text
    assert secrets.learner_text("{'a': 'reserve the capacity block first'}") == HIDDEN


def test_a_schema_errors_field_path_is_read_name_by_name(shipped):
    secrets = Secrets([_hidden('assert content["intended_uses"]["risk_rating"] == "High", "a credit decision '
                               'about people is high risk"')], [shipped])
    error = _aws("ValidationException", "CreateModelCard", "Model card content does not match the model card "
                 "schema: intended_uses.risk_rating: Input should be 'High', 'Medium', 'Low' or 'Unknown'")
    assert secrets.leaked_by(error) and secrets.learner_text(error) == error
    for text in ('content["intended_uses"]["risk_rating"] == "High"', "intended_uses risk_rating",
                 "i.n.t.e.n.d.e.d.u.s.e.s.r.i.s.k.r.a.t.i.n.g", "a credit decision about people is high risk"):
        assert secrets.learner_text(text) == HIDDEN, text


def test_the_names_of_the_aws_apis_a_lab_calls_are_public():
    from labkit.grading.redact import aws_words

    line = 'assert any(pair["GroupId"] == gid for p in perms for pair in p.get("UserIdGroupPairs", []))'
    shown = "[{'IpProtocol': 'tcp', 'UserIdGroupPairs': [], 'IpRanges': [{'CidrIp': '10.0.0.0/8'}]}]"
    assert Secrets([_hidden(line)], []).leaked_by(shown)
    assert Secrets([_hidden(line)], [aws_words(['ec2 = session.client("ec2")'])]).learner_text(shown) == shown
    assert Secrets([_hidden(line)], [aws_words(['s3 = session.client("s3")'])]).learner_text(shown) == HIDDEN


def test_template_matching_stays_fast_on_hostile_text(shipped):
    import time

    from labkit.grading.redact import message_templates

    secrets = Secrets([_hidden('assert total == 1234, "the bill must be 1234 dollars for the quarter"')], [shipped])
    templates = message_templates('x = f"{a} in {b} in {c} in {d} in {e} in {f} for {g}: {h}"')
    started = time.process_time()
    for text in (" in " * 120, "An error occurred (" * 30 + ") when calling the " * 10, "{'" * 200 + "'}" * 200):
        assert secrets.learner_text(text, templates=templates) in (text[:500], HIDDEN)
    assert time.process_time() - started < 5.0


def test_only_lines_inside_a_hidden_block_are_hidden():
    source = ('assert f(1) == 2, "f(1) should be 2"\n### BEGIN HIDDEN TESTS\nassert f(5) == 10, "secret case"\n'
              '### END HIDDEN TESTS\nassert f(0) == 0, "f(0) should be 0"')
    test = TestSpec("t", 1.0, source, "", True)
    assert test.hidden_lines() == {2, 3, 4}

    def failing_at(line: int, message: str):
        error = {"output_type": "error", "ename": "AssertionError", "evalue": message,
                 "traceback": [f"Cell In[7], line {line}"]}
        return explain(test, nbformat.v4.new_code_cell(outputs=[nbformat.from_dict(error)], execution_count=7), 0.0)

    after_end = failing_at(5, "f(0) should be 0")
    assert not after_end.hidden_failure and after_end.message == "AssertionError: f(0) should be 0"
    inside = failing_at(3, "secret case")
    assert inside.hidden_failure and inside.message == "a hidden test failed (AssertionError): secret case"
    assert not failing_at(1, "f(1) should be 2").hidden_failure
    assert TestSpec("u", 1.0, "### BEGIN HIDDEN TESTS\nassert x", "", True).hidden_lines() == {1, 2}


@pytest.mark.skipif(os.geteuid() != 0 or not sys.platform.startswith("linux"), reason="uids are leased as root")
def test_concurrent_runs_never_lease_the_same_uid():
    import subprocess

    held = [UidLease(slot) for slot in (0, 0, 1)]
    other_run = subprocess.run([sys.executable, "-c", "from labkit.grading.sandbox import UidLease\n"
                                "print(*[UidLease(0).uid for _ in range(3)])"], capture_output=True, text=True, check=True)
    try:
        uids = [lease.uid for lease in held] + [int(uid) for uid in other_run.stdout.split()]
        # The other run's leases ended with its process; ours are still held, so it got none of them.
        assert None not in uids and len(set(uids[:3])) == 3 and not set(uids[:3]) & set(uids[3:]), uids
    finally:
        for lease in held:
            lease.release()


# ---- output bookkeeping ----------------------------------------------------------------------

def test_output_bookkeeping_is_linear(monkeypatch):
    calls = []
    real = json.dumps
    monkeypatch.setattr(execute.json, "dumps", lambda obj, *a, **k: calls.append(1) or real(obj, *a, **k))
    client = execute.LimitedClient.__new__(execute.LimitedClient)
    client.truncated = set()
    client.output_limit = 10_000_000
    monkeypatch.setattr(execute.NotebookClient, "output",
                        lambda self, outs, msg, display_id, cell_index: outs.append(
                            nbformat.v4.new_output("display_data", data={"text/plain": str(len(outs))})) or outs[-1])
    outs: list = []
    for _ in range(10_000):
        client.output(outs, {}, None, 0)
    assert len(outs) == 10_000
    assert len(calls) <= 10_001, len(calls)  # one measure per output, never the whole list again
    client.output_limit = 500_000
    more: list = []
    for _ in range(100_000):
        client.output(more, {}, None, 1)
    assert 1 in client.truncated and len(more) < 30_000


# ---- cgroups and the disk watcher ---------------------------------------------------------------

def test_empty_cgroups_of_killed_runs_are_swept_and_nothing_else(tmp_path):
    import subprocess

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    dead, alive = f"labkit-grading-{gone.pid}-abc123", f"labkit-grading-{os.getpid()}-def456"
    (tmp_path / dead / "slot-1").mkdir(parents=True)
    (tmp_path / dead / "slot-2").mkdir()
    busy = f"labkit-grading-{gone.pid}-0a0b0c"
    (tmp_path / busy / "slot-1").mkdir(parents=True)
    (tmp_path / busy / "slot-1" / "cgroup.procs").write_text("4242")  # stands for a group still in use
    (tmp_path / alive / "slot-1").mkdir(parents=True)
    (tmp_path / "other-service").mkdir()
    (tmp_path / f"labkit-grading-{gone.pid}").mkdir()  # not a run's name
    removed = fairshare.sweep_stale([tmp_path, tmp_path / "missing"])
    assert removed == [tmp_path / dead]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [busy, alive, "other-service", f"labkit-grading-{gone.pid}"])


@pytest.mark.skipif(os.geteuid() != 0, reason="cgroups need root")
def test_cgroup_groups_are_made_killed_and_removed():
    import subprocess
    import time

    tree, why = fairshare.create_tree()
    if tree is None:
        pytest.skip(f"no cgroups here: {why}")
    try:
        group = tree.group("slot-test", 8)
        join = group.procs_files()
        proc = subprocess.Popen([sys.executable, "-c", "import os, time\nfor _ in range(20):\n    try:\n"
                                 "        os.fork() or time.sleep(60)\n    except OSError:\n        pass\n"
                                 "time.sleep(60)"],
                                preexec_fn=lambda: [Path(f).write_text(str(os.getpid())) for f in join])
        time.sleep(1.0)
        assert 1 < len(group.pids()) <= 8  # pids.max holds the fork loop
        killed = group.kill()
        assert proc.pid in killed and not group.pids()
        proc.wait(5)
    finally:
        tree.remove()
    assert not any(folder.exists() for folder in tree.folders)


def test_disk_usage_reads_sizes_without_following_or_opening(tmp_path):
    (tmp_path / "big").write_bytes(b"x" * 300_000)
    (tmp_path / "link").symlink_to("/usr")
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "deep" / "er").mkdir(parents=True)
    (tmp_path / "deep" / "er" / "f").write_bytes(b"y" * 100_000)
    used = execute._disk_usage(tmp_path, 10**9)
    assert 400_000 <= used < 1_000_000
    assert execute._disk_usage(tmp_path, 10**9, max_entries=3) > 10**9


# ---- the agent, in a shell of its own (a subprocess, so IPython's singletons stay out of pytest) -----

AGENT_SCENARIOS = r'''
import builtins, json, os, sys, types, linecache
from IPython.core.interactiveshell import InteractiveShell
shell = InteractiveShell.instance()
shell.kernel = None
builtins.get_ipython = lambda: shell
agent = types.ModuleType("_labkit_grading_agent")
sys.modules[agent.__name__] = agent
exec(compile(open(sys.argv[1]).read(), "<labkit grading agent>", "exec"), agent.__dict__)
agent.start({"roots": json.loads(sys.argv[2]), "preload": [], "modules": [], "module_prefixes": []})
out = {}
ns = shell.user_ns
b64 = lambda s: __import__("base64").b64encode(s.encode()).decode()
def run(kind, code):
    try:
        agent.run(kind, b64(code))
        return "ok"
    except BaseException as err:
        return f"{type(err).__name__}: {err}"
baseline = json.loads(agent.check("n", full=True))["digest"]
out["visible_binds"] = [run("visible", "seen = 1"), ns.get("seen")]
out["hidden_binds"] = [run("hidden", "SECRET = [2, 5]\nq = 'hidden q'"), "SECRET" in ns, "q" in ns]
out["later_hidden_sees_it"] = run("hidden", "assert SECRET == [2, 5]")
ns["q"] = "the notebook's q"
out["rebound_wins"] = run("hidden", "assert q == \"the notebook's q\", q")
ns["answer"] = "the learner's"
out["fallback_rebinds"] = [run("hidden", "answer = 'the reference'\n_private = 1"), ns.get("answer"), "_private" in ns]
ns["isinstance"] = lambda *a: True
out["shadowed"] = run("visible", "assert isinstance(1, str)")
del ns["isinstance"]
ns["Leak"] = type("SecretNameXYZ", (ValueError,), {})
out["custom_exception"] = run("visible", "raise Leak('from the learner')")
out["builtins_patched_do_not_help"] = run("visible", "import builtins\nbuiltins.len = lambda x: 3\nassert len([]) == 3")
builtins.len = agent._P["len"]
exec("""
import sys, types
def peek():
    raise AssertionError(sys._getframe(1).f_code.co_consts[0])
def spoof():
    fake = types.TracebackType(None, sys._getframe(1), 0, 1)
    raise AssertionError("the expected value").with_traceback(fake)
class Row(dict):
    def __getitem__(self, key):
        raise KeyError("the expected value")
""", ns)
out["hidden_own_message"] = run("hidden", "assert 1 == 2, 'the instructor wrote this'")
out["hidden_by_learner"] = run("hidden", "'the expected value'\npeek()")
out["hidden_spoofed_traceback"] = run("hidden", "spoof()")
out["hidden_learner_dunder"] = run("hidden", "Row()['score']")
out["hidden_helper_defined"] = run("hidden", "def _check(ok, why):\n    assert ok, why")
out["hidden_helper"] = run("hidden", "_check(False, 'a helper of the tests says this')")
out["hidden_comprehension"] = run("hidden", "[1 / 0 for _ in range(1)]")
out["hidden_library"] = run("hidden", "import json\njson.loads('{')")
out["visible_by_learner"] = run("visible", "peek()")
out["unchanged"] = json.loads(agent.check("n"))["digest"] == baseline
real = InteractiveShell.run_cell
InteractiveShell.run_cell = lambda self, *a, **k: real(self, *a, **k)
out["patched"] = json.loads(agent.check("n"))["digest"] != baseline
InteractiveShell.run_cell = real
out["restored"] = json.loads(agent.check("n"))["digest"] == baseline
linecache.cache["/tmp/x/cell.py"] = (1, None, ["agent.run('hidden', 'xyz')  # marker-123\n"], "/tmp/x/cell.py")
agent.clean("marker-123")
out["cleaned"] = "/tmp/x/cell.py" not in linecache.cache
print("RESULT", json.dumps(out))
'''


def test_the_agent_runs_tests_in_a_clean_context_and_notices_changes(tmp_path):
    import subprocess

    from labkit.grading import agent
    from labkit.grading.pipeline import install_roots

    script = tmp_path / "scenarios.py"
    script.write_text(AGENT_SCENARIOS)
    done = subprocess.run([sys.executable, str(script), agent.__file__, json.dumps(install_roots())],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path,
                          env={**os.environ, "IPYTHONDIR": str(tmp_path / "ipython")})
    assert "RESULT" in done.stdout, done.stderr[-3000:]
    out = json.loads(done.stdout.split("RESULT", 1)[1])
    assert out["visible_binds"] == ["ok", 1]
    assert out["hidden_binds"] == ["ok", False, False]  # never in the learner's namespace
    assert out["later_hidden_sees_it"] == "ok" and out["rebound_wins"] == "ok"
    # a reference fallback replaces the learner's answer for later cells (exercises do not cascade)
    assert out["fallback_rebinds"] == ["ok", "the reference", False]
    assert out["shadowed"].startswith("RuntimeError: the test was not run")
    assert out["custom_exception"] == "ValueError: from the learner"
    assert out["builtins_patched_do_not_help"].startswith("AssertionError")
    # A hidden test shows only what the tests' own code raised: a message raised by the submission's
    # code (it could carry a constant read from the test's frame) is marked as the submission's.
    from labkit.grading.agent import SUBMISSION_RAISED

    assert out["hidden_own_message"] == "AssertionError: the instructor wrote this"
    assert out["hidden_helper_defined"] == "ok"
    assert out["hidden_helper"] == "AssertionError: a helper of the tests says this"
    assert out["hidden_comprehension"] == "ZeroDivisionError: division by zero"
    for case in ("hidden_by_learner", "hidden_spoofed_traceback", "hidden_learner_dunder", "hidden_library"):
        assert SUBMISSION_RAISED in out[case], (case, out[case])
    assert out["hidden_by_learner"] == f"AssertionError: {SUBMISSION_RAISED} the expected value"
    assert out["visible_by_learner"] == "AssertionError: None"  # visible: the redaction rule judges it
    assert out["unchanged"] and out["patched"] and out["restored"] and out["cleaned"]


# ---- parsing cells from several grading threads -------------------------------------------------

def test_cells_parse_from_many_threads_at_once():
    """One grading thread per submission parses cells; CPython 3.11 can corrupt the AST constructor's
    recursion counter when two threads parse at once (python/cpython#106905). None of them may fail."""
    from concurrent.futures import ThreadPoolExecutor

    from labkit.grading.pysource import parse_cell

    deep = "x = " + "[" * 60 + "1" + "]" * 60 + "\n"
    source = "%matplotlib inline\n!ls\n" + "".join(f"def f{i}(a):\n    return {{'k': [a, (a, {i})]}}\n" for i in range(200)) + deep

    class Cycle:  # garbage whose collection, mid-parse, lets another thread run (how the race happens)
        def __del__(self) -> None:
            pass

    def parse(_: int) -> int:
        count = 0
        for _ in range(20):
            for _ in range(50):
                cycle = Cycle()
                cycle.self = cycle
            count += len(parse_cell(source).body)
        return count

    with ThreadPoolExecutor(max_workers=8) as pool:
        counts = list(pool.map(parse, range(32)))
    assert counts == [20 * 201] * 32


def test_a_cell_with_magics_parses_and_keeps_its_line_numbers():
    from labkit.grading.pysource import parse_cell

    tree = parse_cell("%%time\n!pip list\nvalue = 1\n")
    assert tree is not None and tree.body[0].lineno == 3
    assert parse_cell("def broken(:\n") is None


def test_a_template_fits_from_the_right_when_its_separator_also_stands_in_a_value(shipped):
    # Lab 10: "fix: " + "; ".join(findings), each finding the package's f"{name}: {base} without .sync ...";
    # the first ": " belongs to the visible prefix, so the state name and the ARN are split at the last.
    from labkit.grading.redact import Template

    secrets = Secrets([_hidden('assert review.integrations.get("Train") == "sagemaker:createTrainingJob.sync"')],
                      [shipped, 'resource = "arn:aws:states:::sagemaker:createTrainingJob"'])
    message = "fix: Train: sagemaker:createTrainingJob without .sync ends when the job starts, not when it finishes"
    assert secrets.leaked_by(message)
    assert secrets.learner_text(message) == message
    assert Template(("", ": ", " without .sync")).values_in("a: b: c without .sync", from_right=True) == [(0, 4), (6, 7)]
    assert secrets.learner_text("fix: Train: sagemaker:createTrainingJob.sync without .sync") == HIDDEN


def test_what_the_learner_wrote_is_shown_back_to_them():
    # Lab 08: the learner wrote perUnitStorageThroughput: 250 (a number); the validator says so, and a
    # hidden check reads "perUnitStorageThroughput") == "250". Their own text is no secret to them.
    secrets = Secrets([_hidden('assert params.get("perUnitStorageThroughput") == "250", "written as a string"')], [])
    message = "parameters.perUnitStorageThroughput: 250 is not of type 'string', 'null'"
    assert secrets.learner_text(message) == HIDDEN
    own = secrets.own_windows(['parameters:\n  perUnitStorageThroughput: 250\n'])
    assert secrets.learner_text(message, own=own) == message
    other = secrets.own_windows(['parameters:\n  perUnitStorageThroughput: "125"\n'])
    assert secrets.learner_text(message, own=other) == HIDDEN



# ---- warm kernels end as exec-ed kernels do ----------------------------------------------------


def test_a_warm_forked_kernel_runs_its_exit_handlers(tmp_path, monkeypatch):
    """A kernel forked from the warm process ends with ``os._exit``; it runs the exit handlers first, as
    an exec-ed kernel does: the course's backend stops the model servers and jobs it started there
    (outside the kernel's process group), so the grader never counts them as the submission's."""
    from ipykernel import kernelapp

    from labkit.grading import warm

    marker = tmp_path / "ran"
    pid = os.fork()
    if pid == 0:  # the kernel: ipykernel itself is not started, only its way out is taken
        try:
            import atexit

            monkeypatch.setattr(kernelapp, "launch_new_instance", lambda: None)
            atexit.register(lambda: marker.write_text("stopped what it started"))
            warm.start_in_place([sys.executable, "-m", "ipykernel_launcher", "-f", "kernel.json"], {"HOME": "/"})
        finally:
            os._exit(3)  # not reached: start_in_place ends the process itself
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert marker.read_text() == "stopped what it started"
