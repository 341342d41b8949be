"""The repository's own text files hold no merge conflict markers: docs/ is
the product's guide, and a marker left there (as once in
docs/operations.md) shows a reader two versions of a paragraph."""

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MARKER = re.compile(r"^(<{7} |>{7} |={7}$)", re.MULTILINE)


def test_no_tracked_text_file_holds_a_merge_conflict_marker():
    tracked = subprocess.run(
        ["git", "ls-files", "*.md", "*.py", "*.html", "*.txt", "*.yml", "*.toml", "*.ini", "Makefile"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    marked = [name for name in tracked if MARKER.search((ROOT / name).read_text(errors="replace"))]

    assert tracked and not marked
