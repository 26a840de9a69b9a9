"""Whether the API may listen where it is asked to: it is never open to the network by accident.

Without ``TASKQ_API_TOKEN`` every caller may read every payload and cancel or purge anything, which
is what a developer wants on their own machine and what nobody wants on a cluster. So a token-less
API listens on loopback only, unless ``TASKQ_API_AUTH=none`` says the openness is meant (then a
warning says so at every start).
"""

from __future__ import annotations

import ipaddress

from ..errors import ConfigError
from ..settings import Settings

OPEN_WARNING = ("TASKQ_API_AUTH=none: the API serves every caller on {host}:{port} without a token "
                "(anyone who reaches it may read every task and cancel or purge anything)")
REFUSED = ("TASKQ_API_TOKEN is unset, so the API would serve every caller on {host}:{port} without a token: "
           "set TASKQ_API_TOKEN, listen on 127.0.0.1, or set TASKQ_API_AUTH=none if the openness is meant")


def is_loopback(host: str) -> bool:
    """Whether ``host`` is reachable only from this machine: a loopback address or ``localhost``.
    Other names could resolve anywhere, so they count as the network."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_exposure(settings: Settings, host: str, port: int) -> str | None:
    """The warning to log before serving, None when there is nothing to say; ``ConfigError`` when a
    token-less API was asked to listen beyond loopback without ``TASKQ_API_AUTH=none``."""
    if settings.api_token is not None:
        return None
    if settings.api_auth == "none":
        return OPEN_WARNING.format(host=host, port=port)
    if is_loopback(host):
        return None
    raise ConfigError(REFUSED.format(host=host, port=port))
