"""A newcomer's first run (docs/operations.md, "First run"): a `.env` written
by hand before `make` ever ran, a setting the service cannot start without,
and a port some other process already holds. Each runs as a newcomer runs it:
`make` in a copy of the checkout, manage.py and bin/start in fresh processes.
"""

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from django.conf import settings

BASE_DIR = Path(settings.BASE_DIR)
# What this test process read from the checkout's own .env, which a clone's
# processes must not inherit.
FROM_THIS_CHECKOUT = ("DJANGO_SECRET_KEY", "METRICS_TOKEN", "WALLET_INSTANCE", "WALLET_ENV_FILE", "PORT")


def newcomer_environment(**extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key not in FROM_THIS_CHECKOUT}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    return {**env, **extra}


def clone_of_this_checkout(tmp_path: Path) -> Path:
    """The checkout's files as a fresh clone has them (tracked and new, never .env), with
    a `.venv` that `make` takes as installed: scripts handing over to this one's."""
    clone = tmp_path / "clone"
    listed = subprocess.run(  # noqa: S603
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],  # noqa: S607
        cwd=BASE_DIR,
        capture_output=True,
        check=True,
    ).stdout
    for name in filter(None, listed.decode().split("\0")):
        if (BASE_DIR / name).is_file():
            (clone / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(BASE_DIR / name, clone / name)
    bin_dir = clone / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    for program in ("python", "pytest"):
        (bin_dir / program).write_text(f'#!/bin/sh\nexec {Path(sys.executable).parent / program} "$@"\n')
        (bin_dir / program).chmod(0o755)
    (clone / ".venv" / ".installed").touch()
    return clone


def test_make_test_prepares_a_clone_whose_env_was_written_by_hand(tmp_path):
    clone = clone_of_this_checkout(tmp_path)
    (clone / ".env").write_text("WALLET_INSTANCE=newcomer\n")

    run = subprocess.run(  # noqa: S603
        ["make", "test", "PYTEST_ARGS=--collect-only -q -p no:cacheprovider wallet_project/tests/test_instances.py"],  # noqa: S607
        cwd=clone,
        env=newcomer_environment(),
        capture_output=True,
        text=True,
        check=False,
    )

    assert run.returncode == 0, run.stdout + run.stderr
    assert "test_instances.py::" in run.stdout
    lines = (clone / ".env").read_text().splitlines()
    assert lines[0] == "WALLET_INSTANCE=newcomer"
    assert sorted(line.split("=", 1)[0] for line in lines[1:]) == ["DJANGO_SECRET_KEY", "METRICS_TOKEN"]
    assert all(len(line.split("=", 1)[1]) >= 40 for line in lines[1:])


def test_make_leaves_a_complete_env_as_it_is(tmp_path):
    clone = clone_of_this_checkout(tmp_path)
    written = "DJANGO_SECRET_KEY=mine-" + "k" * 50 + "\nMETRICS_TOKEN=mine\nWALLET_INSTANCE=newcomer"

    (clone / ".env").write_text(written)
    first = subprocess.run(["make", ".env"], cwd=clone, capture_output=True, text=True, check=True)  # noqa: S607

    assert (clone / ".env").read_text() == written, first.stdout


def test_a_missing_setting_is_one_line_naming_it_and_the_fix(tmp_path):
    clone = clone_of_this_checkout(tmp_path)
    (clone / ".env").write_text("WALLET_INSTANCE=newcomer\n")

    run = subprocess.run(  # noqa: S603
        [".venv/bin/python", "manage.py", "check"],
        cwd=clone,
        env=newcomer_environment(),
        capture_output=True,
        text=True,
        check=False,
    )

    assert run.returncode == 1
    assert run.stderr.splitlines() == [
        "Configuration: DJANGO_SECRET_KEY is not set. "
        "Run `make .env` to add a random one to .env, or set it in the environment."
    ]


@contextmanager
def port_held() -> Iterator[tuple[subprocess.Popen, str]]:
    """A process listening on a free port of 127.0.0.1, and that port."""
    holder = subprocess.Popen(  # noqa: S603
        [
            sys.executable,
            "-c",
            "import socket, sys, time\n"
            "s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen()\n"
            "print(s.getsockname()[1], flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        yield holder, holder.stdout.readline().strip()
    finally:
        holder.kill()
        holder.wait()


def run_start(checkout: Path, env: dict[str, str]) -> tuple[int, str, str]:
    """bin/start in its own session: were the port check missing, the whole
    service would start, and all of it must be stopped."""
    start = subprocess.Popen(  # noqa: S603
        [str(checkout / "bin" / "start")],
        cwd=checkout,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = start.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(start.pid, signal.SIGINT)
        stdout, stderr = start.communicate(timeout=60)
    return start.returncode, stdout, stderr


@pytest.mark.parametrize("port_from", ["environment", "dotenv"])
def test_start_names_the_process_holding_its_port_before_serving(tmp_path, port_from):
    with port_held() as (holder, port):
        if port_from == "environment":
            returncode, stdout, stderr = run_start(BASE_DIR, {**os.environ, "HOST": "127.0.0.1", "PORT": port})
        else:  # PORT in .env only, as docs/operations.md shows for a second checkout
            clone = clone_of_this_checkout(tmp_path)
            (clone / ".env").write_text(f"DJANGO_SECRET_KEY={'k' * 50}\nPORT={port}\n")
            returncode, stdout, stderr = run_start(clone, newcomer_environment())

    assert returncode != 0
    assert "Serving on" not in stdout
    assert f"Port {port} on 127.0.0.1 is taken by python" in stderr
    assert f"(pid {holder.pid}: {sys.executable} -c import socket" in stderr
