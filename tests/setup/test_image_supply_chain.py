"""The images install only what `make lock` pinned and hashed, and write an SBOM of it."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.locks import entries, pins, requirement

ROOT = Path(__file__).resolve().parents[2]
LOCKS = [ROOT / "images" / "requirements.txt", ROOT / "images" / "build-requirements.txt"]
DOCKERFILES = [ROOT / "images" / "api" / "Dockerfile", ROOT / "images" / "worker" / "Dockerfile"]
# What the images run on: markers are judged for this platform.
IMAGE_ENV = {"sys_platform": "linux", "platform_system": "Linux", "python_version": "3.11",
             "python_full_version": "3.11.2", "os_name": "posix", "implementation_name": "cpython",
             "platform_python_implementation": "CPython", "platform_machine": "x86_64", "extra": ""}


@pytest.mark.parametrize("lock", LOCKS, ids=lambda p: p.name)
def test_every_locked_requirement_is_pinned_exactly_with_hashes_and_names_no_index(lock: Path) -> None:
    found = entries(lock)
    assert found, f"{lock} pins nothing"
    for entry in found:
        assert not entry.startswith("-"), f"{lock.name}: an option line ({entry!r}) would name an index or a path"
        req = requirement(entry)
        assert req.url is None, entry
        assert [s.operator for s in req.specifier] == ["=="], f"{lock.name}: {req.name} is not pinned exactly"
        hashes = re.findall(r"--hash=sha256:([0-9a-f]{64})\b", entry)
        assert hashes, f"{lock.name}: {req.name} has no sha256 hash"


def test_the_image_lock_satisfies_every_dependency_the_package_declares() -> None:
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    locked = pins(LOCKS[0])
    for text in declared:
        req = Requirement(text)
        if req.marker is not None and not req.marker.evaluate(IMAGE_ENV):
            continue
        name = canonicalize_name(req.name)
        assert name in locked, f"{req.name} is declared in pyproject.toml but not locked: run make lock"
        assert req.specifier.contains(locked[name], prereleases=True), \
            f"{req.name}=={locked[name]} in images/requirements.txt does not satisfy {req.specifier}: run make lock"


def test_the_build_lock_has_the_build_backend_and_the_sbom_writer() -> None:
    build = pins(LOCKS[1])
    backend = tomllib.loads((ROOT / "pyproject.toml").read_text())["build-system"]["requires"]
    for text in backend:
        req = Requirement(text)
        assert req.specifier.contains(build[canonicalize_name(req.name)]), text
    assert "cyclonedx-bom" in build


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.parent.name)
def test_each_dockerfile_installs_only_hashed_requirements_and_writes_the_sbom(dockerfile: Path) -> None:
    text = re.sub(r"\\\n\s*", " ", dockerfile.read_text())
    installs = re.findall(r"pip install ([^&\n]*)", text)
    assert installs, dockerfile
    for args in installs:
        # Either a hashed lock, or taskq's own wheel built in this stage, with no index to fetch from.
        # Wheels only: a source package would fetch its build dependencies, unhashed.
        assert ("--require-hashes" in args and "--only-binary :all:" in args and " -r images/" in f" {args}") or \
            ("--no-deps" in args and "--no-index" in args and "/tmp/wheel/taskq-" in args), args
    assert "--no-build-isolation" in text, "building taskq would fetch an unhashed build backend"
    assert "cyclonedx-py environment" in text and "/opt/taskq/sbom.cdx.json" in text
    assert "COPY --from=build /opt/taskq /opt/taskq" in text  # the SBOM ships with the venv it describes
    assert "/opt/build" not in text.split("FROM ${BASE_IMAGE}\n")[-1]  # the build tools do not ship
