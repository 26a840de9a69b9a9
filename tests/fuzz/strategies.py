"""Hypothesis strategies for what a producer in any language, with bugs, can put on the tasks topic.

``messages()`` draws raw Kafka values (None is a tombstone) with their headers; ``valid_args()`` the
arguments of valid tasks to interleave with them. ``corpus()`` is every input that ever crashed
something: replayed first by each fuzz test, and kept for good (tests/fuzz/corpus/*.json).
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

CORPUS = Path(__file__).parent / "corpus"

# Numbers where ints go: 64-bit edges, beyond them, negatives, fractions, exponents.
numbers = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, -1, 2**63 - 1, 2**63, 2**64 - 1, 2**64, -(2**63), -(2**63) - 1, 2**53 + 1]),
    st.floats(allow_nan=False, allow_infinity=False),
)
# Text with the awkward corners of unicode (JSON escapes them; lone surrogates are added as bytes).
texts = st.one_of(st.text(max_size=40), st.sampled_from(["", "\u0000", "\u202e", "\ufeff", "é" * 50, "\U0001d54f"]))


def _json_values(max_leaves: int = 20) -> st.SearchStrategy[Any]:
    leaves = st.one_of(st.none(), st.booleans(), numbers, texts)
    return st.recursive(leaves, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                        st.dictionaries(texts, inner, max_size=4)),
                        max_leaves=max_leaves)


json_values = _json_values()
FIELDS = ("v", "id", "task", "args", "kwargs", "gen", "max_retries", "timeout", "created_at", "priority",
          "rate_key", "concurrency_key")


@st.composite
def _objects(draw: st.DrawFn) -> bytes:
    """A JSON object near the wire format: every field missing, null, of a wrong type, or extra."""
    good: dict[str, Any] = {"v": 1, "id": draw(st.text(min_size=1, max_size=12)).replace("\x00", "") or "x",
                            "task": draw(st.sampled_from(["echo", "add", "nope", "", "fail", "sleep"])),
                            "args": [], "kwargs": {}}
    body: dict[str, Any] = {}
    for name in FIELDS:
        how = draw(st.sampled_from(["keep", "keep", "drop", "null", "junk"]))
        if how == "keep" and name in good:
            body[name] = good[name]
        elif how == "null":
            body[name] = None
        elif how == "junk":
            body[name] = draw(json_values)
    if draw(st.booleans()):
        body[draw(texts)] = draw(json_values)  # an extra field
    return json.dumps(body, ensure_ascii=draw(st.booleans())).encode("utf-8", "surrogatepass")


@st.composite
def _deep(draw: st.DrawFn) -> bytes:
    """Nesting up to and past every parser's limit (orjson's writer ~255, Python's json ~1000, orjson's reader 1024)."""
    depth = draw(st.sampled_from([31, 32, 33, 254, 255, 256, 600, 994, 995, 1023, 1024, 1025, 3000]))
    leaf = draw(st.sampled_from([b"", b"1", b"1234567890123456789", b'"x"', b"{}"]))
    opener, closer = draw(st.sampled_from([(b"[", b"]"), (b'{"a":', b"}")]))
    where = draw(st.sampled_from(["args", "kwargs", "extra"]))
    inner = opener * depth + leaf + closer * depth
    if where == "kwargs":
        inner = b'{"k":' + inner + b"}"
    field = b'"extra":' + inner + b',"args":[]' if where == "extra" else b'"' + where.encode() + b'":' + inner
    return b'{"v":1,"id":"deep","task":"echo",' + field + b"}"


_surrogates = st.sampled_from([b'{"v":1,"id":"\\ud800","task":"echo"}',
                               b'{"v":1,"id":"a","task":"echo","args":["\\udfff"]}',
                               b'{"v":1,"id":"a","task":"\\ud83d","args":[]}'])
_huge_strings = st.integers(min_value=10_000, max_value=300_000).map(
    lambda n: b'{"v":1,"id":"big","task":"echo","args":["' + b"x" * n + b'"]}')
headers = st.one_of(
    st.just([]),
    st.lists(st.tuples(st.sampled_from(["traceparent", "x", ""]), st.binary(max_size=64)), max_size=3),
    st.just([("traceparent", b"\xff" * 10_000)]),
    st.just([("traceparent", b"00-" + b"0" * 32 + b"-" + b"0" * 16 + b"-01")]),
)
values = st.one_of(st.none(), st.binary(max_size=200), _objects(), _deep(), _surrogates, _huge_strings,
                   json_values.map(lambda v: json.dumps(v).encode()))


@st.composite
def messages(draw: st.DrawFn) -> tuple[bytes | None, list[tuple[str, bytes]]]:
    return draw(values), draw(headers)


# Arguments of valid tasks: what a JSON round trip keeps exactly (64-bit ints, finite floats, no lone surrogates).
_safe_leaves = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(2**63), max_value=2**63 - 1),
                         st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=20))
valid_args = st.lists(st.recursive(_safe_leaves, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                                        st.dictionaries(st.text(max_size=8), inner,
                                                                                        max_size=3)),
                                   max_leaves=8), max_size=4)


def corpus() -> list[tuple[str, bytes | None, list[tuple[str, bytes]]]]:
    """Every kept input: (name, value, headers). Each file: {"value_b64": ... | null, "headers": [[name, b64]]}."""
    out = []
    for path in sorted(CORPUS.glob("*.json")):
        data = json.loads(path.read_text())
        value = None if data["value_b64"] is None else base64.b64decode(data["value_b64"])
        out.append((path.stem, value, [(k, base64.b64decode(v)) for k, v in data.get("headers", [])]))
    return out


def keep(name: str, value: bytes | None, hdrs: list[tuple[str, bytes]] | None = None) -> Path:
    """Add an input that crashed something to the corpus (run by hand when a fuzz test fails)."""
    path = CORPUS / f"{name}.json"
    path.write_text(json.dumps({"value_b64": None if value is None else base64.b64encode(value).decode(),
                                "headers": [[k, base64.b64encode(v).decode()] for k, v in hdrs or []]}) + "\n")
    return path
