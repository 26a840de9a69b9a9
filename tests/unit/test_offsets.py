from taskq.worker.offsets import OffsetTracker


def test_commit_position_is_the_end_of_the_contiguous_finished_prefix() -> None:
    t = OffsetTracker()
    for o in (10, 11, 12, 13):
        t.received(0, o)
    t.finished(0, 12)
    t.finished(0, 13)
    assert t.uncommitted() == {}
    t.finished(0, 10)
    assert t.uncommitted() == {0: 11}
    t.finished(0, 11)
    assert t.uncommitted() == {0: 14}


def test_a_slow_offset_holds_the_position_but_not_the_slots() -> None:
    t = OffsetTracker()
    for o in range(5):
        t.received(3, o)
    for o in range(1, 5):
        t.finished(3, o)
    assert t.unfinished() == 1
    assert t.backlog() == 5
    assert t.uncommitted() == {}


def test_gaps_in_offsets_do_not_block_the_prefix() -> None:
    t = OffsetTracker()
    t.received(1, 5)
    t.received(1, 9)  # 6-8 were transaction markers or compacted away
    t.finished(1, 5)
    t.finished(1, 9)
    assert t.uncommitted() == {1: 10}


def test_committed_positions_are_not_reported_again() -> None:
    t = OffsetTracker()
    t.received(0, 0)
    t.finished(0, 0)
    t.mark_committed(t.uncommitted())
    assert t.uncommitted() == {}


def test_a_forgotten_partition_ignores_late_finishes() -> None:
    t = OffsetTracker()
    t.received(2, 0)
    t.forget(2)
    t.finished(2, 0)
    assert t.uncommitted() == {} and t.unfinished() == 0


def test_out_of_order_receipt_is_refused() -> None:
    import pytest

    t = OffsetTracker()
    t.received(0, 5)
    with pytest.raises(ValueError, match="out of order"):
        t.received(0, 4)
