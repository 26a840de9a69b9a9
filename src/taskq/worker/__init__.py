"""The worker: consumes the tasks topic and runs tasks concurrently."""

from .runner import Worker

__all__ = ["Worker"]
