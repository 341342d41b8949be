"""`make test` leaves no service enabled or running that the machine did not
have: the Debian packages bin/ensure-test-tools installs for their programs
(prometheus, pgbouncer, nginx) enable their services on install, and the script
turns those off unless they run (then they are the machine's own).

This checks the machine as the suite leaves it (ensure-test-tools ran just
before pytest): any of those units that is enabled for boot must be running.
"""

import shutil
import subprocess
from pathlib import Path

import pytest

TOOL_SERVICES = ("prometheus", "prometheus-node-exporter", "pgbouncer", "nginx")
SYSTEMD_RUNNING = Path("/run/systemd/system").is_dir()


def enabled(unit: str) -> bool:
    """Enabled for boot, by a systemd unit link or a SysV start link."""
    state = subprocess.run(  # noqa: S603
        ["systemctl", "is-enabled", unit],  # noqa: S607
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    sysv_starts = list(Path("/etc").glob(f"rc[2-5].d/S[0-9][0-9]{unit}"))
    return state == "enabled" or bool(sysv_starts)


def runs_as_a_service(unit: str) -> bool:
    """The package's own daemon is up (under systemd, or with its /etc configuration)."""
    if SYSTEMD_RUNNING:
        active = subprocess.run(["systemctl", "is-active", "--quiet", unit], check=False)  # noqa: S603, S607
        if active.returncode == 0:
            return True
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            argv = cmdline.read_bytes().split(b"\0")
        except OSError:
            continue
        title = argv[0].decode(errors="replace") if argv else ""
        # nginx retitles its master; the package's has no -p (bin/web's own
        # nginx runs from a private runtime directory and is no service).
        if unit == "nginx" and title.startswith("nginx: master process /usr/sbin/nginx") and " -p " not in title:
            return True
        if argv and argv[0].decode(errors="replace").endswith(f"bin/{unit}"):
            args = b" ".join(argv[1:]).decode(errors="replace")
            if not args.strip() or f"/etc/{unit}/" in args:
                return True
    return False


@pytest.mark.skipif(not shutil.which("systemctl"), reason="no systemctl: no unit can be enabled")
@pytest.mark.parametrize("unit", TOOL_SERVICES)
def test_a_test_tool_service_is_not_enabled_unless_the_machine_runs_it(unit):
    assert not enabled(unit) or runs_as_a_service(unit), (
        f"{unit} is enabled for boot but not running: bin/ensure-test-tools left it on"
    )
