"""Give every existing customer wallet its owner (tenancy), before wallets'
migration 0004 requires one.

Before tenancy any client could act on any wallet, so the owner is read from
the ledger: the client whose transaction first did what only an owner may do
now (a deposit into the wallet, or a transfer or withdrawal out of it); failing
that, the client of the wallet's first transaction of any kind (staff
reversals left out); a wallet no transaction ever touched goes to the client
"unclaimed-wallets", created here without a key and inactive, so that nobody
can use it until support gives the wallet to its real owner in the admin.
"""

from django.db import migrations

UNCLAIMED = "unclaimed-wallets"

OWNERS_FROM_THE_LEDGER = """
UPDATE wallets w
   SET owner_id = first.client_id
  FROM (
    SELECT DISTINCT ON (wallet_id) wallet_id, client_id
      FROM (
        SELECT destination_wallet_id AS wallet_id, client_id, created_at, type = 'DEPOSIT' AS owner_act
          FROM transaction_logs WHERE reversal_of_id IS NULL
        UNION ALL
        SELECT source_wallet_id, client_id, created_at, type IN ('TRANSFER', 'WITHDRAWAL')
          FROM transaction_logs WHERE reversal_of_id IS NULL
      ) acts
     ORDER BY wallet_id, owner_act DESC, created_at
  ) first
 WHERE w.id = first.wallet_id AND w.kind = 'CUSTOMER' AND w.owner_id IS NULL
"""


def assign_owners(apps, schema_editor):
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(OWNERS_FROM_THE_LEDGER)
    Wallet = apps.get_model("wallets", "Wallet")
    orphans = Wallet.objects.filter(kind="CUSTOMER", owner__isnull=True)
    if orphans.exists():
        User = apps.get_model("auth", "User")
        unclaimed, _ = User.objects.get_or_create(username=UNCLAIMED, defaults={"is_active": False, "password": "!"})
        orphans.update(owner=unclaimed)


class Migration(migrations.Migration):
    dependencies = [
        ("transfers", "0007_pay_other_clients"),
        ("wallets", "0003_wallet_owner"),
    ]
    # wallets knows nothing of the ledger, so the ledger's app says when.
    run_before = [("wallets", "0004_owner_required")]

    operations = [migrations.RunPython(assign_owners, migrations.RunPython.noop)]
