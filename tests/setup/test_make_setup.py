"""The Makefile's setup steps on machines that lack something: one readable line and exit 1."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _stub(folder: Path, name: str, body: str) -> None:
    path = folder / name
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)


def _run(argv: list[str], *, path_prefix: Path | None = None,
         user: str | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    if path_prefix is not None:
        env["PATH"] = f"{path_prefix}:{env['PATH']}"
    if user is not None:
        argv = ["runuser", "-u", user, "--", *argv]
    return subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def test_an_old_java_is_named_with_what_to_install(tmp_path: Path) -> None:
    _stub(tmp_path, "java", "echo '    java.specification.version = 11' >&2")
    for tool in ("redis-server", "mvn"):
        _stub(tmp_path, tool, "exit 0")
    res = _run(["make", "--no-print-directory", "deps"], path_prefix=tmp_path)
    assert res.returncode != 0
    first = res.stderr.splitlines()[0]
    assert first == "error: Kafka needs Java 17+, 'java' here is 11: install openjdk-17-jre-headless"
    assert "stamp" not in res.stderr


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("runuser"), reason="needs root to run as another user")
def test_a_missing_package_without_root_says_what_to_install() -> None:
    res = _run([str(ROOT / "tools" / "need.sh"), "no-such-command-taskq:no-such-package"], user="nobody")
    assert res.returncode == 1
    assert res.stderr.strip() == (
        "error: missing no-such-package: install them (apt-get install no-such-package) or run make as root")


def test_present_commands_need_nothing() -> None:
    res = _run([str(ROOT / "tools" / "need.sh"), "sh:dash"])
    assert res.returncode == 0 and res.stdout == "" and res.stderr == ""


def test_an_unusable_cache_folder_is_one_line(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    res = _run(["make", "--no-print-directory", "help", f"CACHE={blocker}/cache"])
    assert res.returncode != 0
    assert f"cannot create the cache folder {blocker}/cache: set CACHE=<a writable folder>" in res.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="as root need.sh calls apt-get itself (else sudo)")
def test_installs_running_at_once_take_turns_and_an_apt_lock_is_waited_out(tmp_path: Path) -> None:
    """make test installs the e2e's packages while the suite's still go in: two need.sh at once
    must not collide on apt's locks, and a lock someone else holds is waited for."""
    bin_dir, calls = tmp_path / "bin", tmp_path / "calls"
    bin_dir.mkdir()
    # An apt-get whose first `update` finds the lists locked (another apt run), and whose install
    # takes a moment and then provides the command.
    _stub(bin_dir, "apt-get", f"""
case " $* " in
  *" update "*)
    if [ ! -e {tmp_path}/locked-once ]; then : > {tmp_path}/locked-once
      echo "E: Could not get lock /var/lib/apt/lists/lock. It is held by process 1 (apt-get)"; exit 100; fi
    echo update >> {calls} ;;
  *" install "*)
    echo install >> {calls}; sleep 1
    printf '#!/bin/sh\\nexit 0\\n' > {bin_dir}/taskq-fake-tool; chmod +x {bin_dir}/taskq-fake-tool ;;
esac""")
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "TMPDIR": str(tmp_path)}
    argv = [str(ROOT / "tools" / "need.sh"), "taskq-fake-tool:taskq-fake-package"]
    runs = [subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for _ in range(2)]
    results = [(p.wait(timeout=120), p.stderr.read() if p.stderr else "") for p in runs]
    assert all(code == 0 for code, _ in results), results
    # One run installed; the other waited its turn and found the command there.
    assert calls.read_text().split() == ["update", "install"]
