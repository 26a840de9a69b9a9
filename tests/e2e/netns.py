"""HTTP from inside the cluster's network namespace, without leaving this process.

A network namespace belongs to a thread, not a process: threads of a pool whose initializer
joins the namespace (setns) open their sockets there, so the tests reach Service ClusterIPs and
pod IPs exactly as a pod on the node would, and no traffic ever leaves the namespace.
"""

from __future__ import annotations

import ctypes
import os
import ssl
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import httpx

CLONE_NEWNET = 0x40000000
T = TypeVar("T")


def _enter(netns: Path) -> None:
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    fd = os.open(netns, os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns({netns}) failed: {os.strerror(err)}")
    finally:
        os.close(fd)


class NetnsHttp:
    """A thread pool inside ``netns``; each thread keeps its own httpx client."""

    def __init__(self, netns: Path, *, threads: int = 16, timeout: float = 10.0,
                 verify: ssl.SSLContext | bool = True) -> None:
        self._local = threading.local()
        self._timeout = timeout
        self._verify = verify  # a CA file: the e2e ingress' self-signed certificate
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="netns", initializer=_enter, initargs=(netns,))

    def _client(self) -> httpx.Client:
        c = getattr(self._local, "client", None)
        if c is None:
            c = self._local.client = httpx.Client(timeout=self._timeout, verify=self._verify)
        return c

    def call(self, fn: Callable[[httpx.Client], T]) -> T:
        return self._pool.submit(lambda: fn(self._client())).result()

    def map(self, fn: Callable[[httpx.Client, Any], T], items: Iterable[Any]) -> list[T]:
        futures = [self._pool.submit(lambda item=item: fn(self._client(), item)) for item in items]
        return [f.result() for f in futures]

    def request(self, method: str, url: str, **kw: Any) -> httpx.Response:
        return self.call(lambda c: c.request(method, url, **kw))

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
