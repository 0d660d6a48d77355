"""S3 locations in every form AWS accepts, parsed in one place for every engine.

The SageMaker API takes an S3 location wherever its model says ``S3Uri``, ``S3OutputPath``,
``Url`` (``ModelDataUrl``), ``DestinationS3Uri`` or ``MonitoringS3Uri``: all of them match
the pattern ``(https|s3)://([^/]+)/?(.*)``, and the service reads an ``https`` location as an
Amazon S3 URL. These forms name the same object ``s3://bucket/key``:

- ``s3://bucket/key``
- virtual-hosted: ``https://bucket.s3.amazonaws.com/key``, ``https://bucket.s3.us-east-1.amazonaws.com/key``,
  the legacy ``https://bucket.s3-us-east-1.amazonaws.com/key``
- path-style: ``https://s3.amazonaws.com/bucket/key``, ``https://s3.us-east-1.amazonaws.com/bucket/key``,
  the legacy ``https://s3-us-east-1.amazonaws.com/bucket/key`` (AWS's own examples use it) and
  ``https://s3-external-1.amazonaws.com/bucket/key``
- dual-stack: ``https://bucket.s3.dualstack.us-east-1.amazonaws.com/key``,
  ``https://s3.dualstack.us-east-1.amazonaws.com/bucket/key``

(the same with ``amazonaws.com.cn`` in the China regions). In an ``https`` URL the key is
percent-encoded, as S3 encodes it; in ``s3://`` it is taken as written. The region an URL
names is kept (:attr:`S3Location.region`) but not checked: every offline bucket is in the
backend's region.

:func:`parse` raises :class:`InvalidS3Location` (a ``ValueError``) for anything else;
:func:`require` turns that into the ``ValidationException`` SageMaker answers with.
Engines call :func:`split` where they used to split ``s3://`` themselves.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from .dispatch import AWSError

# SageMaker's pattern for every S3 location member (botocore's service model).
API_PATTERN = "(https|s3)://([^/]+)/?(.*)"
_API_RE = re.compile(r"^(https|s3)://([^/]+)/?(.*)$", re.DOTALL)
_REGION = r"[a-z]{2}(?:-gov|-iso[a-z]?)?-[a-z]+-\d"
# [bucket.]s3[.dualstack|.<region>|-<region>|.dualstack.<region>|-external-1].amazonaws.com[.cn]
_HOST_RE = re.compile(
    rf"^(?:(?P<bucket>[a-z0-9](?:[a-z0-9.-]*[a-z0-9])?)\.)?"
    rf"s3(?:(?P<dualstack>\.dualstack)?\.(?P<region>{_REGION})|-(?P<legacy>{_REGION}|external-1))?"
    rf"\.amazonaws\.com(?:\.cn)?$")


class InvalidS3Location(ValueError):
    """A string that is not an S3 location in any form AWS accepts."""


@dataclass(frozen=True)
class S3Location:
    """One S3 object or prefix: ``bucket`` and ``key`` (``""`` for the whole bucket)."""

    bucket: str
    key: str
    region: str | None = None

    @property
    def uri(self) -> str:
        """The canonical ``s3://bucket/key`` form."""
        return f"s3://{self.bucket}/{self.key}"

    def __str__(self) -> str:
        return self.uri


def parse(location: str) -> S3Location:
    """The bucket and key ``location`` names, in any of the forms of this module's docstring."""
    if not isinstance(location, str) or not _API_RE.match(location):
        raise InvalidS3Location(f"{location!r} is not an S3 location: use s3://bucket/key "
                                "(or an Amazon S3 https URL).")
    if location.startswith("s3://"):
        bucket, _, key = location[len("s3://"):].partition("/")
        return S3Location(bucket, key)
    parts = urlsplit(location)
    host = (parts.hostname or "").lower()
    match = _HOST_RE.match(host)
    if match is None or parts.query or parts.fragment:
        raise InvalidS3Location(
            f"{location!r} is an https URL but not an Amazon S3 one: use s3://bucket/key, or an S3 URL such as "
            "https://bucket.s3.us-east-1.amazonaws.com/key or https://s3.us-east-1.amazonaws.com/bucket/key.")
    region = match["region"] or (match["legacy"] if match["legacy"] != "external-1" else "us-east-1")
    path = parts.path.lstrip("/")
    if match["bucket"]:
        return S3Location(match["bucket"], unquote(path), region)
    bucket, _, key = path.partition("/")
    if not bucket:
        raise InvalidS3Location(f"{location!r} names no bucket: a path-style S3 URL is "
                                "https://s3.<region>.amazonaws.com/<bucket>/<key>.")
    return S3Location(unquote(bucket), unquote(key), region)


def split(location: str) -> tuple[str, str]:
    """``(bucket, key)`` of ``location``; :class:`InvalidS3Location` if it is not one."""
    parsed = parse(location)
    return parsed.bucket, parsed.key


def canonical(location: str) -> str:
    """``location`` as ``s3://bucket/key``."""
    return parse(location).uri


def require(location: object, member: str) -> S3Location:
    """Parse an API member's S3 location; SageMaker's ``ValidationException`` if it is not one.

    ``member`` is the member's path as AWS names it in errors (``primaryContainer.modelDataUrl``).
    """
    if not isinstance(location, str) or not _API_RE.match(location):
        raise AWSError("ValidationException",
                       f"1 validation error detected: Value '{location}' at '{member}' failed to satisfy "
                       f"constraint: Member must satisfy regular expression pattern: {API_PATTERN}")
    try:
        return parse(location)
    except InvalidS3Location as err:
        raise AWSError("ValidationException", f"{member}: {err}") from err
