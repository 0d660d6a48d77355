"""Shared fixtures: a fresh offline backend per test module."""

from __future__ import annotations

import os

import pytest

# Tests never reach a real account, whatever the developer's shell says.
os.environ["LABKIT_BACKEND"] = "offline"
os.environ.setdefault("MPLBACKEND", "Agg")

import labkit


@pytest.fixture(scope="module")
def lab() -> labkit.Lab:
    """A fresh offline backend and its Lab description (reset for every test module)."""
    return labkit.connect("tests", backend="offline", quiet=True)
