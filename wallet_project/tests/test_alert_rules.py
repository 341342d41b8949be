"""The Prometheus alert rules load, and each alert fires on its condition and
stays quiet otherwise (promtool's own unit tests, ops/prometheus/alerts.test.yml).
promtool comes with Debian's prometheus package, which bin/ensure-test-tools
installs before the suite runs."""

import shutil
import subprocess
from pathlib import Path

import pytest

RULES = Path(__file__).resolve().parents[2] / "ops" / "prometheus"
PROMTOOL = shutil.which("promtool")


@pytest.fixture(scope="module")
def promtool() -> str:
    if PROMTOOL is None:
        pytest.fail("promtool is missing: run bin/ensure-test-tools (make test does)")
    return PROMTOOL


def test_the_rules_file_is_valid(promtool):
    result = subprocess.run([promtool, "check", "rules", "alerts.yml"], cwd=RULES, capture_output=True, text=True)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 14 rules found" in result.stdout


def test_each_alert_fires_on_its_condition_and_only_then(promtool):
    result = subprocess.run([promtool, "test", "rules", "alerts.test.yml"], cwd=RULES, capture_output=True, text=True)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout
