import pytest

from taskq.models import InvalidMessage, TaskMessage


def test_message_round_trips_through_bytes() -> None:
    m = TaskMessage(id="abc", task="add", args=[1, 2], kwargs={"x": [1]}, gen=2, max_retries=3, timeout=1.5)
    assert TaskMessage.from_bytes(m.to_bytes()) == m


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        (None, "empty message"),
        (b"\xff\xfe", "not JSON"),
        (b"[1,2]", "not a JSON object"),
        (b'{"v": 99, "id": "a", "task": "add"}', "unsupported wire version"),
        (b'{"v": 1, "id": "", "task": "add"}', "'id'"),
        (b'{"v": 1, "id": "a", "task": 5}', "'task'"),
        (b'{"v": 1, "id": "a", "task": "add", "args": {}}', "'args' must be a list"),
        (b'{"v": 1, "id": "a", "task": "add", "kwargs": []}', "'kwargs' must be an object"),
        (b'{"v": 1, "id": "a", "task": "add", "gen": -1}', "'gen'"),
        (b'{"v": 1, "id": "a", "task": "add", "timeout": 0}', "'timeout'"),
        (b'{"v": 1, "id": "a", "task": "add", "max_retries": "x"}', "'max_retries'"),
    ],
)
def test_malformed_messages_are_refused_with_the_reason(raw: bytes | None, why: str) -> None:
    with pytest.raises(InvalidMessage, match=why):
        TaskMessage.from_bytes(raw)


@pytest.mark.parametrize("raw", [
    b'{"v": 1, "id": "a", "task": "echo", "args": [18446744073709551616]}',
    b'{"v": 1, "id": "a", "task": "echo", "args": [-9223372036854775809]}',
    b'{"v": 1, "id": "a", "task": "echo", "args": [NaN]}',
    b'{"v": 1, "id": "a", "task": "echo", "kwargs": {"x": 1e309}}',
])
def test_a_wire_message_whose_numbers_would_change_is_invalid(raw: bytes) -> None:
    with pytest.raises(InvalidMessage):
        TaskMessage.from_bytes(raw)


def test_a_wire_message_with_long_digits_in_strings_and_64_bit_ints_decodes_exactly() -> None:
    raw = b'{"v": 1, "id": "a", "task": "echo", "args": ["12345678901234567890123", 18446744073709551615]}'
    assert TaskMessage.from_bytes(raw).args == ["12345678901234567890123", 18446744073709551615]
