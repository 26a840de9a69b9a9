"""The README and docs/*.md stay true to the repository: links resolve, `TASKQ_*` names exist.

Pure text checks, no services: every relative link points at a file of the repository (and at a
heading of it, GitHub-style, when it has a ``#fragment``), every page under docs/ is reachable from
the README, and every ``TASKQ_*`` name the docs mention is a field of ``Settings`` or one of the
few variables that something else reads (listed below with the reason).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from taskq.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

# `TASKQ_*` variables that are not Settings fields, each read by the code named in its comment.
NOT_SETTINGS = {
    # `taskq worker` reads it itself (after --id); the chart sets it to the pod name.
    "TASKQ_WORKER_ID",
    # taskq.devstack (taskq dev, the tests): the Makefile's CACHE and where the Kafka jars are.
    "TASKQ_CACHE",
    "TASKQ_KAFKA_JARS",
    # tests/helpers.py: the Kafka client of the tests that do not run with both.
    "TASKQ_TEST_KAFKA_CLIENT",
    # tests/ui: refresh the screenshots in docs/.
    "TASKQ_UPDATE_SCREENSHOTS",
    # tests/conftest.py: the per-test time over which a test is named at the end of the run.
    "TASKQ_TEST_BUDGET",
    # tests/integration: how many generated batches / requests the fuzzers try (make fuzz raises them).
    "TASKQ_FUZZ_EXAMPLES",
    "TASKQ_API_FUZZ_EXAMPLES",
    # tests/images: the image tag make test-images built.
    "TASKQ_IMAGE_TAG",
    # tests/e2e and tools/cluster: keeping, placing and waiting for the single-node cluster.
    "TASKQ_CLUSTER_KEEP",
    "TASKQ_CLUSTER_TEST_DOWN",
    "TASKQ_CLUSTER_DIR",
    "TASKQ_CLUSTER_API_PORT",
    "TASKQ_CLUSTER_KEEP_FAILED",
    "TASKQ_CLUSTER_API_DEADLINE",
    "TASKQ_CLUSTER_NODE_DEADLINE",
    "TASKQ_CLUSTER_DNS_DEADLINE",
    "TASKQ_ADDON_DEADLINE",
    # tests/e2e/test_kind.py: the kind cluster's name, and keeping it.
    "TASKQ_E2E_CLUSTER",
    "TASKQ_E2E_KEEP",
}
# Where the NOT_SETTINGS names must still be read, so the list cannot outlive the code.
CODE_DIRS = ["src", "tests", "tools", "charts", "images", ".ci"]
CODE_SUFFIXES = {".py", ".sh", ".mk", ".yaml", ".tpl", ""}

TASKQ_NAME = re.compile(r"\bTASKQ_[A-Z0-9_]*[A-Z0-9]")
FENCE = re.compile(r"^\s*(```|~~~)")
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$")
CODE_SPAN = re.compile(r"`[^`]*`")
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


def _rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


def prose(text: str) -> str:
    """The text outside fenced code blocks (where a `[x](y)` or a `# line` means nothing)."""
    kept, fenced = [], False
    for line in text.splitlines():
        if FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            kept.append(line)
    return "\n".join(kept)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: code and link text kept, lower case, punctuation dropped."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)
    text = text.replace("`", "").strip().lower()
    return "".join(ch for ch in text if ch.isalnum() or ch in " -_").replace(" ", "-")


def anchors(page: Path) -> set[str]:
    seen: dict[str, int] = {}
    out: set[str] = set()
    for line in prose(page.read_text()).splitlines():
        match = HEADING.match(line)
        if match is None:
            continue
        base = slug(match[1])
        n = seen.get(base, 0)
        seen[base] = n + 1
        out.add(base if n == 0 else f"{base}-{n}")  # GitHub numbers repeated headings
    return out


def links(page: Path) -> Iterator[str]:
    for target in LINK.findall(CODE_SPAN.sub("", prose(page.read_text()))):
        if not SCHEME.match(target):
            yield target


def test_the_docs_pages_exist() -> None:
    assert len(PAGES) > 2, f"expected README.md and pages under docs/, found {[_rel(p) for p in PAGES]}"


@pytest.mark.parametrize("page", PAGES, ids=_rel)
def test_every_relative_link_points_at_a_file_and_heading(page: Path) -> None:
    broken = []
    for target in links(page):
        path, _, fragment = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        if not dest.is_relative_to(ROOT) or not dest.exists():
            broken.append(f"{target}: {path} does not exist")
        elif fragment and dest.suffix == ".md" and fragment not in anchors(dest):
            broken.append(f"{target}: no heading of {_rel(dest)} has the anchor #{fragment}")
    assert not broken, f"{_rel(page)} has broken links:\n  " + "\n  ".join(broken)


def test_the_readme_links_every_docs_page() -> None:
    linked = {(ROOT / t.partition("#")[0]).resolve() for t in links(ROOT / "README.md")}
    unlisted = [_rel(p) for p in PAGES[1:] if p.resolve() not in linked]
    assert not unlisted, f"README.md does not link {unlisted}: add them to its Documentation list"


def settings_variables() -> set[str]:
    prefix = str(Settings.model_config.get("env_prefix", ""))
    return {(prefix + name).upper() for name in Settings.model_fields}


@pytest.mark.parametrize("page", PAGES, ids=_rel)
def test_every_taskq_variable_in_the_docs_exists(page: Path) -> None:
    known = settings_variables() | NOT_SETTINGS
    unknown = sorted(set(TASKQ_NAME.findall(page.read_text())) - known)
    assert not unknown, (
        f"{_rel(page)} mentions {unknown}, which are not fields of taskq.settings.Settings: fix the name, "
        "or, if something else reads it, add it to NOT_SETTINGS in tests/unit/test_docs.py")


def test_every_listed_non_setting_is_still_read_somewhere() -> None:
    used: set[str] = set()
    for folder in CODE_DIRS:
        for f in (ROOT / folder).rglob("*"):
            if f.is_file() and f.suffix in CODE_SUFFIXES and f != Path(__file__).resolve():
                used.update(TASKQ_NAME.findall(f.read_text(errors="ignore")))
    used.update(TASKQ_NAME.findall((ROOT / "Makefile").read_text()))
    stale = sorted(NOT_SETTINGS - used - settings_variables())
    assert not stale, f"nothing reads {stale} any more: drop them from NOT_SETTINGS (and from the docs)"


@pytest.mark.parametrize(("heading", "anchor"), [
    ("On a real cluster, in `make test`", "on-a-real-cluster-in-make-test"),
    ("kafka-python 3.0.12 faults and taskq's guards", "kafka-python-3012-faults-and-taskqs-guards"),
    ("The Kafka seam (`src/taskq/kafka/`)", "the-kafka-seam-srctaskqkafka"),
    ("Both Kafka clients, 2026-12-02", "both-kafka-clients-2026-12-02"),
    ("Not a setting: `TASKQ_WORKER_ID`", "not-a-setting-taskq_worker_id"),
])
def test_slug_matches_githubs_anchors(heading: str, anchor: str) -> None:
    assert slug(heading) == anchor
