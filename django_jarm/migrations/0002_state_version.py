from typing import Any

from django.db import migrations, models


def create_row(apps: Any, schema_editor: Any) -> None:
    apps.get_model("django_jarm", "StateVersion").objects.using(schema_editor.connection.alias).get_or_create(
        pk=1, defaults={"version": 0}
    )


class Migration(migrations.Migration):
    dependencies = [
        ("django_jarm", "0001_initial"),
    ]

    operations = [
        migrations.CreateModel(
            name="StateVersion",
            fields=[
                ("id", models.PositiveSmallIntegerField(default=1, primary_key=True, serialize=False)),
                (
                    "version",
                    models.BigIntegerField(default=0, help_text="Moves on with every change of keys or client settings."),
                ),
            ],
            options={
                "verbose_name": "JARM state version",
            },
        ),
        migrations.RunPython(create_row, migrations.RunPython.noop),
    ]
