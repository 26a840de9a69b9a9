"""Fuzzing the worker's parsers in-process (hypothesis): whatever bytes arrive, decoding gives a
message that encodes again, or InvalidMessage, never another exception; a record hash of any shape
renders; a dead letter of any task fits one Kafka message. The corpus of inputs that once crashed
something (tests/fuzz/corpus) is replayed first."""

from __future__ import annotations

import json
import logging
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from taskq import tracing
from taskq.errors import InvalidMessage
from taskq.models import TaskMessage, TaskRecord, json_problem
from taskq.settings import Settings
from taskq.worker.execute import Outcome
from taskq.worker.outcomes import DEAD_LETTER_MAX, DeadLetters
from tests.fuzz.strategies import corpus, json_values, messages

FUZZ = hsettings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck), database=None)


def decode_or_refuse(value: bytes | None, headers: list[tuple[str, bytes]]) -> TaskMessage | None:
    try:
        msg = TaskMessage.from_bytes(value)
    except InvalidMessage as exc:
        assert str(exc)
        return None
    msg = tracing.from_headers(msg, headers)
    assert json_problem(msg.args) is None and json_problem(msg.kwargs, "kwargs") is None
    again = TaskMessage.from_bytes(msg.to_bytes())
    assert (again.id, again.task, again.args, again.kwargs, again.gen) == (msg.id, msg.task, msg.args, msg.kwargs,
                                                                            msg.gen)
    return msg


@pytest.mark.parametrize(("name", "value", "headers"), corpus(), ids=[c[0] for c in corpus()])
def test_every_input_that_ever_crashed_something_is_refused_or_decoded_cleanly(
    name: str, value: bytes | None, headers: list[tuple[str, bytes]]
) -> None:
    decode_or_refuse(value, headers)


@FUZZ
@given(messages())
def test_any_kafka_value_decodes_to_a_message_that_encodes_again_or_is_refused(
    message: tuple[bytes | None, list[tuple[str, bytes]]]
) -> None:
    decode_or_refuse(*message)


FIELDS = ["id", "task", "args", "kwargs", "status", "result", "error", "attempts", "worker", "created_at",
          "started_at", "finished_at", "max_retries", "timeout", "history", "eta", "wf", "pr", "rk", "ck", "prog",
          "progm", "cxl", "held", "tp", "tb", "retry_limit"]


@FUZZ
@given(st.dictionaries(st.sampled_from(FIELDS), st.one_of(st.text(max_size=30), json_values.map(json.dumps))))
def test_a_record_hash_of_any_shape_renders_instead_of_raising(h: dict[str, str]) -> None:
    h.setdefault("id", "t1")
    rec = TaskRecord.from_hash(h)
    assert rec.id
    orjson.dumps(rec.to_dict(), default=str)


# Record hashes that once crashed the rendering (found by the test above), kept as regressions.
CRASHED_RECORDS = [
    {"id": "", "task": "", "attempts": "19000000000000000000"},  # past 64 bits: orjson refused to encode it
    {"id": "t1", "status": "failed", "max_retries": "-9223372036854775809", "retry_limit": "1" + "0" * 30},
]


@pytest.mark.parametrize("h", CRASHED_RECORDS)
def test_a_record_hash_that_once_crashed_the_rendering_renders(h: dict[str, str]) -> None:
    rec = TaskRecord.from_hash(h)
    assert rec.id and "record unreadable in part" in (rec.error or "")
    orjson.dumps(rec.to_dict())


class _Kept:
    def __init__(self) -> None:
        self.sent: list[bytes] = []

    def send_raw(self, topic: str, value: bytes, *, key: bytes | None = None, headers: Any = None) -> None:
        self.sent.append(value)


class _Metrics:
    def __getattr__(self, name: str) -> Any:
        return lambda *a, **k: None


@hsettings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck), database=None)
@given(st.lists(json_values, max_size=3), st.integers(min_value=0, max_value=3_000_000), st.booleans())
def test_a_dead_letter_of_any_task_fits_one_kafka_message_and_says_what_was_cut(
    args: list[Any], size: int, long_error: bool
) -> None:
    producer = _Kept()
    letters = DeadLetters(settings=Settings(), producer=producer, metrics=_Metrics(),  # type: ignore[arg-type]
                          log=logging.getLogger("test"), worker_id="w1")
    msg = TaskMessage(id="t1", task="echo", args=[*args, "x" * size])
    error = "E" * (size if long_error else 10)
    assert letters.exhausted(msg, Outcome(False, error=error, traceback=error), 3)
    body = orjson.loads(producer.sent[-1])
    assert len(producer.sent[-1]) <= DEAD_LETTER_MAX
    assert body["id"] == "t1" and body["reason"] == "retries exhausted"
    if size > DEAD_LETTER_MAX:
        assert body["args"] is None
    if body["args"] is None:  # cut, and the letter says so
        assert "cut" in body and body["arguments_preview"]
    else:
        assert body["args"] == msg.args
