"""Reading the hashed lock files `make lock` writes (images/*requirements.txt), for the tests that
check them (tests/setup) and the e2e that compares them with the images' SBOMs."""

from __future__ import annotations

import re
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name


def entries(lock: Path) -> list[str]:
    """The lock's requirement entries, each with its continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n\s*", " ", lock.read_text())
    return [line.split(" #")[0].strip() for line in text.splitlines()
            if line.strip() and not line.lstrip().startswith("#")]


def requirement(entry: str) -> Requirement:
    return Requirement(entry.split(" --hash")[0])


def pins(lock: Path, *, python: str | None = None) -> dict[str, str]:
    """name -> pinned version; with ``python``, only the entries whose markers hold on Linux with it."""
    env = None if python is None else {
        "python_full_version": python, "python_version": ".".join(python.split(".")[:2]),
        "sys_platform": "linux", "platform_system": "Linux", "os_name": "posix"}
    out = {}
    for entry in entries(lock):
        req = requirement(entry)
        if env is None or req.marker is None or req.marker.evaluate(env):
            out[canonicalize_name(req.name)] = next(iter(req.specifier)).version
    return out
