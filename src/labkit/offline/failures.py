"""The root cause of a failed job, endpoint or step, read from the failing processes' own output.

A failed job's log ends with its launchers' wrappers: torchrun's ``ChildFailedError``, then
the SDK v3 driver's ``CalledProcessError``, then the shell driver's exit. The cause is
earlier: the traceback (or fatal line) of the rank that failed first. On a two-host job the
other host usually fails too, a moment later and only because its peer went away ("Connection
closed by peer"). :func:`root_cause` reads every host's output and returns the evidence a
learner would look for in CloudWatch: the first failure that is neither a wrapper nor such a
consequence, its exception line and the line of the learner's code that raised it.

Each host's output is a list of ``(time, line)`` pairs as the engine read them, so "first" is
the order in which the lines were printed, across hosts.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

# Launchers that wrap the real failure: their traceback is never the cause.
WRAPPERS = ("CalledProcessError", "ChildFailedError")
# A process that fails because a peer died: evidence of last resort.
CONSEQUENCES = re.compile(
    r"Connection closed by peer|Connection reset by peer|remote worker crashing|Broken pipe|"
    r"DistNetworkError|DistStoreError|recvValue failed|NCCL communicator was aborted|"
    r"Socket Timeout|timed out waiting for peer|failed to recv, got 0 bytes", re.I)
# Lines that say a process died without a Python traceback (C++ abort, signals, the OOM killer).
FATAL = re.compile(
    r"terminate called|Fatal Python error|Segmentation fault|core dumped|^Killed\b|what\(\):|"
    r"Signal \d+ \(SIG\w+\) received|^Aborted\b|Out of memory|std::bad_alloc|MemoryError")
_PREFIX = re.compile(r"^\[(?:rank|default)(\d+)\]:\s?")
_TRACEBACK = "Traceback (most recent call last):"
_CHAINED = ("During handling of the above exception", "The above exception was the direct cause")
_EXCEPTION = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt|Warning|Failure|Fault)\b")
_FRAME = re.compile(r'^\s*File "[^"]*", line \d+')
_LIBRARY = re.compile(r'File "[^"]*(/site-packages/|/dist-packages/|/lib/python3[.\d]*/|<frozen )')

Line = tuple[float, str]


@dataclass
class Evidence:
    """One failure seen in one process's output."""

    at: float                      # when its first line was printed
    source: str                    # host (and rank) it came from
    lines: list[str] = field(default_factory=list)   # exception line first, then where it was raised
    consequence: bool = False      # failed because a peer went away
    traceback: bool = True         # a Python traceback (else fatal lines: an abort, a signal)

    @property
    def text(self) -> str:
        """As the output shows it: the exception line; below it, indented, the frame that raised it."""
        if not self.traceback:
            return "\n".join(self.lines)
        return "\n".join([self.lines[0], *(("  " if ln.startswith("File ") else "    ") + ln
                                           for ln in self.lines[1:])])


def _split_ranks(lines: Iterable[Line]) -> dict[str, list[Line]]:
    """Lines by the rank that printed them (torchrun prefixes ``[rankN]:``); "" for the rest."""
    out: dict[str, list[Line]] = {}
    for at, line in lines:
        match = _PREFIX.match(line)
        rank = f"rank {match.group(1)}" if match else ""
        out.setdefault(rank, []).append((at, line[match.end():] if match else line))
    return out


def _is_exception_line(line: str, indented: bool) -> bool:
    if not line.strip() or line.startswith(_TRACEBACK):
        return False
    if _EXCEPTION.match(line):
        return True
    # In a normal traceback the frames are indented and the exception line is not. (A driver's
    # logger may strip the indentation; then only the pattern above can tell.)
    return indented and not line[0].isspace() and not line.startswith("File ")


def tracebacks(lines: Sequence[Line], source: str = "") -> list[Evidence]:
    """Every Python traceback in ``lines``, as its exception line and last frame.

    A chain ("During handling of the above exception...") is one failure: it starts when its
    first traceback was printed and ends with the exception that stopped the process.
    """
    found: list[Evidence] = []
    chained = False
    i = 0
    while i < len(lines):
        if not lines[i][1].lstrip().startswith(_TRACEBACK):
            chained = chained and not lines[i][1].strip() or lines[i][1].startswith(_CHAINED)
            i += 1
            continue
        start, frames, indented = lines[i][0], [], False
        i += 1
        while i < len(lines) and not _is_exception_line(lines[i][1], indented):
            text = lines[i][1]
            if _FRAME.match(text):
                indented = indented or text[0].isspace()
                code = lines[i + 1][1].strip() if i + 1 < len(lines) else ""
                frames.append([text.strip()] + ([code] if code and not _FRAME.match(code) else []))
            i += 1
        # Where it was raised: the learner's own line (the last frame outside libraries), if any.
        own = [f for f in frames if not _LIBRARY.search(f[0])]
        frame = (own or frames or [[]])[-1]
        if i >= len(lines):
            break
        exception = lines[i][1].strip()
        if chained and found:
            start = found.pop().at
        found.append(Evidence(start, source, [exception, *frame], bool(CONSEQUENCES.search(exception))))
        chained = False
        i += 1
    return found


def _is_wrapper(evidence: Evidence) -> bool:
    name = evidence.lines[0].split(":", 1)[0] if evidence.lines else ""
    return name.rsplit(".", 1)[-1] in WRAPPERS


def host_evidence(lines: Sequence[Line], source: str) -> list[Evidence]:
    """What one host's output says about its failure, best evidence of each rank."""
    found: list[Evidence] = []
    for rank, rank_lines in _split_ranks(lines).items():
        where = f"{source} {rank}".strip()
        caught = [e for e in tracebacks(rank_lines, where) if not _is_wrapper(e)]
        if caught:
            # The traceback that ended the rank is its last; a handled one printed earlier is not.
            found.append(caught[-1])
            continue
        fatal = [(at, text.strip()) for at, text in rank_lines if FATAL.search(text)]
        if fatal:
            found.append(Evidence(fatal[0][0], where, list(dict.fromkeys(t for _, t in fatal))[:3],
                                  traceback=False))
    return found


def root_cause(outputs: Mapping[str, Sequence[Line]]) -> Evidence | None:
    """The first failure among every host's output that is not a peer's consequence; None if none."""
    candidates = [e for source, lines in outputs.items() for e in host_evidence(lines, source)]
    if not candidates:
        return None
    return min(candidates, key=lambda e: (e.consequence, e.at))


def last_lines(lines: Sequence[Line], limit: int = 3) -> str:
    """The last non-empty lines of an output: what is left to show when nothing above matched."""
    text = [line.strip() for _, line in lines if line.strip()]
    return "\n".join(text[-limit:])


def explain(outputs: Mapping[str, Sequence[Line]], fallback: str = "") -> str:
    """The root cause as text (exception line, then where it was raised), else ``fallback``'s last lines."""
    cause = root_cause(outputs)
    if cause is not None:
        return cause.text
    if fallback and fallback in outputs:
        return last_lines(outputs[fallback])
    return ""


def timed(lines: Iterable[str]) -> list[Line]:
    """Untimed lines (a text's lines) as ``(index, line)`` pairs, in order."""
    return [(float(i), line) for i, line in enumerate(lines)]


def fit(prefix: str, message: str, suffix: str = "", limit: int = 1024) -> str:
    """``prefix + message + suffix`` within ``limit`` characters, cutting the message, never the frame.

    The message keeps its end: a traceback's last line is the error itself.
    """
    room = limit - len(prefix) - len(suffix)
    if room <= 0:
        return (prefix + message + suffix)[:limit]
    if len(message) > room:
        message = "..." + message[len(message) - max(0, room - 3):]
    return prefix + message + suffix
