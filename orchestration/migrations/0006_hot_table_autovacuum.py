# Per-table autovacuum for the engine's hot tables (config/autovacuum.py says why):
# every case updates its own row and its step runs, every event is marked published,
# every idempotency key is completed after it is claimed.

from django.db import migrations

from config.autovacuum import HOT_TABLE_V1, autovacuum_operation


class Migration(migrations.Migration):
    dependencies = [("orchestration", "0005_flow_metric_indexes")]

    operations = [
        autovacuum_operation(
            {
                "orchestration_case": HOT_TABLE_V1,
                "orchestration_steprun": HOT_TABLE_V1,
                "orchestration_outboxevent": HOT_TABLE_V1,
                "orchestration_idempotencyrecord": HOT_TABLE_V1,
            }
        )
    ]
