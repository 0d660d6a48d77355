"""The region for processes that start with an empty environment: the user's ``~/.aws/config``.

``labkit.connect()`` gives the kernel its region through ``AWS_REGION``, ``AWS_DEFAULT_REGION``
and a shared config file named by ``AWS_CONFIG_FILE``, and every process that inherits the
kernel's environment finds it. Some SDK steps start Python with an environment of their own:
SDK v3's dependency capture (``ModelBuilder(dependencies={"auto": True})``) runs
``python -c "from sagemaker.serve.detector.pickle_dependencies import ..."`` with only
``SETUPTOOLS_USE_DISTUTILS`` set, and importing ``sagemaker.serve`` creates a boto3 client.
With no variable at all, botocore looks for a region in exactly two places: the default
shared config file ``~/.aws/config`` and the instance metadata service (which does not exist
here, and which nothing offline may try to reach). The SDK's own config file has no region
setting. So the one place AWS's tools honour is ``~/.aws/config``.

:func:`ensure_default_region` writes it, with care: only when the user has no such file at
all (an existing one is never opened for writing, even without a region), only the region
(no credentials, no endpoint: a real AWS tool that reads it later loses nothing and reaches
nothing it would not have), and with a comment that says who wrote it and that it may be
edited or deleted. It runs for a learner's kernels (shared mode), never for grading or tests
(embedded mode), which must not touch the machine's home folder.
"""

from __future__ import annotations

from pathlib import Path

HEADER = ("# Written by labkit (the course's offline backend) because this account had no AWS config:\n"
          "# processes started without an environment (the SageMaker SDK's dependency capture) read their\n"
          "# region here, as every AWS tool does. Only the region is set. Edit or delete this file freely;\n"
          "# labkit never changes an existing one.\n")


def default_config_path(home: Path | None = None) -> Path:
    """``~/.aws/config``, the shared config file botocore reads when ``AWS_CONFIG_FILE`` is not set."""
    return (home or Path.home()) / ".aws" / "config"


def ensure_default_region(region: str, home: Path | None = None) -> Path | None:
    """Create ``~/.aws/config`` with ``[default] region`` if the user has none; the path if it was written."""
    path = default_config_path(home)
    if path.exists() or path.is_symlink():
        return None
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        with open(path, "x") as out:  # "x": never replaces a file that appeared in the meantime
            out.write(f"{HEADER}[default]\nregion = {region}\n")
    except OSError:  # a read-only or foreign home: the kernel's own environment still has the region
        return None
    return path
