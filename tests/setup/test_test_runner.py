"""tools/test.sh, which `make test` runs: the e2e runs beside the suite; a Ctrl-C on its terminal
(or a failure) leaves no process it started behind, the e2e preparation's dockerd included, the
e2e is stopped the way that lets it tear its cluster down, and the phases are still reported.

The steps are stand-ins (a MAKE whose e2e-prep and test-e2e are shell snippets, a PY whose suite
is one): what is tested is the runner's own orchestration and cleanup, in seconds.
"""

from __future__ import annotations

import os
import pty
import signal
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


FOREVER_PREP = "sleep 600"


def _stand_ins(tmp_path: Path, suite: str, *, prep: str = FOREVER_PREP, e2e: str = "exit 0") -> dict[str, str]:
    """``prep`` runs after the fake dockerd started; ``suite`` and ``e2e`` are the two test phases."""
    make = tmp_path / "make"
    make.write_text("#!/bin/bash\nfor a in \"$@\"; do case $a in e2e-prep)\n"
                    f"  mkdir -p \"$CACHE/dockerd\"; (exec -a {_fake_name(tmp_path)} sleep 600) &\n"
                    f"  echo $! > \"$CACHE/dockerd/dockerd.pid\"; {prep}; exit 0;;\n"
                    f"  test-e2e) {e2e};; esac; done; exit 0\n")
    py = tmp_path / "py"
    py.write_text(f"#!/bin/bash\n{suite}\n")
    for f in (make, py):
        f.chmod(0o755)
    return {**os.environ, "MAKE": str(make), "PY": str(py), "CACHE": str(tmp_path / "cache"),
            "PYTEST_PARALLEL": "", "COVERAGE": "", "PYTEST_ARGS": "", "E2E": "1"}


def _fake_name(tmp_path: Path) -> str:
    return f"taskq-fake-dockerd-{tmp_path.name}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    state = Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][:1] if Path(f"/proc/{pid}/stat").exists() else "X"
    return state != "Z"


def test_ctrl_c_stops_the_suite_the_e2e_preparation_and_its_dockerd_and_reports_the_phases(tmp_path: Path) -> None:
    env = _stand_ins(tmp_path, "sleep 600")
    pid, fd = pty.fork()
    if pid == 0:  # the child: test.sh with the pty as its controlling terminal, as a user's shell runs it
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.chdir(ROOT)
        os.execvpe("bash", ["bash", "tools/test.sh"], env)
    dockerd_pid_file = tmp_path / "cache" / "dockerd" / "dockerd.pid"
    deadline = time.monotonic() + 30
    while not (dockerd_pid_file.exists() and dockerd_pid_file.read_text().strip()) and time.monotonic() < deadline:
        time.sleep(0.1)
    dockerd = int(dockerd_pid_file.read_text())
    assert _alive(dockerd)
    os.write(fd, b"\x03")
    out = b""
    while True:
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
    _, status = os.waitpid(pid, 0)
    text = out.decode(errors="replace")
    assert os.waitstatus_to_exitcode(status) == 130, text
    assert "make test: interrupted" in text and "in all" in text and "setup" in text
    deadline = time.monotonic() + 10
    while _alive(dockerd) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(dockerd), "the e2e preparation's dockerd outlived make test"
    left = subprocess.run(["pgrep", "-f", _fake_name(tmp_path)], capture_output=True, text=True).stdout
    assert not left.strip()


def test_a_failed_suite_ends_the_run_at_once_with_nothing_left(tmp_path: Path) -> None:
    env = _stand_ins(tmp_path, "exit 1")
    started = time.monotonic()
    res = subprocess.run(["bash", "tools/test.sh"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
                         stdin=subprocess.DEVNULL)
    assert res.returncode == 1, res.stdout + res.stderr
    assert time.monotonic() - started < 60  # the 600 s preparation was stopped, not waited for
    assert "suite (the e2e beside it)" in res.stdout
    dockerd_pid_file = tmp_path / "cache" / "dockerd" / "dockerd.pid"
    if dockerd_pid_file.exists():
        assert not _alive(int(dockerd_pid_file.read_text()))


def _run(tmp_path: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", "tools/test.sh"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
                          stdin=subprocess.DEVNULL)


def test_the_e2e_runs_beside_the_suite_its_log_follows_and_its_failure_fails_the_run(tmp_path: Path) -> None:
    marker = tmp_path / "cache" / "e2e-ran"
    # The suite ends only once the e2e has run: proof that the two overlap.
    suite = f"for i in $(seq 300); do [ -e {marker} ] && exit 0; sleep 0.1; done; exit 1"
    for e2e_rc, want in ((0, 0), (3, 3)):
        marker.unlink(missing_ok=True)
        env = _stand_ins(tmp_path, suite, prep="true", e2e=f"echo scenario-report; touch {marker}; exit {e2e_rc}")
        res = _run(tmp_path, env)
        assert res.returncode == want, res.stdout + res.stderr
        assert "e2e | scenario-report" in res.stdout
        assert "e2e | e2e preparation done after" in res.stdout
        assert "e2e (left after the suite)" in res.stdout
        # The image builds' dockerd goes as soon as the images are built, not at the end.
        assert not _alive(int((tmp_path / "cache" / "dockerd" / "dockerd.pid").read_text()))


def test_a_failed_suite_interrupts_the_running_e2e_and_waits_for_its_teardown(tmp_path: Path) -> None:
    started, torn_down = tmp_path / "cache" / "e2e-started", tmp_path / "cache" / "e2e-torn-down"
    # The e2e stand-in behaves as pytest does on SIGINT: it runs its teardown (1 s here), then exits.
    e2e = (f"trap 'sleep 1; touch {torn_down}; exit 130' INT; touch {started}; "
           f"(exec -a {_fake_name(tmp_path)}-e2e sleep 600) & wait")
    suite = f"for i in $(seq 300); do [ -e {started} ] && exit 1; sleep 0.1; done; exit 0"
    res = _run(tmp_path, _stand_ins(tmp_path, suite, prep="true", e2e=e2e))
    assert res.returncode == 1, res.stdout + res.stderr
    assert "stopping the e2e" in res.stderr
    assert torn_down.exists(), "make test returned before the e2e had torn its cluster down"
    assert "e2e (beside the suite; stopped or ended when the suite failed):" in res.stdout
    left = subprocess.run(["pgrep", "-f", _fake_name(tmp_path)], capture_output=True, text=True).stdout
    assert not left.strip()
