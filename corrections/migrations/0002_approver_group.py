"""Who takes part in four eyes (docs/design.md, "Corrections: four eyes").

- Approver: sees the requests and their audit, approves or rejects another
  person's. No money permission: the approval page shows what was asked,
  frozen, with everything an approver needs to judge it.
- Finance also requests manual adjustments (reversals it already requests
  with transfers.reverse_transactionlog), and Support and Finance see the
  requests and the audit on the pages of what they concern.
"""

import importlib

from django.db import migrations

api_client_groups = importlib.import_module("transfers.migrations.0002_api_client_groups")
event_admin = importlib.import_module("transfers.migrations.0009_event_admin_permissions")

SEE = [("corrections", "view_correction"), ("corrections", "view_correctionaudit")]
GROUPS = {"Approver": [*SEE, ("corrections", "approve_correction")]}
GRANTS = {
    "Support": SEE,
    "Finance": [*SEE, ("corrections", "request_adjustment")],
}


def forwards(apps, schema_editor):
    api_client_groups.create_groups(apps, schema_editor, groups=GROUPS)
    for group, permissions in GRANTS.items():
        event_admin.grant(apps, permissions, (group,))


def backwards(apps, schema_editor):
    for group, permissions in GRANTS.items():
        event_admin.take_back(apps, permissions, (group,))
    api_client_groups.delete_groups(apps, schema_editor, groups=GROUPS)


class Migration(migrations.Migration):
    dependencies = [
        ("corrections", "0001_initial"),
        ("transfers", "0012_client_exposures"),
    ]

    operations = [migrations.RunPython(forwards, backwards)]
