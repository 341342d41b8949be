"""ApiKey moves to the clients app, and Event, WebhookEndpoint and
WebhookDelivery to the events app (docs/design.md, "Where things are"):
Django's state only, no table, row or constraint is touched (clients' and
events' 0001 say the models are there now; this takes them out of here).

Their content types move with them, so that every permission keeps its row
and id: a group's grants (Support's and Finance's view_event, resend_event,
... from transfers' 0009), a user's own grants and the admin's history of
each object keep pointing at the right thing, now named clients.* and
events.* instead of wallets.*.
"""

from django.db import migrations

# model -> the app it moves to
MOVED = {"apikey": "clients", "event": "events", "webhookendpoint": "events", "webhookdelivery": "events"}


def move_content_types(apps, moves):
    """For each (model, from_label, to_label): give from_label's content type
    of the model to_label. A content type to_label already has (made by a
    data migration's create_permissions that ran while the model was in
    both states) is merged into it first: its permissions' grants go to the
    twin permission of the same codename, and it is deleted."""
    ContentType = apps.get_model("contenttypes", "ContentType")
    Permission = apps.get_model("auth", "Permission")
    for model, from_label, to_label in moves:
        old = ContentType.objects.filter(app_label=from_label, model=model).first()
        if old is None:
            continue  # never made: post_migrate makes it under its new label
        new = ContentType.objects.filter(app_label=to_label, model=model).first()
        if new is not None:
            for permission in Permission.objects.filter(content_type=new):
                twin = Permission.objects.filter(content_type=old, codename=permission.codename).first()
                if twin is None:
                    permission.content_type = old
                    permission.save(update_fields=["content_type"])
                    continue
                for group in permission.group_set.all():
                    group.permissions.add(twin)
                for user in permission.user_set.all():
                    user.user_permissions.add(twin)
            new.delete()
        old.app_label = to_label
        old.save(update_fields=["app_label"])
    ContentType.objects.clear_cache()


def forwards(apps, schema_editor):
    move_content_types(apps, [(model, "wallets", app) for model, app in MOVED.items()])


def backwards(apps, schema_editor):
    move_content_types(apps, [(model, app, "wallets") for model, app in MOVED.items()])


class Migration(migrations.Migration):
    dependencies = [
        ("wallets", "0016_wallet_held"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("clients", "0001_initial"),
        ("events", "0001_initial"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[],
            state_operations=[
                # The deliveries' foreign keys first: they point at Event and WebhookEndpoint.
                migrations.RemoveField(model_name="webhookdelivery", name="event"),
                migrations.RemoveField(model_name="webhookdelivery", name="endpoint"),
                migrations.DeleteModel(name="WebhookDelivery"),
                migrations.DeleteModel(name="WebhookEndpoint"),
                migrations.DeleteModel(name="Event"),
                migrations.DeleteModel(name="ApiKey"),
            ],
        ),
        migrations.RunPython(forwards, backwards),
    ]
