"""The lab being graded, prepared once per run in a private nbgrader course folder.

``prepare_assignment`` copies the lab's nbgrader source (``solutions/<lab>/``) into a
folder only the grader can read, runs nbgrader's ``generate_assignment`` there through
:class:`nbgrader.apps.NbGraderAPI` (which records every graded cell, its points and its
full source, hidden tests included, in a private gradebook) and keeps the generated
learner version: the released files are what each submission's scratch folder starts from.
Nothing here executes learner code.
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

COURSE_ID = "labkit-grading"
HIDDEN_BEGIN = "### BEGIN HIDDEN TESTS"
HIDDEN_END = "### END HIDDEN TESTS"
_IGNORE = shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__", "*.pyc", "feedback", ".*")


class AssignmentError(RuntimeError):
    """The lab cannot be prepared for grading; the message says why and what to do."""


@dataclass
class TestSpec:
    """One autograded test cell: its id, points, full source and what a learner may see."""

    grade_id: str
    points: float
    source: str
    visible_source: str
    hidden: bool

    def hidden_lines(self) -> set[int]:
        """1-based lines of ``source`` inside a hidden block, its BEGIN and END markers included
        (a block without END runs to the end of the cell); visible lines after END are not hidden."""
        lines, inside = set(), False
        for number, line in enumerate(self.source.splitlines(), start=1):
            if line.strip() == HIDDEN_BEGIN:
                inside = True
            if inside:
                lines.add(number)
            if line.strip() == HIDDEN_END:
                inside = False
        return lines


@dataclass
class Assignment:
    """A lab prepared for grading: private course folder, gradebook, released files."""

    lab: str
    course_root: Path
    source_dir: Path
    private_course: Path
    db_url: str
    release_dir: Path
    notebook_name: str
    release_notebook: nbformat.NotebookNode
    tests: list[TestSpec] = field(default_factory=list)
    source_notebook: nbformat.NotebookNode | None = None  # solutions and hidden tests: never shown to learners
    _secrets: object = field(default=None, repr=False)

    @property
    def secrets(self):
        """The lab's hidden lines less what the learner's copy holds anyway (the released lab, the
        package, AWS error texts, the names of the AWS APIs the lab calls), for
        :mod:`labkit.grading.redact` (computed once)."""
        if self._secrets is None:
            from .redact import PublicText, Secrets, aws_words, file_text, shipped_text

            released = [c.source for c in self.release_notebook.cells]
            released += [file_text(path) for path in self.released_files()]
            released += course_data_text(self.course_root)
            code = [c.source for c in self.release_notebook.cells if c.cell_type == "code"]
            self._secrets = Secrets([t.source for t in self.tests],
                                    [PublicText(released), shipped_text(), aws_words(code)])
        return self._secrets

    @property
    def max_score(self) -> float:
        return float(sum(t.points for t in self.tests))

    def test(self, grade_id: str) -> TestSpec | None:
        return next((t for t in self.tests if t.grade_id == grade_id), None)

    def source_cell(self, grade_id: str) -> nbformat.NotebookNode | None:
        cells = self.source_notebook.cells if self.source_notebook is not None else []
        return next((c for c in cells if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id), None)

    def released_files(self) -> list[Path]:
        """Files a submission's scratch folder starts with (not the notebook itself)."""
        return sorted(p for p in self.release_dir.rglob("*")
                      if p.is_file() and p.name != f"{self.notebook_name}.ipynb")


def course_data_text(course_root: Path) -> list[str]:
    """The text of every file under the course's ``data/`` (CRDs, price lists, corpora, the script
    that makes the data sets): public words, since the learner copy ships the folder (``labkit
    release``) and the kernel reads it. :func:`labkit.grading.redact.file_text` decides what is text."""
    from .redact import file_text

    return [text for path in sorted((course_root / "data").rglob("*")) if (text := file_text(path))]


def find_course_root(start: Path | None = None) -> Path:
    """The course folder: the first parent of ``start`` (default cwd) with ``solutions/``."""
    here = Path(start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "solutions").is_dir() and (folder / "autograder").is_dir():
            return folder
    packaged = Path(__file__).resolve().parents[3]
    if (packaged / "solutions").is_dir():
        return packaged
    raise AssignmentError(f"No course folder (with solutions/ and autograder/) above {here}: "
                          "run from the course repository or pass course_root=.")


def locate_source(lab: str, course_root: Path) -> Path:
    """The nbgrader source folder of ``lab`` (``solutions/<lab>/`` with ``<lab>.ipynb``)."""
    folder = course_root / "solutions" / lab
    if not (folder / f"{lab}.ipynb").is_file():
        known = sorted(p.name for p in (course_root / "solutions").glob("*") if p.is_dir())
        raise AssignmentError(f"No nbgrader source for lab {lab!r}: expected {folder / (lab + '.ipynb')}. "
                              f"Labs in {course_root / 'solutions'}: {', '.join(known) or 'none'}.")
    return folder


def visible_part(source: str) -> str:
    """``source`` without its hidden-test regions (what the learner's copy shows)."""
    return re.sub(rf"^[ \t]*{re.escape(HIDDEN_BEGIN)}.*?^[ \t]*{re.escape(HIDDEN_END)}[ \t]*\n?", "",
                  source, flags=re.S | re.M).rstrip()


def _write_config(course: Path, lab: str) -> None:
    (course / "nbgrader_config.py").write_text(
        "c = get_config()  # noqa: F821\n"
        f"c.CourseDirectory.root = {str(course)!r}\n"
        "c.CourseDirectory.source_directory = 'source'\n"
        "c.CourseDirectory.release_directory = 'release'\n"
        f"c.CourseDirectory.db_url = {'sqlite:///' + str(course / 'gradebook.db')!r}\n"
        f"c.CourseDirectory.course_id = {COURSE_ID!r}\n"
        "c.CourseDirectory.ignore = ['.ipynb_checkpoints', '*.pyc', '__pycache__', 'feedback', '.*']\n"
        "c.ClearSolutions.code_stub = {'python': '# YOUR CODE HERE\\nraise NotImplementedError()'}\n"
        "c.ClearSolutions.text_stub = 'YOUR ANSWER HERE'\n")


def create_gradebook(db_path: Path) -> None:
    """An empty nbgrader gradebook, stamped with nbgrader's schema version in-process.

    ``nbgrader.api.Gradebook`` stamps a new database by running the ``alembic`` command in a
    subprocess (seconds on a busy machine); reading the head revision directly is the same
    result without it.
    """
    import nbgrader
    from alembic.config import Config as AlembicConfig
    from alembic.script import ScriptDirectory
    from nbgrader.api import Base
    from sqlalchemy import create_engine, text

    config = AlembicConfig()
    config.set_main_option("script_location", str(Path(nbgrader.__file__).parent / "alembic"))
    head = ScriptDirectory.from_config(config).get_current_head()
    engine = create_engine(f"sqlite:///{db_path}", future=True)
    Base.metadata.create_all(bind=engine)
    with engine.begin() as db:
        db.execute(text("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)"))
        db.execute(text("INSERT INTO alembic_version (version_num) VALUES (:v)"), {"v": head})
    engine.dispose()


def prepare_assignment(lab: str, run_dir: Path, course_root: Path | None = None) -> Assignment:
    """Copy the source, generate the learner version and the private gradebook."""
    from nbgrader.apps import NbGraderAPI
    from nbgrader.coursedir import CourseDirectory
    from traitlets.config import Config

    root = Path(course_root).resolve() if course_root else find_course_root()
    source = locate_source(lab, root)
    course = run_dir / "course"
    course.mkdir(mode=0o700, parents=True)
    os.chmod(course, 0o700)
    shutil.copytree(source, course / "source" / lab, ignore=_IGNORE)
    _write_config(course, lab)
    create_gradebook(course / "gradebook.db")

    config = Config()
    config.CourseDirectory.root = str(course)
    config.CourseDirectory.source_directory = "source"
    config.CourseDirectory.release_directory = "release"
    config.CourseDirectory.db_url = f"sqlite:///{course / 'gradebook.db'}"
    config.CourseDirectory.course_id = COURSE_ID
    config.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
    config.ClearSolutions.text_stub = "YOUR ANSWER HERE"
    config.Exchange.root = str(course / "exchange")
    (course / "exchange").mkdir()  # nbgrader checks that it exists; nothing is released through it
    api = NbGraderAPI(coursedir=CourseDirectory(config=config), config=config)
    result = api.generate_assignment(lab, force=True, create=True)
    if not result.get("success"):
        raise AssignmentError(f"nbgrader could not generate {lab} from {source}:\n"
                              f"{result.get('error') or result.get('log')}")

    release_dir = course / "release" / lab
    release_nb = nbformat.read(release_dir / f"{lab}.ipynb", as_version=4)
    source_nb = nbformat.read(source / f"{lab}.ipynb", as_version=4)
    tests = []
    for cell in source_nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("grade") and not meta.get("solution") and cell.cell_type == "code":
            tests.append(TestSpec(grade_id=meta["grade_id"], points=float(meta.get("points", 0)),
                                  source=cell.source, visible_source=visible_part(cell.source),
                                  hidden=HIDDEN_BEGIN in cell.source))
    if not tests:
        raise AssignmentError(f"{source / (lab + '.ipynb')} has no autograded test cells "
                              "(nbgrader metadata grade=true with points): nothing to grade.")
    return Assignment(lab=lab, course_root=root, source_dir=source, private_course=course,
                      db_url=f"sqlite:///{course / 'gradebook.db'}", release_dir=release_dir,
                      notebook_name=lab, release_notebook=release_nb, tests=tests, source_notebook=source_nb)
