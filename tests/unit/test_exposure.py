"""The API is never open to the network by accident: a token, loopback, or an explicit TASKQ_API_AUTH=none."""

from __future__ import annotations

import subprocess
import sys

import pytest
from pydantic import ValidationError

from taskq.api.exposure import check_exposure, is_loopback
from taskq.devstack import free_port
from taskq.errors import ConfigError
from taskq.settings import Settings
from tests.helpers import settings_env


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost", "LOCALHOST"])
def test_loopback_hosts_are_recognised(host: str) -> None:
    assert is_loopback(host)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "", "10.1.2.3", "api.example.com", "my-pod"])
def test_every_other_host_counts_as_the_network(host: str) -> None:
    assert not is_loopback(host)


def test_without_a_token_the_api_listens_on_loopback_silently() -> None:
    assert check_exposure(Settings(), "127.0.0.1", 8000) is None


def test_without_a_token_the_api_refuses_the_network_and_says_how_to_proceed() -> None:
    with pytest.raises(ConfigError) as caught:
        check_exposure(Settings(), "0.0.0.0", 8000)
    text = str(caught.value)
    assert "0.0.0.0:8000" in text and "TASKQ_API_TOKEN" in text and "TASKQ_API_AUTH=none" in text


def test_with_a_token_the_api_listens_anywhere() -> None:
    assert check_exposure(Settings(api_token="t0ken"), "0.0.0.0", 8000) is None


def test_an_explicitly_open_api_listens_anywhere_with_a_warning() -> None:
    warning = check_exposure(Settings(api_auth="none"), "0.0.0.0", 8000)
    assert warning and "without a token" in warning and "0.0.0.0:8000" in warning
    assert check_exposure(Settings(api_auth="none"), "127.0.0.1", 8000)  # said on loopback too


def test_no_authentication_and_a_token_at_once_is_refused() -> None:
    with pytest.raises(ValidationError, match="choose one"):
        Settings(api_auth="none", api_token="t0ken")


def test_taskq_api_on_the_network_without_a_token_exits_with_one_line() -> None:
    port = free_port()
    res = subprocess.run([sys.executable, "-m", "taskq", "api", "--host", "0.0.0.0", "--port", str(port)],
                         env=settings_env(Settings()), capture_output=True, text=True, timeout=60)
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and "TASKQ_API_AUTH=none" in lines[0], res.stderr
