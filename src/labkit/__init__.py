"""labkit: the helper package of the ML-infrastructure-on-AWS course.

``lab = labkit.connect()`` is the first cell of every lab. See README.md.
"""

from .deferred import defer_rfc3987_syntax

defer_rfc3987_syntax()  # before anything imports jsonschema (labkit.deferred says why)

from .connect import BackendError, Lab, connect, current  # noqa: E402

__version__ = "0.1.0"
__all__ = ["BackendError", "Lab", "__version__", "connect", "current", "data_path"]


def data_path(*parts: str):
    """A file or folder of the course's ``data/`` (``$LABKIT_DATA`` overrides where that is)."""
    import os
    from pathlib import Path

    root = Path(os.environ.get("LABKIT_DATA") or Path(__file__).resolve().parents[2] / "data")
    return root.joinpath(*parts)
