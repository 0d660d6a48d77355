"""The root cause of a failure, read from the failing processes' output (labkit.offline.failures)."""
from __future__ import annotations

from labkit.offline import failures

SHAPES = """\
[rank1]: Traceback (most recent call last):
[rank1]:   File "/opt/ml/input/data/code/train.py", line 9, in <module>
[rank1]:     y = x @ w  # shapes mismatch
[rank1]:         ~~^~~
[rank1]: RuntimeError: mat1 and mat2 shapes cannot be multiplied (3x7 and 4x5)
E1205 20:04:52.204000 16302 torch/distributed/elastic/multiprocessing/api.py:1002] failed (exitcode: 1)
Traceback (most recent call last):
File "/venv/bin/torchrun", line 6, in <module>
sys.exit(main())
^^^^^^
File "/venv/lib/python3.11/site-packages/torch/distributed/launcher/api.py", line 383, in launch_agent
raise ChildFailedError(
torch.distributed.elastic.multiprocessing.errors.ChildFailedError:
============================================================
train.py FAILED
Root Cause (first observed failure):
[0]:
  rank      : 1 (local_rank: 0)
  exitcode  : 1 (pid: 16465)
============================================================
Command failed with exit code 1. Traceback: Traceback (most recent call last):
  File "/opt/ml/input/data/sm_drivers/common/utils.py", line 193, in execute_commands
    raise subprocess.CalledProcessError(exitcode, commands)
subprocess.CalledProcessError: Command '['torchrun', '--nnodes=2']' returned non-zero exit status 1.
"""

PEER_GONE = """\
[rank0]: Traceback (most recent call last):
[rank0]:   File "/opt/ml/input/data/code/train.py", line 10, in <module>
[rank0]:     dist.all_reduce(t)
[rank0]:   File "/venv/lib/python3.11/site-packages/torch/distributed/distributed_c10d.py", line 3252, in all_reduce
[rank0]:     work.wait()
[rank0]: RuntimeError: [gloo/transport/tcp/pair.cc:553] Connection closed by peer [127.0.0.1]:2697.
Traceback (most recent call last):
subprocess.CalledProcessError: Command '['torchrun']' returned non-zero exit status 1.
"""


def timed(text: str, start: float = 0.0) -> list[tuple[float, str]]:
    return [(start + i * 0.001, line) for i, line in enumerate(text.splitlines())]


def test_the_failing_ranks_own_traceback_not_the_launchers_wrappers():
    cause = failures.root_cause({"algo-2": timed(SHAPES)})
    assert cause.lines[0] == "RuntimeError: mat1 and mat2 shapes cannot be multiplied (3x7 and 4x5)"
    assert cause.lines[1:] == ['File "/opt/ml/input/data/code/train.py", line 9, in <module>',
                               "y = x @ w  # shapes mismatch"]
    assert cause.source == "algo-2 rank 1"
    assert "ChildFailedError" not in cause.text and "CalledProcessError" not in cause.text
    assert cause.text.splitlines()[1].startswith('  File "/opt/ml')


def test_a_peer_that_failed_first_in_time_is_still_only_a_consequence():
    # algo-1 printed its "connection closed" before algo-2's cause reached the log.
    cause = failures.root_cause({"algo-1": timed(PEER_GONE, 0.0), "algo-2": timed(SHAPES, 5.0)})
    assert cause.source == "algo-2 rank 1" and "shapes cannot be multiplied" in cause.text


def test_of_two_real_failures_the_first_printed_wins():
    other = SHAPES.replace("mat1 and mat2 shapes cannot be multiplied (3x7 and 4x5)", "CUDA out of memory")
    outputs = {"algo-1": timed(other.replace("[rank1]", "[rank0]"), 3.0), "algo-2": timed(SHAPES, 1.0)}
    assert "shapes" in failures.root_cause(outputs).text
    outputs = {"algo-1": timed(other.replace("[rank1]", "[rank0]"), 1.0), "algo-2": timed(SHAPES, 3.0)}
    assert "out of memory" in failures.root_cause(outputs).text


def test_the_frame_shown_is_the_learners_line_not_the_librarys():
    cause = failures.root_cause({"algo-1": timed(PEER_GONE)})
    assert cause.lines[1] == 'File "/opt/ml/input/data/code/train.py", line 10, in <module>'
    assert cause.consequence


def test_chained_exceptions_are_one_failure_ending_with_the_last():
    text = """\
Traceback (most recent call last):
  File "train.py", line 3, in load
    open("/opt/ml/input/data/train/x.csv")
FileNotFoundError: [Errno 2] No such file or directory: '/opt/ml/input/data/train/x.csv'

During handling of the above exception, another exception occurred:

Traceback (most recent call last):
  File "train.py", line 7, in <module>
    load()
RuntimeError: the train channel is empty
"""
    found = failures.tracebacks(timed(text))
    assert len(found) == 1 and found[0].lines[0] == "RuntimeError: the train channel is empty"
    assert found[0].at == 0.0


def test_a_handled_traceback_printed_earlier_is_not_the_cause():
    text = """\
Traceback (most recent call last):
  File "train.py", line 2, in <module>
KeyError: 'optional setting'
epoch 1 loss 0.3
Traceback (most recent call last):
  File "train.py", line 9, in <module>
    model.fit(x)
ValueError: Input contains NaN
"""
    assert failures.root_cause({"algo-1": timed(text)}).lines[0] == "ValueError: Input contains NaN"


def test_tracebacks_whose_indentation_a_driver_logger_stripped():
    text = """\
Traceback (most recent call last):
File "/opt/ml/code/train.py", line 4, in <module>
main()
File "/opt/ml/code/train.py", line 2, in main
raise ValueError("label column 'churn' not found")
ValueError: label column 'churn' not found
"""
    cause = failures.root_cause({"algo-1": timed(text)})
    assert cause.lines == ["ValueError: label column 'churn' not found",
                           'File "/opt/ml/code/train.py", line 2, in main',
                           "raise ValueError(\"label column 'churn' not found\")"]


def test_an_abort_without_traceback_is_told_by_its_fatal_lines():
    text = """\
rank=0 epoch=5 step=72 train_loss=0.1
terminate called without an active exception
E1205 torch/distributed/elastic/multiprocessing/api.py] failed (exitcode: -6) local_rank: 0
torch.distributed.elastic.multiprocessing.errors.ChildFailedError:
  traceback : Signal 6 (SIGABRT) received by PID 16464
"""
    cause = failures.root_cause({"algo-1": timed(text)})
    assert not cause.traceback
    assert cause.lines == ["terminate called without an active exception",
                           "traceback : Signal 6 (SIGABRT) received by PID 16464"]


def test_nothing_recognisable_falls_back_to_the_last_lines():
    outputs = {"algo-1": timed("starting\nloading data\nexit status 3\n")}
    assert failures.root_cause(outputs) is None
    assert failures.explain(outputs, "algo-1") == "starting\nloading data\nexit status 3"


def test_fit_cuts_the_message_never_the_prefix_or_suffix():
    out = failures.fit("AlgorithmError: ", "x" * 2000 + "\nValueError: the error", '"\nCommand "python train.py", exit code: 1')
    assert len(out) == 1024 and out.startswith("AlgorithmError: ") and out.endswith("exit code: 1")
    assert "..." in out and 'ValueError: the error"\nCommand' in out  # the end of a traceback is the error
