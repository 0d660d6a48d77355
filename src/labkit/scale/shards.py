"""Split a class into shards and pack files for a job's input; unpack what comes back.

Every top-level entry of the submissions folder (a student's folder, and anything else there:
the grader itself decides what counts and says why in the results) goes to exactly one shard,
round-robin over the sorted names, so shards differ by at most one entry and the split is the
same every time. A shard travels as one ``.tar.gz`` (one S3 object, not thousands): folders,
regular files and links are kept as they are (a link stays a link, never followed), FIFOs too;
devices and sockets are left out. Results come back as a ``.tar.gz`` written by the grader and
are unpacked with :mod:`tarfile`'s ``data`` filter (nothing outside the folder, no links that
leave it, no devices).
"""

from __future__ import annotations

import os
import tarfile
from pathlib import Path


def shard_sizes(count: int, shards: int) -> list[int]:
    """How many entries each of ``shards`` gets for ``count`` entries (never an empty shard)."""
    shards = max(1, min(shards, count)) if count else 0
    return [count // shards + (1 if i < count % shards else 0) for i in range(shards)]


def entries(folder: Path) -> list[str]:
    """The names of the top-level entries of a submissions folder, sorted."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"Submissions folder {folder} does not exist: pass the folder that holds "
                                "one sub-folder per student (<folder>/<student>/<lab>.ipynb).")
    return sorted(os.listdir(folder))


def split(names: list[str], shards: int) -> list[list[str]]:
    """Round-robin ``names`` into at most ``shards`` non-empty lists."""
    count = len(shard_sizes(len(names), shards))
    return [names[i::count] for i in range(count)]


def _keep(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
    if not (info.isreg() or info.isdir() or info.issym() or info.islnk() or info.isfifo()):
        return None  # devices (and sockets, which tarfile cannot store) never travel
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def pack(folder: Path, names: list[str], archive: Path) -> Path:
    """``archive`` (.tar.gz) holding ``folder/<name>`` for each name, links kept as links."""
    archive.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive, "w:gz") as tar:
        for name in names:
            tar.add(Path(folder) / name, arcname=name, recursive=True, filter=_keep)
    return archive


def unpack_trusted(archive: Path, dest: Path) -> list[str]:
    """Unpack an archive :func:`pack` made (links kept as they were); returns what was skipped, and why.

    For the job's side: the archive was made by the instructor's own ``pack``, so absolute links
    are recreated as links (the grader then refuses to follow them, as it would locally).
    """
    dest.mkdir(parents=True, exist_ok=True)
    skipped = []
    with tarfile.open(archive, "r:*") as tar:
        for member in tar.getmembers():
            try:
                tar.extract(member, dest, filter="tar")
            except (OSError, tarfile.FilterError) as err:
                skipped.append(f"{member.name}: {err}")
    return skipped


def unpack_results(archive: Path, dest: Path) -> None:
    """Unpack a job's results with the ``data`` filter: nothing may land outside ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive, "r:*") as tar:
        tar.extractall(dest, filter="data")


def pack_folder(folder: Path, archive: Path) -> Path:
    """``archive`` holding the contents of ``folder`` (the job's results)."""
    with tarfile.open(archive, "w:gz") as tar:
        for path in sorted(Path(folder).iterdir()):
            tar.add(path, arcname=path.name, recursive=True, filter=_keep)
    return archive
