"""The one table from taskq's errors to HTTP statuses."""

from __future__ import annotations

import pytest

from taskq.api.errors import status_of
from taskq.errors import (
    BrokerUnavailable,
    ConfigError,
    InvalidMessage,
    InvalidTask,
    StoreUnavailable,
    SubmitFailed,
    TaskNotFound,
    TaskStateError,
    WaitTimeout,
)


@pytest.mark.parametrize(("exc", "status"), [
    (TaskNotFound("x"), 404), (TaskStateError("done"), 409), (InvalidTask("bad"), 422),
    (InvalidMessage("not JSON"), 422),  # a subclass takes its base's status
    (BrokerUnavailable("down"), 503), (SubmitFailed("refused"), 503), (StoreUnavailable("down"), 503),
    (WaitTimeout("slow"), 504), (ConfigError("bad setting"), 400),
])
def test_each_error_maps_to_the_status_of_its_nearest_listed_class(exc: Exception, status: int) -> None:
    assert status_of(exc) == status  # type: ignore[arg-type]


def test_every_public_error_a_caller_can_meet_is_importable_from_taskq() -> None:
    """A caller catches what the SDK raises by ``from taskq import ...``: every class of the error
    tree is exported, so none has to be fished out of a private module."""
    import inspect

    import taskq
    from taskq import errors

    roots = (errors.TaskqError, errors.Retry, errors.Cancelled)
    tree = {name for name, cls in inspect.getmembers(errors, inspect.isclass)
            if cls.__module__ == errors.__name__ and issubclass(cls, roots)}
    assert tree - set(taskq.__all__) == set()
    assert all(getattr(taskq, name) is getattr(errors, name) for name in tree)
