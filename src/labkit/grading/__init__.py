"""The autograder: ``labkit grade <lab> <submissions>`` and :func:`grade` from Python.

Grading is a short pipeline of named steps, each a module:
``submissions`` (intake: private copies, nothing followed) -> ``restore`` (rebuild from the
lab source) -> ``sandbox`` + ``fairshare`` (isolate) -> ``execute`` (+ ``agent`` in the kernel,
for tests) -> ``score`` (+ ``redact``) -> ``feedback`` -> ``export``; ``pipeline`` composes
them, ``assignment`` prepares the lab once per run in a private nbgrader course and ``warm``
forks each kernel from a process that imported the lab's modules once. See docs/grading.md
(its threat model says what each mode guarantees).
"""

__all__ = ["GradeRun", "GradingRefused", "Limits", "SubmissionResult", "grade"]


def __getattr__(name: str):
    # lazy, so the sandbox launcher (python -m labkit.grading.sandbox) stays small and fast
    if name in __all__:
        from . import pipeline

        return getattr(pipeline, name)
    raise AttributeError(name)
