"""The kafka-python adapter (the design card's client) and its workarounds (flow, join_guard)."""

from .adapter import KafkaPythonTransport

__all__ = ["KafkaPythonTransport"]
