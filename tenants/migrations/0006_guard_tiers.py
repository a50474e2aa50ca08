# The single guard threshold becomes the sanitise threshold (what a score over it did before,
# short of blocking), and a block threshold joins it: a plan's old threshold no longer blocks.
import django.core.validators
from django.db import migrations, models

import tenants.models


class Migration(migrations.Migration):
    dependencies = [
        ("tenants", "0005_guard"),
    ]

    operations = [
        migrations.RenameField(model_name="plan", old_name="guard_threshold", new_name="guard_sanitize_threshold"),
        migrations.RenameField(model_name="tenant", old_name="guard_threshold", new_name="guard_sanitize_threshold"),
        migrations.AlterField(
            model_name="plan",
            name="guard_sanitize_threshold",
            field=models.FloatField(
                blank=True,
                help_text="Fence a text scoring at least this as untrusted data; empty: the shipped default.",
                null=True,
                validators=[django.core.validators.MinValueValidator(0.0)],
            ),
        ),
        migrations.AlterField(
            model_name="tenant",
            name="guard_sanitize_threshold",
            field=models.FloatField(
                blank=True, null=True, validators=[django.core.validators.MinValueValidator(0.0)]
            ),
        ),
        migrations.AddField(
            model_name="plan",
            name="guard_block_threshold",
            field=models.FloatField(
                blank=True,
                help_text="Refuse a text scoring at least this (0-1; over 1 never blocks); empty: the shipped default.",
                null=True,
                validators=[django.core.validators.MinValueValidator(0.0)],
            ),
        ),
        migrations.AddField(
            model_name="tenant",
            name="guard_block_threshold",
            field=models.FloatField(
                blank=True, null=True, validators=[django.core.validators.MinValueValidator(0.0)]
            ),
        ),
        migrations.AlterField(
            model_name="plan",
            name="guard_role_thresholds",
            field=models.JSONField(
                blank=True,
                default=dict,
                help_text='Per message role, e.g. {"tool": {"block": 0.9, "sanitize": 0.3}}; a number: the sanitise threshold.',
                validators=[tenants.models.validate_role_thresholds],
            ),
        ),
    ]
