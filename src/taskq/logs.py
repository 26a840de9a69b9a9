"""Log lines that name their worker: ``[w1] Task Completed: Result = 3``.

The ``[id]`` prefix is part of the classic log format users grep for; one adapter writes it, so
no call site spells it out.
"""

from __future__ import annotations

import logging
from collections.abc import MutableMapping
from typing import Any

Log = logging.Logger | logging.LoggerAdapter[Any]


class Named(logging.LoggerAdapter[logging.Logger]):
    """Prefixes every message with ``[name] ``."""

    def __init__(self, logger: logging.Logger, name: str) -> None:
        super().__init__(logger, {"worker": name})
        self.prefix = f"[{name}] "

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, MutableMapping[str, Any]]:
        return self.prefix + str(msg), kwargs


def named(logger: logging.Logger | Named, name: str) -> Named:
    """``logger`` prefixed with ``[name]`` (an adapter already is: it is kept as it is)."""
    return logger if isinstance(logger, Named) else Named(logger, name)
