"""`manage.py create_api_client --help` names every API client group, read
from the data migrations that create them (issue 26: it missed
"Disbursement client")."""

import os
import subprocess
import sys

from django.conf import settings


def test_help_lists_every_api_client_group():
    shown = subprocess.run(  # noqa: S603
        [sys.executable, "manage.py", "create_api_client", "--help"],
        cwd=settings.BASE_DIR,
        env=os.environ,
        capture_output=True,
        text=True,
        check=True,
    ).stdout

    # argparse wraps the help at the terminal's width: compare words, not lines.
    assert (
        '--group GROUP "Transfer client", "Treasury client", "Auditor", "Disbursement client"; repeatable.'
        in " ".join(shown.split())
    )
