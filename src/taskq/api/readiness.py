"""/readyz's checks, shared: Kubernetes probes every pod every few seconds, and a load balancer
or a curious caller may ask far more often; Kafka and Redis are asked at most once per ``max_age``,
and callers arriving while a check runs wait for that one instead of starting their own."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

# Probes come every 2-10 s; a result this young is as good as a new one.
MAX_AGE = 2.0


class Readiness:
    def __init__(self, check: Callable[[], dict[str, str]], *, max_age: float = MAX_AGE,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._check = check
        self._max_age = max_age
        self._clock = clock
        self._lock = threading.Lock()
        self._result: dict[str, str] | None = None
        self._at = 0.0

    def checks(self) -> dict[str, str]:
        """``{"redis": "ok", "kafka": "ok"}`` or what is wrong with each, at most ``max_age`` old."""
        with self._lock:  # the callers that arrive during a check wait for its result
            if self._result is None or self._clock() - self._at >= self._max_age:
                self._result = self._check()
                self._at = self._clock()
            return dict(self._result)


def for_caller(checks: dict[str, str], *, authenticated: bool) -> dict[str, str]:
    """What a caller may see: the failures' text (host names, ports) only with a token."""
    if authenticated:
        return checks
    return {name: "ok" if value == "ok" else "unavailable" for name, value in checks.items()}
